#!/usr/bin/env bash
# tests/bench/soak.sh — the soak: a million connections through finwave (router mode) over ten
# minutes, with rules that fire on a fraction of them (tests/bench/soak_rules.toml), in a lab of
# its own. It checks that finwave's accounting holds over the whole run and that it does not
# grow:
#
#   verdicts   every queued packet got exactly one verdict: queued = accepted + dropped + held,
#              live at every sample and at exit (held 0 there); the kernel's queue_dropped and
#              user_dropped 0 throughout; the kernel's id_sequence (packets it queued) equal to
#              finwave's queued at exit; no packet the queue rule matched passed unqueued
#              (fail-open; where finwave's stats count it: capture.passed_unqueued)
#   outcomes   every connection whose teardown began got exactly one outcome: the outcome lines
#              finwave printed = its outcome counter = the connections the clients established
#              (every one of them closes, so every one begins its teardown)
#   memory     RSS at start (the first sample under load), middle and end within 10 % of start
#   fds        finwave's open descriptors at the end no more than at the start
#   clients    no connection failed, but for ECONNRESET read by a client whose server FIN a
#              rule replaced by an RST (at most as many as finwave's resets)
#
#   tests/bench/soak.sh [--connections N] [--minutes M] [--quick] [--out FILE] [--build DIR]
#                       [--interval S]
#
#   --connections N   connections in all (default 1000000)
#   --minutes M       over M minutes (default 10; may be fractional): the rate is N / (M * 60)
#   --quick           smoke run for ctest: 20000 connections in 30 s, a sample every 5 s
#   --out FILE        JSON results (default results/bench-soak.json, relative to the current
#                     directory)
#   --build DIR       where finwave, finwavectl and finwave-churn-load are (default
#                     $FINWAVE_BUILD, else build/)
#   --interval S      seconds between samples (default 30; quick 5)
#
# The load: two finwave-churn-load clients of two worker processes each, at half the rate each:
# IPv4 with --shape four-way (the client half-closes and waits for the server's FIN) and IPv6
# with --shape client-first (the client closes at once); a finwave-churn-load --listen sink
# reads every connection to EOF and closes it. In the client namespace only:
# net.ipv4.ip_local_port_range "1024 65535" and net.ipv4.tcp_tw_reuse 1 (TIME_WAIT 4-tuples are
# reused after 1 s: the run makes more connections than there are ports).
#
# Every sample (RSS, descriptors, `finwavectl --json stats`, /proc/net/netfilter/nfnetlink_queue
# in the router namespace) is a line of the JSON's "samples". FINWAVE_LAB_DEADLINE (lib.sh's
# watchdog) is set above the soak's length unless given. Exits 1 if a check fails.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

connections=1000000
minutes=10
quick=0
out=results/bench-soak.json
build="${FINWAVE_BUILD:-$repo/build}"
interval=""
given_connections=0
given_minutes=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while (($#)); do
  case "$1" in
    --connections) connections=${2:?--connections N}; given_connections=1; shift ;;
    --minutes) minutes=${2:?--minutes M}; given_minutes=1; shift ;;
    --quick) quick=1 ;;
    --out) out=${2:?--out FILE}; shift ;;
    --build) build=${2:?--build DIR}; shift ;;
    --interval) interval=${2:?--interval S}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "soak.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
if ((quick)); then
  ((given_connections)) || connections=20000
  ((given_minutes)) || minutes=0.5
  interval=${interval:-5}
