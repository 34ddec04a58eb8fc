/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What every HTML page agentprof writes shares: escaping, the page with its
 * inline style sheet (no script, no network: it opens from disk), the colours
 * of where the time goes, and inline SVG plots.
 */
#ifndef AGENTPROF_HTML_H
#define AGENTPROF_HTML_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"

void html__esc(FILE *out, const char *s);
void html__begin(FILE *out, const char *title);
void html__end(FILE *out);
/* The colour of a part of the time (breakdown.h's enum bd_part); peers get shades. */
const char *html__part_color(int part);
const char *html__peer_color(int i);

struct html_bar_part {
	const char *label;
	const char *color;
	double value;
};

/*
 * One horizontal stacked bar, scaled so that full is width px; each part
 * gets a <title> with its label and value in ms.
 */
void html__stacked_bar(FILE *out, const struct html_bar_part *parts, int n, double full, int width);
/*
 * The distribution in h drawn as bars over log-spaced bins, with p50, p95
 * and p99 marked; unit_ns: values are nanoseconds (axis in ms), else counts.
 * id names the <svg> for tests.
 */
void html__hist_plot(FILE *out, const struct hist *h, int unit_ns, const char *id);

#endif /* AGENTPROF_HTML_H */
