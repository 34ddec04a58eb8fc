// SPDX-License-Identifier: GPL-2.0-only
/* Cardinality caps (cap.h): a chained hash of (scope, name) and a count per scope. */
#include <stdlib.h>
#include <string.h>

#include "cap.h"

#define CAP_BUCKETS 4096

struct cap_entry {
	char *scope; /* a name: (scope, name); a scope's count: (scope, NULL) */
	char *name;
	unsigned int count;
	struct cap_entry *next;
};

struct cap {
	const char *what;
	unsigned int limit;
	uint64_t overflow;
	struct cap_entry *buckets[CAP_BUCKETS];
};

static uint64_t hash(const char *scope, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const char *s;

	for (s = scope; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	h = (h ^ 0x1f) * 0x100000001b3ULL;
	for (s = name ?: ""; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h ^ (name ? 1 : 0);
}

static bool same(const struct cap_entry *e, const char *scope, const char *name)
{
	if (strcmp(e->scope, scope))
		return false;
	if (!name || !e->name)
		return !name && !e->name;
	return !strcmp(e->name, name);
}

static struct cap_entry *find(struct cap *c, const char *scope, const char *name, bool add)
{
	size_t b = hash(scope, name) % CAP_BUCKETS;
	struct cap_entry *e;

	for (e = c->buckets[b]; e; e = e->next)
		if (same(e, scope, name))
			return e;
	if (!add)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->scope = strdup(scope);
	e->name = name ? strdup(name) : NULL;
	if (!e->scope || (name && !e->name)) {
		free(e->scope);
		free(e->name);
		free(e);
		return NULL;
	}
	e->next = c->buckets[b];
	c->buckets[b] = e;
	return e;
}

struct cap *cap__new(const char *what, unsigned int limit)
{
	struct cap *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->what = what;
	c->limit = limit;
	return c;
}

void cap__free(struct cap *c)
{
	struct cap_entry *e, *next;
	size_t i;

	if (!c)
		return;
	for (i = 0; i < CAP_BUCKETS; i++) {
		for (e = c->buckets[i]; e; e = next) {
			next = e->next;
			free(e->scope);
			free(e->name);
			free(e);
		}
	}
	free(c);
}

bool cap__admit(struct cap *c, const char *scope, const char *name)
{
	struct cap_entry *scope_e;

	if (find(c, scope, name, false))
		return true;
	scope_e = find(c, scope, NULL, true);
	if (!scope_e || scope_e->count >= c->limit || !find(c, scope, name, true)) {
		c->overflow++;
		return false;
	}
	scope_e->count++;
	return true;
}

void cap__remove(struct cap *c, const char *scope, const char *name)
{
	struct cap_entry **link = &c->buckets[hash(scope, name) % CAP_BUCKETS], *e;
	struct cap_entry *scope_e;

	for (; (e = *link); link = &e->next) {
		if (!same(e, scope, name))
			continue;
		*link = e->next;
		free(e->scope);
		free(e->name);
		free(e);
		scope_e = find(c, scope, NULL, false);
		if (scope_e && scope_e->count)
			scope_e->count--;
		return;
	}
}

void cap__forget_scope(struct cap *c, const char *scope)
{
	struct cap_entry **link, *e;
	size_t i;

	for (i = 0; i < CAP_BUCKETS; i++) {
		for (link = &c->buckets[i]; (e = *link);) {
			if (strcmp(e->scope, scope)) {
				link = &e->next;
				continue;
			}
			*link = e->next;
			free(e->scope);
			free(e->name);
			free(e);
		}
	}
}

void cap__forget_prefix(struct cap *c, const char *scope, const char *prefix)
{
	struct cap_entry **link, *e, *scope_e = find(c, scope, NULL, false);
	size_t len = strlen(prefix), i;

	for (i = 0; i < CAP_BUCKETS; i++) {
		for (link = &c->buckets[i]; (e = *link);) {
			if (!e->name || strcmp(e->scope, scope) || strncmp(e->name, prefix, len) ||
			    e->name[len] != 0x1f) {
				link = &e->next;
				continue;
			}
			*link = e->next;
			free(e->scope);
			free(e->name);
			free(e);
			if (scope_e && scope_e->count)
				scope_e->count--;
		}
	}
}

uint64_t cap__overflow(const struct cap *c)
{
	return c->overflow;
}

unsigned int cap__limit(const struct cap *c)
{
	return c->limit;
}

const char *cap__what(const struct cap *c)
{
	return c->what;
}

unsigned int cap__count(const struct cap *c, const char *scope)
{
	struct cap_entry *e = find((struct cap *)c, scope, NULL, false);

	return e ? e->count : 0;
}
