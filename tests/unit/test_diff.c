// SPDX-License-Identifier: GPL-2.0-only
/*
 * agentprof diff's statistics and verdicts on profiles built from known
 * samples: an interval holds the true quantile, equal samples are never
 * flagged, a known shift is flagged, a small one is not, a tail quantile
 * with too few requests is not judged, and rows sort flagged first.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentprof/request.h"
#include "diff.h"
#include "profile.h"
#include "request.h"
#include "request_fixture.h"
#include "test.h"

/* A deterministic pseudo-random stream (xorshift), so failures reproduce. */
static uint64_t rng = 88172645463325252ULL;

static double uniform(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (rng >> 11) * (1.0 / 9007199254740992.0);
}

static void add(struct profile *p, const char *path, uint64_t dur_ns, uint32_t round_trips)
{
	struct ap_request_event ev;
	struct request req;

	fixture__request(&ev, &req,
			 &(struct fixture){ .path = path,
					    .dur_ns = dur_ns,
					    .cpu_ns = dur_ns / 4,
					    .pg_round_trips = round_trips });
	profile__add(p, &req);
}

/* n requests of path: latency base_ms plus up to 2 ms of jitter. */
static void fill(struct profile *p, const char *path, int n, double base_ms, uint32_t rt)
{
	int i;

	for (i = 0; i < n; i++)
		add(p, path, (uint64_t)((base_ms + 2 * uniform()) * 1e6), rt);
}

static void test_quantile_ci_holds_truth(void)
{
	struct hist h;
	struct diff_ci ci;
	int i, misses = 0, trial;

	/* 200 trials of 500 uniform samples in [10, 20) ms: the p50's truth is 15 ms. */
	for (trial = 0; trial < 200; trial++) {
		hist__init(&h);
		for (i = 0; i < 500; i++)
			hist__add(&h, (uint64_t)((10 + 10 * uniform()) * 1e6));
		diff__quantile_ci(&h, 0.5, 1, DIFF_Z, &ci);
		if (ci.lo > 15e6 || ci.hi < 15e6)
			misses++;
	}
	ASSERT_LE(misses, 2, "99.9%% interval misses the true median at most 2 times in 200");
	ASSERT_TRUE(ci.lo <= ci.value && ci.value <= ci.hi, "estimate inside its interval");
	ASSERT_LT(ci.hi - ci.lo, 2e6, "interval of 500 samples narrower than 2 ms");
}

static void test_mean_ci(void)
{
	struct diff_ci a, b;
	struct hist h;
	int i;

	hist__init(&h);
	for (i = 0; i < 1000; i++)
		hist__add(&h, i % 2 ? 3 : 1); /* mean 2, sd 1 */
	diff__mean_ci(&h, 1, DIFF_Z, &a);
	ASSERT_NEAR(a.value, 2.0, 1e-9, "mean exact");
	ASSERT_NEAR(a.hi - a.value, DIFF_Z * 1.0005 / sqrt(1000), 1e-3, "half-width z*sd/sqrt(n)");
	/* Same samples, every one standing for 4 (record --sample 4): n is 1000, not 4000. */
	hist__init(&h);
	for (i = 0; i < 1000; i++)
		hist__add_n(&h, i % 2 ? 3 : 1, 4);
	diff__mean_ci(&h, 4, DIFF_Z, &b);
	ASSERT_NEAR(b.hi - b.value, a.hi - a.value, 1e-9, "sampled: the traced requests count");
	ASSERT_NEAR(diff__welch(&a, &b, DIFF_Z), 0, 1e-9, "equal means: z = 0");
}

static struct diff_row *row(struct diff *d, const char *route)
{
	size_t i;

	for (i = 0; i < d->nrows; i++)
		if (!strcmp(d->rows[i].route, route))
			return &d->rows[i];
	return NULL;
}

static void test_verdicts(void)
{
	struct diff d = { .o = { .threshold = 0.10, .min_ns = 1e6, .min_count = 0.5, .z = DIFF_Z },
			  .before = { .path = "b" },
			  .after = { .path = "a" } };
	struct diff_row *r;

	d.before.p = profile__new();
	d.after.p = profile__new();
	fill(d.before.p, "/same", 400, 10, 1);
	fill(d.after.p, "/same", 400, 10, 1);
	fill(d.before.p, "/slow", 400, 10, 1);
	fill(d.after.p, "/slow", 400, 30, 1); /* 20 ms slower */
	fill(d.before.p, "/query", 400, 5, 2);
	fill(d.after.p, "/query", 400, 5, 3); /* one query more */
	fill(d.before.p, "/tiny", 400, 10, 1);
	fill(d.after.p, "/tiny", 400, 10.5, 1); /* beyond noise, below the thresholds */
	fill(d.before.p, "/few", 50, 10, 1);
	fill(d.after.p, "/few", 50, 10, 1);
	add(d.before.p, "/few", 500e6, 1); /* one outlier: p95 cannot be judged on 51 */
	fill(d.after.p, "/added", 10, 1, 0);
	ASSERT_EQ(diff__compute(&d), 0, "computed");
	r = row(&d, "/same");
	ASSERT_TRUE(r && r->verdict == DV_SAME, "equal samples: same");
	r = row(&d, "/slow");
	ASSERT_TRUE(r && r->verdict == DV_WORSE && r->m[0].verdict == DV_WORSE,
		    "20 ms slower: latency p50 worse");
	ASSERT_NEAR(r ? r->m[0].change : 0, 20e6, 1e6, "change of p50 20 ms");
	r = row(&d, "/query");
	ASSERT_TRUE(r && r->verdict == DV_WORSE && r->m[5].verdict == DV_WORSE &&
			    r->m[0].verdict == DV_SAME,
		    "one query more: round trips worse, latency same");
	r = row(&d, "/tiny");
	ASSERT_TRUE(r && r->m[0].verdict == DV_SMALL, "0.5 ms slower: small, not flagged");
	r = row(&d, "/few");
	ASSERT_TRUE(r && !r->m[1].judged && r->m[1].verdict == DV_SAME,
		    "p95 on 51 requests not judged");
	r = row(&d, "/added");
	ASSERT_TRUE(r && r->verdict == DV_NEW, "a route only after: new");
	ASSERT_EQ(d.worse, 2, "two rows worse");
	ASSERT_STREQ(d.rows[0].route, "/slow", "the larger impact first");
	ASSERT_STREQ(d.rows[1].route, "/query", "then the other regression");
	diff__free(&d);
}

TEST_MAIN(test_quantile_ci_holds_truth, test_mean_ci, test_verdicts)
