// SPDX-License-Identifier: GPL-2.0-only
/*
 * SQL fingerprinting: a small hand-written lexer modelled on PostgreSQL's
 * scan.l that turns statement text into a pg_stat_statements-style key.
 *
 * Rules:
 *  - Literals become placeholders $N, numbered from 1 in order of appearance
 *    in the query string (across all of its statements). Literals are: '...' (with '' escapes),
 * E'...' (backslash escapes), B'...', X'...', N'...', U&'...', string continuations
 * ('a'<newline>'b' is one literal), dollar-quoted $$...$$ and $tag$...$tag$, and numbers (integers,
 * decimals, exponents, PG16 0x/0o/0b and 1_000 forms, plus any identifier characters glued to them,
 * which PG16 rejects as "trailing junk"). Digits inside identifiers (t1, col_2) are not literals.
 *  - Existing parameters $1..$65535 are kept as they are and the numbering of
 *    placeholders continues after the highest one in the query string. A "$n"
 *    outside that range or with junk glued to it is treated as a literal.
 *  - TRUE, FALSE, NULL (and all other keywords and identifiers) are kept
 *    byte for byte, case untouched; "quoted identifiers" are kept.
 *  - Lists made only of constants collapse to "...", and the constants in
 *    them take no placeholder number:
 *      IN (1, 2, 3)                -> IN (...)
 *      VALUES (1, 'a'), (2, 'b')   -> VALUES (...)   (every row must qualify)
 *      ARRAY[1, 2, 3]              -> ARRAY[...]
 *    A constant item is: optional unary +/- signs, then a literal, a $n
 *    parameter, NULL, TRUE, FALSE or DEFAULT, then optional casts
 *    "::type name" (words, dots, [] only). Anything else (subqueries, function
 *    calls, column references, typmods) keeps the list as is, with each
 *    literal in it replaced as usual.
 *  - Typed literals keep their type: interval '1 day' -> interval $1,
 *    'x'::text -> $1::text. A sign stays an operator: -5 -> -$1, - 5 -> - $1.
 *  - Comments (-- to end of line, nested block comments) are removed and act
 *    as whitespace. Whitespace runs become one space; leading and trailing
 *    whitespace is dropped. A space is added where removing a literal would
 *    glue two words together ('a'AND -> $1 AND).
 *  - Statements are separated by "; "; empty statements and the trailing
 *    semicolon are dropped.
 *  - An unterminated literal (truncated capture) becomes one placeholder
 *    covering the rest of the input; an unterminated quoted identifier or
 *    comment is also never emitted (the identifier becomes a placeholder).
 *  - The input ends at len or the first NUL byte. Output that does not fit is
 *    cut at a token boundary for placeholders, never inside a UTF-8
 *    character, and "..." is appended.
 *
 * Assumes standard_conforming_strings = on (the default since 9.1): in plain
 * '...' strings a backslash is an ordinary character.
 */
#include "fingerprint.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define FP_MAX_PARAM 65535u

enum fp_kind {
	FP_EOF,
	FP_WORD,    /* keyword or identifier */
	FP_QIDENT,  /* "quoted identifier" */
	FP_LITERAL, /* anything that becomes a placeholder */
	FP_PARAM,   /* $n of the extended protocol */
	FP_SEMI,
	FP_PUNCT, /* one byte of operator or punctuation */
};

struct fp_token {
	enum fp_kind kind;
	bool ws_before; /* whitespace or comment right before the token */
	size_t start;
	size_t end;
	unsigned int param;
};

struct fp_lexer {
	const char *s;
	size_t len;
	size_t pos;
};

struct fp_out {
	char *buf;
	size_t limit; /* max text bytes: out_sz - 1 */
	size_t soft;  /* text bytes that still leave room for "..." */
	size_t len;
	size_t cut; /* where to cut when truncating */
	bool truncated;
};

static bool ch__is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool ch__is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool ch__is_ident_start(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c >= 0x80;
}

static bool ch__is_ident_cont(unsigned char c)
{
	return ch__is_ident_start(c) || ch__is_digit(c) || c == '$';
}

