/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Cardinality caps for the exporter's label values: at most `limit` names
 * are admitted per scope (routes per service, services per node, peers,
 * statements), first come first served; a name once admitted stays so its
 * series never moves, and each refusal is counted, so what overflows goes
 * to one `(other)` series and a counter says how much did.
 */
#ifndef AGENTPROF_CAP_H
#define AGENTPROF_CAP_H

#include <stdbool.h>
#include <stdint.h>

#define CAP_OTHER "(other)"

struct cap;

struct cap *cap__new(const char *what, unsigned int limit);
void cap__free(struct cap *c);
/*
 * True when name is admitted in scope (it was, or there was room for it);
 * false when the scope is full: the caller files it under CAP_OTHER.
 */
bool cap__admit(struct cap *c, const char *scope, const char *name);
/* Forgets one name, freeing its room. */
void cap__remove(struct cap *c, const char *scope, const char *name);
/* Forgets the names of scope that start with prefix and a 0x1f separator. */
void cap__forget_prefix(struct cap *c, const char *scope, const char *prefix);
/* Forgets a scope's names (a service gone), freeing its room. */
void cap__forget_scope(struct cap *c, const char *scope);
/* Names refused so far (once per request, peer or statement refused). */
uint64_t cap__overflow(const struct cap *c);
unsigned int cap__limit(const struct cap *c);
const char *cap__what(const struct cap *c);
/* Names admitted in scope. */
unsigned int cap__count(const struct cap *c, const char *scope);

#endif /* AGENTPROF_CAP_H */
