/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Plaintext of TLS connections from uprobes on libssl's SSL_write/SSL_read
 * (and the _ex variants Python's ssl module calls), for PostgreSQL over TLS.
 * The socket an SSL object writes to is learnt from the syscall it makes
 * while in SSL_write/SSL_read (io_enter notes it), and remembered per SSL*
 * for reads served from libssl's buffer without a syscall. Optional: the
 * programs are attached only where a traced process maps libssl.
 */
#ifndef AGENTPROF_TLS_BPF_H
#define AGENTPROF_TLS_BPF_H

#include <bpf/bpf_tracing.h>
#include "maps.bpf.h"

struct ssl_call {
	__u64 ssl;
	__u64 buf;
	__u64 nbytes;		/* _ex: where the byte count is written; 0 otherwise */
	__u32 fd;
	__u8 write;
	__u8 fd_seen;
	__u8 pad[2];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, AP_MAX_THREADS);
	__type(key, __u32);	/* tid */
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);	/* SSL * */
	__type(value, __u32);	/* fd */
} ssl_fds SEC(".maps");

/* A socket syscall inside SSL_write/SSL_read: that SSL object's fd. */
static __always_inline void ssl_note_fd(__u32 tid, __u32 fd)
{
	struct ssl_call *sc = bpf_map_lookup_elem(&ssl_calls, &tid);

	if (sc && !sc->fd_seen) {
		sc->fd = fd;
		sc->fd_seen = 1;
	}
}

static __always_inline int ssl_enter(struct pt_regs *ctx, bool write, bool ex)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	struct ssl_call sc = {};
	struct thread *t;

	if (!traced(pid_tgid >> 32))
		return 0;
	sc.ssl = PT_REGS_PARM1(ctx);
	sc.buf = PT_REGS_PARM2(ctx);
	sc.nbytes = ex ? PT_REGS_PARM4(ctx) : 0;
	sc.write = write;
	bpf_map_update_elem(&ssl_calls, &tid, &sc, BPF_ANY);
	t = thread_current();
	if (t)
		t->in_ssl = 1;
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid(), now = bpf_ktime_get_ns(), key, n = 0;
	__u32 tid = (__u32)pid_tgid, *fdp, fd;
	struct ssl_call *scp, sc;
	struct thread *t;
	struct pgconn *pc;
	struct conn *c;
	long ret;

	scp = bpf_map_lookup_elem(&ssl_calls, &tid);
	if (!scp)
		return 0;
	sc = *scp;
	bpf_map_delete_elem(&ssl_calls, &tid);
	t = thread_current();
	if (t)
		t->in_ssl = 0;
	ret = PT_REGS_RC(ctx);
	if (sc.nbytes) {
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (const void *)sc.nbytes))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		n = ret;
	}
	if (sc.fd_seen) {
		fd = sc.fd;
		bpf_map_update_elem(&ssl_fds, &sc.ssl, &fd, BPF_ANY);
	} else {
		fdp = bpf_map_lookup_elem(&ssl_fds, &sc.ssl);
		if (!fdp)
			return 0;
		fd = *fdp;
	}
	key = conn_key(pid_tgid >> 32, fd);
	c = bpf_map_lookup_elem(&conns, &key);
	if (!c || c->kind != AP_CONN_OUTBOUND || !c->pg)
		return 0;
	pc = pgconn_get(key, true);
	if (!pc)
		return 0;
	if (!pc->tls) {
		/* TLS set up before tracing: its start-up is over too. */
		pc->tls = 1;
		pc->started = 1;
	}
	pc->plain = 1;
	if (sc.write)
		pg_write(c, key, sc.buf, n | PG_PLAIN, now);
	else if (pg_read(c, key, sc.buf, n | PG_PLAIN, now))
		thread_resume_note(t, c->req_id);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ap_sslw_e)
{
	return ssl_enter(ctx, true, false);
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_sslw_x)
{
	return ssl_exit(ctx);
}

SEC("uprobe")
int BPF_KPROBE(ap_sslr_e)
{
	return ssl_enter(ctx, false, false);
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_sslr_x)
{
	return ssl_exit(ctx);
}

SEC("uprobe")
int BPF_KPROBE(ap_sslwx_e)
{
	return ssl_enter(ctx, true, true);
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_sslwx_x)
{
	return ssl_exit(ctx);
}

SEC("uprobe")
int BPF_KPROBE(ap_sslrx_e)
{
	return ssl_enter(ctx, false, true);
}

SEC("uretprobe")
int BPF_KRETPROBE(ap_sslrx_x)
{
	return ssl_exit(ctx);
}

#endif /* AGENTPROF_TLS_BPF_H */
