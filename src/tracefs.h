/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_TRACEFS_H
#define AGENTPROF_TRACEFS_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Find a mounted tracefs and write its mount point into path_out.
 * Prefers /sys/kernel/tracing, then /sys/kernel/debug/tracing (including the
 * copy debugfs automounts on first access), then any other tracefs mount.
 */
bool tracefs__mounted(char *path_out, size_t sz);

/*
 * Like tracefs__mounted(), but mounts tracefs at /sys/kernel/tracing when no
 * mount is found. Returns 0 on success; -errno on failure, with a one-line
 * message in err that says what failed and what to do.
 */
int tracefs__ensure(char *path_out, size_t sz, char *err, size_t errsz);

#endif /* AGENTPROF_TRACEFS_H */
