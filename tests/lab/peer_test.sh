#!/usr/bin/env bash
# finwave-peer across the lab, without finwave: bulk transfer integrity (v4), many short
# connections (v6), abort -> ECONNRESET at the peer (twice on the same client port with
# --reuse), half-close with data flowing after the client's FIN, SIGTERM on a server that runs
# until stopped, and usage errors (exit 2). tcpdump on the lab interfaces checks that the RSTs
# and FINs really went over the wire.
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_file "$FINWAVE_BIN_PEER" "cmake --build $FINWAVE_BUILD --target finwave-peer"
command -v jq >/dev/null || fail "jq is needed to read finwave-peer's JSON lines"
PEER="$FINWAVE_BIN_PEER"

# start_peer_server NAME ARGS... — finwave-peer server in the server namespace, logging to
# $LAB_DIR/NAME.server.log; returns once it listens. Sets SERVER_PID.
start_peer_server() {
  local name="$1"
  shift
  lab_bg server "$LAB_DIR/$name.server.log" "$PEER" server --ready-file "$LAB_DIR/$name.ready" \
    "$@" >/dev/null
  SERVER_PID="$LAB_LAST_PID"
  wait_for_file "$LAB_DIR/$name.ready" 5 ||
    fail "$name: server did not start: $(cat "$LAB_DIR/$name.server.log.err")"
}

# expect_peer_field LOG EVENT FIELD VALUE — the last EVENT line of LOG has FIELD == VALUE.
expect_peer_field() {
  expect "$(basename "$1"): $2.$3 (log: $1)" "$(peer_field "$1" "$2" "$3")" "$4"
}

lab_begin peer
start=$SECONDS

# --- usage errors ------------------------------------------------------------------------------
rc=0
"$PEER" client --connect "$LAB_SERVER_V4" --port 5000 --script 'send:100,frobnicate,close' \
  2>"$LAB_DIR/usage.err" || rc=$?
((rc == 2)) || fail "malformed script: exit $rc, expected 2"
grep -q "frobnicate" "$LAB_DIR/usage.err" || fail "usage error does not name the bad step"
for bad in 'send:' 'read:12x' 'close,send:1' 'sleep' 'read-eof:3' 'shutdown:up' 'send:1,,close'; do
  rc=0
  "$PEER" server --listen "$LAB_SERVER_V4" --port 5000 --script "$bad" 2>/dev/null || rc=$?
  ((rc == 2)) || fail "script '$bad': exit $rc, expected 2"
done
rc=0
"$PEER" client --connect not-an-address --port 5000 2>/dev/null || rc=$?
((rc == 2)) || fail "bad address: exit $rc, expected 2"
pass "malformed scripts and options exit 2 and name the bad step"

# --- 10 MB client -> server over IPv4 ----------------------------------------------------------
t0=$(lab_now_ms)
start_peer_server bulk --listen "$LAB_SERVER_V4" --port 5001 --connections 1
lab_exec client "$PEER" client --connect "$LAB_SERVER_V4" --port 5001 \
  --script send:10000000,shutdown,read-eof,close >"$LAB_DIR/bulk.client.log" ||
  fail "bulk: client failed (log: $LAB_DIR/bulk.client.log)"
lab_wait "$SERVER_PID" 30 || fail "bulk: server exited with $?"
expect_peer_field "$LAB_DIR/bulk.server.log" read_eof bytes 10000000
expect_peer_field "$LAB_DIR/bulk.server.log" read_eof intact true
expect_peer_field "$LAB_DIR/bulk.client.log" connect remote "$LAB_SERVER_V4:5001"
expect_peer_field "$LAB_DIR/bulk.client.log" summary ok 1
pass "10 MB over v4 arrives intact ($(($(lab_now_ms) - t0)) ms)"

# --- 200 short connections over IPv6 -----------------------------------------------------------
t0=$(lab_now_ms)
start_peer_server many --listen "$LAB_SERVER_V6" --port 5002 --connections 200 --quiet
lab_exec client "$PEER" client --connect "$LAB_SERVER_V6" --port 5002 --connections 200 \
  --parallel 20 --script send:100,shutdown,read-eof,close --quiet >"$LAB_DIR/many.client.log" ||
  fail "many: client failed: $(cat "$LAB_DIR/many.client.log")"
lab_wait "$SERVER_PID" 30 || fail "many: server exited with $?"
expect_peer_field "$LAB_DIR/many.client.log" summary ok 200
expect_peer_field "$LAB_DIR/many.client.log" summary failed 0
expect_peer_field "$LAB_DIR/many.server.log" summary ok 200
expect_peer_field "$LAB_DIR/many.server.log" summary bytes_received 20000
[[ "$(wc -l <"$LAB_DIR/many.client.log")" == 1 ]] || fail "many: --quiet printed more than the summary"
pass "200 short connections over v6 all succeed ($(($(lab_now_ms) - t0)) ms)"

