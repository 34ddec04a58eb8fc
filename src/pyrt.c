// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agentprof.skel.h"
#include "agentprof/python.h"
#include "elf_sites.h"
#include "pyrt.h"
#include "pyrt_offsets.h"

/* A message into a fixed buffer; a path too long for it is cut short. */
static void __attribute__((format(printf, 3, 4))) note(char *buf, size_t sz, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sz, fmt, ap);
	va_end(ap);
}

/* 3.minor from a path naming "python3.N" or "libpython3.N"; -1 if it does not. */
static int version_of(const char *path)
{
	const char *p = strrchr(path, '/');
	int minor;

	p = p ? p + 1 : path;
	p = strstr(p, "python3.");
	if (!p || sscanf(p + strlen("python3."), "%d", &minor) != 1)
		return -1;
	return minor;
}

/* A file a process maps: its path and where its offset-0 page is. */
struct mapped {
	char path[PATH_MAX];
	unsigned long start;
};

/* What pyrt__add() needs of a process's mappings. */
struct scan {
	struct mapped run;	/* the runtime: executable or libpython */
	char aio[PATH_MAX];	/* _asyncio, "" if not loaded */
	/* Other files that import PyContext_CopyCurrent (_contextvars, uvloop, ...). */
	char copiers[PYRT_MAX_COPIERS][PATH_MAX];
	int ncopiers;
	bool too_many;		/* more than PYRT_MAX_COPIERS of them */
};

/* Whether the ELF file path imports PyContext_CopyCurrent. */
static bool copies_contexts(const char *path)
{
	struct elf_file ef;
	bool yes;

	if (elf_file_open(path, &ef))
		return false;
	yes = elf_imports(ef.e, "PyContext_CopyCurrent");
	elf_file_close(&ef);
	return yes;
}

static void scan_copier(struct scan *sc, const char *file)
{
	int i;

	for (i = 0; i < sc->ncopiers; i++)
		if (!strcmp(sc->copiers[i], file))
			return;
	if (!copies_contexts(file))
		return;
	if (sc->ncopiers == PYRT_MAX_COPIERS) {
		sc->too_many = true;
		return;
	}
	snprintf(sc->copiers[sc->ncopiers++], PATH_MAX, "%s", file);
}

/* Calls fn for each file pid maps, with where its offset-0 page is. */
static int maps_each(pid_t pid, void (*fn)(struct scan *, const char *, unsigned long),
		     struct scan *sc)
{
	char path[64], line[PATH_MAX + 128], *file;
	unsigned long start, end, off;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		file = strchr(line, '/');
		if (!file || sscanf(line, "%lx-%lx %*s %lx", &start, &end, &off) != 3 || off)
			continue;
		file[strcspn(file, "\n")] = '\0';
		fn(sc, file, start);
	}
	fclose(f);
	return 0;
}

/*
 * The runtime file: the first mapped file whose name says python3.N or
 * libpython3.N (the executable, or the library it links), with its base;
 * and the _asyncio extension, if loaded.
 */
static void take_runtime(struct scan *sc, const char *file, unsigned long start)
{
	if (!sc->run.path[0] && version_of(file) >= 0 && !strstr(file, "/lib-dynload/")) {
		snprintf(sc->run.path, sizeof(sc->run.path), "%s", file);
		sc->run.start = start;
	} else if (strstr(file, "/_asyncio.")) {
		snprintf(sc->aio, sizeof(sc->aio), "%s", file);
	}
}

/* The other files that make contexts: each mapped ELF file is opened to see. */
static void take_copier(struct scan *sc, const char *file, unsigned long start)
{
	(void)start;
	if (strcmp(file, sc->run.path) && strcmp(file, sc->aio))
		scan_copier(sc, file);
}

/* Returns 0 if pid maps a runtime file (sc->run). */
static int maps_scan(pid_t pid, struct scan *sc)
{
	int err = maps_each(pid, take_runtime, sc);

	if (err)
		return err;
	return sc->run.path[0] ? 0 : -ENOENT;
}

/*
 * Where the extension module of CPython 3.minor is, for a process that has
 * not imported it yet: lib-dynload beside the standard library.
 */
static void module_default(int minor, const char *module, char *out, size_t sz)
{
	static const char *const dirs[] = { "/usr/lib", "/usr/local/lib", "/usr/lib64" };
	char pat[PATH_MAX];
	glob_t g;
	size_t i;

	out[0] = '\0';
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !out[0]; i++) {
		snprintf(pat, sizeof(pat), "%s/python3.%d/lib-dynload/%s.*.so", dirs[i], minor,
			 module);
		if (glob(pat, 0, NULL, &g))
			continue;
		if (g.gl_pathc)
			snprintf(out, sz, "%s", g.gl_pathv[0]);
		globfree(&g);
	}
}

