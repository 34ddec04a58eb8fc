// SPDX-License-Identifier: GPL-2.0-only
/*
 * Feature probes: each one creates a map or loads and attaches a two-instruction
 * program, the way agentprof itself would, and reports the errno the kernel
 * gave. Nothing is inferred from the kernel version (bcc libbpf-tools
 * probe_tp_btf() and fentry_can_attach() are the model).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <mntent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "feature.h"
#include "loader.h"
#include "tracefs.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* From the kernel's include/linux/filter.h; unset fields of the literals are 0. */
#ifndef BPF_MOV64_IMM
#define BPF_MOV64_IMM(DST, IMM)                                                                    \
	((struct bpf_insn){.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = DST, .imm = IMM})
#endif
#ifndef BPF_EXIT_INSN
#define BPF_EXIT_INSN() ((struct bpf_insn){.code = BPF_JMP | BPF_EXIT})
#endif

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define VMLINUX_BTF_PATH "/sys/kernel/btf/vmlinux"
#define UPROBE_TYPE_PATH "/sys/bus/event_source/devices/uprobe/type"
#define KPROBE_TYPE_PATH "/sys/bus/event_source/devices/kprobe/type"
#define BPF_STATS_SYSCTL "/proc/sys/kernel/bpf_stats_enabled"
#define TP_SYSCALL "syscalls/sys_enter_read"
#define RAW_TP_NAME "sched_switch"
#define TP_BTF_TYPEDEF "btf_trace_sched_switch"
/* One of the two socket tracepoints; both came in the same kernel release. */
#define SOCK_TP_TYPEDEF "btf_trace_sock_recv_length"
#define KPROBE_FUNC "do_sys_openat2"
#define FENTRY_FUNC "do_nanosleep"
#define MEMLOCK_PROBE_BYTES (16u << 20)

/*
 * Switches without a default case: -Wswitch (in -Wall) fails the build when a
 * feature is added to the enum without a name, an impact and a fix.
 */
const char *features__name(enum feature_id id)
{
	switch (id) {
	case FEAT_BTF:
		return "BTF";
	case FEAT_TRACEFS:
		return "tracefs";
	case FEAT_RINGBUF:
		return "ring buffer";
	case FEAT_TP_BTF:
		return "tp_btf";
	case FEAT_RAW_TP:
		return "raw_tp";
	case FEAT_TRACEPOINT:
		return "tracepoint";
	case FEAT_SOCK_TP:
		return "socket tp";
	case FEAT_UPROBE:
		return "uprobe";
	case FEAT_CGROUP2:
		return "cgroup v2";
	case FEAT_SOCKOPS:
		return "sockops";
	case FEAT_TASK_STORAGE:
		return "task storage";
	case FEAT_BPF_STATS:
		return "bpf_stats";
	case FEAT_KPROBE:
		return "kprobe";
	case FEAT_FENTRY:
		return "fentry";
	case FEAT_CAP_BPF:
		return "CAP_BPF";
	case FEAT_CAP_PERFMON:
		return "CAP_PERFMON";
	case FEAT_CAP_SYS_ADMIN:
		return "CAP_SYS_ADMIN";
	case FEAT_MEMLOCK:
		return "memlock";
	case FEAT__COUNT:
		break;
	}
	return "unknown";
}

const char *features__impact(enum feature_id id)
{
	switch (id) {
	case FEAT_BTF:
		return "CO-RE programs cannot be loaded: agentprof cannot run at all";
	case FEAT_TRACEFS:
		return "tracepoint ids cannot be read: syscall tracepoints cannot be attached";
	case FEAT_RINGBUF:
		return "per-request records cannot be sent to user space: agentprof cannot run";
	case FEAT_TP_BTF:
		return "scheduler hooks fall back to raw_tp; with neither, CPU and run-queue time "
		       "are lost";
	case FEAT_RAW_TP:
		return "no fallback for scheduler hooks when tp_btf is missing";
	case FEAT_TRACEPOINT:
		return "without socket tracepoints no request is seen (reads and writes come "
		       "from syscall tracepoints); with them, only `record --mmap` and the "
		       "close() of HTTP over unix sockets need these";
	case FEAT_SOCK_TP:
		return "socket reads and writes come from syscall tracepoints, which run for "
		       "every read and write on the host (costlier; bench/README.md)";
	case FEAT_UPROBE:
		return "user-space function hooks are skipped; numbers come from syscalls only";
	case FEAT_CGROUP2:
		return "cgroup_id cannot be mapped to a container, and sockops cannot attach";
	case FEAT_SOCKOPS:
		return "connection setup times come from syscall tracepoints instead of TCP "
		       "callbacks";
	case FEAT_TASK_STORAGE:
		return "per-thread state lives in a hash keyed by tid (16384 threads at most, a "
		       "slower sched_switch); raw_tp uses the hash in any case";
	case FEAT_BPF_STATS:
		return "the run time of agentprof's BPF programs (its overhead) is not reported";
	case FEAT_KPROBE:
		return "optional kprobe extras are skipped; nothing required depends on them";
	case FEAT_FENTRY:
		return "optional fentry extras are skipped; tracepoints are used instead";
	case FEAT_CAP_BPF:
		return "the kernel refuses to create BPF maps and load programs";
	case FEAT_CAP_PERFMON:
		return "tracing programs and perf events cannot be attached";
	case FEAT_CAP_SYS_ADMIN:
		return "needed instead of CAP_BPF+CAP_PERFMON before Linux 5.8, and to mount "
		       "tracefs";
	case FEAT_MEMLOCK:
		return "BPF maps cannot be created: agentprof cannot start";
	case FEAT__COUNT:
		break;
	}
	return "";
}

