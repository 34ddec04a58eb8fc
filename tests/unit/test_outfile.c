// SPDX-License-Identifier: GPL-2.0-only
/*
 * Output files (src/outfile.c, src/lines.c): bad paths refused at open, a
 * profile that replaces its path only when committed, JSON lines that reach
 * the file whole, even when their process is SIGKILLed mid-batch.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lines.h"
#include "outfile.h"
#include "test.h"

static char dir[] = "/tmp/agentprof-outfile-XXXXXX";

static size_t slurp(const char *path, char *buf, size_t sz)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return (size_t)-1;
	n = read(fd, buf, sz - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

static void spit(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	if (fd >= 0) {
		if (write(fd, s, strlen(s)) < 0)
			perror(path);
		close(fd);
	}
}

static void test_bad_paths(void)
{
	char err[200], path[256];

	errno = 0;
	ASSERT_TRUE(outfile__open("/nonexistent/dir/p.json", err, sizeof(err)) == NULL,
		    "missing directory refused at open");
	ASSERT_EQ(errno, ENOENT, "missing directory: ENOENT");
	ASSERT_TRUE(strstr(err, "/nonexistent/dir does not exist") != NULL,
		    "missing directory: the message names it (%s)", err);
	ASSERT_TRUE(outfile__open(dir, err, sizeof(err)) == NULL && strstr(err, "directory"),
		    "a directory refused (%s)", err);
	ASSERT_TRUE(lines__open("/nonexistent/r.jsonl", err, sizeof(err)) == NULL &&
			    strstr(err, "/nonexistent does not exist"),
		    "lines: missing directory refused (%s)", err);
	ASSERT_TRUE(lines__open(dir, err, sizeof(err)) == NULL && strstr(err, "directory"),
		    "lines: a directory refused (%s)", err);
	snprintf(path, sizeof(path), "%s/plain", dir);
	spit(path, "x");
	snprintf(path, sizeof(path), "%s/plain/p.json", dir);
	ASSERT_TRUE(outfile__open(path, err, sizeof(err)) == NULL, "a file as directory refused");
}

static void test_commit(void)
{
	char path[256], link[256], err[200], buf[256];
	struct outfile *o;
	struct stat st;

	snprintf(path, sizeof(path), "%s/profile.json", dir);
	spit(path, "old");
	chmod(path, 0640);
	o = outfile__open(path, err, sizeof(err));
	ASSERT_TRUE(o != NULL, "open over an existing file (%s)", err);
	if (!o)
		return;
	ASSERT_EQ(write(outfile__fd(o), "new", 3), 3, "write");
	slurp(path, buf, sizeof(buf));
	ASSERT_STREQ(buf, "old", "before commit the old file is untouched");
	ASSERT_EQ(outfile__commit(o), 0, "commit");
	slurp(path, buf, sizeof(buf));
	ASSERT_STREQ(buf, "new", "after commit the path has the new content");
	ASSERT_TRUE(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640,
		    "the old file's mode is kept");

	o = outfile__open(path, err, sizeof(err));
	ASSERT_TRUE(o != NULL, "open again");
	if (o) {
		ASSERT_EQ(write(outfile__fd(o), "half", 4), 4, "write");
		outfile__discard(o);
	}
	slurp(path, buf, sizeof(buf));
	ASSERT_STREQ(buf, "new", "discarded: the path keeps the old content");

	/* A symlink keeps pointing at the profile. */
	snprintf(link, sizeof(link), "%s/link.json", dir);
	ASSERT_EQ(symlink(path, link), 0, "symlink");
	o = outfile__open(link, err, sizeof(err));
	ASSERT_TRUE(o != NULL, "open through a symlink");
	if (o) {
		ASSERT_EQ(write(outfile__fd(o), "via", 3), 3, "write");
		ASSERT_EQ(outfile__commit(o), 0, "commit through a symlink");
	}
	ASSERT_TRUE(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the symlink is still one");
	slurp(path, buf, sizeof(buf));
	ASSERT_STREQ(buf, "via", "its target has the content");

	/* A device is written directly, never renamed onto. */
	o = outfile__open("/dev/null", err, sizeof(err));
	ASSERT_TRUE(o != NULL, "open /dev/null");
	if (o)
		ASSERT_EQ(outfile__commit(o), 0, "commit to /dev/null");
	ASSERT_TRUE(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "/dev/null still a device");
}

static void test_lines(void)
{
	char path[256], err[200], line[1000], *buf;
	struct lines *w;
	size_t n, i, nl = 0;
	int k, ok = 1;

	snprintf(path, sizeof(path), "%s/reqs.jsonl", dir);
	w = lines__open(path, err, sizeof(err));
	ASSERT_TRUE(w != NULL, "lines open (%s)", err);
	if (!w)
		return;
	memset(line, 'a', sizeof(line));
	/* 600 lines of ~1000 bytes: more than one batch, so some go out before the end. */
	for (k = 0; k < 600; k++)
		ok &= lines__add(w, line, 900 + k % 100) == 0;
	ASSERT_TRUE(ok, "600 lines queued");
	buf = malloc(1 << 20);
	n = slurp(path, buf, 1 << 20);
	ASSERT_GT(n, 0, "a full batch was written before the end");
	ASSERT_TRUE(n && buf[n - 1] == '\n', "what is on disk ends with a whole line");
	ASSERT_EQ(lines__close(w), 0, "close");
	n = slurp(path, buf, 1 << 20);
	for (i = 0; i < n; i++)
		nl += buf[i] == '\n';
	ASSERT_EQ(nl, 600, "600 lines on disk");
	ASSERT_TRUE(n && buf[n - 1] == '\n', "the file ends with a newline");
	free(buf);
}

