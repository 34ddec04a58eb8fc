/* SPDX-License-Identifier: GPL-2.0-only */
/* Command line: the subcommand and every option, parsed once into struct env. */
#ifndef AGENTPROF_ENV_H
#define AGENTPROF_ENV_H

#include <stdbool.h>
#include <sys/types.h>

#define ENV_MAX_PIDS 64
#define ENV_MAX_PG_PORTS 16
#define ENV_MAX_PEER_NAMES 64
#define ENV_MAX_SERVICE_RULES 64

enum env_cmd {
	CMD_NONE,
	CMD_CHECK,
	CMD_RECORD,
	CMD_REPORT,
	CMD_DIFF,
	CMD_EXPORT,
	CMD_PLAN, /* parsed by src/plan/plan.c: its options are its own */
};

enum env_format {
	FORMAT_TEXT,
	FORMAT_JSON,
};

/* `agentprof export` only. */
struct env_export {
	const char *listen;	     /* --listen ADDR:PORT */
	const char *service_rules[ENV_MAX_SERVICE_RULES]; /* --service NAME=SELECTOR */
	int nservice_rules;
	unsigned int max_routes;     /* per service */
	unsigned int max_services;
	unsigned int max_classes;    /* per service */
	unsigned int max_peers;
	unsigned int max_statements;
	unsigned int max_groups;     /* (service, route, method, status, class) on the node */
	const char *duration_buckets; /* seconds, comma-separated */
	const char *cpu_buckets;
	unsigned int rescan_s;	     /* listening processes looked for again */
	unsigned int forget_s;	     /* a service with no live process leaves the series */
	unsigned int sample_s;	     /* RSS, in-flight requests, map fill sampled */
	const char *logs_root;	     /* the kubelet's pods/ and containers/ log dirs */
};

/* --python: how far CPython services are followed (docs/python.md). */
enum env_python {
	ENV_PY_STEPS,	 /* contexts and asyncio task steps (default) */
	ENV_PY_CONTEXTS, /* contexts only: no trap per task step */
	ENV_PY_OFF,	 /* the thread rules */
};

struct env {
	enum env_cmd cmd;
	bool verbose;
	pid_t pids[ENV_MAX_PIDS];
	int npids;
	unsigned int duration_s;   /* 0: until SIGINT/SIGTERM */
	const char *requests_path; /* --requests: JSON lines, one per request */
	const char *profile_path;  /* -o: the profile as JSON */
	const char *class_header;  /* header that names the request class */
	char **command;		   /* after --: start and trace this */
	int command_argc;
	bool quiet; /* no table on stdout */
	unsigned short pg_ports[ENV_MAX_PG_PORTS]; /* --pg-port; none given: 5432 */
	int npg_ports;
	const char *peer_names[ENV_MAX_PEER_NAMES]; /* --peer-name ADDR:PORT=NAME */
	int npeer_names;
	bool pg_literals; /* --pg-literals: statements with their values */
	bool mmap;	  /* --mmap: mapped_bytes, at the price of syscall tracepoints */
	unsigned int sample_every; /* --sample N: one request in N traced; 1: all */
	bool wide;		   /* --wide: the table with every column */
	bool live;		   /* --live: the table refreshed every second */
	enum env_python python;	   /* --python */

	/* report and diff: they read profiles, never BPF */
	const char *inputs[2];	   /* report: PROFILE; diff: BEFORE AFTER */
	int ninputs;
	const char *out_path;	   /* report -o: the HTML file */
	const char *html_path;	   /* diff --html FILE */
	enum env_format format;	   /* diff --format */
	double threshold_pct;	   /* diff --threshold: a change smaller is not flagged */
	double min_ms;		   /* diff --min-ms: nor a change of a time below this */
	struct env_export ex;
	int sub_argc;	/* CMD_PLAN: the command's own argv, from its name on */
	char **sub_argv;
};

/* Parses argv into env; returns 0, or a non-zero exit code after printing why. */
int env__parse(struct env *env, int argc, char **argv);

#endif /* AGENTPROF_ENV_H */
