#!/usr/bin/env bash
# Router mode, no rules: a 10 MB transfer client -> server passes intact through finwave, and
# only its handshake and teardown leave the kernel, as copies on the log path (at most 10; no
# rule could act on them, so the kernel queues nothing but a packet too long for a copy: the FIN
# may ride on a 64 KiB GRO packet), each written to finwave's --pcap file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin bulk
work=$LAB_WORK

finwave_start router "$work/finwave.jsonl" --port 5000 --settle 0.3 --pcap "$work/finwave.pcap"
lab_bg server "$work/server.jsonl" "$FINWAVE_BIN_PEER" server --listen 198.18.2.2 --port 5000 \
  --connections 1 --script read-eof,close --ready-file "$work/server.ready" >/dev/null
server_pid=$LAB_LAST_PID
wait_for_file "$work/server.ready" 10 || fail "the server did not start within 10 s"

lab_exec client "$FINWAVE_BIN_PEER" client --connect 198.18.2.2 --port 5000 \
  --script send:10000000,close >"$work/client.jsonl" || fail "client failed: $(cat "$work/client.jsonl")"
# The server (one connection) exits once it has logged what it read and closed; finwave's outcome
# comes --settle after the final ACK.
lab_wait "$server_pid" 10 || fail "the server failed: $(cat "$work/server.jsonl.err")"
wait_for 10 "finwave's outcome" at_least 1 event_count "$work/finwave.jsonl" outcome ||
  fail "no outcome from finwave within 10 s"

received=$(jq -r 'select(.event == "read_eof") | "\(.bytes) \(.intact)"' "$work/server.jsonl")
[ "$received" = "10000000 true" ] || fail "server received '$received', expected '10000000 true'"

kernel_queued=$(kernel_queue_field router 0 8)
[ -n "$kernel_queued" ] || fail "queue 0 not listed in the router's nfnetlink_queue"
[ "$kernel_queued" -le 2 ] || fail "the kernel queued $kernel_queued packets with no rule to act on them"

finwave_stop
check_verdict_accounting
queued=$(finwave_stats .queue.queued)
logged=$(finwave_stats .logged)
[ "$queued" -eq "$kernel_queued" ] || fail "finwave counted $queued queued, the kernel $kernel_queued"
captured=$((logged + queued))
[ "$captured" -le 10 ] || fail "finwave saw $captured segments (> 10) for a 10 MB transfer"
[ "$captured" -ge 5 ] || fail "finwave saw only $captured segments: handshake/teardown missed"
[ "$(finwave_stats .log.lost)" -eq 0 ] || fail "the log path lost copies"
[ "$(finwave_stats .log.received)" -eq "$logged" ] || fail "log.received differs from logged"
[ "$(outcomes | wc -l)" -eq 1 ] || fail "expected exactly one outcome, got: $(outcomes)"
[ "$(outcomes .result)" = '"clean"' ] || fail "outcome not clean: $(outcomes)"
[ "$(outcomes '[.timeline[] | .verdict] | length')" -eq "$captured" ] || fail "timeline length"
[ "$(outcomes "[.timeline[] | select(.verdict == \"observed\")] | length")" -eq "$logged" ] ||
  fail "the logged segments are not all observed: $(outcomes)"
# --pcap: every captured segment, readable by libpcap tools.
in_pcap=$(capture_count "$work/finwave.pcap" "tcp port 5000") || fail "finwave's pcap is unreadable"
[ "$in_pcap" -eq "$captured" ] || fail "finwave's pcap holds $in_pcap packets, it saw $captured"

pass "10 MB intact; kernel queued $kernel_queued (too long for a copy), finwave logged $logged segments, all observed"
