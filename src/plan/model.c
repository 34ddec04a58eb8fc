// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "plan/model.h"
#include "services.h"

#define NS 1e9

void plan_opts__defaults(struct plan_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->think_s = -1;
	o->scale_lag_s = 90;
	o->growth_per_min = 0.2;
	o->min_requests = 20;
}

static void note(struct plan_model *m, const char *fmt, ...)
{
	va_list ap;

	if (m->nnotes == PLAN_MAX_NOTES)
		return;
	va_start(ap, fmt);
	vsnprintf(m->notes[m->nnotes++], PLAN_NOTE_MAX, fmt, ap);
	va_end(ap);
}

static double mean_s(const struct hist *h)
{
	return h->count ? hist__mean(h) / NS : 0;
}

/* The service with the most requests, or the one asked for. */
static const char *pick_service(const struct profile_group **v, size_t n, const char *want)
{
	static char best[PROFILE_NAME_MAX];
	uint64_t most = 0, sum;
	size_t i, j;

	if (want)
		return want;
	best[0] = '\0';
	for (i = 0; i < n; i++) {
		sum = 0;
		for (j = 0; j < n; j++)
			if (!strcmp(v[j]->service, v[i]->service))
				sum += v[j]->requests;
		if (sum > most) {
			most = sum;
			snprintf(best, sizeof(best), "%s", v[i]->service);
		}
	}
	return best[0] ? best : NULL;
}

static const struct plan_mix *mix_of(const struct plan_opts *o, const struct profile_group *g)
{
	int i;

	for (i = 0; i < o->nmix; i++)
		if (!strcmp(o->mix[i].key, g->class) || !strcmp(o->mix[i].key, g->route))
			return &o->mix[i];
	return NULL;
}

static void group_fill(struct plan_group *pg, const struct profile_group *g)
{
	snprintf(pg->method, sizeof(pg->method), "%s", g->method);
	snprintf(pg->route, sizeof(pg->route), "%s", g->route);
	snprintf(pg->class, sizeof(pg->class), "%s", g->class[0] ? g->class : "-");
	pg->requests = g->requests;
	pg->dur = &g->h[PM_DURATION];
	pg->duration = mean_s(&g->h[PM_DURATION]);
	pg->cpu = mean_s(&g->h[PM_CPU]);
	pg->runq = mean_s(&g->h[PM_RUNQ]);
	pg->pg = mean_s(&g->h[PM_PG_TIME]);
	/* Profiles from before pg_hold_ns: the PG time is the closest they have. */
	pg->hold_measured = g->h[PM_PG_HOLD].count > 0;
	pg->hold = pg->hold_measured ? mean_s(&g->h[PM_PG_HOLD]) : pg->pg;
	pg->upstream = mean_s(&g->h[PM_UPSTREAM_WAIT]);
	pg->other = fmax(0, pg->duration - pg->cpu - pg->runq - pg->pg - pg->upstream);
	pg->p95 = hist__quantile(&g->h[PM_DURATION], 0.95) / NS;
	pg->p99 = hist__quantile(&g->h[PM_DURATION], 0.99) / NS;
	pg->pg_round_trips = g->h[PM_PG_ROUND_TRIPS].count ? hist__mean(&g->h[PM_PG_ROUND_TRIPS]) : 0;
}

/* Requests of the service in groups of the class of g. */
static uint64_t class_requests(const struct profile_group **v, size_t n, const char *service,
			       const char *class)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i]->service, service) && !strcmp(v[i]->class, class))
			sum += v[i]->requests;
	return sum;
}

/*
 * The groups to plan and their shares: the mix asked for (each key's weight
 * split over its groups by their counts), or the profile's own counts. A
 * class needs min_requests to be planned; a route within it may have fewer.
 */
