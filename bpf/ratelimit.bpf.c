// SPDX-License-Identifier: GPL-2.0
/*
 * ratelimit: at most per_sec key installs per device and second, with
 * bursts of up to burst, so that a mass key update (a fleet rotating its
 * keys at once) or peers re-keying in storms do not churn the NIC's key
 * table. TX and RX installs share the device's bucket: the kernel's own
 * budget (net.tls.rekey_device_budget) made tighter and tunable. A socket
 * over the limit stays in SW and is asked again when its turn comes (RX:
 * at its first record after that).
 *
 * The bucket is kept as the time the next install is due (GCRA): each
 * install moves it one interval later; an install may run ahead of it by
 * burst - 1 intervals at most.
 */
#include "tls_rekey.bpf.h"

#define RATELIMIT_CONF(T)						\
	T(per_sec, 100, 1000000, "key installs per device and second")	\
	T(burst, 0, 1000000, "installs at once after a quiet time (0: per_sec)")
TUNABLES(ratelimit_conf, RATELIMIT_CONF);

struct ratelimit_stats {
	u64 granted;		/* installs allowed */
	u64 deferred;		/* installs told to wait */
};
STATS(ratelimit_stats, struct ratelimit_stats);

struct ratelimit_bucket {
	struct bpf_spin_lock lock;
	u64 due_ns;		/* when the next install is due */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct rekey_device);
	__type(value, struct ratelimit_bucket);
	PINNED;
} ratelimit_buckets SEC(".maps");

TLS_REKEY_DECIDE(ratelimit_reinstall)
{
	struct ratelimit_stats *st = stat(&ratelimit_stats);
	struct ratelimit_conf *c = tunables(&ratelimit_conf);
	u64 now = bpf_ktime_get_ns(), interval, ahead, wait_ns = 0;
	struct ratelimit_bucket fresh = {}, *b;
	struct rekey_device dev = rekey_device(rekey);
	u32 per_sec, burst;

	if (!c)
		return TLS_REKEY_INSTALL;
	per_sec = conf(c, per_sec);
	burst = conf(c, burst) ?: per_sec;
	interval = 1000000000ULL / per_sec;
	ahead = (burst - 1) * interval;

	b = map_get(&ratelimit_buckets, &dev, &fresh);
	if (!b)
		return TLS_REKEY_INSTALL;

	bpf_spin_lock(&b->lock);
	if (b->due_ns < now)
		b->due_ns = now;
	if (b->due_ns - now > ahead)
		wait_ns = b->due_ns - now - ahead;
	else
		b->due_ns += interval;
	bpf_spin_unlock(&b->lock);

	if (!wait_ns) {
		if (st)
			st->granted++;
		return TLS_REKEY_INSTALL;
	}
	if (st)
		st->deferred++;
	/* at least 1 ms: 0 would mean install */
	return wait_ns / NSEC_PER_MSEC + 1;
}

TLS_REKEY_POLICY(ratelimit,
	"at most per_sec key installs per device and second",
	.reinstall	= (void *)ratelimit_reinstall,
);
