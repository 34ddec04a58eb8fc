// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan/queue.h"

/*
 * Erlang B by its recursion B(k) = a B(k-1) / (k + a B(k-1)), then
 * C = c B / (c - a (1 - B)): no factorials or powers, so no overflow for the
 * hundreds of servers a connection pool may have.
 */
double queue__erlang_c(int c, double a)
{
	double b = 1.0;
	int k;

	if (a <= 0)
		return 0;
	if (c < 1 || a >= c)
		return 1;
	for (k = 1; k <= c; k++)
		b = a * b / (k + a * b);
	return c * b / (c - a * (1 - b));
}

double queue__mmc_wait_mean(int c, double lambda, double s)
{
	double a = lambda * s;

	if (a <= 0)
		return 0;
	if (a >= c)
		return INFINITY;
	return queue__erlang_c(c, a) * s / (c - a);
}

double queue__mmc_wait_tail(int c, double lambda, double s, double t)
{
	double a = lambda * s;

	if (a <= 0 || s <= 0)
		return 0;
	if (a >= c)
		return 1;
	if (t <= 0)
		return queue__erlang_c(c, a);
	return queue__erlang_c(c, a) * exp(-(c / s - lambda) * t);
}

/*
 * Per station: the mean queue at the previous population, and the marginal
 * probabilities of j requests there, j = 0..n_max, for the queueing kinds:
 * p(j|n) = X(n) D / a(j) p(j-1|n-1), a(j) = min(j, servers) (Reiser &
 * Lavenberg's load-dependent recursion), p(0|n) = 1 - the rest. The
 * residence times come from the mean queue (and, multi-server, the idle
 * servers: Bolch et al., eq. 8.31); the marginals give what an arrival finds
 * (the arrival theorem: the network at n - 1), so its wait's distribution.
 */
struct mva_state {
	double q;
	double *p;
};

static double mva_residence(const struct queue_station *s, const struct mva_state *m)
{
	double extra = 0;
	int j;

	switch (s->kind) {
	case QK_DELAY:
		return s->demand;
	case QK_QUEUE:
		return s->demand * (1 + m->q);
	case QK_MULTI:
		for (j = 0; j <= s->servers - 2; j++)
			extra += (s->servers - j - 1) * m->p[j];
		return s->demand / s->servers * (1 + m->q + extra);
	}
	return 0;
}

/*
 * An arrival that finds j >= c there waits for j - c + 1 completions at rate
 * c / D: an Erlang of that many phases. Mean and second moment over j.
 */
static void mva_wait(const struct queue_station *s, const struct mva_state *m, int n,
		     struct queue_station_result *o)
{
	int c = s->kind == QK_MULTI ? s->servers : 1, j;
	double d = s->demand / c, k;

	o->p_wait = o->wait_mean = o->wait_m2 = 0;
	if (s->kind == QK_DELAY)
		return;
	for (j = c; j < n; j++) {
		k = j - c + 1;
		o->p_wait += m->p[j];
		o->wait_mean += m->p[j] * k * d;
		o->wait_m2 += m->p[j] * k * (k + 1) * d * d;
	}
	o->p_wait = fmin(1, o->p_wait);
}

static void mva_update_marginals(const struct queue_station *s, struct mva_state *m, double x,
				 int n)
{
	int c = s->kind == QK_MULTI ? s->servers : 1, j;
	double sum = 0;

	for (j = n; j >= 1; j--) {
		m->p[j] = x * s->demand / (j < c ? j : c) * m->p[j - 1];
		sum += m->p[j];
	}
	/* The subtraction is where exact load-dependent MVA loses precision: keep it a probability. */
	m->p[0] = fmax(0, 1 - sum);
}

static int check_stations(const struct queue_station *st, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++) {
		if (!(st[i].demand >= 0) || !isfinite(st[i].demand))
			return -EINVAL;
		if (!(st[i].idle_demand >= 0) || !isfinite(st[i].idle_demand))
			return -EINVAL;
		if (st[i].kind == QK_MULTI && st[i].servers < 1)
			return -EINVAL;
	}
	return 0;
}

double queue__open_demand(const struct queue_station *s, double lambda)
{
	int c = s->kind == QK_MULTI ? s->servers : 1;
	double u;

	if (s->kind == QK_DELAY || s->idle_demand <= 0)
		return s->demand;
	if (lambda <= 0)
		return s->demand + s->idle_demand;
	u = fmin(1, lambda * (s->demand + s->idle_demand) / (c + lambda * s->idle_demand));
	return s->demand + s->idle_demand * (1 - u);
}

/* The stations as they serve population n: demands from the utilisations at n - 1. */
static void mva_demands(const struct queue_station *st, struct queue_station *cur, size_t k,
			const double *util)
{
	size_t i;

	for (i = 0; i < k; i++) {
		cur[i] = st[i];
		if (st[i].kind != QK_DELAY && st[i].idle_demand > 0)
			cur[i].demand += st[i].idle_demand * (1 - fmin(1, util[i]));
	}
}

