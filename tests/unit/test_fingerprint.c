// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests for src/fingerprint.c: a table of (input, expected) pairs, edge
 * cases of truncation and hashing, and a property test checking that no
 * literal of 100k random SQL-ish strings ever reaches the output.
 *
 * FINGERPRINT_TEST_SEED=<n> reruns the random tests with another seed.
 */
#include "fingerprint.h"
#include "test.h"

#include <stdint.h>
#include <stdlib.h>

#define PROPERTY_ITERS 100000
#define FUZZ_ITERS 100000
#define BIG_OUT 4096

struct fp_case {
	const char *input;
	const char *expected;
};

static const struct fp_case fp_cases[] = {
    /* empty and comment-only input */
    {"", ""},
    {"   \n\t ", ""},
    {"-- only a comment", ""},
    {"/* only a block comment */", ""},
    {";", ""},
    /* plain literals */
    {"SELECT 1", "SELECT $1"},
    {"SELECT 'it''s'", "SELECT $1"},
    {"SELECT 'a\\'", "SELECT $1"},
    {"SELECT E'a\\'b'", "SELECT $1"},
    {"SELECT e'a\\\\', 'b'", "SELECT $1, $2"},
    {"SELECT E'it''s \\n'", "SELECT $1"},
    {"SELECT B'0101', X'FF', N'abc', U&'d\\0061t'", "SELECT $1, $2, $3, $4"},
    {"SELECT U&'d!0061t' UESCAPE '!'", "SELECT $1 UESCAPE $2"},
    {"SELECT 'a'\n   'b', 'c' 'd'", "SELECT $1, $2 $3"},
    {"SELECT $$it's$$", "SELECT $1"},
    {"SELECT $x$ a $y$ b $x$", "SELECT $1"},
    {"SELECT $fn$ x $$ y $fn$, 2", "SELECT $1, $2"},
    {"SELECT '--not a comment', '/*x*/'", "SELECT $1, $2"},
    {"SELECT 'héllo', naïve FROM t", "SELECT $1, naïve FROM t"},
    /* numbers, and digits that are not literals */
    {"SELECT 1.5, .5, 5., 1e10, 1.5E-3, 2e+7", "SELECT $1, $2, $3, $4, $5, $6"},
    {"SELECT 0x1F, 0o17, 0b101, 1_000_000", "SELECT $1, $2, $3, $4"},
    {"SELECT * FROM t WHERE x.t1 = 1", "SELECT * FROM t WHERE x.t1 = $1"},
    {"SELECT col_2, t1, a1b2 FROM t2", "SELECT col_2, t1, a1b2 FROM t2"},
    {"SELECT col::int FROM t", "SELECT col::int FROM t"},
    {"SELECT foo$bar, $1", "SELECT foo$bar, $1"},
    {"SELECT 1abc", "SELECT $1"},
    {"SELECT -5, - 5, 1 - -2", "SELECT -$1, - $2, $3 - -$4"},
    {"SELECT * FROM t LIMIT 10 OFFSET 20", "SELECT * FROM t LIMIT $1 OFFSET $2"},
    {"SELECT * FROM generate_series(1, 10) AS s(i)",
     "SELECT * FROM generate_series($1, $2) AS s(i)"},
    /* typed literals */
    {"SELECT now() - interval '5 min'", "SELECT now() - interval $1"},
    {"SELECT interval '1 day', 'x'::text, '5'::int", "SELECT interval $1, $2::text, $3::int"},
    {"SELECT DATE '2024-01-01'", "SELECT DATE $1"},
    /* keywords, identifiers, case */
    {"SELECT TRUE, false, NULL", "SELECT TRUE, false, NULL"},
    {"select Foo FROM Bar WHERE Baz = 'q'", "select Foo FROM Bar WHERE Baz = $1"},
    {"SELECT \"Weird \"\"col\"\" 1\" FROM \"T\"", "SELECT \"Weird \"\"col\"\" 1\" FROM \"T\""},
    {"SELECT x FROM t WHERE y='a'AND z=2", "SELECT x FROM t WHERE y=$1 AND z=$2"},
    /* extended-protocol parameters */
    {"SELECT $1, 'a'", "SELECT $1, $2"},
    {"SELECT $3, 'a', $1, 7", "SELECT $3, $4, $1, $5"},
    {"SELECT 'x' || $1", "SELECT $2 || $1"},
    {"SELECT $1abc", "SELECT $1"},
    {"SELECT $99999", "SELECT $1"},
    /* comments */
    {"SELECT 1 -- it's a comment\n, 2", "SELECT $1 , $2"},
    {"SELECT /* don't 'x' */ 1", "SELECT $1"},
    {"SELECT /* outer /* inner 'y' */ still */ 1", "SELECT $1"},
    {"SELECT a/*x*/FROM t", "SELECT a FROM t"},
    {"SELECT a-- trailing\nFROM t", "SELECT a FROM t"},
    {"SELECT 1 /* unterminated 'secret", "SELECT $1"},
    /* whitespace and statements */
    {"  SELECT\n\t 1  ;  ", "SELECT $1"},
    {"SELECT\r\n1", "SELECT $1"},
    {"SELECT 1;", "SELECT $1"},
    {"SELECT 1; SELECT 2", "SELECT $1; SELECT $2"},
    {"SELECT 1 ; ; SELECT 2 ;", "SELECT $1; SELECT $2"},
    {"SELECT 1; SELECT $2, 3", "SELECT $3; SELECT $2, $4"},
    {"SELECT \"a;b\", 1; SELECT 'c;d'", "SELECT \"a;b\", $1; SELECT $2"},
    /* IN-lists, VALUES rows, ARRAY constructors */
    {"SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (...)"},
    {"SELECT * FROM t WHERE id IN ($1, $2)", "SELECT * FROM t WHERE id IN (...)"},
    {"SELECT * FROM t WHERE id in('a', NULL, -1)", "SELECT * FROM t WHERE id in(...)"},
    {"SELECT * FROM t WHERE a IN (1,2) AND b = 3", "SELECT * FROM t WHERE a IN (...) AND b = $1"},
    {"SELECT * FROM t WHERE a NOT IN ('a'::text, 'b'::text)",
     "SELECT * FROM t WHERE a NOT IN (...)"},
    {"SELECT * FROM t WHERE a IN (SELECT id FROM u WHERE v = 5)",
     "SELECT * FROM t WHERE a IN (SELECT id FROM u WHERE v = $1)"},
    {"SELECT * FROM t WHERE a IN (b, 1)", "SELECT * FROM t WHERE a IN (b, $1)"},
    {"INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b')", "INSERT INTO t (a, b) VALUES (...)"},
    {"INSERT INTO t VALUES (1, 'a')", "INSERT INTO t VALUES (...)"},
    {"INSERT INTO t VALUES ($1, $2), (DEFAULT, NULL) RETURNING id",
     "INSERT INTO t VALUES (...) RETURNING id"},
    {"INSERT INTO t VALUES (1, now()), (2, 'b')", "INSERT INTO t VALUES ($1, now()), ($2, $3)"},
    {"INSERT INTO t DEFAULT VALUES", "INSERT INTO t DEFAULT VALUES"},
    {"SELECT * FROM (VALUES (1), (2)) AS v(x)", "SELECT * FROM (VALUES (...)) AS v(x)"},
    {"SELECT a FROM t WHERE b = ANY(ARRAY[1, 2, 3])", "SELECT a FROM t WHERE b = ANY(ARRAY[...])"},
    /* secrets in statements that are not queries */
    {"SET password = 'hunter2'", "SET password = $1"},
    {"ALTER ROLE bob PASSWORD 'md5abc'", "ALTER ROLE bob PASSWORD $1"},
    /* unterminated input (truncated capture) */
    {"SELECT 'abc", "SELECT $1"},
    {"SELECT E'abc\\'", "SELECT $1"},
    {"SELECT $$abc", "SELECT $1"},
    {"SELECT $tag$abc $ta", "SELECT $1"},
    {"SELECT \"unterminated ident", "SELECT $1"},
    {"SELECT 1, 'ab''", "SELECT $1, $2"},
};

