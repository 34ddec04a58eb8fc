// SPDX-License-Identifier: GPL-2.0-only
/* Capability checks (privileges.h), from /proc/self/status's CapEff. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "privileges.h"

static uint64_t effective_caps(void)
{
	char line[256];
	uint64_t caps = 0;
	FILE *f;

	f = fopen("/proc/self/status", "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %" SCNx64, &caps) == 1)
			break;
	fclose(f);
	return caps;
}

bool privileges__have(int cap)
{
	return cap >= 0 && cap < 64 && (effective_caps() >> cap) & 1;
}

int privileges__check(const struct privilege *need, size_t n, char *err, size_t errsz)
{
	uint64_t caps = effective_caps();
	size_t i, len = 0;
	char all[256] = "";

	for (i = 0; i < n; i++)
		len += snprintf(all + len, len < sizeof(all) ? sizeof(all) - len : 0, "%s%s",
				i ? ", " : "", need[i].name);
	for (i = 0; i < n; i++) {
		if ((caps >> need[i].cap) & 1)
			continue;
		snprintf(err, errsz, "missing capability %s (needed %s): run as root, or grant %s",
			 need[i].name, need[i].why, all);
		return -EPERM;
	}
	return 0;
}
