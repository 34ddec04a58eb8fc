/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The CPython runtime reader, kernel side (docs/python.md): which unit of
 * work a thread of a Python process runs now, so that its CPU, waits and
 * calls go to that unit's request rather than to the last socket it used.
 *
 * The unit is the contextvars.Context the thread runs in: asyncio runs every
 * task step and every callback inside Context.run() of the task's or the
 * callback's own context, and anyio (FastAPI's `def` endpoints) runs a
 * thread-pool job inside Context.run() of a copy made by the submitting
 * task. Context.run() sets PyThreadState.context, which the hooks read at
 * each attribution point (a "sync"): the thread's entry caches the address
 * of that field, found once by walking the runtime's thread states
 * (_PyRuntime -> interpreters.head -> threads.head -> next) for the one
 * whose native_thread_id is the thread's tid. Offsets per CPython version
 * come from userspace (src/pyrt.c) in py_procs.
 *
 * A unit is bound to a request:
 * - by its own socket I/O: reading a request's head or body, writing its
 *   response, or reading a reply on a connection a request's call is using
 *   (the callback that reads a PostgreSQL or upstream reply);
 * - at its creation: a context copied (PyContext_CopyCurrent: a Task, a
 *   callback, copy_context()) while the thread works for request R is R's
 *   (python.bpf.c).
 * Between two syncs the thread's CPU goes to the unit current at the first;
 * task steps, which often end with no syscall, are bounded by uprobes on
 * the call that resumes the coroutine (python.bpf.c).
 */
#ifndef AGENTPROF_PYTHON_BPF_H
#define AGENTPROF_PYTHON_BPF_H

#include "maps.bpf.h"
#include "agentprof/python.h"

/*
 * Bumped by userspace (src/pyrt.c) each time it adds a process to py_procs:
 * a thread looked for before its process was added (the programs attach
 * before the runtimes are found) is looked for again.
 */
extern __u32 py_procs_gen;

enum py_state {
	PY_UNSEEN,	/* not looked for yet */
	PY_NONE,	/* no readable CPython thread state: the thread rules apply */
	PY_FOUND,	/* py_ctxp is its PyThreadState's context field */
};

/*
 * A py_units value: a request the unit likely works for, guessed from the
 * heads the loop read (python.bpf.c). Its calls and the work it hands over
 * go to that request; its CPU waits for the unit's own I/O to say whose it
 * is (py_pends()).
 */
#define PY_UNIT_GUESS (1ULL << 62)
/*
 * A py_units value: the unit answered a request not traced (--sample): it
 * works for nothing, and its CPU is nobody's, until its next binding.
 */
#define PY_UNIT_UNSAMPLED (1ULL << 61)
#define PY_UNIT_FLAGS PY_UNIT_GUESS
/* py_unit values below this name no context. */
#define PY_BETWEEN 1ULL
/* Thread states walked at most to find a thread's (without bpf_loop: fewer). */
#define PY_MAX_THREADS 1024
#define PY_MAX_THREADS_NO_LOOP 24
/* Looks for a thread's state before it counts as no CPython thread. */
#define PY_MAX_TRIES 32

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_PROCS);
	__type(key, __u32);	/* tgid */
	__type(value, struct ap_py_proc);
} py_procs SEC(".maps") __weak;

/*
 * The request each unit works for, in a set-associative table: the set of
 * a (process, context) pair is a hash of the two, and a unit is one of its
 * set's ways. Contexts are freed with no hook to see it, so nothing is
 * removed when a unit ends: a new unit takes a free way, else one whose
 * request has finished, else (a set full of units of open requests) the
 * way its context's address picks, counted in AP_STAT_PY_UNIT_EVICTED.
 * An array rather than a hash: a unit is looked up at nearly every task
 * step, and an LRU hash cost a chain walk through a large table there and
 * interrupts off at each update (docs/python.md, "Cost").
 */
#define PY_UNIT_SETS (1u << PY_UNIT_SET_BITS)
#define PY_UNIT_WAYS 4
/* log2 of the sets in use: fewer only in tests (AGENTPROF_PY_UNIT_SET_BITS). */
extern const volatile __u32 py_unit_set_bits;

