/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * PostgreSQL frontend/backend protocol 3.0, followed in the bytes the traced
 * syscalls move on an outbound PostgreSQL socket. Every message is a type
 * byte and a big-endian int32 length (which counts itself); the parser keeps,
 * per direction, how many bytes of the current message are still to come
 * and a header cut by the end of a read. Client writes push a timestamp per
 * Query, Sync or FunctionCall (each is answered by one ReadyForQuery);
 * every ReadyForQuery read closes one round trip and sends one record.
 *
 * Kernels without bpf_loop() (before 5.17) get round trips, times and
 * statements from the reads that end with a ReadyForQuery, without rows,
 * errors or pipelining.
 *
 * Bounded: at most PG_MAX_MSGS messages are walked per syscall (bpf_loop);
 * past that, or on garbage, the direction is "lost" and resynchronises on a
 * read that ends with a ReadyForQuery, or on the next write that starts a
 * batch (the server has answered everything by then).
 */
#ifndef AGENTPROF_PGWIRE_BPF_H
#define AGENTPROF_PGWIRE_BPF_H

#include "maps.bpf.h"
#include "agentprof/pgwire.h"

#define PG_MAX_MSGS 65536
#define PG_CAP_SLOTS 8
#define PG_SENT_RING 64
#define PG_MAX_MSG_LEN (1U << 30)
#define PG_PROTOCOL_3 196608
#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104

struct pg_dir {
	__u32 skip;		/* bytes of the current message still to come */
	__u8 have;		/* bytes of a cut header in hdr[] */
	__u8 lost;		/* walking stopped: resynchronise */
	__u8 hdr[6];
};

/*
 * The first bytes of the client writes that start round trips. A capture
 * stays open, and later writes append to it, until its bytes end a round
 * trip: asyncpg sends Parse+Describe+Flush and Bind+Execute+Sync apart. Up to
 * PG_CAP_SLOTS captures are kept, for writes pipelined before replies.
 */
struct pg_cap {
	__u32 first;		/* round trips sent before its first write */
	__u32 end;		/* round trips sent after its last write */
	__u32 len;
	__u32 open;
	char data[AP_PG_CAPTURE_MAX];
};

struct pgconn {
	__u64 sent_ns[PG_SENT_RING];
	__u64 last_z_ns;
	__u32 sent_head;	/* round trips sent */
	__u32 sent_tail;	/* round trips answered */
	__u32 cap_slot;		/* the capture being written */
	__u32 rows;
	__u32 errors;
	struct pg_dir srv, cli;
	__u8 started;		/* the first client write was seen */
	__u8 ssl_requested;
	__u8 tls;
	__u8 plain;		/* TLS, with plaintext from the libssl uprobes */
	struct pg_cap cap[PG_CAP_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2048);
	__type(key, __u64);	/* conns key */
	__type(value, struct pgconn);
} pgconns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pgconn);
} pg_zero SEC(".maps");

/*
 * The first PG_WIN bytes of a syscall, copied in one probe read: message
 * headers inside it are plain loads, instead of a probe read each (a reply of
 * a few rows is a dozen messages).
 */
#define PG_WIN 4096

struct pg_win {
	__u8 b[PG_WIN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pg_win);
} pg_wins SEC(".maps");

/* One syscall's bytes being walked, for the bpf_loop callbacks. */
struct pg_walk {
	const char *buf;
	struct pg_win *win;	/* a copy of win_len bytes of buf from win_off */
	__u32 win_off;
	__u32 win_len;
	__u32 len;
	__u32 pos;
	__u64 now;
	struct pgconn *pc;
	struct conn *c;
	__u32 pid;
};

static __always_inline __u32 be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

static __always_inline bool pg_server_type(__u8 t)
{
	switch (t) {
	case 'R': case 'S': case 'K': case 'Z': case 'T': case 'D': case 'C': case 'E':
	case 'N': case 'A': case '1': case '2': case '3': case 'n': case 't': case 's':
	case 'G': case 'H': case 'W': case 'd': case 'c': case 'I': case 'V': case 'v':
		return true;
	}
	return false;
}

static __always_inline bool pg_client_type(__u8 t)
{
	switch (t) {
	case 'Q': case 'P': case 'B': case 'D': case 'E': case 'S': case 'H': case 'C':
	case 'X': case 'F': case 'd': case 'c': case 'f': case 'p':
		return true;
	}
	return false;
}

