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
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define ID_MAX 256
#define SEG_MAX 64
#define LIT_BASE 31337000L
#define POOL_MAX 64

static FILE *truth_fp;
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lit_lock = PTHREAD_MUTEX_INITIALIZER;
static long lit_next = LIT_BASE * 10 + 5001; /* 313375001..: apart from the Python servers */

static PGconn *pool[POOL_MAX];
static int pool_n;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cond = PTHREAD_COND_INITIALIZER;

struct conn {
	int fd;
	char buf[HEAD_MAX + 1];
	size_t len;
};

struct req {
	char target[2048];
	bool keep_alive;
	char request_id[ID_MAX];
	bool has_request_id;
};

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

static int write_all(int fd, const void *data, size_t n)
{
	const char *p = data;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static ssize_t read_head(struct conn *c)
{
	for (;;) {
		char *end;
		ssize_t n;

		c->buf[c->len] = '\0';
		end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
		if (end)
			return end + 4 - c->buf;
		if (c->len >= HEAD_MAX)
			return -1;
		n = read(c->fd, c->buf + c->len, HEAD_MAX - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 && c->len == 0)
			return 0;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* GET only, no request bodies. Returns 0 or -1 if malformed. */
static int parse_head(struct conn *c, size_t head_len, struct req *r)
{
	char head[HEAD_MAX + 1], *line, *save = NULL, *sp1, *sp2;

	memcpy(head, c->buf, head_len);
	head[head_len] = '\0';
	line = strtok_r(head, "\n", &save);
	if (!line)
		return -1;
	line = trim(line);
	sp1 = strchr(line, ' ');
	sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp2 || strncmp(line, "GET ", 4) || strncmp(sp2 + 1, "HTTP/1.1", 8))
		return -1;
	*sp2 = '\0';
	if (strlen(sp1 + 1) >= sizeof(r->target))
		return -1;
	strcpy(r->target, sp1 + 1);
	r->keep_alive = true;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *colon, *name, *val;

		line = trim(line);
		if (!*line)
			break;
		colon = strchr(line, ':');
		if (!colon)
			return -1;
		*colon = '\0';
		name = trim(line);
		val = trim(colon + 1);
		if (!strcasecmp(name, "Content-Length") && strcmp(val, "0"))
			return -1;
		if (!strcasecmp(name, "Connection") && strcasestr(val, "close"))
			r->keep_alive = false;
		if (!strcasecmp(name, "X-Request-Id")) {
			size_t i, j = 0;

			for (i = 0; val[i] && j < ID_MAX - 1; i++)
				if ((unsigned char)val[i] > 0x20 && (unsigned char)val[i] < 0x7f &&
				    val[i] != '"' && val[i] != '\\')
					r->request_id[j++] = val[i];
			r->request_id[j] = '\0';
			r->has_request_id = true;
		}
	}
	memmove(c->buf, c->buf + head_len, c->len - head_len);
	c->len -= head_len;
	return 0;
}

static long query_param(const char *target, const char *key, long def)
{
	const char *q = strchr(target, '?');
	size_t klen = strlen(key);

	while (q) {
		q++;
		if (!strncmp(q, key, klen) && q[klen] == '=')
			return strtol(q + klen + 1, NULL, 10);
		q = strchr(q, '&');
	}
	return def;
}

static bool route_is(const char *target, const char *prefix)
{
	size_t plen = strlen(prefix), idlen;

	if (strncmp(target, prefix, plen) != 0)
		return false;
	idlen = strcspn(target + plen, "?#");
	return idlen > 0 && !memchr(target + plen, '/', idlen);
}

static void json_str(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(fp, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			fprintf(fp, "\\u%04x", ch);
		else
			fputc(ch, fp);
	}
	fputc('"', fp);
}

static void write_truth(struct req *r, int status, struct work *w)
{
	long rows = 0, errors = 0;

	if (!truth_fp)
		return;
	for (int i = 0; i < w->nsegs; i++) {
		rows += w->segs[i].rows;
		errors += w->segs[i].error;
	}
	pthread_mutex_lock(&truth_lock);
	fputs("{\"request_id\": ", truth_fp);
	if (r->has_request_id)
		json_str(truth_fp, r->request_id);
	else
		fputs("null", truth_fp);
	fputs(", \"method\": \"GET\", \"path\": ", truth_fp);
	json_str(truth_fp, r->target);
	fprintf(truth_fp,
		", \"status\": %d, \"tid\": %ld, \"pid\": %d, \"round_trips\": %d"
		", \"rows\": %ld, \"errors\": %ld, \"died\": false, \"statements\": [",
		status, (long)syscall(SYS_gettid), (int)getpid(), w->nsegs, rows, errors);
	for (int i = 0; i < w->nsegs; i++) {
		fputs(i ? ", {\"fingerprint\": " : "{\"fingerprint\": ", truth_fp);
		json_str(truth_fp, w->segs[i].fingerprint);
		fprintf(truth_fp, ", \"rows\": %ld, \"error\": %s}", w->segs[i].rows,
			w->segs[i].error ? "true" : "false");
	}
	fputs("], \"literals\": [", truth_fp);
	for (int i = 0; i < w->nlits; i++) {
		if (i)
			fputs(", ", truth_fp);
		json_str(truth_fp, w->literals[i]);
	}
	fputs("]}\n", truth_fp);
	fflush(truth_fp);
	pthread_mutex_unlock(&truth_lock);
}

static int respond(int fd, struct req *r, int status, const char *reason, int rts)
{
	char resp[HEAD_MAX], body[64];
	int blen, n;

	blen = snprintf(body, sizeof(body), "{\"round_trips\": %d}\n", rts);
	n = snprintf(resp, sizeof(resp),
		     "HTTP/1.1 %d %s\r\nServer: agentprof-pipeline-server\r\n"
		     "Connection: %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %d\r\nX-PG-Round-Trips: %d\r\n%s%s%s\r\n%s",
		     status, reason, r->keep_alive ? "keep-alive" : "close", blen, rts,
		     r->has_request_id ? "X-Request-Id: " : "",
		     r->has_request_id ? r->request_id : "", r->has_request_id ? "\r\n" : "", body);
	if (n < 0 || (size_t)n >= sizeof(resp))
		return -1;
	return write_all(fd, resp, (size_t)n);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	struct work *w = malloc(sizeof(*w));

	while (w) {
		struct req r;
		ssize_t head_len = read_head(c);
		char err[512] = "";
		int status = 200, rc = 0;
		PGconn *pg = NULL;

		if (head_len <= 0)
			break;
		memset(&r, 0, sizeof(r));
		memset(w, 0, sizeof(*w));
		if (parse_head(c, (size_t)head_len, &r)) {
			r.keep_alive = false;
			respond(c->fd, &r, 400, "Bad Request", 0);
			break;
		}
		if (route_is(r.target, "/pipe/") || route_is(r.target, "/prep/") ||
		    route_is(r.target, "/pfail/") || route_is(r.target, "/pmany/") ||
		    route_is(r.target, "/pwait/")) {
			pg = pool_get();
			if (!PQenterPipelineMode(pg)) {
				snprintf(err, sizeof(err), "PQenterPipelineMode: %s",
					 PQerrorMessage(pg));
				rc = -1;
			} else if (route_is(r.target, "/pipe/")) {
				long n = query_param(r.target, "n", 3);

				rc = run_pipe(pg, w, n < 1 ? 1 : n > SEG_MAX ? SEG_MAX : n, err,
					      sizeof(err));
			} else if (route_is(r.target, "/prep/")) {
				rc = run_prep(pg, w, err, sizeof(err));
			} else if (route_is(r.target, "/pwait/")) {
				rc = run_pwait(pg, w, err, sizeof(err));
			} else if (route_is(r.target, "/pmany/")) {
				rc = run_pmany(pg, w, err, sizeof(err));
			} else {
				rc = run_pfail(pg, w, err, sizeof(err));
			}
			if (!rc && !PQexitPipelineMode(pg)) {
				snprintf(err, sizeof(err), "PQexitPipelineMode: %s",
					 PQerrorMessage(pg));
				rc = -1;
			}
			pool_put(pg);
			if (rc) {
				fprintf(stderr, "pipeline_server: %s: %s\n", r.target, err);
				status = 500;
			}
		} else if (!route_is(r.target, "/nopg/")) {
			status = 404;
		}
		write_truth(&r, status, w);
		if (respond(c->fd, &r, status, status == 200 ? "OK" : "Error", w->nsegs) ||
		    !r.keep_alive)
			break;
	}
	free(w);
	close(c->fd);
	free(c);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --port N [--truth FILE] [--pg-port P] [--pool N]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t alen = sizeof(addr);
	const char *truth = NULL;
	long port = -1, pg_port = 5432, npool = 4;
	pthread_attr_t attr;
	char dsn[512];
	int lfd, one = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--truth") && i + 1 < argc)
			truth = argv[++i];
		else if (!strcmp(argv[i], "--pg-port") && i + 1 < argc)
			pg_port = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--pool") && i + 1 < argc)
			npool = strtol(argv[++i], NULL, 10);
		else
			usage(argv[0]);
	}
	if (port < 0 || port > 65535 || npool < 1 || npool > POOL_MAX)
		usage(argv[0]);
	signal(SIGPIPE, SIG_IGN);
	if (truth && !(truth_fp = fopen(truth, "a"))) {
		perror(truth);
		return 1;
	}
	snprintf(dsn, sizeof(dsn),
		 "host=127.0.0.1 port=%ld dbname=agentprof_test user=agentprof_test "
		 "password=agentprof_test sslmode=disable gssencmode=disable "
		 "application_name=agentprof_test",
		 pg_port);
	for (long i = 0; i < npool; i++) {
		PGconn *pg = PQconnectdb(dsn);

		if (PQstatus(pg) != CONNECTION_OK) {
			fprintf(stderr, "pipeline_server: connect: %s", PQerrorMessage(pg));
			return 1;
		}
		pool[pool_n++] = pg;
	}

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	addr.sin_port = htons((uint16_t)port);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 512) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("listen");
		return 1;
	}
	printf("listening %u\n", ntohs(addr.sin_port));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct conn *c;
		pthread_t th;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("accept");
			return 1;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		if (pthread_create(&th, &attr, conn_thread, c)) {
			close(fd);
			free(c);
		}
	}
}
