// SPDX-License-Identifier: GPL-2.0
/* Must be refused at load: a policy calling a kfunc meant for
 * tcp_congestion_ops (the kernel offers those to every struct_ops), on the
 * ACK path in softirq.
 */
#include "tls_rekey.bpf.h"

extern void tcp_reno_cong_avoid(struct sock *sk, u32 ack, u32 acked) __ksym;

TLS_REKEY_NOTIFY(meddling_clean_acked)
{
	tcp_reno_cong_avoid(sk, 0, 1);
}

TLS_REKEY_POLICY(tcp_ca_kfunc, "selftest: calls a tcp_congestion_ops kfunc (refused at load)",
	.clean_acked = (void *)meddling_clean_acked,
);
