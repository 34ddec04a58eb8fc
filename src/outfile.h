/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A file written once at the end (the profile), that loses nothing. It is
 * opened when the command starts, so a path that cannot be written fails
 * before any tracing, not after it. It is written beside its path, unnamed,
 * and takes the path in one rename(), so a crash mid-write leaves the
 * previous file or none, never half of one. (Lines appended as the run goes
 * are lines.h.)
 */
#ifndef AGENTPROF_OUTFILE_H
#define AGENTPROF_OUTFILE_H

#include <stddef.h>

struct outfile;

/*
 * Checks that path can be written and opens the file to write it into.
 * NULL on failure, with errno set and a message for the user in err.
 */
struct outfile *outfile__open(const char *path, char *err, size_t errsz);
/* Where to write the content. */
int outfile__fd(const struct outfile *o);
/* Gives the file its path (replacing what was there) and frees o; 0 or -errno. */
int outfile__commit(struct outfile *o);
/* Drops what was written and frees o; the path is left as it was. NULL is fine. */
void outfile__discard(struct outfile *o);

/* Says in err why path (in dir) cannot be written, from errno e, and what to do. */
void outfile__describe(char *err, size_t errsz, const char *path, const char *dir, int e);

#endif /* AGENTPROF_OUTFILE_H */
