#!/usr/bin/env bash
# Installs what finwave needs to build, test and run, from Debian's packages. Idempotent: when
# everything is present it changes nothing and asks no registry.
#
#   deploy/install-deps.sh            everything: build, package, lint, test, benchmark
#   deploy/install-deps.sh --build    only what configuring and building finwave and its
#                                     package needs (deploy/container/Containerfile's build stage)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=deploy/common.sh
. "$here/common.sh"

only_build=0
case ${1:-} in
  "") ;;
  --build) only_build=1 ;;
  -h | --help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "install-deps.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

build_packages=(
  # build (build-essential brings dpkg-dev: dpkg-buildflags and dpkg-shlibdeps for the package)
  build-essential cmake pkg-config file
  # libraries
  libuv1-dev libnetfilter-queue-dev libmnl-dev libnftnl-dev libtomlplusplus-dev doctest-dev
  nlohmann-json3-dev libcli11-dev libpcap-dev libxml2-dev
  # --metrics: prometheus-cpp's metric model and text format, served by libmicrohttpd
  prometheus-cpp-dev libmicrohttpd-dev
  # the daemon's capabilities
  libcap-dev
  # sd_notify for the systemd units
  libsystemd-dev
  # finwavectl shell: line editing and history (editline, BSD licence)
  libedit-dev
)
packages=(
  "${build_packages[@]}"
  # setcap for the least-privilege lab test
  libcap2-bin
  # systemd-analyze verifies the units offline (deploy/systemd/)
  systemd
  # the man pages' test renders them
  man-db groff-base
  # deploy/package.sh checks the package with lintian; its lab test installs it into a fresh
  # Debian root made by mmdebstrap; the container image's lab test builds and runs it with
  # podman and runc (tests/lab/container_test.sh), which also plays the Kubernetes sidecar Pod
  # (podman kube play: catatonit is the pod's pause process)
  lintian mmdebstrap podman runc catatonit
  # the manifests' test (tests/deploy/manifests_test.sh): yamllint, and PyYAML to read them
  yamllint python3-yaml
  # fuzzing (tests/fuzz/, FINWAVE_FUZZ=ON): clang with its sanitizer runtimes, and libFuzzer
  clang-14 libfuzzer-14-dev
  # the lint stage (deploy/lint.sh): formatting, static analysis, shell scripts
  clang-format-14 clang-tidy-14 shellcheck python3-pyflakes
  # finwave at run time: nft writes its capture table
  nftables
  # the lab and the tests (xmllint: the SVG ladders finwavectl writes are checked as XML;
  # iptables: the capture table's test checks that other rules survive it)
  iproute2 tcpdump iputils-ping procps jq libxml2-utils iptables
  # the Python client and pytest plugin (deploy/python/): their tests, and an offline install
  # into a virtual environment in the lab test
  python3 python3-pytest python3-setuptools python3-pip python3-venv
  # the metrics lab test parses the endpoint's text with the Prometheus client's own parser
  python3-prometheus-client
  # the benchmarks (tests/bench/); socat also for the control-socket tests, ipset for
  # capture_cost.sh's comparison of set lookups
  iperf3 socat ethtool ipset
)

((only_build)) && packages=("${build_packages[@]}")
missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
# Root only when there is something to install: deploy/package.sh builds as any user.
finwave_require_root "$0" "$@"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
