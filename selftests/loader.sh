#!/bin/bash
# The loader end to end, in the guest: load, status, stats, set, replace and
# unload for every built-in policy; its JSON against the maps read with
# bpftool; its Prometheus output through promtool and against its JSON, with
# the namespaces and devices named; every error a user can meet, with its
# message and exit code (as JSON with -j), and no pins left behind by a
# failure; options a command does not take refused; `make install` into a
# DESTDIR and the installed loader, units, manual and completion.
# Usage: loader.sh BUILD_SELFTESTS_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/tap.sh"
. "$here/lib/topo.sh"
out=${1:?usage: loader.sh BUILD_SELFTESTS_DIR}
build=$(cd "$out/.." && pwd)
tlsrekey=$build/user/tlsrekey
bpftool=$build/tools/bpftool/bpftool
dir=/sys/fs/bpf/tls_rekey
# every built-in: a policy per bpf/NAME.bpf.c
policies=$(cd "$build/bpf" && ls -- *.bpf.o | sed 's/\.bpf\.o$//')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; rm -rf $dir; topo_down 210' EXIT

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
        return {k: norm(x) for k, x in v.items() if k not in ("pad", "labels")}
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

# ---- tls as a module (as distributions build it): tlsrekey finds struct
# tls_rekey_ops in tls.ko's BTF and loads the module when it is not loaded
if [ -f /sys/module/tls/refcnt ]; then
	# netdevsim.ko uses tls.ko's symbols: it goes first (no port is up
	# between suites) and comes back after
	[ -e /sys/module/netdevsim ] && [ -z "$(ls /sys/bus/netdevsim/devices)" ] &&
		rmmod netdevsim
	for i in $(seq 50); do rmmod tls 2>/dev/null && break; sleep 0.2; done
	tap_check "tls.ko unloaded (no socket or policy holds it)" [ ! -e /sys/module/tls ]
	expect "status loads tls.ko and finds struct tls_rekey_ops in its BTF" 0 \
		"kernel support: yes" "$tlsrekey" status
	tap_check "... tls.ko is loaded again, with its BTF" \
		[ -f /sys/module/tls/refcnt -a -e /sys/kernel/btf/tls -a -e /proc/net/tls_stat ]
	modprobe netdevsim
else
	tap_skip "tlsrekey loads tls.ko" "TLS is built into this kernel"
fi

# what the kernel has: registered policies, this netns's default
registered() { [ "$(tr '\n' ' ' </sys/kernel/tls_rekey/policies)" = "$*${*:+ }" ]; }
netns_default() { [ "$(cat /proc/sys/net/tls/rekey_policy)" = "$1" ]; }

# ---- every policy through its whole life
for p in $policies; do
	expect "$p: load" 0 "" "$tlsrekey" load $p
	# the workload's namespaces, made after it, start with this default
	expect "$p: default $p" 0 "-> $p" "$tlsrekey" default $p
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
	expect "$p: load while it is pinned" 5 "is pinned already" "$tlsrekey" load $p
	expect "$p: unload" 0 "" "$tlsrekey" unload
	tap_check "$p: unload leaves no pins" no_pins
done

# ---- replace, atomically, with tunables; the old policy's maps go
expect "load observe" 0 "" "$tlsrekey" load observe
tap_check "/sys/kernel/tls_rekey/policies: observe registered, chosen by none" \
	eval 'registered observe && netns_default ""'
expect "status: registered, and this netns's built-in decisions" 0 \
	"this netns:     the built-in decisions" "$tlsrekey" status
expect "default observe" 0 "(tlsrekey's): built-in -> observe" "$tlsrekey" default observe
"$tlsrekey" -j status >"$tmp/status.json"
tap_check "... net.tls.rekey_policy says observe, so does status -j" \
	eval 'netns_default observe && [ "$(json_field "$tmp/status.json" "j[\"netns_default\"], *j[\"registered\"]")" = "observe observe" ]'
"$tlsrekey" -j list >"$tmp/list.json"
tap_check "list -j: observe is this netns's default, the built-in decisions follow" \
	[ "$(json_field "$tmp/list.json" '[(p["policy"], "init" in p["default_in"]) for p in j]')" = \
	  "[('observe', True), ('', False)]" ]
expect "list (text)" 0 "(built-in)" "$tlsrekey" list
expect "default: a name not registered" 5 "no policy 'ratelimit' is registered" "$tlsrekey" default ratelimit
expect "default: a name too long" 1 "at most 15 characters" "$tlsrekey" default a_name_too_long_for_it
link=$("$tlsrekey" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["link_id"])')
expect "replace observe with backoff --set max_attempts=2" 0 "" \
	"$tlsrekey" replace backoff --set max_attempts=2
