/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The attribution model of ../docs/design.md ("Attribution"): a thread works for
 * a request from its I/O on a socket bound to that request until its I/O on
 * a socket bound to another; a thread woken by a thread working for R works
 * for R until its own I/O says otherwise. Blocked time is charged at wakeup
 * and run-queue time at switch-in, to the request the thread works for.
 *
 * On-CPU time of a thread that does socket I/O of its own is charged to the
 * request of its *next* socket I/O: the CPU between two I/Os is work that
 * ends in the second one (a handler ends writing its response or its next
 * query). For a thread that serves one request at a time this is the same
 * request; for an event loop, which reads every ready socket before running
 * the handlers, it is the handler's own request, not the last one read.
 * Threads that only inherit work (pools) are charged as they go.
 */
#ifndef AGENTPROF_ATTRIBUTION_BPF_H
#define AGENTPROF_ATTRIBUTION_BPF_H

#include "maps.bpf.h"
#include "core_fixes.bpf.h"
#include "python.bpf.h"

/* The CPython runtime reader's syncs (below, after what they call). */
__noinline __weak int py_sync(struct thread *t, __u64 now);
__noinline __weak int py_bound(struct thread *t, __u64 req_id);

static __always_inline struct ap_request_event *request_get(__u64 req_id)
{
	struct ap_request_event *r;

	if (!req_id)
		return NULL;
	r = request_lookup(req_id);
	if (!r)
		stat_inc(AP_STAT_STALE_REQ);
	return r;
}

/*
 * The request a binding (a thread's or an upstream connection's req_id)
 * points at; NULL if none. A binding to a finished request is dropped where
 * it is found: a thread's next hooks then look up nothing until it is bound
 * again (each lookup reads a slot long out of the cache), and what is read
 * from a connection after its request ended binds no thread to that request.
 */
static __always_inline struct ap_request_event *bound_request(__u64 *req_id)
{
	struct ap_request_event *r = request_get(*req_id);

	if (!r)
		*req_id = 0;
	return r;
}

static __always_inline void charge(struct thread *t, struct task_struct *task, __u64 cpu_ns,
				   bool btf)
{
	__u64 min_flt = TASK_FIELD(btf, task, min_flt), maj_flt = TASK_FIELD(btf, task, maj_flt);
	__u64 dmin = min_flt - t->min_flt, dmaj = maj_flt - t->maj_flt;
	/* A Python thread's units say whose its CPU is (python.bpf.h). */
	bool pend = (t->sock_io && t->py != PY_FOUND) || py_pends(t);
	struct ap_request_event *r;

	t->min_flt = min_flt;
	t->maj_flt = maj_flt;
	if (pend) {
		t->pending_ns += cpu_ns;
		/* Most slices fault nothing: then there is nothing to add now. */
		if (!dmin && !dmaj)
			return;
	}
	r = bound_request(&t->req_id);
	if (!r)
		return;
	if (!pend && cpu_ns) {
		__sync_fetch_and_add(&r->cpu_ns, cpu_ns);
		/*
		 * A Python thread counts for the requests it worked for: bindings
		 * of its own come and go with each unit an event loop runs.
		 */
		if (t->py == PY_FOUND && t->py_counted != t->req_id) {
			t->py_counted = t->req_id;
			if (py_first_time(r, t->req_id, TASK_FIELD(btf, task, pid)))
				__sync_fetch_and_add(&r->nthreads, 1);
		}
	}
	if (dmin)
		__sync_fetch_and_add(&r->minor_faults, dmin);
	if (dmaj)
		__sync_fetch_and_add(&r->major_faults, dmaj);
}

/*
 * On-CPU time comes from the kernel's own accounting of each slice:
 * se.prev_sum_exec_runtime is sum_exec_runtime when the task was last picked
 * to run, so their difference is the current slice. That leaves out time the
 * hypervisor stole (as CLOCK_THREAD_CPUTIME_ID does), and does not depend on
 * seeing every switch-in: on 6.x kernels sched_switch reports some tasks
 * switched out more often than switched in. Only the part of a slice spent
 * for a request before the task changes request is measured by the clock.
 */
static __always_inline __u64 slice_start(struct task_struct *task, bool btf)
{
	return TASK_FIELD(btf, task, se.prev_sum_exec_runtime);
}

