/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_FEATURE_H
#define AGENTPROF_FEATURE_H

#include <stdbool.h>

/*
 * Named feature.h, not features.h: with -Isrc a src/features.h would shadow
 * glibc's <features.h>, which every libc header includes.
 */

/*
 * Kernel and privilege features agentprof depends on. Every one is probed by
 * trying it (create a map, load and attach a two-instruction program), never
 * inferred from the kernel version.
 */
enum feature_id {
	FEAT_BTF,
	FEAT_TRACEFS,
	FEAT_RINGBUF,
	FEAT_TP_BTF,
	FEAT_RAW_TP,
	FEAT_TRACEPOINT,
	FEAT_SOCK_TP,
	FEAT_UPROBE,
	FEAT_CGROUP2,
	FEAT_SOCKOPS,
	FEAT_TASK_STORAGE,
	FEAT_BPF_STATS,
	FEAT_KPROBE,
	FEAT_FENTRY,
	FEAT_CAP_BPF,
	FEAT_CAP_PERFMON,
	FEAT_CAP_SYS_ADMIN,
	FEAT_MEMLOCK,
	FEAT__COUNT
};

struct feature_result {
	bool ok;
	/*
	 * Required for agentprof to run. Alternatives (tp_btf or raw_tp;
	 * CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN) are resolved after probing: the
	 * one not needed because its alternative works is not required.
	 */
	bool required;
	char detail[256]; /* what was found, or why it failed (strerror) */
};

struct features {
	struct feature_result r[FEAT__COUNT];
	char tracefs_path[256]; /* "" when no tracefs is mounted */
	char cgroup2_path[256]; /* "" when no cgroup2 is mounted */
};

/* Run every probe; mounts tracefs at /sys/kernel/tracing if mount_tracefs. */
void features__probe(struct features *f, bool mount_tracefs);

/*
 * Only what chooses the mode the programs load in (BTF, tp_btf, socket
 * tracepoints, task storage): a few ms, for `record` (src/loader.c).
 */
void features__probe_modes(struct features *f);

const char *features__name(enum feature_id id);
/* What stops working when the feature is missing, one line. */
const char *features__impact(enum feature_id id);
/* How to fix it, one line. */
const char *features__fix(enum feature_id id);
/* True when every required feature is ok. */
bool features__can_run(const struct features *f);

/*
 * Whether tracing programs may use task-local storage (the helper, 5.13+;
 * the map type alone came in 5.11, for LSM programs): what `record` keeps
 * thread state in, and what the check's task storage row reports.
 */
bool feature__task_storage_in_tracing(void);

/*
 * The `agentprof check` subcommand: probe, print a table to stdout, then what
 * stops working and how to fix it for each missing feature. Returns 0 when
 * agentprof can run here, 1 otherwise.
 */
int check__run(bool verbose);

#endif /* AGENTPROF_FEATURE_H */
