#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the benchmarks (preset perf: RelWithDebInfo, frame pointers, -DAEGIS_BENCH=ON) and
# run every bm_* executable, writing Google Benchmark JSON to bench/results/<name>.json.
#   bench/run.sh [extra Google Benchmark flags, e.g. --benchmark_filter=Raw]
# AEGIS_BENCH_DIR picks the directory (and so the disk) the storage benchmarks write to
# (default /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset perf >/dev/null
cmake --build --preset perf -j 2
mkdir -p bench/results
status=0
for exe in build/perf/bench/bm_*; do
  [ -x "$exe" ] || continue
  name=$(basename "$exe")
  echo "== $name" >&2
  "$exe" --benchmark_out="bench/results/$name.json" --benchmark_out_format=json "$@" \
    || status=1
done
exit $status
