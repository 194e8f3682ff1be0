#!/usr/bin/env bash
# Builds finwave and runs every test: unit tests and the lab integration tests (label "lab",
# which build their own network namespaces and remove them). Needs root.
#
#   deploy/test.sh                 everything
#   deploy/test.sh -L unit         only one label (any ctest arguments pass through)
#   FINWAVE_SANITIZE=address,undefined FINWAVE_BUILD=build-asan deploy/test.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/common.sh
. "$here/common.sh"
finwave_require_root "$0" "$@"

"$here/install-deps.sh"
finwave_build "$repo"
build=${FINWAVE_BUILD:-$repo/build}
started=$(date +%s)
status=0
ctest --test-dir "$build" --output-on-failure --timeout 600 "$@" || status=$?
echo "test.sh: ctest finished in $(( $(date +%s) - started )) s"
exit "$status"
