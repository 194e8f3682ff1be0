#!/usr/bin/env bash
# Router mode, no rules: 1000 short connections over IPv4 and 1000 over IPv6 all complete
# through finwave; every queued packet gets exactly one verdict (queued = accepted + dropped,
# none held at exit, the kernel agrees), and every connection is reported exactly once, clean.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin churn
work=$LAB_WORK
count=1000

finwave_start router "$work/finwave.jsonl" --port 5000 --settle 0.2
lab_bg server "$work/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --connections $((2 * count)) --script read-eof,close --quiet --ready-file "$work/server.ready" >/dev/null
wait_for_file "$work/server.ready" 10 || fail "the server did not start within 10 s"

started=$(date +%s%N)
for address in 198.18.2.2 2001:db8:2::2; do
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port 5000 \
    --connections "$count" --parallel 8 --script send:200,close --quiet >"$work/client-$address.jsonl" ||
    fail "client ($address) failed: $(cat "$work/client-$address.jsonl")"
  ok=$(jq -r 'select(.event == "summary") | .ok' "$work/client-$address.jsonl")
  [ "$ok" -eq "$count" ] || fail "$ok of $count connections to $address succeeded"
done
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))

# Every outcome before the kernel's queue counter is read: the last of them comes --settle after
# the last segment of its connection, so the counter is final by then.
wait_for 15 "$((2 * count)) outcomes" at_least $((2 * count)) event_count "$work/finwave.jsonl" outcome ||
  fail "$(event_count "$work/finwave.jsonl" outcome) outcomes after 15 s for $((2 * count)) connections"
kernel_queued=$(kernel_queue_field router 0 8)
finwave_stop
check_verdict_accounting

queued=$(finwave_stats .queue.queued)
[ "$queued" -eq "$kernel_queued" ] || fail "finwave counted $queued queued, the kernel $kernel_queued"
[ "$(finwave_stats .kernel.queue_dropped)" -eq 0 ] || fail "kernel queue drops"
[ "$(finwave_stats .kernel.user_dropped)" -eq 0 ] || fail "kernel dropped packets for a full socket buffer"
reported=$(outcomes | wc -l)
[ "$reported" -eq $((2 * count)) ] || fail "$reported outcomes for $((2 * count)) connections"
# Clean, or reset only after both FINs were acknowledged: on veth a stack's delayed ACK and its
# FIN can leave on two CPUs and arrive swapped; the peer in TIME_WAIT answers the stale ACK with
# an ACK, which meets a closed socket and draws an RST. The kernel did that, not finwave.
unclean='select(.result != "clean" and (.rst == null or .rst.stage != "time_wait"))'
bad=$(outcomes "$unclean" | wc -l)
[ "$bad" -eq 0 ] || fail "$bad outcomes neither clean nor a TIME_WAIT reset, e.g. $(outcomes "$unclean" | head -1)"
late_resets=$(outcomes 'select(.result == "reset")' | wc -l)
v6=$(outcomes 'select(.flow.server | startswith("["))' | wc -l)
[ "$v6" -eq "$count" ] || fail "$v6 IPv6 outcomes, expected $count"
# The kernel's memory of connections in teardown, read as finwave stopped: per family, one
# entry for each connection's client end (its own ephemeral port, kept out of reuse by the
# client's TIME_WAIT) and one for the server end, which all connections from the client share.
for family in v4 v6; do
  entries=$(finwave_stats ".teardown_set.$family")
  [ "$entries" = $((count + 1)) ] || fail "teardown set $family held $entries entries, expected $((count + 1))"
  refused=$(finwave_stats ".teardown_set.refused.$family")
  [ "$refused" = 0 ] || fail "teardown set $family refused $refused segments, expected none"
done

pass "$((2 * count)) connections in $elapsed_ms ms; $queued packets queued ($(( queued / (2 * count) )) per connection), all accepted, $reported outcomes ($late_resets reset in TIME_WAIT); teardown sets held $((count + 1)) entries per family"
