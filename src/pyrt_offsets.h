/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * CPython struct offsets, per major.minor, for the runtime reader's walk from the exported
 * _PyRuntime global to the thread state of a Linux thread and its current contextvars.Context:
 *
 *   _PyRuntime.interpreters.head -> PyInterpreterState
 *   PyInterpreterState.threads.head -> PyThreadState -> .next -> ...
 *   PyThreadState.native_thread_id (the tid), PyThreadState.context
 *
 * x86-64, release build, default configure options. How each number was obtained, and how to
 * add a version: docs/cpython-offsets.md.
 */
#ifndef AGENTPROF_PYRT_OFFSETS_H
#define AGENTPROF_PYRT_OFFSETS_H

/* Byte offsets of each field from the start of its struct. */
struct pyrt_offsets {
	unsigned int runtime_interp_head; /* _PyRuntimeState.interpreters.head */
	unsigned int interp_threads_head; /* PyInterpreterState.threads.head */
	unsigned int tstate_next;	  /* PyThreadState.next */
	unsigned int tstate_native_tid;	  /* PyThreadState.native_thread_id */
	unsigned int tstate_context;	  /* PyThreadState.context */
};

/* The offsets of CPython major.minor, NULL if unknown. */
const struct pyrt_offsets *pyrt_offsets__find(int major, int minor);

#endif /* AGENTPROF_PYRT_OFFSETS_H */
