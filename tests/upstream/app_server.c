// SPDX-License-Identifier: GPL-2.0-only
/*
 * app_server - thread-per-connection HTTP/1.x test server for agentprof's
 * memory and upstream accounting. Same structure as tests/servers/cpu_server.c.
 *
 * Usage: app_server --port N --upstream PORT [--truth FILE] [--host ADDR]
 *
 * Every accepted connection gets its own pthread that serves requests in a
 * keep-alive loop with blocking read()/write(). With --truth, each request
 * appends one JSON line with the ground truth the server measured about itself
 * (the same numbers also go out in X-Truth-* response headers).
 *
 * Endpoints (<id> is any id without '/'; port=P overrides --upstream):
 *   GET /mem/<id>?mib=N[&keep=1][&thp=1]
 *        mmap N MiB of anonymous memory, madvise(MADV_NOHUGEPAGE) (thp=1:
 *        MADV_HUGEPAGE instead), write one byte per page, munmap (keep=1: keep
 *        the mapping until /free). Faults from getrusage(RUSAGE_THREAD)
 *        around the touch and around the whole request.
 *   GET /free/<id>      munmap everything kept by /mem?keep=1
 *   GET /call/<id>?ms=N[&stream=1[&chunks=K]]
 *        one call on a NEW connection to the upstream: GET /delay?ms=N (or
 *        /stream?ms=N&chunks=K), response read fully (Content-Length or
 *        chunked), connection closed. Truth: connect_ns (around connect()),
 *        wait_ns (after the last write() -> after the read() that completed
 *        the reply), ttfb_ns (after the last write() -> after the first read()
 *        that returned bytes), tx/rx bytes.
 *   GET /pooled/<id>?ms=N
 *        one call on THE shared keep-alive connection to the upstream (opened
 *        by the first request that needs it; connect_ns is non-zero only for
 *        that request). Requests using it are serialized by a mutex.
 *   GET /reset/<id>     new connection, GET /reset: the upstream answers with an
 *                       RST. 502, error "ECONNRESET" in the truth.
 *   GET /closed/<id>?port=P   connect() to a closed port: 502, "ECONNREFUSED".
 *   anything else       404
 *
 * Any endpoint takes after_ms=N: the thread sleeps N ms after the response is
 * written, before it writes the truth line and reads the next request or
 * closes the connection (post-response work such as access logging). The
 * truth's wall_ns/cpu_ns end before that sleep, at the last response byte.
 *
 * Nothing in a connection thread calls malloc(): the truth file's stdio buffer
 * is static, so the only mappings a request makes are the ones it reports.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define RESP_MAX 65536
#define MS_MAX 60000
#define MIB_MAX 1024
#define CHUNKS_MAX 1000
#define ID_MAX 256
#define KEEP_MAX 64

static FILE *truth_fp;
static char truth_buf[1 << 16];
static pthread_mutex_t truth_lock = PTHREAD_MUTEX_INITIALIZER;
static int upstream_port = -1;
static long page_size;

/* memory kept by /mem?keep=1 until /free */
static pthread_mutex_t keep_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	void *addr;
	size_t len;
} kept[KEEP_MAX];
static int nkept;

/* the shared keep-alive upstream connection of /pooled */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static int pool_fd = -1;
static int pool_port = -1;

struct conn {
	int fd;
	char buf[HEAD_MAX + 1];
	size_t len; /* bytes valid in buf (may hold a pipelined next request) */
};

/* What one upstream call measured about itself. */
struct call {
	bool done;	/* an upstream call was attempted */
	int port;
	bool new_conn;	/* this request opened the connection */
	bool pooled;
	uint64_t connect_ns, wait_ns, ttfb_ns;
	uint64_t tx_bytes, rx_bytes;
	uint64_t wall_ns, cpu_ns; /* connect (if any) .. reply complete */
	int reads;		  /* read() calls returning bytes */
	int status;		  /* upstream's HTTP status, 0 if none */
	const char *error;	  /* errno name, or NULL */
};

