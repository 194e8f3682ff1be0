#!/usr/bin/env bash
# kill -9 of finwave while connections run: new connections still complete (--queue-bypass
# lets them through the orphaned chain), and a restarted finwave removes the stale chain,
# installs exactly one set of rules, and reports connections again.
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
lab_exec router iptables-save -t mangle | grep -q 'FINWAVE-Q0' || fail "the chain should still be installed after kill -9"
connections 50 "$work/after-kill"
lab_wait "$during_pid" 30 || fail "connections in flight during kill -9 failed: $(tail -2 "$work/during.jsonl")"

finwave_start router "$work/second.jsonl" --port 5000 --settle 0.2
jumps=$(lab_exec router iptables-save -t mangle | grep -c -- '-j FINWAVE-Q0' || true)
[ "$jumps" -eq 1 ] || fail "after restart the v4 mangle table has $jumps jump rules to FINWAVE-Q0, expected 1"
jumps6=$(lab_exec router ip6tables-save -t mangle | grep -c -- '-j FINWAVE-Q0' || true)
[ "$jumps6" -eq 1 ] || fail "after restart the v6 mangle table has $jumps6 jump rules, expected 1"
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
left=$(lab_exec router iptables-save -t mangle | grep -c FINWAVE || true)
[ "$left" -eq 0 ] || fail "finwave left $left rules behind at exit"

pass "connections survive kill -9 (bypass); restart cleaned the stale chain and reported $reported outcomes"
