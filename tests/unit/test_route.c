// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for src/route.c. */
#include "route.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define FUZZ_ITERS 100000
#define FUZZ_LEN_MAX 120
#define ROUTE_MAX 512

/* Templates from an exactly sized heap copy, so a read past the NUL is caught. */
static const char *tmpl_sz(const char *target, size_t out_sz)
{
	static char out[ROUTE_MAX];
	size_t n = strlen(target) + 1;
	char *copy = malloc(n);
	size_t len;

	memcpy(copy, target, n);
	len = route__template(copy, out, out_sz);
	free(copy);
	/* The return value is part of every check: a mismatch shows up as a bogus route. */
	return len == strlen(out) ? out : "<bad return value>";
}

static const char *tmpl(const char *target)
{
	return tmpl_sz(target, ROUTE_MAX);
}

#define ASSERT_ROUTE(target, want) ASSERT_STREQ(tmpl(target), want, "route of \"%s\"", target)

static void test_examples(void)
{
	ASSERT_ROUTE("/agent/conversation/8812/end", "/agent/conversation/:id/end");
	ASSERT_ROUTE("/users/550e8400-e29b-41d4-a716-446655440000?x=1", "/users/:id");
	ASSERT_ROUTE("/cpu/17?ms=5", "/cpu/:id");
	ASSERT_ROUTE("/static/app.js", "/static/app.js");
	ASSERT_ROUTE("/v1/chat/completions", "/v1/chat/completions");
}

static void test_forms(void)
{
	char out[8];
	size_t len;

	ASSERT_ROUTE("", "/");
	ASSERT_STREQ(tmpl_sz("", 2), "/", "empty target, out_sz 2");
	ASSERT_ROUTE("/", "/");
	ASSERT_ROUTE("*", "*");
	ASSERT_ROUTE("*?x", "*");
	ASSERT_ROUTE("?x=1", "/");
	ASSERT_ROUTE("#frag", "/");
	ASSERT_ROUTE("/a/b?x=1#f", "/a/b");
	ASSERT_ROUTE("/a#f?x", "/a");
	ASSERT_ROUTE("/search?q=/a/b/123", "/search");
	ASSERT_ROUTE("http://host:8080/p", "/p");
	ASSERT_ROUTE("https://api.example.com/users/42?x=1", "/users/:id");
	ASSERT_ROUTE("HTTP://Host/x/", "/x/");
	ASSERT_ROUTE("http://host", "/");
	ASSERT_ROUTE("http://host?q=/a", "/");
	ASSERT_ROUTE("http://host:80//a//1", "/a/:id");
	ASSERT_ROUTE("svc+h2.x-y://h/z", "/z");
	ASSERT_ROUTE("1http://h/z", "/1http:/h/z");
	ASSERT_ROUTE("http:/h/z", "/http:/h/z");
	ASSERT_ROUTE("example.com:443", "/example.com:443");
	ASSERT_ROUTE("foo/12", "/foo/:id");

	len = route__template(NULL, out, sizeof(out));
	ASSERT_STREQ(out, "/", "NULL target");
	ASSERT_EQ(len, 1, "NULL target length");
}

static void test_slashes(void)
{
	ASSERT_ROUTE("//a///b", "/a/b");
	ASSERT_ROUTE("/a/b/", "/a/b/");
	ASSERT_ROUTE("/a//", "/a/");
	ASSERT_ROUTE("///", "/");
	ASSERT_ROUTE("/123/", "/:id/");
	ASSERT_ROUTE("/a/123//", "/a/:id/");
}

