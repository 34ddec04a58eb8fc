/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Outbound sockets (the LLM API, other services, PostgreSQL): which request
 * uses them, and what each request waits for. An outbound socket becomes
 * bound to a request when a thread working for that request writes to it;
 * a reply read from it binds the reading thread to that request. A call is
 * one turn: writes, then reads; wait_ns sums, per call, last byte sent ->
 * last reply byte read, and ttfb_ns last byte sent -> first reply byte.
 */
#ifndef AGENTPROF_UPSTREAM_BPF_H
#define AGENTPROF_UPSTREAM_BPF_H

#include "maps.bpf.h"
#include "attribution.bpf.h"
#include "sock.bpf.h"

/* Defined in requests.bpf.c, the one object that includes this header. */
static __always_inline bool is_pg_port(__u16 port)
{
	int i;

	for (i = 0; i < AP_PG_MAX_PORTS; i++) {
		if (pg_ports[i] && pg_ports[i] == port)
			return true;
	}
	return false;
}

static __always_inline bool peer_eq(const struct ap_peer_key *k, const struct ap_peer *p)
{
	const __u64 *a = (const __u64 *)k->addr, *b = (const __u64 *)p->addr;

	return k->family == p->family && k->kind == p->kind && k->port == p->port && a[0] == b[0] &&
	       a[1] == b[1];
}

/* The peer a connect() names, from its user sockaddr. */
static __always_inline int peer_from_sockaddr(struct ap_peer_key *k, const void *uaddr)
{
	struct sockaddr_in6 sa6;
	struct sockaddr_in sa;
	__u16 family = 0;

	if (bpf_probe_read_user(&family, sizeof(family), uaddr))
		return -1;
	k->family = family;
	if (family == AF_INET) {
		if (bpf_probe_read_user(&sa, sizeof(sa), uaddr))
			return -1;
		k->port = bpf_ntohs(sa.sin_port);
		__builtin_memcpy(k->addr, &sa.sin_addr, 4);
		return 0;
	}
	if (family == AF_INET6) {
		if (bpf_probe_read_user(&sa6, sizeof(sa6), uaddr))
			return -1;
		k->port = bpf_ntohs(sa6.sin6_port);
		__builtin_memcpy(k->addr, &sa6.sin6_addr, 16);
		return 0;
	}
	if (family == AF_UNIX) {
		/* sun_path prefix: enough to tell /var/run/postgresql from others. */
		bpf_probe_read_user(k->addr, sizeof(k->addr), uaddr + 2);
		return 0;
	}
	return -1;
}

/*
 * The path a connected unix socket's peer is bound to, its first bytes as
 * from peer_from_sockaddr(): the accepted end carries the listener's address.
 * False when the peer has no address: one end of a socketpair().
 */
static __always_inline bool unix_peer_path(struct ap_peer_key *k, struct sock *sk)
{
	struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
	struct unix_address *ua;

	if (!peer)
		return false;
	ua = BPF_CORE_READ((struct unix_sock *)peer, addr);
	if (!ua)
		return false;
	bpf_core_read(k->addr, sizeof(k->addr), &ua->name[0].sun_path);
	return true;
}

/* The peer of a connected socket; local_port is for telling direction. */
static __always_inline int peer_from_sk(struct ap_peer_key *k, struct sock *sk, __u16 *local_port)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	k->family = family;
	*local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	/*
	 * A socketpair() is a process talking to itself: an event loop's
	 * self-pipe, written by the pool thread that finished a job for it.
	 */
	if (family == AF_UNIX)
		return unix_peer_path(k, sk) ? 0 : -1;
	if (family != AF_INET && family != AF_INET6)
		return -1;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return -1;
	k->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	/* Not BPF_CORE_READ_INTO: it would copy sizeof(*k->addr), one byte. */
	if (family == AF_INET)
		bpf_core_read(k->addr, 4, &sk->__sk_common.skc_daddr);
	else
		bpf_core_read(k->addr, 16, &sk->__sk_common.skc_v6_daddr);
	return 0;
}

static __always_inline struct conn *outbound_new(__u64 key, const struct ap_peer_key *peer,
						 struct sock *sk, bool fresh)
{
	__u64 skey = (__u64)sk;
	struct conn *c;

