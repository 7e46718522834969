#!/bin/bash
# OpenSSL re-keys kTLS by itself: a real TLS library's key updates, every byte.
#
# OpenSSL 3.2+ drives the kernel's TLS 1.3 key update on its own: at every
# KeyUpdate it sends or reads it sets TLS_TX or TLS_RX again. This suite runs
# Debian trixie's OpenSSL (a root made by `make deps`, used with chroot) over
# the netdevsim pair: in tls-b `openssl s_server -ktls`, in tls-a
# `openssl s_client -ktls -adv` fed LINES lines of 700 characters with a
# `{keyup:req}` command in between. Each KeyUpdate of the client asks for one
# back, so both ends update their TX and their RX key about a hundred times
# (by default), while the client's data is still arriving at the server.
#
# How s_client is fed matters (see feed()): s_client 3.5 drops the rest of
# its 16 KiB buffer, and quits without a word, when it reads stdin again
# before sending what follows a command, which it does whenever the socket
# is not writable at that moment; a command split between two reads is not
# a command; and a KeyUpdate answered after s_client closed is met with a
# reset that ends the server's connection. So s_client gets one block of
# 16383 bytes (what it reads at once) at a time, a command at the end of
# every EVERY-th block, and its stdin ends once the server has everything.
#
# A run passes when the server printed exactly the lines the client was
# given, both programs exited 0, kTLS carried both directions at both ends
# (in the mode's path: SW, or the device where the mode offloads), and each
# namespace's /proc/net/tls_stat counted every key update sent, received
# and installed, and no decryption or key update error.
#
# Modes: sw (no offload), tx (TLS TX offload on both ports), rx (RX offload
# on both ports), both; each also with loss (netem, LOSS of what both ports
# send). One case per mode and loss: RUNS (lossy: LOSSY_RUNS) consecutive
# runs, all intact; "MODE:RUNS:LOSSY_RUNS" in MODES sets them per mode.
#
# Usage: openssl.sh [-r RUNS] [-l LOSSY_RUNS] [-m "MODES"] [-n LINES]
#                   [-e EVERY] [-p LOSS] [-N]
#   -N: feed s_client the way it fails (the file itself as its stdin, a
#   command after every 200 lines): shows what s_client does, not the kernel
#   defaults: 1 run, 1 lossy run, modes $OPENSSL_MODES or "sw tx rx both",
#   20000 lines (14 MB), a key update every 8 blocks (106 in all), 3% loss.
#   The root is build/trixie.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/tap.sh"
. "$here/lib/topo.sh"
root=$here/../build/trixie
runs=1 lossy_runs=1 modes=${OPENSSL_MODES:-sw tx rx both} lines=20000 every=8 loss=3% naive=0
while getopts r:l:m:n:e:p:N o; do
	case $o in
	N) naive=1 ;;
	r) runs=$OPTARG ;; l) lossy_runs=$OPTARG ;; m) modes=$OPTARG ;;
	n) lines=$OPTARG ;; e) every=$OPTARG ;; p) loss=$OPTARG ;;
	*) sed -n '2,/^here=/{/^here=/d;s/^# \{0,1\}//;p}' "$0"; exit 2 ;;
	esac
done
port=4433