static void test_ids(void)
{
	ASSERT_ROUTE("/0", "/:id");
	ASSERT_ROUTE("/1/2/3", "/:id/:id/:id");
	ASSERT_ROUTE("/x/550E8400-E29B-41D4-A716-446655440000", "/x/:id");
	ASSERT_ROUTE("/x/550e8400-e29b-41d4-a716-446655440000/y", "/x/:id/y");
	ASSERT_ROUTE("/commit/deadbeef1", "/commit/:id");
	ASSERT_ROUTE("/commit/DEADBEEF12", "/commit/:id");
	ASSERT_ROUTE("/a1b2c3d4", "/:id");
	ASSERT_ROUTE("/sha/da39a3ee5e6b4b0d3255bfef95601890afd80709", "/sha/:id");
	ASSERT_ROUTE("/t/aB3dE5fG7hJ9kL1m", "/t/:id");
	ASSERT_ROUTE("/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/:id");
	ASSERT_ROUTE("/k/abc_DEF-123_456789", "/k/:id");
	ASSERT_ROUTE("/user_12345", "/:id");
	ASSERT_ROUTE("/orders/order-991/items", "/orders/:id/items");

	/* Not ids. */
	ASSERT_ROUTE("/deadbeef", "/deadbeef");
	ASSERT_ROUTE("/cafebabe/facade", "/cafebabe/facade");
	ASSERT_ROUTE("/abc1234", "/abc1234");
	ASSERT_ROUTE("/t/aB3dE5fG7hJ9kL1", "/t/aB3dE5fG7hJ9kL1");
	ASSERT_ROUTE("/t/abcdefghijklmnopqrstu", "/t/abcdefghijklmnopqrstu");
	ASSERT_ROUTE("/t/1234567890123456-", "/t/1234567890123456-");
	ASSERT_ROUTE("/api/v2/users", "/api/v2/users");
	ASSERT_ROUTE("/page-2", "/page-2");
	ASSERT_ROUTE("/user_12", "/user_12");
	ASSERT_ROUTE("/a_b_123", "/a_b_123");
	ASSERT_ROUTE("/_123", "/_123");
	ASSERT_ROUTE("/user__123", "/user__123");
	ASSERT_ROUTE("/user_123x", "/user_123x");
	ASSERT_ROUTE("/utf-8", "/utf-8");
	ASSERT_ROUTE("/3.14", "/3.14");
	ASSERT_ROUTE("/-5", "/-5");
	ASSERT_ROUTE("/healthz", "/healthz");
	ASSERT_ROUTE("/index.html", "/index.html");
	ASSERT_ROUTE("/x/550e8400-e29b-41d4-a716-44665544000g.json",
		     "/x/550e8400-e29b-41d4-a716-44665544000g.json");
	ASSERT_ROUTE("/x/abcdefgh-abcd-abcd-abcd-abcdefghijkz",
		     "/x/abcdefgh-abcd-abcd-abcd-abcdefghijkz");
	ASSERT_ROUTE("/x/550e8400-e29b-41d4-a716-44665544000g", "/x/:id");
	ASSERT_ROUTE("/files/a%20b", "/files/a%20b");
	ASSERT_ROUTE("/files/%41%42%43%44%45", "/files/%41%42%43%44%45");
	ASSERT_ROUTE("/:id", "/:id");
}

