// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for src/http.c. */
#include "http.h"
#include "http_check.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define FUZZ_ITERS 100000
#define FUZZ_LEN_MAX 700

/* Parses a C string literal without its NUL, from an exactly sized heap copy, so that ASan and
 * valgrind catch any read past len. */
static int parse_n(const char *s, size_t len, const char *class_header,
		   struct http_request_head *out)
{
	char *buf = malloc(len ? len : 1);
	int err;

	memcpy(buf, s, len);
	err = http_request_head__parse(buf, len, class_header, out);
	free(buf);
	return err;
}

static int parse(const char *s, const char *class_header, struct http_request_head *out)
{
	return parse_n(s, strlen(s), class_header, out);
}

static int status_n(const char *s, size_t len)
{
	char *buf = malloc(len ? len : 1);
	int status;

	memcpy(buf, s, len);
	status = http_status__parse(buf, len);
	free(buf);
	return status;
}

static int status(const char *s)
{
	return status_n(s, strlen(s));
}

static void test_basic_get(void)
{
	const char req[] =
	    "GET /agent/conversation/8812/end?x=1 HTTP/1.1\r\n"
	    "Host: localhost:8080\r\n"
	    "X-Request-Id: req-42\r\n"
	    "X-Request-Class: chat\r\n"
	    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
	    "\r\n";
	struct http_request_head h;

	ASSERT_EQ(parse(req, "X-Request-Class", &h), HTTP_OK, "basic: parses");
	ASSERT_STREQ(h.method, "GET", "basic: method");
	ASSERT_STREQ(h.target, "/agent/conversation/8812/end?x=1", "basic: target");
	ASSERT_FALSE(h.target_truncated, "basic: target not truncated");
	ASSERT_EQ(h.version_minor, 1, "basic: HTTP/1.1");
	ASSERT_STREQ(h.request_id, "req-42", "basic: request id");
	ASSERT_STREQ(h.request_class, "chat", "basic: request class");
	ASSERT_STREQ(h.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		     "basic: traceparent");
	ASSERT_TRUE(h.complete, "basic: complete");
	ASSERT_EQ(h.head_len, sizeof(req) - 1, "basic: head_len");
}

static void test_versions_and_methods(void)
{
	struct http_request_head h;
	char method[32];

	ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", NULL, &h), HTTP_OK, "1.0: parses");
	ASSERT_EQ(h.version_minor, 0, "1.0: version_minor");
	ASSERT_EQ(parse("PROPFIND /dav HTTP/1.1\r\n\r\n", NULL, &h), HTTP_OK, "PROPFIND parses");
	ASSERT_STREQ(h.method, "PROPFIND", "PROPFIND method");
	ASSERT_EQ(parse("M-SEARCH * HTTP/1.1\r\n\r\n", NULL, &h), HTTP_OK, "M-SEARCH parses");
	ASSERT_STREQ(h.target, "*", "M-SEARCH target *");
	ASSERT_EQ(parse("get / HTTP/1.1\r\n\r\n", NULL, &h), HTTP_OK, "lowercase token method");
	ASSERT_EQ(parse("GE(T / HTTP/1.1\r\n\r\n", NULL, &h), HTTP_ERR_MALFORMED,
		  "non-token char in method");
	ASSERT_EQ(parse(" GET / HTTP/1.1\r\n\r\n", NULL, &h), HTTP_ERR_MALFORMED, "leading space");
	ASSERT_EQ(parse("\r\nGET / HTTP/1.1\r\n\r\n", NULL, &h), HTTP_ERR_MALFORMED,
		  "leading empty line");

	/* 15 token chars fill method[]; 16 cannot be stored and are rejected. */
	snprintf(method, sizeof(method), "%s / HTTP/1.1\r\n\r\n", "ABCDEFGHIJKLMNO");
	ASSERT_EQ(parse(method, NULL, &h), HTTP_OK, "15-char method parses");
	ASSERT_STREQ(h.method, "ABCDEFGHIJKLMNO", "15-char method kept");
	snprintf(method, sizeof(method), "%s / HTTP/1.1\r\n\r\n", "ABCDEFGHIJKLMNOP");
	ASSERT_EQ(parse(method, NULL, &h), HTTP_ERR_MALFORMED, "16-char method rejected");
}

