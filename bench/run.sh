#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the benchmarks (preset perf: RelWithDebInfo, frame pointers, -DAEGIS_BENCH=ON) and
# run every bm_* executable with Google Benchmark's JSON output.
#   bench/run.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Raw]
#       record: write bench/results/<name>.json, the committed baseline (commit it with a
#       note of the machine's state in bench/results/README.md)
#   bench/run.sh --compare [extra flags]
#       run into build/perf/bench-now/ and print each benchmark's time against the
#       committed baseline (bench/compare.py): ratio now / baseline, below 1 is faster
# Every JSON file carries Google Benchmark's machine context (host, CPUs, MHz, caches, load
# average, date) plus the Aegis commit and the kernel. AEGIS_BENCH_DIR picks the directory
# (and so the disk) the storage benchmarks write to (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=record
if [ "${1:-}" = "--compare" ]; then
  mode=compare
  shift
fi
scripts/deps.sh
cmake --preset perf >/dev/null
cmake --build --preset perf -j 2
out=bench/results
if [ $mode = compare ]; then
  out=build/perf/bench-now
fi
mkdir -p "$out"
commit=$(git rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
status=0
for exe in build/perf/bench/bm_*; do
  [ -x "$exe" ] || continue
  name=$(basename "$exe")
  echo "== $name" >&2
  "$exe" --benchmark_out="$out/$name.json" --benchmark_out_format=json \
    --benchmark_context=aegis_commit="$commit" --benchmark_context=kernel="$(uname -r)" \
    "$@" || status=1
done
if [ $mode = compare ]; then
  python3 bench/compare.py bench/results "$out" || status=1
fi
exit $status