static void test_cases(void)
{
	char out[256], name[TEST_NAME_MAX - 16];
	size_t i, n;

	for (i = 0; i < sizeof(fp_cases) / sizeof(fp_cases[0]); i++) {
		const struct fp_case *c = &fp_cases[i];

		n = fingerprint__normalize(c->input, strlen(c->input), out, sizeof(out));
		test__fmt_str(name, sizeof(name), c->input);
		ASSERT_STREQ(n == strlen(out) ? out : "<bad return value>", c->expected,
			     "normalize %s", name);
	}
}

static void test_truncation(void)
{
	static const char eacute[] = "SELECT \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9";
	static const char nul_sql[] = "SELECT 1\0'secret'";
	char out[64];
	size_t n;

	n = fingerprint__normalize("SELECT 'abc', col FROM t", 24, out, 12);
	ASSERT_STREQ(out, "SELECT ...", "truncate before a placeholder");
	ASSERT_EQ(n, strlen(out), "truncate returns strlen");

	n = fingerprint__normalize("SELECT 1", 8, out, 10);
	ASSERT_STREQ(out, "SELECT $1", "exact fit is not truncated");
	ASSERT_EQ(n, 9, "exact fit length");

	fingerprint__normalize("SELECT 1", 8, out, 9);
	ASSERT_STREQ(out, "SELEC...", "one byte short is truncated");

	fingerprint__normalize(eacute, strlen(eacute), out, 12);
	ASSERT_STREQ(out, "SELECT ...", "truncate never splits UTF-8 (backs off)");
	fingerprint__normalize(eacute, strlen(eacute), out, 13);
	ASSERT_STREQ(out, "SELECT \xc3\xa9...", "truncate keeps whole UTF-8 chars");

	memset(out, 'x', sizeof(out));
	n = fingerprint__normalize("SELECT 1", 8, out, 1);
	ASSERT_STREQ(out, "", "out_sz 1 gives empty string");
	ASSERT_EQ(n, 0, "out_sz 1 returns 0");

	n = fingerprint__normalize("SELECT 1", 8, out, 3);
	ASSERT_STREQ(out, "..", "out_sz 3 gives dots");

	memset(out, 'x', sizeof(out));
	n = fingerprint__normalize("SELECT 1", 8, out, 0);
	ASSERT_EQ(n, 0, "out_sz 0 returns 0");
	ASSERT_EQ(out[0], 'x', "out_sz 0 writes nothing");

	fingerprint__normalize(nul_sql, sizeof(nul_sql) - 1, out, sizeof(out));
	ASSERT_STREQ(out, "SELECT $1", "input stops at NUL");

	fingerprint__normalize("SELECT 1 LIMIT 5", 8, out, sizeof(out));
	ASSERT_STREQ(out, "SELECT $1", "input stops at len");

	n = fingerprint__normalize(NULL, 0, out, sizeof(out));
	ASSERT_STREQ(out, "", "NULL input");
}

