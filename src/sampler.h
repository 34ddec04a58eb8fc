/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What `record` samples besides requests, for capacity planning: once an
 * interval, each traced service's RSS and its client and PostgreSQL
 * connections (from /proc); from the requests themselves, arrivals and the
 * mean requests in flight per interval; once per process, its cgroup limits.
 * A long-running exporter keeps the last services->window intervals and
 * forgets the processes and threads that exit.
 * Everything lands in the profile's services (src/services.h).
 */
#ifndef AGENTPROF_SAMPLER_H
#define AGENTPROF_SAMPLER_H

#include <pthread.h>
#include <stdint.h>

#include "services.h"

struct ap_request_event;
struct sampler;

/*
 * pg_ports: PostgreSQL server ports (none: 5432). now_ns: CLOCK_MONOTONIC,
 * the timeline's start. lock (or NULL): held by whoever else reads svcs
 * (the exporter's scrapes) and by the caller of sampler__add_request().
 */
struct sampler *sampler__new(struct services *svcs, const unsigned short *pg_ports, int npg_ports,
			     uint64_t now_ns, pthread_mutex_t *lock);
void sampler__free(struct sampler *s);
/*
 * A finished request (times CLOCK_MONOTONIC, as the BPF side stamps them),
 * of the profile's service (NULL: its command name).
 */
void sampler__add_request(struct sampler *s, const struct ap_request_event *ev,
			  const char *service);
/* Call often (the poll loop), without the lock; reads /proc once an interval. */
void sampler__tick(struct sampler *s, uint64_t now_ns);

#endif /* AGENTPROF_SAMPLER_H */
