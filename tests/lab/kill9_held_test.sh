#!/usr/bin/env bash
# kill -9 of finwave while it holds segments: every server FIN (fin2) held 4 s, and copies of
# every client FIN (fin1) still to be sent, 2 s apart. The kernel drops the held FINs when
# finwave's socket goes; then, with nobody reading the queue, the queue rule's bypass lets
# everything through: new connections complete at once, and the servers' FIN retransmissions
# reach the clients, so every connection caught in teardown closes (no socket is left in
# LAST_ACK or FIN_WAIT2). The next finwave says it replaces the stale table, installs exactly
# one set of rules, and captures and reports connections again.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin kill9_held
export FINWAVE_CONTROL=$LAB_DIR/control.sock
held_count=8
cat >"$LAB_DIR/rules.toml" <<'TOML'
[[rule]]
name = "hold-fin2"
role = "fin2"
action = "delay"
delay_ms = 4000

[[rule]]
name = "copy-fin1"
role = "fin1"
action = "duplicate"
copies = 3
spacing_ms = 2000
TOML

lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --script read-eof,close --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
finwave_start router "$LAB_DIR/first.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.2 --linger 5 --control "$FINWAVE_CONTROL"

# Sockets on port 5000 in a TCP state, in a namespace.
sockets_in() {
  lab_exec "$1" ss -tanH state "$2" '( sport = :5000 or dport = :5000 )' | grep -c . || true
}
live() { finwave_stats_field "$FINWAVE_CONTROL" "$1"; }

# The client closes (fin1, copied), the server reads EOF and closes (fin2, held 4 s).
lab_bg client "$LAB_DIR/held.jsonl" "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" \
  --port 5000 --connections "$held_count" --parallel "$held_count" --script send:100,close \
  --quiet >/dev/null
held_pid=$LAB_LAST_PID
wait_until 10 "$held_count server FINs to be held" at_least "$held_count" live .queue.held
wait_until 5 "$held_count servers in LAST_ACK" at_least "$held_count" sockets_in server last-ack
held=$(live .queue.held)
pending=$(finwave_stats_field "$FINWAVE_CONTROL" \
  '.actions.duplicated * 3 - .actions.copies_sent - .actions.copy_errors')
((pending > 0)) || fail "no copies of fin1 were pending before the kill"
lab_wait "$held_pid" 10 || fail "the held connections' client failed: $(cat "$LAB_DIR/held.jsonl")"

t_kill=$(lab_now_ms)
finwave_kill9
lab_exec router nft list tables inet | grep -qx 'table inet finwave-q0' ||
  fail "the capture table should still be installed after kill -9"

# Traffic goes on through the orphaned table (bypass): IPv4 and IPv6, at once.
for address in "$LAB_SERVER_V4" 2001:db8:2::2; do
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port 5000 --connections 50 \
    --parallel 4 --script send:100,close --quiet --timeout 3000 >"$LAB_DIR/after-kill-$address" ||
    fail "connections to $address after kill -9 failed: $(tail -2 "$LAB_DIR/after-kill-$address")"
done
flowing_ms=$(($(lab_now_ms) - t_kill))
# The peers recover by themselves: the servers retransmit the FINs the kernel dropped with
# finwave's socket, and the clients acknowledge them.
wait_until 20 "no server left in LAST_ACK" exactly 0 sockets_in server last-ack
wait_until 5 "no client left in FIN_WAIT2" exactly 0 sockets_in client fin-wait-2
recovered_ms=$(($(lab_now_ms) - t_kill))

# The next start replaces the stale table and says so.
finwave_start router "$LAB_DIR/second.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --settle 0.2 --linger 5 --control "$FINWAVE_CONTROL"
grep -q "replacing the stale capture table inet finwave-q0" "$FINWAVE_OUT.err" ||
  fail "the restarted finwave did not say it replaced the stale table: $(cat "$FINWAVE_OUT.err")"
ruleset=$(lab_exec router nft list ruleset 2>/dev/null)
jumps=$(grep -c 'goto capture' <<<"$ruleset" || true)
queue_rules=$(grep -c 'queue num 0 bypass' <<<"$ruleset" || true)
tables=$(grep -c '^table inet finwave' <<<"$ruleset" || true)
((jumps == 2 && queue_rules == 1 && tables == 1)) ||
  fail "after restart: $tables tables, $jumps jump rules, $queue_rules queue rules (expected 1, 2, 1)"
# Captured again, faults and all: fin2 held 4 s, so these outcomes take a while.
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
  --connections 10 --parallel 10 --script send:100,close --quiet >/dev/null ||
  fail "connections after the restart failed"
wait_until 20 "10 outcomes from the restarted finwave" at_least 10 \
  eval "outcomes 'select(.sides_known)' | wc -l"
faulted=$(outcomes 'select(.sides_known)' |
  jq -s '[.[] | select(any(.actions[]; .rule == "hold-fin2"))] | length')
[ "$faulted" -ge 10 ] || fail "only $faulted of 10 connections after the restart had fin2 held"
finwave_stop
check_all_queued_answered
left=$(lab_exec router nft list ruleset 2>/dev/null | grep -c finwave || true)
[ "$left" -eq 0 ] || fail "finwave left its capture table behind at exit"
pass "kill -9 with $held segments held and $pending copies pending: 100 new connections went" \
  "through the bypass within $flowing_ms ms, every connection in teardown closed within" \
  "$recovered_ms ms; the restart replaced the stale table (1 queue rule, 2 jumps) and reported" \
  "$faulted faulted connections"
