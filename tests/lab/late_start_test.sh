#!/usr/bin/env bash
# Connections first seen at their FIN: each connection is made and goes idle, THEN finwave
# starts on the router (router mode, no rules), THEN both ends close (the peers wait for a go
# file the test creates once finwave is ready: no timing assumption). tcpdump on both router
# interfaces (running from the start) is the witness; segments from before finwave was ready
# are left out of the comparison. Cases (ports 5000-5004):
#   late_three_way_v4/v6   the client closes, the server closes as soon as it reads EOF
#   late_four_way_v4/v6    the client closes, the server closes 100 ms after EOF
#   late_server_first_v4   the server closes first
# Each must still be reported, once, with sides_known false, the right closer (by the port
# rule: the lower port is the server), no reset, the kind and result the wire shows, and agree
# with tcpdump on every figure of check_against_wire.
#
# Why this works at all: the capture chain puts a connection in its teardown set at the FIN
# (netfilter/teardown_set.hpp), whether or not it saw the connection begin, so the ACKs after
# the FIN are queued too. (When the chain used conntrack and a CONNMARK, a connection conntrack
# first met at its FIN could not be marked, and the server-first case lost its final ACK when
# ack1 and fin2 left µs apart; this test now sends them back to back.)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

started=$(lab_now_ms)
teardown_setup late_start

go=$WORK/go
cases=(late_three_way_v4 late_three_way_v6 late_four_way_v4 late_four_way_v6 late_server_first_v4)
declare -A address closer
server_pid=()
client_pid=()
port=$TEARDOWN_PORT
for name in "${cases[@]}"; do
  address[$name]=$LAB_SERVER_V4
  [[ "$name" == *_v6 ]] && address[$name]=$LAB_SERVER_V6
  closer[$name]=client
  client_script="send:1000,wait-file:$go,shutdown,read-eof,close"
  case "$name" in
    late_three_way_*) server_script=read-eof,close ;;
    late_four_way_*) server_script=read-eof,hold:100,close ;;
    late_server_first_*)
      closer[$name]=server
      server_script="read:1000,wait-file:$go,shutdown,read-eof,close"
      client_script=send:1000,read-eof,close
      ;;
  esac
  teardown_server "$name" "$server_script" "$port"
  server_pid[port]=$SERVER_PID
  lab_bg client "$WORK/$name.client.jsonl" "$FINWAVE_BIN_PEER" client \
    --connect "${address[$name]}" --port "$port" --io-timeout "$TEARDOWN_IO_TIMEOUT_MS" \
    --script "$client_script" >/dev/null
  client_pid[port]=$LAB_LAST_PID
  port=$((port + 1))
done

# Every connection established and its first data exchanged before finwave starts: the server
# accepted it, the client wrote its 1000 bytes, and the server's stack acknowledged them all (the
# client's send queue is empty), so that no segment of the exchange is left for finwave to see.
for name in "${cases[@]}"; do
  wait_until 10 "$name: the server to accept the connection" \
    at_least 1 event_count "$WORK/$name.server.jsonl" accept
  wait_until 10 "$name: the client to send its data" \
    at_least 1 event_count "$WORK/$name.client.jsonl" send
done
# Client sockets of the cases' ports: "Send-Q" of each (ss -H with one state: Recv-Q Send-Q ...).
client_send_queues() {
  lab_exec client ss -Htn state established "( dport >= :$TEARDOWN_PORT and dport < :$port )" |
    awk '{ print $2 }'
}
all_acked() {
  local queues
  queues=$(client_send_queues) || return 1
  [[ "$(wc -l <<<"$queues")" -eq "${#cases[@]}" ]] && ! grep -qv '^0$' <<<"$queues"
}
wait_for 10 "every client's data acknowledged" all_acked ||
  fail "the clients' send queues did not drain in 10 s: $(client_send_queues | tr '\n' ' ')"
port_args=()
for ((p = TEARDOWN_PORT + 1; p < port; p++)); do port_args+=(--port "$p"); done
teardown_finwave "${port_args[@]}" --linger 1
ready=$EPOCHREALTIME
touch "$go"

port=$TEARDOWN_PORT
for name in "${cases[@]}"; do
  lab_wait "${client_pid[$port]}" 10 ||
    fail "$name: client failed: $(tail -3 "$WORK/$name.client.jsonl")"
  lab_wait "${server_pid[$port]}" 10 ||
    fail "$name: server failed: $(tail -3 "$WORK/$name.server.jsonl")"
  teardown_record "$name" "${address[$name]}" "$ready"
  port=$((port + 1))
done
teardown_collect "${#cases[@]}" 5

for name in "${cases[@]}"; do
  report=$(case_report "$name")
  [[ "$(jq '.outcomes | length' <<<"$report")" -eq 1 ]] ||
    fail "$name: expected one outcome, got: $(jq -c .outcomes <<<"$report")"
  expect_outcome "$name" ".sides_known == false and .closer == \"${closer[$name]}\" and
    .rst == null and (.kind == \"three_way\" or .kind == \"four_way\") and
    (.result == \"clean\" or .result == \"timeout\")" \
    "expected sides_known false, closer ${closer[$name]}, no reset"
  # The tracker against what it was shown.
  if [[ "$(jq '.problems_captured | length' <<<"$report")" -ne 0 ]]; then
    jq -r '"\(.name): finwave disagrees with the wire as queued to it:",
      (.problems_captured[] | "  " + .), "  outcome: \(.outcomes[0] | tojson)",
      "  wire (queued part): \(.wire_captured | del(.all, .required) | tojson)"' \
      <<<"$report" >&2
    fail "$name: finwave's outcome disagrees with the segments queued to it"
  fi
  # The tracker against the whole wire.
  if [[ "$(jq '.problems | length' <<<"$report")" -ne 0 ]]; then
    fail "$name: finwave's outcome disagrees with tcpdump: $(jq -c .problems <<<"$report")"
  fi
  jq -r '.outcomes[0] as $o | .wire as $w
    | "\(.name) (\(.family)): sides_known \($o.sides_known) closer \($o.closer) kind \($o.kind)" +
      " result \($o.result) (wire: \($w.closer) \($w.kind) \($w.result))" +
      " fins c\($w.fins.client)/s\($w.fins.server)" +
      " final_acks \($o.final_acks.seen)/\($w.final_acks)"' \
    <<<"$report"
done

pass "${#cases[@]} connections first seen at their FIN reported, sides_known false, all" \
  "agreeing with tcpdump ($(($(lab_now_ms) - started)) ms)"
