// SPDX-License-Identifier: GPL-2.0-only
/*
 * Scheduler side of attribution: on-CPU time at switch-out, blocked
 * (off-CPU) time at wakeup, run-queue wait at switch-in, the wakeup
 * hand-off of work to pool threads, new processes of traced ones, and
 * threads that exit mid-request.
 *
 * Each hook exists as tp_btf (preferred, cheaper) and raw_tp (kernels without
 * tp_btf); userspace probes and autoloads one of the two. They share one body:
 * TASK_FIELD loads task fields directly in tp_btf (the hot sched_switch path
 * then calls no helper to read them) and through BPF_CORE_READ in raw_tp.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"
#include "core_fixes.bpf.h"
#include "sock.bpf.h"
#include "syscall_nr.bpf.h"

#define TASK_RUNNING 0
#define TASK_UNINTERRUPTIBLE 0x2

/*
 * Socket-tracepoint mode has no syscall-entry hooks: what a thread blocks in
 * is read from its saved user registers as it switches out (prev is still
 * current in sched_switch, so fd_file() sees its files). Sets *parked for a
 * read of a connection whose response has begun (io_begin()).
 */
static __always_inline __u8 block_kind_from_regs(const struct thread *t, struct task_struct *prev,
						 bool *parked)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);
	long nr = SYSCALL_NR(regs);
	struct ap_request_event *r;
	bool read = false;
	struct conn *c;
	umode_t mode;
	__u64 key;
	__u32 fd;

	switch (nr) {
	case NR_futex:
	case NR_futex_waitv:
		return WAIT_LOCK;
	case NR_fsync:
	case NR_fdatasync:
		return WAIT_DISK;
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
	case NR_pread64:
	case NR_preadv:
		read = true;
		break;
	case NR_write:
	case NR_writev:
	case NR_sendto:
	case NR_sendmsg:
	case NR_pwrite64:
	case NR_pwritev:
		break;
	default:
		return t->wait_kind;
	}
	fd = SYSCALL_ARG1(regs);
	key = conn_key(t->tgid, fd);
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c) {
		/* Inbound TCP connections are in socket storage, out of reach here. */
		if (read && t->resp_fd && t->resp_fd == fd + 1) {
			*parked = true;
			return WAIT_OTHER;
		}
		mode = file_mode(fd_file(fd)) & S_IFMT;
		return mode == S_IFREG || mode == S_IFBLK ? WAIT_DISK : t->wait_kind;
	}
	if (c->kind == AP_CONN_OUTBOUND)
		return c->pg ? WAIT_PG : WAIT_UPSTREAM;
	if (c->kind != AP_CONN_INBOUND)
		return t->wait_kind;
	if (read && c->req_id) {
		r = request_lookup(c->req_id);
		*parked = r && r->first_tx_ns;
	}
	return WAIT_OTHER;
}

static __always_inline void thread_switch_state(struct thread *t, struct task_struct *prev,
						__u64 now, bool btf)
{
	__s64 state = task_state(prev, btf);
	bool parked = t->parked, running = state == TASK_RUNNING;

	if (btf && sock_tps && !running)
		t->block_kind = block_kind_from_regs(t, prev, &parked);
	else
		t->block_kind = t->in_futex ? WAIT_LOCK : t->in_disk ? WAIT_DISK : t->wait_kind;
	if (parked) {
		t->wake_ns = 0;
		t->block_ns = 0;
	} else if (running) {
		t->wake_ns = now;	/* preempted: waits in the run queue */
		t->block_ns = 0;
	} else {
		t->block_ns = now;
		t->wake_ns = 0;
	}
	/*
	 * An event loop waits for events in an interruptible sleep (epoll,
	 * poll, select); one in an uninterruptible sleep (a page fault or a
	 * file read in a handler) is in the middle of what it read.
	 */
	if (!running && !(state & TASK_UNINTERRUPTIBLE)) {
		t->resume_req = 0;	/* an event loop blocks once all it read has run */
		/* Not for the GIL, which it may wait for with heads still to run. */
		if (!t->in_futex)
			t->py_nnotes = 0;
		/*
		 * An event loop blocked between units waits for what its last
		 * task step awaits (one request at a time: exactly that).
		 */
		if (t->py_loop && !t->py_known && !t->req_id)
			t->req_id = t->py_last;
	}
}

/*
 * From mark to now, read once, 0 if mark is later: the mark may have been
 * set on another CPU after this handler read its clock (the task switching
 * out there while it is woken here), and the difference would wrap to 2^64
 * less a few ns (seen as offcpu.lock_ns 18446744073709551496).
 */
static __always_inline __u64 span_to(__u64 mark, __u64 now)
{
	asm volatile("" : "+r"(mark));
	return now > mark ? now - mark : 0;
}

