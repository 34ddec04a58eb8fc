// SPDX-License-Identifier: GPL-2.0-only
/* `agentprof diff --html FILE`: the comparison as a page, each metric's two intervals drawn. */
#include <errno.h>
#include <math.h>

#include "diff.h"
#include "html.h"

#define CI_W 220

static void value(FILE *out, const struct diff_metric *m, double v)
{
	if (m->def->unit == DU_NS)
		fprintf(out, "%.2f ms", v / 1e6);
	else
		fprintf(out, "%.2f", v);
}

/* Both intervals on one axis: before grey, after coloured by the verdict. */
static void ci_plot(FILE *out, const struct diff_metric *m)
{
	double lo = fmin(m->before.lo, m->after.lo), hi = fmax(m->before.hi, m->after.hi);
	double span = hi > lo ? hi - lo : 1;
	const struct diff_ci *ci[2] = { &m->before, &m->after };
	const char *color[2] = { "#999", m->verdict == DV_WORSE	   ? "#b00020"
					 : m->verdict == DV_BETTER ? "#0a7d28"
								   : "#4e79a7" };
	int i;

	fprintf(out, "<svg class=\"ci\" width=\"%d\" height=\"18\" viewBox=\"0 0 %d 18\">", CI_W,
		CI_W);
	for (i = 0; i < 2; i++) {
		double x0 = 4 + (ci[i]->lo - lo) / span * (CI_W - 8);
		double x1 = 4 + (ci[i]->hi - lo) / span * (CI_W - 8);
		double xv = 4 + (ci[i]->value - lo) / span * (CI_W - 8);

		fprintf(out,
			"<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"%s\" "
			"stroke-width=\"3\"/><circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"%s\"/>",
			x0, fmax(x1, x0 + 1), 5 + 8 * i, 5 + 8 * i, color[i], xv, 5 + 8 * i,
			color[i]);
	}
	fputs("</svg>", out);
}

static void metric_row(FILE *out, const struct diff_metric *m)
{
	fprintf(out,
		"<tr class=\"metric\" data-metric=\"%s\" data-verdict=\"%s\"><td></td>"
		"<td class=\"l\" colspan=\"3\">%s</td><td>",
		m->def->key, diff__verdict_name(m->verdict), m->def->name);
	value(out, m, m->before.value);
	fputs("</td><td>", out);
	value(out, m, m->after.value);
	if (isinf(m->relative))
		fputs("</td><td>from 0", out);
	else
		fprintf(out, "</td><td>%+.0f%%", m->relative * 100);
	/* A quantile with too few requests beyond it is shown, never judged (diff.h). */
	fprintf(out, "</td><td class=\"l %s\">%s</td><td class=\"l\">",
		diff__verdict_name(m->verdict),
		m->judged ? diff__verdict_name(m->verdict) : "too few requests");
	ci_plot(out, m);
	fputs("</td></tr>\n", out);
}

static void row(FILE *out, const struct diff_row *r)
{
	int k;

	fprintf(out, "<tr class=\"row\" data-verdict=\"%s\" data-route=\"",
		diff__verdict_name(r->verdict));
	html__esc(out, r->route);
	fprintf(out, "\"><td class=\"l %s\">%s</td><td class=\"l\">",
		diff__verdict_name(r->verdict), diff__verdict_name(r->verdict));
	html__esc(out, r->method);
	fputs("</td><td class=\"l route\">", out);
	html__esc(out, r->route);
	fputs("</td><td class=\"l\">", out);
	html__esc(out, r->class[0] ? r->class : "-");
	fprintf(out, "</td><td>%llu</td><td>%llu</td><td>%+.2f s</td><td></td><td></td></tr>\n",
		(unsigned long long)r->requests_before, (unsigned long long)r->requests_after,
		r->impact_ns / 1e9);
	if (!r->a || !r->b)
		return;
	for (k = 0; k < DIFF_NMETRICS; k++)
		if (r->verdict != DV_SAME || k < 3)
			metric_row(out, &r->m[k]);
}

int diff__write_html(const struct diff *d, FILE *out)
{
	size_t i;

	html__begin(out, "agentprof diff");
	fputs("<h1>agentprof diff</h1><p class=\"note\">before: ", out);
	html__esc(out, d->before.path);
	fprintf(out,
		" (%llu requests, %.1f s) &middot; after: ", (unsigned long long)d->before.requests,
		d->before.seconds);
	html__esc(out, d->after.path);
	fprintf(out,
		" (%llu requests, %.1f s)</p><p id=\"summary\"><b class=\"worse\">%zu worse"
		"</b>, <b class=\"better\">%zu better</b>, %zu small changes, %zu same, %zu "
		"new, %zu gone</p>",
		(unsigned long long)d->after.requests, d->after.seconds, d->worse, d->better,
		d->changed, d->same, d->added, d->gone);
	fprintf(out,
		"<p class=\"note\">A metric is flagged when the 99.9%% intervals of the two "
		"profiles are apart (quantiles: order statistics of the histograms; means: "
		"Welch) and it moved by more than %.0f%% and %.2f ms (round trips: %.1f). "
		"The bars: before (grey) and after, each interval with its estimate. Impact: "
		"requests after &times; change of the mean latency.</p>",
		d->o.threshold * 100, d->o.min_ns / 1e6, d->o.min_count);
	fputs("<table id=\"diff-table\"><thead><tr><th class=\"l\">verdict</th><th class=\"l\">"
	      "method</th><th class=\"l\">route</th><th class=\"l\">class</th><th>before</th>"
	      "<th>after</th><th>impact / change</th><th class=\"l\"></th><th class=\"l\">"
	      "intervals</th></tr></thead><tbody>\n",
	      out);
	for (i = 0; i < d->nrows; i++)
		row(out, &d->rows[i]);
	fputs("</tbody></table>\n", out);
	html__end(out);
	return ferror(out) ? -EIO : 0;
}
