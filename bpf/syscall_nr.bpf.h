/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Syscall numbers, for the socket-tracepoint mode: sock_send_length and
 * sock_recv_length fire inside the syscall that moved the bytes (and
 * inet_sock_set_state inside connect(), close() and shutdown()), and the
 * syscall's number and arguments are read from the task's saved user
 * registers. Only the 64-bit ABI: 32-bit (compat) and io_uring I/O reach
 * the tracepoints with numbers that are not these, and are left out.
 */
#ifndef AGENTPROF_SYSCALL_NR_BPF_H
#define AGENTPROF_SYSCALL_NR_BPF_H

#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_connect 42
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_shutdown 48
#define NR_fsync 74
#define NR_fdatasync 75
#define NR_futex 202
#define NR_preadv 295
#define NR_pwritev 296
#define NR_close_range 436
#define NR_futex_waitv 449
/* The number of the syscall in progress; -1 outside one (a page fault). */
#define SYSCALL_NR(regs) ((long)(regs)->orig_ax)
#define SYSCALL_ARG1(regs) ((regs)->di)
#define SYSCALL_ARG2(regs) ((regs)->si)
#else
/*
 * Not filled in for this architecture yet: nothing matches, and userspace
 * (src/record.c, have_sock_tps()) keeps to syscall tracepoints here.
 */
#define NR_read -2
#define NR_write -3
#define NR_pread64 -4
#define NR_pwrite64 -5
#define NR_readv -6
#define NR_writev -7
#define NR_sendfile -8
#define NR_sendto -9
#define NR_recvfrom -10
#define NR_sendmsg -11
#define NR_recvmsg -12
#define NR_fsync -13
#define NR_fdatasync -14
#define NR_futex -15
#define NR_preadv -16
#define NR_pwritev -17
#define NR_futex_waitv -18
#define NR_connect -19
#define NR_shutdown -20
#define NR_close -21
#define NR_close_range -22
#define SYSCALL_NR(regs) (-1L)
#define SYSCALL_ARG1(regs) 0
#define SYSCALL_ARG2(regs) 0
#endif

#endif /* AGENTPROF_SYSCALL_NR_BPF_H */