static __always_inline struct pgconn *pgconn_get(__u64 key, bool create)
{
	struct pgconn *pc = bpf_map_lookup_elem(&pgconns, &key);
	__u32 zero = 0;

	if (pc || !create)
		return pc;
	pc = bpf_map_lookup_elem(&pg_zero, &zero);
	if (!pc)
		return NULL;
	bpf_map_update_elem(&pgconns, &key, pc, BPF_NOEXIST);
	return bpf_map_lookup_elem(&pgconns, &key);
}

/*
 * A ReadyForQuery: one round trip ends. A global function, verified once
 * (not at every message of every walk): see docs/verifier.md.
 */
__noinline int pg_ready(struct pgconn *pc, struct conn *c, __u32 pid, __u64 now)
{
	/* Without bpf_loop, or encrypted, the messages were not walked. */
	bool uncounted;
	struct ap_request_event *r;
	struct ap_pg_event *e;
	struct pg_cap *cap = NULL;
	__u32 idx, i;
	__u64 start, from;

	if (!pc || !c)
		return 0;
	uncounted = !has_bpf_loop || (pc->tls && !pc->plain);
	idx = pc->sent_tail;
	if (pc->sent_head == idx) {
		/* Not an answer to anything we saw sent: start-up, or joined late. */
		pc->rows = pc->errors = 0;
		return 0;
	}
	start = pc->sent_ns[idx & (PG_SENT_RING - 1)];
	/* Pipelined round trips overlap: the request's PG time counts it once. */
	from = start > pc->last_z_ns ? start : pc->last_z_ns;
	pc->sent_tail = idx + 1;
	pc->last_z_ns = now;
	r = c->req_id ? request_lookup(c->req_id) : NULL;
	if (r) {
		r->pg_round_trips++;
		r->pg_time_ns += now > from ? now - from : 0;
		r->pg_rows += pc->rows;
		if (pc->errors)
			r->pg_errors++;
		if (uncounted)
			r->flags |= AP_REQ_PG_UNCOUNTED;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(AP_STAT_PG_DROPS);
		pc->rows = pc->errors = 0;
		return 0;
	}
	e->type = AP_EV_PG;
	e->pid = pid;
	e->req_id = c->req_id;
	e->conn_id = c->conn_id;
	e->start_ns = start;	/* the query's own latency, overlapping or not */
	e->end_ns = now;
	e->rows = pc->rows;
	e->flags = (pc->errors ? AP_PG_ERROR : 0) | (pc->tls ? AP_PG_TLS : 0) |
		   (uncounted ? AP_PG_UNCOUNTED : 0);
	if (r && pc->tls)
		r->flags |= AP_REQ_PG_TLS;
	e->seq = 0;
	e->capture_len = 0;
	for (i = 0; i < PG_CAP_SLOTS; i++) {
		if (idx >= pc->cap[i].first && idx < pc->cap[i].end && pc->cap[i].len)
			cap = &pc->cap[i];
	}
	if (cap && (!pc->tls || pc->plain)) {
		e->seq = idx - cap->first;
		e->capture_len = cap->len;
		__builtin_memcpy(e->capture, cap->data, sizeof(e->capture));
	} else {
		e->flags |= AP_PG_NO_CAPTURE;
	}
	bpf_ringbuf_submit(e, ringbuf_flags());
	pc->rows = pc->errors = 0;
	return 0;
}

/*
 * The connection ends (EOF, or close()) with round trips open: the backend
 * died (terminated, crashed) or the network failed mid-query. The oldest
 * one, the query the backend was running, ends here as an error, its time
 * up to now; the ones after it never ran and are dropped.
 */
static __always_inline void pg_conn_end(struct conn *c, __u64 key, __u32 pid, __u64 now)
{
	struct pgconn *pc = pgconn_get(key, false);

	if (!pc || pc->sent_head == pc->sent_tail)
		return;
	if (!pc->errors)
		pc->errors = 1;
	pg_ready(pc, c, pid, now);
	pc->sent_tail = pc->sent_head;
}

static __always_inline void pg_sent(struct pgconn *pc, __u64 now)
{
	pc->sent_ns[pc->sent_head & (PG_SENT_RING - 1)] = now;
	pc->sent_head++;
}

/* One message header; returns false when the stream is not PostgreSQL. */
static __always_inline bool pg_msg(struct pg_walk *w, bool server, __u8 type, __u32 len)
{
	struct pgconn *pc = w->pc;

	if (len < 4 || len > PG_MAX_MSG_LEN)
		return false;
	if (server) {
		if (!pg_server_type(type))
			return false;
		if (type == 'Z')
			pg_ready(pc, w->c, w->pid, w->now);
		else if (type == 'E')
			pc->errors++;
		else if (type == 'D')
			pc->rows++;
		return true;
	}
	if (!pg_client_type(type))
		return false;
	if (type == 'Q' || type == 'S' || type == 'F')
		pg_sent(pc, w->now);
	return true;
}

