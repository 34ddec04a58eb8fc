// SPDX-License-Identifier: GPL-2.0-only
/* Processes with a listening TCP socket (listeners.h). */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "listeners.h"
#include "procs.h"

#define TCP_LISTEN 0x0A /* include/net/tcp_states.h */

struct netns {
	ino_t ino;
	unsigned long *inodes; /* listening sockets' inodes, sorted */
	size_t n, cap;
};

struct scan {
	struct netns *ns;
	size_t nns, cap;
};

static int push_inode(struct netns *ns, unsigned long ino)
{
	unsigned long *v;

	if (ns->n == ns->cap) {
		ns->cap = ns->cap ? ns->cap * 2 : 16;
		v = realloc(ns->inodes, ns->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		ns->inodes = v;
	}
	ns->inodes[ns->n++] = ino;
	return 0;
}

/* /proc/<pid>/net/tcp: "sl local rem st tx:rx tr:when retrnsmt uid timeout inode". */
static void read_listening(const char *pid_dir, const char *file, struct netns *ns)
{
	unsigned long ino;
	char path[300], line[512];
	unsigned int st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/net/%s", pid_dir, file);
	f = fopen(path, "r");
	if (!f)
		return;
	if (!fgets(line, sizeof(line), f)) { /* the header */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*s %*s %*s %x %*s %*s %*s %*s %*s %lu", &st, &ino) == 2 &&
		    st == TCP_LISTEN && ino)
			push_inode(ns, ino);
	}
	fclose(f);
}

static int cmp_ul(const void *a, const void *b)
{
	unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;

	return x < y ? -1 : x > y;
}

static struct netns *netns_of(struct scan *s, const char *pid_dir)
{
	char path[300];
	struct stat st;
	struct netns *v;
	size_t i;

	snprintf(path, sizeof(path), "/proc/%s/ns/net", pid_dir);
	if (stat(path, &st))
		return NULL;
	for (i = 0; i < s->nns; i++)
		if (s->ns[i].ino == st.st_ino)
			return &s->ns[i];
	if (s->nns == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		v = realloc(s->ns, s->cap * sizeof(*v));
		if (!v)
			return NULL;
		s->ns = v;
	}
	v = &s->ns[s->nns++];
	memset(v, 0, sizeof(*v));
	v->ino = st.st_ino;
	read_listening(pid_dir, "tcp", v);
	read_listening(pid_dir, "tcp6", v);
	qsort(v->inodes, v->n, sizeof(*v->inodes), cmp_ul);
	return v;
}

struct listener_search {
	const struct netns *ns;
	bool found;
};

/* Goes on until a socket is one of the namespace's listening ones. */
static bool not_listening(unsigned long ino, void *ctx)
{
	struct listener_search *s = ctx;

	s->found = bsearch(&ino, s->ns->inodes, s->ns->n, sizeof(ino), cmp_ul) != NULL;
	return !s->found;
}

static bool holds_listener(pid_t pid, const struct netns *ns)
{
	struct listener_search s = { .ns = ns };

	procs__for_each_socket(pid, not_listening, &s);
	return s.found;
}

int listeners__for_each(pid_t skip, void (*fn)(pid_t pid, void *ctx), void *ctx)
{
	struct scan s = {};
	struct netns *ns;
	struct dirent *de;
	int found = 0;
	size_t i;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || atoi(de->d_name) == skip)
			continue;
		ns = netns_of(&s, de->d_name);
		if (!ns || !ns->n || !holds_listener(atoi(de->d_name), ns))
			continue;
		fn(atoi(de->d_name), ctx);
		found++;
	}
	closedir(d);
	for (i = 0; i < s.nns; i++)
		free(s.ns[i].inodes);
	free(s.ns);
	return found;
}