struct mem {
	bool done;
	long mib;
	bool keep, thp;
	uint64_t mapped_bytes;
	long touch_minor, touch_major;
	long long rss_before, rss_after_touch, rss_after;
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
	const char *kind;

	/* accounting */
	uint64_t cpu0, wall0, ttfb_wall;
	struct rusage ru0;
	uint64_t rx_bytes, tx_bytes;
	bool first_write_done;
	int status;
	struct call call;
	struct mem mem;
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

static const char *errno_name(int e)
{
	switch (e) {
	case ECONNRESET:
		return "ECONNRESET";
	case ECONNREFUSED:
		return "ECONNREFUSED";
	case EPIPE:
		return "EPIPE";
	case ETIMEDOUT:
		return "ETIMEDOUT";
	case 0:
		return "EOF";
	default:
		return "EOTHER";
	}
}

/* Resident set size of the process in bytes, from /proc/self/statm (no stdio). */
static long long rss_bytes(void)
{
	char buf[256];
	long long size, res;
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%lld %lld", &size, &res) != 2)
		return -1;
	return res * page_size;
}

static void note_first_write(struct req *r)
{
	if (!r->first_write_done) {
		r->first_write_done = true;
		r->ttfb_wall = mono_ns() - r->wall0;
	}
}

/* write() until done; counts bytes in *counter. */
static int write_raw(int fd, const void *data, size_t n, uint64_t *counter)
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

static int write_all(int fd, struct req *r, const void *data, size_t n)
{
	note_first_write(r);
	return write_raw(fd, data, n, &r->tx_bytes);
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

static void consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* Discards a request body (the test client sends none). Returns 0 or -1. */
static int skip_body(struct conn *c, struct req *r)
{
	long long left = r->content_length;
	char piece[1024];

	if (left > 0 && c->len > 0) {
		size_t take = (size_t)left < c->len ? (size_t)left : c->len;

		consume(c, take);
		r->rx_bytes += take;
		left -= (long long)take;
	}
	while (left > 0) {
		ssize_t n = read(c->fd, piece, left < (long long)sizeof(piece) ? (size_t)left
									  : sizeof(piece));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		left -= n;
		r->rx_bytes += (uint64_t)n;
	}
	return 0;
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

			for (i = 0; val[i] && j < ID_MAX - 1; i++)
				if ((unsigned char)val[i] >= 0x20 && (unsigned char)val[i] < 0x7f &&
				    val[i] != '"' && val[i] != '\\')
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

static void write_truth(struct req *r, uint64_t cpu_ns, uint64_t wall_ns, long minflt, long majflt)
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
		", \"kind\": \"%s\", \"cpu_ns\": %llu, \"wall_ns\": %llu, \"ttfb_ns\": %llu"
		", \"tid\": %ld, \"pid\": %d, \"status\": %d, \"rx_bytes\": %llu"
		", \"tx_bytes\": %llu, \"minor_faults\": %ld, \"major_faults\": %ld",
		r->kind, (unsigned long long)cpu_ns, (unsigned long long)wall_ns,
		(unsigned long long)r->ttfb_wall, (long)syscall(SYS_gettid), (int)getpid(),
		r->status, (unsigned long long)r->rx_bytes, (unsigned long long)r->tx_bytes,
		minflt, majflt);
	if (r->mem.done) {
		struct mem *m = &r->mem;

		fprintf(truth_fp,
			", \"mem\": {\"mib\": %ld, \"keep\": %s, \"thp\": %s"
			", \"mapped_bytes\": %llu, \"touch_minor_faults\": %ld"
			", \"touch_major_faults\": %ld, \"rss_before\": %lld"
			", \"rss_after_touch\": %lld, \"rss_after\": %lld}",
			m->mib, m->keep ? "true" : "false", m->thp ? "true" : "false",
			(unsigned long long)m->mapped_bytes, m->touch_minor, m->touch_major,
			m->rss_before, m->rss_after_touch, m->rss_after);
	}
	if (r->call.done) {
		struct call *c = &r->call;

		fprintf(truth_fp,
			", \"upstream\": {\"port\": %d, \"new_conn\": %s, \"pooled\": %s"
			", \"connect_ns\": %llu, \"wait_ns\": %llu, \"ttfb_ns\": %llu"
			", \"tx_bytes\": %llu, \"rx_bytes\": %llu, \"wall_ns\": %llu"
			", \"cpu_ns\": %llu, \"reads\": %d, \"status\": %d, \"error\": ",
			c->port, c->new_conn ? "true" : "false", c->pooled ? "true" : "false",
			(unsigned long long)c->connect_ns, (unsigned long long)c->wait_ns,
			(unsigned long long)c->ttfb_ns, (unsigned long long)c->tx_bytes,
			(unsigned long long)c->rx_bytes, (unsigned long long)c->wall_ns,
			(unsigned long long)c->cpu_ns, c->reads, c->status);
		if (c->error)
			json_str(truth_fp, c->error);
		else
			fputs("null", truth_fp);
		fputc('}', truth_fp);
	}
	fputs(", \"server\": \"app\"}\n", truth_fp);
	fflush(truth_fp);
	pthread_mutex_unlock(&truth_lock);
}

/* Formats the response head with the truth headers. Returns its length or -1. */
static int fmt_head(char *out, size_t cap, struct req *r, int status, const char *reason,
		    size_t body_len)
{
	int n;

	n = snprintf(out, cap,
		     "HTTP/1.%d %d %s\r\n"
		     "Server: agentprof-app-server\r\n"
		     "Connection: %s\r\n"
		     "Content-Type: text/plain\r\n"
		     "Content-Length: %zu\r\n",
		     r->minor, status, reason, r->keep_alive ? "keep-alive" : "close", body_len);
	if (n < 0 || (size_t)n >= cap)
		return -1;
#define ADD(...)                                                                                   \
	do {                                                                                       \
		int m_ = snprintf(out + n, cap - (size_t)n, __VA_ARGS__);                          \
		if (m_ < 0 || (size_t)(n + m_) >= cap)                                             \
			return -1;                                                                 \
		n += m_;                                                                           \
	} while (0)
	if (r->mem.done)
		ADD("X-Truth-Mem: mib=%ld touch_minor_faults=%ld touch_major_faults=%ld "
		    "mapped_bytes=%llu\r\n",
		    r->mem.mib, r->mem.touch_minor, r->mem.touch_major,
		    (unsigned long long)r->mem.mapped_bytes);
	if (r->call.done)
		ADD("X-Truth-Upstream: port=%d new_conn=%d connect_ns=%llu wait_ns=%llu "
		    "ttfb_ns=%llu tx_bytes=%llu rx_bytes=%llu error=%s\r\n",
		    r->call.port, r->call.new_conn, (unsigned long long)r->call.connect_ns,
		    (unsigned long long)r->call.wait_ns, (unsigned long long)r->call.ttfb_ns,
		    (unsigned long long)r->call.tx_bytes, (unsigned long long)r->call.rx_bytes,
		    r->call.error ? r->call.error : "none");
	if (r->has_request_id)
		ADD("X-Request-Id: %s\r\n", r->request_id);
	ADD("\r\n");
#undef ADD
	return n;
}

/* Sends a complete response with a Content-Length body in one write(). */
static int respond(int fd, struct req *r, int status, const char *reason, const char *body)
{
	char resp[HEAD_MAX + 4096];
	size_t blen = strlen(body);
	int n;

	r->status = status;
	n = fmt_head(resp, sizeof(resp) - blen, r, status, reason, blen);
	if (n < 0)
		return -1;
	memcpy(resp + n, body, blen);
	return write_all(fd, r, resp, (size_t)n + blen);
}

/* ---- memory ---- */

static int handle_mem(int fd, struct req *r)
{
	struct mem *m = &r->mem;
	struct rusage a, b;
	size_t len;
	char *p;
	char body[128];

	m->done = true;
	m->mib = clamp(query_param(r->target, "mib", 1), 1, MIB_MAX);
	m->keep = query_param(r->target, "keep", 0) != 0;
	m->thp = query_param(r->target, "thp", 0) != 0;
	len = (size_t)m->mib << 20;

	m->rss_before = rss_bytes();
	getrusage(RUSAGE_THREAD, &a);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return respond(fd, r, 500, "Internal Server Error", "mmap failed\n");
	m->mapped_bytes = len;
	/* one fault per 4 KiB page unless thp=1 asks for huge pages */
	madvise(p, len, m->thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	for (size_t off = 0; off < len; off += (size_t)page_size)
		((volatile char *)p)[off] = 1;
	getrusage(RUSAGE_THREAD, &b);
	m->rss_after_touch = rss_bytes();
	m->touch_minor = b.ru_minflt - a.ru_minflt;
	m->touch_major = b.ru_majflt - a.ru_majflt;

	pthread_mutex_lock(&keep_lock);
	if (m->keep && nkept < KEEP_MAX) {
		kept[nkept].addr = p;
		kept[nkept].len = len;
		nkept++;
	} else {
		m->keep = false;
		munmap(p, len);
	}
	pthread_mutex_unlock(&keep_lock);
	m->rss_after = rss_bytes();

	snprintf(body, sizeof(body), "mem mib=%ld faults=%ld\n", m->mib,
		 m->touch_minor + m->touch_major);
	return respond(fd, r, 200, "OK", body);
}

static int handle_free(int fd, struct req *r)
{
	struct mem *m = &r->mem;
	uint64_t freed = 0;
	char body[64];

	m->done = true;
	m->rss_before = rss_bytes();
	pthread_mutex_lock(&keep_lock);
	for (int i = 0; i < nkept; i++) {
		munmap(kept[i].addr, kept[i].len);
		freed += kept[i].len;
	}
	nkept = 0;
	pthread_mutex_unlock(&keep_lock);
	m->rss_after_touch = m->rss_after = rss_bytes();
	snprintf(body, sizeof(body), "freed %llu\n", (unsigned long long)freed);
	return respond(fd, r, 200, "OK", body);
}

/* ---- upstream calls ---- */

/* connect() to 127.0.0.1:port, timed into c->connect_ns. Returns fd or -1 (c->error set). */
static int upstream_connect(struct call *c, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1, fd;
	uint64_t t0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		c->error = errno_name(errno);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t0 = mono_ns();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		c->connect_ns = mono_ns() - t0;
		c->error = errno_name(errno);
		close(fd);
		return -1;
	}
	c->connect_ns = mono_ns() - t0;
	c->new_conn = true;
	return fd;
}

/*
 * Returns the length of the complete HTTP response at the start of @buf, 0 if
 * more bytes are needed, -1 if malformed. Sets *status.
 */
static long response_complete(const char *buf, size_t len, int *status)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *p, *line, *nl;
	size_t head_len;
	long long clen = -1;
	bool chunked = false;

