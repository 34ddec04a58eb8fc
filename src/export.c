// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof export`: the long-running front end over the collector. It
 * traces every process with a listening TCP socket (or the -p ones), looks
 * for new ones every --rescan seconds without reloading BPF, files each
 * request under its service (service.h) within the cardinality caps
 * (cap.h), and serves the live profile over HTTP (export_http.h):
 * /metrics (prometheus.h), /profile, /healthz, /readyz.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "agentprof/request.h"
#include "cap.h"
#include "collector.h"
#include "export.h"
#include "export_http.h"
#include "listeners.h"
#include "peers.h"
#include "pg.h"
#include "plan/capacity.h"
#include "procs.h"
#include "profile.h"
#include "privileges.h"
#include "prometheus.h"
#include "service.h"
#include "services.h"
#include "tracefs.h"

#define MAX_BUCKETS 64
#define MAX_FIGURES 128
#define PID_BUCKETS 4096
/* Intervals of the services' samples /profile keeps: an hour of seconds (141 KiB a service). */
#define EXPORT_SAMPLE_WINDOW 3600
/* /healthz fails when the ring buffer was not drained for this long. */
#define HEALTHY_DRAIN_S 5.0

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

/* A service seen on this host: its identity and what was last sampled of it. */
struct svc {
	struct service_id id;
	uint64_t rss_bytes, in_flight;
	unsigned int processes;
	uint64_t gone_since_ns; /* 0 while a traced process of it lives */
	struct svc *next;
};

/* What one route's requests did with one peer (per route and peer metrics). */
struct route_peer {
	char service[SERVICE_KEY_MAX];
	char route[ROUTE_MAX];
	char peer[PEER_NAME_MAX];
	int kind;
	uint64_t calls, wait_ns;
	struct route_peer *next;
};

/* Which service a pid belongs to, kept until the pid is gone. */
struct pid_svc {
	pid_t pid;
	struct svc *svc;
	struct pid_svc *next;
};

struct exporter {
	const struct env *env;
	struct collector col;
	struct profile *profile;
	pthread_mutex_t lock; /* the profile, peers, statements, services and caps */
	struct cap *routes, *classes, *services, *peers, *statements, *groups, *route_peers;
	struct route_peer *rps;
	size_t nrps;
	struct svc *svcs, other;
	struct pid_svc *pids[PID_BUCKETS];
	struct service_rule rules[ENV_MAX_SERVICE_RULES];
	int nrules;
	double duration_b[MAX_BUCKETS], cpu_b[MAX_BUCKETS];
	size_t nduration, ncpu;
	struct collector_figure maps[8];
	size_t nmaps;
	bool stats_on, ready;
	char kernel[128], mode[96];
	uint64_t start_real_ns;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static struct svc *svc_by_key(struct exporter *x, const char *key)
{
	struct svc *s;

	for (s = x->svcs; s; s = s->next)
		if (!strcmp(s->id.key, key))
			return s;
	return NULL;
}

/*
 * The service of key, created on first sight (with id, or named key alone);
 * the (other) service past the cap.
 */
static struct svc *svc_get(struct exporter *x, const char *key, const struct service_id *id)
{
	struct svc *s = svc_by_key(x, key);

	if (s)
		return s;
	if (!cap__admit(x->services, "", key))
		return &x->other;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (id) {
		s->id = *id;
	} else {
		snprintf(s->id.key, sizeof(s->id.key), "%s", key);
		snprintf(s->id.name, sizeof(s->id.name), "%s", key);
	}
	s->next = x->svcs;
	x->svcs = s;
	return s;
}

/* The service of pid, identified on first sight. */
static struct svc *pid_service(struct exporter *x, pid_t pid)
{
	struct pid_svc **b = &x->pids[pid % PID_BUCKETS], *p;
	struct service_id id;
	struct svc *s;

