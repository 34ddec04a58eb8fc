// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agentprof/pgwire.h"
#include "fingerprint.h"
#include "pg.h"
#include "pghold.h"
#include "profile.h"

#define PG_BUCKETS 1024
#define PG_MAX_NAMES 20000	/* prepared statements remembered, all connections */
#define PG_MAX_PENDING 200000	/* queries kept for requests not finished yet */
#define PG_MAX_PER_REQUEST 1000
#define PG_MAX_STMTS 5000

/* A prepared statement: connection + name -> fingerprint (and raw text). */
struct pg_name {
	uint64_t conn_id;
	char *name;
	char fingerprint[PG_FINGERPRINT_MAX];
	char *raw;
	struct pg_name *next;
};

struct pg_pending {
	uint64_t req_id;
	struct pg_query *q;
	size_t n, cap;
	struct pg_pending *next;
};

struct pg {
	bool literals;
	struct pg_name *names[PG_BUCKETS];
	size_t nnames;
	struct pg_pending *pending[PG_BUCKETS];
	size_t npending;
	struct pg_stmt *stmts[PG_BUCKETS];
	size_t nstmts;
	const struct pg_stmt **sorted;
	uint64_t dropped;	/* queries not kept: limits reached */
	struct pghold *hold;	/* connection holds per request */
};

struct pg *pg__new(bool literals)
{
	struct pg *pg = calloc(1, sizeof(*pg));

	if (!pg)
		return NULL;
	pg->literals = literals;
	pg->hold = pghold__new();
	if (!pg->hold) {
		free(pg);
		return NULL;
	}
	return pg;
}

static void stmt_free(struct pg_stmt *s)
{
	int i;

	for (i = 0; i < s->nroutes; i++)
		free(s->routes[i]);
	free(s);
}

void pg__free_queries(struct pg_query *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(q[i].text);
	free(q);
}