static __always_inline __u64 slice_exec(struct task_struct *task, __u64 start, bool btf)
{
	__u64 sum = TASK_FIELD(btf, task, se.sum_exec_runtime);

	return sum > start ? sum - start : 0;
}

/* The running task changes request mid-slice: charge the slice so far. */
static __always_inline void thread_charge(struct thread *t, struct task_struct *task, __u64 now,
					  bool btf)
{
	__u64 start = slice_start(task, btf), delta = now - t->acct_ns, exec;

	if (start != t->slice_mark || !t->on_cpu) {
		/*
		 * A slice whose switch-in was not reported: it began after
		 * acct_ns; the kernel's count so far (as of its last update,
		 * a tick at most ago) bounds it. Its start may equal
		 * slice_mark (the pick sets prev_sum_exec_runtime to the
		 * sum_exec_runtime of the last switch-out): !on_cpu says so,
		 * and without the bound the time off CPU since that
		 * switch-out would be charged as on-CPU time.
		 */
		exec = slice_exec(task, start, btf);
		if (!t->on_cpu && exec < delta)
			delta = exec;
		t->slice_mark = start;
		t->slice_ns = 0;
	}
	t->on_cpu = 1;
	charge(t, task, delta, btf);
	t->slice_ns += delta;
	t->acct_ns = now;
}

/* Switch-out: the slice's on-CPU time, less what was charged mid-slice. */
static __always_inline void thread_switch_out(struct thread *t, struct task_struct *task, __u64 now,
					      bool btf)
{
	__u64 start = slice_start(task, btf), exec = slice_exec(task, start, btf), cpu;

	if (start != t->slice_mark)
		t->slice_ns = 0;
	cpu = exec > t->slice_ns ? exec - t->slice_ns : 0;
	/* Never more than the clock since the last accounting point (RT tasks). */
	if (cpu > now - t->acct_ns)
		cpu = now - t->acct_ns;
	charge(t, task, cpu, btf);
	t->acct_ns = now;
	t->slice_ns = 0;
	t->on_cpu = 0;
	/* The next pick sets prev_sum_exec_runtime to what sum_exec_runtime is now. */
	t->slice_mark = start + exec;
}

/*
 * Start accounting: at switch-in, or when tracking begins mid-slice (the
 * part of the slice before now is then no request's).
 */
static __always_inline void thread_snapshot(struct thread *t, struct task_struct *task, __u64 now,
					    bool switch_in, bool btf)
{
	__u64 start = slice_start(task, btf);

	t->acct_ns = now;
	t->min_flt = TASK_FIELD(btf, task, min_flt);
	t->maj_flt = TASK_FIELD(btf, task, maj_flt);
	t->slice_mark = start;
	t->slice_ns = switch_in ? 0 : slice_exec(task, start, btf);
	t->on_cpu = 1;
}

/* Socket I/O for req_id: the on-CPU time that led to it is that request's. */
static __always_inline void thread_settle(struct thread *t, __u64 req_id)
{
	struct ap_request_event *r;

	if (!t->pending_ns || !req_id)
		return;
	r = request_lookup(req_id);
	if (!r)
		return;
	__sync_fetch_and_add(&r->cpu_ns, t->pending_ns);
	t->pending_ns = 0;
}

/*
 * The thread read what wakes req_id's code: its request head, or a
 * PostgreSQL reply that answers all its round trips. The first such read
 * since the thread's last write or block is the one whose code an event
 * loop runs first (see call_owner(), upstream.bpf.h).
 */
/* A resume note for a request not sampled (--sample): its code is nobody's. */
#define RESUME_UNSAMPLED 1ULL

static __always_inline void thread_resume_note(struct thread *t, __u64 req_id)
{
	if (t && req_id && t->py == PY_FOUND && req_id != RESUME_UNSAMPLED)
		py_note_push(t, req_id);
	if (t && req_id && !t->resume_req)
		t->resume_req = req_id;
}

static __always_inline struct task_struct *current_task(void)
{
	return (struct task_struct *)bpf_get_current_task();
}

/*
 * me: the running task as a BTF pointer (bpf_get_current_task_btf(), 5.11+),
 * or NULL to take it here. Each of those is a helper call: the socket
 * handlers take it once (struct io) and hand it down. Only where
 * HAVE_TASK_BTF.
 */