static void fp__norm(const char *sql, char *out, size_t out_sz)
{
	fingerprint__normalize(sql, strlen(sql), out, out_sz);
}

static void test_hash(void)
{
	char a[128], b[128];

	ASSERT_EQ(fingerprint__hash(""), 0xcbf29ce484222325ULL, "fnv1a of empty");
	ASSERT_EQ(fingerprint__hash("a"), 0xaf63dc4c8601ec8cULL, "fnv1a of \"a\"");
	ASSERT_EQ(fingerprint__hash("foobar"), 0x85944171f73967e8ULL, "fnv1a of \"foobar\"");

	fp__norm("SELECT * FROM t WHERE id = 42 AND n IN (1,2)", a, sizeof(a));
	fp__norm("SELECT  *  FROM t WHERE id = 7 AND n IN (3) -- x", b, sizeof(b));
	ASSERT_EQ(fingerprint__hash(a), fingerprint__hash(b),
		  "same statement, other constants: same hash");
	fp__norm("SELECT * FROM u WHERE id = 42", b, sizeof(b));
	ASSERT_NE(fingerprint__hash(a), fingerprint__hash(b), "other statement: other hash");
}

/* --- property test ------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng__next(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

static unsigned int rng__below(unsigned int n)
{
	return (unsigned int)(rng__next() % n);
}

struct sbuf {
	char *p;
	size_t len;
	size_t cap;
};

static void sbuf__add(struct sbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			abort();
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static void sbuf__addc(struct sbuf *b, char c)
{
	char s[2] = {c, 0};

	sbuf__add(b, s);
}

static const char *const sql_words[] = {
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "t1",
    "col_2",
    "x.t1",
    "users",
    "IN",
    "NOT",
    "VALUES",
    "ARRAY",
    "INSERT",
    "INTO",
    "LIMIT",
    "OFFSET",
    "NULL",
    "TRUE",
    "false",
    "DEFAULT",
    "now()",
    "interval",
    "::int",
    "::text",
    "(",
    ")",
    "[",
    "]",
    ",",
    ";",
    "=",
    "-",
    "+",
    "*",
    "/",
    "||",
    "<>",
    "::",
    ".",
    "$1",
    "$2",
    "$7",
    "E",
    "U&",
    "\"Quoted \"\"id\"\" 1\"",
    "-- comment 'x' \"y\n",
    "/* c 'y' /* nested $$ */ */",
    "naïve",
    "\xe2\x82\xac",
};

