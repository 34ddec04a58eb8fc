/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Service identity of a traced process, without calling any API server:
 * on Kubernetes the pod UID and container ID from its cgroup path, the
 * namespace, pod and container names from the kubelet's log directories
 * (/var/log/pods/<namespace>_<pod>_<uid>, /var/log/containers/
 * <pod>_<namespace>_<container>-<id>.log); outside Kubernetes the systemd
 * unit of its cgroup; else its command name. --service NAME=SELECTOR
 * overrides all of these.
 */
#ifndef AGENTPROF_SERVICE_H
#define AGENTPROF_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define SERVICE_KEY_MAX 64 /* the profile's service field (PROFILE_NAME_MAX) */
#define SERVICE_LABEL_MAX 128

struct service_id {
	char key[SERVICE_KEY_MAX];	   /* unique per service instance: the profile's service */
	char name[SERVICE_LABEL_MAX];	   /* service_name */
	char ns[SERVICE_LABEL_MAX];	   /* k8s_namespace_name, "" off Kubernetes */
	char pod[SERVICE_LABEL_MAX];	   /* k8s_pod_name */
	char container[SERVICE_LABEL_MAX]; /* k8s_container_name */
	char pod_uid[40];
	char container_id[72];
};

/* --service NAME=SELECTOR: SELECTOR is pid:N, comm:NAME, cgroup:SUBSTRING, or a bare comm. */
struct service_rule {
	char name[SERVICE_LABEL_MAX];
	enum { SERVICE_BY_COMM, SERVICE_BY_PID, SERVICE_BY_CGROUP } by;
	char match[256];
	pid_t pid;
};

/* Parses NAME=SELECTOR; 0 or -EINVAL with err set. */
int service__parse_rule(const char *spec, struct service_rule *r, char *err, size_t errsz);

/*
 * The pod UID and container ID in a cgroup path (cgroupfs or systemd
 * layout; containerd, CRI-O, docker), the systemd unit otherwise. Returns
 * true when the path is a pod's.
 */
bool service__parse_cgroup(const char *path, struct service_id *out);

/*
 * Namespace, pod and container names of id's container ID (or, failing
 * that, of its pod UID) from the kubelet's log directories under root;
 * false when neither is found.
 */
bool service__from_logs(const char *root, struct service_id *id);

/*
 * The workload a pod belongs to, from the pod name alone: a Deployment's
 * pod "agent-7d9f8c6b5d-x2x4q" -> "agent", a DaemonSet's or Job's
 * "agent-x2x4q" -> "agent", a StatefulSet's "db-0" -> "db".
 */
void service__workload(const char *pod, char *out, size_t sz);

/*
 * Identifies pid. logs_root is where the kubelet's pods/ and containers/
 * directories are (/var/log). 0, or -errno when the process is gone.
 */
int service__identify(pid_t pid, const struct service_rule *rules, int nrules,
		      const char *logs_root, struct service_id *out);

#endif /* AGENTPROF_SERVICE_H */