tap_check "the kernel has backoff in observe's place: this netns's default now" \
	eval 'registered backoff && netns_default backoff'
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
expect "unload by a name that is not pinned" 5 "no policy observe is pinned" "$tlsrekey" unload observe
expect "unload after replace, by its name" 0 "" "$tlsrekey" unload backoff
tap_check "no pins after unload" no_pins
tap_check "none registered; this netns is back on the built-in decisions" \
	eval 'registered && netns_default ""'

# ---- several policies pinned side by side, each registered
expect "load observe" 0 "" "$tlsrekey" load observe
expect "... and ratelimit next to it" 0 "" "$tlsrekey" load ratelimit --set per_sec=7
tap_check "both registered, each with its own pins" \
	eval 'registered observe ratelimit && [ -e $dir/observe_ops -a -e $dir/observe_dev -a -e $dir/ratelimit_ops -a -e $dir/ratelimit_conf ]'
expect "status without --policy: which one?" 5 "several policies are pinned in $dir (" "$tlsrekey" status
expect "--policy ratelimit set per_sec=9" 0 "per_sec 7 -> 9" "$tlsrekey" --policy ratelimit set per_sec=9
"$tlsrekey" -P ratelimit -j status >"$tmp/status.json"
tap_check "-P ratelimit -j status: its tunable, its maps only" \
	[ "$(json_field "$tmp/status.json" 'j["policy"], j["tunables"]["per_sec"], " ".join(sorted(j["maps"]))')" = \
	  "ratelimit 9 $(cd $dir && ls | grep '^ratelimit_' | grep -v '_ops$' | sort | tr '\n' ' ' | sed 's/ $//')" ]
expect "unload observe" 0 "unloaded observe" "$tlsrekey" unload observe
tap_check "... ratelimit stays pinned and registered" \
	eval 'registered ratelimit && [ -e $dir/ratelimit_ops -a ! -e $dir/observe_dev ]'
expect "unload, the only one left" 0 "unloaded ratelimit" "$tlsrekey" unload
tap_check "... no pins" no_pins

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

# ---- Prometheus and the labels: live namespaces and devices named
# metrics FILE: the samples of a Prometheus text exposition as
# {(name, frozenset(labels)): value}, in python
prom_vs_json() {
	python3 - "$tmp/metrics" "$tmp/stats.json" "$1" <<'PY'
import json, re, sys
samples = {}
for line in open(sys.argv[1]):
    if line.startswith("#") or not line.strip():
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line.strip())
    labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
    samples[(m.group(1), labels)] = float(m.group(3))
stats = json.load(open(sys.argv[2]))
policy = stats["policy"]
bad = []
def want(name, labels, value):
    got = samples.get((name, frozenset(labels.items())))
    if got != value:
        bad.append("%s%s: %s, JSON %s" % (name, labels, got, value))
