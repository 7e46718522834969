// SPDX-License-Identifier: GPL-2.0
/*
 * observe: the default decisions, and counts of everything.
 *
 *   observe_dev	events by device and direction (per-CPU)
 *   observe_netns	events by network namespace and direction (per-CPU)
 *   observe_win_us	log2 histogram of SW windows, key update to resumed (us)
 *   observe_win_bytes	log2 histogram of the bytes handled in SW in them
 *   observe_lat_us	log2 histogram of TX old key retired -> resumed (us)
 *   observe_errno	tls_dev_add failures by errno
 */
#include "tls_rekey.bpf.h"

enum observe_event {
	EV_STARTED,
	EV_CLEAN_ACKED,
	EV_OLD_KEY_RETIRED,
	EV_REINSTALL,
	EV_DEV_ADD_FAILED,
	EV_RESUMED,
	NR_EVENTS,
};

struct observe_counts {
	u64 events[NR_EVENTS];
};

struct observe_dev_key {
	u32 ifindex;
	u32 dir;
};

struct observe_netns_key {
	u64 netns_cookie;
	u32 dir;
	u32 pad;
};

#define EVENT_MAP(name, key_type)					\
	struct {							\
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);			\
		__uint(max_entries, 1024);				\
		__type(key, key_type);					\
		__type(value, struct observe_counts);			\
		PINNED;							\
	} name SEC(".maps")

EVENT_MAP(observe_dev, struct observe_dev_key);
EVENT_MAP(observe_netns, struct observe_netns_key);
COUNTERS(observe_win_us, HIST_SLOTS);
COUNTERS(observe_win_bytes, HIST_SLOTS);
COUNTERS(observe_lat_us, HIST_SLOTS);
COUNTERS(observe_errno, 256);

/* when each socket's old TX key retired, for observe_lat_us */
struct retired_key {
	u64 sk;
	u32 generation;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct retired_key);
	__type(value, u64);		/* rekey->elapsed_ns at retirement */
} observe_retired SEC(".maps");

static void record(const struct tls_rekey_ctx *rekey, enum observe_event ev)
{
	struct observe_dev_key dk = { .ifindex = rekey->ifindex,
				      .dir = rekey->dir };
	struct observe_netns_key nk = { .netns_cookie = rekey->netns_cookie,
					.dir = rekey->dir };
	struct observe_counts zero = {}, *c;

	c = map_get(&observe_dev, &dk, &zero);
	if (c && ev < NR_EVENTS)
		c->events[ev]++;
	c = map_get(&observe_netns, &nk, &zero);
	if (c && ev < NR_EVENTS)
		c->events[ev]++;
}

TLS_REKEY_NOTIFY(observe_started)
{
	record(rekey, EV_STARTED);
}

TLS_REKEY_NOTIFY(observe_clean_acked)
{
	record(rekey, EV_CLEAN_ACKED);
}

TLS_REKEY_NOTIFY(observe_old_key_retired)
{
	struct retired_key k = { .sk = (u64)sk, .generation = rekey->generation };
	u64 at = rekey->elapsed_ns;

	record(rekey, EV_OLD_KEY_RETIRED);
	bpf_map_update_elem(&observe_retired, &k, &at, BPF_ANY);
}

TLS_REKEY_DECIDE(observe_reinstall)
{
	record(rekey, EV_REINSTALL);
	return TLS_REKEY_INSTALL;
}

TLS_REKEY_DECIDE(observe_dev_add_failed)
{
	u32 err = -rekey->err;

	record(rekey, EV_DEV_ADD_FAILED);
	count(&observe_errno, err < 256 ? err : 255);
	return TLS_REKEY_STAY_SW;
}

TLS_REKEY_NOTIFY(observe_resumed)
{
	struct retired_key k = { .sk = (u64)sk, .generation = rekey->generation };
	u64 *retired_at;

	record(rekey, EV_RESUMED);
	count(&observe_win_us, log2_slot(rekey->elapsed_ns / 1000));
	count(&observe_win_bytes, log2_slot(rekey->sw_bytes));
	retired_at = bpf_map_lookup_elem(&observe_retired, &k);
	if (!retired_at)
		return;
	count(&observe_lat_us,
	      log2_slot((rekey->elapsed_ns - *retired_at) / 1000));
	bpf_map_delete_elem(&observe_retired, &k);
}

TLS_REKEY_POLICY(observe,
	.started	 = (void *)observe_started,
	.clean_acked	 = (void *)observe_clean_acked,
	.old_key_retired = (void *)observe_old_key_retired,
	.reinstall	 = (void *)observe_reinstall,
	.dev_add_failed	 = (void *)observe_dev_add_failed,
	.resumed	 = (void *)observe_resumed,
);
