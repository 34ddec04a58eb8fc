/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The capacity model of one service, built from a profile: service demands
 * per route and class, the stations they load (CPU as the pod and its event
 * loops or threads allow, the PostgreSQL pool, delays), the bottleneck,
 * latency against load for open arrivals and closed populations, the knee,
 * and what a pod and its autoscaler need.
 */
#ifndef AGENTPROF_PLAN_MODEL_H
#define AGENTPROF_PLAN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "loadfit.h"
#include "plan/queue.h"
#include "profile.h"

#define PLAN_MAX_MIX 32
#define PLAN_MAX_GROUPS 256
#define PLAN_MAX_STATIONS 4
#define PLAN_MAX_NOTES 32
#define PLAN_NOTE_MAX 448
#define PLAN_CURVE_MAX 400

struct plan_mix {
	char key[PROFILE_NAME_MAX * 2]; /* a class, or a route */
	double weight;
};

struct plan_opts {
	const char *service;	/* NULL: the one with most requests */
	double target_rps;	/* 0: none */
	int users;		/* 0: none */
	double think_s;		/* < 0: from the profile */
	struct plan_mix mix[PLAN_MAX_MIX];
	int nmix;		/* 0: the profile's own mix */
	double slo_p95_s, slo_p99_s; /* 0: not asked */
	double pod_cpu;		/* cores; 0: the profile's cgroup */
	uint64_t pod_memory;	/* bytes; 0: the profile's cgroup */
	int db_pool;		/* 0: the profile's hint */
	int workers;		/* 0: the processes seen */
	double scale_lag_s;	/* time from the trigger to a new pod serving */
	double growth_per_min;	/* load growth the headroom must absorb, fraction a minute */
	unsigned min_requests;	/* fewer in a planned group: too thin */
};

void plan_opts__defaults(struct plan_opts *o);

struct plan_group {
	char method[PROFILE_NAME_MAX], route[ROUTE_MAX], class[PROFILE_NAME_MAX];
	uint64_t requests;
	double share; /* of the mix planned */
	/* Means per request, seconds. */
	double cpu, runq, pg, upstream, other, duration, p95, p99;
	/* PostgreSQL connections held: measured, or the PG time in older profiles. */
	double hold;
	bool hold_measured;
	double pg_round_trips;
	const struct hist *dur; /* duration histogram, ns */
};

struct plan_station {
	char name[48];
	char what[160];
	struct queue_station q;
	double speed;	 /* one server's speed: a core's share the limit leaves */
	double capacity; /* requests per second it saturates at */
};

struct plan_point {
	double load;   /* users (closed) or requests per second (open) */
	double x;      /* throughput */
	double r;      /* mean response time */
	double p95, p99;
	double util;   /* of the bottleneck */
};

struct plan_model {
	char service[PROFILE_NAME_MAX];
	uint64_t requests;
	double seconds; /* the recording's length */
	struct plan_group g[PLAN_MAX_GROUPS];
	int ng;
	struct plan_station st[PLAN_MAX_STATIONS];
	int nst;
	int bottleneck; /* index in st */
	double x_max;
	double cpu_factor; /* 1 - agentprof's probes' share of the CPU charged */
	/* Mix means, seconds per request. */
	double d_cpu, d_hold, delay, r0;
	/* The pod as modelled. */
	double cpu_limit;	/* cores */
	bool cpu_limited;	/* by the cgroup or --pod-cpu, not the host's CPUs */
	const char *cpu_limit_from;
	int workers, threads;
	bool event_loop;
	int pool;
	const char *pool_from;
	int hold_measured; /* groups whose hold was measured (pg_hold_ns), of ng */
	struct loadfit cpu_fit; /* CPU per request against the CPU's load */
	double x_max_flat;	/* the CPU's capacity had its demand not changed with load */
	uint64_t mem_limit;
	double think_s;
	const char *think_from;
	/* Memory: rss = base + slope * in flight. */
	double mem_base, mem_slope, mem_max;
	int mem_samples;
	bool mem_fitted;
	/* Base (no queueing) response-time distribution of the mix. */
	double *bv, *bp;
	size_t nb;
	/* Curves. */
	struct plan_point closed[PLAN_CURVE_MAX], open[PLAN_CURVE_MAX];
	int nclosed, nopen;
	int knee_users_p95, knee_users_p99; /* 0: not crossed in the curve */
	double knee_rps_p95, knee_rps_p99;  /* open: highest rate that holds it */
	double slo_rps;			    /* per pod: highest rate that holds every SLO */
	bool slo_unreachable;		    /* not even at no load: slo_rps is 80% of x_max */
	int slo_users;			    /* per pod: most users that hold every SLO */
	/* Recommendations. */
	double headroom, trigger_rps;
	int replicas_rps, replicas_users;
	double cpu_request, cpu_limit_rec; /* cores */
	double mem_request, mem_limit_rec; /* bytes */
	int hpa_cpu_pct, hpa_mem_pct;
	char notes[PLAN_MAX_NOTES][PLAN_NOTE_MAX]; /* assumptions, in order */
	int nnotes;
	const struct plan_opts *opts;
};

/*
 * Builds the model of opts->service (or the busiest) in p. Returns 0, or
 * -EINVAL with err saying why (a profile too thin, a mix naming nothing).
 */
int plan_model__build(struct plan_model *m, struct profile *p, const struct plan_opts *opts,
		      char *err, size_t errsz);
void plan_model__free(struct plan_model *m);
/* Response-time quantile q: the recorded response times plus the wait w. */
double plan_model__quantile(const struct plan_model *m, const struct queue_wait *w, double q);



/* The closed-curve point nearest to users (NULL without a closed curve). */
const struct plan_point *plan_model__closed_at(const struct plan_model *m, double users);
#endif /* AGENTPROF_PLAN_MODEL_H */
