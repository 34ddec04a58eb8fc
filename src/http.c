// SPDX-License-Identifier: GPL-2.0-only
/*
 * HTTP/1.x request-head parsing for bytes captured off a socket.
 *
 * The input is untrusted and usually cut short by the capture size, so every read is checked
 * against len and the parser tells "this is not HTTP" (MALFORMED) apart from "the request line
 * has not ended yet" (TRUNCATED): an invalid byte anywhere before the end wins over running out
 * of bytes, so garbage is rejected as early as possible.
 */
#include "http.h"

#include <string.h>

#define HTTP_REQUEST_ID_HDR "X-Request-Id"
#define HTTP_TRACEPARENT_HDR "traceparent"

static const char http__version_prefix[] = "HTTP/1.";

static bool http__is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool http__is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 tchar: what methods and header names are made of. */
static bool http__is_tchar(unsigned char c)
{
	if (http__is_alpha(c) || http__is_digit(c))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/*
 * Bytes >= 0x80 are let through: clients do send raw UTF-8 paths and servers accept them, and
 * losing the request would be worse. Whoever prints the target must escape it.
 */
static bool http__is_target_char(unsigned char c)
{
	return c > ' ' && c != 0x7f;
}

static bool http__is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char http__lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static bool http__name_eq(const char *name, size_t n, const char *want)
{
	size_t i;

	if (strlen(want) != n)
		return false;
	for (i = 0; i < n; i++) {
		if (http__lower(name[i]) != http__lower(want[i]))
			return false;
	}
	return true;
}

static int http__parse_method(const char *buf, size_t len, size_t *pos, char *method)
{
	size_t i = 0;

	while (i < len && http__is_tchar(buf[i])) {
		/* No real method is this long: a long token is garbage, not a request. */
		if (i == HTTP_METHOD_MAX - 1)
			return HTTP_ERR_MALFORMED;
		method[i] = buf[i];
		i++;
	}
	if (i == len)
		return HTTP_ERR_TRUNCATED;
	if (i == 0 || buf[i] != ' ')
		return HTTP_ERR_MALFORMED;
	*pos = i + 1;
	return HTTP_OK;
}

static int http__parse_target(const char *buf, size_t len, size_t *pos,
			      struct http_request_head *out)
{
	size_t start = *pos, i = *pos, n;

	while (i < len && http__is_target_char(buf[i]))
		i++;
	n = i - start;
	if (n > HTTP_TARGET_MAX - 1) {
		n = HTTP_TARGET_MAX - 1;
		out->target_truncated = true;
	}
	memcpy(out->target, buf + start, n);
	if (i == len) {
		out->target_truncated = true;
		return HTTP_ERR_TRUNCATED;
	}
	/* A CR or LF here is an HTTP/0.9 request or garbage: either way not ours. */
	if (i == start || buf[i] != ' ')
		return HTTP_ERR_MALFORMED;
	*pos = i + 1;
	return HTTP_OK;
}

static int http__parse_version(const char *buf, size_t len, size_t *pos, int *minor)
{
	const size_t plen = sizeof(http__version_prefix) - 1;
	size_t avail = len - *pos;
	size_t n = avail < plen ? avail : plen;

	/* Also rejects "PRI * HTTP/2.0", the HTTP/2 connection preface. */
	if (memcmp(buf + *pos, http__version_prefix, n))
		return HTTP_ERR_MALFORMED;
	if (avail <= plen)
		return HTTP_ERR_TRUNCATED;
	if (!http__is_digit(buf[*pos + plen]))
		return HTTP_ERR_MALFORMED;
	*minor = buf[*pos + plen] - '0';
	*pos += plen + 1;
	return HTTP_OK;
}

/* CRLF or a bare LF, as RFC 9112 allows recipients to accept. */
static int http__parse_eol(const char *buf, size_t len, size_t *pos)
{
	size_t i = *pos;

	if (i < len && buf[i] == '\r')
		i++;
	if (i == len)
		return HTTP_ERR_TRUNCATED;
	if (buf[i] != '\n')
		return HTTP_ERR_MALFORMED;
	*pos = i + 1;
	return HTTP_OK;
}

static int http__parse_request_line(const char *buf, size_t len, size_t *pos,
				    struct http_request_head *out)
{
	int err;

	err = http__parse_method(buf, len, pos, out->method);
	if (err)
		return err;
	err = http__parse_target(buf, len, pos, out);
	if (err)
		return err;
	err = http__parse_version(buf, len, pos, &out->version_minor);
	if (err)
		return err;
	return http__parse_eol(buf, len, pos);
}

/* Values with bytes outside printable ASCII are dropped whole: they are garbage or an attack. */
static void http__copy_value(char *dst, const char *val, size_t n)
{
	size_t i;

	if (dst[0])
		return;
	for (i = 0; i < n; i++) {
		unsigned char c = val[i];

		if (c != '\t' && (c < ' ' || c > '~'))
			return;
	}
	if (n > HTTP_HDR_VAL_MAX - 1)
		n = HTTP_HDR_VAL_MAX - 1;
	for (i = 0; i < n; i++)
		dst[i] = val[i] == '\t' ? ' ' : val[i];
	dst[n] = '\0';
}

static void http__store_header(const char *name, size_t name_n, const char *val, size_t val_n,
			       const char *class_header, struct http_request_head *out)
{
	if (http__name_eq(name, name_n, HTTP_REQUEST_ID_HDR))
		http__copy_value(out->request_id, val, val_n);
	if (http__name_eq(name, name_n, HTTP_TRACEPARENT_HDR))
		http__copy_value(out->traceparent, val, val_n);
	if (class_header && *class_header && http__name_eq(name, name_n, class_header))
		http__copy_value(out->request_class, val, val_n);
}

/*
 * line excludes the line terminator. Whitespace before the colon and obs-fold continuation
 * lines are rejected, as RFC 9112 servers must or may: they are request-smuggling vectors.
 */
static int http__parse_header_line(const char *line, size_t n, const char *class_header,
				   struct http_request_head *out)
{
	size_t name_n = 0, v, e;

	while (name_n < n && http__is_tchar(line[name_n]))
		name_n++;
	if (name_n == 0 || name_n == n || line[name_n] != ':')
		return HTTP_ERR_MALFORMED;
	v = name_n + 1;
	while (v < n && http__is_ows(line[v]))
		v++;
	e = n;
	while (e > v && http__is_ows(line[e - 1]))
		e--;
	http__store_header(line, name_n, line + v, e - v, class_header, out);
	return HTTP_OK;
}

static int http__parse_headers(const char *buf, size_t len, size_t pos, const char *class_header,
			       struct http_request_head *out)
{
	while (pos < len) {
		const char *line = buf + pos;
		const char *lf = memchr(line, '\n', len - pos);
		size_t n;

		/* The capture ended mid-line: what is there may be a cut-off value. */
		if (!lf)
			return HTTP_OK;
		n = lf - line;
		pos += n + 1;
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0) {
			out->complete = true;
			out->head_len = pos;
			return HTTP_OK;
		}
		if (http__parse_header_line(line, n, class_header, out))
			return HTTP_ERR_MALFORMED;
	}
	return HTTP_OK;
}

