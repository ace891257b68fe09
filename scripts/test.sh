#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test
# (unit, contract against SQLite and a real redis-server, integration with
# real gRPC and subprocesses, end-to-end with real processes).
#   scripts/test.sh              normal build in build/
#   scripts/test.sh --sanitize   ASan+UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
if [ "${1:-}" = "--sanitize" ]; then
  export SLUICE_BUILD_DIR=build-asan
  scripts/build.sh -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  export SLUICE_BUILD_DIR=build
  scripts/build.sh
fi
cd "$SLUICE_BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" --timeout 300
