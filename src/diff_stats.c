// SPDX-License-Identifier: GPL-2.0-only
#include <math.h>

#include "diff_stats.h"

/* The bucket holding the rank-th smallest value (1-based, in weighted counts). */
static size_t bucket_at(const struct hist *h, double rank)
{
	double seen = 0;
	size_t i;

	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			return i;
	}
	return HIST_BUCKETS - 1;
}

static double clampd(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void diff__quantile_ci(const struct hist *h, double q, uint64_t weight, double z,
		       struct diff_ci *ci)
{
	double n, sd, r_lo, r_hi, w = weight ? (double)weight : 1;

	ci->value = ci->lo = ci->hi = 0;
	if (!h->count)
		return;
	ci->value = (double)hist__quantile(h, q);
	n = h->count / w;
	sd = z * sqrt(n * q * (1 - q));
	r_lo = clampd(floor(n * q - sd), 1, n);
	r_hi = clampd(ceil(n * q + sd) + 1, 1, n);
	ci->lo = clampd((double)hist__lower(bucket_at(h, r_lo * w)), h->min, h->max);
	ci->hi = clampd((double)hist__upper(bucket_at(h, r_hi * w)), h->min, h->max);
}

void diff__mean_ci(const struct hist *h, uint64_t weight, double z, struct diff_ci *ci)
{
	double mean, var = 0, mid, n, w = weight ? (double)weight : 1, se;
	size_t i;

	ci->value = ci->lo = ci->hi = 0;
	if (!h->count)
		return;
	mean = hist__mean(h);
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (!h->counts[i])
			continue;
		mid = clampd((hist__lower(i) + (double)hist__upper(i)) / 2, h->min, h->max);
		var += h->counts[i] * (mid - mean) * (mid - mean);
	}
	n = h->count / w;
	var = n > 1 ? var / w / (n - 1) : 0;
	se = n > 0 ? sqrt(var / n) : 0;
	ci->value = mean;
	ci->lo = mean - z * se;
	ci->hi = mean + z * se;
}

double diff__welch(const struct diff_ci *a, const struct diff_ci *b, double z)
{
	double sa = (a->hi - a->value) / z, sb = (b->hi - b->value) / z;
	double se = sqrt(sa * sa + sb * sb), d = a->value - b->value;

	if (se > 0)
		return d / se;
	return d == 0 ? 0 : d > 0 ? INFINITY : -INFINITY;
}
