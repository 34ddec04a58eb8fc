// SPDX-License-Identifier: GPL-2.0-only
#include <argp.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

const char *argp_program_version = "agentprof 0.1.0";
const char *argp_program_bug_address = "https://github.com/agentprof/agentprof/issues";

enum {
	OPT_REQUESTS = 1000,
	OPT_CLASS_HEADER,
	OPT_PG_PORT,
	OPT_PEER_NAME,
	OPT_PG_LITERALS,
	OPT_MMAP,
	OPT_SAMPLE,
	OPT_WIDE,
	OPT_LIVE,
	OPT_FORMAT,
	OPT_HTML,
	OPT_THRESHOLD,
	OPT_MIN_MS,
	OPT_LISTEN,
	OPT_SERVICE,
	OPT_MAX_ROUTES,
	OPT_MAX_SERVICES,
	OPT_MAX_CLASSES,
	OPT_MAX_PEERS,
	OPT_MAX_STATEMENTS,
	OPT_MAX_GROUPS,
	OPT_DURATION_BUCKETS,
	OPT_CPU_BUCKETS,
	OPT_RESCAN,
	OPT_FORGET,
	OPT_SAMPLE_INTERVAL,
	OPT_LOGS_ROOT,
	OPT_PYTHON,
};

/* --python, for record and export. */
#define PYTHON_DOC                                                                                 \
	"CPython processes: steps (default: each asyncio task, callback and pool job charged to "  \
	"its request; a uprobe trap per task step, task and copy_context()), contexts (no trap "   \
	"per task step: the CPU of a step that ends without a syscall goes to the unit before "    \
	"it) or off (the thread rules)"

static const char main_doc[] =
    "agentprof: per-request resource profiles of HTTP services, from eBPF.\n"
    "\n"
    "USAGE: agentprof COMMAND [OPTIONS]\n"
    "\n"
    "COMMANDS:\n"
    "  check     probe this host for what agentprof needs\n"
    "  record    trace the HTTP requests of processes and profile them\n"
    "  report    write a profile as one HTML page\n"
    "  diff      compare two profiles: what changed per route, beyond noise\n"
    "  plan      capacity plan of a service from a profile (no root, no BPF)\n"
    "  export    serve live profiles to Prometheus (/metrics, /profile)\n"
    "\n"
    "Run `agentprof COMMAND --help` for the options of a command.";

static const char check_doc[] =
    "Probe this host: BTF, tracefs, ring buffer, tp_btf, raw_tp, uprobes, cgroup2 and\n"
    "sockops, kprobes and fentry, privileges and memlock. Says what stops working for\n"
    "each missing piece and how to fix it. Exits 0 when agentprof can run.\n"
    "\n"
    "USAGE: agentprof check [--verbose]";

static const char record_doc[] =
    "Trace the inbound HTTP/1.x requests of processes and profile each one.\n"
    "\n"
    "USAGE: agentprof record [-p PID ...] [-d SECONDS] [--requests FILE] [-o FILE]\n"
    "                        [-- COMMAND ARGS...]\n"
    "\n"
    "Without -p and without COMMAND, every process on the host that serves HTTP is\n"
    "traced. Tracing stops after -d SECONDS, at SIGINT/SIGTERM, or when COMMAND exits.\n"
    "\n"
    "EXAMPLES:\n"
    "  agentprof record -p $(pgrep -f uvicorn) -d 60\n"
    "  agentprof record -p 1234 --requests reqs.jsonl -o profile.json\n"
    "  agentprof record -d 30                    # every HTTP server on the host\n"
    "  agentprof record -o p.json -- gunicorn app:app\n";

static const char report_doc[] =
    "Write a profile (record -o) as one self-contained HTML page: per route,\n"
    "requests, latency and its distribution, where the time goes, CPU per\n"
    "request, memory, the top PostgreSQL statements, upstream peers and\n"
    "agentprof's own losses. Needs no root and no BPF: run it anywhere the\n"
    "profile is.\n"
    "\n"
    "USAGE: agentprof report PROFILE.json [-o REPORT.html]\n"
    "\n"
    "EXAMPLES:\n"
    "  agentprof report profile.json             # writes profile.html\n"
    "  agentprof report profile.json -o /tmp/r.html\n";