int queue__mva(const struct queue_station *st_in, size_t k, double z, int n_max,
	       struct queue_mva_point *points, struct queue_station_result *per_station)
{
	struct queue_station_result *o;
	struct queue_station *st = NULL;
	struct mva_state *m = NULL;
	double *res = NULL, *util = NULL, x, r;
	size_t i;
	int n, err = -ENOMEM;

	if (!st_in || !points || n_max < 1 || !(z >= 0) || check_stations(st_in, k))
		return -EINVAL;
	m = calloc(k ? k : 1, sizeof(*m));
	res = calloc(k ? k : 1, sizeof(*res));
	util = calloc(k ? k : 1, sizeof(*util));
	st = calloc(k ? k : 1, sizeof(*st));
	if (!m || !res || !util || !st)
		goto cleanup;
	for (i = 0; i < k; i++) {
		if (st[i].kind == QK_DELAY)
			continue;
		m[i].p = calloc((size_t)n_max + 1, sizeof(double));
		if (!m[i].p)
			goto cleanup;
		m[i].p[0] = 1;
	}
	for (n = 1; n <= n_max; n++) {
		mva_demands(st_in, st, k, util);
		r = 0;
		for (i = 0; i < k; i++) {
			res[i] = mva_residence(&st[i], &m[i]);
			r += res[i];
		}
		x = z + r > 0 ? n / (z + r) : INFINITY;
		for (i = 0; i < k; i++) {
			if (per_station) {
				o = &per_station[(size_t)(n - 1) * k + i];
				o->residence = res[i];
				o->queue_len = x * res[i];
				o->util = x * st[i].demand / (st[i].kind == QK_MULTI ? st[i].servers : 1);
				mva_wait(&st[i], &m[i], n, o);
			}
			util[i] = x * st[i].demand / (st[i].kind == QK_MULTI ? st[i].servers : 1);
			m[i].q = x * res[i];
			if (st[i].kind != QK_DELAY)
				mva_update_marginals(&st[i], &m[i], x, n);
		}
		points[n - 1] = (struct queue_mva_point){.n = n, .x = x, .r = r};
	}
	err = 0;
cleanup:
	for (i = 0; m && i < k; i++)
		free(m[i].p);
	free(m);
	free(res);
	free(util);
	free(st);
	return err;
}

/*
 * P(Erlang(shape, mean) > t) = e^-x sum_{i < shape} x^i / i!, x = t shape /
 * mean. Shapes stay at most QUEUE_MAX_SHAPE, so past x = 700 (where e^-x
 * underflows) the tail is far below any quantile asked for.
 */
static double erlang_tail(int shape, double mean, double t)
{
	double x = t * shape / mean, term, sum = 0;
	int i;

	if (x > 700)
		return 0;
	term = exp(-x);
	for (i = 0; i < shape; i++) {
		sum += term;
		term *= x / (i + 1);
	}
	return fmin(1, sum);
}

double queue__tail_with_wait(const double *v, const double *p, size_t n,
			     const struct queue_wait *w, double t)
{
	double tail = 0, s;
	size_t i;

	for (i = 0; i < n; i++) {
		s = t - v[i];
		if (s < 0)
			tail += p[i];
		else if (w->p > 0 && w->mean > 0)
			tail += p[i] * w->p * erlang_tail(w->shape, w->mean, s);
	}
	return tail;
}

double queue__quantile_with_wait(const double *v, const double *p, size_t n,
				 const struct queue_wait *w, double q)
{
	double lo = 0, hi = 0, mid;
	size_t i;
	int it;

	for (i = 0; i < n; i++)
		hi = fmax(hi, v[i]);
	/* 60 means: far beyond any tail a quantile asks for, whatever the shape. */
	hi += (w->p > 0 && w->mean > 0 ? 60 * w->mean : 0) + 1e-9;
	for (it = 0; it < 60; it++) {
		mid = (lo + hi) / 2;
		if (queue__tail_with_wait(v, p, n, w, mid) > 1 - q)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

struct queue_wait queue__wait_combine(const double *mean, const double *m2, const double *p,
				      size_t n)
{
	struct queue_wait w = {0, 0, 1};
	double var = 0, none = 1, cm, cvar;
	size_t i;

	for (i = 0; i < n; i++) {
		w.mean += mean[i];
		var += fmax(0, m2[i] - mean[i] * mean[i]);
		none *= 1 - fmin(1, fmax(0, p[i]));
	}
	w.p = 1 - none;
	if (w.p < 1e-9 || w.mean <= 0)
		return (struct queue_wait){0, 0, 1};
	/* Conditional on waiting: E[W | W > 0] = E[W] / p, E[W^2 | W > 0] = E[W^2] / p. */
	cm = w.mean / w.p;
	cvar = (var + w.mean * w.mean) / w.p - cm * cm;
	w.mean = cm;
	w.shape = cvar > 0 ? (int)fmin(QUEUE_MAX_SHAPE, fmax(1, round(cm * cm / cvar)))
			   : QUEUE_MAX_SHAPE;
	return w;
}
