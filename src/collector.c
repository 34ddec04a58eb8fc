// SPDX-License-Identifier: GPL-2.0-only
/*
 * The collector (collector.h): load -> mark targets -> attach -> drain ->
 * decode -> stop. One ring-buffer record arrives per finished request;
 * requests still open when tracing stops are read from the requests map
 * and closed off here.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agentprof/pgwire.h"
#include "agentprof/request.h"
#include "agentprof.skel.h"
#include "collector.h"
#include "links.h"
#include "peers.h"
#include "pg.h"
#include "procs.h"
#include "profile.h"
#include "sampler.h"
#include "tracefs.h"

/*
 * How often the ring buffer is drained: every 100 ms, every 10 ms while
 * records come faster than RB_FAST_RATE a second. BPF wakes the reader only
 * when the buffer is half full (maps.bpf.h, ringbuf_flags()).
 */
#define RB_DRAIN_MS 100
#define RB_DRAIN_FAST_MS 10
#define RB_FAST_RATE 10000

#define PROCS_BYTES (AP_PID_LIMIT / 8)

static int drain_interval_ms(long long records, int interval_ms)
{
	return records * 1000 / interval_ms > RB_FAST_RATE ? RB_DRAIN_FAST_MS : RB_DRAIN_MS;
}

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

bool collector__mapped_measured(const struct collector *c)
{
	return !c->loader.mode.sock_tps || c->opts.mmap;
}

static void collector__consume(struct collector *c, const struct ap_request_event *ev)
{
	struct pg_query *queries;
	struct request req;
	uint32_t i, held_rts;
	uint64_t hold;
	size_t nq;
	int err;

	c->counts.records++;
	err = request__decode(&req, ev, &c->dopts);
	queries = pg__take(c->pg, ev->id, err ? "(malformed)" : req.route, &nq);
	hold = pg__take_hold(c->pg, ev->id, &held_rts);
	if (err) {
		if (err == REQUEST_OVERSIZED)
			c->counts.oversized_heads++;
		else
			c->counts.malformed_heads++;
		pg__free_queries(queries, nq);
		return;
	}
	req.pg_queries = queries;
	req.npg_queries = nq;
	req.pg_hold_ns = hold;
	/* A round trip the kernel counted and userspace never saw (a full ring buffer). */
	req.pg_hold_known = held_rts >= ev->pg_round_trips;
	req.no_mapped = !collector__mapped_measured(c);
	req.peers = c->peers;
	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++)
		peers__add_request(c->peers, &ev->peers[i], c->opts.sample_every ?: 1);
	if (req.incomplete)
		c->counts.incomplete++;
	if (ev->flags & AP_REQ_FLUSHED)
		c->counts.flushed++;
	if (c->opts.on_request)
		c->opts.on_request(c->opts.ctx, &req);
	/* After on_request: the front end names the request's service. */
	if (c->sampler)
		sampler__add_request(c->sampler, ev, req.service);
	pg__free_queries(queries, nq);
}