struct py_unit {
	__u64 ctx;		/* the Context object's address; 0: a free way */
	__u32 tgid;
	__u32 pad;
	__u64 req_id;		/* 0, a request, or PY_UNIT_GUESS | a request */
	/*
	 * An event loop's CPU in the unit while it was bound to nothing:
	 * the request it binds to next gets it (a connection's handler task,
	 * whose CPU leads to the response it writes).
	 */
	__u64 pending_ns;
	__u64 parent;		/* the unit that made it (a task's creator), 0 if unknown */
};

struct py_unit_set {
	struct py_unit way[PY_UNIT_WAYS];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PY_UNIT_SETS);
	__type(key, __u32);
	__type(value, struct py_unit_set);
} py_units SEC(".maps") __weak;

struct py_seen_key {
	__u64 req_id;
	__u32 tid;
	__u32 pad;
};

/*
 * Which threads a request's units ran on, so a record's threads counts
 * threads and not an event loop's switches between units.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct py_seen_key);
	__type(value, __u8);
} py_seen SEC(".maps") __weak;

static __always_inline __u64 py_read_ptr(__u64 addr)
{
	__u64 v = 0;

	if (bpf_probe_read_user(&v, sizeof(v), (const void *)addr))
		return 0;
	return v;
}

/* The walk of a process's thread states, for bpf_loop(). */
struct py_walk {
	const struct ap_py_proc *p;
	__u64 ts;		/* the thread state to look at next; 0: the end */
	__u64 found;		/* the one whose native_thread_id is tid */
	__u32 tid;
};

static long py_walk_step(__u32 i, void *arg)
{
	struct py_walk *w = arg;

	if (!w->ts)
		return 1;
	if (py_read_ptr(w->ts + w->p->ts_native_tid) == w->tid) {
		w->found = w->ts;
		return 1;
	}
	w->ts = py_read_ptr(w->ts + w->p->ts_next);
	return 0;
}

/*
 * Finds the running thread's PyThreadState (tgid, tid: the running
 * thread's). A global function: the walk is verified once. Only the main
 * interpreter's threads are looked at; without bpf_loop, the first few.
 */
__noinline __weak int py_find(struct thread *t, __u32 tgid, __u32 tid)
{
	struct py_walk w = { .tid = tid };
	int i;

	if (!t)
		return 0;
	w.p = bpf_map_lookup_elem(&py_procs, &tgid);
	if (!w.p) {
		t->py = PY_NONE;
		t->py_gen = (__u16)py_procs_gen;
		return 0;
	}
	/*
	 * A thread of a CPython process may be looked for before its thread
	 * state has its tid (a pool thread just started): looked for again at
	 * its next syncs, a few times.
	 */
	if (++t->py_tries >= PY_MAX_TRIES)
		t->py = PY_NONE;
	w.ts = py_read_ptr(w.p->runtime + w.p->interp_head);
	if (!w.ts)
		return 0;
	w.ts = py_read_ptr(w.ts + w.p->threads_head);
	if (has_bpf_loop) {
		bpf_loop(PY_MAX_THREADS, py_walk_step, &w, 0);
	} else {
		for (i = 0; i < PY_MAX_THREADS_NO_LOOP; i++)
			if (py_walk_step(i, &w))
				break;
	}
	if (!w.found)
		return 0;
	t->py_ctxp = w.found + w.p->ts_context;
	t->py = PY_FOUND;
	return 1;
}

/*
 * True if the thread rules apply to t: no CPython thread state of its own,
 * or none known yet for its process. A thread whose process was added to
 * py_procs since it was looked for is looked for again.
 */
static __always_inline bool py_none(struct thread *t)
{
	if (t->py != PY_NONE)
		return false;
	if (t->py_tries >= PY_MAX_TRIES || t->py_gen == (__u16)py_procs_gen)
		return true;
	t->py = PY_UNSEEN;
	return false;
}

/* The set unit (tgid, ctx) belongs in (Fibonacci hashing: the top bits); NULL for no context. */
static __always_inline struct py_unit_set *py_set_of(__u32 tgid, __u64 ctx)
{
	__u64 h = ((ctx >> 4) ^ ((__u64)tgid << 40)) * 0x9E3779B97F4A7C15ULL;
	__u32 bits = py_unit_set_bits, i = 0;

	if (!ctx)
		return NULL;
	if (bits && bits <= PY_UNIT_SET_BITS)
		i = h >> (64 - bits);
	return bpf_map_lookup_elem(&py_units, &i);
}

