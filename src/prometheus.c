// SPDX-License-Identifier: GPL-2.0-only
/*
 * Prometheus text 0.0.4 / OpenMetrics 1.0 writer (prometheus.h). Every
 * family is written whole (all its samples together), as both formats
 * require. Histogram buckets come from the profile's log-linear histograms:
 * a bucket `le` counts the values whose log-linear bucket lies wholly at or
 * below it, so a value within 1/32 below a boundary may be counted one
 * bucket up; _sum and _count are exact.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cap.h"
#include "hist.h"
#include "peers.h"
#include "pg.h"
#include "profile.h"
#include "prometheus.h"
#include "service.h"

#define LABELS_MAX 2048

struct writer {
	FILE *out;
	bool om;
	const struct prom_input *in;
	size_t folded_peers, folded_statements;
};

enum family_type { COUNTER, GAUGE, HISTOGRAM, INFO };

static const char *const type_names[] = {
	[COUNTER] = "counter", [GAUGE] = "gauge", [HISTOGRAM] = "histogram", [INFO] = "gauge"
};

/*
 * name is the sample name as written; for counters it ends in _total,
 * which OpenMetrics leaves out of the family name.
 */
static void family(struct writer *w, const char *name, enum family_type t, const char *help)
{
	size_t len = strlen(name);

	if (w->om && t == COUNTER && len > 6 && !strcmp(name + len - 6, "_total"))
		len -= 6;
	fprintf(w->out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)len, name, help, (int)len, name,
		type_names[t]);
}

/* Appends name="value" to buf, the value escaped as both formats require. */
static void label(char *buf, size_t sz, const char *name, const char *value)
{
	size_t len = strlen(buf);
	const char *s;

	if (!value || !value[0] || len + 4 >= sz)
		return;
	len += snprintf(buf + len, sz - len, "%s%s=\"", len ? "," : "", name);
	for (s = value; *s && len + 3 < sz; s++) {
		if (*s == '\\' || *s == '"') {
			buf[len++] = '\\';
			buf[len++] = *s;
		} else if (*s == '\n') {
			buf[len++] = '\\';
			buf[len++] = 'n';
		} else {
			buf[len++] = *s;
		}
	}
	if (len + 1 < sz)
		buf[len++] = '"';
	buf[len] = '\0';
}

/* name{labels}, or name alone when there are none. */
static void sample_name(struct writer *w, const char *name, const char *labels)
{
	fprintf(w->out, labels[0] ? "%s{%s} " : "%s ", name, labels);
}

static void sample_u64(struct writer *w, const char *name, const char *labels, uint64_t v)
{
	sample_name(w, name, labels);
	fprintf(w->out, "%" PRIu64 "\n", v);
}

/* Nanoseconds as seconds, exactly. */
static void sample_ns(struct writer *w, const char *name, const char *labels, uint64_t ns)
{
	sample_name(w, name, labels);
	fprintf(w->out, "%" PRIu64 ".%09" PRIu64 "\n", ns / (uint64_t)1000000000,
		ns % (uint64_t)1000000000);
}

static void sample_f(struct writer *w, const char *name, const char *labels, double v)
{
	sample_name(w, name, labels);
	fprintf(w->out, "%.17g\n", v);
}

static void service_labels(struct writer *w, const char *key, char *buf, size_t sz)
{
	const struct service_id *id = w->in->lookup ? w->in->lookup(w->in->lookup_ctx, key) : NULL;

	buf[0] = '\0';
	if (!id) {
		label(buf, sz, "service_name", key);
		return;
	}
	label(buf, sz, "service_name", id->name);
	label(buf, sz, "k8s_namespace_name", id->ns);
	label(buf, sz, "k8s_pod_name", id->pod);
	label(buf, sz, "k8s_container_name", id->container);
}

static void group_labels(struct writer *w, const struct profile_group *g, char *buf, size_t sz)
{
	char status[16];

	service_labels(w, g->service, buf, sz);
	label(buf, sz, "http_route", g->route);
	label(buf, sz, "http_request_method", g->method);
	if (g->status) {
		snprintf(status, sizeof(status), "%d", g->status);
		label(buf, sz, "http_response_status_code", status);
	}
	label(buf, sz, "request_class", g->class);
}

