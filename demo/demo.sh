#!/bin/bash
# The demo, in the guest: two namespaces joined by the simulated TLS NIC
# (netdevsim, TLS offload on), a TLS 1.3 bulk transfer both ways with a
# KeyUpdate every 4 MiB each way, refused key installs injected on a's
# device, the observe policy loaded and then replaced by backoff mid-run
# (with observe a refused key stays in SW until the next key update; with
# backoff it is retried 100 ms later).
# Prints a timeline of the key updates, the policy's counters, the key
# update lines of /proc/net/tls_stat, a verdict; draws the run into
# $VM_OUT/demo.png (the host's build/demo/).
# Usage: demo/demo.sh BUILD_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../selftests/lib/topo.sh"
build=${1:?usage: demo.sh BUILD_DIR}
tlsrekey=$build/user/tlsrekey
out=${VM_OUT:-/tmp/demo}
trace=/sys/kernel/tracing
knob=/sys/kernel/debug/netdevsim/netdevsim200/ports/0/tls/fail_add
mkdir -p "$out"
rm -f "$out/events.txt"

say() { printf '\n== %s\n' "$*"; }
# at [MARK] TEXT: say when; MARK also puts it on the picture's time axis
at() {
	local now mark=
	[ $# -gt 1 ] && { mark=$1; shift; }
	now=$(awk '{ print $1 }' /proc/uptime)
	printf '[%5.1f s] %s\n' "$(awk -v a="$now" -v b="$t0" 'BEGIN { print a - b }')" "$*"
	[ -n "$mark" ] && printf '%s\t%s\n' "$now" "$mark" >>"$out/events.txt"
}

topo_up 200 && topo_tls_offload || exit 1
say "netdevsim pair: $NS_A/$DEV_A ($IP4_A) <-> $NS_B/$DEV_B ($IP4_B), TLS offload on"
ip netns exec $NS_A ethtool -k "$DEV_A" | grep tls-hw

echo mono >$trace/trace_clock
echo 8192 >$trace/buffer_size_kb
for e in start retire reinstall fail; do
	echo 1 >$trace/events/tls/tls_device_rekey_$e/enable
done
echo >$trace/trace

say "the run"
t0=$(awk '{ print $1 }' /proc/uptime)
at "load observe" "tlsrekey load observe, then tlsrekey default observe in both namespaces"
"$tlsrekey" load observe || exit 1
for ns in $NS_A $NS_B; do "$tlsrekey" default observe --netns $ns >/dev/null || exit 1; done
"$build/selftests/tls_bulk" -b 128 -e 4 -i 250 -o "$out/samples.csv" 2>"$out/bulk.log" &
bulk=$!
sleep 5
at "a refuses 2 keys" "a's device refuses the next 2 key installs (netdevsim fail_add=2)"
echo 2 >$knob
sleep 7
at "replace: backoff" "tlsrekey replace backoff --set base_ms=100 (one link update, traffic running)"
"$tlsrekey" replace backoff --set base_ms=100
sleep 4
at "a refuses 2 keys" "a's device refuses the next 2 key installs again; backoff retries them"
echo 2 >$knob
wait $bulk
bulk_rc=$?
at "transfer done"
for e in start retire reinstall fail; do
	echo 0 >$trace/events/tls/tls_device_rekey_$e/enable
done
cp $trace/trace "$out/trace.txt"
for ns in $NS_A $NS_B; do
	ip netns exec $ns cat /proc/net/tls_stat >"$out/tls_stat.$ns"
done

say "key updates (from the tls:tls_device_rekey_* tracepoints)"
python3 - "$out" <<'PY'
import re, sys
out = sys.argv[1]
t0 = float(open(out + "/samples.csv").readline().split("=")[1])
ev = re.compile(r"\s(\d+\.\d+): tls_device_rekey_(\w+): sk=(\S+) (.*)")
socks, rows, windows = {}, [], []
starts = {}
for line in open(out + "/trace.txt"):
    m = ev.search(line)
    if not m:
        continue
    t, kind, sk, rest = float(m.group(1)) - t0, m.group(2), m.group(3), m.group(4)
    f = dict(kv.split("=") for kv in rest.split())
    sock = socks.setdefault(sk, len(socks) + 1)
    if kind == "retire":
        continue
    d = "tx" if f["direction"] == "1" else "rx"
    key = (sk, d)
    if kind == "start":
        if key in starts:
            rows.append((starts[key][0], sock, d, starts[key][1], None, None, "overtaken by the next key"))
        starts[key] = (t, f["generation"])
        continue
    ms = int(f["elapsed_us"]) / 1000
    if kind == "reinstall":
        res = "back in HW" + (" (attempt %s)" % f["attempt"] if f["attempt"] != "1" else "")
    else:
        res = "device refused (%s), attempt %s" % (f["ret"], f["attempt"])
    # the key update's start: elapsed_us counts from it
    st = starts.pop(key, (t - ms / 1000, f["generation"]))
    rows.append((st[0], sock, d, f["generation"], ms, int(f["sw_bytes"]), res))
    if kind == "reinstall" and d == "tx":
        windows.append((sock, st[0], t))
for key, (t, g) in starts.items():
    rows.append((t, socks[key[0]], key[1], g, None, None, "in SW at the end"))
rows.sort(key=lambda r: (r[0], r[4] if r[4] is not None else -1))
print("%8s  %4s %3s %4s %10s %10s  %s" % ("time", "sock", "dir", "key", "window", "SW bytes", "result"))
for t, sock, d, g, ms, b, res in rows:
    print("%7.2fs  %4d %3s %4s %10s %10s  %s" % (t, sock, d, g,
          "%.1f ms" % ms if ms is not None else "-",
          b if b is not None else "-", res))
# The picture's lanes: each socket and direction's mode over time, device
# (the NIC has the key), SW window (after a key update, until the device
# gets the new key), SW after a refused key. Windows shorter than MIN_W are
# drawn MIN_W wide: a 10 ms window would be an invisible hairline.
MIN_W = 0.25
colors = {"dev": "#66bb66", "sw": "#ffaa33", "refused": "#dd3333"}
lanes = sorted({(socks[sk], d) for sk in socks for d in ("tx", "rx")})
lane_y = {l: i + 1 for i, l in enumerate(lanes)}
mode, since, segs, fails = {}, {}, [], []
end = max(float(l.split(",")[0]) for l in open(out + "/samples.csv").readlines()[2:])
for line in open(out + "/trace.txt"):
    m = ev.search(line)
    if not m or m.group(2) == "retire":
        continue
    t, kind, sk = float(m.group(1)) - t0, m.group(2), m.group(3)
    f = dict(kv.split("=") for kv in m.group(4).split())
    lane = (socks[sk], "tx" if f["direction"] == "1" else "rx")
    new = {"start": "sw", "reinstall": "dev", "fail": "refused"}[kind]
    if kind == "fail":
        fails.append((t, lane))
    segs.append((lane, since.get(lane, 0.0), t, mode.get(lane, "dev")))
    mode[lane], since[lane] = new, t
for lane in lanes:
    segs.append((lane, since.get(lane, 0.0), end, mode.get(lane, "dev")))
with open(out + "/lanes.gp", "w") as w:
    w.write("set ytics (%s)\n" % ", ".join('"sock %d %s" %d' % (l[0], l[1], y)
                                          for l, y in lane_y.items()))
    w.write("set yrange [0.4:%f]\n" % (len(lanes) + 0.6))
    # the device first, the SW modes over it, those at least MIN_W wide
    for m in ("dev", "sw", "refused"):
        for lane, a, b, sm in segs:
            if sm != m or (m == "dev" and b <= a):
                continue
            if m != "dev":
                b = max(b, a + MIN_W)
            y = lane_y[lane]
            w.write('set object rect from %f, %f to %f, %f fc rgb "%s" fs solid 1.0 noborder\n'
                    % (a, y - 0.35, b, y + 0.35, colors[m]))
    for t, lane in fails:
        w.write('set arrow from %f, %f to %f, %f nohead lc rgb "black" lw 2\n'
                % (t, lane_y[lane] - 0.45, t, lane_y[lane] + 0.45))
# the run's events (policy load and replace, refusals injected) and its
# time axis, for both plots
with open(out + "/events.gp", "w") as w:
    w.write("set xrange [0:%f]\n" % end)
    try:
        events = [l.rstrip("\n").split("\t") for l in open(out + "/events.txt")]
    except FileNotFoundError:
        events = []
    for when, text in events:
        t = float(when) - t0
        w.write('set arrow from %f, graph 0 to %f, graph 1 nohead dt 2 lc rgb "#444444"\n' % (t, t))
        w.write('set label "%s" at %f, graph 0.98 rotate by 90 right offset 0.8,0 font ",9"\n'
                % (text, t))
print("\n%d key updates (TX and RX), %d SW windows ended back in HW" % (len(rows), len(windows)))
# the timeline against the kernel's counters of both namespaces
stat = {}
for ns in ("tls-a", "tls-b"):
    for line in open(out + "/tls_stat." + ns):
        k, v = line.split()
        stat[k] = stat.get(k, 0) + int(v)
back = sum(1 for r in rows if r[6].startswith("back in HW"))
refused = sum(1 for r in rows if r[6].startswith("device refused"))
want_back = stat["TlsTxRekeyDeviceReinstall"] + stat["TlsRxRekeyDeviceReinstall"]
want_refused = stat["TlsTxRekeyDeviceFail"] + stat["TlsRxRekeyDeviceFail"]
ok = back == want_back and refused == want_refused
print("timeline vs /proc/net/tls_stat: back in HW %d = %d, refused %d = %d: %s"
      % (back, want_back, refused, want_refused, "consistent" if ok else "MISMATCH"))
open(out + "/consistent", "w").write("yes\n" if ok else "no\n")
PY

say "tlsrekey status"
"$tlsrekey" status
say "tlsrekey stats --netns $NS_A"
"$tlsrekey" stats --netns $NS_A
say "/proc/net/tls_stat of $NS_B"
ip netns exec $NS_B grep -E 'Rekey|DecryptError' /proc/net/tls_stat

gnuplot <<EOF
set terminal png size 1200,700 noenhanced
set output "$out/demo.png"
set multiplot title "TLS 1.3 bulk both ways over the simulated offload NIC; KeyUpdate every 4 MiB per direction; observe, then backoff"
set lmargin 14
set rmargin 24
set datafile separator ","
set size 1, 0.52
set origin 0, 0.42
set ylabel "MiB/s"
set key outside right top
set format x ""
load "$out/events.gp"
plot "$out/samples.csv" using 1:2 every ::1 with lines lw 2 title "a -> b", \\
     "$out/samples.csv" using 1:5 every ::1 with lines lw 2 title "b -> a"
unset arrow
unset label
set size 1, 0.42
set origin 0, 0
set format x "%g"
set xlabel "time (s); who encrypts each direction: SW windows drawn at least 0.25 s wide, black bars: the device refused a key"
set ylabel "mode"
set key outside right top
load "$out/lanes.gp"
load "$out/events.gp"
plot NaN with boxes fs solid fc rgb "#66bb66" title "device", \\
     NaN with boxes fs solid fc rgb "#ffaa33" title "SW window", \\
     NaN with boxes fs solid fc rgb "#dd3333" title "SW, key refused"
unset multiplot
EOF

say "verdict"
cat "$out/bulk.log"
"$tlsrekey" unload >/dev/null
topo_down 200
if [ "$bulk_rc" = 0 ] && grep -q "every byte arrived intact" "$out/bulk.log" &&
   grep -q yes "$out/consistent" 2>/dev/null; then
	echo "VERDICT: every byte arrived intact, both ways, across every key update"
	exit 0
fi
echo "VERDICT: FAILED (see above)"
exit 1
