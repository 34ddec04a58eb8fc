// SPDX-License-Identifier: GPL-2.0-only
/*
 * The exporter's userspace parts without root: service identity from cgroup
 * paths (cgroupfs and systemd layouts, containerd, CRI-O, docker), workload
 * names from pod names, --service rules, cardinality caps, the profile split
 * by status, and the Prometheus / OpenMetrics writer's text.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "agentprof/request.h"
#include "cap.h"
#include "peers.h"
#include "pg.h"
#include "profile.h"
#include "prometheus.h"
#include "request.h"
#include "service.h"
#include "test.h"

static void test_cgroup_paths(void)
{
	struct service_id id;

	memset(&id, 0, sizeof(id));
	ASSERT_TRUE(
		service__parse_cgroup(
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
			"4e1a7c2b_9f3d_4c1e_8a2b_0123456789ab.slice/cri-containerd-"
			"0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0.scope",
			&id),
		"systemd driver, containerd: a pod");
	ASSERT_STREQ(id.pod_uid, "4e1a7c2b-9f3d-4c1e-8a2b-0123456789ab",
		     "pod UID, dashes restored");
	ASSERT_STREQ(id.container_id,
		     "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
		     "container ID from the scope");
	memset(&id, 0, sizeof(id));
	ASSERT_TRUE(service__parse_cgroup("/kubepods/besteffort/pod4e1a7c2b-9f3d-4c1e-8a2b-"
					  "0123456789ab/abcdef0123456789abcdef0123456789abcdef01"
					  "23456789abcdef0123456789",
					  &id),
		    "cgroupfs driver: a pod");
	ASSERT_STREQ(id.pod_uid, "4e1a7c2b-9f3d-4c1e-8a2b-0123456789ab", "cgroupfs pod UID");
	ASSERT_STREQ(id.container_id,
		     "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
		     "cgroupfs container ID");
	memset(&id, 0, sizeof(id));
	ASSERT_TRUE(service__parse_cgroup("/../../kubepods-pod4e1a7c2b_9f3d_4c1e_8a2b_0123456789ab"
					  ".slice/crio-0123456789abcdef0123.scope",
					  &id),
		    "seen from another cgroup namespace (relative), CRI-O");
	ASSERT_STREQ(id.container_id, "0123456789abcdef0123", "CRI-O container ID");
	memset(&id, 0, sizeof(id));
	ASSERT_FALSE(service__parse_cgroup("/system.slice/nginx.service", &id),
		     "a systemd unit is no pod");
	ASSERT_STREQ(id.name, "nginx.service", "the unit names the service");
	memset(&id, 0, sizeof(id));
	ASSERT_FALSE(service__parse_cgroup("/user.slice/user-0.slice/session-3.scope", &id),
		     "a login session");
	ASSERT_STREQ(id.name, "", "a session scope names nothing");
	memset(&id, 0, sizeof(id));
	ASSERT_FALSE(service__parse_cgroup("/system.slice/docker-0123456789abcdef0123.scope", &id),
		     "a bare docker container is no pod");
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f)
		fclose(f);
}

/* A fake kubelet log tree: names from the container ID, else from the pod UID. */
static void test_logs(void)
{
	char root[] = "/tmp/agentprof-logs-XXXXXX", path[512];
	struct service_id id;

	if (!mkdtemp(root)) {
		ASSERT_TRUE(false, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/containers", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/pods", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path),
		 "%s/containers/agent-7d9f8c6b5d-x2x4q_ai-agents_app-"
		 "0123456789abcdef0123.log",
		 root);
	touch(path);
	snprintf(path, sizeof(path),
		 "%s/pods/ai-agents_agent-7d9f8c6b5d-x2x4q_"
		 "4e1a7c2b-9f3d-4c1e-8a2b-0123456789ab",
		 root);
	mkdir(path, 0755);
	memset(&id, 0, sizeof(id));
	snprintf(id.container_id, sizeof(id.container_id), "0123456789abcdef0123");
	ASSERT_TRUE(service__from_logs(root, &id), "found by container ID");
	ASSERT_STREQ(id.pod, "agent-7d9f8c6b5d-x2x4q", "pod from /var/log/containers");
	ASSERT_STREQ(id.ns, "ai-agents", "namespace from /var/log/containers");
	ASSERT_STREQ(id.container, "app", "container from /var/log/containers");
	memset(&id, 0, sizeof(id));
	snprintf(id.container_id, sizeof(id.container_id), "ffffffffffffffffffff");
	snprintf(id.pod_uid, sizeof(id.pod_uid), "4e1a7c2b-9f3d-4c1e-8a2b-0123456789ab");
	ASSERT_TRUE(service__from_logs(root, &id), "found by pod UID");
	ASSERT_STREQ(id.pod, "agent-7d9f8c6b5d-x2x4q", "pod from /var/log/pods");
	ASSERT_STREQ(id.ns, "ai-agents", "namespace from /var/log/pods");
	memset(&id, 0, sizeof(id));
	snprintf(id.pod_uid, sizeof(id.pod_uid), "00000000-0000-0000-0000-000000000000");
	ASSERT_FALSE(service__from_logs(root, &id), "an unknown pod is not found");
	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	ASSERT_EQ(system(path), 0, "clean up");
}

