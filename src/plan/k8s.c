// SPDX-License-Identifier: GPL-2.0-only
#include <math.h>
#include <stdio.h>

#include "plan/k8s.h"

static struct json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static void add(struct json_object *o, const char *k, struct json_object *v)
{
	json_object_object_add(o, k, v);
}

static struct json_object *obj(void)
{
	return json_object_new_object();
}

static struct json_object *quantity_cpu(double cores)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.0fm", ceil(cores * 1000 - 1e-6));
	return str(buf);
}

static struct json_object *quantity_mem(double bytes)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.0fMi", ceil(bytes / 1048576 - 1e-6));
	return str(buf);
}

struct json_object *k8s__resources(const struct plan_model *m)
{
	struct json_object *r = obj(), *req = obj(), *lim = obj();

	add(req, "cpu", quantity_cpu(m->cpu_request));
	if (m->mem_request > 0)
		add(req, "memory", quantity_mem(m->mem_request));
	if (m->cpu_limit_rec > 0)
		add(lim, "cpu", quantity_cpu(m->cpu_limit_rec));
	if (m->mem_limit_rec > 0)
		add(lim, "memory", quantity_mem(m->mem_limit_rec));
	add(r, "requests", req);
	add(r, "limits", lim);
	return r;
}

static struct json_object *resource_metric(const char *name, int pct)
{
	struct json_object *mt = obj(), *res = obj(), *tgt = obj();

	add(mt, "type", str("Resource"));
	add(res, "name", str(name));
	add(tgt, "type", str("Utilization"));
	add(tgt, "averageUtilization", json_object_new_int(pct));
	add(res, "target", tgt);
	add(mt, "resource", res);
	return mt;
}

static struct json_object *rps_metric(double rps)
{
	struct json_object *mt = obj(), *pods = obj(), *metric = obj(), *tgt = obj();
	char buf[32];

	add(mt, "type", str("Pods"));
	add(metric, "name", str("requests_per_second"));
	add(pods, "metric", metric);
	add(tgt, "type", str("AverageValue"));
	/* Milli-units keep a fractional rate exact in a Kubernetes quantity. */
	snprintf(buf, sizeof(buf), "%.0fm", floor(rps * 1000));
	add(tgt, "averageValue", str(buf));
	add(pods, "target", tgt);
	add(mt, "pods", pods);
	return mt;
}

static struct json_object *policy(const char *type, int value, int period)
{
	struct json_object *p = obj();

	add(p, "type", str(type));
	add(p, "value", json_object_new_int(value));
	add(p, "periodSeconds", json_object_new_int(period));
	return p;
}

static struct json_object *behavior(void)
{
	struct json_object *b = obj(), *up = obj(), *down = obj();
	struct json_object *upp = json_object_new_array(), *downp = json_object_new_array();

	/* Up at once (the headroom assumes it), down slowly so a dip does not undo it. */
	add(up, "stabilizationWindowSeconds", json_object_new_int(0));
	json_object_array_add(upp, policy("Percent", 100, 60));
	add(up, "policies", upp);
	add(down, "stabilizationWindowSeconds", json_object_new_int(300));
	json_object_array_add(downp, policy("Percent", 10, 60));
	add(down, "policies", downp);
	add(b, "scaleUp", up);
	add(b, "scaleDown", down);
	return b;
}

struct json_object *k8s__hpa(const struct plan_model *m, const char *name)
{
	struct json_object *h = obj(), *meta = obj(), *spec = obj(), *ref = obj();
	struct json_object *metrics = json_object_new_array();
	int need = m->replicas_rps > m->replicas_users ? m->replicas_rps : m->replicas_users;
	int min = need > 2 ? need / 2 : 2;

	add(h, "apiVersion", str("autoscaling/v2"));
	add(h, "kind", str("HorizontalPodAutoscaler"));
	add(meta, "name", str(name));
	add(h, "metadata", meta);
	add(ref, "apiVersion", str("apps/v1"));
	add(ref, "kind", str("Deployment"));
	add(ref, "name", str(name));
	add(spec, "scaleTargetRef", ref);
	add(spec, "minReplicas", json_object_new_int(min));
	add(spec, "maxReplicas", json_object_new_int(need > 0 ? 2 * need : 10));
	json_object_array_add(metrics, resource_metric("cpu", m->hpa_cpu_pct));
	if (m->hpa_mem_pct > 0)
		json_object_array_add(metrics, resource_metric("memory", m->hpa_mem_pct));
	json_object_array_add(metrics, rps_metric(m->trigger_rps));
	add(spec, "metrics", metrics);
	add(spec, "behavior", behavior());
	add(h, "spec", spec);
	return h;
}

struct json_object *k8s__adapter_rule(void)
{
	struct json_object *rules = obj(), *list = json_object_new_array(), *r = obj();
	struct json_object *res = obj(), *ov = obj(), *ns = obj(), *pod = obj(), *nm = obj();
	/* The exporter's own pod labels (deploy/prometheus-adapter.yaml). */
	add(r, "seriesQuery", str("http_server_request_duration_seconds_count{k8s_namespace_name!="
				  "\"\",k8s_pod_name!=\"\"}"));
	add(ns, "resource", str("namespace"));
	add(pod, "resource", str("pod"));
	add(ov, "k8s_namespace_name", ns);
	add(ov, "k8s_pod_name", pod);
	add(res, "overrides", ov);
	add(r, "resources", res);
	add(nm, "matches", str("^http_server_request_duration_seconds_count$"));
	add(nm, "as", str("requests_per_second"));
	add(r, "name", nm);
	/* A 1-minute window: shorter is noisy, longer adds to the scale-up lag the headroom covers. */
	add(r, "metricsQuery",
	    str("sum(rate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"));
	json_object_array_add(list, r);
	add(rules, "rules", list);
	return rules;
}
