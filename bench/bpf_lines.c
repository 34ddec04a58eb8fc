// SPDX-License-Identifier: GPL-2.0-only
/*
 * bpf_lines: perf samples inside a loaded BPF program, per line of its source.
 *
 * Usage: bpf_lines PROG_ID < OFFSETS
 *
 * OFFSETS holds "COUNT FUNC 0xOFFSET" lines: how many samples fell at that
 * offset from the start of function FUNC's JIT image, FUNC being the
 * program itself or one of its global functions (perf script's sym and
 * symoff fields for the bpf_prog_<tag>_<FUNC> symbol: a global function
 * is JITed as a symbol of its own). The kernel keeps, for every line-info
 * record of the program, the address its JIT code starts at
 * (jited_line_info); a sample belongs to the last record starting at or
 * before it. Output: "COUNT file:line: source", one per line-info record
 * hit, in program order. bench/perf-bpf.sh drives it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>

struct prog_lines {
	struct bpf_line_info *li;
	__u64 *addr;		/* JIT address of each li[i] */
	__u32 n;
	__u64 *ksyms;		/* JIT address of each function, the program's first */
	struct bpf_func_info *funcs;	/* each function's BTF type, same order */
	__u32 nfuncs;
	__u32 btf_id;
};

static int prog_lines_load(int fd, struct prog_lines *pl)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info), nks, nfi;
	int err;

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (!info.nr_line_info || info.nr_line_info != info.nr_jited_line_info)
		return -ENOENT;	/* no BTF line info, or not JITed */
	pl->n = info.nr_line_info;
	pl->btf_id = info.btf_id;
	nks = info.nr_jited_ksyms;
	nfi = info.nr_func_info;
	pl->li = calloc(pl->n, sizeof(*pl->li));
	pl->addr = calloc(pl->n, sizeof(*pl->addr));
	pl->ksyms = calloc(nks ? nks : 1, sizeof(*pl->ksyms));
	pl->funcs = calloc(nfi ? nfi : 1, sizeof(*pl->funcs));
	if (!pl->li || !pl->addr || !pl->ksyms || !pl->funcs)
		return -ENOMEM;
	memset(&info, 0, sizeof(info));
	info.nr_line_info = pl->n;
	info.line_info_rec_size = sizeof(*pl->li);
	info.line_info = (__u64)(unsigned long)pl->li;
	info.nr_jited_line_info = pl->n;
	info.jited_line_info_rec_size = sizeof(*pl->addr);
	info.jited_line_info = (__u64)(unsigned long)pl->addr;
	info.nr_jited_ksyms = nks;
	info.jited_ksyms = (__u64)(unsigned long)pl->ksyms;
	info.nr_func_info = nfi;
	info.func_info_rec_size = sizeof(*pl->funcs);
	info.func_info = (__u64)(unsigned long)pl->funcs;
	len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	/* Without func info (no BTF), only the program's own offsets resolve. */
	pl->nfuncs = nfi == nks ? nfi : 0;
	err = nks ? 0 : -ENOENT;
	return err;
}

/* JIT address of function name (the program or a global function of it), 0 if none. */
static __u64 func_start(const struct prog_lines *pl, const struct btf *btf, const char *name)
{
	const struct btf_type *t;
	const char *fn;
	__u32 i;

	for (i = 0; i < pl->nfuncs; i++) {
		t = btf__type_by_id(btf, pl->funcs[i].type_id);
		fn = t ? btf__name_by_offset(btf, t->name_off) : NULL;
		if (fn && !strcmp(fn, name))
			return pl->ksyms[i];
	}
	return i ? 0 : pl->ksyms[0];
}

/* The line-info record whose code holds addr: the last one starting at or before it. */
static int line_of(const struct prog_lines *pl, __u64 addr)
{
	int best = -1;
	__u32 i;

	for (i = 0; i < pl->n; i++)
		if (pl->addr[i] <= addr && (best < 0 || pl->addr[i] > pl->addr[best]))
			best = i;
	return best;
}

static void print_lines(const struct prog_lines *pl, const unsigned long *counts,
			const struct btf *btf)
{
	const char *file, *src, *base;
	__u32 i;

	for (i = 0; i < pl->n; i++) {
		if (!counts[i])
			continue;
		file = btf__name_by_offset(btf, pl->li[i].file_name_off);
		src = btf__name_by_offset(btf, pl->li[i].line_off);
		base = file ? strrchr(file, '/') : NULL;
		while (src && (*src == ' ' || *src == '\t'))
			src++;
		printf("%6lu %s:%u: %s\n", counts[i], base ? base + 1 : file ? file : "?",
		       BPF_LINE_INFO_LINE_NUM(pl->li[i].line_col), src ? src : "");
	}
}

int main(int argc, char **argv)
{
	struct prog_lines pl = {};
	unsigned long *counts = NULL, count, off;
	char func[128];
	__u64 start;
	struct btf *btf = NULL;
	int fd = -1, err, i;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PROG_ID < OFFSETS (\"COUNT FUNC 0xOFFSET\" lines)\n",
			argv[0]);
		return 2;
	}
	fd = bpf_prog_get_fd_by_id(atoi(argv[1]));
	if (fd < 0) {
		fprintf(stderr, "bpf_lines: program %s: %s (is it still loaded? run as root)\n",
			argv[1], strerror(errno));
		return 1;
	}
	err = prog_lines_load(fd, &pl);
	if (err) {
		fprintf(stderr, "bpf_lines: line info of program %s: %s\n", argv[1],
			err == -ENOENT ? "none (no BTF, or the JIT is off)" : strerror(-err));
		goto cleanup;
	}
	btf = btf__load_from_kernel_by_id(pl.btf_id);
	counts = calloc(pl.n, sizeof(*counts));
	if (!btf || !counts) {
		fprintf(stderr, "bpf_lines: loading the program's BTF failed: %s\n",
			strerror(errno));
		err = -1;
		goto cleanup;
	}
	while (scanf("%lu %127s %lx", &count, func, &off) == 3) {
		start = func_start(&pl, btf, func);
		if (!start)
			continue;
		i = line_of(&pl, start + off);
		if (i >= 0)
			counts[i] += count;
	}
	print_lines(&pl, counts, btf);
cleanup:
	btf__free(btf);
	free(counts);
	free(pl.li);
	free(pl.addr);
	free(pl.ksyms);
	free(pl.funcs);
	if (fd >= 0)
		close(fd);
	return err ? 1 : 0;
}
