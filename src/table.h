/* SPDX-License-Identifier: GPL-2.0-only */
/* The per-route table `record` prints: 120 columns by default, every column with --wide. */
#ifndef AGENTPROF_TABLE_H
#define AGENTPROF_TABLE_H

#include <stdbool.h>
#include <stdio.h>

#include "profile.h"

#define TABLE_ROUTE_W 25

void table__print(struct profile *p, FILE *out, bool wide);
/*
 * s cut to width w (w >= 5) by its middle, "/agent/co..:id/end", into out
 * (w + 1 bytes): a route's start and end tell it apart, rarely its middle.
 */
const char *table__fit(const char *s, int w, char *out);

#endif /* AGENTPROF_TABLE_H */
