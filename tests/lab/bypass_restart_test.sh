#!/usr/bin/env bash
# kill -9 of finwave while connections run: new connections still complete (the queue rule's
# bypass lets them through the orphaned table), and a restarted finwave replaces the stale
# table, installs exactly one set of rules, and reports connections again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin bypass
work=$LAB_WORK

lab_bg server "$work/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --connections 0 --script read-eof,close --quiet --ready-file "$work/server.ready" >/dev/null
wait_for_file "$work/server.ready" 10 || fail "the server did not start within 10 s"
connections() {  # N LOG: N connections over IPv4 and N over IPv6 must all succeed
  local address
  for address in 198.18.2.2 2001:db8:2::2; do
    lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port 5000 --connections "$1" \
      --parallel 4 --script send:100,close --quiet --timeout 3000 >"$2-$address" ||
      fail "connections to $address failed ($2): $(tail -2 "$2-$address")"
  done
}

finwave_start router "$work/first.jsonl" --port 5000 --settle 0.2
# Connections in flight while finwave is killed: 4 opened through finwave that close only once
# the go file exists (after the kill: their teardown crosses the orphaned table), and a stream
# of 400 that runs through the kill (how many of those meet it depends on scheduling; nothing is
# counted from them, they only must all succeed).
go=$work/go
lab_bg client "$work/held.jsonl" "$FINWAVE_BIN_PEER" client --connect 198.18.2.2 --port 5000 \
  --connections 4 --parallel 4 --script "send:100,wait-file:$go,close" --io-timeout 20000 \
  >/dev/null
held_pid=$LAB_LAST_PID
lab_bg client "$work/during.jsonl" "$FINWAVE_BIN_PEER" client --connect 198.18.2.2 --port 5000 \
  --connections 400 --parallel 4 --script send:100,close --quiet --timeout 3000 >/dev/null
during_pid=$LAB_LAST_PID
# Kill only once the 4 held connections are open: their handshakes were queued to finwave and
# passed with its verdicts, so finwave has them as live flows.
wait_until 10 "the 4 held connections to open and send" at_least 4 event_count "$work/held.jsonl" send
finwave_kill9
lab_exec router nft list tables inet | grep -qx 'table inet finwave-q0' ||
  fail "the capture table should still be installed after kill -9"
connections 50 "$work/after-kill"
touch "$go"
lab_wait "$held_pid" 30 || fail "connections open across kill -9 failed: $(tail -2 "$work/held.jsonl")"
lab_wait "$during_pid" 30 || fail "connections in flight during kill -9 failed: $(tail -2 "$work/during.jsonl")"
# A client is done once it has closed; the server (its own pace, maybe behind on a busy machine)
# and the TCP retransmissions of segments lost with the killed finwave's queue may still be at
# work. The restarted finwave must meet only the 100 connections below: wait until no old one is
# still tearing down (the server has none but its listener; the clients only TIME_WAIT ones,
# which send nothing unasked).
old_teardowns() {
  lab_exec server ss -Htn state connected "( sport = :5000 )"
  lab_exec client ss -Htn state connected exclude time-wait "( dport = :5000 )"
}
quiet() { [ -z "$(old_teardowns)" ]; }
wait_for 30 "the old connections' teardowns to end" quiet ||
  fail "old connections still tearing down after 30 s: $(old_teardowns | head -5)"

finwave_start router "$work/second.jsonl" --port 5000 --settle 0.2
# The stale table was replaced, not doubled: two jump rules (either end on port 5000) and one
# queue rule.
ruleset=$(lab_exec router nft list ruleset 2>/dev/null)
jumps=$(grep -c 'goto capture' <<<"$ruleset" || true)
[ "$jumps" -eq 2 ] || fail "after restart the ruleset has $jumps jump rules to the capture chain, expected 2"
queue_rules=$(grep -c 'queue num 0 bypass' <<<"$ruleset" || true)
[ "$queue_rules" -eq 1 ] || fail "after restart the ruleset has $queue_rules queue rules, expected 1"
connections 50 "$work/after-restart"
wait_for 10 "100 outcomes" at_least 100 event_count "$work/second.jsonl" outcome ||
  fail "the restarted finwave reported $(event_count "$work/second.jsonl" outcome) outcomes in 10 s for 100 connections"
FINWAVE_OUT=$work/second.jsonl
finwave_stop
check_verdict_accounting
reported=$(outcomes | wc -l)
[ "$reported" -eq 100 ] || fail "restarted finwave reported $reported outcomes for 100 connections"
left=$(lab_exec router nft list ruleset 2>/dev/null | grep -c finwave || true)
[ "$left" -eq 0 ] || fail "finwave left its capture table behind at exit"

pass "connections survive kill -9 (bypass); restart replaced the stale table and reported $reported outcomes"