units = {"_ns": (10 ** 9, 9), "_us": (10 ** 6, 6), "_ms": (10 ** 3, 3)}
def in_seconds(n, unit):		# exact decimal, as tlsrekey prints it
    if not unit:
        return str(n)
    per, digits = unit
    return "%d.%0*d" % (n // per, digits, n % per)
for map_name, shown in stats["maps"].items():
    entries = shown if isinstance(shown, list) else [{"labels": {}, "value": shown}]
    for e in entries:
        labels = dict(e["labels"], policy=policy)
        for field, v in e["value"].items():
            unit = units.get(field[-3:])
            base = "tlsrekey_%s_%s" % (map_name, field[:-3] + "_seconds" if unit else field)
            if isinstance(v, list):		# histogram: cumulative buckets
                total = 0
                for i, n in enumerate(v):
                    total += n
                    le = "+Inf" if i == len(v) - 1 else in_seconds(2 ** (i + 1) - 1, unit)
                    want(base + "_bucket", dict(labels, le=le), total)
                want(base + "_count", labels, total)
            else:
                want(base + "_total", labels, float(in_seconds(v, unit)))
if sys.argv[3] == "dev":		# a's device by name, in a's netns
    import os
    dev = os.environ["DEV_A"]
    key = ("tlsrekey_observe_dev_started_total",
           frozenset({"policy": "observe", "netns": "tls-a", "device": dev,
                      "direction": "tx"}.items()))
    if not samples.get(key):
        bad.append("no started count for tls-a/%s tx" % dev)
for b in bad[:10]:
    print(b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# /proc/net/tls_stat of NS as Prometheus shows it: TlsTxRekeyOk
tls_stat_in_prom() {
	local want
	want=$(ip netns exec "$1" awk '$1 == "TlsTxRekeyOk" { print $2 }' /proc/net/tls_stat)
	[ -n "$want" ] && [ "$want" -gt 0 ] &&
		grep -qx "tlsrekey_tls_rekey_ok_total{netns=\"$1\",direction=\"tx\"} $want" "$tmp/metrics"
}

if topo_up 210 && topo_tls_offload; then
	export DEV_A
	expect "load observe with namespaces $NS_A, $NS_B alive" 0 "" "$tlsrekey" load observe
	expect "default observe --netns $NS_A" 0 "netns $NS_A: built-in -> observe" \
		"$tlsrekey" default observe --netns $NS_A
	expect "default observe -n $NS_B" 0 "" "$tlsrekey" default observe -n $NS_B
	tap_check "... theirs, not tlsrekey's" eval \
		'[ "$(ip netns exec $NS_B cat /proc/sys/net/tls/rekey_policy)" = observe ] && netns_default ""'
	tap_check "a transfer with key updates between them (tls_bulk, 8 MiB)" \
		"$out/tls_bulk" -b 8 -e 2 -o /dev/null
	"$tlsrekey" -j stats >"$tmp/stats.json"
	"$tlsrekey" stats --format prometheus >"$tmp/metrics"
	tap_check "stats --format prometheus passes promtool check metrics" \
		sh -c "promtool check metrics <$tmp/metrics"
	tap_check "... every counter and histogram equals stats -j's, labels and all" prom_vs_json dev
	tap_check "... /proc/net/tls_stat of $NS_A, as tlsrekey_tls_rekey_ok_total" tls_stat_in_prom $NS_A
	# (entries come in hash order: b's device has its own, in its netns)
	tap_check "stats -j labels a's device by name in its netns" \
		[ "$(json_field "$tmp/stats.json" "any(e['labels'].get('netns') == '$NS_A' and e['labels'].get('device') == '$DEV_A' for e in j['maps']['observe_dev'])")" = True ]
	expect "stats --netns $NS_A (text) names it" 0 "netns $NS_A" "$tlsrekey" stats --netns $NS_A
	expect "unload" 0 "" "$tlsrekey" unload
else
	tap_fail "namespaces with netdevsim TLS offload for the labels" "topo_up failed"
fi
topo_down 210
"$tlsrekey" stats --format prometheus >"$tmp/metrics" 2>"$tmp/err"
tap_check "with no policy: Prometheus output still passes promtool" \
	sh -c "promtool check metrics <$tmp/metrics && ! grep -q '^tlsrekey_policy_info' $tmp/metrics"

# ---- the command line
expect "--version" 0 "using libbpf v" "$tlsrekey" --version
tap_check "-j --version is JSON" \
	sh -c "$tlsrekey -j --version | python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if j[\"version\"] and j[\"libbpf_version\"] else 1)'"
expect "an option the command does not take" 1 "load takes no --netns" "$tlsrekey" load observe --netns x
expect "--set for status" 1 "status takes no --set" "$tlsrekey" status --set base_ms=1
expect "--count without --watch" 1 "--count needs --watch" "$tlsrekey" stats --count 2
expect "an unknown --format" 1 "expected text, json or prometheus" "$tlsrekey" stats --format xml
expect "-j and --format text" 1 "disagree" "$tlsrekey" -j stats --format text
expect "an extra argument" 1 "unexpected argument 'y' for unload" "$tlsrekey" unload x y
expect "an option without its value" 1 "needs a value" "$tlsrekey" stats --watch
"$tlsrekey" -j unload >"$tmp/err.json" 2>"$tmp/err"
rc=$?
tap_check "-j: an error is a JSON object on stdout, with the exit code" \
	[ $rc = 5 -a ! -s "$tmp/err" -a "$(json_field "$tmp/err.json" '"no policy is active" in j["error"], j["exit_code"]')" = "True 5" ]
tap_check "-p: status as indented JSON" \
	sh -c "[ \$($tlsrekey -p status | wc -l) -gt 2 ] && $tlsrekey -p status | python3 -c 'import json,sys; json.load(sys.stdin)'"
tap_check "short options: -s for --set, -w/-c for --watch/--count" \
	sh -c "$tlsrekey load backoff -s base_ms=7 >/dev/null && $tlsrekey -j status | grep -q '\"base_ms\":7' && [ \$($tlsrekey stats -w 1 -c 2 | grep -c '^policy: backoff') = 2 ] && $tlsrekey unload >/dev/null"
tap_check "... no pins" no_pins

# ---- the manual: renders without warnings, names the commands --help names
man_commands() {
	sed -n '/^\.SH COMMANDS/,/^\.SH /{/^\.TP/{n;s/^\.B[IR]* "\{0,1\}\([a-z]*\).*/\1/p}}' \
		"$here/../user/tlsrekey.8" | sort | tr '\n' ' '
}
help_commands() {
	"$tlsrekey" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]*\).*/\1/p' | sort | tr '\n' ' '
}
tap_check "tlsrekey(8) renders with man -l, without warnings" \
	sh -c "LC_ALL=C.UTF-8 man --warnings -E UTF-8 -l $here/../user/tlsrekey.8 2>&1 >/dev/null | grep -q . && exit 1; exit 0"
