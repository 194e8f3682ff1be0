#!/usr/bin/env bash
# Someone deletes finwave's nft table while it runs, and later its queue rule alone, with
# connections tearing down through it and FINs held by a delay rule: finwave notices within a
# second, says so on stderr and in `stats`, and puts its capture back (one table, one queue rule,
# two jump rules again); connections made afterwards are captured and reported; the connections
# that crossed the gap all succeed (TCP retransmits what the gap cost); and at exit every
# segment the kernel queued got exactly one verdict from finwave. Deleting a table makes the
# kernel drop what is queued through its hooks (the held fin1s among them): finwave's verdicts
# for those are refused (queue.verdict_errors), and only the table's deletion may cause any.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin capture_loss
export FINWAVE_CONTROL=$LAB_DIR/control.sock
table=finwave-q0

# Every fin1 held 150 ms: while a table goes, some segments are held, some queued.
cat >"$LAB_DIR/rules.toml" <<'TOML'
[[rule]]
name = "hold-fin1"
role = "fin1"
action = "delay"
delay_ms = 150
TOML
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.2 --linger 3 --control "$FINWAVE_CONTROL"

capture_field() { finwave_stats_field "$FINWAVE_CONTROL" ".capture.$1"; }
[ "$(capture_field state)" = installed ] || fail "capture.state is not 'installed' at start"

# The shape of an intact capture: one queue rule, two jump rules (either end on port 5000).
check_ruleset() {
  local ruleset jumps queue_rules
  ruleset=$(lab_exec router nft list table inet "$table" 2>&1) || fail "$1: no table $table: $ruleset"
  jumps=$(grep -c 'goto capture' <<<"$ruleset" || true)
  queue_rules=$(grep -c 'queue num 0 bypass' <<<"$ruleset" || true)
  ((jumps == 2 && queue_rules == 1)) ||
    fail "$1: $jumps jump rules and $queue_rules queue rules, expected 2 and 1: $ruleset"
}
check_ruleset "at start"

churn_start churn --connect "$LAB_SERVER_V4" --port 5000 --connections 40 --parallel 4 \
  --script send:100,close --timeout 5000 --io-timeout 10000
wait_until 20 "the churn to run through finwave" at_least 40 capture_field queue_rule_packets

# lose LOSS_NUMBER WHAT CMD... — run CMD (the deletion), then wait for finwave to notice it and
# to put the capture back. Sets notice_ms.
lose() {
  local number=$1 what=$2 t0
  shift 2
  t0=$(lab_now_ms)
  "$@" || fail "could not delete the $what"
  wait_until 3 "finwave to say on stderr that the $what was lost" \
    at_least "$number" grep -c "capture lost" "$FINWAVE_OUT.err"
  notice_ms=$(($(lab_now_ms) - t0))
  ((notice_ms <= 1000)) || fail "finwave noticed the deleted $what after $notice_ms ms, not within 1 s"
  grep "capture lost" "$FINWAVE_OUT.err" | tail -1 | grep -q "$what" ||
    fail "the loss message does not name the $what: $(grep "capture lost" "$FINWAVE_OUT.err" | tail -1)"
  wait_until 5 "finwave to restore the capture after the lost $what" \
    at_least "$number" capture_field restored
  grep -q "capture restored" "$FINWAVE_OUT.err" || fail "no 'capture restored' on stderr"
  [ "$(capture_field lost)" -eq "$number" ] || fail "capture.lost is $(capture_field lost), not $number"
  [ "$(capture_field state)" = installed ] || fail "capture.state is $(capture_field state) after the restore"
  check_ruleset "after the $what was restored"
}

# 1. The whole table. (What is held and queued just before, for the record: the kernel drops
# what is queued through the table's hooks, and refuses the held segments' verdicts later.)
in_flight=$(($(finwave_stats_field "$FINWAVE_CONTROL" .queue.held) + $(kernel_queue_field router 0 3)))
lose 1 "table" lab_exec router nft delete table inet "$table"
table_notice_ms=$notice_ms
# 2. Only the queue rule (found by its handle); the rest of the table stays.
handle=$(lab_exec router nft -a list chain inet "$table" capture | sed -n 's/.*queue num 0 bypass.*# handle \([0-9]*\)$/\1/p')
[[ "$handle" =~ ^[0-9]+$ ]] || fail "no handle for the queue rule: '$handle'"
lose 2 "queue rule" lab_exec router nft delete rule inet "$table" capture handle "$handle"
rule_notice_ms=$notice_ms
# Refused verdicts come from the table's deletion only; nothing is held longer than 150 ms, so
# by now all of them have been counted.
refused=$(finwave_stats_field "$FINWAVE_CONTROL" .queue.verdict_errors)
churn_stop churn
made=$(churn_connections churn)
[ "$(churn_failed churn)" -eq 0 ] || fail "$(churn_failed churn) churn connections failed"

# 3. Captured again: new connections are tracked from their SYN and reported, held fin1 and all.
before=$(outcomes 'select(.sides_known)' | wc -l)
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
  --connections 20 --parallel 4 --script send:100,close --quiet >/dev/null ||
  fail "connections after the restore failed"
wait_until 10 "20 outcomes of the connections made after the restore" \
  at_least $((before + 20)) eval "outcomes 'select(.sides_known)' | wc -l"
held=$(outcomes 'select(.sides_known)' | tail -20 |
  jq -s '[.[] | select(any(.actions[]; .rule == "hold-fin1"))] | length')
[ "$held" -eq 20 ] || fail "$held of the 20 connections after the restore had their fin1 held"

wait_until 5 "the kernel queue to be empty" exactly 0 kernel_queue_field router 0 3
finwave_stop
queued=$(finwave_stats .queue.queued)
answered=$(($(finwave_stats .queue.accepted) + $(finwave_stats .queue.dropped)))
[ "$queued" -eq "$answered" ] || fail "queued $queued != accepted + dropped $answered"
[ "$(finwave_stats .queue.held)" -eq 0 ] || fail "$(finwave_stats .queue.held) segments still held at exit"
[ "$queued" -eq "$(finwave_stats .kernel.id_sequence)" ] ||
  fail "the kernel queued $(finwave_stats .kernel.id_sequence) segments, finwave read $queued"
[ "$(finwave_stats .queue.verdict_errors)" -eq "$refused" ] ||
  fail "$(($(finwave_stats .queue.verdict_errors) - refused)) verdicts refused after the table was back"
lost=$(finwave_stats .capture.lost)
restored=$(finwave_stats .capture.restored)
((lost == 2 && restored == 2)) || fail "exit stats: capture.lost $lost, capture.restored $restored (expected 2, 2)"
left=$(lab_exec router nft list tables | grep -c finwave || true)
[ "$left" -eq 0 ] || fail "finwave left its table behind at exit"
pass "table deleted: noticed in $table_notice_ms ms, restored; queue rule deleted: noticed in" \
  "$rule_notice_ms ms, restored; $made churn connections across both gaps all succeeded," \
  "20 made after were captured; $queued queued segments, each one verdict ($refused of them" \
  "refused: the kernel dropped them with the deleted table; $in_flight held or queued just before)"
