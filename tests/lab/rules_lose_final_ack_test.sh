#!/usr/bin/env bash
# rules/examples/lose-final-ack.toml in router mode, one IPv4 and one IPv6 connection at once:
# every final ACK is dropped, so the server (passive closer, orphaned in LAST_ACK) retransmits its
# FIN until tcp_orphan_retries runs out, and the client (TIME_WAIT) acks each retransmission in
# vain. finwave must report a timeout whose figures are the wire's: the server's FIN
# retransmissions as tcpdump counts them on to-server, every final ACK the client sent (to-client)
# dropped, none of them forwarded (to-server).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab rules_lose_final_ack
# One orphan retry gives up after about 0.6 s instead of minutes (the sysctl is per namespace and
# covers IPv6 too).
lab_exec server sysctl -qw net.ipv4.tcp_orphan_retries=1
rules_finwave "$FINWAVE_REPO/rules/examples/lose-final-ack.toml" --settle 0.3 --linger 2
rules_both send:100,close 15
rules_stop

total_dropped=0
for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name result" "$(jq -r .result <<<"$o")" timeout
  expect "$name closer" "$(jq -r .closer <<<"$o")" client
  kind=$(jq -r .kind <<<"$o")
  [[ $kind == three_way || $kind == four_way ]] || fail "$name: kind $kind"
  expect "$name rst" "$(jq -c .rst <<<"$o")" null
  expect "$name client FIN retransmits (finwave = to-server FINs - 1)" \
    "$(jq .fin_retransmits.client <<<"$o")" "$(wire to-server "$port" 'fins("client") | length - 1')"
  server_retx=$(jq .fin_retransmits.server <<<"$o")
  expect "$name server FIN retransmits (finwave = to-server FINs - 1)" \
    "$server_retx" "$(wire to-server "$port" 'fins("server") | length - 1')"
  [ "$server_retx" -ge 1 ] || fail "$name: the server never retransmitted its FIN"
  sent=$(wire to-client "$port" 'final_acks("client") | length')
  expect "$name final ACKs seen (finwave = to-client)" "$(jq .final_acks.seen <<<"$o")" "$sent"
  expect "$name final ACKs dropped (finwave = to-client)" "$(jq .final_acks.dropped <<<"$o")" "$sent"
  expect "$name final ACKs forwarded (to-server)" "$(wire to-server "$port" 'final_acks("client") | length')" 0
  # Each server FIN that reached the client drew one final ACK.
  expect "$name final ACKs = server FINs on to-client" "$sent" \
    "$(wire to-client "$port" 'fins("server") | length')"
  expect "$name actions" "$(jq -c .actions <<<"$o")" \
    "[{\"rule\":\"lose-final-ack\",\"role\":\"final_ack\",\"action\":\"drop\",\"count\":$sent}]"
  expect "$name RSTs on the wire" "$(wire to-client "$port" '[.[] | select(.rst)] | length')" 0
  total_dropped=$((total_dropped + sent))
done
expect "stats actions.dropped" "$(finwave_stats .actions.dropped)" "$total_dropped"
expect "stats queue.dropped" "$(finwave_stats .queue.dropped)" "$total_dropped"

pass "lose-final-ack: IPv4 and IPv6 time out; $total_dropped final ACKs dropped, as tcpdump saw"
