// SPDX-License-Identifier: GPL-2.0-only
/* Service identity of a process (service.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service.h"

int service__parse_rule(const char *spec, struct service_rule *r, char *err, size_t errsz)
{
	const char *eq = strchr(spec, '='), *sel;
	char *end;
	long pid;

	memset(r, 0, sizeof(*r));
	if (!eq || eq == spec || !eq[1] || (size_t)(eq - spec) >= sizeof(r->name)) {
		snprintf(err, errsz,
			 "invalid --service '%s': expected NAME=SELECTOR, e.g. "
			 "agent=comm:uvicorn, agent=pid:1234 or agent=cgroup:agent.service",
			 spec);
		return -EINVAL;
	}
	snprintf(r->name, sizeof(r->name), "%.*s", (int)(eq - spec), spec);
	sel = eq + 1;
	if (!strncmp(sel, "pid:", 4)) {
		errno = 0;
		pid = strtol(sel + 4, &end, 10);
		if (errno || *end || pid <= 0 || end == sel + 4) {
			snprintf(err, errsz,
				 "invalid --service '%s': pid:N needs a positive number", spec);
			return -EINVAL;
		}
		r->by = SERVICE_BY_PID;
		r->pid = pid;
	} else if (!strncmp(sel, "cgroup:", 7)) {
		r->by = SERVICE_BY_CGROUP;
		snprintf(r->match, sizeof(r->match), "%s", sel + 7);
	} else {
		r->by = SERVICE_BY_COMM;
		snprintf(r->match, sizeof(r->match), "%s",
			 strncmp(sel, "comm:", 5) ? sel : sel + 5);
	}
	if (r->by != SERVICE_BY_PID && !r->match[0]) {
		snprintf(err, errsz, "invalid --service '%s': empty selector", spec);
		return -EINVAL;
	}
	return 0;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && !memcmp(s + len - n, suffix, n);
}

static bool all_hex(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return len > 0;
}

/* "kubepods-burstable-pod1234_5678.slice" or "pod1234-5678": the pod UID. */
static bool component_pod_uid(const char *c, size_t len, char *uid, size_t sz)
{
	const char *p = NULL;
	size_t i, n;

	if (len > 3 && !memcmp(c, "pod", 3))
		p = c + 3;
	for (i = 0; i + 4 <= len && !p; i++)
		if (!memcmp(c + i, "-pod", 4))
			p = c + i + 4;
	if (!p)
		return false;
	n = len - (p - c);
	if (ends_with(c, len, ".slice"))
		n -= 6;
	if (n < 32 || n >= sz)
		return false;
	for (i = 0; i < n; i++) {
		if (p[i] != '-' && p[i] != '_' && !isxdigit((unsigned char)p[i]))
			return false;
		uid[i] = p[i] == '_' ? '-' : p[i];
	}
	uid[n] = '\0';
	return true;
}

/* "cri-containerd-<id>.scope", "crio-<id>.scope", "docker-<id>.scope" or a bare <id>. */
static bool component_container(const char *c, size_t len, char *id, size_t sz)
{
	const char *dash;
	size_t n;

	if (ends_with(c, len, ".scope")) {
		len -= 6;
		dash = memrchr(c, '-', len);
		if (!dash)
			return false;
		n = len - (dash + 1 - c);
		c = dash + 1;
	} else {
		n = len;
	}
	if (n < 12 || n >= sz || !all_hex(c, n))
		return false;
	memcpy(id, c, n);
	id[n] = '\0';
	return true;
}

bool service__parse_cgroup(const char *path, struct service_id *out)
{
	const char *c = path, *slash;
	size_t len;

	out->pod_uid[0] = out->container_id[0] = '\0';
	while (*c) {
		slash = strchr(c, '/');
		len = slash ? (size_t)(slash - c) : strlen(c);
		if (len && !component_pod_uid(c, len, out->pod_uid, sizeof(out->pod_uid)) &&
		    !component_container(c, len, out->container_id, sizeof(out->container_id)) &&
		    !out->pod_uid[0] && ends_with(c, len, ".service"))
			snprintf(out->name, sizeof(out->name), "%.*s", (int)len, c);
		if (!slash)
			break;
		c = slash + 1;
	}
	/* A container id outside a pod is a bare container's (docker): no pod. */
	return out->pod_uid[0] != '\0';
}

static bool is_alnum_lower(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			return false;
	return true;
}

static bool is_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return n > 0;
}

void service__workload(const char *pod, char *out, size_t sz)
{
	const char *last = strrchr(pod, '-'), *prev;
	size_t len = strlen(pod), cut = len;

	if (last && last != pod) {
		size_t ln = len - (last + 1 - pod);

		for (prev = last - 1; prev > pod && *prev != '-'; prev--)
			;
		if (ln == 5 && is_alnum_lower(last + 1, 5)) {
			cut = last - pod;
			/* Deployment: <name>-<replicaset hash>-<suffix>. */
			if (*prev == '-' && last - prev - 1 >= 6 && last - prev - 1 <= 10 &&
			    is_alnum_lower(prev + 1, last - prev - 1))
				cut = prev - pod;
		} else if (is_digits(last + 1, ln)) {
			cut = last - pod; /* StatefulSet: <name>-<ordinal> */
		}
	}
	snprintf(out, sz, "%.*s", (int)cut, pod);
}

/*
 * Calls fn with each entry of root/sub whose name ends in suffix (and the
 * length before it) until fn returns true; returns whether one did.
 */
