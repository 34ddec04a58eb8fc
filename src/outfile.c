// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"

#define LINES_BATCH (256 * 1024)

struct outfile {
	const char *path;
	int fd;	   /* the unnamed file (O_TMPFILE), tmp below, or path itself */
	char *tmp; /* a named temporary where O_TMPFILE is not supported */
	char *dir; /* NULL: path is a device or a pipe, written directly */
	char *target; /* the file path names: path, or a symlink's target */
};

struct lines {
	const char *path;
	int fd;
	char *buf;
	size_t len, cap;
	off_t size; /* what the file holds: whole lines */
};

static void describe(char *err, size_t errsz, const char *path, const char *dir, int e)
{
	if (e == ENOENT || e == ENOTDIR)
		snprintf(err, errsz, "cannot write %s: the directory %s does not exist: create it "
			 "or choose another path", path, dir);
	else if (e == EISDIR)
		snprintf(err, errsz, "cannot write %s: it is a directory: give a file name", path);
	else
		snprintf(err, errsz, "cannot write %s: %s: choose a path in a writable directory",
			 path, strerror(e));
}

static int outfile__open_tmp(struct outfile *o, mode_t mode)
{
	char *base, *copy;

	o->fd = open(o->dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
	if (o->fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return o->fd >= 0 ? 0 : -errno;
	/* No O_TMPFILE on this file system: a named temporary beside the path. */
	copy = strdup(o->target);
	if (!copy)
		return -ENOMEM;
	base = basename(copy);
	if (asprintf(&o->tmp, "%s/.%s.XXXXXX", o->dir, base) < 0) {
		o->tmp = NULL;
		free(copy);
		return -ENOMEM;
	}
	free(copy);
	o->fd = mkostemp(o->tmp, O_CLOEXEC);
	if (o->fd < 0) {
		free(o->tmp);
		o->tmp = NULL;
		return -errno;
	}
	return fchmod(o->fd, mode) ? -errno : 0;
}

/*
 * Where the file goes: the directory of path, or of a symlink's target (a
 * rename onto the link would replace the link). A path that names a device
 * or a pipe (/dev/stdout) is opened directly: a rename onto it would replace
 * the device node.
 */
static int outfile__place(struct outfile *o, mode_t *mode, char *err, size_t errsz)
{
	char *copy = NULL, resolved[PATH_MAX];
	struct stat st;
	mode_t mask;

	if (stat(o->path, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			describe(err, errsz, o->path, o->path, EISDIR);
			return -EISDIR;
		}
		if (!S_ISREG(st.st_mode)) {
			o->fd = open(o->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
			if (o->fd < 0) {
				describe(err, errsz, o->path, o->path, errno);
				return -errno;
			}
			return 0;
		}
		*mode = st.st_mode & 07777;
		if (realpath(o->path, resolved))
			copy = strdup(resolved);
	} else {
		mask = umask(0);
		umask(mask);
		*mode = 0666 & ~mask;
	}
	if (!copy)
		copy = strdup(o->path);
	o->target = copy ? strdup(copy) : NULL;
	o->dir = copy ? strdup(dirname(copy)) : NULL;
	free(copy);
	if (!o->dir || !o->target) {
		snprintf(err, errsz, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

struct outfile *outfile__open(const char *path, char *err, size_t errsz)
{
	struct outfile *o = calloc(1, sizeof(*o));
	mode_t mode = 0644;
	int e;

	if (!o) {
		snprintf(err, errsz, "out of memory");
		return NULL;
	}
	o->fd = -1;
	o->path = path;
	e = outfile__place(o, &mode, err, errsz);
	if (!e && o->dir) {
		e = outfile__open_tmp(o, mode);
		if (e)
			describe(err, errsz, path, o->dir, -e);
	}
	if (e) {
		outfile__discard(o);
		errno = -e;
		return NULL;
	}
	return o;
}

int outfile__fd(const struct outfile *o)
{
	return o->fd;
}

/* An unnamed file gets a temporary name first: linkat() will not replace a file. */
static int outfile__link(struct outfile *o, char **name)
{
	char proc[64];

	if (asprintf(name, "%s.agentprof-%d", o->target, (int)getpid()) < 0) {
		*name = NULL;
		return -ENOMEM;
	}
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o->fd);
	unlink(*name);
	if (!linkat(AT_FDCWD, proc, AT_FDCWD, *name, AT_SYMLINK_FOLLOW))
		return 0;
	/* No /proc mounted: the fd itself (needs CAP_DAC_READ_SEARCH, which root has). */
	if (!linkat(o->fd, "", AT_FDCWD, *name, AT_EMPTY_PATH))
		return 0;
	return -errno;
}

int outfile__commit(struct outfile *o)
{
	char *name = NULL;
	int err = 0;

	if (!o->dir) {
		err = close(o->fd) ? -errno : 0;
		o->fd = -1;
		outfile__discard(o);
		return err;
	}
	if (fsync(o->fd))
		err = -errno;
	if (!err && !o->tmp)
		err = outfile__link(o, &name);
	if (!err && rename(o->tmp ?: name, o->target))
		err = -errno;
	if (err && name)
		unlink(name);
	free(name);
	if (!err) {
		free(o->tmp);
		o->tmp = NULL;
	}
	outfile__discard(o);
	return err;
}

void outfile__discard(struct outfile *o)
{
	if (!o)
		return;
	if (o->fd >= 0)
		close(o->fd);
	if (o->tmp)
		unlink(o->tmp);
	free(o->tmp);
	free(o->dir);
	free(o->target);
	free(o);
}

struct lines *lines__open(const char *path, char *err, size_t errsz)
{
	struct lines *w = calloc(1, sizeof(*w));
	char *copy;
	int e;

	if (!w || !(w->buf = malloc(LINES_BATCH))) {
		free(w);
		snprintf(err, errsz, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	w->path = path;
	w->cap = LINES_BATCH;
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (w->fd < 0) {
		e = errno;
		copy = strdup(path);
		describe(err, errsz, path, copy ? dirname(copy) : path, e);
		free(copy);
		free(w->buf);
		free(w);
		errno = e;
		return NULL;
	}
	return w;
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

/*
 * A write that failed part way (the disk filled up) may have left half a
 * line: cut the file back to the last whole line that made it.
 */
static void lines__cut(struct lines *w, size_t written)
{
	while (written && w->buf[written - 1] != '\n')
		written--;
	w->size += written;
	if (ftruncate(w->fd, w->size) == 0)
		lseek(w->fd, w->size, SEEK_SET);
}

int lines__flush(struct lines *w)
{
	size_t off = 0;
	ssize_t n;
	int err = 0;

	while (off < w->len) {
		n = write(w->fd, w->buf + off, w->len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		off += n;
	}
	if (err)
		lines__cut(w, off);
	else
		w->size += off;
	/* A batch that failed is dropped: retrying would repeat its first lines. */
	w->len = 0;
	return err;
}

int lines__close(struct lines *w)
{
	int err;

	if (!w)
		return 0;
	err = lines__flush(w);
	if (close(w->fd) && !err)
		err = -errno;
	free(w->buf);
	free(w);
	return err;
}