static void test_bad_request_lines(void)
{
	static const char *const bad[] = {
	    "GET /\r\n\r\n",
	    "GET / \r\n\r\n",
	    "GET  / HTTP/1.1\r\n\r\n",
	    "GET / HTTP/1.1 \r\n\r\n",
	    "GET / HTTP/2.0\r\n\r\n",
	    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	    "GET / HTTP/1.1x\r\n\r\n",
	    "GET / HTTP/1.a\r\n\r\n",
	    "GET / http/1.1\r\n\r\n",
	    "GET / HTTP/1.1\rX\n\r\n",
	    "GET /a\x01z HTTP/1.1\r\n\r\n",
	    "GET /a\x7fz HTTP/1.1\r\n\r\n",
	    "GET /a\tb HTTP/1.1\r\n\r\n",
	    "GET /a\rb HTTP/1.1\r\n\r\n",
	    "HTTP/1.1 200 OK\r\n\r\n",
	    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	    "GET\t/ HTTP/1.1\r\n\r\n",
	    " ",
	    "\r\n",
	};
	struct http_request_head h;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(parse(bad[i], NULL, &h), HTTP_ERR_MALFORMED, "malformed line #%zu", i);

	/* An error leaves nothing behind that could be mistaken for a request. */
	ASSERT_EQ(parse("GET /x HTTP/3.0\r\n\r\n", NULL, &h), HTTP_ERR_MALFORMED, "HTTP/3");
	ASSERT_STREQ(h.method, "", "malformed: method cleared");
	ASSERT_STREQ(h.target, "", "malformed: target cleared");

	ASSERT_EQ(http_request_head__parse(NULL, 10, NULL, &h), HTTP_ERR_MALFORMED, "NULL buf");
	ASSERT_EQ(http_request_head__parse("GET", 3, NULL, NULL), HTTP_ERR_MALFORMED, "NULL out");
	ASSERT_EQ(parse_n("GET / HTTP/1.1\0\r\n", 17, NULL, &h), HTTP_ERR_MALFORMED, "NUL in line");
}

static void test_truncated_request_line(void)
{
	const char line[] = "GET /path/to/thing HTTP/1.1\r\n";
	struct http_request_head h;
	size_t n;

	for (n = 0; n < sizeof(line) - 1; n++)
		ASSERT_EQ(parse_n(line, n, NULL, &h), HTTP_ERR_TRUNCATED,
			  "line prefix of %zu bytes", n);
	ASSERT_EQ(parse_n(line, sizeof(line) - 1, NULL, &h), HTTP_OK, "whole line");
	ASSERT_FALSE(h.complete, "line only: not complete");
	ASSERT_EQ(h.head_len, 0, "line only: head_len 0");

	/* Cut inside the target: what was seen stays usable for attribution. */
	ASSERT_EQ(parse_n(line, 9, NULL, &h), HTTP_ERR_TRUNCATED, "cut in target");
	ASSERT_STREQ(h.method, "GET", "cut in target: method kept");
	ASSERT_STREQ(h.target, "/path", "cut in target: target prefix kept");
	ASSERT_TRUE(h.target_truncated, "cut in target: target_truncated");
	ASSERT_EQ(parse_n(line, 22, NULL, &h), HTTP_ERR_TRUNCATED, "cut in version");
	ASSERT_STREQ(h.target, "/path/to/thing", "cut in version: full target");
	ASSERT_FALSE(h.target_truncated, "cut in version: target whole");

	/* Garbage before the end wins over running out of bytes. */
	ASSERT_EQ(parse_n("GET /a HTTX", 11, NULL, &h), HTTP_ERR_MALFORMED, "bad partial version");
	ASSERT_EQ(parse_n("GET /a\x01", 7, NULL, &h), HTTP_ERR_MALFORMED, "bad partial target");
	ASSERT_EQ(parse_n("GET / HTTP/1.1\r", 15, NULL, &h), HTTP_ERR_TRUNCATED, "cut after CR");
}