const char *features__fix(enum feature_id id)
{
	switch (id) {
	case FEAT_BTF:
		return "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (" VMLINUX_BTF_PATH
		       " must exist and be readable)";
	case FEAT_TRACEFS:
		return "run as root so agentprof mounts it, or mount -t tracefs nodev "
		       "/sys/kernel/tracing";
	case FEAT_RINGBUF:
		return "use Linux 5.8 or newer (BPF_MAP_TYPE_RINGBUF), and run as root";
	case FEAT_TP_BTF:
		return "use Linux 5.5 or newer with BTF, and run as root";
	case FEAT_RAW_TP:
		return "use Linux 4.17 or newer, and run as root";
	case FEAT_TRACEPOINT:
		return "mount tracefs (see tracefs) and run as root; the kernel needs "
		       "CONFIG_FTRACE_SYSCALLS=y";
	case FEAT_SOCK_TP:
		return "optional: use Linux 6.3 or newer (sock:sock_recv_length and "
		       "sock:sock_send_length) with BTF";
	case FEAT_UPROBE:
		return "use a kernel with CONFIG_UPROBE_EVENTS=y, and run as root";
	case FEAT_CGROUP2:
		return "mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with "
		       "systemd.unified_cgroup_hierarchy=1)";
	case FEAT_SOCKOPS:
		return "mount cgroup v2 and run as root; the kernel needs CONFIG_CGROUP_BPF=y";
	case FEAT_TASK_STORAGE:
		return "use Linux 5.13 or newer";
	case FEAT_BPF_STATS:
		return "run as root (BPF_ENABLE_STATS needs CAP_SYS_ADMIN) or sysctl -w "
		       "kernel.bpf_stats_enabled=1";
	case FEAT_KPROBE:
		return "optional: use a kernel with CONFIG_KPROBES=y and CONFIG_KPROBE_EVENTS=y";
	case FEAT_FENTRY:
		return "optional: needs BPF trampolines (CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS) "
		       "and no lockdown or LSM refusing them";
	case FEAT_CAP_BPF:
	case FEAT_CAP_PERFMON:
		return "run as root (sudo agentprof ...) or setcap cap_bpf,cap_perfmon+ep "
		       "agentprof";
	case FEAT_CAP_SYS_ADMIN:
		return "run as root (sudo agentprof ...), or grant CAP_BPF and CAP_PERFMON instead";
	case FEAT_MEMLOCK:
		return "run as root (agentprof raises RLIMIT_MEMLOCK itself) or ulimit -l "
		       "unlimited";
	case FEAT__COUNT:
		break;
	}
	return "";
}

/* Before alternatives are resolved: see features__resolve(). */
static bool feature__required(enum feature_id id)
{
	switch (id) {
	case FEAT_BTF:
	case FEAT_TRACEFS:
	case FEAT_RINGBUF:
	case FEAT_TP_BTF:
	case FEAT_RAW_TP:
	case FEAT_TRACEPOINT:
	case FEAT_CAP_BPF:
	case FEAT_CAP_PERFMON:
	case FEAT_CAP_SYS_ADMIN:
	case FEAT_MEMLOCK:
		return true;
	case FEAT_SOCK_TP:
	case FEAT_UPROBE:
	case FEAT_CGROUP2:
	case FEAT_SOCKOPS:
	case FEAT_TASK_STORAGE:
	case FEAT_BPF_STATS:
	case FEAT_KPROBE:
	case FEAT_FENTRY:
	case FEAT__COUNT:
		break;
	}
	return false;
}

__attribute__((format(printf, 4, 5))) static void
feature__set(struct features *f, enum feature_id id, bool ok, const char *fmt, ...)
{
	va_list ap;

	f->r[id].ok = ok;
	va_start(ap, fmt);
	vsnprintf(f->r[id].detail, sizeof(f->r[id].detail), fmt, ap);
	va_end(ap);
}

static int file__read_long(const char *path, long *val)
{
	FILE *fp;
	int err = 0;

	fp = fopen(path, "re");
	if (!fp)
		return -errno;
	if (fscanf(fp, "%ld", val) != 1)
		err = -EINVAL;
	fclose(fp);
	return err;
}