static void test_workload(void)
{
	char out[128];

	service__workload("agent-7d9f8c6b5d-x2x4q", out, sizeof(out));
	ASSERT_STREQ(out, "agent", "Deployment pod");
	service__workload("ai-agent-orchestrator-5c7b9d8f4-abcde", out, sizeof(out));
	ASSERT_STREQ(out, "ai-agent-orchestrator", "Deployment pod, dashes in the name");
	service__workload("agentprof-x2x4q", out, sizeof(out));
	ASSERT_STREQ(out, "agentprof", "DaemonSet pod");
	service__workload("postgres-0", out, sizeof(out));
	ASSERT_STREQ(out, "postgres", "StatefulSet pod");
	service__workload("standalone", out, sizeof(out));
	ASSERT_STREQ(out, "standalone", "a bare pod keeps its name");
}

static void test_rules(void)
{
	struct service_rule r;
	char err[256];

	ASSERT_EQ(service__parse_rule("agent=comm:uvicorn", &r, err, sizeof(err)), 0, "comm:");
	ASSERT_TRUE(r.by == SERVICE_BY_COMM && !strcmp(r.match, "uvicorn") &&
			    !strcmp(r.name, "agent"),
		    "comm rule fields");
	ASSERT_EQ(service__parse_rule("agent=uvicorn", &r, err, sizeof(err)), 0, "bare comm");
	ASSERT_EQ(service__parse_rule("db=pid:42", &r, err, sizeof(err)), 0, "pid:");
	ASSERT_TRUE(r.by == SERVICE_BY_PID && r.pid == 42, "pid rule fields");
	ASSERT_EQ(service__parse_rule("x=cgroup:a.service", &r, err, sizeof(err)), 0, "cgroup:");
	ASSERT_EQ(service__parse_rule("=comm:a", &r, err, sizeof(err)), -EINVAL, "no name");
	ASSERT_EQ(service__parse_rule("x=pid:0", &r, err, sizeof(err)), -EINVAL, "pid 0");
	ASSERT_EQ(service__parse_rule("x", &r, err, sizeof(err)), -EINVAL, "no selector");
	ASSERT_TRUE(strstr(err, "NAME=SELECTOR") != NULL, "the error says the syntax");
}

static void test_cap(void)
{
	struct cap *c = cap__new("routes", 2);
	int i, refused = 0;

	ASSERT_TRUE(cap__admit(c, "svc", "/a"), "first name admitted");
	ASSERT_TRUE(cap__admit(c, "svc", "/b"), "second name admitted");
	ASSERT_TRUE(cap__admit(c, "svc", "/a"), "an admitted name stays admitted");
	for (i = 0; i < 1000; i++) {
		char name[32];

		snprintf(name, sizeof(name), "/r%d", i);
		refused += !cap__admit(c, "svc", name);
	}
	ASSERT_EQ(refused, 1000, "past the cap every new name is refused");
	ASSERT_EQ(cap__overflow(c), 1000, "and counted");
	ASSERT_TRUE(cap__admit(c, "other", "/a"), "caps are per scope");
	ASSERT_EQ(cap__count(c, "svc"), 2, "two names in svc");
	cap__remove(c, "svc", "/a");
	ASSERT_TRUE(cap__admit(c, "svc", "/new"), "a removed name frees its room");
	cap__forget_scope(c, "svc");
	ASSERT_EQ(cap__count(c, "svc"), 0, "a forgotten scope is empty");
	ASSERT_TRUE(cap__admit(c, "svc", "/x"), "and admits again");
	cap__free(c);
}

