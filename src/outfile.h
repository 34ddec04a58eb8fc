/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Output files that lose nothing. Each is opened when the command starts, so
 * a path that cannot be written fails before any tracing, not after it.
 *
 * - struct outfile: a file written once at the end (the profile). It is
 *   written beside its path, unnamed, and takes the path in one rename(), so
 *   a crash mid-write leaves the previous file or none, never half of one.
 * - struct lines: JSON lines appended as the run goes (--requests). Lines are
 *   batched whole and each batch goes out in one write(2): a crash leaves the
 *   file ending at a line's end, never in the middle of one.
 */
#ifndef AGENTPROF_OUTFILE_H
#define AGENTPROF_OUTFILE_H

#include <stddef.h>

struct outfile;
struct lines;

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

/* Creates (truncates) path for JSON lines; NULL on failure as outfile__open(). */
struct lines *lines__open(const char *path, char *err, size_t errsz);
/* Queues line (without its newline); flushes first when the batch is full. 0 or -errno. */
int lines__add(struct lines *w, const char *line, size_t len);
/* Writes the queued whole lines; 0 or -errno. */
int lines__flush(struct lines *w);
/* Flushes, closes and frees w; 0 or -errno. NULL is fine. */
int lines__close(struct lines *w);

#endif /* AGENTPROF_OUTFILE_H */