/* Load "r0 = ret; exit". Returns the program fd or -errno. */
static int prog__load(enum bpf_prog_type type, const char *name, int ret,
		      const struct bpf_prog_load_opts *opts)
{
	const struct bpf_insn insns[] = {
	    BPF_MOV64_IMM(BPF_REG_0, ret),
	    BPF_EXIT_INSN(),
	};
	int fd;

	fd = bpf_prog_load(type, name, "GPL", insns, ARRAY_SIZE(insns), opts);
	if (fd < 0)
		return -errno;
	return fd;
}

static int perf__open(struct perf_event_attr *attr, int pid, int cpu)
{
	int fd;

	fd = syscall(__NR_perf_event_open, attr, pid, cpu, -1 /* group_fd */, PERF_FLAG_FD_CLOEXEC);
	if (fd < 0)
		return -errno;
	return fd;
}

static int perf__attach(int perf_fd, int prog_fd)
{
	if (ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd))
		return -errno;
	if (ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0))
		return -errno;
	return 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static struct btf *probe__btf(struct features *f)
{
	struct btf *btf;
	int err;

	if (access(VMLINUX_BTF_PATH, R_OK)) {
		err = -errno;
		feature__set(f, FEAT_BTF, false, VMLINUX_BTF_PATH ": %s", strerror(-err));
		return NULL;
	}
	btf = btf__load_vmlinux_btf();
	if (!btf) {
		err = -errno;
		feature__set(f, FEAT_BTF, false, VMLINUX_BTF_PATH " cannot be parsed: %s",
			     strerror(-err));
		return NULL;
	}
	feature__set(f, FEAT_BTF, true, VMLINUX_BTF_PATH ": %u types", btf__type_cnt(btf));
	return btf;
}

static void probe__caps(struct features *f)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
	static const struct {
		enum feature_id id;
		int cap;
	} caps[] = {
	    {FEAT_CAP_BPF, CAP_BPF},
	    {FEAT_CAP_PERFMON, CAP_PERFMON},
	    {FEAT_CAP_SYS_ADMIN, CAP_SYS_ADMIN},
	};
	uint64_t eff;
	size_t i;
	int err;

	if (syscall(SYS_capget, &hdr, data)) {
		err = -errno;
		for (i = 0; i < ARRAY_SIZE(caps); i++)
			feature__set(f, caps[i].id, false, "capget: %s", strerror(-err));
		return;
	}
	eff = (uint64_t)data[1].effective << 32 | data[0].effective;
	for (i = 0; i < ARRAY_SIZE(caps); i++) {
		if (eff & (UINT64_C(1) << caps[i].cap))
			feature__set(f, caps[i].id, true, "in the effective set");
		else
			feature__set(f, caps[i].id, false,
				     "not in the effective set (CapEff %#" PRIx64 ", uid %u)", eff,
				     (unsigned int)geteuid());
	}
}

static bool features__privileged(const struct features *f)
{
	return f->r[FEAT_CAP_SYS_ADMIN].ok || (f->r[FEAT_CAP_BPF].ok && f->r[FEAT_CAP_PERFMON].ok);
}

static void probe__map_type(struct features *f, enum feature_id id, enum bpf_map_type type)
{
	int ret, err;

	errno = 0;
	ret = libbpf_probe_bpf_map_type(type, NULL);
	/* On 0, errno still holds what the kernel answered libbpf's map create. */
	err = -errno;
	if (ret == 1)
		feature__set(f, id, true, "map created");
	else if (ret < 0)
		feature__set(f, id, false, "probe failed: %s", strerror(-ret));
	else if (err == -EPERM || err == -EACCES)
		feature__set(f, id, false, "map create refused: %s", strerror(-err));
	else if (err)
		feature__set(f, id, false, "map type not supported by this kernel: %s",
			     strerror(-err));
	else
		feature__set(f, id, false, "map type not supported by this kernel");
}

bool feature__task_storage_in_tracing(void)
{
	return libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_storage_get,
				       NULL) > 0;
}

/* What `record` asks for: the map type, and its helper in tracing programs. */
static void probe__task_storage(struct features *f)
{
	probe__map_type(f, FEAT_TASK_STORAGE, BPF_MAP_TYPE_TASK_STORAGE);
	if (!f->r[FEAT_TASK_STORAGE].ok)
		return;
	if (feature__task_storage_in_tracing())
		feature__set(f, FEAT_TASK_STORAGE, true,
			     "map created, bpf_task_storage_get allowed in tracepoints");
	else
		feature__set(f, FEAT_TASK_STORAGE, false,
			     "map created, but tracing programs may not use it");
}

static void probe__raw_tp(struct features *f)
{
	int prog_fd, link_fd = -1, err;

	prog_fd = prog__load(BPF_PROG_TYPE_RAW_TRACEPOINT, "ap_probe_rawtp", 0, NULL);
	if (prog_fd < 0) {
		feature__set(f, FEAT_RAW_TP, false, "load: %s", strerror(-prog_fd));
		return;
	}
	link_fd = bpf_raw_tracepoint_open(RAW_TP_NAME, prog_fd);
	if (link_fd < 0) {
		err = -errno;
		feature__set(f, FEAT_RAW_TP, false, "attach to " RAW_TP_NAME ": %s",
			     strerror(-err));
		goto cleanup;
	}
	feature__set(f, FEAT_RAW_TP, true, "attached to " RAW_TP_NAME);
cleanup:
	close_fd(&link_fd);
	close_fd(&prog_fd);
}

