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
 *   GET /call/<id>?ms=N[&stream=1[&chunks=K]][&half=W]
 *        one call on a NEW connection to the upstream: GET /delay?ms=N (or
 *        /stream?ms=N&chunks=K), response read fully (Content-Length or
 *        chunked), connection closed. half=W: shutdown(SHUT_WR) after the
 *        request, then sleep W ms before reading, so that the reply and the
 *        upstream's FIN (the socket's end, TCP_CLOSE) come before the read;
 *        fin_first in the truth says whether they did. Truth: connect_ns (around connect()),
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
#include <poll.h>
#include <pthread.h>
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

#include "../servers/httpd.h"

#define BODY_READ_PIECE 1024
#define RESP_MAX 65536
#define MS_MAX 60000
#define MIB_MAX 1024
#define CHUNKS_MAX 1000
#define KEEP_MAX 64

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

/* What one upstream call measured about itself. */
struct call {
	bool done;	/* an upstream call was attempted */
	int port;
	bool new_conn;	/* this request opened the connection */
	bool pooled;
	long half_ms;	/* half-close after the request, read this much later */
	bool fin_first;	/* half_ms: the upstream's FIN had come when reading began */
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
	struct httpd_req http; /* first: the core hands out &http */
	const char *kind;
	struct rusage ru0;
	struct call call;
	struct mem mem;
};

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
static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, ms % 1000 * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

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

