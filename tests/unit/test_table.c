// SPDX-License-Identifier: GPL-2.0-only
/*
 * The terminal table: 120 columns at most by default, whatever the names and
 * values; every column with --wide; routes cut by the middle; where the
 * time goes adding up to the latency.
 */
#include <stdlib.h>
#include <string.h>

#include "agentprof/request.h"
#include "breakdown.h"
#include "profile.h"
#include "request.h"
#include "table.h"
#include "request_fixture.h"
#include "test.h"

static void add(struct profile *p, const char *head, const char *comm, uint64_t dur_ns,
		uint64_t cpu_ns, uint64_t pg_ns)
{
	struct ap_request_event ev;
	struct request req;

	fixture__request(&ev, &req,
			 &(struct fixture){ .head = head,
					    .comm = comm,
					    .dur_ns = dur_ns,
					    .cpu_ns = cpu_ns,
					    .pg_time_ns = pg_ns });
	profile__add(p, &req);
}

static size_t longest_line(const char *s, size_t *lines)
{
	size_t max = 0, len;
	const char *nl;

	*lines = 0;
	for (; *s; s = nl + 1) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		len = nl - s;
		max = len > max ? len : max;
		(*lines)++;
		if (!*nl)
			break;
	}
	return max;
}

static char *print(struct profile *p, bool wide)
{
	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);

	table__print(p, f, wide);
	fclose(f);
	return buf;
}

static void test_widths(void)
{
	struct profile *p = profile__new();
	size_t lines, w;
	char *out;
	int i;

	/* Long names everywhere, ten-second latencies, and the three widest parts. */
	for (i = 0; i < 50; i++)
		add(p,
		    "PATCH /api/v1/organisations/acme/projects/very-long-project-name/agents/run "
		    "HTTP/1.1\r\nX-Request-Class: exceedingly-long-class\r\n\r\n",
		    "uvicorn-worker-12", 12345678901ULL, 4000000000ULL, 4000000000ULL);
	add(p, "GET / HTTP/1.1\r\n\r\n", "x", 1000000, 500000, 0);
	out = print(p, false);
	w = longest_line(out, &lines);
	ASSERT_LE(w, 120, "default table within 120 columns");
	if (w > 120)
		printf("%s", out);
	ASSERT_EQ(lines, 6, "header, two rows, three lines of legend");
	ASSERT_TRUE(strstr(out, "WHERE THE TIME GOES") && strstr(out, "--wide"),
		    "where the time goes, and how to see every column");
	/* 4 s of CPU and 4 s of PostgreSQL in 12.3 s: 32% each, the rest 35%. */
	ASSERT_TRUE(strstr(out, "rest 35% cpu 32% pg 32%"), "shares of the latency, largest first");
	free(out);
	out = print(p, true);
	w = longest_line(out, &lines);
	ASSERT_GT(w, 200, "--wide: every column");
	ASSERT_TRUE(strstr(out, "RUNQ_P95") && strstr(out, "LOCK_P95") && strstr(out, "FLT_MB"),
		    "--wide has run queue, locks, faults");
	free(out);
	profile__free(p);
}

static void test_fit(void)
{
	char out[32];

	ASSERT_STREQ(table__fit("/short", 10, out), "/short", "short: unchanged");
	ASSERT_STREQ(table__fit("/agent/conversation/:id/end", 16, out), "/agent/..:id/end",
		     "long: its start and end");
	ASSERT_EQ(strlen(table__fit("/agent/conversation/:id/end", 15, out)), 15, "exact width");
}

static void test_breakdown(void)
{
	struct profile *p = profile__new();
	const struct profile_group **v;
	struct breakdown b;
	char top[64];
	size_t n;

	add(p, "GET /a HTTP/1.1\r\n\r\n", "s", 10000000, 2000000, 5000000);
	v = profile__sorted(p, &n);
	breakdown__of(v[0], &b);
	ASSERT_NEAR(b.mean_ns[BD_CPU], 2e6, 1, "cpu part");
	ASSERT_NEAR(b.mean_ns[BD_PG], 5e6, 1, "pg part");
	ASSERT_NEAR(b.mean_ns[BD_OTHER], 3e6, 1, "the rest of the latency");
	ASSERT_NEAR(b.overlap_ns, 0, 1, "no overlap");
	ASSERT_STREQ(breakdown__top(&b, 3, 0.05, top, sizeof(top)), "pg 50% rest 30% cpu 20%",
		     "largest first");
	profile__free(p);
}

TEST_MAIN(test_widths, test_fit, test_breakdown)
