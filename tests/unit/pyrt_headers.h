/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * struct pyrt_offsets as installed CPython headers lay it out, one entry per version.
 *
 * A translation unit can include the headers of one CPython only, so tests/unit/pyrt_headers.c
 * is compiled once per version (the Makefile, for each /usr/include/python3.X; tools/
 * pyrt-offsets.sh, for a source tree). Each object puts a pointer to its entry into the
 * "pyrt_headers" ELF section; the linker concatenates them and defines __start_/__stop_ symbols
 * around them, so a program sees every version it was linked with and needs no list of names.
 * Pointers, not the entries: the compiler may align a struct to more than its size, which would
 * leave gaps between entries that come from different objects.
 */
#ifndef AGENTPROF_PYRT_HEADERS_H
#define AGENTPROF_PYRT_HEADERS_H

#include "pyrt_offsets.h"

struct pyrt_headers {
	int major, minor;
	char version[16]; /* PY_VERSION of the headers, "3.11.2" */
	struct pyrt_offsets off;
};

/* Weak: with no entry linked in (no headers installed) both are NULL, not a link error. */
extern const struct pyrt_headers *const __start_pyrt_headers[] __attribute__((weak));
extern const struct pyrt_headers *const __stop_pyrt_headers[] __attribute__((weak));

/* h: a const struct pyrt_headers *const *, each *h one version's entry. */
#define pyrt_headers__for_each(h) for (h = __start_pyrt_headers; h && h < __stop_pyrt_headers; h++)

#endif /* AGENTPROF_PYRT_HEADERS_H */
