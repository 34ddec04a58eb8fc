/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * PostgreSQL round trips in userspace: the statement each one ran (from the
 * captured client bytes and the prepared statements seen per connection),
 * fingerprinted; the queries of each request until its record arrives; and
 * the run's top statements, pg_stat_statements as the client side sees it.
 */
#ifndef AGENTPROF_PG_H
#define AGENTPROF_PG_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"
#include "pghold.h"

#define PG_FINGERPRINT_MAX 256
#define PG_STMT_MAX_ROUTES 8

struct ap_pg_event;

struct pg_query {
	char fingerprint[PG_FINGERPRINT_MAX];
	char *text;		/* the raw statement, only with --pg-literals */
	uint64_t duration_ns;
	uint32_t rows;
	bool error;
	bool tls;
	bool uncounted;		/* rows and error unknown (AP_PG_UNCOUNTED) */
};

struct pg_stmt {
	char fingerprint[PG_FINGERPRINT_MAX];
	uint64_t calls;
	uint64_t total_ns;
	uint64_t errors;
	uint64_t rows;
	uint64_t uncounted;	/* calls whose rows and errors are unknown */
	struct hist duration;
	char *routes[PG_STMT_MAX_ROUTES];
	int nroutes;
	bool more_routes;
	struct pg_stmt *next;
};

struct pg;

struct pg *pg__new(bool literals);
void pg__free(struct pg *pg);
/* One round-trip record: resolve its statement, count it, keep it for its request. */
void pg__add_round_trip(struct pg *pg, const struct ap_pg_event *e);
/*
 * Hands over the queries kept for request req_id (NULL when none) and notes
 * route as a user of their statements. Free with pg__free_queries().
 */
struct pg_query *pg__take(struct pg *pg, uint64_t req_id, const char *route, size_t *n);
void pg__free_queries(struct pg_query *q, size_t n);
/*
 * The time request req_id held PostgreSQL connections (pghold.h), and how
 * many of its round trips that saw; the request is done.
 */
uint64_t pg__take_hold(struct pg *pg, uint64_t req_id, uint32_t *round_trips);
struct pghold_counts pg__hold_counts(const struct pg *pg);
/* The statement gives a connection back to its pool (a pool's reset). */
bool pg__ends_hold(const char *fingerprint);
/* Statements by total time, most first; valid until the next add. */
const struct pg_stmt **pg__sorted(struct pg *pg, size_t *n);
void pg__print_top(struct pg *pg, FILE *out, size_t limit);
struct json_object *pg__statements_json(struct pg *pg);
/* Resolves the statement of round trip seq of a batch; exposed for tests. */
void pg__statement(struct pg *pg, uint64_t conn_id, const char *cap, size_t len, uint32_t seq,
		   char *out, size_t out_sz, char *raw, size_t raw_sz);

#endif /* AGENTPROF_PG_H */