static const char secret_chars[] = "abcdefghijklmnopqrstuvwxyz0123456789-_ ;,()";

static void gen__secret_body(struct sbuf *b, bool escapes, bool dollar)
{
	static const char *const specials[] = {"''", "\"", ";", "--", "/*", "$", "$$", "*/"};
	unsigned int i, n = 1 + rng__below(12);

	sbuf__add(b, "secret-");
	for (i = 0; i < n; i++) {
		unsigned int r = rng__below(16);

		if (r == 0 && dollar)
			sbuf__add(b, specials[rng__below(sizeof(specials) / sizeof(specials[0]))]);
		else if (r == 0)
			sbuf__add(b, specials[rng__below(5)]); /* no "$" inside $$...$$ */
		else if (r == 1 && escapes)
			sbuf__add(b, rng__below(2) ? "\\'" : "\\\\");
		else if (r == 2 && !escapes)
			sbuf__addc(b, '\\'); /* an ordinary char in a plain string */
		else
			sbuf__addc(b, secret_chars[rng__below(sizeof(secret_chars) - 1)]);
	}
}

static void gen__digits(struct sbuf *b, unsigned int max)
{
	unsigned int i, n = 1 + rng__below(max);

	for (i = 0; i < n; i++)
		sbuf__addc(b, (char)('0' + rng__below(10)));
}

/* Appends one well-formed literal holding a secret. */
static void gen__secret_literal(struct sbuf *b)
{
	static const char *const prefixes[] = {"'", "N'", "U&'", "b'" /* as text, still quoted */};

	switch (rng__below(12)) {
	case 0:
	case 1:
		sbuf__add(b, prefixes[rng__below(4)]);
		gen__secret_body(b, false, true);
		sbuf__add(b, "'");
		break;
	case 2:
		sbuf__add(b, rng__below(2) ? "E'" : "e'");
		gen__secret_body(b, true, true);
		sbuf__add(b, "'");
		break;
	case 3:
		sbuf__add(b, "$$");
		gen__secret_body(b, false, false);
		sbuf__add(b, "$$");
		break;
	case 4:
		sbuf__add(b, "$Q$"); /* Q is not in secret_chars: the tag cannot recur */
		gen__secret_body(b, false, true);
		sbuf__add(b, " $x$ $Q$");
		break;
	case 5:
		sbuf__add(b, "'");
		gen__secret_body(b, false, true);
		sbuf__add(b, "'\n  '");
		gen__secret_body(b, false, true);
		sbuf__add(b, "'");
		break;
	case 6:
		sbuf__add(b, "interval '");
		gen__secret_body(b, false, true);
		sbuf__add(b, "'::text");
		break;
	case 7:
		sbuf__add(b, "31337");
		gen__digits(b, 8);
		break;
	case 8:
		sbuf__add(b, rng__below(2) ? "31337" : ".31337");
		gen__digits(b, 4);
		sbuf__add(b, rng__below(2) ? "e-" : ".");
		gen__digits(b, 3);
		break;
	case 9:
		sbuf__add(b, rng__below(2) ? "0x31337" : "31337_");
		gen__digits(b, 6);
		break;
	case 10:
		sbuf__add(b, "X'31337");
		gen__digits(b, 6);
		sbuf__add(b, "'");
		break;
	default:
		sbuf__add(b, "-31337");
		gen__digits(b, 5);
		break;
	}
}

static bool ch__is_wordy(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= '0' && u <= '9') || (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') ||
	       u == '_' || u == '$' || u == '.' || u >= 0x80;
}

/* Whether gluing a and b would make one token of them (or open a comment). */
static bool gen__would_merge(char a, char b)
{
	return (ch__is_wordy(a) && (ch__is_wordy(b) || b == '\'')) || (a == '/' && b == '*') ||
	       (a == '-' && b == '-');
}

/*
 * Builds a random string of SQL fragments and secret literals. Fragments are
 * glued without whitespace only where SQL would lex them as separate tokens,
 * so every secret really is a literal; the string may then be cut anywhere,
 * like a truncated capture.
 */
