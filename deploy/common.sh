# shellcheck shell=bash
# Shared by the deploy/ scripts: source it, don't run it.

# Re-executes the calling script as root through sudo when needed; explains what it needs when
# neither works. Usage: finwave_require_root "$0" "$@"
finwave_require_root() {
  local script=$1
  shift
  [ "$(id -u)" -eq 0 ] && return 0
  if command -v sudo >/dev/null 2>&1; then
    exec sudo --preserve-env=FINWAVE_LAB,FINWAVE_BUILD,FINWAVE_SANITIZE,CI "$script" "$@"
  fi
  echo "$(basename "$script"): needs root (network namespaces, nftables and NFQUEUE need" \
       "CAP_NET_ADMIN). Run it as root, or install sudo." >&2
  exit 1
}

# Configures and builds into $FINWAVE_BUILD (default: build/ in the repository).
finwave_build() {
  local repo=$1
  local build=${FINWAVE_BUILD:-$repo/build}
  local -a options=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  [ -n "${FINWAVE_SANITIZE:-}" ] && options+=("-DFINWAVE_SANITIZE=$FINWAVE_SANITIZE")
  cmake -S "$repo" -B "$build" "${options[@]}" >/dev/null
  cmake --build "$build" -j "$(nproc)"
}
