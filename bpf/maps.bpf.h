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
#define AP_MAX_THREADS 16384

/* Per-socket state, keyed by tgid << 32 | fd. */
struct conn {
	__u64 req_id;		/* request in progress (inbound) or using it (outbound) */
	__u64 conn_id;		/* unique within the run */
	__u64 mark_ns;		/* outbound: last byte sent, or last reply byte read */
	__u64 sk;		/* its struct sock, where known: the TCP tracepoints, reuse of fd */
	__u64 connect_ns;	/* outbound: handshake not yet charged to a request */
	__u32 kind;		/* enum ap_conn_kind */
	__u8 phase;		/* outbound: enum call_phase */
	__u8 slot;		/* outbound: index in requests[req_id].peers */
	__u8 pg;		/* outbound: speaks PostgreSQL */
	__u8 fresh;		/* outbound: connect() seen, no byte written yet */
	struct ap_peer_key peer;
	__u8 disk;		/* other: a regular file or block device */
	__u8 unsampled;		/* inbound: in a request not sampled (req_id is 0) */
	__u8 unsampled_tx;	/* inbound: and its response has begun */
	__u8 pad;
	__u64 cgroup_id;	/* inbound: of its first request's thread (0 until then) */
	/*
	 * inbound, in a CPython event loop: the unit (a connection's handler
	 * task) that wrote its last response, which handles its next request.
	 */
	__u64 py_task;
	__u64 py_task_parent;	/* the unit that made py_task, if known */
};

enum call_phase {
	CALL_IDLE,
	CALL_SENDING,
	CALL_RECEIVING,
};

/* What a blocked thread waits for, for the split of off-CPU time. */
enum wait_kind {
	WAIT_OTHER,
	WAIT_UPSTREAM,
	WAIT_PG,
	WAIT_DISK,
	WAIT_LOCK,
};

/* Per-thread attribution state, keyed by tid. */
#define PY_NOTES 4
struct thread {
	__u64 req_id;		/* request this thread works for, 0 if none */
	__u64 acct_ns;		/* on-CPU time before this instant is accounted */
	__u64 block_ns;		/* switched out blocked at, 0 if not blocked */
	__u64 wake_ns;		/* runnable (woken or preempted) since, 0 if not */
	__u64 min_flt;		/* task counters at acct_ns */
	__u64 maj_flt;
	__u64 slice_mark;	/* se.prev_sum_exec_runtime of the slice accounted */
	__u64 slice_ns;		/* on-CPU time of that slice already charged */
	__u64 pending_ns;	/* on-CPU time since its last socket I/O, unattributed */
	/*
	 * The first request whose head or PostgreSQL reply the thread read
	 * since its last write or block: an event loop runs that request's
	 * code next, whatever else it read after (call_owner(), upstream.bpf.h).
	 */
	__u64 resume_req;
	__u32 tgid;
	__u8 inherited;		/* req_id came from a wakeup, not the thread's own I/O */
	__u8 sock_io;		/* this thread has done I/O on a traced socket */
	__u8 parked;		/* in a read awaiting a connection's next request */
	__u8 wait_kind;		/* enum wait_kind: what its last socket I/O was with */
	__u8 block_kind;	/* enum wait_kind when it blocked */
	__u8 on_cpu;		/* a switch-in was seen since the last switch-out */
	__u8 in_disk;		/* in a read or write of a file */
	__u8 in_futex;		/* in futex() */
	__u8 in_ssl;		/* in a libssl read or write (tls.bpf.h) */
	__u8 py;		/* enum py_state: its CPython thread state found (python.bpf.h) */
	__u8 py_loop;		/* runs asyncio task steps: an event loop */
	__u8 py_known;		/* py_unit has a binding: the thread works for that */
	/*
	 * fd + 1 of the inbound connection this thread last wrote a response
	 * on, until it reads a request: blocked reading it, the thread waits
	 * for the next request (socket-tracepoint mode, sched.bpf.c).
	 */
	__u32 resp_fd;
	__u8 futex_lock;	/* its futex() waits as a Python lock does (sched.bpf.c) */
	__u8 py_tries;		/* looks for its thread state that found none */
	__u16 py_gen;		/* py_procs_gen when its process was no CPython's */
	__u64 py_ctxp;		/* address of its PyThreadState's context field */
	__u64 py_unit;		/* the contextvars.Context it ran at its last sync */
	__u64 py_counted;	/* the last request counted among its threads' */
	__u64 py_last;		/* an event loop: the request of the last task step it ran */
	/*
	 * An event loop's request heads read since it last blocked, oldest
	 * first: the tasks they wake run in that order (python.bpf.c).
	 */
	__u64 py_notes[PY_NOTES];
	__u64 py_note_ns[PY_NOTES];	/* when each head was read */
	__u8 py_nnotes;
	__u8 pad3[7];
};

