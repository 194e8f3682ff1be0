#!/usr/bin/env bash
# The teardown tracker against real Linux stacks, with tcpdump on both router interfaces as the
# witness (router mode, no rules), over IPv4 and IPv6:
#   client_first  the client closes first; the server waits 100 ms after EOF before closing, so
#                 its delayed ACK of fin1 goes out alone: four-way (whatever the wire shows,
#                 finwave must say the same)
#   server_first  the server closes first, the client closes 50 ms after EOF
#   three_way     the server closes as soon as it reads EOF: ack1 rides on fin2 (checked on the
#                 wire: no segment of the server acknowledges fin1 before its FIN). Whether it
#                 rides depends on the server's close coming before its delayed ACK fires, which
#                 a loaded machine can miss: three attempts, at least one must be three-way on
#                 the wire, and finwave must agree with the wire on every one
#   half_close    the client shuts down its write side, the server then sends 50000 bytes and
#                 closes; the client reads them all: data_after_fin.bytes == 50000, which is
#                 also the server's FIN sequence number minus its sequence number at fin1
# For each: finwave's closer, kind, result, FINs per side (count and sequence number), FIN
# retransmits, RSTs, final ACKs and half-close bytes equal what the wire shows, and its timeline
# holds every handshake, FIN and FIN-acknowledging segment of the wire (lib: teardown_lib.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

started=$(lab_now_ms)
teardown_setup teardown_basic
teardown_finwave --linger 5

half=50000
client_closes=send:1000,shutdown,read-eof,close
for address in "$LAB_SERVER_V4" "$LAB_SERVER_V6"; do
  f=v4
  [[ "$address" == *:* ]] && f=v6
  teardown_case "client_first_$f" "$address" read-eof,hold:100,close "$client_closes"
  teardown_case "server_first_$f" "$address" send:1000,shutdown,read-eof,close \
    read:1000,read-eof,hold:50,close
  for attempt in 1 2 3; do
    teardown_case "three_way_${f}_$attempt" "$address" read-eof,close "$client_closes"
  done
  teardown_case "half_close_$f" "$address" "read-eof,send:$half,close" "$client_closes"
done
teardown_collect 12

for f in v4 v6; do
  check_against_wire "client_first_$f"
  expect_outcome "client_first_$f" '.closer == "client" and .result == "clean" and .rst == null and
    .sides_known and .final_acks.seen >= 1 and .data_after_fin.bytes == 0' \
    "a clean close by the client"
  expect_outcome "client_first_$f" '.kind == "four_way" or .kind == "three_way"' \
    "four- or three-way"

  check_against_wire "server_first_$f"
  expect_outcome "server_first_$f" '.closer == "server" and .result == "clean" and .rst == null and
    .sides_known and .final_acks.seen >= 1' "a clean close by the server"

  three_way=0
  for attempt in 1 2 3; do
    name="three_way_${f}_$attempt"
    check_against_wire "$name"
    [[ "$(case_report "$name" '.wire.kind == "three_way"')" == true ]] || continue
    three_way=$((three_way + 1))
    expect_outcome "$name" '.closer == "client" and .kind == "three_way" and
      .result == "clean"' "a clean three-way close by the client"
  done
  ((three_way > 0)) || fail "three_way_$f: in none of 3 attempts did ack1 ride on fin2 on the wire"

  check_against_wire "half_close_$f"
  expect_wire "half_close_$f" ".data_after_fin == $half" \
    "the server did not send $half bytes after fin1"
  expect_outcome "half_close_$f" ".closer == \"client\" and .kind == \"four_way\" and
    .result == \"clean\" and .data_after_fin.bytes == $half" "a half-close with $half bytes"
  got=$(peer_field "$WORK/half_close_$f.client.jsonl" read_eof bytes)
  [[ "$got" == "$half" ]] ||
    fail "half_close_$f: the client read $got bytes after its FIN, not $half"
done

pass "12 teardowns agree with tcpdump ($(($(lab_now_ms) - started)) ms)"
