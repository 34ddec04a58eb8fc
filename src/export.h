/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_EXPORT_H
#define AGENTPROF_EXPORT_H

#include "env.h"

/* The version agentprof_build_info reports (as argp's --version in env.c). */
#define AGENTPROF_VERSION "0.1.0"

/* `agentprof export`: returns the process exit code. */
int export__run(const struct env *env);

#endif /* AGENTPROF_EXPORT_H */
