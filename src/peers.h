/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Upstream peers: their names (ip:port, or --peer-name), and what the run
 * saw of each: calls, requests, the wait per request, and the kernel's TCP
 * counters (RTT, retransmits, connect failures, resets).
 */
#ifndef AGENTPROF_PEERS_H
#define AGENTPROF_PEERS_H

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>

#include "hist.h"

#define PEER_NAME_MAX 80

struct ap_peer;
struct ap_peer_key;
struct ap_peer_totals;
struct peers;

struct peer_stats {
	char name[PEER_NAME_MAX];
	int kind;		/* enum ap_peer_kind */
	uint64_t calls;
	uint64_t requests;
	uint64_t connects;
	uint64_t connect_ns;	/* handshake time, summed */
	struct hist wait;	/* per request: wait_ns on this peer */
	uint64_t connect_failures, resets, retransmits;
	uint64_t srtt_sum_us, srtt_samples, srtt_max_us;
	struct peer_stats *next;
};

struct peers *peers__new(void);
void peers__free(struct peers *ps);
/* Adds a --peer-name ADDR:PORT=NAME; returns 0 or -EINVAL with err set. */
int peers__add_name(struct peers *ps, const char *spec, char *err, size_t errsz);
/* The display name of a peer: its --peer-name, else ip:port. */
void peers__name(const struct peers *ps, int family, const uint8_t addr[16], uint16_t port,
		 char *out, size_t sz);
const char *peers__kind_name(int kind);
/* Counts what one request did with one peer; it stands for weight requests (--sample). */
void peers__add_request(struct peers *ps, const struct ap_peer *p, uint64_t weight);
/* Folds in the kernel's per-peer totals at the end of the run. */
void peers__add_totals(struct peers *ps, const struct ap_peer_key *k,
		       const struct ap_peer_totals *t);
/* Forgets the kernel's totals folded in so far, to fold in a fresh read (export). */
void peers__clear_totals(struct peers *ps);
/* Every peer, in no particular order (the list's next). */
const struct peer_stats *peers__list(const struct peers *ps);
void peers__print(struct peers *ps, FILE *out);
struct json_object *peers__json(struct peers *ps);

#endif /* AGENTPROF_PEERS_H */
