/* SPDX-License-Identifier: GPL-2.0-only */
/* A finished request as userspace sees it: the BPF record, decoded. */
#ifndef AGENTPROF_REQUEST_RECORD_H
#define AGENTPROF_REQUEST_RECORD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "http.h"

#define ROUTE_MAX 256

struct ap_request_event;

struct request {
	const struct ap_request_event *ev;
	struct http_request_head head;
	char route[ROUTE_MAX];
	int status;		/* 0 when no status line was written */
	uint64_t start_real_ns; /* Unix epoch */
	uint64_t duration_ns;
	uint64_t ttfb_ns;
	bool incomplete;
};

enum request_decode_err {
	REQUEST_OK = 0,
	REQUEST_MALFORMED = -1, /* not an HTTP/1.x request head */
	REQUEST_OVERSIZED = -2, /* request line longer than the capture */
};

/* Decodes ev into req (which keeps a pointer to ev); mono_to_real_ns converts clocks. */
int request__decode(struct request *req, const struct ap_request_event *ev,
		    const char *class_header, int64_t mono_to_real_ns);

/* Writes req as one JSON object and a newline; returns 0 or -errno. */
int request__write_json(const struct request *req, FILE *out);

#endif /* AGENTPROF_REQUEST_RECORD_H */