/*
 * Load a BPF_PROG_TYPE_TRACING program against a vmlinux BTF type and attach
 * it through BPF_RAW_TRACEPOINT_OPEN, which attaches both tp_btf and fentry
 * programs on every kernel that has them (5.5+).
 */
static void probe__tracing(struct features *f, enum feature_id id, const struct btf *btf,
			   const char *type_name, __u32 kind, enum bpf_attach_type attach_type,
			   const char *prog_name)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = attach_type);
	int prog_fd = -1, link_fd = -1, type_id, err;

	if (!btf) {
		feature__set(f, id, false, "not tried: vmlinux BTF is unavailable");
		return;
	}
	type_id = btf__find_by_name_kind(btf, type_name, kind);
	if (type_id < 0) {
		feature__set(f, id, false, "%s not found in vmlinux BTF", type_name);
		return;
	}
	opts.attach_btf_id = type_id;
	prog_fd = prog__load(BPF_PROG_TYPE_TRACING, prog_name, 0, &opts);
	if (prog_fd < 0) {
		feature__set(f, id, false, "load on %s: %s", type_name, strerror(-prog_fd));
		return;
	}
	link_fd = bpf_raw_tracepoint_open(NULL, prog_fd);
	if (link_fd < 0) {
		err = -errno;
		feature__set(f, id, false, "attach to %s: %s", type_name, strerror(-err));
		goto cleanup;
	}
	feature__set(f, id, true, "attached to %s", type_name);
cleanup:
	close_fd(&link_fd);
	close_fd(&prog_fd);
}

static void probe__tracepoint(struct features *f)
{
	struct perf_event_attr attr = {};
	int prog_fd = -1, perf_fd = -1, err;
	char path[512];
	long tp_id;

	if (!f->tracefs_path[0]) {
		feature__set(f, FEAT_TRACEPOINT, false, "not tried: tracefs is not mounted");
		return;
	}
	snprintf(path, sizeof(path), "%s/events/" TP_SYSCALL "/id", f->tracefs_path);
	err = file__read_long(path, &tp_id);
	if (err) {
		feature__set(f, FEAT_TRACEPOINT, false, "read %s: %s", path, strerror(-err));
		return;
	}
	prog_fd = prog__load(BPF_PROG_TYPE_TRACEPOINT, "ap_probe_tp", 0, NULL);
	if (prog_fd < 0) {
		feature__set(f, FEAT_TRACEPOINT, false, "load: %s", strerror(-prog_fd));
		return;
	}
	attr.size = sizeof(attr);
	attr.type = PERF_TYPE_TRACEPOINT;
	attr.config = tp_id;
	attr.sample_period = 1;
	attr.wakeup_events = 1;
	perf_fd = perf__open(&attr, -1 /* any pid */, 0 /* cpu */);
	if (perf_fd < 0) {
		feature__set(f, FEAT_TRACEPOINT, false, "perf_event_open " TP_SYSCALL ": %s",
			     strerror(-perf_fd));
		goto cleanup;
	}
	err = perf__attach(perf_fd, prog_fd);
	if (err) {
		feature__set(f, FEAT_TRACEPOINT, false, "attach to " TP_SYSCALL ": %s",
			     strerror(-err));
		goto cleanup;
	}
	feature__set(f, FEAT_TRACEPOINT, true, "attached to " TP_SYSCALL " (id %ld)", tp_id);
cleanup:
	close_fd(&perf_fd);
	close_fd(&prog_fd);
}

/* The uprobe probe attaches here, in our own executable, so no other process is touched. */
__attribute__((noinline)) static int features__uprobe_target(int x)
{
	__asm__ volatile("" : "+r"(x));
	return x + 1;
}

/* File path and file offset of the code at addr, from /proc/self/maps. */
static int uprobe__resolve(const void *addr, char *path, size_t sz, uint64_t *offset)
{
	unsigned long start, end, pgoff, a = (unsigned long)addr;
	char line[PATH_MAX + 128];
	int err = -ENOENT, pos;
	FILE *fp;

	fp = fopen("/proc/self/maps", "re");
	if (!fp)
		return -errno;
	while (fgets(line, sizeof(line), fp)) {
		pos = 0;
		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %n", &start, &end, &pgoff, &pos) < 3)
			continue;
		if (a < start || a >= end || !pos)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (line[pos] != '/')
			break;
		if ((size_t)snprintf(path, sz, "%s", line + pos) >= sz) {
			err = -ENAMETOOLONG;
			break;
		}
		*offset = a - start + pgoff;
		err = 0;
		break;
	}
	fclose(fp);
	return err;
}

