// SPDX-License-Identifier: GPL-2.0-only
/*
 * Uprobes of the CPython runtime reader (python.bpf.h, docs/python.md).
 * Attached by src/pyrt.c only where a traced process runs a CPython whose
 * layout it knows.
 *
 * - ap_py_copy: PyContext_CopyCurrent() returns a new Context: a Task's,
 *   a callback's (call_soon, add_done_callback) or copy_context()'s (anyio
 *   hands it to the pool thread). It works for the request the copying
 *   thread works for: "a task created while a request is dispatched
 *   inherits it".
 * - ap_py_step / ap_py_step_ret: asyncio's C Task step resumes the task's
 *   coroutine with PyIter_Send(). The probe sits on the call site's PLT
 *   entry in _asyncio's shared object, so it fires once per step, not at
 *   each level of the await chain (each of which calls PyIter_Send too).
 *   A step that ends by awaiting a future makes no syscall: without these,
 *   the CPU of the next unit would be charged to it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"

SEC("uretprobe")
int BPF_KRETPROBE(ap_py_copy, void *ctx_new)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct thread *t;
	__u64 req = 0;

	if (!ctx_new || !traced(tgid))
		return 0;
	t = thread_current();
	if (t && t->py != PY_NONE) {
		py_sync(t, bpf_ktime_get_ns());
		if (t->py == PY_FOUND)
			req = t->req_id;
	}
	/*
	 * Always written: the address may be a freed context's, bound to its
	 * request. An unbound copy is marked fresh: the first step of a task
	 * made of it takes no request head (ap_py_step()).
	 */
	py_unit_set(tgid, (__u64)ctx_new, req ?: PY_UNIT_FRESH | bpf_ktime_get_ns());
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ap_py_step)
{
	struct thread *t;
	__u32 tgid;
	__u64 req;

	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	t = thread_current();
	if (!t || t->py == PY_NONE)
		return 0;
	t->py_loop = 1;
	py_sync(t, bpf_ktime_get_ns());
	if (t->py != PY_FOUND || t->py_unit <= PY_BETWEEN)
		return 0;
	/* A task of the request runs: its head is no unbound task's. */
	if (t->py_known) {
		if (t->py_nnotes)
			py_note_drop(t, t->req_id);
		return 0;
	}
	/*
	 * A task no request's copy made: a connection's handler task
	 * (asyncio streams, aiohttp). Its connection's next requests bind it
	 * when their heads are read (request_open()). For its first, the
	 * heads the loop read: the handler tasks they wake run in the order
	 * the heads were read. In its first step it may find its
	 * connection's first head read already: only one read since it was
	 * made (one read before is another connection's, whose task existed
	 * already). These are guesses (PY_UNIT_GUESS): its CPU waits for its
	 * own I/O to say whose it is (py_pends()).
	 */
	tgid = bpf_get_current_pid_tgid() >> 32;
	req = py_unit_req(tgid, t->py_unit);
	if (req & PY_UNIT_FRESH)
		req = py_note_take(t, req & ~PY_UNIT_FRESH);
	else
		req = py_note_pop(t);
	if (!req || !request_lookup(req)) {
		py_unit_unbind(tgid, t->py_unit);
		return 0;
	}
	/* A guess: the calls it makes are req's, its CPU waits for its response. */
	py_unit_set(tgid, t->py_unit, req | PY_UNIT_GUESS);
	py_switch(t, req);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_py_step_ret)
{
	struct thread *t;

	if (!traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	t = thread_current();
	if (!t || t->py != PY_FOUND)
		return 0;
	/* The step's CPU is its task's. */
	thread_charge_current(t, NULL, bpf_ktime_get_ns());
	py_leave(t, bpf_get_current_pid_tgid() >> 32);
	if (t->req_id)
		t->py_last = t->req_id;
	/* What the loop runs next is nobody's until a unit says whose. */
	t->py_unit = PY_BETWEEN;
	t->py_known = 0;
	py_switch(t, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
