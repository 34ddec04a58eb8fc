// SPDX-License-Identifier: GPL-2.0-only
/*
 * What `agentprof plan` reads and builds: cgroup limits (v1 and v2, the
 * tightest on the path) from a fake /proc and /sys, the profile's services
 * section saved and read back, and the capacity model of a synthetic profile
 * whose answers are known by construction: saturation = CPU limit / CPU per
 * request, the pool binding when its hold time is the larger demand, think
 * time by Little's law, RSS = base + slope x in flight, a thin class refused.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentprof/request.h"
#include "cgroup.h"
#include "plan/model.h"
#include "profile.h"
#include "request.h"
#include "services.h"
#include "test.h"

static char root[] = "/tmp/test_plan-XXXXXX";

static void put(const char *rel, const char *text)
{
	char path[512], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (slash = strchr(path + strlen(root) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void test_cgroup(void)
{
	struct service_cgroup c;

	put("proc/self/mountinfo",
	    "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:5 - cgroup cgroup rw,cpu\n"
	    "31 25 0:27 / /sys/fs/cgroup/memory rw,relatime shared:6 - cgroup cgroup rw,memory\n"
	    "32 25 0:28 / /sys/fs/cgroup/unified rw,relatime shared:7 - cgroup2 cgroup2 rw\n");
	put("proc/100/cgroup", "4:memory:/pod/app\n2:cpu:/pod/app\n0::/\n");
	/* The parent's quota is the tighter: 0.5 core binds the child's 2. */
	put("sys/fs/cgroup/cpu/pod/cpu.cfs_quota_us", "50000\n");
	put("sys/fs/cgroup/cpu/pod/cpu.cfs_period_us", "100000\n");
	put("sys/fs/cgroup/cpu/pod/app/cpu.cfs_quota_us", "200000\n");
	put("sys/fs/cgroup/cpu/pod/app/cpu.cfs_period_us", "100000\n");
	put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
	put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
	put("sys/fs/cgroup/memory/pod/app/memory.limit_in_bytes", "268435456\n");
	put("sys/fs/cgroup/memory/pod/memory.limit_in_bytes", "9223372036854771712\n");
	ASSERT_EQ(cgroup__read(root, 100, &c), 0, "v1: read");
	ASSERT_EQ(c.version, 1, "v1: version");
	ASSERT_STREQ(c.path, "/pod/app", "v1: the cpu controller's path");
	ASSERT_NEAR(c.cpu_limit_cores, 0.5, 1e-12, "v1: the parent's quota binds");
	ASSERT_EQ(c.cpu_quota_us, 50000, "v1: quota");
	ASSERT_EQ(c.memory_limit_bytes, 268435456, "v1: memory.limit_in_bytes; unlimited parent");

	put("proc/200/cgroup", "0::/kubepods/pod1\n");
	put("proc/self/mountinfo", "40 1 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
	put("sys/fs/cgroup/kubepods/pod1/cpu.max", "150000 100000\n");
	put("sys/fs/cgroup/kubepods/pod1/memory.max", "max\n");
	put("sys/fs/cgroup/kubepods/memory.max", "1073741824\n");
	put("sys/fs/cgroup/kubepods/cpu.max", "max 100000\n");
	ASSERT_EQ(cgroup__read(root, 200, &c), 0, "v2: read");
	ASSERT_EQ(c.version, 2, "v2: version");
	ASSERT_NEAR(c.cpu_limit_cores, 1.5, 1e-12, "v2: cpu.max 150000 100000");
	ASSERT_EQ(c.memory_limit_bytes, 1073741824, "v2: the parent's memory.max binds");
	ASSERT_EQ(cgroup__read(root, 300, &c), -ENOENT, "no such process: -ENOENT");
}

/*
 * One request of class cls: cpu ms of CPU, dur ms long, pg ms of PostgreSQL
 * time, holding pool connections for hold ms (< 0: not measured, as an older
 * agentprof recorded).
 */
