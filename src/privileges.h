/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The capabilities a command needs, checked up front so that a container
 * granted too few fails with the name of the one missing rather than with
 * an EPERM from deep inside a load.
 */
#ifndef AGENTPROF_PRIVILEGES_H
#define AGENTPROF_PRIVILEGES_H

#include <stdbool.h>
#include <stddef.h>

struct privilege {
	int cap;	  /* CAP_* number */
	const char *name; /* "CAP_BPF" */
	const char *why;  /* what it is needed for */
};

/* Whether the calling thread holds capability cap in its effective set. */
bool privileges__have(int cap);

/*
 * 0 when every one of the n privileges is held; else -EPERM with err naming
 * the first one missing, why it is needed and the whole set to grant.
 */
int privileges__check(const struct privilege *need, size_t n, char *err, size_t errsz);

#endif /* AGENTPROF_PRIVILEGES_H */
