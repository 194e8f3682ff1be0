#!/usr/bin/env bash
# The systemd units (deploy/systemd/), verified offline as systemd would load them (PID 1 here
# is not systemd): `systemd-analyze verify` finds nothing to say, and `systemd-analyze security
# --offline=yes` rates each one's exposure at most 2.0 ("OK"). Each unit grants exactly the two
# capabilities finwave needs, and its ExecStart names options finwave accepts.
# Usage: systemd_units_test.sh BUILD-DIR
set -euo pipefail
build=${1:?systemd_units_test.sh BUILD-DIR}
units=$(cd "$(dirname "$0")/../../deploy/systemd" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
unit_fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# The man pages the units' Documentation= names, installed where man finds them.
DESTDIR=$work/root cmake --install "$build" --prefix /usr >/dev/null
export MANPATH=$work/root/usr/share/man

help=$("$build/finwave" --help)
for unit in finwave.service finwave@.service; do
  name=${unit/@./@demo.}
  # The binary this build made instead of /usr/bin/finwave, which is not installed here.
  sed "s|/usr/bin/finwave|$work/root/usr/bin/finwave|" "$units/$unit" >"$work/$name"
  if ! out=$(systemd-analyze verify "$work/$name" 2>&1) || [[ -n $out ]]; then
    unit_fail "systemd-analyze verify $unit: $out"
  fi
  score_line=$(systemd-analyze security --offline=yes "$work/$name" 2>&1 | grep 'Overall exposure level') ||
    { unit_fail "systemd-analyze security $unit gave no score"; continue; }
  score=$(grep -oE '[0-9]+\.[0-9]+' <<<"$score_line" | head -n 1)
  echo "$unit: exposure $score"
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || unit_fail "$unit: exposure $score, above 2.0: $score_line"
  for key in AmbientCapabilities CapabilityBoundingSet; do
    got=$(sed -n "s/^$key=//p" "$units/$unit")
    [[ $got == "CAP_NET_ADMIN CAP_NET_RAW" ]] || unit_fail "$unit: $key=$got, expected CAP_NET_ADMIN CAP_NET_RAW"
  done
  grep -q '^Type=notify$' "$units/$unit" || unit_fail "$unit is not Type=notify"
  grep -q '^User=finwave$' "$units/$unit" || unit_fail "$unit does not run as finwave"
  # Its fixed options parse (the rest comes from FINWAVE_OPTIONS).
  # shellcheck disable=SC2016 # $FINWAVE_OPTIONS is the unit's text, not this shell's
  exec_start=$(sed -n 's/^ExecStart=//p' "$units/$unit" | sed 's/ \$FINWAVE_OPTIONS//; s/%i/demo/g')
  read -r -a words <<<"$exec_start"
  rules=()
  for ((i = 1; i < ${#words[@]}; i++)); do
    if [[ ${words[i]} == --rules ]]; then
      i=$((i + 1))
      continue
    fi
    rules+=("${words[i]}")
  done
  # finwave ... --help refuses a bad value but not an unknown option: each is looked up too.
  for word in "${rules[@]}"; do
    [[ $word != -* ]] || grep -qE -- "(^|[ ,])$word([ =]|$)" <<<"$help" || unit_fail "$unit: finwave has no option $word"
  done
  "$build/finwave" "${rules[@]}" --help >/dev/null || unit_fail "$unit: finwave refuses its ExecStart options: ${rules[*]}"
done
grep -q '^u finwave ' "$units/finwave.sysusers" || unit_fail "finwave.sysusers makes no finwave user"

if ((failures)); then exit 1; fi
echo "systemd_units_test: both units verify, with an exposure of at most 2.0"
