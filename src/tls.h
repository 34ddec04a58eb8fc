/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Uprobes on libssl (SSL_write, SSL_read and their _ex variants) for the
 * plaintext of PostgreSQL over TLS: attached to every libssl the traced
 * processes map, or to the system's libssl.so.3 when none is mapped yet.
 */
#ifndef AGENTPROF_TLS_H
#define AGENTPROF_TLS_H

#include <stdbool.h>
#include <sys/types.h>

#define TLS_MAX_LIBS 8
#define TLS_PROGS 8

struct agentprof_bpf;
struct bpf_link;

struct tls {
	struct bpf_link *links[TLS_MAX_LIBS * TLS_PROGS];
	int nlinks;
	int nlibs;		/* fully probed */
	char libs[TLS_MAX_LIBS][256];
	int nfound;
	int nmapped;		/* found in the targets' maps, not by default */
};

/*
 * Finds the libssl files to probe; returns how many the targets map (before
 * load: only those make TLS PostgreSQL counted from plaintext alone, as a
 * target without libssl may do TLS some other way).
 */
int tls__find(struct tls *tls, const pid_t *pids, int npids);
/* Attaches what it can to the files found; returns the number fully probed. */
int tls__attach(struct tls *tls, struct agentprof_bpf *skel, bool verbose);
void tls__detach(struct tls *tls);

#endif /* AGENTPROF_TLS_H */
