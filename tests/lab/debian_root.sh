# shellcheck shell=bash
# tests/lab/debian_root.sh — a fresh Debian 12 root for the tests of what finwave ships (the
# package's and the container's). Part of lib.sh, which sources it.
#
#   debian_root_tarball      prints the path of a minimal bookworm root as a tarball
#                            (mmdebstrap --variant=minbase from deb.debian.org), made on first
#                            use and kept in /var/cache/finwave-tests for the next test
#   debian_root_unpack DIR   unpacks that tarball into DIR (made; must not exist)
#   debian_root_run DIR CMD... runs CMD chrooted in DIR with /proc mounted, in a mount namespace
#                            of its own, so no mount outlives it whatever happens
#
# The tarball is the one base both tests start from: a user's fresh machine (the package test
# chroots into it) and the debian:12-slim image podman cannot pull here (the container test
# imports it).

DEBIAN_ROOT_CACHE=${DEBIAN_ROOT_CACHE:-/var/cache/finwave-tests}

debian_root_tarball() {
  local tarball=$DEBIAN_ROOT_CACHE/bookworm-minbase.tar
  mkdir -p "$DEBIAN_ROOT_CACHE"
  # One maker at a time; a tarball is renamed into place only once complete.
  (
    flock 9
    # mmdebstrap takes the format from the name, and "*.partial" names none: without --format it
    # made a directory, which was then renamed to the tarball's name. Such a leftover is removed.
    if [ -d "$tarball" ]; then rm -rf "$tarball"; fi
    if [ ! -s "$tarball" ]; then
      rm -rf "$tarball.partial"
      mmdebstrap --variant=minbase --format=tar --quiet bookworm "$tarball.partial" \
        "deb http://deb.debian.org/debian bookworm main" \
        "deb http://deb.debian.org/debian bookworm-updates main" \
        "deb http://deb.debian.org/debian-security bookworm-security main" >&2 ||
        { rm -rf "$tarball.partial"; exit 1; }
      mv "$tarball.partial" "$tarball"
    fi
  ) 9>"$DEBIAN_ROOT_CACHE/.lock" || return 1
  echo "$tarball"
}

debian_root_unpack() {
  local dir=${1:?debian_root_unpack DIR} tarball
  tarball=$(debian_root_tarball) || return 1
  mkdir "$dir"
  tar -xf "$tarball" -C "$dir" --same-owner --numeric-owner
  # apt in the root reaches the registry the way this machine does.
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
}

debian_root_run() {
  local dir=${1:?debian_root_run DIR CMD...}
  shift
  # shellcheck disable=SC2016 # the inner shell expands $1 and $@
  unshare --mount --propagation private \
    sh -c 'mount -t proc proc "$1/proc" && exec chroot "$@"' debian_root_run "$dir" "$@"
}
