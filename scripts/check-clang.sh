#!/usr/bin/env bash
# Builds sluice with clang (Debian 12: clang 14) and -Werror, in the default
# build type (RelWithDebInfo, no CMAKE_BUILD_TYPE given) and in Release, each in
# its own folder under build-clang/, and runs the test suite in each.
# Usage: scripts/check-clang.sh [--types="default release"] [--no-tests]
# Exits non-zero on the first configure, build or test failure.
# Uses ccache like scripts/build.sh; SLUICE_JOBS sets the parallelism (nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
types="default release"
run_tests=1
for arg in "$@"; do
  case "$arg" in
    --types=*) types="${arg#--types=}" ;;
    --no-tests) run_tests=0 ;;
    *)
      echo "usage: scripts/check-clang.sh [--types=\"default release\"] [--no-tests]" >&2
      exit 2
      ;;
  esac
done
for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "check-clang.sh: $tool not found (apt-get install clang)" >&2; exit 2; }
done
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
jobs=${SLUICE_JOBS:-$(nproc)}
start=$SECONDS
for type in $types; do
  dir="build-clang/$type"
  args=(-DSLUICE_WERROR=ON)
  case "$type" in
    default) ;;  # the project's own default (RelWithDebInfo)
    release) args+=(-DCMAKE_BUILD_TYPE=Release) ;;
    *) echo "check-clang.sh: unknown type $type (default, release)" >&2; exit 2 ;;
  esac
  echo "::: clang $type: configure and build in $dir"
  CC=clang CXX=clang++ cmake -S . -B "$dir" "${args[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs"
  if [ "$run_tests" = 1 ]; then
    echo "::: clang $type: test suite"
    (cd "$dir" && ctest -j"$jobs" --timeout 300 --output-on-failure)
  fi
done
echo "::: clang ($types) passed in $((SECONDS - start)) s"
