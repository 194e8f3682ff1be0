#!/usr/bin/env bash
# finwave as an unprivileged user holding only CAP_NET_ADMIN and CAP_NET_RAW, as its service
# unit runs it: given as ambient capabilities (setpriv, like systemd's AmbientCapabilities=),
# and as file capabilities on the binary (setcap). Each time a rule scenario runs through it
# and agrees with tcpdump; after start-up every thread holds CAP_NET_ADMIN alone; the nft it
# runs still can (a deleted table is put back); the control socket is the --control-group's.
# Without one of the two, it refuses to start and names the one it lacks.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab least_privilege
# The unprivileged user's corner of the lab: the binary, the rules, the socket and ready file.
chmod 0711 "$WORK"
mkdir -m 0755 "$WORK/bin"
cp "$FINWAVE_BIN" "$WORK/bin/finwave"
cp "$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml" "$WORK/rules.toml"
chmod 0644 "$WORK/rules.toml"
mkdir -m 0750 "$WORK/run"
chown nobody:nogroup "$WORK/run"
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
# caps LIST — setpriv's options for a process holding exactly LIST (",+net_admin,+net_raw").
caps() { echo "--inh-caps=-all$1 --ambient-caps=-all$1 --bounding-set=-all$1"; }
net_admin=12 net_raw=13

# Refused: each missing capability named, exit 1, nothing made.
refused_start() {  # refused_start WHAT-IN-STDERR CAPS
  local status=0
  # shellcheck disable=SC2046 # caps' words are separate options
  lab_exec router "${as_nobody[@]}" $(caps "$2") "$WORK/bin/finwave" --control none --port "$RULES_PORT" \
    >/dev/null 2>"$WORK/refused_start.err" || status=$?
  [ "$status" -eq 1 ] || fail "with caps '$2' finwave exited $status, expected 1: $(cat "$WORK/refused_start.err")"
  grep -qF -- "$1" "$WORK/refused_start.err" || fail "with caps '$2' finwave did not say '$1': $(cat "$WORK/refused_start.err")"
}
refused_start "it runs without CAP_NET_RAW." ",+net_admin"
refused_start "it runs without CAP_NET_ADMIN." ",+net_raw"
refused_start "it runs without CAP_NET_ADMIN and CAP_NET_RAW." ""
expect "tables after the refusals" "$(lab_exec router nft list tables)" ""

# cap_mask NAME STATUS-FILE — a capability mask from /proc/PID[/task/TID]/status, as a number.
cap_mask() { printf '%d' "0x$(awk -v name="$1:" '$1 == name { print $2 }' "$2")"; }
# held_alone [BOUNDED] — every thread of finwave holds CAP_NET_ADMIN and nothing else
# (effective, permitted, inheritable, ambient); with BOUNDED, its bounding set (which setpriv
# limited and an unprivileged finwave cannot change) is at most the two capabilities.
held_alone() {
  local status set tasks=0 bounded=${1:-}
  for status in /proc/"$FINWAVE_PID"/task/*/status; do
    tasks=$((tasks + 1))
    for set in CapEff CapPrm CapInh CapAmb; do
      expect "$set of thread $(basename "$(dirname "$status")")" "$(cap_mask "$set" "$status")" $((1 << net_admin))
    done
    [ -n "$bounded" ] && (($(cap_mask CapBnd "$status") & ~((1 << net_admin) | (1 << net_raw)))) &&
      fail "the bounding set holds more than the two capabilities: $(grep CapBnd "$status")"
  done
  expect "uid" "$(awk '$1 == "Uid:" { print $2 }' "/proc/$FINWAVE_PID/status")" 65534
  ((tasks >= 1)) || fail "no threads of finwave found"
}
capture_restored() { [ "$(finwave_stats_field "$FINWAVE_CONTROL" .capture.restored)" -ge 1 ]; }

# run_scenario HOW — finwave as nobody (started through $WORK/bin/finwave-as-nobody, written by
# the caller), the rule scenario, the checks.
run_scenario() {  # run_scenario HOW [BOUNDED]
  local how=$1 out=$WORK/run/$1.jsonl
  FINWAVE_BIN=$WORK/bin/finwave-as-nobody finwave_start router "$out" --rules "$WORK/rules.toml" \
    --port "$RULES_PORT" --settle 0.3 --linger 5 --control-group nogroup
  export FINWAVE_CONTROL=$out.control.sock
  held_alone "${2:-}"
  expect "$how: the control socket's mode and group" "$(stat -c '%a %G' "$FINWAVE_CONTROL")" "660 nogroup"
  # The nft finwave runs holds CAP_NET_ADMIN too: a deleted table comes back.
  lab_exec router nft delete table inet finwave-q0
  wait_for 10 "the deleted table to be put back" capture_restored ||
    fail "$how: the table was not put back: $(cat "$out.err")"
  # rules_lib.sh reads the outcomes from $WORK/finwave.jsonl.
  ln -sfn "$out" "$WORK/finwave.jsonl"
  rules_both send:100,close
  finwave_stop
  grep -qF "dropped every capability but CAP_NET_ADMIN" "$out.err" || fail "$how: no word of the drop: $(cat "$out.err")"
  check_verdict_accounting
  for name in v4 v6; do
    rules_outcome "$name"
    expect "$how $name result" "$(jq -r .result <<<"$RULES_OUTCOME")" clean
    expect "$how $name server FIN retransmits (finwave)" "$(jq .fin_retransmits.server <<<"$RULES_OUTCOME")" 1
    PORTS+=("$RULES_CLIENT_PORT")
  done
  expect "$how: tables afterwards" "$(lab_exec router nft list tables)" ""
}

PORTS=()
# 1) Ambient capabilities.
cat >"$WORK/bin/finwave-as-nobody" <<WRAP
#!/bin/sh
exec ${as_nobody[*]} $(caps ",+net_admin,+net_raw") "$WORK/bin/finwave" "\$@"
WRAP
chmod 0755 "$WORK/bin/finwave-as-nobody"
run_scenario ambient bounded
# 2) File capabilities on the binary, nothing inherited. A program with file capabilities is
# not dumpable, which LeakSanitizer needs at exit: leaks are checked in the run above.
setcap cap_net_admin,cap_net_raw+ep "$WORK/bin/finwave"
cat >"$WORK/bin/finwave-as-nobody" <<WRAP
#!/bin/sh
ASAN_OPTIONS=\${ASAN_OPTIONS:+\$ASAN_OPTIONS:}detect_leaks=0 exec ${as_nobody[*]} --inh-caps=-all "$WORK/bin/finwave" "\$@"
WRAP
run_scenario file-caps
capture_stop
for iface in to-client to-server; do wire_json "$WORK/$iface.pcap" >"$WORK/$iface.jsonl"; done
for port in "${PORTS[@]}"; do
  expect "client port $port: server FIN retransmits (to-server FINs - 1)" \
    "$(wire to-server "$port" 'fins("server") | length - 1')" 1
done
pass "finwave as nobody with CAP_NET_ADMIN and CAP_NET_RAW (ambient, then file capabilities): the scenario as the wire saw it, CAP_NET_ADMIN alone after start-up"
