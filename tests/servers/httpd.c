// SPDX-License-Identifier: GPL-2.0-only
/*
 * httpd - the HTTP/1.x core shared by agentprof's C test servers; see httpd.h.
 *
 * Nothing here calls malloc() in a connection thread: app_server reports
 * every mapping a request makes, so the only ones must be its own.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

#define BODY_PIECE_MAX 1024

static const struct httpd *server;
static FILE *truth_fp;
static char truth_buf[1 << 16];
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- clocks ---- */

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

void httpd_start_clocks(struct httpd_req *r)
{
	/* the wall span encloses the CPU span, so wall_ns >= cpu_ns */
	r->wall0 = mono_ns();
	r->cpu0 = thread_cpu_ns();
}

/* ---- socket I/O ---- */

static void note_first_write(struct httpd_req *r)
{
	if (!r->first_write_done) {
		r->first_write_done = true;
		r->ttfb_wall = mono_ns() - r->wall0;
	}
}

/* write() until done; counts bytes in *counter. */
int httpd_write_raw(int fd, const void *data, size_t n, uint64_t *counter)
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
		*counter += (uint64_t)w;
	}
	return 0;
}

int httpd_write(int fd, struct httpd_req *r, const void *data, size_t n)
{
	note_first_write(r);
	return httpd_write_raw(fd, data, n, &r->tx_bytes);
}

/* Steps past @w written bytes: whole iovecs, then into the next one. */
static void iov_advance(struct iovec **iov, int *cnt, size_t w)
{
	while (*cnt > 0 && w >= (*iov)->iov_len) {
		w -= (*iov)->iov_len;
		(*iov)++;
		(*cnt)--;
	}
	if (*cnt > 0) {
		(*iov)->iov_base = (char *)(*iov)->iov_base + w;
		(*iov)->iov_len -= w;
	}
}

int httpd_writev(int fd, struct httpd_req *r, struct iovec *iov, int cnt)
{
	note_first_write(r);
	while (cnt > 0) {
		ssize_t w;

		do
			w = writev(fd, iov, cnt);
		while (w < 0 && errno == EINTR);
		if (w < 0)
			return -1;
		r->tx_bytes += (uint64_t)w;
		iov_advance(&iov, &cnt, (size_t)w);
	}
	return 0;
}

/* Reads until "\r\n\r\n" is in the buffer. Returns head length, 0 on EOF, -1 on error. */
static ssize_t read_head(struct httpd_conn *c)
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