/* A histogram of nanoseconds in seconds, buckets from the log-linear counts. */
static void histogram(struct writer *w, const char *name, const char *labels, const struct hist *h,
		      const double *le, size_t nle)
{
	uint64_t cum = 0, bound;
	size_t i, idx = 0;
	char sample[128];

	for (i = 0; i < nle; i++) {
		bound = (uint64_t)llround(le[i] * 1e9);
		while (idx < HIST_BUCKETS && cum < h->count && hist__upper(idx) <= bound)
			cum += h->counts[idx++];
		fprintf(w->out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels,
			labels[0] ? "," : "", le[i], cum);
	}
	fprintf(w->out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels,
		labels[0] ? "," : "", h->count);
	snprintf(sample, sizeof(sample), "%s_sum", name);
	sample_ns(w, sample, labels, h->sum);
	snprintf(sample, sizeof(sample), "%s_count", name);
	sample_u64(w, sample, labels, h->count);
}

struct group_family {
	const char *name;
	enum family_type type;
	const char *help;
	enum profile_metric metric;
	bool seconds;	   /* the metric is in ns: written as seconds */
	const char *extra; /* a fixed label, e.g. reason="pg" */
};

static const struct group_family group_families[] = {
	{ "agentprof_request_runq_seconds_total", COUNTER,
	  "Time the requests' threads were runnable but waiting for a CPU", PM_RUNQ, true, NULL },
	{ "agentprof_request_offcpu_seconds_total", COUNTER,
	  "Time the requests' threads were blocked, by what they waited for (lock: futex; disk: "
	  "file I/O; other: sleeps and the rest)",
	  PM_OFFCPU_UPSTREAM, true, "reason=\"upstream\"" },
	{ NULL, COUNTER, NULL, PM_OFFCPU_PG, true, "reason=\"pg\"" },
	{ NULL, COUNTER, NULL, PM_OFFCPU_LOCK, true, "reason=\"lock\"" },
	{ NULL, COUNTER, NULL, PM_OFFCPU_DISK, true, "reason=\"disk\"" },
	{ NULL, COUNTER, NULL, PM_OFFCPU, true, "reason=\"other\"" },
	{ "agentprof_request_page_faults_total", COUNTER,
	  "Page faults of the requests' threads while they worked for them", PM_MINOR_FAULTS, false,
	  "kind=\"minor\"" },
	{ NULL, COUNTER, NULL, PM_MAJOR_FAULTS, false, "kind=\"major\"" },
	{ "agentprof_request_received_bytes_total", COUNTER, "Bytes read from the client", PM_RX,
	  false, NULL },
	{ "agentprof_request_sent_bytes_total", COUNTER, "Bytes written to the client", PM_TX,
	  false, NULL },
	{ "agentprof_request_upstream_wait_seconds_total", COUNTER,
	  "Time the requests waited on upstream peers (not PostgreSQL), per call summed",
	  PM_UPSTREAM_WAIT, true, NULL },
	{ "agentprof_request_pg_round_trips_total", COUNTER,
	  "PostgreSQL round trips of the requests", PM_PG_ROUND_TRIPS, false, NULL },
	{ "agentprof_request_pg_seconds_total", COUNTER,
	  "Time the requests had a PostgreSQL round trip open", PM_PG_TIME, true, NULL },
	{ "agentprof_request_rss_growth_bytes_total", COUNTER,
	  "Process RSS growth over the requests (positive deltas only)", PM_RSS_GROWTH, false,
	  NULL },
};

static uint64_t group_value(const struct profile_group *g, const struct group_family *f)
{
	uint64_t v = g->h[f->metric].sum;

	/* "other" is what is left of the blocked time once the named reasons are out. */
	if (f->metric == PM_OFFCPU) {
		uint64_t known = g->h[PM_OFFCPU_UPSTREAM].sum + g->h[PM_OFFCPU_PG].sum +
				 g->h[PM_OFFCPU_LOCK].sum + g->h[PM_OFFCPU_DISK].sum;

		v = v > known ? v - known : 0;
	}
	return v;
}

