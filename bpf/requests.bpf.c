// SPDX-License-Identifier: GPL-2.0-only
/*
 * Request boundaries from the socket syscalls of traced processes.
 *
 * A socket becomes an inbound HTTP connection when a read on it returns bytes
 * that begin with an HTTP method: this needs no accept() hook, so keep-alive
 * connections accepted before agentprof started are picked up too. A request
 * starts at the read that returns its head and is closed off (its record
 * sent) when the next head arrives on the connection, at EOF, at close(), or
 * by userspace at exit; its end is the last response byte written.
 *
 * Sockets the request's threads connect or write to are upstreams
 * (upstream.bpf.h); those speaking PostgreSQL are followed message by
 * message (pgwire.bpf.h).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"
#include "agentprof/pgwire.h"
#include "syscall_nr.bpf.h"

#define EINPROGRESS 115
#define MSG_PEEK 2

/* Set by userspace before load. */
const volatile bool trace_all = false;	/* no -p: every process on the host */
const volatile __u32 self_tgid = 0;	/* never trace agentprof itself */
/* bpf_loop() (5.17+) walks PostgreSQL messages; without it, only tails are read. */
const volatile bool has_bpf_loop = true;
/* libssl is probed (tls.bpf.h): TLS PostgreSQL is read in clear, not by turns. */
const volatile bool tls_uprobes = false;
/*
 * Socket reads and writes come from the sock_recv_length/sock_send_length
 * tracepoints (6.3+) instead of syscall tracepoints: see io_sock().
 */
const volatile bool sock_tps = false;
const volatile bool thread_storage = false;
/* Trace one request in sample_every, picked at random (--sample): see sampled_now(). */
const volatile __u32 sample_every = 1;
const volatile __u32 py_unit_set_bits = PY_UNIT_SET_BITS;	/* python.bpf.h */
const volatile __u64 sample_below = 1ULL << 32;	/* 2^32 / sample_every */
/* PostgreSQL server ports (0 = unused slot). */
const volatile __u16 pg_ports[AP_PG_MAX_PORTS] = { AP_PG_DEFAULT_PORT };

__u64 next_req_seq = 0;
__u64 next_slot = 0;
__u64 next_conn_id = 0;
/*
 * Socket-tracepoint mode found an inbound connection that is not TCP (HTTP
 * over a unix socket, behind a local proxy): its close() is no state change,
 * and userspace attaches ap_close_e (src/record.c). Outbound ones (a
 * PostgreSQL on the same host) do without: a connection opened on the fd of
 * a closed one is told apart by its socket (io_lookup()); where the kernel
 * gave it the same struct sock it passes for the old one, whose PostgreSQL
 * walk takes its start-up for garbage and resynchronises at the first
 * ReadyForQuery (round trips stay exact: test_pg_tls).
 */
__u32 nontcp_inbound = 0;

#include "upstream.bpf.h"
#include "pgwire.bpf.h"

/* Needs conn_key(). */
#include "tls.bpf.h"
#include "conn_state.bpf.h"

static __always_inline bool is_read_op(__u32 op)
{
	return op <= IO_RECVMSG;
}

/* Method tokens of RFC 9110, by their first four bytes. */
static __always_inline bool is_request_start(const char *p)
{
	__u32 w = (__u8)p[0] | (__u8)p[1] << 8 | (__u8)p[2] << 16 | (__u32)(__u8)p[3] << 24;

	switch (w) {
	case 0x20544547: /* "GET " */
	case 0x54534f50: /* "POST" */
	case 0x20545550: /* "PUT " */
	case 0x44414548: /* "HEAD" */
	case 0x454c4544: /* "DELE" */
	case 0x43544150: /* "PATC" */
	case 0x4954504f: /* "OPTI" */
	case 0x4e4e4f43: /* "CONN" */
	case 0x43415254: /* "TRAC" */
		return true;
	}
	return false;
}

/*
 * The iovec array of a vectored op: readv/writev's argument, or a
 * recvmsg/sendmsg header's msg_iov; NULL for any other op.
 */
static __always_inline const struct iovec *io_iovs(const struct io_args *a)
{
	const struct iovec *iov;
	struct user_msghdr *mh;

	switch (a->op) {
	case IO_READV:
	case IO_WRITEV:
		return (const struct iovec *)a->buf;
	case IO_RECVMSG:
	case IO_SENDMSG:
		/* Only msg_iov: the whole header would take stack (docs/verifier.md). */
		mh = (struct user_msghdr *)a->buf;
		if (bpf_probe_read_user(&iov, sizeof(iov), &mh->msg_iov))
			return NULL;
		return iov;
	}
	return NULL;
}