int http_request_head__parse(const char *buf, size_t len, const char *class_header,
			     struct http_request_head *out)
{
	size_t pos = 0;
	int err;

	if (!out)
		return HTTP_ERR_MALFORMED;
	memset(out, 0, sizeof(*out));
	if (!buf)
		return HTTP_ERR_MALFORMED;

	err = http__parse_request_line(buf, len, &pos, out);
	if (!err)
		err = http__parse_headers(buf, len, pos, class_header, out);
	if (err == HTTP_ERR_MALFORMED)
		memset(out, 0, sizeof(*out));
	return err;
}

int http_status__parse(const char *buf, size_t len)
{
	const size_t plen = sizeof(http__version_prefix) - 1;
	const char *code;
	int status;

	/* "HTTP/1.x SSS" */
	if (!buf || len < plen + 5)
		return -1;
	if (memcmp(buf, http__version_prefix, plen) || !http__is_digit(buf[plen]) ||
	    buf[plen + 1] != ' ')
		return -1;
	code = buf + plen + 2;
	if (!http__is_digit(code[0]) || !http__is_digit(code[1]) || !http__is_digit(code[2]))
		return -1;
	/* The reason phrase is optional, but a fourth digit means this is not a status code. */
	if (len > plen + 5 && code[3] != ' ' && code[3] != '\r' && code[3] != '\n')
		return -1;
	status = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
	return status < 100 ? -1 : status;
}

bool http_is_request_start(const char *buf, size_t len)
{
	static const char *const methods[] = {
	    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	};
	size_t i;

	if (!buf)
		return false;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t n = strlen(methods[i]);

		if (len > n && !memcmp(buf, methods[i], n) && buf[n] == ' ')
			return true;
	}
	return false;
}
