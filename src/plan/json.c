// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "plan/k8s.h"
#include "plan/output.h"

static void add(struct json_object *o, const char *k, struct json_object *v)
{
	json_object_object_add(o, k, v);
}

/* JSON has no infinity: an unbounded figure is null. */
static struct json_object *num(double v)
{
	return isfinite(v) ? json_object_new_double(round(v * 1e6) / 1e6) : NULL;
}

static struct json_object *str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static struct json_object *demands(const struct plan_model *m)
{
	struct json_object *a = json_object_new_array(), *o;
	const struct plan_group *g;
	int i;

	for (i = 0; i < m->ng; i++) {
		g = &m->g[i];
		o = json_object_new_object();
		add(o, "method", str(g->method));
		add(o, "route", str(g->route));
		add(o, "class", str(g->class));
		add(o, "requests", json_object_new_uint64(g->requests));
		add(o, "share", num(g->share));
		add(o, "cpu_s", num(g->cpu));
		add(o, "runq_s", num(g->runq));
		add(o, "pg_s", num(g->pg));
		add(o, "pg_round_trips", num(g->pg_round_trips));
		add(o, "pg_hold_s", num(g->hold));
		add(o, "pg_hold_measured", json_object_new_boolean(g->hold_measured));
		add(o, "upstream_s", num(g->upstream));
		add(o, "other_s", num(g->other));
		add(o, "duration_s", num(g->duration));
		add(o, "p95_s", num(g->p95));
		add(o, "p99_s", num(g->p99));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *stations(const struct plan_model *m)
{
	static const char *const kinds[] = {[QK_QUEUE] = "queue", [QK_MULTI] = "multi-server",
					    [QK_DELAY] = "delay"};
	struct json_object *a = json_object_new_array(), *o;
	int i;

	for (i = 0; i < m->nst; i++) {
		o = json_object_new_object();
		add(o, "name", str(m->st[i].name));
		add(o, "what", str(m->st[i].what));
		add(o, "kind", str(kinds[m->st[i].q.kind]));
		add(o, "servers", json_object_new_int(m->st[i].q.servers));
		add(o, "demand_s", num(m->st[i].q.demand));
		/* The demand is demand_s + idle_demand_s x the idle fraction (loadfit.h). */
		if (m->st[i].q.idle_demand > 0)
			add(o, "idle_demand_s", num(m->st[i].q.idle_demand));
		add(o, "capacity_rps", num(m->st[i].capacity));
		add(o, "bottleneck", json_object_new_boolean(i == m->bottleneck));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *curve(const struct plan_point *pts, int n, const char *load)
{
	struct json_object *a = json_object_new_array(), *o;
	int i;

	for (i = 0; i < n; i++) {
		o = json_object_new_object();
		add(o, load, num(pts[i].load));
		add(o, "throughput_rps", num(pts[i].x));
		add(o, "mean_s", num(pts[i].r));
		add(o, "p95_s", num(pts[i].p95));
		add(o, "p99_s", num(pts[i].p99));
		add(o, "bottleneck_utilization", num(pts[i].util));
		json_object_array_add(a, o);
	}
	return a;
}

static struct json_object *pod(const struct plan_model *m)
{
	struct json_object *o = json_object_new_object();

	add(o, "cpu_limit_cores", num(m->cpu_limit));
	add(o, "cpu_limit_from", str(m->cpu_limit_from));
	add(o, "workers", json_object_new_int(m->workers));
	add(o, "request_threads", json_object_new_int(m->threads));
	add(o, "event_loop", json_object_new_boolean(m->event_loop));
	add(o, "db_pool", json_object_new_int(m->pool));
	add(o, "db_pool_from", str(m->pool_from));
	add(o, "memory_limit_bytes", json_object_new_uint64(m->mem_limit));
	return o;
}

static struct json_object *summary(const struct plan_model *m)
{
	const struct plan_opts *op = m->opts;
	struct json_object *o = json_object_new_object();

	add(o, "bottleneck", str(m->st[m->bottleneck].what));
	add(o, "saturation_rps", num(m->x_max));
	add(o, "slo_p95_s", op->slo_p95_s ? num(op->slo_p95_s) : NULL);
	add(o, "slo_p99_s", op->slo_p99_s ? num(op->slo_p99_s) : NULL);
	add(o, "knee_rps_p95", m->knee_rps_p95 ? num(m->knee_rps_p95) : NULL);
	add(o, "knee_rps_p99", m->knee_rps_p99 ? num(m->knee_rps_p99) : NULL);
	add(o, "knee_users_p95", m->knee_users_p95 ? json_object_new_int(m->knee_users_p95) : NULL);
	add(o, "knee_users_p99", m->knee_users_p99 ? json_object_new_int(m->knee_users_p99) : NULL);
	add(o, "slo_unreachable", json_object_new_boolean(m->slo_unreachable));
	add(o, "per_pod_rps_within_slo", num(m->slo_rps));
	add(o, "per_pod_users_within_slo", m->slo_users ? json_object_new_int(m->slo_users) : NULL);
	return o;
}

static struct json_object *recommendation(const struct plan_model *m)
{
	struct json_object *o = json_object_new_object();

	add(o, "headroom", num(m->headroom));
	add(o, "trigger_rps_per_pod", num(m->trigger_rps));
	add(o, "replicas_for_target_rps", m->replicas_rps ? json_object_new_int(m->replicas_rps) : NULL);
	add(o, "replicas_for_users", m->replicas_users ? json_object_new_int(m->replicas_users) : NULL);
	add(o, "resources", k8s__resources(m));
	add(o, "hpa", k8s__hpa(m, m->service));
	add(o, "prometheus_adapter", k8s__adapter_rule());
	return o;
}

static struct json_object *measured(const struct plan_output *o)
{
	struct json_object *a = json_object_new_array(), *p;
	int i;

	for (i = 0; i < o->nmeas; i++) {
		p = json_object_new_object();
		add(p, "users", num(o->meas[i].users));
		add(p, "throughput_rps", num(o->meas[i].x));
		add(p, "p95_s", num(o->meas[i].p95));
		add(p, "p99_s", o->meas[i].p99 >= 0 ? num(o->meas[i].p99) : NULL);
		json_object_array_add(a, p);
	}
	return a;
}

struct json_object *plan__json(const struct plan_output *o)
{
	const struct plan_model *m = o->m;
	struct json_object *r = json_object_new_object(), *notes = json_object_new_array();
	struct json_object *mem = json_object_new_object(), *closed = json_object_new_object();
	int i;

	add(r, "format", str("agentprof-plan"));
	add(r, "version", json_object_new_int(1));
	add(r, "source", str(o->source));
	add(r, "service", str(m->service));
	add(r, "requests", json_object_new_uint64(m->requests));
	add(r, "summary", summary(m));
	for (i = 0; i < m->nnotes; i++)
		json_object_array_add(notes, str(m->notes[i]));
	add(r, "assumptions", notes);
	add(r, "pod", pod(m));
	add(r, "demands", demands(m));
	add(r, "stations", stations(m));
	add(mem, "base_bytes", num(m->mem_base));
	add(mem, "per_request_in_flight_bytes", num(m->mem_slope));
	add(mem, "fitted", json_object_new_boolean(m->mem_fitted));
	add(mem, "samples", json_object_new_int(m->mem_samples));
	add(r, "memory", mem);
	add(closed, "think_s", m->think_s >= 0 ? num(m->think_s) : NULL);
	add(closed, "points", curve(m->closed, m->nclosed, "users"));
	add(r, "closed", closed);
	add(r, "open", curve(m->open, m->nopen, "rps"));
	add(r, "recommendation", recommendation(m));
	if (o->nmeas)
		add(r, "measured", measured(o));
	return r;
}

int plan__write_json(const struct plan_output *o, FILE *out)
{
	struct json_object *j = plan__json(o);
	int err;

	err = fprintf(out, "%s\n",
		      json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_SPACED)) < 0
		      ? -EIO
		      : 0;
	json_object_put(j);
	return err;
}

int plan__write_yaml(const struct plan_output *o, FILE *out)
{
	struct json_object *j = plan__json(o);
	int err = plan__yaml_emit(j, out);

	json_object_put(j);
	return err;
}
