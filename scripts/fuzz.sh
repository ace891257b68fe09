#!/usr/bin/env bash
# Builds the libFuzzer targets under fuzz/ with clang into build-fuzz/ and runs
# each one for a bounded time over its corpus in fuzz/corpus/<target>/.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
# Exits non-zero when a target crashes, leaks, trips a sanitizer or breaks one
# of its properties; the reproducer is left in build-fuzz/artifacts/.
# New inputs found during the run go to build-fuzz/corpus/<target>/, not into
# the repository; copy interesting ones into fuzz/corpus/ by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
  exit 2
fi
for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (scripts/deps.sh installs it)" >&2; exit 2; }
done

build=build-fuzz
CC=clang CXX=clang++ cmake -S fuzz -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${SLUICE_JOBS:-2}"

targets=(backlog_parser_fuzz fingerprint_fuzz command_template_fuzz telemetry_parser_fuzz rpc_request_fuzz)
mkdir -p "$build/artifacts"
failed=0
for t in "${targets[@]}"; do
  seeds="fuzz/corpus/$t"
  work="$build/corpus/$t"
  mkdir -p "$work"
  echo "::: fuzzing $t for ${seconds}s (seeds: $(ls "$seeds" | wc -l))"
  # The first corpus directory collects new inputs; the seeds are read only.
  if ! "$build/$t" "$work" "$seeds" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
      >"$build/$t.log" 2>&1; then
    echo "::: $t FAILED; last lines of $build/$t.log:" >&2
    tail -n 40 "$build/$t.log" >&2
    failed=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "$build/$t.log" || true
  fi
done
exit "$failed"
