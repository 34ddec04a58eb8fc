// SPDX-License-Identifier: GPL-2.0-only
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "agentprof/request.h"
#include "peers.h"
#include "profile.h"

#define PEERS_MAX_NAMES 64
#define PEERS_MAX 1000

struct peer_alias {
	int family;
	uint8_t addr[16];
	uint16_t port;
	char name[PEER_NAME_MAX];
};

struct peers {
	struct peer_alias alias[PEERS_MAX_NAMES];
	int nalias;
	struct peer_stats *list;
	size_t n;
};

struct peers *peers__new(void)
{
	return calloc(1, sizeof(struct peers));
}

void peers__free(struct peers *ps)
{
	struct peer_stats *s, *next;

	if (!ps)
		return;
	for (s = ps->list; s; s = next) {
		next = s->next;
		free(s);
	}
	free(ps);
}

/* "1.2.3.4:443=llm", "[::1]:8080=auth" */
int peers__add_name(struct peers *ps, const char *spec, char *err, size_t errsz)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *eq = strchr(spec, '='), *colon;
	struct peer_alias *a;
	unsigned long port;
	size_t hlen;
	char *end;

	if (ps->nalias == PEERS_MAX_NAMES) {
		snprintf(err, errsz, "too many --peer-name (at most %d)", PEERS_MAX_NAMES);
		return -EINVAL;
	}
	a = &ps->alias[ps->nalias];
	colon = eq ? eq : spec;
	while (colon > spec && *colon != ':')
		colon--;
	if (!eq || colon == spec || !eq[1] || strlen(eq + 1) >= sizeof(a->name))
		goto bad;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end != eq || port == 0 || port > 65535)
		goto bad;
	hlen = colon - spec;
	if (spec[0] == '[' && hlen > 2 && spec[hlen - 1] == ']') {
		spec++;
		hlen -= 2;
	}
	if (hlen >= sizeof(host))
		goto bad;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	memset(a->addr, 0, sizeof(a->addr));
	if (inet_pton(AF_INET, host, a->addr) == 1)
		a->family = AF_INET;
	else if (inet_pton(AF_INET6, host, a->addr) == 1)
		a->family = AF_INET6;
	else
		goto bad;
	a->port = port;
	snprintf(a->name, sizeof(a->name), "%s", eq + 1);
	ps->nalias++;
	return 0;
bad:
	snprintf(err, errsz,
		 "invalid --peer-name '%s': expected ADDR:PORT=NAME with an IP address, "
		 "e.g. 10.0.0.7:443=llm or [::1]:8080=auth",
		 spec);
	return -EINVAL;
}