# Everything OpenSSL reads and writes lives in a tmpfs over the root's /tmp
# (the root itself is read-only in the guest).
setup_root() {
	[ -x "$root/usr/bin/openssl" ] ||
		{ echo "# no OpenSSL root at $root (make deps prepares it)"; return 1; }
	mountpoint -q "$root/tmp" || mount -t tmpfs tmpfs "$root/tmp" || return 1
	mountpoint -q "$root/dev" || mount --bind /dev "$root/dev" || return 1
	mountpoint -q "$root/proc" || mount -t proc proc "$root/proc" || return 1
	ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=tls-rekey -keyout /tmp/key.pem -out /tmp/cert.pem 2>/dev/null || return 1
	# The data: LINES lines of 700 characters (the line's number, then a
	# pattern that depends on it). s_client reads its stdin in blocks of
	# 16383 bytes; a command ends every EVERY-th block (see the top).
	python3 - "$lines" "$every" "$root/tmp/input" "$root/tmp/expected" "$naive" <<'PY' || return 1
import sys
lines, every, naive = int(sys.argv[1]), int(sys.argv[2]), sys.argv[5] == "1"
abc = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
data = b"".join((b"%06d:" % i + (abc[i % 62:] + abc[:i % 62]) * 12)[:699] + b"\n"
               for i in range(1, lines + 1))
cmd, block = b"{keyup:req}", 16383
out, pos, n = [], 0, 0
while pos < len(data):
    n += 1
    take = block - len(cmd) if n % every == 0 else block
    out.append(data[pos:pos + take])
    if n % every == 0 and pos + take < len(data):
        out.append(cmd)
    pos += take
if naive:
    out = [b"{keyup:req}" + data[i:i + 700 * 200] for i in range(0, len(data), 700 * 200)]
    out[0] = out[0][len(cmd):]
open(sys.argv[3], "wb").write(b"".join(out))
open(sys.argv[4], "wb").write(data)
PY
	updates=$(grep -o '{keyup:req}' "$root/tmp/input" | wc -l)
	echo "# $(ossl version); $(wc -c <"$root/tmp/expected") bytes, $updates key updates each way per run"
}

ossl() { chroot "$root" openssl "$@"; }

# tls_stat NS: "name value" lines of NS's counters.
tls_stat() { ip netns exec "$1" cat /proc/net/tls_stat; }

# counter FILE NAME: NAME's value in a tls_stat output.
counter() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }

# delta BEFORE AFTER NAME
delta() { echo $(($(counter "$2" "$3") - $(counter "$1" "$3"))); }

# set_mode MODE: TLS offload features of both ports (sw: off where they are
# on; a kernel without the series has no TLS offload in netdevsim).
set_mode() {
	local tx=off rx=off ns dev
	case $1 in tx) tx=on ;; rx) rx=on ;; both) tx=on rx=on ;; esac
	for ns in $NS_A:"$DEV_A" $NS_B:"$DEV_B"; do
		dev=${ns#*:} ns=${ns%%:*}
		[ "$1" = sw ] && ! ip netns exec "$ns" ethtool -k "$dev" | grep -q 'tls-hw-.x-offload: on' &&
			continue
		ip netns exec "$ns" ethtool -K "$dev" rx on tls-hw-tx-offload $tx tls-hw-rx-offload $rx \
			>/dev/null || return 1
	done
}

# set_loss PCT|none: netem loss on both ports' egress.
set_loss() {
	local ns dev
	for ns in $NS_A:"$DEV_A" $NS_B:"$DEV_B"; do
		dev=${ns#*:} ns=${ns%%:*}
		tc -n "$ns" qdisc del dev "$dev" root 2>/dev/null
		[ "$1" = none ] || tc -n "$ns" qdisc add dev "$dev" root netem loss "$1" || return 1
	done
}

# check_counters NS BEFORE AFTER MODE NAME:MIN[:MAX]...: kTLS in the mode's
# path both ways, no decryption or key update error, and each NAME's change
# from MIN to MAX (default MIN). Prints what is wrong.
check_counters() {
	local ns=$1 b=$2 a=$3 mode=$4 txp=Sw rxp=Sw k v lo hi bad=
	shift 4
	case $mode in tx) txp=Device ;; rx) rxp=Device ;; both) txp=Device rxp=Device ;; esac
	for k in Tls"Tx$txp":1 Tls"Rx$rxp":1 TlsDecryptError:0 TlsRxRekeyError:0 \
		TlsTxRekeyError:0 "$@"; do
		IFS=: read -r k lo hi <<<"$k"
		v=$(delta "$b" "$a" "$k")
		[ "$v" -ge "$lo" ] && [ "$v" -le "${hi:-$lo}" ] ||
			bad+=" $k $v (want $lo${hi:+ to $hi})"
	done
	[ -z "$bad" ] || echo " $ns:$bad"
}