static __always_inline struct task_struct *task_me(struct task_struct *me)
{
	return me ?: bpf_get_current_task_btf();
}

/* thread_charge() of the running thread, with plain loads where the kernel allows. */
static __always_inline void thread_charge_current(struct thread *t, struct task_struct *me,
						  __u64 now)
{
	if (HAVE_TASK_BTF)
		thread_charge(t, task_me(me), now, true);
	else
		thread_charge(t, current_task(), now, false);
}

/* Socket I/O for req_id by the running thread: its CPU up to now is req_id's. */
static __always_inline void thread_settle_now(struct thread *t, struct task_struct *me,
					      __u64 req_id, __u64 now)
{
	thread_charge_current(t, me, now);
	thread_settle(t, req_id);
}

/* The running thread's on-CPU time up to now is nobody's (--sample). */
static __always_inline void thread_drop_pending(struct thread *t, struct task_struct *me,
						__u64 now)
{
	thread_charge_current(t, me, now);
	t->pending_ns = 0;
}

/*
 * Socket I/O for a request that is not sampled (--sample): the CPU that led
 * to it is that request's, so nobody's, and the thread works for nothing
 * until its next I/O for a sampled one.
 */
static __always_inline void thread_unsampled_io(struct thread *t, struct task_struct *me,
						__u64 now)
{
	if (!t)
		return;
	thread_drop_pending(t, me, now);
	/* Its unit's CPU so far and until its next binding is nobody's too. */
	if (t->py == PY_FOUND && t->py_unit > PY_BETWEEN) {
		py_unit_set(t->tgid, t->py_unit, PY_UNIT_UNSAMPLED);
		t->py_known = 1;
	}
	t->req_id = 0;
	t->sock_io = 1;
	t->inherited = 0;
}

static __always_inline __s64 process_rss_pages(struct task_struct *me)
{
	if (HAVE_TASK_BTF)
		return mm_rss_pages(task_me(me)->mm, true);
	return mm_rss_pages(BPF_CORE_READ(current_task(), mm), false);
}

/*
 * bpf_get_current_cgroup_id(), as loads: the helper takes the RCU read lock
 * and costs ~30 ns of a request start. The loads are exception-handled, and
 * the task's css_set outlives the running task's tracepoint.
 */
static __always_inline __u64 current_cgroup_id(struct task_struct *me)
{
	if (HAVE_TASK_BTF)
		return task_me(me)->cgroups->dfl_cgrp->kn->id;
	return bpf_get_current_cgroup_id();
}

/* One more thread works for req_id (a record's threads). */
static __always_inline void request_count_thread(__u64 req_id)
{
	struct ap_request_event *r = request_lookup(req_id);

	if (r)
		__sync_fetch_and_add(&r->nthreads, 1);
}

/* Thread tid of a CPython process works for req_id: counted once a request. */
static __always_inline void py_count_thread(__u64 req_id, __u32 tid)
{
	struct ap_request_event *r = request_lookup(req_id);

	if (py_first_time(r, req_id, tid))
		__sync_fetch_and_add(&r->nthreads, 1);
}

/*
 * Make the running thread work for req_id (0: for nothing), charging the
 * on-CPU time since the last accounting point to the request it worked for.
 * own_io is false when the binding comes from a wakeup. t is the thread's
 * entry (NULL: it has none yet), r the request's (NULL: looked up here if
 * needed), me the running task (task_me()). Returns the thread's entry, NULL
 * if none could be made.
 */
