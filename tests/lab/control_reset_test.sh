#!/usr/bin/env bash
# `reset`, what a test fixture calls between tests: after rules were added, disabled and removed
# over the socket, reset puts back the rule file's rules as loaded (order, enabled states,
# origin) without reading the file again, drops the added ones, says which went and which came
# back, publishes a rule_change event and replies with the outcome seq to wait from. The next
# connection meets the file's rule and none of the removed ones. Started without --rules,
# reset removes every rule.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin control_reset
export FINWAVE_CONTROL=$LAB_DIR/control.sock
cat >"$LAB_DIR/rules.toml" <<'EOF'
[[rule]]
name = "lose-first-final-ack"
role = "final_ack"
first = 1
action = "drop"

[[rule]]
name = "reset-fin2"
role = "fin2"
action = "reset"
enabled = false
EOF

finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.3 --linger 5 --control "$FINWAVE_CONTROL"
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
rule_states() { ctl --json rules | jq -c '[.rules[] | {name, enabled, origin}]'; }
loaded=$(rule_states)
expect "rules as loaded" "$loaded" \
  '[{"name":"lose-first-final-ack","enabled":true,"origin":"file"},{"name":"reset-fin2","enabled":false,"origin":"file"}]'

# A subscriber for the rule_change events.
lab_bg router "$LAB_DIR/changes.jsonl" "$FINWAVE_BUILD/finwavectl" --json watch \
  --events rule_change >/dev/null
watch_pid=$LAB_LAST_PID
wait_until 10 "finwavectl watch to subscribe" exactly 1 control_subscribers

# What a test might leave behind: an added rule first in priority, a file rule disabled, the
# other removed, and the file changed on disk (reset does not read it).
echo '{ name = "lose-fin1", role = "fin1", action = "drop" }' | ctl add --first - >/dev/null
ctl disable lose-first-final-ack >/dev/null
ctl remove reset-fin2 >/dev/null
: >"$LAB_DIR/rules.toml"
expect "rules before reset" "$(rule_states)" \
  '[{"name":"lose-fin1","enabled":true,"origin":"control"},{"name":"lose-first-final-ack","enabled":false,"origin":"file"}]'

reply=$(ctl --json reset)
expect "reset: rules" "$(jq .rules <<<"$reply")" 2
expect "reset: removed" "$(jq -c .removed <<<"$reply")" '["lose-fin1"]'
expect "reset: restored" "$(jq -c .restored <<<"$reply")" '["lose-first-final-ack","reset-fin2"]'
seq=$(jq .outcome_seq <<<"$reply")
[[ $seq =~ ^[0-9]+$ ]] || fail "reset's outcome_seq is not a number: $reply"
expect "rules after reset" "$(rule_states)" "$loaded"
reset_change() {
  jq -e 'select(.event == "rule_change") | .change == "reset" and .by == "control" and .rules == 2' \
    "$LAB_DIR/changes.jsonl"
}
wait_for 10 "a rule_change event for the reset" reset_change ||
  fail "no rule_change event for reset in 10 s: $(cat "$LAB_DIR/changes.jsonl")"
lab_kill "$watch_pid" INT

# The next connection meets the file's rule (its first final ACK dropped, the server's FIN
# retransmitted, a clean close) and not the removed lose-fin1.
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 --quiet \
  >/dev/null || fail "the client failed"
outcome=$(ctl --json wait --since "$seq" --timeout 15s | jq -c '.outcomes[0]') ||
  fail "no outcome after the reset"
expect "actions after reset" "$(jq -c '[.actions[] | {rule, role, action}]' <<<"$outcome")" \
  '[{"rule":"lose-first-final-ack","role":"final_ack","action":"drop"}]'
expect "result after reset" "$(jq -r .result <<<"$outcome")" clean
expect "server FIN retransmits" "$(jq .fin_retransmits.server <<<"$outcome")" 1
expect "client FIN retransmits" "$(jq .fin_retransmits.client <<<"$outcome")" 0

# Nothing to undo: a reset still answers, with nothing removed or restored; people read it.
expect "second reset: removed, restored" "$(ctl --json reset | jq -c '[.removed, .restored]')" '[[],[]]'
ctl add - <<<'{ name = "extra", role = "rst", action = "pass" }' >/dev/null
ctl reset >"$LAB_DIR/reset.out"
grep -q '^reset to 2 rules as loaded (outcome seq [0-9]*)$' "$LAB_DIR/reset.out" ||
  fail "reset's output: $(cat "$LAB_DIR/reset.out")"
grep -q '^  removed: extra$' "$LAB_DIR/reset.out" || fail "reset's output: $(cat "$LAB_DIR/reset.out")"
finwave_stop
grep -q "reset to the 2 rule(s) as loaded; removed 1 added, restored 2" "$FINWAVE_OUT.err" ||
  fail "the reset is not in finwave's log: $(cat "$FINWAVE_OUT.err")"

# Without a rule file, reset removes every rule.
finwave_start router "$LAB_DIR/bare.jsonl" --port 5000 --control "$FINWAVE_CONTROL"
ctl add - <<<'{ name = "extra", role = "rst", action = "pass" }' >/dev/null
reply=$(ctl --json reset)
expect "reset without --rules" "$(jq -c '[.rules, .removed, .restored]' <<<"$reply")" '[0,["extra"],[]]'
expect "rules after reset without --rules" "$(ctl --json rules | jq '.rules | length')" 0
finwave_stop

pass "reset after add, disable, remove and a changed file: the file's rules as loaded, the added" \
  "rule gone, the event published; the next connection met only the file's rule; without --rules" \
  "every rule goes"
