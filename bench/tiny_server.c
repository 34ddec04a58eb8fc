// SPDX-License-Identifier: GPL-2.0-only
/*
 * The benchmark's worst case for a request tracer: a minimal HTTP/1.1 server
 * that answers `GET /x/<n>` with 200 and a 2-byte body on keep-alive
 * connections, so nearly all of its CPU goes to the syscalls and context
 * switches that agentprof hooks.
 *
 *   tiny_server [-p PORT] [-t THREADS]
 *
 * Port 0 (the default) picks a free port; the server prints `listening PORT`
 * on stdout once it accepts connections. THREADS (default 1) event loops,
 * each with its own epoll instance, share the listening socket
 * (EPOLLEXCLUSIVE). I/O is plain read(2)/write(2). Exits on SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 4096
#define MAX_EVENTS 64

struct conn {
	int fd;
	size_t len;
	char buf[BUF_SIZE];
};

static int listen_fd;
static volatile sig_atomic_t stop;

static const char ok_resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			      "Content-Length: 2\r\n\r\nok";
static const char nf_resp[] = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
			      "Content-Length: 2\r\n\r\nno";
static const char bad_resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
			       "Connection: close\r\n\r\n";

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;	/* EAGAIN on a tiny reply: treat the peer as gone */
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void close_conn(struct conn *c)
{
	close(c->fd);
	free(c);
}

/* Answer every complete request head in the buffer; -1 closes the connection. */
static int serve(struct conn *c)
{
	char *head = c->buf, *end;

	while ((end = memmem(head, c->len - (size_t)(head - c->buf), "\r\n\r\n", 4))) {
		const char *resp = nf_resp;
		size_t rlen = sizeof(nf_resp) - 1;

		if (strncmp(head, "GET ", 4) != 0) {
			write_all(c->fd, bad_resp, sizeof(bad_resp) - 1);
			return -1;
		}
		if (strncmp(head + 4, "/x/", 3) == 0) {
			resp = ok_resp;
			rlen = sizeof(ok_resp) - 1;
		}
		if (write_all(c->fd, resp, rlen))
			return -1;
		head = end + 4;
	}
	c->len -= (size_t)(head - c->buf);
	memmove(c->buf, head, c->len);
	if (c->len == sizeof(c->buf)) {	/* head too large */
		write_all(c->fd, bad_resp, sizeof(bad_resp) - 1);
		return -1;
	}
	return 0;
}

static void accept_all(int ep)
{
	for (;;) {
		int one = 1, fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;

		if (fd < 0)
			return;	/* EAGAIN: another loop took it, or none left */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = malloc(sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			close_conn(c);
			continue;
		}
	}
}

static void *loop(void *arg)
{
	struct epoll_event evs[MAX_EVENTS], lev = { .events = EPOLLIN | EPOLLEXCLUSIVE };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	(void)arg;
	if (ep < 0) {
		perror("tiny_server: epoll_create1");
		exit(1);
	}
	lev.data.ptr = NULL;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &lev)) {
		perror("tiny_server: epoll_ctl");
		exit(1);
	}
	while (!stop) {
		int i, n = epoll_wait(ep, evs, MAX_EVENTS, 500);

		for (i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				accept_all(ep);
				continue;
			}
			r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
			if (r < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (r <= 0) {
				close_conn(c);
				continue;
			}
			c->len += (size_t)r;
			if (serve(c))
				close_conn(c);
		}
	}
	close(ep);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sigaction sa = { .sa_handler = on_signal };
	socklen_t alen = sizeof(addr);
	int opt, one = 1, port = 0, nthreads = 1, i;
	pthread_t *tids;

	while ((opt = getopt(argc, argv, "p:t:")) != -1) {
		switch (opt) {
		case 'p':
			port = atoi(optarg);
			break;
		case 't':
			nthreads = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-t THREADS]\n", argv[0]);
			return 2;
		}
	}
	if (port < 0 || port > 65535 || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "tiny_server: bad port or thread count\n");
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0) {
		perror("tiny_server: socket");
		return 1;
	}
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	addr.sin_port = htons((unsigned short)port);
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) || listen(listen_fd, 1024) ||
	    getsockname(listen_fd, (struct sockaddr *)&addr, &alen)) {
		perror("tiny_server: bind/listen");
		return 1;
	}
	printf("listening %d\n", ntohs(addr.sin_port));
	fflush(stdout);

	tids = calloc((size_t)nthreads, sizeof(*tids));
	if (!tids)
		return 1;
	for (i = 1; i < nthreads; i++) {
		if (pthread_create(&tids[i], NULL, loop, NULL)) {
			fprintf(stderr, "tiny_server: pthread_create failed\n");
			return 1;
		}
	}
	loop(NULL);
	for (i = 1; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	close(listen_fd);
	return 0;
}
