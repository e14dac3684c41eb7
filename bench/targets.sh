#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The performance-target matrix of issue 7 in one run, written as a markdown table.
#
#   bench/targets.sh                    # everything, about 12 minutes on 2 cores
#   DURATION=2 RUNS=1 bench/targets.sh  # a quick look
#
# For each of RUNS rounds, every case runs once against each system, one after the other,
# so Aegis and the Redis references see the same machine conditions:
#   systems  aegis-batch   aegis-bench --spawn 3 --fsync batch   (3 local aegisd nodes)
#            aegis-none    aegis-bench --spawn 3 --fsync none
#            redis-always  one redis-server, appendonly yes, appendfsync always
#            redis-off     one redis-server, --save '' --appendonly no
#   cases    SET of 128 B and 4 KiB values x clients x pipeline of 1x1, 50x1, 50x16,
#            and 64 KiB values at CLIENTS_64K x PIPELINE_64K over KEYS_64K keys (the key
#            space bounds the memory the 64 KiB values take: 1000 x 64 KiB per node).
# Each redis-server is started for one run only, on a free port with a fresh directory,
# and removed afterwards (so the AOF never grows across runs). Every run has
# aegis-bench's --baseline (fdatasync, loopback round trip, append bandwidth measured in
# the directory the server writes to) and the load average at its start.
#
# The table gives, per system and case, the median over the runs of ops/s, p50, p99 and
# value MB/s (each column's median taken separately), then each target of issue 7 with
# the medians of the baselines. Output: $OUT (default bench/results/targets.md) and every
# run's JSON under $RAW (default bench/results/targets/).
#
# Settings (environment): DURATION (s, default 4), WARMUP (s, 1), RUNS (3),
# BUILD (build dir holding aegis-bench and aegisd, default build/release; built when
# missing), SYSTEMS (default "aegis-batch aegis-none redis-always redis-off"),
# VALUES (default "128 4096"), LOADS (default "1x1 50x1 50x16"), CLIENTS_64K (16),
# PIPELINE_64K (8), KEYS_64K (1000), SKIP_64K=1 to leave the 64 KiB case out.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
RUNS=${RUNS:-3}
BUILD=${BUILD:-build/release}
SYSTEMS=${SYSTEMS:-"aegis-batch aegis-none redis-always redis-off"}
VALUES=${VALUES:-"128 4096"}
LOADS=${LOADS:-"1x1 50x1 50x16"}
CLIENTS_64K=${CLIENTS_64K:-16}
PIPELINE_64K=${PIPELINE_64K:-8}
KEYS_64K=${KEYS_64K:-1000}
SKIP_64K=${SKIP_64K:-0}
OUT=${OUT:-bench/results/targets.md}
RAW=${RAW:-bench/results/targets}

if [ ! -x "$BUILD/aegis-bench" ] || [ ! -x "$BUILD/aegisd" ]; then
  cmake --preset release >/dev/null
  cmake --build --preset release -j 2 --target aegis-bench aegisd
