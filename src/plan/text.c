// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <math.h>
#include <stdio.h>

#include "plan/k8s.h"
#include "plan/output.h"

static void summary(const struct plan_output *o, FILE *out)
{
	const struct plan_model *m = o->m;
	const struct plan_opts *op = m->opts;
	const struct plan_point *k;

	fprintf(out, "agentprof plan: %s, from %s (%llu requests over %.0f s)\n\n", m->service,
		o->source, (unsigned long long)m->requests, m->seconds);
	fprintf(out, "  bottleneck  %s: saturates at %.1f req/s per pod\n", m->st[m->bottleneck].what,
		m->x_max);
	if (op->slo_p95_s || op->slo_p99_s) {
		fprintf(out, "  SLO         ");
		if (op->slo_p95_s)
			fprintf(out, "p95 <= %.2f s ", op->slo_p95_s);
		if (op->slo_p99_s)
			fprintf(out, "p99 <= %.2f s ", op->slo_p99_s);
		if (m->slo_unreachable) {
			fprintf(out, "does NOT hold even without load: sized at 80%% of saturation\n");
			goto knee;
		}
		fprintf(out, "holds up to %.1f req/s per pod (open arrivals)", m->slo_rps);
		if (m->think_s >= 0 && m->slo_users)
			fprintf(out, ", %d users at %.1f s think time (closed)", m->slo_users, m->think_s);
		fprintf(out, "\n");
	}
knee:
	if (m->knee_users_p95) {
		k = plan_model__closed_at(m, m->knee_users_p95);
		fprintf(out, "  knee        p95 crosses %.2f s at %d users (%.1f req/s)", op->slo_p95_s,
			m->knee_users_p95, k ? k->x : 0);
		if (m->knee_users_p99)
			fprintf(out, "; p99 crosses %.2f s at %d users", op->slo_p99_s,
				m->knee_users_p99);
		fprintf(out, "\n");
	}
	if (op->target_rps > 0)
		fprintf(out, "  target      %.1f req/s: %d replicas\n", op->target_rps, m->replicas_rps);
	if (op->users > 0)
		fprintf(out, "  target      %d users: %d replicas\n", op->users, m->replicas_users);
	fprintf(out, "  scale at    %.1f req/s per pod (%.0f%% headroom for scale-up lag)\n",
		m->trigger_rps, (m->headroom - 1) * 100);
	fprintf(out, "  pod         cpu %.0fm request", m->cpu_request * 1000);
	if (m->cpu_limit_rec > 0)
		fprintf(out, " / %.0fm limit", m->cpu_limit_rec * 1000);
	if (m->mem_request > 0)
		fprintf(out, "; memory %.0fMi request / %.0fMi limit", m->mem_request / 1048576,
			m->mem_limit_rec / 1048576);
	fprintf(out, "\n  HPA         cpu %d%%", m->hpa_cpu_pct);
	if (m->hpa_mem_pct)
		fprintf(out, ", memory %d%%", m->hpa_mem_pct);
	fprintf(out, ", requests_per_second %.2f per pod\n\n", m->trigger_rps);
}

static void assumptions(const struct plan_model *m, FILE *out)
{
	int i;

	fprintf(out, "Assumptions:\n");
	for (i = 0; i < m->nnotes; i++)
		fprintf(out, "  - %s\n", m->notes[i]);
	fprintf(out, "\n");
}

