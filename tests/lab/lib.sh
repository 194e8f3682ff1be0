# shellcheck shell=bash
# shellcheck disable=SC2034 # LAB_* variables are for the scripts that source this file.
# tests/lab/lib.sh — helpers for lab integration tests (bash, set -euo pipefail friendly).
#
#   #!/usr/bin/env bash
#   set -euo pipefail
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lab_begin my_test                       # unique lab fwt<pid>, torn down on exit
#   lab_bg server "$LAB_DIR/server.log" "$FINWAVE_BIN_PEER" server --listen "$LAB_SERVER_V4" \
#     --port 5000 --connections 1 --ready-file "$LAB_DIR/ready" >/dev/null
#   wait_for_file "$LAB_DIR/ready" 5 || fail "server did not start"
#   lab_exec client "$FINWAVE_BIN_PEER" client --connect "$LAB_SERVER_V4" --port 5000 \
#     || fail "client failed"
#   lab_wait "$LAB_LAST_PID" 10 || fail "server failed"
#   pass "one connection"
#
# Variables (override before sourcing where marked):
#   FINWAVE_REPO        repository root (from this file's location)
#   FINWAVE_BUILD       build directory (default: $FINWAVE_REPO/build; ctest sets it)
#   FINWAVE_BIN_PEER    finwave-peer binary (default: $FINWAVE_BUILD/finwave-peer)
#   FINWAVE_LAB_SH      deploy/lab.sh
#   After lab_begin:
#   FINWAVE_LAB         the lab prefix (exported, so deploy/lab.sh sees it)
#   LAB_NAME            the test name given to lab_begin
#   LAB_DIR             a scratch directory for logs, pcaps, ready files; removed when the test
#                       passes, kept (and its path printed) when it fails. LAB_WORK: the same.
#   LAB_CLIENT_NS, LAB_SERVER_V4, LAB_ROUTER_CLIENT_IF, ...   everything "deploy/lab.sh env" prints
#   LAB_LAST_PID        PID of the last lab_bg command (when not called inside $(...))
#
# Functions (each documented below): lab_begin, lab_end, lab_on_exit, lab_ns, lab_exec, lab_bg,
# lab_wait, lab_kill, capture_start, capture_stop, capture_count, wait_for_file, lab_now_ms,
# peer_events, peer_field, require_file, fail, pass; tcpdump filters LAB_FILTER_FIN/SYN/RST.
#
# What a test leaves behind fails it, the way libuv's tests end with a leak check: after the
# cleanup, no program the test started may still run (every program it starts, directly or not,
# inherits FINWAVE_LAB_TOKEN in its environment, which is how they are found), no namespace of
# its lab may exist (the prefix FINWAVE_LAB, or it with letters after), no `finwave-*` nft table may be in the machine's own namespace, no socket
# file may be left in LAB_DIR and no new file in /run/finwave. Leftover programs are ended and
# leftover namespaces removed (they are the test's own), and each is named.
#
# A test never outlives its deadline: FINWAVE_LAB_DEADLINE seconds (default 240; ctest sets it
# below its own timeout) after lab_begin, a watchdog ends the test's programs and the test fails,
# saying so, with its cleanup and leak check run as on any failure.
#
# Background processes start with SIGINT and SIGQUIT restored to their default action (bash
# otherwise makes asynchronous commands ignore them), so `lab_kill PID INT` works.

FINWAVE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FINWAVE_BUILD="${FINWAVE_BUILD:-$FINWAVE_REPO/build}"
FINWAVE_BIN_PEER="${FINWAVE_BIN_PEER:-$FINWAVE_BUILD/finwave-peer}"
FINWAVE_LAB_SH="$FINWAVE_REPO/deploy/lab.sh"
LAB_NAME="${LAB_NAME:-$(basename "$0" .sh)}"
LAB_DIR=""
LAB_WORK=""
LAB_LAST_PID=""
_LAB_UP=0
_LAB_EXIT_HOOKS=()
_LAB_WATCHDOG_PID=""
_LAB_RUN_FINWAVE_BEFORE=""

# fail MSG — print "FAIL: <test>: MSG" on stderr and exit 1 (the EXIT trap cleans up).
# Inside $(...) it only leaves that subshell: test the result instead.
fail() {
  echo "FAIL: $LAB_NAME: $*" >&2
  exit 1
}

# pass MSG — print "PASS: <test>: MSG".
pass() {
  echo "PASS: $LAB_NAME: $*"
}

