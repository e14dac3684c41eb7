#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Start or stop a local N-node aegisd cluster in a temporary directory.
#
#   scripts/cluster.sh start [N] [aegisd flags...]   prints the directory; N defaults to 3
#   scripts/cluster.sh stop DIR                      SIGTERM every node, remove DIR
#   scripts/cluster.sh status DIR                    aegis-cli status over the nodes
#
# Ports are chosen free at start. DIR/cluster.env records them (CLIENT_PORTS, PEERS) and
# DIR/N/ holds node N's data directory and its log (aegisd.log). AEGIS_BIN overrides the
# directory holding the programs (default build/release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AEGIS_BIN:-$root/build/release}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local n=${1:-3}; shift || true
  local dir peers="" clients=()
  dir=$(mktemp -d /tmp/aegis-cluster.XXXXXX)
  for i in $(seq 1 "$n"); do
    peers+="${peers:+,}$i=127.0.0.1:$(free_port)"
    clients+=("$(free_port)")
  done
  for i in $(seq 1 "$n"); do
    mkdir -p "$dir/$i"
    "$bin/aegisd" --id "$i" --peers "$peers" --client "127.0.0.1:${clients[$((i-1))]}" \
      --data-dir "$dir/$i/data" "$@" >"$dir/$i/aegisd.log" 2>&1 &
    echo $! >"$dir/$i/pid"
  done
  { echo "PEERS=$peers"; echo "CLIENT_PORTS=\"${clients[*]}\""; } >"$dir/cluster.env"
  for p in "${clients[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$p" PING >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  echo "$dir"
}

stop() {
  local dir=$1
  for f in "$dir"/*/pid; do
    [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$dir"/*/pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 1 100); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$dir"
}

status() {
  local dir=$1 nodes=""
  # shellcheck disable=SC1091
  . "$dir/cluster.env"
  for p in $CLIENT_PORTS; do nodes+="${nodes:+,}127.0.0.1:$p"; done
  "$bin/aegis-cli" --nodes "$nodes" status
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop "$1" ;;
  status) status "$1" ;;
  *) sed -n '2,12p' "$0"; exit 2 ;;
esac
