// SPDX-License-Identifier: GPL-2.0
/* Must be refused at load: a sleepable program on the ACK path. */
#include "tls_rekey.bpf.h"

SEC("struct_ops.s")
void BPF_PROG(sleepy_clean_acked, struct sock *sk,
	      const struct tls_rekey_ctx *rekey)
{
}

TLS_REKEY_POLICY(sleepable, "selftest: a sleepable ACK-path hook (refused at load)",
	.clean_acked = (void *)sleepy_clean_acked,
);
