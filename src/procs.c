// SPDX-License-Identifier: GPL-2.0-only
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "procs.h"

pid_t procs__tgid(pid_t pid)
{
	char path[64], line[128];
	pid_t tgid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	return tgid;
}

bool procs__exists(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return access(path, F_OK) == 0;
}

bool procs__for_each_socket(pid_t pid, bool (*fn)(unsigned long ino, void *ctx), void *ctx)
{
	char dir[64], path[PATH_MAX], link[64];
	unsigned long ino;
	struct dirent *de;
	ssize_t n;
	DIR *d;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return false;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%lu]", &ino) == 1 && !fn(ino, ctx))
			break;
	}
	closedir(d);
	return true;
}

static pid_t read_ppid(const char *pid_dir)
{
	char path[300], buf[512], *close_paren;
	FILE *f;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid_dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	/* comm may hold spaces and parentheses: the fields resume after the last ')'. */
	close_paren = strrchr(buf, ')');
	if (!close_paren || sscanf(close_paren + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

struct proc_pair {
	pid_t pid, ppid;
};

static int list_procs(struct proc_pair **out)
{
	struct proc_pair *v = NULL, *nv;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;

	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n].pid = atoi(de->d_name);
		v[n].ppid = read_ppid(de->d_name);
		n++;
	}
	closedir(d);
	*out = v;
	return n;
}

int procs__for_each_descendant(pid_t root, void (*fn)(pid_t pid, void *ctx), void *ctx)
{
	struct proc_pair *v = NULL;
	pid_t *queue = NULL;
	int n, head = 0, tail = 0, i, found = 0;

	n = list_procs(&v);
	if (n < 0)
		return n;
	queue = malloc((n + 1) * sizeof(*queue));
	if (!queue) {
		free(v);
		return -ENOMEM;
	}
	queue[tail++] = root;
	while (head < tail) {
		pid_t parent = queue[head++];

		for (i = 0; i < n && tail <= n; i++) {
			if (v[i].ppid != parent || v[i].pid == root)
				continue;
			queue[tail++] = v[i].pid;
			fn(v[i].pid, ctx);
			found++;
		}
	}
	free(queue);
	free(v);
	return found;
}

int procs__launch(char **argv, struct launched *l)
{
	pid_t parent = getpid();
	int fds[2], errfds[2], err;
	char c;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	/* Closed by a successful exec (CLOEXEC): EOF tells the parent it worked. */
	if (pipe2(errfds, O_CLOEXEC)) {
		err = -errno;
		close(fds[0]);
		close(fds[1]);
		return err;
	}
	l->pid = fork();
	if (l->pid < 0) {
		err = -errno;
		close(fds[0]);
		close(fds[1]);
		close(errfds[0]);
		close(errfds[1]);
		return err;
	}
	if (l->pid == 0) {
		/* Its own process group: stopping it stops what it starts (sh -c ...). */
		setpgid(0, 0);
		/*
		 * Tracing stops when agentprof does, also when it is killed: COMMAND
		 * gets SIGTERM then (its own children, if any, are not reached).
		 */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close(fds[1]);
		close(errfds[0]);
		/* Wait until the parent traces us; EOF means go, or that it died. */
		while (read(fds[0], &c, 1) < 0 && errno == EINTR)
			;
		close(fds[0]);
		if (getppid() != parent)
			_exit(127);	/* agentprof is gone: never run untraced */
		execvp(argv[0], argv);
		err = errno;
		if (write(errfds[1], &err, sizeof(err)) < 0)
			_exit(126);
		_exit(127);
	}
	close(fds[0]);
	close(errfds[1]);
	l->go_fd = fds[1];
	l->err_fd = errfds[0];
	return 0;
}

int procs__release(struct launched *l)
{
	int child_errno = 0;
	ssize_t n;

	if (l->go_fd < 0)
		return 0;
	close(l->go_fd);
	l->go_fd = -1;
	do
		n = read(l->err_fd, &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(l->err_fd);
	l->err_fd = -1;
	return n == sizeof(child_errno) ? -child_errno : 0;
}
