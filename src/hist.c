// SPDX-License-Identifier: GPL-2.0-only
/*
 * Log-linear histogram.
 *
 * Bucket layout: v < 2^S (S = HIST_SUB_BITS) has its own bucket. Above, with m the index of the
 * highest set bit and shift = m - S, v lands in bucket shift * 2^S + (v >> shift): v >> shift
 * lies in [2^S, 2^(S+1)), so each power of two gets 2^S buckets of width 2^shift, and the index
 * is continuous with the exact range (shift = 0 covers [2^S, 2^(S+1)) exactly as well).
 */
#include "hist.h"

#include <string.h>

#define HIST_SUB_COUNT (1ULL << HIST_SUB_BITS)

static uint64_t hist__sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t hist__sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* log2 of the width of bucket idx; idx >= HIST_SUB_COUNT. */
static unsigned int hist__shift(size_t idx)
{
	return (unsigned int)(idx >> HIST_SUB_BITS) - 1;
}

void hist__init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

size_t hist__index(uint64_t v)
{
	unsigned int shift;

	if (v < HIST_SUB_COUNT)
		return v;
	shift = 63 - __builtin_clzll(v) - HIST_SUB_BITS;
	return ((size_t)shift << HIST_SUB_BITS) + (size_t)(v >> shift);
}

uint64_t hist__lower(size_t idx)
{
	unsigned int shift;

	if (idx >= HIST_BUCKETS)
		idx = HIST_BUCKETS - 1;
	if (idx < HIST_SUB_COUNT)
		return idx;
	shift = hist__shift(idx);
	return (uint64_t)(idx - ((size_t)shift << HIST_SUB_BITS)) << shift;
}

uint64_t hist__upper(size_t idx)
{
	if (idx >= HIST_BUCKETS)
		idx = HIST_BUCKETS - 1;
	if (idx < HIST_SUB_COUNT)
		return idx;
	/* Cannot overflow: the last bucket ends exactly at UINT64_MAX. */
	return hist__lower(idx) + ((1ULL << hist__shift(idx)) - 1);
}

void hist__add_n(struct hist *h, uint64_t v, uint64_t n)
{
	if (!n)
		return;
	if (!h->count || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->count += n;
	h->sum = hist__sat_add(h->sum, hist__sat_mul(v, n));
	h->counts[hist__index(v)] += n;
}

void hist__add(struct hist *h, uint64_t v)
{
	hist__add_n(h, v, 1);
}

void hist__merge(struct hist *dst, const struct hist *src)
{
	size_t i;

	if (!src->count)
		return;
	if (!dst->count || src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
	dst->count += src->count;
	dst->sum = hist__sat_add(dst->sum, src->sum);
	for (i = 0; i < HIST_BUCKETS; i++)
		dst->counts[i] += src->counts[i];
}

/* ceil(q * count) in [1, count], without libm and without converting an out-of-range double. */
static uint64_t hist__rank(uint64_t count, double q)
{
	double r = q * (double)count;
	uint64_t rank;

	if (!(r > 1.0))
		return 1;
	if (r >= (double)count)
		return count;
	rank = (uint64_t)r;
	return (double)rank < r ? rank + 1 : rank;
}

static uint64_t hist__clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	if (v < lo)
		return lo;
	return v > hi ? hi : v;
}

uint64_t hist__quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;
	size_t i;

	if (!h->count)
		return 0;
	if (!(q > 0.0))
		return h->min;
	if (q >= 1.0)
		return h->max;

	rank = hist__rank(h->count, q);
	for (i = 0; i < HIST_BUCKETS; i++) {
		uint64_t lo, hi;

		seen += h->counts[i];
		if (seen < rank)
			continue;
		lo = hist__lower(i);
		hi = hist__upper(i);
		return hist__clamp(lo + (hi - lo) / 2, h->min, h->max);
	}
	/* Only reachable if counts[] disagrees with count, e.g. after a wrap. */
	return h->max;
}

double hist__mean(const struct hist *h)
{
	return h->count ? (double)h->sum / (double)h->count : 0.0;
}