	for (p = *b; p; p = p->next)
		if (p->pid == pid)
			return p->svc;
	if (service__identify(pid, x->rules, x->nrules, x->env->ex.logs_root, &id))
		return NULL;
	s = svc_get(x, id.key, &id);
	if (!s)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return s;
	p->pid = pid;
	p->svc = s;
	p->next = *b;
	*b = p;
	return s;
}

static void forget_pid(struct exporter *x, pid_t pid)
{
	struct pid_svc **link = &x->pids[pid % PID_BUCKETS], *p;

	for (; (p = *link); link = &p->next) {
		if (p->pid == pid) {
			*link = p->next;
			free(p);
			return;
		}
	}
}

static struct route_peer *route_peer_get(struct exporter *x, const char *service, const char *route,
					 const char *peer, int kind)
{
	char key[SERVICE_KEY_MAX + ROUTE_MAX + PEER_NAME_MAX + 4];
	struct route_peer *rp;

	for (rp = x->rps; rp; rp = rp->next)
		if (!strcmp(rp->peer, peer) && !strcmp(rp->route, route) &&
		    !strcmp(rp->service, service))
			return rp;
	snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", service, route, peer);
	/* Past the cap, a service's pairs add up in one (other) pair of its own. */
	if ((strcmp(route, CAP_OTHER) || strcmp(peer, CAP_OTHER)) &&
	    !cap__admit(x->route_peers, "", key))
		return route_peer_get(x, service, CAP_OTHER, CAP_OTHER, kind);
	rp = calloc(1, sizeof(*rp));
	if (!rp)
		return NULL;
	snprintf(rp->service, sizeof(rp->service), "%s", service);
	snprintf(rp->route, sizeof(rp->route), "%s", route);
	snprintf(rp->peer, sizeof(rp->peer), "%s", peer);
	rp->kind = kind;
	rp->next = x->rps;
	x->rps = rp;
	x->nrps++;
	return rp;
}

/* Each peer the request talked to, under its route. */
static void add_route_peers(struct exporter *x, const char *service, const struct request *req)
{
	const struct ap_request_event *ev = req->ev;
	uint64_t w = x->env->sample_every ?: 1;
	char name[PEER_NAME_MAX];
	struct route_peer *rp;
	uint32_t i;

	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++) {
		const struct ap_peer *p = &ev->peers[i];

		peers__name(x->col.peers, p->family, p->addr, p->port, name, sizeof(name));
		rp = route_peer_get(x, service, req->route, name, p->kind);
		if (!rp)
			continue;
		rp->calls += p->calls * w;
		rp->wait_ns += p->wait_ns * w;
	}
}

static void forget_route_peers(struct exporter *x, const char *service)
{
	struct route_peer **link = &x->rps, *rp;

	while ((rp = *link)) {
		if (strcmp(rp->service, service)) {
			link = &rp->next;
			continue;
		}
		*link = rp->next;
		free(rp);
		x->nrps--;
	}
}

/* One decoded request (collector.h, called with x->lock held). */
static void exporter__on_request(void *ctx, struct request *req)
{
	struct exporter *x = ctx;
	struct svc *s = pid_service(x, req->ev->pid);
	char group[SERVICE_KEY_MAX + ROUTE_MAX + HTTP_METHOD_MAX + HTTP_HDR_VAL_MAX + 16];
	char comm[AP_COMM_LEN + 1];
	const char *key;

	/* A process gone before it could be identified keeps its command name. */
	snprintf(comm, sizeof(comm), "%.*s", AP_COMM_LEN, req->ev->comm);
	if (!s)
		s = svc_get(x, comm, NULL);
	key = s ? s->id.key : CAP_OTHER;

	if (!cap__admit(x->routes, key, req->route))
		snprintf(req->route, sizeof(req->route), "%s", CAP_OTHER);
	if (req->head.request_class[0] && !cap__admit(x->classes, key, req->head.request_class))
		snprintf(req->head.request_class, sizeof(req->head.request_class), "%s", CAP_OTHER);
	/*
	 * Each group holds its histograms (~160 KiB of RSS once used): the
	 * groups of the whole node have a cap of their own. What is refused
	 * keeps its service, method and status under the (other) route.
	 */
	snprintf(group, sizeof(group), "%s\x1f%s\x1f%s\x1f%d\x1f%s", key, req->route,
		 req->head.method, req->status, req->head.request_class);
	if (strcmp(req->route, CAP_OTHER) && !cap__admit(x->groups, "", group)) {
		snprintf(req->route, sizeof(req->route), "%s", CAP_OTHER);
		req->head.request_class[0] = '\0';
	}
	req->service = key;
	add_route_peers(x, key, req);
	if (profile__add(x->profile, req))
		fprintf(stderr, "agentprof: out of memory adding a request to the profile\n");
}