static __always_inline struct pg_dir *pg_dir_of(struct pgconn *pc, bool server)
{
	return server ? &pc->srv : &pc->cli;
}

/* Walks one message at w->pos; 1 stops bpf_loop. */
static __always_inline long pg_step(struct pg_walk *w, bool server)
{
	struct pg_dir *d = pg_dir_of(w->pc, server);
	struct pg_win *win = w->win;
	__u64 left, n, p;
	__u8 hdr[5];

	if (w->pos >= w->len)
		return 1;
	p = w->pos - w->win_off;
	if (win && w->pos >= w->win_off && p + sizeof(hdr) <= w->win_len) {
		p = bounded(p, PG_WIN - sizeof(hdr));
		hdr[0] = win->b[p];
		n = be32(&win->b[p + 1]);
		if (!pg_msg(w, server, hdr[0], n)) {
			d->lost = 1;
			stat_inc(AP_STAT_PG_BAD);
			return 1;
		}
		w->pos += 1 + n;
		return 0;
	}
	left = w->len - w->pos;
	if (left < 5) {
		/* A header cut by the end of this read: keep its bytes. */
		n = left;
		asm volatile("" : "+r"(n));
		if (n > 4)
			return 1;
		bpf_probe_read_user(d->hdr, n, w->buf + w->pos);
		d->have = n;
		w->pos = w->len;
		return 1;
	}
	if (bpf_probe_read_user(hdr, sizeof(hdr), w->buf + w->pos)) {
		d->lost = 1;
		return 1;
	}
	if (!pg_msg(w, server, hdr[0], be32(&hdr[1]))) {
		d->lost = 1;
		stat_inc(AP_STAT_PG_BAD);
		return 1;
	}
	w->pos += 1 + be32(&hdr[1]);
	return 0;
}

static long pg_step_server(__u32 i, void *ctx)
{
	return pg_step(ctx, true);
}

static long pg_step_client(__u32 i, void *ctx)
{
	return pg_step(ctx, false);
}

/* Completes a header cut by the previous syscall; false when lost. */
static __always_inline bool pg_resume(struct pg_walk *w, bool server)
{
	struct pg_dir *d = pg_dir_of(w->pc, server);
	__u64 have = d->have, need;
	__u8 type;

	if (!have)
		return true;
	if (have > 4)
		return false;
	need = 5 - have;
	asm volatile("" : "+r"(need));
	if (need > 4 || w->len < need || bpf_probe_read_user(&d->hdr[have], need, w->buf))
		return false;
	d->have = 0;
	type = d->hdr[0];
	if (!pg_msg(w, server, type, be32(&d->hdr[1])))
		return false;
	w->pos = need + be32(&d->hdr[1]) - 4;
	return true;
}

/* Walks the messages of one syscall's bytes, in one direction. */
static __always_inline void pg_walk(struct pg_walk *w, bool server)
{
	struct pg_dir *d = pg_dir_of(w->pc, server);
	__u32 zero = 0;
	__u64 n;

	if (d->lost)
		return;
	if (d->skip >= w->len) {
		d->skip -= w->len;
		return;
	}
	w->pos = d->skip;
	d->skip = 0;
	if (!has_bpf_loop || !pg_resume(w, server)) {
		/* Counted from ReadyForQuery at the end of reads (pg_tail_resync). */
		d->lost = 1;
		return;
	}
	/* From pos: the rest of a message begun by the previous read is not needed. */
	w->win = bpf_map_lookup_elem(&pg_wins, &zero);
	w->win_off = w->pos;
	w->win_len = 0;
	if (w->win && w->pos < w->len) {
		n = bounded(w->len - w->pos, PG_WIN);
		if (!bpf_probe_read_user(w->win->b, n, w->buf + w->pos))
			w->win_len = n;
	}
	bpf_loop(PG_MAX_MSGS, server ? pg_step_server : pg_step_client, w, 0);
	if (w->pos > w->len)
		d->skip = w->pos - w->len;
	else if (w->pos < w->len && !d->have)
		d->lost = 1;	/* more messages than PG_MAX_MSGS */
}

