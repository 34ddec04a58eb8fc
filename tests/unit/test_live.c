// SPDX-License-Identifier: GPL-2.0-only
/*
 * record --live's view, fed known requests and a fake clock: nothing before
 * the first interval ends, then each route with its rate, p95 and CPU per
 * request over that interval only; plain lines off a terminal, a redraw in
 * place (cursor home, clear) on one.
 */
#include <stdlib.h>
#include <string.h>

#include "agentprof/request.h"
#include "live.h"
#include "request.h"
#include "request_fixture.h"
#include "test.h"

static void add(struct live *l, const char *path, uint64_t dur_ns, uint64_t cpu_ns)
{
	struct ap_request_event ev;
	struct request req;

	fixture__request(&ev, &req,
			 &(struct fixture){ .path = path, .dur_ns = dur_ns, .cpu_ns = cpu_ns });
	live__add(l, &req);
}

static const char *line_with(const char *out, const char *what, char *buf, size_t sz)
{
	const char *p = strstr(out, what), *s, *e;

	if (!p)
		return "";
	for (s = p; s > out && s[-1] != '\n'; s--)
		;
	e = strchr(p, '\n');
	snprintf(buf, sz, "%.*s", (int)((e ? e : p + strlen(p)) - s), s);
	return buf;
}

static void test_plain(void)
{
	char *out = NULL, line[256];
	size_t sz = 0;
	FILE *f = open_memstream(&out, &sz);
	struct live *l = live__new(f, false, 1);
	const uint64_t t0 = 5000000000ULL;
	double rate, p50, p95, cpu;
	int i;

	live__tick(l, t0);
	for (i = 0; i < 50; i++)
		add(l, "/items/1", 10000000, 2000000);
	for (i = 0; i < 5; i++)
		add(l, "/slow", 100000000, 40000000);
	live__tick(l, t0 + 500000000ULL);
	fflush(f);
	ASSERT_EQ(sz, 0, "nothing before a second has passed");
	live__tick(l, t0 + 1000000000ULL);
	fflush(f);
	ASSERT_TRUE(strstr(out, "REQ/S") && !strchr(out, '\033'), "plain header, no escapes");
	line_with(out, "/items/:id", line, sizeof(line));
	ASSERT_EQ(sscanf(line, "%*s %*s %*s %*s %*s %lf %lf %lf %lf", &rate, &p50, &p95, &cpu), 4,
		  "route line parsed");
	ASSERT_NEAR(rate, 50, 0.01, "50 requests in 1 s");
	ASSERT_NEAR(p95, 10, 10 / 32.0, "p95 10 ms");
	ASSERT_NEAR(cpu, 2, 0.01, "CPU per request 2 ms");
	ASSERT_TRUE(strstr(line_with(out, "/slow", line, sizeof(line)), "5.0"), "5 req/s");
	/* The next interval counts only its own requests. */
	add(l, "/slow", 100000000, 40000000);
	live__tick(l, t0 + 3000000000ULL);
	fflush(f);
	ASSERT_TRUE(strstr(out, "    0.5 ") != NULL, "1 request in 2 s: 0.5 req/s");
	live__tick(l, t0 + 4000000000ULL);
	fflush(f);
	ASSERT_TRUE(strstr(out, "no requests in the last 1.0 s") != NULL, "an empty interval said");
	live__free(l);
	fclose(f);
	free(out);
}

static void test_tty(void)
{
	char *out = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&out, &sz);
	struct live *l = live__new(f, true, 1);

	live__tick(l, 1);
	add(l, "/a", 1000000, 1000000);
	live__tick(l, 1 + 1000000000ULL);
	add(l, "/b", 1000000, 1000000);
	live__tick(l, 1 + 2000000000ULL);
	fflush(f);
	ASSERT_EQ(strncmp(out, "\033[H\033[J", 6), 0, "a terminal: redrawn from the top");
	ASSERT_TRUE(strstr(strrchr(out, '\033'), "/b") && !strstr(strrchr(out, '\033'), "/a"),
		    "the last screen shows the last interval's routes only");
	ASSERT_TRUE(strstr(out, "2 requests since the start") != NULL, "total since the start");
	live__free(l);
	fclose(f);
	free(out);
}

TEST_MAIN(test_plain, test_tty)
