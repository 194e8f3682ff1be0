#!/usr/bin/env bash
# finwave's container image (deploy/container/Containerfile) used as a sidecar, the way people
# put it in front of a service: podman builds the image (the debian:12-slim base made from a
# fresh Debian root, since no registry is reachable here); a server container runs in the lab's
# server namespace; finwave runs in a second container that shares the server's network
# namespace (--network container:NAME), in local mode with lose-first-final-ack.toml, as the
# image's unprivileged user with only NET_ADMIN and NET_RAW; a client in the lab's client
# namespace connects over IPv4 and IPv6; a third container that mounts the control socket's
# directory reads the outcomes with finwavectl. Each must report the server's one FIN
# retransmission that tcpdump in the server's namespace sees. Without the two capabilities the
# image refuses to start and names them. Then deploy/kubernetes/sidecar-pod.yaml, played by
# `podman kube play`, does the same for a client that reaches the pod through a veth pair.
# Containers never use a podman network: they join the lab's namespaces, each other, or (the
# pod) a namespace of podman's own with no network. Containers, pod and image go at the end.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin container
WORK=$LAB_WORK
# This machine's quirks: crun refuses the hybrid cgroup layout (runc instead), and podman's
# default rlimits exceed the machine's hard limits.
export CONTAINERS_CONF=$WORK/containers.conf
printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' >"$CONTAINERS_CONF"
image=localhost/finwave-lab:$FINWAVE_LAB
ctl=$FINWAVE_LAB-ctl finwave=$FINWAVE_LAB-finwave server=$FINWAVE_LAB-server pod=$FINWAVE_LAB-pod
# remove_containers — this test's pod and containers, dependents first (finwave's and
# finwavectl's join the server's network namespace), one at a time: podman refuses to remove a
# container that another still joins, even in the same command.
remove_containers() {
  podman pod rm --force --ignore "$pod" >/dev/null
  local name
  for name in "$ctl" "$finwave" "$server"; do
    podman rm --force --ignore --time 0 "$name" >/dev/null
  done
}
# The image, the intermediate images of its build but for the tagged cache, and, before them,
# the containers (hooks run last registered first).
remove_images() {
  podman rmi --force "$image" >/dev/null
  podman image prune --force --filter label=org.opencontainers.image.title=finwave >/dev/null
  podman image prune --force --filter label=finwave.stage=build >/dev/null
}
lab_on_exit remove_images
lab_on_exit remove_containers

# debian:12-slim from the fresh root, under the name the Containerfile's FROM resolves to.
if ! podman image exists docker.io/library/debian:12-slim; then
  tarball=$(debian_root_tarball) || fail "no Debian root (mmdebstrap)"
  podman import "$tarball" docker.io/library/debian:12-slim >/dev/null || fail "podman import failed"
fi
# --network host: the build's apt reaches Debian's registry as this machine does, without a
# podman network (whose firewall rules would go into the machine's own namespace). The build
# stage is kept, tagged, as the next run's cache (the sanitize stage runs this test again);
# earlier ones are pruned.
build_image() {  # build_image [PODMAN-BUILD-OPTIONS...]
  podman build --pull=never --network host -f "$FINWAVE_REPO/deploy/container/Containerfile" \
    "$@" "$FINWAVE_REPO" >>"$WORK/build.log" 2>&1 || fail "podman build failed: $(tail -n 30 "$WORK/build.log")"
}
build_image --target build -t localhost/finwave-lab-build:cache
build_image -t "$image"
podman image prune --force --filter label=finwave.stage=build >/dev/null
version=$(sed -n 's/^project(finwave VERSION \([0-9.]*\).*/\1/p' "$FINWAVE_REPO/CMakeLists.txt")
expect "finwave --version in the image" "$(podman run --rm --network none "$image" --version)" "finwave $version"
expect "the image's user" "$(podman run --rm --network none --entrypoint id "$image" -un)" finwave
uid=$(podman run --rm --network none --entrypoint id "$image" -u)
gid=$(podman run --rm --network none --entrypoint id "$image" -g)