static void probe__uprobe(struct features *f)
{
	int prog_fd = -1, perf_fd = -1, err;
	struct perf_event_attr attr = {};
	char path[PATH_MAX];
	uint64_t offset = 0;
	long type;

	err = file__read_long(UPROBE_TYPE_PATH, &type);
	if (err) {
		feature__set(f, FEAT_UPROBE, false, "no uprobe PMU: " UPROBE_TYPE_PATH ": %s",
			     strerror(-err));
		return;
	}
	err = uprobe__resolve((const void *)features__uprobe_target, path, sizeof(path), &offset);
	if (err) {
		feature__set(f, FEAT_UPROBE, false, "cannot find own code in /proc/self/maps: %s",
			     strerror(-err));
		return;
	}
	prog_fd = prog__load(BPF_PROG_TYPE_KPROBE, "ap_probe_uprobe", 0, NULL);
	if (prog_fd < 0) {
		feature__set(f, FEAT_UPROBE, false, "load: %s", strerror(-prog_fd));
		return;
	}
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config1 = (uint64_t)(uintptr_t)path; /* uprobe_path */
	attr.config2 = offset;			  /* probe_offset */
	perf_fd = perf__open(&attr, getpid(), -1 /* any cpu */);
	if (perf_fd < 0) {
		feature__set(f, FEAT_UPROBE, false, "perf_event_open uprobe: %s",
			     strerror(-perf_fd));
		goto cleanup;
	}
	err = perf__attach(perf_fd, prog_fd);
	if (err) {
		feature__set(f, FEAT_UPROBE, false, "attach uprobe: %s", strerror(-err));
		goto cleanup;
	}
	features__uprobe_target(0);
	feature__set(f, FEAT_UPROBE, true, "attached to %s+%#" PRIx64, path, offset);
cleanup:
	close_fd(&perf_fd);
	close_fd(&prog_fd);
}

static void probe__kprobe(struct features *f)
{
	int prog_fd = -1, perf_fd = -1, err;
	struct perf_event_attr attr = {};
	char path[512];
	long type;

	err = file__read_long(KPROBE_TYPE_PATH, &type);
	if (err) {
		if (f->tracefs_path[0]) {
			snprintf(path, sizeof(path), "%s/kprobe_events", f->tracefs_path);
			if (access(path, F_OK) == 0) {
				feature__set(f, FEAT_KPROBE, false,
					     "no kprobe PMU (only legacy kprobe_events): %s",
					     strerror(-err));
				return;
			}
		}
		feature__set(f, FEAT_KPROBE, false, "no kprobe PMU: " KPROBE_TYPE_PATH ": %s",
			     strerror(-err));
		return;
	}
	prog_fd = prog__load(BPF_PROG_TYPE_KPROBE, "ap_probe_kprobe", 0, NULL);
	if (prog_fd < 0) {
		feature__set(f, FEAT_KPROBE, false, "load: %s", strerror(-prog_fd));
		return;
	}
	attr.size = sizeof(attr);
	attr.type = type;
	attr.config1 = (uint64_t)(uintptr_t)KPROBE_FUNC; /* kprobe_func */
	attr.config2 = 0;				 /* probe_offset */
	perf_fd = perf__open(&attr, -1 /* any pid */, 0 /* cpu */);
	if (perf_fd < 0) {
		feature__set(f, FEAT_KPROBE, false, "perf_event_open kprobe " KPROBE_FUNC ": %s",
			     strerror(-perf_fd));
		goto cleanup;
	}
	err = perf__attach(perf_fd, prog_fd);
	if (err) {
		feature__set(f, FEAT_KPROBE, false, "attach to " KPROBE_FUNC ": %s",
			     strerror(-err));
		goto cleanup;
	}
	feature__set(f, FEAT_KPROBE, true, "attached to " KPROBE_FUNC);
cleanup:
	close_fd(&perf_fd);
	close_fd(&prog_fd);
}

static void probe__cgroup2(struct features *f)
{
	struct mntent *ent;
	FILE *fp;
	int err;

	fp = setmntent("/proc/self/mounts", "r");
	if (!fp) {
		err = -errno;
		feature__set(f, FEAT_CGROUP2, false, "read /proc/self/mounts: %s", strerror(-err));
		return;
	}
	while ((ent = getmntent(fp))) {
		if (strcmp(ent->mnt_type, "cgroup2") == 0 &&
		    strlen(ent->mnt_dir) < sizeof(f->cgroup2_path)) {
			snprintf(f->cgroup2_path, sizeof(f->cgroup2_path), "%s", ent->mnt_dir);
			break;
		}
	}
	endmntent(fp);
	if (f->cgroup2_path[0])
		feature__set(f, FEAT_CGROUP2, true, "mounted at %s", f->cgroup2_path);
	else
		feature__set(f, FEAT_CGROUP2, false, "no cgroup2 mount in /proc/self/mounts");
}