static int handle_event(void *ctx, void *data, size_t size)
{
	struct collector *c = ctx;
	const uint32_t *type = data;
	struct ap_request_event ev;

	if (size < sizeof(*type))
		return 0;
	if (c->opts.lock)
		pthread_mutex_lock(c->opts.lock);
	if (*type == AP_EV_REQUEST && !request__unpack(&ev, data, size))
		collector__consume(c, &ev);
	else if (*type == AP_EV_PG && size >= sizeof(struct ap_pg_event))
		pg__add_round_trip(c->pg, data);
	if (c->opts.lock)
		pthread_mutex_unlock(c->opts.lock);
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

int collector__init(struct collector *c, const struct collector_opts *o)
{
	memset(c, 0, sizeof(*c));
	c->opts = *o;
	c->pyrt.no_steps = o->no_task_steps;
	c->interval_ms = RB_DRAIN_MS;
	c->stats_fd = -1;
	libbpf_set_print(o->verbose ? libbpf_print : libbpf_quiet);
	c->pg = pg__new(o->pg_literals);
	c->peers = peers__new();
	if (!c->pg || !c->peers)
		return -ENOMEM;
	c->dopts.class_header = o->class_header;
	c->dopts.page_size = sysconf(_SC_PAGESIZE);
	return 0;
}

int collector__load(struct collector *c)
{
	const struct collector_opts *co = &c->opts;
	struct loader_opts o = {
		.trace_all = co->trace_all,
		.mmap = co->mmap,
		.verbose = co->verbose,
		.sample_every = co->sample_every ?: 1,
		.pg_ports = co->pg_ports,
		.npg_ports = co->npg_ports,
	};
	const struct loader_prog *big;
	int err;

	o.tls_uprobes = tls__find(&c->tls, co->tls_pids, co->ntls_pids) > 0;
	err = loader__load_best(&c->loader, &o);
	if (!err) {
		c->skel = c->loader.skel;
		big = loader__largest(&c->loader);
		/* -v leaves the verifier's log to libbpf: no figures of ours. */
		if (co->verbose)
			fprintf(stderr, "agentprof: %d BPF programs loaded in %.0f ms\n",
				c->loader.nprogs, c->loader.load_ms);
		else
			fprintf(stderr,
				"agentprof: %d BPF programs loaded in %.0f ms (%.0f ms in the "
				"verifier; largest %s, %u instructions processed)\n",
				c->loader.nprogs, c->loader.load_ms, c->loader.verify_ms,
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
			c->loader.failed_prog, c->loader.failed_reason);
	return err;
}

/* The BPF side sets bits of forked children at the same time: atomics on shared memory. */
static int collector__map_procs(struct collector *c)
{
	void *words;

	if (c->procs)
		return 0;
	words = mmap(NULL, PROCS_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		     bpf_map__fd(c->skel->maps.procs), 0);
	if (words == MAP_FAILED) {
		fprintf(stderr, "agentprof: mapping the traced-process bitmap failed: %s: the "
				"kernel needs BPF_F_MMAPABLE arrays (5.5+)\n", strerror(errno));
		return -errno;
	}
	c->procs = words;
	return 0;
}

/* Set pid's bit in the procs bitmap (bpf/maps.bpf.h), mapped at ctx. */
static void add_proc(pid_t pid, void *ctx)
{
	uint64_t *words = ctx;

	if ((uint32_t)pid < AP_PID_LIMIT)
		__atomic_fetch_or(&words[pid / 64], 1ULL << (pid % 64), __ATOMIC_RELAXED);
}

int collector__add_target(struct collector *c, pid_t pid)
{
	int err, n;

	err = collector__map_procs(c);
	if (err)
		return err;
	add_proc(pid, c->procs);
	/* Workers forked before we started (gunicorn, node cluster) count too. */
	n = procs__for_each_descendant(pid, add_proc, c->procs);
	if (n < 0) {
		fprintf(stderr, "agentprof: listing the children of pid %d failed: %s\n", (int)pid,
			strerror(-n));
		return n;
	}
	return n + 1;
}

int collector__add_pid(struct collector *c, pid_t pid)
{
	int err = collector__map_procs(c);

	if (!err)
		add_proc(pid, c->procs);
	return err;
}

void collector__for_each_target(const struct collector *c, void (*fn)(pid_t pid, void *ctx),
				void *ctx)
{
	uint64_t w;
	int i;

	if (!c->procs)
		return;
	for (i = 0; i < (int)(AP_PID_LIMIT / 64); i++)
		for (w = __atomic_load_n(&c->procs[i], __ATOMIC_RELAXED); w; w &= w - 1)
			fn(i * 64 + __builtin_ctzll(w), ctx);
}

void collector__remove_target(struct collector *c, pid_t pid)
{
	if (c->procs && (uint32_t)pid < AP_PID_LIMIT)
		__atomic_fetch_and(&c->procs[pid / 64], ~(1ULL << (pid % 64)), __ATOMIC_RELAXED);
}

bool collector__traced(const struct collector *c, pid_t pid)
{
	if (!c->procs || (uint32_t)pid >= AP_PID_LIMIT)
		return false;
	return __atomic_load_n(&c->procs[pid / 64], __ATOMIC_RELAXED) & (1ULL << (pid % 64));
}

int collector__prune(struct collector *c)
{
	uint64_t w;
	int i, bit, n = 0;

	if (!c->procs)
		return 0;
	for (i = 0; i < (int)(AP_PID_LIMIT / 64); i++) {
		w = __atomic_load_n(&c->procs[i], __ATOMIC_RELAXED);
		for (; w; w &= w - 1) {
			bit = __builtin_ctzll(w);
			if (procs__exists(i * 64 + bit))
				continue;
			collector__remove_target(c, i * 64 + bit);
			n++;
		}
	}
	return n;
}

int collector__nattached(const struct collector *c)
{
	const struct bpf_object_skeleton *s;
	const struct bpf_prog_skeleton *p;
	int i, n = 0;

	if (!c->skel)
		return 0;
	s = c->skel->skeleton;
	for (i = 0; i < s->prog_cnt; i++) {
		p = (const struct bpf_prog_skeleton *)((const char *)s->progs +
							(size_t)i * s->prog_skel_sz);
		n += *p->link != NULL;
	}
	return n;
}

int collector__ntraced(const struct collector *c)
{
	int i, n = 0;

	if (!c->procs)
		return 0;
	for (i = 0; i < (int)(AP_PID_LIMIT / 64); i++)
		n += __builtin_popcountll(__atomic_load_n(&c->procs[i], __ATOMIC_RELAXED));
	return n;
}

/* Says once that CPython processes keep the thread rules, and why; returns 0. */
static int thread_rules_note(struct collector *c, const char *why)
{
	if (!c->runtime_note)
		fprintf(stderr, "agentprof: %s: CPython processes keep the thread rules (not "
				"task-aware); requests that overlap may be charged each other's "
				"work (docs/limitations.md)\n", why);
	c->runtime_note = true;
	return 0;
}

int collector__find_runtimes(struct collector *c)
{
	int before = c->pyrt.nprocs;
	struct dirent *e;
	DIR *d;
	pid_t pid;

	/* The thread rules alone, as before the runtime reader (comparisons). */
	if (getenv("AGENTPROF_NO_RUNTIME"))
		return 0;
	if (c->opts.no_python)
		return thread_rules_note(c, "--python off");
	/*
	 * A unit that answers requests traced and not (a connection's handler
	 * task) would carry one's CPU to the other: not followed yet.
	 */
	if (c->opts.sample_every > 1)
		return thread_rules_note(c, "--sample");
	d = opendir("/proc");
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		if (c->opts.trace_all || collector__traced(c, pid))
			pyrt__add(&c->pyrt, c->skel, pid);
	}
	closedir(d);
	return c->pyrt.nprocs - before;
}

/*
 * AGENTPROF_RUNTIME_DELAY_MS (tests): a wider window between attaching the
 * programs and finding the runtimes, in which a CPython process's threads are
 * seen before it is known as one (test_python_tasks).
 */
static void runtime_delay(void)
{
	const char *env = getenv("AGENTPROF_RUNTIME_DELAY_MS");
	int ms = env ? atoi(env) : 0;

	if (ms > 0)
		usleep((useconds_t)ms * 1000);
}

int collector__attach(struct collector *c)
{
	char tracefs[256] = "";
	int err;

	err = agentprof_bpf__attach(c->skel);
	if (err) {
		tracefs__mounted(tracefs, sizeof(tracefs));
		fprintf(stderr,
			"agentprof: attaching BPF programs failed: %s: run `agentprof "
			"check` (tracefs at %s)\n",
			strerror(-err), tracefs);
		return err;
	}
	/* PostgreSQL over TLS: optional, so failures only lose plaintext. */
	tls__attach(&c->tls, c->skel, c->opts.verbose);
	runtime_delay();
	/* Task-aware CPython: optional too; the front ends say who got it. */
	collector__find_runtimes(c);
	c->rb = ring_buffer__new(bpf_map__fd(c->skel->maps.events), handle_event, c, NULL);
	if (!c->rb) {
		err = -errno;
		fprintf(stderr, "agentprof: creating the ring buffer reader failed: %s\n",
			strerror(errno));
		return err;
	}
	c->dopts.mono_to_real_ns = (int64_t)(now_ns(CLOCK_REALTIME) - now_ns(CLOCK_MONOTONIC));
	c->last_drain_ns = now_ns(CLOCK_MONOTONIC);
	/* The probes run in the traced threads: plan takes their run time back out of the CPU. */
	if (!collector__enable_stats(c))
		c->bpf_run_at_attach_ns = collector__bpf_run_ns(c);
	if (c->opts.services) {
		c->sampler = sampler__new(c->opts.services, c->opts.pg_ports, c->opts.npg_ports,
					  c->last_drain_ns, c->opts.lock);
		if (!c->sampler)
			return -ENOMEM;
	}
	return 0;
}

/*
 * Socket-tracepoint mode: the first inbound connection that is not TCP was
 * found (bpf/requests.bpf.c, nontcp_inbound: HTTP over a unix socket). Its
 * close() makes no TCP state change: attach the close syscall
 * tracepoint, and with it the slow syscall path of every task on the host.
 * The skeleton's link slot takes the link, so detaching and destroying
 * handle it as any other.
 */
static void collector__watch_close(struct collector *c)
{
	struct bpf_link *link;

	if (!c->loader.mode.sock_tps || c->close_tried || !c->skel->bss->nontcp_inbound)
		return;
	c->close_tried = true;
	link = bpf_program__attach(c->skel->progs.ap_close_e);
	if (!link) {
		fprintf(stderr, "agentprof: attaching the close() tracepoint failed: %s: requests "
				"on connections that are not TCP end at EOF, at the next request or "
				"when their fd is reused; run `agentprof check`\n", strerror(errno));
		return;
	}
	c->skel->links.ap_close_e = link;
	fprintf(stderr, "agentprof: an HTTP connection that is not TCP (a unix socket): tracing "
			"close() too, a syscall tracepoint (every syscall on the host pays for it)\n");
}

int collector__poll(struct collector *c)
{
	int err, woken;

	/*
	 * BPF seldom wakes the reader (maps.bpf.h): the poll is mostly
	 * a sleep that signals cut short; the buffer is drained after it.
	 */
	err = ring_buffer__poll(c->rb, c->interval_ms);
	/* Cut short by a signal: drain what arrived all the same, then say so. */
	if (err == -EINTR) {
		ring_buffer__consume(c->rb);
		return -EINTR;
	}
	if (err >= 0) {
		/* The rate counts what a wakeup brought in too (a burst). */
		woken = err;
		err = ring_buffer__consume(c->rb);
		if (err >= 0)
			c->interval_ms = drain_interval_ms((long long)woken + err, c->interval_ms);
	}
	if (err == -EINTR)
		return err;
	if (err < 0) {
		fprintf(stderr, "agentprof: reading the ring buffer failed: %s\n", strerror(-err));
		return err;
	}
	__atomic_store_n(&c->last_drain_ns, now_ns(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
	collector__watch_close(c);
	if (c->sampler)
		sampler__tick(c->sampler, c->last_drain_ns);
	return 0;
}

/* Stops the programs, side by side (links.h), with the libssl and CPython uprobes. */
static void collector__detach(struct collector *c)
{
	struct bpf_object_skeleton *s = c->skel->skeleton;
	int i, n = 0, max = s->prog_cnt + c->tls.nlinks + c->pyrt.nlinks;
	struct bpf_link ***links = calloc(max, sizeof(*links));
	struct bpf_prog_skeleton *p;

	if (!links) {
		agentprof_bpf__detach(c->skel);
		tls__detach(&c->tls);
		pyrt__detach(&c->pyrt);
		return;
	}
	for (i = 0; i < s->prog_cnt; i++) {
		p = (struct bpf_prog_skeleton *)((char *)s->progs + (size_t)i * s->prog_skel_sz);
		links[n++] = p->link;
	}
	for (i = 0; i < c->tls.nlinks; i++)
		links[n++] = &c->tls.links[i];
	for (i = 0; i < c->pyrt.nlinks; i++)
		links[n++] = &c->pyrt.links[i];
	links__destroy(links, n);
	c->tls.nlinks = 0;
	c->pyrt.nlinks = 0;
	free(links);
}

/* Slots read per syscall at exit: 8192 one by one took a second. */
#define FLUSH_BATCH 256

static void flush_one(struct collector *c, struct ap_request_event *ev, uint64_t now)
{
	if (!ev->id || ev->id == AP_REQ_ID_CLAIMED)
		return;		/* a free slot */
	ev->end_ns = now;
	ev->flags |= procs__exists(ev->pid) ? AP_REQ_FLUSHED : AP_REQ_TASK_EXITED;
	if (!ev->first_tx_ns)
		ev->flags |= AP_REQ_INCOMPLETE;
	if (c->opts.lock)
		pthread_mutex_lock(c->opts.lock);
	collector__consume(c, ev);
	if (c->opts.lock)
		pthread_mutex_unlock(c->opts.lock);
}

/* Requests still open when tracing stopped: close them off from the map. */
static void collector__flush_open(struct collector *c)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int fd = bpf_map__fd(c->skel->maps.requests), err;
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
			flush_one(c, &evs[i], now);
		in = &batch;
	} while (!err);	/* ENOENT: that was the last batch */
	free(evs);
}

void collector__stop(struct collector *c)
{
	if (!c->skel)
		return;
	/* Stop the programs first, so nothing races the final drain and flush. */
	collector__detach(c);
	if (c->rb)
		ring_buffer__consume(c->rb);
	collector__flush_open(c);
}

uint64_t collector__stat(struct collector *c, int idx)
{
	int ncpus = libbpf_num_possible_cpus(), i;
	uint32_t key = idx;
	uint64_t *vals, sum = 0;

	if (ncpus <= 0 || !c->skel)
		return 0;
	vals = calloc(ncpus, sizeof(*vals));
	if (!vals)
		return 0;
	if (!bpf_map__lookup_elem(c->skel->maps.stats, &key, sizeof(key), vals,
				  ncpus * sizeof(*vals), 0))
		for (i = 0; i < ncpus; i++)
			sum += vals[i];
	free(vals);
	return sum;
}

void collector__read_stats(struct collector *c, struct profile_run *run)
{
	run->records = c->counts.records;
	run->malformed_heads = c->counts.malformed_heads;
	run->oversized_heads = c->counts.oversized_heads;
	run->incomplete = c->counts.incomplete;
	run->flushed = c->counts.flushed;
	run->ringbuf_drops = collector__stat(c, AP_STAT_RINGBUF_DROPS);
	run->requests_map_full = collector__stat(c, AP_STAT_REQ_MAP_FULL);
	run->conns_map_full = collector__stat(c, AP_STAT_CONN_MAP_FULL);
	run->threads_map_full = collector__stat(c, AP_STAT_THREAD_MAP_FULL);
	run->procs_map_full = collector__stat(c, AP_STAT_PROC_MAP_FULL);
	run->non_http_reads = collector__stat(c, AP_STAT_NON_HTTP);
	run->stale_bindings = collector__stat(c, AP_STAT_STALE_REQ);
	run->unsampled = collector__stat(c, AP_STAT_UNSAMPLED);
	run->py_units_evicted = collector__stat(c, AP_STAT_PY_UNIT_EVICTED);
	run->pg_hold_overflow = pg__hold_counts(c->pg).overflow;
	run->mapped_measured = collector__mapped_measured(c);
	if (c->stats_fd >= 0)
		run->bpf_run_ns = collector__bpf_run_ns(c) - c->bpf_run_at_attach_ns;
	run->end_real_ns = now_ns(CLOCK_REALTIME);
}

void collector__read_peer_totals(struct collector *c)
{
	int fd = bpf_map__fd(c->skel->maps.peer_totals);
	struct ap_peer_key key, next;
	struct ap_peer_totals t;
	void *prev = NULL;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (!bpf_map_lookup_elem(fd, &key, &t))
			peers__add_totals(c->peers, &key, &t);
	}
}