fi
interval=${interval:-30}
[[ "$connections" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --connections must be a positive number" >&2; exit 2; }
[[ "$minutes" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "soak.sh: --minutes must be a positive number" >&2; exit 2; }
[[ "$interval" =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: --interval must be a whole number of seconds" >&2; exit 2; }
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 + 0.5 }')
((seconds >= 1)) || { echo "soak.sh: --minutes is less than a second" >&2; exit 2; }
rate=$(awk -v n="$connections" -v s="$seconds" 'BEGIN { printf "%.3f", n / s }')
build=$(cd "$build" && pwd)
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac

# The watchdog must not end the soak: its length, a quarter more for a slow machine, and three
# minutes for the lab, the drain and the checks.
if [[ -z "${FINWAVE_LAB_DEADLINE:-}" ]]; then
  export FINWAVE_LAB_DEADLINE=$((seconds + seconds / 4 + 180))
elif ((FINWAVE_LAB_DEADLINE < seconds + 20)); then
  echo "soak.sh: FINWAVE_LAB_DEADLINE=$FINWAVE_LAB_DEADLINE s is shorter than the soak ($seconds s)" >&2
  exit 2
fi

export FINWAVE_BUILD="$build"
# shellcheck source=tests/lab/lib.sh
. "$repo/tests/lab/lib.sh"
CTL="$build/finwavectl"
LOAD="$build/finwave-churn-load"
RULES="$here/soak_rules.toml"
PORT=5000
for binary in "$FINWAVE_BIN" "$CTL" "$LOAD"; do
  [[ -x "$binary" ]] || { echo "soak.sh: $binary not found (cmake --build $build)" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "soak.sh: jq is not installed (deploy/install-deps.sh)" >&2; exit 1; }

seconds_since() { awk -v ns=$(($(now_ns) - $1)) 'BEGIN { printf "%.1f", ns / 1e9 }'; }

load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(now_ns)
lab_begin soak
work=$LAB_WORK
lab_exec client sysctl -q -w net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
lab_exec server sysctl -q -w net.core.somaxconn=65535

# --- The sink, finwave, the load ---------------------------------------------------------------

lab_bg server "$work/sink.json" "$LOAD" --listen :: --port "$PORT" --workers 2 \
  --ready-file "$work/sink.ready" >/dev/null
SINK_PID=$LAB_LAST_PID
wait_for_file "$work/sink.ready" 10 || fail "the sink server did not start: $(cat "$work/sink.json.err")"

# Outcomes go to a file (about a kilobyte each) that is counted at the end.
finwave_start router "$work/finwave.jsonl" --mode router --port "$PORT" --rules "$RULES" \
  --seed 1 --quiet
SOCKET="$work/finwave.jsonl.control.sock"

# sample LABEL — one line of samples.jsonl: time, RSS, descriptors, finwave's live stats, the
# kernel's queue counters, the load average; prints it too.
sample() {
  local label=$1 rss fds stats kernel
  rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$FINWAVE_PID/status")
  fds=$(find "/proc/$FINWAVE_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
  stats=$(lab_exec router "$CTL" --control "$SOCKET" --json stats 2>/dev/null | head -n 1) || true
  jq -e . >/dev/null 2>&1 <<<"$stats" || stats=null
  # shellcheck disable=SC2016 # awk's own fields
  kernel=$(lab_exec router awk '$1 == 0 { printf "{\"queue_total\":%s,\"queue_dropped\":%s,\"user_dropped\":%s,\"id_sequence\":%s}", $3, $6, $7, $8 }' \
    /proc/net/netfilter/nfnetlink_queue)
  [[ -n "$kernel" ]] || kernel=null
  jq -cn --arg phase "$label" --argjson t "$(seconds_since "$load_started")" --argjson rss "$rss" \
    --argjson fds "$fds" --argjson stats "$stats" --argjson kernel "$kernel" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" \
    '{phase: $phase, t_s: $t, rss_kib: $rss, fds: $fds, loadavg: $load, kernel: $kernel,
      queue: ($stats.queue // null), flows: ($stats.flows // null),
      actions: ($stats.actions // null)}' | tee -a "$work/samples.jsonl" |
    jq -r '"   \(.phase) \(.t_s) s: RSS \(.rss_kib) KiB, \(.fds) fds, queued \(.queue.queued),"
      + " held \(.queue.held), tracked \(.flows.tracked), outcomes \(.flows.outcomes),"
      + " kernel dropped \(.kernel.queue_dropped)/\(.kernel.user_dropped), load \(.loadavg)"' >&2
}

echo "soak: $connections connections in $seconds s ($rate conn/s), rules $(basename "$RULES"), sample every $interval s" >&2
: >"$work/samples.jsonl"
load_started=$(now_ns)
sleep 1
sample idle
cpu0=$(cpu_ns "$FINWAVE_PID")

half_v4=$(((connections + 1) / 2))
half_v6=$((connections / 2))
half_rate=$(awk -v r="$rate" 'BEGIN { printf "%.3f", r / 2 }')
load_started=$(now_ns)
lab_bg client "$work/load-v4.json" "$LOAD" --connect "$LAB_SERVER_V4" --port "$PORT" --workers 2 \
  --count "$half_v4" --rate "$half_rate" --shape four-way --progress "$interval" >/dev/null
LOAD_V4=$LAB_LAST_PID
LOAD_V6=""
if ((half_v6 > 0)); then
  lab_bg client "$work/load-v6.json" "$LOAD" --connect "$LAB_SERVER_V6" --port "$PORT" --workers 2 \
    --count "$half_v6" --rate "$half_rate" --shape client-first --progress "$interval" >/dev/null
  LOAD_V6=$LAB_LAST_PID
fi

running() { [[ -n "$1" && ! -s "$LAB_DIR/rc.$1" ]]; }

# A sample every INTERVAL seconds of the load until both clients are done.
next=$interval
while running "$LOAD_V4" || running "$LOAD_V6"; do
  if (($(now_ns) - load_started >= next * 1000000000)); then
    kill -0 "$FINWAVE_PID" 2>/dev/null || fail "finwave exited during the soak: $(tail -n 5 "$FINWAVE_OUT.err")"
    sample load
    next=$((next + interval))
  fi
  sleep 0.5
done
load_seconds=$(seconds_since "$load_started")
lab_wait "$LOAD_V4" 10 || true
[[ -z "$LOAD_V6" ]] || lab_wait "$LOAD_V6" 10 || true
sample end
cpu1=$(cpu_ns "$FINWAVE_PID")

# Fully acknowledged teardowns are reported after --settle (1 s); what is left is reported at
# SIGTERM, as finwave does with every flow whose teardown began.
sleep 2
finwave_stop
lab_kill "$SINK_PID" TERM
lab_wait "$SINK_PID" 10 || true

# --- Figures -----------------------------------------------------------------------------------

exit_stats=$(grep -F '"event":"stats"' "$FINWAVE_OUT" | tail -n 1)
[[ -n "$exit_stats" ]] || fail "finwave printed no exit stats line"
outcome_lines=$(grep -c -F '"event":"outcome"' "$FINWAVE_OUT" || true)
# Top-level fields of the outcome lines (the nested objects have no "result" or "kind" keys).
tally() {
  grep -F '"event":"outcome"' "$FINWAVE_OUT" | grep -o "\"$1\":\"[a-z_]*\"" |
    sort | uniq -c | jq -Rsc 'split("\n") | map(select(length > 0) | capture(" *(?<n>[0-9]+) \"[a-z_]+\":\"(?<k>[a-z_]+)\"")) | map({(.k): (.n | tonumber)}) | add // {}'
}
results_json=$(tally result)
kinds_json=$(tally kind)
load_v4=$(jq -c 'select(.event == "summary")' "$work/load-v4.json" 2>/dev/null || true)
load_v6=null
[[ -z "$LOAD_V6" ]] || load_v6=$(jq -c 'select(.event == "summary")' "$work/load-v6.json" 2>/dev/null || true)
[[ -n "$load_v4" && -n "$load_v6" ]] || fail "a load generator printed no summary: $(cat "$work"/load-v*.json.err)"
sink=$(jq -c 'select(.event == "server_summary")' "$work/sink.json" 2>/dev/null || echo null)
finwave_cpu_s=$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')

figures=$(jq -cn --argjson stats "$exit_stats" --argjson v4 "$load_v4" --argjson v6 "$load_v6" \
  --argjson lines "$outcome_lines" --slurpfile samples "$work/samples.jsonl" \
  '($samples | map(select(.phase == "load"))) as $series |
   ($samples | map(select(.phase == "end")) | last) as $final |
   ($series | first // $final) as $start |
   ($series + [$final]) as $all |
   (($all | last).t_s / 2) as $half |
   ($series | sort_by(((.t_s - $half) | fabs)) | first // $final) as $middle |
   ([$v4, $v6] | map(select(. != null))) as $loads |
   {established: ($loads | map(.established) | add), ok: ($loads | map(.ok) | add),
    failed: ($loads | map(.failed) | add), load_elapsed_s: ($loads | map(.elapsed_s) | max),
    failures: ($loads | map(.failures | to_entries) | add | group_by(.key)
               | map({(.[0].key): (map(.value) | add)}) | add // {}),
    outcome_lines: $lines, stats: $stats,
    start: $start, middle: $middle, "end": $final,
    idle: ($samples | map(select(.phase == "idle")) | first),
    fds_max: ($all | map(.fds) | max),
    live_samples: ($all | map(select(.queue != null)) | length),
    live_mismatch: ($all | map(select(.queue != null and
                   .queue.queued != .queue.accepted + .queue.dropped + .queue.held)) | length),
    kernel_dropped_max: ($samples | map(.kernel.queue_dropped // 0) | max),
    kernel_user_dropped_max: ($samples | map(.kernel.user_dropped // 0) | max)}')
f() { jq -r "$1" <<<"$figures"; }

# check NAME OK DETAIL — one row of the table; a false OK fails the soak.
checks_json="[]"
failed_checks=0
check() {
  local ok=$2
  [[ "$ok" == true ]] || failed_checks=$((failed_checks + 1))
  checks_json=$(jq -c --arg n "$1" --argjson ok "$ok" --arg d "$3" '. + [{check: $n, ok: $ok, detail: $d}]' \
    <<<"$checks_json")
}
# is EXPR — "true" or "false": the arithmetic expression EXPR (of numbers; "null" counts as 0).
is() { if ((${1//null/0})); then echo true; else echo false; fi; }
within() { awk -v a="$1" -v b="$2" -v p="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; print (b > 0 && d / b <= p) ? "true" : "false" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f %%", (b > 0 ? (a - b) * 100 / b : 0) }'; }

queued=$(f .stats.queue.queued); accepted=$(f .stats.queue.accepted)
dropped=$(f .stats.queue.dropped); held=$(f .stats.queue.held)
verdict_errors=$(f .stats.queue.verdict_errors)
k_dropped=$(f '.stats.kernel.queue_dropped // -1'); k_user=$(f '.stats.kernel.user_dropped // -1')
k_seq=$(f '.stats.kernel.id_sequence // -1')
k_dropped_max=$(f .kernel_dropped_max); k_user_max=$(f .kernel_user_dropped_max)
live_mismatch=$(f .live_mismatch)
outcomes=$(f .stats.flows.outcomes); established=$(f .established); ok=$(f .ok)
outcomes_lost=$(f '(.stats.flows.outcomes_lost // 0) + (.stats.handoff.outcomes_lost // 0)')
tracked_exit=$(f .stats.flows.tracked)
rss_start=$(f .start.rss_kib); rss_middle=$(f .middle.rss_kib); rss_end=$(f '.["end"].rss_kib')
rss_idle=$(f .idle.rss_kib)
fds_start=$(f .start.fds); fds_middle=$(f .middle.fds); fds_end=$(f '.["end"].fds'); fds_max=$(f .fds_max)
resets=$(f .stats.actions.resets)
read_resets=$(f '.failures["read ECONNRESET"] // 0')
other_failures=$(f '[.failures | to_entries[] | select(.key != "read ECONNRESET") | .value] | add // 0')

check "queued = accepted + dropped + held (exit)" "$(is "$queued == $accepted + $dropped + $held")" \
  "$queued = $accepted + $dropped + $held"
check "nothing held at exit, no verdict errors" "$(is "$held == 0 && $verdict_errors == 0")" \
  "held $held, verdict errors $verdict_errors"
check "queued = accepted + dropped + held (live)" "$(is "$live_mismatch == 0")" \
  "$live_mismatch of $(f .live_samples) samples disagree"
check "kernel queue_dropped 0, user_dropped 0" \
  "$(is "$k_dropped == 0 && $k_user == 0 && $k_dropped_max == 0 && $k_user_max == 0")" \
  "exit $k_dropped / $k_user, largest sampled $k_dropped_max / $k_user_max"
check "kernel id_sequence = finwave queued" "$(is "$k_seq == $queued")" "$k_seq vs $queued"
# Packets the queue rule matched that the kernel let pass unqueued (fail-open): the capture
# watch of newer finwaves counts them; older ones do not say.
bypassed=$(f '.stats.capture.passed_unqueued // "null"')
if [[ "$bypassed" == null ]]; then
  check "no packet bypassed the queue (fail-open)" true "not reported by this finwave"
else
  check "no packet bypassed the queue (fail-open)" "$(is "$bypassed == 0")" \
    "$bypassed of $(f .stats.capture.queue_rule_packets) the queue rule matched"
fi
check "one outcome per teardown begun" \
  "$(is "$outcomes == $established && $outcome_lines == $outcomes && $outcomes_lost == 0")" \
  "clients established $established, outcomes $outcomes, lines $outcome_lines, lost $outcomes_lost"
check "no flow tracked after exit" "$(is "$tracked_exit == 0")" "$tracked_exit"
check "RSS middle within 10 % of start" "$(within "$rss_middle" "$rss_start" 0.10)" \
  "$rss_start -> $rss_middle KiB ($(pct "$rss_middle" "$rss_start"))"
check "RSS end within 10 % of start" "$(within "$rss_end" "$rss_start" 0.10)" \
  "$rss_start -> $rss_end KiB ($(pct "$rss_end" "$rss_start"))"
check "no descriptor growth" "$(is "$fds_end <= $fds_start")" \
  "start $fds_start, middle $fds_middle, end $fds_end, largest $fds_max"
check "client failures only RSTs a rule sent" \
  "$(is "$other_failures == 0 && $read_resets <= $resets")" \
  "$(f '.failures | tostring'); finwave resets $resets"

elapsed=$(seconds_since "$started")
# The clients' own figure: connections established over the longer of their two runs.
# shellcheck disable=SC2016 # $s is jq's variable
achieved=$(f '(.load_elapsed_s) as $s | if $s > 0 then (.established / $s * 10 | round / 10) else 0 end')
cpu_us=$(awk -v c="$finwave_cpu_s" -v n="$established" 'BEGIN { printf "%.1f", n ? c * 1e6 / n : 0 }')
mkdir -p "$(dirname "$out")"
machine=$(jq -cn --arg cpu "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
  --argjson cores "$(nproc)" --arg kernel "$(uname -r)" \
  --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg load0 "$load_at_start" \
  '{cpu: $cpu, cores: $cores, kernel: $kernel, loadavg_at_start: $load0, loadavg_at_end: $load}')
jq -n --argjson figures "$figures" --argjson checks "$checks_json" --argjson machine "$machine" \
  --slurpfile samples "$work/samples.jsonl" --argjson results "$results_json" \
  --argjson kinds "$kinds_json" --argjson v4 "$load_v4" --argjson v6 "$load_v6" \
  --argjson sink "$sink" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg mode "$( ((quick)) && echo quick || echo full)" --argjson connections "$connections" \
  --argjson minutes "$minutes" --argjson rate "$rate" --argjson achieved "$achieved" \
  --argjson load_seconds "$load_seconds" --argjson seconds "$elapsed" --arg build "$build" \
  --argjson cpu "$finwave_cpu_s" --argjson cpu_us "$cpu_us" --argjson failed "$failed_checks" \
  '{bench: "soak", date: $date, mode: $mode, build: $build, machine: $machine,
    connections: $connections, minutes: $minutes, rate_target: $rate, rate_achieved: $achieved,
    load_seconds: $load_seconds, seconds: $seconds,
    rules: "tests/bench/soak_rules.toml",
    load: {ipv4_four_way: $v4, ipv6_client_first: $v6, sink: $sink},
    rss_kib: {idle: $figures.idle.rss_kib, start: $figures.start.rss_kib,
              middle: $figures.middle.rss_kib, "end": $figures["end"].rss_kib},
    fds: {idle: $figures.idle.fds, start: $figures.start.fds, middle: $figures.middle.fds,
          "end": $figures["end"].fds, max: $figures.fds_max},
    finwave_cpu_s: $cpu, finwave_cpu_us_per_connection: $cpu_us,
    outcomes: {count: $figures.outcome_lines, by_result: $results, by_kind: $kinds},
    exit_stats: $figures.stats, checks: $checks, passed: ($failed == 0), samples: $samples}' >"$out"

echo
echo "finwave soak ($( ((quick)) && echo quick || echo full)): $established connections established in $load_seconds s ($achieved conn/s, target $rate), $(nproc) cores, load average $load_at_start at start, $(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "RSS KiB idle $rss_idle, start $rss_start, middle $rss_middle, end $rss_end; fds $fds_start / $fds_middle / $fds_end; finwave CPU $finwave_cpu_s s ($cpu_us us per connection)"
echo "outcomes by result $results_json, by kind $kinds_json; rule actions $(f '.stats.actions | {dropped, delayed, duplicated, resets} | tostring')"
jq -r '.[] | [(if .ok then "ok" else "FAIL" end), .check, .detail] | @tsv' <<<"$checks_json" |
  awk -F'\t' '{ printf "  %-4s  %-44s %s\n", $1, $2, $3 }'
echo "results: $out ($elapsed s)"
if ((failed_checks > 0)); then
  fail "$failed_checks check(s) failed"
fi
pass "$established connections, every check held"