static void demands(const struct plan_model *m, FILE *out)
{
	const struct plan_group *g;
	char hold[16];
	int i;

	fprintf(out, "Demand per request (means, ms), as recorded (PG_HOLD: connections held):\n");
	fprintf(out, "  %-6s %-30s %-9s %7s %6s %8s %7s %8s %8s %9s %8s %9s %9s\n", "METHOD",
		"ROUTE", "CLASS", "REQS", "SHARE", "CPU", "RUNQ", "PG", "PG_HOLD", "UPSTREAM", "OTHER",
		"TOTAL", "P95");
	for (i = 0; i < m->ng; i++) {
		g = &m->g[i];
		/* Not measured (an older profile): the PG time stood in for it, said in the notes. */
		snprintf(hold, sizeof(hold), g->hold_measured ? "%.2f" : "-", g->hold * 1e3);
		fprintf(out,
			"  %-6s %-30s %-9s %7llu %5.1f%% %8.2f %7.2f %8.2f %8s %9.1f %8.1f %9.1f %9.1f\n",
			g->method, g->route, g->class, (unsigned long long)g->requests, g->share * 100,
			g->cpu * 1e3, g->runq * 1e3, g->pg * 1e3, hold, g->upstream * 1e3,
			g->other * 1e3, g->duration * 1e3, g->p95 * 1e3);
	}
	fprintf(out, "\nStations of one pod (mix means):\n");
	fprintf(out, "  %-16s %8s %12s %14s  %s\n", "STATION", "SERVERS", "DEMAND_MS", "CAPACITY_RPS",
		"WHAT");
	for (i = 0; i < m->nst; i++)
		fprintf(out, "  %-16s %8d %12.2f %14.1f  %s%s\n", m->st[i].name, m->st[i].q.servers,
			m->st[i].q.demand * 1e3, m->st[i].capacity, m->st[i].what,
			i == m->bottleneck ? " (bottleneck)" : "");
	fprintf(out, "\n");
}

static const struct plan_measured *measured_at(const struct plan_output *o, double users)
{
	int i;

	for (i = 0; i < o->nmeas; i++)
		if (fabs(o->meas[i].users - users) < 0.5)
			return &o->meas[i];
	return NULL;
}

static void closed_row(const struct plan_output *o, const struct plan_point *p, FILE *out)
{
	const struct plan_measured *ms = measured_at(o, p->load);

	fprintf(out, "  %7.0f %8.1f %8.2f %8.2f %8.2f %5.0f%%", p->load, p->x, p->r, p->p95, p->p99,
		p->util * 100);
	if (ms)
		fprintf(out, "   %8.1f %+6.1f%% %8.2f", ms->x, (p->x / ms->x - 1) * 100, ms->p95);
	fprintf(out, "\n");
}

static void curves(const struct plan_output *o, FILE *out)
{
	const struct plan_model *m = o->m;
	int i, step;

	if (m->nclosed) {
		fprintf(out, "Closed population, %.2f s think time (what a load test of users runs):\n",
			m->think_s);
		fprintf(out, "  %7s %8s %8s %8s %8s %6s%s\n", "USERS", "REQ/S", "MEAN_S", "P95_S",
			"P99_S", "UTIL", o->nmeas ? "   MEAS_RPS   DIFF MEAS_P95" : "");
		if (o->nmeas) {
			for (i = 0; i < o->nmeas; i++)
				closed_row(o, plan_model__closed_at(m, o->meas[i].users), out);
		} else {
			step = m->nclosed > 12 ? m->nclosed / 12 : 1;
			for (i = step - 1; i < m->nclosed; i += step)
				closed_row(o, &m->closed[i], out);
		}
		fprintf(out, "\n");
	}
	if (!m->nopen)
		return;
	fprintf(out, "Open arrivals (requests/s from many independent clients):\n");
	fprintf(out, "  %7s %8s %8s %8s %6s\n", "REQ/S", "MEAN_S", "P95_S", "P99_S", "UTIL");
	for (i = 9; i < m->nopen; i += 10)
		fprintf(out, "  %7.1f %8.2f %8.2f %8.2f %5.0f%%\n", m->open[i].x, m->open[i].r,
			m->open[i].p95, m->open[i].p99, m->open[i].util * 100);
	fprintf(out, "\n");
}

static int manifest(const char *title, struct json_object *obj, FILE *out)
{
	int err;

	fprintf(out, "%s\n", title);
	err = plan__yaml_emit(obj, out);
	json_object_put(obj);
	fprintf(out, "\n");
	return err;
}

int plan__write_text(const struct plan_output *o, FILE *out)
{
	const struct plan_model *m = o->m;
	int err;

	summary(o, out);
	assumptions(m, out);
	demands(m, out);
	curves(o, out);
	err = manifest("Pod resources (container):", k8s__resources(m), out);
	if (!err)
		err = manifest("HorizontalPodAutoscaler:", k8s__hpa(m, m->service), out);
	if (!err)
		err = manifest("prometheus-adapter rule (requests_per_second from the exporter):",
			       k8s__adapter_rule(), out);
	return err || ferror(out) ? -EIO : 0;
}
