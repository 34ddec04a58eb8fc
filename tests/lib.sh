# SPDX-License-Identifier: GPL-2.0-only
# Sourced by tests/run and tests/vm/guest-test: runs one test program and
# adds its closing "N passed, N failed" line to the totals $pass and $fail.
# A program that ends without that line, or exits non-zero without a
# failure counted, is one failure more.

pass=${pass:-0}
fail=${fail:-0}
LOGDIR=${LOGDIR:-build/test-logs}
mkdir -p "$LOGDIR"

run_one() {
	local name=$1
	shift
	local log="$LOGDIR/$(basename "${name// /_}").log" line p f wd=
	echo "== $name"
	if [ -n "${RUN_ONE_TIMEOUT:-}" ]; then
		# A test that hangs: what every process was waiting in, shortly
		# before it is killed and the next test runs.
		(sleep $((RUN_ONE_TIMEOUT - 5)) &&
			echo "# $name: still running after $((RUN_ONE_TIMEOUT - 5)) s; the processes:" &&
			ps -eo pid,ppid,stat,wchan:30,etimes,args --sort=pid | sed 's/^/# /') &
		wd=$!
		timeout -k 10 "$RUN_ONE_TIMEOUT" "$@" 2>&1 | tee "$log"
	else
		"$@" 2>&1 | tee "$log"
	fi
	local rc=${PIPESTATUS[0]}
	if [ -n "$wd" ]; then
		kill "$wd" 2>/dev/null
		wait "$wd" 2>/dev/null
	fi
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "FAIL - $name: killed after RUN_ONE_TIMEOUT=$RUN_ONE_TIMEOUT s"
		fail=$((fail + 1))
		return
	fi
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
	if [ -z "$line" ]; then
		echo "FAIL - $name: exited $rc without a summary line"
		fail=$((fail + 1))
		return
	fi
	p=${line%% passed*}
	f=${line#*, }
	f=${f%% failed*}
	pass=$((pass + p))
	fail=$((fail + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "FAIL - $name: exited $rc"
		fail=$((fail + 1))
	fi
}
