#!/usr/bin/env bash
# Check the patch queue one patch at a time, as a reviewer's bots would:
# every step of kernel/patches must build, pass checkpatch and boot.
#
#   series-check.sh [FIRST [LAST]]    patch numbers (default: all)
#
# For each patch, in order, on top of the previous ones (a worktree of
# build/linux at build/series-check/tree):
#  - build:      the kernel with kernel/config, incrementally into
#                build/series-check/kernel (ccache); bpftool too when the
#                patch touches it;
#  - checkpatch: scripts/checkpatch.pl --strict on the patch; a finding
#                listed in kernel/checkpatch-exceptions is shown as
#                accepted, any other fails the step;
#  - smoke:      boot the step's kernel and run the smoke suite.
# One line per patch, then a summary; exits non-zero if any step failed.
# The project's tools and selftests (make tools selftests) must be built.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
repo=$top/build/linux
work=$top/build/series-check
tree=$work/tree
out=$work/kernel
exceptions=$top/kernel/checkpatch-exceptions
jobs=${JOBS:-$(($(nproc) + 1))}

mapfile -t queue < <(ls "$top"/kernel/patches/[0-9]*.patch | grep -v '/0000-cover-letter\.patch$')
first=${1:-1} last=${2:-${#queue[@]}}
[ -d "$repo/.git" ] || { echo "series-check: no $repo: run 'make kernel-tree'" >&2; exit 2; }
[ -x "$top/build/tools/bpftool/bpftool" ] && [ -d "$top/build/selftests" ] ||
	{ echo "series-check: run 'make tools selftests' first" >&2; exit 2; }

# The worktree starts at the base (or at the step before FIRST): patches
# are applied with git am, so each step is exactly the queue's patch.
mkdir -p "$work"
if [ ! -d "$tree" ]; then
	git -C "$repo" worktree add -q --detach "$tree" base
fi
git -C "$tree" am --abort >/dev/null 2>&1
git -C "$tree" checkout -q --detach base
for p in "${queue[@]:0:first-1}"; do
	git -C "$tree" -c user.name=series-check -c user.email=check@localhost am -q "$p" ||
		{ echo "series-check: $(basename "$p") does not apply" >&2; exit 1; }
done

# checkpatch findings of one patch, one per line: "TYPE: message"
findings() {
	# Debian's python3 (spdxcheck.py needs python3-ply and python3-git)
	(cd "$tree" && PATH=/usr/bin:$PATH ./scripts/checkpatch.pl --strict --terse \
		--no-summary --show-types "$1" 2>&1) |
		sed -n 's/^[^:]*:[0-9]*: \(ERROR\|WARNING\|CHECK\):\([A-Z_]*\): .*/\2/p'
}

# accepted(SUBJECT, TYPE): listed in kernel/checkpatch-exceptions
accepted() {
	local subj=$1 type=$2 pat t _
	while IFS=$'\t' read -r pat t _; do
		case "$pat" in ''|'#'*) continue ;; esac
		[ "$t" = "$type" ] && [[ $subj == *"$pat"* ]] && return 0
	done <"$exceptions"
	return 1
}

failed=0 total_start=$(date +%s)
printf '%-3s %-7s %-6s %-22s %-9s %s\n' "#" build secs checkpatch smoke patch
for ((i = first; i <= last; i++)); do
	p=${queue[i-1]}
	subj=$(sed -n 's/^Subject: \(\[PATCH[^]]*\] \)\{0,1\}//p' "$p" | head -1)
	start=$(date +%s)
	log=$work/$(printf %02d "$i").log
	: >"$log"
	build=ok cp=ok smoke=-

	if ! git -C "$tree" -c user.name=series-check -c user.email=check@localhost am -q "$p" >>"$log" 2>&1; then
		git -C "$tree" am --abort >/dev/null 2>&1
		printf '%-3s %-7s %-6s %-22s %-9s %s\n' "$i" "no-apply" - - - "$subj"
		failed=$((failed + 1))
		break
	fi
	if ! KTREE=$tree JOBS=$jobs "$top/kernel/build.sh" "$out" "$top/kernel/config" >>"$log" 2>&1; then
		build=FAIL
	elif grep -q '^diff --git a/tools/bpf/bpftool/' "$p" &&
	     ! { mkdir -p "$work/bpftool" &&
		 make -s -C "$tree/tools/bpf/bpftool" OUTPUT="$work/bpftool/" CLANG=clang-19 \
			LLVM_STRIP=llvm-strip-19 LLVM_CONFIG=llvm-config-19 -j"$jobs"; } >>"$log" 2>&1; then
		build=FAIL
	fi
	secs=$(($(date +%s) - start))

	mapfile -t found < <(findings "$p")
	n_acc=0 n_bad=0
	for t in "${found[@]}"; do
		if accepted "$subj" "$t"; then n_acc=$((n_acc + 1)); else n_bad=$((n_bad + 1)); echo "checkpatch: $t" >>"$log"; fi
	done
	[ $n_bad = 0 ] || cp="FAIL($n_bad)"
	[ $n_acc = 0 ] || cp+=" ($n_acc accepted)"

	if [ $build = ok ]; then
		res=$("$top/vm/run" --kernel "$out/arch/x86/boot/bzImage" --timeout 900 \
			--log "$work/$(printf %02d "$i").console" -- \
			"$top/selftests/run_tests.sh" "$top/build/selftests" smoke 2>&1 | tee -a "$log" |
			sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1 \2/p' | tail -1)
		rc=${PIPESTATUS[0]}
		read -r np nf <<<"${res:-0 1}"
		smoke="$np/$((np + nf))"
		[ "$rc" = 0 ] && [ "$nf" = 0 ] || smoke="FAIL:$smoke"
	fi
	[[ $build == ok && $cp != FAIL* && $smoke != FAIL* && $smoke != - ]] || failed=$((failed + 1))
	printf '%-3s %-7s %-6s %-22s %-9s %s\n' "$i" "$build" "$secs" "$cp" "$smoke" "$subj"
done
echo "series-check: $((last - first + 1)) patch(es), $failed failed, $(($(date +%s) - total_start)) s (logs: ${work#"$top"/}/NN.log)"
[ $failed = 0 ]
