/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * HTTP/1.x request-head and response status-line parsing for bytes captured
 * from a socket: possibly truncated, possibly not HTTP at all, never
 * NUL-terminated.
 */
#ifndef AGENTPROF_HTTP_H
#define AGENTPROF_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_METHOD_MAX 16
#define HTTP_TARGET_MAX 512
#define HTTP_HDR_VAL_MAX 128

struct http_request_head {
	char method[HTTP_METHOD_MAX]; /* "GET" ... NUL-terminated */
	char target[HTTP_TARGET_MAX]; /* as sent, NUL-terminated, truncated to fit */
	bool target_truncated;
	int version_minor;		      /* HTTP/1.0 -> 0, HTTP/1.1 -> 1 */
	char request_id[HTTP_HDR_VAL_MAX];    /* X-Request-Id value, "" when absent */
	char request_class[HTTP_HDR_VAL_MAX]; /* value of the class header, "" when absent */
	char traceparent[HTTP_HDR_VAL_MAX];
	bool complete;	 /* the terminating CRLFCRLF was within len */
	size_t head_len; /* bytes up to and including CRLFCRLF, else 0 */
};

enum http_parse_err {
	HTTP_OK = 0,
	HTTP_ERR_MALFORMED = -1,
	HTTP_ERR_TRUNCATED = -2,
};

/*
 * Parses the request line and the headers agentprof cares about.
 *
 * class_header: header name compared case-insensitively, e.g. "X-Request-Class"; NULL = none.
 *
 * Returns HTTP_OK once the request line is valid, even when the header section is cut off
 * (then complete = false and head_len = 0; a header line cut off by the end of buf is ignored).
 * HTTP_ERR_TRUNCATED: buf ended inside the request line; the method and the target prefix seen
 * so far are left in out (target_truncated = true when buf ended inside the target) so a long
 * request-target can still be attributed. HTTP_ERR_MALFORMED: not HTTP/1.x; out is zeroed.
 *
 * Header values keep only printable ASCII: a value with any other byte (besides HTAB, turned
 * into a space) is dropped, because it ends up in JSON. When a header repeats, the first
 * non-empty value wins.
 */
int http_request_head__parse(const char *buf, size_t len, const char *class_header,
			     struct http_request_head *out);

/* "HTTP/1.1 200 OK\r\n..." -> 200; -1 when buf does not start with a valid status line. */
int http_status__parse(const char *buf, size_t len);

/* True when buf starts with a known method (GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE
 * PATCH) followed by SP. */
bool http_is_request_start(const char *buf, size_t len);

#endif /* AGENTPROF_HTTP_H */
