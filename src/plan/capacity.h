/* SPDX-License-Identifier: GPL-2.0-only */
/* The one-line capacity summary per service that `record` (and the exporter) end with. */
#ifndef AGENTPROF_PLAN_CAPACITY_H
#define AGENTPROF_PLAN_CAPACITY_H

#include <stdio.h>

#include "profile.h"

/* One line per service of p: bottleneck, max requests/s per pod, memory per request in flight. */
void capacity__print_lines(struct profile *p, FILE *out);
/* The same lines as a JSON array of strings (the exporter's /profile ends with it). */
struct json_object *capacity__json(struct profile *p);

#endif /* AGENTPROF_PLAN_CAPACITY_H */
