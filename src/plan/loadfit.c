// SPDX-License-Identifier: GPL-2.0-only
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loadfit.h"

struct window {
	double u, d, w; /* busy fraction, CPU s per request, weight (arrivals) */
};

/*
 * Windows of LOADFIT_WINDOW intervals whose two ends were both read: CPU
 * used between them over the arrivals in them. A difference that is
 * negative or more than every CPU of the host could give means the set of
 * processes changed (a worker started or exited): the window is left out.
 */
static int windows(const struct service *svc, double interval_s, double cores,
		   struct window *out, int max)
{
	const struct service_sample *a, *b;
	double cpu_s, span_s, arrivals;
	int n = 0, host = svc->cgroup.host_cpus > 0 ? svc->cgroup.host_cpus : 1024;
	size_t i, j;

	for (i = 0; i + LOADFIT_WINDOW < svc->nsamples && n < max; i += LOADFIT_WINDOW) {
		a = &svc->samples[i];
		b = &svc->samples[i + LOADFIT_WINDOW];
		if (!a->measured || !b->measured || !a->cpu_ns || b->cpu_ns < a->cpu_ns)
			continue;
		span_s = LOADFIT_WINDOW * interval_s;
		cpu_s = (b->cpu_ns - a->cpu_ns) / 1e9;
		if (cpu_s > span_s * host)
			continue;
		/* The CPU read at a's end and b's end is spent in the intervals after a. */
		arrivals = 0;
		for (j = i + 1; j <= i + LOADFIT_WINDOW; j++)
			arrivals += svc->samples[j].arrivals;
		if (arrivals < LOADFIT_MIN_ARRIVALS)
			continue;
		out[n].u = fmin(1, cpu_s / (span_s * cores));
		out[n].d = cpu_s / arrivals;
		out[n].w = arrivals;
		n++;
	}
	return n;
}

/* Weighted least squares of d on x = 1 - u. */
static void regress(const struct window *v, int n, struct loadfit *fit)
{
	double sw = 0, sx = 0, sd = 0, sxx = 0, sxd = 0, mx, md, slope, res = 0, e;
	int i;

	for (i = 0; i < n; i++) {
		sw += v[i].w;
		sx += v[i].w * (1 - v[i].u);
		sd += v[i].w * v[i].d;
	}
	mx = sx / sw;
	md = sd / sw;
	for (i = 0; i < n; i++) {
		sxx += v[i].w * (1 - v[i].u - mx) * (1 - v[i].u - mx);
		sxd += v[i].w * (1 - v[i].u - mx) * (v[i].d - md);
	}
	slope = sxx > 0 ? sxd / sxx : 0;
	for (i = 0; i < n; i++) {
		e = v[i].d - (md + slope * (1 - v[i].u - mx));
		res += v[i].w * e * e;
	}
	fit->idle = slope;
	fit->sat = md - slope * mx;
	fit->u_mean = 1 - mx;
	/* Weights are counts: the residual variance per unit weight, n - 2 degrees of freedom. */
	fit->sigma = n > 2 ? sqrt(res / (n - 2)) : INFINITY;
	fit->idle_se = n > 2 && sxx > 0 ? fit->sigma / sqrt(sxx) : INFINITY;
}

/*
 * Drops the windows more than LOADFIT_OUTLIER standard errors off the line
 * (a load test's ramp: a burst of cheap logins arrives, their work comes
 * later); the number left.
 */
static int trim(struct window *v, int n, const struct loadfit *fit)
{
	double e;
	int i, k = 0;

	if (!isfinite(fit->sigma) || fit->sigma <= 0)
		return n;
	for (i = 0; i < n; i++) {
		e = v[i].d - (fit->sat + fit->idle * (1 - v[i].u));
		if (fabs(e) * sqrt(v[i].w) <= LOADFIT_OUTLIER * fit->sigma)
			v[k++] = v[i];
	}
	return k;
}

void loadfit__fit(const struct service *svc, double interval_s, double cores,
		  struct loadfit *fit)
{
	struct window v[512];
	int i, n;

	memset(fit, 0, sizeof(*fit));
	if (!svc || interval_s <= 0 || cores <= 0) {
		snprintf(fit->why, sizeof(fit->why), "the profile has no samples of the service");
		return;
	}
	fit->window_s = LOADFIT_WINDOW * interval_s;
	n = windows(svc, interval_s, cores, v, (int)(sizeof(v) / sizeof(v[0])));
	fit->windows = n;
	if (n < LOADFIT_MIN_WINDOWS) {
		snprintf(fit->why, sizeof(fit->why), "%d windows of %.0f s with the CPU time read and "
			 "%d+ arrivals, %d needed", n, fit->window_s,
			 LOADFIT_MIN_ARRIVALS, LOADFIT_MIN_WINDOWS);
		return;
	}
	regress(v, n, fit);
	i = trim(v, n, fit);
	if (i < n && i >= LOADFIT_MIN_WINDOWS) {
		fit->dropped = n - i;
		fit->windows = n = i;
		regress(v, n, fit);
	}
	fit->u_lo = fit->u_hi = v[0].u;
	for (i = 1; i < n; i++) {
		fit->u_lo = fmin(fit->u_lo, v[i].u);
		fit->u_hi = fmax(fit->u_hi, v[i].u);
	}
	if (fit->u_hi - fit->u_lo < LOADFIT_MIN_SPAN)
		snprintf(fit->why, sizeof(fit->why), "the recording's load barely varied (CPU "
			 "%.0f-%.0f%% busy)", 100 * fit->u_lo, 100 * fit->u_hi);
	else if (!(fit->idle > 2 * fit->idle_se))
		snprintf(fit->why, sizeof(fit->why), "no fall of CPU per request with load stands "
			 "out of the noise (%.2f +- %.2f ms per idle CPU)", fit->idle * 1e3,
			 fit->idle_se * 1e3);
	else if (!(fit->sat > 0))
		snprintf(fit->why, sizeof(fit->why), "the fit leaves a saturated CPU nothing to do "
			 "(%.2f ms per request): not trusted", fit->sat * 1e3);
	else
		fit->fitted = true;
}

double loadfit__factor(const struct loadfit *fit, double u)
{
	double at_mean;

	if (!fit->fitted)
		return 1;
	at_mean = fit->sat + fit->idle * (1 - fit->u_mean);
	return (fit->sat + fit->idle * (1 - fmin(1, fmax(0, u)))) / at_mean;
}
