#!/usr/bin/env bash
# Install the Debian packages the build and the tests need, when missing.
# A check with nothing to install costs one dpkg-query.
set -euo pipefail

pkgs=(
	# kernel source and build
	linux-source-6.12 xz-utils gcc make bc bison flex libelf-dev zlib1g-dev
	libssl-dev dwarves cpio rsync python3 ccache
	# BPF objects, libbpf and bpftool (its LLVM disassembler and libcap)
	clang-19 llvm-19 llvm-19-dev libcap-dev pkg-config
	# the guest and what tests run in it
	qemu-system-x86 iproute2 ethtool openssl util-linux procps kmod
	# make series-check: checkpatch.pl's SPDX check
	python3-ply python3-git
	# the loader's tests: its Prometheus output (promtool), its man page
	prometheus man-db
	# the demo's picture
	gnuplot-nox
	# the root with the TLS libraries the series is run against (below)
	mmdebstrap
)

# Real TLS libraries that drive kTLS key updates by themselves (OpenSSL 3.2+,
# GnuTLS 3.8) are newer than bookworm's: selftests/openssl.sh runs Debian
# trixie's, from a root of Debian packages used with chroot in the guest.
trixie_pkgs=openssl,gnutls-bin
trixie_root=$(cd "$(dirname "$0")/.." && pwd)/build/trixie

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

missing=()
for p in "${pkgs[@]}"; do
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "  DEPS    installing: ${missing[*]}"
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$trixie_root/.stamp" ]; then
	echo "  ROOT    $trixie_root (Debian trixie: $trixie_pkgs)"
	rm -rf "$trixie_root" "$trixie_root.tmp"
	mkdir -p "$(dirname "$trixie_root")"	# build/ on a fresh clone
	$sudo mmdebstrap --quiet --variant=essential --include="$trixie_pkgs" trixie \
		"$trixie_root.tmp" http://deb.debian.org/debian
	mv "$trixie_root.tmp" "$trixie_root"
	touch "$trixie_root/.stamp"
fi
