// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof plan`: a profile (file or exporter URL) in, a capacity plan out.
 * Never loads BPF, never needs root.
 */
#include <argp.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan/model.h"
#include "plan/output.h"
#include "plan/plan.h"
#include "plan/source.h"

#define PLAN_MAX_MEASURED 64

enum plan_format { FMT_TEXT, FMT_JSON, FMT_YAML, FMT_HTML };

enum {
	OPT_TARGET_RPS = 1000,
	OPT_USERS,
	OPT_THINK,
	OPT_MIX,
	OPT_SLO,
	OPT_POD_CPU,
	OPT_POD_MEMORY,
	OPT_DB_POOL,
	OPT_WORKERS,
	OPT_SERVICE,
	OPT_SCALE_LAG,
	OPT_GROWTH,
	OPT_MIN_REQUESTS,
	OPT_MEASURED,
	OPT_FORMAT,
};

struct plan_args {
	struct plan_opts o;
	const char *source;
	const char *out_path;
	const char *measured_path;
	enum plan_format format;
};

static const char doc[] =
    "Capacity plan of a service from its profile: the bottleneck and the throughput it "
    "saturates at, latency against load (open arrivals and closed populations of users "
    "with think time), the knee where the SLO breaks, replicas for a target, pod "
    "requests and limits, an autoscaling/v2 HPA and the prometheus-adapter rule. "
    "Reads a profile saved by `agentprof record -o` or an exporter's /profile; never "
    "loads BPF, needs no root. Every assumption is printed with the plan.\n"
    "\n"
    "USAGE: agentprof plan PROFILE.json|http://EXPORTER/profile [OPTIONS]\n"
    "\n"
    "EXAMPLES:\n"
    "  agentprof plan profile.json --slo p95=2s,p99=5s --target-rps 120\n"
    "  agentprof plan profile.json --users 500 --think 2 --mix simple=10,moderate=5,complex=2\n"
    "  agentprof plan http://node1:9464/profile --pod-cpu 500m --format yaml\n"
    "  agentprof plan profile.json --slo p95=2s --format html -o plan.html\n";

static const struct argp_option opts[] = {
    {NULL, 0, NULL, 0, "Load to plan for:", 1},
    {"target-rps", OPT_TARGET_RPS, "N", 0, "Requests per second the fleet must serve", 1},
    {"users", OPT_USERS, "N", 0, "Concurrent users (closed population) the fleet must serve", 1},
    {"think", OPT_THINK, "SECONDS", 0,
     "Users' think time between requests (default: from the profile's connected clients)", 1},
    {"mix", OPT_MIX, "CLASS=W,...", 0,
     "Request mix by class (or route) and weight (default: the profile's own counts)", 1},
    {"slo", OPT_SLO, "p95=2s,p99=5s", 0, "Latency objectives (s or ms)", 1},
    {"service", OPT_SERVICE, "NAME", 0, "The service to plan (default: the busiest)", 1},
    {NULL, 0, NULL, 0, "The pod (default: as recorded):", 2},
    {"pod-cpu", OPT_POD_CPU, "CORES", 0, "CPU limit, in cores or millicores (500m)", 2},
    {"pod-memory", OPT_POD_MEMORY, "BYTES", 0, "Memory limit (512Mi, 2Gi or bytes)", 2},
    {"db-pool", OPT_DB_POOL, "N", 0, "PostgreSQL connections in the pod's pool", 2},
    {"workers", OPT_WORKERS, "N", 0, "Worker processes per pod", 2},
    {"scale-lag", OPT_SCALE_LAG, "SECONDS", 0,
     "From the HPA's trigger to a new pod serving (default 90)", 2},
    {"growth", OPT_GROWTH, "PCT", 0, "Load growth per minute the headroom covers (default 20)", 2},
    {"min-requests", OPT_MIN_REQUESTS, "N", 0,
     "Fewest requests a planned route may have (default 20)", 2},
    {NULL, 0, NULL, 0, "Output:", 3},
    {"format", OPT_FORMAT, "FMT", 0, "text (default), json, yaml or html", 3},
    {"output", 'o', "FILE", 0, "Write to FILE instead of stdout", 3},
    {"measured", OPT_MEASURED, "FILE.csv", 0,
     "Measured load points to compare and draw: lines of users,req/s,p95_s[,p99_s]", 3},
    {},
};

static int parse_double(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	return errno || end == s || *end || !isfinite(*out) || *out < 0 ? -EINVAL : 0;
}

