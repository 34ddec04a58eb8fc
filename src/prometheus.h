/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The Prometheus exposition of a live profile: text format 0.0.4, or
 * OpenMetrics 1.0 when the scraper asks for it. It reads the profile, the
 * peers and statements tables and plain figures the exporter gathered; it
 * never touches BPF. Metric names and labels: README "agentprof export".
 */
#ifndef AGENTPROF_PROMETHEUS_H
#define AGENTPROF_PROMETHEUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cap;
struct peers;
struct pg;
struct profile;
struct service_id;

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define OPENMETRICS_CONTENT_TYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* Sampled figures of one service (a profile service key). */
struct prom_service {
	const struct service_id *id;
	uint64_t rss_bytes; /* resident memory of its traced processes */
	uint64_t in_flight; /* requests open in the kernel's slots */
	unsigned int processes;
};

/* What the requests of one route did with one upstream peer. */
struct prom_route_peer {
	const char *service; /* the profile's service key */
	const char *route;
	const char *peer;
	const char *kind; /* "upstream" or "pg" */
	uint64_t calls, wait_ns;
};

struct prom_count {
	const char *label; /* the label value: a reason, a program, a map, a cap */
	uint64_t value;
	uint64_t limit; /* maps: max_entries; caps: the cap */
};

struct prom_input {
	struct profile *profile;
	const struct peers *peers;
	struct pg *pg;
	/* Service key (the profile's service) -> identity; NULL when unknown. */
	const struct service_id *(*lookup)(void *ctx, const char *key);
	void *lookup_ctx;
	const struct prom_service *services;
	size_t nservices;
	const struct prom_route_peer *route_peers;
	size_t nroute_peers;
	const double *duration_buckets; /* seconds, ascending */
	size_t nduration;
	const double *cpu_buckets;
	size_t ncpu;
	/* Admission of peers and statements into series of their own (cap.h). */
	struct cap *peers_cap;
	struct cap *statements_cap;
	const struct prom_count *caps; /* value: requests filed under (other) */
	size_t ncaps;
	const struct prom_count *lost; /* events lost, by reason */
	size_t nlost;
	uint64_t flushed_early;
	uint64_t requests;		/* request records decoded */
	const struct prom_count *progs; /* value: run time ns; limit: run count */
	size_t nprogs;
	const struct prom_count *maps; /* value: entries; limit: max_entries */
	size_t nmaps;
	unsigned int traced_processes;
	unsigned int traced_task_aware; /* CPython processes whose units of work are followed */
	unsigned int traced_heuristic;	/* CPython processes left to the thread rules */
	const char *version, *kernel, *mode;
	double last_drain_age_s;
	/* The standard process_* metrics of the exporter itself. */
	double cpu_seconds;
	uint64_t resident_bytes, virtual_bytes, open_fds, max_fds;
	double start_time_s;
};

/* Writes the exposition; returns 0, or -EIO when out failed. */
int prometheus__write(FILE *out, const struct prom_input *in, bool openmetrics);

/* Parses "0.005,0.01,..." (ascending, positive) into v[max]; count or -EINVAL. */
int prometheus__parse_buckets(const char *s, double *v, size_t max);

#endif /* AGENTPROF_PROMETHEUS_H */