void pg__free(struct pg *pg)
{
	struct pg_pending *p, *pn;
	struct pg_name *m, *mn;
	struct pg_stmt *s, *sn;
	size_t i;

	if (!pg)
		return;
	for (i = 0; i < PG_BUCKETS; i++) {
		for (m = pg->names[i]; m; m = mn) {
			mn = m->next;
			free(m->name);
			free(m->raw);
			free(m);
		}
		for (p = pg->pending[i]; p; p = pn) {
			pn = p->next;
			pg__free_queries(p->q, p->n);
			free(p);
		}
		for (s = pg->stmts[i]; s; s = sn) {
			sn = s->next;
			stmt_free(s);
		}
	}
	free(pg->sorted);
	pghold__free(pg->hold);
	free(pg);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static size_t name_bucket(uint64_t conn_id, const char *name)
{
	return hash_str(0xcbf29ce484222325ULL ^ conn_id, name) % PG_BUCKETS;
}

static struct pg_name *name_find(struct pg *pg, uint64_t conn_id, const char *name)
{
	struct pg_name *m;

	for (m = pg->names[name_bucket(conn_id, name)]; m; m = m->next)
		if (m->conn_id == conn_id && !strcmp(m->name, name))
			return m;
	return NULL;
}

static void name_set(struct pg *pg, uint64_t conn_id, const char *name, const char *sql,
		     size_t len)
{
	struct pg_name *m = name_find(pg, conn_id, name);
	size_t b;

	if (!m) {
		if (pg->nnames >= PG_MAX_NAMES)
			return;
		m = calloc(1, sizeof(*m));
		if (!m || !(m->name = strdup(name))) {
			free(m);
			return;
		}
		m->conn_id = conn_id;
		b = name_bucket(conn_id, name);
		m->next = pg->names[b];
		pg->names[b] = m;
		pg->nnames++;
	}
	fingerprint__normalize(sql, len, m->fingerprint, sizeof(m->fingerprint));
	free(m->raw);
	m->raw = pg->literals ? strndup(sql, len) : NULL;
}

/* A C string inside a message body; false when the capture cut it. */
static bool cstr(const char *p, const char *end, const char **s, size_t *len)
{
	const char *z = memchr(p, '\0', end - p);

	if (!z)
		return false;
	*s = p;
	*len = z - p;
	return true;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_out(char *out, size_t out_sz, const char *fp)
{
	snprintf(out, out_sz, "%s", fp);
}

/*
 * Round trip `seq` of a batch ends at the (seq+1)-th Query, Sync or
 * FunctionCall of the captured client bytes; its statement is that Query's
 * text, or the Parse (direct, or named by a Bind) before that Sync. Parse
 * messages anywhere in the capture are remembered for later Binds.
 */
void pg__statement(struct pg *pg, uint64_t conn_id, const char *cap, size_t len, uint32_t seq,
		   char *out, size_t out_sz, char *raw, size_t raw_sz)
{
	const char *p = cap, *end = cap + len, *body, *s, *name;
	size_t slen, nlen, blen;
	uint32_t idx = 0, mlen;
	struct pg_name *m;
	char cur[PG_FINGERPRINT_MAX] = "", cur_raw[1024] = "";
	bool done = false;

	set_out(out, out_sz, "(not captured)");
	if (raw_sz)
		raw[0] = '\0';
	while (p + 5 <= end) {
		mlen = be32((const unsigned char *)p + 1);
		if (mlen < 4)
			return;
		body = p + 5;
		blen = (size_t)(end - body) < mlen - 4 ? (size_t)(end - body) : mlen - 4;
		switch (p[0]) {
		case 'Q':
			if (idx == seq && !done) {
				/* A cut query still gets a fingerprint of what is there. */
				slen = strnlen(body, blen);
				fingerprint__normalize(body, slen, out, out_sz);
				if (raw_sz)
					snprintf(raw, raw_sz, "%.*s", (int)slen, body);
				done = true;
			}
			idx++;
			break;
		case 'P':
			if (!cstr(body, body + blen, &name, &nlen) ||
			    !cstr(name + nlen + 1, body + blen, &s, &slen))
				break;
			name_set(pg, conn_id, name, s, slen);
			fingerprint__normalize(s, slen, cur, sizeof(cur));
			if (pg->literals)
				snprintf(cur_raw, sizeof(cur_raw), "%.*s", (int)slen, s);
			break;
		case 'B':
			/* portal name, then statement name */
			if (!cstr(body, body + blen, &s, &slen) ||
			    !cstr(s + slen + 1, body + blen, &name, &nlen))
				break;
			m = name_find(pg, conn_id, name);
			if (m) {
				set_out(cur, sizeof(cur), m->fingerprint);
				snprintf(cur_raw, sizeof(cur_raw), "%s", m->raw ? m->raw : "");
			} else if (!cur[0] || nlen) {
				snprintf(cur, sizeof(cur), "(prepared before tracing: %.*s)",
					 (int)(nlen > 64 ? 64 : nlen), name);
			}
			break;
		case 'S':
		case 'F':
			if (idx == seq && !done) {
				set_out(out, out_sz, cur[0] ? cur : "(no statement)");
				if (raw_sz)
					snprintf(raw, raw_sz, "%s", cur_raw);
				done = true;
			}
			idx++;
			cur[0] = cur_raw[0] = '\0';
			break;
		}
		if ((size_t)(end - body) < mlen - 4)
			break;
		p = body + mlen - 4;
	}
	/* The capture ended before its Sync (not captured): its Parse names it. */
	if (!done && idx == seq && cur[0]) {
		set_out(out, out_sz, cur);
		if (raw_sz)
			snprintf(raw, raw_sz, "%s", cur_raw);
	}
}

static size_t id_bucket(uint64_t id)
{
	return (id * 0x9e3779b97f4a7c15ULL) >> 54;
}

static struct pg_pending *pending_get(struct pg *pg, uint64_t req_id, bool create)
{
	size_t b = id_bucket(req_id) % PG_BUCKETS;
	struct pg_pending *p;

	for (p = pg->pending[b]; p; p = p->next)
		if (p->req_id == req_id)
			return p;
	if (!create)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->req_id = req_id;
	p->next = pg->pending[b];
	pg->pending[b] = p;
	return p;
}

static struct pg_stmt *stmt_get(struct pg *pg, const char *fp)
{
	size_t b = hash_str(0xcbf29ce484222325ULL, fp) % PG_BUCKETS;
	struct pg_stmt *s;

	for (s = pg->stmts[b]; s; s = s->next)
		if (!strcmp(s->fingerprint, fp))
			return s;
	if (pg->nstmts >= PG_MAX_STMTS)
		return strcmp(fp, "(other statements)") ? stmt_get(pg, "(other statements)") : NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	set_out(s->fingerprint, sizeof(s->fingerprint), fp);
	hist__init(&s->duration);
	s->next = pg->stmts[b];
	pg->stmts[b] = s;
	pg->nstmts++;
	return s;
}

static void stmt_add_route(struct pg_stmt *s, const char *route)
{
	int i;

	for (i = 0; i < s->nroutes; i++)
		if (!strcmp(s->routes[i], route))
			return;
	if (s->nroutes == PG_STMT_MAX_ROUTES) {
		s->more_routes = true;
		return;
	}
	s->routes[s->nroutes] = strdup(route);
	if (s->routes[s->nroutes])
		s->nroutes++;
}

/*
 * The statements connection pools send when a connection comes back to them:
 * asyncpg's reset (pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL,
 * after a ROLLBACK when a transaction was left open), and the DISCARD ALL or
 * RESET ALL others use.
 */
bool pg__ends_hold(const char *fingerprint)
{
	static const char *const resets[] = { "pg_advisory_unlock_all()", "DISCARD ALL",
					      "RESET ALL" };
	size_t i;

	for (i = 0; i < sizeof(resets) / sizeof(resets[0]); i++)
		if (strcasestr(fingerprint, resets[i]))
			return true;
	return false;
}

static bool keep_query(struct pg *pg, uint64_t req_id, const struct pg_query *q)
{
	struct pg_pending *p;
	struct pg_query *nq;

	if (!req_id || pg->npending >= PG_MAX_PENDING)
		return false;
	p = pending_get(pg, req_id, true);
	if (!p || p->n >= PG_MAX_PER_REQUEST)
		return false;
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 8;
		nq = realloc(p->q, p->cap * sizeof(*nq));
		if (!nq)
			return false;
		p->q = nq;
	}
	p->q[p->n++] = *q;
	pg->npending++;
	return true;
}

void pg__add_round_trip(struct pg *pg, const struct ap_pg_event *e)
{
	size_t cap = e->capture_len < AP_PG_CAPTURE_MAX ? e->capture_len : AP_PG_CAPTURE_MAX;
	struct pg_query q = { 0 };
	char raw[1024] = "";
	struct pg_stmt *s;

	q.duration_ns = e->end_ns > e->start_ns ? e->end_ns - e->start_ns : 0;
	q.rows = e->rows;
	q.error = e->flags & AP_PG_ERROR;
	q.tls = e->flags & AP_PG_TLS;
	q.uncounted = e->flags & AP_PG_UNCOUNTED;
	if (e->flags & AP_PG_NO_CAPTURE)
		set_out(q.fingerprint, sizeof(q.fingerprint),
			e->flags & AP_PG_TLS ? "(encrypted)" : "(pipelined, not captured)");
	else
		pg__statement(pg, e->conn_id, e->capture, cap, e->seq, q.fingerprint,
			      sizeof(q.fingerprint), raw, pg->literals ? sizeof(raw) : 0);
	s = stmt_get(pg, q.fingerprint);
	if (s) {
		s->calls++;
		s->total_ns += q.duration_ns;
		s->errors += q.error;
		s->rows += q.rows;
		s->uncounted += q.uncounted;
		hist__add(&s->duration, q.duration_ns);
	}
	pghold__add(pg->hold, e->req_id, e->conn_id, e->start_ns, e->end_ns,
		    pg__ends_hold(q.fingerprint));
	if (pg->literals && raw[0])
		q.text = strdup(raw);
	if (!keep_query(pg, e->req_id, &q)) {
		free(q.text);
		if (e->req_id)
			pg->dropped++;
	}
}

struct pg_query *pg__take(struct pg *pg, uint64_t req_id, const char *route, size_t *n)
{
	size_t b = id_bucket(req_id) % PG_BUCKETS, i;
	struct pg_pending **pp, *p;
	struct pg_query *q;
	struct pg_stmt *s;

	*n = 0;
	for (pp = &pg->pending[b]; *pp; pp = &(*pp)->next)
		if ((*pp)->req_id == req_id)
			break;
	p = *pp;
	if (!p)
		return NULL;
	*pp = p->next;
	q = p->q;
	*n = p->n;
	pg->npending -= p->n;
	free(p);
	for (i = 0; i < *n; i++) {
		s = stmt_get(pg, q[i].fingerprint);
		if (s)
			stmt_add_route(s, route);
	}
	return q;
}

uint64_t pg__take_hold(struct pg *pg, uint64_t req_id, uint32_t *round_trips)
{
	return pghold__take(pg->hold, req_id, round_trips);
}

struct pghold_counts pg__hold_counts(const struct pg *pg)
{
	return pghold__counts(pg->hold);
}

static int cmp_stmts(const void *a, const void *b)
{
	const struct pg_stmt *sa = *(const struct pg_stmt **)a, *sb = *(const struct pg_stmt **)b;

	if (sa->total_ns != sb->total_ns)
		return sa->total_ns > sb->total_ns ? -1 : 1;
	return strcmp(sa->fingerprint, sb->fingerprint);
}

const struct pg_stmt **pg__sorted(struct pg *pg, size_t *n)
{
	const struct pg_stmt **v;
	struct pg_stmt *s;
	size_t i, k = 0;

	v = realloc(pg->sorted, (pg->nstmts + 1) * sizeof(*v));
	if (!v) {
		*n = 0;
		return NULL;
	}
	pg->sorted = v;
	for (i = 0; i < PG_BUCKETS; i++)
		for (s = pg->stmts[i]; s; s = s->next)
			v[k++] = s;
	qsort(v, k, sizeof(*v), cmp_stmts);
	*n = k;
	return v;
}

/* The routes of a statement on a line of their own, cut to fit 120 columns. */
static void print_routes(FILE *out, const struct pg_stmt *s)
{
	char line[121];
	size_t len = 0;
	int r;

	if (!s->nroutes)
		return;
	len = snprintf(line, sizeof(line), "%16s", "routes: ");
	for (r = 0; r < s->nroutes && len < sizeof(line); r++)
		len += snprintf(line + len, sizeof(line) - len, "%s%s", r ? ", " : "", s->routes[r]);
	if (len < sizeof(line) && s->more_routes)
		len += snprintf(line + len, sizeof(line) - len, ", ...");
	if (len >= sizeof(line))
		memcpy(line + sizeof(line) - 3, "..", 3);
	fprintf(out, "%s\n", line);
}

void pg__print_top(struct pg *pg, FILE *out, size_t limit)
{
	const struct pg_stmt **v, *s;
	size_t n, i;

	v = pg__sorted(pg, &n);
	if (!n)
		return;
	fprintf(out, "\nTOP STATEMENTS (PostgreSQL round trips, by total time)\n");
	fprintf(out, "%7s %10s %8s %8s %9s %6s  %s\n", "CALLS", "TOTAL_MS", "P50_MS", "P95_MS",
		"ROWS", "ERRORS", "STATEMENT (and below it, the routes that ran it)");
	for (i = 0; i < n && i < limit; i++) {
		s = v[i];
		fprintf(out, "%7llu %10.2f %8.2f %8.2f ", (unsigned long long)s->calls,
			s->total_ns / 1e6, hist__quantile(&s->duration, 0.5) / 1e6,
			hist__quantile(&s->duration, 0.95) / 1e6);
		if (s->uncounted)
			fprintf(out, "%9s %6s", "-", "-");
		else
			fprintf(out, "%9llu %6llu", (unsigned long long)s->rows,
				(unsigned long long)s->errors);
		fprintf(out, "  %.63s\n", s->fingerprint);
		print_routes(out, s);
	}
	if (n > limit)
		fprintf(out, "(%zu more statements in the profile)\n", n - limit);
	if (pg->dropped)
		fprintf(out, "(%llu round trips not listed per request: limits reached)\n",
			(unsigned long long)pg->dropped);
}

struct json_object *pg__statements_json(struct pg *pg)
{
	struct json_object *arr = json_object_new_array(), *o, *routes;
	const struct pg_stmt **v, *s;
	size_t n, i;
	int r;

	v = pg__sorted(pg, &n);
	for (i = 0; i < n; i++) {
		s = v[i];
		o = json_object_new_object();
		json_object_object_add(o, "fingerprint", json_object_new_string(s->fingerprint));
		json_object_object_add(o, "calls", json_object_new_uint64(s->calls));
		json_object_object_add(o, "total_ns", json_object_new_uint64(s->total_ns));
		/* Unknown (null) if any call's messages were not walked: a partial sum misleads. */
		json_object_object_add(o, "errors",
				       s->uncounted ? NULL : json_object_new_uint64(s->errors));
		json_object_object_add(o, "rows",
				       s->uncounted ? NULL : json_object_new_uint64(s->rows));
		routes = json_object_new_array();
		for (r = 0; r < s->nroutes; r++)
			json_object_array_add(routes, json_object_new_string(s->routes[r]));
		json_object_object_add(o, "routes", routes);
		json_object_object_add(o, "more_routes", json_object_new_boolean(s->more_routes));
		json_object_object_add(o, "duration_ns", profile__quantiles_json(&s->duration));
		json_object_array_add(arr, o);
	}
	return arr;
}