fi
command -v redis-server >/dev/null || { echo "targets.sh: redis-server not found" >&2; exit 1; }
mkdir -p "$RAW" "$(dirname "$OUT")"
rm -f "$RAW"/*.json "$RAW/index.tsv"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

REDIS_PID=""
REDIS_DIR=""
stop_redis() {
  if [ -n "$REDIS_PID" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
  [ -n "$REDIS_DIR" ] && rm -rf "$REDIS_DIR"
  REDIS_PID=""
  REDIS_DIR=""
}
trap stop_redis EXIT

# start_redis MODE: a redis-server for one run; sets REDIS_PORT, REDIS_PID, REDIS_DIR.
start_redis() {
  local mode=$1 i
  REDIS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/aegis-targets-redis.XXXXXX")
  REDIS_PORT=$(free_port)
  local persist=(--save '' --appendonly no)
  if [ "$mode" = always ]; then
    persist=(--save '' --appendonly yes --appendfsync always)
  fi
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$REDIS_DIR" "${persist[@]}" \
      --daemonize no --logfile "$REDIS_DIR/redis.log" &
  REDIS_PID=$!
  for i in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "targets.sh: redis-server did not start" >&2
  return 1
}

# one_run SYSTEM VALUE CLIENTS PIPELINE KEYS ROUND
one_run() {
  local sys=$1 value=$2 clients=$3 pipeline=$4 keys=$5 round=$6
  local name="$sys-v$value-c${clients}x$pipeline-r$round"
  local json="$RAW/$name.json" load
  local common=(--clients "$clients" --pipeline "$pipeline" --value-size "$value"
                --keys "$keys" --duration "$DURATION" --warmup "$WARMUP" --quiet
                --json "$json")
  load=$(cut -d' ' -f1 /proc/loadavg)
  case $sys in
    aegis-batch|aegis-none)
      local extra=()
      if [ "$value" -ge 65536 ]; then
        # Entries stay in memory until a snapshot: bound them for big values (10000 x 64 KiB
        # = 640 MiB per node), without snapshotting the 64 MiB store too often.
        extra=(--spawn-arg=--snapshot-threshold=10000)
      fi
      "$BUILD/aegis-bench" --spawn 3 --fsync "${sys#aegis-}" "${extra[@]}" "${common[@]}" \
          >"$RAW/$name.txt" 2>&1 || echo "targets.sh: $name failed (see $RAW/$name.txt)" >&2
      ;;
    redis-always|redis-off)
      start_redis "${sys#redis-}"
      "$BUILD/aegis-bench" --port "$REDIS_PORT" --baseline --baseline-dir "$REDIS_DIR" \
          "${common[@]}" >"$RAW/$name.txt" 2>&1 \
          || echo "targets.sh: $name failed (see $RAW/$name.txt)" >&2
      stop_redis
      ;;
  esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$sys" "$value" "$clients" "$pipeline" "$round" \
      "$load" "$json" >>"$RAW/index.tsv"
  printf '  %-14s %6s B %3sx%-3s run %s  load %s  %s\n' "$sys" "$value" "$clients" \
      "$pipeline" "$round" "$load" \
      "$(grep -E '^  throughput' "$RAW/$name.txt" | sed 's/^ *throughput *//' | cut -d, -f1)" >&2
}

START=$(date -u '+%Y-%m-%d %H:%M UTC')
UPTIME_START=$(uptime)
echo "targets.sh: $START, $UPTIME_START" >&2
for round in $(seq "$RUNS"); do
  for value in $VALUES; do
    for load in $LOADS; do
      for sys in $SYSTEMS; do
        one_run "$sys" "$value" "${load%x*}" "${load#*x}" 100000 "$round"
      done
    done
  done
  if [ "$SKIP_64K" != 1 ]; then
    for sys in $SYSTEMS; do
      one_run "$sys" 65536 "$CLIENTS_64K" "$PIPELINE_64K" "$KEYS_64K" "$round"
    done
  fi
done
UPTIME_END=$(uptime)

python3 - "$RAW/index.tsv" "$OUT" "$START" "$UPTIME_START" "$UPTIME_END" "$DURATION" \
    "$WARMUP" "$RUNS" "$(nproc)" <<'EOF'
import json, statistics, sys
index, out, start, up0, up1, duration, warmup, runs, ncpu = sys.argv[1:]
rows = {}
baselines = []
loads = []
for line in open(index):
    sysname, value, clients, pipeline, rnd, load, path = line.rstrip("\n").split("\t")
    loads.append(float(load))
    try:
        j = json.load(open(path))
    except (OSError, ValueError):
        continue
    r = j["results"]
    dur = r["duration_s"] or 1.0
    vmb = (r["ops_by_command"]["set"] + r["ops_by_command"]["cas"]) * int(value) / dur / 1e6
    key = (sysname, int(value), int(clients), int(pipeline))
    rows.setdefault(key, []).append(dict(rnd=int(rnd), ops=r["ops_per_sec"],
                                         p50=r["latency_us"]["p50"],
                                         p99=r["latency_us"]["p99"], vmb=vmb,
                                         errors=r["errors"], load=float(load)))
    if j.get("baseline"):  # null when not measured (schema 2)
        baselines.append(j["baseline"])

def med(key, field):
    v = [x[field] for x in rows.get(key, [])]
    return statistics.median(v) if v else None

def fmt_ops(x): return "-" if x is None else f"{x:,.0f}".replace(",", " ")
def fmt_ms(x): return "-" if x is None else f"{x / 1000:.3f}"
def fmt_mb(x): return "-" if x is None else f"{x:.1f}"

def bmed(field):
    v = [b[field] for b in baselines if field in b]
    return statistics.median(v) if v else 0.0

fs, rtt = bmed("fdatasync_us"), bmed("loopback_rtt_us")
fs99 = bmed("fdatasync_p99_us")
bw64, bw1m = bmed("append_64k_mb_per_sec"), bmed("append_1m_mb_per_sec")
disk = max(bw64, bw1m)
o = []
o.append(f"Measured {start} by bench/targets.sh on {ncpu} cores shared with other work; "
         f"{duration} s measured after {warmup} s warmup, median of {runs} run(s) per cell; "
         f"systems interleaved within each round.\n")
