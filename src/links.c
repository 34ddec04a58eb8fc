// SPDX-License-Identifier: GPL-2.0-only
/* Detaching BPF links in parallel (links.h). */
#include <pthread.h>
#include <stdlib.h>

#include <bpf/libbpf.h>

#include "links.h"

static void *link_destroy(void *arg)
{
	struct bpf_link **link = arg;

	bpf_link__destroy(*link);
	*link = NULL;
	return NULL;
}

void links__destroy(struct bpf_link **links[], int n)
{
	pthread_t *th = calloc(n > 0 ? n : 1, sizeof(*th));
	int i, started = 0;

	for (i = 0; i < n; i++) {
		if (!*links[i])
			continue;
		if (th && !pthread_create(&th[started], NULL, link_destroy, links[i]))
			started++;
		else
			link_destroy(links[i]);	/* no thread: in turn */
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	free(th);
}
