# shellcheck shell=bash
# Minimal kselftest-style TAP for shell tests:
#   tap_plan N; tap_ok "name"; tap_fail "name" "why"; tap_skip "name" "why";
#   tap_check "name" CMD...   (ok when CMD succeeds); tap_done (exit status)
TAP_N=0
TAP_FAILED=0

tap_plan() { echo "TAP version 13"; echo "1..$1"; }
tap_ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N $1"; }
tap_fail() {
	TAP_N=$((TAP_N + 1)); TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N $1${2:+ # $2}"
}
tap_skip() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N $1 # SKIP $2"; }
tap_check() {
	local name=$1; shift
	if "$@"; then tap_ok "$name"; else tap_fail "$name"; fi
}
tap_done() { [ "$TAP_FAILED" = 0 ]; }