tap_check "tlsrekey --help and tlsrekey(8) list the same commands ($(help_commands))" \
	[ -n "$(help_commands)" -a "$(man_commands)" = "$(help_commands)" ]

# ---- make install into a DESTDIR, as an operator would, and the installed
# loader's whole life; the units pass systemd-analyze verify
root=$tmp/root
prefix=$root/usr/local
tap_check "make install DESTDIR=$root" \
	sh -c "make -s -C $here/.. install DESTDIR=$root >$tmp/install.log 2>&1"
tap_check "... installs the loader, its manual, completion, units, policies, header" \
	sh -c "cd $prefix && ls sbin/tlsrekey share/man/man8/tlsrekey.8 \
		share/bash-completion/completions/tlsrekey lib/systemd/system/tlsrekey.service \
		lib/systemd/system/tlsrekey-metrics.service lib/systemd/system/tlsrekey-metrics.timer \
		include/tlsrekey/tls_rekey.bpf.h $(printf ' lib/tlsrekey/%s.bpf.o' $policies) >/dev/null"
expect "installed: --version" 0 "tlsrekey " "$prefix/sbin/tlsrekey" --version
expect "installed: load backoff --set max_attempts=4" 0 "loaded backoff" \
	"$prefix/sbin/tlsrekey" load backoff --set max_attempts=4
"$prefix/sbin/tlsrekey" default backoff >/dev/null
workload
expect "installed: stats (text)" 0 "backoff_stats" "$prefix/sbin/tlsrekey" stats
tap_check "installed: stats -j, with the tunable set" \
	sh -c "$prefix/sbin/tlsrekey -j stats | python3 -c 'import json,sys; j=json.load(sys.stdin); sys.exit(0 if j[\"policy\"] == \"backoff\" else 1)' &&
	       $prefix/sbin/tlsrekey -j status | grep -q '\"max_attempts\":4'"
"$prefix/sbin/tlsrekey" stats --format prometheus --output "$tmp/installed.prom"
tap_check "installed: stats --format prometheus --output FILE passes promtool" \
	sh -c "promtool check metrics <$tmp/installed.prom && grep -q '^tlsrekey_backoff_stats_retries_total' $tmp/installed.prom && [ ! -e $tmp/installed.prom.tmp ]"
expect "installed: replace with observe" 0 "replaced backoff with observe" \
	"$prefix/sbin/tlsrekey" replace observe
expect "installed: unload" 0 "unloaded observe" "$prefix/sbin/tlsrekey" unload
tap_check "... no pins" no_pins
"$bpftool" struct_ops register "$prefix/lib/tlsrekey/ratelimit.bpf.o" $dir >/dev/null 2>&1
tap_check "installed policy object registered with bpftool, seen by tlsrekey" \
	sh -c "$prefix/sbin/tlsrekey -j status | grep -q '\"policy\":\"ratelimit\"' && $prefix/sbin/tlsrekey unload >/dev/null"
