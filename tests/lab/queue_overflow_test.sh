#!/usr/bin/env bash
# Queue overflow: finwave runs with --queue-len 16 and is stopped (SIGSTOP) while a burst of 200
# connections (SYN, FIN, RST: far more than 16 captured segments) goes through. The kernel keeps
# 16 queued and lets the rest pass (NFQA_CFG_F_FAIL_OPEN): the burst completes while finwave
# sleeps. The kernel does not count what it let pass (queue_dropped stays 0, the id sequence
# counts only what it queued); the queue rule's counter does, so the passed segments are the
# counter's growth minus the id sequence's, and finwave's stats say the same figure
# (capture.passed_unqueued). After SIGCONT every segment still queued gets exactly one verdict.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin queue_overflow
export FINWAVE_CONTROL=$LAB_DIR/control.sock
queue_len=16
burst=200

lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
# A rule on every role (one that lets each segment pass) puts every captured segment on the
# queue path; with no rule they would all be logged and nothing queued.
cat >"$LAB_DIR/queue-all.toml" <<'TOML'
[[rule]]
name = "queue-everything"
role = "any"
action = "pass"
TOML
finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 --queue-len "$queue_len" \
  --settle 0.2 --linger 3 --control "$FINWAVE_CONTROL" --rules "$LAB_DIR/queue-all.toml"
# A stopped finwave cannot end: whatever happens, it is woken before the cleanup ends it.
lab_on_exit kill -s CONT "$FINWAVE_PID"

# The packet count of the queue rule's counter ("counter packets N bytes M queue num 0 ...").
rule_packets() {
  lab_exec router nft list chain inet finwave-q0 capture |
    sed -n 's/.*counter packets \([0-9]*\) bytes [0-9]* queue num 0.*/\1/p'
}
kernel() { kernel_queue_field router 0 "$1"; }  # 3 queue_total, 6 queue_dropped, 8 id_sequence

# Warm up: the capture works.
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
  --connections 5 --script send:100,close --quiet >/dev/null || fail "warm-up connections failed"
wait_until 10 "5 outcomes" at_least 5 event_count "$FINWAVE_OUT" outcome
wait_until 5 "the queue to be empty" exactly 0 kernel 3
packets_before=$(rule_packets)
ids_before=$(kernel 8)
[[ "$packets_before" =~ ^[0-9]+$ && "$ids_before" =~ ^[0-9]+$ ]] ||
  fail "cannot read the queue rule's counter ('$packets_before') or the id sequence ('$ids_before')"

kill -s STOP "$FINWAVE_PID"
# The signal is asynchronous: the burst starts once finwave is really stopped (state T).
stopped() { [ "$(awk '{ print $3 }' "/proc/$FINWAVE_PID/stat")" = T ]; }
wait_until 5 "finwave to stop" stopped
# SYNs that stay queued are retransmitted after 1 s and pass then: give connect 5 s.
t0=$(lab_now_ms)
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
  --connections "$burst" --parallel 50 --script send:100,close --timeout 5000 --io-timeout 10000 \
  --quiet >"$LAB_DIR/burst.jsonl" || fail "the burst failed while finwave was stopped: $(cat "$LAB_DIR/burst.jsonl")"
burst_ms=$(($(lab_now_ms) - t0))
queued_now=$(kernel 3)
dropped=$(kernel 6)
user_dropped=$(kernel 7)
packets=$(($(rule_packets) - packets_before))
queued=$(($(kernel 8) - ids_before))
passed=$((packets - queued))
[ "$queued_now" -eq "$queue_len" ] ||
  fail "with finwave stopped the kernel holds $queued_now segments, not the full $queue_len"
[ "$queued" -eq "$queue_len" ] || fail "$queued segments queued during the burst, not $queue_len"
((passed >= burst)) ||
  fail "only $passed of $packets captured segments passed unqueued for $burst connections"
((dropped == 0 && user_dropped == 0)) ||
  fail "the kernel dropped segments (queue_dropped $dropped, user_dropped $user_dropped): not fail-open"

kill -s CONT "$FINWAVE_PID"
wait_until 5 "finwave to give the $queue_len queued segments their verdicts" exactly 0 kernel 3
wait_until 5 "capture.passed_unqueued to show the $passed passed segments" \
  exactly "$passed" finwave_stats_field "$FINWAVE_CONTROL" .capture.passed_unqueued
finwave_stop
check_all_queued_answered
[ "$(finwave_stats .kernel.queue_dropped)" -eq 0 ] || fail "kernel queue drops at exit"
pass "$burst connections in $burst_ms ms while finwave was stopped: $packets captured segments," \
  "$queued queued (queue full at $queue_len), $passed passed fail-open (kernel queue_dropped 0;" \
  "finwave's capture.passed_unqueued $passed); after SIGCONT all $(finwave_stats .queue.queued)" \
  "queued segments got one verdict each"
