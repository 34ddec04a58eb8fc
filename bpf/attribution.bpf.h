/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The attribution model of ../README.md ("Attribution"): a thread works for
 * a request from its I/O on a socket bound to that request until its I/O on
 * a socket bound to another; a thread woken by a thread working for R works
 * for R until its own I/O says otherwise. Time is charged to the request a
 * thread works for when the time is accounted: on-CPU at switch-out or at a
 * change of request, blocked time at wakeup, run-queue time at switch-in.
 */
#ifndef AGENTPROF_ATTRIBUTION_BPF_H
#define AGENTPROF_ATTRIBUTION_BPF_H

#include "maps.bpf.h"

static __always_inline struct ap_request_event *request_get(__u64 req_id)
{
	struct ap_request_event *r;

	if (!req_id)
		return NULL;
	r = bpf_map_lookup_elem(&requests, &req_id);
	if (!r)
		stat_inc(AP_STAT_STALE_REQ);
	return r;
}

static __always_inline void charge_cpu(__u64 req_id, __u64 delta_ns)
{
	struct ap_request_event *r = request_get(req_id);

	if (r)
		__sync_fetch_and_add(&r->cpu_ns, delta_ns);
}

/*
 * Make the running thread work for req_id (0: for nothing), charging the
 * on-CPU time since the last accounting point to the request it worked for.
 * own_io is false when the binding comes from a wakeup.
 */
static __always_inline void thread_bind(__u32 tid, __u32 tgid, __u64 req_id, bool own_io,
					__u64 now)
{
	struct ap_request_event *r;
	struct thread *t, fresh = {};

	t = bpf_map_lookup_elem(&threads, &tid);
	if (!t) {
		if (!req_id)
			return;
		fresh.req_id = req_id;
		fresh.acct_ns = now;
		fresh.tgid = tgid;
		fresh.inherited = !own_io;
		fresh.sock_io = own_io;
		if (bpf_map_update_elem(&threads, &tid, &fresh, BPF_NOEXIST)) {
			stat_inc(AP_STAT_THREAD_MAP_FULL);
			return;
		}
		r = request_get(req_id);
		if (r)
			__sync_fetch_and_add(&r->nthreads, 1);
		return;
	}
	if (own_io) {
		t->sock_io = 1;
		t->inherited = 0;
	}
	if (t->req_id == req_id)
		return;
	if (t->req_id)
		charge_cpu(t->req_id, now - t->acct_ns);
	t->acct_ns = now;
	t->req_id = req_id;
	t->inherited = !own_io;
	r = request_get(req_id);
	if (r)
		__sync_fetch_and_add(&r->nthreads, 1);
}

/*
 * The thread reads a connection whose response has begun: it waits for the
 * next request, and that wait is no request's time. The binding stays, so
 * an event loop that finds nothing (EAGAIN, EOF) goes on working for it.
 */
static __always_inline void thread_park(__u32 tid, bool parked)
{
	struct thread *t = bpf_map_lookup_elem(&threads, &tid);

	if (t)
		t->parked = parked;
}

/*
 * Close off a request: send its record and forget it. The calling thread may
 * still be on CPU for it (close() right after the response): charge that
 * slice first. Other threads' slices in flight on other CPUs are lost.
 */
static __always_inline void request_finish(__u64 req_id, __u32 flags, __u64 now)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ap_request_event *r;
	struct thread *t;

	r = bpf_map_lookup_elem(&requests, &req_id);
	if (!r)
		return;
	t = bpf_map_lookup_elem(&threads, &tid);
	if (t && t->req_id == req_id) {
		__sync_fetch_and_add(&r->cpu_ns, now - t->acct_ns);
		t->acct_ns = now;
	}
	r->end_ns = now;
	r->flags |= flags;
	if (!r->first_tx_ns)
		r->flags |= AP_REQ_INCOMPLETE;
	if (bpf_ringbuf_output(&events, r, sizeof(*r), 0))
		stat_inc(AP_STAT_RINGBUF_DROPS);
	else
		stat_inc(AP_STAT_REQUESTS);
	bpf_map_delete_elem(&requests, &req_id);
}

#endif /* AGENTPROF_ATTRIBUTION_BPF_H */
