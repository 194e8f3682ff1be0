#!/usr/bin/env bash
# Rules changed over the control socket: `add` a rule (TOML from stdin, then JSON), see it in
# `rules` and its effect on the next connection (rule_hit events, an outcome naming it), then
# `remove` it and see connections untouched again. Refusals exit 2 with a stable error code:
# an invalid rule, a taken name, an unknown name, a reload of a broken file (which keeps the
# rules). The shell runs the same commands from a pipe. Every change is in finwave's log.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin control_rules
export FINWAVE_CONTROL=$LAB_DIR/control.sock
: >"$LAB_DIR/rules.toml"  # No rules: finwave only observes.

finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.2 --linger 2 --control "$FINWAVE_CONTROL"
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
connect_once() {
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$1" --port 5000 --quiet >/dev/null ||
    fail "client to $1 failed"
}
expect_status() {  # expect_status STATUS CODE-IN-STDERR COMMAND...
  local want=$1 code=$2 status=0
  shift 2
  "$@" >"$LAB_DIR/out" 2>"$LAB_DIR/err" || status=$?
  [ "$status" -eq "$want" ] || fail "$* exited $status, expected $want: $(cat "$LAB_DIR/err")"
  grep -q -- "$code" "$LAB_DIR/err" || fail "$* did not say $code: $(cat "$LAB_DIR/err")"
}

[ "$(ctl --json rules | jq '.rules | length')" -eq 0 ] || fail "expected no rules at start"

# Add a rule as TOML on stdin: lose the first fin1 of each connection once.
echo '{ name = "lose-fin1-once", role = "fin1", first = 1, action = "drop" }' | ctl add -
ctl --json rules | jq -e '.rules[0] | .name == "lose-fin1-once" and .origin == "control" and .enabled' \
  >/dev/null || fail "added rule not listed"

# Its hits arrive as events; its effect shows in the next connection's outcome.
lab_bg router "$LAB_DIR/hits.jsonl" "$FINWAVE_BUILD/finwavectl" --json watch --events rule_hit \
  --rule lose-fin1-once >/dev/null
watch_pid=$LAB_LAST_PID
wait_until 10 "finwavectl watch to subscribe" exactly 1 control_subscribers
connect_once "$LAB_SERVER_V4"
ctl wait --rule lose-fin1-once --since change --timeout 10s >/dev/null || fail "no outcome names the added rule"
retx=$(ctl --json outcomes --limit 1 | jq '.outcomes[0].fin_retransmits.client')
[ "$retx" -ge 1 ] || fail "the dropped fin1 was not retransmitted ($retx)"
# The rule_hit event was published when the fin1 was dropped, before the outcome; the watcher
# writes it once it has read it.
wait_for 10 "the rule_hit event" at_least 1 event_count "$LAB_DIR/hits.jsonl" rule_hit ||
  fail "the watcher wrote no rule_hit event in 10 s: $(cat "$LAB_DIR/hits.jsonl")"
lab_kill "$watch_pid" INT
hits=$(jq -c 'select(.event == "rule_hit")' "$LAB_DIR/hits.jsonl" | wc -l)
[ "$hits" -eq 1 ] || fail "$hits rule_hit events, expected 1: $(cat "$LAB_DIR/hits.jsonl")"
jq -e 'select(.event == "rule_hit") | .role == "fin1" and .verdict == "drop"' "$LAB_DIR/hits.jsonl" \
  >/dev/null || fail "rule_hit event fields: $(cat "$LAB_DIR/hits.jsonl")"