static int pick_groups(struct plan_model *m, const struct profile_group **v, size_t n,
		       const struct plan_opts *o, char *err, size_t errsz)
{
	double keysum[PLAN_MAX_MIX] = {0}, total = 0, w;
	const struct plan_mix *mx;
	uint64_t thin_reqs = 0, all = 0;
	size_t i;
	int k;

	for (i = 0; i < n; i++) {
		if (strcmp(v[i]->service, m->service))
			continue;
		all += v[i]->requests;
		mx = o->nmix ? mix_of(o, v[i]) : NULL;
		if (mx)
			keysum[mx - o->mix] += v[i]->requests;
	}
	for (k = 0; k < o->nmix; k++) {
		if (keysum[k] < o->min_requests) {
			snprintf(err, errsz,
				 "the mix names '%s', which has %.0f requests in the profile of %s: "
				 "too few to plan from (at least %u): record longer, or leave it out "
				 "of --mix",
				 o->mix[k].key, keysum[k], m->service, o->min_requests);
			return -EINVAL;
		}
	}
	for (i = 0; i < n && m->ng < PLAN_MAX_GROUPS; i++) {
		if (strcmp(v[i]->service, m->service))
			continue;
		if (o->nmix) {
			mx = mix_of(o, v[i]);
			if (!mx)
				continue;
			w = mx->weight * v[i]->requests / keysum[mx - o->mix];
		} else {
			/* A rare class cannot be planned alone, but need not stop the plan. */
			if (class_requests(v, n, m->service, v[i]->class) < o->min_requests) {
				thin_reqs += v[i]->requests;
				continue;
			}
			w = v[i]->requests;
		}
		group_fill(&m->g[m->ng], v[i]);
		m->g[m->ng++].share = w;
		total += w;
	}
	if (!o->nmix && thin_reqs > all / 20) {
		snprintf(err, errsz,
			 "%llu of the %llu requests of %s are in classes with fewer than %u requests "
			 "each: too thin to plan from; record longer or under more load",
			 (unsigned long long)thin_reqs, (unsigned long long)all, m->service,
			 o->min_requests);
		return -EINVAL;
	}
	if (!m->ng || total <= 0) {
		snprintf(err, errsz,
			 "no class of %s has %u requests or more in the profile (%llu requests in "
			 "all): too thin to plan from; record longer or under more load",
			 m->service, o->min_requests, (unsigned long long)all);
		return -EINVAL;
	}
	if (thin_reqs)
		note(m, "classes with fewer than %u requests (%llu requests in all) are left out of "
			"the mix", o->min_requests, (unsigned long long)thin_reqs);
	for (k = 0; k < m->ng; k++)
		m->g[k].share /= total;
	return 0;
}

/*
 * The probes run in the traced threads, so the CPU the requests were charged
 * includes agentprof's own: the share its programs' run time is of all the
 * CPU charged, taken back out of every request alike.
 */
static void probe_overhead(struct plan_model *m, struct profile *p)
{
	const struct profile_group **v;
	double charged = 0;
	size_t n, i;

	m->cpu_factor = 1;
	v = profile__sorted(p, &n);
	for (i = 0; i < n; i++)
		charged += v[i]->h[PM_CPU].sum;
	if (!profile__run(p)->bpf_run_ns || charged <= 0) {
		note(m, "CPU as recorded: the profile does not say what agentprof's probes cost "
			"(no bpf_run_ns), so it includes them");
		return;
	}
	m->cpu_factor = fmax(0.5, 1 - profile__run(p)->bpf_run_ns / charged);
	note(m, "CPU per request less agentprof's own probes: %.1f%% of the CPU charged to "
		"requests was BPF run time (kernel BPF_ENABLE_STATS)", (1 - m->cpu_factor) * 100);
}

static void mix_means(struct plan_model *m)
{
	double runq = 0;
	int i;

	for (i = 0; i < m->ng; i++) {
		m->g[i].cpu *= m->cpu_factor;
		m->d_cpu += m->g[i].share * m->g[i].cpu;
		m->d_hold += m->g[i].share * m->g[i].hold;
		m->hold_measured += m->g[i].hold_measured;
		m->r0 += m->g[i].share * m->g[i].duration;
		runq += m->g[i].share * m->g[i].runq;
	}
	m->delay = runq; /* completed in add_stations(), once the CPU's speed is known */
}