static const struct service_id *lookup_service(void *ctx, const char *key)
{
	struct exporter *x = ctx;
	struct svc *s = svc_by_key(x, key);

	return s ? &s->id : !strcmp(key, CAP_OTHER) ? &x->other.id : NULL;
}

/* --- discovery and sampling (main thread) --- */

static void add_listener(pid_t pid, void *ctx)
{
	struct exporter *x = ctx;

	if (collector__traced(&x->col, pid))
		return;
	collector__add_pid(&x->col, pid);
	if (x->env->verbose)
		fprintf(stderr, "agentprof: tracing pid %d (a listening TCP socket)\n", (int)pid);
}

static void exporter__rescan(struct exporter *x)
{
	int i;

	if (!x->env->npids) {
		listeners__for_each(getpid(), add_listener, x);
	} else {
		/* -p: the named processes' children forked before us are picked up too. */
		for (i = 0; i < x->env->npids; i++)
			if (procs__exists(x->env->pids[i]))
				collector__add_target(&x->col, x->env->pids[i]);
	}
	/* New CPython processes get the runtime reader (task-aware attribution). */
	pthread_mutex_lock(&x->lock);
	collector__find_runtimes(&x->col);
	pthread_mutex_unlock(&x->lock);
}

static void count_process(pid_t pid, void *ctx)
{
	struct exporter *x = ctx;
	char path[64];
	unsigned long pages = 0;
	struct svc *s;
	FILE *f;

	s = pid_service(x, pid);
	if (!s)
		return;
	s->processes++;
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fscanf(f, "%*u %lu", &pages) == 1)
		s->rss_bytes += pages * (uint64_t)sysconf(_SC_PAGESIZE);
	fclose(f);
}

/* The pids of the requests open at the sample, gathered without the lock. */
struct open_pids {
	pid_t *v;
	size_t n, cap;
};

static void note_open_request(pid_t pid, void *ctx)
{
	struct open_pids *o = ctx;
	size_t cap;
	pid_t *v;

	if (o->n == o->cap) {
		/* The capacity grows only with the array: a failed realloc leaves both. */
		cap = o->cap ? o->cap * 2 : 64;
		v = realloc(o->v, cap * sizeof(*v));
		if (!v)
			return;
		o->v = v;
		o->cap = cap;
	}
	o->v[o->n++] = pid;
}

/* Drops the series of services with no traced process for --forget seconds. */
static void exporter__forget(struct exporter *x, uint64_t now)
{
	struct svc **link = &x->svcs, *s;
	uint64_t after = x->env->ex.forget_s * 1000000000ULL;
	size_t i;

	while ((s = *link)) {
		if (s->processes) {
			s->gone_since_ns = 0;
		} else if (!s->gone_since_ns) {
			s->gone_since_ns = now;
		} else if (now - s->gone_since_ns >= after) {
			profile__remove_service(x->profile, s->id.key);
			services__remove(profile__services(x->profile), s->id.key);
			cap__forget_scope(x->routes, s->id.key);
			cap__forget_scope(x->classes, s->id.key);
			cap__forget_prefix(x->groups, "", s->id.key);
			cap__forget_prefix(x->route_peers, "", s->id.key);
			forget_route_peers(x, s->id.key);
			cap__remove(x->services, "", s->id.key);
			for (i = 0; i < PID_BUCKETS; i++) {
				struct pid_svc **pl = &x->pids[i], *p;

				while ((p = *pl)) {
					if (p->svc == s) {
						*pl = p->next;
						free(p);
					} else {
						pl = &p->next;
					}
				}
			}
			if (x->env->verbose)
				fprintf(stderr, "agentprof: service %s gone: its series dropped\n",
					s->id.key);
			*link = s->next;
			free(s);
			continue;
		}
		link = &s->next;
	}
}