/* Unit (tgid, ctx) in its set s, NULL if none. */
static __always_inline struct py_unit *py_unit_in(struct py_unit_set *s, __u32 tgid, __u64 ctx)
{
	int i;

#pragma unroll
	for (i = 0; i < PY_UNIT_WAYS; i++)
		if (s->way[i].ctx == ctx && s->way[i].tgid == tgid)
			return &s->way[i];
	return NULL;
}

/* Unit ctx of process tgid, NULL if none. */
static __always_inline struct py_unit *py_unit_get(__u32 tgid, __u64 ctx)
{
	struct py_unit_set *s = py_set_of(tgid, ctx);

	return s ? py_unit_in(s, tgid, ctx) : NULL;
}

/* A new context at ctx: a binding a freed one left there is none. */
static __always_inline void py_unit_forget(__u32 tgid, __u64 ctx)
{
	struct py_unit *u = py_unit_get(tgid, ctx);

	if (u)
		u->ctx = 0;
}

/* A way that holds nothing anybody will look for: of a finished request. */
static __always_inline bool py_unit_spent(const struct py_unit *u)
{
	__u64 req = u->req_id & ~PY_UNIT_GUESS;

	if (req == PY_UNIT_UNSAMPLED || !req)
		return !u->pending_ns;
	return !request_lookup(req);
}

/*
 * Unit ctx of process tgid, made if it has no way yet: a new one starts
 * bound to nothing, with no CPU and no parent. NULL if another CPU took
 * the way first.
 */
static __always_inline struct py_unit *py_unit_make(__u32 tgid, __u64 ctx)
{
	struct py_unit_set *s = py_set_of(tgid, ctx);
	struct py_unit *u = NULL, *found;
	__u64 old;
	int i;

	if (!s)
		return NULL;
	found = py_unit_in(s, tgid, ctx);
	if (found)
		return found;
#pragma unroll
	for (i = 0; i < PY_UNIT_WAYS; i++)
		if (!u && !s->way[i].ctx)
			u = &s->way[i];
	/* No free way: one of a finished request (a look at its record each). */
#pragma unroll
	for (i = 0; i < PY_UNIT_WAYS; i++)
		if (!u && py_unit_spent(&s->way[i]))
			u = &s->way[i];
	if (!u) {
		stat_inc(AP_STAT_PY_UNIT_EVICTED);
		u = &s->way[(ctx >> 4) & (PY_UNIT_WAYS - 1)];
	}
	/* Claimed whole before it is filled: a racing maker of the same way loses. */
	old = u->ctx;
	if (__sync_val_compare_and_swap(&u->ctx, old, ctx) != old)
		return NULL;
	u->tgid = tgid;
	u->req_id = 0;
	u->pending_ns = 0;
	u->parent = 0;
	return u;
}

static __always_inline __u64 py_unit_req(__u32 tgid, __u64 ctx)
{
	struct py_unit *u = py_unit_get(tgid, ctx);

	return u ? u->req_id : 0;
}

/*
 * Binds unit ctx to req_id (0: forgets it); the CPU it ran unbound is
 * req_id's.
 */
static __always_inline void py_unit_set(__u32 tgid, __u64 ctx, __u64 req_id)
{
	struct ap_request_event *r;
	struct py_unit *u;
	__u64 pending;

	if (!req_id) {
		py_unit_forget(tgid, ctx);
		return;
	}
	u = py_unit_make(tgid, ctx);
	if (!u)
		return;
	u->req_id = req_id;
	/* A guess keeps the CPU waiting: the unit's own I/O says whose it is. */
	if (req_id & PY_UNIT_FLAGS)
		return;
	pending = u->pending_ns;
	u->pending_ns = 0;
	if (pending && req_id != PY_UNIT_UNSAMPLED) {
		r = request_lookup(req_id);
		if (r)
			__sync_fetch_and_add(&r->cpu_ns, pending);
	}
}

/*
 * A new unit at ctx, made by unit parent while the thread worked for
 * req_id: nothing of a freed context at that address carries over.
 */
static __always_inline void py_unit_new(__u32 tgid, __u64 ctx, __u64 req_id, __u64 parent)
{
	struct py_unit *u = py_unit_make(tgid, ctx);

	if (!u)
		return;
	u->req_id = req_id;
	u->pending_ns = 0;
	u->parent = parent;
}

