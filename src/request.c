// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "agentprof/request.h"
#include "request.h"
#include "route.h"

int request__decode(struct request *req, const struct ap_request_event *ev,
		    const char *class_header, int64_t mono_to_real_ns)
{
	size_t head_len = ev->head_len < AP_HEAD_MAX ? ev->head_len : AP_HEAD_MAX;
	size_t resp_len = ev->resp_len < AP_RESP_MAX ? ev->resp_len : AP_RESP_MAX;
	uint64_t end;
	int err;

	memset(req, 0, sizeof(*req));
	req->ev = ev;
	err = http_request_head__parse(ev->head, head_len, class_header, &req->head);
	if (err == HTTP_ERR_TRUNCATED)
		return REQUEST_OVERSIZED;
	if (err)
		return REQUEST_MALFORMED;
	route__template(req->head.target, req->route, sizeof(req->route));
	req->status = resp_len ? http_status__parse(ev->resp, resp_len) : 0;
	if (req->status < 0)
		req->status = 0;
	req->incomplete = ev->flags & AP_REQ_INCOMPLETE;
	end = ev->last_tx_ns ? ev->last_tx_ns : ev->end_ns;
	req->duration_ns = end > ev->start_ns ? end - ev->start_ns : 0;
	req->ttfb_ns = ev->first_tx_ns > ev->start_ns ? ev->first_tx_ns - ev->start_ns : 0;
	req->start_real_ns = ev->start_ns + mono_to_real_ns;
	return REQUEST_OK;
}

static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v));
}

static struct json_object *headers_json(const struct http_request_head *h)
{
	struct json_object *o = json_object_new_object();

	if (h->request_id[0])
		add_str(o, "x-request-id", h->request_id);
	if (h->request_class[0])
		add_str(o, "x-request-class", h->request_class);
	if (h->traceparent[0])
		add_str(o, "traceparent", h->traceparent);
	return o;
}

static const char *end_reason(uint32_t flags)
{
	if (flags & AP_REQ_TASK_EXITED)
		return "task_exited";
	if (flags & AP_REQ_FLUSHED)
		return "flushed";
	if (flags & AP_REQ_CONN_CLOSED)
		return "conn_closed";
	return "next_request";
}

int request__write_json(const struct request *req, FILE *out)
{
	const struct ap_request_event *ev = req->ev;
	struct json_object *o = json_object_new_object();
	char comm[AP_COMM_LEN + 1];
	int err = 0;

	if (!o)
		return -ENOMEM;
	memcpy(comm, ev->comm, AP_COMM_LEN);
	comm[AP_COMM_LEN] = '\0';
	add_u64(o, "id", ev->id);
	add_u64(o, "pid", ev->pid);
	add_u64(o, "tid", ev->tid);
	add_str(o, "comm", comm);
	add_u64(o, "cgroup_id", ev->cgroup_id);
	add_str(o, "method", req->head.method);
	add_str(o, "path", req->head.target);
	add_str(o, "route", req->route);
	json_object_object_add(o, "status", json_object_new_int(req->status));
	add_u64(o, "start_ns", req->start_real_ns);
	add_u64(o, "duration_ns", req->duration_ns);
	add_u64(o, "ttfb_ns", req->ttfb_ns);
	add_u64(o, "cpu_ns", ev->cpu_ns);
	add_u64(o, "runq_ns", ev->runq_ns);
	add_u64(o, "offcpu_ns", ev->offcpu_ns);
	add_u64(o, "rx_bytes", ev->rx_bytes);
	add_u64(o, "tx_bytes", ev->tx_bytes);
	add_u64(o, "threads", ev->nthreads);
	json_object_object_add(o, "incomplete", json_object_new_boolean(req->incomplete));
	add_str(o, "end", end_reason(ev->flags));
	json_object_object_add(o, "headers", headers_json(&req->head));
	if (fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
		err = -errno;
	json_object_put(o);
	return err;
}
