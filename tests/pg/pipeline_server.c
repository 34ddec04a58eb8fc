// SPDX-License-Identifier: GPL-2.0-only
/*
 * pipeline_server - thread-per-connection HTTP/1.1 test server whose requests
 * run PostgreSQL statements through libpq's pipeline mode: every statement of
 * a request is sent, each followed by its own Sync (PQpipelineSync), before
 * any result is read, so several Syncs are in flight at once.
 *
 * Usage: pipeline_server --port N [--truth FILE] [--pg-port P] [--pool N]
 *
 * A pool of --pool connections is opened at start-up (before agentprof
 * traces); each request takes one. Parameters are sent in text format in
 * Bind: their values are on the wire but must never reach agentprof's output.
 *
 * Endpoints (<id> any path segment):
 *   GET /pipe/<id>?n=K   K segments "SELECT $1::int + 1" (unnamed statement,
 *                        Parse/Bind/Describe/Execute/Sync each): K round trips
 *   GET /prep/<id>       5 segments: PQsendPrepare("ap_add", ...);
 *                        2 x PQsendQueryPrepared("ap_add") (Bind/Execute of
 *                        a named statement: reported under its Parse text);
 *                        a statement with a 'secret-..' string literal in its
 *                        text; DEALLOCATE ap_add
 *   GET /pfail/<id>      3 segments: good, division by zero, good
 *   GET /pmany/<id>      3 segments: good, generate_series(1, 20000) (20000
 *                        rows: the result spans many reads), good
 *   GET /pwait/<id>      1 segment: SELECT pg_sleep(0.1), the thread waits 100 ms
 *   GET /nopg/<id>       no PostgreSQL
 * Responses carry X-PG-Round-Trips and echo X-Request-Id. Truth line per
 * request: {request_id, method, path, status, tid, pid, round_trips, rows,
 * errors, statements: [{fingerprint, rows, error}], literals, died}.
 */
#define _GNU_SOURCE
#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../servers/httpd.h"

#define SEG_MAX 64
#define LIT_BASE 31337000L
#define POOL_MAX 64

static pthread_mutex_t lit_lock = PTHREAD_MUTEX_INITIALIZER;
static long lit_next = LIT_BASE * 10 + 5001; /* 313375001..: apart from the Python servers */

static PGconn *pool[POOL_MAX];
static int pool_n;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

/* One Sync-terminated segment of the pipeline: one round trip. */
struct seg {
	char fingerprint[256];
	long rows;
	bool error;
};

struct work {
	struct seg segs[SEG_MAX];
	int nsegs;
	char literals[SEG_MAX * 2][64];
	int nlits;
};

struct req {
	struct httpd_req http; /* first: the core hands out &http */
	struct work w;
};

static long literal(void)
{
	long v;

	pthread_mutex_lock(&lit_lock);
	v = lit_next++;
	pthread_mutex_unlock(&lit_lock);
	return v;
}

static void secret(char *out, size_t cap)
{
	unsigned char b[6];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0x5a, sizeof(b));
	snprintf(out, cap, "secret-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
}

static void add_lit(struct work *w, const char *s)
{
	if (w->nlits < SEG_MAX * 2)
		snprintf(w->literals[w->nlits++], sizeof(w->literals[0]), "%s", s);
}

static struct seg *add_seg(struct work *w, const char *fp)
{
	struct seg *s = &w->segs[w->nsegs++];

	snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", fp);
	s->rows = 0;
	s->error = false;
	return s;
}

static PGconn *pool_get(void)
{
	PGconn *c;

	pthread_mutex_lock(&pool_lock);
	while (pool_n == 0)
		pthread_cond_wait(&pool_cond, &pool_lock);
	c = pool[--pool_n];
	pthread_mutex_unlock(&pool_lock);
	return c;
}

static void pool_put(PGconn *c)
{
	pthread_mutex_lock(&pool_lock);
	pool[pool_n++] = c;
	pthread_cond_signal(&pool_cond);
	pthread_mutex_unlock(&pool_lock);
}

/*
 * Reads the results of every segment in order: per segment, results until
 * NULL, then the PGRES_PIPELINE_SYNC. Returns 0, or -1 if the stream is off.
 */