o.append(f"- load average at start: `{up0.strip()}`")
o.append(f"- load average at end: `{up1.strip()}`")
if loads:
    o.append(f"- 1-minute load average at the start of the runs: median "
             f"{statistics.median(loads):.2f}, min {min(loads):.2f}, max {max(loads):.2f}")
o.append(f"- baseline (medians over {len(baselines)} runs): fdatasync of a 128 B append "
         f"{fs / 1000:.3f} ms (p99 {fs99 / 1000:.3f} ms), loopback round trip "
         f"{rtt / 1000:.3f} ms, append+fdatasync 64 KiB {bw64:.0f} MB/s, 1 MiB {bw1m:.0f} MB/s\n")
o.append("| system | value | clients x pipeline | ops/s | p50 ms | p99 ms | value MB/s | errors |")
o.append("|---|---:|---:|---:|---:|---:|---:|---:|")
order = {"aegis-batch": 0, "redis-always": 1, "aegis-none": 2, "redis-off": 3}
for key in sorted(rows, key=lambda k: (k[1], k[2] * 100000 + k[3], order.get(k[0], 9))):
    s, v, c, p = key
    errs = sum(x["errors"] for x in rows[key])
    o.append(f"| {s} | {v if v < 1024 else str(v // 1024) + ' KiB'} | {c} x {p} | "
             f"{fmt_ops(med(key, 'ops'))} | {fmt_ms(med(key, 'p50'))} | "
             f"{fmt_ms(med(key, 'p99'))} | {fmt_mb(med(key, 'vmb'))} | {errs} |")
o.append("")
tail = []
o.append("| target (issue 7) | measured | limit | ratio | status |")
o.append("|---|---:|---:|---:|---|")
def target(name, meas, limit, ok, unit, higher):
    if meas is None or not limit:
        o.append(f"| {name} | - | - | - | not measured |")
        return
    ratio = meas / limit
    f = {"ops/s": fmt_ops, "ms": lambda x: f"{x:.3f}", "MB/s": fmt_mb}[unit]
    o.append(f"| {name} | {f(meas)} {unit} | {f(limit)} {unit} | {ratio:.2f}x | "
             f"{'met' if ok(meas, limit) else 'NOT met'} |")
tb = med(("aegis-batch", 128, 50, 16), "ops")
ta = med(("redis-always", 128, 50, 16), "ops")
to = med(("redis-off", 128, 50, 16), "ops")
target("ops/s, batch, 128 B, 50 x 16 >= redis appendfsync always", tb, ta,
       lambda m, l: m >= l, "ops/s", True)
target("ops/s, batch, 128 B, 50 x 16 vs redis persistence off (goal)", tb, to,
       lambda m, l: m >= l, "ops/s", True)
def round_ratios(a, b):
    ra = {x["rnd"]: x["ops"] for x in rows.get(a, [])}
    rb = {x["rnd"]: x["ops"] for x in rows.get(b, [])}
    return [ra[k] / rb[k] for k in sorted(ra) if k in rb and rb[k]]
for ref in ("redis-always", "redis-off"):
    rr = round_ratios(("aegis-batch", 128, 50, 16), (ref, 128, 50, 16))
    if rr:
        tail.append(f"- aegis-batch / {ref} at 128 B, 50 x 16, round by round: "
                    + ", ".join(f"{x:.2f}x" for x in rr)
                    + f" (median {statistics.median(rr):.2f}x)")
p50 = med(("aegis-batch", 128, 1, 1), "p50")
p99 = med(("aegis-batch", 128, 1, 1), "p99")
target("p50, batch, 128 B, 1 x 1 <= 1.2 x (fdatasync + RTT)",
       None if p50 is None else p50 / 1000, 1.2 * (fs + rtt) / 1000, lambda m, l: m <= l, "ms",
       False)
target("p99, batch, 128 B, 1 x 1 < 2 ms", None if p99 is None else p99 / 1000, 2.0,
       lambda m, l: m < l, "ms", False)
big = [k for k in rows if k[0] == "aegis-batch" and k[1] >= 65536]
if big:
    target(f"value MB/s, batch, 64 KiB, {big[0][2]} x {big[0][3]} >= 70% of disk append bandwidth",
           med(big[0], "vmb"), 0.7 * disk, lambda m, l: m >= l, "MB/s", True)
if tail:
    o.append("")
    o.extend(tail)
open(out, "w").write("\n".join(o) + "\n")
print("\n".join(o))
EOF
echo "targets.sh: wrote $OUT (raw runs in $RAW)" >&2
