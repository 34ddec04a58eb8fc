// SPDX-License-Identifier: GPL-2.0-only
/*
 * Feature probes: every feature has a name, an impact and a fix; the probes
 * close what they open; on a privileged run BTF and the ring buffer are ok.
 * Runs without root: the privileged assertions then become "cannot run".
 */
#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include "feature.h"
#include "test.h"

static int open_fds(void)
{
	struct dirent *ent;
	int n = 0;
	DIR *dir;

	dir = opendir("/proc/self/fd");
	if (!dir)
		return -1;
	while ((ent = readdir(dir)))
		if (ent->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

static void test_texts(void)
{
	int i, j, dup = -1;

	for (i = 0; i < FEAT__COUNT; i++) {
		const char *name = features__name(i);

		ASSERT_TRUE(name && name[0] && strcmp(name, "unknown"), "feature %d has a name", i);
		ASSERT_TRUE(features__impact(i)[0], "%s has an impact line", name);
		ASSERT_TRUE(features__fix(i)[0], "%s has a fix line", name);
		ASSERT_FALSE(strchr(features__impact(i), '\n') || strchr(features__fix(i), '\n'),
			     "%s impact and fix are one line each", name);
		for (j = 0; j < i; j++)
			if (!strcmp(name, features__name(j)))
				dup = i;
	}
	ASSERT_EQ(dup, -1, "no two features share a name");
	ASSERT_STREQ(features__name(FEAT__COUNT), "unknown", "out-of-range id is unknown");
}

static void test_can_run(void)
{
	struct features *f = calloc(1, sizeof(*f));
	int i;

	if (!f) {
		ASSERT_TRUE(false, "calloc struct features");
		return;
	}
	for (i = 0; i < FEAT__COUNT; i++)
		f->r[i].ok = true;
	f->r[FEAT_BTF].required = true;
	ASSERT_TRUE(features__can_run(f), "can run when everything is ok");
	f->r[FEAT_KPROBE].ok = false;
	ASSERT_TRUE(features__can_run(f), "can run with an optional feature missing");
	f->r[FEAT_BTF].ok = false;
	ASSERT_FALSE(features__can_run(f), "cannot run with a required feature missing");
	free(f);
}

static void test_probe(void)
{
	struct features *f = calloc(1, sizeof(*f));
	bool privileged;
	int fds, i;

	if (!f) {
		ASSERT_TRUE(false, "calloc struct features");
		return;
	}
	fds = open_fds();
	/* A unit test does not mount filesystems: tracefs is only looked for. */
	features__probe(f, false /* !mount_tracefs */);
	ASSERT_EQ(open_fds(), fds, "probes close every fd they open");

	for (i = 0; i < FEAT__COUNT; i++)
		ASSERT_TRUE(f->r[i].detail[0], "%s has a detail (%s)", features__name(i),
			    f->r[i].ok ? "ok" : "missing");
	ASSERT_FALSE(f->r[FEAT_TP_BTF].required && f->r[FEAT_RAW_TP].required &&
			 (f->r[FEAT_TP_BTF].ok || f->r[FEAT_RAW_TP].ok),
		     "tp_btf and raw_tp are alternatives");

	if (access("/sys/kernel/btf/vmlinux", R_OK) == 0)
		ASSERT_TRUE(f->r[FEAT_BTF].ok, "BTF ok: %.200s", f->r[FEAT_BTF].detail);

	privileged =
	    f->r[FEAT_CAP_SYS_ADMIN].ok || (f->r[FEAT_CAP_BPF].ok && f->r[FEAT_CAP_PERFMON].ok);
	if (geteuid() == 0)
		ASSERT_TRUE(privileged, "root has CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON");
	if (privileged) {
		ASSERT_TRUE(f->r[FEAT_RINGBUF].ok, "ring buffer ok: %.200s",
			    f->r[FEAT_RINGBUF].detail);
		ASSERT_TRUE(f->r[FEAT_TP_BTF].ok || f->r[FEAT_RAW_TP].ok,
			    "tp_btf or raw_tp ok: %.100s / %.100s", f->r[FEAT_TP_BTF].detail,
			    f->r[FEAT_RAW_TP].detail);
		ASSERT_TRUE(f->r[FEAT_MEMLOCK].ok, "memlock ok: %.200s", f->r[FEAT_MEMLOCK].detail);
		/* The tracepoint's event directory says the kernel has it (6.3+). */
		if (f->r[FEAT_TP_BTF].ok &&
		    access("/sys/kernel/tracing/events/sock/sock_recv_length", F_OK) == 0)
			ASSERT_TRUE(f->r[FEAT_SOCK_TP].ok, "socket tracepoints ok: %.200s",
				    f->r[FEAT_SOCK_TP].detail);
		ASSERT_FALSE(f->r[FEAT_SOCK_TP].required, "socket tracepoints are optional");
		if (f->r[FEAT_SOCK_TP].ok)
			ASSERT_FALSE(f->r[FEAT_TRACEPOINT].required,
				     "with socket tracepoints, syscall tracepoints are optional");
		/* A kernel with socket tracepoints (6.3+) has task storage for tracing (5.13+). */
		if (f->r[FEAT_SOCK_TP].ok)
			ASSERT_TRUE(f->r[FEAT_TASK_STORAGE].ok, "task storage ok: %.200s",
				    f->r[FEAT_TASK_STORAGE].detail);
		ASSERT_FALSE(f->r[FEAT_TASK_STORAGE].required, "task storage is optional");
	} else {
		ASSERT_FALSE(features__can_run(f), "cannot run without privileges");
		ASSERT_TRUE(f->r[FEAT_CAP_SYS_ADMIN].required, "missing privileges are required");
	}
	free(f);
}

TEST_MAIN(test_texts, test_can_run, test_probe)
