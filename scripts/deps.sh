#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages Aegis needs to build, test and benchmark, if any is missing.
# Safe to run repeatedly: it calls apt-get only when something is absent.
set -euo pipefail
pkgs=(build-essential cmake pkg-config liburing-dev libjemalloc-dev libck-dev libssl-dev openssl
      libbenchmark-dev clang libclang-rt-14-dev redis-tools redis-server
      systemtap-sdt-dev python3 iproute2 nftables)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q "${missing[@]}"
fi