	if (!end)
		return 0;
	head_len = (size_t)(end + 4 - buf);
	if (len < 12 || strncmp(buf, "HTTP/1.", 7))
		return -1;
	*status = atoi(buf + 9);
	for (line = buf; line < end; line = nl + 2) {
		nl = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (!nl)
			break;
		if (!strncasecmp(line, "Content-Length:", 15))
			clen = atoll(line + 15);
		else if (!strncasecmp(line, "Transfer-Encoding:", 18) &&
			 memmem(line, (size_t)(nl - line), "chunked", 7))
			chunked = true;
	}
	if (!chunked) {
		if (clen < 0)
			return -1; /* this client needs a framed response */
		return len >= head_len + (size_t)clen ? (long)(head_len + (size_t)clen) : 0;
	}
	p = buf + head_len;
	for (;;) {
		char *endp;
		unsigned long sz;

		nl = memmem(p, len - (size_t)(p - buf), "\r\n", 2);
		if (!nl)
			return 0;
		sz = strtoul(p, &endp, 16);
		if (endp == p)
			return -1;
		p = nl + 2;
		if (sz == 0) /* no trailers: the final CRLF follows */
			return (size_t)(p - buf) + 2 <= len ? (long)(p - buf) + 2 : 0;
		if ((size_t)(p - buf) + sz + 2 > len)
			return 0;
		p += sz + 2;
	}
}

