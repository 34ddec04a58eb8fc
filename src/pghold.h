/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * How long each request held PostgreSQL connections, from its round trips
 * (the AP_EV_PG records, which reach userspace before their request's
 * record). A hold of a connection runs from the start of the first round
 * trip the request made on it to the end of its last one; a request holding
 * two connections at once holds two. A hold ends where the connection goes
 * back to its pool: at a round trip the caller flags as a release (a pool's
 * reset statement, pg.c), or when another request, or no request, uses the
 * connection next. Without that, a request that takes the same connection
 * again after an upstream call (asyncpg's pool hands out the connection
 * released last) would seem to hold it all along.
 *
 * Bounded for an exporter that runs for weeks: at most PGHOLD_MAX_REQS
 * requests and PGHOLD_MAX_CONNS connections are followed. A request whose
 * record came is remembered for PGHOLD_DONE_AGE_NS, so that round trips it
 * makes after its response (a pool released by a cleanup that runs after
 * it) do not start an entry nobody takes; entries idle for
 * PGHOLD_MAX_AGE_NS (a request record lost, a connection closed) are
 * dropped. What does not fit is counted, and that request's hold is unknown.
 */
#ifndef AGENTPROF_PGHOLD_H
#define AGENTPROF_PGHOLD_H

#include <stdbool.h>
#include <stdint.h>

#define PGHOLD_MAX_REQS 16384
#define PGHOLD_MAX_CONNS 65536
#define PGHOLD_MAX_AGE_NS (600 * 1000000000ULL)
#define PGHOLD_DONE_AGE_NS (5 * 1000000000ULL)
/* Connections one request holds at once; past it, its least recent hold is closed. */
#define PGHOLD_REQ_CONNS 4

struct pghold_counts {
	uint64_t overflow;	/* round trips of requests not followed: the table was full */
	uint64_t conn_overflow; /* round trips on connections not followed: the table was full */
	uint64_t expired;	/* requests dropped for age, their record never came */
	uint64_t late;		/* round trips of a request after its record came */
};

struct pghold;

struct pghold *pghold__new(void);
void pghold__free(struct pghold *h);
/*
 * One round trip on conn_id, in the order they ended; req_id 0: no request
 * was using the connection. release: it gives the connection back to its pool.
 */
void pghold__add(struct pghold *h, uint64_t req_id, uint64_t conn_id, uint64_t start_ns,
		 uint64_t end_ns, bool release);
/*
 * The hold of request req_id, whose record came, and how many of its round
 * trips were seen (0: none, or none that fit); the request is done.
 */
uint64_t pghold__take(struct pghold *h, uint64_t req_id, uint32_t *round_trips);
struct pghold_counts pghold__counts(const struct pghold *h);
/* Requests and connections followed now (tests). */
void pghold__fill(const struct pghold *h, uint64_t *reqs, uint64_t *conns);

#endif /* AGENTPROF_PGHOLD_H */
