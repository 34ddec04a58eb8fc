// SPDX-License-Identifier: GPL-2.0-only
/*
 * `agentprof report PROFILE.json`: everything a person looks at after a
 * recording, on one page that opens from disk. It reads the profile only:
 * no BPF, no root.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentprof/request.h"
#include "breakdown.h"
#include "html.h"
#include "report.h"

/* Groups drawn in detail; the summary tables list every group. */
#define REPORT_DETAIL_GROUPS 40
#define REPORT_STATEMENTS 20
#define BAR_W 420

static double ms(double ns)
{
	return ns / 1e6;
}

static double run_seconds(const struct profile_run *run)
{
	return run->end_real_ns > run->start_real_ns ? (run->end_real_ns - run->start_real_ns) / 1e9
						     : 0;
}

/* A number tests read back: its raw value in data-v, shown as text. */
static void td_ms(FILE *out, const char *key, uint64_t ns)
{
	fprintf(out, "<td data-k=\"%s\" data-v=\"%llu\">%.2f</td>", key, (unsigned long long)ns,
		ms(ns));
}

static void td_u64(FILE *out, const char *key, uint64_t v)
{
	fprintf(out, "<td data-k=\"%s\" data-v=\"%llu\">%llu</td>", key, (unsigned long long)v,
		(unsigned long long)v);
}

/* service, method, route, class: what names a group, in that order. */
static void group_names(const struct profile_group *g, const char *names[4])
{
	names[0] = g->service;
	names[1] = g->method;
	names[2] = g->route;
	names[3] = g->class;
}

/* data-group="service|method|route|class": how tests find a group's elements. */
static void group_key_attr(FILE *out, const struct profile_group *g)
{
	const char *names[4];
	int i;

	group_names(g, names);
	fputs(" data-group=\"", out);
	for (i = 0; i < 4; i++) {
		if (i)
			fputc('|', out);
		html__esc(out, names[i]);
	}
	fputc('"', out);
}

static void group_name_cells(FILE *out, const struct profile_group *g)
{
	const char *names[4];
	int i;

	group_names(g, names);
	for (i = 0; i < 4; i++) {
		fputs(i == 2 ? "<td class=\"l route\">" : "<td class=\"l\">", out);
		html__esc(out, names[i][0] ? names[i] : "-");
		fputs("</td>", out);
	}
}

