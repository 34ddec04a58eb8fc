/* SPDX-License-Identifier: GPL-2.0-only */
/* `agentprof report`: a profile as one self-contained HTML page. */
#ifndef AGENTPROF_REPORT_H
#define AGENTPROF_REPORT_H

#include <stdio.h>

#include "env.h"
#include "profile.h"

/* Returns the process exit code. */
int report__run(const struct env *env);
/* The page for p, read from source (named in the page); returns 0 or -errno. */
int report__write(struct profile *p, const char *source, FILE *out);

#endif /* AGENTPROF_REPORT_H */
