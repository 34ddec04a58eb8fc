/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * `agentprof diff BEFORE AFTER`: per (service, method, route, class), what
 * changed between two profiles, each change told from noise by the
 * intervals of diff_stats.h, rows sorted by impact. Writers: diff_text.c,
 * diff_json.c, diff_html.c.
 */
#ifndef AGENTPROF_DIFF_H
#define AGENTPROF_DIFF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "diff_stats.h"
#include "env.h"
#include "profile.h"

enum diff_verdict {
	DV_SAME,   /* within noise */
	DV_SMALL,  /* beyond noise, below --threshold or --min-ms */
	DV_BETTER, /* beyond noise and threshold, lower */
	DV_WORSE,  /* beyond noise and threshold, higher */
	DV_NEW,	   /* row: only in AFTER */
	DV_GONE,   /* row: only in BEFORE */
};

enum diff_unit {
	DU_NS,
	DU_COUNT,
};

enum diff_stat {
	DS_QUANTILE,
	DS_MEAN,
};

struct diff_metric_def {
	const char *key;  /* JSON and HTML: "lat_p95" */
	const char *name; /* text: "latency p95" */
	enum profile_metric metric;
	enum diff_stat stat;
	double q; /* DS_QUANTILE */
	enum diff_unit unit;
};

#define DIFF_NMETRICS 8

struct diff_metric {
	const struct diff_metric_def *def;
	struct diff_ci before, after;
	double change;	 /* after - before */
	double relative; /* change / before; INFINITY from 0 */
	bool judged;	 /* enough requests on both sides for this statistic */
	bool significant;
	enum diff_verdict verdict;
};

struct diff_row {
	const struct profile_group *b, *a; /* either may be NULL */
	const char *service, *method, *route, *class;
	uint64_t requests_before, requests_after;
	struct diff_metric m[DIFF_NMETRICS];
	enum diff_verdict verdict;
	double impact_ns; /* requests after x change of the mean latency */
};

/*
 * A quantile is judged only with this many requests on each side of it, in
 * both profiles: a p95 needs 200 requests, a p99 1000. Fewer leave its
 * interval resting on a handful of outliers (one burst of load on the host).
 */
#define DIFF_MIN_TAIL 10

struct diff_opts {
	double threshold; /* a relative change: 0.10 for 10% */
	double min_ns;	  /* the smallest change of a time that is flagged */
	double min_count; /* ... of a count per request (round trips) */
	double z;
};

struct diff_side {
	const char *path;
	struct profile *p;
	uint64_t requests;
	double seconds;
};

struct diff {
	struct diff_opts o;
	struct diff_side before, after;
	struct diff_row *rows;
	size_t nrows;
	size_t worse, better, changed, same, added, gone;
};

extern const struct diff_metric_def diff_metrics[DIFF_NMETRICS];

/* Fills d->rows from d->before.p and d->after.p; returns 0 or -ENOMEM. */
int diff__compute(struct diff *d);
void diff__free(struct diff *d);
const char *diff__verdict_name(enum diff_verdict v);
/* Returns the process exit code: 0, 1 when a regression was flagged, 2 on an error. */
int diff__run(const struct env *env);

void diff__print_text(const struct diff *d, FILE *out);
int diff__print_json(const struct diff *d, FILE *out);
int diff__write_html(const struct diff *d, FILE *out);

#endif /* AGENTPROF_DIFF_H */
