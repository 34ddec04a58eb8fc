// SPDX-License-Identifier: GPL-2.0-only
/*
 * The offsets of struct pyrt_offsets in the CPython headers on the include path: compiled with
 * -DPy_BUILD_CORE, -I for the version's headers and -I for their internal/ directory (see
 * pyrt_headers.h for why once per version).
 */
#ifndef Py_BUILD_CORE
#error "pyrt_headers.c reads CPython's internal structs: compile with -DPy_BUILD_CORE"
#endif

#include <Python.h>
#include <stddef.h>

/* _PyRuntimeState and PyInterpreterState (struct _is) are complete only in the internal headers. */
#include "pycore_interp.h"
#include "pycore_runtime.h"

#include "pyrt_headers.h"

static const struct pyrt_headers entry = {
    .major = PY_MAJOR_VERSION,
    .minor = PY_MINOR_VERSION,
    .version = PY_VERSION,
    .off =
	{
	    .runtime_interp_head = offsetof(_PyRuntimeState, interpreters.head),
	    .interp_threads_head = offsetof(PyInterpreterState, threads.head),
	    .tstate_next = offsetof(PyThreadState, next),
	    .tstate_native_tid = offsetof(PyThreadState, native_thread_id),
	    .tstate_context = offsetof(PyThreadState, context),
	},
};
static const struct pyrt_headers *const entry_ptr __attribute__((section("pyrt_headers"), used)) =
    &entry;

/* The reader reads native_thread_id as 8 bytes and context as a pointer. */
_Static_assert(sizeof(((PyThreadState *)0)->native_thread_id) == 8, "native_thread_id is 8 bytes");
_Static_assert(sizeof(((PyThreadState *)0)->context) == 8, "context is a pointer");
