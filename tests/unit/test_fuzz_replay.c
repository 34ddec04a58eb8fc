// SPDX-License-Identifier: GPL-2.0-only
/*
 * Replays the fuzz targets' regression inputs (tests/fuzz/regress/TARGET/:
 * what the fuzzers once crashed on or broke an invariant with, fixed since)
 * through the same target code, in the unit suite: under ASan and UBSan in
 * the sanitizer build (make test SANITIZE=1), as plain checks otherwise.
 */
#define FUZZ_REPLAY
#include "../fuzz/fuzz_fingerprint.c"
#include "../fuzz/fuzz_http.c"
#include "../fuzz/fuzz_pg.c"
#include "../fuzz/fuzz_profile.c"
#include "../fuzz/fuzz_request.c"

#include <dirent.h>
#include <string.h>

#include "test.h"

struct replay_target {
	const char *name;
	int (*fn)(const uint8_t *data, size_t size);
};

static const struct replay_target targets[] = {
	{"http", fuzz_http},
	{"pg", fuzz_pg},
	{"fingerprint", fuzz_fingerprint},
	{"profile", fuzz_profile},
	{"request", fuzz_request},
};

static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n ? n : 1);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*size = n;
	}
	fclose(f);
	return buf;
}

/* The repository, from this file's path as the compiler saw it (make runs at the root). */
static void regress_dir(char *out, size_t sz, const char *target)
{
	const char *me = __FILE__, *tail = strstr(me, "tests/unit/");

	snprintf(out, sz, "%.*stests/fuzz/regress/%s", tail ? (int)(tail - me) : 0, me, target);
}

static void replay(const struct replay_target *t)
{
	char dir[512], path[1024];
	struct dirent *de;
	uint8_t *data;
	size_t size;
	int before, n = 0;
	DIR *d;

	regress_dir(dir, sizeof(dir), t->name);
	d = opendir(dir);
	ASSERT_TRUE(d != NULL, "regress/%s exists", t->name);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		data = slurp(path, &size);
		ASSERT_TRUE(data != NULL, "%.40s/%.80s read", t->name, de->d_name);
		if (!data)
			continue;
		before = fuzz__broken;
		t->fn(data, size);
		ASSERT_EQ(fuzz__broken - before, 0, "%.40s/%.80s: every invariant holds", t->name,
			  de->d_name);
		free(data);
		n++;
	}
	closedir(d);
	printf("# %s: %d regression inputs replayed\n", t->name, n);
}

static void test_replay(void)
{
	size_t i;

	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++)
		replay(&targets[i]);
}

TEST_MAIN(test_replay)