static void add_request_held(struct profile *p, const char *cls, double cpu, double dur, double pg,
			     double hold)
{
	struct ap_request_event ev;
	struct request req;
	char head[256];

	memset(&ev, 0, sizeof(ev));
	snprintf(head, sizeof(head), "POST /q HTTP/1.1\r\nX-Request-Class: %s\r\n\r\n", cls);
	ev.id = 1;
	ev.pid = 100;
	ev.tid = 100;
	memcpy(ev.comm, "svc", 4);
	ev.start_ns = 1000;
	ev.first_tx_ns = ev.last_tx_ns = ev.start_ns + (uint64_t)(dur * 1e6);
	ev.end_ns = ev.last_tx_ns;
	ev.cpu_ns = (uint64_t)(cpu * 1e6);
	ev.pg_time_ns = (uint64_t)(pg * 1e6);
	ev.pg_round_trips = pg > 0;
	ev.head_len = strlen(head);
	memcpy(ev.head, head, ev.head_len);
	memcpy(ev.resp, "HTTP/1.1 200 OK\r\n", 17);
	ev.resp_len = 17;
	if (request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096}))
		return;
	req.pg_hold_known = hold >= 0;
	req.pg_hold_ns = hold >= 0 ? (uint64_t)(hold * 1e6) : 0;
	profile__add(p, &req);
}

static void add_request(struct profile *p, const char *cls, double cpu, double dur, double pg)
{
	add_request_held(p, cls, cpu, dur, pg, -1);
}

/* 10 clients, 4 requests a second, RSS = 100 MiB + 2 MiB x in flight. */
static void add_service(struct profile *p, double cores, int pool)
{
	struct service *svc = services__get(profile__services(p), "svc");
	struct service_sample *s;
	size_t i;

	service__add_pid(svc, 100);
	service__add_tid(svc, 100);
	svc->cgroup.version = 1;
	svc->cgroup.cpu_limit_cores = cores;
	svc->cgroup.host_cpus = 8;
	svc->pg_conns_max = pool;
	for (i = 0; i < 60; i++) {
		s = service__sample(svc, i);
		s->measured = true;
		s->clients = 10;
		s->arrivals = 4;
		s->in_flight = i % 5;
		s->rss_bytes = (100 + 2 * (i % 5)) << 20;
		s->pg_conns = pool;
		s->cpu_ns = (i + 1) * 40000000ULL; /* 4 arrivals of 10 ms each a second */
	}
	profile__run(p)->start_real_ns = 1;
	profile__run(p)->end_real_ns = 1 + 60000000000ULL;
}

static struct profile *synthetic(double pg_ms, int pool)
{
	struct profile *p = profile__new();
	int i;

	for (i = 0; i < 100; i++)
		add_request(p, "simple", 10, 200, pg_ms);
	add_service(p, 0.5, pool);
	return p;
}

static void test_model(void)
{
	struct plan_model *m = calloc(1, sizeof(*m));
	struct profile *p = synthetic(5, 4);
	struct plan_opts o;
	char err[512];

	plan_opts__defaults(&o);
	o.slo_p95_s = 1;
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "model builds: %.150s", err);
	ASSERT_NEAR(m->x_max, 0.5 / 0.010, 0.5 / 0.010 * 0.04, "saturation = 0.5 core / 10 ms");
	ASSERT_EQ(m->bottleneck, 0, "the CPU binds");
	ASSERT_TRUE(m->event_loop, "one thread reads requests: an event loop");
	ASSERT_EQ(m->pool, 4, "the pool: the connections seen");
	ASSERT_NEAR(m->think_s, 10 / 4.0 - m->r0, 1e-9, "think time: clients / X - R");
	ASSERT_NEAR(m->mem_base, 100 << 20, 1 << 10, "memory base fitted");
	ASSERT_NEAR(m->mem_slope, 2 << 20, 1 << 10, "memory per request in flight fitted");
	ASSERT_TRUE(m->nclosed > 0 && m->closed[m->nclosed - 1].x <= m->x_max * 1.0001,
		    "closed curve bounded by the saturation");
	ASSERT_TRUE(m->knee_users_p95 > 0, "the knee is crossed within the curve");
	ASSERT_TRUE(m->slo_rps > 0 && m->slo_rps < m->x_max, "the SLO holds below saturation");
	plan_model__free(m);
	profile__free(p);

	/* 30 ms of PostgreSQL per request on a pool of 1: 33 req/s, below the CPU's 50. */
	p = synthetic(30, 1);
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "pool model builds: %.150s", err);
	ASSERT_STREQ(m->st[m->bottleneck].name, "PostgreSQL pool", "the pool binds");
	ASSERT_NEAR(m->x_max, 1 / 0.030, 1 / 0.030 * 0.04, "saturation = 1 connection / 30 ms");
	plan_model__free(m);
	o.db_pool = 4;
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "--db-pool 4 builds: %.150s", err);
	ASSERT_EQ(m->bottleneck, 0, "--db-pool 4: the CPU binds again");
	plan_model__free(m);
	profile__free(p);

	/* A class of 5 requests in a mix that asks for it. */
	p = synthetic(5, 4);
	add_request(p, "complex", 50, 900, 0);
	plan_opts__defaults(&o);
	o.nmix = 1;
	snprintf(o.mix[0].key, sizeof(o.mix[0].key), "complex");
	o.mix[0].weight = 1;
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), -EINVAL, "thin class: refused");
	ASSERT_TRUE(strstr(err, "too few to plan from") != NULL, "thin class: says why: %.150s", err);
	plan_model__free(m);
	profile__free(p);
	free(m);
}

