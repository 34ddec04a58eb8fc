/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Loading the BPF programs: choose the best mode this kernel supports by
 * cheap probes, load the skeleton once in it, and keep what the verifier
 * said of each program (processed instructions, stack, time). A mode that
 * does not load falls back to the next one with one line on stderr that
 * names the program, the kernel's reason and the cost: never silently.
 */
#ifndef AGENTPROF_LOADER_H
#define AGENTPROF_LOADER_H

#include <stdbool.h>
#include <stdio.h>

/*
 * Processed instructions a program may take: a quarter of the verifier's
 * 1,000,000, so that a kernel a patch release apart, which explores a few
 * more states, still loads it (docs/verifier.md).
 */
#define LOADER_INSN_BUDGET 250000
#define LOADER_INSN_LIMIT 1000000

struct agentprof_bpf;

struct loader_mode {
	bool tp_btf;	     /* scheduler and TCP hooks as tp_btf, else raw_tp */
	bool sock_tps;	     /* socket I/O from sock_recv_length/sock_send_length (6.3+) */
	bool bpf_loop;	     /* PostgreSQL messages walked with bpf_loop() (5.17+) */
	bool thread_storage; /* thread state in task storage (5.13+, tp_btf) */
};

struct loader_opts {
	bool trace_all;	     /* no -p: every process on the host */
	bool tls_uprobes;    /* libssl is probed (src/tls.c) */
	bool mmap;	     /* --mmap: the mmap()/brk() syscall tracepoints too */
	bool verbose;	     /* libbpf's own log on stderr */
	bool quiet;	     /* no fallback lines (check -v prints its own table) */
	unsigned int sample_every;
	const unsigned short *pg_ports;
	int npg_ports;
};

/* What the verifier said of one loaded program (its log at BPF_LOG_STATS). */
struct loader_prog {
	char name[32];
	unsigned int insns;  /* processed instructions */
	unsigned int stack;  /* stack depth of all its frames, bytes */
	double verify_ms;    /* the verifier's own time */
};

struct loader {
	struct agentprof_bpf *skel;
	struct loader_mode mode;
	struct loader_prog progs[96];
	int nprogs;
	double load_ms;	  /* open to loaded, wall clock */
	double verify_ms; /* the sum of the programs' verify_ms */
	/* The last load that failed: the program, the verifier's reason. */
	char failed_prog[64];
	char failed_reason[256];
	unsigned int failed_insns;
	int failed_err;
};

/*
 * The best mode this kernel supports, from probes that load a program of
 * two instructions at most (never the real programs). AGENTPROF_SYSCALL_IO,
 * AGENTPROF_FORCE_RAW_TP, AGENTPROF_NO_BPF_LOOP and AGENTPROF_THREAD_HASH
 * force the fallbacks, for the tests. Lines naming what the kernel lacks
 * and what that costs go to notes (one per line), if not NULL.
 */
void loader__probe_mode(struct loader_mode *m, char *notes, size_t notes_sz);

/*
 * Open and load the skeleton once in mode m. 0, or a negative errno with
 * l->failed_* saying which program the kernel rejected and why.
 */
int loader__load(struct loader *l, const struct loader_mode *m, const struct loader_opts *o);

/*
 * The best mode, loaded once; if the kernel rejects it, the next mode down
 * (socket tracepoints -> syscall tracepoints -> raw_tp), each fallback said
 * on stderr with its cost. 0, or the last load's negative errno (its reason
 * printed).
 */
int loader__load_best(struct loader *l, const struct loader_opts *o);

/* e.g. "tp_btf, socket tracepoints, task storage" */
const char *loader__mode_str(const struct loader_mode *m, char *buf, size_t sz);

/* The loaded program with the most processed instructions, or NULL. */
const struct loader_prog *loader__largest(const struct loader *l);

/* One line per loaded program: instructions, share of the budget, stack, time. */
void loader__print_programs(const struct loader *l, FILE *out);

/*
 * `agentprof check`: load the best mode this kernel supports (every_mode:
 * each of them, one after the other, with every program's verifier
 * figures) and print what happened. *loaded: how many modes loaded.
 * Returns the number of problems: modes that did not load, programs over
 * LOADER_INSN_BUDGET.
 */
int loader__report(FILE *out, bool every_mode, int *loaded);

/* Destroys the skeleton, if loaded. */
void loader__free(struct loader *l);

#endif /* AGENTPROF_LOADER_H */
