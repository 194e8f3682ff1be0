#!/usr/bin/env bash
# kill -9 of finwave while connections run: new connections still complete (the queue rule's
# bypass lets them through the orphaned table), and a restarted finwave replaces the stale
# table, installs exactly one set of rules, and reports connections again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/finwave.sh"

lab_begin bypass
work=$LAB_WORK

lab_bg server "$work/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --connections 0 --script read-eof,close --quiet --ready-file "$work/server.ready" >/dev/null
wait_for_file "$work/server.ready" 10
connections() {  # N LOG: N connections over IPv4 and N over IPv6 must all succeed
  local address
  for address in 198.18.2.2 2001:db8:2::2; do
    lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port 5000 --connections "$1" \
      --parallel 4 --script send:100,close --quiet --timeout 3000 >"$2-$address" ||
      fail "connections to $address failed ($2): $(tail -2 "$2-$address")"
  done
}

finwave_start router "$work/first.jsonl" --port 5000 --settle 0.2
# Connections in flight while finwave is killed.
lab_bg client "$work/during.jsonl" "$FINWAVE_BIN_PEER" client --connect 198.18.2.2 --port 5000 \
  --connections 400 --parallel 4 --script send:100,close --quiet --timeout 3000 >/dev/null
during_pid=$LAB_LAST_PID
sleep 0.3
finwave_kill9
lab_exec router nft list tables inet | grep -qx 'table inet finwave-q0' ||
  fail "the capture table should still be installed after kill -9"
connections 50 "$work/after-kill"
lab_wait "$during_pid" 30 || fail "connections in flight during kill -9 failed: $(tail -2 "$work/during.jsonl")"

finwave_start router "$work/second.jsonl" --port 5000 --settle 0.2
# The stale table was replaced, not doubled: two jump rules (either end on port 5000) and one
# queue rule.
ruleset=$(lab_exec router nft list ruleset 2>/dev/null)
jumps=$(grep -c 'goto capture' <<<"$ruleset" || true)
[ "$jumps" -eq 2 ] || fail "after restart the ruleset has $jumps jump rules to the capture chain, expected 2"
queue_rules=$(grep -c 'queue num 0 bypass' <<<"$ruleset" || true)
[ "$queue_rules" -eq 1 ] || fail "after restart the ruleset has $queue_rules queue rules, expected 1"
connections 50 "$work/after-restart"
deadline=$((SECONDS + 10))
until [ "$(grep -c '"event":"outcome"' "$work/second.jsonl" || true)" -ge 100 ]; do
  [ $SECONDS -lt $deadline ] || break
  sleep 0.2
done
FINWAVE_OUT=$work/second.jsonl
finwave_stop
check_verdict_accounting
reported=$(outcomes | wc -l)
[ "$reported" -eq 100 ] || fail "restarted finwave reported $reported outcomes for 100 connections"
left=$(lab_exec router nft list ruleset 2>/dev/null | grep -c finwave || true)
[ "$left" -eq 0 ] || fail "finwave left its capture table behind at exit"

pass "connections survive kill -9 (bypass); restart replaced the stale table and reported $reported outcomes"
