#!/usr/bin/env bash
# The log path when its socket buffer is full: finwave observes (no rules, so every captured
# segment is logged) with a 64 KiB --log-buffer (room for a few connections, not for a burst)
# and is stopped (SIGSTOP) while a burst of connections goes through. The kernel never waits
# for the log path, so the burst completes; the copies that find the buffer full are lost.
# After SIGCONT finwave reports the overrun, counts the lost copies from the sequence numbers
# once the next copy comes, and marks every outcome it builds from that incomplete data as such
# (`incomplete`). Connections begun after the window of doubt are complete again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin log_loss
export FINWAVE_CONTROL=$LAB_DIR/control.sock
burst=200

lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 --log-buffer 65536 --settle 0.2 \
  --linger 2 --control "$FINWAVE_CONTROL"
lab_on_exit kill -s CONT "$FINWAVE_PID"
burst_connections() {  # burst_connections N — N connections from the client, one after another
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
    --connections "$1" --script send:100,close --quiet >/dev/null || fail "$1 connections failed"
}

burst_connections 2
wait_until 10 "2 outcomes" at_least 2 event_count "$FINWAVE_OUT" outcome
[ "$(outcomes 'select(.incomplete)' | wc -l)" -eq 0 ] || fail "outcomes incomplete before any loss"

kill -s STOP "$FINWAVE_PID"
finwave_stopped() { [ "$(awk '{ print $3 }' "/proc/$FINWAVE_PID/stat")" = T ]; }
wait_until 5 "finwave to stop" finwave_stopped
burst_connections "$burst"
kill -s CONT "$FINWAVE_PID"
wait_until 10 "the overrun to be seen" at_least 1 finwave_stats_field "$FINWAVE_CONTROL" .log.enobufs
# The next copy's sequence number shows how many were lost.
burst_connections 1
wait_until 10 "the lost copies to be counted" at_least 1 finwave_stats_field "$FINWAVE_CONTROL" .log.lost
lost=$(finwave_stats_field "$FINWAVE_CONTROL" .log.lost)
received=$(finwave_stats_field "$FINWAVE_CONTROL" .log.received)
wait_until 10 "the burst's outcomes" at_least 4 event_count "$FINWAVE_OUT" outcome
# Past the window of doubt (3 s after the loss was noticed), a new connection is complete.
sleep_until_ms=$(($(lab_now_ms) + 3500))
while [ "$(lab_now_ms)" -lt "$sleep_until_ms" ]; do sleep 0.2; done
before=$(event_count "$FINWAVE_OUT" outcome)
burst_connections 1
wait_until 10 "the last connection's outcome" at_least $((before + 1)) event_count "$FINWAVE_OUT" outcome
losses=$(finwave_stats_field "$FINWAVE_CONTROL" .log.losses)
finwave_stop

total=$(outcomes | wc -l)
incomplete=$(outcomes 'select(.incomplete)' | wc -l)
[ "$(outcomes '.incomplete' | head -2 | sort -u)" = false ] || fail "the first two outcomes are marked incomplete"
[ "$(outcomes '.incomplete' | tail -1)" = false ] || fail "the connection after the window is marked incomplete"
# Every outcome built between the loss and the end of the window says so: the burst's (those
# finwave saw anything of) and the one connection that showed the gap.
expected=$((total - 3))
[ "$incomplete" -eq "$expected" ] || fail "$incomplete of $total outcomes incomplete, expected $expected"
[ "$incomplete" -ge 1 ] || fail "no outcome marked incomplete after $lost lost copies"
((lost > 0 && received > 0)) || fail "lost $lost, received $received"
[ "$losses" -ge 1 ] || fail "log.losses is $losses"
pass "$burst connections while finwave was stopped with a 64 KiB log buffer: $lost copies lost" \
  "($received received), $incomplete of $total outcomes marked incomplete, complete again after the window"
