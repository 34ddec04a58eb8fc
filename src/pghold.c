// SPDX-License-Identifier: GPL-2.0-only
/*
 * Connection holds per request (pghold.h). Two tables of chained entries,
 * requests and connections, that share their hashing, growth cap and aging:
 * each entry starts with a struct hold_node. The connection table says which
 * request holds each connection now, so that a hold ends when the
 * connection passes to another; the request table keeps each request's open
 * holds (one per connection) and the sum of those that ended.
 */
#include <stdlib.h>

#include "pghold.h"

#define HOLD_BITS 12
#define HOLD_BUCKETS (1U << HOLD_BITS)
/* Event time between two sweeps of the tables for entries past their age. */
#define HOLD_SWEEP_NS 1000000000ULL
/* The least between two sweeps of a full table, so a table full of live entries costs little. */
#define HOLD_FULL_SWEEP_NS (HOLD_SWEEP_NS / 10)

struct hold_node {
	uint64_t id;
	uint64_t last_ns; /* end of its last round trip, or when its request was done */
	struct hold_node *next;
};

struct hold_table {
	struct hold_node *b[HOLD_BUCKETS];
	size_t n, max, size;
};

/* A request's hold of one connection, still open. */
struct hold_seg {
	uint64_t conn_id, start_ns, end_ns;
};

struct hold_req {
	struct hold_node node;
	uint64_t held_ns; /* holds that ended */
	uint32_t round_trips;
	bool done; /* its record came */
	int nsegs;
	struct hold_seg segs[PGHOLD_REQ_CONNS];
};

struct hold_conn {
	struct hold_node node;
	uint64_t holder; /* the request holding it now; 0: none */
};

struct pghold {
	struct hold_table reqs, conns;
	uint64_t now_ns; /* the latest round trip's end */
	uint64_t swept_ns;
	struct pghold_counts counts;
};

static size_t bucket(uint64_t id)
{
	return (id * 0x9e3779b97f4a7c15ULL) >> (64 - HOLD_BITS);
}

static struct hold_node *table_find(struct hold_table *t, uint64_t id)
{
	struct hold_node *e;

	for (e = t->b[bucket(id)]; e; e = e->next)
		if (e->id == id)
			return e;
	return NULL;
}

/* A zeroed entry for id, or NULL when the table is full or memory is short. */
static struct hold_node *table_add(struct hold_table *t, uint64_t id, uint64_t now)
{
	struct hold_node *e;
	size_t b = bucket(id);

	if (t->n >= t->max)
		return NULL;
	e = calloc(1, t->size);
	if (!e)
		return NULL;
	e->id = id;
	e->last_ns = now;
	e->next = t->b[b];
	t->b[b] = e;
	t->n++;
	return e;
}

/* Drops the entries expired() says are past their age; returns how many. */
static uint64_t table_sweep(struct hold_table *t,
			    bool (*expired)(const struct hold_node *e, uint64_t now, uint64_t *n),
			    uint64_t now, uint64_t *counted)
{
	struct hold_node **link, *e;
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < HOLD_BUCKETS; i++) {
		for (link = &t->b[i]; (e = *link);) {
			if (!expired(e, now, counted)) {
				link = &e->next;
				continue;
			}
			*link = e->next;
			free(e);
			t->n--;
			n++;
		}
	}
	return n;
}

static void table_free(struct hold_table *t)
{
	struct hold_node *e, *next;
	size_t i;

	for (i = 0; i < HOLD_BUCKETS; i++)
		for (e = t->b[i]; e; e = next) {
			next = e->next;
			free(e);
		}
}

static uint64_t age(const struct hold_node *e, uint64_t now)
{
	return now > e->last_ns ? now - e->last_ns : 0;
}

/* A done request is kept a little for its late round trips; a lost one, long. */
static bool req_expired(const struct hold_node *e, uint64_t now, uint64_t *lost)
{
	const struct hold_req *r = (const struct hold_req *)e;

	if (r->done)
		return age(e, now) > PGHOLD_DONE_AGE_NS;
	if (age(e, now) <= PGHOLD_MAX_AGE_NS)
		return false;
	(*lost)++;
	return true;
}

static bool conn_expired(const struct hold_node *e, uint64_t now, uint64_t *unused)
{
	(void)unused;
	return age(e, now) > PGHOLD_MAX_AGE_NS;
}

static void sweep(struct pghold *h)
{
	uint64_t unused = 0;

	table_sweep(&h->reqs, req_expired, h->now_ns, &h->counts.expired);
	table_sweep(&h->conns, conn_expired, h->now_ns, &unused);
	h->swept_ns = h->now_ns;
}

struct pghold *pghold__new(void)
{
	struct pghold *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->reqs.max = PGHOLD_MAX_REQS;
	h->reqs.size = sizeof(struct hold_req);
	h->conns.max = PGHOLD_MAX_CONNS;
	h->conns.size = sizeof(struct hold_conn);
	return h;
}

