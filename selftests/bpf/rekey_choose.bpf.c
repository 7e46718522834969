// SPDX-License-Identifier: GPL-2.0
/*
 * A cgroup sock_ops program that chooses the key update policy "record2"
 * for the TLS sockets of its cgroup. A connection is established before the
 * application sets up TLS, so the choice is made at the first RTT sample
 * after that (bpf_setsockopt() says ENOPROTOOPT until then).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define SOL_TLS			282
#define TLS_REKEY_POLICY	6
#define ENOPROTOOPT		92

static const char policy[] = "record2";
__u32 chosen;	/* sockets it chose for */

SEC("sockops")
int choose_rekey_policy(struct bpf_sock_ops *skops)
{
	int err;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_RTT_CB_FLAG);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		err = bpf_setsockopt(skops, SOL_TLS, TLS_REKEY_POLICY,
				     (void *)policy, sizeof(policy));
		if (err == -ENOPROTOOPT)
			break;
		if (!err)
			__sync_fetch_and_add(&chosen, 1);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
					  ~BPF_SOCK_OPS_RTT_CB_FLAG);
		break;
	}
	return 1;
}

char _license[] SEC("license") = "GPL";