static void prune_pid(pid_t pid, void *ctx)
{
	struct exporter *x = ctx;

	if (!procs__exists(pid))
		forget_pid(x, pid);
}

static void exporter__sample(struct exporter *x)
{
	struct open_pids open = {};
	struct collector_figure maps[8];
	struct svc *s;
	size_t n, i;

	/*
	 * Reading the slots and walking the hash maps takes milliseconds: done
	 * before taking the lock, so that a scrape does not wait for it (the
	 * main thread is the only one that consumes records).
	 */
	n = collector__map_fill(&x->col, maps, 8, note_open_request, &open);
	collector__prune(&x->col);
	pthread_mutex_lock(&x->lock);
	/* Pids that are gone leave the cache (and their bits the bitmap) first. */
	for (i = 0; i < PID_BUCKETS; i++) {
		struct pid_svc *p, *next;

		for (p = x->pids[i]; p; p = next) {
			next = p->next;
			prune_pid(p->pid, x);
		}
	}
	for (s = x->svcs; s; s = s->next)
		s->rss_bytes = s->in_flight = s->processes = 0;
	x->other.rss_bytes = x->other.in_flight = x->other.processes = 0;
	collector__for_each_target(&x->col, count_process, x);
	for (i = 0; i < open.n; i++) {
		s = pid_service(x, open.v[i]);
		if (s)
			s->in_flight++;
	}
	free(open.v);
	memcpy(x->maps, maps, n * sizeof(maps[0]));
	x->nmaps = n;
	exporter__forget(x, now_ns(CLOCK_MONOTONIC));
	pthread_mutex_unlock(&x->lock);
}

/* --- HTTP (the server's thread) --- */

