// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"

/* memory.limit_in_bytes reads PAGE_COUNTER_MAX * page size when unlimited: 2^63 rounded down. */
#define V1_UNLIMITED (1ULL << 62)

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	const char *p = list;

	while ((p = strstr(p, word))) {
		if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

/*
 * Where the hierarchy holding controller (v1), or the unified one
 * (controller NULL), is mounted, from /proc/self/mountinfo.
 */
static int find_mount(const char *root, const char *controller, char *mnt, size_t mntsz,
		      char *mroot, size_t mrootsz)
{
	char path[PATH_MAX], line[4096], r[PATH_MAX], m[PATH_MAX], fstype[64], opts[1024];
	const char *sep;
	FILE *f;
	int found = -ENOENT;

	snprintf(path, sizeof(path), "%s/proc/self/mountinfo", root);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", r, m) != 2 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
			continue;
		if (controller ? strcmp(fstype, "cgroup") || !has_word(opts, controller)
			       : strcmp(fstype, "cgroup2"))
			continue;
		snprintf(mnt, mntsz, "%s%s", root, m);
		snprintf(mroot, mrootsz, "%s", r);
		found = 0;
		break;
	}
	fclose(f);
	return found;
}

static int read_line(const char *dir, const char *file, char *buf, size_t sz)
{
	char path[PATH_MAX];
	FILE *f;
	int err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(buf, sz, f))
		err = -EIO;
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return err;
}

/* The cgroup path of pid in the v1 hierarchy of controller, or the v2 one (NULL). */
static int proc_cgroup_path(const char *root, pid_t pid, const char *controller, char *out,
			    size_t sz)
{
	char path[PATH_MAX], line[4096], *ctrls, *p;
	FILE *f;
	int err = -ENOENT;

	snprintf(path, sizeof(path), "%s/proc/%d/cgroup", root, (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		ctrls = strchr(line, ':');
		p = ctrls ? strchr(ctrls + 1, ':') : NULL;
		if (!p)
			continue;
		*p++ = '\0';
		*ctrls++ = '\0';
		if (controller ? !has_word(ctrls, controller) : strcmp(line, "0") || *ctrls)
			continue;
		snprintf(out, sz, "%s", p);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/* dir = mount + (path without the mount's own root), the way /proc/PID/cgroup and mountinfo agree. */
static void cgroup_dir(char *dir, size_t sz, const char *mnt, const char *mroot, const char *path)
{
	size_t n = strlen(mroot);

	if (strcmp(mroot, "/") && !strncmp(path, mroot, n))
		path += n;
	snprintf(dir, sz, "%s%s", mnt, path);
}

/* Walks dir up to mnt, calling fn on each level: a parent's limit binds its children too. */
static void walk_up(char *dir, const char *mnt, void (*fn)(const char *dir, struct service_cgroup *),
		    struct service_cgroup *out)
{
	size_t mlen = strlen(mnt);
	char *slash;

	for (;;) {
		fn(dir, out);
		if (strlen(dir) <= mlen)
			break;
		slash = strrchr(dir, '/');
		if (!slash || (size_t)(slash - dir) < mlen)
			break;
		*slash = '\0';
	}
}

static void tighter_cpu(struct service_cgroup *out, int64_t quota, int64_t period)
{
	double cores;

	if (quota <= 0 || period <= 0)
		return;
	cores = (double)quota / period;
	if (out->cpu_limit_cores > 0 && cores >= out->cpu_limit_cores)
		return;
	out->cpu_limit_cores = cores;
	out->cpu_quota_us = quota;
	out->cpu_period_us = period;
}

static void tighter_mem(struct service_cgroup *out, uint64_t limit)
{
	if (limit && limit < V1_UNLIMITED &&
	    (!out->memory_limit_bytes || limit < out->memory_limit_bytes))
		out->memory_limit_bytes = limit;
}

static void v1_cpu_level(const char *dir, struct service_cgroup *out)
{
	char q[64], p[64];

	if (!read_line(dir, "cpu.cfs_quota_us", q, sizeof(q)) &&
	    !read_line(dir, "cpu.cfs_period_us", p, sizeof(p)))
		tighter_cpu(out, strtoll(q, NULL, 10), strtoll(p, NULL, 10));
}

static void v1_mem_level(const char *dir, struct service_cgroup *out)
{
	char l[64];

	if (!read_line(dir, "memory.limit_in_bytes", l, sizeof(l)))
		tighter_mem(out, strtoull(l, NULL, 10));
}

static void v2_level(const char *dir, struct service_cgroup *out)
{
	char l[128], q[32];
	long long period = 0;

	/* cpu.max: "max 100000" or "QUOTA PERIOD"; memory.max: "max" or bytes. */
	if (!read_line(dir, "cpu.max", l, sizeof(l)) && sscanf(l, "%31s %lld", q, &period) == 2 &&
	    strcmp(q, "max"))
		tighter_cpu(out, strtoll(q, NULL, 10), period);
	if (!read_line(dir, "memory.max", l, sizeof(l)) && strcmp(l, "max"))
		tighter_mem(out, strtoull(l, NULL, 10));
}

static int read_v1(const char *root, pid_t pid, struct service_cgroup *out)
{
	char mnt[PATH_MAX], mroot[PATH_MAX], path[PATH_MAX], dir[2 * PATH_MAX + 8];

	if (proc_cgroup_path(root, pid, "cpu", path, sizeof(path)) ||
	    find_mount(root, "cpu", mnt, sizeof(mnt), mroot, sizeof(mroot)))
		return -ENOENT;
	out->version = 1;
	snprintf(out->path, sizeof(out->path), "%.*s", (int)sizeof(out->path) - 1, path);
	cgroup_dir(dir, sizeof(dir), mnt, mroot, path);
	walk_up(dir, mnt, v1_cpu_level, out);
	if (!proc_cgroup_path(root, pid, "memory", path, sizeof(path)) &&
	    !find_mount(root, "memory", mnt, sizeof(mnt), mroot, sizeof(mroot))) {
		cgroup_dir(dir, sizeof(dir), mnt, mroot, path);
		walk_up(dir, mnt, v1_mem_level, out);
	}
	return 0;
}

static int read_v2(const char *root, pid_t pid, struct service_cgroup *out)
{
	char mnt[PATH_MAX], mroot[PATH_MAX], path[PATH_MAX], dir[2 * PATH_MAX + 8];

	if (proc_cgroup_path(root, pid, NULL, path, sizeof(path)) ||
	    find_mount(root, NULL, mnt, sizeof(mnt), mroot, sizeof(mroot)))
		return -ENOENT;
	out->version = 2;
	snprintf(out->path, sizeof(out->path), "%.*s", (int)sizeof(out->path) - 1, path);
	cgroup_dir(dir, sizeof(dir), mnt, mroot, path);
	walk_up(dir, mnt, v2_level, out);
	return 0;
}

int cgroup__read(const char *root, pid_t pid, struct service_cgroup *out)
{
	char path[PATH_MAX];
	int err;

	memset(out, 0, sizeof(*out));
	out->cpu_quota_us = -1;
	out->host_cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	snprintf(path, sizeof(path), "%s/proc/%d/cgroup", root, (int)pid);
	if (access(path, R_OK))
		return -errno;
	/* A v1 cpu controller, where mounted, is the one that throttles (hybrid hosts). */
	err = read_v1(root, pid, out);
	if (err)
		err = read_v2(root, pid, out);
	return err == -ENOENT ? 0 : err;
}
