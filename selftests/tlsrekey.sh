#!/bin/bash
# The loader end to end, in the guest: load, status, stats, set, replace and
# unload for every built-in policy; its --json against the maps read with
# bpftool; every error a user can meet, with its message and exit code, and
# no pins left behind by a failure.
# Usage: tlsrekey.sh BUILD_SELFTESTS_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/tap.sh"
out=${1:?usage: tlsrekey.sh BUILD_SELFTESTS_DIR}
build=$(cd "$out/.." && pwd)
tlsrekey=$build/user/tlsrekey
bpftool=$build/tools/bpftool/bpftool
dir=/sys/fs/bpf/tls_rekey
policies="default backoff ratelimit observe"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm -rf $dir' EXIT

# run NAME WANT_RC WANT_STDERR_TEXT CMD...: exit code and message
expect() {
	local name=$1 rc=$2 text=$3 got; shift 3
	"$@" >"$tmp/out" 2>"$tmp/err"; got=$?
	if [ "$got" = "$rc" ] && { [ -z "$text" ] || grep -qF -- "$text" "$tmp/err" "$tmp/out"; }; then
		tap_ok "$name"
	else
		tap_fail "$name" "exit $got (want $rc): $(head -c 300 "$tmp/err" | tr '\n' ' ')"
	fi
}

no_pins() { [ ! -e $dir ] || [ -z "$(ls -A $dir)" ]; }

# key updates on an offloaded socket so that the counters move
workload() {
	"$out/tls_offload" -r offload_rekey.ip6_tls13_gcm128.several_keys_in_one_window \
		>"$tmp/workload" 2>&1
}

# tlsrekey stats --json == bpftool map dump of every map it shows (CPUs
# summed), and the workload moved some counter (default has no maps)
stats_match_bpftool() {
	"$tlsrekey" stats --json >"$tmp/stats.json" || return 1
	python3 - "$tmp/stats.json" "$bpftool" "$dir" "$1" <<'PY'
import json, subprocess, sys
stats = json.load(open(sys.argv[1]))
if sys.argv[4] == "default":
    sys.exit(0 if stats["maps"] == {} and stats["policy"] == "default" else 1)
def nonzero(v):
    if isinstance(v, dict):
        return any(nonzero(x) for x in v.values())
    if isinstance(v, list):
        return any(nonzero(x) for x in v)
    return v != 0
def norm(v):
    if isinstance(v, dict):
        if list(v) == ["slot"]:
            return norm(v["slot"])
        return {k: norm(x) for k, x in v.items() if k != "pad"}
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v
def add(a, b):
    if isinstance(a, dict):
        return {k: add(a[k], b[k]) for k in a}
    if isinstance(a, list):
        return [add(x, y) for x, y in zip(a, b)]
    return a + b
ok = nonzero(stats["maps"])
if not ok:
    print("no counter moved", file=sys.stderr)
for name, shown in stats["maps"].items():
    dump = json.loads(subprocess.run([sys.argv[2], "map", "dump", "pinned",
                                      sys.argv[3] + "/" + name],
                                     capture_output=True, text=True).stdout)
    entries = []
    for e in dump:
        total = None
        for c in e["values"]:
            v = norm(c["value"])
            total = v if total is None else add(total, v)
        entries.append({"key": norm(e["key"]), "value": total})
    if isinstance(shown, list):
        want = sorted(json.dumps(x, sort_keys=True) for x in entries)
        got = sorted(json.dumps(norm(x), sort_keys=True) for x in shown)
    else:
        want, got = [json.dumps(entries[0]["value"], sort_keys=True)], [json.dumps(norm(shown), sort_keys=True)]
    if want != got:
        print("mismatch in", name, want, got, file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
}

json_field() {	# json_field FILE EXPR: python expression on the object j
	python3 -c "import json,sys; j=json.load(open('$1')); print($2)"
}

echo "TAP version 13"

# ---- every policy through its whole life
for p in $policies; do
	expect "$p: load" 0 "" "$tlsrekey" load $p
	"$tlsrekey" status --json >"$tmp/status.json"
	tap_check "$p: status --json names it, with its link" \
		[ "$(json_field "$tmp/status.json" 'j["policy"], j["link_id"] > 0, j["kernel_support"]')" = "$p True True" ]
	tap_check "$p: status --json maps are the pinned ones" \
		[ "$(json_field "$tmp/status.json" '" ".join(sorted(j["maps"]))')" = \
		  "$(cd $dir && ls | grep -v "^${p}_ops$" | sort | tr '\n' ' ' | sed 's/ $//')" ]
	workload
	tap_check "$p: stats --json equals bpftool's map dumps" stats_match_bpftool $p
	expect "$p: stats (text)" 0 "" "$tlsrekey" stats
	case $p in
	backoff)
		expect "backoff: set base_ms=250 cap_ms=5000" 0 "" "$tlsrekey" set base_ms=250 cap_ms=5000
		"$tlsrekey" status --json >"$tmp/status.json"
		tap_check "backoff: tunables in status and in the map" \
			[ "$(json_field "$tmp/status.json" 'j["tunables"]["base_ms"], j["tunables"]["cap_ms"]')" = "250 5000" -a \
			  "$("$bpftool" map dump pinned $dir/backoff_conf | python3 -c 'import json,sys; v=json.load(sys.stdin)[0]["value"]; print(v["base_ms"], v["cap_ms"])')" = "250 5000" ]
		expect "backoff: set an unknown tunable" 1 "unknown tunable 'nope'" "$tlsrekey" set nope=1
		expect "backoff: set a value that is not a number" 1 "expected an integer" "$tlsrekey" set base_ms=abc
		expect "backoff: set a value over the limit" 1 "from 0 to 60000" "$tlsrekey" set base_ms=70000
		;;
	ratelimit)
		expect "ratelimit: set per_sec=20" 0 "per_sec 0 -> 20" "$tlsrekey" set per_sec=20
		;;
	default)
		expect "default: set on a policy without tunables" 1 "no tunables" "$tlsrekey" set x=1
		;;
	esac
	expect "$p: load while it is active" 5 "is active" "$tlsrekey" load observe
	expect "$p: unload" 0 "" "$tlsrekey" unload
	tap_check "$p: unload leaves no pins" no_pins
