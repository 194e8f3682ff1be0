#!/usr/bin/env bash
# tests/scenarios/run.sh — the teardown scenario suite ("the four waves, answered").
#
#   tests/scenarios/run.sh [--short|--long|--all] [--out DIR] [NAME...]
#
# Each scenario is a file tests/scenarios/NAME.scn: bash variables (and optional hook
# functions) describing a rule file, sysctls per namespace, finwave-peer scripts and the
# expected outcome (see tests/scenarios/README.md). Every scenario runs in a lab of its own
# (tests/lab/lib.sh: client — router — server namespaces, removed on exit), with finwave on
# the router and tcpdump on both router interfaces as the independent witness
# (tests/lab/teardown_lib.sh). A scenario passes when finwave's outcome agrees with the wire
# figure for figure (check_against_wire) and both satisfy the scenario's expectations.
#
# Writes DIR/scenarios.json (one object per scenario) and DIR/scenarios.md (the table), prints
# the kernel version; exits 1 if any scenario failed. --short (default): the CI set;
# --long: only the long ones; --all: both. Needs root. FINWAVE_BUILD: the build directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

if [[ "${1:-}" == --one ]]; then
  # Child mode: run one scenario file, write its result object to $3.
  # shellcheck source=tests/scenarios/scenario_lib.sh
  . "$here/scenario_lib.sh"
  scenario_run_one "$2" "$3"
  # A failed scenario keeps its lab directory (logs, pcaps, scn.jsonl): lib.sh removes it only
  # on exit status 0.
  [[ "$(jq -r .pass "$3")" == true ]]
  exit
fi

set_name=short out="$repo/results"
names=()
while (($#)); do
  case $1 in
    --short | --long | --all) set_name=${1#--} ;;
    --out) out=${2:?--out DIR}; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1") ;;
  esac
  shift
done
[[ "$(id -u)" -eq 0 ]] || { echo "run.sh: needs root (network namespaces); use deploy/scenarios.sh" >&2; exit 1; }
mkdir -p "$out"
export FINWAVE_BUILD=${FINWAVE_BUILD:-$repo/build}

files=()
if ((${#names[@]})); then
  for n in "${names[@]}"; do
    [[ -f "$here/$n.scn" ]] || { echo "run.sh: no scenario $n" >&2; exit 2; }
    files+=("$here/$n.scn")
  done
else
  for f in "$here"/*.scn; do
    long=$(bash -c '. "$1"; echo "${LONG:-0}"' _ "$f")
    case $set_name in
      short) [[ $long == 0 ]] || continue ;;
      long) [[ $long == 1 ]] || continue ;;
    esac
    files+=("$f")
  done
fi

kernel=$(uname -r)
echo "run.sh: kernel $kernel; ${#files[@]} scenarios ($set_name)"
tmp=$(mktemp -d /tmp/finwave-scenarios.XXXXXX)
started=$SECONDS
failed=0
for f in "${files[@]}"; do
  name=$(basename "$f" .scn)
  t0=$SECONDS
  status=0
  # Each scenario has a deadline of its own (lib.sh's watchdog), so that one that hangs fails
  # alone, cleaned up, and the suite stays within ctest's timeout.
  long=$(bash -c '. "$1"; echo "${LONG:-0}"' _ "$f")
  deadline=120
  [[ $long == 1 ]] && deadline=900
  FINWAVE_LAB_DEADLINE=$deadline bash "$here/run.sh" --one "$f" "$tmp/$name.json" \
    >"$tmp/$name.log" 2>&1 || status=$?
  if [[ ! -s "$tmp/$name.json" ]]; then
    # The scenario died before it could judge itself (a failed step, a lab error): a failure.
    jq -n --arg name "$name" --arg file "$f" --arg log "$(tail -25 "$tmp/$name.log")" \
      --argjson s "$status" '{name: $name, title: $name, pass: false,
        problems: ["the scenario script failed (exit \($s)): \($log)"]}' >"$tmp/$name.json"
  fi
  jq --argjson secs $((SECONDS - t0)) '. + {seconds: $secs}' "$tmp/$name.json" >"$tmp/$name.j2"
  mv "$tmp/$name.j2" "$tmp/$name.json"
  if [[ "$(jq -r .pass "$tmp/$name.json")" == true ]]; then
    echo "PASS $name ($((SECONDS - t0)) s): $(jq -r '.summary // ""' "$tmp/$name.json")"
  else
    failed=$((failed + 1))
    echo "FAIL $name ($((SECONDS - t0)) s):"
    jq -r '.problems[]? | "  " + .' "$tmp/$name.json"
    sed 's/^/  | /' "$tmp/$name.log" | tail -40
  fi
done

jq -s --arg k "$kernel" --arg set "$set_name" --arg date "$(date -u +%FT%TZ)" \
  '{kernel: $k, set: $set, date: $date, scenarios: .}' "$tmp"/*.json >"$out/scenarios.json"
jq -r -f "$here/table.jq" "$out/scenarios.json" >"$out/scenarios.md"
rm -rf "$tmp"
echo "run.sh: $((${#files[@]} - failed)) of ${#files[@]} passed in $((SECONDS - started)) s;" \
  "kernel $kernel; wrote $out/scenarios.md and $out/scenarios.json"
((failed == 0))
