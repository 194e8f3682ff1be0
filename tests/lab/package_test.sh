#!/usr/bin/env bash
# The Debian package as a user meets it: deploy/package.sh builds it and lintian finds no error
# or warning; apt installs it into a fresh Debian 12 root (minbase) with nothing but the
# dependencies the package declares; there the programs say their version, every installed
# example passes `finwave --check`, the postinst made the finwave user, and the installed
# finwave, run from that root in the lab's router, drops the first final ACK of an IPv4 and an
# IPv6 connection as lose-first-final-ack.toml asks, agreeing with tcpdump. Then purge and
# autoremove leave the root with the packages it started with and no file of finwave's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

rules_lab package
version=$(sed -n 's/^project(finwave VERSION \([0-9.]*\).*/\1/p' "$FINWAVE_REPO/CMakeLists.txt")

"$FINWAVE_REPO/deploy/package.sh" --output "$WORK/deb" >"$WORK/package.log" 2>&1 ||
  fail "deploy/package.sh failed: $(tail -n 20 "$WORK/package.log")"
deb=$(tail -n 1 "$WORK/package.log")
expect ".deb written" "$(basename "$deb")" "finwave_${version}_amd64.deb"
! grep -E '^[EW]: ' "$WORK/package.log" || fail "lintian has errors or warnings (above)"
depends=$(dpkg-deb -f "$deb" Depends)
for dependency in nftables libnetfilter-queue1 libuv1 libtomlplusplus3; do
  grep -q "\b$dependency\b" <<<"$depends" || fail "Depends lacks $dependency: $depends"
done
echo "Depends: $depends"

root=$WORK/root
debian_root_unpack "$root" || fail "no Debian root (mmdebstrap)"
in_root() { debian_root_run "$root" env DEBIAN_FRONTEND=noninteractive "$@"; }
# shellcheck disable=SC2016 # a dpkg-query format, not the shell's
in_root dpkg-query -W -f '${Package}\n' | sort >"$WORK/packages-before"
cp "$deb" "$root/tmp/"
in_root apt-get update -q >"$WORK/apt.log" 2>&1 || fail "apt-get update in the root: $(tail -n 5 "$WORK/apt.log")"
in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" >>"$WORK/apt.log" 2>&1 ||
  fail "apt-get install of the package: $(tail -n 20 "$WORK/apt.log")"
rm "$root/tmp/$(basename "$deb")"

for program in finwave finwavectl finwave-ladder; do
  expect "$program --version" "$(in_root "$program" --version)" "$program $version"
done
examples=0
for example in "$root"/usr/share/finwave/examples/*.toml; do
  in_root finwave --check "/usr/share/finwave/examples/$(basename "$example")" >/dev/null ||
    fail "finwave --check $(basename "$example") failed in the root"
  examples=$((examples + 1))
done
expect "installed examples that pass --check" "$examples" "$(find "$FINWAVE_REPO/rules/examples" -name '*.toml' | wc -l)"
expect "the finwave user (postinst)" "$(in_root getent passwd finwave | cut -d: -f1,6,7)" \
  "finwave:/nonexistent:/usr/sbin/nologin"
expect "the finwave user's group" "$(in_root id -gn finwave)" finwave
in_root dpkg-query -L finwave | sort >"$WORK/files"
for file in /usr/bin/finwave /usr/share/man/man8/finwave.8.gz /usr/lib/systemd/system/finwave.service \
  /usr/share/doc/finwave/copyright; do
  grep -qx "$file" "$WORK/files" || fail "the package does not hold $file"
done

# The installed finwave, its libraries and nft from the root, in the lab's router: a wrapper
# that makes the test's scratch directory (ready file, socket, outcomes) visible in the root.
mkdir -p "$root$WORK"
cat >"$WORK/installed-finwave" <<WRAPPER
#!/bin/sh
exec unshare --mount --propagation private sh -c 'mount --bind "\$1" "\$2\$1" && mount -t proc proc "\$2/proc" && shift 2 && exec chroot "$root" /usr/bin/finwave "\$@"' installed-finwave "$WORK" "$root" "\$@"
WRAPPER
chmod +x "$WORK/installed-finwave"
FINWAVE_BIN=$WORK/installed-finwave
rules_finwave /usr/share/finwave/examples/lose-first-final-ack.toml --settle 0.3 --linger 5
[ "$(readlink "/proc/$FINWAVE_PID/root")" = "$root" ] || fail "finwave does not run in the installed root"
rules_both send:100,close
rules_stop
for name in v4 v6; do
  rules_outcome "$name"
  expect "$name result" "$(jq -r .result <<<"$RULES_OUTCOME")" clean
  expect "$name final ACKs dropped (installed finwave)" "$(jq .final_acks.dropped <<<"$RULES_OUTCOME")" 1
  expect "$name server FIN retransmits (installed finwave = to-server FINs - 1)" \
    "$(jq .fin_retransmits.server <<<"$RULES_OUTCOME")" "$(wire to-server "$RULES_CLIENT_PORT" 'fins("server") | length - 1')"
done
rmdir "$root$WORK"

in_root apt-get purge -y -q finwave >>"$WORK/apt.log" 2>&1 || fail "apt-get purge: $(tail -n 20 "$WORK/apt.log")"
in_root apt-get autoremove --purge -y -q >>"$WORK/apt.log" 2>&1 || fail "apt-get autoremove: $(tail -n 20 "$WORK/apt.log")"
# shellcheck disable=SC2016 # a dpkg-query format, not the shell's
in_root dpkg-query -W -f '${Package}\n' | sort >"$WORK/packages-after"
diff "$WORK/packages-before" "$WORK/packages-after" >"$WORK/packages.diff" ||
  fail "purge and autoremove did not restore the root's packages: $(cat "$WORK/packages.diff")"
left=$(while read -r file; do if [ -e "$root$file" ] && [ ! -d "$root$file" ]; then echo "$file"; fi; done <"$WORK/files")
[ -z "$left" ] || fail "files of the package left after purge: $left"
named=$(find "$root" -path "$root/proc" -prune -o -name '*finwave*' -print)
[ -z "$named" ] || fail "found after purge: $named"

pass "package $(basename "$deb"): lintian clean, installed with its dependencies into a fresh root, $examples examples checked, the installed finwave agreed with tcpdump, purged without a trace"
