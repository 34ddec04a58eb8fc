/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Syscall numbers, for the socket-tracepoint mode: sock_send_length and
 * sock_recv_length fire inside the syscall that moved the bytes, and the
 * syscall's number and arguments are read from the task's saved user
 * registers. Only the 64-bit ABI: 32-bit (compat) and io_uring I/O reach
 * the tracepoints with numbers that are not these, and are left out.
 */
#ifndef AGENTPROF_SYSCALL_NR_BPF_H
#define AGENTPROF_SYSCALL_NR_BPF_H

#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_pread64 17
#define NR_pwrite64 18
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_fsync 74
#define NR_fdatasync 75
#define NR_futex 202
#define NR_preadv 295
#define NR_pwritev 296
#define NR_futex_waitv 449
/* The number of the syscall in progress; -1 outside one (a page fault). */
#define SYSCALL_NR(regs) ((long)(regs)->orig_ax)
#define SYSCALL_ARG1(regs) ((regs)->di)
#define SYSCALL_ARG2(regs) ((regs)->si)
#else
#error "socket-tracepoint mode: add this architecture's syscall numbers to bpf/syscall_nr.bpf.h"
#endif

#endif /* AGENTPROF_SYSCALL_NR_BPF_H */
