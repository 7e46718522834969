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

#define BACKOFF_CONF(T)							\
	T(base_ms, 100, 60000, "first retry of a refused key after this many ms") \
	T(cap_ms, 10000, 60000, "longest retry delay (ms); delays double up to it") \
	T(max_attempts, 5, 64, "tls_dev_add calls per key, then SW until the next key (the kernel stops at 64)") \
	T(breaker_failures, 3, 1000000, "refusals in a row that trip a device's breaker") \
	T(breaker_ms, 30000, 86400000, "how long a tripped device gets no new keys (ms)")
TUNABLES(backoff_conf, BACKOFF_CONF);

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
	__type(key, struct rekey_device);
	__type(value, struct breaker);
	PINNED;
} backoff_breakers SEC(".maps");

TLS_REKEY_DECIDE(backoff_reinstall)
{
	struct backoff_stats *st = stat(&backoff_stats);
	struct rekey_device dev = rekey_device(rekey);
	struct breaker *b = bpf_map_lookup_elem(&backoff_breakers, &dev);
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
	struct rekey_device dev = rekey_device(rekey);
	u32 delay_ms, shift;

	if (!c)
		return TLS_REKEY_STAY_SW;

	b = map_get(&backoff_breakers, &dev, &fresh);
	if (b && __sync_add_and_fetch(&b->failures, 1) >=
		 conf(c, breaker_failures)) {
		b->failures = 0;
		b->open_until_ns = bpf_ktime_get_ns() +
				   conf(c, breaker_ms) * NSEC_PER_MSEC;
		if (st)
			st->trips++;
	}

	if (rekey->attempt >= conf(c, max_attempts)) {
		if (st)
			st->gave_up++;
		return TLS_REKEY_STAY_SW;
	}
	shift = rekey->attempt - 1 < 16 ? rekey->attempt - 1 : 16;
	delay_ms = conf(c, base_ms) << shift;
	if (delay_ms > conf(c, cap_ms))
		delay_ms = conf(c, cap_ms);
	if (delay_ms > TLS_REKEY_MAX_DELAY_MS)
		delay_ms = TLS_REKEY_MAX_DELAY_MS;
	if (st)
		st->retries++;
	return delay_ms;
}

TLS_REKEY_NOTIFY(backoff_resumed)
{
	struct backoff_stats *st = stat(&backoff_stats);
	struct rekey_device dev = rekey_device(rekey);
	struct breaker *b = bpf_map_lookup_elem(&backoff_breakers, &dev);

	if (b)
		b->failures = 0;
	if (st)
		st->resumed++;
}

TLS_REKEY_POLICY(backoff,
	"retry refused keys with exponential backoff; per-device breaker",
	.reinstall	= (void *)backoff_reinstall,
	.dev_add_failed	= (void *)backoff_dev_add_failed,
	.resumed	= (void *)backoff_resumed,
);