static int attach(struct pyrt *rt, struct bpf_program *prog, pid_t pid, const char *path,
		  const char *func, size_t off, bool ret)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = func, .retprobe = ret);
	struct bpf_link *link;

	if (rt->nlinks == PYRT_MAX_LINKS)
		return -ENOSPC;
	/*
	 * This process only: the probes of a file every Python on the host
	 * maps would cost each of them a trap per task step.
	 */
	link = bpf_program__attach_uprobe_opts(prog, pid, path, off, &opts);
	if (!link)
		return -errno;
	rt->links[rt->nlinks++] = link;
	return 0;
}

/* Destroys the links from the first-th on: a process's half-attached probes. */
static void detach_from(struct pyrt *rt, int first)
{
	while (rt->nlinks > first)
		bpf_link__destroy(rt->links[--rt->nlinks]);
}

/* The file's entry in the cache of files looked at, made if new; NULL if full. */
static struct pyrt_file *file_get(struct pyrt *rt, const char *path, bool *fresh)
{
	struct pyrt_file *f;
	int i;

	*fresh = false;
	for (i = 0; i < rt->nfiles; i++)
		if (!strcmp(rt->files[i].path, path))
			return &rt->files[i];
	if (rt->nfiles == PYRT_MAX_FILES)
		return NULL;
	f = &rt->files[rt->nfiles++];
	memset(f, 0, sizeof(*f));
	snprintf(f->path, sizeof(f->path), "%s", path);
	*fresh = true;
	return f;
}

/* The file offset of _asyncio's call of PyIter_Send (or of its PLT entry); 0 if none. */
static size_t step_offset(Elf *e)
{
	GElf_Addr slot, stub = 0;
	struct elf_site sites[2];
	size_t off;

	slot = elf_plt_slot(e, "PyIter_Send");
	off = slot ? elf_plt_stub(e, slot, &stub) : 0;
	/* One call site (the C Task step's): on it rather than on the stub. */
	if (off && elf_branch_sites(e, stub, sites, 2) == 1 && !sites[0].tail)
		off = sites[0].off;
	return off;
}

/*
 * Where a file's copies of contexts are probed: after each call of
 * PyContext_CopyCurrent (the new context in %rax), or at a tail call's
 * jump as a return probe; or, where its calls cannot all be found, on its
 * PLT stub as a return probe. _asyncio's calls in Future.add_done_callback
 * are left out: a callback's context, the most copies an event loop makes,
 * which run no task step and seldom any I/O (docs/python.md, "Cost").
 * Returns 0, or -ENOENT with f->why set: then only a probe on the function
 * itself sees every copy.
 */
static int copy_sites(Elf *e, struct pyrt_file *f, bool asyncio)
{
	struct elf_site all[PYRT_MAX_SITES * 2];
	GElf_Addr slot, stub = 0, skip = 0, skip_end = 0;
	size_t stub_off;
	int i, n;

	slot = elf_plt_slot(e, "PyContext_CopyCurrent");
	stub_off = slot ? elf_plt_stub(e, slot, &stub) : 0;
	if (!stub_off || elf_branches_through(e, slot)) {
		note(f->why, sizeof(f->why), "%s calls PyContext_CopyCurrent without a PLT entry",
			 f->path);
		return -ENOENT;
	}
	n = elf_branch_sites(e, stub, all, PYRT_MAX_SITES * 2);
	if (asyncio && elf_method(e, "add_done_callback", &skip, &skip_end))
		note(f->why, sizeof(f->why), "Future.add_done_callback not found in %s: its "
			 "copies are probed too", f->path);
	for (i = 0; i < n && i < PYRT_MAX_SITES * 2; i++) {
		if (all[i].addr >= skip && all[i].addr < skip_end)
			f->skipped++;
		else if (f->nsites++ < PYRT_MAX_SITES)
			f->sites[f->nsites - 1] = (struct pyrt_site){
				.off = all[i].tail ? all[i].off : all[i].off + 5, .ret = all[i].tail };
	}
	/* Calls through a pointer to the stub, or too many sites: the stub. */
	if (!n || n > PYRT_MAX_SITES * 2 || f->nsites > PYRT_MAX_SITES) {
		f->sites[0] = (struct pyrt_site){ .off = stub_off, .ret = true };
		f->nsites = 1;
		f->skipped = 0;
	}
	return 0;
}

/*
 * Whether the runtime file calls PyContext_CopyCurrent itself (a build with
 * _asyncio or _contextvars built in): then its copies are seen only on the
 * function.
 */
