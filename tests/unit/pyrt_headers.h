/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct pyrt_offsets as the CPython headers on the include path lay it out: compiled with
 * -DPy_BUILD_CORE and -I for the version's Include/ (or /usr/include/python3.X) and its
 * internal/ directory. The unit test compares it with src/pyrt_offsets.c; tools/pyrt-offsets.sh
 * prints it for a new version's source tree.
 */
#ifndef AGENTPROF_PYRT_HEADERS_H
#define AGENTPROF_PYRT_HEADERS_H

#ifndef Py_BUILD_CORE
#error "pyrt_headers.h reads CPython's internal structs: compile with -DPy_BUILD_CORE"
#endif

#include <Python.h>
#include <stddef.h>

/* _PyRuntimeState and PyInterpreterState (struct _is) are only complete in the internal headers. */
#include "pycore_interp.h"
#include "pycore_runtime.h"

#include "pyrt_offsets.h"

static inline struct pyrt_offsets pyrt_headers__offsets(void)
{
	return (struct pyrt_offsets){
	    .runtime_interp_head = offsetof(_PyRuntimeState, interpreters.head),
	    .interp_threads_head = offsetof(PyInterpreterState, threads.head),
	    .tstate_next = offsetof(PyThreadState, next),
	    .tstate_native_tid = offsetof(PyThreadState, native_thread_id),
	    .tstate_context = offsetof(PyThreadState, context),
	};
}

#endif /* AGENTPROF_PYRT_HEADERS_H */