static int read_results(PGconn *c, struct work *w, char *err, size_t errsz)
{
	for (int i = 0; i < w->nsegs; i++) {
		PGresult *res;

		while ((res = PQgetResult(c))) {
			ExecStatusType st = PQresultStatus(res);

			if (st == PGRES_TUPLES_OK)
				w->segs[i].rows += PQntuples(res);
			else if (st == PGRES_FATAL_ERROR || st == PGRES_PIPELINE_ABORTED)
				w->segs[i].error = true;
			else if (st != PGRES_COMMAND_OK) {
				snprintf(err, errsz, "segment %d: %s", i, PQresStatus(st));
				PQclear(res);
				return -1;
			}
			PQclear(res);
		}
		res = PQgetResult(c);
		if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
			snprintf(err, errsz, "segment %d: no sync (%s)", i,
				 res ? PQresStatus(PQresultStatus(res)) : "null");
			PQclear(res);
			return -1;
		}
		PQclear(res);
	}
	return 0;
}

static int sync_seg(PGconn *c, char *err, size_t errsz)
{
	if (!PQpipelineSync(c)) {
		snprintf(err, errsz, "PQpipelineSync: %s", PQerrorMessage(c));
		return -1;
	}
	return 0;
}

static int send_add(PGconn *c, struct work *w, const char *sql, const char *fp)
{
	char v[32];
	const char *params[1] = {v};

	snprintf(v, sizeof(v), "%ld", literal());
	add_lit(w, v);
	add_seg(w, fp);
	return PQsendQueryParams(c, sql, 1, NULL, params, NULL, NULL, 0) ? 0 : -1;
}

static int run_pipe(PGconn *c, struct work *w, long n, char *err, size_t errsz)
{
	for (long i = 0; i < n; i++) {
		if (send_add(c, w, "SELECT $1::int + 1", "SELECT $1::int + $2")) {
			snprintf(err, errsz, "send: %s", PQerrorMessage(c));
			return -1;
		}
		if (sync_seg(c, err, errsz))
			return -1;
	}
	return read_results(c, w, err, errsz);
}

static int run_prep(PGconn *c, struct work *w, char *err, size_t errsz)
{
	static const char add_sql[] = "SELECT $1::int + $2::int";
	char a[32], b[32], s1[64], s2[64], sql[256];
	const char *params[2];

	add_seg(w, add_sql);
	if (!PQsendPrepare(c, "ap_add", add_sql, 2, NULL) || sync_seg(c, err, errsz))
		goto fail;
	for (int i = 0; i < 2; i++) {
		snprintf(a, sizeof(a), "%ld", literal());
		snprintf(b, sizeof(b), "%ld", literal());
		add_lit(w, a);
		add_lit(w, b);
		params[0] = a;
		params[1] = b;
		add_seg(w, add_sql);
		if (!PQsendQueryPrepared(c, "ap_add", 2, params, NULL, NULL, 0) ||
		    sync_seg(c, err, errsz))
			goto fail;
	}
	secret(s1, sizeof(s1));
	secret(s2, sizeof(s2));
	add_lit(w, s1);
	add_lit(w, s2);
	snprintf(sql, sizeof(sql), "SELECT $1::text || '%s'", s1);
	params[0] = s2;
	add_seg(w, "SELECT $1::text || $2");
	if (!PQsendQueryParams(c, sql, 1, NULL, params, NULL, NULL, 0) || sync_seg(c, err, errsz))
		goto fail;
	add_seg(w, "DEALLOCATE ap_add");
	if (!PQsendQueryParams(c, "DEALLOCATE ap_add", 0, NULL, NULL, NULL, NULL, 0) ||
	    sync_seg(c, err, errsz))
		goto fail;
	return read_results(c, w, err, errsz);
fail:
	if (!err[0])
		snprintf(err, errsz, "send: %s", PQerrorMessage(c));
	return -1;
}