static void self_stats(struct prom_input *in)
{
	unsigned long utime = 0, stime = 0, vsize = 0;
	unsigned long long start = 0;
	long rss = 0, tck = sysconf(_SC_CLK_TCK);
	char buf[1024], *p;
	struct rlimit rl;
	struct dirent *de;
	FILE *f;
	DIR *d;

	f = fopen("/proc/self/stat", "r");
	if (f && fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')))
		sscanf(p + 2,
		       "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
		       "%*d %*d %llu %lu %ld",
		       &utime, &stime, &start, &vsize, &rss);
	if (f)
		fclose(f);
	in->cpu_seconds = (double)(utime + stime) / tck;
	in->virtual_bytes = vsize;
	in->resident_bytes = (uint64_t)rss * sysconf(_SC_PAGESIZE);
	/* Boot time + the start in ticks since boot. */
	in->start_time_s = (double)(now_ns(CLOCK_REALTIME) - now_ns(CLOCK_BOOTTIME)) / 1e9 +
			   (double)start / tck;
	in->open_fds = 0;
	d = opendir("/proc/self/fd");
	while (d && (de = readdir(d)))
		if (de->d_name[0] != '.')
			in->open_fds++;
	if (d)
		closedir(d);
	if (!getrlimit(RLIMIT_NOFILE, &rl))
		in->max_fds = rl.rlim_cur;
}

static struct prom_count figure(const char *label, uint64_t value, uint64_t limit)
{
	return (struct prom_count){ .label = label, .value = value, .limit = limit };
}

static void render_metrics(struct exporter *x, bool om, struct export_http_response *r)
{
	struct collector_figure progs[MAX_FIGURES];
	struct prom_count lost[9], caps[7], pc[MAX_FIGURES], mc[8];
	struct prom_service *svcs = NULL;
	struct prom_route_peer *rps;
	struct route_peer *rp;
	struct prom_input in = {};
	size_t nsvcs = 0, i, n;
	struct svc *s;
	FILE *out;

	out = open_memstream(&r->body, &r->len);
	if (!out)
		return;
	pthread_mutex_lock(&x->lock);
	for (s = x->svcs; s; s = s->next)
		nsvcs++;
	svcs = calloc(nsvcs + 1, sizeof(*svcs));
	nsvcs = 0;
	for (s = x->svcs; s && svcs; s = s->next)
		svcs[nsvcs++] = (struct prom_service){ .id = &s->id,
						       .rss_bytes = s->rss_bytes,
						       .in_flight = s->in_flight,
						       .processes = s->processes };
	if (svcs && x->other.processes)
		svcs[nsvcs++] = (struct prom_service){ .id = &x->other.id,
						       .rss_bytes = x->other.rss_bytes,
						       .in_flight = x->other.in_flight,
						       .processes = x->other.processes };
	peers__clear_totals(x->col.peers);
	collector__read_peer_totals(&x->col);
	rps = calloc(x->nrps + 1, sizeof(*rps));
	n = 0;
	for (rp = x->rps; rp && rps; rp = rp->next)
		rps[n++] = (struct prom_route_peer){ .service = rp->service,
						     .route = rp->route,
						     .peer = rp->peer,
						     .kind = peers__kind_name(rp->kind),
						     .calls = rp->calls,
						     .wait_ns = rp->wait_ns };
	in.route_peers = rps;
	in.nroute_peers = rps ? n : 0;
	lost[0] = figure("ringbuf_full", collector__stat(&x->col, AP_STAT_RINGBUF_DROPS), 0);
	lost[1] = figure("pg_ringbuf_full", collector__stat(&x->col, AP_STAT_PG_DROPS), 0);
	lost[2] = figure("conns_map_full", collector__stat(&x->col, AP_STAT_CONN_MAP_FULL), 0);
	lost[3] = figure("threads_map_full", collector__stat(&x->col, AP_STAT_THREAD_MAP_FULL), 0);
	lost[4] = figure("procs_map_full", collector__stat(&x->col, AP_STAT_PROC_MAP_FULL), 0);
	lost[5] = figure("malformed_head", x->col.counts.malformed_heads, 0);
	lost[6] = figure("oversized_head", x->col.counts.oversized_heads, 0);
	lost[7] = figure("pg_stream_garbage", collector__stat(&x->col, AP_STAT_PG_BAD), 0);
	lost[8] = figure("py_units_full", collector__stat(&x->col, AP_STAT_PY_UNIT_EVICTED), 0);
	caps[0] = figure("routes", cap__overflow(x->routes), cap__limit(x->routes));
	caps[1] = figure("classes", cap__overflow(x->classes), cap__limit(x->classes));
	caps[2] = figure("services", cap__overflow(x->services), cap__limit(x->services));
	caps[3] = figure("peers", 0, cap__limit(x->peers));
	caps[4] = figure("statements", 0, cap__limit(x->statements));
	caps[5] = figure("groups", cap__overflow(x->groups), cap__limit(x->groups));
	caps[6] = figure("route_peers", cap__overflow(x->route_peers), cap__limit(x->route_peers));
	n = x->stats_on ? collector__prog_stats(&x->col, progs, MAX_FIGURES) : 0;
	for (i = 0; i < n; i++)
		pc[i] = figure(progs[i].name, progs[i].value, progs[i].limit);
	for (i = 0; i < x->nmaps; i++)
		mc[i] = figure(x->maps[i].name, x->maps[i].value, x->maps[i].limit);
	in.profile = x->profile;
	in.peers = x->col.peers;
	in.pg = x->col.pg;
	in.lookup = lookup_service;
	in.lookup_ctx = x;
	in.services = svcs;
	in.nservices = svcs ? nsvcs : 0;
	in.duration_buckets = x->duration_b;
	in.nduration = x->nduration;
	in.cpu_buckets = x->cpu_b;
	in.ncpu = x->ncpu;
	in.peers_cap = x->peers;
	in.statements_cap = x->statements;
	in.caps = caps;
	in.ncaps = 7;
	in.lost = lost;
	in.nlost = sizeof(lost) / sizeof(lost[0]);
	in.flushed_early = collector__stat(&x->col, AP_STAT_REQ_MAP_FULL);
	in.requests = x->col.counts.records;
	in.progs = pc;
	in.nprogs = n;
	in.maps = mc;
	in.nmaps = x->nmaps;
	in.traced_processes = collector__ntraced(&x->col);
	for (i = 0; i < (size_t)x->col.pyrt.nprocs; i++) {
		const struct pyrt_proc *pp = &x->col.pyrt.procs[i];

		if (!collector__traced(&x->col, pp->pid))
			continue;
		if (pp->kind == PYRT_TASK_AWARE)
			in.traced_task_aware++;
		else if (pp->kind == PYRT_HEURISTIC)
			in.traced_heuristic++;
	}
	in.version = AGENTPROF_VERSION;
	in.kernel = x->kernel;
	in.mode = x->mode;
	in.last_drain_age_s = (double)(now_ns(CLOCK_MONOTONIC) -
				       __atomic_load_n(&x->col.last_drain_ns, __ATOMIC_RELAXED)) /
			      1e9;
	self_stats(&in);
	prometheus__write(out, &in, om);
	pthread_mutex_unlock(&x->lock);
	free(svcs);
	free(rps);
	if (fclose(out)) {
		free(r->body);
		r->body = NULL;
		return;
	}
	r->content_type = om ? OPENMETRICS_CONTENT_TYPE : PROM_CONTENT_TYPE;
}

static void render_profile(struct exporter *x, struct export_http_response *r)
{
	struct json_object *root, *extra = json_object_new_object();
	struct profile_run *run;

	pthread_mutex_lock(&x->lock);
	run = profile__run(x->profile);
	collector__read_stats(&x->col, run);
	peers__clear_totals(x->col.peers);
	collector__read_peer_totals(&x->col);
	json_object_object_add(extra, "peers", peers__json(x->col.peers));
	json_object_object_add(extra, "statements", pg__statements_json(x->col.pg));
	json_object_object_add(extra, "capacity", capacity__json(x->profile));
	root = profile__json(x->profile, extra);
	r->body = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								      JSON_C_TO_STRING_SPACED));
	pthread_mutex_unlock(&x->lock);
	json_object_put(root);
	r->content_type = "application/json";
}

