#!/usr/bin/env bash
# Builds finwave and runs the whole teardown scenario suite ("the four waves, answered"),
# the long scenarios included (tcp_orphan_retries = 0 takes about two minutes): each scenario in
# a lab of its own, tcpdump as the witness. Writes results/scenarios.md and results/scenarios.json
# and exits non-zero if any scenario fails. Needs root (re-runs itself through sudo).
#
#   deploy/scenarios.sh                   everything
#   deploy/scenarios.sh --short           the CI set only
#   deploy/scenarios.sh 3_final_ack_lost_once 7c_simultaneous   some scenarios
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/common.sh
. "$here/common.sh"
finwave_require_root "$0" "$@"

"$here/install-deps.sh"
finwave_build "$repo"
export FINWAVE_BUILD=${FINWAVE_BUILD:-$repo/build}
args=("$@")
((${#args[@]})) || args=(--all)
exec "$repo/tests/scenarios/run.sh" --out "$repo/results" "${args[@]}"