/* Syscall arguments saved at sys_enter for sys_exit, keyed by tid. */
struct io_args {
	__u64 buf;		/* buffer, iovec array, msghdr or sockaddr, per op */
	__u64 start_ns;		/* connect: when it began */
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
	IO_CONNECT,		/* connect: buf is the sockaddr */
	IO_MMAP,		/* mmap: buf is the length */
};

/*
 * Traced processes: a bitmap indexed by tgid, one bit per possible pid
 * (AP_PID_LIMIT, 512 KiB). Array lookups are inlined by the verifier, so the
 * filter every hook runs for every process on the host costs a few loads
 * instead of a hash lookup. Userspace sets bits through mmap.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AP_PID_LIMIT / 64);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u64);
} procs SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps") __weak;

/*
 * Inbound TCP connections in socket-tracepoint mode, in the socket's own
 * local storage instead of conns: the socket tracepoints hand over the
 * socket, whose storage is a few loads from memory the syscall just used,
 * where a conns lookup hashes the key and walks a bucket, often in memory
 * no cache holds. It also holds any number of connections. The kernel frees
 * the entry with the socket; close() is seen as the TCP state change it
 * makes (tcp.bpf.c). Outbound sockets stay in conns: connect(), close() and
 * the libssl uprobes find them by fd, from programs that cannot use socket
 * storage.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn);
} inbound_conns SEC(".maps") __weak;

/*
 * Open requests, in slots: request id lives in slot id % AP_MAX_REQUESTS
 * while its record's id says so (0: a free slot, AP_REQ_ID_CLAIMED:
 * being filled). An array, not a hash: lookups are inlined loads, and a request
 * starting or ending copies nothing but its own fields (a hash insert copies
 * the whole 1.7 KB value, and needs a delete).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AP_MAX_REQUESTS);
	__type(key, __u32);
	__type(value, struct ap_request_event);
} requests SEC(".maps") __weak;

/* What each CPU keeps for itself. */
struct cpu_state {
	/*
	 * The slot this CPU freed last (slot_claim()). 8192 slots of 1.7 KB
	 * are 14 MB: taken in turn, every request start wrote to memory no
	 * cache held, a third of the socket read handler's time on the
	 * minimal server.
	 */
	__u32 free_slot;
	__u32 records;		/* ring-buffer records sent: ringbuf_flags() */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cpu_state);
} cpu_states SEC(".maps") __weak;

static __always_inline struct cpu_state *cpu_state(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cpu_states, &zero);
}

/*
 * Thread state: in task-local storage where the kernel allows it
 * (thread_storage), else in a hash by tid. A task-storage lookup is a few
 * loads from the task; a hash lookup hashes the tid and walks a bucket, and
 * the hot handlers make two to four of them. The hash stays for raw_tp,
 * whose scheduler hooks get tasks the storage helpers cannot take.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_THREADS);	/* 1 when thread_store is used */
	__type(key, __u32);
	__type(value, struct thread);
} threads SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread);
} thread_store SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_THREADS);
	__type(key, __u32);
	__type(value, struct io_args);
} io_args SEC(".maps") __weak;