done

# ---- replace, atomically, with tunables; the old policy's maps go
expect "load observe" 0 "" "$tlsrekey" load observe
link=$("$tlsrekey" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["link_id"])')
expect "replace observe with backoff --set max_attempts=2" 0 "" \
	"$tlsrekey" replace backoff --set max_attempts=2
"$tlsrekey" status --json >"$tmp/status.json"
tap_check "replace keeps the link, swaps the policy and its maps" \
	[ "$(json_field "$tmp/status.json" 'j["policy"], j["link_id"], j["tunables"]["max_attempts"]')" = "backoff $link 2" -a \
	  ! -e $dir/observe_dev -a -e $dir/backoff_ops -a ! -e $dir/observe_ops ]
workload
tap_check "after replace: stats --json equals bpftool's map dumps" stats_match_bpftool backoff
expect "replace with a policy the verifier refuses" 6 "only read is supported" \
	"$tlsrekey" replace "$out/bpf/rekey_write_sk.bpf.o"
tap_check "a refused replace leaves the policy and its pins as they were" \
	[ "$("$tlsrekey" status --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["policy"], j["link_id"])')" = "backoff $link" -a \
	  "$(ls $dir | tr '\n' ' ')" = "backoff_breakers backoff_conf backoff_ops backoff_stats " ]
expect "replace backoff with itself --set base_ms=300" 0 "" "$tlsrekey" replace backoff --set base_ms=300
"$tlsrekey" status --json >"$tmp/status.json"
tap_check "... keeps its maps (re-used by name) and takes the tunable" \
	[ "$(json_field "$tmp/status.json" 'j["policy"], j["link_id"], j["tunables"]["base_ms"], " ".join(sorted(j["maps"]))')" = \
	  "backoff $link 300 backoff_breakers backoff_conf backoff_stats" ]
expect "stats --watch 1 --count 2" 0 "" "$tlsrekey" stats --watch 1 --count 2
tap_check "stats --watch printed two rounds" [ "$(grep -c '^policy: backoff' "$tmp/out")" = 2 ]
expect "unload after replace" 0 "" "$tlsrekey" unload
tap_check "no pins after unload" no_pins

# ---- detached by hand (link pin removed), maps left: a new load re-uses them
expect "load backoff again" 0 "" "$tlsrekey" load backoff
rm $dir/backoff_ops
expect "load backoff over its own stale maps" 0 "" "$tlsrekey" load backoff
tap_check "... status lists the re-used maps" \
	[ "$("$tlsrekey" status --json | python3 -c 'import json,sys; print(" ".join(sorted(json.load(sys.stdin)["maps"])))')" = \
	  "backoff_breakers backoff_conf backoff_stats" ]
expect "... and unload removes them" 0 "" "$tlsrekey" unload
tap_check "... no pins" no_pins

