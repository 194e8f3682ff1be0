#!/usr/bin/env bash
# The finwave demo: builds finwave, brings up a lab of three network namespaces (client —
# router — server), runs finwave on the router with example rules, tears real connections down
# through it, prints what finwave saw, and removes the lab. Needs root (re-runs itself via sudo).
#
#   deploy/demo.sh                       rules/examples/demo.toml
#   deploy/demo.sh rules/examples/lose-final-ack.toml
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
# shellcheck source=deploy/common.sh
. "$here/common.sh"
finwave_require_root "$0" "$@"

rules=${1:-$repo/rules/examples/demo.toml}
[ -f "$rules" ] || { echo "demo.sh: no rule file $rules" >&2; exit 2; }

"$here/install-deps.sh"
echo "demo: building"
finwave_build "$repo" >/dev/null
build=${FINWAVE_BUILD:-$repo/build}

export FINWAVE_LAB=${FINWAVE_LAB:-fwdemo}
work=$(mktemp -d /tmp/finwave-demo.XXXXXX)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$here/lab.sh" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

lab() { "$here/lab.sh" "$@"; }
wait_for_output() {  # FILE SECONDS
  local deadline=$((SECONDS + $2))
  until [ -s "$1" ]; do
    [ $SECONDS -lt $deadline ] || { echo "demo: timed out waiting for $1" >&2; return 1; }
    sleep 0.05
  done
}

echo "demo: lab up (client 198.18.1.2 — router — server 198.18.2.2)"
lab up >/dev/null

echo "demo: finwave on the router, rules from ${rules#"$repo"/}"
# Started directly (not through a shell function) so that $! is finwave itself: lab.sh execs.
"$here/lab.sh" exec router "$build/finwave" --rules "$rules" --port 5000 --json --settle 1 --linger 10 \
  --pcap "$work/teardown.pcap" --ready-file "$work/finwave.ready" \
  >"$work/outcomes.jsonl" 2>"$work/finwave.log" &
pids+=($!)
finwave_pid=$!
wait_for_output "$work/finwave.ready" 10 || { cat "$work/finwave.log" >&2; exit 1; }

"$here/lab.sh" exec server "$build/finwave-peer" server --listen :: --port 5000 --connections 2 \
  --script read-eof,close --ready-file "$work/server.ready" >"$work/server.jsonl" &
pids+=($!)
wait_for_output "$work/server.ready" 10

echo "demo: client sends 100 kB and closes first, over IPv4 and then IPv6"
lab exec client "$build/finwave-peer" client --connect 198.18.2.2 --port 5000 \
  --script send:100000,close >"$work/client4.jsonl" || true
lab exec client "$build/finwave-peer" client --connect 2001:db8:2::2 --port 5000 \
  --script send:100000,close >"$work/client6.jsonl" || true

# Each teardown is reported once it has settled (or timed out).
deadline=$((SECONDS + 20))
while [ "$(grep -c '"event":"outcome"' "$work/outcomes.jsonl" || true)" -lt 2 ] && [ $SECONDS -lt $deadline ]; do
  sleep 0.2
done
kill -TERM "$finwave_pid"
wait "$finwave_pid" || true

echo
echo "What finwave saw:"
jq -r 'select(.event == "outcome") |
  "\n  \(.flow.client) → \(.flow.server): \(.kind), \(.result), closed by \(.closer), \(.teardown_ms) ms" +
  "\n  FIN retransmissions: client \(.fin_retransmits.client), server \(.fin_retransmits.server);" +
  " final ACKs seen \(.final_acks.seen), dropped \(.final_acks.dropped)" +
  (if (.actions | length) > 0 then "\n  finwave did: " + ([.actions[] | "\(.action) \(.role) ×\(.count) (rule \(.rule))"] | join(", ")) else "" end) +
  "\n" + ([.timeline[] | "    \(.t_ms | tostring | .[0:8] | (" " * (8 - length)) + .) ms  \(.from | if . == "client" then "client → server" else "client ← server" end)  \(.role)\(if .retx then " (retx)" else "" end)  [\(.flags)]  seq \(.seq) ack \(.ack) len \(.len)  \(.verdict)\(if .hold_ms then " (held \(.hold_ms) ms)" else "" end)\(if (.copies // 0) > 0 then " (+\(.copies) copies)" else "" end)"] | join("\n"))' \
  "$work/outcomes.jsonl"
echo
jq -r 'select(.event == "stats") | "finwave queued \(.queue.queued) segments for these connections, accepted \(.queue.accepted), dropped \(.queue.dropped)."' "$work/outcomes.jsonl"
echo "demo: the raw outcomes are JSON lines; rerun with another rule file, e.g. deploy/demo.sh rules/examples/lose-final-ack.toml"
