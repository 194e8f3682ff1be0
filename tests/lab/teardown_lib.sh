# shellcheck shell=bash
# tests/lab/teardown_lib.sh — the tcpdump witness for the teardown tests: reads pcaps into JSON
# lines, works out from the wire alone how each connection's teardown went (who closed, which
# kind, resets, final ACKs, half-close bytes), and checks finwave's outcome against it.
# Part of lib.sh, which sources it.
#
#   teardown_setup NAME                 lab, tcpdump on the router's to-client and to-server;
#                                       sets WORK
#   teardown_finwave [ARGS...]          finwave on the router (--port 5000 --settle 0.3 ARGS)
#   teardown_server NAME SCRIPT [PORT [CONNECTIONS]]   a finwave-peer server, started
#   teardown_record NAME ADDR [SINCE]   records a case whose client ran (see teardown_case)
#   teardown_case NAME ADDR SERVER_SCRIPT CLIENT_SCRIPT
#                                       one connection: a finwave-peer server (one connection)
#                                       and a client; records NAME, family and the client's
#                                       endpoint in $WORK/cases
#   teardown_collect N                  waits for N outcomes, stops finwave and the captures,
#                                       turns the pcaps into $WORK/{client,server}-side.jsonl
#                                       and writes $WORK/report.jsonl (teardown_report) and
#                                       the verdicts check_against_wire reads
#   case_report NAME [JQ]               a case's line of the report: outcome, wire facts, problems
#   check_against_wire NAME             every figure finwave and the wire both have must agree
#   expect_outcome NAME JQ-BOOL MESSAGE fail unless the outcome satisfies JQ-BOOL
#   expect_wire NAME JQ-BOOL MESSAGE    fail unless the wire's facts satisfy JQ-BOOL
#
# Wire facts (the report's "wire") are computed from one interface's capture, from sequence
# numbers rather than capture order wherever possible (on veth two segments a stack sends from
# two CPUs can arrive swapped):
#   closer   the side whose first FIN the other side's first FIN acknowledges; "both" when
#            neither FIN acknowledges the other (simultaneous close); "none" without FINs
#   kind     simultaneous; four_way when the passive side sent a segment acknowledging fin1
#            that is not its FIN and comes before its FIN in sequence space (a separate ACK or
#            half-close data); three_way otherwise; reset (an RST before both FINs) or incomplete
#   result   reset if any RST, clean if both FINs were acknowledged, else timeout
#   stage    of the first RST: before_fin or fin_wait by the FINs captured before it
#   final_acks  pure ACKs of fin2 from the active closer
#   data_after_fin  passive side's FIN sequence number minus its sequence number when the
#            active closer sent fin1 (the ack field of fin1)

TEARDOWN_PORT=5000
# Longest wait of one peer step: a safety net against a hang, generous for a loaded machine.
TEARDOWN_IO_TIMEOUT_MS=30000
WORK=""