int collector__enable_stats(struct collector *c)
{
	if (c->stats_fd >= 0)
		return 0;
	c->stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	return c->stats_fd < 0 ? -errno : 0;
}

uint64_t collector__bpf_run_ns(struct collector *c)
{
	struct collector_figure f[128];
	size_t n = collector__prog_stats(c, f, 128), i;
	uint64_t sum = 0;

	for (i = 0; i < n; i++)
		sum += f[i].value;
	return sum;
}

size_t collector__prog_stats(struct collector *c, struct collector_figure *out, size_t max)
{
	struct bpf_prog_info info;
	struct bpf_program *prog;
	__u32 len;
	size_t n = 0;

	if (!c->skel)
		return 0;
	bpf_object__for_each_program(prog, c->skel->obj) {
		if (n == max || bpf_program__fd(prog) < 0)
			continue;
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		snprintf(out[n].name, sizeof(out[n].name), "%s", bpf_program__name(prog));
		out[n].value = info.run_time_ns;
		out[n].limit = info.run_cnt;
		n++;
	}
	return n;
}

/* Entries of a hash map, by walking its keys. */
static uint64_t count_keys(struct bpf_map *map)
{
	uint8_t key[256], next[256];
	int fd = bpf_map__fd(map);
	void *prev = NULL;
	uint64_t n = 0;

	if (fd < 0 || bpf_map__key_size(map) > sizeof(key))
		return 0;
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, bpf_map__key_size(map));
		prev = key;
		n++;
	}
	return n;
}

