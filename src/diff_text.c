// SPDX-License-Identifier: GPL-2.0-only
/* `agentprof diff` as text: a line per route, a line per metric beyond noise under it. */
#include <math.h>

#include "diff.h"
#include "table.h"

static void value(FILE *out, const struct diff_metric *m, double v)
{
	if (m->def->unit == DU_NS)
		fprintf(out, "%10.2f ms", v / 1e6);
	else
		fprintf(out, "%13.2f", v);
}

static void relative(FILE *out, double rel)
{
	if (isinf(rel))
		fprintf(out, "%8s", "from 0");
	else
		fprintf(out, "%+7.0f%%", rel * 100);
}

static void print_metric(FILE *out, const struct diff_metric *m)
{
	fprintf(out, "    %-28s", m->def->name);
	value(out, m, m->before.value);
	fputs(" ->", out);
	value(out, m, m->after.value);
	fputc(' ', out);
	relative(out, m->relative);
	fprintf(out, "  %s\n", diff__verdict_name(m->verdict));
}

static void print_row(FILE *out, const struct diff_row *r)
{
	char route[TABLE_ROUTE_W + 1], svc[11], cls[9];
	int k;

	fprintf(out, "%-7s %-10s %-6.6s %-*s %-8s %7llu %7llu %+10.2f\n",
		diff__verdict_name(r->verdict), table__fit(r->service, 10, svc), r->method,
		TABLE_ROUTE_W, table__fit(r->route, TABLE_ROUTE_W, route),
		table__fit(r->class[0] ? r->class : "-", 8, cls),
		(unsigned long long)r->requests_before, (unsigned long long)r->requests_after,
		r->impact_ns / 1e9);
	if (r->verdict == DV_NEW || r->verdict == DV_GONE)
		return;
	for (k = 0; k < DIFF_NMETRICS; k++)
		if (r->m[k].verdict != DV_SAME)
			print_metric(out, &r->m[k]);
}

void diff__print_text(const struct diff *d, FILE *out)
{
	size_t i;

	fprintf(out, "before: %s (%llu requests, %.1f s)\nafter:  %s (%llu requests, %.1f s)\n",
		d->before.path, (unsigned long long)d->before.requests, d->before.seconds,
		d->after.path, (unsigned long long)d->after.requests, d->after.seconds);
	fprintf(out,
		"flagged (worse, better): beyond noise (99.9%% intervals apart) and by more "
		"than %.0f%% and %.2f ms (round trips: %.1f)\n\n",
		d->o.threshold * 100, d->o.min_ns / 1e6, d->o.min_count);
	fprintf(out, "%-7s %-10s %-6s %-*s %-8s %7s %7s %10s\n", "VERDICT", "SERVICE", "METHOD",
		TABLE_ROUTE_W, "ROUTE", "CLASS", "REQS_B", "REQS_A", "IMPACT_S");
	for (i = 0; i < d->nrows; i++)
		print_row(out, &d->rows[i]);
	fprintf(out, "(IMPACT_S: requests after x change of the mean latency, in s;\n small: "
		     "beyond noise, within the threshold; same: within noise)\n");
	fprintf(out, "%zu worse, %zu better, %zu small changes, %zu same, %zu new, %zu gone\n",
		d->worse, d->better, d->changed, d->same, d->added, d->gone);
}