static int run_pmany(PGconn *c, struct work *w, char *err, size_t errsz)
{
	static const char sql[] = "SELECT generate_series($1::int, $2::int)";
	const char *params[2] = {"1", "20000"};

	/* a small statement on each side: the big result is read between them */
	if (send_add(c, w, "SELECT $1::int + 1", "SELECT $1::int + $2") || sync_seg(c, err, errsz))
		goto fail;
	add_seg(w, sql);
	if (!PQsendQueryParams(c, sql, 2, NULL, params, NULL, NULL, 0) || sync_seg(c, err, errsz))
		goto fail;
	if (send_add(c, w, "SELECT $1::int + 1", "SELECT $1::int + $2") || sync_seg(c, err, errsz))
		goto fail;
	return read_results(c, w, err, errsz);
fail:
	if (!err[0])
		snprintf(err, errsz, "send: %s", PQerrorMessage(c));
	return -1;
}

static int run_pwait(PGconn *c, struct work *w, char *err, size_t errsz)
{
	add_seg(w, "SELECT pg_sleep($1)");
	if (!PQsendQueryParams(c, "SELECT pg_sleep(0.1)", 0, NULL, NULL, NULL, NULL, 0) ||
	    sync_seg(c, err, errsz)) {
		if (!err[0])
			snprintf(err, errsz, "send: %s", PQerrorMessage(c));
		return -1;
	}
	return read_results(c, w, err, errsz);
}

static int run_pfail(PGconn *c, struct work *w, char *err, size_t errsz)
{
	if (send_add(c, w, "SELECT $1::int + 1", "SELECT $1::int + $2") || sync_seg(c, err, errsz) ||
	    send_add(c, w, "SELECT $1::int / 0", "SELECT $1::int / $2") || sync_seg(c, err, errsz) ||
	    send_add(c, w, "SELECT $1::int + 1", "SELECT $1::int + $2") || sync_seg(c, err, errsz)) {
		if (!err[0])
			snprintf(err, errsz, "send: %s", PQerrorMessage(c));
		return -1;
	}
	return read_results(c, w, err, errsz);
}

/* ---- HTTP ---- */

static void write_truth(struct httpd_req *r, int status, struct work *w)
{
	long rows = 0, errors = 0;
	FILE *fp;

	for (int i = 0; i < w->nsegs; i++) {
		rows += w->segs[i].rows;
		errors += w->segs[i].error;
	}
	/* the method is always GET here: get11_only refuses anything else */
	fp = httpd_truth_begin(r);
	if (!fp)
		return;
	fprintf(fp,
		", \"status\": %d, \"tid\": %ld, \"pid\": %d, \"round_trips\": %d"
		", \"rows\": %ld, \"errors\": %ld, \"died\": false, \"statements\": [",
		status, (long)syscall(SYS_gettid), (int)getpid(), w->nsegs, rows, errors);
	for (int i = 0; i < w->nsegs; i++) {
		fputs(i ? ", {\"fingerprint\": " : "{\"fingerprint\": ", fp);
		json_str(fp, w->segs[i].fingerprint);
		fprintf(fp, ", \"rows\": %ld, \"error\": %s}", w->segs[i].rows,
			w->segs[i].error ? "true" : "false");
	}
	fputs("], \"literals\": [", fp);
	for (int i = 0; i < w->nlits; i++) {
		if (i)
			fputs(", ", fp);
		json_str(fp, w->literals[i]);
	}
	fputs("]}\n", fp);
	httpd_truth_end(fp);
}

static int respond(int fd, struct httpd_req *r, int status, const char *reason, int rts)
{
	char resp[HEAD_MAX], body[64];
	struct httpd_head h;
	int blen, n;

	blen = snprintf(body, sizeof(body), "{\"round_trips\": %d}\n", rts);
	httpd_head_start(&h, resp, sizeof(resp), r, status, reason, "agentprof-pipeline-server");
	httpd_head_add(&h,
		       "Content-Type: application/json\r\nContent-Length: %d\r\n"
		       "X-PG-Round-Trips: %d\r\n",
		       blen, rts);
	n = httpd_head_end(&h, r);
	if (n < 0 || (size_t)(n + blen) >= sizeof(resp))
		return -1;
	memcpy(resp + n, body, (size_t)blen);
	/* no ttfb bookkeeping: this server reports none */
	return httpd_write_raw(fd, resp, (size_t)(n + blen), &r->tx_bytes);
}

