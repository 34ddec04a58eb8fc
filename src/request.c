// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <json-c/json.h>
#include <string.h>

#include "agentprof/request.h"
#include "peers.h"
#include "pg.h"
#include "request.h"
#include "route.h"

int request__unpack(struct ap_request_event *ev, const void *data, size_t size)
{
	size_t room = sizeof(*ev) - AP_REQ_WIRE_OFF, at;
	uint32_t n;

	if (size < AP_REQ_EVENT_SIZE(0, 0))
		return -EINVAL;
	memset(ev, 0, AP_REQ_WIRE_OFF);
	memcpy((char *)ev + AP_REQ_WIRE_OFF, data, size < room ? size : room);
	if (ev->head_len > size - AP_REQ_EVENT_SIZE(0, 0))
		ev->head_len = size - AP_REQ_EVENT_SIZE(0, 0);
	if (ev->head_len > AP_HEAD_MAX)
		ev->head_len = AP_HEAD_MAX;
	/* The peers a record carries, as many as it has room for. */
	at = AP_REQ_PEERS_AT(ev->head_len);
	n = ev->npeers < AP_MAX_PEERS ? ev->npeers : AP_MAX_PEERS;
	if (at > size)
		n = 0;
	else if (n > (size - at) / sizeof(struct ap_peer))
		n = (size - at) / sizeof(struct ap_peer);
	memcpy(ev->peers, (const char *)data + at, n * sizeof(struct ap_peer));
	ev->npeers = n;
	return 0;
}

int request__decode(struct request *req, const struct ap_request_event *ev,
		    const struct request_decode_opts *opts)
{
	size_t head_len = ev->head_len < AP_HEAD_MAX ? ev->head_len : AP_HEAD_MAX;
	size_t resp_len = ev->resp_len < AP_RESP_MAX ? ev->resp_len : AP_RESP_MAX;
	uint64_t end;
	uint32_t i;
	int err;

	memset(req, 0, sizeof(*req));
	req->ev = ev;
	err = http_request_head__parse(ev->head, head_len, opts->class_header, &req->head);
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
	req->start_real_ns = ev->start_ns + opts->mono_to_real_ns;
	/* A kernel value, but never trusted to fit: saturate rather than overflow. */
	if (__builtin_mul_overflow(ev->rss_delta_pages, (int64_t)opts->page_size,
				   &req->rss_delta_bytes))
		req->rss_delta_bytes = ev->rss_delta_pages < 0 ? INT64_MIN : INT64_MAX;
	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++)
		if (ev->peers[i].kind != AP_PEER_PG)
			req->upstream_wait_ns += ev->peers[i].wait_ns;
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

static struct json_object *upstream_json(const struct request *req)
{
	const struct ap_request_event *ev = req->ev;
	struct json_object *arr = json_object_new_array(), *o;
	const struct ap_peer *p;
	char name[PEER_NAME_MAX];
	uint32_t i;

	for (i = 0; i < ev->npeers && i < AP_MAX_PEERS; i++) {
		p = &ev->peers[i];
		peers__name(req->peers, p->family, p->addr, p->port, name, sizeof(name));
		o = json_object_new_object();
		add_str(o, "peer", name);
		add_str(o, "kind", peers__kind_name(p->kind));
		add_u64(o, "calls", p->calls);
		add_u64(o, "connect_ns", p->connect_ns);
		add_u64(o, "connects", p->connects);
		add_u64(o, "wait_ns", p->wait_ns);
		add_u64(o, "ttfb_ns", p->ttfb_ns);
		add_u64(o, "tx_bytes", p->tx_bytes);
		add_u64(o, "rx_bytes", p->rx_bytes);
		add_u64(o, "retransmits", p->retransmits);
		json_object_array_add(arr, o);
	}
	return arr;
}

static struct json_object *pg_json(const struct request *req)
{
	const struct ap_request_event *ev = req->ev;
	struct json_object *o = json_object_new_object(), *qs = json_object_new_array(), *q;
	const struct pg_query *pq;
	size_t i;

	add_u64(o, "round_trips", ev->pg_round_trips);
	add_u64(o, "time_ns", ev->pg_time_ns);
	if (req->pg_hold_known)
		add_u64(o, "hold_ns", req->pg_hold_ns);
	else
		json_object_object_add(o, "hold_ns", NULL);
	if (ev->flags & AP_REQ_PG_UNCOUNTED) {
		/* Some round trip's messages were not walked: the sums would be partial. */
		json_object_object_add(o, "errors", NULL);
		json_object_object_add(o, "rows", NULL);
	} else {
		add_u64(o, "errors", ev->pg_errors);
		add_u64(o, "rows", ev->pg_rows);
	}
	json_object_object_add(o, "tls", json_object_new_boolean(ev->flags & AP_REQ_PG_TLS));
	for (i = 0; i < req->npg_queries; i++) {
		pq = &req->pg_queries[i];
		q = json_object_new_object();
		add_str(q, "fingerprint", pq->fingerprint);
		add_u64(q, "duration_ns", pq->duration_ns);
		if (pq->uncounted) {
			json_object_object_add(q, "rows", NULL);
			json_object_object_add(q, "error", NULL);
		} else {
			add_u64(q, "rows", pq->rows);
			json_object_object_add(q, "error", json_object_new_boolean(pq->error));
		}
		if (pq->text)
			add_str(q, "text", pq->text);
		json_object_array_add(qs, q);
	}
	json_object_object_add(o, "queries", qs);
	return o;
}

static struct json_object *offcpu_json(const struct ap_request_event *ev)
{
	struct json_object *o = json_object_new_object();
	uint64_t known = ev->offcpu_upstream_ns + ev->offcpu_pg_ns + ev->offcpu_disk_ns +
			 ev->offcpu_lock_ns;

	add_u64(o, "upstream_ns", ev->offcpu_upstream_ns);
	add_u64(o, "pg_ns", ev->offcpu_pg_ns);
	add_u64(o, "disk_ns", ev->offcpu_disk_ns);
	add_u64(o, "lock_ns", ev->offcpu_lock_ns);
	add_u64(o, "other_ns", ev->offcpu_ns > known ? ev->offcpu_ns - known : 0);
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

struct json_object *request__json(const struct request *req)
{
	const struct ap_request_event *ev = req->ev;
	struct json_object *o = json_object_new_object();
	char comm[AP_COMM_LEN + 1];

	if (!o)
		return NULL;
	memcpy(comm, ev->comm, AP_COMM_LEN);
	comm[AP_COMM_LEN] = '\0';
	add_u64(o, "id", AP_REQ_SEQ(ev->id));
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
	json_object_object_add(o, "offcpu", offcpu_json(ev));
	add_u64(o, "minor_faults", ev->minor_faults);
	add_u64(o, "major_faults", ev->major_faults);
	json_object_object_add(o, "rss_delta_bytes", json_object_new_int64(req->rss_delta_bytes));
	if (!req->no_mapped)
		add_u64(o, "mapped_bytes", ev->mapped_bytes);
	json_object_object_add(o, "upstream", upstream_json(req));
	json_object_object_add(o, "pg", pg_json(req));
	json_object_object_add(o, "incomplete", json_object_new_boolean(req->incomplete));
	add_str(o, "end", end_reason(ev->flags));
	json_object_object_add(o, "headers", headers_json(&req->head));
	return o;
}