/* The user buffer holding the first bytes a syscall moved, and its size. */
static __always_inline __u64 first_buf(const struct io_args *a, __u64 *len)
{
	const struct iovec *iovp;
	struct iovec iov;

	if (a->op == IO_READ || a->op == IO_WRITE)
		return a->buf;
	iovp = io_iovs(a);
	if (!iovp || bpf_probe_read_user(&iov, sizeof(iov), iovp))
		return 0;
	if (iov.iov_len < *len)
		*len = iov.iov_len;
	return (__u64)iov.iov_base;
}

#define SLOT_PROBES 4

/*
 * A free slot of the requests map, claimed (AP_REQ_ID_CLAIMED), and its index.
 * First the slot this CPU freed last, still in its cache: the request a
 * keep-alive connection's next head closes off frees one just after, so a
 * busy CPU turns over two slots. Else the next few in turn: a request open
 * for long (a streamed answer) keeps its slot, whatever opens after it. With
 * all of those open, the first is closed off.
 */
static __always_inline struct ap_request_event *slot_claim(__u32 *slot, __u64 now)
{
	struct cpu_state *cs = cpu_state();
	struct ap_request_event *r;
	__u64 base, id;
	__u32 i;

	if (cs) {
		*slot = cs->free_slot;
		r = slot_try(*slot);
		if (r)
			return r;
	}
	base = __sync_fetch_and_add(&next_slot, SLOT_PROBES);
#pragma unroll
	for (i = 0; i < SLOT_PROBES; i++) {
		*slot = (base + i) & (AP_MAX_REQUESTS - 1);
		r = slot_try(*slot);
		if (r)
			return r;
	}
	*slot = base & (AP_MAX_REQUESTS - 1);
	r = request_slot(*slot);
	if (!r)
		return NULL;
	stat_inc(AP_STAT_REQ_MAP_FULL);
	id = r->id;
	if (id && id != AP_REQ_ID_CLAIMED)
		request_finish(id, AP_REQ_FLUSHED, now);
	return slot_try(*slot);
}

/*
 * Open a request on inbound connection c, its head the len bytes at buf
 * (check: see that they begin with a method first; NULL if not). rx: bytes
 * the read returned. The record is built in its slot of the requests map.
 */
static __always_inline struct ap_request_event *request_start(struct conn *c, __u64 buf,
							      __u64 len, bool check, __u64 rx,
							      __u64 now)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ap_request_event *r;
	__u32 slot;
	__u64 id;

	r = slot_claim(&slot, now);
	if (!r)
		return NULL;
	len = bounded(len, AP_HEAD_MAX);
	if (bpf_probe_read_user(r->head, len, (const void *)buf))
		goto release;
	if (check && !is_request_start(r->head)) {
		stat_inc(AP_STAT_NON_HTTP);
		goto release;
	}
	r->head_len = len;
	/* A connection's requests are served in the cgroup its first one was. */
	if (!c->cgroup_id)
		c->cgroup_id = current_cgroup_id(NULL);
	r->cgroup_id = c->cgroup_id;
	r->start_ns = now;
	r->first_tx_ns = 0;
	r->last_tx_ns = 0;
	r->end_ns = 0;
	r->cpu_ns = 0;
	r->runq_ns = 0;
	r->offcpu_ns = 0;
	r->rx_bytes = rx;
	r->tx_bytes = 0;
	r->pid = pid_tgid >> 32;
	r->tid = (__u32)pid_tgid;
	r->flags = 0;
	r->resp_len = 0;
	r->nthreads = 0;
	__builtin_memset(r->tids, 0, sizeof(r->tids));
	r->type = AP_EV_REQUEST;
	r->npeers = 0;
	r->peers_dropped = 0;
	r->offcpu_upstream_ns = 0;
	r->offcpu_pg_ns = 0;
	r->offcpu_disk_ns = 0;
	r->offcpu_lock_ns = 0;
	r->minor_faults = 0;
	r->major_faults = 0;
	r->rss_delta_pages = 0;
	r->rss_start_pages = process_rss_pages(NULL);
	r->mapped_bytes = 0;
	r->pg_time_ns = 0;
	r->pg_round_trips = 0;
	r->pg_errors = 0;
	r->pg_rows = 0;
	if (HAVE_TASK_BTF)
		__builtin_memcpy(r->comm, task_me(NULL)->comm, sizeof(r->comm));
	else
		bpf_get_current_comm(r->comm, sizeof(r->comm));
	/* Last: lookups by id see the slot as this request's from here on. */
	id = (__sync_fetch_and_add(&next_req_seq, 1) + 1) << AP_REQ_SLOT_BITS | slot;
	r->id = id;
	c->req_id = id;
	return r;
