#!/bin/bash
# Placeholder demo until the loader/demo issue: boot, bring up the netdevsim
# pair of the test topology and show the kTLS counters.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib/topo.sh"
topo_up || exit 1
echo "== netdevsim pair: $NS_A/$DEV_A ($IP4_A) <-> $NS_B/$DEV_B ($IP4_B)"
ip -n $NS_A -br addr show dev "$DEV_A"
ip -n $NS_B -br addr show dev "$DEV_B"
echo "== /proc/net/tls_stat"
cat /proc/net/tls_stat
topo_down
