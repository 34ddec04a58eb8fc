// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agentprof/request.h"
#include "outfile.h"
#include "peers.h"
#include "profile.h"
#include "services.h"

#define PROFILE_BUCKETS 1024

struct profile {
	struct profile_group *buckets[PROFILE_BUCKETS];
	size_t ngroups;
	struct profile_run run;
	const struct profile_group **sorted;
	struct json_object *loaded; /* the file profile__load read: its other sections */
	size_t sorted_cap;
	bool by_status; /* groups split by response status (export) */
	struct services *services; /* processes, limits and samples, for plan */
};

static const char *const metric_names[PM__COUNT] = {
    [PM_DURATION] = "duration_ns", [PM_TTFB] = "ttfb_ns",     [PM_CPU] = "cpu_ns",
    [PM_RUNQ] = "runq_ns",	   [PM_OFFCPU] = "offcpu_ns", [PM_RX] = "rx_bytes",
    [PM_TX] = "tx_bytes",
    [PM_MINOR_FAULTS] = "minor_faults",
    [PM_MAJOR_FAULTS] = "major_faults",
    [PM_RSS_GROWTH] = "rss_growth_bytes",
    [PM_MAPPED] = "mapped_bytes",
    [PM_UPSTREAM_WAIT] = "upstream_wait_ns",
    [PM_OFFCPU_UPSTREAM] = "offcpu_upstream_ns",
    [PM_PG_ROUND_TRIPS] = "pg_round_trips",
    [PM_PG_TIME] = "pg_time_ns",
    [PM_OFFCPU_PG] = "offcpu_pg_ns",
    [PM_OFFCPU_LOCK] = "offcpu_lock_ns",
    [PM_OFFCPU_DISK] = "offcpu_disk_ns",
    [PM_PG_HOLD] = "pg_hold_ns",
};

const char *profile__metric_name(enum profile_metric m)
{
	return m < PM__COUNT ? metric_names[m] : "?";
}

struct profile *profile__new(void)
{
	struct profile *p = calloc(1, sizeof(struct profile));

	if (p && !(p->services = services__new())) {
		free(p);
		p = NULL;
	}
	return p;
}

struct services *profile__services(struct profile *p)
{
	return p->services;
}

void profile__free(struct profile *p)
{
	struct profile_group *g, *next;
	size_t i;

	if (!p)
		return;
	for (i = 0; i < PROFILE_BUCKETS; i++) {
		for (g = p->buckets[i]; g; g = next) {
			next = g->next;
			free(g);
		}
	}
	free(p->sorted);
	json_object_put(p->loaded);
	services__free(p->services);
	free(p);
}

struct profile_run *profile__run(struct profile *p)
{
	return &p->run;
}

size_t profile__ngroups(const struct profile *p)
{
	return p->ngroups;
}

void profile__set_by_status(struct profile *p, bool on)
{
	p->by_status = on;
}

size_t profile__remove_service(struct profile *p, const char *service)
{
	struct profile_group **link, *g;
	size_t i, n = 0;

	for (i = 0; i < PROFILE_BUCKETS; i++) {
		for (link = &p->buckets[i]; (g = *link);) {
			if (strcmp(g->service, service)) {
				link = &g->next;
				continue;
			}
			*link = g->next;
			free(g);
			n++;
		}
	}
	p->ngroups -= n;
	return n;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL;
}

static void copy_name(char *dst, size_t sz, const char *src)
{
	snprintf(dst, sz, "%s", src);
}

/*
 * The names as a group keeps them, cut to their fields: a longer name (a
 * class header of 100 bytes, a profile from elsewhere) compared uncut would
 * never match its group and make a new one each time.
 */