/* Outbound sockets by their struct sock, for the TCP tracepoints. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_CONNS);
	__type(key, __u64);
	__type(value, __u64);	/* conns key */
} socks SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ap_peer_key);
	__type(value, struct ap_peer_totals);
} peer_totals SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AP_STAT__COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps") __weak;

#define EVENTS_SIZE (4 << 20)

/*
 * The reader drains the buffer on a timer (src/record.c); records wake it
 * only when the buffer is half full (ringbuf_flags()).
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_SIZE);
} events SEC(".maps") __weak;

static __always_inline bool proc_traced(__u32 tgid)
{
	__u32 word = tgid / 64;
	__u64 *w = bpf_map_lookup_elem(&procs, &word);

	return w && (*w >> (tgid % 64)) & 1;
}

/* Set by userspace before load; defined in requests.bpf.c. */
extern const volatile bool trace_all;	/* no -p: every process on the host */
extern const volatile __u32 self_tgid;	/* never trace agentprof itself */
extern const volatile bool thread_storage;	/* thread state in thread_store (tp_btf, 5.13+) */
extern const volatile __u32 sample_every;	/* trace one request in this many (--sample) */
/* Reads and writes come from the socket tracepoints (tp_btf, 6.3+). */
extern const volatile bool sock_tps;
/* bpf_loop() is there (5.17+); defined in requests.bpf.c. */
extern const volatile bool has_bpf_loop;

/*
 * The thread entry of task (tid: its pid). With thread_storage, task must be
 * a BTF pointer (tp_btf arguments, bpf_get_current_task_btf()); without it
 * the verifier never sees that branch.
 */
static __always_inline struct thread *thread_get(struct task_struct *task, __u32 tid)
{
	if (thread_storage)
		return bpf_task_storage_get(&thread_store, task, NULL, 0);
	return bpf_map_lookup_elem(&threads, &tid);
}

static __always_inline struct thread *thread_current(void)
{
	__u32 tid;

	if (thread_storage)
		return bpf_task_storage_get(&thread_store, bpf_get_current_task_btf(), NULL, 0);
	tid = (__u32)bpf_get_current_pid_tgid();
	return bpf_map_lookup_elem(&threads, &tid);
}

/*
 * The all-zero thread and connection hash entries start as: values in
 * .rodata, so that no handler holds a whole entry on its stack
 * (docs/verifier.md).
 */
static const struct thread thread_zero;
static const struct conn conn_zero;

/*
 * A new, zeroed entry for task, for the caller to fill in; NULL if it has
 * one or none can be made.
 */
static __always_inline struct thread *thread_new(struct task_struct *task, __u32 tid)
{
	if (thread_storage) {
		if (bpf_task_storage_get(&thread_store, task, NULL, 0))
			return NULL;
		return bpf_task_storage_get(&thread_store, task, NULL,
					    BPF_LOCAL_STORAGE_GET_F_CREATE);
	}
	if (bpf_map_update_elem(&threads, &tid, &thread_zero, BPF_NOEXIST))
		return NULL;
	return bpf_map_lookup_elem(&threads, &tid);
}

static __always_inline void thread_del(struct task_struct *task, __u32 tid)
{
	if (thread_storage)
		bpf_task_storage_delete(&thread_store, task);
	else
		bpf_map_delete_elem(&threads, &tid);
}

/*
 * The filter every hook runs first, for every process on the host. With -p,
 * other processes' threads leave here before any hash lookup or clock read.
 */
static __always_inline bool traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	return trace_all || proc_traced(tgid);
}

/* False when tgid is beyond the bitmap (a pid_max above PID_MAX_LIMIT). */
static __always_inline bool proc_add(__u32 tgid)
{
	__u32 word = tgid / 64;
	__u64 *w = bpf_map_lookup_elem(&procs, &word);

	if (!w)
		return false;
	__sync_fetch_and_or(w, 1ULL << (tgid % 64));
	return true;
}

