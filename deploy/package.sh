#!/usr/bin/env bash
# Builds finwave's Debian package with CPack (deploy/package/packaging.cmake) and checks it with
# lintian. The package holds what `cmake --install` installs, built with Debian's hardening
# flags (dpkg-buildflags) and stripped; its dependencies are dpkg-shlibdeps' plus nftables.
# Needs no root to build; installs missing build packages through deploy/install-deps.sh --build.
#
#   deploy/package.sh                 writes build-package/finwave_VERSION_ARCH.deb
#   deploy/package.sh --output DIR    writes the .deb into DIR
#   deploy/package.sh --no-lintian    skips lintian (the container image's build stage)
#
# FINWAVE_PACKAGE_BUILD overrides the build directory (default build-package/). The last line
# is the .deb's path. Exits 1 when the build fails or lintian reports an error.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

output=
lintian=1
while (($#)); do
  case $1 in
    --output)
      [[ -n ${2:-} ]] || { echo "package.sh: --output takes a directory" >&2; exit 2; }
      output=$2
      shift
      ;;
    --no-lintian) lintian=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "package.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

"$here/install-deps.sh" --build
if ((lintian)) && ! command -v lintian >/dev/null; then
  echo "package.sh: lintian is missing: deploy/install-deps.sh installs it (or pass --no-lintian)" >&2
  exit 1
fi

build=${FINWAVE_PACKAGE_BUILD:-$repo/build-package}
version=$(sed -n 's/^project(finwave VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
changelog_version=$(sed -n '1s/^finwave (\([^)]*\)).*/\1/p' "$here/package/changelog")
if [[ $changelog_version != "$version" ]]; then
  echo "package.sh: deploy/package/changelog's newest entry is $changelog_version, but" \
    "CMakeLists.txt says $version: add a changelog entry for $version" >&2
  exit 1
fi

# Debian's build flags: -O2 -g, the stack protector, _FORTIFY_SOURCE, full RELRO, bind now.
CXXFLAGS="$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)" \
  LDFLAGS=$(dpkg-buildflags --get LDFLAGS) \
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DFINWAVE_SANITIZE= -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON >/dev/null
# Only what the package holds (finwave-peer is defined with the tests, whose own targets are not
# built); CMAKE_SKIP_INSTALL_ALL_DEPENDENCY keeps cpack from building everything else.
cmake --build "$build" -j "$(nproc)" --target finwave finwavectl finwave-ladder finwave-peer gzipped_docs
rm -f "$build"/finwave_*.deb
(cd "$build" && cpack -G DEB >cpack.log) || { cat "$build/cpack.log" >&2; exit 1; }
deb=$(find "$build" -maxdepth 1 -name "finwave_${version}_*.deb" -print -quit)
[[ -n $deb ]] || { echo "package.sh: cpack wrote no finwave_${version}_*.deb" >&2; exit 1; }

if ((lintian)); then
  echo "package.sh: lintian $deb"
  lintian --fail-on error --info "$deb"
fi

if [[ -n $output ]]; then
  mkdir -p "$output"
  cp "$deb" "$output/"
  deb=$output/$(basename "$deb")
fi
echo "$deb"