void pghold__free(struct pghold *h)
{
	if (!h)
		return;
	table_free(&h->reqs);
	table_free(&h->conns);
	free(h);
}

/* The entry of id in t, made if missing; a full table is swept once before giving up. */
static struct hold_node *entry_get(struct pghold *h, struct hold_table *t, uint64_t id)
{
	struct hold_node *e = table_find(t, id);

	if (e)
		return e;
	if (t->n >= t->max && h->now_ns - h->swept_ns > HOLD_FULL_SWEEP_NS)
		sweep(h);
	return table_add(t, id, h->now_ns);
}

static struct hold_req *req_find(struct pghold *h, uint64_t req_id)
{
	return (struct hold_req *)table_find(&h->reqs, req_id);
}

static void seg_close(struct hold_req *r, int i)
{
	struct hold_seg *s = &r->segs[i];

	r->held_ns += s->end_ns > s->start_ns ? s->end_ns - s->start_ns : 0;
	r->segs[i] = r->segs[--r->nsegs];
}

static int seg_find(const struct hold_req *r, uint64_t conn_id)
{
	int i;

	for (i = 0; i < r->nsegs; i++)
		if (r->segs[i].conn_id == conn_id)
			return i;
	return -1;
}

/* The request whose hold of conn_id has ended (another user took the connection). */
static void hold_end(struct pghold *h, uint64_t req_id, uint64_t conn_id)
{
	struct hold_req *r = req_find(h, req_id);
	int i;

	if (r && !r->done && (i = seg_find(r, conn_id)) >= 0)
		seg_close(r, i);
}

/* A new hold of conn_id from start; with every slot taken, the least recent hold ends. */
static struct hold_seg *seg_open(struct hold_req *r, uint64_t conn_id, uint64_t start)
{
	struct hold_seg *s;
	int i, oldest = 0;

	if (r->nsegs == PGHOLD_REQ_CONNS) {
		for (i = 1; i < r->nsegs; i++)
			if (r->segs[i].end_ns < r->segs[oldest].end_ns)
				oldest = i;
		seg_close(r, oldest);
	}
	s = &r->segs[r->nsegs++];
	s->conn_id = conn_id;
	s->start_ns = s->end_ns = start;
	return s;
}

/* Adds the round trip to r's hold of conn_id; a connection that changed hands starts a new one. */
static void req_add(struct hold_req *r, struct hold_conn *c, uint64_t conn_id, uint64_t start,
		    uint64_t end, bool release)
{
	int i = seg_find(r, conn_id);
	struct hold_seg *s;

	if (i >= 0 && c && c->holder != r->node.id) {
		seg_close(r, i);
		i = -1;
	}
	s = i >= 0 ? &r->segs[i] : seg_open(r, conn_id, start);
	if (start < s->start_ns)
		s->start_ns = start;
	if (end > s->end_ns)
		s->end_ns = end;
	r->round_trips++;
	r->node.last_ns = end;
	if (release)
		seg_close(r, s - r->segs);
}

void pghold__add(struct pghold *h, uint64_t req_id, uint64_t conn_id, uint64_t start_ns,
		 uint64_t end_ns, bool release)
{
	struct hold_conn *c;
	struct hold_req *r = NULL;

	if (end_ns > h->now_ns)
		h->now_ns = end_ns;
	if (h->now_ns - h->swept_ns > HOLD_SWEEP_NS)
		sweep(h);
	c = (struct hold_conn *)entry_get(h, &h->conns, conn_id);
	if (!c)
		h->counts.conn_overflow++;
	if (c && c->holder && c->holder != req_id)
		hold_end(h, c->holder, conn_id);
	if (req_id) {
		r = (struct hold_req *)entry_get(h, &h->reqs, req_id);
		if (!r)
			h->counts.overflow++;
		else if (r->done)
			h->counts.late++;
		else
			req_add(r, c, conn_id, start_ns, end_ns, release);
	}
	if (!c)
		return;
	c->holder = r && !r->done && !release ? req_id : 0;
	c->node.last_ns = end_ns;
}

uint64_t pghold__take(struct pghold *h, uint64_t req_id, uint32_t *round_trips)
{
	struct hold_req *r = req_find(h, req_id);
	uint64_t held;

	*round_trips = 0;
	if (!r || r->done)
		return 0;
	while (r->nsegs)
		seg_close(r, 0);
	held = r->held_ns;
	*round_trips = r->round_trips;
	r->done = true;
	r->node.last_ns = h->now_ns;
	return held;
}

struct pghold_counts pghold__counts(const struct pghold *h)
{
	return h->counts;
}

void pghold__fill(const struct pghold *h, uint64_t *reqs, uint64_t *conns)
{
	*reqs = h->reqs.n;
	*conns = h->conns.n;
}
