/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The CPython runtime reader, userspace side (docs/python.md): finds the
 * CPython runtime of a traced process (_PyRuntime in the executable or in
 * libpython, its version, the struct offsets of that version), hands them
 * to the BPF side (py_procs), and attaches the uprobes that bound units of
 * work: after the calls of PyContext_CopyCurrent that make a task's or a
 * job's context (or on the function), and on the PyIter_Send call of
 * asyncio's C Task step (in _asyncio's shared object).
 * A process it cannot read keeps the thread rules ("heuristic").
 */
#ifndef AGENTPROF_PYRT_H
#define AGENTPROF_PYRT_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#define PYRT_MAX_PROCS 256
/* Files looked at: runtimes, _asyncio, _contextvars, other extensions. */
#define PYRT_MAX_FILES 32
/* Files besides the runtime and _asyncio that make contexts, per process. */
#define PYRT_MAX_COPIERS 6
/* Copy sites probed in one file; more, and its PLT entry is. */
#define PYRT_MAX_SITES 4
/* Per process: a few copy sites, and the task step. */
#define PYRT_MAX_LINKS (PYRT_MAX_PROCS * 4)

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
	char copies[200];	/* how its copies are probed, if not as designed */
};

enum pyrt_role {
	PYRT_ROLE_RUNTIME,	/* the executable or libpython */
	PYRT_ROLE_ASYNCIO,	/* _asyncio: task steps, tasks' and callbacks' copies */
	PYRT_ROLE_COPIER,	/* another file that makes contexts (_contextvars) */
};

/* A uprobe in a file: after a call (its return value), or a return probe. */
struct pyrt_site {
	size_t off;		/* file offset */
	bool ret;
};

/* A file looked at once, for every process that maps it. */
struct pyrt_file {
	char path[PATH_MAX];
	size_t step_off;	/* _asyncio: file offset of its PyIter_Send call; 0: none */
	struct pyrt_site sites[PYRT_MAX_SITES];	/* where its copies are probed */
	int nsites;
	int skipped;		/* copy sites left unprobed (Future.add_done_callback's) */
	bool whole;		/* its copies are not found by site: probe the function */
	char why[160];
};

struct pyrt {
	struct pyrt_proc procs[PYRT_MAX_PROCS];
	int nprocs;
	struct pyrt_file files[PYRT_MAX_FILES];
	int nfiles;
	struct bpf_link *links[PYRT_MAX_LINKS];
	int nlinks;
	bool no_steps;		/* --python contexts */
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