static bool has_note(const struct plan_model *m, const char *what)
{
	int i;

	for (i = 0; i < m->nnotes; i++)
		if (strstr(m->notes[i], what))
			return true;
	return false;
}

/* The pool's service time: the measured hold, or the PG time in older profiles. */
static void test_hold(void)
{
	struct plan_model *m = calloc(1, sizeof(*m));
	struct profile *p = profile__new(), *q = NULL;
	char path[] = "/tmp/test_plan_hold-XXXXXX", err[512];
	struct plan_opts o;
	int i, fd;

	/* 5 ms of PG time inside a 40 ms hold, on a pool of 1: 25 req/s, below the CPU's 50. */
	for (i = 0; i < 100; i++)
		add_request_held(p, "simple", 10, 200, 5, 40);
	add_service(p, 0.5, 1);
	plan_opts__defaults(&o);
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "held: builds: %.150s", err);
	ASSERT_NEAR(m->d_hold, 0.040, 0.040 * 0.04, "held: the pool's service time is the hold");
	ASSERT_STREQ(m->st[m->bottleneck].name, "PostgreSQL pool", "held: the pool binds");
	ASSERT_NEAR(m->x_max, 1 / 0.040, 1 / 0.040 * 0.04, "held: saturation = 1 connection / 40 ms");
	ASSERT_TRUE(has_note(m, "measured per request"), "held: the assumption says so");
	plan_model__free(m);

	/* Saved and read back, the hold is still there. */
	fd = mkstemp(path);
	close(fd);
	ASSERT_EQ(profile__write_json(p, path, NULL), 0, "held: profile written");
	q = profile__load(path, err, sizeof(err));
	ASSERT_TRUE(q != NULL, "held: read back: %.150s", q ? "" : err);
	if (q) {
		ASSERT_EQ(plan_model__build(m, q, &o, err, sizeof(err)), 0, "read back: builds");
		ASSERT_NEAR(m->d_hold, 0.040, 0.040 * 0.04, "read back: the same hold");
		plan_model__free(m);
		profile__free(q);
	}
	unlink(path);
	profile__free(p);

	/* Without pg_hold_ns: the PG time stands for the hold, and the note says so. */
	p = synthetic(5, 1);
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "old: builds: %.150s", err);
	ASSERT_NEAR(m->d_hold, 0.005, 0.005 * 0.04, "old: the pool's service time is the PG time");
	ASSERT_EQ(m->bottleneck, 0, "old: the CPU binds");
	ASSERT_TRUE(has_note(m, "no measured hold"), "old: the assumption says so");
	plan_model__free(m);
	profile__free(p);
	free(m);
}

static void test_services_roundtrip(void)
{
	struct profile *p = synthetic(5, 4), *q;
	char path[] = "/tmp/test_plan_profile-XXXXXX", err[256];
	const struct service *a, *b;
	int fd = mkstemp(path);

	close(fd);
	ASSERT_EQ(profile__write_json(p, path, NULL), 0, "profile with services written");
	q = profile__load(path, err, sizeof(err));
	ASSERT_TRUE(q != NULL, "read back: %.150s", q ? "" : err);
	if (q) {
		a = services__find(profile__services(p), "svc");
		b = services__find(profile__services(q), "svc");
		ASSERT_TRUE(b != NULL, "the service is read back");
		if (b) {
			ASSERT_EQ(b->nsamples, a->nsamples, "samples read back");
			ASSERT_EQ(b->samples[3].rss_bytes, a->samples[3].rss_bytes, "RSS read back");
			ASSERT_EQ(b->samples[3].cpu_ns, a->samples[3].cpu_ns, "CPU time read back");
			ASSERT_NEAR(b->samples[3].in_flight, a->samples[3].in_flight, 1e-9,
				    "in flight read back");
			ASSERT_EQ(b->pg_conns_max, 4, "pool hint read back");
			ASSERT_NEAR(b->cgroup.cpu_limit_cores, 0.5, 1e-12, "cgroup read back");
			ASSERT_EQ(b->ntids, 1, "request threads read back");
		}
		profile__free(q);
	}
	unlink(path);
	profile__free(p);
}

