#!/usr/bin/env bash
# tests/bench/capture_cost.sh — what one-stream bulk forwarding pays for each part of finwave's
# capture rules, measured rule by rule (issue 7: why bulk, one stream, missed 0.97 × kernel when
# the capture was an iptables chain with an ipset lookup).
#
#   tests/bench/capture_cost.sh [--quick] [--rounds N] [--seconds S] [--json FILE] [--build DIR]
#
#   --quick      smoke run (one round of 1 s): checks the harness, judges nothing
#   --rounds N   interleaved rounds (default 7); every ratio is the median of per-round ratios
#   --seconds S  iperf3 seconds per run (default 4, after 1 s left out)
#   --json FILE  results as JSON (default: none)
#   --build DIR  where finwave is (default $FINWAVE_BUILD, else build/)
#
# One iperf3 stream client -> server through the lab's router, once per configuration in each
# round (A B C ..., A B C ...), the router's mangle FORWARD hook holding:
#   kernel    nothing (forwarding alone)
#   jump      a jump into an empty chain (the cost of having a hook at all)
#   flags     + the TCP-flags test every captured chain starts with (a native nftables match)
#   mark      + a mark test in the same rule (native too): a stand-in for a cheap lookup
#   ipset     + the one teardown-set lookup each bulk packet takes in finwave's chain (`-m set`,
#               which iptables-nft runs through its xtables compatibility layer)
#   nft_set   the same lookup in a native nftables set, in a table and chain of its own that
#               marks what is to be queued, plus one iptables rule on that mark
#   finwave   finwave itself, running with rules/examples/lose-first-final-ack.toml: its own
#               nftables table, whose bulk path is the nft_set one without the mark
#
# Needs root, iperf3, jq, ipset and nft (package nftables). Everything runs in a lab with a
# prefix of its own, removed on exit; nothing touches the machine's own namespace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

quick=0
rounds=7
seconds=4
json=""
build="${FINWAVE_BUILD:-$repo/build}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds N}; shift ;;
    --seconds) seconds=${2:?--seconds S}; shift ;;
    --json) json=${2:?--json FILE}; shift ;;
    --build) build=${2:?--build DIR}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "capture_cost.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "capture_cost.sh: --rounds must be a positive number" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "capture_cost.sh: --seconds must be a positive number" >&2; exit 2; }