static void test_cap(void)
{
	const char *t = "/aaaa/bbbb/cccc";
	char out[32];
	size_t len;

	ASSERT_STREQ(tmpl_sz(t, 16), "/aaaa/bbbb/cccc", "fits exactly in 16");
	ASSERT_STREQ(tmpl_sz(t, 15), "/aaaa/bbbb/...", "one short: last segment cut");
	ASSERT_STREQ(tmpl_sz(t, 12), "/aaaa/...", "cut at a segment boundary");
	ASSERT_STREQ(tmpl_sz(t, 10), "/aaaa/...", "marker fills the buffer");
	ASSERT_STREQ(tmpl_sz(t, 9), "/...", "no whole segment fits");
	ASSERT_STREQ(tmpl_sz(t, 5), "/...", "just the marker");
	ASSERT_STREQ(tmpl_sz(t, 4), "/", "no room for the marker");
	ASSERT_STREQ(tmpl_sz(t, 2), "/", "smallest buffer");
	ASSERT_STREQ(tmpl_sz("*", 2), "*", "asterisk in smallest buffer");
	ASSERT_STREQ(tmpl_sz("/a", 3), "/a", "tiny route fits tiny buffer");
	ASSERT_STREQ(tmpl_sz("/a/", 3), "/", "trailing slash does not fit");
	ASSERT_STREQ(tmpl_sz("/123456789/x", 7), "/:id/x", "ids count at templated length");
	ASSERT_STREQ(tmpl_sz("/aaaa/bbbb/", 11), "/aaaa/...", "trailing slash dropped when cut");
	ASSERT_STREQ(tmpl_sz("/aaaa/bbbb/", 12), "/aaaa/bbbb/", "trailing slash kept when fits");
	ASSERT_STREQ(tmpl_sz("/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32), "/...", "one huge segment");

	len = route__template("/aaaa/bbbb/cccc", out, 12);
	ASSERT_EQ(len, strlen("/aaaa/..."), "cut route: return value");
	len = route__template("/x", out, 1);
	ASSERT_EQ(len, 0, "out_sz 1 is defended: length");
	ASSERT_STREQ(out, "", "out_sz 1 is defended: empty");
	out[0] = 'x';
	ASSERT_EQ(route__template("/x", out, 0), 0, "out_sz 0 is defended");
	ASSERT_EQ(out[0], 'x', "out_sz 0 writes nothing");
	ASSERT_EQ(route__template("/x", NULL, 8), 0, "NULL out is defended");
}

/* xorshift64*: deterministic, so a fuzz failure reproduces. */
static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

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

static void fuzz_target(char *buf)
{
	static const char alphabet[] = "//////aAfF09_-:.%?#*hpt";
	size_t len = rng_below(FUZZ_LEN_MAX), i;

	for (i = 0; i < len; i++)
		buf[i] = rng_below(8) ? alphabet[rng_below(sizeof(alphabet) - 1)]
				      : (char)(rng_below(255) + 1);
	buf[len] = '\0';
	if (rng_below(4) == 0)
		memcpy(buf, "http://", len < 7 ? len : 7);
}

static bool route_shape_ok(const char *out, size_t len, size_t out_sz)
{
	if (len != strlen(out) || len >= out_sz || len == 0)
		return false;
	if (out[0] == '*')
		return len == 1;
	return out[0] == '/' && !strstr(out, "//") && !strpbrk(out, "?#");
}

/* A cut route is the full one cut after a whole segment, plus the marker. */
static bool cut_ok(const char *cut, size_t len, const char *full)
{
	size_t keep;

	if (len < 4 || strcmp(cut + len - 4, "/..."))
		return false;
	keep = len - 4;
	return !strncmp(cut, full, keep) && full[keep] == '/';
}

static void test_fuzz(void)
{
	char target[FUZZ_LEN_MAX + 1], full[ROUTE_MAX], out[ROUTE_MAX], again[ROUTE_MAX];
	unsigned int bad = 0, cuts = 0, ids = 0, i;

	for (i = 0; i < FUZZ_ITERS; i++) {
		size_t out_sz = rng_below(60) + 2, len, full_len;

		fuzz_target(target);
		full_len = route__template(target, full, sizeof(full));
		bad += !route_shape_ok(full, full_len, sizeof(full));
		/* Templating a route again changes nothing. */
		bad +=
		    route__template(full, again, sizeof(again)) != full_len || strcmp(full, again);
		ids += strstr(full, ":id") != NULL;

		len = route__template(target, out, out_sz);
		bad += !route_shape_ok(out, len, out_sz);
		if (full_len < out_sz) {
			bad += strcmp(out, full) != 0;
			continue;
		}
		cuts++;
		bad += out_sz < 5 ? strcmp(out, "/") != 0 : !cut_ok(out, len, full);
	}
	ASSERT_EQ(bad, 0, "fuzz: %u targets keep every invariant", FUZZ_ITERS);
	ASSERT_GT(cuts, 1000, "fuzz: enough routes are cut");
	ASSERT_GT(ids, 1000, "fuzz: enough routes have ids");
}

TEST_MAIN(test_examples, test_forms, test_slashes, test_ids, test_cap, test_fuzz)