# --- client abort -> server sees ECONNRESET; the same client port again with --reuse ----------
t0=$(lab_now_ms)
capture_start router to-server "$LAB_DIR/abort.pcap" 'tcp port 5003'
start_peer_server abort --listen "$LAB_SERVER_V4" --port 5003 --connections 2 \
  --script read:1000,wait-rst --io-timeout 5000
for i in 1 2; do
  lab_exec client "$PEER" client --connect "$LAB_SERVER_V4" --port 5003 --bind-port 40003 \
    --reuse --script send:1000,sleep:100,abort >"$LAB_DIR/abort$i.client.log" ||
    fail "abort: client run $i failed (log: $LAB_DIR/abort$i.client.log)"
  expect_peer_field "$LAB_DIR/abort$i.client.log" connect local "$LAB_CLIENT_V4:40003"
done
lab_wait "$SERVER_PID" 10 || fail "abort: server exited with $? (log: $LAB_DIR/abort.server.log)"
[[ "$(peer_events "$LAB_DIR/abort.server.log" wait_rst | jq -r '.error' | sort -u)" == ECONNRESET ]] ||
  fail "abort: server did not see ECONNRESET on both connections"
expect_peer_field "$LAB_DIR/abort.server.log" summary ok 2
# The server saw both RSTs, so they crossed the router: wait until tcpdump has written them.
wait_for 5 "2 RSTs in the capture" at_least 2 pcap_count "$LAB_DIR/abort.pcap" "$LAB_FILTER_RST" ||
  fail "abort: the router's capture has $(pcap_count "$LAB_DIR/abort.pcap" "$LAB_FILTER_RST") of the 2 RSTs after 5 s"
capture_stop "$LAB_DIR/abort.pcap"
rsts="$(capture_count "$LAB_DIR/abort.pcap" "$LAB_FILTER_RST")"
fins="$(capture_count "$LAB_DIR/abort.pcap" "$LAB_FILTER_FIN")"
((rsts == 2 && fins == 0)) || fail "abort: router saw $rsts RST and $fins FIN, expected 2 and 0"
pass "client abort -> server wait-rst reports ECONNRESET, twice from port 40003; 2 RST on the" \
  "wire ($(($(lab_now_ms) - t0)) ms)"

# --- half-close: the server sends after the client's FIN; server runs until SIGTERM -----------
t0=$(lab_now_ms)
capture_start client eth0 "$LAB_DIR/half.pcap" 'tcp port 5004'
start_peer_server half --listen "$LAB_SERVER_V6" --port 5004 --script read-eof,send:50000,close
lab_exec client "$PEER" client --connect "$LAB_SERVER_V6" --port 5004 \
  --script send:1000,shutdown,read-eof,close >"$LAB_DIR/half.client.log" ||
  fail "half-close: client failed (log: $LAB_DIR/half.client.log)"
expect_peer_field "$LAB_DIR/half.client.log" read_eof bytes 50000
expect_peer_field "$LAB_DIR/half.client.log" read_eof intact true
lab_kill "$SERVER_PID" TERM
lab_wait "$SERVER_PID" 5 || fail "half-close: server exited with $? after SIGTERM"
expect_peer_field "$LAB_DIR/half.server.log" read_eof bytes 1000
expect_peer_field "$LAB_DIR/half.server.log" summary ok 1
# Both FINs reached their peers, so they crossed the client's eth0: wait until tcpdump wrote them.
wait_for 5 "2 FINs in the capture" at_least 2 pcap_count "$LAB_DIR/half.pcap" "$LAB_FILTER_FIN" ||
  fail "half-close: the client's capture has $(pcap_count "$LAB_DIR/half.pcap" "$LAB_FILTER_FIN") of the 2 FINs after 5 s"
capture_stop "$LAB_DIR/half.pcap"
fins="$(capture_count "$LAB_DIR/half.pcap" "$LAB_FILTER_FIN")"
rsts="$(capture_count "$LAB_DIR/half.pcap" "$LAB_FILTER_RST")"
((fins == 2 && rsts == 0)) || fail "half-close: client saw $fins FIN and $rsts RST, expected 2 and 0"
pass "half-close over v6: 50000 bytes after the client's shutdown arrive intact, 2 FIN, no RST;" \
  "SIGTERM exits 0 ($(($(lab_now_ms) - t0)) ms)"

# --- a failing script exits 1 ------------------------------------------------------------------
rc=0
lab_exec client "$PEER" client --connect "$LAB_SERVER_V4" --port 5999 --quiet \
  >"$LAB_DIR/refused.log" || rc=$?
((rc == 1)) || fail "connect to a closed port: exit $rc, expected 1"
expect_peer_field "$LAB_DIR/refused.log" summary failed 1
pass "a refused connection is reported and exits 1"

lab_end
pass "all done in $((SECONDS - start)) s"
