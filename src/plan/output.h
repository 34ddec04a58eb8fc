/* SPDX-License-Identifier: GPL-2.0-only */
/* The plan's outputs: text, JSON, YAML, HTML. Each reads the model; none computes. */
#ifndef AGENTPROF_PLAN_OUTPUT_H
#define AGENTPROF_PLAN_OUTPUT_H

#include <json-c/json.h>
#include <stdio.h>

#include "plan/model.h"

/* A load point measured by a load test, to draw and compare with the prediction. */
struct plan_measured {
	double users, x, p95, p99; /* p99 < 0: not measured */
};

struct plan_output {
	const struct plan_model *m;
	const char *source; /* the profile's file or URL */
	const struct plan_measured *meas;
	int nmeas;
};

struct json_object *plan__json(const struct plan_output *o);
int plan__write_text(const struct plan_output *o, FILE *out);
int plan__write_json(const struct plan_output *o, FILE *out);
int plan__write_yaml(const struct plan_output *o, FILE *out);
int plan__write_html(const struct plan_output *o, FILE *out);
/* obj as YAML (libyaml's emitter: quoting and escaping done right); 0 or -EIO. */
int plan__yaml_emit(struct json_object *obj, FILE *out);

#endif /* AGENTPROF_PLAN_OUTPUT_H */
