// SPDX-License-Identifier: GPL-2.0-only
#include <math.h>

#include "html.h"

#define PLOT_W 520
#define PLOT_H 130
#define PLOT_BINS 48
#define PLOT_PAD 28

void html__esc(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '&':
			fputs("&amp;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		default:
			fputc(*s, out);
		}
	}
}

static const char style[] =
	"*{box-sizing:border-box}"
	"body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;"
	"padding:16px 24px;max-width:1240px;color:#222;background:#fff}"
	"h1{font-size:22px;margin:4px 0 2px}h2{font-size:18px;margin:28px 0 8px;"
	"border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px}"
	"p.note,.note{color:#666;font-size:12px}"
	"table{border-collapse:collapse;width:100%;table-layout:auto}"
	"th,td{padding:3px 6px;border-bottom:1px solid #eee;text-align:right;"
	"vertical-align:top}"
	"th{background:#f6f6f6;font-weight:600;white-space:nowrap}"
	"td.l,th.l{text-align:left}td.route{word-break:break-all;max-width:340px}"
	"td.stmt{text-align:left;font-family:ui-monospace,monospace;font-size:12px;"
	"word-break:break-all}"
	".worse{color:#b00020;font-weight:600}.better{color:#0a7d28;font-weight:600}"
	".legend span{display:inline-block;margin-right:12px;font-size:12px}"
	".legend i{display:inline-block;width:10px;height:10px;margin-right:4px}"
	".group{border:1px solid #e4e4e4;border-radius:6px;padding:8px 12px;margin:10px 0}"
	".plots{display:flex;flex-wrap:wrap;gap:16px}.plots figure{margin:0}"
	"figcaption{font-size:12px;color:#444}"
	"svg{display:block;max-width:100%;height:auto}"
	"svg text{font:10px system-ui,sans-serif;fill:#444}"
	".kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:2px 16px}"
	".kv div span{color:#666}";

void html__begin(FILE *out, const char *title)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
	      "<title>",
	      out);
	html__esc(out, title);
	fprintf(out, "</title><style>%s</style></head>\n<body>\n", style);
}

void html__end(FILE *out)
{
	fputs("</body></html>\n", out);
}

/* Tableau 10: told apart by most colour-blind readers. */
static const char *const part_colors[] = { "#4e79a7", "#f28e2b", "#59a14f", "#e15759",
					   "#b07aa1", "#9c755f", "#bab0ac" };
static const char *const peer_colors[] = { "#e15759", "#ff9d9a", "#edc948", "#76b7b2",
					   "#d37295", "#fabfd2", "#8cd17d", "#499894" };

const char *html__part_color(int part)
{
	return part >= 0 && part < 7 ? part_colors[part] : "#999";
}

const char *html__peer_color(int i)
{
	return peer_colors[(unsigned int)i % 8];
}

void html__stacked_bar(FILE *out, const struct html_bar_part *parts, int n, double full, int width)
{
	double x = 0, w;
	int i;

	fprintf(out, "<svg class=\"bar\" width=\"%d\" height=\"16\" viewBox=\"0 0 %d 16\">", width,
		width);
	for (i = 0; i < n && full > 0; i++) {
		w = parts[i].value / full * width;
		if (w <= 0)
			continue;
		fprintf(out,
			"<rect x=\"%.2f\" y=\"1\" width=\"%.2f\" height=\"14\" fill=\"%s\">"
			"<title>",
			x, w, parts[i].color);
		html__esc(out, parts[i].label);
		fprintf(out, ": %.2f ms</title></rect>", parts[i].value / 1e6);
		x += w;
	}
	fputs("</svg>", out);
}

/* Log-spaced bins between the smallest and largest value h holds. */
struct plot_bins {
	double lo, hi; /* log10 of the range, hi > lo */
	uint64_t count[PLOT_BINS];
	uint64_t max;
};

static double plot_x(const struct plot_bins *b, double v)
{
	double lv = log10(v < 1 ? 1 : v);

	return PLOT_PAD + (lv - b->lo) / (b->hi - b->lo) * (PLOT_W - 2 * PLOT_PAD);
}

