#!/usr/bin/env bash
# Configure and build the guest kernel from build/linux into an O= directory.
#
#   build.sh OUTDIR FRAGMENT...
#
# The config is tinyconfig plus the fragments, regenerated when a fragment
# changes; every option a fragment names must survive `olddefconfig`, or the
# build stops naming it. The kernel is rebuilt only when a source file in the
# tree (outside tools/ and Documentation/) or the config is newer than the
# last build, so a no-op `make` costs a `find`, not a kbuild walk. ccache is used
# when installed. Modules (tls.ko, netdevsim.ko) are installed into
# OUTDIR/mod/lib/modules/RELEASE, which the guest mounts as /lib/modules.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tree=${KTREE:-$top/build/linux}
out=$1
shift
frags=("$@")
jobs=${JOBS:-$(($(nproc) + 1))}

cc=gcc
command -v ccache >/dev/null && cc="ccache gcc"
# Hash paths relative to the checkout and leave the working directory out,
# so a fresh clone anywhere (CI's) reuses the objects another clone compiled;
# their debug info then names that clone's paths, which the guest never reads.
export CCACHE_BASEDIR=$top CCACHE_NOHASHDIR=1
kmake() { make -s -C "$tree" O="$out" CC="$cc" HOSTCC="$cc" -j"$jobs" "$@"; }

mkdir -p "$out"
config=$out/.config
image=$out/arch/x86/boot/bzImage
stamp=$out/.last-build

need_config=
[ -f "$config" ] || need_config=1
for f in "${frags[@]}"; do
	[ "$f" -nt "$config" ] && need_config=1
done
if [ -n "$need_config" ]; then
	echo "  CONFIG  tinyconfig + ${frags[*]#"$top"/}"
	kmake tinyconfig >/dev/null
	"$tree/scripts/kconfig/merge_config.sh" -m -O "$out" "$config" "${frags[@]}" >/dev/null
	kmake olddefconfig >/dev/null
	# Every option named in a fragment must hold (as the last fragment
	# naming it sets it), or the guest silently lacks it.
	bad=0
	declare -A want=()
	while IFS= read -r line; do
		case "$line" in CONFIG_*=*) want[${line%%=*}]=${line#*=} ;; esac
	done < <(cat "${frags[@]}")
	for opt in "${!want[@]}"; do
		if [ "${want[$opt]}" = n ]; then
			grep -q "^$opt=" "$config" && { echo "  config: $opt should be off" >&2; bad=1; }
		else
			grep -qxF "$opt=${want[$opt]}" "$config" ||
				{ echo "  config: '$opt=${want[$opt]}' did not stick (dependency missing?)" >&2; bad=1; }
		fi
	done
	[ $bad = 0 ] || { rm -f "$config"; echo "kernel/build.sh: config fragment not satisfied" >&2; exit 1; }
fi

if [ -f "$image" ] && [ -f "$stamp" ] && [ ! "$config" -nt "$stamp" ] &&
   [ -z "$(find "$tree" \( -path "$tree/.git" -o -path "$tree/tools" -o -path "$tree/Documentation" \) \
	-prune -o -newer "$stamp" -type f -print -quit)" ]; then
	exit 0
fi
echo "  KERNEL  building $(basename "$out") with -j$jobs (cc: $cc)"
start=$(date +%s)
touch "$stamp.new"
kmake bzImage modules
rm -rf "$out/mod"
kmake INSTALL_MOD_PATH="$out/mod" INSTALL_MOD_STRIP=1 modules_install >/dev/null
mv "$stamp.new" "$stamp"
echo "  KERNEL  $(basename "$out") built in $(($(date +%s) - start)) s"
