#!/usr/bin/env bash
# finwave --queues 2 in router mode. nftables' symhash (addresses and ports, the same both ways)
# picks a connection's queue and log group together, so:
#  1. many client addresses (32 IPv4, 8 IPv6), 8 short connections each, no rules (every captured
#     segment logged, none queued): every connection is reported exactly once, whole (sides
#     known, never incomplete: its two directions met on one worker), one address's connections
#     spread over both queues, both workers busy, no copy lost; the distribution is printed;
#  2. a rule added over the control socket reaches both queues' engines: every connection of 16
#     addresses loses its first final ACK and the outcomes say so (its ack class queued on both
#     queues, the rest logged); rule hits are summed over the queues in `rules`, and the rule_hit
#     events of both queues reach a subscriber with the outcomes' flow ids; the kernel's queue
#     counters agree with finwave's, and every packet got one verdict;
#  3. one client address only: its connections use both queues.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin queues
work=$LAB_WORK
export FINWAVE_CONTROL=$work/control.sock
port=5000
per_address=8

# Extra client addresses, inside the client namespace only (the router reaches them on-link).
v4_addresses=()
for i in $(seq 10 41); do v4_addresses+=("198.18.1.$i"); done
v6_addresses=()
for i in $(seq 10 17); do v6_addresses+=("2001:db8:1::$i"); done
{
  for a in "${v4_addresses[@]}"; do echo "addr add $a/24 dev $LAB_CLIENT_IF"; done
  for a in "${v6_addresses[@]}"; do echo "addr add $a/64 dev $LAB_CLIENT_IF nodad"; done
} | lab_exec client ip -batch - || fail "cannot add the client addresses"

