// SPDX-License-Identifier: GPL-2.0-only
/*
 * Request records unpacked and decoded, the per-request JSON line, and the profile: grouping,
 * percentiles, the table, and the saved JSON read back unchanged.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentprof/request.h"
#include "profile.h"
#include "request.h"
#include "test.h"

static void make_event(struct ap_request_event *ev, const char *head, const char *resp,
		       uint64_t cpu_ns, uint64_t dur_ns)
{
	memset(ev, 0, sizeof(*ev));
	ev->id = 7;
	ev->pid = 100;
	ev->tid = 101;
	memcpy(ev->comm, "uvicorn", 8);
	ev->start_ns = 1000000;
	ev->first_tx_ns = ev->start_ns + dur_ns / 2;
	ev->last_tx_ns = ev->start_ns + dur_ns;
	ev->end_ns = ev->last_tx_ns + 5;
	ev->cpu_ns = cpu_ns;
	ev->head_len = strlen(head);
	memcpy(ev->head, head, ev->head_len);
	ev->resp_len = strlen(resp);
	memcpy(ev->resp, resp, ev->resp_len);
	ev->rx_bytes = ev->head_len;
	ev->tx_bytes = 200;
}

static const char HEAD[] = "POST /agent/conversation/8812/end?x=1 HTTP/1.1\r\nHost: a\r\n"
			   "X-Request-Id: r-1\r\nX-Request-Class: complex\r\n"
			   "traceparent: 00-abc-def-01\r\n\r\n";

static void test_decode(void)
{
	struct ap_request_event ev;
	struct request req;

	make_event(&ev, HEAD, "HTTP/1.1 404 Not Found\r\n", 3000, 10000);
	ASSERT_EQ(request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 5, 4096}), REQUEST_OK, "decode ok");
	ASSERT_STREQ(req.route, "/agent/conversation/:id/end", "route templated");
	ASSERT_STREQ(req.head.method, "POST", "method");
	ASSERT_EQ(req.status, 404, "status from the first write");
	ASSERT_EQ(req.duration_ns, 10000, "duration: head read to last write");
	ASSERT_EQ(req.ttfb_ns, 5000, "ttfb: head read to first write");
	ASSERT_EQ(req.start_real_ns, 1000005, "start converted to the real clock");
	ASSERT_FALSE(req.incomplete, "complete");

	make_event(&ev, "GET /x\r\n\r\n", "", 0, 0);
	ASSERT_EQ(request__decode(&req, &ev, &(struct request_decode_opts){NULL, 0, 4096}), REQUEST_MALFORMED, "no version: malformed");
	make_event(&ev, "\x16\x03\x01\x02\x00", "", 0, 0);
	ASSERT_EQ(request__decode(&req, &ev, &(struct request_decode_opts){NULL, 0, 4096}), REQUEST_MALFORMED, "TLS: malformed");
	make_event(&ev, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "", 0, 0);
	ASSERT_EQ(request__decode(&req, &ev, &(struct request_decode_opts){NULL, 0, 4096}), REQUEST_OVERSIZED,
		  "request line cut by the capture: oversized");

	make_event(&ev, "GET /a HTTP/1.1\r\n\r\n", "", 0, 0);
	ev.first_tx_ns = ev.last_tx_ns = 0;
	ev.end_ns = ev.start_ns + 777;
	ev.flags = AP_REQ_INCOMPLETE | AP_REQ_TASK_EXITED;
	ASSERT_EQ(request__decode(&req, &ev, &(struct request_decode_opts){NULL, 0, 4096}), REQUEST_OK, "incomplete decodes");
	ASSERT_TRUE(req.incomplete, "incomplete flagged");
	ASSERT_EQ(req.duration_ns, 777, "incomplete: duration up to the close-off");
	ASSERT_EQ(req.status, 0, "no response: status 0");
}

/* A record as request_finish() sends it (bpf/attribution.bpf.h, record_pack()). */
static size_t pack(const struct ap_request_event *ev, char *out)
{
	size_t at = AP_REQ_PEERS_AT(ev->head_len);

	memset(out, 0xee, sizeof(*ev));
	memcpy(out, &ev->type, at);
	memcpy(out + at, ev->peers, ev->npeers * sizeof(struct ap_peer));
	return AP_REQ_EVENT_SIZE(ev->head_len, ev->npeers);
}

