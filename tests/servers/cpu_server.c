// SPDX-License-Identifier: GPL-2.0-only
/*
 * cpu_server - thread-per-connection HTTP/1.x test server for agentprof.
 *
 * Usage: cpu_server --port N [--truth FILE] [--host ADDR]
 *
 * Every accepted connection gets its own pthread that serves requests in a
 * keep-alive loop with blocking read()/write()/writev(). Each request burns a
 * requested amount of thread CPU time and, with --truth, appends one JSON line
 * with the ground truth the server measured about itself.
 *
 * Endpoints:
 *   GET  /cpu/<id>?ms=N              burn N ms of thread CPU, 200 + small body
 *   POST /echo/<id>?ms=N             read body in 1000-byte read()s, burn N ms,
 *                                    respond with the body length (multi-write)
 *   GET  /stream/<id>?ms=N&chunks=K  chunked response, K chunks, N/K ms of CPU
 *                                    burnt before each chunk (writev used)
 *   anything else                    404
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define BODY_READ_PIECE 1000
#define ECHO_WRITE_PIECE 2
#define MS_MAX 60000
#define CHUNKS_MAX 1000
#define ID_MAX 256

static FILE *truth_fp;
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;

struct conn {
	int fd;
	char buf[HEAD_MAX + 1];
	size_t len; /* bytes valid in buf (may hold a pipelined next request) */
};

struct req {
	char method[16];
	char target[2048];
	int minor; /* HTTP/1.<minor> */
	bool keep_alive;
	bool chunked_body;
	long long content_length;
	char request_id[ID_MAX];
	bool has_request_id;

	/* accounting */
	uint64_t cpu0, wall0, ttfb_wall;
	uint64_t rx_bytes, tx_bytes;
	bool first_write_done;
	int status;
};

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/*
 * Burns @ns of thread CPU time. The clock is read only every few microseconds
 * of work so the burn is mostly user time, not clock_gettime() syscalls.
 */
static void burn_cpu_ns(uint64_t ns)
{
	uint64_t start = thread_cpu_ns();
	volatile uint64_t x = 88172645463325252ull;

	while (thread_cpu_ns() - start < ns) {
		for (int i = 0; i < 2000; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
	}
}

static void note_first_write(struct req *r)
{
	if (!r->first_write_done) {
		r->first_write_done = true;
		r->ttfb_wall = mono_ns() - r->wall0;
	}
}

static int write_all(int fd, struct req *r, const void *data, size_t n)
{
	const char *p = data;

	note_first_write(r);
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		r->tx_bytes += (uint64_t)w;
	}
	return 0;
}

