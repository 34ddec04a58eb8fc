// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentprof/request.h"
#include "cgroup.h"
#include "procs.h"
#include "sampler.h"

#define SAMPLER_MAX_PG_PORTS 16
#define TCP_ESTABLISHED 0x01
#define TCP_LISTEN 0x0a

/* Once a minute of intervals, a windowed timeline forgets exited processes. */
#define SAMPLER_PRUNE_EVERY 60

/* One service's /proc figures, read without the lock from a copy of its pids. */
struct sample_job {
	char name[SERVICE_NAME_MAX];
	uint32_t pids[SERVICE_MAX_PIDS];
	int npids;
	uint64_t rss_bytes, cpu_ns;
	uint32_t clients, pg_conns;
};

struct sampler {
	struct services *svcs;
	pthread_mutex_t *lock;
	uint64_t t0_ns;
	int64_t last_slot; /* the last interval whose /proc figures were read */
	unsigned short pg_ports[SAMPLER_MAX_PG_PORTS];
	int npg_ports;
	long page_size, clk_tck;
	struct sample_job jobs[SERVICES_MAX];
};

struct sampler *sampler__new(struct services *svcs, const unsigned short *pg_ports, int npg_ports,
			     uint64_t now_ns, pthread_mutex_t *lock)
{
	struct sampler *s = calloc(1, sizeof(*s));
	int i;

	if (!s)
		return NULL;
	s->svcs = svcs;
	s->lock = lock;
	s->t0_ns = now_ns;
	s->last_slot = -1;
	s->page_size = sysconf(_SC_PAGESIZE);
	s->clk_tck = sysconf(_SC_CLK_TCK);
	for (i = 0; i < npg_ports && i < SAMPLER_MAX_PG_PORTS; i++)
		s->pg_ports[s->npg_ports++] = pg_ports[i];
	if (!s->npg_ports)
		s->pg_ports[s->npg_ports++] = 5432;
	return s;
}

void sampler__free(struct sampler *s)
{
	free(s);
}

/* Time-weighted: each interval gets the part of [start, end) that falls in it. */
static void spread_in_flight(struct sampler *s, struct service *svc, uint64_t start, uint64_t end)
{
	uint64_t iv = s->svcs->interval_ns, lo, hi, a, b;
	struct service_sample *smp;
	size_t i;

	if (start < s->t0_ns)
		start = s->t0_ns;
	if (end <= start)
		return;
	i = (start - s->t0_ns) / iv;
	/* A request older than the window counts from the window's start. */
	if (i < svc->first)
		i = svc->first;
	for (;; i++) {
		lo = s->t0_ns + i * iv;
		hi = lo + iv;
		if (lo >= end)
			break;
		a = start > lo ? start : lo;
		b = end < hi ? end : hi;
		smp = service__sample(svc, i);
		if (!smp)
			break;
		smp->in_flight += (double)(b - a) / iv;
	}
}

void sampler__add_request(struct sampler *s, const struct ap_request_event *ev,
			  const char *service)
{
	char name[AP_COMM_LEN + 1];
	struct service_sample *smp;
	struct service *svc;
	uint64_t end;

	memcpy(name, ev->comm, AP_COMM_LEN);
	name[AP_COMM_LEN] = '\0';
	svc = services__get(s->svcs, service ?: name);
	if (!svc)
		return;
	/* One cgroup per service: its first process's (a pod's workers share it). */
	if (service__add_pid(svc, ev->pid) && !svc->cgroup.version)
		cgroup__read("", ev->pid, &svc->cgroup);
	service__add_tid(svc, ev->tid);
	if (ev->start_ns >= s->t0_ns) {
		smp = service__sample(svc, (ev->start_ns - s->t0_ns) / s->svcs->interval_ns);
		if (smp)
			smp->arrivals++;
	}
	end = ev->last_tx_ns ? ev->last_tx_ns : ev->end_ns;
	spread_in_flight(s, svc, ev->start_ns, end);
}

static uint64_t proc_rss(const struct sampler *s, uint32_t pid)
{
	char path[64];
	unsigned long long size, resident;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/proc/%u/statm", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &resident);
	fclose(f);
	return n == 2 ? resident * s->page_size : 0;
}

/* utime + stime of pid, all its threads, in ns (/proc/PID/stat, clock ticks); 0 if gone. */
static uint64_t proc_cpu_ns(const struct sampler *s, uint32_t pid)
{
	unsigned long long utime, stime;
	char path[64], buf[1024], *p;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command may hold spaces and ')': the fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || s->clk_tck <= 0 ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
		   &stime) != 2)
		return 0;
	return (utime + stime) * (1000000000ULL / s->clk_tck);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct inode_list {
	uint64_t *v;
	size_t n, cap;
};

/* Keeps ino; stops when out of memory (what was kept is still sampled). */
static bool keep_inode(unsigned long ino, void *ctx)
{
	struct inode_list *l = ctx;
	uint64_t *nv;
	size_t cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 64;
		nv = realloc(l->v, cap * sizeof(*nv));
		if (!nv)
			return false;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = ino;
	return true;
}

/* The socket inodes pid holds open, sorted; *n of them. */
static uint64_t *socket_inodes(uint32_t pid, size_t *n)
{
	struct inode_list l = {};

	procs__for_each_socket((pid_t)pid, keep_inode, &l);
	if (l.v)
		qsort(l.v, l.n, sizeof(*l.v), cmp_u64);
	*n = l.n;
	return l.v;
}

struct tcp_counts {
	unsigned short listen[64];
	int nlisten;
	uint32_t clients, pg;
};

