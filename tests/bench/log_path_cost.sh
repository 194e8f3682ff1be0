#!/usr/bin/env bash
# tests/bench/log_path_cost.sh — what connection churn pays for each part of the log path (issue
# 16: why finwave observing, which queues nothing, misses 0.95 × kernel), part by part.
#
#   tests/bench/log_path_cost.sh [--quick] [--rounds N] [--seconds S] [--shape SHAPE]
#                                [--json FILE] [--build DIR]
#
#   --quick      smoke run (one round of 1 s): checks the harness, judges nothing
#   --rounds N   interleaved rounds (default 7); every ratio is the median of per-round ratios
#   --seconds S  seconds of churn per run (default 3)
#   --shape S    client-first (default) or four-way, as finwave-churn-load takes it
#   --json FILE  results as JSON (default: none)
#   --build DIR  where finwave and the bench tools are (default $FINWAVE_BUILD, else build/)
#
# finwave-churn-load (4 workers: connect, 64 bytes, close) from the lab's client to a sink on the
# server, port 5002, once per configuration in each round, the router holding:
#   kernel    nothing (forwarding alone)
#   hook      finwave's table with its capture chain emptied: the hook, the port match and a
#             jump into an empty chain
#   rules     finwave's table whole, its classify chain accepting where it would log: every rule
#             evaluated (teardown set lookups and updates included), no copy made
#   copies    finwave's table without the teardown set rules: SYN, FIN and RST segments copied to
#             the log group and read (what the issue measured with tcpdump -i nflog), no set
#   log_path  finwave's table whole, every copy read and counted: finwave-bare-consumer --log,
#             the floor of finwave observing
#   finwave   finwave observing (no rules): the same table, the copies tracked and reported
# The table is the one finwave-bare-consumer --log installs (nf::CaptureChains, as finwave's), and
# the parts are cut out of it with nft, so they follow finwave's own rules. Copies per connection
# are printed for the configurations that read them.
#
# Needs root, jq and nft (package nftables). Everything runs in a lab with a prefix of its own,
# removed on exit; nothing touches the machine's own namespace.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

quick=0
rounds=7
seconds=3
shape=client-first
json=""
build="${FINWAVE_BUILD:-$repo/build}"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --rounds) rounds=${2:?--rounds N}; shift ;;
    --seconds) seconds=${2:?--seconds S}; shift ;;
    --shape) shape=${2:?--shape SHAPE}; shift ;;
    --json) json=${2:?--json FILE}; shift ;;
    --build) build=${2:?--build DIR}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "log_path_cost.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "log_path_cost.sh: --rounds must be a positive number" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "log_path_cost.sh: --seconds must be a positive number" >&2; exit 2; }
[[ $shape == client-first || $shape == four-way ]] ||
  { echo "log_path_cost.sh: --shape is client-first or four-way" >&2; exit 2; }
