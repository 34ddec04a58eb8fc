// SPDX-License-Identifier: GPL-2.0-only
/*
 * PostgreSQL statement capture in userspace (src/pg.c): round-trip records
 * as the kernel sends them, their captured client bytes arbitrary. The input
 * is a run of records, each a 4-byte header (connection, round trip of the
 * batch, flags, request; capture length) and its capture. Every request's
 * queries are then taken, and the statements table is built and printed.
 * Invariants: without --pg-literals no statement text is kept; every
 * fingerprint is a terminated string of its field.
 */
#include <string.h>

#include "agentprof/pgwire.h"
#include "agentprof/request.h"
#include "fuzz.h"
#include "pg.h"

#define PG_FUZZ_REQS 8

static void pg_fuzz_take(struct pg *pg, bool literals)
{
	struct pg_query *q;
	size_t n, i;
	uint64_t id;

	for (id = 1; id <= PG_FUZZ_REQS; id++) {
		q = pg__take(pg, id, id % 2 ? "/a/:id" : "/b", &n);
		for (i = 0; i < n; i++) {
			FUZZ_CHECK(strnlen(q[i].fingerprint, PG_FINGERPRINT_MAX) < PG_FINGERPRINT_MAX,
				   "an unterminated fingerprint");
			FUZZ_CHECK(literals || !q[i].text, "statement text kept without literals: %s",
				   q[i].text);
		}
		pg__free_queries(q, n);
	}
}

FUZZ_TARGET(pg)
{
	static struct ap_pg_event e;
	static FILE *devnull;
	struct json_object *j;
	bool literals;
	struct pg *pg;
	size_t len;

	if (size < 1)
		return 0;
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	literals = data[0] & 1;
	pg = pg__new(literals);
	if (!pg)
		return 0;
	data++;
	size--;
	while (size >= 4) {
		memset(&e, 0, sizeof(e));
		e.type = AP_EV_PG;
		e.conn_id = data[0] & 3;
		e.flags = data[0] >> 2 & 0xf;
		e.seq = data[1] & 7;
		e.req_id = data[1] >> 3 & 7;	/* 0: no request */
		e.end_ns = data[2];
		len = (data[2] | (size_t)data[3] << 8) % (AP_PG_CAPTURE_MAX + 1);
		data += 4;
		size -= 4;
		if (len > size)
			len = size;
		memcpy(e.capture, data, len);
		/* The kernel's length may exceed the capture: pg.c must clamp it. */
		e.capture_len = len == AP_PG_CAPTURE_MAX ? len + data[0] : len;
		pg__add_round_trip(pg, &e);
		data += len;
		size -= len;
	}
	pg_fuzz_take(pg, literals);
	j = pg__statements_json(pg);
	json_object_to_json_string(j);
	json_object_put(j);
	if (devnull)
		pg__print_top(pg, devnull, 20);
	pg__free(pg);
	return 0;
}
