#!/usr/bin/env bash
# Rules that go away by themselves: `add --max-hits 2` drops the first transmission of exactly
# two client FINs, over three connections, and is then removed (a rule_change event by
# "max_hits"); `add --ttl 300ms` is removed 300 ms after it came (by "ttl"). The wire agrees:
# tcpdump on the client's side sees the two dropped FINs sent again. Bad lifetimes are refused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin control_lifetimes
export FINWAVE_CONTROL=$LAB_DIR/control.sock
finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 --settle 0.2 --linger 5 \
  --control "$FINWAVE_CONTROL"
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
capture_start router to-client "$LAB_DIR/client-side.pcap" "tcp port 5000"
lab_bg router "$LAB_DIR/changes.jsonl" "$FINWAVE_BUILD/finwavectl" --json watch \
  --events rule_change >/dev/null
wait_until 10 "finwavectl watch to subscribe" exactly 1 control_subscribers

# Refused: each a usage error or the daemon's bad_field, and nothing added.
expect_refusal() {  # expect_refusal WHAT-IN-STDERR finwavectl-ARGS...
  local said=$1 status=0
  shift
  ctl "$@" >/dev/null 2>"$LAB_DIR/err" <<<'{ name = "x", action = "pass" }' || status=$?
  [ "$status" -eq 2 ] || fail "finwavectl $* exited $status, expected 2"
  grep -qF -- "$said" "$LAB_DIR/err" || fail "finwavectl $* did not say '$said': $(cat "$LAB_DIR/err")"
}
expect_refusal "--ttl takes a duration" add --ttl 0s -
expect_refusal "--ttl takes a duration" add --ttl banana -
expect_refusal "--max-hits" add --max-hits 0 -
ctl raw '{"cmd":"add","toml":"name = \"x\"","ttl":"5"}' >"$LAB_DIR/raw.out" || true
grep -q '"code":"bad_field"' "$LAB_DIR/raw.out" || fail "a string ttl: $(cat "$LAB_DIR/raw.out")"
expect "rules after the refusals" "$(ctl --json rules | jq '.rules | length')" 0

# max_hits 2, over three connections one after the other.
ctl add --max-hits 2 - <<<'{ name = "lose-two-fins", role = "fin1", retx = false, action = "drop" }' >/dev/null
expect "hits_left at first" "$(ctl --json rules | jq '.rules[0].hits_left')" 2
expect "summary" "$(ctl --json rules | jq -r '.rules[0].summary')" \
  "drop fin1 (first transmissions only), 2 times in all"
seq=$(finwave_status_field "$FINWAVE_CONTROL" .last_outcome_seq)
for n in 1 2 3; do
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 --quiet \
    >/dev/null || fail "client $n failed"
done
outcomes=$(ctl --json wait --since "$seq" --count 3 --timeout 15s | jq -c '.outcomes') ||
  fail "fewer than 3 outcomes in 15 s"
expect "connections the rule acted on" \
  "$(jq -c '[.[] | [.actions[] | select(.rule == "lose-two-fins") | .count] | add // 0]' <<<"$outcomes")" \
  '[1,1,0]'
expect "client FIN retransmissions (finwave)" "$(jq -c '[.[].fin_retransmits.client]' <<<"$outcomes")" '[1,1,0]'
removed_by() {  # removed_by WHY RULE — the rule_change event that removed RULE, for WHY
  jq -e --arg why "$1" --arg rule "$2" \
    'select(.event == "rule_change" and .change == "remove" and .by == $why and .rule == $rule)' \
    "$LAB_DIR/changes.jsonl" >/dev/null
}
wait_for 5 "the rule's removal by max_hits" removed_by max_hits lose-two-fins ||
  fail "no rule_change event for max_hits: $(cat "$LAB_DIR/changes.jsonl")"
expect "rules after max_hits" "$(ctl --json rules | jq '.rules | length')" 0

# ttl 300 ms.
started=$(lab_now_ms)
ctl add --ttl 300ms - <<<'{ name = "short-lived", role = "rst", action = "pass" }' >"$LAB_DIR/added.out"
# The reply comes after the capture is reclassified for the new rule (an nft run, longer under a
# sanitizer): the time left may be a few milliseconds under 0.3 s.
grep -Eq '^added short-lived at position 1: pass rst \(for 0\.(3|2[5-9][0-9]*) s\)$' "$LAB_DIR/added.out" ||
  fail "add's output: $(cat "$LAB_DIR/added.out")"
left=$(ctl --json rules | jq '.rules[0].expires_in_s')
awk -v left="$left" 'BEGIN { exit !(left > 0 && left <= 0.3) }' || fail "expires_in_s $left"
wait_for 5 "the rule's removal by ttl" removed_by ttl short-lived ||
  fail "no rule_change event for ttl: $(cat "$LAB_DIR/changes.jsonl")"
gone_ms=$(($(lab_now_ms) - started))
((gone_ms >= 300)) || fail "the ttl rule went after $gone_ms ms, before its 300 ms"
expect "rules after ttl" "$(ctl --json rules | jq '.rules | length')" 0

finwave_stop
for line in "max_hits: removed rule 'lose-two-fins'" "ttl: removed rule 'short-lived' (its ttl is up)" \
  "added rule 'short-lived' last: pass rst, ttl 300 ms"; do
  grep -qF "$line" "$FINWAVE_OUT.err" || fail "not in the log: $line: $(cat "$FINWAVE_OUT.err")"
done
# The wire: the client sent 5 FINs (two of them again after the drops), 1 per connection plus 2.
capture_stop
client_fins=$(capture_count "$LAB_DIR/client-side.pcap" "src host $LAB_CLIENT_V4 and dst port 5000 and $LAB_FILTER_FIN")
expect "client FINs on the wire" "$client_fins" 5

pass "max_hits 2 dropped exactly 2 FINs over 3 connections, then the rule went; ttl 300 ms went" \
  "after $gone_ms ms; refusals for bad lifetimes; tcpdump saw $client_fins client FINs"