# lab_begin NAME — check for root, make LAB_DIR, build a lab with the unique prefix fwt<pid>
# and register the EXIT trap that kills background processes, stops captures and removes the
# lab (bash runs the trap only once the current foreground command returns). Labs left by
# test runs that were killed outright are removed first. Not root: fails. A second lab in the same test should use the prefix
# "${FINWAVE_LAB}b" (so that it is collected too) and lab_on_exit to remove it.
lab_begin() {
  LAB_NAME="${1:?lab_begin NAME}"
  # A lab test that cannot run has not passed: fail loudly rather than skip (deploy/test.sh
  # re-runs itself through sudo, so this only happens when ctest is run by hand as a user).
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "FAIL: $LAB_NAME: lab tests need root (network namespaces); run deploy/test.sh" >&2
    exit 1
  fi
  _lab_collect_stale
  export FINWAVE_LAB="fwt$$"
  # Unique per run, even when a PID comes round again: it marks every program this test starts.
  export FINWAVE_LAB_TOKEN="$FINWAVE_LAB.$EPOCHREALTIME"
  LAB_DIR="$(mktemp -d "/tmp/finwave-$LAB_NAME.XXXXXX")"
  LAB_WORK="$LAB_DIR"
  : >"$LAB_DIR/pids"
  : >"$LAB_DIR/captures"
  _LAB_RUN_FINWAVE_BEFORE="$(_lab_run_finwave_files)"
  trap '_lab_exit' EXIT
  trap 'exit 130' INT
  trap '_lab_on_term' TERM
  _lab_start_watchdog "${FINWAVE_LAB_DEADLINE:-240}"
  _LAB_UP=1
  "$FINWAVE_LAB_SH" up || fail "deploy/lab.sh up failed for lab $FINWAVE_LAB"
  eval "$("$FINWAVE_LAB_SH" env)"
}

# Removes labs of test runs that died without cleaning up (SIGKILL, e.g. a ctest timeout):
# prefixes fwt<PID> or fwt<PID><letters> whose PID no longer runs. Processes still inside such
# a namespace are not killed (lab.sh down names them).
_lab_collect_stale() {
  local ns prefix
  local -A stale=()
  while read -r ns _; do
    [[ "$ns" =~ ^(fwt([0-9]+)[a-z]*)-(client|router|server)$ ]] || continue
    kill -0 "${BASH_REMATCH[2]}" 2>/dev/null && continue
    stale["${BASH_REMATCH[1]}"]=1
  done < <(ip netns list 2>/dev/null)
  for prefix in "${!stale[@]}"; do
    echo "$LAB_NAME: removing stale lab $prefix left by a test run that died" >&2
    FINWAVE_LAB="$prefix" "$FINWAVE_LAB_SH" down || true
  done
}

# The programs this test started that still run: PIDs whose environment holds this test's
# token. grep runs without the token so that it does not find itself. Forked subshells of the
# test keep the environment the test shell was started with, so only programs are listed.
_lab_own_programs() {
  local file
  [[ -n "${FINWAVE_LAB_TOKEN:-}" ]] || return 0
  # Builtins only on this side of the pipe: any program here would carry the token too.
  while read -r file; do
    file="${file#/proc/}"
    echo "${file%/environ}"
  done < <(env -u FINWAVE_LAB_TOKEN grep -lzx -F -e "FINWAVE_LAB_TOKEN=$FINWAVE_LAB_TOKEN" \
    /proc/[0-9]*/environ 2>/dev/null)
}

