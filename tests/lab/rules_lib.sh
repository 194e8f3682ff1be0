# shellcheck shell=bash
# tests/lab/rules_lib.sh — shared by the rules_*_test.sh lab tests: finwave with a rule file on
# the router, finwave-peer client and server, tcpdump on both router interfaces as the witness,
# and jq helpers that read the wire. Part of lib.sh, which sources it.
#
#   rules_lab NAME                       lab_begin, then tcpdump on the router's to-client and
#                                        to-server (port 5000); sets WORK
#   rules_finwave RULEFILE [ARGS...]     finwave in router mode on port 5000 (see finwave_start)
#   rules_server SCRIPT CONNECTIONS      finwave-peer server on [::]:5000 (IPv4 and IPv6)
#   rules_client NAME ADDRESS SCRIPT     one client connection in the background; its events go
#                                        to $WORK/client-NAME.jsonl (rules_client_wait NAME)
#   rules_client_wait NAME [SECONDS]     waits for that client; fails if its script failed
#   client_port NAME                     the client's local port, from its connect event
#   rules_wait_outcomes N [SECONDS]      until finwave has printed N outcomes (fails otherwise)
#   rules_both CLIENT_SCRIPT [SECONDS]   one connection over IPv4 (client "v4") and one over
#                                        IPv6 ("v6") to a read-eof,close server, both waited
#                                        for, then their 2 outcomes (SECONDS, default 10)
#   rules_outcome NAME                   sets RULES_CLIENT_PORT and RULES_OUTCOME for client
#                                        NAME (fails without one), logs which connection it is
#   rules_stop                           stops finwave and the captures, checks the verdict
#                                        accounting, turns the pcaps into $WORK/<iface>.jsonl
#   outcome_of PORT                      finwave's outcome for the client port (JSON)
#   wire IFACE PORT JQ                   runs JQ (with the RULES_JQ definitions) over the array
#                                        of that connection's segments seen on IFACE; compact
#                                        JSON out, strings raw
#   expect WHAT ACTUAL EXPECTED          fails unless ACTUAL = EXPECTED, and logs the figure
#
# A wire segment (one line of $WORK/<iface>.jsonl) is
#   {t_us, from: "client"|"server", cport, flags: "F.", fin, syn, rst, ackf, seq, ack, len}
# with absolute sequence numbers; t_us is microseconds within a million seconds (both captures
# share the clock, so differences between interfaces are meaningful). seq is null on the pure
# ACKs tcpdump prints without one.

RULES_PORT=5000
WORK=""

# shellcheck disable=SC2016 # a jq program: its $names are jq's, not the shell's
RULES_JQ='
def mod32: (. % 4294967296 + 4294967296) % 4294967296;
def other: if . == "client" then "server" else "client" end;
def fins($side): [.[] | select(.from == $side and .fin and (.rst | not))];
# The sequence number of $side'"'"'s FIN (after its payload), or null without one.
def fin_seq($side): fins($side) | if length == 0 then null else (.[0].seq + .[0].len | mod32) end;
# Final ACKs: pure ACKs from the active closer $active acknowledging the passive closer'"'"'s FIN.
def final_acks($active): fin_seq($active | other) as $f
  | if $f == null then []
    else [.[] | select(.from == $active and .flags == "." and .len == 0 and .ack == ($f + 1 | mod32))]
    end;
def rsts($side): [.[] | select(.from == $side and .rst)];
'

# rules_lab NAME — a lab with tcpdump on both router interfaces.
rules_lab() {
  lab_begin "${1:?rules_lab NAME}"
  WORK=$LAB_WORK
  capture_start router to-client "$WORK/to-client.pcap" "tcp port $RULES_PORT"
  capture_start router to-server "$WORK/to-server.pcap" "tcp port $RULES_PORT"
}

# rules_finwave RULEFILE [ARGS...] — finwave in router mode, JSON outcomes in $WORK/finwave.jsonl.
rules_finwave() {
  local rules=${1:?rules_finwave RULEFILE [ARGS...]}
  shift
  finwave_start router "$WORK/finwave.jsonl" --rules "$rules" --port "$RULES_PORT" "$@"
}

# rules_server SCRIPT CONNECTIONS — a finwave-peer server for IPv4 and IPv6 (LAB_LAST_PID).
rules_server() {
  local script=${1:?rules_server SCRIPT CONNECTIONS} connections=${2:?rules_server SCRIPT CONNECTIONS}
  lab_bg server "$WORK/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port "$RULES_PORT" \
    --connections "$connections" --script "$script" --ready-file "$WORK/server.ready" >/dev/null
  wait_for_file "$WORK/server.ready" 10 || fail "the server did not start: $(cat "$WORK/server.jsonl.err")"
}

# rules_client NAME ADDRESS SCRIPT [ARGS...] — one client in the background.
declare -A RULES_CLIENT_PIDS=()
rules_client() {
  local name=${1:?rules_client NAME ADDRESS SCRIPT} address=${2:?} script=${3:?}
  shift 3
  lab_bg client "$WORK/client-$name.jsonl" "$FINWAVE_BIN_PEER" client --connect "$address" \
    --port "$RULES_PORT" --script "$script" "$@" >/dev/null
  RULES_CLIENT_PIDS[$name]=$LAB_LAST_PID
}