/* The base distribution: the mix of the groups' recorded durations, bucket by bucket. */
static int base_distribution(struct plan_model *m)
{
	double *p = calloc(HIST_BUCKETS, sizeof(double));
	size_t i, k = 0;
	int g;

	if (!p)
		return -ENOMEM;
	for (g = 0; g < m->ng; g++)
		for (i = 0; i < HIST_BUCKETS; i++)
			if (m->g[g].dur->counts[i])
				p[i] += m->g[g].share * m->g[g].dur->counts[i] / m->g[g].dur->count;
	m->bv = calloc(HIST_BUCKETS, sizeof(double));
	m->bp = calloc(HIST_BUCKETS, sizeof(double));
	if (!m->bv || !m->bp) {
		free(p);
		return -ENOMEM;
	}
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (p[i] <= 0)
			continue;
		m->bv[k] = (hist__lower(i) + hist__upper(i)) / 2.0 / NS;
		m->bp[k++] = p[i];
	}
	m->nb = k;
	free(p);
	return 0;
}

static void pod_cpu(struct plan_model *m, const struct service *svc, const struct plan_opts *o)
{
	static char from[400];

	m->workers = o->workers ? o->workers : svc && svc->npids ? svc->npids : 1;
	m->threads = svc && svc->ntids ? svc->ntids : m->workers;
	m->event_loop = m->threads <= m->workers;
	if (!svc)
		note(m, "the profile has no process information (recorded by an older agentprof): "
			"one single-threaded worker assumed (--workers to say otherwise)");
	if (o->pod_cpu > 0) {
		m->cpu_limit = o->pod_cpu;
		m->cpu_limited = true;
		m->cpu_limit_from = "--pod-cpu";
	} else if (svc && svc->cgroup.cpu_limit_cores > 0) {
		m->cpu_limit = svc->cgroup.cpu_limit_cores;
		m->cpu_limited = true;
		snprintf(from, sizeof(from), "cgroup v%d %s of %s (%lld/%lld us)", svc->cgroup.version,
			 svc->cgroup.version == 1 ? "cpu.cfs_quota_us/cpu.cfs_period_us" : "cpu.max",
			 svc->cgroup.path, (long long)svc->cgroup.cpu_quota_us,
			 (long long)svc->cgroup.cpu_period_us);
		m->cpu_limit_from = from;
	} else if (svc && svc->cgroup.host_cpus > 0) {
		m->cpu_limit = svc->cgroup.host_cpus;
		m->cpu_limit_from = "no cgroup CPU limit: the recording host's CPUs";
	} else {
		m->cpu_limit = 1;
		m->cpu_limit_from = "unknown (no cgroup in the profile): 1 core assumed, --pod-cpu to set";
	}
}

static void pod_pool(struct plan_model *m, const struct service *svc, const struct plan_opts *o)
{
	if (o->db_pool > 0) {
		m->pool = o->db_pool;
		m->pool_from = "--db-pool";
	} else if (svc && svc->pg_conns_max > 0) {
		m->pool = svc->pg_conns_max;
		m->pool_from = "the most PostgreSQL connections seen open at once (a lower bound of "
			       "the pool's size: a pool that never filled is larger)";
	} else {
		m->pool = 0;
		m->pool_from = NULL;
	}
}

static void add_station(struct plan_model *m, const char *name, enum queue_kind kind, int servers,
			double speed, double work)
{
	struct plan_station *s = &m->st[m->nst++];

	snprintf(s->name, sizeof(s->name), "%s", name);
	s->q.kind = servers > 1 ? kind : kind == QK_DELAY ? QK_DELAY : QK_QUEUE;
	s->q.servers = servers;
	s->speed = speed;
	s->q.demand = work / speed;
	s->capacity = kind == QK_DELAY || work <= 0 ? INFINITY : servers * speed / work;
}

/*
 * The profile's CPU per request was measured at its load; with a fit of how
 * it changes with load (loadfit.h), the CPU station serves sat per request
 * when busy and idle more when idle, so it saturates at servers / sat.
 */
static void cpu_load_dependent(struct plan_model *m, struct plan_station *s)
{
	double at_profile = s->q.demand;

	m->x_max_flat = s->capacity;
	if (!m->cpu_fit.fitted)
		return;
	s->q.demand = at_profile * loadfit__factor(&m->cpu_fit, 1);
	s->q.idle_demand = at_profile * loadfit__factor(&m->cpu_fit, 0) - s->q.demand;
	s->capacity = s->q.servers / s->q.demand;
}

