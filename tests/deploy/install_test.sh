#!/usr/bin/env bash
# `cmake --install` puts everything where the README says, and what it installs works from
# there: the programs run (--version), the installed examples pass `finwave --check`, the man
# pages are where man finds them, and bash completion and the units are in their places.
# Usage: install_test.sh BUILD-DIR
set -euo pipefail
build=${1:?install_test.sh BUILD-DIR}
repo=$(cd "$(dirname "$0")/../.." && pwd)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
failures=0
missing() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

DESTDIR=$root cmake --install "$build" --prefix /usr >"$root.log" 2>&1 || { cat "$root.log" >&2; exit 1; }
rm -f "$root.log"
for file in usr/bin/finwave usr/bin/finwavectl usr/bin/finwave-ladder usr/bin/finwave-peer \
  usr/share/man/man8/finwave.8.gz usr/share/man/man1/finwavectl.1.gz usr/share/man/man1/finwave-ladder.1.gz \
  usr/share/man/man1/finwave-peer.1.gz usr/share/man/man5/finwave-rules.5.gz \
  usr/share/doc/finwave/changelog.gz usr/share/doc/finwave/copyright \
  usr/share/bash-completion/completions/finwavectl \
  usr/lib/systemd/system/finwave.service usr/lib/systemd/system/finwave@.service usr/lib/sysusers.d/finwave.conf; do
  [[ -e $root/$file ]] || missing "not installed: /$file"
done
version=$(sed -n 's/^project(finwave VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
for program in finwave finwavectl finwave-ladder; do
  got=$("$root/usr/bin/$program" --version)
  [[ $got == "$program $version" ]] || missing "$program --version says '$got', expected '$program $version'"
done
examples=0
for example in "$repo"/rules/examples/*.toml; do
  installed=$root/usr/share/finwave/examples/$(basename "$example")
  cmp -s "$example" "$installed" || { missing "example $(basename "$example") not installed as it is"; continue; }
  "$root/usr/bin/finwave" --check "$installed" >/dev/null || missing "finwave --check $installed failed"
  examples=$((examples + 1))
done
((examples > 0)) || missing "no examples"
for page in finwave-rules finwave-peer; do
  MANPATH=$root/usr/share/man man -w "$page" >/dev/null 2>&1 || missing "man does not find $page"
done

if ((failures)); then exit 1; fi
echo "install_test: programs, $examples examples, man pages, completion and units installed and working"