static __always_inline int on_switch(struct task_struct *prev, struct task_struct *next, bool btf)
{
	__u32 prev_tid = TASK_FIELD(btf, prev, pid), next_tid = TASK_FIELD(btf, next, pid);
	bool prev_traced = traced(TASK_FIELD(btf, prev, tgid));
	bool next_traced = traced(TASK_FIELD(btf, next, tgid));
	struct ap_request_event *r;
	struct thread *t = NULL;
	__u64 now;

	if (!prev_traced && !next_traced)
		return 0;
	now = bpf_ktime_get_ns();
	if (prev_traced)
		t = thread_get(prev, prev_tid);
	if (t) {
		if (!py_none(t))
			py_sync(t, now);
		thread_switch_out(t, prev, now, btf);
		thread_switch_state(t, prev, now, btf);
	}
	t = next_traced ? thread_get(next, next_tid) : NULL;
	if (t) {
		thread_snapshot(t, next, now, true, btf);
		if (t->wake_ns) {
			r = bound_request(&t->req_id);
			if (r)
				__sync_fetch_and_add(&r->runq_ns, span_to(t->wake_ns, now));
			t->wake_ns = 0;
		}
	}
	return 0;
}

/* The wakee stops blocking; work handed over by the waker follows the wakeup. */
static __always_inline int on_wakeup(struct task_struct *p, bool btf)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), now;
	__u32 tid = TASK_FIELD(btf, p, pid);
	struct thread *t, *w;
	struct ap_request_event *r;
	__u64 off;

	/* Threads of other processes have no state, and inherit no work. */
	if (!traced(TASK_FIELD(btf, p, tgid)))
		return 0;
	now = bpf_ktime_get_ns();
	t = thread_get(p, tid);
	if (t && t->block_ns) {
		off = span_to(t->block_ns, now);
		r = bound_request(&t->req_id);
		if (r) {
			__sync_fetch_and_add(&r->offcpu_ns, off);
			if (t->block_kind == WAIT_UPSTREAM)
				__sync_fetch_and_add(&r->offcpu_upstream_ns, off);
			else if (t->block_kind == WAIT_PG)
				__sync_fetch_and_add(&r->offcpu_pg_ns, off);
			else if (t->block_kind == WAIT_DISK)
				__sync_fetch_and_add(&r->offcpu_disk_ns, off);
			else if (t->block_kind == WAIT_LOCK)
				__sync_fetch_and_add(&r->offcpu_lock_ns, off);
		}
		t->block_ns = 0;
		t->wake_ns = now;
	}
	/*
	 * Work is handed over within a process only. Most wakeups of an
	 * event loop come from other processes (its upstreams and PostgreSQL
	 * backends, or a softirq that landed in them): they stop here, before
	 * the waker's lookup.
	 */
	if ((__u32)(pid_tgid >> 32) != (__u32)TASK_FIELD(btf, p, tgid))
		return 0;
	w = thread_current();
	if (!w || w->tgid != (__u32)(pid_tgid >> 32))
		return 0;
	if (!py_none(w))
		py_sync(w, now);
	if (!w->req_id) {
		/*
		 * --sample: a thread that serves requests and works for nothing
		 * works for an untraced one, and so does the work it hands over.
		 */
		if (sample_every > 1 && w->sock_io && t && !t->sock_io)
			t->req_id = 0;
		return 0;
	}
	if (!t) {
		t = thread_new(p, tid);
		if (!t) {
			stat_inc(AP_STAT_THREAD_MAP_FULL);
			return 0;
		}
		t->req_id = w->req_id;
		t->tgid = w->tgid;
		t->inherited = 1;
		/* The wakee may be on CPU already. */
		thread_snapshot(t, p, now, false, btf);
		t->on_cpu = 0;
		t->wake_ns = now;
		py_count_thread(w->req_id, tid);
		return 0;
	}
	/*
	 * Threads that do socket I/O of their own (event loops, per-request
	 * threads) keep their binding: in an interrupt the "waker" is whichever
	 * thread the interrupt landed on, and a lock hand-off (the GIL) between
	 * two request threads is no transfer of work.
	 */
	if (t->sock_io || t->req_id == w->req_id)
		return 0;
	/*
	 * A Python thread in a bound unit (a pool job run in its request's
	 * context) or an event loop: its units say whose its work is.
	 */
	if (t->py_known || t->py_loop)
		return 0;
	/* A GIL hand-off is no transfer of work (ap_futex_e()). */
	if (t->py == PY_FOUND && t->in_futex && !t->futex_lock)
		return 0;
	t->req_id = w->req_id;
	t->inherited = 1;
	if (t->py == PY_NONE)
		request_count_thread(w->req_id);
	else if (t->py == PY_UNSEEN)
		py_count_thread(w->req_id, tid);
	return 0;
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child, bool btf)
{
	__u32 ptgid = TASK_FIELD(btf, parent, tgid), cpid = TASK_FIELD(btf, child, pid);

	if (cpid != (__u32)TASK_FIELD(btf, child, tgid))
		return 0;	/* a thread: covered by its process */
	if (!proc_traced(ptgid))
		return 0;
	if (!proc_add(cpid))
		stat_inc(AP_STAT_PROC_MAP_FULL);
	return 0;
}