/*
 * One call: writes the request, reads until the response is complete.
 * Timestamps from user space, next to the syscalls: after the write() that
 * sent the last byte, after the first read() that returned bytes, after the
 * read() that completed the response.
 */
static int upstream_exchange(struct call *c, int fd, const char *path, bool keep)
{
	char req[512], resp[RESP_MAX];
	size_t got = 0;
	uint64_t sent, first = 0;
	int n;

	n = snprintf(req, sizeof(req),
		     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: %s\r\n\r\n", path,
		     c->port, keep ? "keep-alive" : "close");
	if (write_raw(fd, req, (size_t)n, &c->tx_bytes)) {
		c->error = errno_name(errno);
		return -1;
	}
	sent = mono_ns();
	for (;;) {
		ssize_t k = read(fd, resp + got, sizeof(resp) - 1 - got);
		uint64_t now = mono_ns();
		long done;

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			c->error = errno_name(k < 0 ? errno : 0);
			c->wait_ns = now - sent;
			return -1;
		}
		if (!first) {
			first = now;
			c->ttfb_ns = now - sent;
		}
		c->reads++;
		got += (size_t)k;
		c->rx_bytes += (uint64_t)k;
		done = response_complete(resp, got, &c->status);
		if (done < 0 || (done == 0 && got >= sizeof(resp) - 1)) {
			c->error = "EPROTO";
			return -1;
		}
		if (done > 0) {
			c->wait_ns = now - sent;
			return (size_t)done == got ? 0 : -1; /* nothing may follow */
		}
	}
}

