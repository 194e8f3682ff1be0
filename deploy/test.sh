#!/usr/bin/env bash
# Builds finwave and runs every test, in stages; .ci/run calls exactly this. Needs root (the lab
# tests build network namespaces); re-executes itself through sudo when it is not root.
#
#   deploy/test.sh                  every stage, in this order:
#     lint       deploy/lint.sh: clang-format diff, shellcheck, pyflakes, clang-tidy (build/'s
#                compile commands); each of the four counts as one test
#     plain      the RelWithDebInfo build (build/): unit tests, lab tests, quick benchmarks
#     sanitize   an ASan + UBSan build (build-asan/): unit and lab tests, so the daemon,
#                finwavectl and finwave-peer run sanitized in the lab; any report fails it
#     fuzz       a clang-14 libFuzzer build (build-fuzz/): each fuzz target for a short time
#   deploy/test.sh --stage plain    only the named stage (repeat --stage for several)
#   deploy/test.sh --repeat N       the lab suite N times in a row on the plain build; stops
#                                   after the first round that fails
#   deploy/test.sh -- -L lab -R chaos   everything after "--" goes to each stage's ctest
#
# Unit tests are every test not labelled "lab" or "fuzz" (ctest -LE 'lab|fuzz').
# FINWAVE_BUILD, FINWAVE_ASAN_BUILD and FINWAVE_FUZZ_BUILD override the build directories.
# The last line is the total over the stages that ran: "test.sh: N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/common.sh
. "$here/common.sh"

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

arguments=("$@")
stages=()
repeat=0
ctest_args=()
while (($#)); do
  case $1 in
    --stage)
      case ${2:-} in
        lint | plain | sanitize | fuzz) stages+=("$2") ;;
        *) echo "test.sh: --stage takes lint, plain, sanitize or fuzz (got '${2:-}')" >&2; exit 2 ;;
      esac
      shift
      ;;
    --repeat)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] ||
        { echo "test.sh: --repeat takes a count of 1 or more (got '${2:-}')" >&2; exit 2; }
      repeat=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "test.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
((${#stages[@]})) || stages=(lint plain sanitize fuzz)

finwave_require_root "$0" "${arguments[@]}"
"$here/install-deps.sh"

plain_build=${FINWAVE_BUILD:-$repo/build}
asan_build=${FINWAVE_ASAN_BUILD:-$repo/build-asan}
fuzz_build=${FINWAVE_FUZZ_BUILD:-$repo/build-fuzz}
total_passed=0
total_failed=0
status=0
log=$(mktemp /tmp/finwave-test.XXXXXX)
trap 'rm -f "$log"' EXIT

# run_ctest STAGE BUILD ARGS... — ctest with the stage's arguments; adds its counts to the
# totals (a run that never reached its summary counts as one failure).
run_ctest() {
  local stage=$1 build=$2 started line passed failed rc=0
  shift 2
  started=$SECONDS
  ctest --test-dir "$build" --output-on-failure "$@" "${ctest_args[@]}" 2>&1 | tee "$log" ||
    rc=$?
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [[ $line =~ ([0-9]+)\ tests?\ failed\ out\ of\ ([0-9]+) ]]; then
    failed=${BASH_REMATCH[1]}
    passed=$((BASH_REMATCH[2] - failed))
  elif grep -q 'No tests were found' "$log"; then
    passed=0 failed=0
  else
    passed=0 failed=1
  fi
  ((rc == 0)) || ((failed > 0)) || failed=1
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  ((failed == 0)) || status=1
  echo "test.sh: stage $stage: $passed passed, $failed failed in $((SECONDS - started)) s"
}

# The habits CI enforces (deploy/lint.sh); a check that fails is one failed test, and the other
# stages still run, so one report shows everything.
stage_lint() {
  local check started=$SECONDS passed=0 failed=0
  FINWAVE_BUILD=$plain_build cmake -S "$repo" -B "$plain_build" >/dev/null
  for check in format shell python tidy; do
    if FINWAVE_BUILD=$plain_build "$here/lint.sh" "$check"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
    fi
  done
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  ((failed == 0)) || status=1
  echo "test.sh: stage lint: $passed passed, $failed failed in $((SECONDS - started)) s"
}

stage_plain() {
  FINWAVE_BUILD=$plain_build FINWAVE_SANITIZE='' finwave_build "$repo"
  if ((repeat > 0)); then
    local round
    for ((round = 1; round <= repeat; round++)); do
      run_ctest "plain, lab round $round of $repeat" "$plain_build" -L lab
      ((status == 0)) || break
    done
  else
    run_ctest plain "$plain_build"
  fi
}

stage_sanitize() {
  FINWAVE_BUILD=$asan_build FINWAVE_SANITIZE=address,undefined finwave_build "$repo"
  # Reports go to files as well as stderr: a sanitized program that the lab ends with a signal,
  # or whose stderr a test discards, still leaves its report, and any report fails the stage.
  local reports="$asan_build/sanitizer-reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  local common="halt_on_error=1:print_summary=1:log_path=$reports/report"
  # A small quarantine: ASan keeps freed memory out of reuse for a while, which a test that
  # bounds finwave's RSS growth (control_robustness) would otherwise count as growth.
  ASAN_OPTIONS="$common:detect_leaks=1:quarantine_size_mb=8" UBSAN_OPTIONS="$common:print_stacktrace=1" \
    run_ctest sanitize "$asan_build" -LE 'fuzz' -E '^lab\.bench_'
  if compgen -G "$reports/report*" >/dev/null; then
    echo "test.sh: stage sanitize: sanitizer reports:" >&2
    for report in "$reports"/report*; do
      echo "--- $report" >&2
      cat "$report" >&2
    done
    total_failed=$((total_failed + 1))
    status=1
  fi
}

stage_fuzz() {
  # libFuzzer comes with clang; the fuzz build is clang's, with ASan and UBSan.
  cmake -S "$repo" -B "$fuzz_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    -DFINWAVE_SANITIZE=address,undefined -DFINWAVE_FUZZ=ON >/dev/null
  cmake --build "$fuzz_build" -j "$(nproc)" --target fuzz-all
  # The targets are independent: two at a time on a 2-core machine.
  run_ctest fuzz "$fuzz_build" -L fuzz -j 2
}

started=$SECONDS
for stage in "${stages[@]}"; do
  # --repeat is about the lab suite on the plain build.
  ((repeat > 0)) && [[ $stage != plain ]] && continue
  case $stage in
    lint) stage_lint ;;
    plain) stage_plain ;;
    sanitize) stage_sanitize ;;
    fuzz) stage_fuzz ;;
  esac
done
echo "test.sh: finished in $((SECONDS - started)) s"
echo "test.sh: $total_passed passed, $total_failed failed"
exit "$status"