static void gen__statement(struct sbuf *b)
{
	static const char *const seps[] = {" ", "\n", "\t", "  ", " /* 'x' */ ", "\r\n"};
	unsigned int i, n = 1 + rng__below(30);

	b->len = 0;
	sbuf__add(b, "");
	for (i = 0; i < n; i++) {
		struct sbuf frag = {0};

		if (rng__below(3) == 0)
			gen__secret_literal(&frag);
		else
			sbuf__add(&frag,
				  sql_words[rng__below(sizeof(sql_words) / sizeof(sql_words[0]))]);
		/*
		 * A newline between two quoted strings would continue the first
		 * (in its E mode) in SQL: keep such strings on one line.
		 */
		if (b->len && b->p[b->len - 1] == '\'' && frag.p[0] == '\'')
			sbuf__add(b, " ");
		else if (b->len && (rng__below(3) || gen__would_merge(b->p[b->len - 1], frag.p[0])))
			sbuf__add(b, seps[rng__below(sizeof(seps) / sizeof(seps[0]))]);
		sbuf__add(b, frag.p);
		free(frag.p);
	}
	if (rng__below(4) == 0)
		b->len = rng__below((unsigned int)b->len + 1);
}

static void test_property(void)
{
	unsigned int iter, leaks = 0, bad_len = 0, unstable = 0;
	struct sbuf b = {0};
	char first_bad[512] = "";
	const char *seed = getenv("FINGERPRINT_TEST_SEED");

	if (seed && strtoull(seed, NULL, 0))
		rng_state = strtoull(seed, NULL, 0);

	for (iter = 0; iter < PROPERTY_ITERS; iter++) {
		size_t out_sz = rng__below(8) ? BIG_OUT : rng__below(64);
		char *in, *out, *again;
		size_t n;

		gen__statement(&b);
		/* exact-size heap copies so ASan sees any over-read or over-write */
		in = malloc(b.len ? b.len : 1);
		out = malloc(out_sz ? out_sz : 1);
		again = malloc(BIG_OUT);
		if (!in || !out || !again)
			abort();
		memcpy(in, b.p, b.len);

		n = fingerprint__normalize(in, b.len, out, out_sz);
		if (!out_sz) {
			if (n)
				bad_len++;
		} else if (n >= out_sz || n != strlen(out)) {
			bad_len++;
		} else if (strstr(out, "secret") || strstr(out, "31337")) {
			if (!leaks++)
				snprintf(first_bad, sizeof(first_bad), "%.*s -> %.200s",
					 (int)(b.len < 200 ? b.len : 200), b.p, out);
		} else if (out_sz == BIG_OUT && n < BIG_OUT - 96) {
			/* not truncated: normalizing again changes nothing */
			fingerprint__normalize(out, n, again, BIG_OUT);
			if (strcmp(out, again) && !unstable++)
				snprintf(first_bad, sizeof(first_bad), "%.200s -> %.200s", out,
					 again);
		}
		free(in);
		free(out);
		free(again);
	}
	free(b.p);

	if (first_bad[0])
		printf("# first failing example: %s\n", first_bad);
	ASSERT_EQ(leaks, 0, "property: no secret in %d random statements", PROPERTY_ITERS);
	ASSERT_EQ(bad_len, 0, "property: return value is strlen(out) < out_sz");
	ASSERT_EQ(unstable, 0, "property: normalize is idempotent");
}

/* Random bytes from the characters the lexer cares about: no crash, valid result. */
static void test_fuzz(void)
{
	static const char alphabet[] = "'\"$\\-/*;()[],:.eEbBxXuUnN&_0123456789aZ \n\t\x80\xc3\xa9";
	unsigned int iter, bad = 0;
	char first_bad[256] = "";

	for (iter = 0; iter < FUZZ_ITERS; iter++) {
		size_t i, len = rng__below(48), out_sz = 1 + rng__below(80);
		char *in = malloc(len ? len : 1), *out = malloc(out_sz);
		size_t n;

		if (!in || !out)
			abort();
		for (i = 0; i < len; i++)
			in[i] = alphabet[rng__below(sizeof(alphabet) - 1)];
		n = fingerprint__normalize(in, len, out, out_sz);
		if ((n >= out_sz || n != strlen(out)) && !bad++) {
			char text[64];

			memcpy(text, in, len);
			text[len] = '\0';
			test__fmt_str(first_bad, sizeof(first_bad), text);
		}
		free(in);
		free(out);
	}
	if (first_bad[0])
		printf("# first failing example: %s\n", first_bad);
	ASSERT_EQ(bad, 0, "fuzz: %d random byte strings, valid return value", FUZZ_ITERS);
}

TEST_MAIN(test_cases, test_truncation, test_hash, test_property, test_fuzz)
