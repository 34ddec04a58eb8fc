// SPDX-License-Identifier: GPL-2.0-only
/*
 * The SQL fingerprint lexer (src/fingerprint.c) on any statement text. Its
 * invariant: no literal survives. Checked two ways: a fingerprint is a fixed
 * point (a literal left in it would be replaced the second time), and an
 * independent scan of the output finds no quote outside a quoted identifier
 * and no number outside a word or a $n placeholder. A short output buffer,
 * from the first byte, takes the cut-off paths.
 */
#include <stdbool.h>
#include <string.h>

#include "fingerprint.h"
#include "fuzz.h"

#define FP_IN_MAX 1024
#define FP_OUT_BIG (FP_IN_MAX * 8) /* `1,1,...` grows threefold: never cut */

static bool fp_wordy(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '$' || c >= 0x80;
}

/* Where in out a literal shows, or -1. */
static long fp_literal_at(const char *out)
{
	const unsigned char *s = (const unsigned char *)out, *p = s;

	while (*p) {
		if (*p == '"') {
			/* A quoted identifier, "" inside it an escaped quote. */
			for (p++; *p && !(p[0] == '"' && p[1] != '"'); p += p[0] == '"' ? 2 : 1)
				;
			if (*p)
				p++;
		} else if (*p == '\'') {
			return p - s;
		} else if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
			for (p++; *p >= '0' && *p <= '9'; p++)
				;
		} else if (*p >= '0' && *p <= '9') {
			return p - s;
		} else if (*p == '.' && p[1] >= '0' && p[1] <= '9') {
			return p + 1 - s;
		} else if (fp_wordy(*p)) {
			while (fp_wordy(*p))
				p++;
		} else {
			p++;
		}
	}
	return -1;
}

FUZZ_TARGET(fingerprint)
{
	static char out[FP_OUT_BIG], again[FP_OUT_BIG], cut[300];
	size_t n, m, cut_sz;
	char *sql;
	long at;

	if (size < 1 || size > FP_IN_MAX + 1)
		return 0;
	cut_sz = data[0] % sizeof(cut);
	sql = malloc(size - 1 ? size - 1 : 1);
	if (!sql)
		return 0;
	memcpy(sql, data + 1, size - 1);
	n = fingerprint__normalize(sql, size - 1, out, sizeof(out));
	FUZZ_CHECK(n == strlen(out) && n < sizeof(out), "length %zu", n);
	at = fp_literal_at(out);
	FUZZ_CHECK(at < 0, "a literal survives at %ld of \"%s\"", at, out);
	m = fingerprint__normalize(out, n, again, sizeof(again));
	FUZZ_CHECK(m == n && !strcmp(out, again), "not a fixed point: \"%s\" -> \"%s\"", out,
		   again);
	n = fingerprint__normalize(sql, size - 1, cut, cut_sz);
	FUZZ_CHECK(cut_sz == 0 || (n == strlen(cut) && n < cut_sz), "cut length %zu of %zu", n,
		   cut_sz);
	FUZZ_CHECK(cut_sz == 0 || fp_literal_at(cut) < 0, "a literal survives the cut: \"%s\"",
		   cut);
	free(sql);
	return 0;
}