# The jq definitions every analysis uses; segments are wire_segments' objects.
# shellcheck disable=SC2016 # jq's $variables, not the shell's.
TEARDOWN_JQ='
def mod32: (. % 4294967296 + 4294967296) % 4294967296;
# a - b in sequence space, in (-2^31, 2^31].
def sdiff($a; $b): (($a - $b) | mod32) as $d | if $d > 2147483648 then $d - 4294967296 else $d end;
def finseq: (.seq + .len) | mod32;
def acks($fin): $fin != null and .ackf and .ack == (($fin | finseq) + 1 | mod32);
def other: if . == "client" then "server" else "client" end;
def key: "\(.from) \(.flags) \(.seq) \(.ack) \(.len)";
# Facts of one connection from its segments (capture order) on one interface; $c: client endpoint.
def wire($c):
  [.[] | . + {from: (if .src == $c then "client" else "server" end)}] as $s
  | [$s[] | select(.fin and (.rst | not) and (.syn | not))] as $fins
  | [$s[] | select(.rst)] as $rsts
  | {client: [$fins[] | select(.from == "client")], server: [$fins[] | select(.from == "server")]}
    as $f
  | ($f.client[0]) as $fc | ($f.server[0]) as $fs
  | (if $fc != null and $fs != null then
       if ($fs | acks($fc)) then "client"
       elif ($fc | acks($fs)) then "server"
       else "both" end
     elif $fc != null then "client" elif $fs != null then "server" else "none" end) as $closer
  | (if $closer == "client" then $fc elif $closer == "server" then $fs else null end) as $fin1
  | (if $closer == "client" then $fs elif $closer == "server" then $fc else null end) as $fin2
  | ($closer | if . == "client" or . == "server" then other else null end) as $passive
  | (if $fc != null and $fs != null then
       if $closer == "both" then "simultaneous"
       elif any($s[]; .from == $passive and (.fin or .rst or .syn | not) and acks($fin1)
                and sdiff(.seq + .len; $fin2 | finseq) <= 0) then "four_way"
       else "three_way" end
     elif ($rsts | length) > 0 then "reset" else "incomplete" end) as $kind
  | ($fc != null and any($s[]; .from == "server" and (.rst | not) and acks($fc))) as $c_acked
  | ($fs != null and any($s[]; .from == "client" and (.rst | not) and acks($fs))) as $s_acked
  | (if ($rsts | length) == 0 then null
     else ([$fins[] | select(.n < $rsts[0].n) | .from] | unique | length) as $before
     | {from: $rsts[0].from,
        stage: (if $before == 0 then "before_fin" elif $before == 1 then "fin_wait"
                else "after_both_fins" end)} end) as $rst
  | {closer: $closer, kind: $kind,
     result: (if ($rsts | length) > 0 then "reset" elif $c_acked and $s_acked then "clean"
              else "timeout" end),
     fins: {client: ($f.client | length), server: ($f.server | length)},
     fin_seqs: {client: ([$f.client[] | finseq] | unique),
                server: ([$f.server[] | finseq] | unique)},
     rsts: {client: ([$rsts[] | select(.from == "client")] | length),
            server: ([$rsts[] | select(.from == "server")] | length)},
     rst: $rst,
     final_acks: (if $fin2 == null then null else
       [$s[] | select(.from == $closer and (.fin or .rst or .syn | not) and .len == 0
                      and acks($fin2))] | length end),
     data_after_fin: (if $fin2 == null then null else sdiff($fin2 | finseq; $fin1.ack) end),
     # Segments finwave must have seen: handshake, FINs, RSTs, and every ACK of a FIN (sent
     # after that FIN crossed the router, which marked the connection for capture).
     required: [$s[] | select(.syn or .fin or .rst or acks($fs) or acks($fc)) | key],
     all: [$s[] | key]};
