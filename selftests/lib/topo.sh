# shellcheck shell=bash
# The test topology of DESIGN.md §5: two network namespaces, each holding one
# netdevsim port, the ports linked to each other, IPv4 and IPv6 on both.
#
#   topo_up [ID]     create netns tls-a/tls-b, netdevsim device ID's port in
#                    a and ID+1's in b, linked; addresses 10.77.0.1/24,
#                    fd77::1/64 (a) and .2, ::2 (b); IPv6 addresses are kept
#                    while a port is down
#   topo_down [ID]   delete the devices and namespaces (idempotent)
#   topo_find        set DEV_A and DEV_B of the namespaces made earlier
#   topo_tls_offload switch TLS TX and RX offload on on both ports
#   topo_tls_profile ID NS DEV PROFILE   netdevsim's TLS driver profile
#                    (strict, trusting, rx_deferred) on device ID's port DEV
#                    in NS; each new port gets $NSIM_TLS_PROFILE if set
#   topo_lossy NS DEV [reorder]   loss on DEV's egress, reordering on its
#                    ingress
#   topo_replace_a OLD NEW   delete a's device OLD, give a a new one (device
#                    NEW) with the same addresses, linked to b's port
#
# Variables set by topo_up: NS_A NS_B DEV_A DEV_B IP4_A IP4_B IP6_A IP6_B.

NS_A=tls-a
NS_B=tls-b
IP4_A=10.77.0.1
IP4_B=10.77.0.2
IP6_A=fd77::1
IP6_B=fd77::2
NSIM_BUS=/sys/bus/netdevsim
NSIM_DEBUGFS=/sys/kernel/debug/netdevsim

# topo_port ID NS: create netdevsim device ID with one port, move the port
# into NS, print its name.
topo_port() {
	local dev
	[ -d $NSIM_BUS ] || modprobe netdevsim || return 1
	echo "$1 1" >$NSIM_BUS/new_device || return 1
	udevadm settle 2>/dev/null
	# New ports appear in the init netns.
	dev=$(ls $NSIM_BUS/devices/netdevsim"$1"/net/)
	[ -n "$dev" ] || { echo "# topo: netdevsim port of device $1 missing" >&2; return 1; }
	ip link set "$dev" netns "$2" || return 1
	if [ -n "${NSIM_TLS_PROFILE:-}" ]; then
		topo_tls_profile "$1" "$2" "$dev" "$NSIM_TLS_PROFILE" || return 1
	fi
	echo "$dev"
}

# rx_deferred also needs frames of wire size (no TSO), so that records span
# frames and a device context decrypts parts of records it cannot
# authenticate, and RPS, which puts a backlog between the ring and TCP.
topo_tls_profile() {
	local cpus
	echo "$4" >"$NSIM_DEBUGFS/netdevsim$1/ports/0/tls/profile" || return 1
	[ "$4" = rx_deferred ] || return 0
	cpus=$(printf %x $(((1 << $(nproc)) - 1)))
	ip netns exec "$2" ethtool -K "$3" tso off >/dev/null &&
	ip netns exec "$2" sh -c "for q in /sys/class/net/$3/queues/rx-*/rps_cpus; do echo $cpus >\$q || exit 1; done"
}

# topo_link: link DEV_A and DEV_B.
topo_link() {
	local fd_a fd_b idx_a idx_b rc
	exec {fd_a}</run/netns/$NS_A {fd_b}</run/netns/$NS_B
	idx_a=$(ip netns exec $NS_A cat /sys/class/net/"$DEV_A"/ifindex)
	idx_b=$(ip netns exec $NS_B cat /sys/class/net/"$DEV_B"/ifindex)
	echo "$fd_a:$idx_a $fd_b:$idx_b" >$NSIM_BUS/link_device
	rc=$?
	exec {fd_a}<&- {fd_b}<&-
	[ $rc = 0 ] || echo "# topo: link_device failed" >&2
	return $rc
}

# topo_addr NS DEV IP4 IP6: addresses on DEV, DEV up.
topo_addr() {
	ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".keep_addr_on_down=1 &&
	ip -n "$1" addr add "$3"/24 dev "$2" &&
	ip -n "$1" addr add "$4"/64 dev "$2" nodad &&
	ip -n "$1" link set "$2" up
}

topo_up() {
	local base=${1:-100}
	topo_down "$base"
	ip netns add $NS_A && ip netns add $NS_B || return 1
	DEV_A=$(topo_port "$base" $NS_A) && DEV_B=$(topo_port $((base + 1)) $NS_B) &&
	topo_link &&
	topo_addr $NS_A "$DEV_A" $IP4_A $IP6_A && topo_addr $NS_B "$DEV_B" $IP4_B $IP6_B &&
	ip -n $NS_A link set lo up && ip -n $NS_B link set lo up
}

# topo_find: set DEV_A and DEV_B from the namespaces (in a new shell).
topo_find() {
	DEV_A=$(topo_ether $NS_A)
	DEV_B=$(topo_ether $NS_B)
}

# topo_ether NS: the name of the Ethernet device in NS (lo and sit0 are not).
topo_ether() {
	ip -n "$1" -o link show | awk -F': ' '/link\/ether/ { sub(/@.*/, "", $2); print $2; exit }'
}

topo_tls_offload() {
	local ns dev
	for ns in $NS_A:"$DEV_A" $NS_B:"$DEV_B"; do
		dev=${ns#*:} ns=${ns%%:*}
		# TLS RX offload needs RX checksum offload
		ip netns exec "$ns" ethtool -K "$dev" rx on tls-hw-tx-offload on tls-hw-rx-offload on >/dev/null &&
		[ "$(ip netns exec "$ns" ethtool -k "$dev" | grep -c 'tls-hw-[rt]x-offload: on')" = 2 ] ||
			{ echo "# topo: TLS offload not on for $dev" >&2; return 1; }
	done
}

# topo_lossy NS DEV [reorder]: 5% loss on DEV's egress; with "reorder",
# also 25% of what arrives on DEV reordered.
# netem cannot delay (so reorder) on an offloading port's egress: the kernel
# orphans delayed skbs, and one that the device must encrypt is then dropped
# for having no socket. So reordering is done at the receiver's ingress,
# through an ifb, which only works when the receiver does not offload RX:
# an skb its device decrypted is dropped on the ifb's egress the same way.
topo_lossy() {
	local ifb=ifb-${2:0:10}
	tc -n "$1" qdisc add dev "$2" root netem loss 5% || return 1
	[ "${3:-}" = reorder ] || return 0
	ip -n "$1" link add "$ifb" type ifb && ip -n "$1" link set "$ifb" up &&
	tc -n "$1" qdisc add dev "$ifb" root netem delay 1ms reorder 75% 50% &&
	tc -n "$1" qdisc add dev "$2" clsact &&
	tc -n "$1" filter add dev "$2" ingress matchall action mirred egress redirect dev "$ifb"
}

topo_replace_a() {
	echo "$1" >$NSIM_BUS/del_device || return 1
	DEV_A=$(topo_port "$2" $NS_A) && topo_link && topo_addr $NS_A "$DEV_A" $IP4_A $IP6_A
}

topo_down() {
	local base=${1:-100} id
	for id in $base $((base + 1)) $((base + 2)); do
		[ -e $NSIM_BUS/devices/netdevsim$id ] && echo "$id" >$NSIM_BUS/del_device
	done
	ip netns del $NS_A 2>/dev/null
	ip netns del $NS_B 2>/dev/null
	return 0
}
