#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compare two builds of aegisd side by side in one run: A and B alternate (A B A B ...)
# under the same aegis-bench arguments, and the medians and the ratio B/A are printed.
#
#   bench/ab.sh DIR_A DIR_B [aegis-bench arguments...]
#   RUNS=5 bench/ab.sh /tmp/before build/release --spawn 3 --clients 50 --pipeline 16
#
# DIR_A and DIR_B each hold an aegis-bench and an aegisd (aegis-bench --spawn starts the
# aegisd next to it). Save a "before" with: mkdir /tmp/before && cp build/release/aegisd
# build/release/aegis-bench /tmp/before/. Settings: RUNS (pairs, default 5), DURATION (s,
# default 4), WARMUP (s, default 1). Reports ops/s, p50 and p99 medians, CPU microseconds
# per request (aegis-bench and its nodes, from /usr/bin/time) and the load average.
set -euo pipefail
if [ $# -lt 2 ]; then
  sed -n '2,12p' "$0" >&2
  exit 1
fi
A=$1
B=$2
shift 2
RUNS=${RUNS:-5}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/aegis-ab.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

echo "ab.sh: $(uptime)" >&2
for i in $(seq "$RUNS"); do
  for side in A B; do
    dir=$A
    [ "$side" = B ] && dir=$B
    /usr/bin/time -f '%U %S' -o "$TMP/$side-$i.cpu" \
        "$dir/aegis-bench" --quiet --no-baseline --duration "$DURATION" --warmup "$WARMUP" \
        --json "$TMP/$side-$i.json" "$@" >/dev/null 2>"$TMP/$side-$i.err" \
        || { echo "ab.sh: $side run $i failed:" >&2; cat "$TMP/$side-$i.err" >&2; }
  done
done
echo "ab.sh: $(uptime)" >&2

python3 - "$TMP" "$RUNS" "$A" "$B" <<'EOF'
import glob, json, statistics, sys
tmp, runs, a, b = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
res = {}
for side in "AB":
    rows = []
    for path in sorted(glob.glob(f"{tmp}/{side}-*.json")):
        j = json.load(open(path))
        r = j["results"]
        # CPU of aegis-bench and every node it spawned (reaped children), start to end,
        # per request issued over the whole run (warmup included): a figure that the
        # machine's other load disturbs far less than ops/s.
        user, system = map(float, open(path[:-5] + ".cpu").read().split()[-2:])
        issued = r["ops_per_sec"] * (j["settings"]["warmup_s"] + r["duration_s"])
        cpu = (user + system) / issued * 1e6 if issued else float("nan")
        rows.append((r["ops_per_sec"], r["latency_us"]["p50"], r["latency_us"]["p99"], cpu))
    res[side] = rows
def med(side, k):
    v = [row[k] for row in res[side]]
    return statistics.median(v) if v else float("nan")
print(f"{'':16} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/op':>9}  runs (ops/s)")
for side, d in (("A", a), ("B", b)):
    print(f"{side + ' ' + d[-14:]:16} {med(side, 0):10.0f} {med(side, 1) / 1e3:8.3f} "
          f"{med(side, 2) / 1e3:8.3f} {med(side, 3):9.2f}  "
          + " ".join(f"{r[0]:.0f}" for r in res[side]))
print(f"{'B/A':16} {med('B', 0) / med('A', 0):10.2f} {med('B', 1) / med('A', 1):8.2f} "
      f"{med('B', 2) / med('A', 2):8.2f} {med('B', 3) / med('A', 3):9.2f}")
EOF
