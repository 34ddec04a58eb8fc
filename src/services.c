// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services.h"

struct services *services__new(void)
{
	struct services *s = calloc(1, sizeof(*s));

	if (s)
		s->interval_ns = 1000000000ULL;
	return s;
}

void services__free(struct services *s)
{
	int i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++)
		free(s->svc[i].samples);
	free(s);
}

const struct service *services__find(const struct services *s, const char *name)
{
	int i;

	for (i = 0; s && i < s->n; i++)
		if (!strcmp(s->svc[i].name, name))
			return &s->svc[i];
	return NULL;
}

struct service *services__get(struct services *s, const char *name)
{
	struct service *svc = (struct service *)services__find(s, name);

	if (svc || s->n == SERVICES_MAX)
		return svc;
	svc = &s->svc[s->n++];
	memset(svc, 0, sizeof(*svc));
	snprintf(svc->name, sizeof(svc->name), "%s", name);
	svc->cgroup.cpu_quota_us = -1;
	svc->window = s->window;
	return svc;
}

void services__remove(struct services *s, const char *name)
{
	struct service *svc = (struct service *)services__find(s, name);

	if (!svc)
		return;
	free(svc->samples);
	/* Order does not matter: move the last one into the hole. */
	if (svc != &s->svc[s->n - 1])
		*svc = s->svc[s->n - 1];
	s->n--;
}

/*
 * A window full: drop its oldest eighth at once, so that the move happens
 * once every window/8 intervals rather than at every one.
 */
static void slide(struct service *svc, size_t rel)
{
	size_t drop = rel + 1 - svc->window;

	if (drop < svc->window / 8)
		drop = svc->window / 8;
	if (drop >= svc->nsamples) {
		/* A jump past the whole window (the host slept): nothing kept. */
		svc->nsamples = 0;
	} else {
		memmove(svc->samples, svc->samples + drop,
			(svc->nsamples - drop) * sizeof(*svc->samples));
		/* What is past nsamples now is zeroed as the timeline grows into it. */
		svc->nsamples -= drop;
	}
	svc->first += drop;
}

struct service_sample *service__sample(struct service *svc, size_t i)
{
	struct service_sample *v;
	size_t cap, rel;

	if (i < svc->first)
		return NULL;
	rel = i - svc->first;
	if (svc->window && rel >= svc->window) {
		slide(svc, rel);
		rel = i - svc->first;
	}
	if (rel >= SERVICE_MAX_SAMPLES)
		return NULL;
	if (rel < svc->nsamples)
		return &svc->samples[rel];
	/* Grow in whole minutes: one realloc a minute of recording. */
	cap = (rel / 60 + 1) * 60;
	v = realloc(svc->samples, cap * sizeof(*v));
	if (!v)
		return NULL;
	memset(v + svc->nsamples, 0, (cap - svc->nsamples) * sizeof(*v));
	svc->samples = v;
	svc->nsamples = rel + 1;
	return &v[rel];
}

bool service__add_pid(struct service *svc, uint32_t pid)
{
	int i;

	for (i = 0; i < svc->npids; i++)
		if (svc->pids[i] == pid)
			return false;
	if (svc->npids < SERVICE_MAX_PIDS)
		svc->pids[svc->npids++] = pid;
	return true;
}

void service__add_tid(struct service *svc, uint32_t tid)
{
	int i;

	for (i = 0; i < svc->ntids; i++)
		if (svc->tids[i] == tid)
			return;
	if (svc->ntids < SERVICE_MAX_TIDS)
		svc->tids[svc->ntids++] = tid;
}

