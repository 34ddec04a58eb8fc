/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The CPython runtime reader, userspace side (docs/python.md): finds the
 * CPython runtime of a traced process (_PyRuntime in the executable or in
 * libpython, its version, the struct offsets of that version), hands them
 * to the BPF side (py_procs), and attaches the uprobes that bound units of
 * work: PyContext_CopyCurrent in the runtime, and the PyIter_Send call of
 * asyncio's C Task step (its PLT entry in _asyncio's shared object).
 * A process it cannot read keeps the thread rules ("heuristic").
 */
#ifndef AGENTPROF_PYRT_H
#define AGENTPROF_PYRT_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#define PYRT_MAX_PROCS 256
#define PYRT_MAX_FILES 8
/* Per process: PyContext_CopyCurrent's return, and the task step. */
#define PYRT_MAX_LINKS (PYRT_MAX_PROCS * 2)

struct agentprof_bpf;
struct bpf_link;

enum pyrt_kind {
	PYRT_OTHER,		/* not a CPython process */
	PYRT_TASK_AWARE,	/* units followed: contexts, task steps where probed */
	PYRT_HEURISTIC,		/* CPython, but unreadable: the thread rules */
};

struct pyrt_proc {
	pid_t pid;
	enum pyrt_kind kind;
	int minor;		/* CPython 3.minor */
	bool steps;		/* asyncio task steps probed */
	char why[160];		/* heuristic: the reason; task-aware: what is missing */
};

/* An _asyncio extension file and where its task-step probe goes. */
struct pyrt_file {
	char path[PATH_MAX];
	size_t step_off;	/* file offset of its PLT entry for PyIter_Send; 0: none */
};

struct pyrt {
	struct pyrt_proc procs[PYRT_MAX_PROCS];
	int nprocs;
	struct pyrt_file asyncios[PYRT_MAX_FILES];
	int nasyncios;
	struct bpf_link *links[PYRT_MAX_LINKS];
	int nlinks;
};

/*
 * Looks at process pid once (later calls for it return at once): when it
 * runs a CPython agentprof can read, describes it to the BPF side and
 * attaches its probes. Returns its kind, or
 * -errno when it could not be looked at (it exited: try again later).
 */
int pyrt__add(struct pyrt *rt, struct agentprof_bpf *skel, pid_t pid);
/* One line per CPython process from the from-th: "pid N: python3.11 task-aware (...)". */
void pyrt__report(const struct pyrt *rt, int from, FILE *out);
void pyrt__detach(struct pyrt *rt);

#endif /* AGENTPROF_PYRT_H */
