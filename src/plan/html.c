// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "plan/output.h"

#define W 560
#define H 320
#define PAD 50

struct series {
	const char *name, *color;
	const double *x, *y;
	int n;
	bool dots; /* measured points, not a line */
};

static void html_escaped(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		default: fputc(*s, out);
		}
	}
}

static void bounds(const struct series *s, int ns, double hline, double *xmax, double *ymax)
{
	int i, k;

	*xmax = *ymax = 0;
	for (k = 0; k < ns; k++)
		for (i = 0; i < s[k].n; i++) {
			if (isfinite(s[k].x[i]))
				*xmax = fmax(*xmax, s[k].x[i]);
			if (isfinite(s[k].y[i]))
				*ymax = fmax(*ymax, s[k].y[i]);
		}
	*ymax = fmax(*ymax, hline) * 1.1;
	if (*xmax <= 0)
		*xmax = 1;
	if (*ymax <= 0)
		*ymax = 1;
}

/* One chart as inline SVG: series as lines or dots, an optional horizontal line (the SLO). */
static void chart(FILE *out, const char *title, const char *xl, const char *yl,
		  const struct series *s, int ns, double hline, double ycap)
{
	double xmax, ymax, px, py;
	int i, k, t;

	bounds(s, ns, hline, &xmax, &ymax);
	if (ycap > 0 && ymax > ycap)
		ymax = ycap;
#define SX(v) (PAD + (v) / xmax * (W - 2 * PAD))
#define SY(v) (H - PAD - fmin(v, ymax) / ymax * (H - 2 * PAD))
	fprintf(out, "<figure><figcaption>");
	html_escaped(out, title);
	fprintf(out, "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		     "font-size=\"11\" font-family=\"sans-serif\">\n", W, H);
	fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>"
		     "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#000\"/>\n",
		PAD, H - PAD, W - PAD, H - PAD, PAD, PAD, PAD, H - PAD);
	for (t = 0; t <= 4; t++) {
		fprintf(out, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>", SX(xmax * t / 4),
			H - PAD + 14, xmax * t / 4);
		fprintf(out, "<text x=\"%d\" y=\"%.0f\" text-anchor=\"end\">%.3g</text>\n", PAD - 4,
			SY(ymax * t / 4) + 4, ymax * t / 4);
	}
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%s</text>", W / 2, H - 12, xl);
	fprintf(out, "<text x=\"12\" y=\"%d\" transform=\"rotate(-90 12 %d)\" text-anchor=\"middle\">%s"
		     "</text>\n", H / 2, H / 2, yl);
	if (hline > 0)
		fprintf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#c00\" "
			     "stroke-dasharray=\"4 3\"/><text x=\"%d\" y=\"%.1f\" fill=\"#c00\">SLO</text>\n",
			PAD, SY(hline), W - PAD, SY(hline), W - PAD + 2, SY(hline) + 4);
	for (k = 0; k < ns; k++) {
		if (!s[k].dots)
			fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
				s[k].color);
		for (i = 0; i < s[k].n; i++) {
			if (!isfinite(s[k].y[i]) || s[k].y[i] < 0)
				continue;
			px = SX(s[k].x[i]);
			py = SY(s[k].y[i]);
			if (s[k].dots)
				fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", px, py,
					s[k].color);
			else
				fprintf(out, "%.1f,%.1f ", px, py);
		}
		if (!s[k].dots)
			fprintf(out, "\"/>\n");
		fprintf(out, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s %s</text>\n", PAD + 8, PAD + 12 * k,
			s[k].color, s[k].dots ? "\xe2\x97\x8f" : "\xe2\x80\x94", s[k].name);
	}
	fprintf(out, "</svg></figure>\n");
#undef SX
#undef SY
}

/* Columns of a curve, for chart(). */
struct cols {
	double *load, *x, *p95, *mean;
};

static int columns(const struct plan_point *p, int n, struct cols *c)
{
	int i;

	c->load = calloc(n + 1, sizeof(double));
	c->x = calloc(n + 1, sizeof(double));
	c->p95 = calloc(n + 1, sizeof(double));
	c->mean = calloc(n + 1, sizeof(double));
	if (!c->load || !c->x || !c->p95 || !c->mean)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		c->load[i] = p[i].load;
		c->x[i] = p[i].x;
		c->p95[i] = p[i].p95;
		c->mean[i] = p[i].r;
	}
	return 0;
}

static void cols_free(struct cols *c)
{
	free(c->load);
	free(c->x);
	free(c->p95);
	free(c->mean);
}

static void summary_text(const struct plan_output *o, FILE *out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	if (!mem)
		return;
	plan__write_text(o, mem);
	fclose(mem);
	fprintf(out, "<pre>");
	html_escaped(out, buf);
	fprintf(out, "</pre>\n");
	free(buf);
}

int plan__write_html(const struct plan_output *o, FILE *out)
{
	const struct plan_model *m = o->m;
	struct cols c = {0}, op = {0}, ms = {0};
	struct series s[4];
	double slo = m->opts->slo_p95_s;
	int i, err;

	err = columns(m->closed, m->nclosed, &c) ?: columns(m->open, m->nopen, &op);
	if (!err) {
		struct plan_point *pts = calloc(o->nmeas + 1, sizeof(*pts));

		for (i = 0; pts && i < o->nmeas; i++)
			pts[i] = (struct plan_point){.load = o->meas[i].users, .x = o->meas[i].x,
						     .p95 = o->meas[i].p95};
		err = pts ? columns(pts, o->nmeas, &ms) : -ENOMEM;
		free(pts);
	}
	if (err)
		goto cleanup;
	fprintf(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>agentprof plan: ");
	html_escaped(out, m->service);
	fprintf(out, "</title><style>body{font-family:sans-serif;max-width:1200px;margin:1em auto}"
		     "figure{display:inline-block;margin:0 1em 1em 0}figcaption{font-weight:bold}"
		     "pre{background:#f6f6f6;padding:1em;overflow-x:auto}</style></head><body>\n");
	fprintf(out, "<h1>agentprof plan: ");
	html_escaped(out, m->service);
	fprintf(out, "</h1>\n");
	if (m->nclosed) {
		s[0] = (struct series){"predicted", "#1f5fbf", c.load, c.x, m->nclosed, false};
		s[1] = (struct series){"measured", "#d9480f", ms.load, ms.x, o->nmeas, true};
		chart(out, "Throughput against users (closed population)", "users", "requests/s", s,
		      o->nmeas ? 2 : 1, 0, 0);
		s[0] = (struct series){"predicted p95", "#1f5fbf", c.load, c.p95, m->nclosed, false};
		s[1] = (struct series){"predicted mean", "#7fa7e0", c.load, c.mean, m->nclosed, false};
		s[2] = (struct series){"measured p95", "#d9480f", ms.load, ms.p95, o->nmeas, true};
		chart(out, "Latency against users (closed population)", "users", "seconds", s,
		      o->nmeas ? 3 : 2, slo, slo > 0 ? 4 * slo : 0);
	}
	if (m->nopen) {
		s[0] = (struct series){"predicted p95", "#1f5fbf", op.x, op.p95, m->nopen, false};
		s[1] = (struct series){"predicted mean", "#7fa7e0", op.x, op.mean, m->nopen, false};
		chart(out, "Latency against load (open arrivals)", "requests/s", "seconds", s, 2, slo,
		      slo > 0 ? 4 * slo : 0);
	}
	summary_text(o, out);
	fprintf(out, "</body></html>\n");
	err = ferror(out) ? -EIO : 0;
cleanup:
	cols_free(&c);
	cols_free(&op);
	cols_free(&ms);
	return err;
}
