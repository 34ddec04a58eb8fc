/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What a profile knows of each traced service beyond its requests: its
 * processes and request threads, the cgroup limits it ran under, and samples
 * over time (RSS, requests in flight, arrivals, client and PostgreSQL
 * connections, CPU time), taken by `record` and `export` (src/sampler.c) and read by
 * `plan`.
 * Saved as the profile's "services" array (README, "The profile").
 */
#ifndef AGENTPROF_SERVICES_H
#define AGENTPROF_SERVICES_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#define SERVICES_MAX 64 /* the exporter's default --max-services */
#define SERVICE_NAME_MAX 64
#define SERVICE_MAX_PIDS 256
#define SERVICE_MAX_TIDS 1024
#define SERVICE_MAX_SAMPLES 86400 /* a day of one-second samples */

struct service_cgroup {
	int version;		     /* 0: unknown, 1 or 2 */
	char path[256];		     /* the process's cgroup (the cpu controller's on v1) */
	int64_t cpu_quota_us;	     /* the tightest quota on the path; -1: none */
	int64_t cpu_period_us;
	double cpu_limit_cores;	     /* quota / period; 0: no limit */
	uint64_t memory_limit_bytes; /* 0: no limit */
	int host_cpus;		     /* CPUs online on the host */
};

/* One interval of the timeline: what was seen in [t, t + interval). */
struct service_sample {
	uint64_t rss_bytes;   /* summed over the service's processes, at the interval's end */
	double in_flight;     /* requests in flight, averaged over the interval */
	/*
	 * CPU time (user + system) of the service's processes, cumulative, at
	 * the interval's end: two samples' difference is the CPU used between
	 * them (while the same processes ran). 0: not read.
	 */
	uint64_t cpu_ns;
	uint32_t arrivals;    /* requests whose head was read in the interval */
	uint32_t clients;     /* established inbound TCP connections to its listening ports */
	uint32_t pg_conns;    /* established TCP connections to a PostgreSQL port */
	bool measured;	      /* the /proc figures above were read (a tick landed here) */
};

struct service {
	char name[SERVICE_NAME_MAX]; /* comm, as in the groups' "service" */
	uint32_t pids[SERVICE_MAX_PIDS];
	int npids;
	uint32_t tids[SERVICE_MAX_TIDS]; /* threads that read a request head */
	int ntids;
	struct service_cgroup cgroup;
	uint32_t pg_conns_max;
	struct service_sample *samples;
	size_t nsamples;
	size_t first;  /* the interval samples[0] is, counted from the timeline's start */
	size_t window; /* the services' window, when this service was made */
};

struct services {
	uint64_t interval_ns;
	/*
	 * The most recent intervals kept (the exporter's sliding window); 0:
	 * the timeline from its start, up to SERVICE_MAX_SAMPLES (record).
	 */
	size_t window;
	int n;
	struct service svc[SERVICES_MAX];
};

struct services *services__new(void);
void services__free(struct services *s);
/* The service named name, created if new; NULL when SERVICES_MAX are taken. */
struct service *services__get(struct services *s, const char *name);
const struct service *services__find(const struct services *s, const char *name);
/* Forgets the service named name (the exporter's --forget), samples and all. */
void services__remove(struct services *s, const char *name);
/*
 * The sample of interval i (from the timeline's start), the timeline grown
 * to hold it and, with a window, its oldest intervals dropped to make room;
 * NULL for an interval already dropped, past the cap, or out of memory.
 */
struct service_sample *service__sample(struct service *svc, size_t i);
bool service__add_pid(struct service *svc, uint32_t pid);
void service__add_tid(struct service *svc, uint32_t tid);

struct json_object *services__json(const struct services *s);
/* Reads the "services" array of a profile; 0 or -EINVAL (err says why). */
int services__load_json(struct services *s, struct json_object *arr, char *err, size_t errsz);

#endif /* AGENTPROF_SERVICES_H */
