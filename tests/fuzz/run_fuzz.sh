#!/usr/bin/env bash
# Runs one fuzz target the way ctest's fuzz.<name> cases do (tests/fuzz/CMakeLists.txt):
#   run_fuzz.sh TARGET CORPUS_DIR REGRESSIONS_DIR SCRATCH_DIR SECONDS [libFuzzer flags...]
# Every file of REGRESSIONS_DIR is run once as a plain input, then TARGET fuzzes for SECONDS from
# a copy of CORPUS_DIR in SCRATCH_DIR. New inputs and crash artifacts stay in SCRATCH_DIR; the
# source tree is only read. Exits non-zero when an input crashes, leaks or times out.
set -euo pipefail
target=$1 corpus=$2 regressions=$3 scratch=$4 seconds=$5
shift 5

rm -rf "$scratch"
mkdir -p "$scratch/corpus" "$scratch/artifacts"
if [ -d "$corpus" ]; then
  cp -- "$corpus"/* "$scratch/corpus/" 2>/dev/null || true
fi

if [ -d "$regressions" ]; then
  mapfile -t inputs < <(find "$regressions" -type f ! -name '*.md' | sort)
  if [ ${#inputs[@]} -gt 0 ]; then
    echo "run_fuzz: ${#inputs[@]} regression input(s) from $regressions"
    "$target" "$@" -artifact_prefix="$scratch/artifacts/" "${inputs[@]}"
  fi
fi

echo "run_fuzz: fuzzing for ${seconds}s from a copy of $corpus"
exec "$target" "$@" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$scratch/artifacts/" "$scratch/corpus"
