#!/usr/bin/env bash
# A chaos test written the way a user would write one: finwave runs with a fault rule that is
# switched off, and the script drives everything through finwavectl alone. Connections are clean;
# the fault goes on; a connection's teardown breaks exactly as the rule says (the final ACK is
# lost, the server never leaves LAST_ACK: result "timeout"); the fault goes off; connections are
# clean again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin chaos
# Every finwavectl below talks to this socket.
export FINWAVE_CONTROL=$LAB_DIR/control.sock

cat >"$LAB_DIR/rules.toml" <<'TOML'
[[rule]]
name = "lose-final-ack"
role = "final_ack"
action = "drop"
enabled = false
TOML

# A short linger: an unresolved teardown is reported 2 s after its last segment.
finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.2 --linger 2 --control "$FINWAVE_CONTROL"
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"

connect_clients() {
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
    --connections "$1" --quiet >/dev/null || fail "client failed"
}

# 1. Healthy: the rule is there and off, connections tear down cleanly.
ctl rules
ctl --json rules | jq -e '.rules[] | select(.name == "lose-final-ack") | .enabled == false' \
  >/dev/null || fail "lose-final-ack should start disabled"
connect_clients 5
ctl wait --result clean --count 5 --since 0 --timeout 10s >/dev/null ||
  fail "5 clean teardowns expected before the fault"

# 2. Break it. `--since change`: the outcome may be reported before `wait` starts.
ctl enable lose-final-ack
connect_clients 1
t0=$(lab_now_ms)
ctl wait --rule lose-final-ack --result timeout --since change --timeout 15s ||
  fail "no timeout outcome caused by lose-final-ack"
broken_ms=$(($(lab_now_ms) - t0))
dropped=$(ctl --json outcomes --since change |
  jq '[.outcomes[] | select(.result == "timeout") | .final_acks.dropped] | max')
[ "$dropped" -ge 1 ] || fail "the broken teardown shows no dropped final ACK"

# 2b. Look at it: `finwavectl show` draws the broken teardown from the daemon's outcome, by flow
# id and by the client's endpoint; --svg writes it as an SVG document with one arrow a segment.
# The broken connection's own outcome (sides known): its server goes on retransmitting its FIN,
# and each retransmission after a quiet linger window is a new flow, seen mid-teardown, whose
# final ACK the rule drops too; how many of those are out by now depends on scheduling.
broken=$(ctl --json outcomes --since change --rule lose-final-ack --result timeout |
  jq -c '[.outcomes[] | select(.sides_known)][0]')
[ "$broken" != null ] || fail "no outcome with known sides for the broken connection"
id=$(jq .id <<<"$broken")
client=$(jq -r .flow.client <<<"$broken")
ladder=$(ctl show "$id" --width 100) || fail "finwavectl show $id failed"
echo "$ladder"
grep -q "^flow $id: client $client -> server " <<<"$ladder" || fail "show: no title line"
grep -Eq '^ +client +server$' <<<"$ladder" || fail "show: no client and server columns"
grep -q -- "-X DROPPED" <<<"$ladder" || fail "show: no DROPPED arrow"
ctl show "$client" --width 100 | grep -q "client $client -> " || fail "show by endpoint failed"
ctl show "$id" --svg "$LAB_DIR/broken.svg" --quiet || fail "show --svg failed"
xmllint --noout "$LAB_DIR/broken.svg" || fail "show --svg: not well-formed XML"
svg_count() { xmllint --xpath "count($1)" "$LAB_DIR/broken.svg"; }
arrows=$(svg_count '//*[local-name()="line"][contains(concat(" ", @class, " "), " segment ")]')
shown=$(ctl --json show "$id")
[ "$arrows" -eq "$(jq '.timeline | length' <<<"$shown")" ] ||
  fail "show --svg: $arrows arrows for $(jq '.timeline | length' <<<"$shown") timeline entries"
[ "$(svg_count '//*[@data-verdict="drop"]')" -eq \
  "$(jq '[.timeline[] | select(.verdict == "drop")] | length' <<<"$shown")" ] ||
  fail "show --svg: dropped arrows do not match the timeline"
status=0
ctl show 198.18.1.2:1 2>/dev/null || status=$?
[ "$status" -eq 2 ] || fail "show of an unknown flow exited $status, not 2"
status=0
ctl --control "$LAB_DIR/nobody.sock" show "$id" 2>/dev/null || status=$?
[ "$status" -eq 3 ] || fail "show without a daemon exited $status, not 3"

# 3. Heal it: the rule goes off and new connections are clean again.
ctl disable lose-final-ack
connect_clients 5
# The 5 new connections' outcomes, told apart by their known sides from those of the broken
# connection's later FIN retransmissions (flows seen mid-teardown, which may be reported at any
# moment and may time out: their final ACK may have been dropped before the disable).
healed() { ctl --json outcomes --since change | jq '[.outcomes[] | select(.sides_known)] | length'; }
wait_for 10 "5 outcomes after disable" at_least 5 healed ||
  fail "$(healed) outcomes of the 5 connections after disable, in 10 s"
# Clean, or (rarely, on veth) reset by the kernel in TIME_WAIT; never touched by the rule.
bad=$(ctl --json outcomes --since change |
  jq '[.outcomes[] | select(.sides_known) | select(.result == "timeout" or (.actions | length) > 0)] | length')
[ "$bad" -eq 0 ] || fail "$bad connections were not clean after the rule was disabled"
hits=$(ctl --json rules | jq '.rules[] | select(.name == "lose-final-ack") | .hits')
[ "$hits" -ge 1 ] || fail "rules shows no hits for lose-final-ack"

ctl status
finwave_stop
check_verdict_accounting
# The server of the broken connection goes on retransmitting its FIN after the timeout was
# reported; finwave tracks those as a new flow seen mid-teardown (sides guessed).
reported=$(outcomes 'select(.sides_known) | .flow.client' | sort -u | wc -l)
[ "$reported" -eq 11 ] || fail "$reported connections reported on stdout, expected 11"
grep -q "enabled rule 'lose-final-ack'" "$FINWAVE_OUT.err" || fail "enable not logged"
grep -q "disabled rule 'lose-final-ack'" "$FINWAVE_OUT.err" || fail "disable not logged"
[ ! -e "$FINWAVE_CONTROL" ] || fail "control socket left behind"
pass "clean -> enable -> timeout outcome ($hits final ACKs dropped, reported ${broken_ms} ms after the wait began; finwavectl show drew it, $arrows arrows in its SVG) -> disable -> clean"
