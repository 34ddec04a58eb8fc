// SPDX-License-Identifier: GPL-2.0-only
/*
 * Loading the BPF programs in the best mode the kernel supports, once
 * (src/loader.h). The mode comes from probes that load programs of two
 * instructions; the real programs are verified once, in that mode, each
 * with a small log at BPF_LOG_STATS so that what the verifier said of it
 * (processed instructions, stack, time) is kept without the price of a
 * full log. Design and budget: docs/verifier.md.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agentprof/pgwire.h"
#include "agentprof/python.h"
#include "agentprof.skel.h"
#include "feature.h"
#include "loader.h"
#include "privileges.h"

/*
 * Per-program log at BPF_LOG_STATS: the verifier's errors and its closing
 * statistics only. Too small a buffer fails the load (ENOSPC), and a
 * rejection's message is a few lines: 64 KiB holds either many times over.
 */
#define LOG_SIZE (64 << 10)
#define BPF_LOG_STATS 4

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void note(char *notes, size_t sz, const char *fmt, ...)
{
	size_t len;
	va_list ap;

	if (!notes || !sz)
		return;
	len = strlen(notes);
	if (len + 1 >= sz)
		return;
	va_start(ap, fmt);
	vsnprintf(notes + len, sz - len, fmt, ap);
	va_end(ap);
}

/* What each fallback costs, said wherever one is taken. */
#define COST_SYSCALL_IO                                                                            \
	"every syscall of every process on the host takes the kernel's slow path while they are "  \
	"attached (~50 ns more a syscall, bench/README.md)"
#define COST_RAW_TP                                                                                \
	"task fields are read through helper calls, and thread state lives in a hash: more BPF "   \
	"time per context switch of traced threads"
#define COST_NO_BPF_LOOP                                                                           \
	"PostgreSQL round trips come from the ReadyForQuery at the end of reads: no rows, no "     \
	"errors, pipelined batches counted as one"
#define COST_THREAD_HASH "thread state lives in a hash: a lookup per hook instead of a few loads"

/* An AGENTPROF_* variable that forces a fallback, when env is honoured. */
static bool forced(bool env, const char *name)
{
	return env && getenv(name);
}

static void probe_mode(struct loader_mode *m, char *notes, size_t notes_sz, bool env)
{
	struct features *f = calloc(1, sizeof(*f));
	bool x86 = false;

#if defined(__x86_64__)
	/* bpf/syscall_nr.bpf.h knows this architecture's syscall numbers only. */
	x86 = true;
#endif
	memset(m, 0, sizeof(*m));
	if (notes && notes_sz)
		notes[0] = '\0';
	if (!f)
		return;
	features__probe_modes(f);
	m->tp_btf = f->r[FEAT_TP_BTF].ok && !forced(env, "AGENTPROF_FORCE_RAW_TP");
	m->sock_tps = m->tp_btf && x86 && f->r[FEAT_SOCK_TP].ok && !forced(env, "AGENTPROF_SYSCALL_IO");
	m->bpf_loop = libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, NULL) > 0 &&
		      !forced(env, "AGENTPROF_NO_BPF_LOOP");
	m->thread_storage = m->tp_btf && f->r[FEAT_TASK_STORAGE].ok &&
			    !forced(env, "AGENTPROF_THREAD_HASH");

	if (forced(env, "AGENTPROF_FORCE_RAW_TP"))
		note(notes, notes_sz, "raw_tp, as AGENTPROF_FORCE_RAW_TP asks: %s\n", COST_RAW_TP);
	else if (!f->r[FEAT_TP_BTF].ok)
		note(notes, notes_sz, "no tp_btf on this kernel (%s): raw_tp instead: %s\n",
		     f->r[FEAT_TP_BTF].detail, COST_RAW_TP);
	if (m->tp_btf && forced(env, "AGENTPROF_SYSCALL_IO"))
		note(notes, notes_sz, "syscall tracepoints, as AGENTPROF_SYSCALL_IO asks: %s\n",
		     COST_SYSCALL_IO);
	else if (m->tp_btf && !m->sock_tps)
		note(notes, notes_sz,
		     "no socket tracepoints on this kernel (%s; Linux 6.3+, x86-64): syscall "
		     "tracepoints instead: %s\n",
		     x86 ? f->r[FEAT_SOCK_TP].detail : "not x86-64", COST_SYSCALL_IO);
	if (!m->bpf_loop)
		note(notes, notes_sz, "%s: %s\n",
		     forced(env, "AGENTPROF_NO_BPF_LOOP") ? "without bpf_loop, as AGENTPROF_NO_BPF_LOOP asks"
						     : "no bpf_loop() on this kernel (5.17+)",
		     COST_NO_BPF_LOOP);
	if (m->tp_btf && !m->thread_storage && !forced(env, "AGENTPROF_THREAD_HASH"))
		note(notes, notes_sz, "no task storage for tracing programs (5.13+): %s\n",
		     COST_THREAD_HASH);
	free(f);
}