static void write_header(FILE *out, struct profile *p, const char *source, size_t ngroups)
{
	const struct profile_run *run = profile__run(p);
	char when[64] = "?";
	time_t t = run->start_real_ns / 1000000000ULL;
	struct tm tm;

	if (t && gmtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	fputs("<h1>agentprof report</h1><p class=\"note\" id=\"run\">", out);
	html__esc(out, source);
	fprintf(out,
		" &middot; recorded %s for <span data-k=\"seconds\">%.1f</span> s &middot; "
		"<span data-k=\"records\">%llu</span> request records &middot; %zu routes",
		when, run_seconds(run), (unsigned long long)run->records, ngroups);
	if (run->sample_every > 1)
		fprintf(out, " &middot; sampled 1 in %llu: counts are estimates",
			(unsigned long long)run->sample_every);
	fputs("</p>\n", out);
}

static void write_routes(FILE *out, const struct profile_group **v, size_t n, double seconds)
{
	size_t i;

	fputs("<h2 id=\"routes\">Routes</h2><table id=\"routes-table\"><thead><tr>"
	      "<th class=\"l\">service</th><th class=\"l\">method</th><th class=\"l\">route</th>"
	      "<th class=\"l\">class</th><th>requests</th><th>req/s</th><th>5xx</th>"
	      "<th>latency p50</th><th>p95</th><th>p99</th><th>CPU p50</th><th>p95</th>"
	      "<th>PG round trips</th></tr></thead><tbody>\n",
	      out);
	for (i = 0; i < n; i++) {
		const struct profile_group *g = v[i];

		fputs("<tr", out);
		group_key_attr(out, g);
		fputc('>', out);
		group_name_cells(out, g);
		td_u64(out, "requests", g->requests);
		fprintf(out, "<td data-k=\"rate\">%.2f</td>",
			seconds > 0 ? g->requests / seconds : 0);
		td_u64(out, "status_5xx", g->status_5xx);
		td_ms(out, "lat_p50", hist__quantile(&g->h[PM_DURATION], 0.50));
		td_ms(out, "lat_p95", hist__quantile(&g->h[PM_DURATION], 0.95));
		td_ms(out, "lat_p99", hist__quantile(&g->h[PM_DURATION], 0.99));
		td_ms(out, "cpu_p50", hist__quantile(&g->h[PM_CPU], 0.50));
		td_ms(out, "cpu_p95", hist__quantile(&g->h[PM_CPU], 0.95));
		fprintf(out, "<td data-k=\"pg_rt_mean\">%.1f</td></tr>\n",
			hist__mean(&g->h[PM_PG_ROUND_TRIPS]));
	}
	fputs("</tbody></table><p class=\"note\">Times in ms. Latency: first request byte read "
	      "to last response byte written. CPU: on-CPU time of the threads working for the "
	      "request.</p>\n",
	      out);
}

/* The upstream part of g split by peer, in proportion to each peer's wait. */
static int upstream_parts(const struct profile_group *g, const struct breakdown *b,
			  struct html_bar_part *parts, char labels[][PROFILE_PEER_NAME_MAX + 16])
{
	uint64_t total = 0;
	int i, n = 0;

	for (i = 0; i < g->npeers; i++)
		if (g->peers[i].kind != AP_PEER_PG)
			total += g->peers[i].wait_ns;
	if (!total) {
		parts[0] = (struct html_bar_part){ "upstreams", html__part_color(BD_UPSTREAM),
						   b->mean_ns[BD_UPSTREAM] };
		return 1;
	}
	for (i = 0; i < g->npeers; i++) {
		if (g->peers[i].kind == AP_PEER_PG)
			continue;
		snprintf(labels[n], sizeof(labels[n]), "upstream %s", g->peers[i].name);
		parts[n] = (struct html_bar_part){ labels[n], html__peer_color(n),
						   b->mean_ns[BD_UPSTREAM] * g->peers[i].wait_ns /
							   (double)total };
		n++;
	}
	return n;
}

static void write_where(FILE *out, const struct profile_group **v, size_t n)
{
	struct html_bar_part parts[BD__COUNT + PROFILE_GROUP_PEERS];
	char labels[PROFILE_GROUP_PEERS][PROFILE_PEER_NAME_MAX + 16];
	struct breakdown b;
	size_t i;
	int k, np;

	fputs("<h2 id=\"where\">Where the time goes</h2><div class=\"legend\">", out);
	for (k = 0; k < BD__COUNT; k++)
		fprintf(out, "<span><i style=\"background:%s\"></i>%s</span>", html__part_color(k),
			breakdown__name(k));
	fputs("</div><p class=\"note\">The mean request of each route, split: CPU, waiting for a "
	      "CPU, PostgreSQL round trips open, waiting on upstream replies (one shade per peer), "
	      "blocked on locks or disk, and the rest of the latency. Each bar is its route's own "
	      "mean latency; hover a segment for its ms.</p><table id=\"where-table\"><thead><tr>"
	      "<th class=\"l\">service</th><th class=\"l\">method</th><th class=\"l\">route</th>"
	      "<th class=\"l\">class</th><th class=\"l\">split</th><th>mean ms</th></tr></thead>"
	      "<tbody>\n",
	      out);
	for (i = 0; i < n; i++) {
		const struct profile_group *g = v[i];

		breakdown__of(g, &b);
		np = 0;
		for (k = 0; k < BD__COUNT; k++) {
			if (k == BD_UPSTREAM) {
				np += upstream_parts(g, &b, parts + np, labels);
				continue;
			}
			parts[np++] = (struct html_bar_part){ breakdown__name(k),
							      html__part_color(k), b.mean_ns[k] };
		}
		fputs("<tr", out);
		group_key_attr(out, g);
		fputc('>', out);
		group_name_cells(out, g);
		fputs("<td class=\"l\">", out);
		html__stacked_bar(out, parts, np, b.latency_ns + b.overlap_ns, BAR_W);
		fprintf(out, "</td><td data-k=\"lat_mean\">%.2f</td></tr>\n", ms(b.latency_ns));
	}
	fputs("</tbody></table>\n", out);
}

static void kv(FILE *out, const char *key, const char *label, const char *fmt, double v)
{
	fprintf(out, "<div><span>%s</span> <b data-k=\"%s\">", label, key);
	fprintf(out, fmt, v);
	fputs("</b></div>", out);
}

static void write_group_peers(FILE *out, const struct profile_group *g)
{
	int i;

	if (!g->npeers)
		return;
	fputs("<table class=\"peers\"><thead><tr><th class=\"l\">peer</th><th class=\"l\">kind"
	      "</th><th>requests</th><th>calls per request</th><th>wait per request (ms)</th>"
	      "</tr></thead><tbody>",
	      out);
	for (i = 0; i < g->npeers; i++) {
		const struct profile_group_peer *gp = &g->peers[i];

		fputs("<tr><td class=\"l\">", out);
		html__esc(out, gp->name);
		fprintf(out,
			"</td><td class=\"l\">%s</td><td>%llu</td><td>%.1f</td><td>%.2f</td></tr>",
			gp->kind == AP_PEER_PG ? "pg" : "upstream",
			(unsigned long long)gp->requests,
			gp->requests ? (double)gp->calls / gp->requests : 0,
			gp->requests ? ms((double)gp->wait_ns / gp->requests) : 0);
	}
	fputs("</tbody></table>", out);
}

static void write_group(FILE *out, const struct profile_group *g, size_t idx, bool mapped)
{
	const struct hist *h = g->h;
	char id[32];

	fputs("<section class=\"group\"", out);
	group_key_attr(out, g);
	fputs("><h3>", out);
	html__esc(out, g->method);
	fputc(' ', out);
	html__esc(out, g->route);
	if (g->class[0]) {
		fputs(" &middot; ", out);
		html__esc(out, g->class);
	}
	fputs(" <span class=\"note\">", out);
	html__esc(out, g->service);
	fprintf(out, ", %llu requests</span></h3><div class=\"kv\">",
		(unsigned long long)g->requests);
	kv(out, "lat_p50", "latency p50", "%.2f ms", ms(hist__quantile(&h[PM_DURATION], 0.50)));
	kv(out, "lat_p95", "p95", "%.2f ms", ms(hist__quantile(&h[PM_DURATION], 0.95)));
	kv(out, "lat_p99", "p99", "%.2f ms", ms(hist__quantile(&h[PM_DURATION], 0.99)));
	kv(out, "ttfb_p50", "first byte p50", "%.2f ms", ms(hist__quantile(&h[PM_TTFB], 0.50)));
	kv(out, "cpu_p50", "CPU p50", "%.2f ms", ms(hist__quantile(&h[PM_CPU], 0.50)));
	kv(out, "cpu_p95", "CPU p95", "%.2f ms", ms(hist__quantile(&h[PM_CPU], 0.95)));
	kv(out, "cpu_mean", "CPU mean", "%.2f ms", ms(hist__mean(&h[PM_CPU])));
	kv(out, "runq_p95", "run queue p95", "%.2f ms", ms(hist__quantile(&h[PM_RUNQ], 0.95)));
	kv(out, "faults_mb_p95", "page faults p95", "%.2f MB",
	   hist__quantile(&h[PM_MINOR_FAULTS], 0.95) * 4096 / 1048576.0);
	kv(out, "rss_growth_mb_p95", "RSS growth p95", "%.2f MB",
	   hist__quantile(&h[PM_RSS_GROWTH], 0.95) / 1048576.0);
	if (mapped)
		kv(out, "mapped_mb_p95", "mapped p95", "%.2f MB",
		   hist__quantile(&h[PM_MAPPED], 0.95) / 1048576.0);
	kv(out, "pg_rt_p50", "PG round trips p50", "%.0f",
	   (double)hist__quantile(&h[PM_PG_ROUND_TRIPS], 0.50));
	kv(out, "pg_rt_max", "PG round trips max", "%.0f", (double)h[PM_PG_ROUND_TRIPS].max);
	kv(out, "pg_time_p50", "PG time p50", "%.2f ms", ms(hist__quantile(&h[PM_PG_TIME], 0.50)));
	kv(out, "incomplete", "incomplete", "%.0f", (double)g->incomplete);
	kv(out, "status_5xx", "5xx", "%.0f", (double)g->status_5xx);
	fputs("</div><div class=\"plots\"><figure>", out);
	snprintf(id, sizeof(id), "lat-%zu", idx);
	html__hist_plot(out, &h[PM_DURATION], 1, id);
	fputs("<figcaption>latency distribution (log scale)</figcaption></figure><figure>", out);
	snprintf(id, sizeof(id), "cpu-%zu", idx);
	html__hist_plot(out, &h[PM_CPU], 1, id);
	fputs("<figcaption>CPU per request (log scale)</figcaption></figure></div>", out);
	write_group_peers(out, g);
	fputs("</section>\n", out);
}

static uint64_t jget_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

static double jget_double(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

static const char *jget_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* A section that is not an array (a hand-edited or fuzzed profile) has no rows. */
static size_t jarr_len(struct json_object *o)
{
	return json_object_is_type(o, json_type_array) ? json_object_array_length(o) : 0;
}

static uint64_t jget_q(struct json_object *o, const char *key, const char *q)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? jget_u64(v, q) : 0;
}

/* rows and errors are null where the replies were not walked: unknown, not 0. */
static void td_known(FILE *out, struct json_object *o, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(o, key, &v) && v)
		td_u64(out, key, json_object_get_uint64(v));
	else
		fprintf(out, "<td data-k=\"%s\" title=\"not seen: no bpf_loop, or TLS\">?</td>",
			key);
}

