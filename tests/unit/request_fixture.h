/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A decoded request built from a few known numbers, for the unit tests of
 * what reads profiles (diff, table, live): GET path by "svc", answered 200.
 */
#ifndef AGENTPROF_TEST_REQUEST_FIXTURE_H
#define AGENTPROF_TEST_REQUEST_FIXTURE_H

#include <stdio.h>
#include <string.h>

#include "agentprof/request.h"
#include "request.h"

struct fixture {
	const char *head; /* the whole request head; NULL: "GET path HTTP/1.1" */
	const char *path;
	const char *comm; /* NULL: "svc" */
	uint64_t dur_ns, cpu_ns, pg_time_ns;
	uint32_t pg_round_trips;
};

/* ev must outlive req (req points into it). */
static inline void fixture__request(struct ap_request_event *ev, struct request *req,
				    const struct fixture *f)
{
	char head[256];

	memset(ev, 0, sizeof(*ev));
	if (f->head)
		snprintf(head, sizeof(head), "%s", f->head);
	else
		snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\n\r\n", f->path);
	ev->id = 1;
	snprintf(ev->comm, sizeof(ev->comm), "%s", f->comm ? f->comm : "svc");
	ev->start_ns = 1000;
	ev->first_tx_ns = ev->last_tx_ns = ev->end_ns = ev->start_ns + f->dur_ns;
	ev->cpu_ns = f->cpu_ns;
	ev->pg_time_ns = f->pg_time_ns;
	ev->pg_round_trips = f->pg_round_trips;
	ev->head_len = strlen(head);
	memcpy(ev->head, head, ev->head_len);
	ev->resp_len = 17;
	memcpy(ev->resp, "HTTP/1.1 200 OK\r\n", 17);
	request__decode(req, ev, &(struct request_decode_opts){ "X-Request-Class", 0, 4096 });
}

#endif /* AGENTPROF_TEST_REQUEST_FIXTURE_H */
