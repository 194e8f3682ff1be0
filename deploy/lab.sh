#!/usr/bin/env bash
# deploy/lab.sh — the finwave lab: three network namespaces, client — router — server.
#
#   deploy/lab.sh up | down | status | env | exec <client|router|server> CMD...
#
# Topology (PREFIX = ${FINWAVE_LAB:-fw}; several prefixes coexist):
#
#   PREFIX-client                 PREFIX-router                         PREFIX-server
#   eth0 ───────────────── to-client        to-server ───────────────── eth0
#   198.18.1.2/24          198.18.1.1/24    198.18.2.1/24               198.18.2.2/24
#   2001:db8:1::2/64       2001:db8:1::1/64 2001:db8:2::1/64            2001:db8:2::2/64
#
# - Interface names are fixed (scripts capture on them with tcpdump): client "eth0",
#   router "to-client" and "to-server", server "eth0".
# - The router forwards IPv4 and IPv6; client and server have default routes (v4 and v6) via it.
# - IPv6 addresses are added with "nodad" so they are usable at once.
# - Everything is created inside the namespaces: the veth pairs are born in one lab namespace
#   with their peer placed directly in the other, so nothing ever touches the root namespace.
#
# "up" is idempotent: a healthy lab is left alone, a half-built one (a crashed run) is removed
# and rebuilt; a complete lab that does not forward is reported, not torn down. It waits for
# veth carrier and IPv6 link-local addresses, then checks reachability client -> server over
# IPv4 and IPv6 (ping if installed, otherwise a TCP probe that expects the server's RST). "down" succeeds when nothing
# exists. "status" exits 0 when the lab is up and healthy, 1 otherwise. "exec" passes the exit
# status of CMD through. "env" prints shell assignments (LAB_CLIENT_NS=... ) for other scripts:
#   eval "$(deploy/lab.sh env)"
#
# Needs root (CAP_NET_ADMIN / CAP_SYS_ADMIN for ip netns); re-executes through sudo otherwise.
set -euo pipefail

readonly kProg="${0##*/}"
readonly kPrefix="${FINWAVE_LAB:-fw}"

readonly kClientNs="${kPrefix}-client"
readonly kRouterNs="${kPrefix}-router"
readonly kServerNs="${kPrefix}-server"

if [[ -d /run/lock ]]; then
  readonly kLockFile="/run/lock/finwave-lab-$kPrefix.lock"
else
  readonly kLockFile="/tmp/finwave-lab-$kPrefix.lock"
fi

readonly kClientIf="eth0"
readonly kRouterClientIf="to-client"
readonly kRouterServerIf="to-server"
readonly kServerIf="eth0"

readonly kClientV4="198.18.1.2"
readonly kClientV6="2001:db8:1::2"
readonly kRouterClientV4="198.18.1.1"
readonly kRouterClientV6="2001:db8:1::1"
readonly kRouterServerV4="198.18.2.1"
readonly kRouterServerV6="2001:db8:2::1"
readonly kServerV4="198.18.2.2"
readonly kServerV6="2001:db8:2::2"

usage() {
  cat <<EOF
Usage: $kProg COMMAND [ARGS...]

Builds and manages the finwave lab: namespaces ${kPrefix}-client, ${kPrefix}-router and
${kPrefix}-server joined by veth pairs (prefix from FINWAVE_LAB, default "fw").

Commands:
  up                       build the lab (a healthy lab is left alone, a broken one is
                           rebuilt), then check client -> server reachability (v4 and v6)
  down                     remove the lab; succeeds when nothing exists
  status                   print namespaces and addresses; exit 0 if the lab is up, 1 if not
  env                      print the lab's names and addresses as shell assignments
                           (use: eval "\$($kProg env)")
  exec ROLE CMD [ARGS...]  run CMD inside the namespace of ROLE (client|router|server) and
                           pass its exit status through
  help, --help, -h         this text

Addresses:
  client  $kClientIf        $kClientV4/24  $kClientV6/64
  router  $kRouterClientIf   $kRouterClientV4/24  $kRouterClientV6/64
          $kRouterServerIf   $kRouterServerV4/24  $kRouterServerV6/64
  server  $kServerIf        $kServerV4/24  $kServerV6/64

Environment:
  FINWAVE_LAB              namespace prefix (default "fw"); keep it short (<= 12 characters)
  FINWAVE_LAB_PROBE        reachability probe: "auto" (default: ping if installed), "ping", "tcp"

Needs root; re-executes itself through sudo when not root.
EOF
}

die() {
  echo "$kProg: error: $*" >&2
  exit 1
}

note() {
  echo "$kProg: $*" >&2
}

