// SPDX-License-Identifier: GPL-2.0-only
/* `agentprof diff --format json`: every row and metric, with both intervals. */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>

#include "diff.h"

static struct json_object *ci_json(const struct diff_ci *ci)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "value", json_object_new_double(ci->value));
	json_object_object_add(o, "lo", json_object_new_double(ci->lo));
	json_object_object_add(o, "hi", json_object_new_double(ci->hi));
	return o;
}

static struct json_object *metric_json(const struct diff_metric *m)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "key", json_object_new_string(m->def->key));
	json_object_object_add(o, "name", json_object_new_string(m->def->name));
	json_object_object_add(o, "unit",
			       json_object_new_string(m->def->unit == DU_NS ? "ns" : "count"));
	json_object_object_add(o, "before", ci_json(&m->before));
	json_object_object_add(o, "after", ci_json(&m->after));
	json_object_object_add(o, "change", json_object_new_double(m->change));
	/* JSON has no infinity: a change from 0 has no relative size. */
	json_object_object_add(o, "relative",
			       isinf(m->relative) ? NULL : json_object_new_double(m->relative));
	json_object_object_add(o, "judged", json_object_new_boolean(m->judged));
	json_object_object_add(o, "significant", json_object_new_boolean(m->significant));
	json_object_object_add(o, "verdict",
			       json_object_new_string(diff__verdict_name(m->verdict)));
	return o;
}

static struct json_object *row_json(const struct diff_row *r)
{
	struct json_object *o = json_object_new_object(), *ms = json_object_new_array();
	int k;

	json_object_object_add(o, "service", json_object_new_string(r->service));
	json_object_object_add(o, "method", json_object_new_string(r->method));
	json_object_object_add(o, "route", json_object_new_string(r->route));
	json_object_object_add(o, "class", json_object_new_string(r->class));
	json_object_object_add(o, "verdict",
			       json_object_new_string(diff__verdict_name(r->verdict)));
	json_object_object_add(o, "requests_before", json_object_new_uint64(r->requests_before));
	json_object_object_add(o, "requests_after", json_object_new_uint64(r->requests_after));
	json_object_object_add(o, "impact_ns", json_object_new_double(r->impact_ns));
	if (r->a && r->b)
		for (k = 0; k < DIFF_NMETRICS; k++)
			json_object_array_add(ms, metric_json(&r->m[k]));
	json_object_object_add(o, "metrics", ms);
	return o;
}

static struct json_object *side_json(const struct diff_side *s)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "path", json_object_new_string(s->path));
	json_object_object_add(o, "requests", json_object_new_uint64(s->requests));
	json_object_object_add(o, "seconds", json_object_new_double(s->seconds));
	return o;
}

int diff__print_json(const struct diff *d, FILE *out)
{
	struct json_object *root = json_object_new_object(), *rows = json_object_new_array();
	int err = 0;
	size_t i;

	json_object_object_add(root, "format", json_object_new_string("agentprof-diff"));
	json_object_object_add(root, "version", json_object_new_int(1));
	json_object_object_add(root, "before", side_json(&d->before));
	json_object_object_add(root, "after", side_json(&d->after));
	json_object_object_add(root, "threshold", json_object_new_double(d->o.threshold));
	json_object_object_add(root, "min_ns", json_object_new_double(d->o.min_ns));
	json_object_object_add(root, "min_count", json_object_new_double(d->o.min_count));
	json_object_object_add(root, "z", json_object_new_double(d->o.z));
	for (i = 0; i < d->nrows; i++)
		json_object_array_add(rows, row_json(&d->rows[i]));
	json_object_object_add(root, "rows", rows);
	json_object_object_add(root, "worse", json_object_new_uint64(d->worse));
	json_object_object_add(root, "better", json_object_new_uint64(d->better));
	if (fprintf(out, "%s\n",
		    json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_SPACED)) < 0)
		err = -EIO;
	json_object_put(root);
	return err;
}
