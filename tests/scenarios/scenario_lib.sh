# shellcheck shell=bash
# shellcheck disable=SC2034 # SERVER_ADDRESS, CLIENT_*_MS, SERVER_GONE_MS: for the scenario hooks.
# tests/scenarios/scenario_lib.sh — runs one scenario file (run.sh --one FILE OUT). Sources the
# lab helpers and the tcpdump witness of tests/lab; see README.md in this folder for the
# variables a scenario file sets.
lab_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../lab" && pwd)"
# shellcheck source=tests/lab/lib.sh
. "$lab_dir/lib.sh"

# Defaults of the scenario variables.
scenario_defaults() {
  TITLE=$NAME QUESTION="" LONG=0 FAMILY=v4 RULES="" SYSCTL_CLIENT="" SYSCTL_SERVER=""
  SERVER_SCRIPT="read-eof,close" CLIENT_SCRIPT="send:1000,close" CLIENT_ARGS=""
  CONNECTIONS=1 SETTLE=0.3 LINGER=5 WAIT=15 CLIENT_MAY_FAIL=0 SERVER_MAY_FAIL=0
  EXPECT_OUTCOME=true EXPECT_WIRE=true EXPECT_SOME="" WAIT_SERVER_GONE=0 WAIT_CLIENT_GONE=0
  FINWAVE_ARGS=""
}
# Hooks a scenario may define: scenario_before_client, scenario_after_client, scenario_check
# (after collection; may append to PROBLEMS and set MEASURED entries).

# MEASURED: extra figures for the table (key -> JSON value); PROBLEMS: failed checks.
declare -gA MEASURED=()
PROBLEMS=()
problem() { PROBLEMS+=("$*"); echo "problem: $*" >&2; }
measure() { MEASURED[$1]=$2; echo "measured $1 = $2" >&2; }

# ss_gone ROLE STATE SECONDS — wait until no socket of port 5000 is in STATE in ROLE's
# namespace; prints the epoch ms when it was first seen gone (polls every 20 ms).
ss_gone() {
  local role=$1 state=$2 seconds=$3 deadline
  deadline=$((SECONDS + seconds))
  while [[ -n "$(lab_exec "$role" ss -Htan state "$state" "( sport = :$TEARDOWN_PORT or dport = :$TEARDOWN_PORT )")" ]]; do
    ((SECONDS < deadline)) || { echo -1; return 0; }
    sleep 0.02
  done
  lab_now_ms
}

# ss_count ROLE STATE — sockets of port 5000 in STATE in ROLE's namespace.
ss_count() {
  lab_exec "$1" ss -Htan state "$2" "( sport = :$TEARDOWN_PORT or dport = :$TEARDOWN_PORT )" | wc -l
}

# wire_fin_times SIDE CASE — JSON {n, t_ms: [ms after the first], gaps_ms} of SIDE's FINs of
# the case's connection on the to-server capture (the sender's side of the router for the
# server; to-client for the client).
wire_fin_times() {
  local side=$1 name=$2 iface client
  iface="server-side"
  [[ $side == client ]] && iface="client-side"
  client=$(case_field "$name" 3)
  jq -sc --arg c "$client" --arg side "$side" '
    [.[] | select(.src == $c or .dst == $c)
     | select(.fin and (.rst | not)) | select((.src == $c) == ($side == "client"))
     | (.t | tonumber)] as $t
    | if ($t | length) == 0 then {n: 0, t_ms: [], gaps_ms: [], first: null}
      else {n: ($t | length), first: $t[0],
            t_ms: [$t[] | (. - $t[0]) * 1000 | round],
            gaps_ms: [range(1; $t | length) as $i | ($t[$i] - $t[$i - 1]) * 1000 | round]} end
  ' "$WORK/$iface.jsonl"
}

# scenario_report — $WORK/scn.jsonl, one line per case: the outcome, "wire" = what each side
# SENT (client segments from the router's to-client capture, server segments from to-server;
# this is what finwave saw before its verdicts, so drops, delays and rewrites do not hide
# anything), "delivered" = what reached each side, and the problems where finwave and the
# wire disagree (the same comparison as tests/lab/teardown_lib.sh check_against_wire).
scenario_report() {
  jq -nc --rawfile cases "$WORK/cases" --slurpfile fw "$WORK/finwave.jsonl" \
    --slurpfile cs "$WORK/client-side.jsonl" --slurpfile ss "$WORK/server-side.jsonl" \
    "$TEARDOWN_JQ"'
    def renumber: sort_by(.t | tonumber) | to_entries | map(.value + {n: (.key + 1)});
    $cases | split("\n")[] | select(length > 0) | split(" ") as [$name, $family, $c, $since]
    | [$fw[] | select(.event == "outcome" and .flow.client == $c)] as $outcomes
    | ([$cs[] | select(.src == $c)] + [$ss[] | select(.dst == $c)] | renumber) as $sent
    | ([$cs[] | select(.dst == $c)] + [$ss[] | select(.src == $c)] | renumber) as $got
    | ($got | wire($c)) as $d
    # Whether the teardown ended clean or reset is a matter of what was delivered (a dropped
    # final ACK was sent but acknowledged nothing): result and rst come from the delivered view.
    | ($sent | wire($c) | . + {result: $d.result, rst: $d.rst}) as $w
    | {name: $name, family: $family, client: $c, outcomes: $outcomes, wire: $w,
       delivered: ($got | wire($c) | {fins, rsts, final_acks}),
       problems: (if ($outcomes | length) == 1 then problems($outcomes[0]; $w)
                  else ["\($outcomes | length) outcomes for the connection"] end)}
  ' >"$WORK/scn.jsonl"
}