static void test_unpack(void)
{
	struct ap_request_event ev, got;
	char wire[sizeof(ev)];
	size_t size;
	int i;

	make_event(&ev, HEAD, "HTTP/1.1 200 OK\r\n", 3000, 10000);
	size = pack(&ev, wire);
	/* 264 bytes of fields, the 134-byte head rounded up to 8; no room for peers. */
	ASSERT_EQ(size, 264 + 136, "no peers: the record stops after the head");
	ASSERT_EQ(request__unpack(&got, wire, size), 0, "no peers: unpacks");
	ASSERT_EQ(got.npeers, 0, "no peers: none");
	ASSERT_EQ(got.head_len, ev.head_len, "head_len");
	ASSERT_TRUE(!memcmp(got.head, ev.head, ev.head_len), "head bytes");
	ASSERT_EQ(got.cpu_ns, 3000, "fields before the head");

	/* Two peers after an odd-length head, then the longest record. */
	ev.npeers = 2;
	for (i = 0; i < AP_MAX_PEERS; i++) {
		ev.peers[i].port = 5432 + i;
		ev.peers[i].wait_ns = 1000 * (i + 1);
		ev.peers[i].rx_bytes = 7 + i;
	}
	size = pack(&ev, wire);
	ASSERT_EQ(request__unpack(&got, wire, size), 0, "two peers: unpacks");
	ASSERT_EQ(got.npeers, 2, "two peers: both");
	ASSERT_TRUE(!memcmp(got.peers, ev.peers, 2 * sizeof(struct ap_peer)), "two peers: intact");
	ASSERT_EQ(got.peers[1].wait_ns, 2000, "second peer's wait");

	ev.npeers = AP_MAX_PEERS;
	ev.head_len = AP_HEAD_MAX;
	memset(ev.head, 'h', AP_HEAD_MAX);
	size = pack(&ev, wire);
	ASSERT_EQ(size, sizeof(ev) - AP_REQ_WIRE_OFF, "full head and every peer: the largest record");
	ASSERT_EQ(request__unpack(&got, wire, size), 0, "largest: unpacks");
	ASSERT_TRUE(got.npeers == AP_MAX_PEERS && got.peers[5].port == 5437 &&
			    got.head_len == AP_HEAD_MAX && got.head[AP_HEAD_MAX - 1] == 'h',
		    "largest: head and peers intact");

	/* A record cut short keeps the peers it holds whole. */
	ASSERT_EQ(request__unpack(&got, wire, size - 1), 0, "cut short: unpacks");
	ASSERT_EQ(got.npeers, AP_MAX_PEERS - 1, "cut short: the last peer is dropped");
	ASSERT_EQ(request__unpack(&got, wire, AP_REQ_EVENT_SIZE(0, 0) - 1), -EINVAL,
		  "shorter than any record: -EINVAL");
}

/* The line as written: serialized, then parsed back. */
static struct json_object *json_line(const struct request *req)
{
	struct json_object *o = request__json(req), *back;

	if (!o)
		return NULL;
	back = json_tokener_parse(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return back;
}

static const char *str_field(struct json_object *o, const char *path1, const char *path2)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, path1, &v))
		return "(missing)";
	if (path2 && !json_object_object_get_ex(v, path2, &v))
		return "(missing)";
	return json_object_get_string(v);
}

static void test_json_line(void)
{
	static const char *const fields[] = {
		"id",	   "pid",      "tid",	   "comm",	  "cgroup_id", "method",  "path",
		"route",   "status",   "start_ns", "duration_ns", "ttfb_ns",   "cpu_ns",  "runq_ns",
		"offcpu_ns", "rx_bytes", "tx_bytes", "headers",	  "incomplete",
	};
	struct ap_request_event ev;
	struct json_object *o, *v;
	struct request req;
	size_t i;

	make_event(&ev, HEAD, "HTTP/1.1 200 OK\r\n", 3000, 10000);
	request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
	o = json_line(&req);
	ASSERT_TRUE(o != NULL, "the line is valid JSON");
	if (!o)
		return;
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		ASSERT_TRUE(json_object_object_get_ex(o, fields[i], &v), "field %s", fields[i]);
	ASSERT_STREQ(str_field(o, "route", NULL), "/agent/conversation/:id/end", "route");
	ASSERT_STREQ(str_field(o, "path", NULL), "/agent/conversation/8812/end?x=1", "path");
	ASSERT_STREQ(str_field(o, "comm", NULL), "uvicorn", "comm");
	ASSERT_STREQ(str_field(o, "headers", "x-request-id"), "r-1", "x-request-id");
	ASSERT_STREQ(str_field(o, "headers", "x-request-class"), "complex", "x-request-class");
	ASSERT_STREQ(str_field(o, "headers", "traceparent"), "00-abc-def-01", "traceparent");
	ASSERT_STREQ(str_field(o, "cpu_ns", NULL), "3000", "cpu_ns");
	json_object_put(o);

	/* Headers absent from the request are absent from the line. */
	make_event(&ev, "GET /a HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK\r\n", 1, 1);
	request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
	o = json_line(&req);
	ASSERT_TRUE(o && json_object_object_get_ex(o, "headers", &v) &&
			    json_object_object_length(v) == 0,
		    "no headers: empty object");
	json_object_put(o);
}

