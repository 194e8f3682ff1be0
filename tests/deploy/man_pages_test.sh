#!/usr/bin/env bash
# The man pages (deploy/man/) say what the programs do: every option each program's --help
# lists (finwavectl's commands and their options too) is in its page, every key the rule loader
# accepts is in finwave-rules(5), and groff renders every page without a warning.
# finwave-peer(1) has every option of its two subcommands and every script step, and each page
# names the version CMakeLists.txt gives.
# Usage: man_pages_test.sh BUILD-DIR
set -euo pipefail
build=${1:?man_pages_test.sh BUILD-DIR}
man_dir=$(cd "$(dirname "$0")/../../deploy/man" && pwd)
failures=0

render() { MANWIDTH=10000 man -E UTF-8 -l "$1" 2>/dev/null | col -b; }
# The options a --help text lists: "-q,--quiet", "--rules TEXT:FILE" -> -q --quiet --rules.
help_options() { grep -oE -- '(^|[ ,])--?[a-zA-Z][a-zA-Z0-9-]*' | sed 's/^[ ,]//' | sort -u; }
need() {  # need PAGE WORD WHAT
  if ! grep -qF -- "$2" <<<"$(render "$man_dir/$1")"; then
    echo "FAIL: $1 does not mention $3 '$2'" >&2
    failures=$((failures + 1))
  fi
}

version=$(sed -n 's/^project(finwave VERSION \([0-9.]*\).*/\1/p' "$man_dir/../../CMakeLists.txt")
for page in "$man_dir"/*.[158]; do
  grep -q "^\.TH .* \"finwave $version\"" "$page" || {
    echo "FAIL: $(basename "$page")'s .TH line does not say \"finwave $version\"" >&2
    failures=$((failures + 1))
  }
  warnings=$(MANWIDTH=100 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null || true)
  if [[ -n $warnings ]]; then
    echo "FAIL: groff warns about $(basename "$page"): $warnings" >&2
    failures=$((failures + 1))
  fi
done

while read -r option; do need finwave.8 "$option" "the option"; done < <("$build/finwave" --help | help_options)
while read -r option; do need finwave-ladder.1 "$option" "the option"; done < <("$build/finwave-ladder" --help | help_options)
while read -r option; do need finwavectl.1 "$option" "the option"; done < <("$build/finwavectl" --help | help_options)
for command in server client; do
  while read -r option; do need finwave-peer.1 "$option" "finwave-peer $command's option"; done < <(
    "$build/finwave-peer" "$command" --help | sed -n '/^Options:/,/^Script steps/p' | help_options)
done
# Every script step: the first word of each line of the help's step list.
while read -r step; do need finwave-peer.1 "$step" "the script step"; done < <(
  "$build/finwave-peer" server --help | sed -n '/^Script steps/,/^A socket/p' |
    sed -nE 's/^  ([a-z-]+).*/\1/p')
commands=$("$build/finwavectl" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NF && !/^Subcommands:/ { print $1 }')
[[ -n $commands ]] || { echo "FAIL: no commands in finwavectl --help" >&2; exit 1; }
for command in $commands; do
  need finwavectl.1 "$command" "the command"
  while read -r option; do need finwavectl.1 "$option" "$command's option"; done < <(
    "$build/finwavectl" "$command" --help | sed -n '/^Options:/,$p' | help_options)
done

# The loader lists its keys when it meets one it does not know.
bad=$(mktemp)
trap 'rm -f "$bad"' EXIT
printf '[[rule]]\nname = "a"\nno_such_key = 1\n' >"$bad"
keys=$("$build/finwave" --check "$bad" 2>&1 | sed -n 's/.*allowed keys: //p' | tr -d ',' || true)
[[ -n $keys ]] || { echo "FAIL: finwave --check did not list the allowed keys" >&2; exit 1; }
for key in $keys; do need finwave-rules.5 "$key" "the rule key"; done

if ((failures)); then
  echo "man_pages_test: $failures missing" >&2
  exit 1
fi
echo "man_pages_test: every option, command and rule key is in its page"
