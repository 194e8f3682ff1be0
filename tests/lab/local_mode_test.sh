#!/usr/bin/env bash
# Local mode, no rules: finwave on the client's own host sees its connections exactly once —
# over loopback inside the namespace (where OUTPUT sees both directions) and across the router
# to the server (OUTPUT + INPUT) — for IPv4 and IPv6, bulk and short connections alike.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin local
work=$LAB_WORK
count=500

finwave_start client "$work/finwave.jsonl" --mode local --port 5000 --settle 0.2
lab_bg client "$work/server-lo.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --connections $((2 * count + 1)) --script read-eof,close --quiet --ready-file "$work/lo.ready" >/dev/null
lab_bg server "$work/server-remote.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --connections $((count + 1)) --script read-eof,close --quiet --ready-file "$work/remote.ready" >/dev/null
wait_for_file "$work/lo.ready" 10 || fail "the server did not start within 10 s"
wait_for_file "$work/remote.ready" 10 || fail "the server did not start within 10 s"

run_client() {  # ADDRESS CONNECTIONS SCRIPT
  local log="$work/client-$1-$2.jsonl"
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$1" --port 5000 --connections "$2" \
    --parallel 8 --script "$3" --quiet >"$log" || fail "client to $1 failed: $(tail -3 "$log")"
}
run_client 127.0.0.1 1 send:10000000,close
run_client 127.0.0.1 "$count" send:200,close
run_client ::1 "$count" send:200,close
run_client 198.18.2.2 1 send:10000000,close
run_client 2001:db8:2::2 "$count" send:200,close
expected=$((3 * count + 2))

# Every outcome before the kernel's queue counter is read: the last of them comes --settle after
# the last segment of its connection, so the counter is final by then.
wait_for 15 "$expected outcomes" at_least "$expected" event_count "$work/finwave.jsonl" outcome ||
  fail "$(event_count "$work/finwave.jsonl" outcome) outcomes after 15 s for $expected connections"
kernel_queued=$(kernel_queue_field client 0 8)
finwave_stop
check_verdict_accounting

queued=$(finwave_stats .queue.queued)
[ "$queued" -eq "$kernel_queued" ] || fail "finwave counted $queued queued, the kernel $kernel_queued"
reported=$(outcomes | wc -l)
[ "$reported" -eq "$expected" ] || fail "$reported outcomes for $expected connections"
# Clean, or reset only after both FINs were acknowledged (veth can swap a delayed ACK and a FIN
# sent from two CPUs; see router_churn_test.sh). No FIN may be retransmitted: with the inbound
# hook at INPUT, TCP early demux made released packets meet a stale socket and vanish, and the
# peer retransmitted its FIN — the capture hooks PREROUTING for that reason.
# The two 10 MB connections may show one client FIN retransmission: their FIN rides at the tail
# of a GSO packet of tens of KB, and the client's tail-loss probe (its timeout is about 2 ms at
# these round-trip times) can go out before the ACK is back when both cores are busy with the
# transfer, whether the FIN waited in the queue for finwave to get a CPU or the server for its
# own. The probe is spurious: nothing was lost (every verdict is accounted for above, the server
# then acknowledged everything at once, and the kernel's backlog drop counters did not move in
# such runs). Seen in 3 of about 30 runs. The short connections, where the early-demux loss
# showed, stay strict.
bulk='(([.timeline[] | select(.role == "fin1")][0].len // 0) > 1000)'
unclean="select((.result != \"clean\" and (.rst == null or .rst.stage != \"time_wait\")) or
  .fin_retransmits.server != 0 or .fin_retransmits.client > 1 or
  (.fin_retransmits.client != 0 and ($bulk | not)))"
bad=$(outcomes "$unclean" | wc -l)
[ "$bad" -eq 0 ] || fail "$bad outcomes unclean or with FIN retransmissions, e.g. $(outcomes "$unclean" | head -1)"
# On loopback OUTPUT sees both directions and INPUT is not hooked: a segment captured twice
# would show up as a retransmitted FIN or a second final ACK. A second final ACK that the
# server answered with an RST was real (a copy captured twice reaches no one): the client
# repeated its ACK after the server's delayed ack1 and fin2, and the server, closed by then,
# reset. Seen in 2 of 1001 loopback connections once the log path let segments pass unheld.
loopback='select(.flow.server == "127.0.0.1:5000" or .flow.server == "[::1]:5000")'
answered='(.final_acks.seen == 2 and .rst != null and .rst.from == "server" and .rst.stage == "time_wait")'
doubled=$(outcomes "$loopback | select((.fin_retransmits.client != 0 and ($bulk | not)) or
  .fin_retransmits.server != 0 or (.final_acks.seen != 1 and ($answered | not)))" | wc -l)
[ "$doubled" -eq 0 ] || fail "$doubled loopback outcomes look double-captured, e.g. $(outcomes "$loopback | select(.final_acks.seen != 1 and ($answered | not))" | head -1)"
[ "$(outcomes "$loopback" | wc -l)" -eq $((2 * count + 1)) ] || fail "loopback outcomes missing"
# The 10 MB transfers must not have been queued: at most 10 packets per connection on average.
[ "$queued" -le $((10 * expected)) ] || fail "$queued packets queued for $expected connections"

pass "local mode: $expected connections (loopback v4/v6 and routed), $queued packets queued, each once, all clean"
