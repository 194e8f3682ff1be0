#!/usr/bin/env bash
# The control socket abused during churn: clients that hang up in the middle of a `wait` (200 of
# them, one after another), and one that sends `stats` every millisecond for 10 s. Verdicts keep
# flowing: the churn's connections all complete and are reported, and the latency a queued
# segment gains from the flood is measured with finwave-latency-probe (connections alternating
# between a captured and an uncaptured port, so both figures come from the same seconds), once
# before the abuse and once during it. Afterwards no wait and no client of the abusers is left.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin control_abuse
export FINWAVE_CONTROL=$LAB_DIR/control.sock
probe=$FINWAVE_BUILD/finwave-latency-probe
require_file "$probe" "cmake --build build --target finwave-latency-probe"
flood_s=10

cat >"$LAB_DIR/rules.toml" <<'TOML'
[[rule]]
name = "watch-fin1"
role = "fin1"
action = "pass"
TOML
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
for port in 6000 6001; do
  lab_bg server "$LAB_DIR/probe-server-$port.log" "$probe" server --port "$port" \
    --ready-file "$LAB_DIR/probe-$port.ready" >/dev/null
  wait_for_file "$LAB_DIR/probe-$port.ready" 10 || fail "the probe server on $port did not start"
done
# Port 6000 is captured (SYN and SYN-ACK queued), 6001 is not.
finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$LAB_DIR/rules.toml" --port 5000 \
  --port 6000 --settle 0.2 --linger 5 --control "$FINWAVE_CONTROL"

# The abusers, in Python: `flood` sends {"cmd":"stats"} every millisecond (on a schedule, not
# back to back) and counts the replies; `hangup` opens a wait, lets it register, and hangs up.
cat >"$LAB_DIR/abuse.py" <<'PY'
import json, socket, sys, threading, time

def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s

def flood(path, seconds):
    s = connect(path)
    replies = {"ok": 0, "error": 0}
    def read():
        buf = b""
        while True:
            data = s.recv(1 << 16)
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                replies["ok" if json.loads(line).get("ok") else "error"] += 1
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sent, late_ms, start = 0, 0.0, time.monotonic()
    while time.monotonic() - start < seconds:
        due = start + sent * 0.001
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late_ms = max(late_ms, (now - due) * 1000)
        s.sendall(b'{"id":%d,"cmd":"stats"}\n' % sent)
        sent += 1
    deadline = time.monotonic() + 10
    while replies["ok"] + replies["error"] < sent and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps({"event": "flood", "sent": sent, "ok": replies["ok"],
                      "errors": replies["error"], "seconds": round(time.monotonic() - start, 2)}))

def hangup(path, count):
    for i in range(count):
        s = connect(path)
        s.sendall(b'{"id":%d,"cmd":"wait","result":"timeout","timeout_ms":60000}\n' % i)
        time.sleep(0.02 + (i % 5) * 0.01)
        s.close()
    print(json.dumps({"event": "hangup", "count": count}))

{"flood": lambda: flood(sys.argv[2], float(sys.argv[3])),
 "hangup": lambda: hangup(sys.argv[2], int(sys.argv[3]))}[sys.argv[1]]()
PY

# latency NAME — the probe's figures; prints the added latency per queued segment (us, p50).
latency() {
  local file=$LAB_DIR/latency.$1.json
  lab_exec client "$probe" client --connect "$LAB_SERVER_V4" --port 6000 --direct-port 6001 \
    --count 300 --warmup 20 --gap-us 2000 >"$file" 2>"$file.err" ||
    fail "latency probe ($1) failed: $(cat "$file" "$file.err")"
  [ "$(jq .errors "$file")" -eq 0 ] || fail "latency probe ($1): $(cat "$file")"
  jq -r '(.queued.reply_us.p50 - .direct.reply_us.p50) / 2 | . * 10 | round / 10' "$file"
}

churn_start churn --connect "$LAB_SERVER_V4" --port 5000 --connections 50 --parallel 2 \
  --script send:100,close
wait_until 10 "the churn to start" at_least 1 event_count "$FINWAVE_OUT" outcome
quiet_us=$(latency quiet)

clients_before=$(finwave_status_field "$FINWAVE_CONTROL" .control.clients)
lab_bg host "$LAB_DIR/hangup.jsonl" python3 "$LAB_DIR/abuse.py" hangup "$FINWAVE_CONTROL" 200 \
  >/dev/null
hangup_pid=$LAB_LAST_PID
lab_bg host "$LAB_DIR/flood.jsonl" python3 "$LAB_DIR/abuse.py" flood "$FINWAVE_CONTROL" \
  "$flood_s" >/dev/null
flood_pid=$LAB_LAST_PID
t0=$(lab_now_ms)
wait_until 5 "the flood to be answered" at_least 100 \
  finwave_stats_field "$FINWAVE_CONTROL" .control.requests
flood_us=$(latency flood)
probe_ms=$(($(lab_now_ms) - t0))
((probe_ms < flood_s * 1000)) ||
  fail "the probe under the flood took $probe_ms ms, longer than the $flood_s s flood"
lab_wait "$hangup_pid" 60 || fail "the hang-up client failed: $(cat "$LAB_DIR/hangup.jsonl.err")"
lab_wait "$flood_pid" 30 || fail "the flooder failed: $(cat "$LAB_DIR/flood.jsonl.err")"
sent=$(jq .sent "$LAB_DIR/flood.jsonl")
answered=$(jq .ok "$LAB_DIR/flood.jsonl")
((sent >= flood_s * 900)) || fail "the flooder sent only $sent requests in $flood_s s"
[ "$answered" -eq "$sent" ] || fail "$answered of $sent flood requests answered ok"
[ "$(jq .count "$LAB_DIR/hangup.jsonl")" -eq 200 ] || fail "the hang-up client did not finish"
churn_stop churn
made=$(churn_connections churn)

# Nothing of the abusers is left: no wait, no client beyond those before.
wait_until 5 "the abandoned waits to go" exactly 0 finwave_status_field "$FINWAVE_CONTROL" .control.waits
clients_back() {
  local now
  now=$(finwave_status_field "$FINWAVE_CONTROL" .control.clients) && ((now <= clients_before))
}
wait_until 5 "the abusers' connections to close" clients_back
reported_to_5000() { outcomes 'select(.sides_known) | select(.flow.server | endswith(":5000"))' | wc -l; }
wait_until 20 "$made churn outcomes" at_least "$made" reported_to_5000
finwave_stop
check_all_queued_answered
added=$(awk -v a="$flood_us" -v b="$quiet_us" 'BEGIN { printf "%.1f", a - b }')
pass "flood of $sent stats requests in $flood_s s (all answered) and 200 waits hung up on," \
  "during $made churn connections (all reported): a queued segment's latency, p50, +$quiet_us us" \
  "quiet, +$flood_us us during the flood (probe done ${probe_ms} ms into it): the flood added" \
  "$added us per queued segment"
