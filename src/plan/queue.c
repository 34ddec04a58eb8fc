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

/* p[j], j < m: the marginal probabilities of j busy servers at a multi-server station. */
struct mva_state {
	double q;  /* mean requests there at the previous population */
	double *p; /* QK_MULTI: servers entries */
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
		/* Bolch et al., eq. (8.31): the servers idle at the arrival instant shorten the wait. */
		for (j = 0; j <= s->servers - 2; j++)
			extra += (s->servers - j - 1) * m->p[j];
		return s->demand / s->servers * (1 + m->q + extra);
	}
	return 0;
}

static double mva_p_wait(const struct queue_station *s, const struct mva_state *m, double x_prev)
{
	double idle = 0;
	int j;

	switch (s->kind) {
	case QK_DELAY:
		return 0;
	case QK_QUEUE:
		return fmin(1, x_prev * s->demand);
	case QK_MULTI:
		for (j = 0; j < s->servers; j++)
			idle += m->p[j];
		return fmin(1, fmax(0, 1 - idle));
	}
	return 0;
}

/* Marginals at population n from those at n-1, in place from the top down. */
static void mva_update_marginals(const struct queue_station *s, struct mva_state *m, double x)
{
	double sum = 0;
	int j, c = s->servers;

	for (j = c - 1; j >= 1; j--) {
		m->p[j] = x * s->demand / j * m->p[j - 1];
		sum += (c - j) * m->p[j];
	}
	/* The subtraction is where exact load-dependent MVA loses precision: keep it a probability. */
	m->p[0] = fmax(0, 1 - (x * s->demand + sum) / c);
}

static int check_stations(const struct queue_station *st, size_t k)
{
	size_t i;

	for (i = 0; i < k; i++) {
		if (!(st[i].demand >= 0) || !isfinite(st[i].demand))
			return -EINVAL;
		if (st[i].kind == QK_MULTI && st[i].servers < 1)
			return -EINVAL;
	}
	return 0;
}

int queue__mva(const struct queue_station *st, size_t k, double z, int n_max,
	       struct queue_mva_point *points, struct queue_station_result *per_station)
{
	struct mva_state *m = NULL;
	double *res = NULL, x = 0, r, x_prev;
	size_t i;
	int n, err = -ENOMEM;

	if (!st || !points || n_max < 1 || !(z >= 0) || check_stations(st, k))
		return -EINVAL;
	m = calloc(k ? k : 1, sizeof(*m));
	res = calloc(k ? k : 1, sizeof(*res));
	if (!m || !res)
		goto cleanup;
	for (i = 0; i < k; i++) {
		if (st[i].kind != QK_MULTI)
			continue;
		m[i].p = calloc(st[i].servers, sizeof(double));
		if (!m[i].p)
			goto cleanup;
		m[i].p[0] = 1;
	}
	for (n = 1; n <= n_max; n++) {
		r = 0;
		for (i = 0; i < k; i++) {
			res[i] = mva_residence(&st[i], &m[i]);
			r += res[i];
		}
		x_prev = x;
		x = z + r > 0 ? n / (z + r) : INFINITY;
		for (i = 0; i < k; i++) {
			if (per_station) {
				struct queue_station_result *o = &per_station[(size_t)(n - 1) * k + i];

				o->residence = res[i];
				o->queue_len = x * res[i];
				o->util = x * st[i].demand / (st[i].kind == QK_MULTI ? st[i].servers : 1);
				o->p_wait = mva_p_wait(&st[i], &m[i], x_prev);
			}
			m[i].q = x * res[i];
			if (st[i].kind == QK_MULTI)
				mva_update_marginals(&st[i], &m[i], x);
		}
		points[n - 1] = (struct queue_mva_point){.n = n, .x = x, .r = r};
	}
	err = 0;
cleanup:
	for (i = 0; m && i < k; i++)
		free(m[i].p);
	free(m);
	free(res);
	return err;
}

double queue__tail_with_wait(const double *v, const double *p, size_t n, double pw, double wmean,
			     double t)
{
	double tail = 0, s;
	size_t i;

	for (i = 0; i < n; i++) {
		s = t - v[i];
		if (s < 0)
			tail += p[i];
		else if (pw > 0 && wmean > 0)
			tail += p[i] * pw * exp(-s / wmean);
	}
	return tail;
}

double queue__quantile_with_wait(const double *v, const double *p, size_t n, double pw,
				 double wmean, double q)
{
	double lo = 0, hi = 0, mid;
	size_t i;
	int it;

	for (i = 0; i < n; i++)
		hi = fmax(hi, v[i]);
	/* exp(-60) is far below any tail a quantile asks for. */
	hi += (pw > 0 && wmean > 0 ? 60 * wmean : 0) + 1e-9;
	for (it = 0; it < 100; it++) {
		mid = (lo + hi) / 2;
		if (queue__tail_with_wait(v, p, n, pw, wmean, mid) > 1 - q)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}
