/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Where a group's time goes: its mean latency split into CPU, run queue,
 * PostgreSQL, upstreams, locks, disk and the rest, each the mean per request
 * of a quantity the profile measured on its own. Read by every output that
 * shows it (the terminal table, the HTML report), so they agree.
 */
#ifndef AGENTPROF_BREAKDOWN_H
#define AGENTPROF_BREAKDOWN_H

#include "profile.h"

enum bd_part {
	BD_CPU,	     /* on a CPU */
	BD_RUNQ,     /* runnable, waiting for a CPU */
	BD_PG,	     /* a PostgreSQL round trip open (pg_time_ns) */
	BD_UPSTREAM, /* waiting on upstream replies (upstream_wait_ns) */
	BD_LOCK,     /* blocked in futex() */
	BD_DISK,     /* blocked in file I/O */
	BD_OTHER,    /* the rest of the latency: sleeps, an event loop's other work */
	BD__COUNT,
};

struct breakdown {
	double mean_ns[BD__COUNT];
	double latency_ns; /* mean duration */
	/*
	 * How far the measured parts add up beyond the latency: work on
	 * several threads at once, or CPU while a reply is awaited. 0 mostly.
	 */
	double overlap_ns;
};

void breakdown__of(const struct profile_group *g, struct breakdown *b);
/* "CPU", "run queue", "PostgreSQL", ... */
const char *breakdown__name(enum bd_part part);
/* "cpu", "runq", "pg", ...: for narrow columns and CSS classes */
const char *breakdown__short(enum bd_part part);
/*
 * The largest parts, at most max and each at least min_share of the latency,
 * as "ups 79% pg 8% cpu 8%" in out. Returns out.
 */
char *breakdown__top(const struct breakdown *b, int max, double min_share, char *out, size_t sz);

#endif /* AGENTPROF_BREAKDOWN_H */