/* Each group's labels, formatted once per scrape: every family repeats them. */
static char **groups_labels(struct writer *w, const struct profile_group **v, size_t n)
{
	char labels[LABELS_MAX], **out = calloc(n + 1, sizeof(*out));
	size_t i;

	for (i = 0; out && i < n; i++) {
		group_labels(w, v[i], labels, sizeof(labels));
		out[i] = strdup(labels);
		if (!out[i]) {
			while (i--)
				free(out[i]);
			free(out);
			return NULL;
		}
	}
	return out;
}

static void write_groups(struct writer *w)
{
	const struct profile_group **v;
	const struct group_family *f;
	const char *name = NULL;
	char full[LABELS_MAX + 64], **labels;
	size_t n, i, k;

	v = profile__sorted(w->in->profile, &n);
	labels = groups_labels(w, v, n);
	if (!labels)
		return;
	family(w, "http_server_request_duration_seconds", HISTOGRAM,
	       "Duration of HTTP server requests: first request byte read to last response byte "
	       "written");
	for (i = 0; i < n; i++)
		histogram(w, "http_server_request_duration_seconds", labels[i],
			  &v[i]->h[PM_DURATION], w->in->duration_buckets, w->in->nduration);
	family(w, "agentprof_request_cpu_seconds", HISTOGRAM,
	       "On-CPU time of the threads working for each request");
	for (i = 0; i < n; i++)
		histogram(w, "agentprof_request_cpu_seconds", labels[i], &v[i]->h[PM_CPU],
			  w->in->cpu_buckets, w->in->ncpu);
	family(w, "agentprof_requests_incomplete_total", COUNTER,
	       "Requests with no response byte written");
	for (i = 0; i < n; i++)
		sample_u64(w, "agentprof_requests_incomplete_total", labels[i], v[i]->incomplete);
	for (k = 0; k < sizeof(group_families) / sizeof(group_families[0]); k++) {
		f = &group_families[k];
		if (f->name) {
			name = f->name;
			family(w, name, f->type, f->help);
		}
		for (i = 0; i < n; i++) {
			snprintf(full, sizeof(full), "%s%s%s", labels[i],
				 f->extra && labels[i][0] ? "," : "", f->extra ?: "");
			if (f->seconds)
				sample_ns(w, name, full, group_value(v[i], f));
			else
				sample_u64(w, name, full, group_value(v[i], f));
		}
	}
	for (i = 0; i < n; i++)
		free(labels[i]);
	free(labels);
}

struct peer_row {
	const struct peer_stats *s;
	char name[PEER_NAME_MAX];
	const char *kind;
	uint64_t calls, requests, connects, connect_ns, wait_ns, retransmits, resets, failures;
	uint64_t srtt_sum_us, srtt_samples;
};

static void peer_add(struct peer_row *r, const struct peer_stats *s)
{
	r->calls += s->calls;
	r->requests += s->requests;
	r->connects += s->connects;
	r->connect_ns += s->connect_ns;
	r->wait_ns += s->wait.sum;
	r->retransmits += s->retransmits;
	r->resets += s->resets;
	r->failures += s->connect_failures;
	r->srtt_sum_us += s->srtt_sum_us;
	r->srtt_samples += s->srtt_samples;
}

