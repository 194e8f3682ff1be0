#!/usr/bin/env bash
# Simultaneous close against real Linux stacks, tcpdump on both router interfaces as the witness
# (router mode, no rules). With a round trip of a fraction of a millisecond both FINs cross only
# if both ends close within tens of microseconds of each other: both peers run
# "at:T,shutdown,read-eof,close" with the same wall-clock time T (finwave-peer sleeps until just
# before T and spins to it). Every attempt, IPv4 and IPv6 alternately, must be reported as the
# wire shows it: simultaneous (closer both) exactly when neither FIN acknowledges the other, with
# every other figure agreeing too (lib: teardown_lib.sh); at least one attempt must be a
# simultaneous close. Prints the hit rate and how far apart the two ends woke.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
. "$here/finwave.sh"
. "$here/teardown_lib.sh"

attempts=${TEARDOWN_SIMULTANEOUS_ATTEMPTS:-20}
# Time for the server to start listening and the client to start and connect before T; on a
# loaded machine starting a process takes up to ~100 ms.
lead_ms=300

started=$(lab_now_ms)
teardown_setup teardown_simultaneous
teardown_finwave --linger 5

for ((i = 0; i < attempts; i++)); do
  address=$LAB_SERVER_V4
  ((i % 2)) && address=$LAB_SERVER_V6
  name="attempt_$i"
  at=$(($(lab_now_ms) + lead_ms))
  script="at:$at,shutdown,read-eof,close"
  teardown_server "$name" "$script"
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$TEARDOWN_PORT" \
    --io-timeout 5000 --script "$script" >"$WORK/$name.client.jsonl" ||
    fail "$name: client failed: $(tail -3 "$WORK/$name.client.jsonl")"
  lab_wait "$SERVER_PID" 10 || fail "$name: server failed: $(tail -3 "$WORK/$name.server.jsonl")"
  teardown_record "$name" "$address"
done
teardown_collect "$attempts"

hits=0
v6_hits=0
synced=0
for ((i = 0; i < attempts; i++)); do
  name="attempt_$i"
  check_against_wire "$name" >"$WORK/$name.summary"
  expect_outcome "$name" '.result == "clean" and .rst == null and
    ((.kind == "simultaneous") == (.closer == "both"))' "a clean close, closer both iff simultaneous"
  late_c=$(peer_field "$WORK/$name.client.jsonl" at late_us)
  late_s=$(peer_field "$WORK/$name.server.jsonl" at late_us)
  # Both ends on time (the target had not passed when their step began).
  if jq -en --argjson c "$late_c" --argjson s "$late_s" '$c < 1000 and $s < 1000' >/dev/null; then
    synced=$((synced + 1))
  fi
  kind=$(case_report "$name" '.outcomes[0].kind' | tr -d '"')
  if [[ "$kind" == simultaneous ]]; then
    hits=$((hits + 1))
    [[ "$(case_field "$name" 2)" == v6 ]] && v6_hits=$((v6_hits + 1))
  fi
  echo "$(cat "$WORK/$name.summary"); woke late by client ${late_c} us, server ${late_s} us"
done

((hits > 0)) ||
  fail "no simultaneous close in $attempts attempts ($synced with both ends on time): nothing tested"
pass "$hits of $attempts closes simultaneous ($v6_hits over IPv6; both ends on time in $synced)," \
  "every attempt agrees with tcpdump ($(($(lab_now_ms) - started)) ms)"