static unsigned char lexer__at(const struct fp_lexer *lx, size_t p)
{
	return p < lx->len ? (unsigned char)lx->s[p] : 0;
}

/* Skips whitespace and comments; returns whether anything was skipped. */
static bool lexer__skip_space(struct fp_lexer *lx)
{
	bool skipped = false;

	while (lx->pos < lx->len) {
		unsigned char c = lexer__at(lx, lx->pos);
		unsigned char n = lexer__at(lx, lx->pos + 1);

		if (ch__is_space(c)) {
			lx->pos++;
		} else if (c == '-' && n == '-') {
			while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
				lx->pos++;
		} else if (c == '/' && n == '*') {
			unsigned int depth = 1;

			lx->pos += 2;
			while (lx->pos < lx->len && depth) {
				c = lexer__at(lx, lx->pos);
				n = lexer__at(lx, lx->pos + 1);
				if (c == '/' && n == '*') {
					depth++;
					lx->pos += 2;
				} else if (c == '*' && n == '/') {
					depth--;
					lx->pos += 2;
				} else {
					lx->pos++;
				}
			}
			if (lx->pos > lx->len)
				lx->pos = lx->len;
		} else {
			break;
		}
		skipped = true;
	}
	return skipped;
}

/*
 * Scans a quoted string body starting right after its opening quote. Handles
 * '' (always) and backslash escapes (E strings), and the SQL continuation of
 * a string by another one after whitespace holding a newline. Returns the end
 * of the literal, or len when it is unterminated.
 */
static size_t lexer__scan_quoted(const struct fp_lexer *lx, size_t p, bool backslash)
{
	for (;;) {
		size_t q;
		bool newline = false;

		for (;;) {
			unsigned char c;

			if (p >= lx->len)
				return lx->len;
			c = lexer__at(lx, p);
			if (backslash && c == '\\') {
				p += 2;
			} else if (c == '\'') {
				if (lexer__at(lx, p + 1) != '\'')
					break;
				p += 2;
			} else {
				p++;
			}
		}
		p++; /* closing quote */

		for (q = p; q < lx->len && ch__is_space(lexer__at(lx, q)); q++)
			newline |= lx->s[q] == '\n' || lx->s[q] == '\r';
		if (!newline || lexer__at(lx, q) != '\'')
			return p;
		p = q + 1;
	}
}

/* Length of a dollar-quote tag ($$ or $tag$) at p, 0 if there is none. */
static size_t lexer__dollar_tag(const struct fp_lexer *lx, size_t p)
{
	size_t q = p + 1;

	if (lexer__at(lx, q) == '$')
		return 2;
	if (q >= lx->len || !ch__is_ident_start(lexer__at(lx, q)))
		return 0;
	while (q < lx->len && ch__is_ident_cont(lexer__at(lx, q)) && lx->s[q] != '$')
		q++;
	if (lexer__at(lx, q) != '$' || q >= lx->len)
		return 0;
	return q - p + 1;
}

static size_t lexer__scan_dollar(const struct fp_lexer *lx, size_t p, size_t tag_len)
{
	size_t q;

	for (q = p + tag_len; q + tag_len <= lx->len; q++) {
		if (lx->s[q] == '$' && !memcmp(lx->s + q, lx->s + p, tag_len))
			return q + tag_len;
	}
	return lx->len;
}

static size_t lexer__skip_digits(const struct fp_lexer *lx, size_t p)
{
	while (p < lx->len && (ch__is_digit(lexer__at(lx, p)) || lx->s[p] == '_'))
		p++;
	return p;
}