static void add_stations(struct plan_model *m)
{
	int exec = m->event_loop ? m->workers : m->threads, c;
	double usable = fmin(m->cpu_limit, exec), cpu_wall;
	struct plan_station *s;
	int i;

	/* rate(j) = min(j, exec, limit) cores: c servers, each at speed usable / c. */
	c = (int)ceil(fmin(m->cpu_limit, exec) - 1e-9);
	if (c < 1)
		c = 1;
	add_station(m, m->event_loop ? "event-loop CPU" : "CPU", QK_MULTI, c, usable / c, m->d_cpu);
	s = &m->st[0];
	if (m->event_loop && m->cpu_limit < m->workers)
		snprintf(s->what, sizeof(s->what), "CPU: the pod's limit of %.2f cores over %d event "
			 "loop%s", m->cpu_limit, m->workers, m->workers > 1 ? "s" : "");
	else if (m->event_loop)
		snprintf(s->what, sizeof(s->what), "event-loop CPU: %d single-threaded loop%s, one core "
			 "each at most", m->workers, m->workers > 1 ? "s" : "");
	else
		snprintf(s->what, sizeof(s->what), "CPU: %.2f cores for %d request threads", usable,
			 m->threads);
	if (m->pool > 0 && m->d_hold > 0) {
		add_station(m, "PostgreSQL pool", QK_MULTI, m->pool, 1, m->d_hold);
		snprintf(m->st[m->nst - 1].what, sizeof(m->st[0].what),
			 "PostgreSQL connection pool: %d connection%s", m->pool, m->pool > 1 ? "s" : "");
	}
	/* What a request spends on the CPU when alone: its CPU at the station's speed, or as recorded. */
	cpu_wall = fmax(m->st[0].q.demand, m->d_cpu + m->delay);
	m->delay = fmax(0, m->r0 - cpu_wall - (m->nst > 1 ? m->d_hold : 0));
	add_station(m, "delay", QK_DELAY, 1, 1, m->delay);
	snprintf(m->st[m->nst - 1].what, sizeof(m->st[0].what),
		 "upstream waits, %sother waits: time, not capacity",
		 m->nst > 2 ? "" : "PostgreSQL time, ");
	cpu_load_dependent(m, &m->st[0]);
	m->bottleneck = 0;
	m->x_max = INFINITY;
	for (i = 0; i < m->nst; i++) {
		if (m->st[i].capacity < m->x_max) {
			m->x_max = m->st[i].capacity;
			m->bottleneck = i;
		}
	}
}

/* Think time by Little's law over the recording: clients = X (R + Z). */
static void think_time(struct plan_model *m, const struct service *svc, double interval_s,
		       const struct plan_opts *o)
{
	double clients = 0, arrivals = 0, x;
	size_t i, n = 0;

	m->think_s = -1;
	if (o->think_s >= 0) {
		m->think_s = o->think_s;
		m->think_from = "--think";
		return;
	}
	for (i = 0; svc && i < svc->nsamples; i++) {
		if (!svc->samples[i].measured || !svc->samples[i].clients)
			continue;
		clients += svc->samples[i].clients;
		arrivals += svc->samples[i].arrivals;
		n++;
	}
	if (n < 5 || arrivals <= 0)
		return;
	x = arrivals / (n * interval_s);
	if (clients / n / x - m->r0 <= 0)
		return;
	m->think_s = clients / n / x - m->r0;
	m->think_from = "from the profile: connected clients / throughput - response time (Little's "
			"law; each client one keep-alive connection, as Locust's users)";
}

/* Least squares of RSS on the mean requests in flight, over the sampled intervals. */
static void memory_fit(struct plan_model *m, const struct service *svc)
{
	double sx = 0, sy = 0, sxx = 0, sxy = 0, x, y, var;
	size_t i;
	int n = 0;

	for (i = 0; svc && i < svc->nsamples; i++) {
		if (!svc->samples[i].measured || !svc->samples[i].rss_bytes)
			continue;
		x = svc->samples[i].in_flight;
		y = svc->samples[i].rss_bytes;
		sx += x;
		sy += y;
		sxx += x * x;
		sxy += x * y;
		m->mem_max = fmax(m->mem_max, y);
		n++;
	}
	m->mem_samples = n;
	if (!n)
		return;
	var = sxx / n - (sx / n) * (sx / n);
	m->mem_base = sy / n;
	if (n >= 5 && var > 1e-6) {
		m->mem_slope = fmax(0, (sxy / n - sx / n * sy / n) / var);
		m->mem_base = sy / n - m->mem_slope * sx / n;
		m->mem_fitted = true;
	}
}

