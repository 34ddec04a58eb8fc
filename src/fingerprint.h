/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * SQL statement fingerprinting, pg_stat_statements style.
 *
 * agentprof sees the SQL text a traced service sends to PostgreSQL. Before any
 * of it leaves the host, fingerprint__normalize() replaces every literal value
 * by a placeholder, so statements that differ only in their constants group
 * together and no constant (secret, personal data) is ever reported. The full
 * list of rules is at the top of fingerprint.c.
 */
#ifndef AGENTPROF_FINGERPRINT_H
#define AGENTPROF_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

/*
 * Normalizes the SQL text sql[0..len) into out (always NUL-terminated when
 * out_sz > 0; nothing is written when out_sz == 0). Input stops at the first
 * NUL byte. When the result does not fit, it is cut at a token or UTF-8
 * character boundary and "..." is appended. Returns strlen(out).
 */
size_t fingerprint__normalize(const char *sql, size_t len, char *out, size_t out_sz);

/* Stable 64-bit FNV-1a hash of a normalized statement, for grouping. */
uint64_t fingerprint__hash(const char *normalized);

#endif /* AGENTPROF_FINGERPRINT_H */