ns_exists() {
  [[ -e "/run/netns/$1" ]]
}

ns_of_role() {
  case "$1" in
    client) echo "$kClientNs" ;;
    router) echo "$kRouterNs" ;;
    server) echo "$kServerNs" ;;
    *) return 1 ;;
  esac
}

print_env() {
  cat <<EOF
LAB_PREFIX=$kPrefix
LAB_CLIENT_NS=$kClientNs
LAB_ROUTER_NS=$kRouterNs
LAB_SERVER_NS=$kServerNs
LAB_CLIENT_IF=$kClientIf
LAB_ROUTER_CLIENT_IF=$kRouterClientIf
LAB_ROUTER_SERVER_IF=$kRouterServerIf
LAB_SERVER_IF=$kServerIf
LAB_CLIENT_V4=$kClientV4
LAB_CLIENT_V6=$kClientV6
LAB_ROUTER_CLIENT_V4=$kRouterClientV4
LAB_ROUTER_CLIENT_V6=$kRouterClientV6
LAB_ROUTER_SERVER_V4=$kRouterServerV4
LAB_ROUTER_SERVER_V6=$kRouterServerV6
LAB_SERVER_V4=$kServerV4
LAB_SERVER_V6=$kServerV6
EOF
}

# Re-executes through sudo when not root; FINWAVE_LAB* are passed explicitly because sudo's
# default policy resets the environment.
require_root() {
  [[ "$(id -u)" -eq 0 ]] && return 0
  if command -v sudo >/dev/null 2>&1; then
    exec sudo -- env FINWAVE_LAB="$kPrefix" FINWAVE_LAB_PROBE="${FINWAVE_LAB_PROBE:-auto}" \
      bash "$0" "$@"
  fi
  die "needs root (or sudo, which is not installed): it creates network namespaces"
}

