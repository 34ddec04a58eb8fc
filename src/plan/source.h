/* SPDX-License-Identifier: GPL-2.0-only */
/* Where plan reads a profile from: a file, or an exporter's /profile over HTTP. */
#ifndef AGENTPROF_PLAN_SOURCE_H
#define AGENTPROF_PLAN_SOURCE_H

#include <stddef.h>

#include "profile.h"

/* Loads PATH or http(s)://HOST/profile; NULL with err saying what failed and what to do. */
struct profile *source__load(const char *src, char *err, size_t errsz);

#endif /* AGENTPROF_PLAN_SOURCE_H */