# rules_client_wait NAME [SECONDS] — fails unless the client's script succeeded.
rules_client_wait() {
  local name=${1:?rules_client_wait NAME [SECONDS]} status=0
  lab_wait "${RULES_CLIENT_PIDS[$name]}" "${2:-20}" || status=$?
  [ "$status" -eq 0 ] || fail "client $name exited with $status: $(cat "$WORK/client-$name.jsonl")"
}

# client_port NAME — the local port of the client's (first) connection.
client_port() {
  jq -r 'select(.event == "connect") | .local | sub(".*:"; "")' "$WORK/client-$1.jsonl" | head -1
}

# rules_wait_outcomes N [SECONDS] — until N outcomes are out.
rules_wait_outcomes() {
  local want=${1:?rules_wait_outcomes N [SECONDS]} deadline=$((SECONDS + ${2:-20})) have
  while :; do
    have=$(grep -c '"event":"outcome"' "$WORK/finwave.jsonl" || true)
    [ "$have" -ge "$want" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "$have of $want outcomes after ${2:-20} s"
    sleep 0.1
  done
}

# rules_both CLIENT_SCRIPT [SECONDS] — the connections most rules tests check, one per family.
rules_both() {
  local script=${1:?rules_both CLIENT_SCRIPT [SECONDS]}
  rules_server read-eof,close 2
  rules_client v4 "$LAB_SERVER_V4" "$script"
  rules_client v6 "$LAB_SERVER_V6" "$script"
  rules_client_wait v4
  rules_client_wait v6
  rules_wait_outcomes 2 "${2:-10}"
}

# rules_outcome NAME — RULES_CLIENT_PORT and RULES_OUTCOME (finwave's JSON for that port).
RULES_CLIENT_PORT=""
RULES_OUTCOME=""
rules_outcome() {
  local name=${1:?rules_outcome NAME}
  RULES_CLIENT_PORT=$(client_port "$name")
  RULES_OUTCOME=$(outcome_of "$RULES_CLIENT_PORT")
  [ -n "$RULES_OUTCOME" ] || fail "$name: no outcome for client port $RULES_CLIENT_PORT"
  echo "$name (client port $RULES_CLIENT_PORT):"
}

# rules_stop — finwave exits cleanly with every verdict given; the pcaps become JSON lines.
rules_stop() {
  finwave_stop
  capture_stop
  check_verdict_accounting
  local iface
  for iface in to-client to-server; do
    wire_json "$WORK/$iface.pcap" >"$WORK/$iface.jsonl"
  done
}

# wire_json PCAP — one JSON object per TCP segment of the capture (see the header).
wire_json() {
  tcpdump -r "${1:?wire_json PCAP}" -nn -tt -S 2>/dev/null | awk -v port="$RULES_PORT" '
    function endpoint_port(text,   n, parts) {
      n = split(text, parts, ".")
      return parts[n] + 0
    }
    {
      split($1, ts, ".")
      t_us = (ts[1] % 1000000) * 1000000 + substr(ts[2] "000000", 1, 6)
      src = $3; dst = $5; sub(":$", "", dst)
      sport = endpoint_port(src); dport = endpoint_port(dst)
      from = sport == port ? "server" : "client"
      cport = sport == port ? dport : sport
      flags = ""; seq = "null"; ack = "null"; len = 0
      if (match($0, /Flags \[[^]]*\]/)) flags = substr($0, RSTART + 7, RLENGTH - 8)
      if (match($0, / seq [0-9]+/)) seq = substr($0, RSTART + 5, RLENGTH - 5)
      if (match($0, / ack [0-9]+/)) ack = substr($0, RSTART + 5, RLENGTH - 5)
      if (match($0, / length [0-9]+/)) len = substr($0, RSTART + 8, RLENGTH - 8)
      printf "{\"t_us\":%.0f,\"from\":\"%s\",\"cport\":%d,\"flags\":\"%s\",\"fin\":%s,\"syn\":%s,", \
        t_us, from, cport, flags, (index(flags, "F") ? "true" : "false"), \
        (index(flags, "S") ? "true" : "false")
      printf "\"rst\":%s,\"ackf\":%s,\"seq\":%s,\"ack\":%s,\"len\":%d}\n", \
        (index(flags, "R") ? "true" : "false"), (index(flags, ".") ? "true" : "false"), seq, ack, len
    }'
}

# outcome_of PORT — finwave's outcome for the connection with that client port.
outcome_of() {
  outcomes "select(.flow.client | endswith(\":${1:?outcome_of PORT}\"))"
}

# wire IFACE PORT JQ — JQ over the array of that connection's segments on IFACE.
wire() {
  local iface=${1:?wire IFACE PORT JQ} port=${2:?} filter=${3:?}
  jq -s -c -r --argjson p "$port" "$RULES_JQ [.[] | select(.cport == \$p)] | $filter" "$WORK/$iface.jsonl"
}

