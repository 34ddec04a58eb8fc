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

static void test_one_connection(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* Work between statements is hold too: 10..15, 20..22, 40..41 ms. */
	pghold__add(h, 7, 100, 10 * MS, 15 * MS, false);
	pghold__add(h, 7, 100, 20 * MS, 22 * MS, false);
	pghold__add(h, 7, 100, 40 * MS, 41 * MS, true);
	ASSERT_EQ(take(h, 7, &rts), 31 * MS, "one connection: first start to last end");
	ASSERT_EQ(rts, 3, "one connection: its round trips");
	ASSERT_EQ(take(h, 7, &rts), 0, "taken twice: nothing the second time");
	ASSERT_EQ(rts, 0, "taken twice: no round trips the second time");
	pghold__free(h);
}

static void test_overlapping(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* Pipelined: the second was sent before the first's reply; ends arrive in order. */
	pghold__add(h, 7, 100, 10 * MS, 14 * MS, false);
	pghold__add(h, 7, 100, 11 * MS, 16 * MS, false);
	pghold__add(h, 7, 100, 12 * MS, 18 * MS, false);
	ASSERT_EQ(take(h, 7, &rts), 8 * MS, "pipelined round trips count their span once");
	/* A record out of order (another CPU's) still widens the span both ways. */
	pghold__add(h, 8, 101, 30 * MS, 35 * MS, false);
	pghold__add(h, 8, 101, 25 * MS, 28 * MS, false);
	ASSERT_EQ(take(h, 8, &rts), 10 * MS, "an earlier round trip after a later one");
	pghold__free(h);
}

static void test_two_connections(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* Held at the same time: 10..30 on one, 12..22 on the other. */
	pghold__add(h, 7, 100, 10 * MS, 11 * MS, false);
	pghold__add(h, 7, 200, 12 * MS, 13 * MS, false);
	pghold__add(h, 7, 200, 20 * MS, 22 * MS, true);
	pghold__add(h, 7, 100, 25 * MS, 30 * MS, true);
	ASSERT_EQ(take(h, 7, &rts), 30 * MS, "two connections at once hold two: 20 + 10 ms");
	ASSERT_EQ(rts, 4, "two connections: every round trip");
	pghold__free(h);
}

static void test_release_splits(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* Released at 12 ms, the same connection again from 50 ms (an LLM call between). */
	pghold__add(h, 7, 100, 10 * MS, 11 * MS, false);
	pghold__add(h, 7, 100, 11 * MS, 12 * MS, true);
	pghold__add(h, 7, 100, 50 * MS, 51 * MS, false);
	pghold__add(h, 7, 100, 51 * MS, 53 * MS, true);
	ASSERT_EQ(take(h, 7, &rts), 5 * MS, "a reset ends the hold: the time between is not held");
	pghold__free(h);
}

static void test_change_of_hands(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* No reset statement (a pool that sends none): another user ends the hold. */
	pghold__add(h, 7, 100, 10 * MS, 12 * MS, false);
	pghold__add(h, 9, 100, 20 * MS, 24 * MS, false);
	pghold__add(h, 7, 100, 30 * MS, 31 * MS, false);
	ASSERT_EQ(take(h, 9, &rts), 4 * MS, "the other request's hold");
	ASSERT_EQ(take(h, 7, &rts), 3 * MS, "a connection that changed hands: two holds, 2 + 1 ms");
	ASSERT_EQ(rts, 2, "its round trips");
	pghold__free(h);
}

static void test_req_id_zero(void)
{
	struct pghold *h = pghold__new();
	uint32_t rts;

	/* Round trips of no request: held by nobody, and they end the hold before them. */
	pghold__add(h, 0, 100, 1 * MS, 2 * MS, false);
	pghold__add(h, 7, 100, 10 * MS, 12 * MS, false);
	pghold__add(h, 0, 100, 20 * MS, 21 * MS, false);
	pghold__add(h, 7, 100, 40 * MS, 41 * MS, false);
	ASSERT_EQ(take(h, 7, &rts), 3 * MS, "no request's round trip ends the hold: 2 + 1 ms");
	ASSERT_EQ(rts, 2, "round trips of no request are nobody's");
	ASSERT_EQ(take(h, 0, &rts), 0, "req_id 0 has no hold");
	ASSERT_EQ(rts, 0, "req_id 0 has no round trips");
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
	pghold__add(h, 0, 100, 14 * MS + PGHOLD_DONE_AGE_NS + 2 * SEC, 15 * MS + 2 * SEC +
		    PGHOLD_DONE_AGE_NS, false);
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
				  "RESET ALL"), "asyncpg's reset ends a hold");
	ASSERT_TRUE(pg__ends_hold("ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL"),
		    "asyncpg's reset after an open transaction ends a hold");
	ASSERT_TRUE(pg__ends_hold("discard all"), "DISCARD ALL ends a hold");
	ASSERT_FALSE(pg__ends_hold("SELECT $1::int + $2"), "a query does not");
	ASSERT_FALSE(pg__ends_hold("ROLLBACK"), "a ROLLBACK alone does not (a transaction's end)");
	ASSERT_FALSE(pg__ends_hold("(pipelined, not captured)"), "a statement not captured does not");
}

int main(void)
{
	test_one_connection();
	test_overlapping();
	test_two_connections();
	test_release_splits();
	test_change_of_hands();
	test_req_id_zero();
	test_late_round_trips();
	test_many_connections();
	test_bounds();
	test_ends_hold();
	return test_report();
}
