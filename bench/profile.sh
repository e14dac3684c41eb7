#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where the time goes: run aegis-bench against a local 3-node cluster and record its nodes
# (and aegis-bench) with perf, then print each thread's share and its top functions.
#
#   bench/profile.sh                          # 50 clients x pipeline 16, 128 B SET, batch
#   bench/profile.sh --clients 1 --pipeline 1 # any aegis-bench arguments are passed on
#
# Only the spawned processes are recorded (perf record -g -p), so other work on the
# machine does not enter the profile; their threads are named aegis-net, aegis-raft,
# aegis-log, aegis-apply, and iou-wrk-* are io_uring's kernel workers (the log's writes
# and fdatasyncs). Percentages are of all samples of those processes, summed over the
# three nodes. Settings: RECORD (s, default 5), TOP (functions per thread, default 12),
# BUILD (default build/release), OUT (perf.data path, default bench/results/profile.data).
set -euo pipefail
cd "$(dirname "$0")/.."
RECORD=${RECORD:-5}
TOP=${TOP:-12}
BUILD=${BUILD:-build/release}
OUT=${OUT:-bench/results/profile.data}
mkdir -p "$(dirname "$OUT")"
command -v perf >/dev/null || { echo "profile.sh: perf not found" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$BUILD/aegis-bench" --spawn 3 --no-baseline --quiet --warmup 2 \
    --duration "$((RECORD + 4))" "$@" >"$log" 2>&1 &
bench=$!
sleep 4 # Cluster start (about 1 s), warmup (2 s), then well into the measurement.
pids=$(ps -eo pid,ppid,comm |
       awk -v b="$bench" '$1 == b || ($2 == b && $3 == "aegisd") {print $1}' | paste -sd,)
echo "profile.sh: $(uptime)" >&2
perf record -g -p "$pids" -o "$OUT" -- sleep "$RECORD" >/dev/null 2>&1
wait "$bench" || true
grep -E '^  (cluster|clients|throughput|latency)' "$log"
echo
echo "share of samples by thread (3 nodes summed):"
perf report -i "$OUT" --no-children --sort comm --stdio -g none 2>/dev/null |
    grep -vE '^#|^$' | sed 's/iou-wrk-[0-9]*/iou-wrk/' |
    awk '{gsub("%","",$1); s[$2]+=$1} END {for (k in s) printf "  %6.2f%%  %s\n", s[k], k}' |
    sort -rn
for c in aegis-apply aegis-net aegis-raft aegis-log aegis-bench; do
  echo
  echo "top functions of $c (% of all samples):"
  perf report -i "$OUT" --no-children --comms "$c" --sort sym --stdio -g none 2>/dev/null |
      grep -vE '^#|^$' | head -n "$TOP" || true # head closes the pipe early: not an error.
done