static void text(struct export_http_response *r, unsigned int status, const char *body)
{
	r->status = status;
	r->body = strdup(body);
}

static void exporter__serve(void *ctx, const char *url, const char *accept,
			    struct export_http_response *r)
{
	struct exporter *x = ctx;
	int attached;
	double age;
	char msg[256];

	if (!strcmp(url, "/metrics")) {
		render_metrics(x, strstr(accept, "application/openmetrics-text") != NULL, r);
	} else if (!strcmp(url, "/profile")) {
		render_profile(x, r);
	} else if (!strcmp(url, "/healthz")) {
		age = (double)(now_ns(CLOCK_MONOTONIC) -
			       __atomic_load_n(&x->col.last_drain_ns, __ATOMIC_RELAXED)) /
		      1e9;
		attached = collector__nattached(&x->col);
		if (!x->ready) {
			text(r, 503, "not attached yet\n");
		} else if (!attached) {
			text(r, 503, "no BPF program attached\n");
		} else if (age > HEALTHY_DRAIN_S) {
			snprintf(msg, sizeof(msg), "ring buffer last drained %.1f s ago\n", age);
			text(r, 503, msg);
		} else {
			snprintf(msg, sizeof(msg), "ok: %d programs attached, drained %.2f s ago\n",
				 attached, age);
			text(r, 200, msg);
		}
	} else if (!strcmp(url, "/readyz")) {
		text(r, x->ready ? 200 : 503, x->ready ? "ready\n" : "loading\n");
	} else if (!strcmp(url, "/")) {
		text(r, 200, "agentprof export: /metrics /profile /healthz /readyz\n");
	} else {
		text(r, 404, "not found: try /metrics, /profile, /healthz or /readyz\n");
	}
}

/* --- set-up --- */

/*
 * The DaemonSet's capability set (deploy/daemonset.yaml), each checked so
 * that one fewer fails here by name (tests/integration/test_export.py).
 */
static const struct privilege export_privileges[] = {
	{ 38 /* CAP_PERFMON */, "CAP_PERFMON",
	  "to attach tracepoints and read kernel memory from BPF" },
	{ 39 /* CAP_BPF */, "CAP_BPF", "to load BPF programs and create maps" },
	{ 19 /* CAP_SYS_PTRACE */, "CAP_SYS_PTRACE",
	  "to read other processes' /proc/PID/fd, maps and cgroup (finding listeners, libssl)" },
};

