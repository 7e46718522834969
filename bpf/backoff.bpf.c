// SPDX-License-Identifier: GPL-2.0
/*
 * backoff: a key the device refused is tried again after base_ms, then
 * twice as long each time up to cap_ms, for max_attempts tls_dev_add calls
 * in all; then the socket stays in SW until its next key update.
 *
 * A device that refused breaker_failures keys in a row (any sockets) trips
 * a circuit breaker: for breaker_ms no socket gives it a key, they wait in
 * SW and are asked again after that. A key the device accepts resets the
 * count.
 */
#include "tls_rekey.bpf.h"

struct backoff_conf {
	u32 base_ms;		/* first retry delay; default 100 */
	u32 cap_ms;		/* longest retry delay; default 10000 */
	u32 max_attempts;	/* tls_dev_add calls per key; default 5 */
	u32 breaker_failures;	/* failures in a row that trip it; default 3 */
	u32 breaker_ms;		/* how long it keeps a device in SW; default 30000 */
};
TUNABLES(backoff_conf, struct backoff_conf);

struct backoff_stats {
	u64 retries;		/* retries scheduled */
	u64 gave_up;		/* keys left in SW after max_attempts */
	u64 trips;		/* times a breaker opened */
	u64 held;		/* reinstalls held back by an open breaker */
	u64 resumed;		/* keys the device took */
};
STATS(backoff_stats, struct backoff_stats);

struct breaker {
	u32 failures;		/* refused keys in a row */
	u64 open_until_ns;	/* bpf_ktime_get_ns() until which it is open */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);		/* ifindex */
	__type(value, struct breaker);
	PINNED;
} backoff_breakers SEC(".maps");

TLS_REKEY_DECIDE(backoff_reinstall)
{
	struct backoff_stats *st = stat(&backoff_stats);
	u32 ifindex = rekey->ifindex;
	struct breaker *b = bpf_map_lookup_elem(&backoff_breakers, &ifindex);
	u64 now = bpf_ktime_get_ns(), wait_ms;

	if (!b || now >= b->open_until_ns)
		return TLS_REKEY_INSTALL;
	if (st)
		st->held++;
	wait_ms = (b->open_until_ns - now + NSEC_PER_MSEC - 1) / NSEC_PER_MSEC;
	return wait_ms < TLS_REKEY_MAX_DELAY_MS ? wait_ms : TLS_REKEY_MAX_DELAY_MS;
}

TLS_REKEY_DECIDE(backoff_dev_add_failed)
{
	struct backoff_stats *st = stat(&backoff_stats);
	struct backoff_conf *c = tunables(&backoff_conf);
	struct breaker fresh = {}, *b;
	u32 ifindex = rekey->ifindex;
	u32 delay_ms, shift;

	if (!c)
		return TLS_REKEY_STAY_SW;

	b = map_get(&backoff_breakers, &ifindex, &fresh);
	if (b && __sync_add_and_fetch(&b->failures, 1) >=
		 or_default(c->breaker_failures, 3)) {
		b->failures = 0;
		b->open_until_ns = bpf_ktime_get_ns() +
				   or_default(c->breaker_ms, 30000) * NSEC_PER_MSEC;
		if (st)
			st->trips++;
	}

	if (rekey->attempt >= or_default(c->max_attempts, 5)) {
		if (st)
			st->gave_up++;
		return TLS_REKEY_STAY_SW;
	}
	shift = rekey->attempt - 1 < 16 ? rekey->attempt - 1 : 16;
	delay_ms = or_default(c->base_ms, 100) << shift;
	if (delay_ms > or_default(c->cap_ms, 10000))
		delay_ms = or_default(c->cap_ms, 10000);
	if (delay_ms > TLS_REKEY_MAX_DELAY_MS)
		delay_ms = TLS_REKEY_MAX_DELAY_MS;
	if (st)
		st->retries++;
	return delay_ms;
}

TLS_REKEY_NOTIFY(backoff_resumed)
{
	struct backoff_stats *st = stat(&backoff_stats);
	u32 ifindex = rekey->ifindex;
	struct breaker *b = bpf_map_lookup_elem(&backoff_breakers, &ifindex);

	if (b)
		b->failures = 0;
	if (st)
		st->resumed++;
}

TLS_REKEY_POLICY(backoff,
	.reinstall	= (void *)backoff_reinstall,
	.dev_add_failed	= (void *)backoff_dev_add_failed,
	.resumed	= (void *)backoff_resumed,
);
