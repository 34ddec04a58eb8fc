// SPDX-License-Identifier: GPL-2.0-only
/* agentprof: dispatch to a subcommand, like bpftool. */
#include <stdio.h>

#include "diff.h"
#include "env.h"
#include "export.h"
#include "feature.h"
#include "plan/plan.h"
#include "record.h"
#include "report.h"

int main(int argc, char **argv)
{
	struct env env;
	int err;

	err = env__parse(&env, argc, argv);
	if (err)
		return err;
	switch (env.cmd) {
	case CMD_CHECK:
		return check__run(env.verbose);
	case CMD_RECORD:
		return record__run(&env);
	case CMD_REPORT:
		return report__run(&env);
	case CMD_DIFF:
		return diff__run(&env);
	case CMD_EXPORT:
		return export__run(&env);
	case CMD_PLAN:
		return plan__main(env.sub_argc, env.sub_argv);
	default:
		return 2;
	}
}