release:
	r->id = 0;
	return NULL;
}

/* request_open()'s len carries this bit when the head is to be checked for a method. */
#define HEAD_CHECK (1ULL << 63)

/*
 * The head of c's next request was read (prev: its last one). The task
 * that answered prev answers this one, if it still works for prev: a
 * connection's handler task (asyncio streams), not a task made for prev
 * alone (aiohttp, uvicorn), whose context's address a later request's task
 * may have. The unit that made that one, bound to nothing or to prev, is
 * the connection's handler task that makes a task per request (aiohttp).
 */
static __always_inline void py_next_request(struct conn *c, __u32 tgid, __u64 prev, __u64 next)
{
	__u64 req;

	if ((py_unit_req(tgid, c->py_task) & ~PY_UNIT_GUESS) == prev)
		py_unit_set(tgid, c->py_task, next);
	if (!c->py_task_parent)
		return;
	req = py_unit_req(tgid, c->py_task_parent) & ~PY_UNIT_GUESS;
	if (!req || req == prev)
		py_unit_set(tgid, c->py_task_parent, next);
}

/*
 * A head on inbound connection c, sampled, len bytes at buf (| HEAD_CHECK:
 * see that it begins with a method first) of the rx the read returned:
 * close off the connection's last request and open the next, the running
 * thread working for it. A global function, verified once
 * (docs/verifier.md); it finds the running thread's entry and task itself.
 */
__noinline int request_open(struct conn *c, __u64 buf, __u64 len, __u64 rx, __u64 now)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), prev;
	struct ap_request_event *r;
	struct thread *t;

	if (!c)
		return 0;
	t = thread_current();
	/*
	 * The thread still works for nothing since answering the connection's
	 * untraced request: what it ran since (logging, clean-up) is that one's.
	 */
	if (c->unsampled && t && !t->req_id)
		thread_unsampled_io(t, NULL, now);
	/* The connection's handler task answered a request not traced. */
	prev = c->unsampled ? PY_UNIT_UNSAMPLED : 0;
	c->unsampled = 0;
	prev = c->req_id ?: prev;
	r = request_start(c, buf, len & ~HEAD_CHECK, len & HEAD_CHECK, rx, now);
	if (!r)
		return 0;
	/*
	 * The thread still works for the connection's last request: what it
	 * ran since answering it (logging, clean-up) is that request's, as the
	 * brief's model has it, and not the next one's.
	 */
	if (prev && t && t->req_id == prev)
		thread_settle_now(t, NULL, prev, now);
	t = thread_bind_to(t, NULL, (__u32)pid_tgid, pid_tgid >> 32, c->req_id, r, true, now);
	thread_resume_note(t, c->req_id);
	/* A connection's handler task answers its next request too. */
	if (c->py_task && prev && t && t->py == PY_FOUND)
		py_next_request(c, pid_tgid >> 32, prev, c->req_id);
	if (prev && prev != PY_UNIT_UNSAMPLED)
		request_finish(prev, 0, now);
	return 1;
}

/*
 * One socket or file I/O as the handlers see it: the syscall's arguments,
 * and the map entries of its fd and thread, looked up once and handed down
 * (a lookup is a good part of a handler's cost).
 */
struct io {
	struct io_args a;
	__u64 pid_tgid;
	__u64 key;		/* conn_key() of a.fd */
	__u64 now;
	struct task_struct *me;	/* socket-tracepoint mode: the running task, else NULL */
	struct sock *sk;	/* socket-tracepoint mode: the socket, else NULL */
	struct conn *c;		/* the fd's entry, NULL if none */
	struct thread *t;	/* the calling thread's entry, NULL if none */
	struct ap_request_event *r;	/* the request of an inbound c, if looked up */
	bool stored;		/* c is in sk's storage (inbound_conns), not in conns */
};

/*
 * An outbound TCP connection's entry whose struct sock now belongs to a
 * socket with another peer. A half-closed connection keeps its fd's entry
 * past its socket's end (conn_state.bpf.h, outbound_closed()), and the
 * kernel often hands the freed struct sock to the next socket, accepted on
 * the same fd: without this, that inbound connection passed for the old
 * upstream, and every request on it went unseen (a node + pg server whose
 * client half-closes, test_node_pg).
 */
static __always_inline bool sk_other_peer(const struct conn *c, const struct sock *sk)
{
	if (c->kind != AP_CONN_OUTBOUND ||
	    (c->peer.family != AF_INET && c->peer.family != AF_INET6))
		return false;
	return bpf_ntohs(sk->__sk_common.skc_dport) != c->peer.port;
}

