/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every key update policy uses: kernel types, the macros that declare
 * hooks, tunables, counters and the policy itself.
 *
 * A policy implements struct tls_rekey_ops (include/net/tls_rekey.h of the
 * kernel series, where each hook is documented). Its maps are pinned by
 * name, so that both
 *	bpftool struct_ops register build/bpf/POLICY.bpf.o /sys/fs/bpf/tls_rekey
 * and the tlsrekey loader leave them in /sys/fs/bpf/tls_rekey/ for
 * `bpftool map dump pinned /sys/fs/bpf/tls_rekey/MAP`.
 */
#ifndef __TLS_REKEY_BPF_H
#define __TLS_REKEY_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define NSEC_PER_MSEC		1000000ULL

/* A hook that watches: started, clean_acked, old_key_retired, resumed. */
#define TLS_REKEY_NOTIFY(name)						\
	SEC("struct_ops")						\
	void BPF_PROG(name, struct sock *sk, const struct tls_rekey_ctx *rekey)

/* A hook that decides (reinstall, dev_add_failed): returns
 * TLS_REKEY_INSTALL, TLS_REKEY_STAY_SW or a delay in ms after which the
 * kernel asks again.
 */
#define TLS_REKEY_DECIDE(name)						\
	SEC("struct_ops")						\
	s32 BPF_PROG(name, struct sock *sk, const struct tls_rekey_ctx *rekey)

/* The policy, its struct_ops map and link named NAME_ops; hooks left out
 * take the kernel's default. @about, one line on what it decides, stays in
 * the policy's BTF (a decl tag) for `tlsrekey help` and `tlsrekey status`.
 */
#define TLS_REKEY_POLICY(__name, __about, ...)				\
	char _license[] SEC("license") = "GPL";				\
	SEC(".struct_ops.link")						\
	struct tls_rekey_ops __name##_ops				\
		__attribute__((btf_decl_tag("about:" __about))) = {	\
		.name = #__name,					\
		__VA_ARGS__						\
	}

#define PINNED	__uint(pinning, LIBBPF_PIN_BY_NAME)

/* A policy's tunables: the u32 fields of struct MAP in a pinned one-entry
 * array MAP, read at every call, so that a write (tlsrekey set, bpftool map
 * update) applies at once. @list names each with T(field, default, max,
 * "meaning"); default and max are number literals. A field left at 0 takes
 * its default: read it as conf(c, field). Default, max and meaning are
 * written once, here: they stay in the policy's BTF (a decl tag per field)
 * for tlsrekey's help, its checks of `set` and its status.
 */
#define __TUNABLE_FIELD(f, dflt, max, meaning)				\
	u32 f __attribute__((btf_decl_tag("tunable:" #dflt ":" #max ":" meaning)));
#define __TUNABLE_DEFAULT(f, dflt, max, meaning)	default_##f = dflt,

#define TUNABLES(map, list)						\
	struct map { list(__TUNABLE_FIELD) };				\
	enum { list(__TUNABLE_DEFAULT) };				\
	struct {							\
		__uint(type, BPF_MAP_TYPE_ARRAY);			\
		__uint(max_entries, 1);					\
		__type(key, u32);					\
		__type(value, struct map);				\
		PINNED;							\
	} map SEC(".maps")

/* tunable @f of @c (a TUNABLES struct): its value, or its default for 0 */
#define conf(c, f)	((c)->f ? (c)->f : default_##f)

/* A device as a key of a policy's maps: an ifindex is unique only in its
 * network namespace, so the two name the device together (and tlsrekey
 * stats shows it as netns and device).
 */
struct rekey_device {
	u64 netns_cookie;
	u32 ifindex;
	u32 pad;
};

#define rekey_device(rekey)						\
	((struct rekey_device){ .netns_cookie = (rekey)->netns_cookie,	\
				.ifindex = (rekey)->ifindex })

/* the one entry of a TUNABLES or STATS map */
static __always_inline void *tunables(void *map)
{
	u32 zero = 0;

	return bpf_map_lookup_elem(map, &zero);
}

/* The entry for @key, created from @init if there is none. */
static __always_inline void *map_get(void *map, const void *key,
				     const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	return bpf_map_lookup_elem(map, key);
}

/* Counters: one per-CPU struct of u64 fields (or u64 arrays, drawn as
 * histograms), so that bpftool and `tlsrekey stats` show them by name and
 * sum the CPUs. stat(&map) is this CPU's copy.
 */
#define STATS(map, value_type)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);		\
		__uint(max_entries, 1);					\
		__type(key, u32);					\
		__type(value, value_type);				\
		PINNED;							\
	} map SEC(".maps")

#define stat(map)	tunables(map)

/* log2 histogram slot of @v: 0 for 0 and 1, 63 at most */
static __always_inline u32 log2_slot(u64 v)
{
	u32 slot = 0;

	if (v >= 1ULL << 32) { v >>= 32; slot += 32; }
	if (v >= 1ULL << 16) { v >>= 16; slot += 16; }
	if (v >= 1ULL << 8) { v >>= 8; slot += 8; }
	if (v >= 1ULL << 4) { v >>= 4; slot += 4; }
	if (v >= 1ULL << 2) { v >>= 2; slot += 2; }
	if (v >= 1ULL << 1) slot += 1;
	return slot;
}

#define HIST_SLOTS	64

/* a log2 histogram: slot[i] counts values in [2^i, 2^(i+1)) */
struct log2_hist {
	u64 slot[HIST_SLOTS];
};

static __always_inline void hist_add(struct log2_hist *h, u64 v)
{
	if (h)
		h->slot[log2_slot(v) & (HIST_SLOTS - 1)]++;
}

#endif /* __TLS_REKEY_BPF_H */