static struct profile_group *group_get(struct profile *p, const char *service_in,
				       const char *method_in, const char *route_in,
				       const char *class_in, int status)
{
	char service[PROFILE_NAME_MAX], method[PROFILE_NAME_MAX], route[ROUTE_MAX],
	    class[PROFILE_NAME_MAX];
	uint64_t h = 0xcbf29ce484222325ULL;
	struct profile_group *g;
	size_t b;

	if (!p->by_status)
		status = 0;
	copy_name(service, sizeof(service), service_in);
	copy_name(method, sizeof(method), method_in);
	copy_name(route, sizeof(route), route_in);
	copy_name(class, sizeof(class), class_in);
	h = fnv1a(fnv1a(fnv1a(fnv1a(h, service), method), route), class) + (uint64_t)status;
	b = h % PROFILE_BUCKETS;
	for (g = p->buckets[b]; g; g = g->next) {
		if (!strcmp(g->route, route) && !strcmp(g->method, method) &&
		    !strcmp(g->class, class) && !strcmp(g->service, service) && g->status == status)
			return g;
	}
	/* Past the cap every new group lands in one catch-all, so memory stays bounded. */
	if (p->ngroups >= PROFILE_MAX_GROUPS && strcmp(route, "(other)"))
		return group_get(p, "(other)", "*", "(other)", "", 0);
	/*
	 * calloc's zeroes are the empty histograms (hist__init): the pages of
	 * buckets no value reaches are never touched, so a group costs its
	 * few used pages of RSS, not the 240 KiB of its struct.
	 */
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	copy_name(g->service, sizeof(g->service), service);
	copy_name(g->method, sizeof(g->method), method);
	copy_name(g->route, sizeof(g->route), route);
	copy_name(g->class, sizeof(g->class), class);
	g->status = status;
	g->next = p->buckets[b];
	p->buckets[b] = g;
	p->ngroups++;
	return g;
}

static struct profile_group_peer *group_peer(struct profile_group *g, const char *name, int kind)
{
	struct profile_group_peer *gp;
	int i;

	for (i = 0; i < g->npeers; i++)
		if (g->peers[i].kind == kind && !strcmp(g->peers[i].name, name))
			return &g->peers[i];
	gp = &g->peers[g->npeers < PROFILE_GROUP_PEERS ? g->npeers : PROFILE_GROUP_PEERS - 1];
	if (g->npeers == PROFILE_GROUP_PEERS) {
		/* Full: the last slot becomes the catch-all, kind and all. */
		copy_name(gp->name, sizeof(gp->name), "(other peers)");
		return gp;
	}
	g->npeers++;
	copy_name(gp->name, sizeof(gp->name), name);
	gp->kind = kind;
	return gp;
}

static void group_add_peers(struct profile_group *g, const struct request *req, uint64_t w)
{
	const struct ap_request_event *ev = req->ev;
	struct profile_group_peer *gp;
	char name[PROFILE_PEER_NAME_MAX];
	uint32_t i;

	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++) {
		const struct ap_peer *pe = &ev->peers[i];

		peers__name(req->peers, pe->family, pe->addr, pe->port, name, sizeof(name));
		gp = group_peer(g, name, pe->kind);
		gp->calls += (uint64_t)pe->calls * w;
		gp->requests += w;
		gp->wait_ns += pe->wait_ns * w;
	}
}

