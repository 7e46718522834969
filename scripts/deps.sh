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
	# the demo's picture
	gnuplot-nox
)

missing=()
for p in "${pkgs[@]}"; do
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "  DEPS    installing: ${missing[*]}"
sudo=
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