validate_prefix() {
  [[ "$kPrefix" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] ||
    die "FINWAVE_LAB='$kPrefix' must be letters, digits, '.', '_' or '-'"
  ((${#kPrefix} <= 12)) || die "FINWAVE_LAB='$kPrefix' is too long (at most 12 characters)"
}

# True when the interface exists in the namespace, is up and carries the address.
# (Output is captured rather than piped into "grep -q", whose early exit would make "ip" die of
# SIGPIPE and, under pipefail, the check fail.)
has_addr() {
  local ns="$1" dev="$2" addr="$3" out
  out="$(ip -n "$ns" -o addr show dev "$dev" up 2>/dev/null)" || return 1
  [[ "$out" == *" $addr "* ]]
}

has_route() {
  local ns="$1" family="$2" via="$3" out
  out="$(ip -n "$ns" "$family" route show default 2>/dev/null)" || return 1
  [[ "$out" == *"via $via "* ]]
}

sysctl_in() {
  ip netns exec "$1" sysctl -n "$2" 2>/dev/null
}

# Structural health: every namespace, interface, address, route and sysctl in place.
lab_structure_ok() {
  local ns
  for ns in "$kClientNs" "$kRouterNs" "$kServerNs"; do
    ns_exists "$ns" || return 1
    ip -n "$ns" link show lo up >/dev/null 2>&1 || return 1
  done
  has_addr "$kClientNs" "$kClientIf" "$kClientV4/24" &&
    has_addr "$kClientNs" "$kClientIf" "$kClientV6/64" &&
    has_addr "$kRouterNs" "$kRouterClientIf" "$kRouterClientV4/24" &&
    has_addr "$kRouterNs" "$kRouterClientIf" "$kRouterClientV6/64" &&
    has_addr "$kRouterNs" "$kRouterServerIf" "$kRouterServerV4/24" &&
    has_addr "$kRouterNs" "$kRouterServerIf" "$kRouterServerV6/64" &&
    has_addr "$kServerNs" "$kServerIf" "$kServerV4/24" &&
    has_addr "$kServerNs" "$kServerIf" "$kServerV6/64" &&
    has_route "$kClientNs" -4 "$kRouterClientV4" &&
    has_route "$kClientNs" -6 "$kRouterClientV6" &&
    has_route "$kServerNs" -4 "$kRouterServerV4" &&
    has_route "$kServerNs" -6 "$kRouterServerV6" &&
    [[ "$(sysctl_in "$kRouterNs" net.ipv4.ip_forward)" == 1 ]] &&
    [[ "$(sysctl_in "$kRouterNs" net.ipv6.conf.all.forwarding)" == 1 ]]
}

probe_kind() {
  local kind="${FINWAVE_LAB_PROBE:-auto}"
  case "$kind" in
    auto) if command -v ping >/dev/null 2>&1; then echo ping; else echo tcp; fi ;;
    ping | tcp) echo "$kind" ;;
    *) die "FINWAVE_LAB_PROBE='$kind' must be auto, ping or tcp" ;;
  esac
}

# One reachability attempt from namespace $1 to address $2 (v4 or v6).
# The tcp probe connects to port 9 (discard), where nothing listens: "Connection refused" means
# the SYN crossed the router and the server's RST came back, which proves both directions.
probe_once() {
  local ns="$1" addr="$2" out
  if [[ "$(probe_kind)" == ping ]]; then
    ip netns exec "$ns" ping -n -q -c 1 -W 1 "$addr" >/dev/null 2>&1
  else
    # shellcheck disable=SC2016 # $1 is expanded by the inner bash.
    out="$(ip netns exec "$ns" timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/9"' _ "$addr" 2>&1)" &&
      return 0
    [[ "$out" == *"Connection refused"* ]]
  fi
}

# Bounded retry: neighbour discovery takes a moment on a fresh link.
probe() {
  local ns="$1" addr="$2" attempt
  for attempt in 1 2 3 4 5; do
    probe_once "$ns" "$addr" && return 0
    ((attempt < 5)) && sleep 0.2
  done
  return 1
}

check_reachability() {
  local addr failed=0
  for addr in "$kServerV4" "$kServerV6"; do
    if ! probe "$kClientNs" "$addr"; then
      note "client ($kClientNs) cannot reach server $addr ($(probe_kind) probe)"
      failed=1
    fi
  done
  return "$failed"
}

lab_down() {
  local ns pids
  for ns in "$kClientNs" "$kRouterNs" "$kServerNs"; do
    ns_exists "$ns" || continue
    pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
    if [[ -n "${pids// /}" ]]; then
      # The namespace (and its veth) lives on, unnamed, until these processes exit.
      note "warning: processes still running in $ns: $pids(not killed)"
    fi
    ip netns del "$ns" || die "cannot delete namespace $ns"
  done
}

lab_build() {
  local ns
  for ns in "$kClientNs" "$kRouterNs" "$kServerNs"; do
    ip netns add "$ns" || die "cannot create namespace $ns"
    ip -n "$ns" link set lo up
    # New interfaces skip duplicate address detection, link-local addresses included.
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.default.accept_dad=0 \
      net.ipv6.conf.all.accept_dad=0 >/dev/null
  done

  # Each pair is created inside the client/server namespace with its peer born in the router.
  ip -n "$kClientNs" link add "$kClientIf" type veth peer name "$kRouterClientIf" \
    netns "$kRouterNs"
  ip -n "$kServerNs" link add "$kServerIf" type veth peer name "$kRouterServerIf" \
    netns "$kRouterNs"

  ip netns exec "$kRouterNs" sysctl -q -w net.ipv4.ip_forward=1 \
    net.ipv6.conf.all.forwarding=1 >/dev/null

  ip -n "$kClientNs" addr add "$kClientV4/24" dev "$kClientIf"
  ip -n "$kClientNs" addr add "$kClientV6/64" dev "$kClientIf" nodad
  ip -n "$kRouterNs" addr add "$kRouterClientV4/24" dev "$kRouterClientIf"
  ip -n "$kRouterNs" addr add "$kRouterClientV6/64" dev "$kRouterClientIf" nodad
  ip -n "$kRouterNs" addr add "$kRouterServerV4/24" dev "$kRouterServerIf"
  ip -n "$kRouterNs" addr add "$kRouterServerV6/64" dev "$kRouterServerIf" nodad
  ip -n "$kServerNs" addr add "$kServerV4/24" dev "$kServerIf"
  ip -n "$kServerNs" addr add "$kServerV6/64" dev "$kServerIf" nodad

  ip -n "$kClientNs" link set "$kClientIf" up
  ip -n "$kRouterNs" link set "$kRouterClientIf" up
  ip -n "$kRouterNs" link set "$kRouterServerIf" up
  ip -n "$kServerNs" link set "$kServerIf" up

  wait_links_ready

  ip -n "$kClientNs" -4 route add default via "$kRouterClientV4" dev "$kClientIf"
  ip -n "$kClientNs" -6 route add default via "$kRouterClientV6" dev "$kClientIf"
  ip -n "$kServerNs" -4 route add default via "$kRouterServerV4" dev "$kServerIf"
  ip -n "$kServerNs" -6 route add default via "$kRouterServerV6" dev "$kServerIf"
}

# True when the veth has carrier and its IPv6 link-local address is usable.
link_ready() {
  local ns="$1" dev="$2" link addr
  link="$(ip -n "$ns" link show dev "$dev" 2>/dev/null)" || return 1
  addr="$(ip -n "$ns" -6 addr show dev "$dev" scope link 2>/dev/null)" || return 1
  [[ "$link" == *"state UP"* && "$addr" == *fe80::* && "$addr" != *tentative* ]]
}

# The kernel reports veth carrier through linkwatch, up to a second late; IPv6 neither sends
# neighbour solicitations nor forms link-local addresses before that. Waiting here (bounded)
# makes the lab usable over IPv6 as soon as "up" returns, instead of losing the first packets.
wait_links_ready() {
  local i
  for ((i = 0; i < 60; i++)); do
    link_ready "$kClientNs" "$kClientIf" && link_ready "$kRouterNs" "$kRouterClientIf" &&
      link_ready "$kRouterNs" "$kRouterServerIf" && link_ready "$kServerNs" "$kServerIf" &&
      return 0
    sleep 0.05
  done
  note "warning: links not ready after 3 s (carrier or IPv6 link-local missing)"
}

any_ns_exists() {
  ns_exists "$kClientNs" || ns_exists "$kRouterNs" || ns_exists "$kServerNs"
}

# Serialises up/down of one prefix, so two concurrent "up" calls cannot interleave.
take_lock() {
  exec 9>"$kLockFile"
  flock -w 60 9 || die "waited 60 s for another $kProg working on lab '$kPrefix'"
}

on_build_failure() {
  local rc=$?
  trap - EXIT
  if ((rc != 0)); then
    lab_down || true
    rm -f "$kLockFile"
    note "error: building lab '$kPrefix' failed (removed what was built)"
  fi
  exit "$rc"
}

cmd_up() {
  take_lock
  if lab_structure_ok; then
    # Complete but unreachable is not rebuilt: that could be a test's own firewall rule, and
    # tearing its lab down under it would be worse than saying so.
    check_reachability ||
      die "lab '$kPrefix' is complete but client -> server is unreachable (firewall rules in" \
        "$kRouterNs?); to rebuild it: $kProg down && $kProg up"
    note "lab '$kPrefix' is already up"
    return 0
  elif any_ns_exists; then
    note "lab '$kPrefix' is half-built (an earlier run crashed?): removing and rebuilding"
    lab_down
  fi
  # errexit stays in force inside lab_build (it would not in an "if" condition); the trap
  # removes a partly built lab when a step fails.
  trap 'on_build_failure' EXIT
  lab_build
  trap - EXIT
  check_reachability ||
    die "lab '$kPrefix' built but client -> server is unreachable (left in place: $kProg status)"
  note "lab '$kPrefix' is up: $kClientNs ($kClientV4, $kClientV6) — $kRouterNs —" \
    "$kServerNs ($kServerV4, $kServerV6)"
}

cmd_down() {
  take_lock
  if ! any_ns_exists; then
    rm -f "$kLockFile"
    note "lab '$kPrefix' is not present: nothing to do"
    return 0
  fi
  lab_down
  rm -f "$kLockFile"
  note "lab '$kPrefix' removed"
}

cmd_status() {
  local ns healthy=0
  for ns in "$kClientNs" "$kRouterNs" "$kServerNs"; do
    if ns_exists "$ns"; then
      echo "$ns:"
      ip -n "$ns" -br addr show 2>/dev/null | sed 's/^/  /'
    else
      echo "$ns: (absent)"
    fi
  done
  if lab_structure_ok; then
    echo "lab '$kPrefix': up"
  else
    healthy=1
    if any_ns_exists; then
      echo "lab '$kPrefix': broken (run: $kProg up)"
    else
      echo "lab '$kPrefix': down"
    fi
  fi
  return "$healthy"
}

cmd_exec() {
  (($# >= 2)) || die "usage: $kProg exec <client|router|server> CMD [ARGS...]"
  local ns
  ns="$(ns_of_role "$1")" || die "unknown role '$1' (expected client, router or server)"
  shift
  ns_exists "$ns" || die "namespace $ns does not exist (run: $kProg up)"
  exec ip netns exec "$ns" "$@"
}

main() {
  (($# >= 1)) || {
    usage >&2
    exit 2
  }
  local cmd="$1"
  shift
  case "$cmd" in
    help | --help | -h)
      usage
      return 0
      ;;
    env)
      validate_prefix
      print_env
      return 0
      ;;
    up | down | status | exec) ;;
    *)
      echo "$kProg: unknown command '$cmd'" >&2
      usage >&2
      exit 2
      ;;
  esac
  validate_prefix
  require_root "$cmd" "$@"
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    exec) cmd_exec "$@" ;;
  esac
}

main "$@"