static __always_inline void io_lookup(struct io *io)
{
	io->key = conn_key(io->pid_tgid >> 32, io->a.fd);
	if (io->sk) {
		io->c = bpf_sk_storage_get(&inbound_conns, io->sk, NULL, 0);
		io->stored = io->c != NULL;
	}
	if (!io->c) {
		io->c = bpf_map_lookup_elem(&conns, &io->key);
		/* The fd names another socket: no close() was seen (conn_state.bpf.h). */
		if (io->c && io->sk && io->c->sk &&
		    (io->c->sk != (__u64)io->sk || sk_other_peer(io->c, io->sk))) {
			conn_forget(io->c, io->key, io->now);
			io->c = NULL;
		}
	}
	if (thread_storage && io->me)
		io->t = bpf_task_storage_get(&thread_store, io->me, NULL, 0);
	else
		io->t = thread_current();
	if (io->t && !py_none(io->t))
		py_sync(io->t, io->now);
}

static __always_inline bool sk_is_unix(const struct sock *sk)
{
	return sk && sk->__sk_common.skc_family == AF_UNIX;
}

/* A TCP socket: its inbound connection is kept in its storage. */
static __always_inline bool sk_stores_conn(const struct sock *sk)
{
	return sk && (sk->__sk_common.skc_family == AF_INET ||
		      sk->__sk_common.skc_family == AF_INET6) &&
	       sk->sk_protocol == IPPROTO_TCP;
}

/*
 * A new inbound connection: the socket of a read that returned the start of
 * a request head. NULL if it cannot be tracked.
 */