/* Drops the first @n bytes of the connection buffer. */
static void consume(struct httpd_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/*
 * Reads the request body: first whatever already sits in the buffer, then
 * read() calls of at most @piece bytes (the size shows in agentprof's syscall
 * counts, so each server keeps its own). Returns bytes read or -1.
 */
long long httpd_read_body(struct httpd_conn *c, struct httpd_req *r, size_t piece)
{
	long long left = r->content_length, got = 0;
	char buf[BODY_PIECE_MAX];

	if (piece > sizeof(buf))
		piece = sizeof(buf);
	if (left > 0 && c->len > 0) {
		size_t take = (size_t)left < c->len ? (size_t)left : c->len;

		consume(c, take);
		r->rx_bytes += take;
		left -= (long long)take;
		got += (long long)take;
	}
	while (left > 0) {
		size_t want = left < (long long)piece ? (size_t)left : piece;
		ssize_t n = read(c->fd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		left -= n;
		got += n;
		r->rx_bytes += (uint64_t)n;
	}
	return got;
}

/* ---- request heads ---- */

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

/* "METHOD TARGET HTTP/1.x". Returns 0 or -1 if malformed (or not allowed). */
static int parse_request_line(char *line, struct httpd_req *r)
{
	char *sp1, *sp2, *ver;

	line = trim(line);
	sp1 = strchr(line, ' ');
	if (!sp1)
		return -1;
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2)
		return -1;
	*sp1 = *sp2 = '\0';
	ver = sp2 + 1;
	if (strlen(line) >= sizeof(r->method) || strlen(sp1 + 1) >= sizeof(r->target))
		return -1;
	strcpy(r->method, line);
	strcpy(r->target, sp1 + 1);
	if (strncmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
		return -1;
	r->minor = ver[7] - '0';
	r->keep_alive = r->minor == 1;
	/* checked before any header: a refused request echoes no X-Request-Id */
	if ((server->flags & HTTPD_GET11_ONLY) && (strcmp(r->method, "GET") || r->minor != 1))
		return -1;
	return 0;
}

/* Keeps the id printable, header-safe and free of the server's id_drop characters. */
static void set_request_id(struct httpd_req *r, const char *val)
{
	const char *drop = server->id_drop ? server->id_drop : "";
	size_t i, j = 0;

	for (i = 0; val[i] && j < ID_MAX - 1; i++) {
		unsigned char ch = (unsigned char)val[i];

		if (ch >= 0x20 && ch < 0x7f && !strchr(drop, ch))
			r->request_id[j++] = val[i];
	}
	r->request_id[j] = '\0';
	r->has_request_id = true;
}

static int set_content_length(struct httpd_req *r, const char *val)
{
	char *endp;

	/* a GET-only server takes no body, and says so for anything but "0" */
	if ((server->flags & HTTPD_GET11_ONLY))
		return strcmp(val, "0") ? -1 : 0;
	r->content_length = strtoll(val, &endp, 10);
	if (endp == val || *endp || r->content_length < 0)
		return -1;
	return 0;
}

static void set_connection(struct httpd_req *r, const char *val)
{
	if (strcasestr(val, "close"))
		r->keep_alive = false;
	else if (!(server->flags & HTTPD_GET11_ONLY) && strcasestr(val, "keep-alive"))
		r->keep_alive = true;
}

/* One "Name: value" line. Returns 0 or -1 if malformed. */
static int parse_header(char *line, struct httpd_req *r)
{
	char *colon, *name, *val;

	colon = strchr(line, ':');
	if (!colon)
		return -1;
	*colon = '\0';
	name = trim(line);
	val = trim(colon + 1);
	if (!strcasecmp(name, "Content-Length"))
		return set_content_length(r, val);
	if (!strcasecmp(name, "Transfer-Encoding")) {
		if (strcasestr(val, "chunked"))
			r->chunked_body = true;
	} else if (!strcasecmp(name, "Connection")) {
		set_connection(r, val);
	} else if (!strcasecmp(name, "X-Request-Id")) {
		set_request_id(r, val);
	}
	return 0;
}

/* Parses the head in c->buf[0..head_len). Returns 0 or -1 if malformed. */
static int parse_head(struct httpd_conn *c, size_t head_len, struct httpd_req *r)
{
	char *line, *save = NULL;
	char head[HEAD_MAX + 1];

	memcpy(head, c->buf, head_len);
	head[head_len] = '\0';

	line = strtok_r(head, "\n", &save);
	if (!line || parse_request_line(line, r))
		return -1;
	while ((line = strtok_r(NULL, "\n", &save))) {
		line = trim(line);
		if (!*line)
			break;
		if (parse_header(line, r))
			return -1;
	}
	return 0;
}

long query_param(const char *target, const char *key, long def)
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

/* True if the path part of @target is "<prefix><non-empty id without '/'>". */
bool route_is(const char *target, const char *prefix)
{
	size_t plen = strlen(prefix), idlen;

	if (strncmp(target, prefix, plen) != 0)
		return false;
	idlen = strcspn(target + plen, "?#");
	return idlen > 0 && !memchr(target + plen, '/', idlen);
}

long clamp(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* ---- response heads ---- */

void httpd_head_start(struct httpd_head *h, char *out, size_t cap, const struct httpd_req *r,
		      int status, const char *reason, const char *server_name)
{
	*h = (struct httpd_head){.out = out, .cap = cap};
	httpd_head_add(h, "HTTP/1.%d %d %s\r\nServer: %s\r\nConnection: %s\r\n", r->minor, status,
		       reason, server_name, r->keep_alive ? "keep-alive" : "close");
}

void httpd_head_add(struct httpd_head *h, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (h->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(h->out + h->len, h->cap - h->len, fmt, ap);
	va_end(ap);
	/* like snprintf(): the head must leave room for a NUL */
	if (n < 0 || h->len + (size_t)n >= h->cap) {
		h->full = true;
		return;
	}
	h->len += (size_t)n;
}

/* Adds X-Request-Id and the blank line. Returns the head's length or -1. */
int httpd_head_end(struct httpd_head *h, const struct httpd_req *r)
{
	if (r->has_request_id)
		httpd_head_add(h, "X-Request-Id: %s\r\n", r->request_id);
	httpd_head_add(h, "\r\n");
	return h->full ? -1 : (int)h->len;
}

/* Ends the head and sends it with @body (Content-Length already in it) in one write(). */
int httpd_send(int fd, struct httpd_req *r, struct httpd_head *h, const char *body)
{
	size_t blen = strlen(body);
	int n = httpd_head_end(h, r);

	if (n < 0 || (size_t)n + blen >= h->cap)
		return -1;
	memcpy(h->out + n, body, blen);
	return httpd_write(fd, r, h->out, (size_t)n + blen);
}

/* ---- truth file ---- */

void json_str(FILE *fp, const char *s)
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

FILE *httpd_truth_begin(const struct httpd_req *r)
{
	if (!truth_fp)
		return NULL;
	pthread_mutex_lock(&truth_lock);
	fputs("{\"request_id\": ", truth_fp);
	if (r->has_request_id)
		json_str(truth_fp, r->request_id);
	else
		fputs("null", truth_fp);
	fputs(", \"method\": ", truth_fp);
	json_str(truth_fp, r->method);
	fputs(", \"path\": ", truth_fp);
	json_str(truth_fp, r->target);
	return truth_fp;
}

void httpd_truth_end(FILE *fp)
{
	fflush(fp);
	pthread_mutex_unlock(&truth_lock);
}

/* ---- serving ---- */

/* Reads, parses and hands on one request. Returns 0 to go on with the connection. */
static int serve_request(struct httpd_conn *c)
{
	struct httpd_req *r = (struct httpd_req *)c->req;
	ssize_t head_len = read_head(c);

	if (head_len <= 0)
		return -1;
	memset(r, 0, server->req_size);
	if (server->ops.begin)
		server->ops.begin(r);
	r->rx_bytes = (uint64_t)head_len;
	r->minor = 1;
	if (parse_head(c, (size_t)head_len, r)) {
		r->keep_alive = false;
		strcpy(r->method, "?");
		server->ops.bad_request(c->fd, r);
		return -1;
	}
	consume(c, (size_t)head_len);
	if (server->ops.handle(c, r))
		return -1;
	return r->keep_alive ? 0 : -1;
}

static void *conn_thread(void *arg)
{
	struct httpd_conn *c = arg;

	while (!serve_request(c))
		;
	close(c->fd);
	free(c);
	return NULL;
}

static void __attribute__((noreturn)) usage(const struct httpd *srv, const char *argv0)
{
	fprintf(stderr, "usage: %s %s\n", argv0, srv->synopsis);
	exit(2);
}

/* Takes option @name with its value @val; false if this server has no such option. */
static bool take_opt(struct httpd *srv, const char *name, char *val)
{
	if (!strcmp(name, "--port"))
		srv->port = strtol(val, NULL, 10);
	else if (!strcmp(name, "--truth"))
		srv->truth = val;
	else if ((srv->flags & HTTPD_HOST_OPT) && !strcmp(name, "--host"))
		srv->host = val;
	else
		return srv->option && srv->option(name, val);
	return true;
}

static void parse_args(struct httpd *srv, int argc, char **argv)
{
	srv->port = -1;
	srv->host = "127.0.0.1";
	srv->truth = NULL;
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc || !take_opt(srv, argv[i], argv[i + 1]))
			usage(srv, argv[0]);
		i++;
	}
	if (srv->port < 0 || srv->port > 65535 || (srv->args_ok && !srv->args_ok()))
		usage(srv, argv[0]);
}

static int open_truth(const struct httpd *srv)
{
	if (!srv->truth)
		return 0;
	truth_fp = fopen(srv->truth, "a");
	if (!truth_fp) {
		perror(srv->truth);
		return -1;
	}
	/* static buffer: no malloc (and no new arena mmap) in a request thread */
	if (srv->flags & HTTPD_TRUTH_STATIC_BUF)
		setvbuf(truth_fp, truth_buf, _IOFBF, sizeof(truth_buf));
	return 0;
}

/* Returns the listening socket (its port in *addr), or -1 after perror(). */
static int listen_on(struct sockaddr_in *addr)
{
	socklen_t alen = sizeof(*addr);
	int lfd, one = 1;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)addr, sizeof(*addr)) || listen(lfd, 512) ||
	    getsockname(lfd, (struct sockaddr *)addr, &alen)) {
		perror("listen");
		return -1;
	}
	return lfd;
}

/* Hands a new connection to its own detached thread; drops it if that fails. */
static void spawn_conn(const struct httpd *srv, pthread_attr_t *attr, int fd)
{
	struct httpd_conn *c;
	pthread_t th;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* allocated here, not in the thread: requests must not malloc() */
	c = calloc(1, sizeof(*c) + srv->req_size);
	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	if (pthread_create(&th, attr, conn_thread, c)) {
		close(fd);
		free(c);
	}
}

static int serve(struct httpd *srv)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	pthread_attr_t attr;
	int lfd;

	server = srv;
	if (inet_pton(AF_INET, srv->host, &addr.sin_addr) != 1) {
		fprintf(stderr, "bad --host %s\n", srv->host);
		return 2;
	}
	addr.sin_port = htons((uint16_t)srv->port);
	lfd = listen_on(&addr);
	if (lfd < 0)
		return 1;
	printf("listening %u\n", ntohs(addr.sin_port));
	fflush(stdout);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("accept");
			return 1;
		}
		spawn_conn(srv, &attr, fd);
	}
}

int httpd_main(struct httpd *srv, int argc, char **argv)
{
	parse_args(srv, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (open_truth(srv) || (srv->setup && srv->setup()))
		return 1;
	return serve(srv);
}