# Without its capabilities: refused, each one named.
status=0
podman run --rm --network none --cap-drop ALL "$image" --mode local --port 5000 \
  >/dev/null 2>"$WORK/refused.err" || status=$?
expect "exit status without capabilities" "$status" 1
grep -qF "it runs without CAP_NET_ADMIN and CAP_NET_RAW." "$WORK/refused.err" ||
  fail "the refusal does not name the capabilities: $(cat "$WORK/refused.err")"

capture_start server "$LAB_SERVER_IF" "$WORK/server.pcap" "tcp port $RULES_PORT"
podman run --detach --name "$server" --network "ns:/run/netns/$LAB_SERVER_NS" \
  --entrypoint /usr/bin/finwave-peer "$image" \
  server --listen :: --port "$RULES_PORT" --script read-eof,close >/dev/null ||
  fail "the server container did not start"
mkdir -m 0770 "$WORK/run"
chown "$uid:$gid" "$WORK/run"
podman run --detach --name "$finwave" --network "container:$server" \
  --cap-drop ALL --cap-add NET_ADMIN --cap-add NET_RAW --volume "$WORK/run:/run/finwave" "$image" \
  --mode local --port "$RULES_PORT" --rules /usr/share/finwave/examples/lose-first-final-ack.toml \
  --settle 0.3 --linger 5 --json --control /run/finwave/control.sock --ready-file /run/finwave/ready \
  >/dev/null || fail "the finwave container did not start"
wait_for_file "$WORK/run/ready" 15 ||
  fail "finwave in its container did not become ready: $(podman logs "$finwave" 2>&1 | tail -n 20)"

# finwave holds CAP_NET_ADMIN alone once started, as the image's user, not root.
pid=$(podman inspect --format '{{.State.Pid}}' "$finwave")
expect "finwave's uid in its container" "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" "$uid"
expect "finwave's effective capabilities" \
  "$(printf '%d' "0x$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")")" $((1 << 12))
for address in "$LAB_SERVER_V4" "$LAB_SERVER_V6"; do
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$RULES_PORT" \
    --script send:100,close >>"$WORK/clients.jsonl" || fail "the client to $address failed"
done

# The outcomes, through the control socket, from a third container.
podman run --rm --name "$ctl" --network none --volume "$WORK/run:/run/finwave" \
  --entrypoint /usr/bin/finwavectl "$image" --control /run/finwave/control.sock --json \
  wait --count 2 --since 0 --timeout 20s >"$WORK/outcomes.jsonl" 2>"$WORK/ctl.err" ||
  fail "finwavectl in its container: $(cat "$WORK/ctl.err")"
podman stop --time 10 "$finwave" >/dev/null
expect "finwave's exit status" "$(podman wait "$finwave")" 0
podman logs "$finwave" >"$WORK/finwave.jsonl" 2>"$WORK/finwave.err"
expect "tables left in the server's namespace" "$(lab_exec server nft list tables)" ""
capture_stop
wire_json "$WORK/server.pcap" >"$WORK/server.jsonl"

for port in $(jq -r 'select(.event == "connect") | .local | sub(".*:"; "")' "$WORK/clients.jsonl"); do
  outcome=$(jq -c --arg port "$port" '.outcomes[] | select(.flow.client | endswith(":" + $port))' "$WORK/outcomes.jsonl")
  [ -n "$outcome" ] || fail "finwavectl reported no outcome for client port $port: $(cat "$WORK/outcomes.jsonl")"
  echo "client port $port:"
  expect "result" "$(jq -r .result <<<"$outcome")" clean
  expect "final ACKs dropped" "$(jq .final_acks.dropped <<<"$outcome")" 1
  expect "server FIN retransmits (finwavectl)" "$(jq .fin_retransmits.server <<<"$outcome")" 1
  expect "server FIN retransmits (tcpdump in the server's namespace: server FINs - 1)" \
    "$(wire server "$port" 'fins("server") | length - 1')" 1
done

