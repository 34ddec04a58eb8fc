/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Types shared by bpf/requests.bpf.c and the userspace collector: the
 * per-request record sent through the ring buffer and the counters both
 * sides agree on. Fixed sizes only, no pointers; every record has a
 * _Static_assert on its size so the ABI cannot drift silently.
 */
#ifndef AGENTPROF_REQUEST_H
#define AGENTPROF_REQUEST_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Bytes of the request head captured from the first read of a request. */
#define AP_HEAD_MAX 1024
/* Bytes of the response captured from its first write: the status line. */
#define AP_RESP_MAX 32
#define AP_COMM_LEN 16

enum ap_req_flags {
	AP_REQ_INCOMPLETE = 1 << 0,	/* no response byte was written */
	AP_REQ_TASK_EXITED = 1 << 1,	/* the serving thread exited mid-request */
	AP_REQ_CONN_CLOSED = 1 << 2,	/* ended by close() or EOF, not by the next request */
	AP_REQ_FLUSHED = 1 << 3,	/* ended by userspace at exit, still open */
};

struct ap_request_event {
	__u64 id;
	__u64 cgroup_id;
	__u64 start_ns;		/* CLOCK_MONOTONIC: the read returning the head */
	__u64 first_tx_ns;	/* first response byte written, 0 if none */
	__u64 last_tx_ns;	/* last response byte written, 0 if none */
	__u64 end_ns;		/* when the request was closed off */
	__u64 cpu_ns;
	__u64 runq_ns;
	__u64 offcpu_ns;
	__u64 rx_bytes;
	__u64 tx_bytes;
	__u32 pid;
	__u32 tid;		/* the thread that read the head */
	__u32 flags;		/* enum ap_req_flags */
	__u32 head_len;		/* valid bytes in head[] */
	__u32 resp_len;		/* valid bytes in resp[] */
	__u32 nthreads;		/* distinct bindings of threads to this request */
	char comm[AP_COMM_LEN];
	char head[AP_HEAD_MAX];
	char resp[AP_RESP_MAX];
};

_Static_assert(sizeof(struct ap_request_event) == 1184, "ap_request_event ABI changed");

/* Indexes of the per-CPU `stats` array; userspace sums them. */
enum ap_stat {
	AP_STAT_REQUESTS,	/* records submitted */
	AP_STAT_RINGBUF_DROPS,	/* records lost: ring buffer full */
	AP_STAT_REQ_MAP_FULL,	/* requests not tracked: requests map full */
	AP_STAT_CONN_MAP_FULL,	/* sockets not tracked: conns map full */
	AP_STAT_THREAD_MAP_FULL, /* threads not tracked: threads map full */
	AP_STAT_PROC_MAP_FULL,	/* children not traced: procs map full */
	AP_STAT_NON_HTTP,	/* reads on traced sockets that were not HTTP */
	AP_STAT_STALE_REQ,	/* bindings that pointed at a finished request */
	AP_STAT__COUNT,
};

/* Kinds of socket in the conns map. */
enum ap_conn_kind {
	AP_CONN_INBOUND = 1,	/* an accepted socket carrying HTTP requests */
};

#endif /* AGENTPROF_REQUEST_H */