static __always_inline struct conn *inbound_new(struct io *io)
{
	struct conn *c;

	/* Entries start zeroed, not from a struct conn on the stack (docs/verifier.md). */
	if (sk_stores_conn(io->sk)) {
		c = bpf_sk_storage_get(&inbound_conns, io->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		io->stored = c != NULL;
	} else {
		/* Any read of the host comes here in syscall mode (no -p). */
		if (!io->sk && !fd_sock(io->a.fd))
			return NULL;
		if (io->sk && !nontcp_inbound)
			nontcp_inbound = 1;
		c = NULL;
		if (!bpf_map_update_elem(&conns, &io->key, &conn_zero, BPF_NOEXIST))
			c = bpf_map_lookup_elem(&conns, &io->key);
	}
	if (!c) {
		stat_inc(AP_STAT_CONN_MAP_FULL);
		return NULL;
	}
	c->kind = AP_CONN_INBOUND;
	c->sk = (__u64)io->sk;
	return c;
}

static __always_inline void inbound_forget(struct io *io)
{
	if (io->stored)
		bpf_sk_storage_delete(&inbound_conns, io->sk);
	else
		bpf_map_delete_elem(&conns, &io->key);
}

/*
 * A write on an inbound connection whose request is not sampled: its
 * response, after which the connection's next read is its next head. Reads
 * are left to read_exit().
 */
/* An event loop's unit wrote c's response: c's handler task, for its next head. */
static __always_inline void py_response_writer(struct io *io, struct conn *c)
{
	struct thread *t = io->t;

	if (!t || !t->py_loop || t->py_unit <= PY_BETWEEN || c->py_task == t->py_unit)
		return;
	c->py_task = t->py_unit;
	c->py_task_parent = py_unit_parent_of((__u32)(io->pid_tgid >> 32), c->py_task);
}

static __always_inline bool unsampled_io(struct io *io)
{
	if (is_read_op(io->a.op))
		return true;
	io->c->unsampled_tx = 1;
	py_response_writer(io, io->c);
	/* An inbound write: the loop ran what it read (see io_begin()). */
	if (io->t)
		io->t->resume_req = 0;
	thread_unsampled_io(io->t, io->me, io->now);
	return false;
}

/*
 * Before the bytes move: classify an fd a request thread first touches, note
 * what the thread will wait for, and bind it to the request of an inbound
 * connection. False when the fd is nothing to agentprof. sock: called at
 * the end of the I/O (io_sock()), where read_exit() does the binding and
 * only sockets come.
 */
static __always_inline bool io_begin(struct io *io, bool sock)
{
	__u32 tid = (__u32)io->pid_tgid, op = io->a.op;
	struct thread *t = io->t;
	struct ap_request_event *r;
	struct conn *c = io->c;
	struct file *f;

	/*
	 * Which socket a libssl call uses, learnt from its first I/O. in_ssl
	 * is set by every call that begins while the thread has an entry; a
	 * thread doing socket I/O of its own has one from its first I/O on,
	 * so for it the flag saves a lookup per I/O.
	 */
	if (tls_uprobes && !(t && t->sock_io && !t->in_ssl))
		ssl_note_fd(tid, io->a.fd);
	if (!c) {
		/*
		 * Only a thread working for a request (or an event loop that
		 * read a head since its last write: its task may be bound to
		 * nothing yet) makes an unknown fd anything, or a write on a
		 * unix socket: its first bytes may be
		 * a PostgreSQL start-up (a pool connecting at start), and
		 * socket-tracepoint mode sees no connect().
		 */
		if (!is_read_op(op) &&
		    ((t && (t->req_id || t->resume_req)) || (sock && sk_is_unix(io->sk)))) {
			if (conn_classify(io->key, io->a.fd))
				c = bpf_map_lookup_elem(&conns, &io->key);
		} else if (t && t->req_id && !sock) {
			/* Sockets read are left to the head check in read_exit(). */
			f = fd_file(io->a.fd);
			if (!file_sock(f)) {
				other_new(io->key, f);
				c = bpf_map_lookup_elem(&conns, &io->key);
			}
		}
		io->c = c;
		if (!c)
			return is_read_op(op);
	}
	if (c->kind == AP_CONN_OTHER) {
		if (!c->disk || !t || !t->req_id)
			return false;
		/* Blocked in file I/O: disk time. */
		t->in_disk = 1;
		return true;
	}
	if (c->kind == AP_CONN_OUTBOUND) {
		/* Once a query or call is out, what the thread waits for is its reply. */
		if (t)
			t->wait_kind = c->pg ? WAIT_PG : WAIT_UPSTREAM;
		return true;
	}
	if (sample_every > 1 && c->unsampled)
		return unsampled_io(io);
	if (!c->req_id)
		return true;
	/*
	 * What a thread blocks for is what its last socket I/O was with: an
	 * upstream or PostgreSQL reply (also when it waits in poll or epoll),
	 * until it turns back to its client.
	 */
	if (t)
		t->wait_kind = WAIT_OTHER;
	if (sock && is_read_op(op))
		return true;
	/* The response of whichever request: the loop ran what it read. */
	if (t && !is_read_op(op))
		t->resume_req = 0;
	r = request_lookup(c->req_id);
	io->r = r;
	/*
	 * Reading a connection whose response has begun: waiting for the next
	 * request, which is no request's time (parked until the read returns,
	 * io_exit()). The binding stays, so an event loop that finds
	 * nothing (EAGAIN, EOF) goes on working for it.
	 */
	if (r && r->first_tx_ns && is_read_op(op)) {
		if (t)
			t->parked = 1;
	} else if (r) {
		if (thread_bind(c->req_id, r, io->now) && !t)
			io->t = thread_current();
	}
	return true;
}

static __always_inline int io_enter(__u32 op, __u32 fd, __u64 buf)
{
	struct io io = { .a = { .buf = buf, .fd = fd, .op = op } };
	__u32 tid;

	io.pid_tgid = bpf_get_current_pid_tgid();
	if (!traced(io.pid_tgid >> 32))
		return 0;
	io.now = bpf_ktime_get_ns();
	io_lookup(&io);
	if (!io_begin(&io, false))
		return 0;
	tid = (__u32)io.pid_tgid;
	bpf_map_update_elem(&io_args, &tid, &io.a, BPF_ANY);
	return 0;
}

static __always_inline void outbound_read(struct io *io, long ret)
{
	struct conn *c = io->c;
	__u64 buf, len = ret;
	bool answered = false;

	if (c->pg) {
		buf = first_buf(&io->a, &len);
		if (buf)
			answered = pg_read(c, io->key, buf, len, io->now);
	}
	upstream_read(c, io->now, ret, answered);
}

/*
 * A vectored write's messages may be spread over its iovecs: node's pg
 * corks Parse, Bind, Describe, Execute and Sync into one writev() of five
 * iovecs, one message each, and a walk of the first alone never sees the
 * Sync that opens the round trip. So every iovec up to the bytes the
 * syscall moved goes to pg_write() as a write of its own: the walk carries
 * a message, a cut header and the open capture across writes already.
 * Bounded: past PG_MAX_IOVS the client direction is lost, to resynchronise
 * at the next write that starts a batch.
 */
#define PG_MAX_IOVS 16

static __always_inline void pg_write_iovs(struct io *io, struct conn *c, __u64 buf, __u64 len,
					  long ret)
{
	__u64 left = ret - len, n;
	const struct iovec *iov;
	struct pgconn *pc;
	struct iovec v;
	__u32 i;

	pg_write(c, io->key, buf, len, io->now);
	if (!left)
		return;
	iov = io_iovs(&io->a);
	for (i = 1; iov && i < PG_MAX_IOVS && left; i++) {
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i]))
			break;
		n = v.iov_len < left ? v.iov_len : left;
		left -= n;
		if (n)
			pg_write(c, io->key, (__u64)v.iov_base, n | PG_MORE, io->now);
	}
	pc = left ? pgconn_get(io->key, false) : NULL;
	if (pc)
		pc->cli.lost = 1;
}

