// SPDX-License-Identifier: GPL-2.0
/*
 * settle: the device gets a new key only once the socket has spent
 * settle_ms in SW since the key update, so that a burst of key updates
 * costs the NIC one install. A third party's policy, built against the
 * installed tls_rekey.bpf.h (README.md, "Writing a policy").
 */
#include "tls_rekey.bpf.h"

#define SETTLE_CONF(T)							\
	T(settle_ms, 50, 10000, "time in SW after a key update before the device gets the key")
TUNABLES(settle_conf, SETTLE_CONF);

struct settle_stats {
	u64 installed;		/* the device got the key */
	u64 waited;		/* asked again later */
};
STATS(settle_stats, struct settle_stats);

TLS_REKEY_DECIDE(settle_reinstall)
{
	struct settle_conf *c = tunables(&settle_conf);
	struct settle_stats *st = stat(&settle_stats);
	u64 settle_ns = (c ? conf(c, settle_ms) : default_settle_ms) * NSEC_PER_MSEC;

	if (rekey->elapsed_ns >= settle_ns) {
		if (st)
			st->installed++;
		return TLS_REKEY_INSTALL;
	}
	if (st)
		st->waited++;
	return (settle_ns - rekey->elapsed_ns) / NSEC_PER_MSEC + 1;
}

TLS_REKEY_POLICY(settle, "the device gets a new key after settle_ms in SW",
	.reinstall = (void *)settle_reinstall,
);