/* The exporter's window: the last `window` intervals, the oldest dropped an eighth at a time. */
static void test_services_window(void)
{
	struct profile *p = profile__new(), *q;
	struct services *svcs = profile__services(p);
	char path[] = "/tmp/test_plan_window-XXXXXX", err[256];
	const struct service *b;
	struct service *svc;
	size_t i;
	int fd;

	svcs->window = 80;
	svc = services__get(svcs, "svc");
	for (i = 0; i < 200; i++)
		service__sample(svc, i)->rss_bytes = i;
	ASSERT_TRUE(svc->nsamples <= 80, "no more than the window kept (%zu)", svc->nsamples);
	ASSERT_TRUE(svc->nsamples >= 70, "the window less an eighth at least (%zu)", svc->nsamples);
	ASSERT_EQ(svc->first + svc->nsamples, 200, "the newest interval is the last kept");
	ASSERT_EQ(svc->samples[0].rss_bytes, svc->first, "each kept sample is its interval's");
	ASSERT_TRUE(service__sample(svc, svc->first - 1) == NULL, "a dropped interval is refused");
	ASSERT_TRUE(service__sample(svc, svc->first + 5) == &svc->samples[5],
		    "a kept interval is found");
	ASSERT_EQ(svc->samples[svc->nsamples - 1].rss_bytes, 199, "the newest sample kept");
	/* A jump past the whole window keeps nothing older. */
	service__sample(svc, 1000)->rss_bytes = 1000;
	ASSERT_EQ(svc->first + svc->nsamples, 1001, "a jump: the timeline ends at the new interval");
	ASSERT_TRUE(svc->nsamples <= 80, "a jump: within the window");
	ASSERT_EQ(svc->samples[svc->nsamples - 2].rss_bytes, 0, "a jump: the gap is empty");

	fd = mkstemp(path);
	close(fd);
	ASSERT_EQ(profile__write_json(p, path, NULL), 0, "windowed profile written");
	q = profile__load(path, err, sizeof(err));
	ASSERT_TRUE(q != NULL, "windowed profile read back: %.150s", q ? "" : err);
	b = q ? services__find(profile__services(q), "svc") : NULL;
	ASSERT_TRUE(b && b->first == svc->first && b->nsamples == svc->nsamples,
		    "the window's start and length read back");
	if (q)
		profile__free(q);
	unlink(path);

	services__get(svcs, "other");
	services__remove(svcs, "svc");
	ASSERT_EQ(svcs->n, 1, "a forgotten service is removed");
	ASSERT_TRUE(services__find(svcs, "other") != NULL, "the others stay");
	profile__free(p);
}

/*
 * A loop on one core whose CPU per request is 30 ms + 6 ms x its idle
 * fraction: n intervals of 1 s with `arrivals` each, from interval `from`.
 * A second of a arrivals keeps it u busy with u = a (0.036 - 0.006 u).
 */
static void loop_phase(struct service *svc, size_t from, size_t n, int arrivals, uint64_t *cum)
{
	double u = arrivals * 0.036 / (1 + arrivals * 0.006);
	struct service_sample *s;
	size_t i;

	for (i = from; i < from + n; i++) {
		s = service__sample(svc, i);
		s->measured = true;
		s->arrivals = arrivals;
		*cum += (uint64_t)(u * 1e9);
		s->cpu_ns = *cum;
	}
}