static bool in_ports(const unsigned short *ports, int n, unsigned port)
{
	int i;

	for (i = 0; i < n; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/*
 * One pass over /proc/PID/net/tcp{,6} per kind: listening first (so that
 * clients are told by the local port they connected to), then established.
 */
static void scan_tcp(const struct sampler *s, uint32_t pid, const uint64_t *inos, size_t nino,
		     bool listening, struct tcp_counts *c)
{
	static const char *const files[] = {"tcp", "tcp6"};
	unsigned lport, rport, state;
	unsigned long long ino;
	char path[64], line[512];
	size_t f;
	FILE *fp;

	for (f = 0; f < 2; f++) {
		snprintf(path, sizeof(path), "/proc/%u/net/%s", pid, files[f]);
		fp = fopen(path, "r");
		if (!fp)
			continue;
		while (fgets(line, sizeof(line), fp)) {
			if (sscanf(line, " %*d: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%x %x %*s %*s %*s %*s %*s %llu",
				   &lport, &rport, &state, &ino) != 4)
				continue;
			if (!bsearch(&(uint64_t){ino}, inos, nino, sizeof(*inos), cmp_u64))
				continue;
			if (listening && state == TCP_LISTEN && c->nlisten < 64)
				c->listen[c->nlisten++] = lport;
			if (listening || state != TCP_ESTABLISHED)
				continue;
			if (in_ports(s->pg_ports, s->npg_ports, rport))
				c->pg++;
			else if (in_ports(c->listen, c->nlisten, lport))
				c->clients++;
		}
		fclose(fp);
	}
}

/* The figures of one service's processes, read into job (no lock held). */
static void sample_job(const struct sampler *s, struct sample_job *job)
{
	struct tcp_counts c;
	uint64_t *inos;
	size_t nino;
	int i;

	job->rss_bytes = job->cpu_ns = 0;
	job->clients = job->pg_conns = 0;
	for (i = 0; i < job->npids; i++) {
		job->rss_bytes += proc_rss(s, job->pids[i]);
		job->cpu_ns += proc_cpu_ns(s, job->pids[i]);
		inos = socket_inodes(job->pids[i], &nino);
		if (!inos)
			continue;
		memset(&c, 0, sizeof(c));
		scan_tcp(s, job->pids[i], inos, nino, true, &c);
		scan_tcp(s, job->pids[i], inos, nino, false, &c);
		free(inos);
		job->clients += c.clients;
		job->pg_conns += c.pg;
	}
}

static void lock(struct sampler *s)
{
	if (s->lock)
		pthread_mutex_lock(s->lock);
}

static void unlock(struct sampler *s)
{
	if (s->lock)
		pthread_mutex_unlock(s->lock);
}

/* /proc/ID answers for a thread as for a process, though only processes are listed. */
static int keep_alive(uint32_t *v, int n)
{
	int i, k = 0;

	for (i = 0; i < n; i++)
		if (procs__exists((pid_t)v[i]))
			v[k++] = v[i];
	return k;
}

/* Drops the processes and threads that have exited (a long-running exporter's services). */
static void prune(struct service *svc)
{
	svc->npids = keep_alive(svc->pids, svc->npids);
	svc->ntids = keep_alive(svc->tids, svc->ntids);
}

/* Copies out each service's pids, under the lock; the number of jobs. */
static int take_jobs(struct sampler *s, bool forget_exited)
{
	struct service *svc;
	int i, n;

	lock(s);
	n = s->svcs->n;
	for (i = 0; i < n; i++) {
		svc = &s->svcs->svc[i];
		if (forget_exited)
			prune(svc);
		snprintf(s->jobs[i].name, sizeof(s->jobs[i].name), "%s", svc->name);
		memcpy(s->jobs[i].pids, svc->pids, svc->npids * sizeof(svc->pids[0]));
		s->jobs[i].npids = svc->npids;
	}
	unlock(s);
	return n;
}

/* Stores the figures read, under the lock; a service forgotten meanwhile gets none. */
static void store_jobs(struct sampler *s, int n, size_t slot)
{
	struct service_sample *smp;
	struct service *svc;
	int i;

	lock(s);
	for (i = 0; i < n; i++) {
		svc = (struct service *)services__find(s->svcs, s->jobs[i].name);
		smp = svc ? service__sample(svc, slot) : NULL;
		if (!smp)
			continue;
		smp->measured = true;
		smp->rss_bytes = s->jobs[i].rss_bytes;
		smp->cpu_ns = s->jobs[i].cpu_ns;
		smp->clients = s->jobs[i].clients;
		smp->pg_conns = s->jobs[i].pg_conns;
		if (smp->pg_conns > svc->pg_conns_max)
			svc->pg_conns_max = smp->pg_conns;
	}
	unlock(s);
}

void sampler__tick(struct sampler *s, uint64_t now_ns)
{
	int64_t slot;
	int i, n;

	if (now_ns < s->t0_ns + s->svcs->interval_ns)
		return;
	/* The interval that just ended gets the figures read as it ends. */
	slot = (int64_t)((now_ns - s->t0_ns) / s->svcs->interval_ns) - 1;
	if (slot <= s->last_slot)
		return;
	s->last_slot = slot;
	/* A record's profile lists every process it saw; only a window forgets. */
	n = take_jobs(s, s->svcs->window && slot % SAMPLER_PRUNE_EVERY == 0);
	for (i = 0; i < n; i++)
		sample_job(s, &s->jobs[i]);
	store_jobs(s, n, slot);
}
