// SPDX-License-Identifier: GPL-2.0-only
/*
 * Retransmits and resets of upstream connections, per peer and per request,
 * from the tcp tracepoints (rare events). Only sockets agentprof tracks (the
 * socks map) count. State changes are a connection's life: conn_state.bpf.h.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"
#include "sock.bpf.h"

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