/* Peers admitted by the cap get rows of their own; the rest add up in (other) per kind. */
static size_t peer_rows(struct writer *w, struct peer_row **out, size_t *folded)
{
	const struct peer_stats *s;
	struct peer_row *rows, other[2] = {};
	size_t n = 0, cap = 0, i;

	*folded = 0;
	for (s = peers__list(w->in->peers); s; s = s->next)
		cap++;
	rows = calloc(cap + 2, sizeof(*rows));
	if (!rows)
		return 0;
	for (s = peers__list(w->in->peers); s; s = s->next) {
		if (w->in->peers_cap && !cap__admit(w->in->peers_cap, "", s->name)) {
			peer_add(&other[s->kind == 2], s);
			(*folded)++;
			continue;
		}
		rows[n].s = s;
		snprintf(rows[n].name, sizeof(rows[n].name), "%s", s->name);
		rows[n].kind = peers__kind_name(s->kind);
		peer_add(&rows[n++], s);
	}
	for (i = 0; i < 2; i++) {
		if (!other[i].calls && !other[i].requests && !other[i].resets && !other[i].failures)
			continue;
		rows[n] = other[i];
		snprintf(rows[n].name, sizeof(rows[n].name), "%s", CAP_OTHER);
		rows[n++].kind = peers__kind_name(i ? 2 : 1);
	}
	*out = rows;
	return n;
}

/* A counter family over rows of a table: the uint64_t at off in each row. */
struct row_family {
	const char *name;
	const char *help;
	size_t off;
	bool seconds; /* the field is in ns: written as seconds */
};

/* Writes each family, one sample a row, labelled by labels_of(row). */
static void write_rows(struct writer *w, const struct row_family *fams, size_t nfams,
		       const void *rows, size_t nrows, size_t row_size,
		       void (*labels_of)(const void *row, char *buf, size_t sz))
{
	char labels[LABELS_MAX];
	const char *row;
	size_t i, k;
	uint64_t v;

	for (k = 0; k < nfams; k++) {
		family(w, fams[k].name, COUNTER, fams[k].help);
		for (i = 0; i < nrows; i++) {
			row = (const char *)rows + i * row_size;
			labels[0] = '\0';
			labels_of(row, labels, sizeof(labels));
			v = *(const uint64_t *)(row + fams[k].off);
			if (fams[k].seconds)
				sample_ns(w, fams[k].name, labels, v);
			else
				sample_u64(w, fams[k].name, labels, v);
		}
	}
}

#define PEER_FIELD(F) ((size_t) & ((struct peer_row *)0)->F)

static const struct row_family peer_families[] = {
	{ "agentprof_peer_calls_total", "Request/response turns with the peer",
	  PEER_FIELD(calls), false },
	{ "agentprof_peer_requests_total", "Requests that talked to the peer",
	  PEER_FIELD(requests), false },
	{ "agentprof_peer_wait_seconds_total",
	  "Time requests waited on the peer: last byte sent to last reply byte, per call",
	  PEER_FIELD(wait_ns), true },
	{ "agentprof_peer_connects_total", "TCP handshakes requests made to the peer",
	  PEER_FIELD(connects), false },
	{ "agentprof_peer_connect_seconds_total", "Time in TCP handshakes to the peer",
	  PEER_FIELD(connect_ns), true },
	{ "agentprof_peer_retransmits_total", "TCP retransmits to the peer",
	  PEER_FIELD(retransmits), false },
	{ "agentprof_peer_resets_total", "TCP resets received from the peer",
	  PEER_FIELD(resets), false },
	{ "agentprof_peer_connect_failures_total",
	  "connect() to the peer refused, timed out or reset", PEER_FIELD(failures), false },
};

static void peer_labels(const void *row, char *buf, size_t sz)
{
	const struct peer_row *r = row;

	label(buf, sz, "peer", r->name);
	label(buf, sz, "kind", r->kind);
}

static void write_peers(struct writer *w)
{
	struct peer_row *rows = NULL;
	char labels[LABELS_MAX];
	size_t n, i, folded;

	n = peer_rows(w, &rows, &folded);
	write_rows(w, peer_families, sizeof(peer_families) / sizeof(peer_families[0]), rows, n,
		   sizeof(*rows), peer_labels);
	family(w, "agentprof_peer_srtt_seconds", GAUGE,
	       "The kernel's smoothed RTT to the peer, averaged over replies");
	for (i = 0; i < n; i++) {
		if (!rows[i].srtt_samples)
			continue;
		labels[0] = '\0';
		peer_labels(&rows[i], labels, sizeof(labels));
		sample_f(w, "agentprof_peer_srtt_seconds", labels,
			 (double)rows[i].srtt_sum_us / rows[i].srtt_samples / 1e6);
	}
	w->folded_peers = folded;
	free(rows);
}

