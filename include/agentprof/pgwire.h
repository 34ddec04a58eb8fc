/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * PostgreSQL round trips, shared by bpf/pgwire.bpf.h and src/pg.c: one
 * record per round trip (a ReadyForQuery received), carrying the first bytes
 * of the client write that started its batch, which userspace parses for the
 * statement (Query, or Parse/Bind naming a prepared statement).
 */
#ifndef AGENTPROF_PGWIRE_H
#define AGENTPROF_PGWIRE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define AP_PG_CAPTURE_MAX 512
#define AP_PG_DEFAULT_PORT 5432
#define AP_PG_MAX_PORTS 16

enum ap_pg_flags {
	AP_PG_ERROR = 1 << 0,		/* an ErrorResponse arrived in this round trip */
	AP_PG_TLS = 1 << 1,		/* encrypted: counted by turn-taking, no statement */
	AP_PG_NO_CAPTURE = 1 << 2,	/* started by a write sent while others were open */
	AP_PG_UNCOUNTED = 1 << 3,	/* messages not walked: rows and errors unknown */
};

struct ap_pg_event {
	__u32 type;		/* AP_EV_PG */
	__u32 pid;
	__u64 req_id;		/* 0: no request was using the connection */
	__u64 conn_id;		/* unique per connection within a run */
	__u64 start_ns;		/* the statement's send, or the previous reply if later */
	__u64 end_ns;		/* ReadyForQuery read */
	__u32 seq;		/* round trips of the captured batch before this one */
	__u32 flags;		/* enum ap_pg_flags */
	__u32 rows;		/* DataRow messages */
	__u32 capture_len;
	char capture[AP_PG_CAPTURE_MAX];
};

_Static_assert(sizeof(struct ap_pg_event) == 568, "ap_pg_event ABI changed");

#endif /* AGENTPROF_PGWIRE_H */
