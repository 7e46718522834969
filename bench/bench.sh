#!/bin/bash
# The benchmarks of `make bench`, in the guest: the cost of key updates on
# offloaded sockets and of the policies, each figure a ratio against its
# reference measured in the same run (README.md, "Performance").
#
#   1  per-ACK overhead: offloaded a -> b stream with no policy, with observe
#      attached, with a key update every 256 KiB (a window open most of
#      the time)
#   2  SW window: bytes sent in SW per TX key update / bytes in flight when
#      it started, at 1, 10, 50 ms RTT (netem on b's egress: ACKs only) and
#      two send buffer sizes, the sender paced (and once unpaced)
#   3  reinstall delay: old key retired -> device key back, in time and in
#      send() calls (each send marked in the trace) made in SW meanwhile
#   4  a key update every MiB vs none
#   5  setsockopt(TLS_TX) and setsockopt(TLS_RX) latency of an offloaded vs
#      a SW socket (the same traffic between the calls for both, and
#      nothing unacked left of it), and the records sent in SW until the
#      device has the TX key again
#   6  1, 100, 1000 connections updating at once
#   7  device key installs and removals per key update
#   8  throughput of a socket kept in SW (the device refuses every key)
#      vs a SW socket
#
# Every run's line goes to $VM_OUT/raw.txt (a failed run's to failed.txt,
# with what it printed on stderr), the tracepoints of the figure
# 2/3 runs to $VM_OUT/trace.*.txt; bench_report.py prints the table and
# writes $VM_OUT/results.json.
#
# Usage: bench.sh BUILD_DIR [--quick]
#   --quick: one repetition of short runs, the figures checked for sanity
#            and printed as TAP (the `bench` suite of make test)
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../selftests/lib/topo.sh"
build=${1:?usage: bench.sh BUILD_DIR [--quick]}
quick=${2:-}
bench=$build/selftests/tls_bench
tlsrekey=$build/user/tlsrekey
out=${VM_OUT:-/tmp/bench}
trace=/sys/kernel/tracing

if [ "$quick" = --quick ]; then
	reps=1 mib=8 window_mib=4 rtts="10" sndbufs=65536 conns="1 20" lat_n=20
else
	reps=${BENCH_REPS:-7} mib=48 window_mib=12 rtts="1 10 50" sndbufs="65536 262144" conns="1 100 1000"
	lat_n=200
fi

mkdir -p "$out"
rm -f "$out"/raw.txt "$out"/failed.txt "$out"/trace.*.txt
failed=0

# run TAGS TLS_BENCH_ARGS...: one measurement, its line tagged into raw.txt
run() {
	local tags=$1 line
	shift
	if line=$("$bench" "$@" 2>"$out/stderr"); then
		echo "$tags $line" | tee -a "$out/raw.txt"
	else
		echo "$tags: tls_bench $*: $(tail -n 3 "$out/stderr" | tr '\n' ' ')" |
			tee -a "$out/failed.txt" | sed 's/^/# FAILED: /'
		failed=$((failed + 1))
	fi
}

# ack_delay MS: delay b's egress (only ACKs: b sends no data here); 0: none
ack_delay() {
	tc -n $NS_B qdisc del dev "$DEV_B" root 2>/dev/null
	[ "$1" = 0 ] || tc -n $NS_B qdisc add dev "$DEV_B" root netem delay "${1}ms" limit 100000
}

tracing() {
	local e
	for e in start retire reinstall fail; do
		echo "$1" >$trace/events/tls/tls_device_rekey_$e/enable
	done
}

topo_up 200 && topo_tls_offload || exit 1
"$tlsrekey" unload >/dev/null 2>&1
echo mono >$trace/trace_clock
echo 16384 >$trace/buffer_size_kb
start=$(date +%s)

# Figures 1 and 4; repetitions interleaved, so that drift hits all alike
for rep in $(seq $reps); do
	run "fig=1 case=none rep=$rep" stream -b $mib
	"$tlsrekey" load observe >/dev/null || failed=$((failed + 1))
	run "fig=1 case=observe rep=$rep" stream -b $mib
	"$tlsrekey" unload >/dev/null
	run "fig=1 case=pending rep=$rep" stream -b $mib -e 256
	run "fig=4 case=every_mib rep=$rep" stream -b $mib -e 1024
done

# Figures 2 and 3, from the tracepoints. The sender is paced (3 MiB/s in
# 8 KiB sends, below what either path can do here), so that the bytes in
# flight are one round trip of the application's data whichever path
# encrypts; once unpaced too, where the writer runs as fast as the CPU lets
# it: here the simulated device (which copies and encrypts every record
# in the sender's context) is slower than the SW path.
fig2() {
	local tags=$1 file=$2
	shift 2
	echo >$trace/trace
	tracing 1
	run "fig=2 $tags" stream -b $window_mib -e 1024 "$@"
	tracing 0
	cp $trace/trace "$out/trace.$file.txt"
}
for rtt in $rtts; do
	ack_delay "$rtt"
	for sndbuf in $sndbufs; do
		fig2 "rtt_ms=$rtt sndbuf=$sndbuf paced=1" "rtt$rtt.sndbuf$sndbuf.paced" \
			-S $sndbuf -w 8192 -r 3 -m
	done
	fig2 "rtt_ms=$rtt sndbuf=0 paced=0" "rtt$rtt.unpaced"
done
ack_delay 0

# Figure 5: the same calls with the devices' TLS offload (a's TX, b's RX)
# on, then off. The TX busy case needs its record unacked for a while: 5 ms
# ACK delay.
offload() {
	ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload "$1"
	ip netns exec $NS_B ethtool -K "$DEV_B" tls-hw-rx-offload "$1"
}
for dev in on off; do
	offload $dev
	run "fig=5 case=idle device=$dev" latency -i -n $lat_n
	run "fig=5 case=rx_idle device=$dev" latency -R -i -n $lat_n
	run "fig=5 case=rx_busy device=$dev" latency -R -n $lat_n
	ack_delay 5
	run "fig=5 case=busy device=$dev" latency -n $lat_n
	ack_delay 0
done
offload on

# Figure 6: ACKs late (tls_bench sets the delay once the connections are
# up) by more than sending a record on every connection takes here, so
# that all key updates are pending at once
for n in $conns; do
	run "fig=6" scale -n "$n" -d $((300 + 3 * n))
done

# Figure 7: three keys in each window (ACKs 10 ms late, so the window is
# open when the next two arrive)
ack_delay 10
run "fig=7 case=three_keys" stream -b $mib -e 1024 -k 3
ack_delay 0

# Figure 8: a's device refuses every key after the first, so the default
# policy keeps TX in SW until the next key, against TX offload off
fail_add=/sys/kernel/debug/netdevsim/netdevsim200/ports/0/tls/fail_add
for rep in $(seq $reps); do
	run "fig=8 case=stay_sw rep=$rep" stream -b $mib -e 256 -F 1000000
	echo 0 >$fail_add
	ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload off
	run "fig=8 case=sw rep=$rep" stream -b $mib -e 256
	ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload on
done

topo_down 200
echo "# measured in $(($(date +%s) - start)) s, $failed run(s) failed;" \
	"clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
python3 "$here/bench_report.py" "$out" $quick || failed=$((failed + 1))
[ "$failed" = 0 ]
