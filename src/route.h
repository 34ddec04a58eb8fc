/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Route templating: turns a request-target into a route label with ids replaced by ":id", so
 * per-route metrics keep a bounded number of labels.
 */
#ifndef AGENTPROF_ROUTE_H
#define AGENTPROF_ROUTE_H

#include <stddef.h>

/*
 * Writes the route for an HTTP request-target into out (always NUL-terminated, out_sz >= 2).
 * Returns strlen(out).
 *
 * The query string and fragment are dropped, absolute-form loses its scheme and authority,
 * "*" stays "*", an empty target becomes "/", and a target not starting with '/' (e.g. the
 * authority-form of CONNECT) gets one prepended. Repeated slashes collapse; a trailing slash is
 * kept. A route longer than out allows is cut at a segment boundary and ends in "/..." (when
 * out_sz < 5 there is no room for that and out is just "/").
 */
size_t route__template(const char *target, char *out, size_t out_sz);

#endif /* AGENTPROF_ROUTE_H */
