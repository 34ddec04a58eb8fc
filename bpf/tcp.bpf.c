// SPDX-License-Identifier: GPL-2.0-only
/*
 * TCP events of upstream connections, from the tcp and sock tracepoints
 * (rare: state changes, retransmits, resets): handshake completion of a
 * non-blocking connect(), connect failures, resets and retransmits per peer
 * and per request. Only sockets agentprof tracks (the socks map) count.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"

#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_FIN_WAIT1 4
#define TCP_CLOSE 7
#define TCP_CLOSE_WAIT 8
#define TCP_LAST_ACK 9

static __always_inline struct conn *sk_conn(const struct sock *sk)
{
	__u64 skey = (__u64)sk, *key;

	key = bpf_map_lookup_elem(&socks, &skey);
	return key ? bpf_map_lookup_elem(&conns, key) : NULL;
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
		request_finish(c->req_id, NULL, AP_REQ_CONN_CLOSED, bpf_ktime_get_ns());
	bpf_sk_storage_delete(&inbound_conns, sk);
}

static __always_inline int on_state(const struct sock *sk, int oldstate, int newstate, bool btf)
{
	struct ap_peer_totals *tot;
	struct conn *c;

	/* Socket storage needs tp_btf's typed socket; sock_tps implies tp_btf. */
	if (btf && sock_tps)
		inbound_closed((struct sock *)sk, oldstate, newstate);
	if (oldstate != TCP_SYN_SENT)
		return 0;
	c = sk_conn(sk);
	if (!c)
		return 0;
	if (newstate == TCP_ESTABLISHED) {
		c->connect_ns = bpf_ktime_get_ns() - c->mark_ns;
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		c->connect_ns = 0;
		tot = peer_totals_get(&c->peer);
		if (tot)
			__sync_fetch_and_add(&tot->connect_failures, 1);
	}
	return 0;
}

static __always_inline int on_retransmit(const struct sock *sk)
{
	struct ap_peer_totals *tot;
	struct ap_request_event *r;
	struct conn *c = sk_conn(sk);
	__u32 slot;

	if (!c)
		return 0;
	tot = peer_totals_get(&c->peer);
	if (tot)
		__sync_fetch_and_add(&tot->retransmits, 1);
	r = c->req_id ? request_lookup(c->req_id) : NULL;
	slot = c->slot;
	if (r && slot < AP_MAX_PEERS && slot < r->npeers)
		__sync_fetch_and_add(&r->peers[slot].retransmits, 1);
	return 0;
}

static __always_inline int on_reset(const struct sock *sk)
{
	struct ap_peer_totals *tot;
	struct conn *c = sk_conn(sk);

	/* A reset answering a SYN is a connect failure, counted by on_state. */
	if (!c || BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_SYN_SENT)
		return 0;
	tot = peer_totals_get(&c->peer);
	if (tot)
		__sync_fetch_and_add(&tot->resets, 1);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(ap_sock_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, true);
}

SEC("?raw_tp/inet_sock_set_state")
int BPF_PROG(ap_raw_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return on_state(sk, oldstate, newstate, false);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(ap_tcp_retrans, const struct sock *sk)
{
	return on_retransmit(sk);
}

SEC("?raw_tp/tcp_retransmit_skb")
int BPF_PROG(ap_raw_retrans, const struct sock *sk)
{
	return on_retransmit(sk);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(ap_tcp_reset, struct sock *sk)
{
	return on_reset(sk);
}

SEC("?raw_tp/tcp_receive_reset")
int BPF_PROG(ap_raw_reset, struct sock *sk)
{
	return on_reset(sk);
}

char LICENSE[] SEC("license") = "GPL";