/* A fingerprint's series id: stable across runs and hosts (FNV-1a, 64 bits). */
static void statement_id(const char *fp, char *out, size_t sz)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *fp; fp++)
		h = (h ^ (unsigned char)*fp) * 0x100000001b3ULL;
	snprintf(out, sz, "%016" PRIx64, h);
}

struct stmt_row {
	char id[24];
	const char *fingerprint;
	uint64_t calls, total_ns, errors, rows;
};

static size_t stmt_rows(struct writer *w, struct stmt_row **out, size_t *folded)
{
	const struct pg_stmt **v;
	struct stmt_row *rows, other = {};
	size_t n, i, k = 0;

	*folded = 0;
	v = pg__sorted(w->in->pg, &n);
	rows = calloc(n + 1, sizeof(*rows));
	if (!rows)
		return 0;
	for (i = 0; i < n; i++) {
		struct stmt_row *r = &rows[k];

		if (w->in->statements_cap &&
		    !cap__admit(w->in->statements_cap, "", v[i]->fingerprint)) {
			r = &other;
			(*folded)++;
		} else {
			statement_id(v[i]->fingerprint, r->id, sizeof(r->id));
			r->fingerprint = v[i]->fingerprint;
			k++;
		}
		r->calls += v[i]->calls;
		r->total_ns += v[i]->total_ns;
		r->errors += v[i]->errors;
		r->rows += v[i]->rows;
	}
	if (*folded) {
		rows[k] = other;
		snprintf(rows[k].id, sizeof(rows[k].id), "%s", CAP_OTHER);
		rows[k++].fingerprint = CAP_OTHER;
	}
	*out = rows;
	return k;
}

#define STMT_FIELD(F) ((size_t) & ((struct stmt_row *)0)->F)

static const struct row_family stmt_families[] = {
	{ "agentprof_pg_statement_calls_total", "PostgreSQL round trips that ran the statement",
	  STMT_FIELD(calls), false },
	{ "agentprof_pg_statement_seconds_total",
	  "Time from sending the statement to its ReadyForQuery", STMT_FIELD(total_ns), true },
	{ "agentprof_pg_statement_errors_total",
	  "Round trips of the statement answered with an ErrorResponse", STMT_FIELD(errors),
	  false },
};

static void stmt_labels(const void *row, char *buf, size_t sz)
{
	label(buf, sz, "statement_id", ((const struct stmt_row *)row)->id);
}

static void write_statements(struct writer *w)
{
	struct stmt_row *rows = NULL;
	char labels[LABELS_MAX];
	size_t n, i, folded;

	n = stmt_rows(w, &rows, &folded);
	family(w, "agentprof_pg_statement_info", INFO,
	       "The fingerprint (literals replaced by placeholders) of a statement_id");
	for (i = 0; i < n; i++) {
		labels[0] = '\0';
		label(labels, sizeof(labels), "statement_id", rows[i].id);
		label(labels, sizeof(labels), "fingerprint", rows[i].fingerprint);
		sample_u64(w, "agentprof_pg_statement_info", labels, 1);
	}
	write_rows(w, stmt_families, sizeof(stmt_families) / sizeof(stmt_families[0]), rows, n,
		   sizeof(*rows), stmt_labels);
	w->folded_statements = folded;
	free(rows);
}