static bool runtime_copies(Elf *e, struct pyrt_file *f)
{
	GElf_Addr fn = elf_dynsym(e, "PyContext_CopyCurrent"), slot, stub = 0;

	slot = elf_plt_slot(e, "PyContext_CopyCurrent");
	if ((fn && elf_branch_sites(e, fn, NULL, 0)) ||
	    (slot && elf_plt_stub(e, slot, &stub) && elf_branch_sites(e, stub, NULL, 0))) {
		note(f->why, sizeof(f->why), "%s calls PyContext_CopyCurrent itself", f->path);
		return true;
	}
	return false;
}

/* Looks at a file once: its step site (_asyncio), its copy sites. */
static struct pyrt_file *file_look(struct pyrt *rt, const char *path, enum pyrt_role role)
{
	struct elf_file ef;
	struct pyrt_file *f;
	bool fresh;

	f = file_get(rt, path, &fresh);
	if (!f || !fresh)
		return f;
	if (elf_file_open(path, &ef)) {
		note(f->why, sizeof(f->why), "cannot read %s", path);
		f->whole = true;
		return f;
	}
	if (role == PYRT_ROLE_RUNTIME) {
		f->whole = runtime_copies(ef.e, f);
	} else {
		if (role == PYRT_ROLE_ASYNCIO)
			f->step_off = step_offset(ef.e);
		f->whole = copy_sites(ef.e, f, role == PYRT_ROLE_ASYNCIO) != 0;
	}
	elf_file_close(&ef);
	return f;
}

/*
 * The copy probes of process p: at the call sites of each file that makes
 * contexts, or, when one of them cannot be probed that way, a return probe
 * on PyContext_CopyCurrent itself (every copy, a trap more per callback).
 */
static int copy_probes(struct pyrt *rt, struct agentprof_bpf *skel, struct pyrt_proc *p,
		       const struct scan *sc)
{
	struct pyrt_file *files[PYRT_MAX_COPIERS + 2];
	int first = rt->nlinks, nfiles = 0, i, j, err = 0;
	const char *why = NULL;

	files[nfiles++] = file_look(rt, sc->run.path, PYRT_ROLE_RUNTIME);
	if (sc->aio[0])
		files[nfiles++] = file_look(rt, sc->aio, PYRT_ROLE_ASYNCIO);
	for (i = 0; i < sc->ncopiers; i++)
		files[nfiles++] = file_look(rt, sc->copiers[i], PYRT_ROLE_COPIER);
	if (sc->too_many)
		why = "more files make contexts than are probed by site";
	for (i = 0; i < nfiles && !why; i++) {
		if (!files[i])
			why = "too many CPython files to look at";
		else if (files[i]->whole)
			why = files[i]->why;
	}
	for (i = 0; i < nfiles && !why && !err; i++) {
		for (j = 0; j < files[i]->nsites && !err; j++)
			err = attach(rt, skel->progs.ap_py_copy, p->pid, files[i]->path, NULL,
				     files[i]->sites[j].off, files[i]->sites[j].ret);
		if (files[i]->why[0])
			note(p->copies, sizeof(p->copies), "%s", files[i]->why);
	}
	if (!why && !err)
		return 0;
	detach_from(rt, first);
	if (err)
		why = strerror(-err);
	note(p->copies, sizeof(p->copies), "every context copy probed (%s)", why);
	return attach(rt, skel->progs.ap_py_copy, p->pid, sc->run.path, "PyContext_CopyCurrent", 0,
		      true);
}

/* Fills p from pid's runtime file: the BPF side's description of it. */
static int describe(struct pyrt_proc *p, const struct mapped *rt, struct ap_py_proc *out)
{
	const struct pyrt_offsets *o = pyrt_offsets__find(3, p->minor);
	struct elf_file ef;
	GElf_Addr sym, vaddr;
	int err;

	if (!o) {
		note(p->why, sizeof(p->why), "no struct offsets for CPython 3.%d", p->minor);
		return -ENOTSUP;
	}
	err = elf_file_open(rt->path, &ef);
	if (err) {
		note(p->why, sizeof(p->why), "cannot read %s: %s", rt->path, strerror(-err));
		return err;
	}
	sym = elf_dynsym(ef.e, "_PyRuntime");
	err = elf_first_load(ef.e, &vaddr);
	elf_file_close(&ef);
	if (!sym || err) {
		note(p->why, sizeof(p->why), "%s exports no _PyRuntime", rt->path);
		return -ENOENT;
	}
	*out = (struct ap_py_proc){
		.runtime = sym + (rt->start - vaddr),
		.interp_head = o->runtime_interp_head,
		.threads_head = o->interp_threads_head,
		.ts_next = o->tstate_next,
		.ts_native_tid = o->tstate_native_tid,
		.ts_context = o->tstate_context,
	};
	return 0;
}

