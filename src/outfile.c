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

struct outfile {
	const char *path;
	int fd;	   /* the unnamed file (O_TMPFILE), tmp below, or path itself */
	char *tmp; /* a named temporary where O_TMPFILE is not supported */
	char *dir; /* NULL: path is a device or a pipe, written directly */
	char *target; /* the file path names: path, or a symlink's target */
};

void outfile__describe(char *err, size_t errsz, const char *path, const char *dir, int e)
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
			outfile__describe(err, errsz, o->path, o->path, EISDIR);
			return -EISDIR;
		}
		if (!S_ISREG(st.st_mode)) {
			o->fd = open(o->path, O_WRONLY | O_TRUNC | O_CLOEXEC);
			if (o->fd < 0) {
				outfile__describe(err, errsz, o->path, o->path, errno);
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
			outfile__describe(err, errsz, path, o->dir, -e);
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
