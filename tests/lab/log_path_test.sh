#!/usr/bin/env bash
# The two paths from the capture table to finwave (issue 16). Router mode, IPv4 and IPv6, tcpdump
# on both router interfaces as the witness:
#   1. No rule: every captured segment is logged (nfnetlink_log), the kernel queues nothing, and
#      the outcomes still hold every segment, each "observed".
#   2. A rule added over the control socket on final_ack: only the ack class is queued (the
#      classify chain logs the four others), the first final ACK is dropped, the server's FIN
#      retransmission is seen, and the tracker's order is the wire's.
#   3. The rule disabled: back to observing.
#   4. Final_ack rules narrowed by port (from the client, server_ports): to another port, the
#      connection's ack class is only logged and nothing dropped; to this one, the client's ack
#      class is queued (its final ACK dropped) and the server's only logged.
#   5. SIGHUP loads a rule on `any`: everything queued.
# Each connection's timeline is compared with tcpdump segment for segment; the kernel's queue
# counter, finwave's queued and logged counts, and the log path's losses are checked.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab log_path
export FINWAVE_CONTROL=$WORK/control.sock
: >"$WORK/rules.toml"
rules_finwave "$WORK/rules.toml" --settle 0.2 --linger 3 --control "$FINWAVE_CONTROL"
rules_server read-eof,close 7

classes() { ctl --json status | jq -c '.classes | {logged, queued}'; }
narrowed() { ctl --json status | jq -c '.classes.queued_only'; }
delivery() { ctl --json status | jq -r '.classes.delivery'; }
log_rules() {
  lab_exec router nft list chain inet finwave-q0 classify | grep -c 'log group 0 accept' || true
}
# connect NAME ADDRESS — one connection, waited for, and its outcome.
outcomes_seen=0
connect() {
  rules_client "$1" "$2" send:100,close
  rules_client_wait "$1"
  outcomes_seen=$((outcomes_seen + 1))
  rules_wait_outcomes "$outcomes_seen"
}

expect "observing: classes" "$(classes)" '{"logged":["rst","syn","syn_ack","fin","ack"],"queued":[]}'
expect "observing: log rules in the classify chain" "$(log_rules)" 5
expect "observing: copies batched" "$(delivery)" batched
connect o4 "$LAB_SERVER_V4"
connect o6 "$LAB_SERVER_V6"
expect "observing: packets the kernel queued" "$(kernel_queue_field router 0 8)" 0

echo '{ name = "lose-first-final-ack", role = "final_ack", first = 1, action = "drop" }' | ctl add -
expect "final_ack rule: classes" "$(classes)" '{"logged":["rst","syn","syn_ack","fin"],"queued":["ack"]}'
expect "final_ack rule: log rules" "$(log_rules)" 4
expect "final_ack rule: copies one by one" "$(delivery)" "one by one"
expect "rules lists the classes too" "$(ctl --json rules | jq -c '.classes.queued')" '["ack"]'
connect q4 "$LAB_SERVER_V4"
connect q6 "$LAB_SERVER_V6"

ctl disable lose-first-final-ack >/dev/null
expect "rule disabled: classes" "$(classes)" '{"logged":["rst","syn","syn_ack","fin","ack"],"queued":[]}'
expect "rule disabled: copies batched again" "$(delivery)" batched
expect "rule disabled: nothing narrowed" "$(narrowed)" '{}'
ctl remove lose-first-final-ack >/dev/null

narrow() {
  echo "{ name = \"lose-final-ack-$1\", role = \"final_ack\", from = \"client\", server_ports = [$2], first = 1, action = \"drop\" }" | ctl add -
  expect "narrowed to port $2: classes" "$(classes)" '{"logged":["rst","syn","syn_ack","fin"],"queued":["ack"]}'
  expect "narrowed to port $2: the ack class from the client to it" "$(narrowed)" "{\"ack\":[\"dport $2\"]}"
  expect "narrowed to port $2: log rules (the rest of ack too)" "$(log_rules)" 5
  expect "narrowed to port $2: finwavectl status" \
    "$(ctl status | grep -c "queued ack (dport $2); logged rst, syn, syn_ack, fin, the rest of ack")" 1
}
narrow elsewhere 5999
connect n4 "$LAB_SERVER_V4"
ctl remove lose-final-ack-elsewhere >/dev/null
narrow here "$RULES_PORT"
connect h6 "$LAB_SERVER_V6"
ctl remove lose-final-ack-here >/dev/null

