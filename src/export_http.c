// SPDX-License-Identifier: GPL-2.0-only
/* The exporter's HTTP server on libmicrohttpd (export_http.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_http.h"

struct export_http {
	struct MHD_Daemon *daemon;
	export_http_handler fn;
	void *ctx;
};

#if MHD_VERSION < 0x00097002
typedef int mhd_result;
#else
typedef enum MHD_Result mhd_result;
#endif

static mhd_result answer(void *cls, struct MHD_Connection *conn, const char *url,
			 const char *method, const char *version, const char *upload_data,
			 size_t *upload_size, void **state)
{
	static int first_call;
	struct export_http *h = cls;
	struct export_http_response r = {};
	struct MHD_Response *resp;
	const char *accept;
	mhd_result ret;

	(void)version;
	(void)upload_data;
	/* The first call only announces the request; answer on the second. */
	if (!*state) {
		*state = &first_call;
		return MHD_YES;
	}
	*upload_size = 0;
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
		r.body = strdup("only GET and HEAD are served\n");
	} else {
		accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
		h->fn(h->ctx, url, accept ?: "", &r);
	}
	if (!r.body) {
		r.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		r.body = strdup("out of memory\n");
		r.content_type = NULL;
		if (!r.body)
			return MHD_NO;
	}
	if (!r.len)
		r.len = strlen(r.body);
	resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(r.body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				r.content_type ?: "text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, r.status ?: MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* "ADDR:PORT" or "[V6ADDR]:PORT" into ss; 0 or -EINVAL. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, int *family)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	const char *colon = strrchr(listen, ':');
	char addr[INET6_ADDRSTRLEN + 2];
	unsigned long port;
	size_t len;
	char *end;

	if (!colon)
		return -EINVAL;
	len = colon - listen;
	if (len >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, listen, len);
	addr[len] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (addr[0] == '[' && len > 2 && addr[len - 1] == ']') {
		addr[len - 1] = '\0';
		if (inet_pton(AF_INET6, addr + 1, &s6->sin6_addr) != 1)
			return -EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*family = AF_INET6;
		return 0;
	}
	if (inet_pton(AF_INET, len ? addr : "0.0.0.0", &s4->sin_addr) != 1)
		return -EINVAL;
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	*family = AF_INET;
	return 0;
}

struct export_http *export_http__start(const char *listen, export_http_handler fn, void *ctx,
				       char *err, size_t errsz)
{
	struct sockaddr_storage ss;
	struct export_http *h;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	int family;

	if (parse_listen(listen, &ss, &family)) {
		snprintf(err, errsz,
			 "invalid --listen '%s': expected ADDR:PORT, e.g. "
			 "0.0.0.0:9464 or [::]:9464",
			 listen);
		return NULL;
	}
	if (family == AF_INET6)
		flags |= MHD_USE_IPv6;
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	h->fn = fn;
	h->ctx = ctx;
	/* Port 0 in the call: the address given by MHD_OPTION_SOCK_ADDR wins. */
	h->daemon = MHD_start_daemon(flags, 0, NULL, NULL, answer, h, MHD_OPTION_SOCK_ADDR,
				     (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
				     (unsigned int)64, MHD_OPTION_CONNECTION_TIMEOUT,
				     (unsigned int)30, MHD_OPTION_END);
	if (!h->daemon) {
		snprintf(err, errsz,
			 "cannot serve HTTP on %s: the address is invalid or in use "
			 "(another exporter?): pick another with --listen",
			 listen);
		free(h);
		return NULL;
	}
	return h;
}

void export_http__stop(struct export_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->daemon);
	free(h);
}