static __always_inline int on_exit(struct task_struct *p, bool btf)
{
	__u32 tid = TASK_FIELD(btf, p, pid), tgid = TASK_FIELD(btf, p, tgid);
	__u64 now = bpf_ktime_get_ns();
	struct ap_request_event *r;
	struct thread *t;

	/*
	 * The process's last thread: do_exit() counted signal->live down before
	 * this tracepoint. Its pid is free for another process from now on.
	 */
	if (proc_traced(tgid) && !BPF_CORE_READ(p, signal, live.counter))
		proc_del(tgid);
	t = thread_get(p, tid);
	if (!t)
		return 0;
	if (t->req_id && !t->inherited) {
		r = request_lookup(t->req_id);
		if (r && !r->first_tx_ns) {
			request_finish(t->req_id, AP_REQ_TASK_EXITED, now);
		} else {
			thread_charge(t, p, now, btf);
			thread_settle(t, t->req_id);
		}
	}
	thread_del(p, tid);
	bpf_map_delete_elem(&io_args, &tid);
	return 0;
}

/*
 * Syscalls that say what a thread blocks for: futex() (a lock, a condition
 * variable, the GIL) and fsync()/fdatasync() (the disk; file reads and
 * writes are told apart in requests.bpf.c).
 */
static __always_inline int in_syscall(bool futex, bool in)
{
	struct thread *t = thread_current();

	if (!t)
		return 0;
	if (futex)
		t->in_futex = in;
	else
		t->in_disk = in;
	return 0;
}

/*
 * What a CPython thread blocked in futex() waits for. Python's locks and
 * queues wait on semaphores: FUTEX_WAIT_BITSET with no timeout (unless the
 * code asks for one). The GIL is a condition variable waited on with a
 * timeout (the switch interval) and a mutex (FUTEX_WAIT): a hand-off of
 * either is no transfer of work.
 */
#define FUTEX_CMD(op) ((op) & 0x7f)
#define FUTEX_WAIT_BITSET_CMD 9

SEC("tracepoint/syscalls/sys_enter_futex")
int ap_futex_e(struct trace_event_raw_sys_enter *ctx)
{
	struct thread *t = thread_current();

	if (!t)
		return 0;
	t->in_futex = 1;
	t->futex_lock = FUTEX_CMD((__u32)ctx->args[1]) == FUTEX_WAIT_BITSET_CMD && !ctx->args[3];
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_futex")
int ap_futex_x(void *ctx)
{
	return in_syscall(true, false);
}

SEC("tracepoint/syscalls/sys_enter_fsync")
int ap_fsync_e(void *ctx)
{
	return in_syscall(false, true);
}

SEC("tracepoint/syscalls/sys_exit_fsync")
int ap_fsync_x(void *ctx)
{
	return in_syscall(false, false);
}

SEC("tracepoint/syscalls/sys_enter_fdatasync")
int ap_fdatasync_e(void *ctx)
{
	return in_syscall(false, true);
}

SEC("tracepoint/syscalls/sys_exit_fdatasync")
int ap_fdatasync_x(void *ctx)
{
	return in_syscall(false, false);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(ap_sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(prev, next, true);
}

SEC("?raw_tp/sched_switch")
int BPF_PROG(ap_raw_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	return on_switch(prev, next, false);
}

/*
 * sched_waking, not sched_wakeup: it fires in the waker's context. A wakeup
 * of a task on another CPU is queued to that CPU, and sched_wakeup fires
 * there, in whatever task its interrupt lands on (often the idle task): the
 * waker, and so the work it hands over, would be lost.
 */
SEC("tp_btf/sched_waking")
int BPF_PROG(ap_sched_waking, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("?raw_tp/sched_waking")
int BPF_PROG(ap_raw_waking, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(ap_sched_wk_new, struct task_struct *p)
{
	return on_wakeup(p, true);
}

SEC("?raw_tp/sched_wakeup_new")
int BPF_PROG(ap_raw_wk_new, struct task_struct *p)
{
	return on_wakeup(p, false);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(ap_proc_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child, true);
}

SEC("?raw_tp/sched_process_fork")
int BPF_PROG(ap_raw_fork, struct task_struct *parent, struct task_struct *child)
{
	return on_fork(parent, child, false);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(ap_proc_exit, struct task_struct *p)
{
	return on_exit(p, true);
}

SEC("?raw_tp/sched_process_exit")
int BPF_PROG(ap_raw_exit, struct task_struct *p)
{
	return on_exit(p, false);
}

char LICENSE[] SEC("license") = "GPL";
