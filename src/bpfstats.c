// SPDX-License-Identifier: GPL-2.0-only
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>
#include <unistd.h>

#include "bpfstats.h"

static uint64_t run_ns(struct bpf_object *obj)
{
	struct bpf_prog_info info;
	struct bpf_program *prog;
	uint32_t len;
	uint64_t sum = 0;
	int fd;

	bpf_object__for_each_program(prog, obj) {
		fd = bpf_program__fd(prog);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		len = sizeof(info);
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			sum += info.run_time_ns;
	}
	return sum;
}

void bpfstats__start(struct bpfstats *s, struct bpf_object *obj)
{
	s->fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
	s->start_ns = s->fd >= 0 ? run_ns(obj) : 0;
}

uint64_t bpfstats__elapsed_ns(const struct bpfstats *s, struct bpf_object *obj)
{
	uint64_t now;

	if (s->fd < 0)
		return 0;
	now = run_ns(obj);
	return now > s->start_ns ? now - s->start_ns : 0;
}

void bpfstats__stop(struct bpfstats *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