if ((quick)); then rounds=1; seconds=1; fi
build=$(cd "$build" && pwd)
[[ -n "$json" && "$json" != /* ]] && json="$PWD/$json"

export FINWAVE_BUILD="$build"
# shellcheck source=tests/lab/lib.sh
. "$repo/tests/lab/lib.sh"
FINWAVE_BIN="$build/finwave"
BARE="$build/finwave-bare-consumer"
LOAD="$build/finwave-churn-load"
for binary in "$FINWAVE_BIN" "$BARE" "$LOAD"; do
  [[ -x "$binary" ]] || { echo "log_path_cost.sh: $binary not found (cmake --build $build)" >&2; exit 1; }
done
for tool in jq nft; do
  command -v "$tool" >/dev/null ||
    { echo "log_path_cost.sh: $tool is not installed (deploy/install-deps.sh)" >&2; exit 1; }
done

readonly kConfigs=(kernel hook rules copies log_path finwave)
readonly kPort=5002
readonly kTable=finwave-q0

# A full run outlasts lib.sh's default deadline for a lab test (240 s); ctest's smoke run sets
# its own.
export FINWAVE_LAB_DEADLINE=${FINWAVE_LAB_DEADLINE:-1200}
lab_begin log_path_cost
work=$LAB_WORK

in_router() { lab_exec router "$@"; }

# The client reuses ports at this rate (tcp_tw_reuse, TIME_WAIT capped) and the server takes
# a long accept queue, as in perf.sh's churn.
lab_exec client sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1 \
  net.ipv4.tcp_max_tw_buckets=4096
lab_exec server sysctl -q -w net.core.somaxconn=4096

CONSUMER_PID=""
CONSUMER_OUT=""
stop_consumer() {
  [[ -n "$CONSUMER_PID" ]] || return 0
  lab_kill "$CONSUMER_PID" TERM
  lab_wait "$CONSUMER_PID" 10 || fail "the consumer exited with $?: $(cat "$CONSUMER_OUT.err")"
  CONSUMER_PID=""
}
lab_on_exit stop_consumer

# start_consumer NAME CMD... — in the router, until its ready file exists.
start_consumer() {
  local name=$1
  shift
  CONSUMER_OUT="$work/$name.$((++serial)).out"
  rm -f "$work/ready"
  lab_bg router "$CONSUMER_OUT" "$@" --ready-file "$work/ready" >/dev/null
  CONSUMER_PID=$LAB_LAST_PID
  wait_for_file "$work/ready" 15 || fail "$name did not start: $(cat "$CONSUMER_OUT.err")"
}
serial=0

# The classify chain's rules with `log group N accept` turned into `accept`, as nft -f input.
classify_without_copies() {
  local rules
  rules=$(in_router nft list chain inet "$kTable" classify |
    sed -n 's/^[[:space:]]*\(tcp flags .*\) log group [0-9]* accept$/\1 accept/p')
  [[ $(grep -c . <<<"$rules") -eq 5 ]] || fail "expected five logged classes in the classify chain, got: $rules"
  echo "flush chain inet $kTable classify"
  while read -r rule; do echo "add rule inet $kTable classify $rule"; done <<<"$rules"
}

apply_part() {
  case $1 in
    kernel) ;;
    finwave) start_consumer finwave "$FINWAVE_BIN" --quiet --json --control none --port "$kPort" ;;
    *)
      start_consumer bare "$BARE" --log --port "$kPort"
      case $1 in
        hook) in_router nft flush chain inet "$kTable" capture ;;
        rules) classify_without_copies | in_router nft -f - || fail "nft refused the classify chain" ;;
        copies)
          printf '%s\n' "flush chain inet $kTable capture" \
            "add rule inet $kTable capture tcp flags & (fin | syn | rst) == 0 return" \
            "add rule inet $kTable capture jump classify" | in_router nft -f - ||
            fail "nft refused the capture chain"
          ;;
      esac
      ;;
  esac
}

# churn FILE — one run; prints connections/s and the connections that completed.
churn() {
  lab_exec client "$LOAD" --connect "$LAB_SERVER_V4" --port "$kPort" --workers 4 \
    --duration "$seconds" --shape "$shape" --bytes 64 >"$1" 2>"$1.err" || true
  jq -r 'select(.event == "summary") | "\(.rate | floor) \(.ok) \(.failed)"' "$1" | grep . ||
    fail "the churn load gave no summary: $(cat "$1" "$1.err")"
}

# copies_of — copies the stopped consumer read (null for none).
copies_of() {
  case $1 in
    kernel) echo null ;;
    *) jq -r 'select(.event == "stats") | .logged // empty' "$CONSUMER_OUT" | grep . || echo null ;;
  esac
}

lab_bg server "$work/sink.log" "$LOAD" --listen :: --port "$kPort" --workers 2 >/dev/null
for ((i = 0; i < 200; i++)); do
  [[ -n "$(lab_exec server ss -Hltn "sport = :$kPort")" ]] && break
  sleep 0.05
done

echo "== connection churn ($shape) through the router, $rounds round(s) of ${seconds} s per configuration" >&2
declare -A rates=() ratios=() per_connection=()
for ((round = 1; round <= rounds; round++)); do
  declare -A this=()
  line="   round $round:"
  for config in "${kConfigs[@]}"; do
    apply_part "$config"
    read -r rate ok failed <<<"$(churn "$work/churn.$config.$round.json")"
    stop_consumer
    ((failed == 0)) || echo "   warning: $failed connections failed ($config)" >&2
    this[$config]=$rate
    rates[$config]+="$rate "
    copies=$(copies_of "$config")
    if [[ $copies != null ]] && ((ok > 0)); then
      per_connection[$config]+="$(awk -v c="$copies" -v n="$ok" 'BEGIN { printf "%.2f", c / n }') "
    fi
    line+=" $config $rate"
  done
  for config in "${kConfigs[@]}"; do
    ratios[$config]+="$(awk -v a="${this[$config]}" -v b="${this[kernel]}" 'BEGIN { printf "%.3f", a / b }') "
  done
  echo "$line" >&2
done

echo "part         conn/s   x kernel   copies/conn" >&2
results="[]"
for config in "${kConfigs[@]}"; do
  # shellcheck disable=SC2086 # the samples are space-separated numbers
  rate=$(median ${rates[$config]})
  # shellcheck disable=SC2086
  ratio=$(median ${ratios[$config]})
  copies=null
  # shellcheck disable=SC2086
  [[ -n "${per_connection[$config]:-}" ]] && copies=$(median ${per_connection[$config]})
  printf '%-10s %8s   %8s   %s\n' "$config" "$rate" "$ratio" "$copies" >&2
  results=$(jq -c --arg c "$config" --argjson r "$rate" --argjson x "$ratio" --argjson p "$copies" \
    '. + [{config: $c, conn_per_s: $r, ratio_to_kernel: $x, copies_per_connection: $p}]' <<<"$results")
done
if [[ -n "$json" ]]; then
  jq -n --arg shape "$shape" --argjson rounds "$rounds" --argjson seconds "$seconds" \
    --argjson quick "$quick" --argjson parts "$results" \
    '{bench: "log_path_cost", shape: $shape, rounds: $rounds, seconds: $seconds,
      quick: ($quick == 1), parts: $parts}' >"$json"
  echo "results: $json" >&2
fi
pass "every part measured ($rounds round(s), $shape)"
