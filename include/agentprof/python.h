/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What userspace tells the BPF side about a CPython process (the py_procs
 * map, bpf/python.bpf.h; filled by src/pyrt.c), and the size of its table
 * of units.
 */
#ifndef AGENTPROF_PYTHON_H
#define AGENTPROF_PYTHON_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

struct ap_py_proc {
	__u64 runtime;		/* address of _PyRuntime in the process */
	__u32 interp_head;	/* _PyRuntimeState.interpreters.head */
	__u32 threads_head;	/* PyInterpreterState.threads.head */
	__u32 ts_next;		/* PyThreadState.next */
	__u32 ts_native_tid;	/* PyThreadState.native_thread_id */
	__u32 ts_context;	/* PyThreadState.context */
	__u32 pad;
};

/* log2 of the sets of the CPython units' table (py_units, bpf/python.bpf.h). */
#define PY_UNIT_SET_BITS 13

#endif /* AGENTPROF_PYTHON_H */