static __always_inline void outbound_write(struct io *io, long ret)
{
	struct conn *c = io->c;
	__u64 buf, len = ret;

	buf = first_buf(&io->a, &len);
	if (c->fresh && buf) {
		/*
		 * The first bytes of a connection seen from its connect() decide,
		 * whatever the port: a start-up makes it PostgreSQL, anything
		 * else is not (a client that fails to speak it opens no round
		 * trips).
		 */
		c->pg = pg_detect((const char *)buf, len);
		c->peer.kind = c->pg ? AP_PEER_PG : AP_PEER_UPSTREAM;
	}
	c->fresh = 0;
	if (c->pg && buf)
		pg_write_iovs(io, c, buf, len, ret);
	upstream_write(c, io->now, ret);
}

/*
 * Whether the request whose head was read at now is traced: true with
 * probability 1/sample_every. The high half of now times a 64-bit odd
 * constant (Fibonacci hashing) depends on every bit of now, whose low bits
 * jitter by far more than a nanosecond from one head to the next. It
 * replaced bpf_get_prandom_u32() and a division, 8% of an untraced head's
 * ap_sock_recv (perf).
 */
static __always_inline bool sampled_now(__u64 now)
{
	return ((now * 0x9E3779B97F4A7C15ULL) >> 32) < sample_below;
}

/*
 * A head on inbound connection c whose request is not sampled: close off the
 * connection's last request, as a sampled head does, and leave the thread
 * working for nothing.
 */
static __always_inline void request_skip(struct io *io, struct conn *c)
{
	__u64 prev = c->req_id;

	if (prev && io->t && io->t->req_id == prev)
		thread_settle_now(io->t, io->me, prev, io->now);
	thread_unsampled_io(io->t, io->me, io->now);
	thread_resume_note(io->t, RESUME_UNSAMPLED);
	/* Its handler task answers a request not traced: no head of another's. */
	if (c->py_task && io->t && io->t->py == PY_FOUND)
		py_next_request(c, io->pid_tgid >> 32, prev ?: (c->unsampled ? PY_UNIT_UNSAMPLED : 0),
				PY_UNIT_UNSAMPLED);
	if (prev)
		request_finish(prev, 0, io->now);
	c->req_id = 0;
	c->unsampled = 1;
	c->unsampled_tx = 0;
	stat_inc(AP_STAT_UNSAMPLED);
}

static __always_inline void read_exit(struct io *io, long ret)
{
	__u32 tgid = io->pid_tgid >> 32;
	struct ap_request_event *r;
	struct conn *c = io->c;
	__u64 buf, len = ret;
	char head[4] = {};
	bool known, sampled;

	if (c && c->kind != AP_CONN_INBOUND) {
		if (c->kind == AP_CONN_OUTBOUND && ret > 0)
			outbound_read(io, ret);
		else if (c->kind == AP_CONN_OUTBOUND && c->pg)
			pg_conn_end(c, io->key, tgid, io->now);
		return;
	}
	if (ret == 0) {
		/* EOF: the peer is done with this connection. */
		if (c && c->req_id)
			request_finish(c->req_id, AP_REQ_CONN_CLOSED, io->now);
		if (c)
			inbound_forget(io);
		return;
	}
	if (io->t)
		io->t->resp_fd = 0;
	if (sample_every > 1 && c && c->unsampled && !c->unsampled_tx) {
		/* More of a request not sampled. */
		thread_unsampled_io(io->t, io->me, io->now);
		return;
	}
	r = c ? request_lookup(c->req_id) : NULL;
	if (r && !r->first_tx_ns) {
		/* More of the request: body, or the rest of a split head. */
		__sync_fetch_and_add(&r->rx_bytes, ret);
		thread_bind(c->req_id, r, io->now);
		return;
	}
	buf = first_buf(&io->a, &len);
	if (!buf || len < 4)
		return;
	/* A known connection's next head is read into its record at once. */
	known = c != NULL;
	sampled = sample_every <= 1 || sampled_now(io->now);
	if (!known || !sampled) {
		/* Any socket read of the host may come here (no -p): 4 bytes first. */
		if (bpf_probe_read_user(head, sizeof(head), (const void *)buf) ||
		    !is_request_start(head)) {
			if (known)
				stat_inc(AP_STAT_NON_HTTP);
			return;
		}
	}
	if (!known) {
		c = inbound_new(io);
		if (!c)
			return;
	}
	if (!sampled) {
		request_skip(io, c);
		return;
	}
	request_open(c, buf, len | (known ? HEAD_CHECK : 0), ret, io->now);
}

