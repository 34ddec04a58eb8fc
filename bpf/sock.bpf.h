/* SPDX-License-Identifier: GPL-2.0-only */
/* From a file descriptor of the current task to its file and socket. */
#ifndef AGENTPROF_SOCK_BPF_H
#define AGENTPROF_SOCK_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* TCP states (include/net/tcp_states.h), as inet_sock_set_state reports them. */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9

static __always_inline struct file *fd_file(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fds, *f = NULL;

	if (fd >= BPF_CORE_READ(task, files, fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return NULL;
	return f;
}

#define S_IFREG 0100000
#define S_IFBLK 0060000

static __always_inline umode_t file_mode(struct file *f)
{
	return f ? BPF_CORE_READ(f, f_inode, i_mode) : 0;
}

/* The struct sock behind a file, or NULL when it is not a socket. */
static __always_inline struct sock *file_sock(struct file *f)
{
	struct socket *sock;

	if ((file_mode(f) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	return BPF_CORE_READ(sock, sk);
}

static __always_inline struct sock *fd_sock(__u32 fd)
{
	return file_sock(fd_file(fd));
}

#endif /* AGENTPROF_SOCK_BPF_H */
