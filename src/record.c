// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof record`: open -> configure -> load -> attach -> poll -> flush ->
 * report. One ring-buffer record arrives per finished request; requests still
 * open when tracing stops are read from the requests map and closed off here.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agentprof/pgwire.h"
#include "agentprof/request.h"
#include "agentprof.skel.h"
#include "feature.h"
#include "links.h"
#include "live.h"
#include "loader.h"
#include "peers.h"
#include "pg.h"
#include "procs.h"
#include "profile.h"
#include "record.h"
#include "request.h"
#include "table.h"
#include "tls.h"
#include "tracefs.h"

/*
 * How often the ring buffer is drained: every 100 ms, every 10 ms while
 * records come faster than RB_FAST_RATE a second. BPF wakes the reader only
 * when the buffer is half full (maps.bpf.h, ringbuf_flags()).
 */
#define RB_DRAIN_MS 100
#define RB_DRAIN_FAST_MS 10
#define RB_FAST_RATE 10000

static int drain_interval_ms(long long records, int interval_ms)
{
	return records * 1000 / interval_ms > RB_FAST_RATE ? RB_DRAIN_FAST_MS : RB_DRAIN_MS;
}

static volatile sig_atomic_t exiting;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

struct recorder {
	const struct env *env;
	struct agentprof_bpf *skel;
	struct ring_buffer *rb;
	FILE *requests_out;
	struct profile *profile;
	struct pg *pg;
	struct peers *peers;
	struct request_decode_opts dopts;
	struct launched child;
	struct tls tls;
	struct loader loader;
	struct live *live; /* --live */
	bool close_tried; /* recorder__watch_close() attached ap_close_e, or failed to */
	int write_err;
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* mmap()/brk() are hooked: in the syscall-tracepoint modes, or with --mmap. */
static bool recorder__mapped_measured(const struct recorder *r)
{
	return !r->loader.mode.sock_tps || r->env->mmap;
}

static void recorder__consume(struct recorder *r, const struct ap_request_event *ev)
{
	struct profile_run *run = profile__run(r->profile);
	struct pg_query *queries;
	struct request req;
	size_t nq;
	uint32_t i;
	int err;

	run->records++;
	err = request__decode(&req, ev, &r->dopts);
	queries = pg__take(r->pg, ev->id, err ? "(malformed)" : req.route, &nq);
	if (err) {
		if (err == REQUEST_OVERSIZED)
			run->oversized_heads++;
		else
			run->malformed_heads++;
		pg__free_queries(queries, nq);
		return;
	}
	req.pg_queries = queries;
	req.npg_queries = nq;
	req.no_mapped = !recorder__mapped_measured(r);
	req.peers = r->peers;
	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++)
		peers__add_request(r->peers, &ev->peers[i], run->sample_every ?: 1);
	if (req.incomplete)
		run->incomplete++;
	if (ev->flags & AP_REQ_FLUSHED)
		run->flushed++;
	if (r->requests_out && !r->write_err) {
		r->write_err = request__write_json(&req, r->requests_out);
		if (r->write_err)
			fprintf(stderr, "agentprof: writing %s failed: %s: check the disk\n",
				r->env->requests_path, strerror(-r->write_err));
	}
	if (profile__add(r->profile, &req) || (r->live && live__add(r->live, &req)))
		fprintf(stderr, "agentprof: out of memory adding a request to the profile\n");
	pg__free_queries(queries, nq);
}

static int handle_event(void *ctx, void *data, size_t size)
{
	const uint32_t *type = data;
	struct ap_request_event ev;

	if (size < sizeof(*type))
		return 0;
	if (*type == AP_EV_REQUEST && !request__unpack(&ev, data, size))
		recorder__consume(ctx, &ev);
	else if (*type == AP_EV_PG && size >= sizeof(struct ap_pg_event))
		pg__add_round_trip(((struct recorder *)ctx)->pg, data);
	return 0;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	return vfprintf(stderr, fmt, args);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)fmt;
	(void)args;
	(void)level;
	return 0;
}