static bool is_pg_route(const char *target)
{
	return route_is(target, "/pipe/") || route_is(target, "/prep/") ||
	       route_is(target, "/pfail/") || route_is(target, "/pmany/") ||
	       route_is(target, "/pwait/");
}

/* Runs the route's pipeline on @pg. Returns 0, or -1 with @err set. */
static int run_route(PGconn *pg, const char *target, struct work *w, char *err, size_t errsz)
{
	if (route_is(target, "/pipe/")) {
		long n = query_param(target, "n", 3);

		return run_pipe(pg, w, n < 1 ? 1 : n > SEG_MAX ? SEG_MAX : n, err, errsz);
	}
	if (route_is(target, "/prep/"))
		return run_prep(pg, w, err, errsz);
	if (route_is(target, "/pwait/"))
		return run_pwait(pg, w, err, errsz);
	if (route_is(target, "/pmany/"))
		return run_pmany(pg, w, err, errsz);
	return run_pfail(pg, w, err, errsz);
}

/* Takes a pooled connection through one pipeline. Returns the HTTP status. */
static int run_pg(const char *target, struct work *w)
{
	PGconn *pg = pool_get();
	char err[512] = "";
	int rc;

	if (!PQenterPipelineMode(pg)) {
		snprintf(err, sizeof(err), "PQenterPipelineMode: %s", PQerrorMessage(pg));
		rc = -1;
	} else {
		rc = run_route(pg, target, w, err, sizeof(err));
	}
	if (!rc && !PQexitPipelineMode(pg)) {
		snprintf(err, sizeof(err), "PQexitPipelineMode: %s", PQerrorMessage(pg));
		rc = -1;
	}
	pool_put(pg);
	if (!rc)
		return 200;
	fprintf(stderr, "pipeline_server: %s: %s\n", target, err);
	return 500;
}

/* The truth line goes out before the response: the client may read it at once. */
static int handle(struct httpd_conn *c, struct httpd_req *r)
{
	struct work *w = &((struct req *)r)->w;
	int status = 200;

	if (is_pg_route(r->target))
		status = run_pg(r->target, w);
	else if (!route_is(r->target, "/nopg/"))
		status = 404;
	write_truth(r, status, w);
	return respond(c->fd, r, status, status == 200 ? "OK" : "Error", w->nsegs);
}

static void bad_request(int fd, struct httpd_req *r)
{
	r->minor = 1; /* this server answers in HTTP/1.1 only */
	respond(fd, r, 400, "Bad Request", 0);
}

static long pg_port = 5432, npool = 4;

static bool option(const char *name, const char *val)
{
	if (!strcmp(name, "--pg-port"))
		pg_port = strtol(val, NULL, 10);
	else if (!strcmp(name, "--pool"))
		npool = strtol(val, NULL, 10);
	else
		return false;
	return true;
}

/* The last --pool counts, so its range is checked once all are in. */
static bool pool_ok(void)
{
	return npool >= 1 && npool <= POOL_MAX;
}

/* Opens the pool before serving: agentprof traces only the requests. */
static int connect_pool(void)
{
	char dsn[512];

	snprintf(dsn, sizeof(dsn),
		 "host=127.0.0.1 port=%ld dbname=agentprof_test user=agentprof_test "
		 "password=agentprof_test sslmode=disable gssencmode=disable "
		 "application_name=agentprof_test",
		 pg_port);
	for (long i = 0; i < npool; i++) {
		PGconn *pg = PQconnectdb(dsn);

		if (PQstatus(pg) != CONNECTION_OK) {
			fprintf(stderr, "pipeline_server: connect: %s", PQerrorMessage(pg));
			return -1;
		}
		pool[pool_n++] = pg;
	}
	return 0;
}

/* GET-only HTTP/1.1; X-Request-Id without spaces or JSON escapes. */
static struct httpd srv = {
	.synopsis = "--port N [--truth FILE] [--pg-port P] [--pool N]",
	.option = option,
	.args_ok = pool_ok,
	.setup = connect_pool,
	.flags = HTTPD_GET11_ONLY,
	.id_drop = " \"\\",
	.req_size = sizeof(struct req),
	.ops = {NULL, handle, bad_request},
};

int main(int argc, char **argv)
{
	return httpd_main(&srv, argc, argv);
}