void loader__probe_mode(struct loader_mode *m, char *notes, size_t notes_sz)
{
	probe_mode(m, notes, notes_sz, true);
}

const char *loader__mode_str(const struct loader_mode *m, char *buf, size_t sz)
{
	snprintf(buf, sz, "%s, %s, %s%s", m->tp_btf ? "tp_btf" : "raw_tp",
		 m->sock_tps ? "socket tracepoints" : "syscall tracepoints",
		 m->thread_storage ? "task storage" : "thread hash",
		 m->bpf_loop ? "" : ", without bpf_loop");
	return buf;
}

/* Autoload either the tp_btf or the raw_tp flavour of every scheduler and TCP hook. */
static void select_flavour(struct agentprof_bpf *skel, bool tp_btf)
{
	struct bpf_program *tp[] = {skel->progs.ap_sched_switch, skel->progs.ap_sched_waking,
				    skel->progs.ap_sched_wk_new,  skel->progs.ap_proc_fork,
				    skel->progs.ap_proc_exit,	  skel->progs.ap_sock_state,
				    skel->progs.ap_tcp_retrans,	  skel->progs.ap_tcp_reset};
	struct bpf_program *raw[] = {skel->progs.ap_raw_switch,	 skel->progs.ap_raw_waking,
				     skel->progs.ap_raw_wk_new,	 skel->progs.ap_raw_fork,
				     skel->progs.ap_raw_exit,	 skel->progs.ap_raw_state,
				     skel->progs.ap_raw_retrans, skel->progs.ap_raw_reset};
	size_t i;

	for (i = 0; i < sizeof(tp) / sizeof(tp[0]); i++) {
		bpf_program__set_autoload(tp[i], tp_btf);
		bpf_program__set_autoload(raw[i], !tp_btf);
	}
}

/*
 * Socket-tracepoint mode (bpf/requests.bpf.c, io_sock()) attaches no syscall
 * tracepoint: with one attached, every syscall on the host takes the slow
 * path. Socket tracepoints replace those of every read and write, the saved
 * registers at switch-out the futex/fsync hooks, and TCP state changes
 * connect() and close() (bpf/conn_state.bpf.h). Two exceptions: close() of
 * an inbound connection that is not TCP (HTTP over a unix socket) makes no
 * state change, so ap_close_e is loaded, and attached once one is found
 * (src/record.c); mmap() and brk() have no stand-in at all: --mmap hooks
 * them all the same.
 */
