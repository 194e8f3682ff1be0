#!/usr/bin/env bash
# Who may use the control socket, and whose socket it is. The socket is root's (0600): a
# non-root user cannot connect (finwavectl exits 3 and says why). A second finwave does not steal
# a socket a running finwave listens on (it exits 1 and names the path). After a crash (kill -9)
# the stale socket file is replaced. With --control-group the group gets in (0660), others not.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin control_permission
# nobody may not be able to reach the build tree: give it its own copy of finwavectl.
bin=$(mktemp -d /tmp/finwavectl-bin.XXXXXX)
lab_on_exit rm -rf "$bin"
install -m 0755 "$FINWAVE_BUILD/finwavectl" "$bin/finwavectl"
chmod 0755 "$bin"
as_nobody() { setpriv --reuid nobody --regid nogroup --clear-groups "$bin/finwavectl" "$@"; }
as_other() { setpriv --reuid nobody --regid 4242 --clear-groups "$bin/finwavectl" "$@"; }
# A directory others may traverse (LAB_DIR is 0700), created by finwave itself.
dir=/run/finwave/$FINWAVE_LAB
lab_on_exit rm -rf "$dir"
export FINWAVE_CONTROL=$dir/control.sock

finwave_start router "$LAB_DIR/finwave.jsonl" --port 5000 --control "$FINWAVE_CONTROL"
[ "$(stat -c '%a %U %G %F' "$FINWAVE_CONTROL")" = "600 root root socket" ] ||
  fail "socket is $(stat -c '%a %U %G %F' "$FINWAVE_CONTROL")"
[ "$(stat -c '%a' "$dir")" = 755 ] || fail "directory mode $(stat -c '%a' "$dir")"
ctl status >/dev/null || fail "root cannot use the socket"

status=0
as_nobody status >/dev/null 2>"$LAB_DIR/nobody.err" || status=$?
[ "$status" -eq 3 ] || fail "nobody: finwavectl exited $status, expected 3"
grep -q "permission denied" "$LAB_DIR/nobody.err" || fail "nobody: $(cat "$LAB_DIR/nobody.err")"

# A second finwave with the same socket: refused before it touches anything.
status=0
lab_exec router "$FINWAVE_BIN" --port 5001 --queue 7 --control "$FINWAVE_CONTROL" \
  >/dev/null 2>"$LAB_DIR/second.err" || status=$?
[ "$status" -eq 1 ] || fail "second finwave exited $status, expected 1"
grep -q "already listening on the control socket $FINWAVE_CONTROL" "$LAB_DIR/second.err" ||
  fail "second finwave said: $(cat "$LAB_DIR/second.err")"
ctl status >/dev/null || fail "the first finwave lost its socket"

# Something that is not a socket is never removed.
touch "$dir/not-a-socket"
status=0
lab_exec router "$FINWAVE_BIN" --port 5001 --queue 7 --control "$dir/not-a-socket" \
  >/dev/null 2>"$LAB_DIR/file.err" || status=$?
if ! { [ "$status" -eq 1 ] && [ -f "$dir/not-a-socket" ]; }; then
  fail "finwave exited $status over a regular file"
fi

# Crash: the socket file stays; the next finwave replaces it, this time for a group.
finwave_kill9
[ -S "$FINWAVE_CONTROL" ] || fail "kill -9 should leave the socket file"
status=0
ctl status >/dev/null 2>"$LAB_DIR/stale.err" || status=$?
if ! { [ "$status" -eq 3 ] && grep -q "no finwave listens" "$LAB_DIR/stale.err"; }; then
  fail "stale socket: finwavectl exited $status: $(cat "$LAB_DIR/stale.err")"
fi
finwave_start router "$LAB_DIR/finwave2.jsonl" --port 5000 --control "$FINWAVE_CONTROL" \
  --control-group nogroup
grep -q "replaced the stale socket" "$FINWAVE_OUT.err" || fail "stale socket replacement not logged"
[ "$(stat -c '%a %U %G' "$FINWAVE_CONTROL")" = "660 root nogroup" ] ||
  fail "group socket is $(stat -c '%a %U %G' "$FINWAVE_CONTROL")"
as_nobody --json status | jq -e '.ok' >/dev/null ||
  fail "a member of the control group cannot connect"
status=0
as_other status >/dev/null 2>"$LAB_DIR/other.err" || status=$?
[ "$status" -eq 3 ] || fail "a user outside the group: finwavectl exited $status, expected 3"

finwave_stop
[ ! -e "$FINWAVE_CONTROL" ] || fail "socket left after a clean stop"
status=0
ctl status >/dev/null 2>&1 || status=$?
[ "$status" -eq 3 ] || fail "finwavectl exited $status with no daemon, expected 3"
pass "0600 root-only (nobody: exit 3), live socket not stolen (exit 1), stale socket replaced, --control-group 0660"
