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
/* Distinct upstream peers tracked per request; more are counted, not kept. */
#define AP_MAX_PEERS 6

/* Every ring-buffer record starts with its type. */
enum ap_event_type {
	AP_EV_REQUEST = 1,	/* struct ap_request_event */
	AP_EV_PG = 2,		/* struct ap_pg_event (include/agentprof/pgwire.h) */
};

enum ap_peer_kind {
	AP_PEER_UPSTREAM = 1,	/* an outbound socket: LLM API, other services */
	AP_PEER_PG = 2,		/* an outbound socket speaking the PostgreSQL protocol */
};

/* What a request did with one upstream peer (ip:port, or a unix socket). */
struct ap_peer {
	__u8 family;		/* AF_INET, AF_INET6, AF_UNIX */
	__u8 kind;		/* enum ap_peer_kind */
	__u16 port;		/* host byte order */
	__u32 calls;		/* request/response turns: writes after reads */
	__u8 addr[16];		/* IPv4 in the first 4 bytes; unix: path prefix */
	__u64 connect_ns;	/* TCP handshakes this request made to the peer */
	__u64 wait_ns;		/* last byte sent -> reply bytes read, summed over calls */
	__u64 ttfb_ns;		/* last byte sent -> first reply byte, summed over calls */
	__u64 tx_bytes;
	__u64 rx_bytes;
	__u32 retransmits;
	__u32 connects;
};

_Static_assert(sizeof(struct ap_peer) == 72, "ap_peer ABI changed");

/* Key of the per-run `peer_totals` map: one upstream peer. */
struct ap_peer_key {
	__u8 family;
	__u8 kind;
	__u16 port;
	__u8 addr[16];
};

/* Per-peer counters for the whole run, kept by the TCP tracepoints. */
struct ap_peer_totals {
	__u64 connect_failures;	/* connect() refused, timed out or reset */
	__u64 resets;		/* RSTs received on established connections */
	__u64 retransmits;
	__u64 srtt_sum_us;	/* smoothed RTT sampled at each reply */
	__u64 srtt_samples;
	__u64 srtt_max_us;
};

_Static_assert(sizeof(struct ap_peer_key) == 20, "ap_peer_key ABI changed");
_Static_assert(sizeof(struct ap_peer_totals) == 48, "ap_peer_totals ABI changed");

enum ap_req_flags {
	AP_REQ_INCOMPLETE = 1 << 0,	/* no response byte was written */
	AP_REQ_TASK_EXITED = 1 << 1,	/* the serving thread exited mid-request */
	AP_REQ_CONN_CLOSED = 1 << 2,	/* ended by close() or EOF, not by the next request */
	AP_REQ_FLUSHED = 1 << 3,	/* ended by userspace at exit, still open */
	AP_REQ_PG_TLS = 1 << 4,		/* talked to PostgreSQL over TLS */
	AP_REQ_PG_UNCOUNTED = 1 << 5,	/* a round trip whose rows and errors were not seen */
};

/* Threads a request remembers in itself (struct ap_request_event's tids). */
#define AP_REQ_TIDS 4

/*
 * An open request, in its slot of the requests map, and (from type on) the
 * record sent for it. A record is trimmed to what was filled in: it ends
 * with the head_len captured bytes of the head, then its npeers peers (at
 * AP_REQ_PEERS_AT(head_len)), which request_finish() copies there from
 * peers[], left out of the record: most requests have one peer or none.
 */