static bool scan_logs(const char *root, const char *sub, const char *suffix,
		      bool (*fn)(const char *name, size_t len, struct service_id *id),
		      struct service_id *id)
{
	size_t len, slen = strlen(suffix);
	struct dirent *de;
	bool found = false;
	char dir[512];
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/%s", root, sub);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		len = strlen(de->d_name);
		if (ends_with(de->d_name, len, suffix))
			found = fn(de->d_name, len - slen, id);
	}
	closedir(d);
	return found;
}

/* "<pod>_<namespace>_<container>" of /var/log/containers/<...>-<id>.log */
static bool container_log(const char *name, size_t len, struct service_id *id)
{
	const char *u1 = memchr(name, '_', len), *u2;

	u2 = u1 ? memchr(u1 + 1, '_', len - (u1 + 1 - name)) : NULL;
	if (!u2)
		return false;
	snprintf(id->pod, sizeof(id->pod), "%.*s", (int)(u1 - name), name);
	snprintf(id->ns, sizeof(id->ns), "%.*s", (int)(u2 - u1 - 1), u1 + 1);
	snprintf(id->container, sizeof(id->container), "%.*s", (int)(len - (u2 + 1 - name)),
		 u2 + 1);
	return true;
}

/* "<namespace>_<pod>" of /var/log/pods/<...>_<uid> */
static bool pod_log(const char *name, size_t len, struct service_id *id)
{
	const char *u1 = memchr(name, '_', len);

	if (!u1)
		return false;
	snprintf(id->ns, sizeof(id->ns), "%.*s", (int)(u1 - name), name);
	snprintf(id->pod, sizeof(id->pod), "%.*s", (int)(len - (u1 + 1 - name)), u1 + 1);
	return true;
}

static bool from_container_logs(const char *root, struct service_id *id)
{
	char suffix[96];

	snprintf(suffix, sizeof(suffix), "-%s.log", id->container_id);
	return scan_logs(root, "containers", suffix, container_log, id);
}

static bool from_pod_logs(const char *root, struct service_id *id)
{
	char suffix[48];

	snprintf(suffix, sizeof(suffix), "_%s", id->pod_uid);
	return scan_logs(root, "pods", suffix, pod_log, id);
}

bool service__from_logs(const char *root, struct service_id *id)
{
	if (id->container_id[0] && from_container_logs(root, id))
		return true;
	return id->pod_uid[0] && from_pod_logs(root, id);
}

static int read_line(const char *path, char *buf, size_t sz)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	if (!fgets(buf, sz, f))
		buf[0] = '\0';
	fclose(f);
	n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return 0;
}

/* The cgroup v2 path ("0::/..."), or the first hierarchy's on v1 hosts. */
static int read_cgroup(pid_t pid, char *buf, size_t sz)
{
	char path[64], line[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	buf[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		p = strchr(line, ':');
		p = p ? strchr(p + 1, ':') : NULL;
		if (!p)
			continue;
		p[strcspn(p, "\n")] = '\0';
		if (!buf[0] || !strncmp(line, "0::", 3))
			snprintf(buf, sz, "%s", p + 1);
	}
	fclose(f);
	return 0;
}

static const struct service_rule *match_rule(const struct service_rule *rules, int n, pid_t pid,
					     const char *comm, const char *cgroup)
{
	int i;

	for (i = 0; i < n; i++) {
		if ((rules[i].by == SERVICE_BY_PID && rules[i].pid == pid) ||
		    (rules[i].by == SERVICE_BY_COMM && !strcmp(rules[i].match, comm)) ||
		    (rules[i].by == SERVICE_BY_CGROUP && strstr(cgroup, rules[i].match)))
			return &rules[i];
	}
	return NULL;
}

int service__identify(pid_t pid, const struct service_rule *rules, int nrules,
		      const char *logs_root, struct service_id *out)
{
	char path[64], comm[64], cgroup[1024];
	const struct service_rule *rule;
	bool pod;
	int err;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	err = read_line(path, comm, sizeof(comm));
	if (err)
		return err;
	if (read_cgroup(pid, cgroup, sizeof(cgroup)))
		cgroup[0] = '\0';
	pod = service__parse_cgroup(cgroup, out);
	if (pod)
		service__from_logs(logs_root, out);
	rule = match_rule(rules, nrules, pid, comm, cgroup);
	if (rule)
		snprintf(out->name, sizeof(out->name), "%s", rule->name);
	else if (out->pod[0])
		service__workload(out->pod, out->name, sizeof(out->name));
	else if (pod && out->container[0])
		snprintf(out->name, sizeof(out->name), "%s", out->container);
	else if (!out->name[0] || pod)
		snprintf(out->name, sizeof(out->name), "%s", comm);
	/* The key must stay unique: a name too long for it gives way to the pod UID. */
	if (out->pod[0] && strlen(out->ns) + 1 + strlen(out->pod) < sizeof(out->key)) {
		/* Fits: checked (pieces copied, as the compiler cannot see the check). */
		size_t n = strlen(out->ns);

		memcpy(out->key, out->ns, n);
		out->key[n] = '/';
		memcpy(out->key + n + 1, out->pod, strlen(out->pod) + 1);
	}
	else if (pod)
		snprintf(out->key, sizeof(out->key), "pod-%.36s", out->pod_uid);
	else
		snprintf(out->key, sizeof(out->key), "%.63s", out->name);
	return 0;
}