static void probe__sockops(struct features *f)
{
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_SOCK_OPS);
	int cg_fd = -1, prog_fd = -1, link_fd = -1, err;

	if (!f->cgroup2_path[0]) {
		feature__set(f, FEAT_SOCKOPS, false, "not tried: cgroup v2 is not mounted");
		return;
	}
	cg_fd = open(f->cgroup2_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0) {
		err = -errno;
		feature__set(f, FEAT_SOCKOPS, false, "open %s: %s", f->cgroup2_path,
			     strerror(-err));
		return;
	}
	/* 1 lets every socket operation proceed unchanged. */
	prog_fd = prog__load(BPF_PROG_TYPE_SOCK_OPS, "ap_probe_sockops", 1, &opts);
	if (prog_fd < 0) {
		feature__set(f, FEAT_SOCKOPS, false, "load: %s", strerror(-prog_fd));
		goto cleanup;
	}
	/*
	 * Prefer a bpf_link (5.7+): the kernel detaches it when the fd closes,
	 * even if we die here, so no probe program can stay on the root cgroup.
	 */
	link_fd = bpf_link_create(prog_fd, cg_fd, BPF_CGROUP_SOCK_OPS, NULL);
	if (link_fd >= 0) {
		feature__set(f, FEAT_SOCKOPS, true, "attached to %s (bpf_link)", f->cgroup2_path);
		goto cleanup;
	}
	err = -errno;
	if (err != -EINVAL) {
		feature__set(f, FEAT_SOCKOPS, false, "attach to %s: %s", f->cgroup2_path,
			     strerror(-err));
		goto cleanup;
	}
	if (bpf_prog_attach(prog_fd, cg_fd, BPF_CGROUP_SOCK_OPS, BPF_F_ALLOW_MULTI)) {
		err = -errno;
		feature__set(f, FEAT_SOCKOPS, false, "attach to %s: %s", f->cgroup2_path,
			     strerror(-err));
		goto cleanup;
	}
	if (bpf_prog_detach2(prog_fd, cg_fd, BPF_CGROUP_SOCK_OPS)) {
		err = -errno;
		feature__set(f, FEAT_SOCKOPS, false,
			     "attached to %s but detach failed: %s; run bpftool cgroup detach",
			     f->cgroup2_path, strerror(-err));
		goto cleanup;
	}
	feature__set(f, FEAT_SOCKOPS, true, "attached to %s (prog_attach)", f->cgroup2_path);
cleanup:
	close_fd(&link_fd);
	close_fd(&prog_fd);
	close_fd(&cg_fd);
}

static void probe__bpf_stats(struct features *f)
{
	long enabled = -1;
	int fd, err;

	fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	if (fd >= 0) {
		close(fd);
		feature__set(f, FEAT_BPF_STATS, true, "BPF_ENABLE_STATS works");
		return;
	}
	err = -errno;
	file__read_long(BPF_STATS_SYSCTL, &enabled);
	if (enabled == 1)
		feature__set(f, FEAT_BPF_STATS, true,
			     "kernel.bpf_stats_enabled=1 (BPF_ENABLE_STATS: %s)", strerror(-err));
	else
		feature__set(f, FEAT_BPF_STATS, false,
			     "BPF_ENABLE_STATS: %s; kernel.bpf_stats_enabled=%ld", strerror(-err),
			     enabled);
}

static const char *rlim__str(rlim_t v, char *buf, size_t sz)
{
	if (v == RLIM_INFINITY)
		snprintf(buf, sz, "unlimited");
	else if (v >= (1u << 20) && v % (1u << 20) == 0)
		snprintf(buf, sz, "%llu MiB", (unsigned long long)v >> 20);
	else
		snprintf(buf, sz, "%llu KiB", (unsigned long long)v >> 10);
	return buf;
}

static int memlock__create_map(void)
{
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ap_probe_mlock", sizeof(uint32_t), 4096,
			    MEMLOCK_PROBE_BYTES / 4096, NULL);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/*
 * Before 5.11 BPF memory is charged to RLIMIT_MEMLOCK; since 5.11 (commit
 * 97306be45fbe "Merge branch 'switch to memcg-based memory accounting'") it
 * goes to the memory cgroup and the limit no longer matters. Find out which by
 * creating a 16 MiB map under the current limit.
 */