# Ends PIDs (TERM, then KILL after 2 s); they are this test's own programs.
_lab_end_programs() {
  local pid i alive
  (($# > 0)) || return 0
  kill -s TERM "$@" 2>/dev/null
  for ((i = 0; i < 40; i++)); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1 && break; done
    ((alive)) || return 0
    sleep 0.05
  done
  kill -s KILL "$@" 2>/dev/null
  return 0
}

# Files in /run/finwave (finwave's default run directory), one per line.
_lab_run_finwave_files() {
  [[ -d /run/finwave ]] && find /run/finwave -mindepth 1 -maxdepth 1 -printf '%f\n' | sort
  return 0
}

# Starts the watchdog that ends this test SECONDS after lab_begin. It runs without the token
# (it is not a leftover) and exits by itself within half a second of the test shell.
_lab_start_watchdog() {
  local seconds=$1 test_pid=$$ marker="$LAB_DIR/deadline" token=$FINWAVE_LAB_TOKEN
  (
    unset FINWAVE_LAB_TOKEN
    trap - EXIT INT TERM
    end=$((SECONDS + seconds))
    while ((SECONDS < end)); do
      kill -0 "$test_pid" 2>/dev/null || exit 0
      sleep 0.5
    done
    echo "$seconds" >"$marker"
    # The TERM trap runs once the test's foreground command returns: ending the test's
    # programs is what makes it return.
    kill -s TERM "$test_pid" 2>/dev/null
    mapfile -t programs < <(FINWAVE_LAB_TOKEN=$token _lab_own_programs)
    _lab_end_programs "${programs[@]}"
  ) >/dev/null 2>&1 </dev/null &
  _LAB_WATCHDOG_PID=$!
}

_lab_on_term() {
  if [[ -s "$LAB_DIR/deadline" ]]; then
    echo "FAIL: $LAB_NAME: deadline of $(<"$LAB_DIR/deadline") s exceeded" \
      "(FINWAVE_LAB_DEADLINE); its programs were ended" >&2
  fi
  exit 143
}

# The leak check: prints one line per leftover and ends leftover programs; returns 1 if any.
_lab_check_leftovers() {
  local -a programs=() names=()
  local pid i ns leaked=0 tables sockets new_files
  # A program that was just signalled may need a moment to go.
  for ((i = 0; i < 40; i++)); do
    mapfile -t programs < <(_lab_own_programs)
    ((${#programs[@]} == 0)) && break
    sleep 0.05
  done
  if ((${#programs[@]})); then
    for pid in "${programs[@]}"; do
      echo "LEAK: $LAB_NAME: program still running: PID $pid:" \
        "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" >&2
    done
    _lab_end_programs "${programs[@]}"
    leaked=1
  fi
  while read -r ns _; do
    [[ "$ns" =~ ^${FINWAVE_LAB}[a-z]*-(client|router|server)$ ]] && names+=("$ns")
  done < <(ip netns list 2>/dev/null)
  if ((${#names[@]})); then
    echo "LEAK: $LAB_NAME: namespaces left: ${names[*]}" >&2
    for ns in "${names[@]}"; do ip netns delete "$ns" 2>/dev/null; done
    leaked=1
  fi
  # Lab tests run finwave inside lab namespaces only: a finwave table here is theirs.
  tables="$(nft list tables 2>/dev/null | grep -E ' finwave' || true)"
  if [[ -n "$tables" ]]; then
    echo "LEAK: $LAB_NAME: nft table in the machine's own namespace: $tables" >&2
    leaked=1
  fi
  if [[ -n "$LAB_DIR" && -d "$LAB_DIR" ]]; then
    sockets="$(find "$LAB_DIR" -type s 2>/dev/null)"
    if [[ -n "$sockets" ]]; then
      echo "LEAK: $LAB_NAME: socket files left: $(tr '\n' ' ' <<<"$sockets")" >&2
      leaked=1
    fi
  fi
  new_files="$(comm -13 <(echo "$_LAB_RUN_FINWAVE_BEFORE") <(_lab_run_finwave_files) | grep . || true)"
  if [[ -n "$new_files" ]]; then
    echo "LEAK: $LAB_NAME: new files in /run/finwave: $(tr '\n' ' ' <<<"$new_files")" >&2
    leaked=1
  fi
  ((leaked == 0))
}

# lab_on_exit CMD [ARGS...] — run CMD at cleanup (before the lab goes down), last registered
# first. Call it in the test's own shell, not inside $(...).
lab_on_exit() {
  _LAB_EXIT_HOOKS+=("$(printf '%q ' "$@")")
}

# lab_end — clean up now (what the EXIT trap would do); the lab is gone afterwards.
lab_end() {
  _lab_cleanup
}

_lab_cleanup() {
  local i pid
  for ((i = ${#_LAB_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do
    eval "${_LAB_EXIT_HOOKS[i]}" || true
  done
  _LAB_EXIT_HOOKS=()
  if [[ -n "$LAB_DIR" && -f "$LAB_DIR/captures" ]]; then
    capture_stop "" || true
  fi
  if [[ -n "$LAB_DIR" && -f "$LAB_DIR/pids" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && lab_kill "$pid" TERM 2>/dev/null
    done <"$LAB_DIR/pids"
    : >"$LAB_DIR/pids"
  fi
  if ((_LAB_UP)); then
    "$FINWAVE_LAB_SH" down || echo "$LAB_NAME: warning: could not remove lab $FINWAVE_LAB" >&2
    _LAB_UP=0
  fi
}

# A second lab of the test (prefix "${FINWAVE_LAB}b") goes down in a lab_on_exit hook; the leak
# check finds it if it did not.

_lab_exit() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  _lab_cleanup
  if [[ -n "$_LAB_WATCHDOG_PID" ]]; then
    kill "$_LAB_WATCHDOG_PID" 2>/dev/null
    _LAB_WATCHDOG_PID=""
  fi
  if ! _lab_check_leftovers; then
    echo "FAIL: $LAB_NAME: the test left the above behind" >&2
    ((rc == 0)) && rc=1
  fi
  if [[ -n "$LAB_DIR" && -d "$LAB_DIR" ]]; then
    if ((rc == 0)); then
      rm -rf "$LAB_DIR"
    else
      echo "$LAB_NAME: logs kept in $LAB_DIR" >&2
    fi
  fi
  exit "$rc"
}

# lab_ns ROLE — print the namespace of client, router or server.
lab_ns() {
  case "${1:-}" in
    client | router | server) echo "${FINWAVE_LAB:?lab_begin first}-$1" ;;
    *)
      echo "lab: unknown role '${1:-}' (expected client, router or server)" >&2
      return 2
      ;;
  esac
}

# lab_exec ROLE CMD [ARGS...] — run CMD in ROLE's namespace; returns its exit status.
#   lab_exec client ping -c1 "$LAB_SERVER_V4"
lab_exec() {
  local ns
  ns="$(lab_ns "${1:-}")" || return 2
  shift
  ip netns exec "$ns" "$@"
}

# lab_bg ROLE LOGFILE CMD [ARGS...] — start CMD in ROLE's namespace in the background, stdout
# to LOGFILE and stderr to LOGFILE.err (so JSON-lines output stays parseable); print its PID
# and set LAB_LAST_PID. The PID is the command itself (signal it with lab_kill). It is not a
# child of the test's shell, so `wait PID` does not work: use lab_wait PID, which returns its
# exit status (recorded even when lab_bg ran inside $(...)). Every such process is killed at
# cleanup. ROLE "host" runs CMD in the test's own namespace (a client of a Unix socket).
#   pid=$(lab_bg server "$LAB_DIR/s.log" "$FINWAVE_BIN_PEER" server --listen :: --port 5000)
lab_bg() {
  local role="${1:-}" log="${2:?lab_bg ROLE LOGFILE CMD...}" ns token pid tries
  local -a enter=()
  if [[ "$role" != host ]]; then
    ns="$(lab_ns "$role")" || return 2
    enter=(ip netns exec "$ns")
  fi
  shift 2
  (($# > 0)) || fail "lab_bg: no command given"
  token="$(mktemp "$LAB_DIR/bg.XXXXXX")"
  (
    "${enter[@]}" env --default-signal=INT,QUIT "$@" >"$log" 2>"$log.err" </dev/null &
    child=$!
    # PIDs wrap (32768 on a 2-core machine): an exit status left by an earlier process with
    # this PID must go before the PID is handed out, or lab_wait would return it.
    rm -f "$LAB_DIR/rc.$child"
    echo "$child" >"$token.tmp" && mv "$token.tmp" "$token"
    rc=0
    wait "$child" || rc=$?
    echo "$rc" >"$LAB_DIR/rc.$child"
  ) >/dev/null 2>&1 </dev/null &
  for ((tries = 0; tries < 500; tries++)); do
    pid="$(<"$token")"
    [[ -n "$pid" ]] && break
    sleep 0.01
  done
  rm -f "$token"
  [[ -n "$pid" ]] || fail "lab_bg: could not start: $*"
  echo "$pid" >>"$LAB_DIR/pids"
  LAB_LAST_PID="$pid"
  echo "$pid"
}

# lab_wait PID [SECONDS] — wait (default 30 s) for a lab_bg process to exit and return its exit
# status; 124 if it is still running after SECONDS (it is left running).
#   lab_wait "$pid" 10 || fail "server exited with $?"
lab_wait() {
  local pid="${1:?lab_wait PID [SECONDS]}" seconds="${2:-30}" i
  for ((i = 0; i < seconds * 20; i++)); do
    if [[ -s "$LAB_DIR/rc.$pid" ]]; then
      return "$(<"$LAB_DIR/rc.$pid")"
    fi
    sleep 0.05
  done
  [[ -s "$LAB_DIR/rc.$pid" ]] && return "$(<"$LAB_DIR/rc.$pid")"
  echo "lab_wait: process $pid still running after ${seconds}s" >&2
  return 124
}

# lab_kill PID [SIGNAL] — send SIGNAL (default TERM) to a lab_bg process and wait for it to
# exit, escalating to KILL after 5 s. Always returns 0; lab_wait PID gives its exit status.
#   lab_kill "$server_pid" INT
lab_kill() {
  local pid="${1:?lab_kill PID [SIGNAL]}" signal="${2:-TERM}" i
  # An exit status on record means the process is gone and its PID may belong to another now.
  [[ -n "$LAB_DIR" && -s "$LAB_DIR/rc.$pid" ]] && return 0
  kill -s "$signal" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "lab_kill: $pid ignored SIG$signal for 5 s: sending KILL" >&2
    kill -s KILL "$pid" 2>/dev/null || true
  fi
  # Let the lab_bg wrapper record the exit status.
  for ((i = 0; i < 40; i++)); do
    [[ -z "$LAB_DIR" || -s "$LAB_DIR/rc.$pid" ]] && break
    sleep 0.05
  done
  return 0
}

# capture_start ROLE IFACE FILE [FILTER] — start tcpdump in ROLE's namespace on IFACE writing
# a pcap to FILE (packet-buffered, immediate mode); returns once tcpdump listens (at most 5 s).
# tcpdump's messages go to FILE.tcpdump.err. CAPTURE_SNAPLEN (default 262144): bytes per packet.
#   capture_start router to-server "$LAB_DIR/server-side.pcap" 'tcp port 5000'
capture_start() {
  local role="${1:-}" iface="${2:?capture_start ROLE IFACE FILE [FILTER]}"
  local file="${3:?capture_start ROLE IFACE FILE [FILTER]}" filter="${4:-}" pid i
  # A 64 MiB buffer: with the default 2 MiB tcpdump drops packets of a few hundred fast
  # connections, and a witness that misses packets proves nothing.
  local args=(tcpdump -i "$iface" -n -U --immediate-mode -B 65536 -s "${CAPTURE_SNAPLEN:-262144}"
    -Z root -w "$file")
  [[ -n "$filter" ]] && args+=("$filter")
  pid="$(lab_bg "$role" "$file.tcpdump" "${args[@]}")" || return 1
  echo "$pid $file" >>"$LAB_DIR/captures"
  for ((i = 0; i < 100; i++)); do
    grep -q "listening on" "$file.tcpdump.err" 2>/dev/null && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      fail "capture_start: tcpdump on $role/$iface exited: $(cat "$file.tcpdump.err" 2>/dev/null)"
    fi
    sleep 0.05
  done
  fail "capture_start: tcpdump on $role/$iface not listening after 5 s"
}

# capture_stop [FILE] — stop the capture writing FILE, or every capture; the pcaps stay.
# Waits a moment first so that packets still in flight are written.
capture_stop() {
  local only="${1:-}" pid file keep=()
  [[ -s "$LAB_DIR/captures" ]] || return 0
  sleep 0.2
  while read -r pid file; do
    if [[ -z "$only" || "$file" == "$only" ]]; then
      lab_kill "$pid" TERM
    else
      keep+=("$pid $file")
    fi
  done <"$LAB_DIR/captures"
  if ((${#keep[@]})); then printf '%s\n' "${keep[@]}" >"$LAB_DIR/captures"; else : >"$LAB_DIR/captures"; fi
}

# capture_count FILE FILTER — print how many packets of the pcap FILE match a tcpdump filter.
#   fins=$(capture_count "$pcap" 'tcp[tcpflags] & tcp-fin != 0')
capture_count() {
  local file="${1:?capture_count FILE FILTER}" filter="${2:-}" out
  out="$(tcpdump -r "$file" -nn ${filter:+"$filter"} 2>"$LAB_DIR/capture_count.err")" || {
    echo "capture_count: tcpdump -r $file failed: $(cat "$LAB_DIR/capture_count.err")" >&2
    return 1
  }
  if [[ -z "$out" ]]; then echo 0; else wc -l <<<"$out" | tr -d ' '; fi
}

# tcpdump filters for TCP flags that work for IPv4 and IPv6 alike (libpcap's tcp[] indexing
# rejects every IPv6 packet; the ip6 half assumes no extension headers, true in the lab):
#   capture_count "$pcap" "tcp port 5000 and $LAB_FILTER_FIN"
LAB_FILTER_FIN='((ip and tcp[13] & 1 != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 1 != 0))'
LAB_FILTER_SYN='((ip and tcp[13] & 2 != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 2 != 0))'
LAB_FILTER_RST='((ip and tcp[13] & 4 != 0) or (ip6 and ip6[6] == 6 and ip6[53] & 4 != 0))'

# lab_now_ms — milliseconds since the epoch, for timing steps: t0=$(lab_now_ms).
lab_now_ms() {
  local now="${EPOCHREALTIME/[.,]/}"
  echo "$((now / 1000))"
}

# wait_for_file PATH SECONDS — wait until PATH exists; returns 1 (with a message) on timeout.
#   wait_for_file "$LAB_DIR/ready" 5 || fail "server not ready"
wait_for_file() {
  local path="${1:?wait_for_file PATH SECONDS}" seconds="${2:-10}" i
  for ((i = 0; i < seconds * 20; i++)); do
    [[ -e "$path" ]] && return 0
    sleep 0.05
  done
  [[ -e "$path" ]] && return 0
  echo "wait_for_file: $path did not appear within ${seconds}s" >&2
  return 1
}

# peer_events LOG EVENT — print finwave-peer's JSON lines of that event (needs jq).
#   peer_events "$LAB_DIR/server.log" read_eof
peer_events() {
  local log="${1:?peer_events LOG EVENT}" event="${2:?peer_events LOG EVENT}"
  jq -c --arg e "$event" 'select(.event == $e)' "$log"
}

# peer_field LOG EVENT FIELD — print FIELD of the last EVENT line in LOG ("null" if absent).
#   [[ "$(peer_field "$LAB_DIR/server.log" wait_rst error)" == ECONNRESET ]]
peer_field() {
  local log="${1:?peer_field LOG EVENT FIELD}" event="${2:?}" field="${3:?}"
  jq -rs --arg e "$event" --arg f "$field" '[.[] | select(.event == $e)] | last | .[$f]' "$log"
}

# require_file PATH HINT — fail unless PATH exists (e.g. a binary that must be built first).
#   require_file "$FINWAVE_BIN_PEER" "cmake --build build --target finwave-peer"
require_file() {
  [[ -e "${1:?require_file PATH HINT}" ]] || fail "$1 not found (${2:-build it first})"
}

# expect WHAT ACTUAL EXPECTED — fail unless equal; otherwise log "WHAT: ACTUAL".
expect() {
  local what=${1:?expect WHAT ACTUAL EXPECTED} actual=${2-} expected=${3-}
  [ "$actual" = "$expected" ] || fail "$what: got '$actual', expected '$expected'"
  echo "  $what: $actual"
}

# --- Measuring -----------------------------------------------------------------------------

now_ns() { date +%s%N; }

# cpu_ns PID — CPU time the process has used so far (every thread), in nanoseconds, from the
# scheduler's own accounting (finer than the tick-based utime and stime).
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ sum += $1 } END { printf "%.0f\n", sum }'
}

# rss_kib PID — the process's resident set, in KiB.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# median V... — the median of numbers (mean of the middle two for an even count; null for none).
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "null"; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# The rest of the library, one file per job; a test sources lib.sh and nothing else.
#   wait_lib.sh      waiting for a condition with a deadline (wait_for, wait_until, at_least, ...)
#   finwave.sh       finwave itself: start, stop, its control socket (ctl), outcomes, stats
#   fault_lib.sh     faults: churn while something breaks, queue and capture checks
#   rules_lib.sh     the rules/ examples' tests: wire capture and its jq helpers
#   teardown_lib.sh  teardown cases: finwave-peer pairs, the report, case checks
#   debian_root.sh   a fresh Debian 12 root (mmdebstrap) for the package and container tests
# shellcheck source=tests/lab/wait_lib.sh
. "$FINWAVE_REPO/tests/lab/wait_lib.sh"
# shellcheck source=tests/lab/finwave.sh
. "$FINWAVE_REPO/tests/lab/finwave.sh"
# shellcheck source=tests/lab/fault_lib.sh
. "$FINWAVE_REPO/tests/lab/fault_lib.sh"
# shellcheck source=tests/lab/rules_lib.sh
. "$FINWAVE_REPO/tests/lab/rules_lib.sh"
# shellcheck source=tests/lab/teardown_lib.sh
. "$FINWAVE_REPO/tests/lab/teardown_lib.sh"
# shellcheck source=tests/lab/debian_root.sh
. "$FINWAVE_REPO/tests/lab/debian_root.sh"
