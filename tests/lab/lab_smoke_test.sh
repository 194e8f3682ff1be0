#!/usr/bin/env bash
# Lab smoke test: deploy/lab.sh builds the lab, reports it, forwards v4 and v6 across the
# router, is idempotent, passes exit statuses through, coexists with a second lab, leaves the
# root namespace alone, tears down completely and repairs a half-built lab.
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# reach PREFIX ROLE ADDR — one reachability check from ROLE of lab PREFIX: ping when installed,
# otherwise a TCP connect to a closed port, where "Connection refused" proves the round trip.
reach() {
  local ns="$1-$2" addr="$3" i out
  for i in 1 2 3; do
    if command -v ping >/dev/null 2>&1; then
      ip netns exec "$ns" ping -n -q -c 1 -W 1 "$addr" >/dev/null 2>&1 && return 0
    else
      # shellcheck disable=SC2016 # $1 is expanded by the inner bash.
      out="$(ip netns exec "$ns" timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/9"' _ "$addr" 2>&1)" &&
        return 0
      [[ "$out" == *"Connection refused"* ]] && return 0
    fi
    ((i < 3)) && sleep 0.2
  done
  return 1
}

lab_names() {
  ip netns list | awk -v p="$1-" 'index($1, p) == 1 { print $1 }' | sort | tr '\n' ' '
}

root_links() {
  ip -o link show | awk -F': ' '{ print $2 }' | sort | tr '\n' ' '
}

root_links_before="$(root_links)"
start=$SECONDS

lab_begin lab_smoke
A="$FINWAVE_LAB"
B="${FINWAVE_LAB}b"
lab_sh_b() { FINWAVE_LAB="$B" "$FINWAVE_LAB_SH" "$@"; }
lab_on_exit lab_sh_b down

"$FINWAVE_LAB_SH" status >"$LAB_DIR/status.txt" || fail "status says lab $A is not up"
for ns in "$LAB_CLIENT_NS" "$LAB_ROUTER_NS" "$LAB_SERVER_NS"; do
  grep -q "^$ns:" "$LAB_DIR/status.txt" || fail "status does not list $ns"
done
grep -q "$LAB_SERVER_V6" "$LAB_DIR/status.txt" || fail "status does not show $LAB_SERVER_V6"
pass "lab $A up ($((SECONDS - start)) s), status 0"

lab_exec client ip link show "$LAB_CLIENT_IF" >/dev/null || fail "client has no $LAB_CLIENT_IF"
lab_exec router ip link show "$LAB_ROUTER_CLIENT_IF" >/dev/null || fail "router has no to-client"
lab_exec router ip link show "$LAB_ROUTER_SERVER_IF" >/dev/null || fail "router has no to-server"
lab_exec server ip link show "$LAB_SERVER_IF" >/dev/null || fail "server has no $LAB_SERVER_IF"
[[ "$(lab_exec router sysctl -n net.ipv4.ip_forward)" == 1 ]] || fail "router: no v4 forwarding"
[[ "$(lab_exec router sysctl -n net.ipv6.conf.all.forwarding)" == 1 ]] ||
  fail "router: no v6 forwarding"

for addr in "$LAB_SERVER_V4" "$LAB_SERVER_V6"; do
  reach "$A" client "$addr" || fail "client cannot reach server $addr"
done
for addr in "$LAB_CLIENT_V4" "$LAB_CLIENT_V6"; do
  reach "$A" server "$addr" || fail "server cannot reach client $addr"
done
pass "client <-> server across the router over v4 and v6"

inode_before="$(stat -c %i "/run/netns/$LAB_CLIENT_NS")"
"$FINWAVE_LAB_SH" up 2>"$LAB_DIR/up-again.txt" || fail "second up failed"
grep -q "already up" "$LAB_DIR/up-again.txt" || fail "second up did not leave the lab alone"
[[ "$(stat -c %i "/run/netns/$LAB_CLIENT_NS")" == "$inode_before" ]] ||
  fail "second up rebuilt a healthy lab"
pass "up on a healthy lab leaves it alone"

rc=0
"$FINWAVE_LAB_SH" exec server sh -c 'exit 7' || rc=$?
((rc == 7)) || fail "exec returned $rc, not the command's 7"
[[ "$("$FINWAVE_LAB_SH" exec client ip -br addr show dev eth0)" == *"$LAB_CLIENT_V4"* ]] ||
  fail "exec client does not run in the client namespace"
pass "exec runs in the namespace and passes the exit status through"

lab_sh_b up || fail "second lab $B did not come up"
lab_sh_b status >/dev/null || fail "status of second lab $B is not 0"
"$FINWAVE_LAB_SH" status >/dev/null || fail "lab $A broke when $B came up"
reach "$B" client "$LAB_SERVER_V4" || fail "lab $B: client cannot reach server over v4"
reach "$B" client "$LAB_SERVER_V6" || fail "lab $B: client cannot reach server over v6"
reach "$A" client "$LAB_SERVER_V6" || fail "lab $A: client lost the server once $B exists"
pass "a second lab ($B) coexists with $A"

lab_sh_b down || fail "down of $B failed"
[[ -z "$(lab_names "$B")" ]] || fail "down left namespaces: $(lab_names "$B")"
if lab_sh_b status >/dev/null; then fail "status says $B is up after down"; fi
lab_sh_b down || fail "down of an absent lab failed"
pass "down removes everything; status 1 and a second down succeeds"

ip netns add "$B-client"
if lab_sh_b status >/dev/null; then fail "status says a half-built lab is up"; fi
lab_sh_b up 2>"$LAB_DIR/repair.txt" || fail "up did not repair a half-built lab"
grep -q "half-built" "$LAB_DIR/repair.txt" || fail "up did not report the half-built lab"
lab_sh_b status >/dev/null || fail "repaired lab $B is not healthy"
reach "$B" client "$LAB_SERVER_V6" || fail "repaired lab $B does not forward v6"
pass "up repairs a half-built lab (only $B-client existed)"

ip -n "$B-router" link del to-server
lab_sh_b up 2>"$LAB_DIR/repair2.txt" || fail "up did not repair a lab missing its to-server link"
lab_sh_b status >/dev/null || fail "lab $B not healthy after repair"
lab_sh_b down
pass "up repairs a lab whose router lost a link"

[[ "$(root_links)" == "$root_links_before" ]] ||
  fail "root namespace links changed: before [$root_links_before] now [$(root_links)]"
pass "root namespace untouched"

lab_end
[[ -z "$(lab_names "$A")$(lab_names "$B")" ]] ||
  fail "namespaces left behind: $(lab_names "$A") $(lab_names "$B")"
pass "all namespaces removed ($((SECONDS - start)) s in all)"