static __always_inline void write_exit(struct io *io, long ret)
{
	struct ap_request_event *r;
	struct conn *c = io->c;
	__u64 buf, len = ret;

	if (!c)
		return;
	if (c->kind == AP_CONN_OUTBOUND) {
		outbound_write(io, ret);
		return;
	}
	if (c->kind != AP_CONN_INBOUND || !c->req_id)
		return;
	r = io->r ?: request_lookup(c->req_id);
	if (!r)
		return;
	if (!r->first_tx_ns) {
		r->first_tx_ns = io->now;
		buf = first_buf(&io->a, &len);
		len = bounded(len, AP_RESP_MAX);
		if (buf && !bpf_probe_read_user(r->resp, len, (const void *)buf))
			r->resp_len = len;
	}
	r->last_tx_ns = io->now;
	if (io->t)
		io->t->resp_fd = io->a.fd + 1;
	py_response_writer(io, c);
	__sync_fetch_and_add(&r->tx_bytes, ret);
	/* The request's memory is what the process holds when it answers. */
	r->rss_delta_pages = process_rss_pages(io->me) - r->rss_start_pages;
}

/*
 * connect() of a traced process: an upstream from the start. The handshake
 * time is kept on the connection until a request writes to it; a
 * non-blocking connect finishes in the inet_sock_set_state tracepoint.
 */
static __always_inline int connect_enter(__u32 fd, __u64 uaddr)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct io_args a = { .buf = uaddr, .fd = fd, .op = IO_CONNECT };
	struct ap_peer_key peer = {};
	__u64 key = conn_key(tgid, fd);
	struct conn *c;

	if (!traced(tgid) || peer_from_sockaddr(&peer, (const void *)uaddr))
		return 0;
	c = outbound_new(key, &peer, fd_sock(fd), true);
	if (!c)
		return 0;
	a.start_ns = bpf_ktime_get_ns();
	c->mark_ns = a.start_ns;
	bpf_map_update_elem(&io_args, &tid, &a, BPF_ANY);
	return 0;
}

static __always_inline void connect_exit(const struct io_args *a, __u64 pid_tgid, long ret)
{
	__u64 key = conn_key(pid_tgid >> 32, a->fd);
	struct conn *c = bpf_map_lookup_elem(&conns, &key);

	if (!c || c->kind != AP_CONN_OUTBOUND)
		return;
	if (ret == 0)
		c->connect_ns = bpf_ktime_get_ns() - a->start_ns;
	else if (ret != -EINPROGRESS)
		c->connect_ns = 0;
}

/*
 * A read that began before agentprof attached has no saved arguments: the
 * thread of a keep-alive connection blocked waiting for its next request.
 * The syscall's arguments are still in the task's saved user registers
 * (bpf_task_pt_regs, 5.15+), so the request it returns is not lost.
 */
static __always_inline bool io_args_from_regs(struct io_args *a, __u32 op, long ret)
{
	struct pt_regs *regs;

	if (ret <= 0 || !is_read_op(op) || !traced(bpf_get_current_pid_tgid() >> 32))
		return false;
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return false;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	a->fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	a->buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
	a->op = op;
	return true;
}

/* After the bytes moved (ret: what the syscall returns). */
static __always_inline void io_end(struct io *io, long ret)
{
	if (io->a.op == IO_CONNECT) {
		connect_exit(&io->a, io->pid_tgid, ret);
		return;
	}
	if (ret < 0)
		return;
	if (is_read_op(io->a.op))
		read_exit(io, ret);
	else if (ret > 0)
		write_exit(io, ret);
}

static __always_inline int io_exit(__u32 op, long ret)
{
	struct io io = {};
	struct io_args *ap;
	__u32 tid;

	io.pid_tgid = bpf_get_current_pid_tgid();
	tid = (__u32)io.pid_tgid;
	ap = bpf_map_lookup_elem(&io_args, &tid);
	if (ap) {
		io.a = *ap;
		bpf_map_delete_elem(&io_args, &tid);
	} else if (!io_args_from_regs(&io.a, op, ret)) {
		return 0;
	}
	io.now = bpf_ktime_get_ns();
	io_lookup(&io);
	if (io.t) {
		io.t->parked = 0;
		io.t->in_disk = 0;
	}
	io_end(&io, ret);
	return 0;
}