static void write_route_peers(struct writer *w)
{
	const struct prom_route_peer *rp;
	char labels[LABELS_MAX];
	size_t i, k;

	for (k = 0; k < 2; k++) {
		const char *name = k ? "agentprof_request_peer_wait_seconds_total"
				     : "agentprof_request_peer_calls_total";

		family(w, name, COUNTER,
		       k ? "Time the route's requests waited on the peer: last byte sent to last "
			   "reply byte, per call summed"
			 : "Request/response turns of the route's requests with the peer");
		for (i = 0; i < w->in->nroute_peers; i++) {
			rp = &w->in->route_peers[i];
			service_labels(w, rp->service, labels, sizeof(labels));
			label(labels, sizeof(labels), "http_route", rp->route);
			label(labels, sizeof(labels), "peer", rp->peer);
			label(labels, sizeof(labels), "kind", rp->kind);
			if (k)
				sample_ns(w, name, labels, rp->wait_ns);
			else
				sample_u64(w, name, labels, rp->calls);
		}
	}
}

static void write_services(struct writer *w)
{
	const struct prom_service *s;
	char labels[LABELS_MAX];
	size_t i;

	family(w, "agentprof_service_resident_memory_bytes", GAUGE,
	       "Resident memory of the service's traced processes, sampled");
	for (i = 0; i < w->in->nservices; i++) {
		s = &w->in->services[i];
		service_labels(w, s->id->key, labels, sizeof(labels));
		sample_u64(w, "agentprof_service_resident_memory_bytes", labels, s->rss_bytes);
	}
	family(w, "agentprof_service_requests_in_flight", GAUGE,
	       "Requests of the service open at the sample (read from the kernel's slots)");
	for (i = 0; i < w->in->nservices; i++) {
		s = &w->in->services[i];
		service_labels(w, s->id->key, labels, sizeof(labels));
		sample_u64(w, "agentprof_service_requests_in_flight", labels, s->in_flight);
	}
	family(w, "agentprof_service_processes", GAUGE, "Traced processes of the service");
	for (i = 0; i < w->in->nservices; i++) {
		s = &w->in->services[i];
		service_labels(w, s->id->key, labels, sizeof(labels));
		sample_u64(w, "agentprof_service_processes", labels, s->processes);
	}
}

static void write_counts(struct writer *w, const char *name, enum family_type t, const char *help,
			 const char *label_name, const struct prom_count *c, size_t n, bool limit,
			 bool seconds)
{
	char labels[LABELS_MAX];
	size_t i;

	family(w, name, t, help);
	for (i = 0; i < n; i++) {
		labels[0] = '\0';
		label(labels, sizeof(labels), label_name, c[i].label);
		if (seconds)
			sample_ns(w, name, labels, limit ? c[i].limit : c[i].value);
		else
			sample_u64(w, name, labels, limit ? c[i].limit : c[i].value);
	}
}