static int recorder__load(struct recorder *r)
{
	const struct env *env = r->env;
	struct loader_opts o = {
		.trace_all = env->npids == 0 && !env->command,
		.mmap = env->mmap,
		.verbose = env->verbose,
		.sample_every = env->sample_every ?: 1,
		.pg_ports = env->pg_ports,
		.npg_ports = env->npg_ports,
	};
	const struct loader_prog *big;
	int err;

	o.tls_uprobes = tls__find(&r->tls, env->command ? &r->child.pid : env->pids,
				  env->command ? 1 : env->npids) > 0;
	err = loader__load_best(&r->loader, &o);
	if (!err) {
		r->skel = r->loader.skel;
		big = loader__largest(&r->loader);
		/* -v leaves the verifier's log to libbpf: no figures of ours. */
		if (env->verbose)
			fprintf(stderr, "agentprof: %d BPF programs loaded in %.0f ms\n",
				r->loader.nprogs, r->loader.load_ms);
		else
			fprintf(stderr,
				"agentprof: %d BPF programs loaded in %.0f ms (%.0f ms in the "
				"verifier; largest %s, %u instructions processed)\n",
				r->loader.nprogs, r->loader.load_ms, r->loader.verify_ms,
				big ? big->name : "-", big ? big->insns : 0);
		return 0;
	}
	if (err == -EPERM && geteuid() != 0)
		fprintf(stderr,
			"agentprof: loading BPF programs failed: %s: run as root, or grant "
			"CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN\n",
			strerror(-err));
	else
		fprintf(stderr,
			"agentprof: loading BPF programs failed: the kernel rejected %s: %s: run "
			"`agentprof check -v` to see what this kernel lacks, and report it with the "
			"output of `uname -r`\n",
			r->loader.failed_prog, r->loader.failed_reason);
	return err;
}

/* Set pid's bit in the procs bitmap (bpf/maps.bpf.h), mapped at ctx. */
static void add_proc(pid_t pid, void *ctx)
{
	uint64_t *words = ctx;

	if ((uint32_t)pid < AP_PID_LIMIT)
		__atomic_fetch_or(&words[pid / 64], 1ULL << (pid % 64), __ATOMIC_RELAXED);
}

static int recorder__add_targets(struct recorder *r)
{
	const struct env *env = r->env;
	size_t size = AP_PID_LIMIT / 8;
	uint64_t *words;
	int i, n, err = 0;

	/* The BPF side sets bits of forked children at the same time: atomics on shared memory. */
	words = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(r->skel->maps.procs),
		     0);
	if (words == MAP_FAILED) {
		err = -errno;
		fprintf(stderr, "agentprof: mapping the traced-process bitmap failed: %s: the "
				"kernel needs BPF_F_MMAPABLE arrays (5.5+)\n", strerror(errno));
		return err;
	}
	for (i = 0; i < env->npids; i++) {
		add_proc(env->pids[i], words);
		/* Workers forked before we started (gunicorn, node cluster) count too. */
		n = procs__for_each_descendant(env->pids[i], add_proc, words);
		if (n < 0) {
			err = n;
			fprintf(stderr, "agentprof: listing the children of pid %d failed: %s\n",
				(int)env->pids[i], strerror(-n));
			break;
		}
	}
	if (env->command)
		add_proc(r->child.pid, words);
	munmap(words, size);
	return err;
}