static void probe__memlock(struct features *f)
{
	struct rlimit old, inf = {RLIM_INFINITY, RLIM_INFINITY};
	char lim[32];
	int err;

	if (getrlimit(RLIMIT_MEMLOCK, &old)) {
		err = -errno;
		feature__set(f, FEAT_MEMLOCK, false, "getrlimit(RLIMIT_MEMLOCK): %s",
			     strerror(-err));
		return;
	}
	rlim__str(old.rlim_cur, lim, sizeof(lim));
	err = memlock__create_map();
	if (!err) {
		if (old.rlim_cur == RLIM_INFINITY)
			feature__set(f, FEAT_MEMLOCK, true,
				     "RLIMIT_MEMLOCK unlimited; 16 MiB map created");
		else if (old.rlim_cur < MEMLOCK_PROBE_BYTES)
			feature__set(
			    f, FEAT_MEMLOCK, true,
			    "16 MiB map created under RLIMIT_MEMLOCK %s: memcg accounting, "
			    "the limit does not matter",
			    lim);
		else
			feature__set(f, FEAT_MEMLOCK, true,
				     "16 MiB map created under RLIMIT_MEMLOCK %s", lim);
		return;
	}
	if (!features__privileged(f)) {
		feature__set(f, FEAT_MEMLOCK, false,
			     "not tried: creating maps needs CAP_BPF or CAP_SYS_ADMIN (%s; "
			     "RLIMIT_MEMLOCK %s)",
			     strerror(-err), lim);
		return;
	}
	if (err != -EPERM || old.rlim_cur == RLIM_INFINITY) {
		feature__set(f, FEAT_MEMLOCK, false, "16 MiB map: %s (RLIMIT_MEMLOCK %s)",
			     strerror(-err), lim);
		return;
	}
	/* Pre-5.11 accounting: see whether raising the limit, as agentprof does, helps. */
	if (setrlimit(RLIMIT_MEMLOCK, &inf)) {
		err = -errno;
		feature__set(f, FEAT_MEMLOCK, false,
			     "16 MiB map refused under RLIMIT_MEMLOCK %s, raising it failed: %s",
			     lim, strerror(-err));
		return;
	}
	err = memlock__create_map();
	setrlimit(RLIMIT_MEMLOCK, &old);
	if (err)
		feature__set(f, FEAT_MEMLOCK, false,
			     "16 MiB map: %s even with RLIMIT_MEMLOCK unlimited", strerror(-err));
	else
		feature__set(f, FEAT_MEMLOCK, true,
			     "RLIMIT_MEMLOCK %s is too low for maps, agentprof raises it (works as "
			     "root)",
			     lim);
}

static void probe__tracefs(struct features *f, bool mount_tracefs)
{
	char err_msg[256];
	int err;

	if (tracefs__mounted(f->tracefs_path, sizeof(f->tracefs_path))) {
		feature__set(f, FEAT_TRACEFS, true, "mounted at %s", f->tracefs_path);
		return;
	}
	if (!mount_tracefs) {
		feature__set(f, FEAT_TRACEFS, false, "not mounted (not mounting it: asked not to)");
		return;
	}
	err = tracefs__ensure(f->tracefs_path, sizeof(f->tracefs_path), err_msg, sizeof(err_msg));
	if (err) {
		f->tracefs_path[0] = '\0';
		feature__set(f, FEAT_TRACEFS, false,
			     "not mounted, and mounting it at /sys/kernel/tracing failed: %s",
			     strerror(-err));
		return;
	}
	feature__set(f, FEAT_TRACEFS, true, "was not mounted; mounted it at %s", f->tracefs_path);
}

/* Alternatives: the one not needed because the other works is not required. */
static void features__resolve(struct features *f)
{
	int i;

	for (i = 0; i < FEAT__COUNT; i++)
		f->r[i].required = feature__required(i);
	if (f->r[FEAT_TP_BTF].ok)
		f->r[FEAT_RAW_TP].required = false;
	else if (f->r[FEAT_RAW_TP].ok)
		f->r[FEAT_TP_BTF].required = false;
	/* Socket tracepoints leave syscall tracepoints to --mmap and unix-socket HTTP. */
	if (f->r[FEAT_SOCK_TP].ok)
		f->r[FEAT_TRACEPOINT].required = false;
	if (f->r[FEAT_CAP_SYS_ADMIN].ok) {
		f->r[FEAT_CAP_BPF].required = false;
		f->r[FEAT_CAP_PERFMON].required = false;
	} else if (f->r[FEAT_CAP_BPF].ok && f->r[FEAT_CAP_PERFMON].ok) {
		f->r[FEAT_CAP_SYS_ADMIN].required = false;
	}
}

void features__probe(struct features *f, bool mount_tracefs)
{
	struct btf *btf;

	memset(f, 0, sizeof(*f));
	probe__caps(f);
	btf = probe__btf(f);
	probe__tracefs(f, mount_tracefs);
	probe__map_type(f, FEAT_RINGBUF, BPF_MAP_TYPE_RINGBUF);
	probe__tracing(f, FEAT_TP_BTF, btf, TP_BTF_TYPEDEF, BTF_KIND_TYPEDEF, BPF_TRACE_RAW_TP,
		       "ap_probe_tpbtf");
	probe__raw_tp(f);
	probe__tracepoint(f);
	probe__tracing(f, FEAT_SOCK_TP, btf, SOCK_TP_TYPEDEF, BTF_KIND_TYPEDEF, BPF_TRACE_RAW_TP,
		       "ap_probe_socktp");
	probe__uprobe(f);
	probe__cgroup2(f);
	probe__sockops(f);
	probe__task_storage(f);
	probe__bpf_stats(f);
	probe__kprobe(f);
	probe__tracing(f, FEAT_FENTRY, btf, FENTRY_FUNC, BTF_KIND_FUNC, BPF_TRACE_FENTRY,
		       "ap_probe_fentry");
	probe__memlock(f);
	btf__free(btf);
	features__resolve(f);
}

