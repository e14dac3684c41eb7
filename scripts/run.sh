#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job: build Aegis (release) and run a local 3-node cluster under aegis-bench in
# batch durability, printing the report. Extra arguments go to aegis-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
bin=build/release
if [ -x "$bin/aegis-bench" ]; then
  exec "$bin/aegis-bench" --spawn 3 --fsync batch --clients 50 --pipeline 16 \
       --value-size 128 --duration 10 "$@"
fi
echo "aegis-bench is not built yet; running the engine demo instead" >&2
exec "$bin/aegis-demo" "$@"
