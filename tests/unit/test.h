/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A tiny unit-test framework in the spirit of the kernel selftests' ASSERT_* macros.
 *
 * Every check prints "ok - name" or "FAIL - name: got X, expected Y" and carries on, so one run
 * shows every failure; test_report() prints the one final "N passed, N failed" line and returns
 * the exit status. The name argument is a printf format followed by its arguments.
 *
 * ASSERT_EQ and friends compare integers of any signedness exactly (both sides go through
 * __int128) and evaluate each argument once. Use ASSERT_NEAR for doubles.
 */
#ifndef AGENTPROF_TEST_H
#define AGENTPROF_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TEST_NAME_MAX 256
#define TEST_VAL_MAX 48

static unsigned int test__passed, test__failed;

/* From the kernel's is_signed_type(): compares with 1, not 0, to keep -Wtype-limits quiet. */
#define TEST__IS_SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))1)

static inline void test__check(bool ok, const char *name, const char *got, const char *op,
			       const char *expected)
{
	if (ok) {
		test__passed++;
		printf("ok - %s\n", name);
		return;
	}
	test__failed++;
	printf("FAIL - %s: got %s, expected %s%s\n", name, got, op, expected);
}

static inline void test__fmt_int(char *buf, size_t n, __int128 v, bool is_signed)
{
	if (is_signed)
		snprintf(buf, n, "%lld", (long long)v);
	else
		snprintf(buf, n, "%llu", (unsigned long long)v);
}

/* Quotes s and escapes what would garble the terminal. */
static inline void test__fmt_str(char *buf, size_t n, const char *s)
{
	size_t o = 0;

	if (!s) {
		snprintf(buf, n, "NULL");
		return;
	}
	buf[o++] = '"';
	for (; *s && o + 6 < n; s++) {
		unsigned char c = *s;

		if (c >= ' ' && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = c;
		else
			o += snprintf(buf + o, n - o, "\\x%02x", c);
	}
	if (*s && o + 4 < n)
		o += snprintf(buf + o, n - o, "...");
	buf[o++] = '"';
	buf[o] = '\0';
}

#define TEST__CMP(a, op, b, opname, ...)                                                           \
	do {                                                                                       \
		__typeof__(a) test__a = (a);                                                       \
		__typeof__(b) test__b = (b);                                                       \
		__int128 test__x = test__a, test__y = test__b;                                     \
		char test__name[TEST_NAME_MAX], test__got[TEST_VAL_MAX];                           \
		char test__exp[TEST_VAL_MAX];                                                      \
		snprintf(test__name, sizeof(test__name), __VA_ARGS__);                             \
		test__fmt_int(test__got, sizeof(test__got), test__x, TEST__IS_SIGNED(test__a));    \
		test__fmt_int(test__exp, sizeof(test__exp), test__y, TEST__IS_SIGNED(test__b));    \
		test__check(test__x op test__y, test__name, test__got, opname, test__exp);         \
	} while (0)

#define ASSERT_EQ(a, b, ...) TEST__CMP(a, ==, b, "", __VA_ARGS__)
#define ASSERT_NE(a, b, ...) TEST__CMP(a, !=, b, "!= ", __VA_ARGS__)
#define ASSERT_LT(a, b, ...) TEST__CMP(a, <, b, "< ", __VA_ARGS__)
#define ASSERT_LE(a, b, ...) TEST__CMP(a, <=, b, "<= ", __VA_ARGS__)
#define ASSERT_GT(a, b, ...) TEST__CMP(a, >, b, "> ", __VA_ARGS__)
#define ASSERT_GE(a, b, ...) TEST__CMP(a, >=, b, ">= ", __VA_ARGS__)

#define TEST__BOOL(cond, want, ...)                                                                \
	do {                                                                                       \
		bool test__v = (cond);                                                             \
		char test__name[TEST_NAME_MAX];                                                    \
		snprintf(test__name, sizeof(test__name), __VA_ARGS__);                             \
		test__check(test__v == (want), test__name, test__v ? "true" : "false", "",         \
			    (want) ? "true" : "false");                                            \
	} while (0)

#define ASSERT_TRUE(cond, ...) TEST__BOOL(cond, true, __VA_ARGS__)
#define ASSERT_FALSE(cond, ...) TEST__BOOL(cond, false, __VA_ARGS__)

#define ASSERT_STREQ(a, b, ...)                                                                    \
	do {                                                                                       \
		const char *test__a = (a), *test__b = (b);                                         \
		char test__name[TEST_NAME_MAX], test__got[TEST_NAME_MAX];                          \
		char test__exp[TEST_NAME_MAX];                                                     \
		bool test__ok =                                                                    \
		    test__a && test__b ? !strcmp(test__a, test__b) : test__a == test__b;           \
		snprintf(test__name, sizeof(test__name), __VA_ARGS__);                             \
		test__fmt_str(test__got, sizeof(test__got), test__a);                              \
		test__fmt_str(test__exp, sizeof(test__exp), test__b);                              \
		test__check(test__ok, test__name, test__got, "", test__exp);                       \
	} while (0)

/* |a - b| <= tol, for doubles. */
#define ASSERT_NEAR(a, b, tol, ...)                                                                \
	do {                                                                                       \
		double test__a = (a), test__b = (b), test__tol = (tol);                            \
		double test__d = test__a > test__b ? test__a - test__b : test__b - test__a;        \
		char test__name[TEST_NAME_MAX], test__got[TEST_VAL_MAX];                           \
		char test__exp[TEST_VAL_MAX];                                                      \
		snprintf(test__name, sizeof(test__name), __VA_ARGS__);                             \
		snprintf(test__got, sizeof(test__got), "%.17g", test__a);                          \
		snprintf(test__exp, sizeof(test__exp), "%.17g +- %g", test__b, test__tol);         \
		test__check(test__d <= test__tol, test__name, test__got, "", test__exp);           \
	} while (0)

static inline int test_report(void)
{
	printf("%u passed, %u failed\n", test__passed, test__failed);
	fflush(stdout);
	return test__failed ? 1 : 0;
}

/* TEST_MAIN(test_a, test_b): a main() running each void (*)(void) in order, then the report. */
#define TEST_MAIN(...)                                                                             \
	int main(void)                                                                             \
	{                                                                                          \
		void (*const test__fns[])(void) = {__VA_ARGS__};                                   \
		size_t test__i;                                                                    \
		/* Line-buffered, so the output up to a crash is not lost. */                      \
		setvbuf(stdout, NULL, _IOLBF, 0);                                                  \
		for (test__i = 0; test__i < sizeof(test__fns) / sizeof(test__fns[0]); test__i++)   \
			test__fns[test__i]();                                                      \
		return test_report();                                                              \
	}

#endif /* AGENTPROF_TEST_H */
