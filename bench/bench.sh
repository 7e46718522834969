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
#   6  1, 100, 1000, 10,000 connections updating at once
#   7  device key installs and removals per key update
#   8  throughput of a socket kept in SW (the device refuses every key)
#      vs a SW socket
#   9  a KeyUpdate flood (after every record, update_requested: both
#      directions re-key each time) against offloaded sockets vs SW ones:
#      b's throughput, CPU per key update, device calls per second; an
#      unrelated socket's key install time with and without the flood
#
# Every run's line goes to $VM_OUT/raw.txt (a failed run's to failed.txt,
# with what it printed on stderr), the tracepoints of the figure
# 2/3 runs to $VM_OUT/trace.*.txt; bench_report.py prints the table,
# writes $VM_OUT/results.json and draws $VM_OUT/fig{2,5,6}.png.
#
# Usage: bench.sh BUILD_DIR [--quick] [--figs "N..."]
#   --quick: one repetition of short runs, the figures checked for sanity
#            and printed as TAP (the `bench` suite of make test)
#   --figs:  only these figures (1, 4 and 7 come from the same runs, so do 2
#            and 3), e.g. to bisect one figure across a series
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../selftests/lib/topo.sh"
build=${1:?usage: bench.sh BUILD_DIR [--quick] [--figs \"N...\"]}
shift
quick= figs="1 2 3 4 5 6 7 8 9"
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=--quick; shift ;;
	--figs) figs=$2; shift 2 ;;
	*) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
# figures measured in the same runs come together
[[ " $figs " == *\ [147]\ * ]] && figs+=" 1 4 7"
[[ " $figs " == *\ [23]\ * ]] && figs+=" 2 3"
# want N: figure N is to be measured
want() { [[ " $figs " == *" $1 "* ]]; }
bench=$build/selftests/tls_bench
tlsrekey=$build/user/tlsrekey
out=${VM_OUT:-/tmp/bench}
trace=/sys/kernel/tracing

# Repetitions: the compared runs of each pair side by side, in turn (see
# in_turn), many short pairs rather than a few long ones: the guest's speed
# drifts by 30% over tens of seconds here, and a median of 31 pairs has a
# 95% confidence interval from its 10th to its 22nd value (11: 2nd to 10th)
if [ "$quick" = --quick ]; then
	reps=1 mib=8 window_mib=4 rtts="10" sndbufs=65536 conns="1 20" lat_n=20 lat_reps=1
	mixed_conns=20 flood_reps=1 flood_secs=1 lat_flood_reps=1
else
	reps=${BENCH_REPS:-31} mib=8 window_mib=12 rtts="1 10 50" sndbufs="65536 262144"
	conns="1 100 1000 10000" lat_n=20 lat_reps=21 mixed_conns=1000
	flood_reps=21 flood_secs=2 lat_flood_reps=11
fi
pace=3 stream_sndbuf=262144

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
rm -rf /sys/fs/bpf/tls_rekey	# what an earlier run left: unpinned, unregistered
echo mono >$trace/trace_clock
echo 16384 >$trace/buffer_size_kb
start=$(date +%s)

# in_turn REP A B ...: the cases in this order in odd repetitions and in
# reverse in even ones (A B, B A, ...), so that drift over the run hits
# every case alike and paired cases run side by side
in_turn() {
	local rep=$1
	shift
	if [ $((rep % 2)) = 1 ]; then echo "$@"; else printf '%s\n' "$@" | tac; fi
}

# Figures 1 and 4, with a fixed send buffer: autotuned, a socket in SW
# (here faster than the simulated device) grows its queue to megabytes,
# its window then outlasts the next update and the run stays in SW: the
# figure would measure that race, not what a key update costs
for rep in $(want 4 && seq $reps); do
	for case in $(in_turn $rep none observe chosen pending every_mib); do
		case $case in
		none) run "fig=1 case=none rep=$rep" stream -b $mib -S $stream_sndbuf ;;
		observe)
			{ "$tlsrekey" load observe && "$tlsrekey" default observe --netns $NS_A &&
			  "$tlsrekey" default observe --netns $NS_B; } >/dev/null || failed=$((failed + 1))
			run "fig=1 case=observe rep=$rep" stream -b $mib -S $stream_sndbuf
			"$tlsrekey" unload >/dev/null ;;
		chosen)	# the socket's own choice (TLS_REKEY_POLICY), no default
			"$tlsrekey" load observe >/dev/null || failed=$((failed + 1))
			run "fig=1 case=chosen rep=$rep" stream -b $mib -S $stream_sndbuf -P observe
			"$tlsrekey" unload >/dev/null ;;
		pending) run "fig=1 case=pending rep=$rep" stream -b $mib -S $stream_sndbuf -e 256 ;;
		every_mib) run "fig=4 case=every_mib rep=$rep" stream -b $mib -S $stream_sndbuf -e 1024 ;;
		esac
	done
done

