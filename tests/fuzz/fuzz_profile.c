// SPDX-License-Identifier: GPL-2.0-only
/*
 * The profile loader (src/profile.c, profile__load_buf): any bytes as an
 * `agentprof-profile` document, from disk or an exporter's /profile. A
 * profile it accepts is printed (the table, both widths), written as the
 * report's HTML, written back and read again: that must give the same groups,
 * and diffed with what was read back, no row may be worse or better.
 */
#include <string.h>

#include "diff.h"
#include "fuzz.h"
#include "profile.h"
#include "report.h"
#include "table.h"

/* A profile against its own round trip: the same numbers, so nothing flagged. Frees both. */
static void diff_self(struct profile *p, struct profile *q)
{
	struct diff d = {.o = {.threshold = 0.1, .min_ns = 1e6, .min_count = 0.5, .z = DIFF_Z},
			 .before = {.path = "fuzz", .p = p},
			 .after = {.path = "fuzz round trip", .p = q}};

	if (!diff__compute(&d))
		FUZZ_CHECK(!d.worse && !d.better, "a profile against itself: %zu worse, %zu better",
			   d.worse, d.better);
	diff__free(&d);
}

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
	if (devnull) {
		table__print(p, devnull, false);
		table__print(p, devnull, true);
		report__write(p, "fuzz", devnull);
	}
	j = profile__json(p, NULL);
	s = json_object_to_json_string_length(j, JSON_C_TO_STRING_PLAIN, &len);
	q = profile__load_buf(s, len, "fuzz round trip", err, sizeof(err));
	FUZZ_CHECK(q != NULL, "a loaded profile written back does not load: %s", err);
	if (q)
		FUZZ_CHECK(profile__ngroups(q) == profile__ngroups(p), "groups %zu, then %zu",
			   profile__ngroups(p), profile__ngroups(q));
	json_object_put(j);
	if (q)
		diff_self(p, q);
	else
		profile__free(p);
	return 0;
}
