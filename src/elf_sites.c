// SPDX-License-Identifier: GPL-2.0-only
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "elf_sites.h"

int elf_file_open(const char *path, struct elf_file *f)
{
	f->e = NULL;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	f->e = elf_begin(f->fd, ELF_C_READ, NULL);
	if (!f->e || elf_kind(f->e) != ELF_K_ELF) {
		elf_end(f->e);
		close(f->fd);
		return -EINVAL;
	}
	return 0;
}

void elf_file_close(struct elf_file *f)
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

/* A section's bytes and header; NULL if it has none. */
static const unsigned char *section_bytes(Elf *e, const char *name, GElf_Shdr *sh, size_t *size)
{
	Elf_Scn *scn = section(e, name, sh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;

	if (!d || !d->d_buf)
		return NULL;
	*size = d->d_size;
	return d->d_buf;
}

/* The dynamic symbol table, read symbol by symbol. */
struct dynsyms {
	Elf *e;
	Elf_Data *d;
	GElf_Shdr sh;
	size_t n;
};

static void dynsyms_open(Elf *e, struct dynsyms *ds)
{
	Elf_Scn *scn = section(e, ".dynsym", &ds->sh);

	ds->e = e;
	ds->d = scn ? elf_getdata(scn, NULL) : NULL;
	ds->n = ds->d && ds->sh.sh_entsize ? ds->sh.sh_size / ds->sh.sh_entsize : 0;
}

/* The index-th symbol's name (NULL if unreadable), and the symbol in *s. */
static const char *dynsym_at(const struct dynsyms *ds, size_t index, GElf_Sym *s)
{
	if (!gelf_getsym(ds->d, (int)index, s))
		return NULL;
	return elf_strptr(ds->e, ds->sh.sh_link, s->st_name);
}

/* The symbol name, defined or not: its index, or -1. */
static long dynsym_find(Elf *e, const char *name, bool defined, GElf_Sym *s)
{
	struct dynsyms ds;
	const char *n;
	size_t i;

	dynsyms_open(e, &ds);
	for (i = 0; i < ds.n; i++) {
		n = dynsym_at(&ds, i, s);
		if (n && (s->st_shndx != SHN_UNDEF) == defined && !strcmp(n, name))
			return (long)i;
	}
	return -1;
}

GElf_Addr elf_dynsym(Elf *e, const char *name)
{
	GElf_Sym s;

	return dynsym_find(e, name, true, &s) >= 0 ? s.st_value : 0;
}

bool elf_imports(Elf *e, const char *name)
{
	GElf_Sym s;

	return dynsym_find(e, name, false, &s) >= 0;
}

GElf_Addr elf_plt_slot(Elf *e, const char *func)
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

/* Where `ff 25|15 disp32` at b[i] (jmp or call *disp(%rip)) points. */
static GElf_Addr rip_indirect(const unsigned char *b, size_t i, GElf_Addr base)
{
	int32_t disp;

	memcpy(&disp, b + i + 2, sizeof(disp));
	return base + i + 6 + (GElf_Addr)(int64_t)disp;
}

/*
 * The stub's jump through slot: `jmp *disp(%rip)` (ff 25), maybe after a
 * bnd prefix (f2, part of the instruction), in .plt.sec (IBT builds) or
 * .plt. Found by decoding rather than from the stub's index, which the
 * layout of each linker decides.
 */
size_t elf_plt_stub(Elf *e, GElf_Addr slot, GElf_Addr *addr)
{
	static const char *const names[] = { ".plt.sec", ".plt" };
	const unsigned char *b;
	GElf_Shdr sh;
	size_t i, k, at, size = 0;

	for (k = 0; k < 2; k++) {
		b = section_bytes(e, names[k], &sh, &size);
		for (i = 0; b && i + 6 <= size; i++) {
			if (b[i] != 0xff || b[i + 1] != 0x25 || rip_indirect(b, i, sh.sh_addr) != slot)
				continue;
			at = i && b[i - 1] == 0xf2 ? i - 1 : i;
			*addr = sh.sh_addr + at;
			return sh.sh_offset + at;
		}
	}
	return 0;
}

int elf_branch_sites(Elf *e, GElf_Addr target, struct elf_site *sites, int max)
{
	const unsigned char *b;
	GElf_Shdr sh;
	size_t i, size = 0;
	int32_t rel;
	int n = 0;

	b = section_bytes(e, ".text", &sh, &size);
	for (i = 0; b && i + 5 <= size; i++) {
		if (b[i] != 0xe8 && b[i] != 0xe9)
			continue;
		memcpy(&rel, b + i + 1, sizeof(rel));
		if (sh.sh_addr + i + 5 + (GElf_Addr)(int64_t)rel != target)
			continue;
		if (n < max)
			sites[n] = (struct elf_site){ .off = sh.sh_offset + i, .addr = sh.sh_addr + i,
						      .tail = b[i] == 0xe9 };
		n++;
	}
	return n;
}

bool elf_branches_through(Elf *e, GElf_Addr slot)
{
	const unsigned char *b;
	GElf_Shdr sh;
	size_t i, size = 0;

	b = section_bytes(e, ".text", &sh, &size);
	for (i = 0; b && i + 6 <= size; i++)
		if (b[i] == 0xff && (b[i + 1] == 0x15 || b[i + 1] == 0x25) &&
		    rip_indirect(b, i, sh.sh_addr) == slot)
			return true;
	return false;
}

int elf_first_load(Elf *e, GElf_Addr *vaddr)
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

/* The relative relocation at r_offset; its addend (the address it holds) or 0. */
static GElf_Addr relative_at(Elf_Data *d, size_t n, GElf_Addr r_offset)
{
	GElf_Rela r;
	size_t i;

	for (i = 0; i < n; i++)
		if (gelf_getrela(d, (int)i, &r) && r.r_offset == r_offset &&
		    GELF_R_TYPE(r.r_info) == R_X86_64_RELATIVE)
			return (GElf_Addr)r.r_addend;
	return 0;
}

/* Whether the string at addr in .rodata is name (or ends a longer one with it). */
static bool rodata_is(const unsigned char *ro, const GElf_Shdr *sh, size_t size, GElf_Addr addr,
		      const char *name)
{
	size_t len = strlen(name) + 1;

	return addr >= sh->sh_addr && addr - sh->sh_addr + len <= size &&
	       !memcmp(ro + (addr - sh->sh_addr), name, len);
}

/* The lowest function address above start that the file's tables or symbols hold. */
static GElf_Addr next_function(Elf *e, Elf_Data *d, size_t n, GElf_Addr start, GElf_Addr text_end)
{
	GElf_Addr end = text_end, a;
	struct dynsyms ds;
	GElf_Rela r;
	GElf_Sym s;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!gelf_getrela(d, (int)i, &r) || GELF_R_TYPE(r.r_info) != R_X86_64_RELATIVE)
			continue;
		a = (GElf_Addr)r.r_addend;
		if (a > start && a < end)
			end = a;
	}
	dynsyms_open(e, &ds);
	for (i = 0; i < ds.n; i++) {
		if (dynsym_at(&ds, i, &s) && GELF_ST_TYPE(s.st_info) == STT_FUNC &&
		    s.st_shndx != SHN_UNDEF && s.st_value > start && s.st_value < end)
			end = s.st_value;
	}
	return end;
}