tap_check "installed units pass systemd-analyze verify" \
	unshare -m sh -c "mkdir -p $root/usr/lib/systemd/system &&
		mount --bind /lib/systemd/system $root/usr/lib/systemd/system &&
		systemd-analyze verify --root=$root --man=no $prefix/lib/systemd/system/*"
tap_check "... and would fail on a unit whose loader is missing" \
	unshare -m sh -c "mkdir -p $root/usr/lib/systemd/system &&
		mount --bind /lib/systemd/system $root/usr/lib/systemd/system &&
		sed 's|^ExecStart=.*|ExecStart=/nonexistent load x|' $prefix/lib/systemd/system/tlsrekey.service >$tmp/bad.service &&
		mount --bind $tmp/bad.service $prefix/lib/systemd/system/tlsrekey.service &&
		! systemd-analyze verify --root=$root --man=no $prefix/lib/systemd/system/tlsrekey.service 2>/dev/null"
tap_check "installed man page renders" \
	sh -c "LC_ALL=C.UTF-8 man -l $prefix/share/man/man8/tlsrekey.8 | grep -q 'manage the key update policy'"
complete_words() {	# complete_words WORD...: what the installed completion offers
	PATH=$prefix/sbin:$PATH bash -c '. "$1"; shift; COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _tlsrekey; echo "${COMPREPLY[*]}"' \
		_ "$prefix/share/bash-completion/completions/tlsrekey" "$@"
}
tap_check "installed bash completion: commands, policies, tunables, formats" \
	[ "$(complete_words tlsrekey st)" = "status stats" -a \
	  "$(complete_words tlsrekey load ra)" = "ratelimit" -a \
	  "$(complete_words tlsrekey load backoff --set max)" = "max_attempts=" -a \
	  "$(complete_words tlsrekey stats --format pro)" = "prometheus" ]
# a third party's policy (the README's example), built against the
# installed header, gets the same help from its own BTF as ours
# (the kernel's types as the README says: tls.ko's BTF, which brings
# vmlinux's, when TLS is a module)
btf=/sys/kernel/btf/tls
[ -e $btf ] || btf=/sys/kernel/btf/vmlinux
"$bpftool" btf dump file $btf format c >"$tmp/vmlinux.h"
tap_check "docs/examples/settle.bpf.c builds against the installed tls_rekey.bpf.h" \
	clang-19 -g -O2 -Wall -Werror -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -I"$tmp" \
		-I"$prefix/include/tlsrekey" -I"$build/tools/include" \
		-c "$here/../docs/examples/settle.bpf.c" -o "$tmp/settle.bpf.o"
expect "installed: load the third party's policy" 0 "loaded settle" \
	"$prefix/sbin/tlsrekey" load "$tmp/settle.bpf.o" --set settle_ms=30
expect "... default by the object's path" 0 "-> settle" "$prefix/sbin/tlsrekey" default "$tmp/settle.bpf.o"
expect "... status: what it decides, its tunable's meaning, default and limit" 0 \
	"time in SW after a key update before the device gets the key (default 50, max 10000)" \
	"$prefix/sbin/tlsrekey" status
tap_check "... status names it with its own line" \
	sh -c "$prefix/sbin/tlsrekey status | grep -q '^policy: *settle: the device gets a new key after settle_ms in SW'"
expect "... set over its own limit" 1 "settle_ms=20000: expected an integer from 0 to 10000" \
	"$prefix/sbin/tlsrekey" set settle_ms=20000
workload
tap_check "... it decided: its counters moved" \
	sh -c "$prefix/sbin/tlsrekey -j stats | python3 -c 'import json,sys; s=json.load(sys.stdin)[\"maps\"][\"settle_stats\"]; sys.exit(0 if s[\"installed\"] + s[\"waited\"] > 0 else 1)'"
expect "... unload" 0 "unloaded settle" "$prefix/sbin/tlsrekey" unload
tap_check "make uninstall DESTDIR=$root leaves no file" \
	sh -c "make -s -C $here/.. uninstall DESTDIR=$root >/dev/null 2>&1 && [ -z \"\$(find $root -type f)\" ]"

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
expect "help for an unknown command" 1 "no command 'frobnicate'" "$tlsrekey" help frobnicate
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
	unshare -m sh -c "mount --bind $tmp/old.btf /sys/kernel/btf/vmlinux &&
		{ [ ! -e /sys/kernel/btf/tls ] || mount --bind $tmp/old.btf /sys/kernel/btf/tls; } &&
		exec $tlsrekey load observe"
tap_check "... leaves no pins" no_pins
# ---- unprivileged users against an active policy: refused, nothing changes
nobody="setpriv --reuid 65534 --regid 65534 --clear-groups"
expect "load observe (the policy unprivileged users try to change)" 0 "" "$tlsrekey" load observe
"$tlsrekey" default observe >/dev/null
expect "unprivileged default" 3 "run as root" $nobody "$tlsrekey" default ""
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