/* Open requests in the slots array, read in batches as at exit. */
static uint64_t count_open(struct collector *c, void (*open_fn)(pid_t pid, void *ctx), void *ctx)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	int fd = bpf_map__fd(c->skel->maps.requests), err;
	uint32_t keys[FLUSH_BATCH], count, batch, *in = NULL, i;
	struct ap_request_event *evs;
	uint64_t n = 0;

	evs = malloc(FLUSH_BATCH * sizeof(*evs));
	if (!evs)
		return 0;
	do {
		count = FLUSH_BATCH;
		err = bpf_map_lookup_batch(fd, in, &batch, keys, evs, &count, &opts);
		if (err && errno != ENOENT)
			break;
		for (i = 0; i < count; i++) {
			if (!evs[i].id || evs[i].id == AP_REQ_ID_CLAIMED)
				continue;
			n++;
			if (open_fn)
				open_fn(evs[i].pid, ctx);
		}
		in = &batch;
	} while (!err);
	free(evs);
	return n;
}

size_t collector__map_fill(struct collector *c, struct collector_figure *out, size_t max,
			   void (*open_fn)(pid_t pid, void *ctx), void *ctx)
{
	struct bpf_map *maps[3];
	size_t n = 0, i;

	if (!c->skel || max < 1)
		return 0;
	maps[0] = c->skel->maps.conns;
	maps[1] = c->skel->maps.peer_totals;
	maps[2] = c->skel->maps.threads;
	snprintf(out[n].name, sizeof(out[n].name), "requests");
	out[n].value = count_open(c, open_fn, ctx);
	out[n++].limit = bpf_map__max_entries(c->skel->maps.requests);
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]) && n < max; i++) {
		/* threads has one entry when task storage holds the thread state. */
		if (bpf_map__max_entries(maps[i]) <= 1)
			continue;
		snprintf(out[n].name, sizeof(out[n].name), "%s", bpf_map__name(maps[i]));
		out[n].value = count_keys(maps[i]);
		out[n++].limit = bpf_map__max_entries(maps[i]);
	}
	return n;
}

void collector__free(struct collector *c)
{
	sampler__free(c->sampler);
	c->sampler = NULL;
	if (c->stats_fd >= 0)
		close(c->stats_fd);
	c->stats_fd = -1;
	tls__detach(&c->tls);
	pyrt__detach(&c->pyrt);
	ring_buffer__free(c->rb);
	c->rb = NULL;
	if (c->procs)
		munmap(c->procs, PROCS_BYTES);
	c->procs = NULL;
	loader__free(&c->loader);
	c->skel = NULL;
	pg__free(c->pg);
	peers__free(c->peers);
	c->pg = NULL;
	c->peers = NULL;
}