static struct json_object *cgroup_json(const struct service_cgroup *c)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "version", json_object_new_int(c->version));
	json_object_object_add(o, "path", json_object_new_string(c->path));
	json_object_object_add(o, "cpu_quota_us", json_object_new_int64(c->cpu_quota_us));
	json_object_object_add(o, "cpu_period_us", json_object_new_int64(c->cpu_period_us));
	json_object_object_add(o, "cpu_limit_cores", json_object_new_double(c->cpu_limit_cores));
	json_object_object_add(o, "memory_limit_bytes", json_object_new_uint64(c->memory_limit_bytes));
	json_object_object_add(o, "host_cpus", json_object_new_int(c->host_cpus));
	return o;
}

/* Columns rather than objects: a day of samples stays a few MB. */
static struct json_object *samples_json(const struct service *svc, uint64_t interval_ns)
{
	struct json_object *o = json_object_new_object();
	struct json_object *rss = json_object_new_array(), *inf = json_object_new_array();
	struct json_object *arr = json_object_new_array(), *cli = json_object_new_array();
	struct json_object *pg = json_object_new_array(), *meas = json_object_new_array();
	struct json_object *cpu = json_object_new_array();
	const struct service_sample *s;
	size_t i;

	for (i = 0; i < svc->nsamples; i++) {
		s = &svc->samples[i];
		json_object_array_add(rss, json_object_new_uint64(s->rss_bytes));
		json_object_array_add(inf, json_object_new_double(s->in_flight));
		json_object_array_add(arr, json_object_new_uint64(s->arrivals));
		json_object_array_add(cli, json_object_new_uint64(s->clients));
		json_object_array_add(pg, json_object_new_uint64(s->pg_conns));
		json_object_array_add(cpu, json_object_new_uint64(s->cpu_ns));
		json_object_array_add(meas, json_object_new_boolean(s->measured));
	}
	json_object_object_add(o, "interval_ns", json_object_new_uint64(interval_ns));
	json_object_object_add(o, "first_interval", json_object_new_uint64(svc->first));
	json_object_object_add(o, "rss_bytes", rss);
	json_object_object_add(o, "in_flight", inf);
	json_object_object_add(o, "arrivals", arr);
	json_object_object_add(o, "clients", cli);
	json_object_object_add(o, "pg_connections", pg);
	json_object_object_add(o, "cpu_ns", cpu);
	json_object_object_add(o, "measured", meas);
	return o;
}

static struct json_object *u32_array(const uint32_t *v, int n)
{
	struct json_object *a = json_object_new_array();
	int i;

	for (i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_uint64(v[i]));
	return a;
}

struct json_object *services__json(const struct services *s)
{
	struct json_object *a = json_object_new_array(), *o;
	const struct service *svc;
	int i;

