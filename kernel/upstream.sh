#!/usr/bin/env bash
# Build upstream's kernel, without the series, as a second guest kernel.
#
#   upstream.sh OUTDIR
#
# Upstream has had the TLS 1.3 key update of kTLS (SW only) since 6.14, with
# the UAPI the series implements. Running a TLS library's key updates on it
# tells a bug of the series from one of the library (`make test-upstream`).
# The source is Debian's linux-source-$UPSTREAM_VERSION from trixie-backports,
# fetched with apt-get into build/upstream-apt (the host's apt sources stay
# as they are) and extracted into build/linux-upstream. The config is the
# guest's (kernel/config), minus the options upstream no longer has.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
version=${UPSTREAM_VERSION:-7.3}
mkdir -p "${1:?usage: upstream.sh OUTDIR}"
out=$(cd "$1" && pwd)
tree=$top/build/linux-upstream
apt_dir=$top/build/upstream-apt

if [ ! -f "$tree/.extracted-$version" ]; then
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
	echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]" \
		"http://deb.debian.org/debian trixie-backports main" >"$apt_dir/sources.list"
	opts=(-q -o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
		-o APT::Sandbox::User=root)
	echo "  APT     linux-source-$version (trixie-backports)"
	apt-get "${opts[@]}" update >/dev/null
	(cd "$apt_dir" && rm -f linux-source-*.deb && apt-get "${opts[@]}" download "linux-source-$version" >/dev/null)
	echo "  TREE    extracting linux-source-$version into $tree"
	rm -rf "$tree" "$apt_dir/x"
	dpkg-deb -x "$apt_dir"/linux-source-"$version"_*.deb "$apt_dir/x"
	mkdir -p "$tree"
	tar -C "$tree" --strip-components=1 -xf "$apt_dir/x/usr/src/linux-source-$version.tar.xz"
	rm -rf "$apt_dir/x"
	touch "$tree/.extracted-$version"
fi

# Options upstream no longer has (PROC_SYSCTL is always there in 7.x) are
# left out of the fragment, and named.
frag=$out.config
symbols=$(find "$tree" -name 'Kconfig*' -exec sed -n 's/^\(menu\)\{0,1\}config \([A-Z0-9_]*\).*/\2/p' {} + | sort -u)
: >"$frag.new"
while IFS= read -r line; do
	opt=${line%%=*} opt=${opt#CONFIG_}
	if [[ $line == CONFIG_* ]] && ! grep -qx "$opt" <<<"$symbols"; then
		echo "  CONFIG  upstream has no $opt: left out"
		continue
	fi
	echo "$line" >>"$frag.new"
done <"$top/kernel/config"
cmp -s "$frag.new" "$frag" && rm "$frag.new" || mv "$frag.new" "$frag"

KTREE=$tree exec "$top/kernel/build.sh" "$out" "$frag"