static void write_self(struct writer *w)
{
	const struct prom_input *in = w->in;
	char labels[LABELS_MAX];

	write_counts(w, "agentprof_events_lost_total", COUNTER,
		     "Events agentprof lost or skipped, by reason", "reason", in->lost, in->nlost,
		     false, false);
	family(w, "agentprof_requests_flushed_early_total", COUNTER,
	       "Requests closed off early: a start found every slot it may take open");
	fprintf(w->out, "agentprof_requests_flushed_early_total %" PRIu64 "\n", in->flushed_early);
	family(w, "agentprof_request_records_total", COUNTER,
	       "Request records received from the kernel");
	fprintf(w->out, "agentprof_request_records_total %" PRIu64 "\n", in->requests);
	write_counts(w, "agentprof_cardinality_overflow_total", COUNTER,
		     "Requests filed under (other) because a cap was reached", "cap", in->caps,
		     in->ncaps, false, false);
	write_counts(w, "agentprof_cardinality_limit", GAUGE, "The cap on distinct label values",
		     "cap", in->caps, in->ncaps, true, false);
	family(w, "agentprof_series_folded", GAUGE,
	       "Peers and statements filed under (other) because their cap was reached");
	fprintf(w->out, "agentprof_series_folded{cap=\"peers\"} %zu\n", w->folded_peers);
	fprintf(w->out, "agentprof_series_folded{cap=\"statements\"} %zu\n", w->folded_statements);
	if (in->nprogs) {
		write_counts(w, "agentprof_bpf_program_run_seconds_total", COUNTER,
			     "Time the kernel spent running the BPF program (bpf_stats)", "program",
			     in->progs, in->nprogs, false, true);
		write_counts(w, "agentprof_bpf_program_runs_total", COUNTER,
			     "Runs of the BPF program (bpf_stats)", "program", in->progs,
			     in->nprogs, true, false);
	}
	write_counts(w, "agentprof_bpf_map_entries", GAUGE, "Entries in use in the BPF map", "map",
		     in->maps, in->nmaps, false, false);
	write_counts(w, "agentprof_bpf_map_max_entries", GAUGE, "Capacity of the BPF map", "map",
		     in->maps, in->nmaps, true, false);
	family(w, "agentprof_traced_processes", GAUGE,
	       "Processes traced, by attribution mode: task_aware (CPython units of work "
	       "followed), heuristic (CPython the reader could not read), socket (the socket and "
	       "wakeup rules: every other process)");
	fprintf(w->out, "agentprof_traced_processes{mode=\"task_aware\"} %u\n",
		in->traced_task_aware);
	fprintf(w->out, "agentprof_traced_processes{mode=\"heuristic\"} %u\n",
		in->traced_heuristic);
	fprintf(w->out, "agentprof_traced_processes{mode=\"socket\"} %u\n",
		in->traced_processes - in->traced_task_aware - in->traced_heuristic);
	family(w, "agentprof_last_drain_age_seconds", GAUGE,
	       "Seconds since the ring buffer was last drained");
	fprintf(w->out, "agentprof_last_drain_age_seconds %.3f\n", in->last_drain_age_s);
	family(w, "agentprof_build_info", INFO, "agentprof's version, the kernel and the BPF mode");
	labels[0] = '\0';
	label(labels, sizeof(labels), "version", in->version);
	label(labels, sizeof(labels), "kernel", in->kernel);
	label(labels, sizeof(labels), "mode", in->mode);
	sample_u64(w, "agentprof_build_info", labels, 1);
	family(w, "process_cpu_seconds_total", COUNTER,
	       "Total user and system CPU time spent in seconds");
	fprintf(w->out, "process_cpu_seconds_total %.3f\n", in->cpu_seconds);
	family(w, "process_resident_memory_bytes", GAUGE, "Resident memory size in bytes");
	fprintf(w->out, "process_resident_memory_bytes %" PRIu64 "\n", in->resident_bytes);
	family(w, "process_virtual_memory_bytes", GAUGE, "Virtual memory size in bytes");
	fprintf(w->out, "process_virtual_memory_bytes %" PRIu64 "\n", in->virtual_bytes);
	family(w, "process_open_fds", GAUGE, "Number of open file descriptors");
	fprintf(w->out, "process_open_fds %" PRIu64 "\n", in->open_fds);
	family(w, "process_max_fds", GAUGE, "Maximum number of open file descriptors");
	fprintf(w->out, "process_max_fds %" PRIu64 "\n", in->max_fds);
	family(w, "process_start_time_seconds", GAUGE,
	       "Start time of the process since unix epoch in seconds");
	fprintf(w->out, "process_start_time_seconds %.3f\n", in->start_time_s);
}

int prometheus__write(FILE *out, const struct prom_input *in, bool openmetrics)
{
	struct writer w = { .out = out, .om = openmetrics, .in = in };

	write_groups(&w);
	write_route_peers(&w);
	write_peers(&w);
	write_statements(&w);
	write_services(&w);
	write_self(&w);
	if (openmetrics)
		fputs("# EOF\n", out);
	return ferror(out) ? -EIO : 0;
}

int prometheus__parse_buckets(const char *s, double *v, size_t max)
{
	const char *p = s;
	size_t n = 0;
	char *end;

	while (*p) {
		if (n == max)
			return -EINVAL;
		errno = 0;
		v[n] = strtod(p, &end);
		if (errno || end == p || !(v[n] > 0) || isinf(v[n]) || (n && v[n] <= v[n - 1]))
			return -EINVAL;
		n++;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		p = end;
	}
	return n ? (int)n : -EINVAL;
}