# The Kubernetes sidecar Pod (deploy/kubernetes/sidecar-pod.yaml) as podman kube play runs it,
# with three changes it needs here: no ports: stanza (podman turns containerPort into port
# mappings, which need a podman network), a pod name of this lab's, and the image just built. Its network namespace
# is podman's own (--network none: podman pods cannot join a named one); a veth pair from the
# lab's client namespace into it (198.18.3.0/24, 2001:db8:3::/64) is the way in. finwavectl is
# run in the finwave container, as `kubectl exec` would.
python3 - "$FINWAVE_REPO/deploy/kubernetes/sidecar-pod.yaml" "$pod" "$image" >"$WORK/pod.yaml" <<'PY'
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
for doc in docs:
    if doc["kind"] == "Pod":
        doc["metadata"]["name"] = sys.argv[2]
        for container in doc["spec"]["containers"]:
            container.pop("ports", None)
            container["image"] = sys.argv[3]
yaml.safe_dump_all(docs, sys.stdout)
PY
podman kube play --network none "$WORK/pod.yaml" >"$WORK/kube-play.log" 2>&1 ||
  fail "podman kube play: $(cat "$WORK/kube-play.log")"
pod_pid=$(podman inspect --format '{{.State.Pid}}' "$(podman pod inspect --format '{{.InfraContainerID}}' "$pod")")
lab_exec client ip link add pod0 type veth peer name eth1 netns "$pod_pid"
lab_exec client ip addr add 198.18.3.1/24 dev pod0
lab_exec client ip addr add 2001:db8:3::1/64 dev pod0 nodad
lab_exec client ip link set pod0 up
nsenter --target "$pod_pid" --net sh -c 'ip addr add 198.18.3.2/24 dev eth1 &&
  ip addr add 2001:db8:3::2/64 dev eth1 nodad && ip link set eth1 up'
in_pod_finwave() { podman exec "$pod-finwave" /usr/bin/finwavectl --json "$@"; }
wait_for 15 "finwave in the pod to answer" in_pod_finwave status ||
  fail "finwave in the pod did not answer: $(podman logs "$pod-finwave" 2>&1 | tail -n 20)"
RULES_PORT=8080
capture_start client pod0 "$WORK/pod.pcap" "tcp port $RULES_PORT"
for address in 198.18.3.2 2001:db8:3::2; do
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$RULES_PORT" \
    --script send:100,close >>"$WORK/pod-clients.jsonl" || fail "the client to the pod at $address failed"
done
in_pod_finwave wait --count 2 --since 0 --timeout 20s >"$WORK/pod-outcomes.jsonl" ||
  fail "finwavectl in the pod: $(cat "$WORK/pod-outcomes.jsonl")"
podman pod stop --time 10 "$pod" >/dev/null
expect "the pod's finwave exit status" "$(podman inspect --format '{{.State.ExitCode}}' "$pod-finwave")" 0
capture_stop
wire_json "$WORK/pod.pcap" >"$WORK/pod.jsonl"
for port in $(jq -r 'select(.event == "connect") | .local | sub(".*:"; "")' "$WORK/pod-clients.jsonl"); do
  outcome=$(jq -c --arg port "$port" '.outcomes[] | select(.flow.client | endswith(":" + $port))' "$WORK/pod-outcomes.jsonl")
  [ -n "$outcome" ] || fail "the pod's finwave reported no outcome for client port $port"
  echo "pod, client port $port:"
  expect "result" "$(jq -r .result <<<"$outcome")" clean
  expect "server FIN retransmits (finwavectl in the pod)" "$(jq .fin_retransmits.server <<<"$outcome")" 1
  expect "server FIN retransmits (tcpdump at the client: server FINs - 1)" \
    "$(wire pod "$port" 'fins("server") | length - 1')" 1
done

# Nothing of the test's left running: the server container's process would outlive the lab's
# namespaces.
remove_containers
expect "containers and pods left" \
  "$(podman ps --all --quiet --filter "name=^$FINWAVE_LAB-"; podman pod ps --quiet --filter "name=^$FINWAVE_LAB-")" ""

pass "the image as a sidecar (containers, and the Kubernetes Pod played by podman): finwave in the server's network namespace, unprivileged with two capabilities, reported what tcpdump saw"
