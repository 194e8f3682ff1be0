#!/usr/bin/env bash
# Type=notify for real, with a stand-in for systemd's notify socket (NOTIFY_SOCKET): finwave says
# READY=1 from its main process once its queue is bound and its table installed (the ready file
# and the table are there by then), RELOADING=1 then READY=1 around a SIGHUP reload, and
# STOPPING=1 when it is told to stop.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin systemd_notify
notify=$LAB_DIR/notify.jsonl
lab_bg host "$notify" /usr/bin/python3 "$here/notify_listener.py" "$LAB_DIR/notify.sock" >/dev/null
listener=$LAB_LAST_PID
lab_on_exit rm -f "$LAB_DIR/notify.sock"
wait_until 10 "the notify listener" grep -q listening "$notify"
messages() { jq -r 'select(.message) | .message' "$notify" | tr '\n' '|'; }
said() { messages | grep -qF -- "$1"; }

cp "$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml" "$LAB_DIR/rules.toml"
NOTIFY_SOCKET=$LAB_DIR/notify.sock finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 \
  --rules "$LAB_DIR/rules.toml"
wait_for 10 "READY=1" said "READY=1" || fail "no READY=1: $(cat "$notify")"
expect "senders" "$(jq -sc '[.[] | select(.message) | .pid] | unique' "$notify")" "[$FINWAVE_PID]"
lab_exec router nft list tables | grep -q "table inet finwave-q0" || fail "READY=1 before the table"

kill -HUP "$FINWAVE_PID"
wait_for 10 "RELOADING=1 then READY=1" said "RELOADING=1|READY=1" ||
  fail "no RELOADING=1, READY=1 after SIGHUP: $(messages)"
finwave_stop
wait_for 10 "STOPPING=1" said "STOPPING=1" || fail "no STOPPING=1: $(messages)"
lab_kill "$listener"
rm -f "$LAB_DIR/notify.sock"
expect "messages" "$(messages | sed 's/STATUS=[^|]*|//g')" "READY=1|RELOADING=1|READY=1|STOPPING=1|"
pass "READY=1 once capturing, RELOADING=1/READY=1 around SIGHUP, STOPPING=1, all from finwave's main process"