static void select_io_hooks(struct agentprof_bpf *skel, bool sock_tps, bool mmap)
{
	struct bpf_program *mem[] = {skel->progs.ap_mmap_e, skel->progs.ap_mmap_x,
				     skel->progs.ap_brk_x};
	struct bpf_program *sys[] = {
	    skel->progs.ap_read_e,	 skel->progs.ap_read_x,	      skel->progs.ap_recvfrom_e,
	    skel->progs.ap_recvfrom_x,	 skel->progs.ap_readv_e,      skel->progs.ap_readv_x,
	    skel->progs.ap_recvmsg_e,	 skel->progs.ap_recvmsg_x,    skel->progs.ap_write_e,
	    skel->progs.ap_write_x,	 skel->progs.ap_sendto_e,     skel->progs.ap_sendto_x,
	    skel->progs.ap_writev_e,	 skel->progs.ap_writev_x,     skel->progs.ap_sendmsg_e,
	    skel->progs.ap_sendmsg_x,	 skel->progs.ap_sendfile64_e, skel->progs.ap_sendfile64_x,
	    skel->progs.ap_futex_e,	 skel->progs.ap_futex_x,      skel->progs.ap_fsync_e,
	    skel->progs.ap_fsync_x,	 skel->progs.ap_fdatasync_e,  skel->progs.ap_fdatasync_x,
	    skel->progs.ap_connect_e,	 skel->progs.ap_connect_x,
	};
	size_t i;

	for (i = 0; i < sizeof(sys) / sizeof(sys[0]); i++)
		bpf_program__set_autoload(sys[i], !sock_tps);
	/* Loaded in every mode; attached by src/record.c in socket mode. */
	bpf_program__set_autoattach(skel->progs.ap_close_e, !sock_tps);
	for (i = 0; i < sizeof(mem) / sizeof(mem[0]); i++)
		bpf_program__set_autoload(mem[i], !sock_tps || mmap);
	bpf_program__set_autoload(skel->progs.ap_sock_recv, sock_tps);
	bpf_program__set_autoload(skel->progs.ap_sock_send, sock_tps);
}

/*
 * AGENTPROF_PY_UNIT_SET_BITS (tests): fewer sets of the CPython units' table
 * (bpf/python.bpf.h), so that a few overlapping requests fill it.
 */
static unsigned int py_unit_set_bits(void)
{
	const char *env = getenv("AGENTPROF_PY_UNIT_SET_BITS");
	int bits = env ? atoi(env) : -1;

	if (bits < 0 || bits > PY_UNIT_SET_BITS)
		return PY_UNIT_SET_BITS;
	fprintf(stderr, "agentprof: AGENTPROF_PY_UNIT_SET_BITS=%d: the CPython units' table has "
			"%u sets of %u (tests)\n", bits, 1u << bits, 1u << PY_UNIT_SET_BITS);
	return bits;
}

static void configure(struct agentprof_bpf *skel, const struct loader_mode *m,
		      const struct loader_opts *o)
{
	int i;

	skel->rodata->trace_all = o->trace_all;
	skel->rodata->self_tgid = getpid();
	skel->rodata->sample_every = o->sample_every ?: 1;
	skel->rodata->sample_below = (1ULL << 32) / (o->sample_every ?: 1);
	skel->rodata->tls_uprobes = o->tls_uprobes;
	skel->rodata->has_bpf_loop = m->bpf_loop;
	skel->rodata->sock_tps = m->sock_tps;
	skel->rodata->thread_storage = m->thread_storage;
	skel->rodata->py_unit_set_bits = py_unit_set_bits();
	/* The thread map left unused is shrunk to one entry. */
	if (m->thread_storage)
		bpf_map__set_max_entries(skel->maps.threads, 1);
	if (o->npg_ports) {
		memset((void *)skel->rodata->pg_ports, 0, sizeof(skel->rodata->pg_ports));
		for (i = 0; i < o->npg_ports && i < AP_PG_MAX_PORTS; i++)
			skel->rodata->pg_ports[i] = o->pg_ports[i];
	}
	select_flavour(skel, m->tp_btf);
	select_io_hooks(skel, m->sock_tps, o->mmap);
}

