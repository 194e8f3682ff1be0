#!/usr/bin/env bash
# The habits CI enforces on finwave's own files (not third-party code):
#   format     clang-format-14 with the repository's .clang-format: any diff fails
#   shell      shellcheck on every shell script under deploy/, tests/ and .ci/
#   python     pyflakes (Debian's python3-pyflakes) on every Python file: unused imports and
#              names, undefined names
#   tidy       clang-tidy-14 with the repository's .clang-tidy on every C++ source of the
#              build's compile_commands.json (tests and fuzz targets included): any finding fails
#
#   deploy/lint.sh                  all four
#   deploy/lint.sh format tidy      only the ones named
#   deploy/lint.sh --fix format     rewrite the files clang-format would change, then check
#   deploy/lint.sh tidy --changed REV
#                                   clang-tidy only on the sources changed since git REV (and the
#                                   sources that include a header changed since then)
#
# FINWAVE_BUILD names the build directory whose compile_commands.json clang-tidy reads (default
# build/; configured here if it has none). Needs clang-format-14, clang-tidy-14, shellcheck and
# pyflakes (deploy/install-deps.sh installs them). Prints one line per check, "lint: NAME: ok" or
# "lint: NAME: FAILED", and exits 1 if any failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
cd "$repo"

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

checks=()
fix=0
changed_since=
while (($#)); do
  case $1 in
    format | shell | python | tidy) checks+=("$1") ;;
    --fix) fix=1 ;;
    --changed)
      [[ -n ${2:-} ]] || { echo "lint.sh: --changed needs a git revision" >&2; exit 2; }
      changed_since=$2
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) echo "lint.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
((${#checks[@]})) || checks=(format shell python tidy)

for tool in clang-format-14 clang-tidy-14 shellcheck; do
  command -v "$tool" >/dev/null ||
    { echo "lint.sh: $tool is missing; deploy/install-deps.sh installs it" >&2; exit 2; }
done

# The project's own C++ files: everything git tracks, no generated or third-party code.
cxx_files() { git ls-files '*.cpp' '*.hpp'; }

# Every shell script git tracks under deploy/, tests/ and .ci/ (by extension or shebang).
shell_files() {
  local file
  while IFS= read -r file; do
    if [[ $file == *.sh ]] || head -n 1 "$file" | grep -qE '^#!.*\b(ba)?sh\b'; then
      echo "$file"
    fi
  done < <(git ls-files deploy tests .ci | grep -vE '\.(cpp|hpp|txt|toml|md|json|jq|scn|dict)$|/corpus/|/regressions/|/golden/')
}

check_format() {
  local files
  mapfile -t files < <(cxx_files)
  ((fix)) && clang-format-14 -i "${files[@]}"
  clang-format-14 --dry-run --Werror "${files[@]}"
}

check_shell() {
  local files
  mapfile -t files < <(shell_files)
  # -x follows the `source` lines whose paths the scripts give with "# shellcheck source=".
  shellcheck -x -P SCRIPTDIR "${files[@]}"
  # One definition per helper: a function defined in two scripts means two tests that drifted
  # apart, or a library part that silently overrides another.
  local twice
  twice=$(grep -HnoE '^[A-Za-z_][A-Za-z0-9_]*\(\)' "${files[@]}" |
    awk -F: '{ name = $3; sub(/\(\)$/, "", name) }
             name == "usage" || name == "main" { next }  # each program has its own
             { where[name] = where[name] " " $1 ":" $2; n[name]++ }
             END { for (f in n) if (n[f] > 1) print "lint.sh: shell: " f "() defined more than once:" where[f] }')
  [[ -z $twice ]] || { echo "$twice" >&2; return 1; }
}

check_python() {
  local files
  /usr/bin/python3 -c 'import pyflakes' 2>/dev/null ||
    { echo "lint.sh: python3-pyflakes is missing; deploy/install-deps.sh installs it" >&2; return 1; }
  mapfile -t files < <(git ls-files '*.py')
  /usr/bin/python3 -m pyflakes "${files[@]}"
}

check_tidy() {
  local build=${FINWAVE_BUILD:-$repo/build}
  if [[ ! -f $build/compile_commands.json ]]; then
    cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  local files
  mapfile -t files < <(git ls-files '*.cpp')
  if [[ -n $changed_since ]]; then
    local changed file header patterns=() selected=()
    changed=$(git diff --name-only "$changed_since" -- '*.cpp' '*.hpp')
    # A source is checked when it changed or includes a header that did (by its file name).
    while IFS= read -r header; do
      [[ $header == *.hpp ]] && patterns+=(-e "/${header##*/}\"")
    done <<<"$changed"
    for file in "${files[@]}"; do
      if grep -qxF "$file" <<<"$changed" ||
        { ((${#patterns[@]})) && grep -qF "${patterns[@]}" "$file"; }; then
        selected+=("$file")
      fi
    done
    files=("${selected[@]}")
  fi
  # Only translation units the build compiles (a source of a target not configured, such as
  # the fuzz targets in a build without FINWAVE_FUZZ, has no compile command).
  local known=()
  for file in "${files[@]}"; do
    grep -qF "\"$repo/$file\"" "$build/compile_commands.json" && known+=("$file")
  done
  ((${#known[@]})) || { echo "lint.sh: tidy: no source to check"; return 0; }
  echo "lint.sh: tidy: ${#known[@]} sources"
  local log rc=0
  log=$(mktemp /tmp/finwave-tidy.XXXXXX)
  printf '%s\n' "${known[@]}" |
    xargs -P "$(nproc)" -n 4 clang-tidy-14 -p "$build" --quiet --warnings-as-errors='*' \
      >"$log" 2>&1 || rc=$?
  # clang-tidy's chatter about what it suppressed is not a finding.
  grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter|^Use -system-headers' \
    "$log" || true
  rm -f "$log"
  return "$rc"
}

status=0
for check in "${checks[@]}"; do
  if "check_$check"; then
    echo "lint: $check: ok"
  else
    echo "lint: $check: FAILED"
    status=1
  fi
done
exit "$status"