	/* Zeroed, then filled in: no struct conn on the stack (docs/verifier.md). */
	if (bpf_map_update_elem(&conns, &key, &conn_zero, BPF_ANY))
		goto full;
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c)
		goto full;
	c->kind = AP_CONN_OUTBOUND;
	c->sk = skey;
	c->fresh = fresh;
	c->peer = *peer;
	c->pg = is_pg_port(peer->port) && peer->family != AF_UNIX;
	c->peer.kind = c->pg ? AP_PEER_PG : AP_PEER_UPSTREAM;
	c->conn_id = __sync_fetch_and_add(&next_conn_id, 1) + 1;
	if (sk)
		bpf_map_update_elem(&socks, &skey, &key, BPF_ANY);
	return c;
full:
	stat_inc(AP_STAT_CONN_MAP_FULL);
	return NULL;
}

/* A file that is not a socket: remembered, with whether it is disk I/O. */
static __always_inline void other_new(__u64 key, struct file *f)
{
	struct conn other = { .kind = AP_CONN_OTHER };
	umode_t mode = file_mode(f) & S_IFMT;

	other.disk = mode == S_IFREG || mode == S_IFBLK;
	bpf_map_update_elem(&conns, &key, &other, BPF_NOEXIST);
}

/*
 * A socket seen first when a request thread writes to it (a pooled
 * connection opened before agentprof started). Accepted sockets have the
 * server's well-known local port and an ephemeral peer port; connected ones
 * the reverse: only the latter are upstreams. A configured PostgreSQL port
 * is an upstream whatever the numbers say. 1 when the caller is to use
 * its new conns entry: an upstream, or a file that is not a socket. A
 * global function: its entries on the stack are more than the socket
 * handlers' frames can hold (docs/verifier.md).
 */
__noinline int conn_classify(__u64 key, __u32 fd)
{
	struct conn other = { .kind = AP_CONN_OTHER };
	struct ap_peer_key peer = {};
	struct file *f = fd_file(fd);
	struct sock *sk = file_sock(f);
	__u16 local_port = 0;

	if (!sk) {
		other_new(key, f);
		return 1;
	}
	other.sk = (__u64)sk;
	if (peer_from_sk(&peer, sk, &local_port) ||
	    (peer.family != AF_UNIX && local_port <= peer.port && !is_pg_port(peer.port))) {
		bpf_map_update_elem(&conns, &key, &other, BPF_NOEXIST);
		return 0;
	}
	/*
	 * No port says PostgreSQL on a unix socket: its first bytes do, when
	 * they are a start-up (a connection opened since agentprof started).
	 */
	return outbound_new(key, &peer, sk, peer.family == AF_UNIX) != NULL;
}

/* The entry for c's peer in request r, found or added. */
static __always_inline struct ap_peer *peer_slot(struct ap_request_event *r, struct conn *c)
{
	struct ap_peer *p;
	__u32 i, n;

	if (c->slot < AP_MAX_PEERS && c->slot < r->npeers && peer_eq(&c->peer, &r->peers[c->slot]))
		return &r->peers[c->slot];
	n = r->npeers;
	/* Keep clang from re-reading n after the bounds check below. */
	asm volatile("" : "+r"(n));
	for (i = 0; i < AP_MAX_PEERS; i++) {
		if (i >= n)
			break;
		if (peer_eq(&c->peer, &r->peers[i])) {
			c->slot = i;
			return &r->peers[i];
		}
	}
	if (n >= AP_MAX_PEERS) {
		r->peers_dropped++;
		return NULL;
	}
	asm volatile("" : "+r"(n));
	if (n >= AP_MAX_PEERS)
		return NULL;
	p = &r->peers[n];
	__builtin_memset(p, 0, sizeof(*p));
	p->family = c->peer.family;
	p->kind = c->peer.kind;
	p->port = c->peer.port;
	__builtin_memcpy(p->addr, c->peer.addr, sizeof(p->addr));
	r->npeers = n + 1;
	c->slot = n;
	return p;
}

/*
 * The request an outbound write is a call for; the CPU that led to it is
 * that request's. Usually the thread's own. But an event loop reads every
 * ready socket before it runs the code they wake: R's PostgreSQL reply (or
 * R's head), then X's head, binds the thread to X, and R's code (say a
 * password hash, then its next query) runs first. So the thread's first
 * outbound write after such a read is R's (thread_resume_note()), and its
 * binding stays X for X's code. Where R's code makes no write first (it
 * hands over to another task, as asyncpg's pool does to release a
 * connection, or waits on a lock) the guess takes the next task's call for
 * R. A block clears the note: a loop blocks only once all it read has run.
 */
