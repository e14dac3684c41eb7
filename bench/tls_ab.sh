#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# TLS's cost, side by side in one run: a 3-node aegisd cluster (--fsync batch) with peers
# and clients in plaintext ("off") and with mutual TLS on the peer port and --client-tls
# ("on"), loaded by redis-benchmark (50 clients x 16 pipelined, 128-byte SETs over a key
# space of 100 000). The two modes alternate (off on off on ...); each run starts a fresh
# cluster. Reported per mode: the median ops/s, and the median CPU per operation of the
# three aegisd processes together (user + sys from /proc/PID/stat, read just before and
# just after the benchmark, divided by the requests).
#
#   bench/tls_ab.sh [BUILD_DIR]        (default build/release)
#
# Settings: RUNS (runs per mode, default 3), REQUESTS (per run, default 1000000),
# CLIENTS (50), PIPELINE (16), SIZE (128). Needs redis-benchmark with --tls (Debian 12's
# redis-tools) and the openssl command (certificates from scripts/make-certs.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/release}
aegisd=$build/aegisd
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-1000000}
CLIENTS=${CLIENTS:-50}
PIPELINE=${PIPELINE:-16}
SIZE=${SIZE:-128}
[ -x "$aegisd" ] || { echo "tls_ab: no aegisd in $build" >&2; exit 1; }
redis-benchmark --help 2>&1 | grep -q -- --tls || { echo "tls_ab: redis-benchmark has no --tls" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/aegis-tls-ab.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
"$root/scripts/make-certs.sh" "$tmp/certs" 3 >/dev/null
tick=$(getconf CLK_TCK)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cpu_ticks PID...: utime + stime of the processes, in clock ticks.
cpu_ticks() {
  local t=0 p f
  for p in "$@"; do
    f=$(sed 's/^.*) //' "/proc/$p/stat")
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}

# run MODE I: start a cluster, benchmark its leader, print "ops cpu_us_per_op".
run() {
  local mode=$1 i=$2 peers="" n cports=() pports=() flags=() cli=() leader="" lp
  for n in 1 2 3; do pports[$n]=$(port); cports[$n]=$(port); done
  peers="1=127.0.0.1:${pports[1]},2=127.0.0.1:${pports[2]},3=127.0.0.1:${pports[3]}"
  pids=()
  mkdir -p "$tmp/$mode-$i"
  for n in 1 2 3; do
    flags=()
    if [ "$mode" = on ]; then
      flags=(--tls-cert "$tmp/certs/node$n.crt" --tls-key "$tmp/certs/node$n.key"
             --tls-ca "$tmp/certs/ca.crt" --client-tls)
    fi
    "$aegisd" --id "$n" --peers "$peers" --client "127.0.0.1:${cports[$n]}" \
        --data-dir "$tmp/$mode-$i/n$n" --fsync batch --log-level warn "${flags[@]}" \
        > "$tmp/$mode-$i-n$n.log" 2>&1 &
    pids[$n]=$!
  done
  cli=(redis-cli)
  [ "$mode" = on ] && cli=(redis-cli --tls --cacert "$tmp/certs/ca.crt")
  for _ in $(seq 100); do
    for n in 1 2 3; do
      if "${cli[@]}" -p "${cports[$n]}" info replication 2>/dev/null | grep -q '^role:leader'; then
        leader=$n
      fi
    done
    [ -n "$leader" ] && break
    sleep 0.1
  done
  [ -n "$leader" ] || { echo "tls_ab: no leader ($mode run $i)" >&2; exit 1; }
  lp=${cports[$leader]}
  local bflags=()
  [ "$mode" = on ] && bflags=(--tls --cacert "$tmp/certs/ca.crt")
  local c0 c1 out ops
  c0=$(cpu_ticks "${pids[1]}" "${pids[2]}" "${pids[3]}")
  out=$(redis-benchmark "${bflags[@]}" -p "$lp" -c "$CLIENTS" -P "$PIPELINE" -d "$SIZE" \
        -r 100000 -t set -n "$REQUESTS" --csv 2>/dev/null | grep '"SET"')
  c1=$(cpu_ticks "${pids[1]}" "${pids[2]}" "${pids[3]}")
  ops=$(echo "$out" | cut -d, -f2 | tr -d '"')
  kill "${pids[1]}" "${pids[2]}" "${pids[3]}" 2>/dev/null || true
  wait "${pids[1]}" "${pids[2]}" "${pids[3]}" 2>/dev/null || true
  pids=()
  rm -rf "$tmp/$mode-$i"
  python3 -c "import sys; print(sys.argv[1], (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4]) * 1e6 / int(sys.argv[5]))" \
      "$ops" "$c0" "$c1" "$tick" "$REQUESTS"
}

echo "tls_ab: $RUNS runs per mode, $REQUESTS SETs of $SIZE B, $CLIENTS clients x $PIPELINE; $(uptime)" >&2
: > "$tmp/results"
for i in $(seq "$RUNS"); do
  for mode in off on; do
    r=$(run "$mode" "$i")
    echo "$mode $r" >> "$tmp/results"
    echo "tls_ab: $mode run $i: $r" >&2
  done
done
echo "tls_ab: $(uptime)" >&2
python3 - "$tmp/results" <<'PY'
import statistics, sys
rows = {"off": [], "on": []}
for line in open(sys.argv[1]):
    mode, ops, cpu = line.split()
    rows[mode].append((float(ops), float(cpu)))
med = {m: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
       for m, v in rows.items()}
print(f"{'':8} {'ops/s':>10} {'cpu us/op':>10}  runs (ops/s)")
for m in ("off", "on"):
    print(f"{'TLS ' + m:8} {med[m][0]:10.0f} {med[m][1]:10.2f}  " +
          " ".join(f"{r[0]:.0f}" for r in rows[m]))
print(f"{'on/off':8} {med['on'][0] / med['off'][0]:10.2f} {med['on'][1] / med['off'][1]:10.2f}")
PY