static int call_port(struct req *r)
{
	return (int)clamp(query_param(r->target, "port", upstream_port), 1, 65535);
}

static int reply_call(int fd, struct req *r)
{
	char body[256];

	if (r->call.error) {
		snprintf(body, sizeof(body), "upstream error %s\n", r->call.error);
		return respond(fd, r, 502, "Bad Gateway", body);
	}
	snprintf(body, sizeof(body), "upstream status %d wait_ns %llu\n", r->call.status,
		 (unsigned long long)r->call.wait_ns);
	return respond(fd, r, 200, "OK", body);
}

/* /call, /reset, /closed: one call on a new connection. */
static int handle_call(int fd, struct req *r, const char *path)
{
	struct call *c = &r->call;
	uint64_t w0, c0;
	int ufd;

	c->done = true;
	c->port = call_port(r);
	w0 = mono_ns();
	c0 = thread_cpu_ns();
	ufd = upstream_connect(c, c->port);
	if (ufd >= 0) {
		upstream_exchange(c, ufd, path, false);
		close(ufd);
	}
	c->wall_ns = mono_ns() - w0;
	c->cpu_ns = thread_cpu_ns() - c0;
	return reply_call(fd, r);
}

static int handle_pooled(int fd, struct req *r)
{
	struct call *c = &r->call;
	char path[64];
	uint64_t w0, c0;

	c->done = true;
	c->pooled = true;
	c->port = call_port(r);
	snprintf(path, sizeof(path), "/delay?ms=%ld",
		 clamp(query_param(r->target, "ms", 0), 0, MS_MAX));
	pthread_mutex_lock(&pool_lock);
	w0 = mono_ns();
	c0 = thread_cpu_ns();
	if (pool_fd >= 0 && pool_port != c->port) {
		close(pool_fd);
		pool_fd = -1;
	}
	if (pool_fd < 0) {
		pool_fd = upstream_connect(c, c->port);
		pool_port = c->port;
	}
	if (pool_fd >= 0 && upstream_exchange(c, pool_fd, path, true)) {
		close(pool_fd);
		pool_fd = -1;
	}
	c->wall_ns = mono_ns() - w0;
	c->cpu_ns = thread_cpu_ns() - c0;
	pthread_mutex_unlock(&pool_lock);
	return reply_call(fd, r);
}

