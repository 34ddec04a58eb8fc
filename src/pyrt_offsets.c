// SPDX-License-Identifier: GPL-2.0-only
/*
 * CPython struct offsets per version (x86-64, release build, default configure options).
 *
 * Every number is offsetof() printed by a program compiled with -DPy_BUILD_CORE against the
 * release's own headers after ./configure (tools/pyrt-offsets.sh), never counted by hand:
 * 3.11 from Debian 12's /usr/include/python3.11 (3.11.2), 3.12 from the 3.12.1 and 3.12.6
 * release trees, 3.13 from the 3.13.5 and 3.13.15 release trees; the patch releases of one
 * minor version agree. tests/unit/test_pyrt_offsets.c checks the table against every installed
 * /usr/include/python3.X and walks a live /usr/bin/python3.11 with it (3.12.1 and 3.13.0 walked
 * too, through PYRT_TEST_PYTHONS).
 *
 * What the runtime does, the same in 3.11, 3.12 and 3.13 (docs/cpython-offsets.md has the
 * details and the line numbers of each version):
 * - asyncio's C task step resumes the coroutine with PyIter_Send(coro, Py_None, ...)
 *   (Modules/_asynciomodule.c task_step_impl; 3.11.2:2690), but with coro.throw() when it
 *   resumes with an exception. 3.11's SEND opcode calls PyIter_Send too (Python/ceval.c:2589):
 *   probe the call in _asyncio, not the function.
 * - copy_context() (Modules/_contextvarsmodule.c:19), C Task.__init__ (3.11.2:2027) and C
 *   Future.add_done_callback (3.11.2:972) create contexts with the exported
 *   PyContext_CopyCurrent (Python/context.c:101); so does every loop.call_soon() without a
 *   context (Lib/asyncio/events.py Handle.__init__).
 * - Context.run (context_run) sets PyThreadState.context through the static
 *   _PyContext_Enter/_PyContext_Exit (Python/context.c; 3.11.2:113/145), never the exported
 *   PyContext_Enter. Each event-loop callback, task steps included, runs in Context.run with
 *   its context (events.py Handle._run), so during a step the field is the task's context.
 * - 3.13's _PyRuntime starts with _Py_DebugOffsets, which holds the first four offsets below
 *   (at +40, +72, +168, +200) but not the context's.
 */
#include "pyrt_offsets.h"

#include <stddef.h>

struct pyrt_version {
	int major, minor;
	struct pyrt_offsets off;
};

static const struct pyrt_version versions[] = {
	{3, 11, {.runtime_interp_head = 40, .interp_threads_head = 16, .tstate_next = 8,
		 .tstate_native_tid = 160, .tstate_context = 224}},
	{3, 12, {.runtime_interp_head = 40, .interp_threads_head = 72, .tstate_next = 8,
		 .tstate_native_tid = 144, .tstate_context = 208}},
	/* _PyRuntime starts with the 584-byte _Py_DebugOffsets, and PyInterpreterState with its
	 * _ceval_state whose pending-calls array is 7 KB: hence the large first two. */
	{3, 13, {.runtime_interp_head = 632, .interp_threads_head = 7344, .tstate_next = 8,
		 .tstate_native_tid = 160, .tstate_context = 208}},
};

const struct pyrt_offsets *pyrt_offsets__find(int major, int minor)
{
	size_t i;

	for (i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		if (versions[i].major == major && versions[i].minor == minor)
			return &versions[i].off;
	}
	return NULL;
}