double plan_model__quantile(const struct plan_model *m, const struct queue_wait *w, double q)
{
	return queue__quantile_with_wait(m->bv, m->bp, m->nb, w, q);
}

/* M/M/c: wait 0 with probability 1 - C, else exponential at rate c/S - lambda. */
static void open_point(const struct plan_model *m, double lambda, struct plan_point *pt)
{
	double mean[PLAN_MAX_STATIONS], m2[PLAN_MAX_STATIONS], p[PLAN_MAX_STATIONS], rate, d, w = 0;
	const struct plan_station *s;
	struct queue_wait qw;
	size_t k = 0;
	int i;

	for (i = 0; i < m->nst; i++) {
		s = &m->st[i];
		if (s->q.kind == QK_DELAY)
			continue;
		d = queue__open_demand(&s->q, lambda);
		p[k] = queue__erlang_c(s->q.servers, lambda * d);
		rate = s->q.servers / d - lambda;
		mean[k] = queue__mmc_wait_mean(s->q.servers, lambda, d);
		m2[k] = rate > 0 ? p[k] * 2 / (rate * rate) : INFINITY;
		w += mean[k++];
	}
	qw = queue__wait_combine(mean, m2, p, k);
	pt->load = pt->x = lambda;
	pt->r = m->r0 + w;
	pt->p95 = plan_model__quantile(m, &qw, 0.95);
	pt->p99 = plan_model__quantile(m, &qw, 0.99);
	pt->util = lambda / m->x_max;
}

static bool holds(const struct plan_opts *o, const struct plan_point *pt)
{
	return (!o->slo_p95_s || pt->p95 <= o->slo_p95_s) && (!o->slo_p99_s || pt->p99 <= o->slo_p99_s);
}