static const char diff_doc[] =
    "Compare two profiles (record -o) per route and class: latency p50, p95\n"
    "and p99, CPU per request (mean, p95), PostgreSQL round trips and time per\n"
    "request, upstream wait per request. Each metric gets a verdict: worse,\n"
    "better, small (beyond noise, within the threshold) or same (noise). Rows\n"
    "are sorted flagged first, then by impact: requests x change of the mean\n"
    "latency.\n"
    "\n"
    "USAGE: agentprof diff BEFORE.json AFTER.json [--format text|json]\n"
    "                      [--html FILE] [--threshold PCT] [--min-ms MS]\n"
    "\n"
    "Noise and change, from the histograms and counts both profiles hold:\n"
    "  quantile  99.9% interval of order statistics: ranks\n"
    "            n*q -/+ 3.29*sqrt(n*q*(1-q)), widened to their buckets' bounds;\n"
    "            judged only with 10 requests beyond it on each side (p95 needs\n"
    "            200 requests, p99 1000)\n"
    "  mean      Welch's z from the exact means and the histograms' variances,\n"
    "            |z| > 3.29\n"
    "A metric is flagged when its intervals are apart and it moved by more\n"
    "than --threshold percent and, for a time, by more than --min-ms (round\n"
    "trips: 0.5 a request). Sampled profiles count traced requests only.\n"
    "docs/diff.md says more.\n"
    "\n"
    "Exit status: 0 no regression, 1 a regression flagged, 2 an error.\n"
    "\n"
    "EXAMPLES:\n"
    "  agentprof diff before.json after.json\n"
    "  agentprof diff before.json after.json --threshold 5 --html diff.html\n"
    "  agentprof diff before.json after.json --format json | jq '.rows[0]'\n";
static const char export_doc[] =
    "Trace the HTTP services of this host and serve their live profile:\n"
    "/metrics for Prometheus (text 0.0.4, or OpenMetrics when asked), /profile\n"
    "(the agentprof-profile JSON of `record -o`), /healthz and /readyz.\n"
    "\n"
    "USAGE: agentprof export [--listen ADDR:PORT] [-p PID ...] [OPTIONS]\n"
    "\n"
    "Without -p, every process with a listening TCP socket is traced, and the\n"
    "host is looked at again every --rescan seconds for new ones (new pods).\n"
    "\n"
    "EXAMPLES:\n"
    "  agentprof export                              # every HTTP server, on :9464\n"
    "  agentprof export --listen 127.0.0.1:9464 -p $(pgrep -f uvicorn)\n"
    "  agentprof export --service agent=comm:uvicorn --max-routes 50\n";

static const struct argp_option export_opts[] = {
    {NULL, 0, NULL, 0, "What to trace:", 1},
    {"pid", 'p', "PID", 0, "Trace this process, its threads and children (repeatable)", 1},
    {"rescan", OPT_RESCAN, "SECONDS", 0,
     "Without -p: look for new listening processes every SECONDS (default 5)", 1},
    {"class-header", OPT_CLASS_HEADER, "NAME", 0,
     "Request header that names the request class (default X-Request-Class)", 1},
    {"sample", OPT_SAMPLE, "N", 0, "Trace one request in N (default 1: every request)", 1},
    {"pg-port", OPT_PG_PORT, "PORT", 0, "A PostgreSQL server port (repeatable; default 5432)",
     1},
    {"mmap", OPT_MMAP, NULL, 0, "Also count mmap()/brk() per request (syscall tracepoints)",
     1},
    {"python", OPT_PYTHON, "MODE", 0, PYTHON_DOC,
     1},
    {NULL, 0, NULL, 0, "Serving:", 2},
    {"listen", OPT_LISTEN, "ADDR:PORT", 0, "Serve HTTP on ADDR:PORT (default 0.0.0.0:9464)", 2},
    {"service", OPT_SERVICE, "NAME=SELECTOR", 0,
     "Name the service of matching processes: SELECTOR is comm:NAME, pid:N or "
     "cgroup:SUBSTRING (repeatable; first match wins)",
     2},
    {"peer-name", OPT_PEER_NAME, "ADDR:PORT=NAME", 0, "Call the peer ADDR:PORT NAME (repeatable)",
     2},
    {"duration-buckets", OPT_DURATION_BUCKETS, "S,S,...", 0,
     "Request duration histogram bounds, seconds (default "
     "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120)",
     2},
    {"cpu-buckets", OPT_CPU_BUCKETS, "S,S,...", 0,
     "CPU per request histogram bounds, seconds (default "
     "0.0001,0.00025,0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,0.5,1)",
     2},
    {"forget", OPT_FORGET, "SECONDS", 0,
     "Drop a service's series SECONDS after its last traced process exited (default 300)", 2},
    {"sample-interval", OPT_SAMPLE_INTERVAL, "SECONDS", 0,
     "Sample RSS, in-flight requests and map fill every SECONDS (default 5)", 2},
    {"k8s-logs", OPT_LOGS_ROOT, "DIR", 0,
     "Where the kubelet's pods/ and containers/ log directories are (default /var/log)", 2},
    {NULL, 0, NULL, 0, "Cardinality caps (the rest goes to one (other) series, counted):", 3},
    {"max-routes", OPT_MAX_ROUTES, "N", 0, "Routes per service (default 100)", 3},
    {"max-classes", OPT_MAX_CLASSES, "N", 0, "Request classes per service (default 16)", 3},
    {"max-services", OPT_MAX_SERVICES, "N", 0, "Services (default 64)", 3},
    {"max-peers", OPT_MAX_PEERS, "N", 0, "Upstream peers (default 100)", 3},
    {"max-statements", OPT_MAX_STATEMENTS, "N", 0, "PostgreSQL statements (default 50)", 3},
    {"max-groups", OPT_MAX_GROUPS, "N", 0,
     "(service, route, method, status, class) groups on the node, ~160 KiB of RSS each "
     "(default 300)",
     3},
    {"verbose", 'v', NULL, 0, "Print libbpf's log and debug output", 4},
    {},
};

