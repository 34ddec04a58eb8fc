/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Constant-memory log-linear histogram (HDR-histogram style) of uint64 values: nanoseconds,
 * bytes, counts. Values below 2^HIST_SUB_BITS are exact; above, each power of two is split into
 * 2^HIST_SUB_BITS equal sub-buckets, so a bucket is at most 1/32 of its lower bound wide.
 */
#ifndef AGENTPROF_HIST_H
#define AGENTPROF_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 5 /* 32 linear sub-buckets per power of two: relative error <= 1/32 */
#define HIST_BUCKETS (((64 - HIST_SUB_BITS) + 1) << HIST_SUB_BITS)

/*
 * min and max are 0 while count is 0. sum saturates at UINT64_MAX rather than wrapping, so the
 * mean of values that large is only a lower bound; count itself is never expected to wrap.
 */
struct hist {
	uint64_t count, sum, min, max;
	uint64_t counts[HIST_BUCKETS];
};

void hist__init(struct hist *h);
void hist__add(struct hist *h, uint64_t v);
void hist__add_n(struct hist *h, uint64_t v, uint64_t n);
void hist__merge(struct hist *dst, const struct hist *src);
/*
 * q in [0,1] (clamped; NaN counts as 0); 0 when empty. The value is the midpoint of the bucket
 * holding the rank ceil(q * count), clamped to [min, max]; q = 1 -> max exactly, q = 0 -> min.
 */
uint64_t hist__quantile(const struct hist *h, double q);
double hist__mean(const struct hist *h);
size_t hist__index(uint64_t v);	  /* bucket index; values < 2^HIST_SUB_BITS are exact */
uint64_t hist__lower(size_t idx); /* smallest value in bucket idx (idx clamped to the last) */
uint64_t hist__upper(size_t idx); /* largest value in bucket idx (inclusive) */

#endif /* AGENTPROF_HIST_H */
