// SPDX-License-Identifier: GPL-2.0-only
#include <string.h>

#include "breakdown.h"
#include "table.h"

static double ms(double ns)
{
	return ns / 1e6;
}

const char *table__fit(const char *s, int w, char *out)
{
	size_t len = strlen(s), head, tail;

	if (len <= (size_t)w)
		return s;
	head = (w - 2) / 2;
	tail = w - 2 - head;
	memcpy(out, s, head);
	memcpy(out + head, "..", 2);
	memcpy(out + head + 2, s + len - tail, tail);
	out[w] = '\0';
	return out;
}

/*
 * What people read first, within 120 columns: counts, latency, CPU and where
 * the time goes. WHERE holds at most three parts of at least 5%, so at most
 * one of them has three digits: "runq 33% lock 33% disk 33%" is the widest.
 */
#define WHERE_W 26

static void print_narrow(const struct profile_group **v, size_t n, FILE *out)
{
	char svc[11], route[TABLE_ROUTE_W + 1], cls[9], top[64];
	const struct profile_group *g;
	struct breakdown b;
	size_t i;

	fprintf(out, "%-10s %-6s %-*s %-8s %7s %7s %7s %7s %7s  %s\n", "SERVICE", "METHOD",
		TABLE_ROUTE_W, "ROUTE", "CLASS", "REQS", "LAT_P50", "LAT_P95", "CPU_P50", "CPU_P95",
		"WHERE THE TIME GOES");
	for (i = 0; i < n; i++) {
		g = v[i];
		breakdown__of(g, &b);
		fprintf(out, "%-10s %-6.6s %-*s %-8s %7llu %7.2f %7.2f %7.2f %7.2f  %.*s\n",
			table__fit(g->service, 10, svc), g->method, TABLE_ROUTE_W,
			table__fit(g->route, TABLE_ROUTE_W, route),
			table__fit(g->class[0] ? g->class : "-", 8, cls),
			(unsigned long long)g->requests, ms(profile__q(g, PM_DURATION, 0.5)),
			ms(profile__q(g, PM_DURATION, 0.95)), ms(profile__q(g, PM_CPU, 0.5)),
			ms(profile__q(g, PM_CPU, 0.95)), WHERE_W,
			breakdown__top(&b, 3, 0.05, top, sizeof(top)));
	}
	fprintf(out,
		"(times in ms; LAT: first request byte read to last response byte written; "
		"CPU: on a CPU, per request;\n WHERE: shares of the mean latency: cpu, runq "
		"(waiting for a CPU), pg (PostgreSQL round trips), ups (upstream\n replies), "
		"lock, disk, rest (sleeps, an event loop's other work); --wide: every column)\n");
}

static void print_wide(const struct profile_group **v, size_t n, FILE *out)
{
	const struct profile_group *g;
	size_t i;

	fprintf(out,
		"%-12s %-6s %-34s %-9s %6s %8s %8s %8s %8s %8s %8s %8s %8s %8s %6s %6s %6s %8s "
		"%8s %8s %8s\n",
		"SERVICE", "METHOD", "ROUTE", "CLASS", "REQS", "LAT_P50", "LAT_P95", "LAT_P99",
		"CPU_P50", "CPU_P95", "CPU_P99", "RUNQ_P95", "OFFC_P50", "UPS_P50", "PG_RT",
		"RT_P95", "RT_MAX", "PG_P50", "LOCK_P95", "DISK_P95", "FLT_MB");
	for (i = 0; i < n; i++) {
		g = v[i];
		fprintf(out,
			"%-12s %-6s %-34s %-9s %6llu %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f "
			"%8.2f "
			"%8.2f %6.0f %6.0f %6.0f %8.2f %8.2f %8.2f %8.2f\n",
			g->service, g->method, g->route, g->class[0] ? g->class : "-",
			(unsigned long long)g->requests, ms(profile__q(g, PM_DURATION, 0.5)),
			ms(profile__q(g, PM_DURATION, 0.95)), ms(profile__q(g, PM_DURATION, 0.99)),
			ms(profile__q(g, PM_CPU, 0.5)), ms(profile__q(g, PM_CPU, 0.95)),
			ms(profile__q(g, PM_CPU, 0.99)), ms(profile__q(g, PM_RUNQ, 0.95)),
			ms(profile__q(g, PM_OFFCPU, 0.5)), ms(profile__q(g, PM_UPSTREAM_WAIT, 0.5)),
			profile__q(g, PM_PG_ROUND_TRIPS, 0.5),
			profile__q(g, PM_PG_ROUND_TRIPS, 0.95),
			profile__q(g, PM_PG_ROUND_TRIPS, 1.0), ms(profile__q(g, PM_PG_TIME, 0.5)),
			ms(profile__q(g, PM_OFFCPU_LOCK, 0.95)),
			ms(profile__q(g, PM_OFFCPU_DISK, 0.95)),
			profile__q(g, PM_MINOR_FAULTS, 0.5) * 4096 / 1048576.0);
	}
	fprintf(out,
		"(times in ms, p50 unless named; LAT: first request byte read to last response "
		"byte written; RUNQ: waiting for a CPU; OFFC: blocked; UPS: waiting on "
		"upstreams; PG_RT, RT_P95, RT_MAX: PostgreSQL round trips; PG: time in them; "
		"LOCK, DISK: blocked in futex(), in file I/O; FLT_MB: page faults x 4 KiB)\n");
}

void table__print(struct profile *p, FILE *out, bool wide)
{
	const struct profile_group **v;
	size_t n;

	v = profile__sorted(p, &n);
	if (!n) {
		fprintf(out, "no HTTP requests were seen\n");
		return;
	}
	if (wide)
		print_wide(v, n, out);
	else
		print_narrow(v, n, out);
}