static size_t lexer__scan_number(const struct fp_lexer *lx, size_t p)
{
	unsigned char c = lexer__at(lx, p + 1);

	if (lexer__at(lx, p) == '0' &&
	    (c == 'x' || c == 'X' || c == 'o' || c == 'O' || c == 'b' || c == 'B')) {
		p += 2;
	} else {
		p = lexer__skip_digits(lx, p);
		if (lexer__at(lx, p) == '.' && lexer__at(lx, p + 1) != '.')
			p = lexer__skip_digits(lx, p + 1);
		c = lexer__at(lx, p);
		if (c == 'e' || c == 'E') {
			size_t q = p + 1;

			if (lexer__at(lx, q) == '+' || lexer__at(lx, q) == '-')
				q++;
			if (ch__is_digit(lexer__at(lx, q)))
				p = lexer__skip_digits(lx, q);
		}
	}
	/* hex digits, or junk glued to the number: all part of the literal */
	while (p < lx->len && ch__is_ident_cont(lexer__at(lx, p)))
		p++;
	return p;
}

static void lexer__scan_param(const struct fp_lexer *lx, struct fp_token *t)
{
	unsigned long value = 0;
	size_t p = t->start + 1;

	while (ch__is_digit(lexer__at(lx, p))) {
		if (value <= FP_MAX_PARAM)
			value = value * 10 + (lexer__at(lx, p) - '0');
		p++;
	}
	if (value > FP_MAX_PARAM || ch__is_ident_cont(lexer__at(lx, p))) {
		while (p < lx->len && ch__is_ident_cont(lexer__at(lx, p)))
			p++;
		t->kind = FP_LITERAL;
	} else {
		t->kind = FP_PARAM;
		t->param = (unsigned int)value;
	}
	t->end = p;
}

static size_t lexer__scan_qident(const struct fp_lexer *lx, size_t p, bool *terminated)
{
	for (; p < lx->len; p++) {
		if (lx->s[p] != '"')
			continue;
		if (lexer__at(lx, p + 1) != '"') {
			*terminated = true;
			return p + 1;
		}
		p++;
	}
	*terminated = false;
	return lx->len;
}

static bool lexer__literal_prefix(const struct fp_lexer *lx, struct fp_token *t, size_t word_end)
{
	unsigned char c = lexer__at(lx, t->start);

	if (word_end - t->start != 1)
		return false;
	if (lexer__at(lx, word_end) == '\'' && strchr("eEbBxXnN", c)) {
		t->end = lexer__scan_quoted(lx, word_end + 1, c == 'e' || c == 'E');
		return true;
	}
	if ((c == 'u' || c == 'U') && lexer__at(lx, word_end) == '&' &&
	    lexer__at(lx, word_end + 1) == '\'') {
		t->end = lexer__scan_quoted(lx, word_end + 2, false);
		return true;
	}
	return false;
}

static struct fp_token lexer__next(struct fp_lexer *lx)
{
	struct fp_token t = {0};
	unsigned char c;
	size_t p;

	t.ws_before = lexer__skip_space(lx);
	t.start = lx->pos;
	t.end = lx->pos;
	if (lx->pos >= lx->len) {
		t.kind = FP_EOF;
		return t;
	}

	p = t.start;
	c = lexer__at(lx, p);
	if (c == '\'') {
		t.kind = FP_LITERAL;
		t.end = lexer__scan_quoted(lx, p + 1, false);
	} else if (ch__is_ident_start(c)) {
		size_t q = p + 1;

		while (q < lx->len && ch__is_ident_cont(lexer__at(lx, q)))
			q++;
		if (lexer__literal_prefix(lx, &t, q)) {
			t.kind = FP_LITERAL;
		} else {
			t.kind = FP_WORD;
			t.end = q;
		}
	} else if (c == '"') {
		bool terminated;

		t.end = lexer__scan_qident(lx, p + 1, &terminated);
		t.kind = terminated ? FP_QIDENT : FP_LITERAL;
	} else if (ch__is_digit(c) || (c == '.' && ch__is_digit(lexer__at(lx, p + 1)))) {
		t.kind = FP_LITERAL;
		t.end = lexer__scan_number(lx, p);
	} else if (c == '$' && ch__is_digit(lexer__at(lx, p + 1))) {
		lexer__scan_param(lx, &t);
	} else if (c == '$' && lexer__dollar_tag(lx, p)) {
		t.kind = FP_LITERAL;
		t.end = lexer__scan_dollar(lx, p, lexer__dollar_tag(lx, p));
	} else if (c == ';') {
		t.kind = FP_SEMI;
		t.end = p + 1;
	} else {
		t.kind = FP_PUNCT;
		t.end = p + 1;
	}
	lx->pos = t.end;
	return t;
}

