// SPDX-License-Identifier: GPL-2.0
/*
 * Smallest useful struct_ops: a TCP congestion control that defers to Reno.
 * The foundation smoke test registers it with the built bpftool, proving that
 * the guest kernel, its BTF and our libbpf/bpftool agree on struct_ops.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

/* pahole 1.24 emits no kfunc declarations into vmlinux.h: declare them. */
extern __u32 tcp_reno_ssthresh(struct sock *sk) __ksym;
extern void tcp_reno_cong_avoid(struct sock *sk, __u32 ack, __u32 acked) __ksym;
extern __u32 tcp_reno_undo_cwnd(struct sock *sk) __ksym;

/* Counts ACK-path calls so the test can see the program really ran. */
__u64 cong_avoid_calls;

SEC("struct_ops")
__u32 BPF_PROG(smoke_ssthresh, struct sock *sk)
{
	return tcp_reno_ssthresh(sk);
}

SEC("struct_ops")
void BPF_PROG(smoke_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	__sync_fetch_and_add(&cong_avoid_calls, 1);
	tcp_reno_cong_avoid(sk, ack, acked);
}

SEC("struct_ops")
__u32 BPF_PROG(smoke_undo_cwnd, struct sock *sk)
{
	return tcp_reno_undo_cwnd(sk);
}

SEC(".struct_ops.link")
struct tcp_congestion_ops smoke_ca = {
	.ssthresh	= (void *)smoke_ssthresh,
	.cong_avoid	= (void *)smoke_cong_avoid,
	.undo_cwnd	= (void *)smoke_undo_cwnd,
	.name		= "smoke_ca",
};
