/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * agentprof's own BPF run time while it records (kernel BPF_ENABLE_STATS):
 * the probes run in the traced threads and their time lands in the CPU the
 * requests are charged, so plan takes it back out.
 */
#ifndef AGENTPROF_BPFSTATS_H
#define AGENTPROF_BPFSTATS_H

#include <stdint.h>

struct bpf_object;

struct bpfstats {
	int fd;		/* keeps run-time statistics on while open; -1: not available */
	uint64_t start_ns; /* the programs' run time when started */
};

/* Turns statistics on (best effort: fd stays -1 where the kernel refuses). */
void bpfstats__start(struct bpfstats *s, struct bpf_object *obj);
/* Run time of obj's programs since start, ns; 0 without statistics. */
uint64_t bpfstats__elapsed_ns(const struct bpfstats *s, struct bpf_object *obj);
void bpfstats__stop(struct bpfstats *s);

#endif /* AGENTPROF_BPFSTATS_H */
