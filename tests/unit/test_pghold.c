// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for src/pghold.c (connection holds per request) and pg__ends_hold(). */
#include "pg.h"
#include "pghold.h"
#include "test.h"

#define MS 1000000ULL
#define SEC 1000000000ULL

static uint64_t take(struct pghold *h, uint64_t req, uint32_t *rts)
{
	return pghold__take(h, req, rts);
}

#define HELD false /* the connection stays with the request */
#define RESET true /* a pool's reset: it goes back to the pool */

/* A round trip, times in ms. */
struct rt {
	uint64_t req, conn, start, end;
	bool release;
};

/* Round trips replayed in order on a fresh table, then one request's hold taken. */
struct hold_case {
	const char *name;
	struct rt rts[6];
	uint64_t req, want_ms;
	uint32_t want_rts;
};

static const struct hold_case cases[] = {
	{ .name = "one connection: first start to last end, the work between statements too",
	  .rts = { { 7, 100, 10, 15, HELD }, { 7, 100, 20, 22, HELD }, { 7, 100, 40, 41, RESET } },
	  .req = 7,
	  .want_ms = 31,
	  .want_rts = 3 },
	{ .name = "pipelined round trips (sent before the last reply) count their span once",
	  .rts = { { 7, 100, 10, 14, HELD }, { 7, 100, 11, 16, HELD }, { 7, 100, 12, 18, HELD } },
	  .req = 7,
	  .want_ms = 8,
	  .want_rts = 3 },
	{ .name = "an earlier round trip after a later one (another CPU's record) widens the span",
	  .rts = { { 8, 101, 30, 35, HELD }, { 8, 101, 25, 28, HELD } },
	  .req = 8,
	  .want_ms = 10,
	  .want_rts = 2 },
	{ .name = "two connections at once hold two: 20 + 10 ms",
	  .rts = { { 7, 100, 10, 11, HELD },
		   { 7, 200, 12, 13, HELD },
		   { 7, 200, 20, 22, RESET },
		   { 7, 100, 25, 30, RESET } },
	  .req = 7,
	  .want_ms = 30,
	  .want_rts = 4 },
	{ .name = "a reset ends the hold: the same connection again after an LLM call, 2 + 3 ms",
	  .rts = { { 7, 100, 10, 11, HELD },
		   { 7, 100, 11, 12, RESET },
		   { 7, 100, 50, 51, HELD },
		   { 7, 100, 51, 53, RESET } },
	  .req = 7,
	  .want_ms = 5,
	  .want_rts = 4 },
	{ .name = "no reset (a pool that sends none): another request ends the hold, 2 + 1 ms",
	  .rts = { { 7, 100, 10, 12, HELD }, { 9, 100, 20, 24, HELD }, { 7, 100, 30, 31, HELD } },
	  .req = 7,
	  .want_ms = 3,
	  .want_rts = 2 },
	{ .name = "no reset: the other request's hold",
	  .rts = { { 7, 100, 10, 12, HELD }, { 9, 100, 20, 24, HELD }, { 7, 100, 30, 31, HELD } },
	  .req = 9,
	  .want_ms = 4,
	  .want_rts = 1 },
	{ .name = "req_id 0 (no request) holds nothing, and ends the hold before it: 2 + 1 ms",
	  .rts = { { 0, 100, 1, 2, HELD },
		   { 7, 100, 10, 12, HELD },
		   { 0, 100, 20, 21, HELD },
		   { 7, 100, 40, 41, HELD } },
	  .req = 7,
	  .want_ms = 3,
	  .want_rts = 2 },
	{ .name = "req_id 0 has no hold of its own",
	  .rts = { { 0, 100, 1, 2, HELD }, { 7, 100, 10, 12, HELD }, { 0, 100, 20, 21, HELD } },
	  .req = 0,
	  .want_ms = 0,
	  .want_rts = 0 },
};

static void test_cases(void)
{
	const struct hold_case *c;
	const struct rt *r;
	struct pghold *h;
	uint32_t rts;
	size_t i, k;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		h = pghold__new();
		for (k = 0; k < sizeof(c->rts) / sizeof(c->rts[0]) && c->rts[k].end; k++) {
			r = &c->rts[k];
			pghold__add(h, r->req, r->conn, r->start * MS, r->end * MS, r->release);
		}
		ASSERT_EQ(take(h, c->req, &rts), c->want_ms * MS, "%s", c->name);
		ASSERT_EQ(rts, c->want_rts, "%s: round trips", c->name);
		pghold__free(h);
	}
}

