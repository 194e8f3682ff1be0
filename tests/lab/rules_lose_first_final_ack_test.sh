#!/usr/bin/env bash
# rules/examples/lose-first-final-ack.toml in router mode, IPv4 and IPv6 at once: only each
# connection's first final ACK is dropped. The server retransmits its FIN once, the client acks
# it again, that ACK goes through and the close is clean. finwave's figures must be the wire's:
# one server FIN retransmission (to-server), two final ACKs sent (to-client), one forwarded
# (to-server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab rules_lose_first_final_ack
rules_finwave "$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml" --settle 0.3 --linger 5
rules_both send:100,close
rules_stop

for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name result" "$(jq -r .result <<<"$o")" clean
  expect "$name closer" "$(jq -r .closer <<<"$o")" client
  expect "$name rst" "$(jq -c .rst <<<"$o")" null
  expect "$name server FIN retransmits (finwave)" "$(jq .fin_retransmits.server <<<"$o")" 1
  expect "$name server FIN retransmits (to-server FINs - 1)" \
    "$(wire to-server "$port" 'fins("server") | length - 1')" 1
  expect "$name client FIN retransmits (finwave = to-server FINs - 1)" \
    "$(jq .fin_retransmits.client <<<"$o")" "$(wire to-server "$port" 'fins("client") | length - 1')"
  expect "$name final ACKs seen (finwave)" "$(jq .final_acks.seen <<<"$o")" 2
  expect "$name final ACKs sent (to-client)" "$(wire to-client "$port" 'final_acks("client") | length')" 2
  expect "$name final ACKs dropped (finwave)" "$(jq .final_acks.dropped <<<"$o")" 1
  expect "$name final ACKs forwarded (to-server)" "$(wire to-server "$port" 'final_acks("client") | length')" 1
  expect "$name actions" "$(jq -c .actions <<<"$o")" \
    '[{"rule":"lose-first-final-ack","role":"final_ack","action":"drop","count":1}]'
  expect "$name RSTs on the wire" "$(wire to-server "$port" '[.[] | select(.rst)] | length')" 0
done
expect "stats actions.dropped" "$(finwave_stats .actions.dropped)" 2

pass "lose-first-final-ack: IPv4 and IPv6 clean after one FIN retransmission, as tcpdump saw"
