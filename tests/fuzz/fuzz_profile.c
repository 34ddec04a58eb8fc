// SPDX-License-Identifier: GPL-2.0-only
/*
 * The profile loader (src/profile.c, profile__load_buf): any bytes as an
 * `agentprof-profile` document, from disk or an exporter's /profile. A
 * profile it accepts is printed, written back and read again: that must give
 * the same groups.
 */
#include <string.h>

#include "fuzz.h"
#include "profile.h"

FUZZ_TARGET(profile)
{
	static FILE *devnull;
	struct profile *p, *q;
	struct json_object *j;
	const char *s;
	char err[256];
	size_t len;

	if (!devnull)
		devnull = fopen("/dev/null", "w");
	p = profile__load_buf((const char *)data, size, "fuzz", err, sizeof(err));
	if (!p) {
		FUZZ_CHECK(err[0], "rejected without a message");
		return 0;
	}
	if (devnull)
		profile__print_table(p, devnull);
	j = profile__json(p, NULL);
	s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN, &len);
	q = profile__load_buf(s, len, "fuzz round trip", err, sizeof(err));
	FUZZ_CHECK(q != NULL, "a loaded profile written back does not load: %s", err);
	if (q)
		FUZZ_CHECK(profile__ngroups(q) == profile__ngroups(p), "groups %zu, then %zu",
			   profile__ngroups(p), profile__ngroups(q));
	json_object_put(j);
	profile__free(q);
	profile__free(p);
	return 0;
}