cat >"$WORK/rules.toml" <<'TOML'
[[rule]]
name = "queue-everything"
role = "any"
action = "pass"
TOML
kill -s HUP "$FINWAVE_PID"
queued_all() { [ "$(classes)" = '{"logged":[],"queued":["rst","syn","syn_ack","fin","ack"]}' ]; }
wait_until 10 "SIGHUP to queue every class" queued_all
expect "rule on any: log rules" "$(log_rules)" 0
connect a4 "$LAB_SERVER_V4"
kernel_queued=$(kernel_queue_field router 0 8)
rules_stop

# The segments the capture takes, in the order the hook saw them: SYN, FIN and RST segments, and
# every segment from the first FIN on; each at its arrival on the router (client's on to-client,
# server's on to-server), both captures on one clock.
captured_on_wire() {
  local port=$1 client server
  client=$(wire to-client "$port" '[.[] | select(.from == "client")]')
  server=$(wire to-server "$port" '[.[] | select(.from == "server")]')
  jq -n -c --argjson c "$client" --argjson s "$server" '
    ($c + $s | sort_by(.t_us)) as $all
    | ([$all[] | select(.fin) | .t_us] | min) as $fin
    | [$all[] | select(.syn or .fin or .rst or ($fin != null and .t_us >= $fin))
       | "\(.from) \(.flags)"]'
}
queued_expected=0
for name in o4 o6 q4 q6 n4 h6 a4; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name result" "$(jq -r .result <<<"$o")" clean
  expect "$name incomplete" "$(jq -r .incomplete <<<"$o")" false
  expect "$name timeline = the wire, segment for segment" \
    "$(jq -c '[.timeline[] | "\(.from) \(.flags)"]' <<<"$o")" "$(captured_on_wire "$port")"
  verdicts=$(jq -c '[.timeline[] | .verdict] | unique' <<<"$o")
  case $name in
    o* | n*) expect "$name verdicts" "$verdicts" '["observed"]' ;;
    h*)
      expect "$name server FIN retransmissions = tcpdump's" \
        "$(jq .fin_retransmits.server <<<"$o")" \
        "$(($(wire to-server "$port" 'fins("server") | length') - 1))"
      expect "$name final ACKs dropped" "$(jq .final_acks.dropped <<<"$o")" 1
      expect "$name verdicts of the client's ack class (queued)" \
        "$(jq -c '[.timeline[] | select(.from == "client" and (.flags | test("[SFR]") | not)) | .verdict] | unique' <<<"$o")" \
        '["accept","drop"]'
      # The server's ACK of the client's FIN mostly rides on its own FIN; a pure one, when
      # there is one, is logged (and the kernel's queue count below would see it queued).
      expect "$name verdicts of the server's ack class (logged, if any)" \
        "$(jq -c '[.timeline[] | select(.from == "server" and (.flags | test("[SFR]") | not)) | .verdict] | unique - ["observed"]' <<<"$o")" \
        '[]'
      queued_expected=$((queued_expected + $(jq '[.timeline[] | select(.from == "client" and (.flags | test("[SFR]") | not))] | length' <<<"$o")))
      ;;
    q*)
      expect "$name server FIN retransmissions = tcpdump's" \
        "$(jq .fin_retransmits.server <<<"$o")" \
        "$(($(wire to-server "$port" 'fins("server") | length') - 1))"
      expect "$name final ACKs dropped" "$(jq .final_acks.dropped <<<"$o")" 1
      expect "$name verdicts of the ack class (queued)" \
        "$(jq -c '[.timeline[] | select(.flags | test("[SFR]") | not) | .verdict] | unique' <<<"$o")" \
        '["accept","drop"]'
      expect "$name verdicts of SYN, FIN, RST segments (logged)" \
        "$(jq -c '[.timeline[] | select(.flags | test("[SFR]")) | .verdict] | unique' <<<"$o")" \
        '["observed"]'
      queued_expected=$((queued_expected + $(jq '[.timeline[] | select(.flags | test("[SFR]") | not)] | length' <<<"$o")))
      ;;
    a*)
      expect "$name verdicts" "$verdicts" '["accept"]'
      queued_expected=$((queued_expected + $(jq '.timeline | length' <<<"$o")))
      ;;
  esac
done
expect "packets the kernel queued" "$kernel_queued" "$queued_expected"
expect "packets finwave queued" "$(finwave_stats .queue.queued)" "$queued_expected"
expect "copies lost on the log path" "$(finwave_stats .log.lost)" 0
expect "log overruns" "$(finwave_stats .log.enobufs)" 0
expect "queued segments read before a copy that came after them" \
  "$(finwave_stats .log.order_inversions)" 0
expect "logged = copies received" "$(finwave_stats .logged)" "$(finwave_stats .log.received)"

pass "observing queued nothing; a final_ack rule queued the ack class only, narrowed by port" \
  "the client's part of it ($queued_expected segments queued in all); every timeline matched tcpdump"
