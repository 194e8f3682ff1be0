# shellcheck shell=bash
# tests/lab/fault_lib.sh — helpers for the fault tests (kill -9, a deleted table, queue overflow,
# control abuse, reload storm). Part of lib.sh, which sources it.
#
#   churn_start NAME ARGS...   start a client in the client namespace that makes batches of
#                              connections (finwave-peer client ARGS...) one after another until
#                              churn_stop; each batch's summary line goes to $LAB_DIR/NAME.jsonl
#   churn_stop NAME [SECONDS]  let the running batch finish, wait for it; fails the test if a
#                              batch failed. Prints nothing; churn_connections NAME counts.
#   churn_connections NAME     connections made so far by finished batches (all must succeed)
#   churn_failed NAME          connections of finished batches that failed
#   ctl ARGS...                finwavectl for $FINWAVE_CONTROL
#   check_all_queued_answered  the exit stats: every segment the kernel queued (its id sequence)
#                              was read by finwave, and each got exactly one verdict

# The batch loop runs inside the client namespace; a TERM (cleanup) ends the batch in flight too,
# so nothing of it outlives the test. (Single quotes: it is the script bash -c runs.)
# shellcheck disable=SC2016
_FAULT_CHURN_LOOP='
stop=$1; shift
trap '\''[ -n "${child:-}" ] && kill "$child" 2>/dev/null; exit 143'\'' TERM INT
while [ ! -e "$stop" ]; do
  "$@" &
  child=$!
  wait "$child" || exit 1
  child=
done'

churn_start() {
  local name=${1:?churn_start NAME ARGS...}
  shift
  rm -f "$LAB_DIR/$name.stop"
  lab_bg client "$LAB_DIR/$name.jsonl" bash -c "$_FAULT_CHURN_LOOP" churn "$LAB_DIR/$name.stop" \
    "$FINWAVE_BIN_PEER" client "$@" --quiet >/dev/null
  printf '%s\n' "$LAB_LAST_PID" >"$LAB_DIR/$name.pid"
}

churn_stop() {
  local name=${1:?churn_stop NAME [SECONDS]} seconds=${2:-60} pid status=0
  pid=$(<"$LAB_DIR/$name.pid")
  touch "$LAB_DIR/$name.stop"
  lab_wait "$pid" "$seconds" || status=$?
  [ "$status" -eq 0 ] ||
    fail "churn $name: a batch failed (status $status): $(tail -2 "$LAB_DIR/$name.jsonl")"
}

churn_connections() {
  jq -s '[.[] | select(.event == "summary") | .connections] | add // 0' "$LAB_DIR/${1:?}.jsonl"
}

churn_failed() {
  jq -s '[.[] | select(.event == "summary") | .failed] | add // 0' "$LAB_DIR/${1:?}.jsonl"
}


check_all_queued_answered() {
  check_verdict_accounting
  local queued ids
  queued=$(finwave_stats .queue.queued)
  ids=$(finwave_stats .kernel.id_sequence)
  [ "$queued" -eq "$ids" ] ||
    fail "the kernel queued $ids segments (id_sequence) but finwave read $queued"
}
