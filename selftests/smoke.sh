#!/bin/bash
# Foundation smoke test: the guest has what every later test builds on.
#  - the netdevsim pair of DESIGN.md §5 carries TCP over IPv4 and IPv6;
#  - a struct_ops program registers with the built bpftool, really runs on the
#    ACK path, and unregisters when its link pin is removed;
#  - kTLS is there (/proc/net/tls_stat);
#  - the guest keeps time with the TSC: with jiffies (4 ms steps) the
#    latencies and windows the tests and benchmarks measure mean nothing.
# Usage: smoke.sh BUILD_SELFTESTS_DIR
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/tap.sh"
. "$here/lib/topo.sh"
out=${1:?usage: smoke.sh BUILD_SELFTESTS_DIR}
bpftool=$here/../build/tools/bpftool/bpftool

# Send N bytes from ns A to ns B over TCP, optionally with a congestion control;
# prints the byte count the receiver got.
tcp_xfer() {
	local addr=$1 n=$2 cc=${3:-}
	ip netns exec $NS_B python3 - "$addr" <<'PY' &
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 7777)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); n = 0
while True:
    b = c.recv(65536)
    if not b: break
    n += len(b)
print(n)
PY
	local srv=$!
	# The server may not listen yet (python starts slowly under TCG and
	# KASAN): retry the connection instead of guessing a delay.
	ip netns exec $NS_A python3 - "$addr" "$n" "$cc" <<'PY'
import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
deadline = time.monotonic() + 30
while True:
    s = socket.socket(fam)
    if sys.argv[3]:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, sys.argv[3].encode())
    try:
        s.connect((sys.argv[1], 7777))
        break
    except ConnectionRefusedError:
        s.close()
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
s.sendall(b'x' * int(sys.argv[2])); s.close()
PY
	wait $srv
}

tap_plan 8
if topo_up; then tap_ok "netdevsim pair in two netns"; else tap_fail "netdevsim pair in two netns"; fi
tap_check "tcp over ipv4 across the netdevsim link" \
	test "$(tcp_xfer $IP4_B 1048576)" = 1048576
tap_check "tcp over ipv6 across the netdevsim link" \
	test "$(tcp_xfer $IP6_B 1048576)" = 1048576

pin=/sys/fs/bpf/smoke
mkdir -p $pin
if $bpftool struct_ops register "$out/bpf/smoke_ca.bpf.o" $pin >/dev/null &&
   grep -qw smoke_ca /proc/sys/net/ipv4/tcp_available_congestion_control; then
	tap_ok "bpftool struct_ops register (tcp_congestion_ops smoke_ca)"
else
	tap_fail "bpftool struct_ops register (tcp_congestion_ops smoke_ca)"
fi
# The program must really run: its ACK-path counter moves under traffic.
tcp_xfer $IP4_B 4194304 smoke_ca >/dev/null
calls=$($bpftool -j map dump name smoke_ca.bss 2>/dev/null |
	python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["formatted"]["value"][".bss"][0]["cong_avoid_calls"])' 2>/dev/null)
tap_check "struct_ops program runs on the ACK path (cong_avoid calls: ${calls:-none})" \
	test "${calls:-0}" -gt 0
rm -rf $pin
sleep 0.2
tap_check "struct_ops unregistered when its link pin is removed" \
	bash -c '! grep -qw smoke_ca /proc/sys/net/ipv4/tcp_available_congestion_control'
topo_down
tap_check "kTLS present (/proc/net/tls_stat)" grep -q TlsCurrTxSw /proc/net/tls_stat
clock=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)
tap_check "the guest's clocksource is the TSC (it is $clock)" test "$clock" = tsc
tap_done
