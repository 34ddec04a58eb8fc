/* SPDX-License-Identifier: GPL-2.0-only */
/* Accessors for kernel fields that changed name or shape across versions. */
#ifndef AGENTPROF_CORE_FIXES_BPF_H
#define AGENTPROF_CORE_FIXES_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_core_read.h>

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

static __always_inline __s64 task_state(void *task)
{
	struct task_struct___x *t = task;

	if (bpf_core_field_exists(t->__state))
		return BPF_CORE_READ(t, __state);
	return BPF_CORE_READ((struct task_struct___o *)task, state);
}

#endif /* AGENTPROF_CORE_FIXES_BPF_H */
