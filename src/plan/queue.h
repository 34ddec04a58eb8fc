/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Queueing models for `agentprof plan`: open arrivals at an M/M/c station
 * (Erlang C) and closed populations with think time (exact mean-value
 * analysis over queueing, multi-server and delay stations). Times are in
 * seconds, rates per second. No knowledge of profiles here: plain numbers in,
 * plain numbers out, so the unit tests can hold it to published values.
 */
#ifndef AGENTPROF_PLAN_QUEUE_H
#define AGENTPROF_PLAN_QUEUE_H

#include <stddef.h>

/*
 * Erlang C: the probability that an arrival waits at an M/M/c station
 * offered a = lambda * S erlangs. 1 when a >= c (saturated), 0 when a <= 0.
 */
double queue__erlang_c(int c, double a);

/* Mean time in queue (not in service) at M/M/c; INFINITY when saturated. */
double queue__mmc_wait_mean(int c, double lambda, double s);

/* P(wait in queue > t) at M/M/c, FCFS: C(c, a) * exp(-(c/S - lambda) t). */
double queue__mmc_wait_tail(int c, double lambda, double s, double t);

enum queue_kind {
	QK_QUEUE, /* one server, load-independent (FCFS or processor sharing) */
	QK_MULTI, /* `servers` identical servers: a pool of connections, cores, workers */
	QK_DELAY, /* infinite servers: time spent but no capacity used (upstream waits) */
};

struct queue_station {
	enum queue_kind kind;
	double demand; /* seconds of service per request (service time x visits) */
	int servers;   /* QK_MULTI only; QK_QUEUE is 1 */
	/*
	 * Seconds of service more per request when the servers are idle, none
	 * when they are busy: the demand at utilisation u is demand +
	 * idle_demand * (1 - u) (an event loop's wakeups, plan/loadfit.h). 0:
	 * a constant demand.
	 */
	double idle_demand;
};

/*
 * A station's demand at open arrivals lambda: with idle_demand, the
 * utilisation u that solves u = lambda * (demand + idle_demand * (1 - u)) /
 * servers gives it.
 */
double queue__open_demand(const struct queue_station *s, double lambda);

/* Per station, at one population. */
struct queue_station_result {
	double residence; /* seconds per request at the station, queueing included */
	double queue_len; /* mean requests at the station */
	double util;	  /* busy fraction of its servers (delay: mean requests there) */
	double p_wait;	  /* probability an arriving request finds every server busy */
	double wait_mean; /* its wait in queue: mean and second moment (over all arrivals) */
	double wait_m2;
};

struct queue_mva_point {
	int n;	      /* population */
	double x;     /* throughput, requests per second */
	double r;     /* response time: sum of residences */
};

/*
 * Single-class MVA for populations 1..n_max with think time z, exact for
 * constant demands
 * (Reiser & Lavenberg 1980; multi-server stations by their marginal
 * probabilities, Bolch et al. 2006, sec. 8.2), and what an arrival finds at
 * each station (arrival theorem) as its wait's moments. points has n_max entries;
 * per_station (may be NULL) n_max * nstations, row n-1 for population n.
 * A station with idle_demand takes its demand at population n from its
 * utilisation at n - 1 (0 at n = 1), so it falls as the population grows.
 * Returns 0, or -EINVAL on bad arguments, -ENOMEM.
 */
int queue__mva(const struct queue_station *st, size_t nstations, double z, int n_max,
	       struct queue_mva_point *points, struct queue_station_result *per_station);

/* Erlang(64) has a coefficient of variation of 1/8: concentrated enough for any queue. */
#define QUEUE_MAX_SHAPE 64

/* A wait in queue: 0 with probability 1 - p, else Erlang(shape) with this mean. */
struct queue_wait {
	double p, mean;
	int shape; /* 1: exponential (M/M/c); more: concentrated (a closed queue's many ahead) */
};

/*
 * Combines the waits of several stations (means and second moments over
 * all arrivals, chances of waiting), taken as independent, into one wait
 * whose conditional mean and variance match (shape rounded, 1 to QUEUE_MAX_SHAPE).
 */
struct queue_wait queue__wait_combine(const double *mean, const double *m2, const double *p,
				      size_t n);

/*
 * The response-time tail of a request whose time without queueing is drawn
 * from the discrete distribution (v[i] seconds with probability p[i]) and
 * which also waits w (independent). Returns P(base + W > t).
 */
double queue__tail_with_wait(const double *v, const double *p, size_t n,
			     const struct queue_wait *w, double t);

/* The q-quantile of that response time (bisection on the tail). */
double queue__quantile_with_wait(const double *v, const double *p, size_t n,
				 const struct queue_wait *w, double q);

#endif /* AGENTPROF_PLAN_QUEUE_H */