# feed SERVER_PID A_BEFORE B_BEFORE: s_client's stdin, the input one block of
# 16383 bytes at a time (the pipe is empty before the next: each read of
# s_client is one block), kept open until the server printed all of it (or
# is gone): at its stdin's end s_client sends close_notify and closes, and a
# KeyUpdate the server answers after that close is met with a reset, which
# ends the server's connection before it read what it has queued. Then it
# stays open (up to 10 s) until the client has read every KeyUpdate the
# server sent (TlsRxRekeyReceived in tls-a against TlsTxRekeyOk in tls-b,
# both from the counters before the run): with loss the server's last
# answers may still be in retransmission when its input is complete.
feed() {
	python3 - "$1" "$root/tmp/input" "$root/tmp/received" "$(wc -c <"$root/tmp/expected")" \
		"$NS_A" "$(counter "$2" TlsRxRekeyReceived)" \
		"$NS_B" "$(counter "$3" TlsTxRekeyOk)" <<'PY'
import fcntl, os, struct, subprocess, sys, termios, time
server, data, received, size = int(sys.argv[1]), open(sys.argv[2], "rb").read(), sys.argv[3], int(sys.argv[4])
ns_a, a_rx0, ns_b, b_tx0 = sys.argv[5], int(sys.argv[6]), sys.argv[7], int(sys.argv[8])
def counter(ns, name):
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/tls_stat"],
                         capture_output=True, text=True).stdout
    return next(int(v) for k, v in (l.split() for l in out.splitlines()) if k == name)
def waiting():
    try:
        os.kill(server, 0)
        return True
    except ProcessLookupError:
        return False
for off in range(0, len(data), 16383):
    while struct.unpack("i", fcntl.ioctl(1, termios.FIONREAD, b"\0" * 4))[0]:
        time.sleep(0.0002)
    os.write(1, data[off:off + 16383])
while waiting() and os.path.getsize(received) < size:
    time.sleep(0.05)
deadline = time.monotonic() + 10
while waiting() and time.monotonic() < deadline and \
        counter(ns_a, "TlsRxRekeyReceived") - a_rx0 < counter(ns_b, "TlsTxRekeyOk") - b_tx0:
    time.sleep(0.05)
PY
}

# client: s_client in tls-a, to the server in tls-b.
client() {
	ip netns exec $NS_A timeout 300 chroot "$root" openssl s_client -ktls -tls1_3 -adv \
		-no_ign_eof -connect $IP4_B:$port >"$root/tmp/client.out" 2>"$root/tmp/client.err"
}

