#!/usr/bin/env bash
# tests/bench/delay_precision.sh — how precisely finwave's `delay` action holds a segment.
#
# In a lab of its own, finwave runs on the router with one rule per requested delay (1, 10, 100
# and 1000 ms by default), each delaying the first transmission of fin1 on its own server port.
# finwave-peer clients connect and half-close ("shutdown,read-eof": the next connection starts
# only once the previous teardown is through), tcpdump records both router interfaces with
# nanosecond timestamps, and every delayed FIN is found on both: observed = its time on
# to-server (egress) minus its time on to-client (ingress), error = observed - requested. The
# error therefore includes everything a user sees: the queue trip into finwave, the timer's
# lateness and the verdict's way back out.
#
#   tests/bench/delay_precision.sh [--json PATH] [--delays "1 10 100 1000"]
#                                  [--samples "200 200 100 20"] [--parallel "1 1 4 10"]
#                                  [--target-ms 0.3] [--realtime-priority N]
#
# --realtime-priority N runs finwave with that option (SCHED_FIFO): the same measurement with
# finwave ahead of the rest of the machine's work when its timer fires.
#
# Prints a table (requested, samples, p50/p99/max error in ms, whether the p99 of |error| meets
# the target), the baseline (an undelayed SYN's trip through finwave, same captures) and the
# load average, and writes the same as JSON (default: results/bench-delay.json in the
# repository). On a machine busy with other work the tails are the scheduler's, not finwave's.
# Exits 0 when every sample was measured (whether or not the target is met), 1 otherwise. Needs
# root (network namespaces); FINWAVE_BUILD names the build directory (default build/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$repo/tests/lab/lib.sh"

json_out=$repo/results/bench-delay.json
delays="1 10 100 1000"
samples="200 200 100 20"
parallel="1 1 4 10"
target_ms=0.3
base_port=5101
realtime_priority=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while (($#)); do
  case $1 in
    --json) json_out=${2:?--json PATH}; shift 2 ;;
    --delays) delays=${2:?}; shift 2 ;;
    --samples) samples=${2:?}; shift 2 ;;
    --parallel) parallel=${2:?}; shift 2 ;;
    --target-ms) target_ms=${2:?}; shift 2 ;;
    --realtime-priority) realtime_priority=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "delay_precision.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
