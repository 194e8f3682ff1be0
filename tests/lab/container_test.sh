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
# image refuses to start and names them. Containers never use a podman network: they join the
# lab's namespaces or each other. The containers and the image are removed at the end.
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
# Dependent containers first: finwave's and finwavectl's join the server's network namespace.
names=("$FINWAVE_LAB-ctl" "$FINWAVE_LAB-finwave" "$FINWAVE_LAB-server")
lab_on_exit podman rmi --force "$image"
lab_on_exit podman rm --force --ignore --time 0 "${names[@]}"
ctl=${names[0]} finwave=${names[1]} server=${names[2]}

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

pass "the image as a sidecar: finwave in the server's network namespace, unprivileged with two capabilities, reported through a third container what tcpdump saw"