/* A lost server direction: a read that ends with ReadyForQuery resynchronises. */
static __always_inline void pg_tail_resync(struct pg_walk *w)
{
	__u8 tail[6];

	if (w->len < 6 || bpf_probe_read_user(tail, sizeof(tail), w->buf + w->len - 6))
		return;
	if (tail[0] != 'Z' || be32(&tail[1]) != 5)
		return;
	pg_ready(w->pc, w->c, w->pid, w->now);
	w->pc->srv.lost = 0;
	w->pc->srv.skip = 0;
	w->pc->srv.have = 0;
}

/* The first client bytes: StartupMessage, SSLRequest or GSSENCRequest. */
static __always_inline __u32 pg_startup(struct pg_walk *w)
{
	struct pgconn *pc = w->pc;
	__u8 m[8];
	__u32 len, code;

	pc->started = 1;
	if (w->len < 8 || bpf_probe_read_user(m, sizeof(m), w->buf))
		return 0;
	len = be32(m);
	code = be32(&m[4]);
	if (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST) {
		pc->ssl_requested = 1;
		return 8;
	}
	if (code == PG_PROTOCOL_3 && len >= 8 && len < 10000)
		return len;
	return 0;
}

/* Whether the first write on an outbound socket is a PostgreSQL start-up. */
static __always_inline bool pg_detect(const char *buf, long len)
{
	__u8 m[8];
	__u32 code;

	if (len < 8 || bpf_probe_read_user(m, sizeof(m), buf))
		return false;
	code = be32(&m[4]);
	return code == PG_PROTOCOL_3 || code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST;
}

/* A client write: into the open capture, or a new one in the next slot. */
static __always_inline struct pg_cap *pg_capture(struct pgconn *pc, const char *buf, long len)
{
	struct pg_cap *cap = &pc->cap[pc->cap_slot & (PG_CAP_SLOTS - 1)];
	__u64 off, n;

	if (!cap->open) {
		pc->cap_slot++;
		cap = &pc->cap[pc->cap_slot & (PG_CAP_SLOTS - 1)];
		cap->first = cap->end = pc->sent_head;
		cap->len = 0;
		cap->open = 1;
	}
	/*
	 * A first write fills up to the whole capture; a later one is appended
	 * into the second half, if the first left it free. Two fixed halves
	 * keep every copy within the buffer for the verifier.
	 */
	off = cap->len;
	asm volatile("" : "+r"(off));
	if (!off) {
		n = bounded(len, AP_PG_CAPTURE_MAX);
		if (!bpf_probe_read_user(cap->data, n, buf))
			cap->len = n;
		return cap;
	}
	if (off >= AP_PG_CAPTURE_MAX / 2)
		return cap;
	n = bounded(len, AP_PG_CAPTURE_MAX / 2);
	if (!bpf_probe_read_user(&cap->data[off], n, buf))
		cap->len = off + n;
	return cap;
}

/* After the write is walked: a capture whose bytes end a round trip is complete. */
static __always_inline void pg_capture_done(struct pgconn *pc, struct pg_cap *cap)
{
	cap->end = pc->sent_head;
	if (cap->end != cap->first)
		cap->open = 0;
}

/* Client messages that ask for an answer: the first of them opens a round trip. */
static __always_inline bool pg_asks(__u8 t)
{
	switch (t) {
	case 'Q': case 'P': case 'B': case 'D': case 'E': case 'S': case 'H': case 'C': case 'F':
		return true;
	}
	return false;	/* password and SASL ('p'), Terminate, COPY data */
}

/*
 * A client write in clear without bpf_loop: messages are not walked, so a
 * round trip is from the first write that asks for an answer while none is
 * open to the ReadyForQuery at the end of a read (pg_tail_resync()). Later
 * writes before it (asyncpg's Bind+Sync after Parse+Flush) belong to it and
 * are appended to its capture. Pipelined round trips count as one.
 */
static __always_inline void pg_write_unwalked(struct pg_walk *w)
{
	struct pgconn *pc = w->pc;
	struct pg_cap *cap;
	__u8 t;

	if (!pc->started && pg_startup(w))
		return;		/* StartupMessage, SSLRequest: no round trip */
	if (bpf_probe_read_user(&t, 1, w->buf) || !pg_asks(t))
		return;
	if (pc->sent_head != pc->sent_tail) {
		pg_capture(pc, w->buf, w->len);
		return;
	}
	/* The previous round trip's capture takes no more bytes. */
	pc->cap[pc->cap_slot & (PG_CAP_SLOTS - 1)].open = 0;
	cap = pg_capture(pc, w->buf, w->len);
	pg_sent(pc, w->now);
	cap->end = pc->sent_head;
}

