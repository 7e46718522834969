#!/usr/bin/env bash
# Keep the generated kernel git tree (build/linux) and the patch queue
# (kernel/patches) in step. The patches are the source of truth.
#
#   tree.sh sync     create the tree from the Debian tarball if missing, then
#                    make its commits equal the patch queue (re-apply on change)
#   tree.sh export   write the tree's commits since the base tag back to
#                    kernel/patches (git format-patch)
#   tree.sh reset    drop the tree's own commits and edits, re-apply the queue
#
# A tree holding work that is not in kernel/patches (uncommitted edits, or
# commits not exported) is never overwritten: sync stops and says what to do.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
tree=${KTREE:-$top/build/linux}
patches=$top/kernel/patches
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
base=base
stamp=$tree/.git/patch-queue.md5
# the series' cover letter: written by hand, kept by export, never applied
cover=0000-cover-letter.patch

die() { echo "kernel/tree.sh: $*" >&2; exit 1; }
git_t() { git -C "$tree" -c user.name=tree -c user.email=tree@localhost "$@"; }

# Digest of the changed lines of a patch series, so that renumbering or header
# details of an export do not count as a change (same rule as the stop hook).
series_md5() {
	grep -hE '^[-+]' "$@" 2>/dev/null | grep -vE '^(\+\+\+ |--- |---$|-- $)' | md5sum | cut -d' ' -f1
}
queue_md5() { series_md5 "$patches"/*.patch; }
tree_md5() {
	local tmp rc=0
	tmp=$(mktemp -d)
	git_t format-patch -q --no-signature --zero-commit -o "$tmp" "$base"..HEAD || rc=$?
	series_md5 "$tmp"/*.patch
	rm -rf "$tmp"
	return $rc
}

create() {
	[ -f "$tarball" ] || die "$tarball missing: run 'make deps' (package linux-source-6.12)"
	echo "  TREE    extracting $(basename "$tarball") into $tree"
	rm -rf "$tree.tmp"
	mkdir -p "$tree.tmp"
	tar -C "$tree.tmp" --strip-components=1 -xf "$tarball"
	# Debian's tarball ignores every top-level path (its packaging repo keeps
	# the source elsewhere); drop that block so the tree works as a kernel repo.
	sed -i '/^# Debian packaging:/,$d' "$tree.tmp/.gitignore"
	sed -i '${/^#$/d}' "$tree.tmp/.gitignore"
	git -C "$tree.tmp" init -q
	git -C "$tree.tmp" add -A
	git -C "$tree.tmp" -c user.name=tree -c user.email=tree@localhost \
		commit -q -m "Debian linux-source-6.12 ($(sed -n 's/^SUBLEVEL = //p' "$tree.tmp/Makefile"))"
	git -C "$tree.tmp" tag "$base"
	mv "$tree.tmp" "$tree"
}

apply_queue() {
	git_t reset -q --hard "$base"
	local p n=0
	for p in "$patches"/*.patch; do
		[ -e "$p" ] || break
		[ "${p##*/}" = "$cover" ] && continue
		if ! git_t am -q --keep-cr "$p" >/dev/null 2>"$tree/.git/am.err"; then
			cat "$tree/.git/am.err" >&2
			git_t am --abort >/dev/null 2>&1 || true
			die "patch $(basename "$p") does not apply on $(git_t log -1 --format=%s HEAD). Fix it in kernel/patches."
		fi
		n=$((n + 1))
	done
	echo "  TREE    applied $n patch(es) from kernel/patches"
}

sync() {
	[ -d "$tree/.git" ] || { create; apply_queue; queue_md5 >"$stamp"; return; }
	local want have applied
	want=$(queue_md5)
	applied=$(cat "$stamp" 2>/dev/null || true)
	[ "$want" = "$applied" ] && return 0
	have=$(tree_md5)
	if [ "$have" = "$want" ]; then
		# The queue was just exported from this tree.
		echo "$want" >"$stamp"
		return 0
	fi
	if [ -n "$(git_t status --porcelain --untracked-files=no)" ]; then
		die "$tree has uncommitted edits and kernel/patches changed: commit and 'make kernel-export', or 'make kernel-reset' to discard"
	fi
	if [ -n "$applied" ] && [ "$have" != "$applied" ]; then
		die "$tree has commits not in kernel/patches: 'make kernel-export' them, or 'make kernel-reset' to discard"
	fi
	apply_queue
	echo "$want" >"$stamp"
}

export_queue() {
	[ -d "$tree/.git" ] || die "no kernel tree at $tree"
	[ -z "$(git_t status --porcelain --untracked-files=no)" ] ||
		die "$tree has uncommitted edits: commit them first"
	find "$patches" -name '*.patch' ! -name "$cover" -delete
	git_t format-patch -q --no-signature --zero-commit -o "$patches" "$base"..HEAD
	queue_md5 >"$stamp"
	echo "  EXPORT  $(ls "$patches" | grep -v "^$cover\$" | grep -c '\.patch$' || true) patch(es) to kernel/patches"
	if [ -f "$patches/$cover" ]; then cover_refresh; fi
}

# The cover letter ends with the series' shortlog and diffstat, as
# git format-patch --cover-letter writes them: refreshed at each export.
cover_refresh() {
	local f=$patches/$cover tmp
	tmp=$(mktemp)
	sed '/^-- $/,$d; /^[A-Za-z].* ([0-9]*):$/,$d' "$f" >"$tmp"
	{
		cat "$tmp"
		git_t shortlog -w72,6,9 "$base"..HEAD
		git_t diff --stat=72 "$base" HEAD
		printf -- '-- \n'
	} >"$f"
	rm -f "$tmp"
}

case "${1:-}" in
sync) sync ;;
export) export_queue ;;
reset) [ -d "$tree/.git" ] || create; apply_queue; queue_md5 >"$stamp" ;;
*) echo "usage: $0 sync|export|reset" >&2; exit 2 ;;
esac
