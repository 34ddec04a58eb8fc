// SPDX-License-Identifier: GPL-2.0-only
/* Unit tests for src/hist.c. */
#include "hist.h"
#include "test.h"

#include <stdlib.h>

#define N_SAMPLES 100000
#define MAX_REL_ERR (1.0 / 32)

static const double quantiles[] = {
    0.0, 1e-6, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999, 1.0,
};

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Uniform in (0, 1]. */
static double rng_unit(void)
{
	return (double)((rng() >> 11) + 1) / 9007199254740992.0;
}

/* Natural log without libm, so the test links with its module only; x > 0. */
static double ln(double x)
{
	double z, z2, term, sum = 0.0;
	int e = 0, k;

	while (x >= 2.0) {
		x /= 2.0;
		e++;
	}
	while (x < 1.0) {
		x *= 2.0;
		e--;
	}
	/* ln(x) = 2 atanh((x - 1) / (x + 1)); |z| <= 1/3 converges fast. */
	z = (x - 1.0) / (x + 1.0);
	z2 = z * z;
	term = z;
	for (k = 1; k < 60; k += 2) {
		sum += term / k;
		term *= z2;
	}
	return 2.0 * sum + e * 0.69314718055994530942;
}

static uint64_t gen_uniform(void)
{
	return rng() % 1000000000ULL;
}

static uint64_t gen_small(void)
{
	return rng() % 64;
}

static uint64_t gen_exponential(void)
{
	return (uint64_t)(-ln(rng_unit()) * 1e6);
}

static uint64_t gen_constant(void)
{
	return 12345;
}

/* Fast requests and a slow tail: 1 ms +- 10% and 1 s +- 10%. */
static uint64_t gen_bimodal(void)
{
	uint64_t base = rng() % 10 ? 1000000 : 1000000000;

	return base - base / 10 + rng() % (base / 5);
}

/* Every magnitude from 0 to UINT64_MAX, each power of two equally likely. */
static uint64_t gen_log_uniform(void)
{
	return rng() >> (rng() % 64);
}

struct dist {
	const char *name;
	uint64_t (*gen)(void);
};

