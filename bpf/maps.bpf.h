/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Maps shared by every BPF object of bpf/. They are declared __weak so that
 * `bpftool gen object` merges the identical definitions of each object into
 * one map of the linked skeleton.
 */
#ifndef AGENTPROF_MAPS_BPF_H
#define AGENTPROF_MAPS_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "agentprof/request.h"

#define AP_MAX_PROCS 4096
#define AP_MAX_CONNS 65536
#define AP_MAX_REQUESTS 8192
#define AP_MAX_THREADS 16384

/* Per-socket state, keyed by tgid << 32 | fd. */
struct conn {
	__u64 req_id;		/* request in progress on this socket, 0 if none */
	__u32 kind;		/* enum ap_conn_kind */
	__u32 pad;
};

/* Per-thread attribution state, keyed by tid. */
struct thread {
	__u64 req_id;		/* request this thread works for, 0 if none */
	__u64 acct_ns;		/* on-CPU time before this instant is accounted */
	__u64 block_ns;		/* switched out blocked at, 0 if not blocked */
	__u64 wake_ns;		/* runnable (woken or preempted) since, 0 if not */
	__u32 tgid;
	__u8 inherited;		/* req_id came from a wakeup, not the thread's own I/O */
	__u8 sock_io;		/* this thread has done I/O on a traced socket */
	__u8 parked;		/* in a read awaiting a connection's next request */
	__u8 pad;
};

/* Syscall arguments saved at sys_enter for sys_exit, keyed by tid. */
struct io_args {
	__u64 buf;		/* buffer, iovec array or msghdr, per op */
	__u32 fd;
	__u32 op;		/* enum io_op */
};

enum io_op {
	IO_READ,		/* read, recvfrom: buf is the data */
	IO_READV,		/* readv: buf is a struct iovec array */
	IO_RECVMSG,		/* recvmsg: buf is a struct user_msghdr */
	IO_WRITE,		/* write, sendto */
	IO_WRITEV,		/* writev */
	IO_SENDMSG,		/* sendmsg */
	IO_SENDFILE,		/* sendfile: no user buffer */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_PROCS);
	__type(key, __u32);
	__type(value, __u8);
} procs SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_REQUESTS);
	__type(key, __u64);
	__type(value, struct ap_request_event);
} requests SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct thread);
} threads SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct io_args);
} io_args SEC(".maps") __weak;

/* Scratch space to build a request record bigger than the BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ap_request_event);
} scratch SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AP_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps") __weak;

static __always_inline void stat_inc(enum ap_stat idx)
{
	__u32 key = idx;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += 1;
}

#endif /* AGENTPROF_MAPS_BPF_H */
