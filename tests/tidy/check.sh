#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Layering and style checks (STYLE.md): engine/ stays pure, lines fit in 100 columns, and
# every C source and header starts with the SPDX line (LICENSE).
# engine/assert.c may use <stdio.h>: a failed assertion must print where it failed.
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
fail=0
bad=$(grep -nE '#include <(pthread|unistd|time|stdio|liburing|ck_[a-z_]*|sys/[a-z_]*)\.h>' \
      "$root"/engine/*.[ch] | grep -v '^'"$root"'/engine/assert.c:' || true)
if [ -n "$bad" ]; then echo "engine/ includes a forbidden header:"; echo "$bad"; fail=1; fi
bad=$(grep -nwE 'errno|clock_gettime|rand|srand|malloc|free' "$root"/engine/*.[ch] \
      | grep -vE '^[^:]*/engine/(alloc\.[ch]|assert\.c):' \
      | grep -vE '(->|\.)(malloc|free)\b|/\*|^\S+:\s*\*' || true)
if [ -n "$bad" ]; then echo "engine/ uses errno, clocks, rand or the heap directly:"; echo "$bad"; fail=1; fi
for d in net pipeline cmd; do
  bad=$(grep -nE '#include "(pipeline|cmd)/' "$root"/engine/*.[ch] 2>/dev/null || true)
  [ -z "$bad" ] || { echo "engine/ includes from an upper layer:"; echo "$bad"; fail=1; break; }
done
bad=$(grep -nE '#include "(pipeline|cmd)/' "$root"/net/*.[ch] 2>/dev/null || true)
if [ -n "$bad" ]; then echo "net/ includes from an upper layer:"; echo "$bad"; fail=1; fi
long=$(awk 'length > 100 { print FILENAME ":" FNR ": " length " columns" }' \
       "$root"/engine/*.[ch] "$root"/net/*.[ch] "$root"/pipeline/*.[ch] \
       "$root"/include/aegis/*.h "$root"/cmd/*.c 2>/dev/null || true)
if [ -n "$long" ]; then echo "lines over 100 columns:"; echo "$long"; fail=1; fi
# SPDX: line 1 of every .c/.h file is exactly the identifier (the design comment follows).
nospdx=$(find "$root"/engine "$root"/net "$root"/pipeline "$root"/cmd "$root"/include \
         "$root"/tests "$root"/bench -name '*.[ch]' 2>/dev/null | sort | while read -r f; do
           [ "$(head -n 1 "$f")" = "/* SPDX-License-Identifier: MIT */" ] || echo "$f"
         done)
if [ -n "$nospdx" ]; then echo "missing SPDX line 1:"; echo "$nospdx"; fail=1; fi
[ $fail -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $fail