static int parse_buckets(const char *opt, const char *spec, double *v, size_t *n)
{
	int got = prometheus__parse_buckets(spec, v, MAX_BUCKETS);

	if (got < 0) {
		fprintf(stderr,
			"agentprof: invalid %s '%s': expected ascending positive seconds, "
			"comma-separated (at most %d)\n",
			opt, spec, MAX_BUCKETS);
		return -EINVAL;
	}
	*n = got;
	return 0;
}

static int exporter__configure(struct exporter *x)
{
	const struct env_export *ex = &x->env->ex;
	char msg[512];
	int i;

	if (parse_buckets("--duration-buckets", ex->duration_buckets, x->duration_b,
			  &x->nduration) ||
	    parse_buckets("--cpu-buckets", ex->cpu_buckets, x->cpu_b, &x->ncpu))
		return -EINVAL;
	for (i = 0; i < ex->nservice_rules; i++) {
		if (service__parse_rule(ex->service_rules[i], &x->rules[i], msg, sizeof(msg))) {
			fprintf(stderr, "agentprof: %s\n", msg);
			return -EINVAL;
		}
	}
	x->nrules = ex->nservice_rules;
	for (i = 0; i < x->env->npeer_names; i++) {
		if (peers__add_name(x->col.peers, x->env->peer_names[i], msg, sizeof(msg))) {
			fprintf(stderr, "agentprof: %s\n", msg);
			return -EINVAL;
		}
	}
	snprintf(x->other.id.key, sizeof(x->other.id.key), "%s", CAP_OTHER);
	snprintf(x->other.id.name, sizeof(x->other.id.name), "%s", CAP_OTHER);
	x->routes = cap__new("routes", ex->max_routes);
	x->classes = cap__new("classes", ex->max_classes);
	x->services = cap__new("services", ex->max_services);
	x->peers = cap__new("peers", ex->max_peers);
	x->statements = cap__new("statements", ex->max_statements);
	x->groups = cap__new("groups", ex->max_groups);
	/* Route and peer pairs: as many as groups, a peer each. */
	x->route_peers = cap__new("route_peers", ex->max_groups);
	x->profile = profile__new();
	if (!x->routes || !x->classes || !x->services || !x->peers || !x->statements ||
	    !x->groups || !x->route_peers || !x->profile) {
		fprintf(stderr, "agentprof: out of memory\n");
		return -ENOMEM;
	}
	profile__set_by_status(x->profile, true);
	profile__run(x->profile)->sample_every = x->env->sample_every ?: 1;
	/* RSS, in flight and connections over the last hour, for plan from /profile. */
	profile__services(x->profile)->window = EXPORT_SAMPLE_WINDOW;
	x->col.opts.services = profile__services(x->profile);
	return 0;
}

static void exporter__free(struct exporter *x)
{
	struct svc *s, *next;
	struct pid_svc *p, *pn;
	size_t i;

	for (s = x->svcs; s; s = next) {
		next = s->next;
		free(s);
	}
	for (i = 0; i < PID_BUCKETS; i++) {
		for (p = x->pids[i]; p; p = pn) {
			pn = p->next;
			free(p);
		}
	}
	cap__free(x->routes);
	cap__free(x->classes);
	cap__free(x->services);
	cap__free(x->peers);
	cap__free(x->statements);
	cap__free(x->groups);
	cap__free(x->route_peers);
	while (x->rps) {
		struct route_peer *next = x->rps->next;

		free(x->rps);
		x->rps = next;
	}
	profile__free(x->profile);
}

/* kernel.bpf_stats_enabled=1: the node keeps run-time statistics for everyone. */
static bool bpf_stats_sysctl(void)
{
	char c = '0';
	FILE *f = fopen("/proc/sys/kernel/bpf_stats_enabled", "r");

	if (!f)
		return false;
	if (fread(&c, 1, 1, f) != 1)
		c = '0';
	fclose(f);
	return c == '1';
}

