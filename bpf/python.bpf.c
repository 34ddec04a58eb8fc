// SPDX-License-Identifier: GPL-2.0-only
/*
 * Uprobes of the CPython runtime reader (python.bpf.h, docs/python.md).
 * Attached by src/pyrt.c only where a traced process runs a CPython whose
 * layout it knows.
 *
 * - ap_py_copy: a new Context, just returned by PyContext_CopyCurrent(): a
 *   Task's (Task.__init__) or copy_context()'s (call_soon's handles, anyio's
 *   job contexts); src/pyrt.c probes the instruction after those calls, or
 *   a tail call's return (Future.add_done_callback's copies are left out).
 *   It works for the request the copying thread works for: "a task created
 *   while a request is dispatched inherits it".
 * - ap_py_step: asyncio's C Task step resumes the task's coroutine with
 *   PyIter_Send(). The probe sits on that call in _asyncio's shared
 *   object, so it fires once per step, not at each level
 *   of the await chain (each of which calls PyIter_Send too). A step that
 *   ends by awaiting a future makes no syscall: without it, the CPU of the
 *   next task's step would be charged to it. The next step's probe ends
 *   it; no return probe (a uretprobe costs a second trap per step).
 *
 * Neither asks traced(): src/pyrt.c attaches them to a traced process's
 * pid alone, and the kernel runs them for no other (a forked child's copy
 * of the breakpoint is removed at its first hit).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"

__u32 py_procs_gen = 0;	/* python.bpf.h */

SEC("uretprobe")
int BPF_KRETPROBE(ap_py_copy, void *ctx_new)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct thread *t;
	__u64 req = 0;

	if (!ctx_new)
		return 0;
	t = thread_current();
	if (t && !py_none(t)) {
		py_sync(t, bpf_ktime_get_ns());
		/* A copy of a guess (or of a thread rule's binding) is a guess. */
		if (t->py == PY_FOUND && t->req_id)
			req = t->req_id | (t->py_known ? 0 : PY_UNIT_GUESS);
	}
	/*
	 * Always written when the copy is a request's; otherwise the address
	 * may be a freed context's, bound to its request: forgotten. The
	 * loop's own copies are most: a lookup first spares them an update.
	 */
	if (req) {
		/* The parent: a connection's handler task makes a task per request (aiohttp). */
		py_unit_new(tgid, (__u64)ctx_new, req, t->py_unit);
	} else {
		py_unit_forget(tgid, (__u64)ctx_new);
	}
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ap_py_step)
{
	struct thread *t;
	__u32 tgid;
	__u64 req;

	t = thread_current();
	if (!t || py_none(t))
		return 0;
	t->py_loop = 1;
	py_sync(t, bpf_ktime_get_ns());
	if (t->py != PY_FOUND || t->py_unit <= PY_BETWEEN)
		return 0;
	/* A task of the request runs: its head is no unbound task's. */
	if (t->req_id)
		t->py_last = t->req_id;
	/*
	 * Bound, or guessed already: its request's head is no other task's.
	 * (Known and bound to nothing: it answered a request not traced.)
	 */
	if (t->req_id) {
		if (t->py_known && t->py_nnotes)
			py_note_drop(t, t->req_id);
		return 0;
	}
	/*
	 * A task no request's copy made: a connection's handler task
	 * (asyncio streams, aiohttp). Its connection's next requests bind it
	 * when their heads are read (request_open()). For its first, the
	 * heads the loop read: the handler tasks they wake run in the order
	 * the heads were read. These are guesses (PY_UNIT_GUESS): its CPU
	 * waits for its own I/O to say whose it is (py_pends()).
	 */
	tgid = bpf_get_current_pid_tgid() >> 32;
	req = py_note_pop(t);
	if (!req || !request_lookup(req)) {
		py_unit_unbind(tgid, t->py_unit);
		return 0;
	}
	/* A guess: the calls it makes are req's, its CPU waits for its response. */
	py_unit_set(tgid, t->py_unit, req | PY_UNIT_GUESS);
	t->py_known = 0;
	py_switch(t, req);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
