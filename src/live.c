// SPDX-License-Identifier: GPL-2.0-only
#include <stdlib.h>
#include <time.h>

#include "live.h"
#include "profile.h"
#include "table.h"

/* ANSI: cursor home, then clear to the end of the screen; no terminfo needed. */
#define LIVE_HOME_CLEAR "\033[H\033[J"

struct live {
	FILE *out;
	bool tty;
	uint64_t sample_every;
	struct profile *cur; /* requests finished in the current interval */
	uint64_t started_ns; /* when the current interval started; 0: not yet */
	uint64_t total;	     /* requests since the start */
};

static struct profile *interval_profile(uint64_t sample_every)
{
	struct profile *p = profile__new();

	if (p)
		profile__run(p)->sample_every = sample_every;
	return p;
}

struct live *live__new(FILE *out, bool tty, uint64_t sample_every)
{
	struct live *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->out = out;
	l->tty = tty;
	l->sample_every = sample_every ?: 1;
	l->cur = interval_profile(l->sample_every);
	if (!l->cur) {
		free(l);
		return NULL;
	}
	return l;
}

int live__add(struct live *l, const struct request *req)
{
	l->total += l->sample_every;
	return profile__add(l->cur, req);
}

static void clock_str(char *buf, size_t sz)
{
	time_t t = time(NULL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, sz, "%H:%M:%S", &tm))
		snprintf(buf, sz, "?");
}

static void print_rows(struct live *l, const struct profile_group **v, size_t n, double secs,
		       const char *when)
{
	char svc[16], route[TABLE_ROUTE_W + 1], cls[9];
	const struct profile_group *g;
	size_t i;

	for (i = 0; i < n; i++) {
		g = v[i];
		if (!l->tty)
			fprintf(l->out, "%s ", when);
		fprintf(l->out, "%-15s %-6.6s %-*s %-8s %8.1f %9.2f %9.2f %9.2f\n",
			table__fit(g->service, 15, svc), g->method, TABLE_ROUTE_W,
			table__fit(g->route, TABLE_ROUTE_W, route),
			table__fit(g->class[0] ? g->class : "-", 8, cls), g->requests / secs,
			profile__q(g, PM_DURATION, 0.50) / 1e6,
			profile__q(g, PM_DURATION, 0.95) / 1e6, hist__mean(&g->h[PM_CPU]) / 1e6);
	}
}

static void print_interval(struct live *l, double secs)
{
	const struct profile_group **v;
	char when[16];
	size_t n;

	clock_str(when, sizeof(when));
	v = profile__sorted(l->cur, &n);
	if (l->tty)
		fprintf(l->out,
			LIVE_HOME_CLEAR
			"agentprof record --live  %s  last %.1f s: %zu "
			"routes; %llu requests since the start (Ctrl-C: stop, full table)\n\n",
			when, secs, n, (unsigned long long)l->total);
	if (l->tty || n)
		fprintf(l->out, "%s%-15s %-6s %-*s %-8s %8s %9s %9s %9s\n",
			l->tty ? "" : "TIME     ", "SERVICE", "METHOD", TABLE_ROUTE_W, "ROUTE",
			"CLASS", "REQ/S", "LAT_P50", "LAT_P95", "CPU/REQ");
	if (!n && !l->tty)
		fprintf(l->out, "%s no requests in the last %.1f s\n", when, secs);
	print_rows(l, v, n, secs, when);
	if (l->tty)
		fprintf(l->out, "\n(times in ms over the last interval; CPU/REQ: mean on-CPU time "
				"per request)\n");
	fflush(l->out);
}

void live__tick(struct live *l, uint64_t now_ns)
{
	struct profile *next;

	if (!l->started_ns) {
		l->started_ns = now_ns;
		return;
	}
	if (now_ns - l->started_ns < LIVE_INTERVAL_NS)
		return;
	print_interval(l, (now_ns - l->started_ns) / 1e9);
	l->started_ns = now_ns;
	/* Keep the old interval if no memory is left for a new one: it then spans two. */
	next = interval_profile(l->sample_every);
	if (!next)
		return;
	profile__free(l->cur);
	l->cur = next;
}

void live__free(struct live *l)
{
	if (!l)
		return;
	profile__free(l->cur);
	free(l);
}