static __always_inline struct thread *thread_bind_to(struct thread *t, struct task_struct *me,
						     __u32 tid, __u32 tgid, __u64 req_id,
						     struct ap_request_event *r, bool own_io,
						     __u64 now)
{
	if (!t) {
		if (!req_id)
			return NULL;
		t = thread_new(HAVE_TASK_BTF ? task_me(me) : NULL, tid);
		if (!t) {
			stat_inc(AP_STAT_THREAD_MAP_FULL);
			return NULL;
		}
		t->req_id = req_id;
		if (HAVE_TASK_BTF)
			thread_snapshot(t, task_me(me), now, false, true);
		else
			thread_snapshot(t, current_task(), now, false, false);
		t->tgid = tgid;
		t->inherited = !own_io;
		t->sock_io = own_io;
		if (own_io)
			py_bound(t, req_id);
		if (!r)
			r = request_get(req_id);
		/* Marked for py_switch(), which may count the thread again. */
		if (py_first_time(r, req_id, tid))
			__sync_fetch_and_add(&r->nthreads, 1);
		return t;
	}
	if (own_io) {
		/* Bring pending up to now (a pool thread's last slice: as it went). */
		thread_charge_current(t, me, now);
		t->sock_io = 1;
		t->inherited = 0;
		/* The unit of work that did the I/O is the request's too. */
		if (!py_none(t))
			py_bound(t, req_id);
	} else if (t->req_id != req_id) {
		thread_charge_current(t, me, now);
	}
	if (t->req_id == req_id && !(own_io && t->pending_ns))
		return t;
	if (!r && req_id)
		r = request_get(req_id);
	/* Socket I/O for req_id: the on-CPU time that led to it is that request's. */
	if (own_io && t->pending_ns && r) {
		__sync_fetch_and_add(&r->cpu_ns, t->pending_ns);
		t->pending_ns = 0;
	}
	if (t->req_id == req_id)
		return t;
	t->req_id = req_id;
	t->inherited = !own_io;
	/* An event loop comes back to a request at each of its units: once. */
	if (r && t->py != PY_FOUND)
		__sync_fetch_and_add(&r->nthreads, 1);
	return t;
}

/*
 * thread_bind_to() for the running thread's own I/O, as a global function:
 * its new-entry path holds a whole struct thread on the stack, which the
 * socket handlers' frames cannot afford (docs/verifier.md). r: req_id's
 * record, or NULL to look it up.
 */
__noinline __weak int thread_bind(__u64 req_id, struct ap_request_event *r, __u64 now)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	return thread_bind_to(thread_current(), NULL, (__u32)pid_tgid, pid_tgid >> 32, req_id, r,
			      true, now) != NULL;
}

/*
 * Lay r out as its record (include/agentprof/request.h): its peers after
 * the captured part of the head, which most heads leave far below
 * AP_HEAD_MAX. Returns the record's size. Copying into the ring buffer is
 * the dearest part of closing off a request, and a record of the minimal
 * server's requests shrinks from 740 to 300 bytes.
 */
static __always_inline __u64 record_pack(struct ap_request_event *r)
{
	__u64 head_len = bounded(r->head_len, AP_HEAD_MAX), n = r->npeers, at;
	__u32 i;

	at = AP_REQ_PEERS_AT(head_len) + AP_REQ_WIRE_OFF;
	at = bounded(at, __builtin_offsetof(struct ap_request_event, peers_room));
#pragma unroll
	for (i = 0; i < AP_MAX_PEERS; i++) {
		if (i >= n)
			break;
		__builtin_memcpy((char *)r + at + i * sizeof(struct ap_peer), &r->peers[i],
				 sizeof(struct ap_peer));
	}
	if (n > AP_MAX_PEERS)
		n = AP_MAX_PEERS;
	/*
	 * Never more than the slot holds from its type field on: 6.1's verifier
	 * bounds the sum above a few bytes past it, and rejects the ring-buffer
	 * copy of a record that could run off the map value.
	 */
	return bounded(AP_REQ_EVENT_SIZE(head_len, n), sizeof(*r) - AP_REQ_WIRE_OFF);
}

/*
 * Close off a request: send its record and forget it. The running thread
 * may still be on CPU for it (close() right after the response): that
 * slice is charged first. Other threads' slices in flight on other CPUs are
 * lost. A global function (__weak: both objects that include this header
 * define it, and the linker keeps one): verified once, not at each of its
 * dozen call sites (docs/verifier.md).
 */