static unsigned int log_uint(const char *log, const char *key)
{
	const char *p = strstr(log, key);

	return p ? strtoul(p + strlen(key), NULL, 10) : 0;
}

/* "stack depth 240+144+64": the frames' sum. */
static unsigned int log_stack(const char *log)
{
	const char *p = strstr(log, "stack depth ");
	unsigned int sum = 0;
	char *end;

	if (!p)
		return 0;
	p += strlen("stack depth ");
	for (;;) {
		sum += strtoul(p, &end, 10);
		if (end == p || *end != '+')
			break;
		p = end + 1;
	}
	return sum;
}

/*
 * The verifier's reason in a rejected program's log: the last line before
 * its closing statistics that is not one of its progress notes.
 */
static void log_reason(const char *log, char *out, size_t sz)
{
	const char *end = strstr(log, "\nprocessed "), *start;

	if (!end)
		end = log + strlen(log);
	while (end > log && end[-1] == '\n')
		end--;
	start = end;
	while (start > log && start[-1] != '\n')
		start--;
	snprintf(out, sz, "%.*s", (int)(end - start), start);
	if (!out[0])
		snprintf(out, sz, "no reason in the verifier's log");
}

static void collect(struct loader *l, char **logs)
{
	struct bpf_program *p;
	struct loader_prog *lp;
	int i = 0;

	l->nprogs = 0;
	l->verify_ms = 0;
	bpf_object__for_each_program(p, l->skel->obj) {
		const char *log = logs[i++];

		if (!bpf_program__autoload(p) || l->nprogs >= (int)(sizeof(l->progs) / sizeof(l->progs[0])))
			continue;
		lp = &l->progs[l->nprogs++];
		snprintf(lp->name, sizeof(lp->name), "%s", bpf_program__name(p));
		lp->insns = log_uint(log, "processed ");
		lp->stack = log_stack(log);
		lp->verify_ms = log_uint(log, "verification time ") / 1e3;
		l->verify_ms += lp->verify_ms;
	}
}

/*
 * The program the kernel rejected: the last one with a log. libbpf loads
 * the programs in order, stops at the first failure, and closes those it
 * had loaded, so no fd tells them apart. Without logs (-v: libbpf prints
 * the verifier's own), the reason is libbpf's.
 */
static void find_failure(struct loader *l, char **logs, int err, bool verbose)
{
	struct bpf_program *p, *last = NULL;
	const char *last_log = NULL;
	int i = 0;

	l->failed_err = err;
	snprintf(l->failed_prog, sizeof(l->failed_prog), "%s",
		 verbose ? "a program (see libbpf's log above)" : "(unknown)");
	snprintf(l->failed_reason, sizeof(l->failed_reason), "%s", strerror(-err));
	l->failed_insns = 0;
	bpf_object__for_each_program(p, l->skel->obj) {
		const char *log = logs[i++];

		if (bpf_program__autoload(p) && log[0]) {
			last = p;
			last_log = log;
		}
	}
	if (!last)
		return;
	snprintf(l->failed_prog, sizeof(l->failed_prog), "%s", bpf_program__name(last));
	log_reason(last_log, l->failed_reason, sizeof(l->failed_reason));
	l->failed_insns = log_uint(last_log, "processed ");
}

