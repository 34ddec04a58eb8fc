/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Finding uprobe sites in an ELF file without its symbols: dynamic symbols,
 * PLT stubs, the call and jump instructions that reach a function, and a C
 * function of a CPython extension found through its method table. Used by
 * the CPython runtime reader (pyrt.c, docs/python.md).
 */
#ifndef AGENTPROF_ELF_SITES_H
#define AGENTPROF_ELF_SITES_H

#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stddef.h>

/* An ELF file opened for reading its sections and symbols. */
struct elf_file {
	int fd;
	Elf *e;
};

int elf_file_open(const char *path, struct elf_file *f);
void elf_file_close(struct elf_file *f);

/* The value of the defined dynamic symbol name, 0 if none. */
GElf_Addr elf_dynsym(Elf *e, const char *name);
/* Whether the file imports name (an undefined dynamic symbol). */
bool elf_imports(Elf *e, const char *name);
/* The GOT slot (address) the PLT fills for the imported function func, 0 if none. */
GElf_Addr elf_plt_slot(Elf *e, const char *func);
/*
 * The PLT stub that jumps through slot: its file offset (0 if none), and
 * its address in *addr.
 */
size_t elf_plt_stub(Elf *e, GElf_Addr slot, GElf_Addr *addr);

/* A `call rel32` or `jmp rel32` (a tail call) in .text. */
struct elf_site {
	size_t off;		/* file offset */
	GElf_Addr addr;
	bool tail;		/* jmp: the callee returns to this function's caller */
};

/*
 * The sites in .text whose rel32 lands on target, the first max of them in
 * sites; returns how many there are (more than max if so).
 */
int elf_branch_sites(Elf *e, GElf_Addr target, struct elf_site *sites, int max);
/* Whether .text calls or jumps through slot without the PLT (-fno-plt). */
bool elf_branches_through(Elf *e, GElf_Addr slot);
/* The lowest PT_LOAD address, page-aligned: with its mapping, the load bias. */
int elf_first_load(Elf *e, GElf_Addr *vaddr);
/*
 * The C function a position-independent extension's method tables name
 * method (a PyMethodDef: name, then function, both relocated): its address
 * in *start, and in *end the next function address its tables or dynamic
 * symbols hold, an upper bound of its code. 0, or -ENOENT.
 */
int elf_method(Elf *e, const char *method, GElf_Addr *start, GElf_Addr *end);

#endif /* AGENTPROF_ELF_SITES_H */
