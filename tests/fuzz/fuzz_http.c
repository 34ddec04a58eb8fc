// SPDX-License-Identifier: GPL-2.0-only
/*
 * The HTTP request head and status line parsers (src/http.c) and route
 * templating (src/route.c) on bytes any client can send: the first byte picks
 * the capture size's cut, the rest is what a socket read returned.
 */
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "http_check.h"
#include "route.h"

static void http_check_route(const char *target, size_t out_sz)
{
	char out[600];
	size_t n = route__template(target, out, out_sz);

	FUZZ_CHECK(n == strlen(out) && n < out_sz, "route of %s: length %zu", target, n);
	FUZZ_CHECK(out[0] == '/' || !strcmp(out, "*"), "route of %s: %s", target, out);
	FUZZ_CHECK(!strpbrk(out, "?#"), "route of %s keeps a query: %s", target, out);
	FUZZ_CHECK(!strstr(out, "//"), "route of %s: repeated slash: %s", target, out);
}

FUZZ_TARGET(http)
{
	struct http_request_head h, again;
	size_t out_sz;
	char *buf, *target;
	int err, st;

	if (size < 1)
		return 0;
	out_sz = 2 + data[0] % 599;
	data++;
	size--;
	/* An exact heap copy: a read past size is an ASan report. */
	buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	err = http_request_head__parse(buf, size, "X-Request-Class", &h);
	if (err == HTTP_OK)
		FUZZ_CHECK(head_ok(buf, size, &h), "a parsed head breaks a promise");
	else if (err == HTTP_ERR_MALFORMED)
		FUZZ_CHECK(zeroed(&h), "a malformed head leaves fields set");
	else
		FUZZ_CHECK(err == HTTP_ERR_TRUNCATED, "unknown result %d", err);
	FUZZ_CHECK(http_request_head__parse(buf, size, "X-Request-Class", &again) == err &&
			   !memcmp(&h, &again, sizeof(h)),
		   "the same bytes parse differently");
	st = http_status__parse(buf, size);
	FUZZ_CHECK(st == -1 || (st >= 100 && st <= 999), "status %d", st);
	http_is_request_start(buf, size);
	if (err == HTTP_OK)
		http_check_route(h.target, out_sz);
	/* The raw bytes as a target too: route.c sees only parsed targets, so this is extra. */
	target = strndup(buf, size);
	if (target)
		http_check_route(target, out_sz);
	free(target);
	free(buf);
	return 0;
}