int loader__load(struct loader *l, const struct loader_mode *m, const struct loader_opts *o)
{
	struct bpf_program *p;
	struct timespec t0;
	char **logs = NULL;
	int n = 0, i, err;

	LIBBPF_OPTS(bpf_object_open_opts, open_opts);

	/*
	 * Without CAP_SYS_ADMIN (a container granted CAP_BPF and CAP_PERFMON),
	 * the kernel refuses to list module BTFs (BPF_BTF_GET_NEXT_ID), and
	 * libbpf lists them for any type vmlinux lacks, such as the
	 * ___old flavours of core_fixes.bpf.h: name vmlinux's BTF as the only
	 * one, which also stops that search.
	 */
	if (!privileges__have(21 /* CAP_SYS_ADMIN */))
		open_opts.btf_custom_path = "/sys/kernel/btf/vmlinux";
	clock_gettime(CLOCK_MONOTONIC, &t0);
	l->skel = agentprof_bpf__open_opts(&open_opts);
	if (!l->skel)
		return -errno;
	l->mode = *m;
	configure(l->skel, m, o);
	bpf_object__for_each_program(p, l->skel->obj)
		n++;
	logs = calloc(n, sizeof(*logs));
	if (!logs) {
		err = -ENOMEM;
		goto cleanup;
	}
	i = 0;
	bpf_object__for_each_program(p, l->skel->obj) {
		logs[i] = calloc(1, LOG_SIZE);
		if (!logs[i]) {
			err = -ENOMEM;
			goto cleanup;
		}
		/* Without -v, libbpf's own log stays quiet: these say what it would. */
		if (!o->verbose) {
			bpf_program__set_log_buf(p, logs[i], LOG_SIZE);
			bpf_program__set_log_level(p, BPF_LOG_STATS);
		}
		i++;
	}
	err = agentprof_bpf__load(l->skel);
	l->load_ms = ms_since(&t0);
	if (err) {
		find_failure(l, logs, err, o->verbose);
		goto cleanup;
	}
	collect(l, logs);
cleanup:
	for (i = 0; logs && i < n; i++)
		free(logs[i]);
	free(logs);
	if (err) {
		agentprof_bpf__destroy(l->skel);
		l->skel = NULL;
	}
	return err;
}

/* The next mode down, for a load that failed in m; false when there is none. */
static bool fall_back(struct loader_mode *m, const char **cost, const char **what)
{
	if (m->sock_tps) {
		m->sock_tps = false;
		*what = "syscall tracepoints";
		*cost = COST_SYSCALL_IO;
		return true;
	}
	if (m->tp_btf) {
		m->tp_btf = false;
		m->thread_storage = false;
		*what = "raw_tp";
		*cost = COST_RAW_TP;
		return true;
	}
	return false;
}

static void print_notes(const char *notes)
{
	const char *p = notes, *nl;

	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		fprintf(stderr, "agentprof: %.*s\n", (int)(nl - p), p);
		p = *nl ? nl + 1 : nl;
	}
}

static void print_fallback(const struct loader *l, const char *mode, const char *what,
			   const char *cost)
{
	char insns[64] = "";

	if (l->failed_insns)
		snprintf(insns, sizeof(insns), " (after %u processed instructions)",
			 l->failed_insns);
	fprintf(stderr,
		"agentprof: the kernel rejected %s in mode %s: %s%s; using %s instead: %s. Run "
		"`agentprof check -v`, and report it with the output of `uname -r`\n",
		l->failed_prog, mode, l->failed_reason, insns, what, cost);
}

int loader__load_best(struct loader *l, const struct loader_opts *o)
{
	struct loader_mode m;
	const char *cost, *what;
	char notes[1024], buf[96];
	int err;

	loader__probe_mode(&m, notes, sizeof(notes));
	if (!o->quiet)
		print_notes(notes);
	for (;;) {
		err = loader__load(l, &m, o);
		if (!err || err == -EPERM || err == -ENOMEM)
			return err;
		loader__mode_str(&m, buf, sizeof(buf));
		if (!fall_back(&m, &cost, &what))
			return err;
		if (!o->quiet)
			print_fallback(l, buf, what, cost);
	}
}

const struct loader_prog *loader__largest(const struct loader *l)
{
	const struct loader_prog *best = NULL;
	int i;

	for (i = 0; i < l->nprogs; i++)
		if (!best || l->progs[i].insns > best->insns)
			best = &l->progs[i];
	return best;
}