static void test_profile_roundtrip(void)
{
	char path[] = "/tmp/agentprof-test-profile-XXXXXX", err[256] = "";
	struct profile *p = profile__new(), *q;
	const struct profile_group **v, **w;
	struct ap_request_event ev;
	struct request req;
	size_t n, m, i;
	int fd, k;

	for (k = 1; k <= 100; k++) {
		make_event(&ev, HEAD, "HTTP/1.1 200 OK\r\n", k * 1000000ULL, k * 2000000ULL);
		/* Every request waits on PostgreSQL, every other one on an upstream too. */
		ev.npeers = 1 + k % 2;
		ev.peers[0] = (struct ap_peer){.family = 2, .kind = AP_PEER_PG, .port = 5432,
					       .calls = 3, .addr = {127, 0, 0, 1}, .wait_ns = 1000};
		ev.peers[1] = (struct ap_peer){.family = 2, .kind = AP_PEER_UPSTREAM, .port = 443,
					       .calls = 1, .addr = {10, 0, 0, 7}, .wait_ns = 5000};
		ev.offcpu_lock_ns = k;
		request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
		profile__add(p, &req);
	}
	make_event(&ev, "GET /healthz HTTP/1.1\r\n\r\n", "HTTP/1.1 503 x\r\n", 10, 20);
	request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
	profile__add(p, &req);
	v = profile__sorted(p, &n);
	ASSERT_EQ(n, 2, "two groups");
	ASSERT_STREQ(v[0]->route, "/agent/conversation/:id/end", "busiest group first");
	ASSERT_EQ(v[0]->requests, 100, "requests counted");
	ASSERT_EQ(v[1]->status_5xx, 1, "5xx counted");
	/* CPU p50 of 1..100 ms is 50 ms, within the histogram's 1/32. */
	ASSERT_NEAR((double)hist__quantile(&v[0]->h[PM_CPU], 0.5), 50e6, 50e6 / 32, "cpu p50");
	ASSERT_EQ(hist__quantile(&v[0]->h[PM_CPU], 1.0), 100000000, "cpu max exact");
	ASSERT_EQ(v[0]->h[PM_OFFCPU_LOCK].sum, 5050, "lock time per group");
	ASSERT_EQ(v[0]->npeers, 2, "two peers in the group");
	ASSERT_STREQ(v[0]->peers[0].name, "127.0.0.1:5432", "peer named ip:port");
	ASSERT_EQ(v[0]->peers[0].calls, 300, "peer calls summed");
	ASSERT_EQ(v[0]->peers[1].requests, 50, "peer requests counted");
	ASSERT_EQ(v[0]->peers[1].wait_ns, 250000, "peer wait summed");

	fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0, "temp file");
	close(fd);
	profile__run(p)->malformed_heads = 3;
	ASSERT_EQ(profile__write_json(p, path, NULL), 0, "profile saved");
	q = profile__load(path, err, sizeof(err));
	ASSERT_TRUE(q != NULL, "profile read back (%s)", err);
	if (q) {
		w = profile__sorted(q, &m);
		ASSERT_EQ(m, n, "same groups");
		for (i = 0; i < n && i < m; i++) {
			ASSERT_STREQ(w[i]->route, v[i]->route, "group %zu route", i);
			ASSERT_EQ(w[i]->requests, v[i]->requests, "group %zu requests", i);
			ASSERT_EQ(memcmp(&w[i]->h, &v[i]->h, sizeof(v[i]->h)), 0,
				  "group %zu histograms identical", i);
			ASSERT_EQ(w[i]->npeers, v[i]->npeers, "group %zu peers", i);
			ASSERT_EQ(memcmp(w[i]->peers, v[i]->peers, sizeof(v[i]->peers)), 0,
				  "group %zu peers identical", i);
		}
		ASSERT_EQ(profile__run(q)->malformed_heads, 3, "run counters kept");
		profile__free(q);
	}
	unlink(path);

	q = profile__load("/nonexistent/profile.json", err, sizeof(err));
	ASSERT_TRUE(q == NULL && strstr(err, "cannot read"), "missing file: clear error");
	profile__free(p);
}

