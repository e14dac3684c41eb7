#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build Aegis from scratch under a CMake preset (default: release) and run the test suite.
#   scripts/test.sh [preset] [extra ctest args...]
# Presets: release, debug, asan (AddressSanitizer + UndefinedBehaviorSanitizer), tsan.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}
shift || true
scripts/deps.sh
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
ctest --preset "$preset" -j "$(nproc)" "$@"
