// SPDX-License-Identifier: GPL-2.0
/*
 * default: the kernel's built-in decisions, written as a policy. The device
 * gets the new key at the first send after the old key retired; a key the
 * device refused is not tried again before the next key update. Loading it
 * changes nothing but who decides; the selftests prove that.
 */
#include "tls_rekey.bpf.h"

TLS_REKEY_DECIDE(default_reinstall)
{
	return TLS_REKEY_INSTALL;
}

TLS_REKEY_DECIDE(default_dev_add_failed)
{
	return TLS_REKEY_STAY_SW;
}

TLS_REKEY_POLICY(default, "the kernel's own decisions, in BPF",
	.reinstall	= (void *)default_reinstall,
	.dev_add_failed	= (void *)default_dev_add_failed,
);
