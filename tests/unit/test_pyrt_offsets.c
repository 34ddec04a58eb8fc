// SPDX-License-Identifier: GPL-2.0-only
/*
 * The CPython offsets table (src/pyrt_offsets.c) against two kinds of ground truth:
 *
 * 1. offsetof() in the headers of every CPython installed in /usr/include (python3.X-dev),
 *    each compiled into its own object by the Makefile (pyrt_headers.h says how they meet here).
 * 2. A live interpreter, /usr/bin/python3.11 and any in PYRT_TEST_PYTHONS (space-separated
 *    paths): from the _PyRuntime symbol, walk interpreters.head -> threads.head -> next to the
 *    thread states of the two threads whose tids the script prints, then read the main thread's
 *    PyThreadState.context before, inside and after ctx.run(): inside, it must be id(ctx).
 *    Reading another process's memory needs root or a child of ours (it is one).
 */
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pyrt_headers.h"
#include "pyrt_offsets.h"
#include "test.h"

#define DEFAULT_PYTHON "/usr/bin/python3.11"
#define LINE_TIMEOUT_MS 10000
#define MAX_THREADS 64 /* bounds the walk of a list read from another process */

/*
 * Prints "major minor main_tid other_tid id(ctx)", then stops three times on stdin: outside
 * any Context.run, inside ctx.run(), and after it. The other thread's state is created after
 * the main one's and CPython pushes new thread states at the list's head, so finding the main
 * thread needs the .next step.
 */
static const char script[] =
    "import contextvars, sys, threading\n"
    "ev = threading.Event()\n"
    "t = threading.Thread(target=ev.wait)\n"
    "t.start()\n"
    "ctx = contextvars.copy_context()\n"
    "def wait(tag):\n"
    "    print(tag, flush=True)\n"
    "    sys.stdin.readline()\n"
    "v = sys.version_info\n"
    "print(v[0], v[1], threading.get_native_id(), t.native_id, id(ctx), flush=True)\n"
    "wait('outside')\n"
    "ctx.run(wait, 'inside')\n"
    "wait('after')\n"
    "ev.set()\n";

struct child {
	pid_t pid;
	int in;	 /* its stdin */
	int out; /* its stdout */
};

static void test_table_vs_headers(void)
{
	const struct pyrt_headers *const *h;
	int n = 0;

	pyrt_headers__for_each(h) {
		const struct pyrt_headers *e = *h;
		const struct pyrt_offsets *o = pyrt_offsets__find(e->major, e->minor);

		n++;
		ASSERT_TRUE(o, "the table has %d.%d (headers of %s installed)", e->major, e->minor,
			    e->version);
		if (!o)
			continue;
		ASSERT_EQ(o->runtime_interp_head, e->off.runtime_interp_head,
			  "%s: _PyRuntimeState.interpreters.head", e->version);
		ASSERT_EQ(o->interp_threads_head, e->off.interp_threads_head,
			  "%s: PyInterpreterState.threads.head", e->version);
		ASSERT_EQ(o->tstate_next, e->off.tstate_next, "%s: PyThreadState.next", e->version);
		ASSERT_EQ(o->tstate_native_tid, e->off.tstate_native_tid,
			  "%s: PyThreadState.native_thread_id", e->version);
		ASSERT_EQ(o->tstate_context, e->off.tstate_context, "%s: PyThreadState.context",
			  e->version);
	}
	ASSERT_GT(n, 0, "CPython headers compiled in (none in /usr/include/python3.X: install "
			"python3.11-dev, ./tools/deps.sh does)");
	ASSERT_TRUE(!pyrt_offsets__find(3, 99) && !pyrt_offsets__find(2, 11),
		    "unknown versions have no offsets");
}

static bool have_headers(int major, int minor)
{
	const struct pyrt_headers *const *h;

	pyrt_headers__for_each(h) {
		if ((*h)->major == major && (*h)->minor == minor)
			return true;
	}
	return false;
}