# Figures 2 and 3, from the tracepoints. The sender is paced ($pace MiB/s in
# 8 KiB sends, about half of what the device path does here; never faster,
# a late sender does not catch up), so that the bytes in flight are one
# round trip of the application's data whichever path encrypts; once
# unpaced too, where the writer runs as fast as the CPU lets
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
for rtt in $(want 2 && echo $rtts); do
	ack_delay "$rtt"
	for sndbuf in $sndbufs; do
		fig2 "rtt_ms=$rtt sndbuf=$sndbuf paced=1 pace_mibps=$pace" \
			"rtt$rtt.sndbuf$sndbuf.paced" -S $sndbuf -w 8192 -r $pace -m
	done
	fig2 "rtt_ms=$rtt sndbuf=0 paced=0" "rtt$rtt.unpaced"
done
ack_delay 0

# Figure 5: the same calls with the devices' TLS offload (a's TX, b's RX)
# on and off, in turn. The TX busy case needs its record unacked for a
# while: 5 ms ACK delay.
offload() {
	ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload "$1"
	ip netns exec $NS_B ethtool -K "$DEV_B" tls-hw-rx-offload "$1"
}
for rep in $(want 5 && seq $lat_reps); do
	for dev in $(in_turn $rep on off); do
		offload $dev
		run "fig=5 case=idle device=$dev rep=$rep" latency -i -n $lat_n
		run "fig=5 case=rx_idle device=$dev rep=$rep" latency -R -i -n $lat_n
		run "fig=5 case=rx_busy device=$dev rep=$rep" latency -R -n $lat_n
		ack_delay 5
		run "fig=5 case=busy device=$dev rep=$rep" latency -n $lat_n
		ack_delay 0
	done
done
offload on

# Figure 6: ACKs late (tls_bench sets the delay once the connections are
# up) by more than sending a record on every connection and updating its
# key take here (about 0.3 ms each), so
# that all key updates are pending at once
for n in $(want 6 && echo $conns); do
	run "fig=6" scale -n "$n" -d $((300 + n))
done
# ... and with policies mixed across the sockets: observe, default and
# the built-in decisions in turn
if want 6; then
	n=$mixed_conns
	{ "$tlsrekey" load observe && "$tlsrekey" load default; } >/dev/null ||
		failed=$((failed + 1))
	run "fig=6 case=mixed" scale -n "$n" -d $((300 + n)) -P observe,default,-
	"$tlsrekey" unload observe >/dev/null
	"$tlsrekey" unload default >/dev/null
fi

# Figure 7: three keys in each window (ACKs 10 ms late, so the window is
# open when the next two arrive)
if want 4; then
	ack_delay 10
	run "fig=7 case=three_keys" stream -b $mib -S $stream_sndbuf -e 1024 -k 3
	ack_delay 0
fi

# Figure 8: a's device refuses every key after the first, so the default
# policy keeps TX in SW until the next key, against TX offload off
fail_add=/sys/kernel/debug/netdevsim/netdevsim200/ports/0/tls/fail_add
for rep in $(want 8 && seq $reps); do
	for case in $(in_turn $rep stay_sw sw); do
		if [ $case = stay_sw ]; then
			run "fig=8 case=stay_sw rep=$rep" stream -b $mib -S $stream_sndbuf -e 256 -F 1000000
			echo 0 >$fail_add
		else
			ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload off
			run "fig=8 case=sw rep=$rep" stream -b $mib -S $stream_sndbuf -e 256
			ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload on
		fi
	done
done

# Figure 9: the flood, offloaded (every direction: a's and b's TX and RX)
# and in SW in turn, 21 pairs of 2 s runs (a pair's ratio varies by 10%
# here); then c's key installs on a's device with the flood and without it
# (-q), in turn, 11 pairs (their ratio varies little)
offload_all() {
	ip netns exec $NS_A ethtool -K "$DEV_A" tls-hw-tx-offload "$1" tls-hw-rx-offload "$1"
	ip netns exec $NS_B ethtool -K "$DEV_B" tls-hw-tx-offload "$1" tls-hw-rx-offload "$1"
}
want 9 && offload_all on
for rep in $(want 9 && seq $flood_reps); do
	for case in $(in_turn $rep device sw); do
		[ $case = sw ] && offload_all off
		run "fig=9 case=$case rep=$rep" flood -t $flood_secs -u
		[ $case = sw ] && offload_all on
	done
	for case in $( [ $rep -le $lat_flood_reps ] && in_turn $rep flood quiet); do
		run "fig=9 case=latency_$case rep=$rep" flood -t $flood_secs -L \
			$([ $case = quiet ] && echo -q)
	done
done

topo_down 200
echo "# measured in $(($(date +%s) - start)) s, $failed run(s) failed;" \
	"clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
python3 "$here/bench_report.py" "$out" $quick --figs "$figs" || failed=$((failed + 1))
[ "$failed" = 0 ]
