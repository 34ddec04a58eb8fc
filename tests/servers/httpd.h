/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * httpd - the HTTP/1.x core shared by agentprof's C test servers
 * (tests/servers/cpu_server.c, tests/upstream/app_server.c,
 * tests/pg/pipeline_server.c): argument parsing, the listening socket, one
 * pthread per connection serving requests in a keep-alive loop with blocking
 * read()/write(), head parsing, response heads and the truth file.
 *
 * A server fills a struct httpd with its options and hooks and returns
 * httpd_main() from main(). Its per-request state starts with a struct
 * httpd_req; the core zeroes req_size bytes of it before each request. What
 * differs between the servers (X-Request-Id characters, GET-only parsing,
 * body read() sizes, the truth file's stdio buffer) is a setting, so each
 * keeps its exact wire and truth-file behaviour.
 */
#ifndef AGENTPROF_TESTS_HTTPD_H
#define AGENTPROF_TESTS_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/uio.h>

#define HEAD_MAX 16384
#define ID_MAX 256

struct httpd_req {
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

struct httpd_conn {
	int fd;
	char buf[HEAD_MAX + 1];
	size_t len; /* bytes valid in buf (may hold a pipelined next request) */
	max_align_t req[]; /* the server's request state, struct httpd_req first */
};

#define HTTPD_HOST_OPT (1u << 0)	   /* --host ADDR is accepted */
#define HTTPD_TRUTH_STATIC_BUF (1u << 1) /* truth file stdio buffer not malloc()ed */
#define HTTPD_GET11_ONLY (1u << 2)	   /* GET, HTTP/1.1 and Content-Length 0 only */

struct httpd_ops {
	/* with the head read, before it is parsed (optional) */
	void (*begin)(struct httpd_req *r);
	/* a parsed request, body unread; nonzero closes the connection */
	int (*handle)(struct httpd_conn *c, struct httpd_req *r);
	/* answers a head that did not parse; the connection closes after */
	void (*bad_request)(int fd, struct httpd_req *r);
};

struct httpd {
	const char *synopsis; /* usage line after the program name */
	unsigned int flags;   /* HTTPD_* */
	const char *id_drop;  /* printable characters kept out of X-Request-Id */
	size_t req_size;      /* bytes of per-request state, >= httpd_req */
	struct httpd_ops ops;
	/* takes "NAME VALUE" if NAME is one of the server's own options */
	bool (*option)(const char *name, const char *val);
	/* after the options are in: false prints usage, exits 2 */
	bool (*args_ok)(void);
	/* after the truth file is open, before listening: nonzero exits 1 */
	int (*setup)(void);

	/* set from the command line */
	long port;
	const char *host, *truth;
};

/*
 * The whole of a server's main(): options (usage and exit 2 if bad), SIGPIPE
 * ignored, truth file, setup, then "listening PORT" and serving forever.
 * Returns main()'s exit code.
 */
int httpd_main(struct httpd *srv, int argc, char **argv);

uint64_t thread_cpu_ns(void);
uint64_t mono_ns(void);
/* A request's begin hook when it needs only the wall and CPU clocks. */
void httpd_start_clocks(struct httpd_req *r);

int httpd_write_raw(int fd, const void *data, size_t n, uint64_t *counter);
int httpd_write(int fd, struct httpd_req *r, const void *data, size_t n);
int httpd_writev(int fd, struct httpd_req *r, struct iovec *iov, int cnt);
long long httpd_read_body(struct httpd_conn *c, struct httpd_req *r, size_t piece);

long query_param(const char *target, const char *key, long def);
bool route_is(const char *target, const char *prefix);
long clamp(long v, long lo, long hi);
void json_str(FILE *fp, const char *s);

/* A response head being built; the first thing that does not fit spoils it. */
struct httpd_head {
	char *out;
	size_t cap;
	size_t len;
	bool full;
};

void httpd_head_start(struct httpd_head *h, char *out, size_t cap, const struct httpd_req *r,
		      int status, const char *reason, const char *server);
void __attribute__((format(printf, 2, 3))) httpd_head_add(struct httpd_head *h, const char *fmt,
							   ...);
int httpd_head_end(struct httpd_head *h, const struct httpd_req *r);
int httpd_send(int fd, struct httpd_req *r, struct httpd_head *h, const char *body);

/*
 * Locks the truth file and writes the start of a line: request_id, method,
 * path. Returns NULL (nothing locked) without --truth. The caller writes the
 * rest, closing brace and newline included, then calls httpd_truth_end().
 */
FILE *httpd_truth_begin(const struct httpd_req *r);
void httpd_truth_end(FILE *fp);

#endif
