/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * JSON lines appended as the run goes (--requests), so that the file ends at
 * a line's end whatever happens to agentprof.
 *
 * One write(2) is not enough for that: a SIGKILL (or the OOM killer) that
 * lands while the kernel copies a batch stops the copy at a page boundary,
 * in the middle of a line. So the file is written by a small process of its
 * own, forked when the file is opened, that agentprof hands each batch to
 * and waits for. When agentprof dies, the writer reads what reached it,
 * writes the whole lines among it, and exits. Only a kill of the writer
 * itself mid-write (a whole process group or cgroup killed at once) can
 * still cut a line.
 */
#ifndef AGENTPROF_LINES_H
#define AGENTPROF_LINES_H

#include <stddef.h>

struct lines;

/*
 * Creates (truncates) path and starts its writer. NULL on failure, with
 * errno set and a message for the user in err.
 */
struct lines *lines__open(const char *path, char *err, size_t errsz);
/* Queues line (without its newline); flushes first when the batch is full. 0 or -errno. */
int lines__add(struct lines *w, const char *line, size_t len);
/*
 * Writes the queued whole lines and returns when they are in the file; 0 or
 * -errno. A batch that failed part way (the disk filled up) leaves the file
 * cut back to its last whole line and is dropped; later batches are tried.
 * -EPIPE: the writer is gone (killed), nothing more can be written.
 */
int lines__flush(struct lines *w);
/* Flushes, ends the writer and frees w; 0 or -errno. NULL is fine. */
int lines__close(struct lines *w);

#endif /* AGENTPROF_LINES_H */
