// SPDX-License-Identifier: GPL-2.0-only
#include <stdbool.h>
#include <stdio.h>

#include "breakdown.h"

static const char *const names[BD__COUNT] = {
	[BD_CPU] = "CPU",	[BD_RUNQ] = "run queue",
	[BD_PG] = "PostgreSQL", [BD_UPSTREAM] = "upstreams",
	[BD_LOCK] = "locks",	[BD_DISK] = "disk",
	[BD_OTHER] = "other",
};

static const char *const shorts[BD__COUNT] = {
	[BD_CPU] = "cpu",   [BD_RUNQ] = "runq", [BD_PG] = "pg",	     [BD_UPSTREAM] = "ups",
	[BD_LOCK] = "lock", [BD_DISK] = "disk", [BD_OTHER] = "rest",
};

const char *breakdown__name(enum bd_part part)
{
	return part < BD__COUNT ? names[part] : "?";
}

const char *breakdown__short(enum bd_part part)
{
	return part < BD__COUNT ? shorts[part] : "?";
}

void breakdown__of(const struct profile_group *g, struct breakdown *b)
{
	static const enum profile_metric measured[BD_OTHER] = {
		[BD_CPU] = PM_CPU,	    [BD_RUNQ] = PM_RUNQ,
		[BD_PG] = PM_PG_TIME,	    [BD_UPSTREAM] = PM_UPSTREAM_WAIT,
		[BD_LOCK] = PM_OFFCPU_LOCK, [BD_DISK] = PM_OFFCPU_DISK,
	};
	double sum = 0;
	int i;

	b->latency_ns = hist__mean(&g->h[PM_DURATION]);
	for (i = 0; i < BD_OTHER; i++) {
		b->mean_ns[i] = hist__mean(&g->h[measured[i]]);
		sum += b->mean_ns[i];
	}
	b->mean_ns[BD_OTHER] = sum < b->latency_ns ? b->latency_ns - sum : 0;
	b->overlap_ns = sum > b->latency_ns ? sum - b->latency_ns : 0;
}

char *breakdown__top(const struct breakdown *b, int max, double min_share, char *out, size_t sz)
{
	double total = b->latency_ns + b->overlap_ns;
	bool used[BD__COUNT] = {};
	size_t len = 0;
	int k, i, best;

	out[0] = '\0';
	if (total <= 0)
		return out;
	for (k = 0; k < max; k++) {
		best = -1;
		for (i = 0; i < BD__COUNT; i++)
			if (!used[i] && (best < 0 || b->mean_ns[i] > b->mean_ns[best]))
				best = i;
		if (best < 0 || b->mean_ns[best] / total < min_share)
			break;
		used[best] = true;
		len += snprintf(out + len, len < sz ? sz - len : 0, "%s%s %.0f%%", k ? " " : "",
				shorts[best], 100.0 * b->mean_ns[best] / total);
	}
	return out;
}