/* The highest rate at which pred holds, by bisection on (0, x_max). */
static double open_limit(const struct plan_model *m, double slo95, double slo99)
{
	struct plan_opts o = {.slo_p95_s = slo95, .slo_p99_s = slo99};
	struct plan_point pt;
	double lo = 0, hi = m->x_max, mid;
	int it;

	if (!isfinite(hi))
		return INFINITY;
	for (it = 0; it < 60; it++) {
		mid = (lo + hi) / 2;
		open_point(m, mid, &pt);
		if (holds(&o, &pt))
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void open_curve(struct plan_model *m, const struct plan_opts *o)
{
	int i, n = 100;

	m->nopen = 0;
	if (!isfinite(m->x_max))
		return;
	for (i = 1; i <= n; i++)
		open_point(m, m->x_max * 0.995 * i / n, &m->open[m->nopen++]);
	m->knee_rps_p95 = o->slo_p95_s ? open_limit(m, o->slo_p95_s, 0) : 0;
	m->knee_rps_p99 = o->slo_p99_s ? open_limit(m, 0, o->slo_p99_s) : 0;
}

/* What an arrival finds at each station (the arrival theorem), from the MVA's marginals. */
static void closed_point(const struct plan_model *m, const struct queue_mva_point *mp,
			 const struct queue_station_result *res, struct plan_point *pt)
{
	double mean[PLAN_MAX_STATIONS], m2[PLAN_MAX_STATIONS], p[PLAN_MAX_STATIONS], w = 0;
	struct queue_wait qw;
	size_t k = 0;
	int i;

	for (i = 0; i < m->nst; i++) {
		if (m->st[i].q.kind == QK_DELAY)
			continue;
		mean[k] = res[i].wait_mean;
		m2[k] = res[i].wait_m2;
		p[k] = res[i].p_wait;
		w += mean[k++];
	}
	qw = queue__wait_combine(mean, m2, p, k);
	pt->load = mp->n;
	pt->x = mp->x;
	pt->r = m->r0 + w;
	pt->p95 = plan_model__quantile(m, &qw, 0.95);
	pt->p99 = plan_model__quantile(m, &qw, 0.99);
	pt->util = mp->x / m->x_max;
}

static int closed_curve(struct plan_model *m, const struct plan_opts *o)
{
	struct queue_station st[PLAN_MAX_STATIONS];
	struct queue_station_result *res = NULL;
	struct queue_mva_point *pts = NULL;
	struct plan_point pt;
	int i, n, nmax, step, err = -ENOMEM;
	double nstar;

	if (m->think_s < 0)
		return 0;
	for (i = 0; i < m->nst; i++)
		st[i] = m->st[i].q;
	/* Kleinrock's saturation population, past which every user adds only queueing. */
	nstar = isfinite(m->x_max) ? (m->r0 + m->think_s) * m->x_max : 100;
	nmax = (int)fmin(20000, fmax(fmax(10, 2.5 * nstar), o->users * 1.2));
	pts = calloc(nmax, sizeof(*pts));
	res = calloc((size_t)nmax * m->nst, sizeof(*res));
	if (!pts || !res)
		goto cleanup;
	err = queue__mva(st, m->nst, m->think_s, nmax, pts, res);
	if (err)
		goto cleanup;
	step = (nmax + PLAN_CURVE_MAX - 1) / PLAN_CURVE_MAX;
	m->nclosed = 0;
	for (n = 1; n <= nmax; n++) {
		closed_point(m, &pts[n - 1], &res[(size_t)(n - 1) * m->nst], &pt);
		if (!m->knee_users_p95 && o->slo_p95_s && pt.p95 > o->slo_p95_s)
			m->knee_users_p95 = n;
		if (!m->knee_users_p99 && o->slo_p99_s && pt.p99 > o->slo_p99_s)
			m->knee_users_p99 = n;
		/* Without an SLO, the users a pod holds are those at 80% of its capacity. */
		if ((o->slo_p95_s || o->slo_p99_s ? holds(o, &pt) : pt.x <= 0.8 * m->x_max) &&
		    m->slo_users == n - 1)
			m->slo_users = n;
		if (n % step == 0 && m->nclosed < PLAN_CURVE_MAX)
			m->closed[m->nclosed++] = pt;
	}
	err = 0;
cleanup:
	free(pts);
	free(res);
	return err;
}

static double round_up(double v, double unit)
{
	return ceil(v / unit - 1e-9) * unit;
}

static void recommend(struct plan_model *m, const struct plan_opts *o)
{
	struct plan_point pt;
	double in_flight;

	if (o->slo_p95_s || o->slo_p99_s)
		m->slo_rps = open_limit(m, o->slo_p95_s, o->slo_p99_s);
	if (!o->slo_p95_s && !o->slo_p99_s) {
		m->slo_rps = 0.8 * m->x_max;
		note(m, "no --slo: a pod is planned at 80%% of its bottleneck's capacity");
	} else if (m->slo_rps <= 0) {
		open_point(m, 0, &pt);
		m->slo_unreachable = true;
		m->slo_rps = 0.8 * m->x_max;
		note(m, "the SLO does not hold even without load (p95 %.3f s, p99 %.3f s as recorded): "
			"no number of replicas meets it; a pod is planned at 80%% of its bottleneck's "
			"capacity instead", pt.p95, pt.p99);
	}
	m->headroom = 1 + o->growth_per_min * o->scale_lag_s / 60;
	m->trigger_rps = m->slo_rps / m->headroom;
	note(m, "autoscaling headroom %.0f%%: load may grow %.0f%% a minute (--growth) during the "
		"%.0f s from the trigger to a new pod serving (--scale-lag: metrics, HPA sync, "
		"scheduling, start-up)",
	     (m->headroom - 1) * 100, o->growth_per_min * 100, o->scale_lag_s);
	if (o->target_rps > 0 && m->trigger_rps > 0)
		m->replicas_rps = (int)ceil(o->target_rps / m->trigger_rps - 1e-9);
	if (o->users > 0 && m->slo_users > 0)
		m->replicas_users = (int)ceil(o->users * m->headroom / m->slo_users - 1e-9);
	m->cpu_request = fmax(0.05, round_up(m->slo_rps * m->d_cpu, 0.01));
	m->cpu_limit_rec = m->cpu_limited ? m->cpu_limit : m->event_loop ? m->workers : 0;
	m->hpa_cpu_pct = (int)fmin(100, floor(100 * m->trigger_rps * m->d_cpu / m->cpu_request));
	open_point(m, m->slo_rps, &pt);
	in_flight = m->slo_rps * pt.r;
	if (!m->mem_samples)
		return;
	m->mem_request = round_up(m->mem_base + m->mem_slope * in_flight, 1 << 20);
	m->mem_limit_rec = round_up(fmax(1.25 * m->mem_request, 1.1 * m->mem_max), 1 << 20);
	/* A memory target only where memory follows load; a flat RSS would never trigger. */
	if (m->mem_slope * in_flight < 0.05 * m->mem_request) {
		note(m, "memory hardly follows load (%.1f MiB at the per-pod rate): no memory target "
			"in the HPA", m->mem_slope * in_flight / 1048576);
		return;
	}
	open_point(m, m->trigger_rps, &pt);
	m->hpa_mem_pct = (int)fmin(100, floor(100 * (m->mem_base + m->mem_slope * m->trigger_rps * pt.r) /
					      m->mem_request));
}

/* The pool, and which hold its service time is: measured, or PG time in older profiles. */
static void pool_notes(struct plan_model *m)
{
	note(m, "PostgreSQL pool %d: %s", m->pool, m->pool_from);
	if (m->hold_measured == m->ng)
		note(m, "a request holds a pool connection for %.1f ms (mix mean), measured per "
			"request: on each connection, from its first round trip's start to its last's "
			"end (the pool's reset included), statements and the work between them; the "
			"wait to acquire one and the work before the first statement are not held",
		     m->d_hold * 1e3);
	else if (m->hold_measured)
		note(m, "a request holds a pool connection for %.1f ms (mix mean): measured in %d "
			"of %d groups; the others' PostgreSQL time stands for it (an older agentprof "
			"recorded them, or their round trips were lost), without the work between "
			"statements",
		     m->d_hold * 1e3, m->hold_measured, m->ng);
	else
		note(m, "a request holds a pool connection for its PostgreSQL time (round trips "
			"open), %.1f ms (mix mean): the profile has no measured hold (pg_hold_ns; "
			"recorded by an older agentprof), so work between statements while holding "
			"it is not counted", m->d_hold * 1e3);
}

static void notes_cpu_fit(struct plan_model *m)
{
	const struct loadfit *f = &m->cpu_fit;

	if (f->fitted)
		note(m, "CPU per request falls as the CPU gets busier (an idle event loop is woken "
			"for each event, a busy one finds several per turn): %.2f ms + %.2f ms x the "
			"idle fraction, fitted over %d windows of %.0f s %.0f-%.0f%% busy (%d more "
			"off the line left out). Saturated at %.1f req/s, against %.1f had it stayed "
			"as measured",
		     f->sat * 1e3, f->idle * 1e3, f->windows, f->window_s, 100 * f->u_lo,
		     100 * f->u_hi, f->dropped,
		     m->st[0].capacity, m->x_max_flat);
	else
		note(m, "CPU per request as measured at every load: %s. An event loop spends less "
			"per request as it gets busier (fewer wakeups), so past saturation a "
			"CPU-bound plan errs low: record while the load changes (or plan from an "
			"exporter's /profile) to have it fitted",
		     f->why);
}

static void notes_model(struct plan_model *m)
{
	double x = m->requests / fmax(m->seconds, 1e-9);

	note(m, "service times exponential, stations product-form: exact MVA for closed "
		"populations, M/M/c (Erlang C) for open arrivals");
	note(m, "demands are the means the profile measured at its load (%.1f req/s, the "
		"bottleneck %.0f%% busy); but for the CPU's (next), they do not change with load "
		"(no cache, GC or lock effects)",
	     x, isfinite(m->x_max) && m->x_max > 0 ? 100 * fmin(1, x / m->x_max) : 0);
	notes_cpu_fit(m);
	note(m, "percentiles: the recorded response times of the mix plus the predicted wait in "
		"queue, independent of them: closed, an Erlang of the completions an arrival finds "
		"ahead (MVA marginals); open, exponential (M/M/c)");
	note(m, "CPU limit %.2f cores: %s", m->cpu_limit, m->cpu_limit_from);
	note(m, "%d worker process%s, %d thread%s reading requests: %s", m->workers,
	     m->workers > 1 ? "es" : "", m->threads, m->threads > 1 ? "s" : "",
	     m->event_loop ? "single-threaded event loop(s), one core each at most"
			   : "threads per request, as many cores as the limit gives");
	if (m->pool_from)
		pool_notes(m);
	else if (m->d_hold > 0)
		note(m, "no PostgreSQL pool size known (none seen, no --db-pool): PostgreSQL time is "
			"a delay, the pool never binds");
	note(m, "the database server and the upstreams have capacity to spare: their time is a "
		"delay (they are not in this pod)");
	note(m, "think time %.2f s: %s", m->think_s, m->think_from);
	if (m->mem_fitted)
		note(m, "memory: RSS = %.1f MiB + %.2f MiB per request in flight, fitted over %d "
			"one-second samples", m->mem_base / 1048576, m->mem_slope / 1048576,
		     m->mem_samples);
	else if (m->mem_samples)
		note(m, "memory: RSS %.1f MiB, flat (too little variation of requests in flight over "
			"%d samples to fit a slope)", m->mem_base / 1048576, m->mem_samples);
	else
		note(m, "memory: no RSS samples in the profile: no memory plan");
}

int plan_model__build(struct plan_model *m, struct profile *p, const struct plan_opts *o,
		      char *err, size_t errsz)
{
	const struct profile_run *run = profile__run(p);
	const struct services *svcs = profile__services(p);
	const struct profile_group **v;
	const struct service *svc;
	const char *name;
	size_t n;
	int i, e;

	memset(m, 0, sizeof(*m));
	m->opts = o;
	v = profile__sorted(p, &n);
	name = pick_service(v, n, o->service);
	if (!name || !n) {
		snprintf(err, errsz, "the profile has no requests: nothing to plan from");
		return -EINVAL;
	}
	snprintf(m->service, sizeof(m->service), "%s", name);
	for (i = 0; i < (int)n; i++)
		if (!strcmp(v[i]->service, m->service))
			m->requests += v[i]->requests;
	if (!m->requests) {
		snprintf(err, errsz, "no requests of service '%s' in the profile", m->service);
		return -EINVAL;
	}
	m->seconds = run->end_real_ns > run->start_real_ns
			     ? (run->end_real_ns - run->start_real_ns) / NS
			     : 0;
	e = pick_groups(m, v, n, o, err, errsz);
	if (e)
		return e;
	probe_overhead(m, p);
	mix_means(m);
	if (m->d_cpu <= 0) {
		snprintf(err, errsz, "the requests of %s show no CPU time: the profile cannot say what "
			 "a request costs", m->service);
		return -EINVAL;
	}
	svc = services__find(svcs, m->service);
	pod_cpu(m, svc, o);
	pod_pool(m, svc, o);
	loadfit__fit(svc, svcs->interval_ns / NS,
		     fmin(m->cpu_limit, m->event_loop ? m->workers : m->threads), &m->cpu_fit);
	if (o->pod_memory)
		m->mem_limit = o->pod_memory;
	else if (svc)
		m->mem_limit = svc->cgroup.memory_limit_bytes;
	add_stations(m);
	think_time(m, svc, svcs->interval_ns / NS, o);
	memory_fit(m, svc);
	e = base_distribution(m);
	if (e) {
		snprintf(err, errsz, "out of memory");
		return e;
	}
	notes_model(m);
	if (o->users && m->think_s < 0) {
		snprintf(err, errsz, "--users needs a think time: the profile has no samples of "
			 "connected clients to infer it from; give --think SECONDS");
		return -EINVAL;
	}
	open_curve(m, o);
	e = closed_curve(m, o);
	if (e) {
		snprintf(err, errsz, "the closed model failed: %s", strerror(-e));
		return e;
	}
	recommend(m, o);
	return 0;
}

void plan_model__free(struct plan_model *m)
{
	free(m->bv);
	free(m->bp);
	m->bv = m->bp = NULL;
}

const struct plan_point *plan_model__closed_at(const struct plan_model *m, double users)
{
	const struct plan_point *best = NULL;
	int i;

	for (i = 0; i < m->nclosed; i++)
		if (!best || fabs(m->closed[i].load - users) < fabs(best->load - users))
			best = &m->closed[i];
	return best;
}
