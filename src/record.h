/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_RECORD_H
#define AGENTPROF_RECORD_H

#include "env.h"

/* `agentprof record`: returns the process exit code. */
int record__run(const struct env *env);

#endif /* AGENTPROF_RECORD_H */