__noinline __weak int request_finish(__u64 req_id, __u32 flags, __u64 now)
{
	struct ap_request_event *r;
	struct thread *t;

	r = request_lookup(req_id);
	if (!r)
		return 0;
	t = thread_current();
	if (t && t->req_id == req_id) {
		/* close(), EOF or exit: I/O for this request, the last. */
		thread_settle_now(t, NULL, req_id, now);
	}
	/* With a response, RSS was read at its last write (write_exit()). */
	if (!r->last_tx_ns && r->pid == (__u32)(bpf_get_current_pid_tgid() >> 32) &&
	    !(flags & AP_REQ_TASK_EXITED))
		r->rss_delta_pages = process_rss_pages(NULL) - r->rss_start_pages;
	r->end_ns = now;
	r->flags |= flags;
	if (!r->first_tx_ns)
		r->flags |= AP_REQ_INCOMPLETE;
	if (bpf_ringbuf_output(&events, &r->type, record_pack(r), ringbuf_flags()))
		stat_inc(AP_STAT_RINGBUF_DROPS);
	r->id = 0;	/* the slot is free */
	slot_freed(req_id);
	return 0;
}

/* The running thread t now works for req (0: for nothing); counted in charge(). */
static __always_inline void py_switch(struct thread *t, __u64 req)
{
	if (t->req_id == req)
		return;
	t->req_id = req;
	t->inherited = 0;
}

/*
 * At an attribution point of the running thread t: if the Context it runs
 * changed since the last one, its CPU since then goes to the unit it ran,
 * and from now on it works for the new unit's request. An event loop in a
 * unit bound to nothing works for nothing, and that unit's CPU waits for
 * its binding (py_pends()); a pool thread there keeps what its wakeup
 * handed it (a job handed over without a context). A global function,
 * verified once.
 */
__noinline __weak int py_sync(struct thread *t, __u64 now)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), ctx, req, guess;
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	bool unsampled;

	if (!t || py_none(t))
		return 0;
	if (t->py == PY_UNSEEN && !py_find(t, tgid, tid))
		return 0;
	ctx = py_current_ctx(t);
	if (ctx == t->py_unit)
		return 0;
	req = ctx ? py_unit_req(tgid, ctx) : 0;
	unsampled = req == PY_UNIT_UNSAMPLED;
	if (unsampled)
		req = 0;
	guess = req & PY_UNIT_GUESS;
	req &= ~PY_UNIT_GUESS;
	/*
	 * A binding to a finished request is none: the address may be a new
	 * context's that no copy made (a thread's first, a pool thread's).
	 */
	if (req && !request_lookup(req)) {
		py_unit_unbind(tgid, ctx);	/* what it ran unbound stays (py_pends()) */
		req = 0;
		guess = 0;
	}
	if (!req && !unsampled && !t->py_known && !t->py_loop) {
		thread_charge_current(t, NULL, now);
		py_leave(t, tgid);
		t->py_unit = ctx;
		return 0;
	}
	/*
	 * A pool thread that took a job since its last sync: the time since
	 * is the job's (taking it is a few lines of the pool's loop).
	 * Otherwise it is the unit's that ran at the last sync: an event
	 * loop's units start with a syscall or a task step's probe.
	 */
	if (req && !t->py_known && !t->py_loop)
		py_switch(t, req);
	thread_charge_current(t, NULL, now);
	py_leave(t, tgid);
	t->py_unit = ctx;
	t->py_known = unsampled || (req && !guess);
	py_switch(t, req);
	return 1;
}

/*
 * The running thread t's own socket I/O is req_id's: so is the unit it
 * runs, from now on (a global function, as py_sync()).
 */
__noinline __weak int py_bound(struct thread *t, __u64 req_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), ctx;
	__u32 tgid = pid_tgid >> 32, tid = (__u32)pid_tgid;

	if (!t || py_none(t))
		return 0;
	if (t->py == PY_UNSEEN && !py_find(t, tgid, tid))
		return 0;
	ctx = py_current_ctx(t);
	t->py_unit = ctx;
	if (!ctx)
		return 0;
	py_unit_set(tgid, ctx, req_id);
	t->py_known = req_id != 0;
	return 1;
}

/*
 * A Python thread read the reply to a call of req_id (upstream_read()):
 * the unit that reads it (the callback of that connection) works for
 * req_id, without making the thread one that serves requests itself.
 */
static __always_inline void py_take(struct thread *t, __u64 req_id, __u64 now)
{
	thread_charge_current(t, NULL, now);
	py_switch(t, req_id);
	py_bound(t, req_id);
}

#endif /* AGENTPROF_ATTRIBUTION_BPF_H */
