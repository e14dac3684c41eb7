#!/bin/sh
# SPDX-License-Identifier: MIT
# check.sh must reject a C file whose first line is not the SPDX identifier and accept it
# once the line is there: a tree of one file, checked both ways. Registered as tidy.spdx.
set -eu
check=$1
tmp=$(mktemp -d /tmp/aegis-spdx-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/engine" "$tmp/tests"
printf '/* A design comment. */\nint x;\n' > "$tmp/tests/a.c"
if sh "$check" "$tmp" > "$tmp/out" 2>&1; then
    echo "check.sh accepted a file without the SPDX line"; exit 1
fi
grep -q "missing SPDX line 1" "$tmp/out" || { cat "$tmp/out"; exit 1; }
printf '/* SPDX-License-Identifier: MIT */\n/* A design comment. */\nint x;\n' > "$tmp/tests/a.c"
sh "$check" "$tmp" > "$tmp/out" 2>&1 || { cat "$tmp/out"; exit 1; }
echo "1 passed, 0 failed"