omit=1
if ((quick)); then rounds=1; seconds=1; omit=0; fi
build=$(cd "$build" && pwd)
[[ -n "$json" && "$json" != /* ]] && json="$PWD/$json"

export FINWAVE_BUILD="$build"
# shellcheck source=tests/lab/lib.sh
. "$repo/tests/lab/lib.sh"
FINWAVE_BIN="$build/finwave"
[[ -x "$FINWAVE_BIN" ]] || { echo "capture_cost.sh: $FINWAVE_BIN not found (cmake --build $build)" >&2; exit 1; }
for tool in iperf3 jq ipset nft; do
  command -v "$tool" >/dev/null ||
    { echo "capture_cost.sh: $tool is not installed (deploy/install-deps.sh)" >&2; exit 1; }
done

readonly kConfigs=(kernel jump flags mark ipset nft_set finwave)
readonly kChain=FWCOST
readonly kSet=fwcost-v4
readonly kTable=fwcost
readonly kQueueMark=0x1

# A full run outlasts lib.sh's default deadline for a lab test (240 s); ctest's smoke run sets
# its own.
export FINWAVE_LAB_DEADLINE=${FINWAVE_LAB_DEADLINE:-1200}
lab_begin capture_cost
work=$LAB_WORK

router() { lab_exec router "$@"; }

# The iptables rules of a configuration, as iptables-restore input (table mangle).
rules_for() {
  local jump="-A FORWARD -p tcp -j $kChain"
  local flags="-A $kChain -p tcp -m tcp --tcp-flags FIN,SYN,RST NONE"
  case $1 in
    jump) printf '*mangle\n:%s - [0:0]\n%s\nCOMMIT\n' "$kChain" "$jump" ;;
    flags) printf '*mangle\n:%s - [0:0]\n%s\n%s -j RETURN\nCOMMIT\n' "$kChain" "$jump" "$flags" ;;
    mark)
      printf '*mangle\n:%s - [0:0]\n%s\n%s -m mark ! --mark %s/%s -j RETURN\nCOMMIT\n' \
        "$kChain" "$jump" "$flags" "$kQueueMark" "$kQueueMark"
      ;;
    ipset)
      printf '*mangle\n:%s - [0:0]\n%s\n%s -m set ! --match-set %s src,src,dst -j RETURN\nCOMMIT\n' \
        "$kChain" "$jump" "$flags" "$kSet"
      ;;
    nft_set) printf '*mangle\n-A FORWARD -m mark --mark %s/%s -j ACCEPT\nCOMMIT\n' "$kQueueMark" "$kQueueMark" ;;
  esac
}

# The native table of nft_set: finwave's bulk test against a native set; what passes it would be
# marked for the queue rule.
nft_table() {
  cat <<EOF
table inet $kTable {
  set v4 {
    type ipv4_addr . inet_service . ipv4_addr
    flags dynamic, timeout
    timeout 180s
    size 1048576
  }
  chain capture {
    type filter hook forward priority mangle - 1; policy accept;
    tcp flags & (fin | syn | rst) == 0 ip saddr . tcp sport . ip daddr != @v4 return
    tcp flags & (fin | syn | rst) == 0 ip daddr . tcp dport . ip saddr != @v4 return
    tcp flags & (fin | syn | rst | ack) == syn delete @v4 { ip saddr . tcp sport . ip daddr }
    tcp flags & (syn | rst) == 0 update @v4 { ip saddr . tcp sport . ip daddr timeout 180s }
    tcp flags & (syn | rst) == 0 update @v4 { ip daddr . tcp dport . ip saddr timeout 180s }
    meta mark set meta mark | $kQueueMark
  }
}
EOF
}

FINWAVE_PID=""
# reset_router — back to the kernel alone: finwave stopped, this tool's rules, set and table removed.
reset_router() {
  if [[ -n "$FINWAVE_PID" ]]; then
    lab_kill "$FINWAVE_PID" TERM
    lab_wait "$FINWAVE_PID" 10 || fail "finwave exited with $?: $(cat "$work/finwave.err")"
    FINWAVE_PID=""
  fi
  router iptables -w -t mangle -D FORWARD -p tcp -j "$kChain" 2>/dev/null || true
  router iptables -w -t mangle -D FORWARD -m mark --mark "$kQueueMark/$kQueueMark" -j ACCEPT 2>/dev/null || true
  router iptables -w -t mangle -F "$kChain" 2>/dev/null || true
  router iptables -w -t mangle -X "$kChain" 2>/dev/null || true
  router nft delete table inet "$kTable" 2>/dev/null || true
  router ipset destroy "$kSet" 2>/dev/null || true
}
lab_on_exit reset_router

apply() {
  reset_router
  case $1 in
    kernel) ;;
    finwave)
      rm -f "$work/finwave.ready"
      lab_bg router "$work/finwave.out" "$FINWAVE_BIN" --quiet --control none \
        --ready-file "$work/finwave.ready" --rules "$repo/rules/examples/lose-first-final-ack.toml" >/dev/null
      FINWAVE_PID=$LAB_LAST_PID
      wait_for_file "$work/finwave.ready" 15 || fail "finwave did not start: $(cat "$work/finwave.out"*)"
      ;;
    nft_set)
      nft_table | router nft -f - || fail "nft refused the native table"
      rules_for nft_set | router iptables-restore -w --noflush || fail "iptables-restore ($1)"
      ;;
    *)
      [[ $1 == ipset ]] && router ipset create "$kSet" hash:ip,port,ip timeout 180 maxelem 1048576
      rules_for "$1" | router iptables-restore -w --noflush || fail "iptables-restore ($1)"
      ;;
  esac
}

# iperf_gbps FILE — one run, Gbit/s received (three tries: "the server is busy" while the
# previous test's teardown finishes).
iperf_gbps() {
  local _
  for _ in 1 2 3; do
    if lab_exec client iperf3 -c "$LAB_SERVER_V4" -p 5201 -t "$seconds" -O "$omit" -J >"$1" 2>"$1.err"; then
      jq -r '.end.sum_received.bits_per_second / 1e9' "$1"
      return 0
    fi
    sleep 0.5
  done
  fail "iperf3 failed: $(jq -r '.error // empty' "$1" 2>/dev/null) $(cat "$1.err")"
}


lab_bg server "$work/iperf3-server.log" iperf3 -s -p 5201 >/dev/null
for ((i = 0; i < 200; i++)); do
  [[ -n "$(lab_exec server ss -Hltn 'sport = :5201')" ]] && break
  sleep 0.05
done

echo "== one-stream bulk through the router, $rounds round(s) of ${seconds} s per configuration" >&2
declare -A gbps=() ratios=()
for ((round = 1; round <= rounds; round++)); do
  declare -A this=()
  for config in "${kConfigs[@]}"; do
    apply "$config"
    this[$config]=$(iperf_gbps "$work/iperf.$config.$round.json")
    gbps[$config]+="${this[$config]} "
  done
  reset_router
  line="   round $round:"
  for config in "${kConfigs[@]}"; do
    ratio=$(awk -v a="${this[$config]}" -v b="${this[kernel]}" 'BEGIN { printf "%.3f", a / b }')
    ratios[$config]+="$ratio "
    line+=" $config $(printf '%.2f' "${this[$config]}") ($ratio)"
  done
  echo "$line" >&2
done

echo
printf '%-9s %12s %14s   %s\n' configuration "Gbit/s" "x kernel" "per-round ratios"
rows=()
for config in "${kConfigs[@]}"; do
  # Split on purpose: the samples are space-separated numbers.
  # shellcheck disable=SC2086
  g=$(median ${gbps[$config]})
  # shellcheck disable=SC2086
  r=$(median ${ratios[$config]})
  printf '%-9s %12.2f %14.3f   %s\n' "$config" "$g" "$r" "${ratios[$config]}"
  rows+=("$(jq -cn --arg c "$config" --argjson g "$g" --argjson r "$r" \
    --argjson runs "[$(tr ' ' '\n' <<<"${ratios[$config]}" | grep . | paste -sd,)]" \
    '{configuration: $c, gbps: $g, ratio_to_kernel: $r, ratios: $runs}')")
done
if [[ -n "$json" ]]; then
  mkdir -p "$(dirname "$json")"
  printf '%s\n' "${rows[@]}" | jq -s --arg kernel "$(uname -r)" --argjson rounds "$rounds" \
    --argjson seconds "$seconds" --arg mode "$( ((quick)) && echo quick || echo full)" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    '{date: $date, mode: $mode, kernel: $kernel, cores: '"$(nproc)"', rounds: $rounds,
      seconds: $seconds, results: .}' >"$json"
  echo "results: $json"
fi
((quick)) && pass "every configuration measured once (smoke run, no figures judged)"
exit 0
