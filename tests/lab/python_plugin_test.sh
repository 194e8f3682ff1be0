#!/usr/bin/env bash
# The Python package for real: installed offline into a virtual environment (pip
# --no-build-isolation, Debian's setuptools), then real pytest suites against real finwave in
# the lab. 1) The README's example, with the plugin starting finwave itself in the router's
# namespace. 2) Attached to a finwave this script started (FINWAVE_CONTROL): reset between
# tests, a marked test with a finwave of its own, events. 3) A test that fails on purpose: its
# report carries the outcomes seen during it and their ladders. Every suite's figures are the
# wire's: the server's FIN retransmission is counted in tcpdump's capture too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin python_plugin
python=/usr/bin/python3
"$python" -m pytest --version >/dev/null 2>&1 || fail "Debian's python3-pytest is missing (deploy/install-deps.sh)"

# The package, installed the way the README says, from a copy (pip builds in the source tree).
cp -r "$FINWAVE_REPO/deploy/python" "$LAB_DIR/src"
"$python" -m venv --system-site-packages "$LAB_DIR/venv"
"$LAB_DIR/venv/bin/pip" install --quiet --no-cache-dir --no-build-isolation --no-index "$LAB_DIR/src" \
  >"$LAB_DIR/pip.log" 2>&1 || fail "pip install failed: $(cat "$LAB_DIR/pip.log")"
venv_python=$LAB_DIR/venv/bin/python
# The installed copy, not the source tree: run from elsewhere, with nothing on PYTHONPATH.
installed=$(cd "$LAB_DIR" && env -u PYTHONPATH "$venv_python" -c 'import finwave; print(finwave.__file__)')
[[ $installed == "$LAB_DIR/venv/"* ]] || fail "finwave imported from $installed, not the venv"

lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
# The witness: what the server sends, as it reaches the router (before finwave's hook).
capture_start router to-server "$LAB_DIR/wire.pcap" "tcp port 5000"
FINWAVE_EXAMPLE_CLIENT="ip netns exec $(lab_ns client) $FINWAVE_BIN_PEER client --connect $LAB_SERVER_V4 --port 5000 --quiet"
export FINWAVE_EXAMPLE_CLIENT
export LAB_RULES=$FINWAVE_REPO/rules/examples/lose-first-final-ack.toml

# run_suite NAME WANT-STATUS PYTEST-ARGS... — pytest in $LAB_DIR/NAME (its own rootdir).
run_suite() {
  local name=$1 want=$2 status=0
  shift 2
  (cd "$LAB_DIR/$name" && env -u PYTHONPATH PYTHONDONTWRITEBYTECODE=1 \
    "$venv_python" -m pytest -p no:cacheprovider -v "$@") >"$LAB_DIR/$name.out" 2>&1 || status=$?
  [ "$status" -eq "$want" ] ||
    fail "pytest $name exited $status, expected $want: $(tail -n 60 "$LAB_DIR/$name.out")"
}
# passed_count NAME — "N passed" from a suite's summary line.
passed_count() { grep -Eo '[0-9]+ passed' "$LAB_DIR/$1.out" | tail -n 1 | cut -d' ' -f1; }

# plugin_ini NAME — a suite whose pytest.ini has the plugin start finwave in the router's
# namespace (the README's recipe).
plugin_ini() {
  mkdir "$LAB_DIR/$1"
  cat >"$LAB_DIR/$1/pytest.ini" <<EOF
[pytest]
finwave_bin = $FINWAVE_BUILD/finwave
finwave_mode = router
finwave_ports = 5000
finwave_netns = $(lab_ns router)
finwave_args = --settle 0.3 --linger 5
EOF
}

# 1) The README's example as it is.
plugin_ini example
cp "$FINWAVE_REPO/deploy/python/examples/test_teardown.py" "$LAB_DIR/example/"
run_suite example 0
expect "example: tests passed" "$(passed_count example)" 2

# 2) Attached to a finwave started here, with a rule file.
finwave_start router "$LAB_DIR/attached.jsonl" --rules "$LAB_RULES" --port 5000 --settle 0.3 \
  --linger 5
mkdir "$LAB_DIR/attached"
cp "$here/python/conftest.py" "$here/python/test_attached.py" "$LAB_DIR/attached/"
# The marked test's own finwave: where and which binary.
cat >"$LAB_DIR/attached/pytest.ini" <<EOF
[pytest]
finwave_bin = $FINWAVE_BUILD/finwave
finwave_netns = $(lab_ns router)
EOF
FINWAVE_CONTROL=$FINWAVE_OUT.control.sock run_suite attached 0
expect "attached: tests passed" "$(passed_count attached)" 4
finwave_stop
grep -q "reset to the 1 rule(s) as loaded; removed 1 added, restored 1" "$FINWAVE_OUT.err" ||
  fail "no reset after the test that left changes behind: $(cat "$FINWAVE_OUT.err")"

# 3) A failing test's report (the plugin's finwave again, without rules).
plugin_ini failing
cp "$here/python/conftest.py" "$here/python/test_failing.py" "$LAB_DIR/failing/"
run_suite failing 1 --finwave-ladder="$FINWAVE_BUILD/finwave-ladder"
report=$LAB_DIR/failing.out
# (four_way or three_way: the server's FIN may carry its ACK of the client's FIN.)
grep -qE "^#[0-9]+ $LAB_CLIENT_V4:[0-9]+ -> $LAB_SERVER_V4:5000 clean \((four|three)_way, closer client, FIN retransmits client 0 server 1," "$report" ||
  fail "the failing test's report lacks the outcome's summary line: $(cat "$report")"
for line in "finwave outcomes" "1 outcome(s) reported during the test" \
  "[lose-final-ack-once: drop final_ack x1]" "final_ack seq=" "X DROPPED" "fin2 retx" \
  "finwave did: drop final_ack x1 (rule lose-final-ack-once)"; do
  grep -qF -- "$line" "$report" || fail "the failing test's report lacks '$line': $(cat "$report")"
done

# The wire: the server sent one FIN per connection, and one more for each connection whose
# first final ACK a rule dropped: 2 connections in suite 1 (one through the fault), 1 in suite
# 2 (through the file's rule), 1 in suite 3 (through the fault).
capture_stop
server_fins=$(capture_count "$LAB_DIR/wire.pcap" "src host $LAB_SERVER_V4 and src port 5000 and $LAB_FILTER_FIN")
expect "server FINs on the wire (4 connections, 3 of them retransmitted once)" "$server_fins" 7

pass "pip install offline; the README example (plugin-started finwave in the router's namespace)," \
  "an attached suite (reset between tests, a marked test's own finwave, events) and a failing" \
  "test's report with its ladder; 7 server FINs on the wire for 4 connections"
