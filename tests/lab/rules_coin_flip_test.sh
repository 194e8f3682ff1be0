#!/usr/bin/env bash
# rules/examples/coin-flip.toml (drop each final ACK with probability 0.5) with --seed 42, twice,
# over 1000 IPv4 connections made one after another: both runs must make the same decision for
# the same connection, in the same order, and drop about half of the final ACKs.
#
# The rng is one stream for the whole daemon, so "the same decisions" needs the same order of
# draws. Each connection must therefore draw exactly once, before the next one draws:
#  - the client half-closes and reads until the server's FIN ("shutdown,read-eof"); Linux sends
#    the final ACK before it wakes the reader, so connection N's final ACK reaches finwave before
#    connection N+1 exists;
#  - the server shuts down its side, holds the socket 10 ms and aborts it. An acknowledged
#    socket is closed by then and the abort does nothing; one whose final ACK was dropped sits in
#    LAST_ACK, and the abort closes it silently before its first FIN retransmission, which would
#    otherwise draw a second final ACK at a time that depends on scheduling. The server's route
#    to the client gets rto_min 1 s, so that even a badly delayed server thread aborts in time.
# Outcomes are compared by id (finwave numbers flows in SYN order). finwave's figures are checked
# against tcpdump: final ACKs sent (to-client) = seen, forwarded (to-server) = seen - dropped.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

count=1000
lab_begin rules_coin_flip
WORK=$LAB_WORK
lab_exec server ip route add "$LAB_CLIENT_V4/32" via "$LAB_ROUTER_SERVER_V4" rto_min 1s ||
  fail "cannot set rto_min on the server's route to the client"

run() {
  local run=$1
  capture_start router to-client "$WORK/to-client-$run.pcap" "tcp port $RULES_PORT"
  capture_start router to-server "$WORK/to-server-$run.pcap" "tcp port $RULES_PORT"
  finwave_start router "$WORK/finwave-$run.jsonl" --rules "$FINWAVE_REPO/rules/examples/coin-flip.toml" \
    --port "$RULES_PORT" --seed 42 --settle 0.2 --linger 0.5
  lab_bg server "$WORK/server-$run.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port "$RULES_PORT" \
    --connections "$count" --quiet --script read-eof,shutdown,hold:10,abort \
    --ready-file "$WORK/server-$run.ready" >/dev/null
  local server=$LAB_LAST_PID
  wait_for_file "$WORK/server-$run.ready" 10 || fail "run $run: the server did not start"
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port "$RULES_PORT" \
    --connections "$count" --parallel 1 --quiet --script send:100,shutdown,read-eof,close \
    >"$WORK/client-$run.jsonl" || fail "run $run: clients failed: $(tail -1 "$WORK/client-$run.jsonl")"
  lab_wait "$server" 10 || fail "run $run: the server failed: $(tail -1 "$WORK/server-$run.jsonl")"
  deadline=$((SECONDS + 15))
  until [ "$(grep -c '"event":"outcome"' "$WORK/finwave-$run.jsonl" || true)" -ge "$count" ]; do
    [ $SECONDS -lt $deadline ] || fail "run $run: fewer than $count outcomes after 15 s"
    sleep 0.1
  done
  finwave_stop
  capture_stop
  check_verdict_accounting
  # id, final ACKs seen, dropped, result: one line per connection in SYN order.
  jq -r 'select(.event == "outcome") | [.id, .final_acks.seen, .final_acks.dropped, .result] | @tsv' \
    "$FINWAVE_OUT" | sort -n >"$WORK/decisions-$run.tsv"
}

started=$(date +%s)
run 1
run 2
elapsed=$(($(date +%s) - started))

for run in 1 2; do
  [ "$(wc -l <"$WORK/decisions-$run.tsv")" -eq "$count" ] || fail "run $run: not $count outcomes"
  expect "run $run: connections with other than one final ACK" \
    "$(awk '$2 != 1' "$WORK/decisions-$run.tsv" | wc -l)" 0
done
cut -f3 "$WORK/decisions-1.tsv" >"$WORK/dropped-1"
cut -f3 "$WORK/decisions-2.tsv" >"$WORK/dropped-2"
if ! cmp -s "$WORK/dropped-1" "$WORK/dropped-2"; then
  first=$(cmp "$WORK/dropped-1" "$WORK/dropped-2" | sed -n 's/.*line \([0-9]*\).*/\1/p')
  fail "the two runs decided differently, first at connection $first"
fi
dropped=$(awk '{ d += $3 } END { print d }' "$WORK/decisions-1.tsv")
echo "  same $count decisions in both runs; dropped $dropped of $count final ACKs"
((dropped >= 440 && dropped <= 560)) || fail "drop rate $dropped/$count is not about 0.5"
# Dropped ones time out (the server aborted silently), the others are clean.
expect "timeouts = drops" "$(awk '$4 == "timeout"' "$WORK/decisions-1.tsv" | wc -l)" "$dropped"
expect "stats actions.dropped (run 2)" "$(finwave_stats .actions.dropped)" "$dropped"

# The witness, run by run: every final ACK on to-client, only the passed ones on to-server, and
# no FIN retransmission (no second draw) anywhere.
for run in 1 2; do
  dropped_run=$(awk '{ d += $3 } END { print d }' "$WORK/decisions-$run.tsv")
  for iface in to-client to-server; do
    wire_json "$WORK/$iface-$run.pcap" >"$WORK/$iface-$run.jsonl"
  done
  per_connection() {
    jq -s "$RULES_JQ group_by(.cport) | map($2) | add" "$WORK/$1-$run.jsonl"
  }
  expect "run $run: final ACKs sent (to-client)" \
    "$(per_connection to-client 'final_acks("client") | length')" "$count"
  expect "run $run: final ACKs forwarded (to-server) = $count - $dropped_run dropped" \
    "$(per_connection to-server 'final_acks("client") | length')" $((count - dropped_run))
  expect "run $run: server FIN retransmissions (to-server)" \
    "$(per_connection to-server 'fins("server") | length - 1')" 0
done

pass "coin-flip --seed 42: identical decisions for $count connections in two runs, $dropped dropped ($((dropped / 10)).$((dropped % 10))%), tcpdump agrees; ${elapsed} s"