/* record --sample N: each traced request stands for N, in counts and histograms alike. */
static void test_sampled_weights(void)
{
	struct profile *p = profile__new(), *q;
	const struct profile_group **v;
	char path[] = "/tmp/agentprof-sampled-XXXXXX", err[128];
	struct ap_request_event ev;
	struct request req;
	size_t n;
	int fd, k;

	profile__run(p)->sample_every = 4;
	profile__run(p)->unsampled = 27;
	for (k = 1; k <= 10; k++) {
		make_event(&ev, HEAD, k == 10 ? "HTTP/1.1 500 x\r\n" : "HTTP/1.1 200 OK\r\n",
			   k * 1000000ULL, k * 2000000ULL);
		request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
		profile__add(p, &req);
	}
	v = profile__sorted(p, &n);
	ASSERT_EQ(n, 1, "one group");
	ASSERT_EQ(v[0]->requests, 40, "ten traced requests count as forty");
	ASSERT_EQ(v[0]->status_5xx, 4, "and one 5xx as four");
	ASSERT_EQ(v[0]->h[PM_CPU].count, 40, "histogram counts weighted");
	ASSERT_EQ(v[0]->h[PM_CPU].sum, 4 * 55000000ULL, "histogram sums weighted");
	/* The quantiles are those of the traced requests: p50 of 1..10 ms is 5 ms. */
	ASSERT_NEAR((double)hist__quantile(&v[0]->h[PM_CPU], 0.5), 5e6, 5e6 / 32, "cpu p50");

	fd = mkstemp(path);
	ASSERT_TRUE(fd >= 0, "temp file");
	close(fd);
	ASSERT_EQ(profile__write_json(p, path, NULL), 0, "profile saved");
	q = profile__load(path, err, sizeof(err));
	ASSERT_TRUE(q != NULL, "profile read back (%s)", err);
	if (q) {
		ASSERT_EQ(profile__run(q)->sample_every, 4, "sample_every kept");
		ASSERT_EQ(profile__run(q)->unsampled, 27, "unsampled kept");
		profile__free(q);
	}
	unlink(path);
	profile__free(p);
}

static void test_group_cap(void)
{
	struct profile *p = profile__new();
	struct ap_request_event ev;
	struct request req;
	char head[128];
	int k;

	for (k = 0; k < PROFILE_MAX_GROUPS + 50; k++) {
		snprintf(head, sizeof(head), "GET /static/page%c%c%c HTTP/1.1\r\n\r\n",
			 'a' + k % 26, 'a' + k / 26 % 26, 'a' + k / 676 % 26);
		make_event(&ev, head, "HTTP/1.1 200 OK\r\n", 1, 1);
		request__decode(&req, &ev, &(struct request_decode_opts){NULL, 0, 4096});
		profile__add(p, &req);
	}
	ASSERT_EQ(profile__ngroups(p), PROFILE_MAX_GROUPS + 1,
		  "groups capped, the rest in one (other) group");
	profile__free(p);
}

/* A class longer than a group keeps (100 bytes): its requests still share one group. */
static void test_long_class(void)
{
	static const char head[] = "GET /a HTTP/1.1\r\nX-Request-Class: "
				   "cccccccccccccccccccccccccccccccccccccccccccccccccc"
				   "cccccccccccccccccccccccccccccccccccccccccccccccccc\r\n\r\n";
	struct profile *p = profile__new();
	struct ap_request_event ev;
	struct request req;
	int k;

	for (k = 0; k < 3; k++) {
		make_event(&ev, head, "HTTP/1.1 200 OK\r\n", 1000, 2000);
		request__decode(&req, &ev, &(struct request_decode_opts){"X-Request-Class", 0, 4096});
		profile__add(p, &req);
	}
	ASSERT_EQ(profile__ngroups(p), 1, "three requests of a 100-byte class: one group");
	profile__free(p);
}

TEST_MAIN(test_decode, test_unpack, test_json_line, test_profile_roundtrip, test_sampled_weights,
	  test_group_cap, test_long_class)