/* "2s", "1.5", "500ms" -> seconds. */
static int parse_duration(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *out < 0)
		return -EINVAL;
	if (!strcmp(end, "ms"))
		*out /= 1000;
	else if (*end && strcmp(end, "s"))
		return -EINVAL;
	return 0;
}

/* "2", "0.5", "500m" -> cores. */
static int parse_cores(const char *s, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *out <= 0)
		return -EINVAL;
	if (!strcmp(end, "m"))
		*out /= 1000;
	else if (*end)
		return -EINVAL;
	return 0;
}

/* "512Mi", "2Gi", "1G", "1048576" -> bytes. */
static int parse_bytes(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		double mult;
	} units[] = {{"", 1}, {"Ki", 1024}, {"Mi", 1048576}, {"Gi", 1073741824.0},
		     {"K", 1e3}, {"M", 1e6},	{"G", 1e9}};
	char *end;
	double v;
	size_t i;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (!strcmp(end, units[i].suffix)) {
			*out = (uint64_t)(v * units[i].mult);
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_mix(struct plan_opts *o, char *arg)
{
	char *save = NULL, *tok, *eq;
	double w;

	for (tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		eq = strchr(tok, '=');
		if (!eq || eq == tok || parse_double(eq + 1, &w) || o->nmix == PLAN_MAX_MIX)
			return -EINVAL;
		*eq = '\0';
		snprintf(o->mix[o->nmix].key, sizeof(o->mix[0].key), "%s", tok);
		o->mix[o->nmix++].weight = w;
	}
	return o->nmix ? 0 : -EINVAL;
}

static int parse_slo(struct plan_opts *o, char *arg)
{
	char *save = NULL, *tok;
	double v;

	for (tok = strtok_r(arg, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!strncmp(tok, "p95=", 4) && !parse_duration(tok + 4, &v) && v > 0)
			o->slo_p95_s = v;
		else if (!strncmp(tok, "p99=", 4) && !parse_duration(tok + 4, &v) && v > 0)
			o->slo_p99_s = v;
		else
			return -EINVAL;
	}
	return 0;
}

static int parse_int(const char *s, int min, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > 10000000)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static error_t parse_opt(int key, char *arg, struct argp_state *state)
{
	struct plan_args *a = state->input;
	struct plan_opts *o = &a->o;
	double v;
	int n;

	switch (key) {
	case OPT_TARGET_RPS:
		if (parse_double(arg, &o->target_rps) || !o->target_rps)
			argp_error(state, "invalid --target-rps '%s': expected requests/s > 0", arg);
		return 0;
	case OPT_USERS:
		if (parse_int(arg, 1, &o->users))
			argp_error(state, "invalid --users '%s': expected a whole number > 0", arg);
		return 0;
	case OPT_THINK:
		if (parse_duration(arg, &o->think_s))
			argp_error(state, "invalid --think '%s': expected seconds >= 0", arg);
		return 0;
	case OPT_MIX:
		if (parse_mix(o, arg))
			argp_error(state, "invalid --mix: expected CLASS=WEIGHT,... (at most %d)",
				   PLAN_MAX_MIX);
		return 0;
	case OPT_SLO:
		if (parse_slo(o, arg))
			argp_error(state, "invalid --slo '%s': expected p95=2s,p99=5s", arg);
		return 0;
	case OPT_POD_CPU:
		if (parse_cores(arg, &o->pod_cpu))
			argp_error(state, "invalid --pod-cpu '%s': expected cores (1.5) or millicores "
					  "(500m)", arg);
		return 0;
	case OPT_POD_MEMORY:
		if (parse_bytes(arg, &o->pod_memory))
			argp_error(state, "invalid --pod-memory '%s': expected 512Mi, 2Gi or bytes", arg);
		return 0;
	case OPT_DB_POOL:
		if (parse_int(arg, 1, &o->db_pool))
			argp_error(state, "invalid --db-pool '%s': expected connections >= 1", arg);
		return 0;
	case OPT_WORKERS:
		if (parse_int(arg, 1, &o->workers))
			argp_error(state, "invalid --workers '%s': expected processes >= 1", arg);
		return 0;
	case OPT_SCALE_LAG:
		if (parse_duration(arg, &o->scale_lag_s))
			argp_error(state, "invalid --scale-lag '%s': expected seconds", arg);
		return 0;
	case OPT_GROWTH:
		if (parse_double(arg, &v))
			argp_error(state, "invalid --growth '%s': expected percent a minute", arg);
		o->growth_per_min = v / 100;
		return 0;
	case OPT_MIN_REQUESTS:
		if (parse_int(arg, 1, &n))
			argp_error(state, "invalid --min-requests '%s': expected a number >= 1", arg);
		o->min_requests = n;
		return 0;
	case OPT_SERVICE:
		o->service = arg;
		return 0;
	case OPT_MEASURED:
		a->measured_path = arg;
		return 0;
	case OPT_FORMAT:
		if (!strcmp(arg, "text"))
			a->format = FMT_TEXT;
		else if (!strcmp(arg, "json"))
			a->format = FMT_JSON;
		else if (!strcmp(arg, "yaml"))
			a->format = FMT_YAML;
		else if (!strcmp(arg, "html"))
			a->format = FMT_HTML;
		else
			argp_error(state, "invalid --format '%s': text, json, yaml or html", arg);
		return 0;
	case 'o':
		a->out_path = arg;
		return 0;
	case ARGP_KEY_ARG:
		if (a->source)
			argp_error(state, "one profile at a time ('%s' and '%s')", a->source, arg);
		a->source = arg;
		return 0;
	case ARGP_KEY_END:
		if (!a->source)
			argp_error(state, "no profile given: agentprof plan PROFILE.json or "
					  "http://EXPORTER/profile");
		return 0;
	}
	return ARGP_ERR_UNKNOWN;
}

/* users,req/s,p95_s[,p99_s] per line; '#' lines and a header are skipped. */
static int load_measured(const char *path, struct plan_measured *v, int *n)
{
	char line[256];
	FILE *f = fopen(path, "r");
	int k;

	*n = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f) && *n < PLAN_MAX_MEASURED) {
		v[*n].p99 = -1;
		k = sscanf(line, "%lf,%lf,%lf,%lf", &v[*n].users, &v[*n].x, &v[*n].p95, &v[*n].p99);
		if (k >= 3)
			(*n)++;
	}
	fclose(f);
	return 0;
}

