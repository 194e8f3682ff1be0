#!/usr/bin/env bash
# Builds finwave and runs its benchmarks in lab network namespaces they create and remove. Each
# benchmark prints a table and writes JSON into the results directory. Needs root (re-runs
# itself through sudo).
#
#   deploy/bench.sh                       every benchmark but the extra ones (under ten minutes)
#   deploy/bench.sh delay                 only the ones named (extra ones too)
#   deploy/bench.sh delay -- --samples "50 50 50 10"
#                                         arguments after -- go to the (single) benchmark named
#   deploy/bench.sh --list                names and what each measures
#
# Options: --results DIR (default results/ in the repository), --no-build (use the binaries in
# $FINWAVE_BUILD as they are). FINWAVE_BUILD names the build directory (default build/).
#
# To add a benchmark: write a function bench_NAME that runs it (arguments: the results directory,
# then any pass-through arguments) and add "NAME|what it measures" to BENCHMARKS.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/common.sh
. "$here/common.sh"

BENCHMARKS=(
  "perf|throughput, churn, latency, verdict capacity, memory: finwave vs kernel, bare consumer, socat"
  "delay|precision of the delay action: requested vs observed hold on the wire, 1 to 1000 ms"
)
# Run only when named: they explain a figure of the others rather than add one, or take long.
EXTRA_BENCHMARKS=(
  "capture|(extra, ~5 min) one-stream bulk against each part of the capture rules, rule by rule"
  "logcost|(extra, ~3 min) connection churn against each part of the log path, part by part"
  "soak|(extra, ~12 min) 1,000,000 connections in 10 minutes with rules firing: verdicts, outcomes, RSS, fds"
)

# Issue 7's comparisons: tests/bench/perf.sh, JSON in bench.json (pass -- --quick for a smoke run).
bench_perf() {
  local results=$1
  shift
  "$repo/tests/bench/perf.sh" --build "${FINWAVE_BUILD:-$repo/build}" --out "$results/bench.json" "$@"
}

# What bulk pays for the capture rules: tests/bench/capture_cost.sh, JSON in bench-capture.json.
bench_capture() {
  local results=$1
  shift
  "$repo/tests/bench/capture_cost.sh" --json "$results/bench-capture.json" "$@"
}

# What churn pays for the log path: tests/bench/log_path_cost.sh, JSON in bench-log-path-cost.json.
bench_logcost() {
  local results=$1
  shift
  "$repo/tests/bench/log_path_cost.sh" --build "${FINWAVE_BUILD:-$repo/build}" \
    --json "$results/bench-log-path-cost.json" "$@"
}

# The soak: tests/bench/soak.sh, JSON in bench-soak.json (-- --connections N --minutes M to size
# it, -- --quick for a smoke run).
bench_soak() {
  local results=$1
  shift
  "$repo/tests/bench/soak.sh" --build "${FINWAVE_BUILD:-$repo/build}" --out "$results/bench-soak.json" "$@"
}

# Delay precision: tests/bench/delay_precision.sh, JSON in bench-delay.json; then the same with
# finwave at SCHED_FIFO priority 10 (--realtime-priority), JSON in bench-delay-realtime.json.
bench_delay() {
  local results=$1
  shift
  "$repo/tests/bench/delay_precision.sh" --json "$results/bench-delay.json" "$@"
  "$repo/tests/bench/delay_precision.sh" --json "$results/bench-delay-realtime.json" \
    --realtime-priority 10 "$@"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

list() {
  local entry
  for entry in "${BENCHMARKS[@]}" "${EXTRA_BENCHMARKS[@]}"; do
    printf '  %-10s %s\n' "${entry%%|*}" "${entry#*|}"
  done
}

args=("$@")
results=$repo/results
build=1
selected=()
passthrough=()
while (($#)); do
  case $1 in
    --results) results=${2:?--results DIR}; shift 2 ;;
    --no-build) build=0; shift ;;
    --list) list; exit 0 ;;
    -h | --help) usage; echo; echo "Benchmarks:"; list; exit 0 ;;
    --) shift; passthrough=("$@"); break ;;
    -*) echo "bench.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
  esac
done
known=()
for entry in "${BENCHMARKS[@]}"; do known+=("${entry%%|*}"); done
((${#selected[@]})) || selected=("${known[@]}")
for entry in "${EXTRA_BENCHMARKS[@]}"; do known+=("${entry%%|*}"); done
for name in "${selected[@]}"; do
  [[ " ${known[*]} " == *" $name "* ]] || { echo "bench.sh: no benchmark '$name'; these exist:" >&2; list >&2; exit 2; }
done
if ((${#passthrough[@]})) && ((${#selected[@]} != 1)); then
  echo "bench.sh: arguments after -- need exactly one benchmark named" >&2
  exit 2
fi

finwave_require_root "$0" "${args[@]}"
if ((build)); then
  "$here/install-deps.sh"
  finwave_build "$repo" >/dev/null
fi
export FINWAVE_BUILD=${FINWAVE_BUILD:-$repo/build}
mkdir -p "$results"

status=0
for name in "${selected[@]}"; do
  echo "bench.sh: $name"
  started=$(date +%s)
  "bench_$name" "$results" "${passthrough[@]}" || { status=1; echo "bench.sh: $name failed" >&2; }
  echo "bench.sh: $name took $(($(date +%s) - started)) s"
done
exit "$status"