# ---- a policy bpftool registered is managed the same
"$bpftool" struct_ops register "$build/bpf/observe.bpf.o" $dir >/dev/null 2>&1
tap_check "status sees a policy bpftool registered" \
	[ "$("$tlsrekey" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["policy"])')" = observe ]
expect "unload a policy bpftool registered" 0 "" "$tlsrekey" unload
tap_check "its pins are gone" no_pins

# ---- errors a user can act on
expect "unload with no policy" 5 "no policy is active" "$tlsrekey" unload
expect "replace with no policy" 5 "use 'tlsrekey load" "$tlsrekey" replace observe
expect "set with no policy" 5 "no policy is active" "$tlsrekey" set base_ms=1
expect "unknown policy name" 1 "unknown policy 'nosuch'" "$tlsrekey" load nosuch
echo "not an ELF file" >"$tmp/bad.bpf.o"
expect "a file that is not a BPF object" 1 "cannot open policy" "$tlsrekey" load "$tmp/bad.bpf.o"
tap_check "... leaves no pins" no_pins
expect "a policy the verifier refuses (tail of its log)" 6 "only read is supported" \
	"$tlsrekey" load "$out/bpf/rekey_write_sk.bpf.o"
tap_check "... leaves no pins" no_pins
expect "a sleepable ACK-path hook" 6 "refused the policy" \
	"$tlsrekey" load "$out/bpf/rekey_sleepable.bpf.o"
tap_check "... leaves no pins" no_pins
expect "an unknown tunable at load" 1 "unknown tunable 'nope'" "$tlsrekey" load backoff --set nope=3
tap_check "... leaves no pins" no_pins
expect "a tunable out of range at load" 1 "from 0 to 1000000" "$tlsrekey" load ratelimit --set per_sec=2000000
expect "an unknown option" 1 "unknown option" "$tlsrekey" --frobnicate status
expect "an unknown command" 1 "no command 'frobnicate'" "$tlsrekey" frobnicate
expect "load without a policy" 1 "needs a POLICY" "$tlsrekey" load
expect "--watch with a bad interval" 1 "whole number" "$tlsrekey" stats --watch 0
expect "not root" 3 "run as root" setpriv --reuid 65534 --regid 65534 --clear-groups \
	"$tlsrekey" load observe
tap_check "... leaves no pins" no_pins
expect "no bpffs mounted" 4 "mount -t bpf bpf /sys/fs/bpf" \
	unshare -m sh -c "umount /sys/fs/bpf && exec $tlsrekey load observe"
# a kernel without the series: its BTF has no struct tls_rekey_ops
llvm-objcopy-19 --dump-section .BTF="$tmp/old.btf" "$out/bpf/smoke_ca.bpf.o" "$tmp/scratch.o"
expect "a kernel without struct tls_rekey_ops" 2 "no BTF type tls_rekey_ops" \
	unshare -m sh -c "mount --bind $tmp/old.btf /sys/kernel/btf/vmlinux && exec $tlsrekey load observe"
tap_check "... leaves no pins" no_pins
# ---- unprivileged users against an active policy: refused, nothing changes
nobody="setpriv --reuid 65534 --regid 65534 --clear-groups"
expect "load observe (the policy unprivileged users try to change)" 0 "" "$tlsrekey" load observe
link=$("$tlsrekey" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["link_id"])')
expect "unprivileged replace" 3 "run as root" $nobody "$tlsrekey" replace backoff
expect "unprivileged unload" 3 "run as root" $nobody "$tlsrekey" unload
expect "unprivileged stats" 3 "run as root" $nobody "$tlsrekey" stats
map=$(ls $dir | grep -v '_ops$' | head -n 1)
tap_check "unprivileged bpftool cannot read the pinned map $map" \
	sh -c "! $nobody $bpftool map dump pinned $dir/$map >/dev/null 2>&1"
tap_check "unprivileged bpftool cannot open the pinned link" \
	sh -c "! $nobody $bpftool link show pinned $dir/observe_ops >/dev/null 2>&1"
tap_check "... the policy, its link and pins are as they were" \
	[ "$("$tlsrekey" status --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["policy"], j["link_id"])')" = "observe $link" -a \
	  -e $dir/observe_ops -a -e "$dir/$map" ]
workload
tap_check "... and still decides: stats --json equals bpftool's map dumps" stats_match_bpftool observe
expect "unload it" 0 "" "$tlsrekey" unload
tap_check "... no pins" no_pins
expect "help for each command" 0 "" sh -c "for c in load replace unload status stats set; do $tlsrekey help \$c | grep -q \"Usage: tlsrekey .*\$c\" || exit 1; done"
echo "1..$TAP_N"
tap_done
