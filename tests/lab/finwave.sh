# shellcheck shell=bash
# Helpers for lab tests that run finwave itself. Part of lib.sh, which sources it.
#   finwave_start ROLE OUTFILE ARGS...   starts finwave in ROLE's namespace with --json and a
#                                        ready file; sets FINWAVE_PID; waits until it is ready
#   finwave_stop                         SIGTERM, wait, and check it exited 0
#   finwave_kill9                        SIGKILL (a crash); removes the socket file it leaves
#   finwave_stats FIELD                  a jq path into the exit stats line, e.g. .queue.queued
#   outcomes [JQ-FILTER]                 the outcome lines of OUTFILE (optionally filtered)
#   kernel_queue_field ROLE N FIELD      a column of /proc/net/netfilter/nfnetlink_queue for
#                                        queue 0 in ROLE's namespace (FIELD: 3 = queue_total,
#                                        6 = queue_dropped, 7 = user_dropped, 8 = id_sequence)

FINWAVE_BIN=${FINWAVE_BIN:-$FINWAVE_BUILD/finwave}
FINWAVE_OUT=
FINWAVE_PID=

finwave_start() {
  local role=$1 out=$2
  shift 2
  FINWAVE_OUT=$out
  local ready="$out.ready"
  rm -f "$ready"
  # Each test's finwave gets its own control socket: labs may run side by side.
  lab_bg "$role" "$out" "$FINWAVE_BIN" --json --ready-file "$ready" --control "$out.control.sock" \
    "$@" >/dev/null
  FINWAVE_PID=$LAB_LAST_PID
  local deadline=$((SECONDS + 15))
  until [ -s "$ready" ]; do
    if ! kill -0 "$FINWAVE_PID" 2>/dev/null; then
      cat "$out.err" "$out" >&2 2>/dev/null || true
      fail "finwave exited during start-up"
    fi
    [ $SECONDS -lt $deadline ] || fail "finwave did not become ready within 15 s"
    sleep 0.05
  done
}

finwave_stop() {
  [ -n "$FINWAVE_PID" ] || return 0
  lab_kill "$FINWAVE_PID" TERM
  local status=0
  lab_wait "$FINWAVE_PID" 10 || status=$?
  FINWAVE_PID=
  [ "$status" -eq 0 ] || { cat "$FINWAVE_OUT.err" >&2; fail "finwave exited with status $status"; }
}

# finwave_kill9: what a crash looks like to the kernel. A killed finwave cannot remove its
# control socket file: the test that caused the crash removes it (the leak check would fail it).
finwave_kill9() {
  lab_kill "$FINWAVE_PID" KILL
  FINWAVE_PID=
  rm -f "$FINWAVE_OUT.control.sock"
}

finwave_stats() {
  jq -r "select(.event == \"stats\") | $1" "$FINWAVE_OUT"
}

outcomes() {
  jq -c "select(.event == \"outcome\") | ${1:-.}" "$FINWAVE_OUT"
}

kernel_queue_field() {
  # shellcheck disable=SC2016 # an awk program: $1 and $f are awk's fields
  lab_exec "$1" awk -v q="$2" -v f="$3" '$1 == q { print $f }' /proc/net/netfilter/nfnetlink_queue
}

# Fails unless the exit stats show every queued packet got exactly one verdict and none is held.
check_verdict_accounting() {
  local queued accepted dropped held
  queued=$(finwave_stats .queue.queued)
  accepted=$(finwave_stats .queue.accepted)
  dropped=$(finwave_stats .queue.dropped)
  held=$(finwave_stats .queue.held)
  [ "$queued" -eq $((accepted + dropped)) ] ||
    fail "queued $queued != accepted $accepted + dropped $dropped"
  [ "$held" -eq 0 ] || fail "$held packets still held at exit"
  [ "$(finwave_stats .queue.verdict_errors)" -eq 0 ] || fail "verdict errors at exit"
}

# ctl ARGS... — finwavectl of this build, on the control socket $FINWAVE_CONTROL names (the
# test exports it).
ctl() { "$FINWAVE_BUILD/finwavectl" "$@"; }
