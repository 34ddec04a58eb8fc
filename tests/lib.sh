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
	local log="$LOGDIR/$(basename "${name// /_}").log" line p f
	echo "== $name"
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
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