# one_run MODE: one client/server run; prints why it failed, if it did.
one_run() {
	local mode=$1 srv hold crc src why= sa0 sb0 sa1 sb1 a_rx b_tx
	sa0=$(mktemp) sb0=$(mktemp) sa1=$(mktemp) sb1=$(mktemp)
	tls_stat $NS_A >"$sa0"; tls_stat $NS_B >"$sb0"
	rm -f "$root/tmp/received" "$root/tmp/hold"
	# The server's stdin stays open (and empty) for the whole run.
	mkfifo "$root/tmp/hold"
	ip netns exec $NS_B timeout 300 chroot "$root" openssl s_server -ktls -tls1_3 \
		-quiet -naccept 1 -accept $port -cert /tmp/cert.pem -key /tmp/key.pem \
		<"$root/tmp/hold" >"$root/tmp/received" 2>"$root/tmp/server.err" &
	srv=$!
	exec {hold}>"$root/tmp/hold"
	# s_server listens after it has read its key: retry until it does.
	for _ in $(seq 100); do
		ip netns exec $NS_B ss -Hltn "sport = :$port" | grep -q . && break
		sleep 0.1
	done
	if [ "$naive" = 1 ]; then
		client <"$root/tmp/input"
		crc=$?
	else
		feed "$srv" "$sa0" "$sb0" | client
		crc=${PIPESTATUS[1]}
	fi
	wait $srv
	src=$?
	exec {hold}>&-
	tls_stat $NS_A >"$sa1"; tls_stat $NS_B >"$sb1"
	[ $crc = 0 ] || why+=" client exit $crc ($(tail -n 2 "$root/tmp/client.err" | tr '\n' ' '))"
	[ $src = 0 ] || why+=" server exit $src ($(tail -n 2 "$root/tmp/server.err" | tr '\n' ' '))"
	if ! cmp -s "$root/tmp/received" "$root/tmp/expected"; then
		why+=" server got $(wc -c <"$root/tmp/received") of $(wc -c <"$root/tmp/expected") bytes;"
		why+=" ($(cmp "$root/tmp/received" "$root/tmp/expected" 2>&1 | head -n 1))"
	fi
	# The server installs every key the client sends. OpenSSL answers a
	# KeyUpdate asking for one at its next handshake step, so s_server
	# (which never writes) answers each when it reads the next one: the
	# last may stay unanswered. The client installs every key it reads but
	# one it may read after its close_notify, when it no longer cares.
	b_tx=$(delta "$sb0" "$sb1" TlsTxRekeyOk)
	a_rx=$(delta "$sa0" "$sa1" TlsRxRekeyReceived)
	why+=$(check_counters a "$sa0" "$sa1" "$mode" TlsTxRekeyOk:$updates \
		TlsRxRekeyReceived:$((b_tx - 1)):"$b_tx" TlsRxRekeyOk:$((a_rx - 1)):"$a_rx")
	why+=$(check_counters b "$sb0" "$sb1" "$mode" TlsRxRekeyReceived:$updates \
		TlsRxRekeyOk:$updates TlsTxRekeyOk:$((updates - 1)):$updates)
	if [ -n "$why" ]; then
		echo "# the client's stdout and stderr (end; $(grep -c KEYUPDATE "$root/tmp/client.err") KEYUPDATE):" >&2
		grep -v '^KEYUPDATE$' "$root/tmp/client.out" | tail -n 5 | sed 's/^/#   /' >&2
		grep -v '^KEYUPDATE$' "$root/tmp/client.err" | tail -n 5 | sed 's/^/#   /' >&2
		echo "# the server's stderr (end):" >&2
		tail -n 5 "$root/tmp/server.err" | sed 's/^/#   /' >&2
		echo "$why"
		echo "# a's counters after the run:" >&2; sed 's/^/#   /' "$sa1" | grep Rekey >&2
		echo "# b's counters after the run:" >&2; sed 's/^/#   /' "$sb1" | grep Rekey >&2
	fi
	rm -f "$sa0" "$sb0" "$sa1" "$sb1"
}

# run_case MODE LOSS N: N consecutive runs, all intact.
run_case() {
	local mode=$1 loss=$2 n=$3 name="openssl_$1${2:+_loss}" i why start=$SECONDS
	set_mode "$mode" && set_loss "${loss:-none}" || { tap_fail "$name" "setup"; return; }
	for i in $(seq "$n"); do
		why=$(one_run "$mode")
		if [ -n "$why" ]; then
			tap_fail "$name" "run $i of $n:$why"
			return
		fi
	done
	echo "# $name: $n runs intact in $((SECONDS - start)) s"
	tap_ok "$name"
}

tap_plan $(($(wc -w <<<"$modes") * 2))
if ! setup_root || ! topo_up; then
	for m in $modes; do
		tap_fail "openssl_${m%%:*}" "setup"; tap_fail "openssl_${m%%:*}_loss" "setup"
	done
	exit 1
fi
for m in $modes; do
	IFS=: read -r mode n _ <<<"$m"
	run_case "$mode" "" "${n:-$runs}"
done
for m in $modes; do
	IFS=: read -r mode _ n <<<"$m"
	run_case "$mode" "$loss" "${n:-$lossy_runs}"
done
set_loss none
topo_down
tap_done
