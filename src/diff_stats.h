/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Confidence intervals from what a profile keeps of a quantity: its
 * log-linear histogram (counts per bucket) and its exact count and sum.
 * `agentprof diff` calls two profiles' values different when their
 * intervals are apart (docs/diff.md).
 */
#ifndef AGENTPROF_DIFF_STATS_H
#define AGENTPROF_DIFF_STATS_H

#include <stdint.h>

#include "hist.h"

/* 99.9% two-sided: a verdict per metric and route stays rare by chance. */
#define DIFF_Z 3.29

struct diff_ci {
	double value; /* the estimate: the quantile, or the mean */
	double lo, hi;
};

/*
 * Quantile q of h, with the distribution-free interval of order statistics:
 * ranks n*q -/+ z*sqrt(n*q*(1-q)) of the n = count / weight requests
 * traced (weight: record --sample), widened to the bounds of the buckets
 * those ranks fall in.
 */
void diff__quantile_ci(const struct hist *h, double q, uint64_t weight, double z,
		       struct diff_ci *ci);
/*
 * The mean of h (exact: sum / count), +/- z standard errors; the variance
 * from the buckets' midpoints around that mean.
 */
void diff__mean_ci(const struct hist *h, uint64_t weight, double z, struct diff_ci *ci);
/* Welch's statistic (a - b) / sqrt(se_a^2 + se_b^2) from two mean intervals made with z. */
double diff__welch(const struct diff_ci *a, const struct diff_ci *b, double z);

#endif /* AGENTPROF_DIFF_STATS_H */
