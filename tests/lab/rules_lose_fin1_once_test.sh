#!/usr/bin/env bash
# rules/examples/lose-fin1-once.toml in router mode, IPv4 and IPv6 at once: each connection's
# first FIN is dropped once. The client retransmits it after an RTO (retx = true, which the rule
# spares), and the close is clean. finwave's figures must be the wire's: two client FINs on
# to-client, one on to-server, one final ACK each side.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab rules_lose_fin1_once
rules_finwave "$FINWAVE_REPO/rules/examples/lose-fin1-once.toml" --settle 0.3 --linger 5
rules_both send:100,close
rules_stop

for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name result" "$(jq -r .result <<<"$o")" clean
  expect "$name closer" "$(jq -r .closer <<<"$o")" client
  expect "$name rst" "$(jq -c .rst <<<"$o")" null
  expect "$name client FIN retransmits (finwave)" "$(jq .fin_retransmits.client <<<"$o")" 1
  expect "$name client FINs sent (to-client)" "$(wire to-client "$port" 'fins("client") | length')" 2
  expect "$name client FINs forwarded (to-server)" "$(wire to-server "$port" 'fins("client") | length')" 1
  expect "$name server FIN retransmits (finwave = to-server FINs - 1)" \
    "$(jq .fin_retransmits.server <<<"$o")" "$(wire to-server "$port" 'fins("server") | length - 1')"
  expect "$name final ACKs seen (finwave = to-client)" "$(jq .final_acks.seen <<<"$o")" \
    "$(wire to-client "$port" 'final_acks("client") | length')"
  expect "$name final ACKs dropped (finwave)" "$(jq .final_acks.dropped <<<"$o")" 0
  expect "$name final ACKs forwarded (to-server)" "$(wire to-server "$port" 'final_acks("client") | length')" \
    "$(jq .final_acks.seen <<<"$o")"
  expect "$name actions" "$(jq -c .actions <<<"$o")" \
    '[{"rule":"lose-fin1-once","role":"fin1","action":"drop","count":1}]'
  # The timeline names the dropped FIN fin1 and its retransmission a retransmitted fin1.
  expect "$name timeline fin1" "$(jq -c '[.timeline[] | select(.role == "fin1") | [.retx, .verdict]]' <<<"$o")" \
    '[[false,"drop"],[true,"accept"]]'
  expect "$name RSTs on the wire" "$(wire to-server "$port" '[.[] | select(.rst)] | length')" 0
done
expect "stats actions.dropped" "$(finwave_stats .actions.dropped)" 2

pass "lose-fin1-once: IPv4 and IPv6 clean after one client FIN retransmission, as tcpdump saw"
