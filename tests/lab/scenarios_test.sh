#!/usr/bin/env bash
# The short teardown scenarios of tests/scenarios (the CI subset; deploy/scenarios.sh runs them
# all, the long ones too): each in its own lab, finwave's outcome checked against tcpdump and
# against the scenario's expectations. The results table goes to a scratch directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d /tmp/finwave-scenarios-ci.XXXXXX)
status=0
"$here/../scenarios/run.sh" --short --out "$out" || status=$?
cat "$out/scenarios.md"
if ((status == 0)); then
  rm -rf "$out"
  echo "PASS: scenarios: every short scenario agrees with tcpdump"
else
  echo "FAIL: scenarios: see above; results kept in $out" >&2
fi
exit "$status"