/* The unit that made unit ctx, 0 if unknown. */
static __always_inline __u64 py_unit_parent_of(__u32 tgid, __u64 ctx)
{
	struct py_unit *u = py_unit_get(tgid, ctx);

	return u ? u->parent : 0;
}

/* Unit ctx is bound to nothing (a wrong guess); its pending CPU stays. */
static __always_inline void py_unit_unbind(__u32 tgid, __u64 ctx)
{
	struct py_unit *u = py_unit_get(tgid, ctx);

	if (u)
		u->req_id = 0;
}

/* An event loop ran ns of CPU in unit ctx while it was bound to nothing. */
static __always_inline void py_unit_pend(__u32 tgid, __u64 ctx, __u64 ns)
{
	struct py_unit *u = py_unit_make(tgid, ctx);

	if (u)
		__sync_fetch_and_add(&u->pending_ns, ns);
}

/* An event loop runs a unit bound to nothing: its CPU waits for a binding. */
static __always_inline bool py_pends(const struct thread *t)
{
	return t->py == PY_FOUND && t->py_loop && !t->py_known && t->py_unit > PY_BETWEEN;
}

/* The thread leaves the unit it ran: what it ran unbound stays with the unit. */
static __always_inline void py_leave(struct thread *t, __u32 tgid)
{
	if (t->pending_ns && py_pends(t))
		py_unit_pend(tgid, t->py_unit, t->pending_ns);
	if (t->py == PY_FOUND)
		t->pending_ns = 0;
}

/*
 * True the first time thread tid works for req_id (r: its record, NULL if
 * finished). The record's own tids first: an event loop comes back to each
 * request many times, and an update of the py_seen LRU map (a node taken
 * from its free list with interrupts off, even when the key is there) was
 * the dearest part of a unit change.
 */
static __always_inline bool py_first_time(struct ap_request_event *r, __u64 req_id, __u32 tid)
{
	struct py_seen_key k = { .req_id = req_id, .tid = tid };
	__u64 old;
	__u8 one = 1;
	int i;

	if (!r)
		return false;
	for (i = 0; i < AP_REQ_TIDS; i++) {
		old = r->tids[i];
		if (!old)
			old = __sync_val_compare_and_swap(&r->tids[i], 0, tid);
		if (!old)
			return true;
		if (old == tid)
			return false;
	}
	return !bpf_map_update_elem(&py_seen, &k, &one, BPF_NOEXIST);
}

/* The running thread's current Context, 0 if none or unreadable. */
static __always_inline __u64 py_current_ctx(const struct thread *t)
{
	return py_read_ptr(t->py_ctxp);
}

/* An event loop read req's head: the next unbound task to run is likely req's. */
static __always_inline void py_note_push(struct thread *t, __u64 req)
{
	__u8 n = t->py_nnotes;

	if (n < PY_NOTES) {
		t->py_notes[n & (PY_NOTES - 1)] = req;
		t->py_note_ns[n & (PY_NOTES - 1)] = bpf_ktime_get_ns();
		t->py_nnotes = n + 1;
	}
}

/* The oldest note, 0 if none (notes of requests whose task ran are 0). */
static __always_inline __u64 py_note_pop(struct thread *t)
{
	__u64 req = 0;
	int i;

	for (i = 0; i < PY_NOTES && !req; i++) {
		if (!t->py_nnotes)
			return 0;
		req = t->py_notes[0];
		t->py_notes[0] = t->py_notes[1];
		t->py_notes[1] = t->py_notes[2];
		t->py_notes[2] = t->py_notes[3];
		t->py_notes[3] = 0;
		t->py_note_ns[0] = t->py_note_ns[1];
		t->py_note_ns[1] = t->py_note_ns[2];
		t->py_note_ns[2] = t->py_note_ns[3];
		t->py_nnotes--;
	}
	return req;
}

/* req's code runs in a unit bound to it: its note is no unbound task's. */
static __always_inline void py_note_drop(struct thread *t, __u64 req)
{
	int i;

	for (i = 0; i < PY_NOTES; i++)
		if (t->py_notes[i] == req)
			t->py_notes[i] = 0;
}

#endif /* AGENTPROF_PYTHON_BPF_H */
