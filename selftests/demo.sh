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
# Usage: demo.sh BUILD_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/topo.sh"
build=${1:?usage: demo.sh BUILD_DIR}
tlsrekey=$build/user/tlsrekey
out=${VM_OUT:-/tmp/demo}
trace=/sys/kernel/tracing
knob=/sys/kernel/debug/netdevsim/netdevsim200/ports/0/tls/fail_add
mkdir -p "$out"

say() { printf '\n== %s\n' "$*"; }
at() { printf '[%5.1f s] %s\n' "$(awk -v t0="$t0" '{ print $1 - t0 }' /proc/uptime)" "$*"; }

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
at "tlsrekey load observe"
"$tlsrekey" load observe || exit 1
"$build/selftests/tls_bulk" -b 128 -e 4 -i 250 -o "$out/samples.csv" 2>"$out/bulk.log" &
bulk=$!
sleep 5
at "a's device refuses the next 2 key installs (netdevsim fail_add=2)"
echo 2 >$knob
sleep 7
at "tlsrekey replace backoff --set base_ms=100 (one link update, traffic running)"
"$tlsrekey" replace backoff --set base_ms=100
sleep 4
at "a's device refuses the next 2 key installs again; backoff retries them"
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
# the picture: throughput, SW windows of each sender shaded, key updates marked
with open(out + "/windows.gp", "w") as w:
    for sock, a, b in windows:
        color = "#ff9999" if sock % 2 else "#9999ff"
        w.write('set object rect from %f, graph 0 to %f, graph 1 fc rgb "%s" fs solid 0.35 noborder behind\n'
                % (a, max(b, a + 0.02), color))
    for t, sock, d, g, ms, b, res in rows:
        if d == "tx":
            w.write('set arrow from %f, graph 0 to %f, graph 0.06 nohead lc rgb "black"\n' % (t, t))
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
set terminal png size 1200,500 noenhanced
set output "$out/demo.png"
set title "TLS 1.3 bulk both ways over the simulated offload NIC; KeyUpdate every 4 MiB per direction; observe, then backoff"
set xlabel "time (s)"
set ylabel "MiB/s"
set key top right
set datafile separator ","
load "$out/windows.gp"
set label "shaded: a sender in SW after a KeyUpdate (socket 1 red, 2 blue); ticks: key updates" at graph 0.01, graph 0.96
plot "$out/samples.csv" using 1:2 every ::1 with lines lw 2 title "a -> b", \
     "$out/samples.csv" using 1:5 every ::1 with lines lw 2 title "b -> a"
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
