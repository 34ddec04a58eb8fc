/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The fuzz targets' frame. Each tests/fuzz/fuzz_NAME.c defines
 * FUZZ_TARGET(NAME) { ... } over one input. Built with clang's libFuzzer
 * (make fuzz) it is LLVMFuzzerTestOneInput() and a broken invariant aborts;
 * built into the unit test test_fuzz_replay (FUZZ_REPLAY) it is a plain
 * function that replays the regression inputs under tests/fuzz/regress/, and
 * a broken invariant is counted as a failure there.
 */
#ifndef AGENTPROF_FUZZ_H
#define AGENTPROF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef FUZZ_REPLAY
static int fuzz__broken;
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: broken: " __VA_ARGS__);                             \
			fputc('\n', stderr);                                                       \
			fuzz__broken++;                                                            \
		}                                                                                  \
	} while (0)
#define FUZZ_TARGET(name) int fuzz_##name(const uint8_t *data, size_t size)
#else
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz: broken: " __VA_ARGS__);                             \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)
#define FUZZ_TARGET(name)                                                                          \
	static int fuzz_##name(const uint8_t *data, size_t size);                                  \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)                               \
	{                                                                                          \
		return fuzz_##name(data, size);                                                    \
	}                                                                                          \
	static int fuzz_##name(const uint8_t *data, size_t size)
#endif

#endif /* AGENTPROF_FUZZ_H */