/*
 * pg_read() and pg_write() take the byte count with this bit set when the
 * bytes come from SSL_read/SSL_write (tls.bpf.h) rather than a syscall: a
 * global function takes five arguments at most, and a struct of them would
 * take stack the socket handlers' call chains cannot spare (docs/verifier.md).
 */
#define PG_PLAIN (1ULL << 63)
/* And this one for a later iovec of the same syscall: it starts no new turn. */
#define PG_MORE (1ULL << 62)

static __always_inline void pg_walk_init(struct pg_walk *w, struct conn *c, struct pgconn *pc,
					 __u64 key, __u64 buf, __u64 len, __u64 now)
{
	w->buf = (const char *)buf;
	w->len = len & ~(PG_PLAIN | PG_MORE);
	w->now = now;
	w->c = c;
	w->pid = key >> 32;
	w->pc = pc;
}

/*
 * Client -> server bytes on connection c (its call phase is still the one
 * before this write). A global function: the verifier checks the walk once,
 * not on every path of its callers (docs/verifier.md).
 */
__noinline int pg_write(struct conn *c, __u64 key, __u64 buf, __u64 len, __u64 now)
{
	struct pg_walk w = {};
	struct pgconn *pc;
	struct pg_cap *cap;
	bool plain;

	if (!c)
		return 0;
	pc = pgconn_get(key, true);
	if (!pc)
		return 0;
	plain = len & PG_PLAIN;
	pg_walk_init(&w, c, pc, key, buf, len, now);
	if (pc->plain && !plain)
		return 0;	/* the SSL_write uprobe has these bytes in clear */
	if (pc->tls && !plain && tls_uprobes)
		return 0;	/* handshake or not yet seen in clear: wait for SSL_write */
	if (!has_bpf_loop && (!pc->tls || plain)) {
		pg_write_unwalked(&w);
		return 0;
	}
	if (pc->tls && !plain) {
		/* Encrypted: a write after reading a reply is the next round trip. */
		if (c->phase != CALL_SENDING && !(len & PG_MORE))
			pg_sent(pc, w.now);
		return 0;
	}
	cap = pg_capture(pc, w.buf, w.len);
	if (pc->sent_head == pc->sent_tail) {
		/* Nothing open: the server has answered all; both directions restart clean. */
		pc->srv.lost = 0;
		pc->srv.skip = 0;
		pc->srv.have = 0;
		pc->cli.lost = 0;
		pc->cli.skip = 0;
		pc->cli.have = 0;
	}
	if (!pc->started) {
		w.pos = pg_startup(&w);
		if (w.pos) {
			/* Start-up bytes name no statement. */
			cap->len = 0;
			cap->open = 0;
			if (w.pos >= w.len) {
				pc->cli.skip = w.pos - w.len;
				return 0;
			}
			pc->cli.skip = w.pos;
		}
	}
	pg_walk(&w, false);
	pg_capture_done(pc, cap);
	return 0;
}

/*
 * Server -> client bytes on connection c; a global function, as pg_write().
 * 1 when they answer the last round trip open: the client's code that
 * waits for it runs next.
 */
__noinline int pg_read(struct conn *c, __u64 key, __u64 buf, __u64 len, __u64 now)
{
	struct pg_walk w = {};
	struct pgconn *pc;
	__u8 answer = 0;
	__u32 open;
	bool plain;

	if (!c)
		return 0;
	pc = pgconn_get(key, false);
	if (!pc)
		return 0;
	plain = len & PG_PLAIN;
	pg_walk_init(&w, c, pc, key, buf, len, now);
	if (pc->plain && !plain)
		return 0;
	if (pc->ssl_requested && !pc->tls && w.len == 1 && !plain) {
		/*
		 * The one-byte answer to SSLRequest: 'S' means TLS follows. Either
		 * way the next client bytes are a StartupMessage.
		 */
		bpf_probe_read_user(&answer, 1, w.buf);
		pc->ssl_requested = 0;
		pc->tls = answer == 'S';
		pc->started = 0;
		return 0;
	}
	open = pc->sent_head - pc->sent_tail;
	if (pc->tls && !plain) {
		if (c->phase == CALL_SENDING && !tls_uprobes)
			pg_ready(pc, c, w.pid, w.now);
	} else if (pc->srv.lost) {
		pg_tail_resync(&w);
	} else {
		pg_walk(&w, true);
		if (pc->srv.lost)
			pg_tail_resync(&w);
	}
	return open && pc->sent_head == pc->sent_tail;
}

#endif /* AGENTPROF_PGWIRE_BPF_H */