int elf_method(Elf *e, const char *method, GElf_Addr *start, GElf_Addr *end)
{
	GElf_Shdr relsh, rosh, textsh;
	Elf_Scn *scn = section(e, ".rela.dyn", &relsh);
	Elf_Data *d = scn ? elf_getdata(scn, NULL) : NULL;
	const unsigned char *ro, *text;
	size_t i, n, rosize = 0, textsize = 0;
	GElf_Addr fn;
	GElf_Rela r;

	ro = section_bytes(e, ".rodata", &rosh, &rosize);
	text = section_bytes(e, ".text", &textsh, &textsize);
	if (!d || !relsh.sh_entsize || !ro || !text)
		return -ENOENT;
	n = relsh.sh_size / relsh.sh_entsize;
	for (i = 0; i < n; i++) {
		if (!gelf_getrela(d, (int)i, &r) || GELF_R_TYPE(r.r_info) != R_X86_64_RELATIVE ||
		    !rodata_is(ro, &rosh, rosize, (GElf_Addr)r.r_addend, method))
			continue;
		/* PyMethodDef: ml_name, then ml_meth. */
		fn = relative_at(d, n, r.r_offset + sizeof(void *));
		if (fn < textsh.sh_addr || fn >= textsh.sh_addr + textsize)
			continue;
		*start = fn;
		*end = next_function(e, d, n, fn, textsh.sh_addr + textsize);
		return 0;
	}
	return -ENOENT;
}