static void test_loadfit(void)
{
	struct services *svcs = services__new();
	struct service *svc = services__get(svcs, "loop"), *flat = services__get(svcs, "flat");
	uint64_t cum = 1, cum2 = 1;
	struct loadfit f;
	double u10 = 10 * 0.036 / 1.06;

	svc->cgroup.host_cpus = 2;
	loop_phase(svc, 0, 100, 10, &cum);
	loop_phase(svc, 100, 100, 20, &cum);
	loadfit__fit(svc, 1, 1, &f);
	ASSERT_TRUE(f.fitted, "two loads: fitted (%s)", f.why);
	/* The window across the change of load mixes the two: off the line, left out. */
	ASSERT_EQ(f.dropped, 1, "the window across the change of load is left out");
	ASSERT_EQ(f.windows, 18, "the other 18 windows are used");
	ASSERT_NEAR(f.sat, 0.030, 1e-6, "saturated CPU per request: 30 ms");
	ASSERT_NEAR(f.idle, 0.006, 1e-6, "what an idle loop adds: 6 ms");
	ASSERT_NEAR(f.u_lo, u10, 1e-4, "the lighter load's busy fraction");
	ASSERT_NEAR(loadfit__factor(&f, f.u_mean), 1, 1e-12, "factor 1 at the profile's load");
	ASSERT_NEAR(loadfit__factor(&f, 1) * (f.sat + f.idle * (1 - f.u_mean)), f.sat, 1e-12,
		    "saturated: the profile's mean times the factor is 30 ms");

	flat->cgroup.host_cpus = 2;
	loop_phase(flat, 0, 200, 10, &cum2);
	loadfit__fit(flat, 1, 1, &f);
	ASSERT_FALSE(f.fitted, "one load: not fitted");
	ASSERT_TRUE(strstr(f.why, "barely varied") != NULL, "one load: says why (%s)", f.why);
	ASSERT_NEAR(loadfit__factor(&f, 1), 1, 0, "not fitted: factor 1");

	/* A worker exiting makes the cumulative CPU fall: that window is left out. */
	svc->samples[150].cpu_ns = 5;
	loadfit__fit(svc, 1, 1, &f);
	ASSERT_EQ(f.windows, 16, "the windows either side of a CPU that went backwards are left out");
	ASSERT_NEAR(f.sat, 0.030, 1e-6, "and the fit stands");

	svc = services__get(svcs, "unread");
	loop_phase(svc, 0, 100, 10, &cum);
	for (cum = 0; cum < 100; cum++)
		svc->samples[cum].cpu_ns = 0;
	loadfit__fit(svc, 1, 1, &f);
	ASSERT_TRUE(!f.fitted && f.windows == 0, "no CPU read (an older profile): not fitted");
	services__free(svcs);
}

/* The plan of a recording across two loads: the loop saturates past the flat estimate. */
static void test_model_loadfit(void)
{
	struct plan_model *m = calloc(1, sizeof(*m));
	struct profile *p = profile__new();
	struct service *svc;
	struct plan_opts o;
	uint64_t cum = 1;
	char err[512];
	int i;

	for (i = 0; i < 100; i++)
		add_request(p, "simple", 34, 200, 0);
	add_service(p, 1, 0);
	svc = services__get(profile__services(p), "svc");
	loop_phase(svc, 0, 30, 10, &cum);
	loop_phase(svc, 30, 30, 20, &cum);
	plan_opts__defaults(&o);
	ASSERT_EQ(plan_model__build(m, p, &o, err, sizeof(err)), 0, "model builds: %.150s", err);
	ASSERT_TRUE(m->cpu_fit.fitted, "the CPU's load fitted (%s)", m->cpu_fit.why);
	ASSERT_NEAR(m->x_max, m->x_max_flat / loadfit__factor(&m->cpu_fit, 1), 1e-9,
		    "saturation: the flat estimate over the saturated factor");
	ASSERT_TRUE(m->x_max > m->x_max_flat * 1.05, "the loop saturates later than measured "
		    "CPU per request says (%.1f vs %.1f)", m->x_max, m->x_max_flat);
	ASSERT_TRUE(m->nclosed > 0 && m->closed[m->nclosed - 1].x <= m->x_max * 1.0001 &&
		    m->closed[m->nclosed - 1].x > m->x_max * 0.97,
		    "the closed curve rises to the fitted saturation (%.2f of %.2f)",
		    m->closed[m->nclosed - 1].x, m->x_max);
	plan_model__free(m);
	profile__free(p);
	free(m);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_cgroup();
	test_model();
	test_hold();
	test_services_roundtrip();
	test_services_window();
	test_loadfit();
	test_model_loadfit();
	if (fork() == 0)
		execlp("rm", "rm", "-rf", root, (char *)NULL);
	return test_report();
}
