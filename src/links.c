// SPDX-License-Identifier: GPL-2.0-only
/* Detaching BPF links in parallel (links.h). */
#include <pthread.h>
#include <stdlib.h>

#include <bpf/libbpf.h>

#include "links.h"

/*
 * The detaches in flight. A thread that has destroyed its link waits for
 * every other before it exits: a detach may rewrite kernel text that
 * exiting threads run (the static branch of sched_process_exit's
 * tracepoint in do_exit()). Real CPUs take that in their stride; qemu's
 * TCG kept running the int3 of the patch after it was gone, and the 6.1
 * guest of the test suite locked up with two detach threads spinning in
 * do_exit() (docs/limitations.md).
 */
struct detaches {
	pthread_mutex_t mu;
	pthread_cond_t done;
	int pending;		/* links not destroyed yet */
};

struct detach {
	struct detaches *all;
	struct bpf_link **link;
};

static void link_destroy(struct bpf_link **link)
{
	bpf_link__destroy(*link);
	*link = NULL;
}

/* One link fewer to destroy; the last wakes every thread waiting. */
static void detaches_one_done(struct detaches *all)
{
	pthread_mutex_lock(&all->mu);
	if (--all->pending == 0)
		pthread_cond_broadcast(&all->done);
	pthread_mutex_unlock(&all->mu);
}

static void detaches_wait(struct detaches *all)
{
	pthread_mutex_lock(&all->mu);
	while (all->pending > 0)
		pthread_cond_wait(&all->done, &all->mu);
	pthread_mutex_unlock(&all->mu);
}

static void *detach_thread(void *arg)
{
	struct detach *d = arg;

	link_destroy(d->link);
	detaches_one_done(d->all);
	detaches_wait(d->all);
	return NULL;
}

void links__destroy(struct bpf_link **links[], int n)
{
	struct detaches all = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	pthread_t *th = calloc(n > 0 ? n : 1, sizeof(*th));
	struct detach *d = calloc(n > 0 ? n : 1, sizeof(*d));
	int i, started = 0;

	for (i = 0; i < n; i++)
		all.pending += *links[i] != NULL;
	for (i = 0; i < n; i++) {
		if (!*links[i])
			continue;
		if (th && d) {
			d[i] = (struct detach){ .all = &all, .link = links[i] };
			if (!pthread_create(&th[started], NULL, detach_thread, &d[i])) {
				started++;
				continue;
			}
		}
		link_destroy(links[i]);	/* no thread: in turn */
		detaches_one_done(&all);
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(d);
	free(th);
}
