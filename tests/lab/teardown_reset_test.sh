#!/usr/bin/env bash
# Resets (SO_LINGER 0, the peer's `abort` step) against real Linux stacks, tcpdump on both router
# interfaces as the witness (router mode, no rules), over IPv4 and IPv6:
#   client_abort      the client aborts before any FIN: rst.from client, stage before_fin,
#                     closer none, kind reset
#   server_abort      the server aborts before any FIN: rst.from server, stage before_fin
#   server_abort_fin  the client half-closes, the server reads EOF and aborts: rst.from server,
#                     stage fin_wait, closer client, kind reset
#   client_abort_fin  the server half-closes, the client reads EOF and aborts: rst.from client,
#                     stage fin_wait, closer server, kind reset
# The side that did not abort must see ECONNRESET (wait-rst), and finwave's figures (closer,
# kind, result, FINs and RSTs per side with their sequence numbers, rst.from and rst.stage) must
# be the wire's (lib: teardown_lib.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

started=$(lab_now_ms)
teardown_setup teardown_reset
teardown_finwave --linger 5

for address in "$LAB_SERVER_V4" "$LAB_SERVER_V6"; do
  f=v4
  [[ "$address" == *:* ]] && f=v6
  teardown_case "client_abort_$f" "$address" read:1000,wait-rst send:1000,hold:20,abort
  teardown_case "server_abort_$f" "$address" read:1000,abort send:1000,wait-rst
  teardown_case "server_abort_fin_$f" "$address" read-eof,abort send:1000,shutdown,wait-rst
  teardown_case "client_abort_fin_$f" "$address" send:1000,shutdown,wait-rst \
    read:1000,read-eof,abort
done
teardown_collect 8

# expect_reset CASE FROM STAGE CLOSER — the outcome and the wire both say so.
expect_reset() {
  local name=$1 from=$2 stage=$3 closer=$4
  check_against_wire "$name"
  expect_wire "$name" ".rst.from == \"$from\" and .rst.stage == \"$stage\"" \
    "expected the first RST from the $from at $stage"
  expect_outcome "$name" ".result == \"reset\" and .kind == \"reset\" and .closer == \"$closer\" and
    .rst.from == \"$from\" and .rst.stage == \"$stage\" and .sides_known" \
    "expected a reset from the $from at $stage, closer $closer"
}

for f in v4 v6; do
  expect_reset "client_abort_$f" client before_fin none
  expect_reset "server_abort_$f" server before_fin none
  expect_reset "server_abort_fin_$f" server fin_wait client
  expect_reset "client_abort_fin_$f" client fin_wait server
done

pass "8 resets agree with tcpdump ($(($(lab_now_ms) - started)) ms)"
