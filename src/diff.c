// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof diff`: matches the groups of two profiles by (service, method,
 * route, class), compares each metric, and gives each a verdict. Reads
 * profiles only: no BPF, no root.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"

const struct diff_metric_def diff_metrics[DIFF_NMETRICS] = {
	{ "lat_p50", "latency p50", PM_DURATION, DS_QUANTILE, 0.50, DU_NS },
	{ "lat_p95", "latency p95", PM_DURATION, DS_QUANTILE, 0.95, DU_NS },
	{ "lat_p99", "latency p99", PM_DURATION, DS_QUANTILE, 0.99, DU_NS },
	{ "cpu_mean", "CPU per request", PM_CPU, DS_MEAN, 0, DU_NS },
	{ "cpu_p95", "CPU p95", PM_CPU, DS_QUANTILE, 0.95, DU_NS },
	{ "pg_round_trips", "PG round trips per request", PM_PG_ROUND_TRIPS, DS_MEAN, 0, DU_COUNT },
	{ "pg_time", "PG time per request", PM_PG_TIME, DS_MEAN, 0, DU_NS },
	{ "upstream_wait", "upstream wait per request", PM_UPSTREAM_WAIT, DS_MEAN, 0, DU_NS },
};

static const char *const verdict_names[] = {
	[DV_SAME] = "same",   [DV_SMALL] = "small", [DV_BETTER] = "better",
	[DV_WORSE] = "worse", [DV_NEW] = "new",	    [DV_GONE] = "gone",
};

const char *diff__verdict_name(enum diff_verdict v)
{
	return verdict_names[v];
}

static uint64_t weight(const struct profile *p)
{
	return profile__run((struct profile *)p)->sample_every ?: 1;
}

static void metric_ci(const struct diff_metric_def *def, const struct profile_group *g, uint64_t w,
		      double z, struct diff_ci *ci)
{
	if (!g)
		*ci = (struct diff_ci){};
	else if (def->stat == DS_QUANTILE)
		diff__quantile_ci(&g->h[def->metric], def->q, w, z, ci);
	else
		diff__mean_ci(&g->h[def->metric], w, z, ci);
}

static bool enough(const struct diff_metric_def *def, const struct profile_group *g, uint64_t w)
{
	double n = g->h[def->metric].count / (double)w;

	if (def->stat == DS_MEAN)
		return n >= 2;
	return n * def->q >= DIFF_MIN_TAIL && n * (1 - def->q) >= DIFF_MIN_TAIL;
}

static void compare(struct diff_metric *m, const struct diff_opts *o)
{
	double floor = m->def->unit == DU_NS ? o->min_ns : o->min_count;

	m->change = m->after.value - m->before.value;
	m->relative = m->before.value > 0 ? m->change / m->before.value
		      : m->change > 0	  ? INFINITY
					  : 0;
	if (!m->judged)
		m->significant = false;
	else if (m->def->stat == DS_QUANTILE)
		m->significant = m->after.lo > m->before.hi || m->after.hi < m->before.lo;
	else
		m->significant = fabs(diff__welch(&m->after, &m->before, o->z)) > o->z;
	if (!m->significant)
		m->verdict = DV_SAME;
	else if (fabs(m->relative) < o->threshold || fabs(m->change) < floor)
		m->verdict = DV_SMALL;
	else
		m->verdict = m->change > 0 ? DV_WORSE : DV_BETTER;
}

/* A row's verdict: its worst metric's, in the order worse, better, small, same. */
static enum diff_verdict row_verdict(const struct diff_row *r)
{
	static const enum diff_verdict order[] = { DV_WORSE, DV_BETTER, DV_SMALL };
	size_t i;
	int k;

