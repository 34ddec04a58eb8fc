// SPDX-License-Identifier: GPL-2.0-only
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <glob.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "agentprof.skel.h"
#include "agentprof/python.h"
#include "pyrt.h"
#include "pyrt_offsets.h"

/* An ELF file opened for reading its sections and symbols. */
struct elf_file {
	int fd;
	Elf *e;
};

static int elf_open(const char *path, struct elf_file *f)
{
	f->e = NULL;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	f->e = elf_begin(f->fd, ELF_C_READ, NULL);
	if (!f->e || elf_kind(f->e) != ELF_K_ELF) {
		close(f->fd);
		return -EINVAL;
	}
	return 0;
}

static void elf_close(struct elf_file *f)
{
	elf_end(f->e);
	close(f->fd);
}

static Elf_Scn *section(Elf *e, const char *name, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;
	size_t shstrndx;
	const char *n;

	if (elf_getshdrstrndx(e, &shstrndx))
		return NULL;
	while ((scn = elf_nextscn(e, scn))) {
		if (!gelf_getshdr(scn, sh))
			continue;
		n = elf_strptr(e, shstrndx, sh->sh_name);
		if (n && !strcmp(n, name))
			return scn;
	}
	return NULL;
}

/* The value of the defined dynamic symbol name, 0 if none. */
static GElf_Addr dynsym(Elf *e, const char *name)
{
	GElf_Shdr sh;
	Elf_Scn *scn = section(e, ".dynsym", &sh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
	size_t i, n;
	GElf_Sym s;
	const char *sn;

	if (!d || !sh.sh_entsize)
		return 0;
	n = sh.sh_size / sh.sh_entsize;
	for (i = 0; i < n; i++) {
		if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
			continue;
		sn = elf_strptr(e, sh.sh_link, s.st_name);
		if (sn && !strcmp(sn, name))
			return s.st_value;
	}
	return 0;
}

/* The GOT slot (address) the PLT fills for the undefined function func, 0 if none. */
static GElf_Addr plt_slot(Elf *e, const char *func)
{
	GElf_Shdr sh, symsh;
	Elf_Scn *scn = section(e, ".rela.plt", &sh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL, *syms;
	Elf_Scn *symscn;
	size_t i, n;
	GElf_Rela r;
	GElf_Sym s;
	const char *sn;

	if (!d || !sh.sh_entsize)
		return 0;
	symscn = elf_getscn(e, sh.sh_link);
	if (!symscn || !gelf_getshdr(symscn, &symsh))
		return 0;
	syms = elf_getdata(symscn, NULL);
	if (!syms)
		return 0;
	n = sh.sh_size / sh.sh_entsize;
	for (i = 0; i < n; i++) {
		if (!gelf_getrela(d, (int)i, &r) ||
		    !gelf_getsym(syms, (int)GELF_R_SYM(r.r_info), &s))
			continue;
		sn = elf_strptr(e, symsh.sh_link, s.st_name);
		if (sn && !strcmp(sn, func))
			return r.r_offset;
	}
	return 0;
}

/*
 * The PLT stub's jump through slot: `jmp *disp(%rip)` (ff 25), maybe after
 * a bnd prefix (f2, part of the instruction), in .plt.sec (IBT builds) or
 * .plt. Found by decoding rather than from the stub's index, which the
 * layout of each linker decides. Returns its file offset and sets *addr to
 * its address; 0 if none.
 */
static size_t plt_stub(Elf *e, GElf_Addr slot, GElf_Addr *addr)
{
	static const char *const names[] = { ".plt.sec", ".plt" };
	const unsigned char *b;
	Elf_Data *d;
	Elf_Scn *scn;
	GElf_Shdr sh;
	size_t i, k, at;
	int32_t disp;

	for (k = 0; k < 2; k++) {
		scn = section(e, names[k], &sh);
		d = scn ? elf_getdata(scn, NULL) : NULL;
		if (!d || !d->d_buf)
			continue;
		b = d->d_buf;
		for (i = 0; i + 6 <= d->d_size; i++) {
			if (b[i] != 0xff || b[i + 1] != 0x25)
				continue;
			memcpy(&disp, b + i + 2, sizeof(disp));
			if (sh.sh_addr + i + 6 + (GElf_Addr)(int64_t)disp != slot)
				continue;
			at = i && b[i - 1] == 0xf2 ? i - 1 : i;
			*addr = sh.sh_addr + at;
			return sh.sh_offset + at;
		}
	}
	return 0;
}

/*
 * The file offsets of the `call rel32` instructions in .text to target
 * (a PLT stub), at most max; returns how many. A uprobe on a call is
 * emulated, one trap; on the stub's indirect jump it is single-stepped,
 * two.
 */
static int call_sites(Elf *e, GElf_Addr target, size_t *offs, int max)
{
	const unsigned char *b;
	Elf_Data *d;
	Elf_Scn *scn;
	GElf_Shdr sh;
	size_t i;
	int32_t rel;
	int n = 0;

	scn = section(e, ".text", &sh);
	d = scn ? elf_getdata(scn, NULL) : NULL;
	if (!d || !d->d_buf)
		return 0;
	b = d->d_buf;
	for (i = 0; i + 5 <= d->d_size && n < max; i++) {
		if (b[i] != 0xe8)
			continue;
		memcpy(&rel, b + i + 1, sizeof(rel));
		if (sh.sh_addr + i + 5 + (GElf_Addr)(int64_t)rel == target)
			offs[n++] = sh.sh_offset + i;
	}
	return n;
}

/* The lowest PT_LOAD address, page-aligned: with its mapping, the load bias. */
static int first_load(Elf *e, GElf_Addr *vaddr)
{
	size_t i, n;
	GElf_Phdr ph;

	if (elf_getphdrnum(e, &n))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD) {
			*vaddr = ph.p_vaddr & ~(GElf_Addr)0xfff;
			return 0;
		}
	}
	return -ENOENT;
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

/*
 * The runtime file of pid: the first mapped file whose name says python3.N
 * or libpython3.N (the executable, or the library it links), with its
 * base; and the _asyncio extension, if loaded. Returns 0 if a runtime file
 * was found.
 */
static int maps_scan(pid_t pid, struct mapped *rt, struct mapped *aio)
{
	char path[64], line[PATH_MAX + 128], *file;
	unsigned long start, end, off;
	FILE *f;

	rt->path[0] = aio->path[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		file = strchr(line, '/');
		if (!file || sscanf(line, "%lx-%lx %*s %lx", &start, &end, &off) != 3 || off)
			continue;
		file[strcspn(file, "\n")] = '\0';
		if (!rt->path[0] && version_of(file) >= 0 && !strstr(file, "/lib-dynload/")) {
			snprintf(rt->path, sizeof(rt->path), "%s", file);
			rt->start = start;
		} else if (!aio->path[0] && strstr(file, "/_asyncio.")) {
			snprintf(aio->path, sizeof(aio->path), "%s", file);
		}
	}
	fclose(f);
	return rt->path[0] ? 0 : -ENOENT;
}

/*
 * Where the _asyncio extension of CPython 3.minor is, for a process that has
 * not imported asyncio yet: lib-dynload beside the standard library.
 */
static void asyncio_default(int minor, char *out, size_t sz)
{
	static const char *const dirs[] = { "/usr/lib", "/usr/local/lib", "/usr/lib64" };
	char pat[PATH_MAX];
	glob_t g;
	size_t i;

	out[0] = '\0';
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && !out[0]; i++) {
		snprintf(pat, sizeof(pat), "%s/python3.%d/lib-dynload/_asyncio.*.so", dirs[i],
			 minor);
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

/* The file offset of _asyncio's PLT entry for PyIter_Send (cached per file); 0 if none. */
static size_t step_offset(struct pyrt *rt, const char *path)
{
	GElf_Addr slot, stub = 0;
	struct elf_file ef;
	size_t off = 0, sites[2];
	int i;

	for (i = 0; i < rt->nasyncios; i++)
		if (!strcmp(rt->asyncios[i].path, path))
			return rt->asyncios[i].step_off;
	if (elf_open(path, &ef))
		return 0;
	slot = plt_slot(ef.e, "PyIter_Send");
	off = slot ? plt_stub(ef.e, slot, &stub) : 0;
	/* One call site (the C Task step's): on it rather than on the stub. */
	if (off && call_sites(ef.e, stub, sites, 2) == 1)
		off = sites[0];
	elf_close(&ef);
	if (rt->nasyncios < PYRT_MAX_FILES) {
		snprintf(rt->asyncios[rt->nasyncios].path, sizeof(rt->asyncios[0].path), "%s", path);
		rt->asyncios[rt->nasyncios++].step_off = off;
	}
	return off;
}

/* Fills p from pid's runtime file: the BPF side's description of it. */
static int describe(struct pyrt_proc *p, const struct mapped *rt, struct ap_py_proc *out)
{
	const struct pyrt_offsets *o = pyrt_offsets__find(3, p->minor);
	struct elf_file ef;
	GElf_Addr sym, vaddr;
	int err;

	if (!o) {
		snprintf(p->why, sizeof(p->why), "no struct offsets for CPython 3.%d", p->minor);
		return -ENOTSUP;
	}
	err = elf_open(rt->path, &ef);
	if (err) {
		snprintf(p->why, sizeof(p->why), "cannot read %s: %s", rt->path, strerror(-err));
		return err;
	}
	sym = dynsym(ef.e, "_PyRuntime");
	err = first_load(ef.e, &vaddr);
	elf_close(&ef);
	if (!sym || err) {
		snprintf(p->why, sizeof(p->why), "%s exports no _PyRuntime", rt->path);
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

int pyrt__add(struct pyrt *rt, struct agentprof_bpf *skel, pid_t pid)
{
	struct mapped run, aio;
	struct ap_py_proc desc;
	struct pyrt_proc *p = proc_find(rt, pid);
	__u32 key = (__u32)pid;
	size_t off;
	int err;

	if (p)
		return p->kind;
	err = maps_scan(pid, &run, &aio);
	if (err == -ENOENT)
		return PYRT_OTHER;
	if (err)
		return err;
	if (rt->nprocs == PYRT_MAX_PROCS)
		return -ENOSPC;
	p = &rt->procs[rt->nprocs++];
	*p = (struct pyrt_proc){ .pid = pid, .kind = PYRT_HEURISTIC, .minor = version_of(run.path) };
	if (describe(p, &run, &desc))
		return p->kind;
	err = attach(rt, skel->progs.ap_py_copy, pid, run.path, "PyContext_CopyCurrent", 0, true);
	if (err) {
		snprintf(p->why, sizeof(p->why), "uprobe on %s:PyContext_CopyCurrent failed: %s",
			 run.path, strerror(-err));
		return p->kind;
	}
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.py_procs), &key, &desc, BPF_ANY)) {
		snprintf(p->why, sizeof(p->why), "py_procs map full or failing: %s",
			 strerror(errno));
		return p->kind;
	}
	p->kind = PYRT_TASK_AWARE;
	/* Its threads seen before it was added are looked for again (py_none()). */
	__atomic_fetch_add(&skel->bss->py_procs_gen, 1, __ATOMIC_RELAXED);
	if (!aio.path[0])
		asyncio_default(p->minor, aio.path, sizeof(aio.path));
	off = aio.path[0] ? step_offset(rt, aio.path) : 0;
	err = off ? attach(rt, skel->progs.ap_py_step, pid, aio.path, NULL, off, false) : -ENOENT;
	p->steps = !err;
	if (err)
		snprintf(p->why, sizeof(p->why),
			 "asyncio task steps not probed (%s%s%s): the CPU of a step that ends "
			 "without a syscall goes to the unit before it",
			 aio.path[0] ? aio.path : "no _asyncio extension found",
			 aio.path[0] ? ": " : "", aio.path[0] ? strerror(-err) : "");
	return p->kind;
}

void pyrt__report(const struct pyrt *rt, int from, FILE *out)
{
	const struct pyrt_proc *p;
	int i;

	for (i = from; i < rt->nprocs; i++) {
		p = &rt->procs[i];
		if (p->kind == PYRT_TASK_AWARE && p->steps)
			fprintf(out, "agentprof: pid %d: python3.%d task-aware (contexts, asyncio "
				"task steps)\n", (int)p->pid, p->minor);
		else if (p->kind == PYRT_TASK_AWARE)
			fprintf(out, "agentprof: pid %d: python3.%d task-aware (contexts); %s\n",
				(int)p->pid, p->minor, p->why);
		else
			fprintf(out, "agentprof: pid %d: python3.%d heuristic: %s; requests that "
				"overlap may be charged each other's work (docs/limitations.md)\n",
				(int)p->pid, p->minor, p->why);
	}
}

void pyrt__detach(struct pyrt *rt)
{
	int i;

	for (i = 0; i < rt->nlinks; i++)
		bpf_link__destroy(rt->links[i]);
	rt->nlinks = 0;
}
