/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The exporter's HTTP server, on libmicrohttpd: one thread of its own
 * answers GET requests through a handler that renders the body.
 */
#ifndef AGENTPROF_EXPORT_HTTP_H
#define AGENTPROF_EXPORT_HTTP_H

#include <stddef.h>

struct export_http;

struct export_http_response {
	unsigned int status;
	const char *content_type;
	char *body; /* malloc'd; the server frees it */
	size_t len;
};

/* Renders the answer to GET url; accept: the Accept header or "". */
typedef void (*export_http_handler)(void *ctx, const char *url, const char *accept,
				    struct export_http_response *resp);

/*
 * Listens on listen ("ADDR:PORT", "[V6ADDR]:PORT") and serves; NULL with
 * err set when the address is invalid or taken.
 */
struct export_http *export_http__start(const char *listen, export_http_handler fn, void *ctx,
				       char *err, size_t errsz);
void export_http__stop(struct export_http *h);

#endif /* AGENTPROF_EXPORT_HTTP_H */
