/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A profile: requests grouped by (service, method, route, class), each group
 * with constant-memory histograms of every per-request quantity. Printed as a
 * table (table.c) and saved as versioned JSON (format "agentprof-profile", see README).
 */
#ifndef AGENTPROF_PROFILE_H
#define AGENTPROF_PROFILE_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include <stdio.h>

#include "hist.h"
#include "request.h"

#define PROFILE_FORMAT "agentprof-profile"
#define PROFILE_VERSION 1
#define PROFILE_MAX_GROUPS 2000
#define PROFILE_NAME_MAX 64

enum profile_metric {
	PM_DURATION,
	PM_TTFB,
	PM_CPU,
	PM_RUNQ,
	PM_OFFCPU,
	PM_RX,
	PM_TX,
	PM_MINOR_FAULTS,
	PM_MAJOR_FAULTS,
	PM_RSS_GROWTH,		/* rss_delta_bytes, negatives as 0 */
	PM_MAPPED,
	PM_UPSTREAM_WAIT,	/* wait_ns summed over non-PostgreSQL peers */
	PM_OFFCPU_UPSTREAM,
	PM_PG_ROUND_TRIPS,
	PM_PG_TIME,
	PM_OFFCPU_PG,
	PM_OFFCPU_LOCK,		/* blocked in futex(): locks, condition variables, the GIL */
	PM_OFFCPU_DISK,		/* blocked in file I/O, fsync */
	PM_PG_HOLD,		/* PostgreSQL connections held (pghold.h); absent in older profiles */
	PM__COUNT,
};

/* Upstream peers (PostgreSQL included) one group's requests talked to. */
#define PROFILE_GROUP_PEERS 8
#define PROFILE_PEER_NAME_MAX 80

struct profile_group_peer {
	char name[PROFILE_PEER_NAME_MAX]; /* --peer-name, ip:port, or "(other peers)" */
	int kind;			  /* enum ap_peer_kind */
	uint64_t calls;
	uint64_t requests;
	uint64_t wait_ns; /* summed over the group's requests */
};

struct profile_group {
	char service[PROFILE_NAME_MAX];
	char method[PROFILE_NAME_MAX];
	char route[ROUTE_MAX];
	char class[PROFILE_NAME_MAX];
	int status; /* response status, with profile__set_by_status(); else 0 */
	uint64_t requests;
	uint64_t incomplete;
	uint64_t status_5xx;
	struct hist h[PM__COUNT];
	/* The last slot folds in every peer past the first PROFILE_GROUP_PEERS - 1. */
	struct profile_group_peer peers[PROFILE_GROUP_PEERS];
	int npeers;
	struct profile_group *next; /* hash chain */
};

/* Counters of the run that belong in the profile next to its groups. */
struct profile_run {
	uint64_t start_real_ns;
	uint64_t end_real_ns;
	uint64_t records;	  /* request records received */
	uint64_t malformed_heads; /* skipped: not an HTTP/1.x request head */
	uint64_t oversized_heads; /* skipped: request line longer than the capture */
	uint64_t incomplete;	  /* recorded, with no response byte */
	uint64_t ringbuf_drops;
	uint64_t requests_map_full;
	uint64_t conns_map_full;
	uint64_t threads_map_full;
	uint64_t procs_map_full;
	uint64_t non_http_reads;
	uint64_t stale_bindings;
	uint64_t py_units_evicted;	/* CPython units' bindings lost: a set full */
	uint64_t flushed; /* still open at exit, closed off by userspace */
	uint64_t mapped_measured; /* 1: mapped_bytes was measured (record --mmap) */
	/*
	 * record --sample: one request in sample_every was traced, and each
	 * stands for sample_every in the groups (0 in older profiles: 1).
	 */
	uint64_t sample_every;
	uint64_t unsampled; /* requests seen and not traced */
	uint64_t bpf_run_ns; /* agentprof's programs' run time while recording (0: unknown) */
	uint64_t pg_hold_overflow; /* round trips not in any hold: pghold's table was full */
};

struct profile;

struct profile *profile__new(void);
void profile__free(struct profile *p);
/* Adds a decoded request; returns 0 or -ENOMEM. */
int profile__add(struct profile *p, const struct request *req);
struct profile_run *profile__run(struct profile *p);
/* Per service: processes, cgroup limits, samples over time (src/services.h). */
struct services *profile__services(struct profile *p);
size_t profile__ngroups(const struct profile *p);
/*
 * Groups split by response status too (export: the OpenTelemetry label
 * http_response_status_code); each group then carries "status" in JSON.
 * Set before the first add.
 */
void profile__set_by_status(struct profile *p, bool on);
/* Drops every group of service (a service gone from the host); returns how many. */
size_t profile__remove_service(struct profile *p, const char *service);
/* Groups sorted by request count, most first; valid until the next add. */
const struct profile_group **profile__sorted(struct profile *p, size_t *n);
const char *profile__metric_name(enum profile_metric m);
/* The profile as JSON (what -o writes and export's /profile serves). extra: an object whose
 * members are added to the top level (may be NULL; consumed). */
struct json_object *profile__json(struct profile *p, struct json_object *extra);
/* Writes profile__json() to fd; 0 or -errno. */
int profile__write_fd(struct profile *p, int fd, struct json_object *extra);
/* Writes profile__json() to path, replacing it at once (outfile.h); 0 or -errno. */
int profile__write_json(struct profile *p, const char *path, struct json_object *extra);
/* {"p50", "p95", "p99", "max"} of h: the summary every table of the profile uses. */
struct json_object *profile__quantiles_json(const struct hist *h);
/* Reads a profile saved by profile__write_json; returns NULL and sets errno. */
struct profile *profile__load(const char *path, char *err, size_t errsz);
/* The same from len bytes of buf (a file read, a /profile body); name is for messages. */
struct profile *profile__load_buf(const char *buf, size_t len, const char *name, char *err,
				  size_t errsz);
/*
 * A top-level member of a loaded profile that profile__write_json took from
 * extra ("peers", "statements"); NULL when absent. Owned by p.
 */
struct json_object *profile__section(const struct profile *p, const char *name);
/* Quantile q of metric m of g, as a double (hist__quantile). */
double profile__q(const struct profile_group *g, enum profile_metric m, double q);

#endif /* AGENTPROF_PROFILE_H */