static void write_truth(struct req *r, uint64_t cpu_ns, uint64_t wall_ns, long minflt, long majflt)
{
	FILE *fp = httpd_truth_begin(&r->http);

	if (!fp)
		return;
	fprintf(fp,
		", \"kind\": \"%s\", \"cpu_ns\": %llu, \"wall_ns\": %llu, \"ttfb_ns\": %llu"
		", \"tid\": %ld, \"pid\": %d, \"status\": %d, \"rx_bytes\": %llu"
		", \"tx_bytes\": %llu, \"minor_faults\": %ld, \"major_faults\": %ld",
		r->kind, (unsigned long long)cpu_ns, (unsigned long long)wall_ns,
		(unsigned long long)r->http.ttfb_wall, (long)syscall(SYS_gettid), (int)getpid(),
		r->http.status, (unsigned long long)r->http.rx_bytes,
		(unsigned long long)r->http.tx_bytes, minflt, majflt);
	if (r->mem.done) {
		struct mem *m = &r->mem;

		fprintf(fp,
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

		fprintf(fp,
			", \"upstream\": {\"port\": %d, \"new_conn\": %s, \"pooled\": %s"
			", \"connect_ns\": %llu, \"wait_ns\": %llu, \"ttfb_ns\": %llu"
			", \"tx_bytes\": %llu, \"rx_bytes\": %llu, \"wall_ns\": %llu"
			", \"cpu_ns\": %llu, \"reads\": %d, \"status\": %d, \"fin_first\": %s"
			", \"error\": ",
			c->port, c->new_conn ? "true" : "false", c->pooled ? "true" : "false",
			(unsigned long long)c->connect_ns, (unsigned long long)c->wait_ns,
			(unsigned long long)c->ttfb_ns, (unsigned long long)c->tx_bytes,
			(unsigned long long)c->rx_bytes, (unsigned long long)c->wall_ns,
			(unsigned long long)c->cpu_ns, c->reads, c->status,
			c->fin_first ? "true" : "false");
		if (c->error)
			json_str(fp, c->error);
		else
			fputs("null", fp);
		fputc('}', fp);
	}
	fputs(", \"server\": \"app\"}\n", fp);
	httpd_truth_end(fp);
}

/* Sends a complete response, truth headers included, with its body in one write(). */
static int respond(int fd, struct req *r, int status, const char *reason, const char *body)
{
	char resp[HEAD_MAX + 4096];
	struct httpd_head h;

	r->http.status = status;
	httpd_head_start(&h, resp, sizeof(resp), &r->http, status, reason, "agentprof-app-server");
	httpd_head_add(&h, "Content-Type: text/plain\r\nContent-Length: %zu\r\n", strlen(body));
	if (r->mem.done)
		httpd_head_add(&h,
			       "X-Truth-Mem: mib=%ld touch_minor_faults=%ld touch_major_faults=%ld "
			       "mapped_bytes=%llu\r\n",
			       r->mem.mib, r->mem.touch_minor, r->mem.touch_major,
			       (unsigned long long)r->mem.mapped_bytes);
	if (r->call.done)
		httpd_head_add(&h,
			       "X-Truth-Upstream: port=%d new_conn=%d connect_ns=%llu wait_ns=%llu "
			       "ttfb_ns=%llu tx_bytes=%llu rx_bytes=%llu error=%s\r\n",
			       r->call.port, r->call.new_conn, (unsigned long long)r->call.connect_ns,
			       (unsigned long long)r->call.wait_ns, (unsigned long long)r->call.ttfb_ns,
			       (unsigned long long)r->call.tx_bytes,
			       (unsigned long long)r->call.rx_bytes,
			       r->call.error ? r->call.error : "none");
	return httpd_send(fd, &r->http, &h, body);
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
	m->mib = clamp(query_param(r->http.target, "mib", 1), 1, MIB_MAX);
	m->keep = query_param(r->http.target, "keep", 0) != 0;
	m->thp = query_param(r->http.target, "thp", 0) != 0;
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
	if (httpd_write_raw(fd, req, (size_t)n, &c->tx_bytes)) {
		c->error = errno_name(errno);
		return -1;
	}
	sent = mono_ns();
	if (c->half_ms) {
		struct pollfd p = {.fd = fd, .events = POLLRDHUP};

		shutdown(fd, SHUT_WR);
		sleep_ms(c->half_ms);
		c->fin_first = poll(&p, 1, 0) == 1 && (p.revents & POLLRDHUP);
	}
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
	return (int)clamp(query_param(r->http.target, "port", upstream_port), 1, 65535);
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
		 clamp(query_param(r->http.target, "ms", 0), 0, MS_MAX));
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

/* /call: a plain or (stream=1) chunked upstream reply. */
static int handle_call_route(int fd, struct req *r)
{
	long ms = clamp(query_param(r->http.target, "ms", 0), 0, MS_MAX);
	long chunks = clamp(query_param(r->http.target, "chunks", 4), 1, CHUNKS_MAX);
	char path[96];

	r->call.half_ms = clamp(query_param(r->http.target, "half", 0), 0, MS_MAX);

	if (query_param(r->http.target, "stream", 0)) {
		r->kind = "stream";
		snprintf(path, sizeof(path), "/stream?ms=%ld&chunks=%ld", ms, chunks);
	} else {
		r->kind = "call";
		snprintf(path, sizeof(path), "/delay?ms=%ld", ms);
	}
	return handle_call(fd, r, path);
}

/* Runs the GET route's handler; each sets the kind its truth line reports. */
static int dispatch(struct httpd_conn *c, struct req *r)
{
	const char *target = r->http.target;

	if (route_is(target, "/mem/")) {
		r->kind = "mem";
		return handle_mem(c->fd, r);
	}
	if (route_is(target, "/free/")) {
		r->kind = "free";
		return handle_free(c->fd, r);
	}
	if (route_is(target, "/call/"))
		return handle_call_route(c->fd, r);
	if (route_is(target, "/pooled/")) {
		r->kind = "pooled";
		return handle_pooled(c->fd, r);
	}
	if (route_is(target, "/reset/")) {
		r->kind = "reset";
		return handle_call(c->fd, r, "/reset");
	}
	if (route_is(target, "/closed/")) {
		r->kind = "closed";
		return handle_call(c->fd, r, "/closed");
	}
	return respond(c->fd, r, 404, "Not Found", "not found\n");
}

/* Post-response work (after_ms), then the truth line. */
static void finish(struct req *r)
{
	struct rusage ru1;
	uint64_t cpu_ns, wall_ns;
	long after_ms;

	cpu_ns = thread_cpu_ns() - r->http.cpu0;
	wall_ns = mono_ns() - r->http.wall0;
	getrusage(RUSAGE_THREAD, &ru1);
	after_ms = clamp(query_param(r->http.target, "after_ms", 0), 0, MS_MAX);
	if (after_ms)
		sleep_ms(after_ms);
	write_truth(r, cpu_ns, wall_ns, ru1.ru_minflt - r->ru0.ru_minflt,
		    ru1.ru_majflt - r->ru0.ru_majflt);
}

static int handle(struct httpd_conn *c, struct httpd_req *hr)
{
	struct req *r = (struct req *)hr;
	int rc;

	if (hr->chunked_body) {
		hr->keep_alive = false;
		rc = respond(c->fd, r, 501, "Not Implemented", "chunked bodies unsupported\n");
	} else if (httpd_read_body(c, hr, BODY_READ_PIECE) < 0) {
		rc = -1;
	} else if (strcmp(hr->method, "GET")) {
		rc = respond(c->fd, r, 404, "Not Found", "not found\n");
	} else {
		rc = dispatch(c, r);
	}
	if (rc)
		return rc;
	finish(r);
	return 0;
}

/* Faults are counted from here, before the head is parsed. */
static void begin(struct httpd_req *hr)
{
	struct req *r = (struct req *)hr;

	httpd_start_clocks(hr);
	getrusage(RUSAGE_THREAD, &r->ru0);
	r->kind = "other";
}

static void bad_request(int fd, struct httpd_req *hr)
{
	respond(fd, (struct req *)hr, 400, "Bad Request", "bad request\n");
}

static bool option(const char *name, const char *val)
{
	if (strcmp(name, "--upstream"))
		return false;
	upstream_port = (int)strtol(val, NULL, 10);
	return true;
}

static bool args_ok(void)
{
	return upstream_port > 0 && upstream_port <= 65535;
}

static int setup(void)
{
	page_size = sysconf(_SC_PAGESIZE);
	return 0;
}

static struct httpd srv = {
	.synopsis = "--port N --upstream PORT [--truth FILE] [--host ADDR]",
	.flags = HTTPD_HOST_OPT | HTTPD_TRUTH_STATIC_BUF,
	.id_drop = "\"\\",
	.req_size = sizeof(struct req),
	.ops = {begin, handle, bad_request},
	.option = option,
	.args_ok = args_ok,
	.setup = setup,
};

int main(int argc, char **argv)
{
	return httpd_main(&srv, argc, argv);
}
