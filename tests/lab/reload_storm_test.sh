#!/usr/bin/env bash
# A reload storm during churn: 100 SIGHUPs, every other one with an invalid rule file (bad TOML,
# an unknown action, two rules of one name, no file at all). finwave does not crash, answers each
# with one line on stderr (50 reloads, 50 failures that keep the rules), the last valid file's
# rules stand, and every connection made meanwhile is reported.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

lab_begin reload_storm
export FINWAVE_CONTROL=$LAB_DIR/control.sock
rules=$LAB_DIR/rules.toml
signals=100

# write_rules N — the rule file of step N, replaced in one rename (finwave never reads half a
# file): N = 0 (the start) and odd N valid (one rule, "gen-N", on every fin1, and one that is off), even N invalid in
# one of four ways.
write_rules() {
  local n=$1
  if ((n == 0 || n % 2 == 1)); then
    printf '[[rule]]\nname = "gen-%d"\nrole = "fin1"\naction = "pass"\n\n' "$n" >"$rules.new"
    printf '[[rule]]\nname = "off-%d"\nrole = "final_ack"\naction = "drop"\nenabled = false\n' \
      "$n" >>"$rules.new"
  else
    case $(((n / 2) % 4)) in
      0) printf '[[rule]\nname = "broken"\n' >"$rules.new" ;;
      1) printf '[[rule]]\nname = "x"\nrole = "fin1"\naction = "dorp"\n' >"$rules.new" ;;
      2) printf '[[rule]]\nname = "a"\nrole = "fin1"\naction = "pass"\n[[rule]]\nname = "a"\nrole = "fin2"\naction = "pass"\n' >"$rules.new" ;;
      3) rm -f "$rules" "$rules.new"; return 0 ;;
    esac
  fi
  mv "$rules.new" "$rules"
}

write_rules 0
lab_bg server "$LAB_DIR/server.jsonl" "$FINWAVE_BIN_PEER" server --listen :: --port 5000 \
  --quiet --ready-file "$LAB_DIR/server.ready" >/dev/null
wait_for_file "$LAB_DIR/server.ready" 10 || fail "the server did not start within 10 s"
finwave_start router "$LAB_DIR/finwave.jsonl" --rules "$rules" --port 5000 --settle 0.2 \
  --linger 5 --control "$FINWAVE_CONTROL"

answers() { grep -cE "SIGHUP: (reloaded|reload failed)" "$FINWAVE_OUT.err" || true; }
churn_start churn --connect "$LAB_SERVER_V4" --port 5000 --connections 50 --parallel 4 \
  --script send:100,close
wait_until 10 "the churn to start" at_least 1 event_count "$FINWAVE_OUT" outcome

# Each SIGHUP waits for finwave's answer before the file changes again: the file a reload read
# is then known, and so is the last valid one (the last file, number 100, is invalid).
t0=$(lab_now_ms)
last_valid=0
for ((n = 1; n <= signals; n++)); do
  write_rules "$n"
  ((n % 2 == 0)) || last_valid=$n
  kill -s HUP "$FINWAVE_PID"
  wait_until 10 "finwave to answer SIGHUP $n" at_least "$n" answers
done
storm_ms=$(($(lab_now_ms) - t0))
kill -0 "$FINWAVE_PID" 2>/dev/null || fail "finwave died during the reload storm"
churn_stop churn
made=$(churn_connections churn)

reloaded=$(grep -c "SIGHUP: reloaded 2 rule(s)" "$FINWAVE_OUT.err" || true)
failed=$(grep -c "SIGHUP: reload failed, keeping the current rules" "$FINWAVE_OUT.err" || true)
((reloaded == signals / 2 && failed == signals / 2)) ||
  fail "$reloaded reloads and $failed failed reloads for $signals SIGHUPs, expected $((signals / 2)) each"
rule_names=$(ctl --json rules | jq -r '[.rules[].name] | join(" ")')
[ "$rule_names" = "gen-$last_valid off-$last_valid" ] ||
  fail "the rules are '$rule_names', not those of the last valid file (gen-$last_valid off-$last_valid)"

# Every connection of the churn reported, with its sides known.
reported_known() { outcomes 'select(.sides_known)' | wc -l; }
wait_until 20 "$made outcomes" at_least "$made" reported_known
[ "$(reported_known)" -eq "$made" ] || fail "$(reported_known) outcomes for $made connections"
finwave_stop
check_all_queued_answered
pass "$signals SIGHUPs in $storm_ms ms during $made connections: $reloaded reloads, $failed" \
  "refused files kept the rules, the last valid file's rules (gen-$last_valid) stand," \
  "all $made connections reported"