/* The I/O op of a 64-bit syscall that moved bytes on a socket. */
static __always_inline bool io_op_of(long nr, bool send, __u32 *op)
{
	switch (nr) {
	case NR_read:
	case NR_recvfrom:
		*op = IO_READ;
		break;
	case NR_readv:
		*op = IO_READV;
		break;
	case NR_recvmsg:
		*op = IO_RECVMSG;
		break;
	case NR_write:
	case NR_sendto:
		*op = IO_WRITE;
		break;
	case NR_writev:
		*op = IO_WRITEV;
		break;
	case NR_sendmsg:
		*op = IO_SENDMSG;
		break;
	case NR_sendfile:
		*op = IO_SENDFILE;
		break;
	default:
		return false;
	}
	return is_read_op(*op) != send;
}

/*
 * Socket-tracepoint mode. sock_recv_length and sock_send_length fire in
 * sock_recvmsg()/sock_sendmsg() once the bytes have moved, only for sockets:
 * no syscall tracepoint runs for the reads and writes of files, pipes and
 * eventfds of every process on the host, which costs more than agentprof's
 * own work (bench/README.md). The fd and buffer are the syscall's
 * arguments, still in the task's saved user registers; what a thread blocks
 * in is read from the same registers at switch-out (sched.bpf.c).
 */
static __always_inline int io_sock(struct sock *sk, int ret, int flags, bool send)
{
	struct pt_regs *regs;
	struct io io = {};

	io.pid_tgid = bpf_get_current_pid_tgid();
	if (!traced(io.pid_tgid >> 32) || (!send && (flags & MSG_PEEK)))
		return 0;
	io.me = bpf_get_current_task_btf();
	regs = (struct pt_regs *)bpf_task_pt_regs(io.me);
	if (!io_op_of(SYSCALL_NR(regs), send, &io.a.op))
		return 0;
	io.a.fd = SYSCALL_ARG1(regs);
	io.a.buf = SYSCALL_ARG2(regs);
	io.now = bpf_ktime_get_ns();
	io.sk = sk;
	io_lookup(&io);
	if (io_begin(&io, true))
		io_end(&io, ret);
	return 0;
}

SEC("?tp_btf/sock_recv_length")
int BPF_PROG(ap_sock_recv, struct sock *sk, int ret, int flags)
{
	return io_sock(sk, ret, flags, false);
}

SEC("?tp_btf/sock_send_length")
int BPF_PROG(ap_sock_send, struct sock *sk, int ret, int flags)
{
	return io_sock(sk, ret, flags, true);
}

#define IO_PROGS(name, op, fd_arg, buf_arg)                                                        \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                \
	int ap_##name##_e(struct trace_event_raw_sys_enter *ctx)                                   \
	{                                                                                          \
		return io_enter(op, ctx->args[fd_arg], ctx->args[buf_arg]);                      \
	}                                                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                 \
	int ap_##name##_x(struct trace_event_raw_sys_exit *ctx)                                    \
	{                                                                                          \
		return io_exit(op, ctx->ret);                                                      \
	}

IO_PROGS(read, IO_READ, 0, 1)
IO_PROGS(recvfrom, IO_READ, 0, 1)
IO_PROGS(readv, IO_READV, 0, 1)
IO_PROGS(recvmsg, IO_RECVMSG, 0, 1)
IO_PROGS(write, IO_WRITE, 0, 1)
IO_PROGS(sendto, IO_WRITE, 0, 1)
IO_PROGS(writev, IO_WRITEV, 0, 1)
IO_PROGS(sendmsg, IO_SENDMSG, 0, 1)
/* sendfile(out_fd, in_fd, ...): no user buffer, args[1] is only carried along. */
IO_PROGS(sendfile64, IO_SENDFILE, 0, 1)

SEC("tracepoint/syscalls/sys_enter_connect")
int ap_connect_e(struct trace_event_raw_sys_enter *ctx)
{
	return connect_enter(ctx->args[0], ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int ap_connect_x(struct trace_event_raw_sys_exit *ctx)
{
	return io_exit(IO_CONNECT, ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_close")
int ap_close_e(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 key = conn_key(tgid, ctx->args[0]);
	struct conn *c;

	if (!traced(tgid))
		return 0;
	c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		conn_forget(c, key, bpf_ktime_get_ns());
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ap_sock_state, struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, true);
}

SEC("?raw_tp/inet_sock_set_state")
int BPF_PROG(ap_raw_state, struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, false);
}

char LICENSE[] SEC("license") = "GPL";