static const struct argp_option common_opts[] = {
    {"verbose", 'v', NULL, 0, "Print libbpf's log and debug output", 0},
    {},
};

static const struct argp_option record_opts[] = {
    {NULL, 0, NULL, 0, "What to trace:", 1},
    {"pid", 'p', "PID", 0, "Trace this process, its threads and children (repeatable)", 1},
    {"duration", 'd', "SECONDS", 0, "Stop after SECONDS (default: until Ctrl-C)", 1},
    {"class-header", OPT_CLASS_HEADER, "NAME", 0,
     "Request header that names the request class (default X-Request-Class)", 1},
    {"sample", OPT_SAMPLE, "N", 0,
     "Trace one request in N, picked at random (default 1: every request). Counts and "
     "totals are then estimates (each traced request stands for N); for services that "
     "serve tens of thousands of requests per second per core",
     1},
    {NULL, 0, NULL, 0, "Output:", 2},
    {"requests", OPT_REQUESTS, "FILE", 0, "Write one JSON object per request to FILE", 2},
    {"output", 'o', "FILE", 0, "Save the profile as JSON to FILE", 2},
    {"quiet", 'q', NULL, 0, "Do not print the per-route table", 2},
    {"peer-name", OPT_PEER_NAME, "ADDR:PORT=NAME", 0,
     "Call the upstream peer ADDR:PORT NAME in the output (repeatable)", 2},
    {"wide", OPT_WIDE, NULL, 0, "Print every column of the per-route table (over 200 wide)", 2},
    {"live", OPT_LIVE, NULL, 0,
     "Show the per-route table of the last second, refreshed in place (plain lines when "
     "stdout is not a terminal)",
     2},
    {NULL, 0, NULL, 0, "PostgreSQL:", 4},
    {"pg-port", OPT_PG_PORT, "PORT", 0,
     "A PostgreSQL server port (repeatable; default 5432). Connections that start with a "
     "StartupMessage are PostgreSQL whatever their port",
     4},
    {"pg-literals", OPT_PG_LITERALS, NULL, 0,
     "Also output statements with their literal values (may expose secrets and personal "
     "data: off by default)",
     4},
    {NULL, 0, NULL, 0, "Other:", 3},
    {"python", OPT_PYTHON, "MODE", 0, PYTHON_DOC,
     3},
    {"mmap", OPT_MMAP, NULL, 0,
     "Also count the memory each request maps (mmap, brk: mapped_bytes). Needs syscall "
     "tracepoints, which slow every syscall on the host (~50 ns each) where socket "
     "tracepoints would have done without them",
     3},
    {"verbose", 'v', NULL, 0, "Print libbpf's log and debug output", 3},
    {},
};

static const struct argp_option report_opts[] = {
    {"output", 'o', "FILE", 0, "Write the HTML to FILE (default: PROFILE with .html)", 0},
    {},
};

