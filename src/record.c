// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof record`: a front end over the collector (collector.h) that
 * writes each request as a JSON line, profiles it, and at exit prints the
 * tables and saves the profile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collector.h"
#include "live.h"
#include "lines.h"
#include "outfile.h"
#include "peers.h"
#include "pg.h"
#include "procs.h"
#include "plan/capacity.h"
#include "profile.h"
#include "record.h"
#include "request.h"
#include "table.h"
#include "tls.h"
#include "tracefs.h"

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

/*
 * Installed before anything is traced and kept to the end: a SIGINT, SIGTERM
 * or SIGHUP (the terminal went away), first or repeated, during the load or
 * during the flush, only asks the poll loop to stop, and what was recorded is
 * written. A closed stdout (`record | head`) makes write() fail with EPIPE
 * instead of killing agentprof before the profile is saved; a handler rather
 * than SIG_IGN, since an ignored signal stays ignored across COMMAND's exec.
 */
static void on_sigpipe(int sig)
{
	(void)sig;
}

static void record__signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
}

struct recorder {
	const struct env *env;
	struct collector col;
	struct lines *requests_out;
	struct outfile *profile_out; /* -o, opened before tracing */
	struct profile *profile;
	struct live *live; /* --live: the last second's table */
	struct launched child;
	int write_err;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int recorder__write_line(struct recorder *r, const struct request *req)
{
	struct json_object *o = request__json(req);
	const char *s;
	size_t len;
	int err;

	if (!o)
		return -ENOMEM;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
	err = s ? lines__add(r->requests_out, s, len) : -ENOMEM;
	json_object_put(o);
	return err;
}

/* The first write error of --requests is said once; no line is queued after it. */
static void recorder__write_failed(struct recorder *r, int err)
{
	r->write_err = err;
	if (err)
		fprintf(stderr, "agentprof: writing %s failed: %s: check the disk\n",
			r->env->requests_path, strerror(-err));
}

/* One decoded request (collector.h): its JSON line, then the profile. */
static void recorder__on_request(void *ctx, struct request *req)
{
	struct recorder *r = ctx;

	if (r->requests_out && !r->write_err)
		recorder__write_failed(r, recorder__write_line(r, req));
	if (profile__add(r->profile, req) || (r->live && live__add(r->live, req)))
		fprintf(stderr, "agentprof: out of memory adding a request to the profile\n");
}

static int recorder__add_targets(struct recorder *r)
{
	const struct env *env = r->env;
	int i, n;

	for (i = 0; i < env->npids; i++) {
		n = collector__add_target(&r->col, env->pids[i]);
		if (n < 0)
			return n;
	}
	if (env->command) {
		n = collector__add_target(&r->col, r->child.pid);
		if (n < 0)
			return n;
	}
	return 0;
}

static void report_loss(uint64_t n, const char *what, const char *fix)
{
	if (n)
		fprintf(stderr, "agentprof: %llu %s: %s\n", (unsigned long long)n, what, fix);
}

static void recorder__print_summary(struct recorder *r)
{
	struct profile_run *run = profile__run(r->profile);

	uint64_t recorded = run->records - run->malformed_heads - run->oversized_heads;

	fprintf(stderr,
		"agentprof: %llu requests recorded (%llu incomplete, %llu still open at exit)\n",
		(unsigned long long)recorded, (unsigned long long)run->incomplete,
		(unsigned long long)run->flushed);
	if (run->sample_every > 1)
		fprintf(stderr,
			"agentprof: sampled 1 in %llu: %llu requests seen, %llu not traced; the "
			"table's counts are estimates (x%llu)\n",
			(unsigned long long)run->sample_every,
			(unsigned long long)(recorded + run->unsampled),
			(unsigned long long)run->unsampled, (unsigned long long)run->sample_every);
	report_loss(run->malformed_heads, "malformed request heads skipped",
		    "the traffic was not HTTP/1.x");
	report_loss(run->oversized_heads, "requests skipped: request line longer than the capture",
		    "AP_HEAD_MAX bytes are captured");
	report_loss(run->ringbuf_drops, "request records dropped: ring buffer full",
		    "the collector fell behind; report this with the request rate");
	report_loss(run->requests_map_full,
		    "requests closed off early (flushed): a start found the slots it may take all open",
		    "more requests in flight than the map holds");
	report_loss(run->conns_map_full, "connections not tracked: conns map full",
		    "more open connections than the map holds");
	report_loss(run->threads_map_full,
		    "threads not tracked: threads map full (or no memory for task storage)",
		    "more busy threads than the map holds");
	report_loss(run->procs_map_full, "child processes not traced: pid beyond AP_PID_LIMIT",
		    "kernel.pid_max is above what Linux allows: report it");
	report_loss(run->pg_hold_overflow,
		    "PostgreSQL round trips in no connection hold: their requests' pg.hold_ns is null",
		    "more requests using PostgreSQL at once than PGHOLD_MAX_REQS (src/pghold.h)");
	report_loss(run->py_units_evicted,
		    "CPython units (tasks, callbacks, pool jobs) whose request binding was lost",
		    "more units of open requests than py_units holds (bpf/python.bpf.h): "
		    "their CPU went to the thread rules");
}

static int recorder__report(struct recorder *r)
{
	struct json_object *extra;
	int err;

	collector__read_peer_totals(&r->col);
	if (!r->env->quiet) {
		table__print(r->profile, stdout, r->env->wide);
		peers__print(r->col.peers, stdout);
		pg__print_top(r->col.pg, stdout, 20);
	}
	fflush(stdout);
	recorder__print_summary(r);
	capacity__print_lines(r->profile, stderr);
	if (!r->env->profile_path)
		return 0;
	extra = json_object_new_object();
	json_object_object_add(extra, "peers", peers__json(r->col.peers));
	json_object_object_add(extra, "statements", pg__statements_json(r->col.pg));
	err = profile__write_fd(r->profile, outfile__fd(r->profile_out), extra);
	if (!err)
		err = outfile__commit(r->profile_out);
	else
		outfile__discard(r->profile_out);
	r->profile_out = NULL;
	if (err)
		fprintf(stderr, "agentprof: writing the profile to %s failed: %s\n",
			r->env->profile_path, strerror(-err));
	return err;
}

/*
 * A -p process is alive while its mark is set: the kernel side clears it
 * when the process's last thread exits, so a pid that another process took
 * meanwhile does not count (nor is that process traced).
 */
static bool targets_alive(struct recorder *r)
{
	int i;

	for (i = 0; i < r->env->npids; i++)
		if (collector__traced(&r->col, r->env->pids[i]))
			return true;
	return false;
}

static bool child_exited(struct recorder *r, int *status)
{
	if (!r->env->command || r->child.pid <= 0)
		return false;
	if (waitpid(r->child.pid, status, WNOHANG) != r->child.pid)
		return false;
	r->child.pid = -1;
	return true;
}

static int recorder__poll(struct recorder *r)
{
	const struct env *env = r->env;
	uint64_t deadline = 0, next_check = 0, now;
	/* A started command or a later worker loads its CPython after the start. */
	int err = 0, status, runtime_scans = 10, before;

	if (env->duration_s)
		deadline = now_ns(CLOCK_MONOTONIC) + env->duration_s * 1000000000ULL;
	while (!exiting) {
		err = collector__poll(&r->col);
		/*
		 * Any signal cuts the poll short, a stop and continue too (Ctrl-Z,
		 * fg: epoll_wait() is not restarted): `exiting` says whether to stop.
		 */
		if (err == -EINTR)
			err = 0;
		if (err < 0)
			break;
		if (r->requests_out && !r->write_err)
			recorder__write_failed(r, lines__flush(r->requests_out));
		now = now_ns(CLOCK_MONOTONIC);
		if (r->live)
			live__tick(r->live, now);
		if (deadline && now >= deadline)
			break;
		if (child_exited(r, &status)) {
			fprintf(stderr, "agentprof: %s exited (status %d)\n", env->command[0],
				WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
			break;
		}
		if (now < next_check)
			continue;
		next_check = now + 1000000000ULL;	/* once a second */
		if (env->npids && !targets_alive(r)) {
			fprintf(stderr, "agentprof: every traced process has exited\n");
			break;
		}
		if (runtime_scans > 0) {
			runtime_scans--;
			before = r->col.pyrt.nprocs;
			if (collector__find_runtimes(&r->col))
				pyrt__report(&r->col.pyrt, before, stderr);
		}
	}
	return err;
}

static void print_tracing(struct recorder *r)
{
	const struct env *env = r->env;
	char mode[96];
	int i;

	fprintf(stderr, "agentprof: tracing ");
	if (env->command)
		fprintf(stderr, "%s (pid %d)", env->command[0], (int)r->child.pid);
	else if (!env->npids)
		fprintf(stderr, "every HTTP server on this host");
	for (i = 0; i < env->npids; i++)
		fprintf(stderr, "%spid %d", i ? ", " : "", (int)env->pids[i]);
	fprintf(stderr, " (%s, %d libssl probed); ",
		loader__mode_str(&r->col.loader.mode, mode, sizeof(mode)), r->col.tls.nlibs);
	if (env->duration_s)
		fprintf(stderr, "stopping in %u s or at Ctrl-C\n", env->duration_s);
	else
		fprintf(stderr, "Ctrl-C to stop\n");
}

/* Every output file is opened before anything is traced: a bad path costs no run. */
static int recorder__open_outputs(struct recorder *r, char *msg, size_t msgsz)
{
	const struct env *env = r->env;

	if (env->requests_path) {
		r->requests_out = lines__open(env->requests_path, msg, msgsz);
		if (!r->requests_out)
			return -errno;
	}
	if (env->profile_path) {
		r->profile_out = outfile__open(env->profile_path, msg, msgsz);
		if (!r->profile_out)
			return -errno;
	}
	return 0;
}

/* Every -p names a live process; a thread id stands for its process. */
static int check_targets(struct env *env)
{
	pid_t tgid;
	int i;

	for (i = 0; i < env->npids; i++) {
		tgid = procs__tgid(env->pids[i]);
		if (tgid <= 0) {
			fprintf(stderr,
				"agentprof: process %d does not exist: check the PID "
				"(e.g. pgrep -f uvicorn)\n",
				(int)env->pids[i]);
			return -ESRCH;
		}
		if (tgid != env->pids[i]) {
			fprintf(stderr, "agentprof: %d is a thread of process %d: tracing %d\n",
				(int)env->pids[i], (int)tgid, (int)tgid);
			env->pids[i] = tgid;
		}
	}
	return 0;
}

static void stop_child(struct recorder *r)
{
	int status, i;

	if (r->child.pid <= 0)
		return;
	procs__release(&r->child);
	/* The whole group: a shell's children too. */
	kill(-r->child.pid, SIGTERM);
	for (i = 0; i < 50; i++) {
		if (waitpid(r->child.pid, &status, WNOHANG) == r->child.pid)
			break;
		usleep(100 * 1000);
	}
	if (i == 50) {
		kill(-r->child.pid, SIGKILL);
		waitpid(r->child.pid, &status, 0);
	}
	/* Grandchildren that linger after the group leader exits. */
	kill(-r->child.pid, SIGTERM);
	r->child.pid = -1;
}

int record__run(const struct env *cli)
{
	struct env targets = *cli, *env = &targets;
	struct recorder r = { .env = env, .child = { .pid = -1, .go_fd = -1, .err_fd = -1 } };
	struct collector_opts co = {
		.trace_all = env->npids == 0 && !env->command,
		.mmap = env->mmap,
		.verbose = env->verbose,
		.pg_literals = env->pg_literals,
		.sample_every = env->sample_every ?: 1,
		.no_python = env->python == ENV_PY_OFF,
		.no_task_steps = env->python == ENV_PY_CONTEXTS,
		.pg_ports = env->pg_ports,
		.npg_ports = env->npg_ports,
		.class_header = env->class_header,
		.on_request = recorder__on_request,
		.ctx = &r,
	};
	char tracefs[256], msg[512];
	int err, i;

	record__signals();
	err = check_targets(&targets);
	if (err)
		return 1;
	err = tracefs__ensure(tracefs, sizeof(tracefs), msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "agentprof: %s\n", msg);
		return 1;
	}
	r.profile = profile__new();
	co.services = r.profile ? profile__services(r.profile) : NULL;
	err = collector__init(&r.col, &co);
	if (err || !r.profile) {
		fprintf(stderr, "agentprof: out of memory\n");
		err = -ENOMEM;
		goto cleanup;
	}
	profile__run(r.profile)->sample_every = env->sample_every ?: 1;
	if (env->live) {
		r.live = live__new(stdout, isatty(STDOUT_FILENO), env->sample_every);
		if (!r.live) {
			fprintf(stderr, "agentprof: out of memory\n");
			err = -ENOMEM;
			goto cleanup;
		}
	}
	for (i = 0; i < env->npeer_names; i++) {
		if (peers__add_name(r.col.peers, env->peer_names[i], msg, sizeof(msg))) {
			fprintf(stderr, "agentprof: %s\n", msg);
			err = -EINVAL;
			goto cleanup;
		}
	}
	err = recorder__open_outputs(&r, msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "agentprof: %s\n", msg);
		goto cleanup;
	}
	if (env->command) {
		err = procs__launch(env->command, &r.child);
		if (err) {
			fprintf(stderr, "agentprof: cannot start %s: %s\n", env->command[0],
				strerror(-err));
			goto cleanup;
		}
	}
	r.col.opts.tls_pids = env->command ? &r.child.pid : env->pids;
	r.col.opts.ntls_pids = env->command ? 1 : env->npids;
	err = collector__load(&r.col);
	if (err)
		goto cleanup;
	err = recorder__add_targets(&r);
	if (err)
		goto cleanup;
	err = collector__attach(&r.col);
	if (err)
		goto cleanup;
	profile__run(r.profile)->start_real_ns = now_ns(CLOCK_REALTIME);
	err = procs__release(&r.child);
	if (err) {
		fprintf(stderr, "agentprof: cannot run %s: %s: check the command and PATH\n",
			env->command[0], strerror(-err));
		goto cleanup;
	}
	print_tracing(&r);
	pyrt__report(&r.col.pyrt, 0, stderr);
	err = recorder__poll(&r);
	collector__stop(&r.col);
	collector__read_stats(&r.col, profile__run(r.profile));
	if (recorder__report(&r) && !err)
		err = -EIO;
cleanup:
	tls__detach(&r.col.tls);
	stop_child(&r);
	collector__free(&r.col);
	outfile__discard(r.profile_out);
	i = lines__close(r.requests_out);
	if (i && !r.write_err)
		recorder__write_failed(&r, i);
	live__free(r.live);
	profile__free(r.profile);
	return err || r.write_err ? 1 : 0;
}
