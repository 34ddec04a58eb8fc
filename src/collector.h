/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The collector: everything between the kernel and a profile, shared by the
 * commands that trace (record, export). It loads the BPF programs once in
 * the best mode (src/loader.c), marks the processes to trace (at start or
 * while running: no reload), attaches, drains the ring buffer, decodes each
 * record into a struct request handed to the front end, closes off requests
 * still open when tracing stops, and reads the kernel's counters. It knows
 * nothing of output formats.
 */
#ifndef AGENTPROF_COLLECTOR_H
#define AGENTPROF_COLLECTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "loader.h"
#include "pyrt.h"
#include "request.h"
#include "tls.h"

struct agentprof_bpf;
struct ring_buffer;
struct pg;
struct peers;
struct profile_run;
struct sampler;
struct services;

/* One decoded request; req's pointers are valid during the call only. */
typedef void (*collector_request_fn)(void *ctx, struct request *req);

struct collector_opts {
	bool trace_all;		  /* every process on the host, not only marked ones */
	bool mmap;		  /* --mmap: the mmap()/brk() syscall tracepoints too */
	bool verbose;		  /* libbpf's log; no load figures of ours */
	bool pg_literals;	  /* statements with their literal values */
	unsigned int sample_every; /* one request in N traced; 0 or 1: all */
	bool no_python;		  /* --python off: CPython processes keep the thread rules */
	bool no_task_steps;	  /* --python contexts: no uprobe on asyncio task steps */
	const unsigned short *pg_ports;
	int npg_ports;
	const char *class_header;
	/* Processes whose libssl is probed at load (tls__find). */
	const pid_t *tls_pids;
	int ntls_pids;
	collector_request_fn on_request;
	void *ctx;
	/*
	 * Held while a record is consumed (and so while on_request runs), for
	 * front ends that read the peers and statements from another thread.
	 */
	pthread_mutex_t *lock;
	/* Where the per-service samples go (sampler.h); NULL: none taken. */
	struct services *services;
};

/* What the collector itself counted of the records it received. */
struct collector_counts {
	uint64_t records;
	uint64_t malformed_heads;
	uint64_t oversized_heads;
	uint64_t incomplete;
	uint64_t flushed;
};

struct collector {
	struct collector_opts opts;
	struct loader loader;
	struct agentprof_bpf *skel;
	struct ring_buffer *rb;
	struct pg *pg;
	struct peers *peers;
	struct tls tls;
	struct pyrt pyrt;	/* the CPython runtime reader (pyrt.h) */
	struct request_decode_opts dopts;
	struct collector_counts counts;
	uint64_t *procs;     /* the traced-process bitmap (bpf/maps.bpf.h), mapped */
	int interval_ms;     /* the next poll's timeout */
	bool close_tried;    /* collector__watch_close() attached ap_close_e, or failed to */
	bool runtime_note;   /* said why the runtime reader is off */
	uint64_t last_drain_ns; /* CLOCK_MONOTONIC of the last successful drain */
	int stats_fd;	     /* BPF_ENABLE_STATS, or -1 */
	struct sampler *sampler; /* RSS, in flight, connections over time, for plan */
	uint64_t bpf_run_at_attach_ns; /* the programs' run time when attached (with stats) */
};

/* Sets up c (pg and peers tables); 0 or -ENOMEM. */
int collector__init(struct collector *c, const struct collector_opts *o);
/* Loads the programs in the best mode; says on stderr what it took, or why not. */
int collector__load(struct collector *c);
/*
 * Traces pid and its live descendants from now on (forks are followed by
 * the kernel side). Valid after load, also while attached. Returns the
 * number of processes marked, or -errno.
 */
int collector__add_target(struct collector *c, pid_t pid);
/* Traces pid alone from now on (its later forks too); 0 or -errno. */
int collector__add_pid(struct collector *c, pid_t pid);
/* Calls fn for every marked pid. */
void collector__for_each_target(const struct collector *c, void (*fn)(pid_t pid, void *ctx),
				void *ctx);
/* Stops tracing pid (its descendants keep their marks). */
void collector__remove_target(struct collector *c, pid_t pid);
bool collector__traced(const struct collector *c, pid_t pid);
/*
 * Clears the marks of processes that no longer exist, so a recycled pid is
 * not traced by mistake; returns how many were cleared.
 */
int collector__prune(struct collector *c);
/* Programs attached now (their links), libssl and CPython probes left out. */
int collector__nattached(const struct collector *c);
/* Counts the processes marked. */
int collector__ntraced(const struct collector *c);
/*
 * Looks for the CPython runtime of every traced process not looked at yet
 * (all processes with trace_all), describes it to the BPF side and attaches
 * its probes (pyrt.h). Valid after load. Returns how many CPython processes
 * it found; pyrt__report(&c->pyrt, from, ...) says what each got.
 */
int collector__find_runtimes(struct collector *c);
/* Attaches the programs, the libssl uprobes, and opens the ring buffer. */
int collector__attach(struct collector *c);
/*
 * Waits for records up to the current drain interval and consumes what
 * arrived. 0, -EINTR on a signal, or another negative errno (said on stderr).
 */
int collector__poll(struct collector *c);
/* Detaches every program, drains what is left, closes off open requests. */
void collector__stop(struct collector *c);
/*
 * The run's counters: what the collector counted, the kernel's per-CPU
 * stats, mapped_measured and end_real_ns.
 */
void collector__read_stats(struct collector *c, struct profile_run *run);
/* The kernel's per-peer TCP counters, folded into c->peers (once per run). */
void collector__read_peer_totals(struct collector *c);
/* Sum of one kernel counter (enum ap_stat) over CPUs. */
uint64_t collector__stat(struct collector *c, int idx);
/* mmap()/brk() are hooked: in the syscall-tracepoint modes, or with --mmap. */
bool collector__mapped_measured(const struct collector *c);
/* A named figure read from the kernel: a program's run time, a map's fill. */
struct collector_figure {
	char name[32];
	uint64_t value; /* run time ns; entries in use */
	uint64_t limit; /* runs; max_entries */
};

/*
 * Turns on the kernel's BPF run-time statistics (BPF_ENABLE_STATS, needs
 * CAP_SYS_ADMIN) for as long as the collector lives; 0 or -errno.
 */
int collector__enable_stats(struct collector *c);
/* Run time and run count of each attached program; how many written to out. */
size_t collector__prog_stats(struct collector *c, struct collector_figure *out, size_t max);
/* Run time of all the programs so far, ns (with stats enabled; else what the kernel kept). */
uint64_t collector__bpf_run_ns(struct collector *c);
/*
 * Fill of the maps whose entries can be counted (the requests slots, the
 * hash maps); how many written to out. Calls open_fn(pid) for each open
 * request, if not NULL.
 */
size_t collector__map_fill(struct collector *c, struct collector_figure *out, size_t max,
			   void (*open_fn)(pid_t pid, void *ctx), void *ctx);
void collector__free(struct collector *c);

#endif /* AGENTPROF_COLLECTOR_H */