static const struct argp_option diff_opts[] = {
    {"format", OPT_FORMAT, "FORMAT", 0, "text (default) or json, on stdout", 0},
    {"html", OPT_HTML, "FILE", 0, "Also write the comparison as an HTML page to FILE", 0},
    {"threshold", OPT_THRESHOLD, "PCT", 0,
     "Flag a change only beyond PCT percent (default 10); a flagged regression exits 1", 0},
    {"min-ms", OPT_MIN_MS, "MS", 0, "Flag a change of a time only beyond MS ms (default 1)", 0},
    {},
};

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || end == s || *end || *out > max || s[0] == '-')
		return -EINVAL;
	return 0;
}

static int parse_python(struct argp_state *state, const char *arg, enum env_python *out)
{
	static const char *const names[] = { "steps", "contexts", "off" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!strcmp(arg, names[i])) {
			*out = (enum env_python)i;
			return 0;
		}
	}
	argp_error(state, "invalid --python '%s': expected steps, contexts or off", arg);
	return EINVAL;
}

static int parse_double(const char *s, double max, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno || end == s || *end || !(*out >= 0) || *out > max)
		return -EINVAL;
	return 0;
}

static error_t parse_common(int key, char *arg, struct argp_state *state)
{
	struct env *env = state->input;

	(void)arg;
	switch (key) {
	case 'v':
		env->verbose = true;
		return 0;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		return EINVAL;
	}
	return ARGP_ERR_UNKNOWN;
}

static error_t parse_record(int key, char *arg, struct argp_state *state)
{
	struct env *env = state->input;
	unsigned long v;

	switch (key) {
	case 'p':
		if (parse_uint(arg, INT_MAX, &v) || v == 0) {
			argp_error(state, "invalid PID '%s': expected a positive number", arg);
			return EINVAL;
		}
		if (env->npids == ENV_MAX_PIDS) {
			argp_error(state, "too many -p (at most %d)", ENV_MAX_PIDS);
			return EINVAL;
		}
		env->pids[env->npids++] = v;
		return 0;
	case 'd':
		if (parse_uint(arg, 365UL * 24 * 3600, &v) || v == 0) {
			argp_error(state, "invalid duration '%s': expected whole seconds > 0", arg);
			return EINVAL;
		}
		env->duration_s = v;
		return 0;
	case OPT_PG_PORT:
		if (parse_uint(arg, 65535, &v) || v == 0) {
			argp_error(state, "invalid --pg-port '%s': expected 1..65535", arg);
			return EINVAL;
		}
		if (env->npg_ports == ENV_MAX_PG_PORTS) {
			argp_error(state, "too many --pg-port (at most %d)", ENV_MAX_PG_PORTS);
			return EINVAL;
		}
		env->pg_ports[env->npg_ports++] = v;
		return 0;
	case OPT_PEER_NAME:
		if (env->npeer_names == ENV_MAX_PEER_NAMES) {
			argp_error(state, "too many --peer-name (at most %d)", ENV_MAX_PEER_NAMES);
			return EINVAL;
		}
		env->peer_names[env->npeer_names++] = arg;
		return 0;
	case OPT_MMAP:
		env->mmap = true;
		return 0;
	case OPT_SAMPLE:
		if (parse_uint(arg, 1000000, &v) || v == 0) {
			argp_error(state, "invalid --sample '%s': expected 1..1000000", arg);
			return EINVAL;
		}
		env->sample_every = v;
		return 0;
	case OPT_PG_LITERALS:
		env->pg_literals = true;
		return 0;
	case OPT_PYTHON:
		return parse_python(state, arg, &env->python);
	case OPT_CLASS_HEADER:
		env->class_header = arg;
		return 0;
	case OPT_REQUESTS:
		env->requests_path = arg;
		return 0;
	case 'o':
		env->profile_path = arg;
		return 0;
	case 'q':
		env->quiet = true;
		return 0;
	case OPT_WIDE:
		env->wide = true;
		return 0;
	case OPT_LIVE:
		env->live = true;
		return 0;
	case 'v':
		env->verbose = true;
		return 0;
	case ARGP_KEY_ARG:
		/* The first non-option starts COMMAND; the rest are its arguments. */
		env->command = &state->argv[state->next - 1];
		env->command_argc = state->argc - state->next + 1;
		state->next = state->argc;
		return 0;
	case ARGP_KEY_END:
		if (env->command && env->npids) {
			argp_error(state, "use either -p PID or -- COMMAND, not both");
			return EINVAL;
		}
		return 0;
	}
	return ARGP_ERR_UNKNOWN;
}

