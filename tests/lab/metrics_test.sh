#!/usr/bin/env bash
# The Prometheus endpoint (--metrics) for real. No port is opened without it; with it, exactly
# the one asked for (IPv6 and IPv4). Its figures, parsed by Debian's python3-prometheus-client,
# agree with `stats`, `status`, the outcome lines, `finwavectl metrics`, and the wire (the
# server's FINs in tcpdump's capture). Bad input (a malformed request, a huge header, a slow
# client, 500 connections at once) is answered as it should be while 300 connections tear down
# through finwave, every one of them reported as the rule makes it and no segment lost.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin metrics
python=/usr/bin/python3
"$python" -c 'import prometheus_client' 2>/dev/null ||
  fail "Debian's python3-prometheus-client is missing (deploy/install-deps.sh)"
metrics_probe() { lab_exec client "$python" "$here/metrics_probe.py" "$@"; }
# The router namespace's listening TCP sockets, "ADDRESS:PORT ..." (empty for none).
router_listeners() { lab_exec router ss -Hltn | awk '{ printf "%s ", $4 }'; }

# Refused at start-up, with nothing installed: bad syntax (2), an address not in this
# namespace (1).
start_refused() {  # start_refused WANT-STATUS WHAT-IN-STDERR METRICS-VALUE
  local status=0
  lab_exec router "$FINWAVE_BIN" --control none --port 5000 --metrics "$3" \
    >/dev/null 2>"$LAB_DIR/refused.err" || status=$?
  [ "$status" -eq "$1" ] || fail "--metrics $3 exited $status, expected $1: $(cat "$LAB_DIR/refused.err")"
  grep -qF -- "$2" "$LAB_DIR/refused.err" ||
    fail "--metrics $3 did not say '$2': $(cat "$LAB_DIR/refused.err")"
}
start_refused 2 "expected ADDRESS:PORT" "$LAB_ROUTER_CLIENT_V4"
start_refused 2 "expected ADDRESS:PORT" "$LAB_ROUTER_CLIENT_V4:0"
start_refused 1 "cannot serve metrics on 198.18.99.99:9464: bind: Cannot assign requested address" \
  198.18.99.99:9464
lab_exec router nft list tables >"$LAB_DIR/tables"
[ ! -s "$LAB_DIR/tables" ] || fail "a refused start left tables: $(cat "$LAB_DIR/tables")"

finwave_start router "$LAB_DIR/plain.jsonl" --port 5000
expect "listening sockets without --metrics" "$(router_listeners)" ""
finwave_stop

finwave_start router "$LAB_DIR/v6.jsonl" --port 5000 --metrics "[$LAB_ROUTER_CLIENT_V6]:9464"
expect "listening sockets with --metrics [v6]" "$(router_listeners)" "[$LAB_ROUTER_CLIENT_V6]:9464 "
metrics_probe scrape "http://[$LAB_ROUTER_CLIENT_V6]:9464/metrics" >"$LAB_DIR/v6.txt" ||
  fail "no metrics over IPv6"
grep -q '^finwave_build_info{version="[^"]*"} 1$' "$LAB_DIR/v6.txt" ||
  fail "no build info: $(head -n 20 "$LAB_DIR/v6.txt")"
finwave_stop

# The main run: 20 connections whose first final ACK is lost, then the figures compared.
url=http://$LAB_ROUTER_CLIENT_V4:9464/metrics
finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 --settle 0.2 --linger 5 \
  --rules "$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml" --metrics "$LAB_ROUTER_CLIENT_V4:9464"
export FINWAVE_CONTROL=$LAB_DIR/finwave.jsonl.control.sock
expect "listening sockets with --metrics" "$(router_listeners)" "$LAB_ROUTER_CLIENT_V4:9464 "
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
capture_start router to-server "$LAB_DIR/wire.pcap" "tcp port 5000"
lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 -n 20 \
  --parallel 4 --quiet >/dev/null || fail "the clients failed"
ctl --json wait --since 0 --count 20 --timeout 30s >/dev/null || fail "fewer than 20 outcomes in 30 s"

# The endpoint renews its snapshot every 250 ms: wait until it shows what stats shows.
metrics_agree() {
  ctl --json stats >"$LAB_DIR/stats.json" && ctl --json status >"$LAB_DIR/status.json" &&
    ctl metrics >"$LAB_DIR/ctl.txt" &&
    metrics_probe check "$url" --stats "$LAB_DIR/stats.json" --status "$LAB_DIR/status.json" \
      --outcomes "$LAB_DIR/finwave.jsonl" --ctl "$LAB_DIR/ctl.txt" >"$LAB_DIR/check.out" 2>"$LAB_DIR/check.err"
}
wait_for 10 "the metrics to agree with stats and the outcomes" metrics_agree ||
  fail "the metrics disagree: $(cat "$LAB_DIR/check.err")"
metric() { awk -v name="$1" '$1 == name { print $2 }' "$LAB_DIR/ctl.txt"; }
capture_stop
server_fins=$(capture_count "$LAB_DIR/wire.pcap" "src port 5000 and $LAB_FILTER_FIN")
expect "server FINs on the wire" "$server_fins" 40
expect "server FIN retransmissions in the metrics" "$(metric 'finwave_fin_retransmissions_total{side="server"}')" 20
expect "final ACKs dropped in the metrics" \
  "$(metric 'finwave_rule_actions_total{action="drop",role="final_ack",rule="lose-first-final-ack"}')" 20

# Bad input while 300 connections tear down through finwave (each pauses 50 ms after its
# close, so the churn lasts as long as the abuse).
seq=$(finwave_status_field "$FINWAVE_CONTROL" .last_outcome_seq)
churn=$(lab_bg client "$LAB_DIR/churn.log" "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" \
  --port 5000 -n 300 --parallel 2 --script send:1000,shutdown,read-eof,close,sleep:50 --quiet)
metrics_probe abuse "$url" >"$LAB_DIR/abuse.out" 2>"$LAB_DIR/abuse.err" ||
  fail "bad input: $(cat "$LAB_DIR/abuse.err")"
kill -0 "$FINWAVE_PID" 2>/dev/null || fail "finwave died of the bad input"
lab_wait "$churn" 120 || fail "the churn's clients failed: $(cat "$LAB_DIR/churn.log")"
ctl --json wait --since "$seq" --count 300 --timeout 60s >"$LAB_DIR/churn.json" ||
  fail "fewer than 300 outcomes of the churn in 60 s"
expect "the churn's outcomes, as the rule makes them" \
  "$(jq -c '[.outcomes[] | [.result, .fin_retransmits.server, ([.actions[].count] | add)]] | unique' "$LAB_DIR/churn.json")" \
  '[["clean",1,1]]'
wait_for 10 "the metrics to agree after the bad input" metrics_agree ||
  fail "the metrics disagree after the bad input: $(cat "$LAB_DIR/check.err")"
expect "kernel queue drops" "$(jq -c '[.kernel.queue_dropped, .kernel.user_dropped, .capture.passed_unqueued]' "$LAB_DIR/stats.json")" '[0,0,0]'
expect "outcomes in the metrics" "$(metric 'finwave_outcomes_total{closer="client",kind="three_way",result="clean"}')" 320
finwave_stop
pass "$(cat "$LAB_DIR/abuse.out")"