static struct pyrt_proc *proc_find(struct pyrt *rt, pid_t pid)
{
	int i;

	for (i = 0; i < rt->nprocs; i++)
		if (rt->procs[i].pid == pid)
			return &rt->procs[i];
	return NULL;
}

/*
 * A process that has not imported asyncio (or contextvars) yet: their
 * files beside its standard library, probed before they are mapped.
 */
static void scan_defaults(struct scan *sc, int minor)
{
	char path[PATH_MAX];

	if (!sc->aio[0])
		module_default(minor, "_asyncio", sc->aio, sizeof(sc->aio));
	module_default(minor, "_contextvars", path, sizeof(path));
	if (path[0])
		scan_copier(sc, path);
}

/* The task-step probe: on _asyncio's call of PyIter_Send. */
static void step_probe(struct pyrt *rt, struct agentprof_bpf *skel, struct pyrt_proc *p,
		       const char *aio)
{
	struct pyrt_file *f;
	int err;

	if (rt->no_steps) {
		note(p->why, sizeof(p->why), "asyncio task steps not probed (--python contexts): "
		     "the CPU of a step that ends without a syscall goes to the unit before it");
		return;
	}
	f = aio[0] ? file_look(rt, aio, PYRT_ROLE_ASYNCIO) : NULL;
	err = f && f->step_off ? attach(rt, skel->progs.ap_py_step, p->pid, aio, NULL, f->step_off,
					false) : -ENOENT;
	p->steps = !err;
	if (err)
		note(p->why, sizeof(p->why),
			 "asyncio task steps not probed (%s%s%s): the CPU of a step that ends "
			 "without a syscall goes to the unit before it",
			 aio[0] ? aio : "no _asyncio extension found", aio[0] ? ": " : "",
			 aio[0] ? strerror(-err) : "");
}

int pyrt__add(struct pyrt *rt, struct agentprof_bpf *skel, pid_t pid)
{
	struct pyrt_proc *p = proc_find(rt, pid);
	struct ap_py_proc desc;
	__u32 key = (__u32)pid;
	struct scan *sc;
	int err;

	if (p)
		return p->kind;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	err = maps_scan(pid, sc);
	if (err) {
		free(sc);
		return err == -ENOENT ? PYRT_OTHER : err;
	}
	if (rt->nprocs == PYRT_MAX_PROCS) {
		free(sc);
		return -ENOSPC;
	}
	p = &rt->procs[rt->nprocs++];
	*p = (struct pyrt_proc){ .pid = pid, .kind = PYRT_HEURISTIC,
				 .minor = version_of(sc->run.path) };
	if (describe(p, &sc->run, &desc))
		goto out;
	/* Only now: every file a process maps is opened to look for them. */
	maps_each(pid, take_copier, sc);
	scan_defaults(sc, p->minor);
	err = copy_probes(rt, skel, p, sc);
	if (err) {
		note(p->why, sizeof(p->why), "uprobe on %s:PyContext_CopyCurrent failed: %s",
			 sc->run.path, strerror(-err));
		goto out;
	}
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.py_procs), &key, &desc, BPF_ANY)) {
		note(p->why, sizeof(p->why), "py_procs map full or failing: %s",
			 strerror(errno));
		goto out;
	}
	p->kind = PYRT_TASK_AWARE;
	/* Its threads seen before it was added are looked for again (py_none()). */
	__atomic_fetch_add(&skel->bss->py_procs_gen, 1, __ATOMIC_RELAXED);
	step_probe(rt, skel, p, sc->aio);
out:
	free(sc);
	return p->kind;
}

void pyrt__report(const struct pyrt *rt, int from, FILE *out)
{
	const struct pyrt_proc *p;
	int i;

	for (i = from; i < rt->nprocs; i++) {
		p = &rt->procs[i];
		if (p->kind == PYRT_TASK_AWARE)
			fprintf(out, "agentprof: pid %d: python3.%d task-aware (contexts%s)%s%s%s%s\n",
				(int)p->pid, p->minor, p->steps ? ", asyncio task steps" : "",
				p->steps ? "" : "; ", p->steps ? "" : p->why,
				p->copies[0] ? "; " : "", p->copies);
		else
			fprintf(out, "agentprof: pid %d: python3.%d heuristic: %s; requests that "
				"overlap may be charged each other's work (docs/limitations.md)\n",
				(int)p->pid, p->minor, p->why);
	}
}

void pyrt__detach(struct pyrt *rt)
{
	detach_from(rt, 0);
}