# run_clients NAME CONNECTIONS SCRIPT ADDRESS... — one finwave-peer client per address (the
# server's family follows the address's), at most 8 at a time; fails unless all succeeded.
run_clients() {
  local name=$1 connections=$2 script=$3 address server pid i=0
  shift 3
  local pids=()
  for address in "$@"; do
    server=$LAB_SERVER_V4
    [[ "$address" == *:* ]] && server=$LAB_SERVER_V6
    pid=$(lab_bg client "$work/$name-$i.jsonl" "$FINWAVE_BIN_PEER" client --connect "$server" \
      --bind "$address" --port "$port" --connections "$connections" --parallel 2 \
      --script "$script" --quiet)
    pids+=("$pid:$i:$address")
    i=$((i + 1))
    if ((${#pids[@]} % 8 == 0)); then wait_clients "$name" "$connections" "${pids[@]}"; pids=(); fi
  done
  wait_clients "$name" "$connections" "${pids[@]}"
}
wait_clients() {
  local name=$1 connections=$2 entry pid i address ok
  shift 2
  for entry in "$@"; do
    IFS=: read -r pid i address <<<"$entry"
    lab_wait "$pid" 60 || fail "client from $address failed: $(cat "$work/$name-$i.jsonl"*)"
    ok=$(jq -r 'select(.event == "summary") | .ok' "$work/$name-$i.jsonl")
    [ "$ok" -eq "$connections" ] || fail "$ok of $connections connections from $address succeeded"
  done
}
start_queue_server() {  # start_queue_server CONNECTIONS SCRIPT
  rm -f "$work/server.ready"
  lab_bg server "$work/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port "$port" \
    --connections "$1" --script "$2" --quiet --ready-file "$work/server.ready" >/dev/null
  SERVER_PID=$LAB_LAST_PID
  wait_for_file "$work/server.ready" 10 || fail "the server did not start"
}
wait_outcomes() {  # wait_outcomes N SECONDS
  local deadline=$((SECONDS + $2))
  until [ "$(outcomes | wc -l)" -ge "$1" ]; do
    [ $SECONDS -lt $deadline ] || fail "$(outcomes | wc -l) outcomes after $2 s, expected $1"
    sleep 0.2
  done
}
# The kernel's own count of packets queued on queue Q so far (finwave must still be bound).
kernel_queued() { kernel_queue_field router "$1" 8; }
# Outcome ids interleave over the queues: (id - 1) % 2 is the worker, so the queue.
queue_of='((.id - 1) % 2)'
address_of='(.flow.client | sub(":[0-9]+$"; ""))'
# Each address with the set of queues its connections were reported from.
queues_by_address() {
  outcomes "{a: $address_of, q: $queue_of}" |
    jq -sc "group_by(.a) | map({address: .[0].a, queues: (map(.q) | unique)})"
}
unclean='select(.result != "clean" and (.rst == null or .rst.stage != "time_wait"))'

# --- 1. Many client addresses, no rules --------------------------------------------------------
addresses=("${v4_addresses[@]}" "${v6_addresses[@]}")
total=$((${#addresses[@]} * per_address))
start_queue_server "$total" read-eof,close
finwave_start router "$work/many.jsonl" --queues 2 --port "$port" --settle 0.2 \
  --control "$work/control.sock"
status=$(ctl --json status)
[ "$(jq .queue_count <<<"$status")" -eq 2 ] || fail "status: $status"
ctl status | grep -q "queues 0-1" || fail "finwavectl status does not name both queues: $(ctl status)"
started=$(date +%s%N)
run_clients many "$per_address" send:200,close "${addresses[@]}"
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
lab_wait "$SERVER_PID" 20 || fail "the server failed: $(cat "$work/server.jsonl.err")"
wait_outcomes "$total" 15
live=$(ctl --json stats)
[ "$(jq '.queues | length' <<<"$live")" -eq 2 ] || fail "live stats have no per-queue array: $live"
kernel0=$(kernel_queued 0)
kernel1=$(kernel_queued 1)
finwave_stop
check_verdict_accounting

reported=$(outcomes | wc -l)
[ "$reported" -eq "$total" ] || fail "$reported outcomes for $total connections"
distinct=$(outcomes .flow.client | sort -u | wc -l)
[ "$distinct" -eq "$total" ] || fail "$distinct distinct client endpoints in $total outcomes"
split=$(outcomes 'select(.kind == "incomplete" or .sides_known == false)' | wc -l)
[ "$split" -eq 0 ] || fail "$split outcomes incomplete or without known sides (a connection split across queues?), e.g. $(outcomes 'select(.kind == "incomplete" or .sides_known == false)' | head -1)"
bad=$(outcomes "$unclean" | wc -l)
[ "$bad" -eq 0 ] || fail "$bad outcomes neither clean nor a TIME_WAIT reset, e.g. $(outcomes "$unclean" | head -1)"
v6=$(outcomes 'select(.flow.client | startswith("["))' | wc -l)
[ "$v6" -eq $((${#v6_addresses[@]} * per_address)) ] || fail "$v6 IPv6 outcomes"

by_address=$(queues_by_address)
[ "$(jq length <<<"$by_address")" -eq "${#addresses[@]}" ] || fail "outcomes from $(jq length <<<"$by_address") addresses"
# The ports are in the hash: an address's 8 connections all on one queue has odds of 1 in 128.
spread=$(jq '[.[] | select(.queues | length == 2)] | length' <<<"$by_address")
((spread >= ${#addresses[@]} / 2)) ||
  fail "only $spread of ${#addresses[@]} addresses had connections on both queues: $by_address"

[ "$(finwave_stats '.queues | length')" -eq 2 ] || fail "exit stats: not two queues"
for q in 0 1; do
  [ "$(finwave_stats ".queues[$q].logged")" -gt 0 ] || fail "queue $q's worker was logged nothing"
  [ "$(finwave_stats ".queues[$q].log.lost")" -eq 0 ] || fail "queue $q's log group lost copies"
done
((kernel0 == 0 && kernel1 == 0)) ||
  fail "the kernel queued $kernel0 + $kernel1 packets with no rule to act on them"
[ "$(finwave_stats .queue.queued)" -eq 0 ] || fail "finwave counted queued segments with no rule"

echo "distribution of $total connections from ${#addresses[@]} addresses over 2 queues ($elapsed_ms ms):"
for q in 0 1; do
  echo "  queue $q: $(outcomes "select($queue_of == $q)" | wc -l) connections," \
    "$(finwave_stats ".queues[$q].logged") segments logged"
done
echo "  $spread of ${#addresses[@]} addresses had connections on both queues"

# --- 2. A rule added over the control socket reaches both queues --------------------------------
rule_addresses=("${v4_addresses[@]:0:16}")
rule_connections=3
rule_total=$((${#rule_addresses[@]} * rule_connections))
start_queue_server "$rule_total" read-eof,close
finwave_start router "$work/rule.jsonl" --queues 2 --port "$port" --settle 0.3 --linger 5 \
  --control "$work/control.sock"
ctl add - <<<'{ name = "lose-first-final-ack", role = "final_ack", first = 1, action = "drop" }' \
  >/dev/null || fail "cannot add the rule"
lab_bg router "$work/hits.jsonl" "$FINWAVE_BUILD/finwavectl" --control "$work/control.sock" \
  --json watch --events rule_hit >/dev/null
watch_pid=$LAB_LAST_PID
wait_until 10 "finwavectl watch to subscribe" \
  exactly 1 finwave_status_field "$work/control.sock" .control.subscribers
run_clients rule "$rule_connections" send:100,close "${rule_addresses[@]}"
lab_wait "$SERVER_PID" 20 || fail "the server failed: $(cat "$work/server.jsonl.err")"
wait_outcomes "$rule_total" 20
kernel0=$(kernel_queued 0)
kernel1=$(kernel_queued 1)
# Rule hits are counted live by each queue's engine (summed when `rules` asks).
hits=$(ctl --json rules | jq '.rules[0].hits')
# Each hit's event was published at its drop, before the outcome; the watcher writes it once it
# has read it.
wait_for 10 "$rule_total rule_hit events" at_least "$rule_total" event_count "$work/hits.jsonl" rule_hit ||
  fail "the watcher wrote $(event_count "$work/hits.jsonl" rule_hit) rule_hit events in 10 s, expected $rule_total"
lab_kill "$watch_pid" INT
finwave_stop
check_verdict_accounting

[ "$(outcomes | wc -l)" -eq "$rule_total" ] || fail "$(outcomes | wc -l) outcomes for $rule_total connections"
rule_acted='.actions == [{"rule": "lose-first-final-ack", "role": "final_ack", "action": "drop", "count": 1}] and .final_acks.dropped == 1'
missed=$(outcomes "select(($rule_acted) | not)" | wc -l)
[ "$missed" -eq 0 ] || fail "$missed outcomes without the rule's one drop, e.g. $(outcomes "select(($rule_acted) | not)" | head -1)"
bad=$(outcomes "$unclean" | wc -l)
[ "$bad" -eq 0 ] || fail "$bad outcomes neither clean nor a TIME_WAIT reset, e.g. $(outcomes "$unclean" | head -1)"
[ "$hits" -eq "$rule_total" ] || fail "rules lists $hits hits, expected $rule_total (summed over the queues)"
[ "$(finwave_stats .actions.dropped)" -eq "$rule_total" ] || fail "stats actions.dropped $(finwave_stats .actions.dropped)"
for q in 0 1; do
  [ "$(finwave_stats ".queues[$q].rule_hits")" -gt 0 ] || fail "the rule never acted on queue $q"
  [ "$(finwave_stats ".queues[$q].kernel.queue_dropped")" -eq 0 ] || fail "queue $q: kernel queue drops"
  [ "$(finwave_stats ".queues[$q].kernel.user_dropped")" -eq 0 ] || fail "queue $q: kernel socket-buffer drops"
done
queued=$(finwave_stats .queue.queued)
[ "$queued" -eq $((kernel0 + kernel1)) ] || fail "finwave counted $queued queued, the kernel $kernel0 + $kernel1"
[ "$(finwave_stats .queues[0].queued)" -eq "$kernel0" ] || fail "queue 0: finwave and kernel disagree"
[ "$(finwave_stats .queues[1].queued)" -eq "$kernel1" ] || fail "queue 1: finwave and kernel disagree"
# Only the ack class is queued: each connection's final ACKs (two, the first dropped) and ACKs.
not_ack=$(outcomes '[.timeline[] | select(.flags | test("[SFR]")) | select(.verdict != "observed")] | length' | jq -s add)
[ "$not_ack" -eq 0 ] || fail "$not_ack SYN, FIN or RST segments were queued with a rule on final_ack"
event_ids=$(jq -c 'select(.event == "rule_hit") | .flow_id' "$work/hits.jsonl" | sort -n | jq -sc .)
outcome_ids=$(outcomes .id | sort -n | jq -sc .)
[ "$event_ids" = "$outcome_ids" ] || fail "rule_hit flow ids $event_ids, outcome ids $outcome_ids"
echo "rule on both queues: $(finwave_stats '.queues[0].rule_hits') + $(finwave_stats '.queues[1].rule_hits') hits," \
  "$(jq -c 'select(.event == "rule_hit")' "$work/hits.jsonl" | wc -l) rule_hit events, handoff $(finwave_stats '.handoff | tojson')"

# --- 3. One client address: both queues ---------------------------------------------------------
single=40
start_queue_server "$single" read-eof,close
finwave_start router "$work/single.jsonl" --queues 2 --port "$port" --settle 0.2 \
  --control "$work/control.sock"
run_clients single "$single" send:200,close "$LAB_CLIENT_V4"
lab_wait "$SERVER_PID" 20 || fail "the server failed"
wait_outcomes "$single" 15
finwave_stop
check_verdict_accounting
[ "$(outcomes | wc -l)" -eq "$single" ] || fail "$(outcomes | wc -l) outcomes for $single connections"
# 40 connections all on one queue: odds of 1 in 2^39.
used=$(outcomes "$queue_of" | sort -u | jq -sc .)
[ "$used" = "[0,1]" ] || fail "one address's $single connections used queues $used only"
whole=$(outcomes 'select(.kind == "incomplete" or .sides_known == false)' | wc -l)
[ "$whole" -eq 0 ] || fail "$whole outcomes incomplete or without known sides"
echo "one address ($LAB_CLIENT_V4 -> $LAB_SERVER_V4): $single connections," \
  "$(outcomes "select($queue_of == 0)" | wc -l) on queue 0, $(outcomes "select($queue_of == 1)" | wc -l) on queue 1"

pass "--queues 2: $total connections from ${#addresses[@]} addresses reported once each and whole, spread by address and port; a control-added rule acted on both queues; one address's connections use both"