static int exporter__loop(struct exporter *x)
{
	const struct env_export *ex = &x->env->ex;
	uint64_t now, next_rescan, next_sample;
	int err = 0;

	next_rescan = now_ns(CLOCK_MONOTONIC) + ex->rescan_s * 1000000000ULL;
	next_sample = 0;
	while (!exiting) {
		err = collector__poll(&x->col);
		if (err == -EINTR) {
			err = 0;
			break;
		}
		if (err < 0)
			break;
		now = now_ns(CLOCK_MONOTONIC);
		if (now >= next_rescan) {
			exporter__rescan(x);
			next_rescan = now + ex->rescan_s * 1000000000ULL;
		}
		if (now >= next_sample) {
			exporter__sample(x);
			next_sample = now + ex->sample_s * 1000000000ULL;
		}
	}
	return err;
}

int export__run(const struct env *env)
{
	struct exporter x = { .env = env };
	struct collector_opts co = {
		.trace_all = false,
		.mmap = env->mmap,
		.verbose = env->verbose,
		.sample_every = env->sample_every ?: 1,
		.no_python = env->python == ENV_PY_OFF,
		.no_task_steps = env->python == ENV_PY_CONTEXTS,
		.pg_ports = env->pg_ports,
		.npg_ports = env->npg_ports,
		.class_header = env->class_header,
		.tls_pids = env->pids,
		.ntls_pids = env->npids,
		.on_request = exporter__on_request,
		.ctx = &x,
		.lock = &x.lock,
	};
	struct export_http *http = NULL;
	char tracefs[256], msg[512];
	struct utsname u;
	int err, i;

	pthread_mutex_init(&x.lock, NULL);
	err = privileges__check(export_privileges,
				sizeof(export_privileges) / sizeof(export_privileges[0]), msg,
				sizeof(msg));
	if (err) {
		fprintf(stderr, "agentprof: %s\n", msg);
		return 1;
	}
	for (i = 0; i < env->npids; i++) {
		if (!procs__exists(env->pids[i])) {
			fprintf(stderr, "agentprof: process %d does not exist: check the PID\n",
				(int)env->pids[i]);
			return 1;
		}
	}
	err = tracefs__ensure(tracefs, sizeof(tracefs), msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "agentprof: %s\n", msg);
		return 1;
	}
	err = collector__init(&x.col, &co);
	if (err) {
		fprintf(stderr, "agentprof: out of memory\n");
		goto cleanup;
	}
	err = exporter__configure(&x);
	if (err)
		goto cleanup;
	/* Serving first: /readyz says "loading" while the verifier works. */
	http = export_http__start(env->ex.listen, exporter__serve, &x, msg, sizeof(msg));
	if (!http) {
		fprintf(stderr, "agentprof: %s\n", msg);
		err = -EADDRINUSE;
		goto cleanup;
	}
	err = collector__load(&x.col);
	if (err)
		goto cleanup;
	x.stats_on = !collector__enable_stats(&x.col) || bpf_stats_sysctl();
	if (!x.stats_on)
		fprintf(stderr,
			"agentprof: BPF run-time statistics unavailable (%s): "
			"agentprof_bpf_program_* metrics are left out; grant CAP_SYS_ADMIN "
			"or set sysctl kernel.bpf_stats_enabled=1 for them\n",
			strerror(errno));
	for (i = 0; i < env->npids; i++)
		collector__add_target(&x.col, env->pids[i]);
	if (!env->npids)
		listeners__for_each(getpid(), add_listener, &x);
	err = collector__attach(&x.col);
	if (err)
		goto cleanup;
	uname(&u);
	snprintf(x.kernel, sizeof(x.kernel), "%s", u.release);
	loader__mode_str(&x.col.loader.mode, x.mode, sizeof(x.mode));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	profile__run(x.profile)->start_real_ns = now_ns(CLOCK_REALTIME);
	exporter__sample(&x);
	x.ready = true;
	fprintf(stderr,
		"agentprof: exporting on http://%s/metrics (%s, %d processes traced%s); "
		"Ctrl-C to stop\n",
		env->ex.listen, x.mode, collector__ntraced(&x.col),
		env->npids ? "" : ", new listening processes looked for every few seconds");
	err = exporter__loop(&x);
	x.ready = false;
cleanup:
	export_http__stop(http);
	collector__stop(&x.col);
	collector__free(&x.col);
	exporter__free(&x);
	pthread_mutex_destroy(&x.lock);
	return err ? 1 : 0;
}