static const struct dist dists[] = {
    {"uniform", gen_uniform},	{"small", gen_small},	  {"exponential", gen_exponential},
    {"constant", gen_constant}, {"bimodal", gen_bimodal}, {"log-uniform", gen_log_uniform},
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The value of rank ceil(q * n) (1-based) in sorted, as hist__quantile defines it. */
static uint64_t exact_quantile(const uint64_t *sorted, size_t n, double q)
{
	double r = q * (double)n;
	size_t rank = (size_t)r;

	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

static void check_dist(const struct dist *d, uint64_t *vals, struct hist *h)
{
	unsigned __int128 sum = 0;
	size_t i;

	hist__init(h);
	for (i = 0; i < N_SAMPLES; i++) {
		vals[i] = d->gen();
		sum += vals[i];
		hist__add(h, vals[i]);
	}
	qsort(vals, N_SAMPLES, sizeof(vals[0]), cmp_u64);

	ASSERT_EQ(h->count, N_SAMPLES, "%s: count", d->name);
	ASSERT_EQ(h->min, vals[0], "%s: min", d->name);
	ASSERT_EQ(h->max, vals[N_SAMPLES - 1], "%s: max", d->name);
	if (sum <= UINT64_MAX) {
		ASSERT_EQ(h->sum, (uint64_t)sum, "%s: sum", d->name);
		ASSERT_NEAR(hist__mean(h), (double)sum / N_SAMPLES, (double)sum / N_SAMPLES * 1e-12,
			    "%s: mean", d->name);
	} else {
		ASSERT_EQ(h->sum, UINT64_MAX, "%s: sum saturates", d->name);
	}

	for (i = 0; i < sizeof(quantiles) / sizeof(quantiles[0]); i++) {
		double q = quantiles[i];
		uint64_t exact = exact_quantile(vals, N_SAMPLES, q);

		ASSERT_NEAR((double)hist__quantile(h, q), (double)exact,
			    (double)exact * MAX_REL_ERR, "%s: q%g within 1/32 of exact", d->name,
			    q);
	}
	ASSERT_EQ(hist__quantile(h, 0.0), vals[0], "%s: q0 is min exactly", d->name);
	ASSERT_EQ(hist__quantile(h, 1.0), vals[N_SAMPLES - 1], "%s: q1 is max exactly", d->name);
}

static void test_distributions(void)
{
	uint64_t *vals = malloc(N_SAMPLES * sizeof(*vals));
	struct hist *h = malloc(sizeof(*h));
	size_t i;

	for (i = 0; i < sizeof(dists) / sizeof(dists[0]); i++)
		check_dist(&dists[i], vals, h);
	free(h);
	free(vals);
}

static void test_empty(void)
{
	struct hist h;

	hist__init(&h);
	ASSERT_EQ(h.count, 0, "empty: count");
	ASSERT_EQ(h.min, 0, "empty: min");
	ASSERT_EQ(h.max, 0, "empty: max");
	ASSERT_EQ(hist__quantile(&h, 0.0), 0, "empty: q0");
	ASSERT_EQ(hist__quantile(&h, 0.5), 0, "empty: q0.5");
	ASSERT_EQ(hist__quantile(&h, 1.0), 0, "empty: q1");
	ASSERT_NEAR(hist__mean(&h), 0.0, 0.0, "empty: mean");
}

static void test_buckets(void)
{
	unsigned int bad = 0;
	size_t idx;
	int bit;

	for (idx = 0; idx < HIST_BUCKETS; idx++) {
		uint64_t lo = hist__lower(idx), hi = hist__upper(idx);

		bad += lo > hi || hist__index(lo) != idx || hist__index(hi) != idx;
		bad += idx > 0 && lo != hist__upper(idx - 1) + 1;
		/* Width times 32 within the lower bound: the 1/32 relative error bound. */
		bad += idx >= 32 && (hi - lo + 1) * 32 > lo;
		bad += idx < 64 && (lo != idx || hi != idx);
	}
	ASSERT_EQ(bad, 0, "buckets tile [0, UINT64_MAX] and are at most 1/32 wide");

	for (bit = 0; bit < 64; bit++) {
		uint64_t p = 1ULL << bit;
		uint64_t probes[] = {p - 1, p, p + 1, p + p / 2, p | (p - 1)};
		size_t k;

		for (k = 0; k < sizeof(probes) / sizeof(probes[0]); k++) {
			size_t i = hist__index(probes[k]);

			bad += i >= HIST_BUCKETS || hist__lower(i) > probes[k] ||
			       hist__upper(i) < probes[k];
		}
	}
	for (idx = 0; idx < 1000000; idx++) {
		uint64_t v = rng() >> (rng() % 64);
		size_t i = hist__index(v);

		bad += i >= HIST_BUCKETS || hist__lower(i) > v || hist__upper(i) < v;
	}
	ASSERT_EQ(bad, 0, "every probed value lies within its bucket");

	ASSERT_EQ(HIST_BUCKETS, 1920, "bucket count");
	ASSERT_EQ(hist__index(0), 0, "index of 0");
	ASSERT_EQ(hist__index(31), 31, "index of 31 exact");
	ASSERT_EQ(hist__index(UINT64_MAX), HIST_BUCKETS - 1, "index of UINT64_MAX");
	ASSERT_EQ(hist__lower(0), 0, "lower of first bucket");
	ASSERT_EQ(hist__upper(HIST_BUCKETS - 1), UINT64_MAX, "upper of last bucket");
	ASSERT_EQ(hist__lower(HIST_BUCKETS - 1), 63ULL << 58, "lower of last bucket");
	ASSERT_EQ(hist__lower(HIST_BUCKETS + 5), hist__lower(HIST_BUCKETS - 1),
		  "out-of-range index clamps");
	ASSERT_EQ(hist__upper(HIST_BUCKETS + 5), UINT64_MAX, "out-of-range upper clamps");
}

static void test_small_exact(void)
{
	unsigned int bad = 0;
	struct hist h;
	uint64_t v;

	hist__init(&h);
	for (v = 0; v < 64; v++)
		hist__add(&h, v);
	/* Rank k (1-based) holds value k - 1. */
	for (v = 1; v <= 64; v++)
		bad += hist__quantile(&h, (double)v / 64.0) != v - 1;
	ASSERT_EQ(bad, 0, "values below 64 are exact at every rank");
	ASSERT_EQ(hist__quantile(&h, 0.5), 31, "median of 0..63");
}

static void test_extremes(void)
{
	struct hist h;

	hist__init(&h);
	hist__add(&h, 0);
	hist__add(&h, UINT64_MAX);
	ASSERT_EQ(h.min, 0, "extremes: min");
	ASSERT_EQ(h.max, UINT64_MAX, "extremes: max");
	ASSERT_EQ(h.sum, UINT64_MAX, "extremes: sum");
	ASSERT_EQ(h.counts[0], 1, "extremes: 0 in first bucket");
	ASSERT_EQ(h.counts[HIST_BUCKETS - 1], 1, "extremes: UINT64_MAX in last bucket");
	ASSERT_EQ(hist__quantile(&h, 0.0), 0, "extremes: q0");
	ASSERT_EQ(hist__quantile(&h, 0.5), 0, "extremes: q0.5 is rank 1");
	ASSERT_GE(hist__quantile(&h, 0.75), hist__lower(HIST_BUCKETS - 1), "extremes: q0.75");
	ASSERT_EQ(hist__quantile(&h, 1.0), UINT64_MAX, "extremes: q1");

	hist__add(&h, UINT64_MAX);
	ASSERT_EQ(h.sum, UINT64_MAX, "sum saturates instead of wrapping");
	ASSERT_EQ(h.count, 3, "count after saturation");

	hist__init(&h);
	hist__add_n(&h, 1ULL << 40, 1ULL << 30);
	ASSERT_EQ(h.sum, UINT64_MAX, "v * n saturates");
	ASSERT_EQ(h.count, 1ULL << 30, "add_n: huge n counted");

	hist__init(&h);
	hist__add(&h, 1000000);
	ASSERT_EQ(hist__quantile(&h, 0.5), 1000000, "single value: midpoint clamped to it");
	ASSERT_EQ(hist__quantile(&h, 1e-9), 1000000, "single value: tiny q");
}

static void test_q_range(void)
{
	unsigned int bad = 0;
	uint64_t prev = 0;
	struct hist h;
	int i;

	hist__init(&h);
	for (i = 0; i < 10000; i++)
		hist__add(&h, 1000 + rng() % 1000000);
	ASSERT_EQ(hist__quantile(&h, -1.0), h.min, "q < 0 clamps to min");
	ASSERT_EQ(hist__quantile(&h, 2.0), h.max, "q > 1 clamps to max");
	ASSERT_EQ(hist__quantile(&h, __builtin_nan("")), h.min, "NaN q is min");
	for (i = 0; i <= 1000; i++) {
		uint64_t v = hist__quantile(&h, i / 1000.0);

		bad += v < prev || v < h.min || v > h.max;
		prev = v;
	}
	ASSERT_EQ(bad, 0, "quantiles are monotonic and within [min, max]");
}

static void test_add_n(void)
{
	struct hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
	int i;

	hist__init(a);
	hist__init(b);
	for (i = 0; i < 5; i++)
		hist__add(a, 777);
	hist__add(a, 3);
	hist__add_n(b, 777, 5);
	hist__add_n(b, 3, 1);
	hist__add_n(b, 1, 0);
	ASSERT_TRUE(!memcmp(a, b, sizeof(*a)), "add_n(v, n) equals n adds; n = 0 is a no-op");
	ASSERT_EQ(b->min, 3, "add_n(.., 0) leaves min alone");
	free(a);
	free(b);
}

static void test_merge(void)
{
	struct hist *all = malloc(sizeof(*all)), *lo = malloc(sizeof(*lo));
	struct hist *hi = malloc(sizeof(*hi)), *empty = malloc(sizeof(*empty));
	int i;

	hist__init(all);
	hist__init(lo);
	hist__init(hi);
	hist__init(empty);
	for (i = 0; i < 50000; i++) {
		uint64_t v = gen_exponential() + 500;

		hist__add(all, v);
		/* Split by value so each side's min and max differ from the whole's. */
		hist__add(v < 1000000 ? lo : hi, v);
	}
	hist__merge(hi, lo);
	ASSERT_TRUE(!memcmp(hi, all, sizeof(*all)), "merge equals adding everything to one");

	hist__merge(all, empty);
	ASSERT_TRUE(!memcmp(hi, all, sizeof(*all)), "merging an empty hist changes nothing");
	ASSERT_GE(all->min, 500, "merging an empty hist keeps min");

	hist__merge(empty, all);
	ASSERT_TRUE(!memcmp(empty, all, sizeof(*all)), "merging into an empty hist copies it");
	ASSERT_EQ(hist__quantile(empty, 0.99), hist__quantile(all, 0.99), "merged p99");
	free(all);
	free(lo);
	free(hi);
	free(empty);
}

TEST_MAIN(test_empty, test_buckets, test_small_exact, test_extremes, test_q_range, test_add_n,
	  test_merge, test_distributions)