/*
 * A traced process is gone (its last thread exited): its pid may be given to
 * another process next, which nobody asked to trace.
 */
static __always_inline void proc_del(__u32 tgid)
{
	__u32 word = tgid / 64;
	__u64 *w = bpf_map_lookup_elem(&procs, &word);

	if (w)
		__sync_fetch_and_and(w, ~(1ULL << (tgid % 64)));
}

/* The slot of request id, whatever it holds now. */
static __always_inline struct ap_request_event *request_slot(__u64 id)
{
	__u32 slot = id & (AP_MAX_REQUESTS - 1);

	return bpf_map_lookup_elem(&requests, &slot);
}

/* Take slot if it is free: its id becomes AP_REQ_ID_CLAIMED. */
static __always_inline struct ap_request_event *slot_try(__u32 slot)
{
	struct ap_request_event *r = request_slot(slot);

	if (!r || r->id || __sync_val_compare_and_swap(&r->id, 0, AP_REQ_ID_CLAIMED))
		return NULL;
	return r;
}

static __always_inline void slot_freed(__u64 id)
{
	struct cpu_state *cs = cpu_state();

	if (cs)
		cs->free_slot = id & (AP_MAX_REQUESTS - 1);
}

/* The record of open request id; NULL once it is finished (or id is 0). */
static __always_inline struct ap_request_event *request_lookup(__u64 id)
{
	struct ap_request_event *r = request_slot(id);

	return r && id && r->id == id ? r : NULL;
}

/* The conns entry of a tracked outbound socket (the socks map). */
static __always_inline struct conn *sk_conn(const struct sock *sk)
{
	__u64 skey = (__u64)sk, *key;

	key = bpf_map_lookup_elem(&socks, &skey);
	return key ? bpf_map_lookup_elem(&conns, key) : NULL;
}

/* The conns key of a file descriptor. */
static __always_inline __u64 conn_key(__u32 tgid, __u32 fd)
{
	return (__u64)tgid << 32 | fd;
}

/*
 * n, at most max, in a form the verifier can see: clang may otherwise fold
 * the clamp into arithmetic the verifier cannot bound.
 */
static __always_inline __u64 bounded(__u64 n, __u64 max)
{
	asm volatile("" : "+r"(n));
	if (n > max)
		n = max;
	asm volatile("" : "+r"(n));
	return n;
}

/*
 * A wakeup is an irq_work, a self-IPI that exits to the hypervisor on a VM,
 * dearer than the rest of a handler: a record wakes the reader only if the
 * buffer is half full, a safety net for bursts the timer is too slow for,
 * and the fill is looked at on every 64th record of a CPU only. (Waking at a
 * fill level checked on every record paid for a wakeup per record while the
 * reader waited for a CPU.)
 */
static __always_inline __u64 ringbuf_flags(void)
{
	struct cpu_state *cs = cpu_state();

	if (!cs || ++cs->records % 64)
		return BPF_RB_NO_WAKEUP;
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > EVENTS_SIZE / 2 ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

static __always_inline void stat_inc(enum ap_stat idx)
{
	__u32 key = idx;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);

	if (v)
		*v += 1;
}

static const struct ap_peer_totals peer_totals_zero;

static __always_inline struct ap_peer_totals *peer_totals_get(const struct ap_peer_key *k)
{
	/*
	 * A copy on the stack: k may point into a connection handed to a
	 * global function, memory that 6.1's verifier takes for no map key.
	 */
	struct ap_peer_key key = *k;
	struct ap_peer_totals *t;

	t = bpf_map_lookup_elem(&peer_totals, &key);
	if (t)
		return t;
	bpf_map_update_elem(&peer_totals, &key, &peer_totals_zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&peer_totals, &key);
}

#endif /* AGENTPROF_MAPS_BPF_H */
