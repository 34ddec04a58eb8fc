#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# Prints the row of src/pyrt_offsets.c for one CPython release, from its own
# headers (docs/cpython-offsets.md says where to get a tree and how to check).
#
#   tools/pyrt-offsets.sh SOURCE_TREE     an extracted release (Python-3.X.Y/);
#                                         runs ./configure there if pyconfig.h is missing
#   tools/pyrt-offsets.sh -i INCLUDE_DIR  installed headers (/usr/include/python3.X)
#
# On 3.13 and later it also prints where _Py_DebugOffsets (at the start of
# _PyRuntime) keeps the same offsets, for a reader that takes them from the
# process itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "-i" ] && [ $# -eq 2 ]; then
	incs=(-I"$2" -I"$2/internal")
elif [ $# -eq 1 ] && [ -d "$1/Include" ]; then
	if [ ! -f "$1/pyconfig.h" ]; then
		echo "pyrt-offsets: running ./configure in $1 (log: $1/configure.log)" >&2
		(cd "$1" && ./configure >configure.log 2>&1) ||
			{ echo "pyrt-offsets: ./configure failed in $1: see $1/configure.log" >&2; exit 1; }
	fi
	incs=(-I"$1" -I"$1/Include" -I"$1/Include/internal")
else
	echo "usage: $0 SOURCE_TREE | $0 -i INCLUDE_DIR" >&2
	exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The offsets come from tests/unit/pyrt_headers.c, the file the unit test
# compiles against each installed version; dump.c prints them as a table row.
cat >"$tmp/dump.c" <<'C'
#include <Python.h>
#include <stdio.h>

#include "pycore_runtime.h"
#include "pyrt_headers.h"

int main(void)
{
	const struct pyrt_headers *const *h;

	pyrt_headers__for_each(h) {
		const struct pyrt_offsets *o = &(*h)->off;

		printf("/* %s */\n", (*h)->version);
		printf("{%d, %d, {.runtime_interp_head = %u, .interp_threads_head = %u, "
		       ".tstate_next = %u,\n\t .tstate_native_tid = %u, .tstate_context = %u}},\n",
		       (*h)->major, (*h)->minor, o->runtime_interp_head, o->interp_threads_head,
		       o->tstate_next, o->tstate_native_tid, o->tstate_context);
	}
#if PY_VERSION_HEX >= 0x030d0000
	printf("/* _Py_DebugOffsets at _PyRuntime+%zu (%zu bytes, version at +%zu):\n"
	       " * runtime_state.interpreters_head at +%zu, interpreter_state.threads_head at +%zu,\n"
	       " * thread_state.next at +%zu, thread_state.native_thread_id at +%zu */\n",
	       offsetof(_PyRuntimeState, debug_offsets), sizeof(_Py_DebugOffsets),
	       offsetof(_Py_DebugOffsets, version),
	       offsetof(_Py_DebugOffsets, runtime_state.interpreters_head),
	       offsetof(_Py_DebugOffsets, interpreter_state.threads_head),
	       offsetof(_Py_DebugOffsets, thread_state.next),
	       offsetof(_Py_DebugOffsets, thread_state.native_thread_id));
#endif
	return 0;
}
C
${CC:-gcc} -std=gnu11 -Wall -Wextra -DPy_BUILD_CORE "${incs[@]}" -Itests/unit -Isrc \
	"$tmp/dump.c" tests/unit/pyrt_headers.c -o "$tmp/dump"
"$tmp/dump"