	if (!r->b)
		return DV_NEW;
	if (!r->a)
		return DV_GONE;
	for (i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		for (k = 0; k < DIFF_NMETRICS; k++)
			if (r->m[k].verdict == order[i])
				return order[i];
	return DV_SAME;
}

static void row_fill(struct diff *d, struct diff_row *r)
{
	const struct profile_group *g = r->a ? r->a : r->b;
	int k;

	r->service = g->service;
	r->method = g->method;
	r->route = g->route;
	r->class = g->class;
	r->requests_before = r->b ? r->b->requests : 0;
	r->requests_after = r->a ? r->a->requests : 0;
	for (k = 0; k < DIFF_NMETRICS; k++) {
		r->m[k].def = &diff_metrics[k];
		metric_ci(&diff_metrics[k], r->b, weight(d->before.p), d->o.z, &r->m[k].before);
		metric_ci(&diff_metrics[k], r->a, weight(d->after.p), d->o.z, &r->m[k].after);
		if (!r->a || !r->b)
			continue;
		r->m[k].judged = enough(&diff_metrics[k], r->b, weight(d->before.p)) &&
				 enough(&diff_metrics[k], r->a, weight(d->after.p));
		compare(&r->m[k], &d->o);
	}
	r->verdict = row_verdict(r);
	r->impact_ns = (r->a ? hist__mean(&r->a->h[PM_DURATION]) : 0) -
		       (r->b ? hist__mean(&r->b->h[PM_DURATION]) : 0);
	r->impact_ns *= (double)(r->requests_after ?: r->requests_before);
}

static bool same_group(const struct profile_group *x, const struct profile_group *y)
{
	return !strcmp(x->route, y->route) && !strcmp(x->method, y->method) &&
	       !strcmp(x->class, y->class) && !strcmp(x->service, y->service);
}

/* Where a verdict sorts: flagged rows first, unchanged ones last. */
static int rank(enum diff_verdict v)
{
	static const int r[] = { [DV_WORSE] = 0, [DV_BETTER] = 1, [DV_SMALL] = 2,
				 [DV_NEW] = 3,	 [DV_GONE] = 4,	  [DV_SAME] = 5 };
	return r[v];
}

static int cmp_rows(const void *x, const void *y)
{
	const struct diff_row *a = x, *b = y;
	double ia = fabs(a->impact_ns), ib = fabs(b->impact_ns);

	if (rank(a->verdict) != rank(b->verdict))
		return rank(a->verdict) - rank(b->verdict);
	if (ia != ib)
		return ia > ib ? -1 : 1;
	return strcmp(a->route, b->route);
}

static void count(struct diff *d, enum diff_verdict v)
{
	size_t *n[] = { [DV_SAME] = &d->same,	[DV_SMALL] = &d->changed, [DV_BETTER] = &d->better,
			[DV_WORSE] = &d->worse, [DV_NEW] = &d->added,	  [DV_GONE] = &d->gone };
	(*n[v])++;
}

static void side_totals(struct diff_side *s)
{
	const struct profile_run *run = profile__run(s->p);
	const struct profile_group **v;
	size_t n, i;

	v = profile__sorted(s->p, &n);
	for (i = 0; i < n; i++)
		s->requests += v[i]->requests;
	s->seconds = run->end_real_ns > run->start_real_ns
			     ? (run->end_real_ns - run->start_real_ns) / 1e9
			     : 0;
}

int diff__compute(struct diff *d)
{
	const struct profile_group **vb, **va;
	size_t nb, na, i, j, k = 0;
	bool *matched;

	side_totals(&d->before);
	side_totals(&d->after);
	vb = profile__sorted(d->before.p, &nb);
	va = profile__sorted(d->after.p, &na);
	d->rows = calloc(nb + na + 1, sizeof(*d->rows));
	matched = calloc(nb + 1, sizeof(*matched));
	if (!d->rows || !matched) {
		free(matched);
		return -ENOMEM;
	}
	for (j = 0; j < na; j++) {
		d->rows[k].a = va[j];
		for (i = 0; i < nb; i++) {
			if (!matched[i] && same_group(vb[i], va[j])) {
				matched[i] = true;
				d->rows[k].b = vb[i];
				break;
			}
		}
		k++;
	}
	for (i = 0; i < nb; i++)
		if (!matched[i])
			d->rows[k++].b = vb[i];
	free(matched);
	d->nrows = k;
	for (i = 0; i < k; i++) {
		row_fill(d, &d->rows[i]);
		count(d, d->rows[i].verdict);
	}
	qsort(d->rows, k, sizeof(*d->rows), cmp_rows);
	return 0;
}

void diff__free(struct diff *d)
{
	free(d->rows);
	profile__free(d->before.p);
	profile__free(d->after.p);
}

static int load_side(struct diff_side *s, const char *path)
{
	char err[512];

	s->path = path;
	s->p = profile__load(path, err, sizeof(err));
	if (!s->p) {
		fprintf(stderr, "agentprof: %s: pass files that `agentprof record -o` wrote\n",
			err);
		return -EINVAL;
	}
	return 0;
}

static int write_html(const struct diff *d, const char *path)
{
	FILE *f = fopen(path, "w");
	int err;

	if (!f) {
		fprintf(stderr, "agentprof: cannot write %s: %s: pick another file with --html\n",
			path, strerror(errno));
		return -errno;
	}
	err = diff__write_html(d, f);
	if (fclose(f) && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "agentprof: writing %s failed: %s: check the disk\n", path,
			strerror(-err));
	return err;
}

int diff__run(const struct env *env)
{
	struct diff d = {
		.o = { .threshold = env->threshold_pct / 100,
		       .min_ns = env->min_ms * 1e6,
		       .min_count = 0.5,
		       .z = DIFF_Z },
	};
	int ret = 2;

	if (load_side(&d.before, env->inputs[0]) || load_side(&d.after, env->inputs[1]))
		goto cleanup;
	if (diff__compute(&d)) {
		fprintf(stderr, "agentprof: out of memory comparing the profiles\n");
		goto cleanup;
	}
	if (env->format == FORMAT_JSON) {
		if (diff__print_json(&d, stdout))
			goto cleanup;
	} else {
		diff__print_text(&d, stdout);
	}
	if (fflush(stdout)) {
		fprintf(stderr, "agentprof: writing the comparison failed: %s\n", strerror(errno));
		goto cleanup;
	}
	if (env->html_path && write_html(&d, env->html_path))
		goto cleanup;
	ret = d.worse ? 1 : 0;
cleanup:
	diff__free(&d);
	return ret;
}