void features__probe_modes(struct features *f)
{
	struct btf *btf;

	memset(f, 0, sizeof(*f));
	btf = probe__btf(f);
	probe__tracing(f, FEAT_TP_BTF, btf, TP_BTF_TYPEDEF, BTF_KIND_TYPEDEF, BPF_TRACE_RAW_TP,
		       "ap_probe_tpbtf");
	probe__tracing(f, FEAT_SOCK_TP, btf, SOCK_TP_TYPEDEF, BTF_KIND_TYPEDEF, BPF_TRACE_RAW_TP,
		       "ap_probe_socktp");
	probe__task_storage(f);
	btf__free(btf);
}

bool features__can_run(const struct features *f)
{
	int i;

	for (i = 0; i < FEAT__COUNT; i++)
		if (f->r[i].required && !f->r[i].ok)
			return false;
	return true;
}

/* Privileges first: when they are missing, most other probes fail because of them. */
static const enum feature_id check_order[FEAT__COUNT] = {
    FEAT_CAP_SYS_ADMIN, FEAT_CAP_BPF, FEAT_CAP_PERFMON, FEAT_MEMLOCK,	   FEAT_BTF,
    FEAT_TRACEFS,	FEAT_RINGBUF, FEAT_TP_BTF,	FEAT_RAW_TP,	   FEAT_TRACEPOINT,
    FEAT_SOCK_TP,
    FEAT_UPROBE,	FEAT_CGROUP2, FEAT_SOCKOPS,	FEAT_TASK_STORAGE, FEAT_BPF_STATS,
    FEAT_KPROBE,	FEAT_FENTRY,
};

static const char *feature__status(const struct feature_result *r)
{
	if (r->ok)
		return "ok";
	return r->required ? "MISSING" : "optional-missing";
}

static int check__libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	return vfprintf(stderr, fmt, args);
}

static int check__libbpf_silent(enum libbpf_print_level level, const char *fmt, va_list args)
{
	(void)level;
	(void)fmt;
	(void)args;
	return 0;
}

static long check__ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

int check__run(bool verbose)
{
	libbpf_print_fn_t old_print;
	int i, pass, missing_req = 0, missing_opt = 0, loaded = 0;
	struct features *f;
	struct utsname u;
	struct timespec t0;

	f = calloc(1, sizeof(*f));
	if (!f) {
		fprintf(stderr,
			"agentprof check: out of memory allocating %zu bytes: free memory "
			"and retry\n",
			sizeof(*f));
		return 1;
	}
	old_print = libbpf_set_print(verbose ? check__libbpf_print : check__libbpf_silent);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	features__probe(f, true /* mount tracefs */);
	if (verbose)
		fprintf(stderr, "agentprof check: probes took %ld ms\n", check__ms_since(&t0));
	libbpf_set_print(old_print);

	if (uname(&u) == 0)
		printf("agentprof check: Linux %s %s, euid %u\n\n", u.release, u.machine,
		       (unsigned int)geteuid());
	printf("%-14s %-17s %s\n", "FEATURE", "STATUS", "DETAIL");
	for (i = 0; i < FEAT__COUNT; i++) {
		const struct feature_result *r = &f->r[check_order[i]];

		printf("%-14s %-17s %s\n", features__name(check_order[i]), feature__status(r),
		       r->detail);
		if (!r->ok && r->required)
			missing_req++;
		else if (!r->ok)
			missing_opt++;
	}

	if (missing_req || missing_opt)
		printf("\nMissing:\n");
	if (!features__privileged(f))
		printf("  Without CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN the kernel refuses most "
		       "probes, so some rows may only lack privileges: re-run as root (sudo "
		       "agentprof check).\n");
	/* Required ones first: they are what keeps agentprof from running. */
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < FEAT__COUNT; i++) {
			enum feature_id id = check_order[i];
			const struct feature_result *r = &f->r[id];

			if (r->ok || r->required != (pass == 0))
				continue;
			printf("  %s (%s)\n", features__name(id),
			       r->required ? "required" : "optional");
			printf("    stops working: %s\n", features__impact(id));
			printf("    fix:           %s\n", features__fix(id));
		}
	}

	/* The features are there: do agentprof's own programs load? */
	if (!missing_req) {
		fflush(stdout);
		loader__report(stdout, verbose, &loaded);
		if (!loaded) {
			printf("\nagentprof cannot run here: the kernel rejects its programs in every "
			       "mode (see above).\n");
			free(f);
			return 1;
		}
	}
	if (missing_req)
		printf("\nagentprof cannot run here: %d required feature%s missing (see above).\n",
		       missing_req, missing_req == 1 ? " is" : "s are");
	else
		printf("\nagentprof can run here (%d optional feature%s missing).\n", missing_opt,
		       missing_opt == 1 ? "" : "s");
	free(f);
	return missing_req ? 1 : 0;
}
