// SPDX-License-Identifier: GPL-2.0
/*
 * observe: the default decisions, and counts of everything.
 *
 *   observe_dev	events by device and direction; storm: key updates
 *			that came in a key update storm (the kernel keeps
 *			the device out of it until it calms down)
 *   observe_netns	events by network namespace and direction
 *   observe_windows	log2 histograms: SW windows (key update to resumed)
 *			in us and in bytes, TX old key retired to resumed in us
 *   observe_errno	tls_dev_add failures by errno
 */
#include "tls_rekey.bpf.h"

struct observe_events {
	u64 started;
	u64 clean_acked;
	u64 old_key_retired;
	u64 reinstall;
	u64 dev_add_failed;
	u64 resumed;
	u64 storm;
};

struct observe_dev_key {
	u64 netns_cookie;	/* with ifindex: the device */
	u32 ifindex;
	u32 dir;		/* 0 RX, 1 TX */
};

struct observe_netns_key {
	u64 netns_cookie;
	u32 dir;
	u32 pad;
};

#define EVENTS(name, key_type)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_PERCPU_HASH);			\
		__uint(max_entries, 1024);				\
		__type(key, key_type);					\
		__type(value, struct observe_events);			\
		PINNED;							\
	} name SEC(".maps")

EVENTS(observe_dev, struct observe_dev_key);
EVENTS(observe_netns, struct observe_netns_key);

struct observe_windows {
	struct log2_hist window_us;
	struct log2_hist window_bytes;
	struct log2_hist retired_to_resumed_us;
};
STATS(observe_windows, struct observe_windows);

struct observe_failures {
	u64 failures;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 256);
	__type(key, u32);		/* errno */
	__type(value, struct observe_failures);
	PINNED;
} observe_errno SEC(".maps");

/* when each socket's old TX key retired, for retired_to_resumed_us */
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

static struct observe_events *events(void *map, const void *key)
{
	struct observe_events zero = {};

	return map_get(map, key, &zero);
}

/* @field's counter for the device and for the netns of @rekey */
#define record(rekey, field)						\
do {									\
	struct observe_dev_key __dk = {					\
		.netns_cookie = (rekey)->netns_cookie,			\
		.ifindex = (rekey)->ifindex,				\
		.dir = (rekey)->dir };					\
	struct observe_netns_key __nk = {				\
		.netns_cookie = (rekey)->netns_cookie,			\
		.dir = (rekey)->dir };					\
	struct observe_events *__e;					\
									\
	__e = events(&observe_dev, &__dk);				\
	if (__e)							\
		__e->field++;						\
	__e = events(&observe_netns, &__nk);				\
	if (__e)							\
		__e->field++;						\
} while (0)

TLS_REKEY_NOTIFY(observe_started)
{
	record(rekey, started);
	if (rekey->storm)
		record(rekey, storm);
}

TLS_REKEY_NOTIFY(observe_clean_acked)
{
	record(rekey, clean_acked);
}

TLS_REKEY_NOTIFY(observe_old_key_retired)
{
	struct retired_key k = { .sk = (u64)sk, .generation = rekey->generation };
	u64 at = rekey->elapsed_ns;

	record(rekey, old_key_retired);
	bpf_map_update_elem(&observe_retired, &k, &at, BPF_ANY);
}

TLS_REKEY_DECIDE(observe_reinstall)
{
	record(rekey, reinstall);
	return TLS_REKEY_INSTALL;
}

TLS_REKEY_DECIDE(observe_dev_add_failed)
{
	struct observe_failures zero = {}, *f;
	u32 err = -rekey->err;

	record(rekey, dev_add_failed);
	f = map_get(&observe_errno, &err, &zero);
	if (f)
		f->failures++;
	return TLS_REKEY_STAY_SW;
}

TLS_REKEY_NOTIFY(observe_resumed)
{
	struct retired_key k = { .sk = (u64)sk, .generation = rekey->generation };
	struct observe_windows *w = stat(&observe_windows);
	u64 *retired_at;

	record(rekey, resumed);
	if (!w)
		return;
	hist_add(&w->window_us, rekey->elapsed_ns / 1000);
	hist_add(&w->window_bytes, rekey->sw_bytes);
	retired_at = bpf_map_lookup_elem(&observe_retired, &k);
	if (!retired_at)
		return;
	hist_add(&w->retired_to_resumed_us,
		 (rekey->elapsed_ns - *retired_at) / 1000);
	bpf_map_delete_elem(&observe_retired, &k);
}

TLS_REKEY_POLICY(observe,
	"default decisions; counts and histograms of everything",
	.started	 = (void *)observe_started,
	.clean_acked	 = (void *)observe_clean_acked,
	.old_key_retired = (void *)observe_old_key_retired,
	.reinstall	 = (void *)observe_reinstall,
	.dev_add_failed	 = (void *)observe_dev_add_failed,
	.resumed	 = (void *)observe_resumed,
);