int profile__add(struct profile *p, const struct request *req)
{
	const struct ap_request_event *ev = req->ev;
	char service[AP_COMM_LEN + 1];
	struct profile_group *g;
	uint64_t w;

	memcpy(service, ev->comm, AP_COMM_LEN);
	service[AP_COMM_LEN] = '\0';
	g = group_get(p, req->service ?: service, req->head.method, req->route,
		      req->head.request_class, req->status);
	if (!g)
		return -ENOMEM;
	/* Sampled one in w: this request stands for w, in counts and sums alike. */
	w = p->run.sample_every ?: 1;
	g->requests += w;
	if (req->incomplete)
		g->incomplete += w;
	if (req->status >= 500)
		g->status_5xx += w;
	hist__add_n(&g->h[PM_DURATION], req->duration_ns, w);
	if (!req->incomplete)
		hist__add_n(&g->h[PM_TTFB], req->ttfb_ns, w);
	hist__add_n(&g->h[PM_CPU], ev->cpu_ns, w);
	hist__add_n(&g->h[PM_RUNQ], ev->runq_ns, w);
	hist__add_n(&g->h[PM_OFFCPU], ev->offcpu_ns, w);
	hist__add_n(&g->h[PM_RX], ev->rx_bytes, w);
	hist__add_n(&g->h[PM_TX], ev->tx_bytes, w);
	hist__add_n(&g->h[PM_MINOR_FAULTS], ev->minor_faults, w);
	hist__add_n(&g->h[PM_MAJOR_FAULTS], ev->major_faults, w);
	hist__add_n(&g->h[PM_RSS_GROWTH], req->rss_delta_bytes > 0 ? req->rss_delta_bytes : 0, w);
	if (!req->no_mapped)
		hist__add_n(&g->h[PM_MAPPED], ev->mapped_bytes, w);
	hist__add_n(&g->h[PM_UPSTREAM_WAIT], req->upstream_wait_ns, w);
	hist__add_n(&g->h[PM_OFFCPU_UPSTREAM], ev->offcpu_upstream_ns, w);
	hist__add_n(&g->h[PM_PG_ROUND_TRIPS], ev->pg_round_trips, w);
	hist__add_n(&g->h[PM_PG_TIME], ev->pg_time_ns, w);
	hist__add_n(&g->h[PM_OFFCPU_PG], ev->offcpu_pg_ns, w);
	hist__add_n(&g->h[PM_OFFCPU_LOCK], ev->offcpu_lock_ns, w);
	hist__add_n(&g->h[PM_OFFCPU_DISK], ev->offcpu_disk_ns, w);
	if (req->pg_hold_known)
		hist__add_n(&g->h[PM_PG_HOLD], req->pg_hold_ns, w);
	group_add_peers(g, req, w);
	return 0;
}

static int cmp_groups(const void *a, const void *b)
{
	const struct profile_group *ga = *(const struct profile_group **)a;
	const struct profile_group *gb = *(const struct profile_group **)b;
	int c;

	if (ga->requests != gb->requests)
		return ga->requests > gb->requests ? -1 : 1;
	c = strcmp(ga->route, gb->route);
	if (c)
		return c;
	c = strcmp(ga->method, gb->method);
	return c ? c : strcmp(ga->class, gb->class);
}

const struct profile_group **profile__sorted(struct profile *p, size_t *n)
{
	const struct profile_group **v;
	struct profile_group *g;
	size_t i, k = 0;

	/* Grown only when groups were added: a caller's array stays valid until then. */
	if (p->ngroups + 1 > p->sorted_cap) {
		v = realloc(p->sorted, (p->ngroups + 1) * sizeof(*v));
		if (!v) {
			*n = 0;
			return NULL;
		}
		p->sorted = v;
		p->sorted_cap = p->ngroups + 1;
	}
	v = p->sorted;
	for (i = 0; i < PROFILE_BUCKETS; i++)
		for (g = p->buckets[i]; g; g = g->next)
			v[k++] = g;
	qsort(v, k, sizeof(*v), cmp_groups);
	*n = k;
	return v;
}

double profile__q(const struct profile_group *g, enum profile_metric m, double quantile)
{
	return (double)hist__quantile(&g->h[m], quantile);
}

struct json_object *profile__quantiles_json(const struct hist *h)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "p50", json_object_new_uint64(hist__quantile(h, 0.50)));
	json_object_object_add(o, "p95", json_object_new_uint64(hist__quantile(h, 0.95)));
	json_object_object_add(o, "p99", json_object_new_uint64(hist__quantile(h, 0.99)));
	json_object_object_add(o, "max", json_object_new_uint64(h->max));
	return o;
}

static struct json_object *hist_json(const struct hist *h)
{
	struct json_object *o = json_object_new_object(), *b = json_object_new_array(), *pair;
	size_t i;

	json_object_object_add(o, "count", json_object_new_uint64(h->count));
	json_object_object_add(o, "sum", json_object_new_uint64(h->sum));
	json_object_object_add(o, "min", json_object_new_uint64(h->count ? h->min : 0));
	json_object_object_add(o, "max", json_object_new_uint64(h->max));
	json_object_object_add(o, "mean", json_object_new_double(hist__mean(h)));
	json_object_object_add(o, "p50", json_object_new_uint64(hist__quantile(h, 0.50)));
	json_object_object_add(o, "p90", json_object_new_uint64(hist__quantile(h, 0.90)));
	json_object_object_add(o, "p95", json_object_new_uint64(hist__quantile(h, 0.95)));
	json_object_object_add(o, "p99", json_object_new_uint64(hist__quantile(h, 0.99)));
	for (i = 0; i < HIST_BUCKETS; i++) {
		if (!h->counts[i])
			continue;
		pair = json_object_new_array();
		json_object_array_add(pair, json_object_new_uint64(i));
		json_object_array_add(pair, json_object_new_uint64(h->counts[i]));
		json_object_array_add(b, pair);
	}
	json_object_object_add(o, "buckets", b);
	return o;
}