static bool token__is_punct(const struct fp_lexer *lx, const struct fp_token *t, char c)
{
	return t->kind == FP_PUNCT && lx->s[t->start] == c;
}

static bool token__is_word(const struct fp_lexer *lx, const struct fp_token *t, const char *word)
{
	size_t n = strlen(word);

	return t->kind == FP_WORD && t->end - t->start == n &&
	       !strncasecmp(lx->s + t->start, word, n);
}

/*
 * Accepts one constant list item starting at *t (see the rules at the top);
 * on success *t is the token following the item.
 */
static bool lexer__accept_const(struct fp_lexer *lx, struct fp_token *t)
{
	while (token__is_punct(lx, t, '-') || token__is_punct(lx, t, '+'))
		*t = lexer__next(lx);
	if (t->kind != FP_LITERAL && t->kind != FP_PARAM && !token__is_word(lx, t, "NULL") &&
	    !token__is_word(lx, t, "TRUE") && !token__is_word(lx, t, "FALSE") &&
	    !token__is_word(lx, t, "DEFAULT"))
		return false;
	*t = lexer__next(lx);

	/* casts: "::" written without space, then a type name */
	while (token__is_punct(lx, t, ':') && lexer__at(lx, t->end) == ':') {
		lexer__next(lx);
		*t = lexer__next(lx);
		if (t->kind != FP_WORD && t->kind != FP_QIDENT)
			return false;
		while (t->kind == FP_WORD || t->kind == FP_QIDENT || token__is_punct(lx, t, '.'))
			*t = lexer__next(lx);
		while (token__is_punct(lx, t, '[')) {
			*t = lexer__next(lx);
			if (!token__is_punct(lx, t, ']'))
				return false;
			*t = lexer__next(lx);
		}
	}
	return true;
}

/*
 * Checks whether the text after an opening bracket at from is a non-empty list
 * of constants closed by close. Sets *end past the closing bracket.
 */
static bool lexer__const_list(const struct fp_lexer *lx, size_t from, char close, size_t *end)
{
	struct fp_lexer l = *lx;
	struct fp_token t;

	l.pos = from;
	t = lexer__next(&l);
	for (;;) {
		if (!lexer__accept_const(&l, &t))
			return false;
		if (token__is_punct(&l, &t, close)) {
			*end = t.end;
			return true;
		}
		if (!token__is_punct(&l, &t, ','))
			return false;
		t = lexer__next(&l);
	}
}

/*
 * Checks whether the text after VALUES at from is rows of constants only:
 * (c, ...), (c, ...) ... Sets *open to the first "(" and *end past the last
 * row.
 */
static bool lexer__const_rows(const struct fp_lexer *lx, size_t from, struct fp_token *open,
			      size_t *end)
{
	struct fp_lexer l = *lx;
	struct fp_token t;

	l.pos = from;
	t = lexer__next(&l);
	*open = t;
	for (;;) {
		if (!token__is_punct(&l, &t, '(') || !lexer__const_list(&l, t.end, ')', end))
			return false;
		l.pos = *end;
		t = lexer__next(&l);
		if (!token__is_punct(&l, &t, ','))
			return true;
		t = lexer__next(&l);
	}
}

/* Highest $n parameter from from to the end of the query string. */
static unsigned int lexer__max_param(const struct fp_lexer *lx, size_t from)
{
	struct fp_lexer l = *lx;
	unsigned int max = 0;
	struct fp_token t;

	l.pos = from;
	for (t = lexer__next(&l); t.kind != FP_EOF; t = lexer__next(&l)) {
		if (t.kind == FP_PARAM && t.param > max)
			max = t.param;
	}
	return max;
}

