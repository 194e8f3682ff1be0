#!/usr/bin/env bash
# Simultaneous close against real Linux stacks, tcpdump on both router interfaces as the witness
# (router mode, no rules). With a round trip of a fraction of a millisecond both FINs cross only
# if both ends close within tens of microseconds of each other: on every connection both peers
# run "at-next:P,shutdown,read-eof,close", so both ends close at the same wall-clock tick
# (finwave-peer sleeps until just before it and spins to it). One server process serves every
# attempt and one client process per family makes them one after the other, so that no process
# start-up delays a tick. Every attempt (half IPv4, half IPv6) must be reported as the wire shows
# it: simultaneous (closer both) exactly when neither FIN acknowledges the other, clean, with
# every other figure agreeing too (lib: teardown_lib.sh); at least one attempt must be a
# simultaneous close. Prints each attempt, how late each end woke, and the hit rate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

attempts=${TEARDOWN_SIMULTANEOUS_ATTEMPTS:-20}
period_ms=150
script="at-next:$period_ms,shutdown,read-eof,close"

started=$(lab_now_ms)
teardown_setup teardown_simultaneous
teardown_finwave --linger 5

teardown_server simultaneous "$script" "$TEARDOWN_PORT" "$attempts"
v4=$((attempts - attempts / 2))
for family in v4 v6; do
  address=$LAB_SERVER_V4 count=$v4
  [[ $family == v6 ]] && address=$LAB_SERVER_V6 count=$((attempts - v4))
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$TEARDOWN_PORT" \
    --connections "$count" --io-timeout "$TEARDOWN_IO_TIMEOUT_MS" --script "$script" \
    >"$WORK/$family.client.jsonl" ||
    fail "$family client failed: $(tail -3 "$WORK/$family.client.jsonl")"
done
lab_wait "$SERVER_PID" 10 || fail "server failed: $(tail -3 "$WORK/simultaneous.server.jsonl")"

# attempts FAMILY — one line per connection of that family's client: name, family, client
# endpoint, how late the client and the server woke (microseconds after their tick, matched by
# the client's endpoint; a figure in the thousands means the tick had passed).
attempts() {
  jq -rs --arg f "$1" --slurpfile server "$WORK/simultaneous.server.jsonl" '
    # The server listens on "::": it sees an IPv4 client as [::ffff:a.b.c.d]:port.
    ([$server[] | select(.event == "accept")
      | {key: (.remote | sub("^\\[::ffff:(?<v4>[0-9.]+)\\]"; "\(.v4)")), value: "\(.conn)"}]
     | from_entries) as $server_conn
    | ([$server[] | select(.event == "at_next") | {key: "\(.conn)", value: .late_us}]
       | from_entries) as $server_late
    | ([.[] | select(.event == "connect") | {key: "\(.conn)", value: .local}] | from_entries)
      as $local
    | .[] | select(.event == "at_next") | $local["\(.conn)"] as $c
    | "\($f)_\(.conn) \($f) \($c) \(.late_us) \($server_late[$server_conn[$c]])"
  ' "$WORK/$1.client.jsonl"
}
{ attempts v4 && attempts v6; } >"$WORK/attempts"
[[ "$(wc -l <"$WORK/attempts")" -eq "$attempts" ]] ||
  fail "$(wc -l <"$WORK/attempts") of $attempts connections ran their script:" \
    "$(cat "$WORK/attempts")"
awk '{ print $1, $2, $3, 0 }' "$WORK/attempts" >"$WORK/cases"
teardown_collect "$attempts"

hits=0 v6_hits=0 on_time=0
while read -r name family _ late_client late_server; do
  check_against_wire "$name" >"$WORK/$name.summary"
  echo "$(<"$WORK/$name.summary"); woke late by client $late_client us, server $late_server us"
done <"$WORK/attempts"
# One jq run for the rest: every attempt clean, closer both iff simultaneous; the counts. Clean,
# or reset in TIME_WAIT: on an attempt that missed the tick, veth can swap the passive side's ACK
# of fin1 and its FIN (sent from two CPUs); the active side in TIME_WAIT answers the stale ACK,
# which meets a closed socket and draws an RST (see router_churn_test.sh). The kernel did that,
# when scheduling put the two segments on two CPUs, and finwave agreed with the wire above.
read -r bad hits v6_hits on_time < <(jq -rn --rawfile attempts "$WORK/attempts" \
  --slurpfile report "$WORK/report.jsonl" '
  [$attempts | split("\n")[] | select(length > 0) | split(" ")
   | {name: .[0], family: .[1], on_time: ((.[3] | tonumber) < 1000 and (.[4] | tonumber) < 1000)}]
  as $attempts
  | ($report | map({key: .name, value: .outcomes[0]}) | from_entries) as $o
  | [$attempts[] | select($o[.name] |
       ((.result == "clean" and .rst == null) or (.result == "reset" and .rst.stage == "time_wait")
        | not) or ((.kind == "simultaneous") != (.closer == "both"))) | .name] as $bad
  | [$attempts[] | select($o[.name].kind == "simultaneous")] as $hits
  | [($bad | join(",") | if . == "" then "-" else . end), ($hits | length),
     ([$hits[] | select(.family == "v6")] | length), ([$attempts[] | select(.on_time)] | length)]
  | map(tostring) | join(" ")')
[[ "$bad" == - ]] ||
  fail "$bad: expected clean closes (or a TIME_WAIT reset), closer both iff simultaneous: $(case_outcome "${bad%%,*}")"

((hits > 0)) ||
  fail "no simultaneous close in $attempts attempts ($on_time with both ends on time):" \
    "nothing tested"
pass "$hits of $attempts closes simultaneous ($v6_hits of them over IPv6; both ends woke within" \
  "1 ms of the tick in $on_time), every attempt agrees with tcpdump" \
  "($(($(lab_now_ms) - started)) ms)"