static __always_inline __u64 call_owner(struct thread *t, __u32 tid, __u64 now)
{
	__u64 resume = t->resume_req;

	t->resume_req = 0;
	/*
	 * A Python thread: the unit that makes the call says whose it is; a
	 * unit bound to nothing (not even a guess) falls back on the event-loop
	 * rule's first head read since the loop's last write or block.
	 */
	if (t->py == PY_FOUND) {
		if (t->req_id || t->py_known)
			return t->req_id;
		return resume && resume != RESUME_UNSAMPLED && request_lookup(resume) ? resume : 0;
	}
	if (sample_every > 1 && resume == RESUME_UNSAMPLED) {
		/* The call of a request not sampled: nobody's, and so its CPU. */
		thread_drop_pending(t, NULL, now);
		return 0;
	}
	if (resume && resume != t->req_id && request_lookup(resume)) {
		thread_settle_now(t, NULL, resume, now);
		return resume;
	}
	if (t->req_id)
		thread_bind_to(t, NULL, tid, t->tgid, t->req_id, NULL, true, now);
	return t->req_id;
}

/*
 * The running thread wrote ret bytes to outbound connection c. A global
 * function, verified once (docs/verifier.md).
 */
__noinline int upstream_write(struct conn *c, __u64 now, __u64 ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct thread *t = thread_current();
	struct ap_request_event *r;
	struct ap_peer *p;
	__u64 req_id = 0;

	if (!c)
		return 0;
	if (t) {
		t->wait_kind = c->pg ? WAIT_PG : WAIT_UPSTREAM;
		req_id = call_owner(t, tid, now);
	}
	if (req_id && c->req_id != req_id) {
		c->req_id = req_id;
		c->phase = CALL_IDLE;
		c->slot = AP_MAX_PEERS;
	} else if (!req_id && sample_every > 1) {
		/*
		 * Sampling: a call made working for nothing is a request's not
		 * sampled, not the one that used the connection last.
		 */
		c->req_id = 0;
	}
	r = bound_request(&c->req_id);
	p = r ? peer_slot(r, c) : NULL;
	if (p) {
		if (c->phase != CALL_SENDING)
			p->calls++;
		p->tx_bytes += ret;
		if (c->connect_ns) {
			/* The request that writes first opened the connection. */
			p->connect_ns += c->connect_ns;
			p->connects++;
			c->connect_ns = 0;
		}
	}
	c->phase = CALL_SENDING;
	c->mark_ns = now;
	return 0;
}

/*
 * The running thread read ret bytes from outbound connection c; answered:
 * they end the connection's last open PostgreSQL round trip. A global
 * function, as upstream_write().
 */
__noinline int upstream_read(struct conn *c, __u64 now, __u64 ret, __u64 answered)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
	struct thread *t = thread_current();
	struct ap_peer_totals *tot;
	struct ap_request_event *r;
	struct tcp_sock *tp;
	struct ap_peer *p;
	__u32 srtt;

	if (!c)
		return 0;
	r = bound_request(&c->req_id);
	if (r && t && t->py == PY_FOUND) {
		py_take(t, c->req_id, now);
	} else if (r) {
		t = thread_bind_to(t, NULL, tid, tgid, c->req_id, r, true, now);
		if (answered)
			thread_resume_note(t, c->req_id);
	} else if (sample_every > 1) {
		/* The reply to a call of a request not sampled (upstream_write()). */
		thread_unsampled_io(t, NULL, now);
		if (answered)
			thread_resume_note(t, RESUME_UNSAMPLED);
	}
	p = r ? peer_slot(r, c) : NULL;
	if (p) {
		if (c->phase == CALL_SENDING)
			p->ttfb_ns += now - c->mark_ns;
		if (c->phase != CALL_IDLE)
			p->wait_ns += now - c->mark_ns;
		p->rx_bytes += ret;
	}
	if (c->phase == CALL_SENDING && c->sk && c->peer.family != AF_UNIX) {
		/* One RTT sample per reply: the kernel's smoothed RTT, in 1/8 us. */
		tp = (struct tcp_sock *)c->sk;
		srtt = BPF_CORE_READ(tp, srtt_us) >> 3;
		tot = peer_totals_get(&c->peer);
		if (tot && srtt) {
			__sync_fetch_and_add(&tot->srtt_sum_us, srtt);
			__sync_fetch_and_add(&tot->srtt_samples, 1);
			if (srtt > tot->srtt_max_us)
				tot->srtt_max_us = srtt;
		}
	}
	if (c->phase != CALL_IDLE) {
		c->phase = CALL_RECEIVING;
		c->mark_ns = now;
	}
	return 0;
}

#endif /* AGENTPROF_UPSTREAM_BPF_H */