static void add(struct profile *p, const char *service, const char *route, int status,
		uint64_t dur_ns, uint64_t cpu_ns)
{
	struct ap_request_event ev;
	struct request req;

	memset(&ev, 0, sizeof(ev));
	memcpy(ev.comm, "srv", 4);
	ev.cpu_ns = cpu_ns;
	ev.offcpu_ns = 7000;
	ev.offcpu_pg_ns = 2000;
	ev.offcpu_lock_ns = 1000;
	memset(&req, 0, sizeof(req));
	req.ev = &ev;
	snprintf(req.head.method, sizeof(req.head.method), "GET");
	snprintf(req.route, sizeof(req.route), "%s", route);
	req.status = status;
	req.duration_ns = dur_ns;
	req.service = service;
	profile__add(p, &req);
}

static char *render(struct prom_input *in, bool om)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	prometheus__write(f, in, om);
	fclose(f);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	for (; (hay = strstr(hay, needle)); hay++)
		n++;
	return n;
}

static void test_writer(void)
{
	static const double dur[] = { 0.005, 0.1, 1, 30 };
	static const double cpu[] = { 0.0005, 0.005 };
	struct profile *p = profile__new();
	struct peers *peers = peers__new();
	struct pg *pg = pg__new(false);
	struct prom_count lost[] = { { .label = "ringbuf_full", .value = 3 } };
	struct prom_input in = { .profile = p,
				 .peers = peers,
				 .pg = pg,
				 .duration_buckets = dur,
				 .nduration = 4,
				 .cpu_buckets = cpu,
				 .ncpu = 2,
				 .lost = lost,
				 .nlost = 1,
				 .version = "0.1.0",
				 .kernel = "6.1",
				 .mode = "tp_btf" };
	char *text, *om;

	profile__set_by_status(p, true);
	add(p, "svc", "/a/:id", 200, 3000000, 400000);	    /* 3 ms, 0.4 ms CPU */
	add(p, "svc", "/a/:id", 200, 50000000, 4000000);    /* 50 ms, 4 ms CPU */
	add(p, "svc", "/a/:id", 500, 45000000000ULL, 1000); /* 45 s: past every bound */
	add(p, "say \"hi\"\\", "/b", 200, 1000, 1000);
	ASSERT_EQ(profile__ngroups(p), 3, "groups split by status");
	text = render(&in, false);
	ASSERT_TRUE(strstr(text, "http_server_request_duration_seconds_bucket{service_name=\"svc\","
				 "http_route=\"/a/:id\",http_request_method=\"GET\","
				 "http_response_status_code=\"200\",le=\"0.005\"} 1\n") != NULL,
		    "bucket le=0.005 holds the 3 ms request");
	ASSERT_TRUE(strstr(text, "http_response_status_code=\"200\",le=\"0.1\"} 2\n") != NULL,
		    "bucket le=0.1 is cumulative");
	ASSERT_TRUE(strstr(text, "http_response_status_code=\"500\",le=\"30\"} 0\n") != NULL,
		    "45 s is past le=30");
	ASSERT_TRUE(strstr(text, "http_response_status_code=\"500\",le=\"+Inf\"} 1\n") != NULL,
		    "+Inf counts it");
	ASSERT_TRUE(strstr(text, "http_server_request_duration_seconds_sum{service_name=\"svc\","
				 "http_route=\"/a/:id\",http_request_method=\"GET\","
				 "http_response_status_code=\"200\"} 0.053000000\n") != NULL,
		    "_sum exact, in seconds");
	ASSERT_TRUE(strstr(text, "agentprof_request_cpu_seconds_bucket{service_name=\"svc\","
				 "http_route=\"/a/:id\",http_request_method=\"GET\","
				 "http_response_status_code=\"200\",le=\"0.0005\"} 1\n") != NULL,
		    "CPU bucket of a fraction of a millisecond");
	ASSERT_TRUE(strstr(text, "service_name=\"say \\\"hi\\\"\\\\\"") != NULL,
		    "label values escaped");
	ASSERT_TRUE(strstr(text, "reason=\"other\"} 0.000004000\n") != NULL,
		    "off-CPU other = total - upstream - pg - lock - disk");
	ASSERT_TRUE(strstr(text, "reason=\"lock\"} 0.000001000\n") != NULL, "off-CPU lock");
	ASSERT_EQ(count(text, "# TYPE http_server_request_duration_seconds histogram\n"), 1,
		  "one TYPE line per family");
	ASSERT_EQ(count(text, "# TYPE agentprof_request_runq_seconds_total counter\n"), 1,
		  "text 0.0.4: counter family named with _total");
	ASSERT_TRUE(strstr(text, "agentprof_events_lost_total{reason=\"ringbuf_full\"} 3\n") !=
			    NULL,
		    "events lost by reason");
	ASSERT_TRUE(strstr(text, "agentprof_build_info{version=\"0.1.0\",kernel=\"6.1\","
				 "mode=\"tp_btf\"} 1\n") != NULL,
		    "build info");
	ASSERT_EQ(count(text, "# EOF"), 0, "no # EOF in text 0.0.4");
	om = render(&in, true);
	ASSERT_EQ(count(om, "# TYPE agentprof_request_runq_seconds counter\n"), 1,
		  "OpenMetrics: counter family without _total");
	ASSERT_TRUE(strlen(om) > 6 && !strcmp(om + strlen(om) - 6, "# EOF\n"),
		    "OpenMetrics ends with # EOF");
	free(text);
	free(om);
	{
		char path[] = "/tmp/agentprof-profile-XXXXXX", err[256];
		struct profile *back;
		int fd = mkstemp(path);
		size_t n, i, with_500 = 0;
		const struct profile_group **v;

		close(fd);
		ASSERT_EQ(profile__write_json(p, path, NULL), 0, "profile split by status written");
		back = profile__load(path, err, sizeof(err));
		ASSERT_TRUE(back != NULL, "and read back: %.100s", back ? "ok" : err);
		if (back) {
			v = profile__sorted(back, &n);
			for (i = 0; i < n; i++)
				with_500 += v[i]->status == 500;
			ASSERT_EQ(n, 3, "read back: the groups stay split by status");
			ASSERT_EQ(with_500, 1, "read back: the 500 group keeps its status");
			profile__free(back);
		}
		unlink(path);
	}
	ASSERT_EQ(profile__remove_service(p, "svc"), 2, "a service's groups removed");
	ASSERT_EQ(profile__ngroups(p), 1, "the other service's stay");
	profile__free(p);
	peers__free(peers);
	pg__free(pg);
}

static void test_buckets(void)
{
	double v[8];

	ASSERT_EQ(prometheus__parse_buckets("0.005,0.01,30", v, 8), 3, "three bounds");
	ASSERT_NEAR(v[2], 30.0, 1e-12, "third bound");
	ASSERT_EQ(prometheus__parse_buckets("0.01,0.005", v, 8), -EINVAL, "descending refused");
	ASSERT_EQ(prometheus__parse_buckets("0,1", v, 8), -EINVAL, "zero refused");
	ASSERT_EQ(prometheus__parse_buckets("1,x", v, 8), -EINVAL, "garbage refused");
	ASSERT_EQ(prometheus__parse_buckets("1,2,3", v, 2), -EINVAL, "too many refused");
	ASSERT_EQ(prometheus__parse_buckets("", v, 8), -EINVAL, "none refused");
}

TEST_MAIN(test_cgroup_paths, test_logs, test_workload, test_rules, test_cap, test_writer,
	  test_buckets)
