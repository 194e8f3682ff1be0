#!/usr/bin/env bash
# --netns: finwave runs in the router's namespace and works in the server's (local mode there,
# as a host's finwave would stand in front of one container). The first final ACK of each
# connection, IPv4 and IPv6, is dropped where it reaches the server; the server retransmits its
# FIN once, as tcpdump on the router sees. A PID works as the namespace's file does. The table is in the server's namespace only while
# finwave runs, and in neither namespace afterwards. Bad --netns values are one-line errors,
# exit 1, with nothing made.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab netns
server_ns=/run/netns/$(lab_ns server)
tables() { lab_exec "$1" nft list tables; }

refused() {  # refused WHAT-IN-STDERR NETNS [SETPRIV-ARGS...] — finwave --netns NETNS fails so
  local said=$1 netns=$2 status=0
  shift 2
  lab_exec router "$@" "$FINWAVE_BIN" --control none --mode local --port "$RULES_PORT" \
    --netns "$netns" >"$WORK/refused.out" 2>"$WORK/refused.err" || status=$?
  [ "$status" -eq 1 ] || fail "--netns $netns exited $status, expected 1: $(cat "$WORK/refused.err")"
  [ "$(wc -l <"$WORK/refused.err")" -eq 1 ] || fail "--netns $netns said more than one line: $(cat "$WORK/refused.err")"
  grep -qF -- "$said" "$WORK/refused.err" || fail "--netns $netns did not say '$said': $(cat "$WORK/refused.err")"
}
: >"$WORK/plain-file"
refused "--netns $WORK/plain-file: $WORK/plain-file is not a namespace file" "$WORK/plain-file"
refused "--netns /proc/self/ns/mnt: /proc/self/ns/mnt is a namespace, but not a network namespace" \
  /proc/self/ns/mnt
refused "--netns /run/netns/fwt-no-such-lab: cannot open /run/netns/fwt-no-such-lab: No such file or directory" \
  /run/netns/fwt-no-such-lab
# No process has this PID: above /proc/sys/kernel/pid_max.
refused "--netns 4194305: no process 4194305" 4194305
# Without CAP_SYS_ADMIN (but with the two capabilities finwave needs otherwise): said before
# anything is made.
refused "CAP_SYS_ADMIN (entering --netns); it runs without CAP_SYS_ADMIN" \
  "$server_ns" setpriv --reuid=nobody --regid=nogroup --clear-groups \
  --inh-caps=-all,+net_admin,+net_raw --ambient-caps=-all,+net_admin,+net_raw --bounding-set=-all,+net_admin,+net_raw
for role in router server; do
  expect "tables in the $role namespace after the refusals" "$(tables "$role")" ""
done

finwave_start router "$WORK/finwave.jsonl" --rules "$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml" \
  --mode local --port "$RULES_PORT" --netns "$server_ns" --settle 0.3 --linger 5
grep -qF "working in the network namespace $server_ns" "$WORK/finwave.jsonl.err" ||
  fail "finwave did not say where it works: $(cat "$WORK/finwave.jsonl.err")"
expect "tables in the router namespace" "$(tables router)" ""
tables server | grep -q "table inet finwave" || fail "no finwave table in the server's namespace: $(tables server)"
rules_both send:100,close
rules_stop
for role in router server; do
  expect "tables in the $role namespace afterwards" "$(tables "$role")" ""
done

for name in v4 v6; do
  rules_outcome "$name"
  port=$RULES_CLIENT_PORT o=$RULES_OUTCOME
  expect "$name result" "$(jq -r .result <<<"$o")" clean
  expect "$name closer" "$(jq -r .closer <<<"$o")" client
  expect "$name server FIN retransmits (finwave)" "$(jq .fin_retransmits.server <<<"$o")" 1
  expect "$name server FIN retransmits (to-server FINs - 1)" \
    "$(wire to-server "$port" 'fins("server") | length - 1')" 1
  expect "$name final ACKs (finwave: seen, dropped)" "$(jq -c '[.final_acks.seen, .final_acks.dropped]' <<<"$o")" '[2,1]'
  # Both reach the server's namespace; finwave drops the first there.
  expect "$name final ACKs forwarded to the server (to-server)" \
    "$(wire to-server "$port" 'final_acks("client") | length')" 2
done
# A PID names the namespace of that process: one that sleeps in the server's namespace.
sleeper=$(lab_bg server "$WORK/sleeper.log" sleep 600)
finwave_start router "$WORK/by-pid.jsonl" --mode local --port "$RULES_PORT" --netns "$sleeper"
tables server | grep -q "table inet finwave" || fail "--netns $sleeper: no table in the server's namespace"
expect "tables in the router namespace (--netns PID)" "$(tables router)" ""
finwave_stop
lab_kill "$sleeper"
expect "tables in the server namespace after --netns PID" "$(tables server)" ""

pass "--netns: finwave in the router's namespace acted in the server's, as tcpdump saw; nothing left in either"
