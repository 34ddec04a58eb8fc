// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lines.h"
#include "outfile.h"

#define LINES_BATCH (256 * 1024)

struct lines {
	int sock;     /* to the writer */
	pid_t writer; /* 0 once reaped */
	char *buf;
	size_t len, cap;
};

/*
 * The writer's side. It runs in a forked copy of a process that may have had
 * threads, so it allocates nothing and calls only what is safe after fork().
 */
struct writer {
	int fd, sock;
	char *buf;
	size_t cap;
	off_t size; /* what the file holds: whole lines */
};

static size_t read_full(int fd, void *p, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n) {
		r = read(fd, (char *)p + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	return got;
}

/*
 * Appends buf[0, n) to the file; a write that fails part way (the disk filled
 * up) has the file cut back to the last whole line that made it. 0 or errno.
 */
static int writer__put(struct writer *wr, size_t n)
{
	size_t off = 0;
	ssize_t r;
	int err;

	while (off < n) {
		r = write(wr->fd, wr->buf + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto cut;
		off += r;
	}
	wr->size += n;
	return 0;
cut:
	err = errno;
	while (off && wr->buf[off - 1] != '\n')
		off--;
	wr->size += off;
	if (ftruncate(wr->fd, wr->size) == 0)
		lseek(wr->fd, wr->size, SEEK_SET);
	return err;
}

/*
 * One batch: a length, then that many bytes of whole lines. Whole lines go
 * to the file as they arrive; if agentprof dies mid-batch, what follows the
 * last newline received is half a line and is dropped. After a failed write
 * the rest of the batch is read and dropped, so agentprof is never left
 * blocked on a full socket. Returns errno for the batch, or -1 at the end.
 */
static int writer__batch(struct writer *wr)
{
	uint64_t left;
	size_t have = 0, end;
	ssize_t r;
	int err = 0;

	if (read_full(wr->sock, &left, sizeof(left)) != sizeof(left))
		return -1;
	while (left) {
		r = read(wr->sock, wr->buf + have, left < wr->cap - have ? left : wr->cap - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += r;
		left -= r;
		end = have;
		while (left && end && wr->buf[end - 1] != '\n')
			end--;
		/* A line longer than the buffer goes out in pieces. */
		if (!end)
			end = have;
		if (!err)
			err = writer__put(wr, end);
		memmove(wr->buf, wr->buf + end, have - end);
		have -= end;
	}
	return left ? -1 : err;
}

/* Closes every fd but keep[0..2]: the writer holds none of agentprof's (BPF objects, stdout). */
static void close_all_but(int keep[3])
{
	unsigned int lo = 0;
	int i, j, t;

	for (i = 0; i < 3; i++)
		for (j = i + 1; j < 3; j++)
			if (keep[j] < keep[i]) {
				t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (i = 0; i < 3; i++) {
		if ((unsigned int)keep[i] > lo)
			close_range(lo, keep[i] - 1, 0);
		if ((unsigned int)keep[i] >= lo)
			lo = keep[i] + 1;
	}
	close_range(lo, ~0U, 0);
}

static void __attribute__((noreturn)) writer__run(struct writer *wr)
{
	/* stderr stays, for the sanitizers' reports. */
	int keep[3] = { wr->fd, wr->sock, STDERR_FILENO };
	int32_t reply;
	int err;

	close_all_but(keep);
	/* It ends when agentprof closes its socket, whatever signals it gets. */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);
	prctl(PR_SET_NAME, "agentprof-lines");
	for (;;) {
		err = writer__batch(wr);
		if (err < 0)
			break;
		reply = err;
		if (write(wr->sock, &reply, sizeof(reply)) != sizeof(reply))
			break;
	}
	fsync(wr->fd);
	_exit(0);
}

static int lines__start(struct lines *w, int fd)
{
	struct writer wr = { .fd = fd, .cap = LINES_BATCH };
	int sv[2];

	wr.buf = malloc(wr.cap);
	if (!wr.buf)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		free(wr.buf);
		return -errno;
	}
	w->writer = fork();
	if (w->writer == 0) {
		close(sv[0]);
		wr.sock = sv[1];
		writer__run(&wr);
	}
	free(wr.buf);
	close(sv[1]);
	if (w->writer < 0) {
		close(sv[0]);
		w->writer = 0;
		return -errno;
	}
	w->sock = sv[0];
	return 0;
}

struct lines *lines__open(const char *path, char *err, size_t errsz)
{
	struct lines *w = calloc(1, sizeof(*w));
	char *copy;
	int fd, e;

	if (!w || !(w->buf = malloc(LINES_BATCH))) {
		free(w);
		snprintf(err, errsz, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	w->cap = LINES_BATCH;
	w->sock = -1;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		e = errno;
		copy = strdup(path);
		outfile__describe(err, errsz, path, copy ? dirname(copy) : (char *)path, e);
		free(copy);
		goto fail;
	}
	e = -lines__start(w, fd);
	close(fd);
	if (e) {
		snprintf(err, errsz, "cannot start the writer of %s: %s", path, strerror(e));
		goto fail;
	}
	return w;
fail:
	free(w->buf);
	free(w);
	errno = e;
	return NULL;
}

int lines__add(struct lines *w, const char *line, size_t len)
{
	char *bigger;
	int err;

	if (w->len + len + 1 > w->cap) {
		err = lines__flush(w);
		if (err)
			return err;
	}
	if (len + 1 > w->cap) {
		bigger = realloc(w->buf, len + 1);
		if (!bigger)
			return -ENOMEM;
		w->buf = bigger;
		w->cap = len + 1;
	}
	memcpy(w->buf + w->len, line, len);
	w->buf[w->len + len] = '\n';
	w->len += len + 1;
	return 0;
}

static int send_full(int fd, const void *p, size_t n)
{
	size_t off = 0;
	ssize_t r;

	while (off < n) {
		/* MSG_NOSIGNAL: a writer that was killed is an error, not a SIGPIPE. */
		r = send(fd, (const char *)p + off, n - off, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		off += r;
	}
	return 0;
}

int lines__flush(struct lines *w)
{
	uint64_t n = w->len;
	int32_t reply;
	int err;

	if (!w->len)
		return 0;
	/* A batch that failed is dropped: retrying would repeat its first lines. */
	w->len = 0;
	if (w->sock < 0)
		return -EPIPE;
	err = send_full(w->sock, &n, sizeof(n));
	if (!err)
		err = send_full(w->sock, w->buf, n);
	if (!err && read_full(w->sock, &reply, sizeof(reply)) != sizeof(reply))
		err = -EPIPE;
	if (err) {
		close(w->sock);
		w->sock = -1;
		return err == -ECONNRESET ? -EPIPE : err;
	}
	return -reply;
}

int lines__close(struct lines *w)
{
	int err, status = 0;

	if (!w)
		return 0;
	err = lines__flush(w);
	if (w->sock >= 0)
		close(w->sock);
	/* The writer ends at the socket's end, once the file is on disk. */
	while (w->writer > 0 && waitpid(w->writer, &status, 0) < 0 && errno == EINTR)
		;
	if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		err = -EPIPE;
	free(w->buf);
	free(w);
	return err;
}