void peers__name(const struct peers *ps, int family, const uint8_t addr[16], uint16_t port,
		 char *out, size_t sz)
{
	char ip[INET6_ADDRSTRLEN];
	int i;

	for (i = 0; ps && i < ps->nalias; i++) {
		const struct peer_alias *a = &ps->alias[i];

		if (a->family == family && a->port == port &&
		    !memcmp(a->addr, addr, family == AF_INET ? 4 : 16)) {
			snprintf(out, sz, "%s", a->name);
			return;
		}
	}
	if (family == AF_UNIX) {
		snprintf(out, sz, "unix:%.16s", (const char *)addr);
		return;
	}
	if (!inet_ntop(family, addr, ip, sizeof(ip)))
		snprintf(ip, sizeof(ip), "?");
	snprintf(out, sz, family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
}

const char *peers__kind_name(int kind)
{
	return kind == AP_PEER_PG ? "pg" : "upstream";
}

static struct peer_stats *stats_get(struct peers *ps, const char *name, int kind)
{
	struct peer_stats *s;

	for (s = ps->list; s; s = s->next)
		if (!strcmp(s->name, name))
			return s;
	if (ps->n >= PEERS_MAX)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->kind = kind;
	hist__init(&s->wait);
	s->next = ps->list;
	ps->list = s;
	ps->n++;
	return s;
}

void peers__add_request(struct peers *ps, const struct ap_peer *p, uint64_t weight)
{
	char name[PEER_NAME_MAX];
	struct peer_stats *s;

	peers__name(ps, p->family, p->addr, p->port, name, sizeof(name));
	s = stats_get(ps, name, p->kind);
	if (!s)
		return;
	s->calls += p->calls * weight;
	s->requests += weight;
	s->connects += p->connects * weight;
	s->connect_ns += p->connect_ns * weight;
	hist__add_n(&s->wait, p->wait_ns, weight);
}

void peers__add_totals(struct peers *ps, const struct ap_peer_key *k,
		       const struct ap_peer_totals *t)
{
	char name[PEER_NAME_MAX];
	struct peer_stats *s;

	peers__name(ps, k->family, k->addr, k->port, name, sizeof(name));
	s = stats_get(ps, name, k->kind);
	if (!s)
		return;
	s->connect_failures += t->connect_failures;
	s->resets += t->resets;
	s->retransmits += t->retransmits;
	s->srtt_sum_us += t->srtt_sum_us;
	s->srtt_samples += t->srtt_samples;
	if (t->srtt_max_us > s->srtt_max_us)
		s->srtt_max_us = t->srtt_max_us;
}

void peers__clear_totals(struct peers *ps)
{
	struct peer_stats *s;

	for (s = ps->list; s; s = s->next) {
		s->connect_failures = s->resets = s->retransmits = 0;
		s->srtt_sum_us = s->srtt_samples = s->srtt_max_us = 0;
	}
}

const struct peer_stats *peers__list(const struct peers *ps)
{
	return ps->list;
}

static double srtt_avg(const struct peer_stats *s)
{
	return s->srtt_samples ? (double)s->srtt_sum_us / s->srtt_samples : 0;
}

void peers__print(struct peers *ps, FILE *out)
{
	struct peer_stats *s;

	if (!ps->list)
		return;
	fprintf(out, "\nPEERS (wait: per request, last byte sent -> reply read)\n");
	fprintf(out, "%-21s %-8s %7s %7s %9s %9s %9s %9s %9s %7s %7s %7s\n", "PEER", "KIND",
		"CALLS", "REQS", "WAIT_P50", "WAIT_P95", "WAIT_P99", "SRTT_US", "SRTT_MAX", "RETRANS",
		"CONN_KO", "RESETS");
	for (s = ps->list; s; s = s->next)
		fprintf(out, "%-21s %-8s %7llu %7llu %9.2f %9.2f %9.2f %9.0f %9llu %7llu %7llu %7llu\n",
			s->name, peers__kind_name(s->kind), (unsigned long long)s->calls,
			(unsigned long long)s->requests, hist__quantile(&s->wait, 0.5) / 1e6,
			hist__quantile(&s->wait, 0.95) / 1e6, hist__quantile(&s->wait, 0.99) / 1e6,
			srtt_avg(s), (unsigned long long)s->srtt_max_us,
			(unsigned long long)s->retransmits, (unsigned long long)s->connect_failures,
			(unsigned long long)s->resets);
}

struct json_object *peers__json(struct peers *ps)
{
	struct json_object *arr = json_object_new_array(), *o;
	struct peer_stats *s;

	for (s = ps->list; s; s = s->next) {
		o = json_object_new_object();
		json_object_object_add(o, "peer", json_object_new_string(s->name));
		json_object_object_add(o, "kind", json_object_new_string(peers__kind_name(s->kind)));
		json_object_object_add(o, "calls", json_object_new_uint64(s->calls));
		json_object_object_add(o, "requests", json_object_new_uint64(s->requests));
		json_object_object_add(o, "connects", json_object_new_uint64(s->connects));
		json_object_object_add(o, "wait_ns", profile__quantiles_json(&s->wait));
		json_object_object_add(o, "srtt_avg_us", json_object_new_double(srtt_avg(s)));
		json_object_object_add(o, "srtt_max_us", json_object_new_uint64(s->srtt_max_us));
		json_object_object_add(o, "retransmits", json_object_new_uint64(s->retransmits));
		json_object_object_add(o, "connect_failures",
				       json_object_new_uint64(s->connect_failures));
		json_object_object_add(o, "resets", json_object_new_uint64(s->resets));
		json_object_array_add(arr, o);
	}
	return arr;
}