static int writev_all(int fd, struct req *r, struct iovec *iov, int cnt)
{
	note_first_write(r);
	while (cnt > 0) {
		ssize_t w = writev(fd, iov, cnt);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		r->tx_bytes += (uint64_t)w;
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/* Reads until "\r\n\r\n" is in the buffer. Returns head length, 0 on EOF, -1 on error. */
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

/* Drops the first @n bytes of the connection buffer. */
static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/*
 * Reads the request body: first whatever already sits in the buffer, then
 * read() calls of at most BODY_READ_PIECE bytes. Returns bytes read or -1.
 */
static long long read_body(struct conn *c, struct req *r)
{
	long long left = r->content_length, got = 0;
	char piece[BODY_READ_PIECE];

	if (left > 0 && c->len > 0) {
		size_t take = (size_t)left < c->len ? (size_t)left : c->len;

		consume(c, take);
		r->rx_bytes += take;
		left -= (long long)take;
		got += (long long)take;
	}
	while (left > 0) {
		size_t want = left < BODY_READ_PIECE ? (size_t)left : BODY_READ_PIECE;
		ssize_t n = read(c->fd, piece, want);

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

/* Parses the head in c->buf[0..head_len). Returns 0 or -1 if malformed. */
static int parse_head(struct conn *c, size_t head_len, struct req *r)
{
	char *line, *save = NULL, *sp1, *sp2, *ver;
	char head[HEAD_MAX + 1];

	memcpy(head, c->buf, head_len);
	head[head_len] = '\0';

	line = strtok_r(head, "\n", &save);
	if (!line)
		return -1;
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
		if (!strcasecmp(name, "Content-Length")) {
			char *endp;

			r->content_length = strtoll(val, &endp, 10);
			if (endp == val || *endp || r->content_length < 0)
				return -1;
		} else if (!strcasecmp(name, "Transfer-Encoding")) {
			if (strcasestr(val, "chunked"))
				r->chunked_body = true;
		} else if (!strcasecmp(name, "Connection")) {
			if (strcasestr(val, "close"))
				r->keep_alive = false;
			else if (strcasestr(val, "keep-alive"))
				r->keep_alive = true;
		} else if (!strcasecmp(name, "X-Request-Id")) {
			size_t i, j = 0;

			/* keep it printable and header-safe */
			for (i = 0; val[i] && j < ID_MAX - 1; i++)
				if ((unsigned char)val[i] >= 0x20 && (unsigned char)val[i] < 0x7f)
					r->request_id[j++] = val[i];
			r->request_id[j] = '\0';
			r->has_request_id = true;
		}
	}
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

/* True if the path part of @target is "<prefix><non-empty id without '/'>". */
static bool route_is(const char *target, const char *prefix)
{
	size_t plen = strlen(prefix), idlen;

	if (strncmp(target, prefix, plen) != 0)
		return false;
	idlen = strcspn(target + plen, "?#");
	return idlen > 0 && !memchr(target + plen, '/', idlen);
}

static long clamp(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
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

static void write_truth(struct req *r, uint64_t cpu_ns, uint64_t wall_ns)
{
	if (!truth_fp)
		return;
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
	fprintf(truth_fp,
		", \"cpu_ns\": %llu, \"wall_ns\": %llu, \"ttfb_ns\": %llu"
		", \"span_cpu_ns\": %llu, \"tid\": %ld"
		", \"pid\": %d, \"status\": %d, \"rx_bytes\": %llu, \"tx_bytes\": %llu"
		", \"server\": \"c\"}\n",
		(unsigned long long)cpu_ns, (unsigned long long)wall_ns,
		(unsigned long long)r->ttfb_wall, (unsigned long long)cpu_ns,
		(long)syscall(SYS_gettid), (int)getpid(), r->status,
		(unsigned long long)r->rx_bytes, (unsigned long long)r->tx_bytes);
	fflush(truth_fp);
	pthread_mutex_unlock(&truth_lock);
}

/* Formats the full response head, blank line included. Returns its length or -1. */
static int fmt_head(char *out, size_t cap, struct req *r, int status, const char *reason,
		    const char *extra, uint64_t cpu_ns)
{
	int n;

	n = snprintf(out, cap,
		     "HTTP/1.%d %d %s\r\n"
		     "Server: agentprof-cpu-server\r\n"
		     "Connection: %s\r\n"
		     "X-Thread-Cpu-Ns: %llu\r\n"
		     "%s",
		     r->minor, status, reason, r->keep_alive ? "keep-alive" : "close",
		     (unsigned long long)cpu_ns, extra);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	if (r->has_request_id) {
		int m = snprintf(out + n, cap - (size_t)n, "X-Request-Id: %s\r\n", r->request_id);

		if (m < 0 || (size_t)(n + m) >= cap)
			return -1;
		n += m;
	}
	if ((size_t)n + 2 >= cap)
		return -1;
	memcpy(out + n, "\r\n", 3);
	return n + 2;
}

/* Sends a complete response with a Content-Length body in one write(). */
static int respond_simple(int fd, struct req *r, int status, const char *reason, const char *body)
{
	char resp[HEAD_MAX + 4096], extra[128];
	size_t blen = strlen(body);
	int n;

	snprintf(extra, sizeof(extra), "Content-Type: text/plain\r\nContent-Length: %zu\r\n", blen);
	r->status = status;
	n = fmt_head(resp, sizeof(resp) - blen, r, status, reason, extra,
		     thread_cpu_ns() - r->cpu0);
	if (n < 0)
		return -1;
	memcpy(resp + n, body, blen);
	return write_all(fd, r, resp, (size_t)n + blen);
}

static int handle_cpu(int fd, struct req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	char body[512];

	burn_cpu_ns((uint64_t)ms * 1000000ull);
	snprintf(body, sizeof(body), "cpu ms=%ld id=%s\n", ms,
		 r->has_request_id ? r->request_id : "-");
	return respond_simple(fd, r, 200, "OK", body);
}

static int handle_echo(struct conn *c, struct req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	char head[HEAD_MAX], body[64], extra[128];
	long long got;
	size_t blen, off;
	int n;

	got = read_body(c, r);
	if (got < 0)
		return -1;
	burn_cpu_ns((uint64_t)ms * 1000000ull);

	blen = (size_t)snprintf(body, sizeof(body), "%lld\n", got);
	snprintf(extra, sizeof(extra), "Content-Type: text/plain\r\nContent-Length: %zu\r\n", blen);
	r->status = 200;
	n = fmt_head(head, sizeof(head), r, 200, "OK", extra, thread_cpu_ns() - r->cpu0);
	if (n < 0)
		return -1;
	/* head, then the body two bytes per write() */
	if (write_all(c->fd, r, head, (size_t)n))
		return -1;
	for (off = 0; off < blen; off += ECHO_WRITE_PIECE) {
		size_t len = blen - off < ECHO_WRITE_PIECE ? blen - off : ECHO_WRITE_PIECE;

		if (write_all(c->fd, r, body + off, len))
			return -1;
	}
	return 0;
}

static int handle_stream(int fd, struct req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	long chunks = clamp(query_param(r->target, "chunks", 4), 1, CHUNKS_MAX);
	uint64_t per_chunk = (uint64_t)ms * 1000000ull / (uint64_t)chunks;
	bool framed = r->minor == 1; /* HTTP/1.0 has no chunked encoding */
	char head[HEAD_MAX], data[128], size_line[32];
	long i;
	int hlen = 0;

	if (!framed)
		r->keep_alive = false;
	r->status = 200;
	for (i = 0; i < chunks; i++) {
		struct iovec iov[4];
		int cnt = 0, dlen, slen;

		burn_cpu_ns(per_chunk);
		dlen = snprintf(data, sizeof(data), "chunk %ld/%ld id=%s\n", i + 1, chunks,
				r->has_request_id ? r->request_id : "-");
		slen = snprintf(size_line, sizeof(size_line), "%x\r\n", dlen);
		if (i == 0) {
			/* The head goes out with the first chunk, after the first burn. */
			hlen = fmt_head(head, sizeof(head), r, 200, "OK",
					framed ? "Content-Type: text/plain\r\n"
						 "Transfer-Encoding: chunked\r\n"
					       : "Content-Type: text/plain\r\n",
					thread_cpu_ns() - r->cpu0);
			if (hlen < 0)
				return -1;
			iov[cnt++] = (struct iovec){head, (size_t)hlen};
		}
		if (framed)
			iov[cnt++] = (struct iovec){size_line, (size_t)slen};
		iov[cnt++] = (struct iovec){data, (size_t)dlen};
		if (framed)
			iov[cnt++] = (struct iovec){"\r\n", 2};

		if (i % 2 == 0) {
			if (writev_all(fd, r, iov, cnt))
				return -1;
		} else {
			/* odd chunks: one write() per piece */
			for (int k = 0; k < cnt; k++)
				if (write_all(fd, r, iov[k].iov_base, iov[k].iov_len))
					return -1;
		}
	}
	if (framed && write_all(fd, r, "0\r\n\r\n", 5))
		return -1;
	return 0;
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	for (;;) {
		struct req r;
		uint64_t cpu_ns, wall_ns;
		ssize_t head_len;
		int rc;

		head_len = read_head(c);
		if (head_len <= 0)
			break;

		memset(&r, 0, sizeof(r));
		/* the wall span encloses the CPU span, so wall_ns >= cpu_ns */
		r.wall0 = mono_ns();
		r.cpu0 = thread_cpu_ns();
		r.rx_bytes = (uint64_t)head_len;
		r.minor = 1;

		if (parse_head(c, (size_t)head_len, &r)) {
			r.keep_alive = false;
			strcpy(r.method, "?");
			respond_simple(c->fd, &r, 400, "Bad Request", "bad request\n");
			break;
		}
		consume(c, (size_t)head_len);
		if (r.chunked_body) {
			r.keep_alive = false;
			rc = respond_simple(c->fd, &r, 501, "Not Implemented",
					    "chunked request bodies are not supported\n");
		} else if (!strcmp(r.method, "GET") && route_is(r.target, "/cpu/")) {
			rc = read_body(c, &r) < 0 ? -1 : handle_cpu(c->fd, &r);
		} else if (!strcmp(r.method, "POST") && route_is(r.target, "/echo/")) {
			rc = handle_echo(c, &r);
		} else if (!strcmp(r.method, "GET") && route_is(r.target, "/stream/")) {
			rc = read_body(c, &r) < 0 ? -1 : handle_stream(c->fd, &r);
		} else {
			rc = read_body(c, &r) < 0
				 ? -1
				 : respond_simple(c->fd, &r, 404, "Not Found", "not found\n");
		}
		if (rc)
			break;
		cpu_ns = thread_cpu_ns() - r.cpu0;
		wall_ns = mono_ns() - r.wall0;
		write_truth(&r, cpu_ns, wall_ns);
		if (!r.keep_alive)
			break;
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --port N [--truth FILE] [--host ADDR]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *truth = NULL;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t alen = sizeof(addr);
	pthread_attr_t attr;
	long port = -1;
	int lfd, one = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc)
			port = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--truth") && i + 1 < argc)
			truth = argv[++i];
		else if (!strcmp(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else
			usage(argv[0]);
	}
	if (port < 0 || port > 65535)
		usage(argv[0]);

	signal(SIGPIPE, SIG_IGN);
	if (truth) {
		truth_fp = fopen(truth, "a");
		if (!truth_fp) {
			perror(truth);
			return 1;
		}
	}

	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "bad --host %s\n", host);
		return 2;
	}
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