static error_t take_input(struct argp_state *state, const char *arg, int max)
{
	struct env *env = state->input;

	if (env->ninputs == max) {
		argp_error(state, "unexpected argument '%s'", arg);
		return EINVAL;
	}
	env->inputs[env->ninputs++] = arg;
	return 0;
}

static error_t parse_report(int key, char *arg, struct argp_state *state)
{
	struct env *env = state->input;

	switch (key) {
	case 'o':
		env->out_path = arg;
		return 0;
	case ARGP_KEY_ARG:
		return take_input(state, arg, 1);
	case ARGP_KEY_END:
		if (env->ninputs != 1) {
			argp_error(state, "name the profile to report on (agentprof record -o)");
			return EINVAL;
		}
		return 0;
	}
	return ARGP_ERR_UNKNOWN;
}

static error_t parse_diff(int key, char *arg, struct argp_state *state)
{
	struct env *env = state->input;

	switch (key) {
	case OPT_FORMAT:
		if (!strcmp(arg, "text")) {
			env->format = FORMAT_TEXT;
		} else if (!strcmp(arg, "json")) {
			env->format = FORMAT_JSON;
		} else {
			argp_error(state, "invalid --format '%s': expected text or json", arg);
			return EINVAL;
		}
		return 0;
	case OPT_HTML:
		env->html_path = arg;
		return 0;
	case OPT_THRESHOLD:
		if (parse_double(arg, 1e6, &env->threshold_pct)) {
			argp_error(state, "invalid --threshold '%s': expected a percentage >= 0", arg);
			return EINVAL;
		}
		return 0;
	case OPT_MIN_MS:
		if (parse_double(arg, 1e9, &env->min_ms)) {
			argp_error(state, "invalid --min-ms '%s': expected milliseconds >= 0", arg);
			return EINVAL;
		}
		return 0;
	case ARGP_KEY_ARG:
		return take_input(state, arg, 2);
	case ARGP_KEY_END:
		if (env->ninputs != 2) {
			argp_error(state, "name two profiles: BEFORE.json AFTER.json");
			return EINVAL;
		}
		return 0;
	}
	return ARGP_ERR_UNKNOWN;
}

static const char *option_name(const struct argp_option *opts, int key)
{
	for (; opts->name || opts->key || opts->doc; opts++)
		if (opts->key == key && opts->name)
			return opts->name;
	return "?";
}

static error_t parse_export(int key, char *arg, struct argp_state *state)
{
	struct env_export *ex = &((struct env *)state->input)->ex;
	unsigned int *cap = NULL, *secs = NULL;
	unsigned long v;

	switch (key) {
	case OPT_LISTEN:
		if (!strrchr(arg, ':')) {
			argp_error(state, "invalid --listen '%s': expected ADDR:PORT", arg);
			return EINVAL;
		}
		ex->listen = arg;
		return 0;
	case OPT_SERVICE:
		if (ex->nservice_rules == ENV_MAX_SERVICE_RULES) {
			argp_error(state, "too many --service (at most %d)", ENV_MAX_SERVICE_RULES);
			return EINVAL;
		}
		ex->service_rules[ex->nservice_rules++] = arg;
		return 0;
	case OPT_DURATION_BUCKETS:
		ex->duration_buckets = arg;
		return 0;
	case OPT_CPU_BUCKETS:
		ex->cpu_buckets = arg;
		return 0;
	case OPT_LOGS_ROOT:
		ex->logs_root = arg;
		return 0;
	case OPT_MAX_ROUTES:
		cap = &ex->max_routes;
		break;
	case OPT_MAX_SERVICES:
		cap = &ex->max_services;
		break;
	case OPT_MAX_CLASSES:
		cap = &ex->max_classes;
		break;
	case OPT_MAX_PEERS:
		cap = &ex->max_peers;
		break;
	case OPT_MAX_STATEMENTS:
		cap = &ex->max_statements;
		break;
	case OPT_MAX_GROUPS:
		cap = &ex->max_groups;
		break;
	case OPT_RESCAN:
		secs = &ex->rescan_s;
		break;
	case OPT_FORGET:
		secs = &ex->forget_s;
		break;
	case OPT_SAMPLE_INTERVAL:
		secs = &ex->sample_s;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		return EINVAL;
	default:
		/* The options export shares with record (-p, --class-header, ...). */
		return parse_record(key, arg, state);
	}
	if (parse_uint(arg, 100000, &v) || v == 0) {
		argp_error(state, "invalid --%s '%s': expected a whole number from 1 to 100000",
			   option_name(export_opts, key), arg);
		return EINVAL;
	}
	*(cap ?: secs) = v;
	return 0;
}

