/* SPDX-License-Identifier: GPL-2.0-only */
/* Target processes: existence, descendants, and a command started for tracing. */
#ifndef AGENTPROF_PROCS_H
#define AGENTPROF_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

bool procs__exists(pid_t pid);
/* The process (thread group) of a thread id; -1 when it does not exist. */
pid_t procs__tgid(pid_t pid);
/*
 * Calls fn for every live descendant of root (children, grandchildren...);
 * returns the number found or -errno.
 */
int procs__for_each_descendant(pid_t root, void (*fn)(pid_t pid, void *ctx), void *ctx);
/*
 * Calls fn with the inode of every socket pid holds open, until fn returns
 * false; returns false if pid's fds could not be read.
 */
bool procs__for_each_socket(pid_t pid, bool (*fn)(unsigned long ino, void *ctx), void *ctx);

/* A command forked stopped: it execs only once procs__release() is called. */
struct launched {
	pid_t pid;
	int go_fd;  /* write end: closing it lets the child exec */
	int err_fd; /* read end: the child's errno if exec fails, EOF if it worked */
};

int procs__launch(char **argv, struct launched *l);
/* Lets the child exec; returns 0 once it did, or -errno of the failed exec. */
int procs__release(struct launched *l);

#endif /* AGENTPROF_PROCS_H */
