// SPDX-License-Identifier: GPL-2.0-only
#include <stdlib.h>
#include <string.h>

#include "plan/capacity.h"
#include "plan/model.h"
#include "services.h"

static void print_one(struct profile *p, const char *service, FILE *out)
{
	struct plan_model *m = calloc(1, sizeof(*m));
	struct plan_opts o;
	char err[512];

	if (!m)
		return;
	plan_opts__defaults(&o);
	o.service = service;
	if (plan_model__build(m, p, &o, err, sizeof(err))) {
		fprintf(out, "agentprof: capacity of %s: not planned: %s\n", service, err);
		free(m);
		return;
	}
	fprintf(out, "agentprof: capacity of %s: bottleneck %s, max %.1f req/s per pod", service,
		 m->st[m->bottleneck].what, m->x_max);
	if (m->mem_fitted)
		fprintf(out, ", %.2f MiB per request in flight (base %.0f MiB)\n",
			m->mem_slope / 1048576, m->mem_base / 1048576);
	else if (m->mem_samples)
		fprintf(out, ", memory flat at %.0f MiB (no slope: too little variation)\n",
			m->mem_base / 1048576);
	else
		fprintf(out, ", memory not sampled\n");
	plan_model__free(m);
	free(m);
}

struct json_object *capacity__json(struct profile *p)
{
	struct json_object *a = json_object_new_array();
	char *buf = NULL, *line, *save = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);

	if (!mem)
		return a;
	capacity__print_lines(p, mem);
	fclose(mem);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		json_object_array_add(a, json_object_new_string(line));
	free(buf);
	return a;
}

void capacity__print_lines(struct profile *p, FILE *out)
{
	const struct profile_group **v;
	const char *seen[64];
	size_t n, i, k, nseen = 0;

	v = profile__sorted(p, &n);
	for (i = 0; i < n && nseen < 64; i++) {
		for (k = 0; k < nseen; k++)
			if (!strcmp(seen[k], v[i]->service))
				break;
		if (k < nseen || !strcmp(v[i]->service, "(other)"))
			continue;
		seen[nseen++] = v[i]->service;
	}
	/* print_one sorts the groups again: v is invalid past here, the names are not. */
	for (k = 0; k < nseen; k++)
		print_one(p, seen[k], out);
}