static void test_long_target(void)
{
	char req[HTTP_TARGET_MAX + 600];
	struct http_request_head h;
	size_t n;

	/* A target of exactly HTTP_TARGET_MAX - 1 bytes fits. */
	n = (size_t)snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\n\r\n", HTTP_TARGET_MAX - 2,
			     0);
	ASSERT_EQ(parse_n(req, n, NULL, &h), HTTP_OK, "max target parses");
	ASSERT_EQ(strlen(h.target), HTTP_TARGET_MAX - 1, "max target length");
	ASSERT_FALSE(h.target_truncated, "max target not truncated");

	n = (size_t)snprintf(req, sizeof(req), "GET /%0*d HTTP/1.1\r\nX-Request-Id: r\r\n\r\n",
			     HTTP_TARGET_MAX + 100, 0);
	ASSERT_EQ(parse_n(req, n, NULL, &h), HTTP_OK, "oversized target parses");
	ASSERT_EQ(strlen(h.target), HTTP_TARGET_MAX - 1, "oversized target cut to fit");
	ASSERT_TRUE(h.target_truncated, "oversized target flagged");
	ASSERT_STREQ(h.request_id, "r", "oversized target: headers still read");
	ASSERT_TRUE(h.complete, "oversized target: complete");

	/* The capture ends inside a long target: the common case for a 1 KiB head capture. */
	ASSERT_EQ(parse_n(req, HTTP_TARGET_MAX + 50, NULL, &h), HTTP_ERR_TRUNCATED,
		  "capture cut in long target");
	ASSERT_STREQ(h.method, "GET", "capture cut: method");
	ASSERT_EQ(strlen(h.target), HTTP_TARGET_MAX - 1, "capture cut: target prefix");
	ASSERT_TRUE(h.target_truncated, "capture cut: flagged");
}

static void test_bare_lf(void)
{
	const char req[] = "GET /lf HTTP/1.1\nX-Request-Id: abc\nHost: x\n\nbody";
	const char mixed[] = "GET /m HTTP/1.0\r\nX-Request-Id: m1\n\r\n";
	struct http_request_head h;

	ASSERT_EQ(parse(req, NULL, &h), HTTP_OK, "bare LF: parses");
	ASSERT_STREQ(h.request_id, "abc", "bare LF: header");
	ASSERT_TRUE(h.complete, "bare LF: complete");
	ASSERT_EQ(h.head_len, sizeof(req) - 1 - 4, "bare LF: head_len stops before body");
	ASSERT_EQ(parse(mixed, NULL, &h), HTTP_OK, "mixed LF/CRLF: parses");
	ASSERT_STREQ(h.request_id, "m1", "mixed LF/CRLF: header");
	ASSERT_EQ(h.head_len, sizeof(mixed) - 1, "mixed LF/CRLF: head_len");
}

static void test_body_after_head(void)
{
	const char req[] = "POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody";
	struct http_request_head h;

	ASSERT_EQ(parse(req, NULL, &h), HTTP_OK, "POST with body parses");
	ASSERT_STREQ(h.method, "POST", "POST method");
	ASSERT_TRUE(h.complete, "POST complete");
	ASSERT_EQ(h.head_len, sizeof(req) - 1 - 4, "POST head_len excludes body");
}

