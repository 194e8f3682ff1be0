# shellcheck shell=bash
# tests/lab/wait_lib.sh — waiting for a condition, with a deadline, instead of for time. Part
# of lib.sh, which sources it (it uses fail, capture_count and LAB_DIR).
#
#   wait_for SECONDS DESCRIPTION CMD [ARGS...]
#       run CMD every 50 ms until it succeeds; 0 once it has, 1 (and "wait_for: DESCRIPTION: not
#       after SECONDS s" on stderr) if it still fails at the deadline. CMD's own output is
#       discarded. SECONDS may be fractional (0.5).
#         wait_for 5 "the server to listen" test -e "$LAB_DIR/ready" || problem "..."
#   wait_until SECONDS DESCRIPTION CMD [ARGS...]
#       the same, but a timeout fails the test: "FAIL: <test>: waited SECONDS s for DESCRIPTION".
#       In the test's own shell (fail only leaves a $(...) subshell).
#         wait_until 10 "the watcher to subscribe" at_least 1 finwave_status_field "$sock" \
#           .control.subscribers
#   at_least N CMD [ARGS...]       succeeds when CMD succeeds and prints an integer >= N
#   exactly N CMD [ARGS...]        succeeds when CMD succeeds and prints the integer N
#   event_count FILE EVENT         prints how many JSON lines of FILE have "event":"EVENT"
#                                  (0 while FILE does not exist)
#   pcap_count FILE FILTER         capture_count, but 0 instead of an error while a pcap that
#                                  tcpdump is still writing cannot be read yet
#   finwave_status_field SOCKET JQ  JQ applied to `finwavectl --json status` of the finwave
#                                  listening on SOCKET (fails if it does not answer)
#   finwave_stats_field SOCKET JQ   the same for `finwavectl --json stats` (the live counters;
#                                  finwave_stats of finwave.sh reads the exit stats line)

# wait_for SECONDS DESCRIPTION CMD [ARGS...] — see above.
wait_for() {
  local seconds=${1:?wait_for SECONDS DESCRIPTION CMD...} what=${2:?wait_for SECONDS DESCRIPTION CMD...}
  shift 2
  (($# > 0)) || fail "wait_for: no command given"
  local deadline now
  # Deadlines in microseconds of EPOCHREALTIME: SECONDS is too coarse for sub-second waits.
  now=${EPOCHREALTIME/[.,]/}
  deadline=$((now + $(_wait_us "$seconds")))
  while :; do
    "$@" >/dev/null 2>&1 && return 0
    now=${EPOCHREALTIME/[.,]/}
    ((now < deadline)) || break
    sleep 0.05
  done
  # One last look: the condition may have come true during the last sleep.
  "$@" >/dev/null 2>&1 && return 0
  echo "wait_for: $what: not after $seconds s" >&2
  return 1
}

# wait_until SECONDS DESCRIPTION CMD [ARGS...] — wait_for, failing the test on a timeout.
wait_until() {
  local seconds=${1:?wait_until SECONDS DESCRIPTION CMD...} what=${2:?wait_until SECONDS DESCRIPTION CMD...}
  wait_for "$@" 2>/dev/null || fail "waited $seconds s for $what"
}

# SECONDS (integer or decimal) as microseconds.
_wait_us() {
  local s=$1 int frac
  int=${s%%.*}
  frac=
  [[ "$s" == *.* ]] && frac=${s#*.}
  frac=${frac}000000
  echo $((10#${int:-0} * 1000000 + 10#${frac:0:6}))
}

# at_least N CMD [ARGS...] — CMD succeeds and prints an integer >= N.
at_least() {
  local want=${1:?at_least N CMD...} got
  shift
  got=$("$@") || return 1
  [[ "$got" =~ ^[0-9]+$ ]] && ((got >= want))
}

# exactly N CMD [ARGS...] — CMD succeeds and prints the integer N.
exactly() {
  local want=${1:?exactly N CMD...} got
  shift
  got=$("$@") || return 1
  [[ "$got" =~ ^[0-9]+$ ]] && ((got == want))
}

# event_count FILE EVENT — JSON lines of FILE with "event":"EVENT" (finwave's and finwavectl's
# lines and finwave-peer's are written compactly, without spaces).
event_count() {
  local file=${1:?event_count FILE EVENT} event=${2:?event_count FILE EVENT}
  [[ -e "$file" ]] || { echo 0; return 0; }
  grep -c "\"event\":\"$event\"" "$file" || true
}

# pcap_count FILE FILTER — packets of a pcap being written that match FILTER; 0 while it cannot
# be read (not written yet, or a packet written halfway).
pcap_count() {
  capture_count "$@" 2>/dev/null || echo 0
}

# finwave_status_field SOCKET JQ — a field of finwave's live status.
finwave_status_field() {
  local reply
  reply=$("$FINWAVE_BUILD/finwavectl" --control "${1:?finwave_status_field SOCKET JQ}" --json status) || return 1
  jq -r "${2:?finwave_status_field SOCKET JQ}" <<<"$reply"
}

# control_subscribers — how many clients of the finwave at $FINWAVE_CONTROL are subscribed.
control_subscribers() { finwave_status_field "$FINWAVE_CONTROL" .control.subscribers; }

# finwave_stats_field SOCKET JQ — a field of finwave's live stats.
finwave_stats_field() {
  local reply
  reply=$("$FINWAVE_BUILD/finwavectl" --control "${1:?finwave_stats_field SOCKET JQ}" --json stats) || return 1
  jq -r "${2:?finwave_stats_field SOCKET JQ}" <<<"$reply"
}
