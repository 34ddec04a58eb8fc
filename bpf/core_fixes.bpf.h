/* SPDX-License-Identifier: GPL-2.0-only */
/* Accessors for kernel fields that changed name or shape across versions. */
#ifndef AGENTPROF_CORE_FIXES_BPF_H
#define AGENTPROF_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

/*
 * A task_struct field: loaded directly from a BTF-typed pointer (tp_btf
 * arguments: no helper call), or with bpf_probe_read_kernel otherwise (raw_tp,
 * bpf_get_current_task()). btf must be a compile-time constant.
 */
#define TASK_FIELD(btf, task, field) ((btf) ? (task)->field : BPF_CORE_READ(task, field))

/*
 * bpf_get_current_task_btf() (5.11+) gives the current task as a BTF pointer,
 * whose fields are plain loads; before, every field is a helper call. Known
 * at load time: the verifier drops the branch not taken.
 */
#define HAVE_TASK_BTF bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_current_task_btf)

/*
 * task_struct::state became task_struct::__state (and unsigned int) in
 * kernel commit 2f064a59a11f ("sched: Change task_struct::state"), v5.14.
 */
struct task_struct___o {
	volatile long int state;
} __attribute__((preserve_access_index));

struct task_struct___x {
	unsigned int __state;
} __attribute__((preserve_access_index));

static __always_inline __s64 task_state(void *task, bool btf)
{
	struct task_struct___x *t = task;
	struct task_struct___o *o = task;

	if (bpf_core_field_exists(t->__state))
		return TASK_FIELD(btf, t, __state);
	return TASK_FIELD(btf, o, state);
}

/*
 * mm_struct::rss_stat became an array of percpu_counter in kernel commit
 * f1a7941243c1 ("mm: convert mm's rss stats into percpu_counter"), v6.2;
 * before, struct mm_rss_stat held atomic_long_t count[NR_MM_COUNTERS].
 * The percpu_counter's count is the folded value, off by at most one batch
 * per CPU: close enough for a per-request delta.
 */
struct mm_rss_stat___old {
	atomic_long_t count[4];
} __attribute__((preserve_access_index));

struct mm_struct___old {
	struct mm_rss_stat___old rss_stat;
} __attribute__((preserve_access_index));

struct mm_struct___pcpu {
	struct percpu_counter rss_stat[4];
} __attribute__((preserve_access_index));

enum { MM_FILEPAGES_, MM_ANONPAGES_, MM_SWAPENTS_, MM_SHMEMPAGES_ };

#define MM_FIELD(btf, mm, field) ((btf) ? (mm)->field : BPF_CORE_READ(mm, field))

/* Resident pages of mm: file + anon + shmem. btf: mm is a BTF pointer. */
static __always_inline __s64 mm_rss_pages(void *mm, bool btf)
{
	struct mm_struct___pcpu *n = mm;
	struct mm_struct___old *o = mm;

	if (!mm)
		return 0;
	/*
	 * Read with probe reads even from a BTF pointer: 6.1's verifier cannot
	 * walk an array of atomic_long_t (a typedef of a struct) in a direct
	 * load ("Type 'atomic_long_t' is not a struct").
	 */
	if (bpf_core_type_exists(struct mm_rss_stat___old))
		return BPF_CORE_READ(o, rss_stat.count[MM_FILEPAGES_].counter) +
		       BPF_CORE_READ(o, rss_stat.count[MM_ANONPAGES_].counter) +
		       BPF_CORE_READ(o, rss_stat.count[MM_SHMEMPAGES_].counter);
	return MM_FIELD(btf, n, rss_stat[MM_FILEPAGES_].count) +
	       MM_FIELD(btf, n, rss_stat[MM_ANONPAGES_].count) +
	       MM_FIELD(btf, n, rss_stat[MM_SHMEMPAGES_].count);
}

#endif /* AGENTPROF_CORE_FIXES_BPF_H */