static void test_truncated_headers(void)
{
	const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abcdef\r\n\r\n";
	const size_t line_len = strlen("GET / HTTP/1.1\r\n");
	const size_t id_end = strlen("GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: abcdef\r\n");
	struct http_request_head h;
	unsigned int bad = 0;
	size_t n;

	/* Every cut after the request line parses; the head is complete only at its full length. */
	for (n = line_len; n <= sizeof(req) - 1; n++) {
		bool whole = n == sizeof(req) - 1;
		int err = parse_n(req, n, NULL, &h);

		if (err != HTTP_OK || h.complete != whole || h.head_len != (whole ? n : 0))
			bad++;
		/* A cut-off value must not be reported as if it were whole. */
		if (n < id_end && h.request_id[0])
			bad++;
		if (n >= id_end && strcmp(h.request_id, "abcdef"))
			bad++;
	}
	ASSERT_EQ(bad, 0, "every header-section prefix parses consistently");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: ab", NULL, &h), HTTP_OK,
		  "cut-off header line: OK");
	ASSERT_STREQ(h.request_id, "", "cut-off header line ignored");
	ASSERT_FALSE(h.complete, "cut-off header line: not complete");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: ab\r\n", NULL, &h), HTTP_OK,
		  "no final CRLF: OK");
	ASSERT_STREQ(h.request_id, "ab", "no final CRLF: header kept");
	ASSERT_FALSE(h.complete, "no final CRLF: not complete");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\n\r", NULL, &h), HTTP_OK, "cut between CR and LF: OK");
	ASSERT_FALSE(h.complete, "cut between CR and LF: not complete");
}

static void test_header_case_and_ows(void)
{
	struct http_request_head h;

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nx-request-id: lower\r\n"
			"X-REQUEST-CLASS: batch\r\nTRACEPARENT: tp\r\n\r\n",
			"X-Request-Class", &h),
		  HTTP_OK, "case: parses");
	ASSERT_STREQ(h.request_id, "lower", "case: lowercase X-Request-Id");
	ASSERT_STREQ(h.request_class, "batch", "case: uppercase class header");
	ASSERT_STREQ(h.traceparent, "tp", "case: uppercase traceparent");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Tenant: t1\r\n\r\n", "x-tenant", &h), HTTP_OK,
		  "custom class header: parses");
	ASSERT_STREQ(h.request_class, "t1", "custom class header (lowercase config)");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Tenant: t1\r\n\r\n", NULL, &h), HTTP_OK,
		  "no class header: parses");
	ASSERT_STREQ(h.request_class, "", "no class header configured");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Tenant: t1\r\n\r\n", "", &h), HTTP_OK,
		  "empty class header: parses");
	ASSERT_STREQ(h.request_class, "", "empty class header name matches nothing");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: \t abc d \t\r\n\r\n", NULL, &h), HTTP_OK,
		  "OWS: parses");
	ASSERT_STREQ(h.request_id, "abc d", "OWS trimmed, inner space kept");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id:abc\r\n\r\n", NULL, &h), HTTP_OK,
		  "no OWS: parses");
	ASSERT_STREQ(h.request_id, "abc", "no OWS");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id:\r\nX-Request-Id:  \r\n\r\n", NULL, &h),
		  HTTP_OK, "empty values: parse");
	ASSERT_STREQ(h.request_id, "", "empty values stay empty");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Ids: no\r\nX-Request-I: no\r\n"
			"XX-Request-Id: no\r\n\r\n",
			NULL, &h),
		  HTTP_OK, "near-miss names: parse");
	ASSERT_STREQ(h.request_id, "", "near-miss names do not match");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: first\r\nx-request-id: second\r\n\r\n",
			NULL, &h),
		  HTTP_OK, "duplicate: parses");
	ASSERT_STREQ(h.request_id, "first", "duplicate: first wins");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: a\r\n\r\n", "X-Request-Id", &h), HTTP_OK,
		  "class header = id header: parses");
	ASSERT_STREQ(h.request_class, "a", "class header may be the id header");
	ASSERT_STREQ(h.request_id, "a", "id still read when also the class header");
}