/*
 * Appends n bytes. An atomic piece (placeholder, parameter, "(...)") is never
 * cut in the middle when the output is truncated.
 */
static void out__put(struct fp_out *o, const char *p, size_t n, bool atomic)
{
	size_t room, dots;

	if (o->truncated || !n)
		return;
	if (o->len <= o->soft && o->len + n > o->soft)
		o->cut = atomic ? o->len : o->soft;
	room = o->limit - o->len;
	if (n <= room) {
		memcpy(o->buf + o->len, p, n);
		o->len += n;
		return;
	}

	/* Does not fit: cut at o->cut, back off to a UTF-8 boundary, add "...". */
	memcpy(o->buf + o->len, p, room);
	o->truncated = true;
	o->len = o->cut;
	while (o->len > 0 && ((unsigned char)o->buf[o->len] & 0xc0) == 0x80)
		o->len--;
	dots = o->limit - o->len < 3 ? o->limit - o->len : 3;
	memcpy(o->buf + o->len, "...", dots);
	o->len += dots;
}

static unsigned char out__last(const struct fp_out *o)
{
	return o->len ? (unsigned char)o->buf[o->len - 1] : 0;
}

size_t fingerprint__normalize(const char *sql, size_t len, char *out, size_t out_sz)
{
	struct fp_lexer lx = {.s = sql, .len = sql ? strnlen(sql, len) : 0};
	struct fp_out o = {.buf = out};
	bool stmt_empty = true, pending_sep = false;
	unsigned int next_ph;
	struct fp_token t;

	if (!out || !out_sz)
		return 0;
	next_ph = lexer__max_param(&lx, 0) + 1;
	o.limit = out_sz - 1;
	o.soft = o.limit > 3 ? o.limit - 3 : 0;

	for (t = lexer__next(&lx); t.kind != FP_EOF; t = lexer__next(&lx)) {
		const char *text = lx.s + t.start;
		size_t text_len = t.end - t.start;
		bool atomic = t.kind == FP_PARAM;
		struct fp_token open;
		char ph[16];
		size_t end;

		if (t.kind == FP_SEMI) {
			pending_sep |= !stmt_empty;
			stmt_empty = true;
			continue;
		}

		if (stmt_empty) {
			if (pending_sep)
				out__put(&o, "; ", 2, false);
			pending_sep = false;
			stmt_empty = false;
		} else if (t.ws_before) {
			out__put(&o, " ", 1, false);
		}

		if (t.kind == FP_LITERAL) {
			snprintf(ph, sizeof(ph), "$%u", next_ph++);
			text = ph;
			text_len = strlen(ph);
			atomic = true;
		}
		/* never glue a placeholder to a neighbouring word */
		if (!t.ws_before && ch__is_ident_cont(out__last(&o)) &&
		    ch__is_ident_cont((unsigned char)text[0]))
			out__put(&o, " ", 1, false);
		out__put(&o, text, text_len, atomic);

		if (t.kind != FP_WORD)
			continue;
		if (token__is_word(&lx, &t, "IN") || token__is_word(&lx, &t, "ARRAY")) {
			struct fp_lexer peek = lx;
			char close = t.end - t.start == 2 ? ')' : ']';

			open = lexer__next(&peek);
			if (!token__is_punct(&lx, &open, close == ')' ? '(' : '[') ||
			    !lexer__const_list(&lx, open.end, close, &end))
				continue;
		} else if (token__is_word(&lx, &t, "VALUES")) {
			if (!lexer__const_rows(&lx, lx.pos, &open, &end))
				continue;
		} else {
			continue;
		}
		if (open.ws_before)
			out__put(&o, " ", 1, false);
		out__put(&o, lx.s[open.start] == '[' ? "[...]" : "(...)", 5, true);
		lx.pos = end;
	}

	out[o.len] = '\0';
	return o.len;
}

uint64_t fingerprint__hash(const char *normalized)
{
	const unsigned char *p = (const unsigned char *)normalized;
	uint64_t h = 0xcbf29ce484222325ULL;

	if (!p)
		return h;
	for (; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}
