// SPDX-License-Identifier: GPL-2.0-only
/*
 * src/elf_sites.c on the files the CPython runtime reader probes, against a live interpreter.
 *
 * For each python (/usr/bin/python3.11 and any in PYRT_TEST_PYTHONS, space-separated), a child
 * prints where it mapped _asyncio and _contextvars and the C functions of
 * _asyncio.Future.add_done_callback and _contextvars.copy_context, read from their method
 * descriptors with ctypes (the addresses the interpreter itself calls). Then, from the files
 * alone:
 *   - elf_method() finds the same functions through the files' method tables;
 *   - _asyncio's calls of PyContext_CopyCurrent: some inside add_done_callback (the copies the
 *     reader leaves unprobed), at least one outside (Task.__init__'s, which it probes);
 *   - _contextvars' copy_context is a tail call of PyContext_CopyCurrent: one site, a jump, at
 *     the function's address (probed as a return probe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elf_sites.h"
#include "test.h"

#define DEFAULT_PYTHON "/usr/bin/python3.11"
#define MAX_SITES 16

/*
 * Prints "<path> <base> <function>" for each module: its file, where its offset-0 page is
 * mapped, and the C function of its method. PyMethodDescrObject's d_method follows
 * PyObject_HEAD, d_type, d_name and d_qualname (+40); PyCFunctionObject's m_ml follows
 * PyObject_HEAD (+16); PyMethodDef's ml_meth follows ml_name (+8). 3.11 to 3.13 alike.
 */
static const char script[] =
    "import ctypes, _asyncio, _contextvars\n"
    "def ptr(a):\n"
    "    return ctypes.c_void_p.from_address(a).value\n"
    "def base(f):\n"
    "    for l in open('/proc/self/maps'):\n"
    "        p = l.split()\n"
    "        if len(p) > 5 and p[5] == f and int(p[2], 16) == 0:\n"
    "            return int(p[0].split('-')[0], 16)\n"
    "adc = ptr(ptr(id(_asyncio.Future.add_done_callback) + 40) + 8)\n"
    "cc = ptr(ptr(id(_contextvars.copy_context) + 16) + 8)\n"
    "for m, fn in ((_asyncio, adc), (_contextvars, cc)):\n"
    "    print(m.__file__, base(m.__file__), fn)\n";

struct live {
	char path[4096];
	unsigned long base, fn;
};

/* The child's two lines: _asyncio's, then _contextvars'. 0, or -1 with a failed check. */
static int run_child(const char *python, struct live out[2])
{
	char cmd[8192];
	FILE *p;
	int n = 0;

	snprintf(cmd, sizeof(cmd), "%s -c \"$AP_SCRIPT\"", python);
	setenv("AP_SCRIPT", script, 1);
	p = popen(cmd, "r");
	if (!p) {
		ASSERT_TRUE(false, "%s: started", python);
		return -1;
	}
	while (n < 2 && fscanf(p, "%4095s %lu %lu", out[n].path, &out[n].base, &out[n].fn) == 3)
		n++;
	pclose(p);
	ASSERT_EQ(n, 2, "%s: printed where _asyncio and _contextvars are", python);
	return n == 2 ? 0 : -1;
}

/* The file address of a live one: its base is the file's address 0 (a shared object). */
static GElf_Addr file_addr(const struct live *l)
{
	return l->fn - l->base;
}

/* PyContext_CopyCurrent's call sites through the file's PLT; -1 if it has none. */
static int copy_sites(Elf *e, struct elf_site *sites)
{
	GElf_Addr slot = elf_plt_slot(e, "PyContext_CopyCurrent"), stub = 0;

	if (!slot || !elf_plt_stub(e, slot, &stub))
		return -1;
	return elf_branch_sites(e, stub, sites, MAX_SITES);
}

static void check_asyncio(const char *python, const struct live *l)
{
	struct elf_site sites[MAX_SITES];
	GElf_Addr start = 0, end = 0;
	struct elf_file ef;
	int n, i, in = 0, out = 0;

	if (elf_file_open(l->path, &ef)) {
		ASSERT_TRUE(false, "%s: %.200s opens", python, l->path);
		return;
	}
	ASSERT_EQ(elf_method(ef.e, "add_done_callback", &start, &end), 0,
		  "%s: _asyncio's add_done_callback found in its method tables", python);
	ASSERT_EQ(start, file_addr(l), "%s: ... at the function the interpreter calls", python);
	ASSERT_GT(end, start, "%s: ... with an end after it", python);
	n = copy_sites(ef.e, sites);
	for (i = 0; i < n && i < MAX_SITES; i++) {
		if (sites[i].addr >= start && sites[i].addr < end)
			in++;
		else
			out++;
	}
	ASSERT_GE(in, 1, "%s: _asyncio copies contexts in add_done_callback", python);
	ASSERT_GE(out, 1, "%s: ... and outside it (Task.__init__)", python);
	ASSERT_FALSE(elf_branches_through(ef.e, elf_plt_slot(ef.e, "PyContext_CopyCurrent")),
		     "%s: _asyncio calls PyContext_CopyCurrent through its PLT only", python);
	elf_file_close(&ef);
}

static void check_contextvars(const char *python, const struct live *l)
{
	struct elf_site sites[MAX_SITES];
	GElf_Addr start = 0, end = 0;
	struct elf_file ef;
	int n;

	if (elf_file_open(l->path, &ef)) {
		ASSERT_TRUE(false, "%s: %.200s opens", python, l->path);
		return;
	}
	ASSERT_TRUE(elf_imports(ef.e, "PyContext_CopyCurrent"),
		    "%s: _contextvars imports PyContext_CopyCurrent", python);
	ASSERT_EQ(elf_method(ef.e, "copy_context", &start, &end), 0,
		  "%s: _contextvars' copy_context found in its method table", python);
	ASSERT_EQ(start, file_addr(l), "%s: ... at the function the interpreter calls", python);
	n = copy_sites(ef.e, sites);
	ASSERT_EQ(n, 1, "%s: _contextvars calls PyContext_CopyCurrent once", python);
	if (n == 1) {
		ASSERT_TRUE(sites[0].tail, "%s: ... a tail call (its return is the caller's)",
			    python);
		ASSERT_EQ(sites[0].addr, file_addr(l), "%s: ... copy_context's own jump", python);
	}
	elf_file_close(&ef);
}

static void check_python(const char *python)
{
	struct live l[2];

	if (run_child(python, l))
		return;
	check_asyncio(python, &l[0]);
	check_contextvars(python, &l[1]);
}

int main(void)
{
	const char *more = getenv("PYRT_TEST_PYTHONS");
	char *list, *tok, *save = NULL;

	check_python(DEFAULT_PYTHON);
	if (more && *more) {
		list = strdup(more);
		for (tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			check_python(tok);
		free(list);
	}
	return test_report();
}
