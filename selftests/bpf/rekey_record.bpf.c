// SPDX-License-Identifier: GPL-2.0
/*
 * A policy that records every call with its context, for the selftests to
 * compare with the sequence they expect, and answers what the test puts
 * in rec_answers (also garbage, to test the kernel's checks).
 */
#include "tls_rekey.bpf.h"
#include "rekey_record.h"

struct rec_log rec_log;
struct rec_answers rec_answers = {
	.reinstall = TLS_REKEY_INSTALL,
	.dev_add_failed = TLS_REKEY_STAY_SW,
};

static void rec(u32 hook, const struct tls_rekey_ctx *rekey)
{
	u32 n = rec_log.nr;
	struct rec_call *c;

	/* a run of clean_acked is one entry */
	if (hook == REC_CLEAN_ACKED && n > 0 && n <= REC_MAX_CALLS &&
	    rec_log.calls[n - 1].hook == REC_CLEAN_ACKED) {
		rec_log.calls[n - 1].repeats++;
		rec_log.calls[n - 1].old_unacked = rekey->old_unacked;
		return;
	}
	if (n >= REC_MAX_CALLS)
		return;
	c = &rec_log.calls[n];
	c->hook = hook;
	c->dir = rekey->dir;
	c->generation = rekey->generation;
	c->attempt = rekey->attempt;
	c->err = rekey->err;
	c->ifindex = rekey->ifindex;
	c->netns_cookie = rekey->netns_cookie;
	c->old_unacked = rekey->old_unacked;
	c->sw_bytes = rekey->sw_bytes;
	c->elapsed_ns = rekey->elapsed_ns;
	c->repeats = 0;
	rec_log.nr = n + 1;
}

TLS_REKEY_NOTIFY(rec_started)
{
	rec(REC_STARTED, rekey);
}

TLS_REKEY_NOTIFY(rec_clean_acked)
{
	rec(REC_CLEAN_ACKED, rekey);
}

TLS_REKEY_NOTIFY(rec_old_key_retired)
{
	rec(REC_OLD_KEY_RETIRED, rekey);
}

TLS_REKEY_DECIDE(rec_reinstall)
{
	rec(REC_REINSTALL, rekey);
	return rec_answers.reinstall;
}

TLS_REKEY_DECIDE(rec_dev_add_failed)
{
	rec(REC_DEV_ADD_FAILED, rekey);
	return rec_answers.dev_add_failed;
}

TLS_REKEY_NOTIFY(rec_resumed)
{
	rec(REC_RESUMED, rekey);
}

/* rekey_record2.bpf.c: the same under another name */
#ifndef REC_NAME
#define REC_NAME record
#endif
#define REC_POLICY(name, ...) TLS_REKEY_POLICY(name, __VA_ARGS__)

REC_POLICY(REC_NAME, "selftest: records the moment and context of every hook",
	.started	 = (void *)rec_started,
	.clean_acked	 = (void *)rec_clean_acked,
	.old_key_retired = (void *)rec_old_key_retired,
	.reinstall	 = (void *)rec_reinstall,
	.dev_add_failed	 = (void *)rec_dev_add_failed,
	.resumed	 = (void *)rec_resumed,
);
