/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef AGENTPROF_PLAN_PLAN_H
#define AGENTPROF_PLAN_PLAN_H

/* `agentprof plan`: argv[0] is "plan"; returns the process exit code. */
int plan__main(int argc, char **argv);

#endif /* AGENTPROF_PLAN_PLAN_H */
