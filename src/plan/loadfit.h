/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * How a service's CPU per request changes with how busy its CPU is, fitted
 * from the profile's samples (docs/plan.md, "CPU per request against load").
 *
 * An event loop that is idle when an event comes sleeps and is woken for
 * it; a busy one finds the event at its next turn, with no sleep and no
 * wakeup. So its CPU per request falls as it gets busier. Over windows of
 * the recording, CPU per request d against the CPU's busy fraction u is
 * fitted as d = sat + idle * (1 - u): sat is what a request costs a
 * saturated CPU, idle what an idle one adds.
 */
#ifndef AGENTPROF_PLAN_LOADFIT_H
#define AGENTPROF_PLAN_LOADFIT_H

#include <stdbool.h>
#include <stddef.h>

#include "services.h"

/* Intervals per window: a second's CPU ticks (10 ms) are too coarse alone. */
#define LOADFIT_WINDOW 10
/* A window counts with at least this many arrivals. */
#define LOADFIT_MIN_ARRIVALS 10
#define LOADFIT_MIN_WINDOWS 4
/* The windows' busy fractions must span this much for a slope to mean anything. */
#define LOADFIT_MIN_SPAN 0.15
/* Windows this many standard errors off the first fit are left out of the second. */
#define LOADFIT_OUTLIER 3.0

struct loadfit {
	bool fitted;	   /* false: CPU per request taken as constant (why says why) */
	char why[160];
	int windows;	   /* windows used */
	double window_s;   /* their length */
	int dropped;	   /* windows left out as outliers */
	double u_lo, u_hi; /* the busy fractions they span */
	double u_mean;	   /* arrival-weighted: the load the profile's means were measured at */
	double sat, idle;  /* s of CPU per request: d(u) = sat + idle * (1 - u) */
	double idle_se;	   /* idle's standard error */
	double sigma;	   /* the residuals' deviation, per unit weight (an arrival) */
};

/*
 * Fits svc's samples (interval_s long each) against cores, the CPU the
 * requests run on (the pod's limit, or the loops' cores). Never fails:
 * without enough windows, spread or a falling slope, fit->fitted is false.
 */
void loadfit__fit(const struct service *svc, double interval_s, double cores,
		  struct loadfit *fit);
/*
 * The factor CPU per request at busy fraction u is of the profile's mean (1
 * when not fitted).
 */
double loadfit__factor(const struct loadfit *fit, double u);

#endif /* AGENTPROF_PLAN_LOADFIT_H */
