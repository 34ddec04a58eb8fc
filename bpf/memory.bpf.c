// SPDX-License-Identifier: GPL-2.0-only
/*
 * Memory newly mapped by a request's threads: mmap() lengths and brk()
 * growth. Page faults are counted from the task's own counters at every
 * accounting point (attribution.bpf.h), RSS from the mm at a request's
 * start and close-off.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "maps.bpf.h"
#include "attribution.bpf.h"

#define MAX_ERRNO 4095

/* Last brk() of each process with tracked threads. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_PROCS);
	__type(key, __u32);
	__type(value, __u64);
} brks SEC(".maps");

static __always_inline struct ap_request_event *current_request(struct thread **tp)
{
	struct thread *t = thread_current();

	*tp = t;
	return t && t->req_id ? request_lookup(t->req_id) : NULL;
}

SEC("tracepoint/syscalls/sys_enter_mmap")
int ap_mmap_e(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct io_args a = { .buf = ctx->args[1], .op = IO_MMAP };
	struct thread *t;

	if (!current_request(&t))
		return 0;
	bpf_map_update_elem(&io_args, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int ap_mmap_x(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct ap_request_event *r;
	struct io_args *a;
	struct thread *t;
	__u64 len;

	a = bpf_map_lookup_elem(&io_args, &tid);
	if (!a || a->op != IO_MMAP)
		return 0;
	len = a->buf;
	bpf_map_delete_elem(&io_args, &tid);
	if ((unsigned long)ctx->ret >= (unsigned long)-MAX_ERRNO)
		return 0;
	r = current_request(&t);
	if (r)
		__sync_fetch_and_add(&r->mapped_bytes, len);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_brk")
int ap_brk_x(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 now_brk = ctx->ret, *last;
	struct ap_request_event *r;
	struct thread *t;

	r = current_request(&t);
	if (!t)
		return 0;
	last = bpf_map_lookup_elem(&brks, &tgid);
	if (last && r && now_brk > *last)
		__sync_fetch_and_add(&r->mapped_bytes, now_brk - *last);
	bpf_map_update_elem(&brks, &tgid, &now_brk, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
