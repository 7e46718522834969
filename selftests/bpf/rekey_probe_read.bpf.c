// SPDX-License-Identifier: GPL-2.0
/* Must be refused at load: a policy reading kernel memory by address (the
 * socket's ULP data, where its TLS context and keys are).
 */
#include "tls_rekey.bpf.h"

u64 peek;

TLS_REKEY_DECIDE(peeking_reinstall)
{
	struct inet_connection_sock *icsk = (void *)sk;
	void *ulp_data = NULL;

	bpf_probe_read_kernel(&ulp_data, sizeof(ulp_data), &icsk->icsk_ulp_data);
	bpf_probe_read_kernel(&peek, sizeof(peek), ulp_data);
	return TLS_REKEY_INSTALL;
}

TLS_REKEY_POLICY(probe_read, "selftest: reads kernel memory with bpf_probe_read_kernel (refused at load)",
	.reinstall = (void *)peeking_reinstall,
);