read -r -a delay_list <<<"$delays"
read -r -a sample_list <<<"$samples"
read -r -a parallel_list <<<"$parallel"
n=${#delay_list[@]}
[[ ${#sample_list[@]} -eq $n && ${#parallel_list[@]} -eq $n ]] ||
  { echo "delay_precision.sh: --delays, --samples and --parallel need one value per delay" >&2; exit 2; }
require_file "$FINWAVE_BIN" "build finwave first"
require_file "$FINWAVE_BIN_PEER" "build finwave-peer first"

# A full run outlasts lib.sh's default deadline for a lab test (240 s); ctest's smoke run sets
# its own.
export FINWAVE_LAB_DEADLINE=${FINWAVE_LAB_DEADLINE:-1200}
lab_begin delay_precision
work=$LAB_WORK
started=$(date +%s)
# Other load on the machine shows in every figure: it is recorded with them.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# One rule per delay, each on its own server port.
rules=$work/rules.toml
: >"$rules"
ports=()
finwave_ports=()
for ((i = 0; i < n; i++)); do
  port=$((base_port + i))
  ports+=("$port")
  finwave_ports+=(--port "$port")
  cat >>"$rules" <<EOF
[[rule]]
name = "delay-fin1-${delay_list[i]}ms"
role = "fin1"
retx = false
server_ports = $port
action = "delay"
delay_ms = ${delay_list[i]}

EOF
done
port_filter="tcp and ($(printf 'port %s or ' "${ports[@]}" | sed 's/ or $//'))"

# tcpdump with nanosecond timestamps (capture_start in lib.sh keeps tcpdump's default).
capture_ns() {
  local iface=$1 file=$2 pid i
  pid=$(lab_bg router "$file.tcpdump" tcpdump -i "$iface" -n -U --immediate-mode -B 65536 -s 128 \
    --time-stamp-precision=nano -Z root -w "$file" "$port_filter")
  echo "$pid $file" >>"$LAB_DIR/captures"
  for ((i = 0; i < 100; i++)); do
    grep -q "listening on" "$file.tcpdump.err" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "tcpdump on $iface did not start: $(cat "$file.tcpdump.err")"
}
capture_ns to-client "$work/ingress.pcap"
capture_ns to-server "$work/egress.pcap"

finwave_start router "$work/finwave.jsonl" --rules "$rules" "${finwave_ports[@]}" --settle 0.2 \
  --linger 5 --quiet --realtime-priority "$realtime_priority"

for ((i = 0; i < n; i++)); do
  lab_bg server "$work/server-${ports[i]}.jsonl" "$FINWAVE_BIN_PEER" server --listen "$LAB_SERVER_V4" \
    --port "${ports[i]}" --connections "${sample_list[i]}" --quiet --script read-eof,close \
    --ready-file "$work/server-${ports[i]}.ready" >/dev/null
  wait_for_file "$work/server-${ports[i]}.ready" 10 || fail "server on port ${ports[i]} did not start"
done

# One delay at a time, so that the figures of one are not disturbed by the others.
for ((i = 0; i < n; i++)); do
  echo "delay_precision: ${delay_list[i]} ms: ${sample_list[i]} connections, ${parallel_list[i]} at a time" >&2
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port "${ports[i]}" \
    --connections "${sample_list[i]}" --parallel "${parallel_list[i]}" --quiet \
    --script shutdown,read-eof,close >"$work/client-${ports[i]}.jsonl" ||
    fail "clients on port ${ports[i]} failed: $(cat "$work/client-${ports[i]}.jsonl")"
done
# A client is through as soon as its FIN got an answer, which for delays past the RTO is the
# answer to its retransmission (not delayed: the rules spare retransmissions): wait until every
# held FIN has left, since segments still held when finwave stops are released early.
deadline=$((SECONDS + 10))
until [ "$(kernel_queue_field router 0 3)" = 0 ]; do
  [ $SECONDS -lt $deadline ] || fail "finwave still holds packets 10 s after the last client"
  sleep 0.05
done
# What the precision costs: finwave's CPU time over the run (every thread; the scheduler's own
# accounting), the clock waits before releases included.
finwave_cpu_ns=$(cat /proc/"$FINWAVE_PID"/task/*/schedstat 2>/dev/null | awk '{ sum += $1 } END { printf "%.0f\n", sum }')
finwave_stop
released=$(finwave_stats .actions.released)
queued=$(finwave_stats .queue.queued)
capture_stop
[ -n "${BENCH_KEEP:-}" ] && cp -r "$work" "$BENCH_KEEP"

# The client's FINs on each interface, keyed by everything tcpdump prints after the timestamp
# (addresses, ports, seq, ack, TCP timestamps): identical for one packet on both sides of the
# router, different for a retransmission. On the ingress side only each connection's first FIN
# counts: that is the one the rule delays (retx = false).
client_fins() {
  tcpdump -r "$1" -nn -tt -S --time-stamp-precision=nano \
    "tcp[tcpflags] & tcp-fin != 0 and src host $LAB_CLIENT_V4" 2>/dev/null |
    awk -v first_only="$2" '{
      t = $1; $1 = ""; connection = $3 " " $5
      if (first_only && connection_seen[connection]++) next
      if (!seen[$0]++) print t "\t" $0
    }'
}
client_fins "$work/ingress.pcap" 1 >"$work/ingress.tsv"
client_fins "$work/egress.pcap" 0 >"$work/egress.tsv"

# The baseline: the same trip through finwave without a delay, from the clients' SYNs (queued,
# no rule for them). The delay's error minus this is what holding the segment adds.
client_syns() {
  tcpdump -r "$1" -nn -tt -S --time-stamp-precision=nano \
    "tcp[tcpflags] & tcp-syn != 0 and src host $LAB_CLIENT_V4" 2>/dev/null |
    awk '{ t = $1; $1 = ""; if (!seen[$0]++) print t "\t" $0 }'
}
client_syns "$work/ingress.pcap" >"$work/ingress-syn.tsv"
client_syns "$work/egress.pcap" >"$work/egress-syn.tsv"
awk -F'\t' '
  function ns(t,   parts) { split(t, parts, "."); return (parts[1] % 1000000) * 1e9 + parts[2] }
  NR == FNR { ingress[$2] = ns($1); next }
  ($2 in ingress) { printf "%.0f\n", ns($1) - ingress[$2] }' \
  "$work/ingress-syn.tsv" "$work/egress-syn.tsv" | sort -n >"$work/baseline.txt"

# Sample lines: requested_ms observed_ns error_ns.
port_map=$(for ((i = 0; i < n; i++)); do printf '%s=%s ' "${ports[i]}" "${delay_list[i]}"; done)
awk -F'\t' -v map="$port_map" '
  function ns(t,   parts) { split(t, parts, "."); return (parts[1] % 1000000) * 1e9 + parts[2] }
  BEGIN { k = split(map, pairs, " "); for (j = 1; j <= k; j++) { split(pairs[j], kv, "="); delay[kv[1]] = kv[2] } }
  NR == FNR { ingress[$2] = ns($1); next }
  ($2 in ingress) {
    if (!match($2, / > [0-9.]+\.[0-9]+:/)) next
    dst = substr($2, RSTART + 3, RLENGTH - 4); sub(/.*\./, "", dst)
    if (!(dst in delay)) next
    observed = ns($1) - ingress[$2]
    printf "%s %.0f %.0f\n", delay[dst], observed, observed - delay[dst] * 1e6
  }' "$work/ingress.tsv" "$work/egress.tsv" >"$work/samples.txt"

# Per requested delay: nearest-rank percentiles of the signed error and of its magnitude.
results=()
complete=1
for ((i = 0; i < n; i++)); do
  d=${delay_list[i]}
  awk -v d="$d" '$1 == d { print $3 }' "$work/samples.txt" | sort -n >"$work/errors-$d.txt"
  awk -v d="$d" '$1 == d { e = $3 < 0 ? -$3 : $3; print e }' "$work/samples.txt" | sort -n \
    >"$work/abs-errors-$d.txt"
  count=$(wc -l <"$work/errors-$d.txt")
  [ "$count" -eq "${sample_list[i]}" ] || {
    echo "delay_precision: $d ms: measured $count of ${sample_list[i]} samples" >&2
    complete=0
  }
  results+=("$(jq -n -c --argjson d "$d" --argjson parallel "${parallel_list[i]}" \
    --argjson target "$target_ms" --rawfile e "$work/errors-$d.txt" --rawfile a "$work/abs-errors-$d.txt" '
    def rank($xs; $p): if ($xs | length) == 0 then null
      else $xs[([(($p / 100) * ($xs | length) | ceil) - 1, 0] | max)] end;
    def ms: if . == null then null else (. / 1e6 * 1000 | round / 1000) end;
    ($e | split("\n") | map(select(length > 0) | tonumber)) as $err
    | ($a | split("\n") | map(select(length > 0) | tonumber)) as $abs
    | {requested_ms: $d, samples: ($err | length), parallel: $parallel,
       p50_error_ms: (rank($err; 50) | ms), p99_error_ms: (rank($err; 99) | ms),
       min_error_ms: ($err | first | ms), max_error_ms: ($err | last | ms),
       p99_abs_error_ms: (rank($abs; 99) | ms), max_abs_error_ms: ($abs | last | ms),
       target_met: ((rank($abs; 99) // 1e18) <= $target * 1e6)}')")
done

elapsed=$(($(date +%s) - started))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
baseline=$(jq -n -c --rawfile b "$work/baseline.txt" '
  def rank($xs; $p): if ($xs | length) == 0 then null
    else $xs[([(($p / 100) * ($xs | length) | ceil) - 1, 0] | max)] end;
  def ms: if . == null then null else (. / 1e6 * 1000 | round / 1000) end;
  ($b | split("\n") | map(select(length > 0) | tonumber)) as $t
  | {samples: ($t | length), p50_ms: (rank($t; 50) | ms), p99_ms: (rank($t; 99) | ms),
     max_ms: ($t | last | ms)}')
mkdir -p "$(dirname "$json_out")"
printf '%s\n' "${results[@]}" | jq -s --argjson target "$target_ms" --argjson seconds "$elapsed" \
  --argjson baseline "$baseline" --arg load_start "$load_start" --arg load_end "$load_end" \
  --argjson cpu_ns "${finwave_cpu_ns:-0}" --argjson queued "${queued:-0}" --argjson released "${released:-0}" \
  --argjson rt "$realtime_priority" --arg kernel "$(uname -r)" --arg cpus "$(nproc)" --arg commit "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)" '
  {benchmark: "delay_precision",
   what: "fin1 held by a delay rule; observed = egress (to-server) - ingress (to-client) tcpdump timestamps; error = observed - requested",
   realtime_priority: $rt, target_p99_abs_error_ms: $target, kernel: $kernel, cpus: ($cpus | tonumber), commit: $commit,
   load_average: {start: $load_start, end: $load_end}, seconds: $seconds,
   finwave_cpu: {ms: ($cpu_ns / 1e6 | round), queued: $queued, released: $released,
                 us_per_queued: (if $queued > 0 then ($cpu_ns / $queued / 1e3 | round) else null end),
                 us_per_release: (if $released > 0 then ($cpu_ns / $released / 1e3 | round) else null end)},
   undelayed_queue_trip: $baseline, results: .}' >"$json_out"

printf '\n%-13s %8s %8s %14s %14s %14s %14s  %s\n' "requested_ms" samples parallel \
  p50_error_ms p99_error_ms max_error_ms p99_abs_ms "p99 |error| <= $target_ms ms"
jq -r '.results[] | [.requested_ms, .samples, .parallel, .p50_error_ms, .p99_error_ms,
  .max_error_ms, .p99_abs_error_ms, (if .target_met then "yes" else "NO" end)] | @tsv' "$json_out" |
  while IFS=$'\t' read -r d s p p50 p99 mx pa met; do
    printf '%-13s %8s %8s %14s %14s %14s %14s  %s\n' "$d" "$s" "$p" "$p50" "$p99" "$mx" "$pa" "$met"
  done
jq -r '.undelayed_queue_trip | "baseline: an undelayed SYN crosses finwave in p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, max \(.max_ms) ms (\(.samples) samples)"' "$json_out"
jq -r '.finwave_cpu | "finwave CPU: \(.ms) ms for \(.queued) queued segments (\(.us_per_queued) us each), \(.released) of them held and released (\(.us_per_release) us per release, all its work counted)"' "$json_out"
echo "delay_precision: ${elapsed} s; finwave --realtime-priority $realtime_priority; load average $load_start at the start, $load_end at the end ($(nproc) CPUs); JSON in $json_out"
((complete)) || fail "some samples were not measured (see above)"