static void write_statements(FILE *out, struct json_object *stmts)
{
	size_t i, n = jarr_len(stmts);

	fputs("<h2 id=\"statements\">Top PostgreSQL statements</h2>", out);
	if (!n) {
		fputs("<p class=\"note\">No PostgreSQL round trips in this profile.</p>\n", out);
		return;
	}
	fputs("<p class=\"note\">By total time, fingerprints only: literals are replaced by $n "
	      "placeholders.</p><table id=\"statements-table\"><thead><tr><th>calls</th>"
	      "<th>total ms</th><th>p50</th><th>p95</th><th>rows</th><th>errors</th>"
	      "<th class=\"l\">statement</th><th class=\"l\">routes</th></tr></thead><tbody>\n",
	      out);
	for (i = 0; i < n && i < REPORT_STATEMENTS; i++) {
		struct json_object *s = json_object_array_get_idx(stmts, i), *routes;
		size_t r, nr;

		fputs("<tr>", out);
		td_u64(out, "calls", jget_u64(s, "calls"));
		td_ms(out, "total", jget_u64(s, "total_ns"));
		td_ms(out, "p50", jget_q(s, "duration_ns", "p50"));
		td_ms(out, "p95", jget_q(s, "duration_ns", "p95"));
		td_known(out, s, "rows");
		td_known(out, s, "errors");
		fputs("<td class=\"stmt\">", out);
		html__esc(out, jget_str(s, "fingerprint"));
		fputs("</td><td class=\"l route\">", out);
		nr = json_object_object_get_ex(s, "routes", &routes) ? jarr_len(routes) : 0;
		for (r = 0; r < nr; r++) {
			if (r)
				fputs(", ", out);
			html__esc(out,
				  json_object_get_string(json_object_array_get_idx(routes, r)));
		}
		fputs("</td></tr>\n", out);
	}
	fputs("</tbody></table>\n", out);
}

