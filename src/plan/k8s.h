/* SPDX-License-Identifier: GPL-2.0-only */
/* Kubernetes objects from a plan: the autoscaling/v2 HPA and the prometheus-adapter rule. */
#ifndef AGENTPROF_PLAN_K8S_H
#define AGENTPROF_PLAN_K8S_H

#include <json-c/json.h>

#include "plan/model.h"

/* Deployment and HPA named name; the replicas range from the plan's targets. */
struct json_object *k8s__hpa(const struct plan_model *m, const char *name);
/* The prometheus-adapter rule turning the exporter's request counter into requests_per_second. */
struct json_object *k8s__adapter_rule(void);
/* Requests and limits of the pod's container. */
struct json_object *k8s__resources(const struct plan_model *m);

#endif /* AGENTPROF_PLAN_K8S_H */
