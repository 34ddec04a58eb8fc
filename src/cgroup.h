/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The CPU and memory limits a process runs under, read from its cgroup:
 * v1 (cpu.cfs_quota_us / cpu.cfs_period_us, memory.limit_in_bytes) or v2
 * (cpu.max, memory.max), the tightest on the path from the root.
 */
#ifndef AGENTPROF_CGROUP_H
#define AGENTPROF_CGROUP_H

#include <sys/types.h>

#include "services.h"

/*
 * Fills out for pid; root prefixes every path read ("" but for tests).
 * Returns 0, or -errno when /proc/PID/cgroup cannot be read (out says
 * version 0: unknown).
 */
int cgroup__read(const char *root, pid_t pid, struct service_cgroup *out);

#endif /* AGENTPROF_CGROUP_H */