static int write_plan(const struct plan_args *a, const struct plan_output *out)
{
	FILE *f = stdout;
	int err;

	if (a->out_path) {
		f = fopen(a->out_path, "w");
		if (!f) {
			err = -errno;
			fprintf(stderr, "agentprof: cannot write %s: %s\n", a->out_path, strerror(errno));
			return err;
		}
	}
	switch (a->format) {
	case FMT_JSON:
		err = plan__write_json(out, f);
		break;
	case FMT_YAML:
		err = plan__write_yaml(out, f);
		break;
	case FMT_HTML:
		err = plan__write_html(out, f);
		break;
	default:
		err = plan__write_text(out, f);
	}
	if (f != stdout && fclose(f) && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "agentprof: writing the plan failed: %s\n", strerror(-err));
	return err;
}

int plan__main(int argc, char **argv)
{
	static const struct argp argp = {opts, parse_opt, "PROFILE.json|URL", doc, NULL, NULL, NULL};
	struct plan_measured meas[PLAN_MAX_MEASURED];
	struct plan_args a = {.format = FMT_TEXT};
	struct plan_model *m = NULL;
	struct profile *p = NULL;
	struct plan_output out;
	char err[1024], name[] = "agentprof plan";
	int nmeas = 0, rc = 1, e;

	plan_opts__defaults(&a.o);
	argv[0] = name;
	if (argp_parse(&argp, argc, argv, 0, NULL, &a))
		return 2;
	if (a.measured_path && (e = load_measured(a.measured_path, meas, &nmeas))) {
		fprintf(stderr, "agentprof: cannot read %s: %s\n", a.measured_path, strerror(-e));
		return 1;
	}
	p = source__load(a.source, err, sizeof(err));
	if (!p) {
		/* json-c's messages end with a newline of their own. */
		err[strcspn(err, "\n")] = '\0';
		fprintf(stderr, "agentprof: %s\n", err);
		return 1;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		fprintf(stderr, "agentprof: out of memory\n");
		goto cleanup;
	}
	if (plan_model__build(m, p, &a.o, err, sizeof(err))) {
		fprintf(stderr, "agentprof: cannot plan from %s: %s\n", a.source, err);
		goto cleanup;
	}
	out = (struct plan_output){.m = m, .source = a.source, .meas = meas, .nmeas = nmeas};
	rc = write_plan(&a, &out) ? 1 : 0;
cleanup:
	if (m)
		plan_model__free(m);
	free(m);
	profile__free(p);
	return rc;
}
