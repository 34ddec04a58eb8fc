/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A connection's life: opened by connect(), ended by close(), from the
 * inet_sock_set_state tracepoint (TCP state changes, rare) and, in the
 * syscall-tracepoint modes, the connect() and close() syscall tracepoints.
 *
 * Socket-tracepoint mode attaches no syscall tracepoint if it can help it:
 * while one is attached, every syscall of every task on the host takes the
 * kernel's slow path, ~50 ns more a syscall here (bench/README.md). A TCP
 * socket's connect() is then seen as it enters SYN_SENT, inside the
 * syscall, and its close() as it leaves ESTABLISHED or CLOSE_WAIT. Other
 * sockets (unix, UDP) have no such tracepoint: a unix socket's first write
 * classifies it (io_begin()), its fd's entry is found stale when the fd is
 * reused for another socket (io_lookup()) or read to EOF, and an inbound
 * one (HTTP over a unix socket) has userspace attach the close() syscall
 * tracepoint after all (nontcp_inbound, src/record.c).
 *
 * Included by requests.bpf.c, after pgwire.bpf.h.
 */
#ifndef AGENTPROF_CONN_STATE_BPF_H
#define AGENTPROF_CONN_STATE_BPF_H

#include "maps.bpf.h"
#include "attribution.bpf.h"
#include "sock.bpf.h"
#include "syscall_nr.bpf.h"

/* Forget fd key's connection c: the fd was closed, or now names another socket. */
static __always_inline void conn_forget(struct conn *c, __u64 key, __u64 now)
{
	if (c->kind == AP_CONN_INBOUND && c->req_id)
		request_finish(c->req_id, AP_REQ_CONN_CLOSED, now);
	if (c->sk)
		bpf_map_delete_elem(&socks, &c->sk);
	if (c->pg) {
		pg_conn_end(c, key, key >> 32, now);
		bpf_map_delete_elem(&pgconns, &key);
	}
	bpf_map_delete_elem(&conns, &key);
}

/* The syscall the current task is in; -1 if none (a softirq's reset, a timer). */
static __always_inline long current_syscall(struct pt_regs **regs)
{
	*regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	return SYSCALL_NR(*regs);
}

/*
 * Socket-tracepoint mode: connect() of a traced process on a TCP socket, as
 * the socket enters SYN_SENT: an upstream from the start, as connect_enter()
 * makes it in the other modes. The handshake ends in connect_done().
 */
static __always_inline void outbound_connecting(struct sock *sk)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ap_peer_key peer = {};
	struct pt_regs *regs;
	__u16 local_port;
	struct conn *c;
	__u64 key;

	if (!traced(tgid) || current_syscall(&regs) != NR_connect)
		return;
	if (peer_from_sk(&peer, sk, &local_port))
		return;
	key = conn_key(tgid, SYSCALL_ARG1(regs));
	/* The fd's last socket, if its close() went unseen (a half-closed one). */
	c = bpf_map_lookup_elem(&conns, &key);
	if (c)
		conn_forget(c, key, bpf_ktime_get_ns());
	c = outbound_new(key, &peer, sk, true);
	if (c)
		c->mark_ns = bpf_ktime_get_ns();
}

/* A tracked connect()'s handshake ends: established, or failed. */
static __always_inline void connect_done(const struct sock *sk, int newstate)
{
	struct ap_peer_totals *tot;
	struct conn *c = sk_conn(sk);

	if (!c)
		return;
	if (newstate == TCP_ESTABLISHED) {
		c->connect_ns = bpf_ktime_get_ns() - c->mark_ns;
		return;
	}
	if (newstate == TCP_CLOSE) {
		c->connect_ns = 0;
		tot = peer_totals_get(&c->peer);
		if (tot)
			__sync_fetch_and_add(&tot->connect_failures, 1);
	}
}

/*
 * An inbound connection kept in socket storage (socket-tracepoint mode)
 * leaves ESTABLISHED or CLOSE_WAIT: the server closed it (close(), the last
 * of its fds, or shutdown()), or a reset aborted it. Its request ends here,
 * as it does at close() for connections in conns. A peer's FIN (CLOSE_WAIT)
 * is left to the read that returns EOF.
 */
static __always_inline void inbound_closed(struct sock *sk, int oldstate, int newstate)
{
	struct conn *c;

	if (oldstate != TCP_ESTABLISHED && oldstate != TCP_CLOSE_WAIT)
		return;
	if (newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
		return;
	c = bpf_sk_storage_get(&inbound_conns, sk, NULL, 0);
	if (!c)
		return;
	if (c->req_id)
		request_finish(c->req_id, AP_REQ_CONN_CLOSED, bpf_ktime_get_ns());
	bpf_sk_storage_delete(&inbound_conns, sk);
}

/*
 * Socket-tracepoint mode: a tracked outbound TCP socket is closed. FIN_WAIT1
 * and LAST_ACK come from close(), in the closing task, before its fd can be
 * reused; shutdown() makes them too but leaves the fd open for the reply.
 * CLOSE is every TCP socket's end (a reset, a failed connect): its socks
 * entry must go before the kernel reuses the struct sock.
 *
 * A socket that reaches CLOSE from FIN_WAIT1/2 or CLOSING still tracked
 * was half-closed by shutdown(), its fd still open (close() would have
 * ended it at FIN_WAIT1), unless the close() comes now: the peer's FIN
 * ended it, and the reply may still wait in the receive queue. Its fd's
 * entry stays, to be read; it goes when the fd turns out to name another
 * socket (io_lookup()) or, in the syscall modes, at close().
 */
static __always_inline void outbound_closed(const struct sock *sk, int oldstate, int newstate)
{
	__u64 skey = (__u64)sk, *kp, key;
	struct pt_regs *regs;
	struct conn *c;
	long nr;

	if (newstate != TCP_FIN_WAIT1 && newstate != TCP_LAST_ACK && newstate != TCP_CLOSE)
		return;
	kp = bpf_map_lookup_elem(&socks, &skey);
	if (!kp)
		return;
	key = *kp;
	nr = current_syscall(&regs);
	if (newstate != TCP_CLOSE && nr == NR_shutdown)
		return;
	if (newstate == TCP_CLOSE && nr != NR_close && nr != NR_close_range &&
	    (oldstate == TCP_FIN_WAIT1 || oldstate == TCP_FIN_WAIT2 || oldstate == TCP_CLOSING)) {
		bpf_map_delete_elem(&socks, &skey);
		return;
	}
	c = bpf_map_lookup_elem(&conns, &key);
	if (c && c->sk == skey)
		conn_forget(c, key, bpf_ktime_get_ns());
	else
		bpf_map_delete_elem(&socks, &skey);
}

/* btf: a tp_btf program (socket storage needs its typed socket). */
static __always_inline int on_state(struct sock *sk, int oldstate, int newstate, bool btf)
{
	/* sock_tps implies tp_btf. */
	bool sock_mode = btf && sock_tps;

	if (sock_mode && oldstate == TCP_CLOSE && newstate == TCP_SYN_SENT) {
		outbound_connecting(sk);
		return 0;
	}
	if (sock_mode)
		inbound_closed(sk, oldstate, newstate);
	if (oldstate == TCP_SYN_SENT)
		connect_done(sk, newstate);
	if (sock_mode)
		outbound_closed(sk, oldstate, newstate);
	return 0;
}

#endif /* AGENTPROF_CONN_STATE_BPF_H */