static uint64_t stat_sum(struct recorder *r, enum ap_stat idx)
{
	int ncpus = libbpf_num_possible_cpus(), i;
	uint32_t key = idx;
	uint64_t *vals, sum = 0;

	if (ncpus <= 0)
		return 0;
	vals = calloc(ncpus, sizeof(*vals));
	if (!vals)
		return 0;
	if (!bpf_map__lookup_elem(r->skel->maps.stats, &key, sizeof(key), vals,
				  ncpus * sizeof(*vals), 0))
		for (i = 0; i < ncpus; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

/* Slots read per syscall at exit: 8192 one by one took a second. */
#define FLUSH_BATCH 256

static void flush_one(struct recorder *r, struct ap_request_event *ev, uint64_t now)
{
	if (!ev->id || ev->id == AP_REQ_ID_CLAIMED)
		return;		/* a free slot */
	ev->end_ns = now;
	ev->flags |= procs__exists(ev->pid) ? AP_REQ_FLUSHED : AP_REQ_TASK_EXITED;
	if (!ev->first_tx_ns)
		ev->flags |= AP_REQ_INCOMPLETE;
	recorder__consume(r, ev);
}

/* Requests still open when tracing stopped: close them off from the map. */
static void recorder__flush_open(struct recorder *r)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int fd = bpf_map__fd(r->skel->maps.requests), err;
	uint64_t now = now_ns(CLOCK_MONOTONIC);
	uint32_t keys[FLUSH_BATCH], count, batch, *in = NULL, i;
	struct ap_request_event *evs;

	evs = calloc(FLUSH_BATCH, sizeof(*evs));
	if (!evs) {
		fprintf(stderr, "agentprof: no memory to read the requests still open at exit\n");
		return;
	}
	do {
		count = FLUSH_BATCH;
		err = bpf_map_lookup_batch(fd, in, &batch, keys, evs, &count, &opts);
		if (err && errno != ENOENT) {
			fprintf(stderr, "agentprof: reading the requests still open at exit failed: "
					"%s: they are not in the output\n", strerror(errno));
			break;
		}
		for (i = 0; i < count; i++)
			flush_one(r, &evs[i], now);
		in = &batch;
	} while (!err);	/* ENOENT: that was the last batch */
	free(evs);
}

static void recorder__collect_stats(struct recorder *r)
{
	struct profile_run *run = profile__run(r->profile);

	run->ringbuf_drops = stat_sum(r, AP_STAT_RINGBUF_DROPS);
	run->requests_map_full = stat_sum(r, AP_STAT_REQ_MAP_FULL);
	run->conns_map_full = stat_sum(r, AP_STAT_CONN_MAP_FULL);
	run->threads_map_full = stat_sum(r, AP_STAT_THREAD_MAP_FULL);
	run->procs_map_full = stat_sum(r, AP_STAT_PROC_MAP_FULL);
	run->non_http_reads = stat_sum(r, AP_STAT_NON_HTTP);
	run->stale_bindings = stat_sum(r, AP_STAT_STALE_REQ);
	run->unsampled = stat_sum(r, AP_STAT_UNSAMPLED);
	run->mapped_measured = recorder__mapped_measured(r);
	run->end_real_ns = now_ns(CLOCK_REALTIME);
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
}

/* The kernel's per-peer TCP counters, folded into the peers table. */
static void recorder__read_peer_totals(struct recorder *r)
{
	int fd = bpf_map__fd(r->skel->maps.peer_totals);
	struct ap_peer_key key, next;
	struct ap_peer_totals t;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &t))
			peers__add_totals(r->peers, &key, &t);
	}
}

static int recorder__report(struct recorder *r)
{
	struct json_object *extra;
	int err;

	recorder__read_peer_totals(r);
	if (!r->env->quiet) {
		table__print(r->profile, stdout, r->env->wide);
		peers__print(r->peers, stdout);
		pg__print_top(r->pg, stdout, 20);
	}
	fflush(stdout);
	recorder__print_summary(r);
	if (!r->env->profile_path)
		return 0;
	extra = json_object_new_object();
	json_object_object_add(extra, "peers", peers__json(r->peers));
	json_object_object_add(extra, "statements", pg__statements_json(r->pg));
	err = profile__write_json(r->profile, r->env->profile_path, extra);
	if (err)
		fprintf(stderr, "agentprof: writing the profile to %s failed: %s\n",
			r->env->profile_path, strerror(-err));
	return err;
}

