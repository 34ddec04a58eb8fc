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
struct json_object;
struct pg_query;
struct peers;

struct request {
	const struct ap_request_event *ev;
	struct http_request_head head;
	char route[ROUTE_MAX];
	int status;		/* 0 when no status line was written */
	uint64_t start_real_ns; /* Unix epoch */
	uint64_t duration_ns;
	uint64_t ttfb_ns;
	int64_t rss_delta_bytes;
	uint64_t upstream_wait_ns; /* over every peer that is not PostgreSQL */
	/* PostgreSQL connections held (pghold.h); unknown when round trips were lost. */
	uint64_t pg_hold_ns;
	bool pg_hold_known;
	bool incomplete;
	bool no_mapped;	/* mapped_bytes was not measured (no --mmap, socket tracepoints) */
	/* Set by the caller before request__json(), when known. */
	const struct pg_query *pg_queries;
	size_t npg_queries;
	const struct peers *peers;
	/* The profile's service for this request; NULL: the command name (record). */
	const char *service;
};

struct request_decode_opts {
	const char *class_header; /* header naming the request class, or NULL */
	int64_t mono_to_real_ns;  /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	uint64_t page_size;
};

enum request_decode_err {
	REQUEST_OK = 0,
	REQUEST_MALFORMED = -1, /* not an HTTP/1.x request head */
	REQUEST_OVERSIZED = -2, /* request line longer than the capture */
};

/*
 * Rebuilds the struct of a ring-buffer record of size bytes (trimmed after
 * its head, its peers after that: include/agentprof/request.h) in ev.
 * Returns 0, or -EINVAL when size is too short for a record.
 */
int request__unpack(struct ap_request_event *ev, const void *data, size_t size);

/* Decodes ev into req, which keeps a pointer to ev. */
int request__decode(struct request *req, const struct ap_request_event *ev,
		    const struct request_decode_opts *opts);

/* req as one JSON object (NULL when out of memory); free with json_object_put(). */
struct json_object *request__json(const struct request *req);

#endif /* AGENTPROF_REQUEST_RECORD_H */
