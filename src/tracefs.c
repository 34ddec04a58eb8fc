// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <limits.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>

#include "tracefs.h"

#define TRACEFS_DEFAULT "/sys/kernel/tracing"
#define TRACEFS_DEBUGFS "/sys/kernel/debug/tracing"

static int tracefs__rank(const char *dir)
{
	if (strcmp(dir, TRACEFS_DEFAULT) == 0)
		return 0;
	if (strcmp(dir, TRACEFS_DEBUGFS) == 0)
		return 1;
	return 2;
}

static bool tracefs__copy(char *path_out, size_t sz, const char *dir)
{
	if (!path_out || !sz)
		return true;
	if ((size_t)snprintf(path_out, sz, "%s", dir) >= sz) {
		path_out[0] = '\0';
		return false;
	}
	return true;
}

static bool tracefs__scan(char *best, size_t sz, char *debugfs, size_t debugfs_sz)
{
	struct mntent *ent;
	int best_rank = 3;
	FILE *f;

	best[0] = '\0';
	debugfs[0] = '\0';
	f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return false;
	while ((ent = getmntent(f))) {
		if (strcmp(ent->mnt_type, "tracefs") == 0) {
			int rank = tracefs__rank(ent->mnt_dir);

			if (rank < best_rank && strlen(ent->mnt_dir) < sz) {
				snprintf(best, sz, "%s", ent->mnt_dir);
				best_rank = rank;
			}
		} else if (strcmp(ent->mnt_type, "debugfs") == 0 && !debugfs[0] &&
			   strlen(ent->mnt_dir) + sizeof("/tracing") <= debugfs_sz) {
			snprintf(debugfs, debugfs_sz, "%s/tracing", ent->mnt_dir);
		}
	}
	endmntent(f);
	return best[0] != '\0';
}

bool tracefs__mounted(char *path_out, size_t sz)
{
	char best[PATH_MAX], debugfs[PATH_MAX];
	char probe[PATH_MAX + 16];

	if (tracefs__scan(best, sizeof(best), debugfs, sizeof(debugfs)))
		return tracefs__copy(path_out, sz, best);
	if (!debugfs[0])
		return false;

	/*
	 * Since Linux 4.1 debugfs automounts tracefs at <debugfs>/tracing on
	 * first access, so it is absent from /proc/self/mounts until someone
	 * looks at it. Touch it, then scan again.
	 */
	snprintf(probe, sizeof(probe), "%s/events", debugfs);
	if (access(probe, F_OK))
		return false;
	if (tracefs__scan(best, sizeof(best), debugfs, sizeof(debugfs)))
		return tracefs__copy(path_out, sz, best);
	return false;
}

int tracefs__ensure(char *path_out, size_t sz, char *err, size_t errsz)
{
	int ret;

	if (err && errsz)
		err[0] = '\0';
	if (tracefs__mounted(path_out, sz))
		return 0;

	if (mount("nodev", TRACEFS_DEFAULT, "tracefs", 0, NULL)) {
		ret = -errno;
		goto fail;
	}
	if (!tracefs__copy(path_out, sz, TRACEFS_DEFAULT)) {
		if (err && errsz)
			snprintf(err, errsz,
				 "tracefs mount point does not fit in %zu bytes: "
				 "pass a larger buffer (PATH_MAX)",
				 sz);
		return -ENAMETOOLONG;
	}
	return 0;

fail:
	if (!err || !errsz)
		return ret;
	switch (-ret) {
	case ENODEV:
		snprintf(err, errsz,
			 "tracefs is not mounted and could not be mounted (%s): this kernel has no "
			 "tracefs (CONFIG_TRACING=n); use a kernel with tracing enabled",
			 strerror(-ret));
		break;
	case ENOENT:
		snprintf(err, errsz,
			 "tracefs is not mounted and could not be mounted (%s): " TRACEFS_DEFAULT
			 " does not exist; mount sysfs at /sys or mount -t tracefs nodev <dir>",
			 strerror(-ret));
		break;
	default:
		snprintf(err, errsz,
			 "tracefs is not mounted and could not be mounted (%s): run as root or "
			 "mount -t tracefs nodev " TRACEFS_DEFAULT,
			 strerror(-ret));
		break;
	}
	return ret;
}