static void write_peers(FILE *out, struct json_object *peers)
{
	size_t i, n = jarr_len(peers);

	fputs("<h2 id=\"peers\">Upstream peers</h2>", out);
	if (!n) {
		fputs("<p class=\"note\">No upstream connections in this profile.</p>\n", out);
		return;
	}
	fputs("<p class=\"note\">Wait: per request, last byte sent to the reply read, summed over "
	      "the request's calls. RTT: the kernel's smoothed round-trip time of the "
	      "connections.</p><table id=\"peers-table\"><thead><tr><th class=\"l\">peer</th>"
	      "<th class=\"l\">kind</th><th>calls</th><th>requests</th><th>connects</th>"
	      "<th>wait p50</th><th>p95</th><th>p99</th><th>RTT avg µs</th><th>RTT max µs</th>"
	      "<th>retransmits</th><th>connect failures</th><th>resets</th></tr></thead><tbody>\n",
	      out);
	for (i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(peers, i);

		fputs("<tr><td class=\"l\">", out);
		html__esc(out, jget_str(s, "peer"));
		fputs("</td><td class=\"l\">", out);
		html__esc(out, jget_str(s, "kind"));
		fputs("</td>", out);
		td_u64(out, "calls", jget_u64(s, "calls"));
		td_u64(out, "requests", jget_u64(s, "requests"));
		td_u64(out, "connects", jget_u64(s, "connects"));
		td_ms(out, "wait_p50", jget_q(s, "wait_ns", "p50"));
		td_ms(out, "wait_p95", jget_q(s, "wait_ns", "p95"));
		td_ms(out, "wait_p99", jget_q(s, "wait_ns", "p99"));
		fprintf(out, "<td data-k=\"srtt_avg_us\">%.0f</td>", jget_double(s, "srtt_avg_us"));
		td_u64(out, "srtt_max_us", jget_u64(s, "srtt_max_us"));
		td_u64(out, "retransmits", jget_u64(s, "retransmits"));
		td_u64(out, "connect_failures", jget_u64(s, "connect_failures"));
		td_u64(out, "resets", jget_u64(s, "resets"));
		fputs("</tr>\n", out);
	}
	fputs("</tbody></table>\n", out);
}

