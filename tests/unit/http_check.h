/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What http_request_head__parse() promises whatever its input: shared by the
 * unit test's random loop (test_http.c) and the libFuzzer target
 * (tests/fuzz/fuzz_http.c).
 */
#ifndef AGENTPROF_HTTP_CHECK_H
#define AGENTPROF_HTTP_CHECK_H

#include <stdbool.h>
#include <string.h>

#include "http.h"

static const char *const known_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

static inline bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline bool value_ok(const char *v)
{
	size_t n = strnlen(v, HTTP_HDR_VAL_MAX);

	if (n == HTTP_HDR_VAL_MAX)
		return false;
	for (; *v; v++) {
		if (*v < ' ' || *v > '~')
			return false;
	}
	return true;
}

static inline bool is_known_method(const char *m)
{
	size_t i;

	for (i = 0; i < sizeof(known_methods) / sizeof(known_methods[0]); i++) {
		if (!strcmp(m, known_methods[i]))
			return true;
	}
	return false;
}

/* Everything a successful parse promises, whatever the input. */
static inline bool head_ok(const char *buf, size_t len, const struct http_request_head *h)
{
	size_t i, mlen = strnlen(h->method, HTTP_METHOD_MAX);
	size_t tlen = strnlen(h->target, HTTP_TARGET_MAX);

	if (mlen == 0 || mlen == HTTP_METHOD_MAX || tlen == 0 || tlen == HTTP_TARGET_MAX)
		return false;
	for (i = 0; i < mlen; i++) {
		if (!is_tchar(h->method[i]))
			return false;
	}
	for (i = 0; i < tlen; i++) {
		unsigned char c = h->target[i];

		if (c <= ' ' || c == 0x7f)
			return false;
	}
	if (h->version_minor < 0 || h->version_minor > 9)
		return false;
	if (!value_ok(h->request_id) || !value_ok(h->request_class) || !value_ok(h->traceparent))
		return false;
	if (h->complete != (h->head_len != 0) || h->head_len > len)
		return false;
	if (h->complete && buf[h->head_len - 1] != '\n')
		return false;
	/* The cheap pre-filter must never reject what the full parser accepts. */
	return !is_known_method(h->method) || http_is_request_start(buf, len);
}

static inline bool zeroed(const struct http_request_head *h)
{
	static const struct http_request_head zero;

	return !memcmp(h, &zero, sizeof(*h));
}

#endif /* AGENTPROF_HTTP_CHECK_H */
