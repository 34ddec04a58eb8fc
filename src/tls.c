// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "agentprof.skel.h"
#include "tls.h"

/* Where Debian-like and RPM-like systems keep libssl, for a process yet to load it. */
static const char *const default_libs[] = {
	"/usr/lib/x86_64-linux-gnu/libssl.so.3",
	"/usr/lib/aarch64-linux-gnu/libssl.so.3",
	"/usr/lib64/libssl.so.3",
	"/usr/lib/libssl.so.3",
};

static bool seen(char libs[][256], int n, const char *path)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(libs[i], path))
			return true;
	return false;
}

/* Adds the libssl files pid maps to libs; returns the new count. */
static int maps_libssl(pid_t pid, char libs[][256], int n)
{
	char path[64], line[512], *file;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return n;
	while (n < TLS_MAX_LIBS && fgets(line, sizeof(line), f)) {
		file = strchr(line, '/');
		if (!file || !strstr(file, "/libssl.so"))
			continue;
		file[strcspn(file, "\n")] = '\0';
		if (!seen(libs, n, file))
			snprintf(libs[n++], 256, "%s", file);
	}
	fclose(f);
	return n;
}

static int attach_one(struct tls *tls, struct bpf_program *prog, const char *lib,
		      const char *func, bool ret, bool verbose)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = func, .retprobe = ret);
	struct bpf_link *link;

	link = bpf_program__attach_uprobe_opts(prog, -1 /* every process */, lib, 0, &opts);
	if (!link) {
		if (verbose)
			fprintf(stderr, "agentprof: uprobe on %s:%s failed: %s\n", lib, func,
				strerror(errno));
		return -errno;
	}
	tls->links[tls->nlinks++] = link;
	return 0;
}

int tls__find(struct tls *tls, const pid_t *pids, int npids)
{
	int n = 0, i;
	size_t k;

	for (i = 0; i < npids; i++)
		n = maps_libssl(pids[i], tls->libs, n);
	tls->nmapped = n;
	for (k = 0; !n && k < sizeof(default_libs) / sizeof(default_libs[0]); k++)
		if (!access(default_libs[k], R_OK))
			snprintf(tls->libs[n++], 256, "%s", default_libs[k]);
	tls->nfound = n;
	return tls->nmapped;
}

int tls__attach(struct tls *tls, struct agentprof_bpf *skel, bool verbose)
{
	struct {
		struct bpf_program *prog;
		const char *func;
		bool ret;
	} probes[TLS_PROGS] = {
		{ skel->progs.ap_sslw_e, "SSL_write", false },
		{ skel->progs.ap_sslw_x, "SSL_write", true },
		{ skel->progs.ap_sslr_e, "SSL_read", false },
		{ skel->progs.ap_sslr_x, "SSL_read", true },
		{ skel->progs.ap_sslwx_e, "SSL_write_ex", false },
		{ skel->progs.ap_sslwx_x, "SSL_write_ex", true },
		{ skel->progs.ap_sslrx_e, "SSL_read_ex", false },
		{ skel->progs.ap_sslrx_x, "SSL_read_ex", true },
	};
	int i, j, ok;

	for (i = 0; i < tls->nfound; i++) {
		ok = 0;
		for (j = 0; j < TLS_PROGS; j++)
			ok += !attach_one(tls, probes[j].prog, tls->libs[i], probes[j].func,
					  probes[j].ret, verbose);
		tls->nlibs += ok == TLS_PROGS;
	}
	return tls->nlibs;
}

void tls__detach(struct tls *tls)
{
	int i;

	for (i = 0; i < tls->nlinks; i++)
		bpf_link__destroy(tls->links[i]);
	tls->nlinks = 0;
}