struct ap_request_event {
	struct ap_peer peers[AP_MAX_PEERS];
	/*
	 * The first threads of a CPython process that worked for it (0: free),
	 * so that an event loop coming back to the request at each of its
	 * units finds it counted without a hash update; later ones go to the
	 * py_seen map. Not in the record.
	 */
	__u64 tids[AP_REQ_TIDS];
	__u32 type;		/* AP_EV_REQUEST */
	__u32 npeers;		/* valid entries in peers[] */
	__u64 id;		/* seq << AP_REQ_SLOT_BITS | slot: AP_REQ_SEQ() */
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
	__u64 offcpu_upstream_ns; /* part of offcpu_ns blocked reading an upstream */
	__u64 offcpu_pg_ns;	/* part of offcpu_ns blocked reading PostgreSQL */
	__u64 offcpu_disk_ns;	/* part of offcpu_ns blocked in file I/O */
	__u64 offcpu_lock_ns;	/* part of offcpu_ns blocked in futex() (locks, the GIL) */
	__u64 minor_faults;
	__u64 major_faults;
	__s64 rss_delta_pages;	/* process RSS at close-off minus at start */
	__s64 rss_start_pages;
	__u64 mapped_bytes;	/* mmap() lengths and brk() growth */
	__u64 pg_time_ns;	/* union of time with PostgreSQL round trips open */
	__u32 pg_round_trips;
	__u32 pg_errors;
	__u32 pg_rows;		/* DataRow messages received */
	__u32 peers_dropped;	/* peers beyond AP_MAX_PEERS */
	char comm[AP_COMM_LEN];
	char resp[AP_RESP_MAX];
	char head[AP_HEAD_MAX];
	/* Room for the peers a record carries after a head of AP_HEAD_MAX bytes. */
	__u8 peers_room[AP_MAX_PEERS * sizeof(struct ap_peer)];
};

_Static_assert(sizeof(struct ap_request_event) == 2184, "ap_request_event ABI changed");

/* Where a record begins in the struct. */
#define AP_REQ_WIRE_OFF __builtin_offsetof(struct ap_request_event, type)
/* Offset of the peers in a record whose head has head_len bytes. */
#define AP_REQ_PEERS_AT(head_len)                                                                  \
	(__builtin_offsetof(struct ap_request_event, head) - AP_REQ_WIRE_OFF +                     \
	 (((head_len) + 7) & ~7ULL))
/* Bytes of a record as sent. */
#define AP_REQ_EVENT_SIZE(head_len, npeers)                                                        \
	(AP_REQ_PEERS_AT(head_len) + (npeers) * sizeof(struct ap_peer))



/*
 * Open requests live in the slots of the requests map. A request's id is a
 * sequence number (1, 2, ... in the order requests start) shifted left, with
 * the slot in the low bits: finding an open request from its id takes no
 * lookup table.
 */
#define AP_REQ_SLOT_BITS 13
#define AP_MAX_REQUESTS (1u << AP_REQ_SLOT_BITS)
#define AP_REQ_SEQ(id) ((id) >> AP_REQ_SLOT_BITS)
/* The id of a slot being filled: no request's yet. */
#define AP_REQ_ID_CLAIMED (~0ULL)

/* Pids are below PID_MAX_LIMIT on 64-bit kernels: the size of the procs bitmap. */
#define AP_PID_LIMIT (1u << 22)

/* Indexes of the per-CPU `stats` array; userspace sums them. */
enum ap_stat {
	AP_STAT_RINGBUF_DROPS,	/* records lost: ring buffer full */
	AP_STAT_REQ_MAP_FULL,	/* requests closed off early: more open than the map holds */
	AP_STAT_CONN_MAP_FULL,	/* sockets not tracked: conns map full */
	AP_STAT_THREAD_MAP_FULL, /* threads not tracked: threads map full */
	AP_STAT_PROC_MAP_FULL,	/* children not traced: pid beyond the procs bitmap */
	AP_STAT_NON_HTTP,	/* reads on traced sockets that were not HTTP */
	AP_STAT_STALE_REQ,	/* bindings that pointed at a finished request */
	AP_STAT_PG_BAD,		/* PostgreSQL streams that stopped parsing (garbage) */
	AP_STAT_PG_DROPS,	/* PostgreSQL round-trip records lost: ring buffer full */
	AP_STAT_UNSAMPLED,	/* requests seen and not sampled (--sample) */
	AP_STAT_PY_UNIT_EVICTED, /* CPython units' bindings lost: a py_units set full */
	AP_STAT__COUNT,
};

/* Kinds of socket in the conns map. */
enum ap_conn_kind {
	AP_CONN_INBOUND = 1,	/* an accepted socket carrying HTTP requests */
	AP_CONN_OUTBOUND = 2,	/* a socket to an upstream or PostgreSQL */
	AP_CONN_OTHER = 3,	/* anything else a request thread wrote: files, pipes */
};

#endif /* AGENTPROF_REQUEST_H */