static void plot_bin(struct plot_bins *b, const struct hist *h)
{
	size_t i;
	double mid;
	int k;

	b->lo = log10(h->min < 1 ? 1 : (double)h->min);
	b->hi = log10(h->max < 1 ? 1 : (double)h->max);
	if (b->hi - b->lo < 0.3) { /* a narrow range still gets a readable axis */
		b->lo -= 0.15;
		b->hi += 0.15;
	}
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (!h->counts[i])
			continue;
		mid = (hist__lower(i) + (double)hist__upper(i)) / 2;
		k = (int)((log10(mid < 1 ? 1 : mid) - b->lo) / (b->hi - b->lo) * PLOT_BINS);
		k = k < 0 ? 0 : k >= PLOT_BINS ? PLOT_BINS - 1 : k;
		b->count[k] += h->counts[i];
		if (b->count[k] > b->max)
			b->max = b->count[k];
	}
}

static void plot_value(FILE *out, double v, int unit_ns)
{
	if (unit_ns)
		fprintf(out, "%.*f ms", v >= 1e8 ? 0 : v >= 1e6 ? 1 : 3, v / 1e6);
	else
		fprintf(out, "%.0f", v);
}

static void plot_marker(FILE *out, const struct plot_bins *b, const struct hist *h, double q,
			const char *name, int row, int unit_ns)
{
	double v = (double)hist__quantile(h, q), x = plot_x(b, v);

	/* Labels near the right edge end at their line, so none is cut off. */
	fprintf(out,
		"<line x1=\"%.1f\" x2=\"%.1f\" y1=\"12\" y2=\"%d\" stroke=\"#b00020\" "
		"stroke-dasharray=\"3,2\"/><text class=\"mark\" x=\"%.1f\" y=\"%d\" "
		"text-anchor=\"%s\">%s ",
		x, x, PLOT_H - 20, x, 10 * row, x > PLOT_W - 70 ? "end" : "middle", name);
	plot_value(out, v, unit_ns);
	fputs("</text>", out);
}

void html__hist_plot(FILE *out, const struct hist *h, int unit_ns, const char *id)
{
	double bw = (PLOT_W - 2.0 * PLOT_PAD) / PLOT_BINS, bh, x, tick;
	struct plot_bins b = {};
	int k;

	fprintf(out,
		"<svg id=\"%s\" class=\"plot\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
		id, PLOT_W, PLOT_H, PLOT_W, PLOT_H);
	if (!h->count) {
		fprintf(out, "<text x=\"%d\" y=\"%d\">no data</text></svg>", PLOT_PAD, PLOT_H / 2);
		return;
	}
	plot_bin(&b, h);
	for (k = 0; k < PLOT_BINS; k++) {
		if (!b.count[k])
			continue;
		bh = (double)b.count[k] / b.max * (PLOT_H - 46);
		fprintf(out,
			"<rect class=\"bin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
			"fill=\"#4e79a7\"><title>%llu</title></rect>",
			PLOT_PAD + k * bw, PLOT_H - 20 - bh, bw - 0.5, bh,
			(unsigned long long)b.count[k]);
	}
	fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#888\"/>", PLOT_PAD,
		PLOT_W - PLOT_PAD, PLOT_H - 20, PLOT_H - 20);
	/* Ticks at powers of ten and their halves within the range, on the log axis. */
	for (tick = pow(10, floor(b.lo)); tick <= pow(10, b.hi); tick *= 10) {
		double t[2] = { tick, tick * 3 };
		int j;

		for (j = 0; j < 2; j++) {
			if (log10(t[j]) < b.lo || log10(t[j]) > b.hi)
				continue;
			x = plot_x(&b, t[j]);
			fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x,
				PLOT_H - 6);
			plot_value(out, t[j], unit_ns);
			fputs("</text>", out);
		}
	}
	plot_marker(out, &b, h, 0.50, "p50", 1, unit_ns);
	plot_marker(out, &b, h, 0.95, "p95", 2, unit_ns);
	plot_marker(out, &b, h, 0.99, "p99", 3, unit_ns);
	fputs("</svg>", out);
}