static int spawn(const char *python, struct child *c)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1};

	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC))
		goto fail;
	c->pid = fork();
	if (c->pid < 0)
		goto fail;
	if (c->pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		execl(python, python, "-c", script, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->in = in[1];
	c->out = out[0];
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	return -errno;
}

/* Gives the child a second to finish after its last stop, then kills it. */
static void reap(struct child *c)
{
	int status;

	close(c->in);
	close(c->out);
	for (int i = 0; i < 100; i++) {
		if (waitpid(c->pid, &status, WNOHANG) != 0)
			return;
		usleep(10000);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, &status, 0);
}

/* One line of the child's output, without its '\n'; false on EOF or after LINE_TIMEOUT_MS. */
static bool read_line(int fd, char *buf, size_t n)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t len = 0;

	while (len + 1 < n) {
		if (poll(&p, 1, LINE_TIMEOUT_MS) <= 0 || read(fd, buf + len, 1) != 1)
			return false;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return true;
}

static bool expect_line(struct child *c, const char *want)
{
	char line[64];

	if (!read_line(c->out, line, sizeof(line))) {
		ASSERT_TRUE(false, "the script says \"%s\"", want);
		return false;
	}
	ASSERT_STREQ(line, want, "the script's stop");
	return !strcmp(line, want);
}

static bool resume(struct child *c)
{
	return write(c->in, "\n", 1) == 1;
}

/* Address of the dynamic symbol name in the ELF file path, as linked (without load bias). */
static int elf_dynsym(const char *path, const char *name, uint64_t *value)
{
	Elf_Scn *scn = NULL;
	int fd, err = -ENOENT;
	Elf *e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	while (e && (scn = elf_nextscn(e, scn))) {
		Elf_Data *d = elf_getdata(scn, NULL);
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNSYM || !d)
			continue;
		for (size_t i = 0; sh.sh_entsize && i < sh.sh_size / sh.sh_entsize; i++) {
			const char *sn;
			GElf_Sym s;

			if (!gelf_getsym(d, (int)i, &s) || s.st_shndx == SHN_UNDEF)
				continue;
			sn = elf_strptr(e, sh.sh_link, s.st_name);
			if (sn && !strcmp(sn, name)) {
				*value = s.st_value;
				err = 0;
				goto cleanup;
			}
		}
	}
cleanup:
	elf_end(e);
	close(fd);
	return err;
}

/* The lowest PT_LOAD address of path, page-aligned: what its offset-0 mapping maps. */
static int elf_base(const char *path, uint64_t *base)
{
	size_t n = 0;
	int fd, err = -ENOENT;
	Elf *e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	e = elf_begin(fd, ELF_C_READ, NULL);
	if (e && !elf_getphdrnum(e, &n)) {
		for (size_t i = 0; i < n; i++) {
			GElf_Phdr ph;

			if (gelf_getphdr(e, (int)i, &ph) && ph.p_type == PT_LOAD) {
				*base = ph.p_vaddr & ~(uint64_t)(sysconf(_SC_PAGESIZE) - 1);
				err = 0;
				break;
			}
		}
	}
	elf_end(e);
	close(fd);
	return err;
}

/*
 * Where _PyRuntime is in pid: in the executable (Debian's python3.11 is not PIE, so its load
 * bias is 0) or in a libpython (--enable-shared builds). For each file mapped at offset 0, its
 * load bias is where that mapping starts minus the file's lowest PT_LOAD address.
 */
static int find_runtime(pid_t pid, uint64_t *addr)
{
	char path[64], line[4096], file[4096];
	int err = -ENOENT;
	FILE *maps;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	maps = fopen(path, "re");
	if (!maps)
		return -errno;
	while (err && fgets(line, sizeof(line), maps)) {
		unsigned long long start, off;
		uint64_t sym = 0, base = 0;

		if (sscanf(line, "%llx-%*x %*s %llx %*s %*s %4095s", &start, &off, file) != 3 ||
		    off != 0 || file[0] != '/')
			continue;
		if (elf_dynsym(file, "_PyRuntime", &sym) || elf_base(file, &base))
			continue;
		*addr = start - base + sym;
		err = 0;
	}
	fclose(maps);
	return err;
}

