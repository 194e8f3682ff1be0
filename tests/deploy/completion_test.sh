#!/usr/bin/env bash
# bash completion for finwavectl (deploy/completion/finwavectl), as bash runs it: commands,
# options, option values, and global options before the command.
# Usage: completion_test.sh BUILD-DIR
set -euo pipefail
build=${1:?completion_test.sh BUILD-DIR}
# shellcheck source=../../deploy/completion/finwavectl
. "$(dirname "$0")/../../deploy/completion/finwavectl"
# No daemon here: rule names are not offered, everything else is.
export FINWAVE_CONTROL=/nonexistent/finwave-completion-test.sock
failures=0

completes() {  # completes "WORDS..." WANT... — COMPREPLY for the last word holds every WANT
  local line=$1 want
  shift
  read -r -a COMP_WORDS <<<"$line"
  [[ $line == *" " ]] && COMP_WORDS+=("")
  COMP_WORDS[0]=$build/finwavectl
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _finwavectl
  for want in "$@"; do
    if ! printf '%s\n' "${COMPREPLY[@]}" | grep -qxF -- "$want"; then
      echo "FAIL: '$line' does not complete to '$want' (got: ${COMPREPLY[*]:-nothing})" >&2
      failures=$((failures + 1))
    fi
  done
}
nothing_but() {  # nothing_but "WORDS..." CANDIDATE... — COMPREPLY is exactly these
  completes "$@"
  local got
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ')
  local want
  want=$(printf '%s\n' "${@:2}" | sort | tr '\n' ' ')
  [[ $got == "$want" ]] || { echo "FAIL: '$1' completes to '$got', expected '$want'" >&2; failures=$((failures + 1)); }
}

completes "finwavectl " status rules enable wait metrics shell
nothing_but "finwavectl wa" wait watch
nothing_but "finwavectl --json wa" wait watch
nothing_but "finwavectl -c /run/x.sock res" reset
completes "finwavectl wait --" --result --kind --timeout --since --count --json
nothing_but "finwavectl wait --result " clean reset timeout
nothing_but "finwavectl watch --events rule_" rule_hit rule_change
nothing_but "finwavectl outcomes --closer s" server
nothing_but "finwavectl nosuchcommand --" ""

if ((failures)); then exit 1; fi
echo "completion_test: finwavectl completes commands, options and values"
