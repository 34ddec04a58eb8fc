/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Processes that listen on a TCP socket: the candidates for HTTP servers
 * (export without -p). Each network namespace's listening sockets are read
 * once from /proc/<pid>/net/tcp{,6} of a process in it, so pods in their own
 * namespaces are found from the host's pid namespace.
 */
#ifndef AGENTPROF_LISTENERS_H
#define AGENTPROF_LISTENERS_H

#include <sys/types.h>

/*
 * Calls fn for every process but skip that holds a listening TCP socket;
 * returns how many, or -errno when /proc cannot be read.
 */
int listeners__for_each(pid_t skip, void (*fn)(pid_t pid, void *ctx), void *ctx);

#endif /* AGENTPROF_LISTENERS_H */