# A JSON rule, first in priority; then refusals with their codes.
echo '{"name":"reset-fin2","role":"fin2","action":"reset","enabled":false}' >"$LAB_DIR/rule.json"
ctl add --first "$LAB_DIR/rule.json"
[ "$(ctl --json rules | jq -r '.rules[0].name')" = reset-fin2 ] || fail "--first ignored"
expect_status 2 invalid_rule ctl add - <<<'{ name = "x", role = "fin2", action = "dorp" }'
grep -q "did you mean 'drop'" "$LAB_DIR/err" || fail "no hint for a misspelt action"
expect_status 2 rule_exists ctl add "$LAB_DIR/rule.json"
expect_status 2 unknown_rule ctl enable lose-fin1-onc
grep -q "did you mean 'lose-fin1-once'" "$LAB_DIR/err" || fail "no hint for a misspelt name"
expect_status 2 unknown_rule ctl remove nothing-here

# Remove it: connections are untouched again.
ctl remove lose-fin1-once reset-fin2
[ "$(ctl --json rules | jq '.rules | length')" -eq 0 ] || fail "rules left after remove"
connect_once "$LAB_SERVER_V6"
ctl wait --since change --timeout 10s >/dev/null || fail "no outcome after remove"
[ "$(ctl --json outcomes --limit 1 | jq '.outcomes[0].actions | length')" -eq 0 ] ||
  fail "a removed rule still acted"

# The shell, fed from a pipe, runs the same commands.
printf '%s\n' '# comment' 'status' 'reload' 'rules --json' 'enable nope' >"$LAB_DIR/shell.in"
status=0
ctl shell <"$LAB_DIR/shell.in" >"$LAB_DIR/shell.out" 2>"$LAB_DIR/shell.err" || status=$?
[ "$status" -eq 2 ] || fail "shell exited $status, expected 2 (its last command failed)"
grep -q '"rules":\[\]' "$LAB_DIR/shell.out" || fail "shell output: $(cat "$LAB_DIR/shell.out")"
grep -q unknown_rule "$LAB_DIR/shell.err" || fail "shell errors: $(cat "$LAB_DIR/shell.err")"

# A broken rule file: reload is refused and the running rules stay.
echo '{ name = "keep-me", role = "rst", action = "pass" }' | ctl add - >/dev/null
echo '[[rule]]' >"$LAB_DIR/rules.toml"
expect_status 2 reload_failed ctl reload
[ "$(ctl --json rules | jq -r '.rules[0].name')" = keep-me ] || fail "a failed reload changed the rules"
: >"$LAB_DIR/rules.toml"
ctl reload >/dev/null
[ "$(ctl --json rules | jq '.rules | length')" -eq 0 ] || fail "reload did not drop the added rule"

# SIGHUP reloads too, and subscribers hear of it.
# (lab_bg: a plain `&` job would ignore SIGINT, as every background job of a script does.)
# The first watcher's subscription ends when finwave reads its close: wait for that, so that the
# count of 1 below is the new watcher's.
wait_until 10 "the first watcher's subscription to end" exactly 0 control_subscribers
lab_bg router "$LAB_DIR/changes.jsonl" "$FINWAVE_BUILD/finwavectl" --json watch \
  --events rule_change >/dev/null
changes_pid=$LAB_LAST_PID
wait_until 10 "the second finwavectl watch to subscribe" exactly 1 control_subscribers
kill -HUP "$FINWAVE_PID"
sighup_change() {
  jq -e 'select(.event == "rule_change") | .change == "reload" and .by == "sighup"' \
    "$LAB_DIR/changes.jsonl"
}
wait_for 10 "a rule_change event for SIGHUP" sighup_change ||
  fail "no rule_change event for SIGHUP in 10 s: $(cat "$LAB_DIR/changes.jsonl")"
lab_kill "$changes_pid" INT

finwave_stop
for line in "added rule 'lose-fin1-once'" "added rule 'reset-fin2' first" "removed rule 'lose-fin1-once'" \
  "removed rule 'reset-fin2'" "reload failed" "reloaded 0 rule(s)" "SIGHUP: reloaded"; do
  grep -q "$line" "$FINWAVE_OUT.err" || fail "not in the log: $line"
done
pass "add (TOML and JSON) -> rules -> rule_hit event and outcome -> refusals -> remove -> untouched; shell and reload"