static void test_header_values(void)
{
	char req[600], val[300];
	struct http_request_head h;

	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nX-Request-Id: %s\r\n\r\n", val);
	ASSERT_EQ(parse(req, NULL, &h), HTTP_OK, "long value: parses");
	ASSERT_EQ(strlen(h.request_id), HTTP_HDR_VAL_MAX - 1, "long value truncated to fit");

	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: a\x01z\r\n\r\n", NULL, &h), HTTP_OK,
		  "control char in value: parses");
	ASSERT_STREQ(h.request_id, "", "control char value dropped");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: a\rz\r\n\r\n", NULL, &h), HTTP_OK,
		  "bare CR in value: parses");
	ASSERT_STREQ(h.request_id, "", "bare CR value dropped");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: caf\xc3\xa9\r\n\r\n", NULL, &h), HTTP_OK,
		  "non-ASCII value: parses");
	ASSERT_STREQ(h.request_id, "", "non-ASCII value dropped");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: a\x7fz\r\n\r\n", NULL, &h), HTTP_OK,
		  "DEL in value: parses");
	ASSERT_STREQ(h.request_id, "", "DEL value dropped");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: a\tb\r\n\r\n", NULL, &h), HTTP_OK,
		  "HTAB in value: parses");
	ASSERT_STREQ(h.request_id, "a b", "inner HTAB becomes a space");
	ASSERT_EQ(parse("GET / HTTP/1.1\r\nX-Request-Id: \"q\\\"\r\n\r\n", NULL, &h), HTTP_OK,
		  "quotes in value: parse");
	ASSERT_STREQ(h.request_id, "\"q\\\"", "quotes kept for the JSON writer to escape");
	ASSERT_EQ(
	    parse("GET / HTTP/1.1\r\nX-Request-Id: a\x01\r\nX-Request-Id: b\r\n\r\n", NULL, &h),
	    HTTP_OK, "dropped then valid: parses");
	ASSERT_STREQ(h.request_id, "b", "a dropped value does not block a later one");
}

static void test_bad_header_lines(void)
{
	static const char *const bad[] = {
	    "GET / HTTP/1.1\r\nX-Request-Id : a\r\n\r\n",
	    "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	    "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
	    "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
	    "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
	    "GET / HTTP/1.1\r\n\x01\x02\x03\r\n\r\n",
	    "GET / HTTP/1.1\r\n\r\r\n",
	};
	struct http_request_head h;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(parse(bad[i], NULL, &h), HTTP_ERR_MALFORMED, "malformed header #%zu", i);
}

static void test_status(void)
{
	ASSERT_EQ(status("HTTP/1.1 200 OK\r\n"), 200, "status 200");
	ASSERT_EQ(status("HTTP/1.0 404 Not Found\r\n"), 404, "status 404 on 1.0");
	ASSERT_EQ(status("HTTP/1.1 503"), 503, "exactly 12 bytes");
	ASSERT_EQ(status("HTTP/1.1 204\r\n"), 204, "no reason phrase");
	ASSERT_EQ(status("HTTP/1.1 101 Switching Protocols\r\n"), 101, "status 101");
	ASSERT_EQ(status("HTTP/1.1 20"), -1, "11 bytes");
	ASSERT_EQ(status(""), -1, "empty");
	ASSERT_EQ(status("HTTP/1.1 2000 OK"), -1, "four digits");
	ASSERT_EQ(status("HTTP/1.1 20x OK"), -1, "non-digit");
	ASSERT_EQ(status("HTTP/1.1 099 OK"), -1, "below 100");
	ASSERT_EQ(status("HTTP/2 200 OK\r\n"), -1, "HTTP/2");
	ASSERT_EQ(status("HTTP/1.1  200 OK"), -1, "double space");
	ASSERT_EQ(status("http/1.1 200 OK"), -1, "lowercase protocol");
	ASSERT_EQ(status("HTTP/1.x 200 OK"), -1, "bad minor");
	ASSERT_EQ(status("GET / HTTP/1.1\r\n"), -1, "a request");
	ASSERT_EQ(http_status__parse(NULL, 20), -1, "NULL");
}

