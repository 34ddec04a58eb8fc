/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * `record --live`: the per-route table of the last interval (requests/s,
 * latency p95, CPU per request), redrawn in place on a terminal like top,
 * or appended as plain timestamped lines when stdout is not one.
 */
#ifndef AGENTPROF_LIVE_H
#define AGENTPROF_LIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "request.h"

#define LIVE_INTERVAL_NS 1000000000ULL

struct live;

/* tty: redraw in place; else plain lines. Returns NULL on no memory. */
struct live *live__new(FILE *out, bool tty, uint64_t sample_every);
/* One finished request, counted in the current interval. */
int live__add(struct live *l, const struct request *req);
/*
 * Called often (each poll); once an interval has passed since the last
 * print (now: CLOCK_MONOTONIC ns), prints it and starts the next.
 */
void live__tick(struct live *l, uint64_t now_ns);
void live__free(struct live *l);

#endif /* AGENTPROF_LIVE_H */
