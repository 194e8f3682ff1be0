#!/usr/bin/env bash
# deploy/'s manifests, without a cluster or a Docker engine: yamllint (tests/deploy/yamllint.yaml)
# finds nothing in the Kubernetes manifests and the compose file, and manifests_check.py finds
# in each what finwave depends on (capabilities, volumes, arguments finwave accepts, rules that
# pass finwave --check). The sidecar Pod also runs for real, under podman kube play, in
# tests/lab/container_test.sh.
# Usage: manifests_test.sh BUILD-DIR
set -euo pipefail
build=${1:?manifests_test.sh BUILD-DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

yamllint --strict -c "$here/yamllint.yaml" "$repo"/deploy/kubernetes/*.yaml "$repo/deploy/container/compose.yaml"
/usr/bin/python3 "$here/manifests_check.py" "$build" "$repo"
echo "manifests_test: yamllint and the checks of what finwave needs pass"
