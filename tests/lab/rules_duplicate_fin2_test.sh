#!/usr/bin/env bash
# rules/examples/duplicate-fin2.toml in router mode, IPv4 and IPv6 at once: the server's FIN
# passes and two copies follow 5 ms apart from finwave's raw socket. tcpdump on to-client sees
# three server FINs with one sequence number; on to-server only the original exists. The copies
# are not queued back to finwave (its timeline has one fin2; the kernel queued no more packets
# than finwave handled). The client answers the first copy from TIME_WAIT with a duplicate final
# ACK; the server's socket is gone by then (LAST_ACK -> CLOSED), so Linux answers that ACK with
# an RST, which ends the client's TIME_WAIT, and the client answers the second copy with an RST
# (or, when that RST comes after the second copy, a second duplicate ACK and a second RST): the
# outcome is a reset in time_wait from the server. Every figure is checked against tcpdump.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab rules_duplicate_fin2
rules_finwave "$FINWAVE_REPO/rules/examples/duplicate-fin2.toml" --settle 0.3 --linger 5
rules_both send:100,close
kernel_queued=$(kernel_queue_field router 0 8)
rules_stop

segments=0 fins=0
for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name server FINs sent (to-server)" "$(wire to-server "$port" 'fins("server") | length')" 1
  expect "$name server FINs delivered: original + 2 copies (to-client)" \
    "$(wire to-client "$port" 'fins("server") | length')" 3
  expect "$name server FIN sequence numbers (to-client)" \
    "$(wire to-client "$port" '[fins("server")[] | .seq] | unique | length')" 1
  # spacing_ms = 5: copies must be spread, not bunched; a loaded machine may add some ms
  # (precision is measured by deploy/bench.sh, not asserted here). The first copy is spaced
  # from the moment finwave had the original, which is when it reached the router (to-server),
  # not when it left (to-client): the original's own trip through the queue can take ms of
  # that spacing on a busy machine.
  arrived=$(wire to-server "$port" 'fins("server")[0].t_us')
  expect "$name copies spaced at least 4 ms apart, at most 50 (to-server arrival, to-client copies)" \
    "$(wire to-client "$port" "([$arrived] + ([fins(\"server\")[] | .t_us] | .[1:])) as \$t | [range(1; \$t | length) | ((\$t[.] - \$t[. - 1]) / 1000) | (. >= 4 and . <= 50)]")" \
    "[true,true]"
  expect "$name fin2 in finwave's timeline" \
    "$(jq '[.timeline[] | select(.from == "server" and .role == "fin2")] | length' <<<"$o")" 1
  expect "$name fin2 duplicated with 2 copies (finwave's timeline)" \
    "$(jq -c '[.timeline[] | select(.role == "fin2") | {verdict, copies}]' <<<"$o")" \
    '[{"verdict":"duplicate","copies":2}]'
  expect "$name server FIN retransmits (finwave)" "$(jq .fin_retransmits.server <<<"$o")" 0
  expect "$name final ACKs seen (finwave = to-client)" "$(jq .final_acks.seen <<<"$o")" \
    "$(wire to-client "$port" 'final_acks("client") | length')"
  # The client answers the first FIN with the final ACK and each copy that finds it still in
  # TIME_WAIT with another; the first of those reaches the closed server, whose RST ends
  # TIME_WAIT, and a copy after that RST draws the client's RST instead. Usually one copy is
  # answered each way; when the router is slow to pass the first duplicate ACK (it is queued),
  # the second copy finds TIME_WAIT too. Either way each copy is answered exactly once.
  acks=$(wire to-server "$port" 'final_acks("client") | length')
  [[ "$acks" == 2 || "$acks" == 3 ]] ||
    fail "$name final ACKs (to-server): $acks, expected 2 or 3 (one + one per copy answered in TIME_WAIT)"
  expect "$name final ACKs dropped (finwave)" "$(jq .final_acks.dropped <<<"$o")" 0
  expect "$name actions" "$(jq -c .actions <<<"$o")" \
    '[{"rule":"duplicate-fin2","role":"fin2","action":"duplicate","count":1}]'
  expect "$name result" "$(jq -r .result <<<"$o")" reset
  expect "$name rst" "$(jq -c '.rst | {from, stage}' <<<"$o")" '{"from":"server","stage":"time_wait"}'
  expect "$name server RSTs (to-server): one per duplicate final ACK" \
    "$(wire to-server "$port" 'rsts("server") | length')" $((acks - 1))
  expect "$name client RSTs (to-client): one per copy after TIME_WAIT ended" \
    "$(wire to-client "$port" 'rsts("client") | length')" $((3 - acks))
  segments=$((segments + $(jq .segments <<<"$o")))
  # A rule on fin2 queues the FIN class only: every other segment is logged.
  fins=$((fins + $(jq '[.timeline[] | select(.flags | test("F")) | select(.flags | test("R") | not)] | length' <<<"$o")))
done
expect "stats actions.duplicated" "$(finwave_stats .actions.duplicated)" 2
expect "stats actions.copies_sent" "$(finwave_stats .actions.copies_sent)" 4
expect "stats actions.copy_errors" "$(finwave_stats .actions.copy_errors)" 0
queued=$(finwave_stats .queue.queued)
expect "packets queued (finwave = kernel)" "$queued" "$kernel_queued"
expect "packets queued = FINs in the outcomes" "$queued" "$fins"
expect "packets queued + logged = segments in the outcomes" \
  "$((queued + $(finwave_stats .logged)))" "$segments"
expect "timeline verdicts of segments not queued: observed" \
  "$(outcomes '.timeline[] | select(.flags | test("F") | not) | .verdict' | sort -u)" '"observed"'

pass "duplicate-fin2: IPv4 and IPv6 three server FINs on to-client, one on to-server, copies not queued back, as tcpdump saw"
