// SPDX-License-Identifier: GPL-2.0-only
/*
 * Route templating for request-targets.
 *
 * A path segment becomes ":id" when it looks like an identifier:
 *   - all digits: "8812";
 *   - a UUID, 8-4-4-4-12 hex digits in any case;
 *   - a hex token of >= 8 chars with at least one digit: hashes, "a1b2c3d4";
 *   - a token of >= 16 chars of [A-Za-z0-9_-] mixing letters and digits: base64url, ULIDs;
 *   - letters, one '_' or '-', then >= 3 digits: "user_12345", "order-991". Fewer digits
 *     ("page-2", "utf-8") and version-like tokens ("v2", "v1") stay as they are.
 * Anything else, percent-encoded bytes included, is copied as sent.
 */
#include "route.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ROUTE_ID ":id"
#define ROUTE_CUT "/..."
#define ROUTE_HEX_MIN 8
#define ROUTE_TOKEN_MIN 16
#define ROUTE_PREFIXED_DIGITS_MIN 3

struct route_seg {
	const char *p;
	size_t n;
};

static bool route__is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool route__is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool route__is_hex(char c)
{
	return route__is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static size_t route__span_digits(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && route__is_digit(s[i]))
		i++;
	return i;
}

static bool route__is_number(const char *s, size_t n)
{
	return n && route__span_digits(s, n) == n;
}

static bool route__is_uuid(const char *s, size_t n)
{
	size_t i;

	if (n != 36)
		return false;
	for (i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !route__is_hex(s[i]))
			return false;
	}
	return true;
}

static bool route__is_hex_id(const char *s, size_t n)
{
	bool digit = false;
	size_t i;

	if (n < ROUTE_HEX_MIN)
		return false;
	for (i = 0; i < n; i++) {
		if (!route__is_hex(s[i]))
			return false;
		digit |= route__is_digit(s[i]);
	}
	return digit;
}

static bool route__is_token_id(const char *s, size_t n)
{
	bool digit = false, alpha = false;
	size_t i;

	if (n < ROUTE_TOKEN_MIN)
		return false;
	for (i = 0; i < n; i++) {
		if (route__is_digit(s[i]))
			digit = true;
		else if (route__is_alpha(s[i]))
			alpha = true;
		else if (s[i] != '_' && s[i] != '-')
			return false;
	}
	return digit && alpha;
}

static bool route__is_prefixed_id(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && route__is_alpha(s[i]))
		i++;
	if (i == 0 || i == n || (s[i] != '_' && s[i] != '-'))
		return false;
	i++;
	return n - i >= ROUTE_PREFIXED_DIGITS_MIN && route__is_number(s + i, n - i);
}

static bool route__is_id(const char *s, size_t n)
{
	return route__is_number(s, n) || route__is_uuid(s, n) || route__is_hex_id(s, n) ||
	       route__is_token_id(s, n) || route__is_prefixed_id(s, n);
}

/* Skips "scheme://authority" of an absolute-form target; returns s when there is none. */
static const char *route__skip_absolute(const char *s, size_t n, size_t *rest)
{
	const char *slash;
	size_t i = 0;

	if (!n || !route__is_alpha(s[0]))
		return s;
	while (i < n && (route__is_alpha(s[i]) || route__is_digit(s[i]) || strchr("+-.", s[i])))
		i++;
	if (n - i < 3 || memcmp(s + i, "://", 3))
		return s;
	i += 3;
	slash = memchr(s + i, '/', n - i);
	*rest = slash ? n - (size_t)(slash - s) : 0;
	return slash ? slash : s + n;
}

/* Next non-empty segment at or after *pos; false when none is left. */
static bool route__next_seg(const char *path, size_t n, size_t *pos, struct route_seg *seg)
{
	size_t i = *pos, start;

	while (i < n && path[i] == '/')
		i++;
	if (i == n)
		return false;
	start = i;
	while (i < n && path[i] != '/')
		i++;
	seg->p = path + start;
	seg->n = i - start;
	*pos = i;
	return true;
}

/*
 * Writes "/seg" for each segment while it fits in budget bytes, stopping at the first that does
 * not (out may be NULL to measure). Returns the length written.
 */
static size_t route__render(const char *path, size_t n, char *out, size_t budget)
{
	struct route_seg seg;
	size_t len = 0, pos = 0;

	while (route__next_seg(path, n, &pos, &seg)) {
		if (route__is_id(seg.p, seg.n)) {
			seg.p = ROUTE_ID;
			seg.n = sizeof(ROUTE_ID) - 1;
		}
		if (len + 1 + seg.n > budget)
			return len;
		if (out) {
			out[len] = '/';
			memcpy(out + len + 1, seg.p, seg.n);
		}
		len += 1 + seg.n;
	}
	/* The root, and a trailing slash as sent. */
	if ((len == 0 || path[n - 1] == '/') && len + 1 <= budget) {
		if (out)
			out[len] = '/';
		len++;
	}
	return len;
}

/* s always fits: callers check out_sz first. */
static size_t route__copy(char *out, const char *s)
{
	size_t n = strlen(s);

	memcpy(out, s, n + 1);
	return n;
}

size_t route__template(const char *target, char *out, size_t out_sz)
{
	const char *path = target ? target : "";
	size_t n, full, len;

	if (!out || out_sz == 0)
		return 0;
	if (out_sz < 2)
		return route__copy(out, "");

	n = strcspn(path, "?#");
	if (n == 1 && path[0] == '*')
		return route__copy(out, "*");
	path = route__skip_absolute(path, n, &n);

	full = route__render(path, n, NULL, SIZE_MAX);
	if (full < out_sz) {
		len = route__render(path, n, out, full);
		out[len] = '\0';
		return len;
	}
	if (out_sz < sizeof(ROUTE_CUT))
		return route__copy(out, "/");

	/* Keep whole segments only, leaving room for the marker. */
	len = route__render(path, n, out, out_sz - sizeof(ROUTE_CUT));
	memcpy(out + len, ROUTE_CUT, sizeof(ROUTE_CUT));
	return len + sizeof(ROUTE_CUT) - 1;
}