static int peek(pid_t pid, uint64_t addr, uint64_t *val)
{
	struct iovec local = {.iov_base = val, .iov_len = sizeof(*val)};
	struct iovec remote = {.iov_base = (void *)(uintptr_t)addr, .iov_len = sizeof(*val)};

	if (process_vm_readv(pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof(*val))
		return errno ? -errno : -EIO;
	return 0;
}

/* The PyThreadState of Linux thread tid, the way the BPF side walks to it; 0 if not found. */
static uint64_t find_tstate(pid_t pid, uint64_t runtime, const struct pyrt_offsets *o, uint64_t tid)
{
	uint64_t interp, ts, ntid;

	if (peek(pid, runtime + o->runtime_interp_head, &interp) || !interp ||
	    peek(pid, interp + o->interp_threads_head, &ts))
		return 0;
	for (int i = 0; ts && i < MAX_THREADS; i++) {
		if (peek(pid, ts + o->tstate_native_tid, &ntid))
			return 0;
		if (ntid == tid)
			return ts;
		if (peek(pid, ts + o->tstate_next, &ts))
			return 0;
	}
	return 0;
}

static uint64_t read_context(pid_t pid, uint64_t tstate, const struct pyrt_offsets *o)
{
	uint64_t ctx = 0;

	if (peek(pid, tstate + o->tstate_context, &ctx))
		return 0;
	return ctx;
}

/*
 * 3.13 describes itself: _PyRuntime starts with _Py_DebugOffsets, and four of our five offsets
 * are in it (tools/pyrt-offsets.sh prints where; the layout holds within 3.13 only).
 */
static void check_debug_offsets(const char *python, pid_t pid, uint64_t runtime,
				const struct pyrt_offsets *o)
{
	const struct {
		const char *name;
		unsigned int at;   /* in _Py_DebugOffsets (3.13) */
		unsigned int want; /* the table's */
	} fields[] = {
	    {"runtime_state.interpreters_head", 40, o->runtime_interp_head},
	    {"interpreter_state.threads_head", 72, o->interp_threads_head},
	    {"thread_state.next", 168, o->tstate_next},
	    {"thread_state.native_thread_id", 200, o->tstate_native_tid},
	};
	uint64_t cookie = 0, v;

	peek(pid, runtime, &cookie);
	ASSERT_EQ(memcmp(&cookie, "xdebugpy", 8), 0, "%s: _PyRuntime starts with the debug cookie",
		  python);
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		v = 0;
		peek(pid, runtime + fields[i].at, &v);
		ASSERT_EQ(v, fields[i].want, "%s: _Py_DebugOffsets.%s agrees with the table", python,
			  fields[i].name);
	}
}

/* The walk and the context reads on one running interpreter. */
static void check_live(const char *python, bool need_headers)
{
	unsigned long long main_tid, other_tid, ctx_id;
	uint64_t runtime = 0, ts = 0, outside;
	const struct pyrt_offsets *o;
	struct child c = {.pid = -1, .in = -1, .out = -1};
	char line[256];
	int major, minor, err;

	err = spawn(python, &c);
	if (err) {
		ASSERT_EQ(err, 0, "%s starts", python);
		return;
	}
	if (!read_line(c.out, line, sizeof(line)) ||
	    sscanf(line, "%d %d %llu %llu %llu", &major, &minor, &main_tid, &other_tid, &ctx_id) !=
		5) {
		ASSERT_TRUE(false, "%s prints its version, tids and id(ctx) (is it installed?)",
			    python);
		goto cleanup;
	}
	if (need_headers)
		ASSERT_TRUE(have_headers(major, minor),
			    "headers of %s (%d.%d) compiled in: python3.%d-dev installed", python,
			    major, minor, minor);
	o = pyrt_offsets__find(major, minor);
	ASSERT_TRUE(o, "%s: the table has %d.%d", python, major, minor);
	err = find_runtime(c.pid, &runtime);
	ASSERT_EQ(err, 0, "%s: _PyRuntime in a file it maps", python);
	if (!o || err || !expect_line(&c, "outside"))
		goto cleanup;
	if (major == 3 && minor == 13)
		check_debug_offsets(python, c.pid, runtime, o);

	ts = find_tstate(c.pid, runtime, o, other_tid);
	ASSERT_NE(ts, 0, "%s: the walk from _PyRuntime finds the thread state of tid %llu "
			 "(the other thread)", python, other_tid);
	ts = find_tstate(c.pid, runtime, o, main_tid);
	ASSERT_NE(ts, 0, "%s: the walk finds the thread state of tid %llu (main, via .next)",
		  python, main_tid);
	if (!ts)
		goto cleanup;
	/* copy_context() made the thread's first, empty context current; ctx is a copy of it. */
	outside = read_context(c.pid, ts, o);
	ASSERT_NE(outside, 0, "%s: a context is current before ctx.run()", python);
	ASSERT_NE(outside, ctx_id, "%s: ... and it is not ctx", python);

	if (!resume(&c) || !expect_line(&c, "inside"))
		goto cleanup;
	ASSERT_EQ(read_context(c.pid, ts, o), ctx_id, "%s: PyThreadState.context is id(ctx) "
						      "inside ctx.run()", python);

	if (!resume(&c) || !expect_line(&c, "after"))
		goto cleanup;
	ASSERT_EQ(read_context(c.pid, ts, o), outside,
		  "%s: the context before ctx.run() is back after it", python);
	resume(&c);
cleanup:
	reap(&c);
}

static void test_live(void)
{
	const char *more = getenv("PYRT_TEST_PYTHONS");
	char *list, *save = NULL;

	check_live(DEFAULT_PYTHON, true);
	if (!more)
		return;
	list = strdup(more);
	for (char *p = strtok_r(list, " ", &save); p; p = strtok_r(NULL, " ", &save))
		check_live(p, false);
	free(list);
}

TEST_MAIN(test_table_vs_headers, test_live)