# Multiset difference of two key lists: the keys of $a not matched one-for-one in $b.
def missing($a; $b):
  ($b | group_by(.) | map({key: .[0], value: length}) | from_entries) as $have
  | $a | group_by(.) | map(select(length > ($have[.[0]] // 0)) | .[0]);
# Where the outcome $o and the wire facts $w disagree, one message each.
def problems($o; $w):
  [$o.timeline[] | . + {fin: (.flags | test("F")), rst: (.flags | test("R"))}] as $tl
  | def tl_fins($side): [$tl[] | select(.from == $side and .fin and (.rst | not))];
  [ (if $o.closer != $w.closer then "closer \($o.closer), wire \($w.closer)" else empty end),
    (if $o.kind != $w.kind then "kind \($o.kind), wire \($w.kind)" else empty end),
    (if $o.result != $w.result then "result \($o.result), wire \($w.result)" else empty end),
    (if $o.timeline_dropped != 0 then "timeline_dropped \($o.timeline_dropped): cannot compare"
     else empty end),
    (("client", "server") as $side
     | (tl_fins($side) | length) as $n
     | (if $n != $w.fins[$side] then "\($side) FINs: timeline \($n), wire \($w.fins[$side])"
        else empty end),
       ([tl_fins($side)[] | finseq] | unique) as $seqs
       | (if $seqs != $w.fin_seqs[$side] then
            "\($side) FIN seq: timeline \($seqs), wire \($w.fin_seqs[$side])" else empty end),
       ([$w.fins[$side] - 1, 0] | max) as $retx
       | (if $o.fin_retransmits[$side] != $retx then
            "fin_retransmits.\($side) \($o.fin_retransmits[$side]), wire \($retx)" else empty end),
       ([$tl[] | select(.from == $side and .rst)] | length) as $r
       | (if $r != $w.rsts[$side] then "\($side) RSTs: timeline \($r), wire \($w.rsts[$side])"
          else empty end)),
    (if ($o.rst == null) != ($w.rst == null) then "rst \($o.rst), wire \($w.rst)"
     elif $o.rst != null and $o.rst.from != $w.rst.from then
       "rst.from \($o.rst.from), wire \($w.rst.from)"
     elif $o.rst != null and $w.rst.stage != "after_both_fins" and $o.rst.stage != $w.rst.stage
     then "rst.stage \($o.rst.stage), wire \($w.rst.stage)"
     else empty end),
    (if $w.final_acks != null and $w.closer != "both" and $o.final_acks.seen != $w.final_acks
     then "final_acks.seen \($o.final_acks.seen), wire \($w.final_acks)" else empty end),
    (if $w.data_after_fin != null and $o.data_after_fin.bytes != $w.data_after_fin then
       "data_after_fin.bytes \($o.data_after_fin.bytes), wire \($w.data_after_fin)" else empty end),
    (missing($w.required; [$tl[] | key])[] | "on the wire, not in the timeline: \(.)"),
    (missing([$tl[] | key]; $w.all)[] | "in the timeline, not on the wire: \(.)")
  ];
'

# wire_segments PCAP — every TCP segment of PCAP as a JSON line, in capture order:
#   {"n":1,"t":"1700000000.123456","src":"198.18.1.2:40000","dst":"198.18.2.2:5000",
#    "flags":"F.","fin":true,"syn":false,"rst":false,"ackf":true,"seq":..,"ack":..,"len":0}
# Endpoints and flags are written the way finwave writes them. Sequence numbers come from the
# headers (tcpdump -x), since tcpdump's text leaves them out of pure ACKs. IPv6 without
# extension headers only (true in the lab).
wire_segments() {
  local pcap="${1:?wire_segments PCAP}"
  tcpdump -r "$pcap" -nn -tt -x tcp 2>"$pcap.read.err" | awk '
    function hexval(h,  i, v) {
      v = 0
      for (i = 1; i <= length(h); i++) v = v * 16 + index("0123456789abcdef", substr(h, i, 1)) - 1
      return v
    }
    function endpoint(s,  k, addr) {
      sub(/:$/, "", s)
      k = match(s, /\.[0-9]+$/)
      addr = substr(s, 1, k - 1)
      return (addr ~ /:/ ? "[" addr "]" : addr) ":" substr(s, k + 1)
    }
    function u32(i) { return ((b[i] * 256 + b[i + 1]) * 256 + b[i + 2]) * 256 + b[i + 3] }
    function bit(v, m) { return int(v / m) % 2 == 1 }
    function json_bool(v, m) { return bit(v, m) ? "true" : "false" }
    function flush(  tcp, total, flags, doff, letters, i) {
      if (src == "") return
      if (int(b[0] / 16) == 4) {
        tcp = (b[0] % 16) * 4
        total = b[2] * 256 + b[3]
      } else {
        tcp = 40
        total = 40 + b[4] * 256 + b[5]
      }
      doff = int(b[tcp + 12] / 16) * 4
      flags = b[tcp + 13]
      # finwave and tcpdump order: F S R P U E W, then "." for ACK.
      split("1 2 4 8 32 64 128 16", bits, " ")
      split("F S R P U E W .", names, " ")
      letters = ""
      for (i = 1; i <= 8; i++) if (bit(flags, bits[i])) letters = letters names[i]
      if (letters == "") letters = "none"
      n++
      printf "{\"n\":%d,\"t\":\"%s\",\"src\":\"%s\",\"dst\":\"%s\",\"flags\":\"%s\",", \
        n, t, src, dst, letters
      printf "\"fin\":%s,\"syn\":%s,\"rst\":%s,\"ackf\":%s,", json_bool(flags, 1), \
        json_bool(flags, 2), json_bool(flags, 4), json_bool(flags, 16)
      printf "\"seq\":%.0f,\"ack\":%.0f,\"len\":%d}\n", \
        u32(tcp + 4), u32(tcp + 8), total - tcp - doff
      src = ""
    }
    /^[0-9]/ { flush(); t = $1; src = endpoint($3); dst = endpoint($5); nb = 0; next }
    /^[ \t]+0x/ {
      if (hexval(substr($1, 3, 4)) >= 96) next  # headers only: 40 + 60 bytes at most needed
      for (i = 2; i <= NF; i++) {
        b[nb++] = hexval(substr($i, 1, 2))
        if (length($i) == 4) b[nb++] = hexval(substr($i, 3, 2))
      }
    }
    END { flush() }'
}

# teardown_setup NAME — lab and the two captures on the router. Sets WORK (= LAB_WORK).
teardown_setup() {
  lab_begin "${1:?teardown_setup NAME}"
  WORK=$LAB_WORK
  require_file "$FINWAVE_BIN_PEER" "cmake --build $FINWAVE_BUILD --target finwave-peer"
  require_file "$FINWAVE_BIN" "cmake --build $FINWAVE_BUILD --target finwave"
  : >"$WORK/cases"
  local filter="tcp portrange $TEARDOWN_PORT-$((TEARDOWN_PORT + 9))"
  capture_start router to-client "$WORK/client-side.pcap" "$filter"
  capture_start router to-server "$WORK/server-side.pcap" "$filter"
}

# teardown_finwave [ARGS...] — finwave in router mode on the router, no rules:
# --port 5000 --settle 0.3 and ARGS (finwave_start gives it a control socket of its own).
teardown_finwave() {
  finwave_start router "$WORK/finwave.jsonl" --port "$TEARDOWN_PORT" --settle 0.3 "$@"
}

# teardown_server NAME SERVER_SCRIPT [PORT [CONNECTIONS]] — a finwave-peer server for
# CONNECTIONS (default 1) connections on PORT (default 5000; the captures take 5000-5009), v4
# and v6; returns once it listens. Sets SERVER_PID.
teardown_server() {
  local name=$1 script=$2 port=${3:-$TEARDOWN_PORT} connections=${4:-1}
  rm -f "$WORK/$name.ready"
  lab_bg server "$WORK/$name.server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: \
    --port "$port" --connections "$connections" --io-timeout "$TEARDOWN_IO_TIMEOUT_MS" \
    --script "$script" \
    --ready-file "$WORK/$name.ready" >/dev/null
  SERVER_PID=$LAB_LAST_PID
  wait_for_file "$WORK/$name.ready" 10 ||
    fail "$name: server did not start: $(cat "$WORK/$name.server.jsonl.err")"
}

# teardown_record NAME ADDR [SINCE] — after the client ran: note the case's family and client
# endpoint. SINCE (seconds since the epoch, e.g. $EPOCHREALTIME): finwave ran only from then
# on, so the wire's segments before it are left out of the comparison.
teardown_record() {
  local name=$1 address=$2 since=${3:-0} local_end family=v4
  local_end=$(peer_field "$WORK/$name.client.jsonl" connect local)
  [[ -n "$local_end" && "$local_end" != null ]] || fail "$name: the client did not connect"
  [[ "$address" == *:* ]] && family=v6
  echo "$name $family $local_end $since" >>"$WORK/cases"
}

# teardown_case NAME ADDR SERVER_SCRIPT CLIENT_SCRIPT — one connection, both scripts must
# succeed.
teardown_case() {
  local name=$1 address=$2 server_script=$3 client_script=$4
  teardown_server "$name" "$server_script"
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$TEARDOWN_PORT" \
    --io-timeout "$TEARDOWN_IO_TIMEOUT_MS" --script "$client_script" \
    >"$WORK/$name.client.jsonl" ||
    fail "$name: client script '$client_script' failed: $(tail -3 "$WORK/$name.client.jsonl")"
  lab_wait "$SERVER_PID" 10 ||
    fail "$name: server script '$server_script' failed: $(tail -3 "$WORK/$name.server.jsonl")"
  teardown_record "$name" "$address"
}

# teardown_collect N [SECONDS] — wait (default 10 s) for N outcomes (fails without them), stop
# finwave (it must exit 0 with every verdict accounted for) and the captures, and read the pcaps.
teardown_collect() {
  local expected=${1:?teardown_collect N} seconds=${2:-10} deadline have
  deadline=$((SECONDS + seconds))
  until have=$(grep -c '"event":"outcome"' "$WORK/finwave.jsonl" || true) && ((have >= expected)); do
    ((SECONDS < deadline)) || fail "$have of $expected outcomes after $seconds s"
    sleep 0.1
  done
  finwave_stop
  check_verdict_accounting
  capture_stop
  local side
  for side in client server; do
    wire_segments "$WORK/$side-side.pcap" >"$WORK/$side-side.jsonl"
    [[ -s "$WORK/$side-side.jsonl" ]] ||
      fail "no segments read from $WORK/$side-side.pcap: $(cat "$WORK/$side-side.pcap.read.err")"
  done
  [[ "$(finwave_stats .kernel.queue_dropped)" -eq 0 ]] || fail "the kernel dropped queued packets"
  teardown_report
  teardown_verdicts
}

# case_field NAME FIELD — family (2) or client endpoint (3) of a recorded case.
case_field() {
  awk -v n="$1" -v f="$2" '$1 == n { print $f }' "$WORK/cases"
}

# teardown_report — one pass over finwave's outcomes and both captures: writes
# $WORK/report.jsonl, one line per case: {name, family, client, outcomes (finwave's outcome
# lines for the case's connection), wire and wire_server (facts from the capture on to-client
# and to-server), problems (where finwave and the to-client wire disagree), uncaptured (pure
# ACKs on the wire that are not in the timeline), wire_captured and problems_captured (the
# same without those ACKs: what finwave could know from what the kernel queued)}.
teardown_report() {
  jq -nc --rawfile cases "$WORK/cases" --slurpfile fw "$WORK/finwave.jsonl" \
    --slurpfile cs "$WORK/client-side.jsonl" --slurpfile ss "$WORK/server-side.jsonl" \
    "$TEARDOWN_JQ"'
    def segments($c; $since):
      [.[] | select((.src == $c or .dst == $c) and (.t | tonumber) >= $since)];
    def judge($o; $w):
      if ($o | length) == 1 then problems($o[0]; $w)
      else ["\($o | length) outcomes for the connection"] end;
    $cases | split("\n")[] | select(length > 0) | split(" ") as [$name, $family, $c, $since]
    | ($since | tonumber) as $since
    | [$fw[] | select(.event == "outcome" and .flow.client == $c)] as $outcomes
    | ($cs | segments($c; $since)) as $segs
    | [$outcomes[0].timeline // [] | .[] | key] as $seen
    | [$segs[] | . + {from: (if .src == $c then "client" else "server" end)}
       | select(.flags == "." and .len == 0 and (key as $k | $seen | index([$k]) | not))]
      as $uncaptured
    | ($segs | wire($c)) as $w
    | ([$segs[] | select(.n as $n | $uncaptured | map(.n) | index([$n]) | not)] | wire($c))
      as $wc
    | {name: $name, family: $family, client: $c, outcomes: $outcomes, wire: $w,
       wire_server: ($ss | segments($c; $since) | wire($c)), problems: judge($outcomes; $w),
       uncaptured: [$uncaptured[] | key], wire_captured: $wc,
       problems_captured: judge($outcomes; $wc)}
  ' >"$WORK/report.jsonl"
}

# case_report NAME [JQ] — the case's report line, or JQ applied to it. The report is
# $WORK/$CASE_REPORT_FILE (report.jsonl; the scenarios write theirs to scn.jsonl).
CASE_REPORT_FILE=report.jsonl
case_report() {
  jq -c --arg n "$1" "select(.name == \$n) | ${2:-.}" "$WORK/$CASE_REPORT_FILE"
}

# case_outcome NAME — finwave's outcome for the case's connection ("null" if none).
case_outcome() {
  case_report "$1" '.outcomes[0]'
}

# teardown_verdicts — from the report, one line per case into TEARDOWN_VERDICT[NAME]:
# "ok SUMMARY" when finwave's outcome agrees with the wire (see check_against_wire), else
# "fail DETAILS-AS-A-JSON-STRING". One jq run for every case (jq starts slowly on a busy box).
declare -gA TEARDOWN_VERDICT=()
teardown_verdicts() {
  local name verdict
  while read -r name verdict; do
    TEARDOWN_VERDICT[$name]=$verdict
  done < <(jq -r '
    # The two interfaces are one wire with a router between: the same segments on both.
    ([.wire, .wire_server] | map(del(.rst.stage) | (.all, .required) |= sort) | .[0] == .[1])
      as $same
    | .name + " " + if $same | not then
        "fail " + ("the captures on to-client and to-server differ: \(.wire) vs \(.wire_server)"
                   | tojson)
      elif (.problems | length) > 0 then
        "fail " + ("finwave disagrees with the wire:\n" + (.problems | map("  " + .) | join("\n")) +
          "\n  outcome: \(.outcomes | map(tojson) | join("\n           "))" +
          "\n  wire:    \(.wire | del(.all, .required) | tojson)" | tojson)
      else
        .outcomes[0] as $o | .wire as $w
        | "ok \(.name) (\(.family)): closer \($o.closer) kind \($o.kind) result \($o.result)" +
          " fins c\($w.fins.client)/s\($w.fins.server) rsts c\($w.rsts.client)/s\($w.rsts.server)" +
          (if $o.rst then " rst \($o.rst.from)@\($o.rst.stage)" else "" end) +
          " final_acks \($o.final_acks.seen)" +
          (if $o.data_after_fin.bytes > 0 then " data_after_fin \($o.data_after_fin.bytes)"
           else "" end) + " (= wire)"
      end' "$WORK/report.jsonl")
}

# check_against_wire NAME — fails unless finwave's outcome for the case agrees with tcpdump's
# record: closer, kind, result, FINs per side (count and sequence number), FIN retransmits, RSTs
# per side, rst.from (and rst.stage where the wire can tell), final ACKs, half-close bytes;
# every handshake, FIN and RST segment and every ACK of a FIN on the wire is in the timeline,
# and every timeline entry was on the wire; and the captures on both router interfaces tell the
# same story. Prints a one-line summary. Use it in the test's own shell, not in $(...).
check_against_wire() {
  local name=$1 verdict
  verdict=${TEARDOWN_VERDICT[$name]:-}
  [[ -n "$verdict" ]] || fail "$name: not a recorded case"
  if [[ "$verdict" != "ok "* ]]; then
    echo "$name: $(jq -r . <<<"${verdict#fail }")" >&2
    fail "$name: finwave's outcome disagrees with tcpdump (details above)"
  fi
  echo "${verdict#ok }"
}

# expect_outcome NAME JQ-BOOL MESSAGE — fail with MESSAGE unless JQ-BOOL holds for the outcome.
#   expect_outcome client_first '.closer == "client" and .result == "clean"' "client closes"
expect_outcome() {
  local name=$1 test=$2 message=$3
  [[ "$(case_report "$name" ".outcomes[0] | $test")" == true ]] ||
    fail "$name: $message; outcome: $(case_outcome "$name")"
}

# expect_wire NAME JQ-BOOL MESSAGE — the same for the wire's facts (the scenario happened).
expect_wire() {
  local name=$1 test=$2 message=$3
  [[ "$(case_report "$name" ".wire | $test")" == true ]] ||
    fail "$name: on the wire: $message; wire: $(case_report "$name" '.wire | del(.all, .required)')"
}