static void env__defaults(struct env *env)
{
	memset(env, 0, sizeof(*env));
	env->class_header = "X-Request-Class";
	env->sample_every = 1;
	env->threshold_pct = 10;
	env->min_ms = 1;
	env->ex.listen = "0.0.0.0:9464";
	env->ex.max_routes = 100;
	env->ex.max_services = 64;
	env->ex.max_classes = 16;
	env->ex.max_peers = 100;
	env->ex.max_statements = 50;
	env->ex.max_groups = 300;
	env->ex.duration_buckets = "0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5,10,30,60,120";
	env->ex.cpu_buckets = "0.0001,0.00025,0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,0.25,"
			      "0.5,1";
	env->ex.rescan_s = 5;
	env->ex.forget_s = 300;
	env->ex.sample_s = 5;
	env->ex.logs_root = "/var/log";
}

/*
 * The argv of the subcommand: env->command points into it for the process's
 * life. Kept here so that it stays reachable (no leak for LeakSanitizer).
 */
static char **sub_argv __attribute__((used));

/* argp names the program after argv[0]: make it "agentprof record" in messages. */
static int env__parse_sub(struct env *env, const struct argp *argp, int argc, char **argv)
{
	static char name[64];
	char **sub;
	int err, i;

	sub = calloc(argc, sizeof(*sub));
	if (!sub)
		return 2;
	snprintf(name, sizeof(name), "agentprof %s", argv[1]);
	sub[0] = name;
	for (i = 2; i < argc; i++)
		sub[i - 1] = argv[i];
	err = argp_parse(argp, argc - 1, sub, 0, NULL, env);
	if (err) {
		free(sub);
		return 2;
	}
	sub_argv = sub;
	return 0;
}

int env__parse(struct env *env, int argc, char **argv)
{
	static const struct argp main_argp = {common_opts, parse_common, "COMMAND", main_doc,
					      NULL,	   NULL,	 NULL};
	static const struct argp check_argp = {common_opts, parse_common, NULL, check_doc,
					       NULL,	    NULL,	  NULL};
	static const struct argp record_argp = {
	    record_opts, parse_record, "[-- COMMAND ARGS...]", record_doc, NULL, NULL, NULL};
	static const struct argp report_argp = {report_opts, parse_report, "PROFILE", report_doc,
						NULL,	     NULL,	   NULL};
	static const struct argp diff_argp = {diff_opts, parse_diff, "BEFORE AFTER", diff_doc,
					      NULL,	 NULL,	     NULL};
	static const struct argp export_argp = {export_opts, parse_export, NULL, export_doc,
						NULL,	     NULL,	   NULL};
	const struct argp *argp;

	/* A usage error exits 2 (argp's default is 64), as every other error: 1 is diff's regression. */
	argp_err_exit_status = 2;
	env__defaults(env);
	if (argc < 2 || argv[1][0] == '-') {
		argp_parse(&main_argp, argc, argv, 0, NULL, env);
		fprintf(stderr, "agentprof: no command given: try `agentprof check` or "
				"`agentprof record --help`\n");
		return 2;
	}
	if (!strcmp(argv[1], "check")) {
		env->cmd = CMD_CHECK;
		argp = &check_argp;
	} else if (!strcmp(argv[1], "plan")) {
		env->cmd = CMD_PLAN;
		env->sub_argc = argc - 1;
		env->sub_argv = argv + 1;
		return 0;
	} else if (!strcmp(argv[1], "record")) {
		env->cmd = CMD_RECORD;
		argp = &record_argp;
	} else if (!strcmp(argv[1], "report")) {
		env->cmd = CMD_REPORT;
		argp = &report_argp;
	} else if (!strcmp(argv[1], "diff")) {
		env->cmd = CMD_DIFF;
		argp = &diff_argp;
	} else if (!strcmp(argv[1], "export")) {
		env->cmd = CMD_EXPORT;
		argp = &export_argp;
	} else {
		fprintf(stderr, "agentprof: unknown command '%s': try `agentprof --help`\n",
			argv[1]);
		return 2;
	}
	return env__parse_sub(env, argp, argc, argv);
}
