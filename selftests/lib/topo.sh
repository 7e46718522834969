# shellcheck shell=bash
# The test topology of DESIGN.md §5: two network namespaces, each holding one
# netdevsim port, the ports linked to each other, IPv4 and IPv6 on both.
#
#   topo_up [ID]     create netns tls-a/tls-b (ports eni<ID>np1 in each);
#                    addresses 10.77.0.1/24, fd77::1/64 (a) and .2, ::2 (b)
#   topo_down [ID]   delete the devices and namespaces (idempotent)
#
# Variables set by topo_up: NS_A NS_B DEV_A DEV_B IP4_A IP4_B IP6_A IP6_B.

NS_A=tls-a
NS_B=tls-b
IP4_A=10.77.0.1
IP4_B=10.77.0.2
IP6_A=fd77::1
IP6_B=fd77::2
NSIM_BUS=/sys/bus/netdevsim

topo_up() {
	local base=${1:-100} id_a id_b dev fd_a fd_b idx_a idx_b
	id_a=$base
	id_b=$((base + 1))
	topo_down "$base"
	ip netns add $NS_A && ip netns add $NS_B || return 1
	for id in $id_a $id_b; do
		echo "$id 1" >$NSIM_BUS/new_device || return 1
	done
	udevadm settle 2>/dev/null
	# New ports appear in the init netns; move each into its namespace.
	DEV_A=$(ls /sys/bus/netdevsim/devices/netdevsim$id_a/net/)
	DEV_B=$(ls /sys/bus/netdevsim/devices/netdevsim$id_b/net/)
	[ -n "$DEV_A" ] && [ -n "$DEV_B" ] || { echo "# topo: netdevsim ports missing" >&2; return 1; }
	ip link set "$DEV_A" netns $NS_A && ip link set "$DEV_B" netns $NS_B || return 1

	exec {fd_a}</run/netns/$NS_A {fd_b}</run/netns/$NS_B
	idx_a=$(ip netns exec $NS_A cat /sys/class/net/"$DEV_A"/ifindex)
	idx_b=$(ip netns exec $NS_B cat /sys/class/net/"$DEV_B"/ifindex)
	echo "$fd_a:$idx_a $fd_b:$idx_b" >$NSIM_BUS/link_device
	local rc=$?
	exec {fd_a}<&- {fd_b}<&-
	[ $rc = 0 ] || { echo "# topo: link_device failed" >&2; return 1; }

	ip -n $NS_A addr add $IP4_A/24 dev "$DEV_A" &&
	ip -n $NS_B addr add $IP4_B/24 dev "$DEV_B" &&
	ip -n $NS_A addr add $IP6_A/64 dev "$DEV_A" nodad &&
	ip -n $NS_B addr add $IP6_B/64 dev "$DEV_B" nodad &&
	ip -n $NS_A link set "$DEV_A" up && ip -n $NS_B link set "$DEV_B" up &&
	ip -n $NS_A link set lo up && ip -n $NS_B link set lo up
}

topo_down() {
	local base=${1:-100} id
	for id in $base $((base + 1)); do
		[ -e $NSIM_BUS/devices/netdevsim$id ] && echo "$id" >$NSIM_BUS/del_device
	done
	ip netns del $NS_A 2>/dev/null
	ip netns del $NS_B 2>/dev/null
	return 0
}
