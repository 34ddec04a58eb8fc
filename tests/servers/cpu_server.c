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
 *   GET  /cpu/<id>?ms=N[&after=M]    burn N ms of thread CPU, 200 + small body;
 *                                    then M ms more once the response is out
 *                                    (logging, clean-up: in the truth's cpu_ns)
 *   POST /echo/<id>?ms=N             read body in 1000-byte read()s, burn N ms,
 *                                    respond with the body length (multi-write)
 *   GET  /stream/<id>?ms=N&chunks=K  chunked response, K chunks, N/K ms of CPU
 *                                    burnt before each chunk (writev used)
 *   anything else                    404
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"

#define BODY_READ_PIECE 1000
#define ECHO_WRITE_PIECE 2
#define MS_MAX 60000
#define CHUNKS_MAX 1000

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

static void write_truth(struct httpd_req *r, uint64_t cpu_ns, uint64_t wall_ns)
{
	FILE *fp = httpd_truth_begin(r);

	if (!fp)
		return;
	fprintf(fp,
		", \"cpu_ns\": %llu, \"wall_ns\": %llu, \"ttfb_ns\": %llu"
		", \"span_cpu_ns\": %llu, \"tid\": %ld"
		", \"pid\": %d, \"status\": %d, \"rx_bytes\": %llu, \"tx_bytes\": %llu"
		", \"server\": \"c\"}\n",
		(unsigned long long)cpu_ns, (unsigned long long)wall_ns,
		(unsigned long long)r->ttfb_wall, (unsigned long long)cpu_ns,
		(long)syscall(SYS_gettid), (int)getpid(), r->status,
		(unsigned long long)r->rx_bytes, (unsigned long long)r->tx_bytes);
	httpd_truth_end(fp);
}

/* Starts a response head with the CPU the request has used so far. */
static void fmt_head(struct httpd_head *h, char *out, size_t cap, struct httpd_req *r, int status,
		     const char *reason, const char *extra, uint64_t cpu_ns)
{
	httpd_head_start(h, out, cap, r, status, reason, "agentprof-cpu-server");
	httpd_head_add(h, "X-Thread-Cpu-Ns: %llu\r\n%s", (unsigned long long)cpu_ns, extra);
}

/* Sends a complete response with a Content-Length body in one write(). */
static int respond_simple(int fd, struct httpd_req *r, int status, const char *reason,
			  const char *body)
{
	char resp[HEAD_MAX + 4096], extra[128];
	struct httpd_head h;

	snprintf(extra, sizeof(extra), "Content-Type: text/plain\r\nContent-Length: %zu\r\n",
		 strlen(body));
	r->status = status;
	fmt_head(&h, resp, sizeof(resp), r, status, reason, extra, thread_cpu_ns() - r->cpu0);
	return httpd_send(fd, r, &h, body);
}

static int handle_cpu(int fd, struct httpd_req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	long after = clamp(query_param(r->target, "after", 0), 0, MS_MAX);
	char body[512];
	int rc;

	burn_cpu_ns((uint64_t)ms * 1000000ull);
	snprintf(body, sizeof(body), "cpu ms=%ld id=%s\n", ms,
		 r->has_request_id ? r->request_id : "-");
	rc = respond_simple(fd, r, 200, "OK", body);
	if (!rc)
		burn_cpu_ns((uint64_t)after * 1000000ull);
	return rc;
}

static int handle_echo(struct httpd_conn *c, struct httpd_req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	char head[HEAD_MAX], body[64], extra[128];
	struct httpd_head h;
	long long got;
	size_t blen, off;
	int n;

	got = httpd_read_body(c, r, BODY_READ_PIECE);
	if (got < 0)
		return -1;
	burn_cpu_ns((uint64_t)ms * 1000000ull);

	blen = (size_t)snprintf(body, sizeof(body), "%lld\n", got);
	snprintf(extra, sizeof(extra), "Content-Type: text/plain\r\nContent-Length: %zu\r\n", blen);
	r->status = 200;
	fmt_head(&h, head, sizeof(head), r, 200, "OK", extra, thread_cpu_ns() - r->cpu0);
	n = httpd_head_end(&h, r);
	if (n < 0)
		return -1;
	/* head, then the body two bytes per write() */
	if (httpd_write(c->fd, r, head, (size_t)n))
		return -1;
	for (off = 0; off < blen; off += ECHO_WRITE_PIECE) {
		size_t len = blen - off < ECHO_WRITE_PIECE ? blen - off : ECHO_WRITE_PIECE;

		if (httpd_write(c->fd, r, body + off, len))
			return -1;
	}
	return 0;
}

static int handle_stream(int fd, struct httpd_req *r)
{
	long ms = clamp(query_param(r->target, "ms", 0), 0, MS_MAX);
	long chunks = clamp(query_param(r->target, "chunks", 4), 1, CHUNKS_MAX);
	uint64_t per_chunk = (uint64_t)ms * 1000000ull / (uint64_t)chunks;
	bool framed = r->minor == 1; /* HTTP/1.0 has no chunked encoding */
	char head[HEAD_MAX], data[128], size_line[32];
	struct httpd_head h;
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
			fmt_head(&h, head, sizeof(head), r, 200, "OK",
				 framed ? "Content-Type: text/plain\r\n"
					  "Transfer-Encoding: chunked\r\n"
					: "Content-Type: text/plain\r\n",
				 thread_cpu_ns() - r->cpu0);
			hlen = httpd_head_end(&h, r);
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
			if (httpd_writev(fd, r, iov, cnt))
				return -1;
		} else {
			/* odd chunks: one write() per piece */
			for (int k = 0; k < cnt; k++)
				if (httpd_write(fd, r, iov[k].iov_base, iov[k].iov_len))
					return -1;
		}
	}
	if (framed && httpd_write(fd, r, "0\r\n\r\n", 5))
		return -1;
	return 0;
}

/* Dispatches one request, then writes its truth line. */
static int handle(struct httpd_conn *c, struct httpd_req *r)
{
	uint64_t cpu_ns, wall_ns;
	int rc;

	if (r->chunked_body) {
		r->keep_alive = false;
		rc = respond_simple(c->fd, r, 501, "Not Implemented",
				    "chunked request bodies are not supported\n");
	} else if (!strcmp(r->method, "POST") && route_is(r->target, "/echo/")) {
		rc = handle_echo(c, r);
	} else if (httpd_read_body(c, r, BODY_READ_PIECE) < 0) {
		rc = -1;
	} else if (!strcmp(r->method, "GET") && route_is(r->target, "/cpu/")) {
		rc = handle_cpu(c->fd, r);
	} else if (!strcmp(r->method, "GET") && route_is(r->target, "/stream/")) {
		rc = handle_stream(c->fd, r);
	} else {
		rc = respond_simple(c->fd, r, 404, "Not Found", "not found\n");
	}
	if (rc)
		return rc;
	/* CPU first: the wall span must enclose it */
	cpu_ns = thread_cpu_ns() - r->cpu0;
	wall_ns = mono_ns() - r->wall0;
	write_truth(r, cpu_ns, wall_ns);
	return 0;
}

static void bad_request(int fd, struct httpd_req *r)
{
	respond_simple(fd, r, 400, "Bad Request", "bad request\n");
}

static struct httpd srv = {
	.synopsis = "--port N [--truth FILE] [--host ADDR]",
	.flags = HTTPD_HOST_OPT,
	.req_size = sizeof(struct httpd_req),
	.ops = {httpd_start_clocks, handle, bad_request},
};

int main(int argc, char **argv)
{
	return httpd_main(&srv, argc, argv);
}