static void test_is_request_start(void)
{
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
		snprintf(buf, sizeof(buf), "%s /", known_methods[i]);
		ASSERT_TRUE(http_is_request_start(buf, strlen(buf)), "%s is a request start",
			    known_methods[i]);
		/* The SP must be within len. */
		ASSERT_FALSE(http_is_request_start(buf, strlen(known_methods[i])),
			     "%s without SP in len", known_methods[i]);
	}
	ASSERT_FALSE(http_is_request_start("GETX /", 6), "GETX");
	ASSERT_FALSE(http_is_request_start("get /", 5), "lowercase get");
	ASSERT_FALSE(http_is_request_start("PROPFIND /", 10), "unknown method");
	ASSERT_FALSE(http_is_request_start("HTTP/1.1 200", 12), "a response");
	ASSERT_FALSE(http_is_request_start("", 0), "empty");
	ASSERT_FALSE(http_is_request_start(NULL, 4), "NULL");
}

/* xorshift64*: deterministic, so a fuzz failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t rng_below(size_t n)
{
	return (size_t)(rng() % n);
}

static const char fuzz_seed_full[] = "GET /agent/conversation/8812/end HTTP/1.1\r\nHost: x\r\n"
				     "X-Request-Id: r1\r\nX-Request-Class: c\r\n"
				     "traceparent: 00-ab-cd-01\r\n\r\n";

static const char *const fuzz_seeds[] = {
    fuzz_seed_full,
    "POST /v1/chat/completions HTTP/1.0\nContent-Length: 2\n\n{}",
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
};

/* Random bytes, an alphabet of HTTP-ish bytes, or a mutated seed: each reaches other paths. */
static size_t fuzz_fill(char *buf)
{
	static const char alphabet[] = "GETPOS /HTP1.0\r\n:-XRequstIdClaspren \t\x01\x80";
	size_t len = rng_below(FUZZ_LEN_MAX), i, k;
	const char *seed;

	switch (rng_below(3)) {
	case 0:
		for (i = 0; i < len; i++)
			buf[i] = (char)rng();
		return len;
	case 1:
		for (i = 0; i < len; i++)
			buf[i] = alphabet[rng_below(sizeof(alphabet) - 1)];
		return len;
	default:
		seed = fuzz_seeds[rng_below(sizeof(fuzz_seeds) / sizeof(fuzz_seeds[0]))];
		len = strlen(seed);
		memcpy(buf, seed, len);
		for (k = rng_below(4); k; k--)
			buf[rng_below(len)] = alphabet[rng_below(sizeof(alphabet) - 1)];
		return rng_below(len + 1);
	}
}

static void test_fuzz(void)
{
	unsigned int bad = 0, results[3] = {0}, i;
	char src[FUZZ_LEN_MAX];

	for (i = 0; i < FUZZ_ITERS; i++) {
		size_t len = fuzz_fill(src);
		char *buf = malloc(len ? len : 1);
		struct http_request_head h, again;
		int err, st;

		memcpy(buf, src, len);
		err = http_request_head__parse(buf, len, "X-Request-Class", &h);
		if (err == HTTP_OK)
			bad += !head_ok(buf, len, &h);
		else if (err == HTTP_ERR_MALFORMED)
			bad += !zeroed(&h);
		else if (err != HTTP_ERR_TRUNCATED)
			bad++;
		results[-err]++;
		bad += http_request_head__parse(buf, len, "X-Request-Class", &again) != err ||
		       memcmp(&h, &again, sizeof(h));
		st = http_status__parse(buf, len);
		bad += st != -1 && (st < 100 || st > 999);
		http_is_request_start(buf, len);
		free(buf);
	}
	ASSERT_EQ(bad, 0, "fuzz: %u buffers keep every invariant", FUZZ_ITERS);
	/* Make sure the generator reaches all three outcomes, or the loop proves little. */
	ASSERT_GT(results[0], 1000, "fuzz: enough buffers parse");
	ASSERT_GT(results[1], 1000, "fuzz: enough buffers are malformed");
	ASSERT_GT(results[2], 1000, "fuzz: enough buffers are truncated");
}

TEST_MAIN(test_basic_get, test_versions_and_methods, test_bad_request_lines,
	  test_truncated_request_line, test_long_target, test_bare_lf, test_body_after_head,
	  test_truncated_headers, test_header_case_and_ows, test_header_values,
	  test_bad_header_lines, test_status, test_is_request_start, test_fuzz)