static struct json_object *group_peers_json(const struct profile_group *g)
{
	struct json_object *a = json_object_new_array(), *o;
	int i;

	for (i = 0; i < g->npeers; i++) {
		const struct profile_group_peer *gp = &g->peers[i];

		o = json_object_new_object();
		json_object_object_add(o, "peer", json_object_new_string(gp->name));
		json_object_object_add(o, "kind", json_object_new_string(peers__kind_name(gp->kind)));
		json_object_object_add(o, "calls", json_object_new_uint64(gp->calls));
		json_object_object_add(o, "requests", json_object_new_uint64(gp->requests));
		json_object_object_add(o, "wait_ns", json_object_new_uint64(gp->wait_ns));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *group_json(const struct profile *p, const struct profile_group *g)
{
	struct json_object *o = json_object_new_object(), *m = json_object_new_object();
	int i;

	json_object_object_add(o, "service", json_object_new_string(g->service));
	json_object_object_add(o, "method", json_object_new_string(g->method));
	json_object_object_add(o, "route", json_object_new_string(g->route));
	json_object_object_add(o, "class", json_object_new_string(g->class));
	if (p->by_status)
		json_object_object_add(o, "status", json_object_new_int(g->status));
	json_object_object_add(o, "requests", json_object_new_uint64(g->requests));
	json_object_object_add(o, "incomplete", json_object_new_uint64(g->incomplete));
	json_object_object_add(o, "status_5xx", json_object_new_uint64(g->status_5xx));
	for (i = 0; i < PM__COUNT; i++)
		json_object_object_add(m, metric_names[i], hist_json(&g->h[i]));
	json_object_object_add(o, "metrics", m);
	json_object_object_add(o, "peers", group_peers_json(g));
	return o;
}

#define RUN_FIELDS(X)                                                                              \
	X(start_real_ns, "start_ns")                                                               \
	X(end_real_ns, "end_ns")                                                                   \
	X(records, "records")                                                                      \
	X(malformed_heads, "malformed_heads")                                                      \
	X(oversized_heads, "oversized_heads")                                                      \
	X(incomplete, "incomplete")                                                                \
	X(ringbuf_drops, "ringbuf_drops")                                                          \
	X(requests_map_full, "requests_map_full")                                                  \
	X(conns_map_full, "conns_map_full")                                                        \
	X(threads_map_full, "threads_map_full")                                                    \
	X(procs_map_full, "procs_map_full")                                                        \
	X(non_http_reads, "non_http_reads")                                                        \
	X(stale_bindings, "stale_bindings")                                                        \
	X(flushed, "flushed")                                                                      \
	X(mapped_measured, "mapped_bytes_measured")                                                \
	X(sample_every, "sample_every")                                                            \
	X(unsampled, "unsampled")                                                                  \
	X(bpf_run_ns, "bpf_run_ns")                                                                \
	X(pg_hold_overflow, "pg_hold_overflow")                                                    \
	X(py_units_evicted, "py_units_evicted")

static struct json_object *run_json(const struct profile_run *r)
{
	struct json_object *o = json_object_new_object();

#define X(field, name) json_object_object_add(o, name, json_object_new_uint64(r->field));
	RUN_FIELDS(X)
#undef X
	return o;
}

struct json_object *profile__json(struct profile *p, struct json_object *extra)
{
	struct json_object *root = json_object_new_object(), *groups = json_object_new_array();
	struct json_object *hist = json_object_new_object();
	const struct profile_group **v;
	size_t n, i;

	json_object_object_add(root, "format", json_object_new_string(PROFILE_FORMAT));
	json_object_object_add(root, "version", json_object_new_int(PROFILE_VERSION));
	json_object_object_add(hist, "kind", json_object_new_string("log-linear"));
	json_object_object_add(hist, "sub_bits", json_object_new_int(HIST_SUB_BITS));
	json_object_object_add(root, "histogram", hist);
	json_object_object_add(root, "run", run_json(&p->run));
	v = profile__sorted(p, &n);
	for (i = 0; i < n; i++)
		json_object_array_add(groups, group_json(p, v[i]));
	json_object_object_add(root, "groups", groups);
	if (p->services->n)
		json_object_object_add(root, "services", services__json(p->services));
	if (extra) {
		json_object_object_foreach(extra, key, val)
		{
			json_object_object_add(root, key, json_object_get(val));
		}
		json_object_put(extra);
	}
	return root;
}

int profile__write_fd(struct profile *p, int fd, struct json_object *extra)
{
	struct json_object *root = profile__json(p, extra);
	int err = 0;

	if (json_object_to_fd(fd, root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED))
		err = errno ? -errno : -EIO;
	json_object_put(root);
	return err;
}

int profile__write_json(struct profile *p, const char *path, struct json_object *extra)
{
	struct outfile *o;
	char msg[256];
	int err;

	o = outfile__open(path, msg, sizeof(msg));
	if (!o) {
		json_object_put(extra);
		return -errno;
	}
	err = profile__write_fd(p, outfile__fd(o), extra);
	if (err) {
		outfile__discard(o);
		return err;
	}
	return outfile__commit(o);
}

static uint64_t get_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	/* null, a number, an object: no name (json_object_get_string(NULL) is NULL). */
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

static int hist_load(struct hist *h, struct json_object *o)
{
	struct json_object *b, *pair;
	size_t i, n, idx;

	hist__init(h);
	if (!json_object_object_get_ex(o, "buckets", &b) ||
	    !json_object_is_type(b, json_type_array))
		return -EINVAL;
	n = json_object_array_length(b);
	for (i = 0; i < n; i++) {
		pair = json_object_array_get_idx(b, i);
		if (!json_object_is_type(pair, json_type_array) || json_object_array_length(pair) != 2)
			return -EINVAL;
		idx = json_object_get_uint64(json_object_array_get_idx(pair, 0));
		if (idx >= HIST_BUCKETS)
			return -EINVAL;
		h->counts[idx] = json_object_get_uint64(json_object_array_get_idx(pair, 1));
	}
	h->count = get_u64(o, "count");
	h->sum = get_u64(o, "sum");
	h->min = get_u64(o, "min");
	h->max = get_u64(o, "max");
	return 0;
}

static int kind_by_name(const char *name)
{
	return !strcmp(name, peers__kind_name(AP_PEER_PG)) ? AP_PEER_PG : AP_PEER_UPSTREAM;
}

/* Peers per group were added within version 1: older profiles have none. */
static void group_peers_load(struct profile_group *g, struct json_object *o)
{
	struct json_object *a, *e;
	size_t i, n;

	if (!json_object_object_get_ex(o, "peers", &a) || !json_object_is_type(a, json_type_array))
		return;
	n = json_object_array_length(a);
	for (i = 0; i < n && g->npeers < PROFILE_GROUP_PEERS; i++) {
		struct profile_group_peer *gp = &g->peers[g->npeers++];

		e = json_object_array_get_idx(a, i);
		copy_name(gp->name, sizeof(gp->name), get_str(e, "peer"));
		gp->kind = kind_by_name(get_str(e, "kind"));
		gp->calls = get_u64(e, "calls");
		gp->requests = get_u64(e, "requests");
		gp->wait_ns = get_u64(e, "wait_ns");
	}
}

static int group_load(struct profile *p, struct json_object *o)
{
	struct json_object *metrics, *m;
	struct profile_group *g;
	int i;

	struct json_object *status = NULL;

	if (json_object_object_get_ex(o, "status", &status))
		p->by_status = true;
	g = group_get(p, get_str(o, "service"), get_str(o, "method"), get_str(o, "route"),
		      get_str(o, "class"), json_object_get_int(status));
	if (!g)
		return -ENOMEM;
	g->requests = get_u64(o, "requests");
	g->incomplete = get_u64(o, "incomplete");
	g->status_5xx = get_u64(o, "status_5xx");
	if (!json_object_object_get_ex(o, "metrics", &metrics))
		return -EINVAL;
	for (i = 0; i < PM__COUNT; i++) {
		/* Metrics added later within this version are absent from older profiles. */
		if (!json_object_object_get_ex(metrics, metric_names[i], &m))
			continue;
		if (hist_load(&g->h[i], m))
			return -EINVAL;
	}
	group_peers_load(g, o);
	return 0;
}

/* Takes root (a parsed profile named path in messages). */
static struct profile *profile__from_json(struct json_object *root, const char *path, char *err,
					  size_t errsz)
{
	struct json_object *groups, *run, *hist, *svcs;
	struct profile *p = NULL;
	char why[256];
	size_t i, n;

	if (strcmp(get_str(root, "format"), PROFILE_FORMAT) ||
	    get_u64(root, "version") != PROFILE_VERSION) {
		snprintf(err, errsz, "%s is not an agentprof profile of version %d", path,
			 PROFILE_VERSION);
		goto cleanup;
	}
	if (!json_object_object_get_ex(root, "histogram", &hist) ||
	    get_u64(hist, "sub_bits") != HIST_SUB_BITS) {
		snprintf(err, errsz, "%s uses a histogram layout this agentprof does not read",
			 path);
		goto cleanup;
	}
	p = profile__new();
	if (!p) {
		snprintf(err, errsz, "out of memory reading %s", path);
		goto cleanup;
	}
	if (json_object_object_get_ex(root, "run", &run)) {
#define X(field, name) p->run.field = get_u64(run, name);
		RUN_FIELDS(X)
#undef X
	}
	if (!json_object_object_get_ex(root, "groups", &groups) ||
	    !json_object_is_type(groups, json_type_array))
		goto malformed;
	n = json_object_array_length(groups);
	for (i = 0; i < n; i++) {
		if (group_load(p, json_object_array_get_idx(groups, i)))
			goto malformed;
	}
	/* Profiles older than the services section plan from their groups alone. */
	if (json_object_object_get_ex(root, "services", &svcs) &&
	    services__load_json(p->services, svcs, why, sizeof(why))) {
		snprintf(err, errsz, "%s is malformed: %s", path, why);
		profile__free(p);
		p = NULL;
		goto cleanup;
	}
	p->loaded = root;
	return p;
malformed:
	snprintf(err, errsz, "%s is malformed: a group or histogram is missing fields", path);
	profile__free(p);
	p = NULL;
cleanup:
	json_object_put(root);
	errno = EINVAL;
	return p;
}

struct json_object *profile__section(const struct profile *p, const char *name)
{
	struct json_object *v;

	return p->loaded && json_object_object_get_ex(p->loaded, name, &v) ? v : NULL;
}

struct profile *profile__load(const char *path, char *err, size_t errsz)
{
	struct json_object *root = json_object_from_file(path);

	if (!root) {
		snprintf(err, errsz, "cannot read profile %s: %s", path, json_util_get_last_err());
		errno = EINVAL;
		return NULL;
	}
	return profile__from_json(root, path, err, errsz);
}

static bool only_space(const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) {
		s++;
		n--;
	}
	return !n;
}

struct profile *profile__load_buf(const char *buf, size_t len, const char *name, char *err,
				  size_t errsz)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *root = NULL;

	if (!tok) {
		snprintf(err, errsz, "out of memory reading %s", name);
		errno = ENOMEM;
		return NULL;
	}
	if (len <= INT_MAX)
		root = json_tokener_parse_ex(tok, buf, (int)len);
	/* The whole buffer is one JSON document, or it is no profile. */
	if (root && !only_space(buf + json_tokener_get_parse_end(tok),
				len - json_tokener_get_parse_end(tok))) {
		json_object_put(root);
		root = NULL;
	}
	if (!root)
		snprintf(err, errsz, "cannot read profile %s: %s", name,
			 json_tokener_error_desc(json_tokener_get_error(tok)));
	json_tokener_free(tok);
	if (!root) {
		errno = EINVAL;
		return NULL;
	}
	return profile__from_json(root, name, err, errsz);
}