# teardown_lib's case_report and the checks built on it read the scenario's report.
CASE_REPORT_FILE=scn.jsonl

scenario_run_one() {
  local file=$1 out=$2 address name i
  NAME=$(basename "$file" .scn)
  scenario_defaults
  # shellcheck disable=SC1090
  . "$file"
  teardown_setup "scn_$NAME"
  local kv
  for kv in $SYSCTL_CLIENT; do lab_exec client sysctl -qw "$kv" || fail "sysctl $kv (client)"; done
  for kv in $SYSCTL_SERVER; do lab_exec server sysctl -qw "$kv" || fail "sysctl $kv (server)"; done
  printf '%s\n' "$RULES" >"$WORK/rules.toml"
  # shellcheck disable=SC2086
  finwave_start router "$WORK/finwave.jsonl" --port "$TEARDOWN_PORT" --rules "$WORK/rules.toml" --settle "$SETTLE" --linger "$LINGER" $FINWAVE_ARGS
  address=$LAB_SERVER_V4
  [[ $FAMILY == v6 ]] && address=$LAB_SERVER_V6
  SERVER_ADDRESS=$address
  teardown_server main "$SERVER_SCRIPT" "$TEARDOWN_PORT" "$CONNECTIONS"
  if declare -F scenario_before_client >/dev/null; then scenario_before_client; fi
  CLIENT_STARTED_MS=$(lab_now_ms)
  local status=0
  # shellcheck disable=SC2086
  lab_exec client "$FINWAVE_BIN_PEER" client --connect "$address" --port "$TEARDOWN_PORT" \
    --connections "$CONNECTIONS" --io-timeout "$TEARDOWN_IO_TIMEOUT_MS" \
    --script "$CLIENT_SCRIPT" $CLIENT_ARGS >"$WORK/main.client.jsonl" || status=$?
  ((status == 0 || CLIENT_MAY_FAIL)) ||
    fail "client script '$CLIENT_SCRIPT' failed: $(tail -3 "$WORK/main.client.jsonl")"
  CLIENT_DONE_MS=$(lab_now_ms)
  status=0
  lab_wait "$SERVER_PID" 30 || status=$?
  ((status == 0 || SERVER_MAY_FAIL)) ||
    fail "server script '$SERVER_SCRIPT' failed: $(tail -3 "$WORK/main.server.jsonl")"
  # One case per connection: c1, c2, ... by the client's connect events.
  i=0
  while read -r local_end; do
    i=$((i + 1))
    echo "c$i $FAMILY $local_end 0" >>"$WORK/cases"
  done < <(jq -r 'select(.event == "connect") | .local' "$WORK/main.client.jsonl")
  ((i == CONNECTIONS)) || fail "$i of $CONNECTIONS connections were made"
  # The client first: where both are watched (6b), the client's socket goes first.
  if ((WAIT_CLIENT_GONE)); then
    CLIENT_GONE_MS=$(ss_gone client all "$WAIT_CLIENT_GONE")
  fi
  if ((WAIT_SERVER_GONE)); then
    SERVER_GONE_MS=$(ss_gone server all "$WAIT_SERVER_GONE")
  fi
  if declare -F scenario_after_client >/dev/null; then scenario_after_client; fi
  teardown_collect "$CONNECTIONS" "$WAIT"

  # Judge every case: finwave against the wire, then the scenario's expectations.
  local c some=0
  scenario_report
  for ((i = 1; i <= CONNECTIONS; i++)); do
    c=c$i
    while read -r line; do
      [[ -n "$line" ]] && problem "$c: finwave vs tcpdump: $line"
    done < <(case_report "$c" '.problems[]' | jq -r .)
    [[ "$(case_report "$c" ".outcomes[0] | $EXPECT_OUTCOME")" == true ]] ||
      problem "$c: finwave's outcome is not as expected ($EXPECT_OUTCOME)"
    [[ "$(case_report "$c" ".wire | $EXPECT_WIRE")" == true ]] ||
      problem "$c: the wire is not as expected ($EXPECT_WIRE)"
    if [[ -n "$EXPECT_SOME" && "$(case_report "$c" ".outcomes[0] | $EXPECT_SOME")" == true ]]; then
      some=$((some + 1))
      SHOW_CASE=${SHOW_CASE:-$c}
    fi
  done
  if [[ -n "$EXPECT_SOME" ]]; then
    measure matching_connections "$some"
    ((some > 0)) || problem "no connection of $CONNECTIONS satisfied $EXPECT_SOME"
  fi
  SHOW_CASE=${SHOW_CASE:-c1}
  measure server_fins "$(wire_fin_times server "$SHOW_CASE")"
  measure client_fins "$(wire_fin_times client "$SHOW_CASE")"
  if declare -F scenario_check >/dev/null; then scenario_check; fi

  # The result object.
  local measured='{}' k problems='[]'
  for k in "${!MEASURED[@]}"; do
    measured=$(jq -c --arg k "$k" --argjson v "${MEASURED[$k]}" '. + {($k): $v}' <<<"$measured")
  done
  ((${#PROBLEMS[@]})) && problems=$(printf '%s\n' "${PROBLEMS[@]}" | jq -R . | jq -sc .)
  case_report "$SHOW_CASE" | jq -c --arg name "$NAME" --arg title "$TITLE" --arg q "$QUESTION" \
    --argjson long "$LONG" --arg family "$FAMILY" --arg rules "$RULES" \
    --arg sc "$SYSCTL_CLIENT" --arg ss "$SYSCTL_SERVER" --arg cs "$CLIENT_SCRIPT $CLIENT_ARGS" \
    --arg srv "$SERVER_SCRIPT" --argjson conns "$CONNECTIONS" --argjson m "$measured" \
    --argjson problems "$problems" --arg show "$SHOW_CASE" '
    .outcomes[0] as $o
    | {name: $name, title: $title, question: $q, long: ($long == 1), pass: ($problems | length == 0),
       problems: $problems,
       settings: {family: $family, connections: $conns, shown: $show,
                  sysctl_client: $sc, sysctl_server: $ss,
                  rules: ($rules | split("\n") | map(select(test("^\\s*(#|$)") | not)) | join("; ")),
                  client_script: $cs, server_script: $srv},
       finwave: ($o | if . == null then null else
                 {closer, kind, result, fin_retransmits, final_acks, rst, teardown_ms,
                  actions: [.actions[]? | "\(.rule):\(.action)×\(.count)"]} end),
       wire: (.wire | {closer, kind, result, fins, rsts, rst, final_acks, data_after_fin}),
       delivered: .delivered,
       measured: $m}' >"$out"
}

# orphan_check — for the "fourth wave always lost" scenarios: how many times and over how long
# the passive closer (the server) retransmitted its FIN, by tcpdump (server FINs on to-server),
# by finwave (fin_retransmits.server, teardown_ms), and when its socket left LAST_ACK (ss in
# the server namespace, polled every 20 ms): the give-up time.
orphan_check() {
  local fins retx fw_retx first_s gone_ms
  fins=$(jq .n <<<"${MEASURED[server_fins]}")
  retx=$((fins - 1))
  fw_retx=$(case_report "$SHOW_CASE" '.outcomes[0].fin_retransmits.server')
  measure fin_retransmits_wire "$retx"
  measure fin_retransmits_finwave "$fw_retx"
  measure teardown_ms_finwave "$(case_report "$SHOW_CASE" '.outcomes[0].teardown_ms')"
  measure retransmit_gaps_ms "$(jq -c .gaps_ms <<<"${MEASURED[server_fins]}")"
  measure last_retransmit_ms "$(jq -c '.t_ms | last' <<<"${MEASURED[server_fins]}")"
  first_s=$(jq -r .first <<<"${MEASURED[server_fins]}")
  if [[ "${SERVER_GONE_MS:--1}" == -1 ]]; then
    problem "the server's socket was still there after ${WAIT_SERVER_GONE} s"
  else
    gone_ms=$(jq -n --argjson g "$SERVER_GONE_MS" --argjson f "$first_s" '($g - $f * 1000) | round')
    measure gave_up_after_ms "$gone_ms"
  fi
  local setting=${ORPHAN_RETRIES:-0} meant
  meant=$setting
  ((setting == 0)) && meant=8
  measure orphan_retries_setting "\"$setting (means $meant)\""
  ((retx == fw_retx)) || problem "finwave counts $fw_retx server FIN retransmissions, tcpdump $retx"
  if ((retx != meant)); then
    measure note "\"count differs from the setting by $((retx - meant)): see the gaps (a first gap well under the 200 ms minimum RTO is a tail-loss probe)\""
  fi
}