static void test_take_twice(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	pghold__add(h, 7, 100, 10 * MS, 15 * MS, false);
	ASSERT_EQ(take(h, 7, &rts), 5 * MS, "taken once: the hold");
	ASSERT_EQ(take(h, 7, &rts), 0, "taken twice: nothing the second time");
	ASSERT_EQ(rts, 0, "taken twice: no round trips the second time");
	pghold__free(h);
}

static void test_late_round_trips(void)
{
	struct pghold *h = pghold__new();
	uint64_t reqs, conns;
	uint32_t rts;

	pghold__add(h, 7, 100, 10 * MS, 12 * MS, false);
	ASSERT_EQ(take(h, 7, &rts), 2 * MS, "the hold up to the record");
	/* The pool's reset after the response: counted late, no new entry for it. */
	pghold__add(h, 7, 100, 13 * MS, 14 * MS, true);
	ASSERT_EQ(pghold__counts(h).late, 1, "a round trip after the record is late");
	ASSERT_EQ(take(h, 7, &rts), 0, "and not a hold of its own");
	/* A done request is forgotten after a while: its entry does not stay. */
	pghold__add(h, 0, 100, 14 * MS + PGHOLD_DONE_AGE_NS + 2 * SEC,
		    15 * MS + 2 * SEC + PGHOLD_DONE_AGE_NS, false);
	pghold__fill(h, &reqs, &conns);
	ASSERT_EQ(reqs, 0, "a done request is dropped after PGHOLD_DONE_AGE_NS");
	ASSERT_EQ(pghold__counts(h).expired, 0, "a done request is not counted as lost");
	pghold__free(h);
}

static void test_many_connections(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;
	uint64_t c;

	/* More connections at once than slots: each 1 ms, none lost. */
	for (c = 0; c < PGHOLD_REQ_CONNS + 3; c++)
		pghold__add(h, 7, 100 + c, (10 + c) * MS, (11 + c) * MS, false);
	ASSERT_EQ(take(h, 7, &rts), (PGHOLD_REQ_CONNS + 3) * MS,
		  "past PGHOLD_REQ_CONNS connections, the oldest holds close, none lost");
	ASSERT_EQ(rts, PGHOLD_REQ_CONNS + 3, "all their round trips");
	pghold__free(h);
}

static void test_bounds(void)
{
	struct pghold *h = pghold__new();
	uint64_t reqs, conns, i, t = SEC;
	uint32_t rts;

	/* Requests whose records never come: the table stops at its bound and counts the rest. */
	for (i = 1; i <= PGHOLD_MAX_REQS + 10; i++)
		pghold__add(h, i, 1, t, t + 1000, false);
	pghold__fill(h, &reqs, &conns);
	ASSERT_EQ(reqs, PGHOLD_MAX_REQS, "the request table stops at PGHOLD_MAX_REQS");
	ASSERT_EQ(pghold__counts(h).overflow, 10, "the round trips that did not fit are counted");
	ASSERT_EQ(take(h, PGHOLD_MAX_REQS + 5, &rts), 0, "a request that did not fit: no hold");
	ASSERT_EQ(rts, 0, "and no round trips, so its record says unknown");
	ASSERT_EQ(take(h, 5, &rts), 1000, "one that fit has its hold");
	/* Past the age bound, the lost ones are dropped and counted, and new ones fit. */
	t += PGHOLD_MAX_AGE_NS + 2 * SEC;
	pghold__add(h, 99999999, 2, t, t + 1000, false);
	pghold__fill(h, &reqs, &conns);
	ASSERT_EQ(reqs, 1, "stale requests dropped, the done one too: the new one remains");
	ASSERT_EQ(conns, 1, "the idle connection dropped too");
	ASSERT_EQ(pghold__counts(h).expired, PGHOLD_MAX_REQS - 1, "the dropped ones are counted");
	ASSERT_EQ(take(h, 99999999, &rts), 1000, "a new request fits again");
	pghold__free(h);
}

static void test_ends_hold(void)
{
	ASSERT_TRUE(pg__ends_hold("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; "
				  "RESET ALL"),
		    "asyncpg's reset ends a hold");
	ASSERT_TRUE(pg__ends_hold("ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL"),
		    "asyncpg's reset after an open transaction ends a hold");
	ASSERT_TRUE(pg__ends_hold("discard all"), "DISCARD ALL ends a hold");
	ASSERT_FALSE(pg__ends_hold("SELECT $1::int + $2"), "a query does not");
	ASSERT_FALSE(pg__ends_hold("ROLLBACK"), "a ROLLBACK alone does not (a transaction's end)");
	ASSERT_FALSE(pg__ends_hold("(pipelined, not captured)"),
		     "a statement not captured does not");
}

int main(void)
{
	test_cases();
	test_take_twice();
	test_late_round_trips();
	test_many_connections();
	test_bounds();
	test_ends_hold();
	return test_report();
}
