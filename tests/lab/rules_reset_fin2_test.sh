#!/usr/bin/env bash
# rules/examples/reset-fin2.toml in router mode, IPv4 and IPv6 at once: the server's FIN is
# replaced by an RST. The client half-closed and is still reading (shutdown, read-until-error),
# so its application sees ECONNRESET. The server never hears back and retransmits its FIN until
# tcp_orphan_retries (1 here) runs out; each retransmission is a fin2 too and is replaced as
# well. On the wire: not one server FIN reaches the client (to-client), one RST for each server
# FIN on to-server, and finwave's counts are tcpdump's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab rules_reset_fin2
lab_exec server sysctl -qw net.ipv4.tcp_orphan_retries=1
# A settle window longer than the server's retries keeps every retransmission in the outcome.
rules_finwave "$FINWAVE_REPO/rules/examples/reset-fin2.toml" --settle 2.5 --linger 5
rules_both send:100,shutdown,read-until-error
# The server must have given up before finwave stops, or a last FIN would pass unreplaced.
deadline=$((SECONDS + 10))
while [ -n "$(lab_exec server ss -Htn state last-ack "( sport = :$RULES_PORT )")" ]; do
  [ $SECONDS -lt $deadline ] || fail "the server still retransmits its FIN after 10 s"
  sleep 0.1
done
rules_stop

total=0
for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name client read" "$(peer_field "$WORK/client-$name.jsonl" read_until_error error)" ECONNRESET
  expect "$name result" "$(jq -r .result <<<"$o")" reset
  expect "$name rst" "$(jq -c '.rst | {from, stage}' <<<"$o")" '{"from":"server","stage":"fin_wait"}'
  fins=$(wire to-server "$port" 'fins("server") | length')
  expect "$name server FIN retransmits (finwave = to-server FINs - 1)" \
    "$(jq .fin_retransmits.server <<<"$o")" $((fins - 1))
  expect "$name server FINs delivered (to-client)" "$(wire to-client "$port" 'fins("server") | length')" 0
  expect "$name server RSTs delivered (to-client) = server FINs sent (to-server)" \
    "$(wire to-client "$port" 'rsts("server") | length')" "$fins"
  expect "$name RSTs keep the FIN's seq and ack (to-client)" \
    "$(wire to-client "$port" '[rsts("server")[] | [.seq, .ack]] | unique | length')" 1
  expect "$name RST seq = server FIN seq" \
    "$(wire to-client "$port" 'rsts("server")[0].seq')" "$(wire to-server "$port" 'fins("server")[0].seq')"
  expect "$name actions" "$(jq -c .actions <<<"$o")" \
    "[{\"rule\":\"reset-fin2\",\"role\":\"fin2\",\"action\":\"reset\",\"count\":$fins}]"
  expect "$name final ACKs seen (finwave = to-client)" "$(jq .final_acks.seen <<<"$o")" \
    "$(wire to-client "$port" 'final_acks("client") | length')"
  total=$((total + fins))
done
expect "stats actions.resets" "$(finwave_stats .actions.resets)" "$total"
expect "stats actions.reset_errors" "$(finwave_stats .actions.reset_errors)" 0

pass "reset-fin2: IPv4 and IPv6 clients read ECONNRESET; $total server FINs replaced by RSTs, none delivered, as tcpdump saw"