static void loss_row(FILE *out, const char *key, uint64_t v, const char *meaning)
{
	fprintf(out, "<tr%s><td class=\"l\">%s</td>", v ? " class=\"worse\"" : "", key);
	td_u64(out, key, v);
	fprintf(out, "<td class=\"l\">%s</td></tr>\n", meaning);
}

static void write_losses(FILE *out, const struct profile_run *r)
{
	fputs("<h2 id=\"losses\">agentprof's own losses</h2><p class=\"note\">What the recording "
	      "missed or skipped, counted rather than silent; 0 everywhere is a complete record."
	      "</p><table id=\"losses-table\"><thead><tr><th class=\"l\">counter</th><th>count</th>"
	      "<th class=\"l\">meaning</th></tr></thead><tbody>\n",
	      out);
	loss_row(out, "ringbuf_drops", r->ringbuf_drops,
		 "request records dropped: ring buffer full");
	loss_row(out, "malformed_heads", r->malformed_heads, "heads that were not HTTP/1.x");
	loss_row(out, "oversized_heads", r->oversized_heads,
		 "request lines longer than the capture");
	loss_row(out, "requests_map_full", r->requests_map_full,
		 "requests closed off early: too many in flight");
	loss_row(out, "conns_map_full", r->conns_map_full, "connections not tracked: map full");
	loss_row(out, "threads_map_full", r->threads_map_full, "threads not tracked: map full");
	loss_row(out, "procs_map_full", r->procs_map_full, "child processes not traced");
	loss_row(out, "incomplete", r->incomplete, "requests with no response byte");
	loss_row(out, "flushed", r->flushed, "requests still open when tracing stopped");
	loss_row(out, "unsampled", r->unsampled, "requests seen and not traced (--sample)");
	loss_row(out, "py_units_evicted", r->py_units_evicted,
		 "CPython units whose request binding was lost: table full");
	fputs("</tbody></table>\n", out);
}

int report__write(struct profile *p, const char *source, FILE *out)
{
	const struct profile_run *run = profile__run(p);
	const struct profile_group **v;
	size_t n, i;

	v = profile__sorted(p, &n);
	if (!v)
		return -ENOMEM;
	html__begin(out, "agentprof report");
	write_header(out, p, source, n);
	if (!n)
		fputs("<p>No HTTP requests were seen in this recording.</p>", out);
	write_routes(out, v, n, run_seconds(run));
	write_where(out, v, n);
	fputs("<h2 id=\"details\">Routes in detail</h2>", out);
	if (n > REPORT_DETAIL_GROUPS)
		fprintf(out, "<p class=\"note\">The %d busiest of %zu.</p>", REPORT_DETAIL_GROUPS,
			n);
	for (i = 0; i < n && i < REPORT_DETAIL_GROUPS; i++)
		write_group(out, v[i], i, run->mapped_measured);
	write_statements(out, profile__section(p, "statements"));
	write_peers(out, profile__section(p, "peers"));
	write_losses(out, run);
	html__end(out);
	return ferror(out) ? -EIO : 0;
}

/* profile.json -> profile.html; another name gets .html added. */
static char *default_output(const char *in)
{
	size_t len = strlen(in);
	char *out = malloc(len + 6);

	if (!out)
		return NULL;
	memcpy(out, in, len + 1);
	if (len > 5 && !strcmp(in + len - 5, ".json"))
		out[len - 5] = '\0';
	strcat(out, ".html");
	return out;
}

int report__run(const struct env *env)
{
	char err[512], *path = NULL;
	struct profile *p;
	FILE *out = NULL;
	int ret = 1;

	p = profile__load(env->inputs[0], err, sizeof(err));
	if (!p) {
		fprintf(stderr, "agentprof: %s: pass a file that `agentprof record -o` wrote\n",
			err);
		return 1;
	}
	path = env->out_path ? strdup(env->out_path) : default_output(env->inputs[0]);
	if (!path) {
		fprintf(stderr, "agentprof: out of memory\n");
		goto cleanup;
	}
	out = fopen(path, "w");
	if (!out) {
		fprintf(stderr, "agentprof: cannot write %s: %s: pick another file with -o\n", path,
			strerror(errno));
		goto cleanup;
	}
	if (report__write(p, env->inputs[0], out) || fclose(out)) {
		out = NULL;
		fprintf(stderr, "agentprof: writing %s failed: %s: check the disk\n", path,
			strerror(errno ?: EIO));
		goto cleanup;
	}
	out = NULL;
	printf("%s\n", path);
	ret = 0;
cleanup:
	if (out)
		fclose(out);
	free(path);
	profile__free(p);
	return ret;
}