static bool targets_alive(const struct env *env)
{
	int i;

	for (i = 0; i < env->npids; i++)
		if (procs__exists(env->pids[i]))
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

/*
 * Socket-tracepoint mode: the first inbound connection that is not TCP was
 * found (bpf/requests.bpf.c, nontcp_inbound: HTTP over a unix socket). Its
 * close() makes no TCP state change: attach the close syscall
 * tracepoint, and with it the slow syscall path of every task on the host.
 * The skeleton's link slot takes the link, so detaching and destroying
 * handle it as any other.
 */
static void recorder__watch_close(struct recorder *r)
{
	struct bpf_link *link;

	if (!r->loader.mode.sock_tps || r->close_tried || !r->skel->bss->nontcp_inbound)
		return;
	r->close_tried = true;
	link = bpf_program__attach(r->skel->progs.ap_close_e);
	if (!link) {
		fprintf(stderr, "agentprof: attaching the close() tracepoint failed: %s: requests "
				"on connections that are not TCP end at EOF, at the next request or "
				"when their fd is reused; run `agentprof check`\n", strerror(errno));
		return;
	}
	r->skel->links.ap_close_e = link;
	fprintf(stderr, "agentprof: an HTTP connection that is not TCP (a unix socket): tracing "
			"close() too, a syscall tracepoint (every syscall on the host pays for it)\n");
}

static int recorder__poll(struct recorder *r)
{
	const struct env *env = r->env;
	uint64_t deadline = 0, next_check = 0, now;
	int err = 0, status, interval = RB_DRAIN_MS, woken;

	if (env->duration_s)
		deadline = now_ns(CLOCK_MONOTONIC) + env->duration_s * 1000000000ULL;
	while (!exiting) {
		/*
		 * BPF seldom wakes the reader (maps.bpf.h): the poll is mostly
		 * a sleep that signals cut short; the buffer is drained after it.
		 */
		err = ring_buffer__poll(r->rb, interval);
		if (err >= 0) {
			/* The rate counts what a wakeup brought in too (a burst). */
			woken = err;
			err = ring_buffer__consume(r->rb);
			if (err >= 0)
				interval = drain_interval_ms((long long)woken + err, interval);
		}
		if (err == -EINTR) {
			err = 0;
			break;
		}
		if (err < 0) {
			fprintf(stderr, "agentprof: reading the ring buffer failed: %s\n",
				strerror(-err));
			break;
		}
		err = 0;
		if (r->requests_out)
			fflush(r->requests_out);
		recorder__watch_close(r);
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
		if (env->npids && now >= next_check) {
			next_check = now + 1000000000ULL;	/* once a second */
			if (!targets_alive(env)) {
				fprintf(stderr, "agentprof: every traced process has exited\n");
				break;
			}
		}
	}
	return err;
}

/* Stops the programs, side by side (links.h), with the libssl uprobes. */
static void recorder__detach(struct recorder *r)
{
	struct bpf_object_skeleton *s = r->skel->skeleton;
	int i, n = 0, max = s->prog_cnt + r->tls.nlinks;
	struct bpf_link ***links = calloc(max, sizeof(*links));
	struct bpf_prog_skeleton *p;

	if (!links) {
		agentprof_bpf__detach(r->skel);
		tls__detach(&r->tls);
		return;
	}
	for (i = 0; i < s->prog_cnt; i++) {
		p = (struct bpf_prog_skeleton *)((char *)s->progs + (size_t)i * s->prog_skel_sz);
		links[n++] = p->link;
	}
	for (i = 0; i < r->tls.nlinks; i++)
		links[n++] = &r->tls.links[i];
	links__destroy(links, n);
	r->tls.nlinks = 0;
	free(links);
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
		loader__mode_str(&r->loader.mode, mode, sizeof(mode)), r->tls.nlibs);
	if (env->duration_s)
		fprintf(stderr, "stopping in %u s or at Ctrl-C\n", env->duration_s);
	else
		fprintf(stderr, "Ctrl-C to stop\n");
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
	char tracefs[256], msg[512];
	int err, i;

	libbpf_set_print(env->verbose ? libbpf_print : libbpf_quiet);
	err = check_targets(&targets);
	if (err)
		return 1;
	err = tracefs__ensure(tracefs, sizeof(tracefs), msg, sizeof(msg));
	if (err) {
		fprintf(stderr, "agentprof: %s\n", msg);
		return 1;
	}
	r.profile = profile__new();
	r.pg = pg__new(env->pg_literals);
	r.peers = peers__new();
	if (!r.profile || !r.pg || !r.peers) {
		fprintf(stderr, "agentprof: out of memory\n");
		err = -ENOMEM;
		goto cleanup;
	}
	profile__run(r.profile)->sample_every = env->sample_every ?: 1;
	for (i = 0; i < env->npeer_names; i++) {
		if (peers__add_name(r.peers, env->peer_names[i], msg, sizeof(msg))) {
			fprintf(stderr, "agentprof: %s\n", msg);
			err = -EINVAL;
			goto cleanup;
		}
	}
	if (env->live) {
		r.live = live__new(stdout, isatty(STDOUT_FILENO), env->sample_every);
		if (!r.live) {
			fprintf(stderr, "agentprof: out of memory\n");
			err = -ENOMEM;
			goto cleanup;
		}
	}
	r.dopts.class_header = env->class_header;
	r.dopts.page_size = sysconf(_SC_PAGESIZE);
	if (env->requests_path) {
		r.requests_out = fopen(env->requests_path, "w");
		if (!r.requests_out) {
			err = -errno;
			fprintf(stderr, "agentprof: cannot write %s: %s\n", env->requests_path,
				strerror(errno));
			goto cleanup;
		}
	}
	if (env->command) {
		err = procs__launch(env->command, &r.child);
		if (err) {
			fprintf(stderr, "agentprof: cannot start %s: %s\n", env->command[0],
				strerror(-err));
			goto cleanup;
		}
	}
	err = recorder__load(&r);
	if (err)
		goto cleanup;
	err = recorder__add_targets(&r);
	if (err)
		goto cleanup;
	err = agentprof_bpf__attach(r.skel);
	if (err) {
		fprintf(stderr,
			"agentprof: attaching BPF programs failed: %s: run `agentprof "
			"check` (tracefs at %s)\n",
			strerror(-err), tracefs);
		goto cleanup;
	}
	/* PostgreSQL over TLS: optional, so failures only lose plaintext. */
	tls__attach(&r.tls, r.skel, env->verbose);
	r.rb = ring_buffer__new(bpf_map__fd(r.skel->maps.events), handle_event, &r, NULL);
	if (!r.rb) {
		err = -errno;
		fprintf(stderr, "agentprof: creating the ring buffer reader failed: %s\n",
			strerror(errno));
		goto cleanup;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	r.dopts.mono_to_real_ns = (int64_t)(now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC));
	profile__run(r.profile)->start_real_ns = now_ns(CLOCK_REALTIME);
	err = procs__release(&r.child);
	if (err) {
		fprintf(stderr, "agentprof: cannot run %s: %s: check the command and PATH\n",
			env->command[0], strerror(-err));
		goto cleanup;
	}
	print_tracing(&r);
	err = recorder__poll(&r);
	/* Stop the programs first, so nothing races the final drain and flush. */
	recorder__detach(&r);
	ring_buffer__consume(r.rb);
	recorder__flush_open(&r);
	recorder__collect_stats(&r);
	if (recorder__report(&r) && !err)
		err = -EIO;
cleanup:
	tls__detach(&r.tls);
	stop_child(&r);
	ring_buffer__free(r.rb);
	loader__free(&r.loader);
	if (r.requests_out && fclose(r.requests_out) && !err) {
		err = -errno;
		fprintf(stderr, "agentprof: writing %s failed: %s\n", env->requests_path,
			strerror(errno));
	}
	live__free(r.live);
	profile__free(r.profile);
	pg__free(r.pg);
	peers__free(r.peers);
	return err || r.write_err ? 1 : 0;
}
