/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_LINKS_H
#define AGENTPROF_LINKS_H

struct bpf_link;

/*
 * Destroys the n links *links[i] (NULL ones skipped) side by side, setting
 * each to NULL. A detach waits out the hook's grace period (~100 ms for
 * syscall tracepoints and uprobes); one after the other, agentprof's links
 * took over a second at every exit. The threads exit together, once every
 * link is destroyed.
 */
void links__destroy(struct bpf_link **links[], int n);

#endif /* AGENTPROF_LINKS_H */