	for (i = 0; i < s->n; i++) {
		svc = &s->svc[i];
		o = json_object_new_object();
		json_object_object_add(o, "service", json_object_new_string(svc->name));
		json_object_object_add(o, "pids", u32_array(svc->pids, svc->npids));
		json_object_object_add(o, "request_threads", json_object_new_int(svc->ntids));
		json_object_object_add(o, "cgroup", cgroup_json(&svc->cgroup));
		json_object_object_add(o, "pg_connections_max", json_object_new_uint64(svc->pg_conns_max));
		json_object_object_add(o, "samples", samples_json(svc, s->interval_ns));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *member(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	json_object_object_get_ex(o, key, &v);
	return v;
}

static void cgroup_load(struct service_cgroup *c, struct json_object *o)
{
	if (!o)
		return;
	c->version = json_object_get_int(member(o, "version"));
	snprintf(c->path, sizeof(c->path), "%s",
		 member(o, "path") ? json_object_get_string(member(o, "path")) : "");
	c->cpu_quota_us = member(o, "cpu_quota_us") ? json_object_get_int64(member(o, "cpu_quota_us"))
						    : -1;
	c->cpu_period_us = json_object_get_int64(member(o, "cpu_period_us"));
	c->cpu_limit_cores = json_object_get_double(member(o, "cpu_limit_cores"));
	c->memory_limit_bytes = json_object_get_uint64(member(o, "memory_limit_bytes"));
	c->host_cpus = json_object_get_int(member(o, "host_cpus"));
}

static bool is_array(struct json_object *o)
{
	return json_object_is_type(o, json_type_array);
}

static int samples_load(struct service *svc, struct json_object *o)
{
	struct json_object *rss = member(o, "rss_bytes"), *inf = member(o, "in_flight");
	struct json_object *arr = member(o, "arrivals"), *cli = member(o, "clients");
	struct json_object *pg = member(o, "pg_connections"), *meas = member(o, "measured");
	struct json_object *cpu = member(o, "cpu_ns"); /* optional: older profiles have none */
	struct service_sample *s;
	size_t i, n;

	if (!is_array(rss) || !is_array(inf) || !is_array(arr) || !is_array(cli) ||
	    !is_array(pg) || !is_array(meas))
		return -EINVAL;
	n = json_object_array_length(rss);
	if (json_object_array_length(inf) != n || json_object_array_length(arr) != n ||
	    json_object_array_length(cli) != n || json_object_array_length(pg) != n ||
	    json_object_array_length(meas) != n || (cpu && (!is_array(cpu) ||
	    json_object_array_length(cpu) != n)))
		return -EINVAL;
	/* Profiles from before the exporter's window start at the timeline's start. */
	svc->first = json_object_get_uint64(member(o, "first_interval"));
	if (svc->first > SIZE_MAX - n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		s = service__sample(svc, svc->first + i);
		if (!s)
			return -ENOMEM;
		s->rss_bytes = json_object_get_uint64(json_object_array_get_idx(rss, i));
		s->in_flight = json_object_get_double(json_object_array_get_idx(inf, i));
		s->arrivals = json_object_get_uint64(json_object_array_get_idx(arr, i));
		s->clients = json_object_get_uint64(json_object_array_get_idx(cli, i));
		s->pg_conns = json_object_get_uint64(json_object_array_get_idx(pg, i));
		s->measured = json_object_get_boolean(json_object_array_get_idx(meas, i));
		if (cpu)
			s->cpu_ns = json_object_get_uint64(json_object_array_get_idx(cpu, i));
	}
	return 0;
}

static int service_load(struct services *s, struct json_object *o)
{
	struct json_object *pids = member(o, "pids"), *samples = member(o, "samples");
	struct service *svc;
	size_t i, n;

	if (!member(o, "service"))
		return -EINVAL;
	svc = services__get(s, json_object_get_string(member(o, "service")));
	if (!svc)
		return -ENOSPC;
	n = json_object_is_type(pids, json_type_array) ? json_object_array_length(pids) : 0;
	for (i = 0; i < n; i++)
		service__add_pid(svc, json_object_get_uint64(json_object_array_get_idx(pids, i)));
	/* Only the count of threads is saved; ids stand in for them. */
	svc->ntids = json_object_get_int(member(o, "request_threads"));
	if (svc->ntids < 0)
		svc->ntids = 0;
	if (svc->ntids > SERVICE_MAX_TIDS)
		svc->ntids = SERVICE_MAX_TIDS;
	cgroup_load(&svc->cgroup, member(o, "cgroup"));
	svc->pg_conns_max = json_object_get_uint64(member(o, "pg_connections_max"));
	if (samples) {
		if (member(samples, "interval_ns"))
			s->interval_ns = json_object_get_uint64(member(samples, "interval_ns"));
		return samples_load(svc, samples);
	}
	return 0;
}

int services__load_json(struct services *s, struct json_object *arr, char *err, size_t errsz)
{
	size_t i, n;
	int e;

	if (!json_object_is_type(arr, json_type_array)) {
		snprintf(err, errsz, "\"services\" is not an array");
		return -EINVAL;
	}
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		e = service_load(s, json_object_array_get_idx(arr, i));
		if (e) {
			snprintf(err, errsz, "service %zu of \"services\" is malformed: %s", i,
				 strerror(-e));
			return e;
		}
	}
	return 0;
}