static void *conn_thread(void *arg)
{
	struct conn *c = arg;

	for (;;) {
		struct req r;
		struct rusage ru1;
		uint64_t cpu_ns, wall_ns;
		ssize_t head_len;
		long after_ms;
		int rc;

		head_len = read_head(c);
		if (head_len <= 0)
			break;

		memset(&r, 0, sizeof(r));
		r.wall0 = mono_ns();
		r.cpu0 = thread_cpu_ns();
		getrusage(RUSAGE_THREAD, &r.ru0);
		r.rx_bytes = (uint64_t)head_len;
		r.minor = 1;
		r.kind = "other";

		if (parse_head(c, (size_t)head_len, &r)) {
			r.keep_alive = false;
			strcpy(r.method, "?");
			respond(c->fd, &r, 400, "Bad Request", "bad request\n");
			break;
		}
		consume(c, (size_t)head_len);
		if (r.chunked_body) {
			r.keep_alive = false;
			rc = respond(c->fd, &r, 501, "Not Implemented", "chunked bodies unsupported\n");
		} else if (skip_body(c, &r)) {
			rc = -1;
		} else if (strcmp(r.method, "GET")) {
			rc = respond(c->fd, &r, 404, "Not Found", "not found\n");
		} else if (route_is(r.target, "/mem/")) {
			r.kind = "mem";
			rc = handle_mem(c->fd, &r);
		} else if (route_is(r.target, "/free/")) {
			r.kind = "free";
			rc = handle_free(c->fd, &r);
		} else if (route_is(r.target, "/call/")) {
			long ms = clamp(query_param(r.target, "ms", 0), 0, MS_MAX);
			long chunks = clamp(query_param(r.target, "chunks", 4), 1, CHUNKS_MAX);
			char path[96];

			if (query_param(r.target, "stream", 0)) {
				r.kind = "stream";
				snprintf(path, sizeof(path), "/stream?ms=%ld&chunks=%ld", ms, chunks);
			} else {
				r.kind = "call";
				snprintf(path, sizeof(path), "/delay?ms=%ld", ms);
			}
			rc = handle_call(c->fd, &r, path);
		} else if (route_is(r.target, "/pooled/")) {
			r.kind = "pooled";
			rc = handle_pooled(c->fd, &r);
		} else if (route_is(r.target, "/reset/")) {
			r.kind = "reset";
			rc = handle_call(c->fd, &r, "/reset");
		} else if (route_is(r.target, "/closed/")) {
			r.kind = "closed";
			rc = handle_call(c->fd, &r, "/closed");
		} else {
			rc = respond(c->fd, &r, 404, "Not Found", "not found\n");
		}
		if (rc)
			break;
		cpu_ns = thread_cpu_ns() - r.cpu0;
		wall_ns = mono_ns() - r.wall0;
		getrusage(RUSAGE_THREAD, &ru1);
		after_ms = clamp(query_param(r.target, "after_ms", 0), 0, MS_MAX);
		if (after_ms) {
			struct timespec ts = {after_ms / 1000, after_ms % 1000 * 1000000L};

			while (nanosleep(&ts, &ts) && errno == EINTR)
				;
		}
		write_truth(&r, cpu_ns, wall_ns, ru1.ru_minflt - r.ru0.ru_minflt,
			    ru1.ru_majflt - r.ru0.ru_majflt);
		if (!r.keep_alive)
			break;
	}
	close(c->fd);
	free(c);
	return NULL;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s --port N --upstream PORT [--truth FILE] [--host ADDR]\n",
		argv0);
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
		else if (!strcmp(argv[i], "--upstream") && i + 1 < argc)
			upstream_port = (int)strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--truth") && i + 1 < argc)
			truth = argv[++i];
		else if (!strcmp(argv[i], "--host") && i + 1 < argc)
			host = argv[++i];
		else
			usage(argv[0]);
	}
	if (port < 0 || port > 65535 || upstream_port <= 0 || upstream_port > 65535)
		usage(argv[0]);
	page_size = sysconf(_SC_PAGESIZE);

	signal(SIGPIPE, SIG_IGN);
	if (truth) {
		truth_fp = fopen(truth, "a");
		if (!truth_fp) {
			perror(truth);
			return 1;
		}
		/* static buffer: no malloc (and no new arena mmap) in a request thread */
		setvbuf(truth_fp, truth_buf, _IOFBF, sizeof(truth_buf));
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
