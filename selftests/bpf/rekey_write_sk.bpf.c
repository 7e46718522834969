// SPDX-License-Identifier: GPL-2.0
/* Must be refused at load: a policy that writes to the socket. */
#include "tls_rekey.bpf.h"

TLS_REKEY_DECIDE(meddling_reinstall)
{
	sk->sk_mark = 1;
	return TLS_REKEY_INSTALL;
}

TLS_REKEY_POLICY(write_sk, "selftest: writes to the socket (refused at load)",
	.reinstall = (void *)meddling_reinstall,
);