/*
 * The disk fills up mid-batch (here: RLIMIT_FSIZE, which the writer process
 * inherits when the file is opened): the file keeps whole lines only.
 */
static void test_lines_full(void)
{
	struct rlimit old, lim;
	char path[256], err[200], line[899], *buf;
	struct lines *w;
	size_t n;
	int k, e;

	snprintf(path, sizeof(path), "%s/full.jsonl", dir);
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 10000;
	setrlimit(RLIMIT_FSIZE, &lim);
	w = lines__open(path, err, sizeof(err));
	setrlimit(RLIMIT_FSIZE, &old);
	ASSERT_TRUE(w != NULL, "lines open (%s)", err);
	if (!w)
		return;
	memset(line, 'b', sizeof(line));
	for (k = 0; k < 30; k++)
		lines__add(w, line, sizeof(line));
	e = lines__flush(w);
	ASSERT_EQ(e, -EFBIG, "a batch cut short by the size limit: the error is returned");
	ASSERT_EQ(lines__add(w, "{}", 2), 0, "a line after the failure");
	ASSERT_EQ(lines__close(w), 0, "close");
	buf = malloc(1 << 16);
	n = slurp(path, buf, 1 << 16);
	ASSERT_EQ(n, 11 * 900 + 3, "11 whole lines of the failed batch kept, then the next line");
	ASSERT_TRUE(n > 9900 && buf[9899] == '\n' && !strcmp(buf + 9900, "{}\n"),
		    "no half line in between");
	free(buf);
}

/* A process that writes batches of lines back to back until it is killed. */
static void __attribute__((noreturn)) lines_forever(const char *path)
{
	char err[200], line[3000];
	struct lines *w = lines__open(path, err, sizeof(err));
	unsigned int k;

	if (!w)
		_exit(1);
	for (k = 0;; k++) {
		/* Lines of 1000-2999 bytes, "<" + x... + ">", so a half one shows. */
		size_t len = 1000 + (k * 7919) % 2000;

		line[0] = '<';
		memset(line + 1, 'x', len - 2);
		line[len - 1] = '>';
		if (lines__add(w, line, len))
			_exit(2);
	}
}

/*
 * 1 if path ends with a whole "<x...>" line (the files grow to tens of MB:
 * only the tail is read), 0 if its last line is cut, -1 if it is empty.
 */
static int ends_whole(const char *path)
{
	char tail[8192], *nl;
	struct stat st;
	ssize_t n = 0;
	off_t from;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) || !st.st_size) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	from = st.st_size > (off_t)sizeof(tail) ? st.st_size - (off_t)sizeof(tail) : 0;
	n = pread(fd, tail, st.st_size - from, from);
	close(fd);
	if (n < 2 || tail[n - 1] != '\n' || tail[n - 2] != '>')
		return 0;
	tail[n - 1] = '\0';
	nl = strrchr(tail, '\n');
	/* The whole file is one line, or the last line starts after a newline. */
	return nl ? nl[1] == '<' : from == 0 && tail[0] == '<';
}

/*
 * SIGKILL at random instants of a process that does nothing but write
 * batches: one write(2) per batch would leave half a line most times (the
 * kernel stops copying at a page boundary once the kill is pending). The
 * writer, reparented to this process (a subreaper), must finish whole lines.
 */
static void test_lines_killed(void)
{
	char path[256];
	int k, status, cut = 0, written = 0, reaped = 1, whole;
	struct timespec ts;
	pid_t pid, w;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	srand(19);
	for (k = 0; k < 20; k++) {
		snprintf(path, sizeof(path), "%s/killed-%d.jsonl", dir, k);
		pid = fork();
		if (pid == 0)
			lines_forever(path);
		ts.tv_sec = 0;
		ts.tv_nsec = (10 + rand() % 30) * 1000000L;
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		/* Then its writer, which ends once it has what reached it on disk. */
		w = waitpid(-1, &status, 0);
		whole = ends_whole(path);
		/* None when the kill came before the file was opened (slow sanitizer builds). */
		if (w < 0 && errno == ECHILD)
			reaped &= whole == -1;
		else
			reaped &= w > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
		written += whole >= 0;
		cut += whole == 0;
		unlink(path);
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	ASSERT_TRUE(reaped, "each writer exited 0 after its process was killed");
	ASSERT_GE(written, 15, "premise: lines were written before the kill (%d of 20 runs)",
		  written);
	ASSERT_EQ(cut, 0, "after 20 SIGKILLs mid-stream, every file ends on a whole line");
}

int main(void)
{
	char cmd[128];

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_bad_paths();
	test_commit();
	test_lines();
	test_lines_full();
	test_lines_killed();
	snprintf(cmd, sizeof(cmd), getenv("KEEP") ? "true %s" : "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	return test_report();
}
