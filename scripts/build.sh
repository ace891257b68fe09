#!/usr/bin/env bash
# Configures and builds sluice into build/ (or $SLUICE_BUILD_DIR), with ccache
# and -Werror (SLUICE_WERROR=ON: our scripts and CI keep the code warning-free;
# a plain cmake build leaves it off).
# Extra arguments go to cmake's configure step, e.g. -DSLUICE_SANITIZE=ON.
# SLUICE_TARGETS="a b" builds only those targets (default: all).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${SLUICE_BUILD_DIR:-build}
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
# Objects are shared between checkouts in different folders (worktrees, CI's
# fresh clone): the build folder's path is not part of the cache key.
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${CMAKE_BUILD_TYPE:-RelWithDebInfo} -DSLUICE_WERROR=ON "$@" >/dev/null
targets=()
for t in ${SLUICE_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
