#!/usr/bin/env bash
# A chaos test written the way a user would write one: finwave runs with a fault rule that is
# switched off, and the script drives everything through finwavectl alone. Connections are clean;
# the fault goes on; a connection's teardown breaks exactly as the rule says (the final ACK is
# lost, the server never leaves LAST_ACK: result "timeout"); the fault goes off; connections are
# clean again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/finwave.sh"

lab_begin chaos
ctl() { "$FINWAVE_BUILD/finwavectl" "$@"; }
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
wait_for_file "$LAB_DIR/server.ready" 10

connect() {
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
    --connections "$1" --quiet >/dev/null || fail "client failed"
}

# 1. Healthy: the rule is there and off, connections tear down cleanly.
ctl rules
ctl --json rules | jq -e '.rules[] | select(.name == "lose-final-ack") | .enabled == false' \
  >/dev/null || fail "lose-final-ack should start disabled"
connect 5
ctl wait --result clean --count 5 --since 0 --timeout 10s >/dev/null ||
  fail "5 clean teardowns expected before the fault"

# 2. Break it. `--since change`: the outcome may be reported before `wait` starts.
ctl enable lose-final-ack
connect 1
t0=$(lab_now_ms)
ctl wait --rule lose-final-ack --result timeout --since change --timeout 15s ||
  fail "no timeout outcome caused by lose-final-ack"
broken_ms=$(($(lab_now_ms) - t0))
dropped=$(ctl --json outcomes --since change |
  jq '[.outcomes[] | select(.result == "timeout") | .final_acks.dropped] | max')
[ "$dropped" -ge 1 ] || fail "the broken teardown shows no dropped final ACK"

# 3. Heal it: the rule goes off and new connections are clean again.
ctl disable lose-final-ack
connect 5
ctl wait --count 5 --since change --timeout 10s >/dev/null || fail "5 outcomes expected after disable"
# Clean, or (rarely, on veth) reset by the kernel in TIME_WAIT; never touched by the rule.
bad=$(ctl --json outcomes --since change |
  jq '[.outcomes[] | select(.result == "timeout" or (.actions | length) > 0)] | length')
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
pass "clean -> enable -> timeout outcome ($hits final ACKs dropped, reported ${broken_ms} ms after the wait began) -> disable -> clean"