void loader__print_programs(const struct loader *l, FILE *out)
{
	const struct loader_prog *lp;
	int i;

	fprintf(out, "  %-16s %10s %8s %7s %10s\n", "PROGRAM", "INSNS", "BUDGET", "STACK",
		"VERIFY_MS");
	for (i = 0; i < l->nprogs; i++) {
		lp = &l->progs[i];
		fprintf(out, "  %-16s %10u %7.1f%% %7u %10.1f%s\n", lp->name, lp->insns,
			100.0 * lp->insns / LOADER_INSN_BUDGET, lp->stack, lp->verify_ms,
			lp->insns > LOADER_INSN_BUDGET ? "  OVER BUDGET" : "");
	}
}

/*
 * The modes this kernel supports, best first: the best, then each fallback
 * a load failure or an environment variable can lead to.
 */
static int supported_modes(struct loader_mode *modes, int max)
{
	struct loader_mode best;
	int n = 0;

	/* What the kernel supports, whatever the tests' variables force. */
	probe_mode(&best, NULL, 0, false);
	modes[n++] = best;
	if (best.sock_tps && n < max) {
		modes[n] = best;
		modes[n++].sock_tps = false;
	}
	if (best.tp_btf && n < max) {
		modes[n] = best;
		modes[n].tp_btf = modes[n].sock_tps = modes[n].thread_storage = false;
		n++;
	}
	if (best.bpf_loop && n < max) {
		modes[n] = best;
		modes[n++].bpf_loop = false;
	}
	return n;
}

int loader__report(FILE *out, bool every_mode, int *loaded)
{
	struct loader_opts o = {.sample_every = 1, .quiet = true};
	const struct loader_prog *big;
	struct loader_mode modes[4];
	struct loader l = {};
	int n, i, j, bad = 0, total = 0;
	char buf[96];

	*loaded = 0;
	n = supported_modes(modes, 4);
	fprintf(out, "\nBPF programs, %s (processed instructions: budget %d each, a quarter of "
		     "the kernel's limit of %d):\n",
		every_mode ? "in each mode this kernel supports" : "in the best mode that loads",
		LOADER_INSN_BUDGET, LOADER_INSN_LIMIT);
	for (i = 0; i < n; i++) {
		loader__mode_str(&modes[i], buf, sizeof(buf));
		memset(&l, 0, sizeof(l));
		if (loader__load(&l, &modes[i], &o)) {
			fprintf(out, "%smode %s: NOT LOADED: the kernel rejected %s: %s",
				every_mode ? "\n" : "", buf, l.failed_prog, l.failed_reason);
			if (l.failed_insns)
				fprintf(out, " (after %u processed instructions)", l.failed_insns);
			fprintf(out, "\n");
			bad++;
			continue;
		}
		(*loaded)++;
		big = loader__largest(&l);
		fprintf(out, "%smode %s: %d programs loaded in %.0f ms (%.0f ms in the verifier)",
			every_mode ? "\n" : "", buf, l.nprogs, l.load_ms, l.verify_ms);
		if (!every_mode && big)
			fprintf(out, "; largest %s: %u instructions, %.1f%% of the budget", big->name,
				big->insns, 100.0 * big->insns / LOADER_INSN_BUDGET);
		fprintf(out, "\n");
		if (every_mode)
			loader__print_programs(&l, out);
		for (j = 0; j < l.nprogs; j++)
			bad += l.progs[j].insns > LOADER_INSN_BUDGET;
		total += l.nprogs;
		loader__free(&l);
		if (!every_mode)
			break;
	}
	if (bad)
		fprintf(out, "%d problem%s: a mode that did not load, or a program over the budget: "
			     "report it with the output of `uname -r`%s\n",
			bad, bad == 1 ? "" : "s", every_mode ? "" : " and `agentprof check -v`");
	else if (every_mode)
		fprintf(out, "\nall %d programs loaded within the budget, in %d modes\n", total, n);
	return bad;
}

void loader__free(struct loader *l)
{
	agentprof_bpf__destroy(l->skel);
	l->skel = NULL;
}
