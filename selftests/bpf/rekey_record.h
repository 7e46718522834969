/* SPDX-License-Identifier: GPL-2.0 */
/* What rekey_record.bpf.c writes and reads, shared with tls_offload.c. */
#ifndef __REKEY_RECORD_H
#define __REKEY_RECORD_H

enum rec_hook {
	REC_STARTED,
	REC_CLEAN_ACKED,
	REC_OLD_KEY_RETIRED,
	REC_REINSTALL,
	REC_DEV_ADD_FAILED,
	REC_RESUMED,
};

struct rec_call {
	__u32 hook;		/* enum rec_hook */
	__u32 dir;
	__u32 generation;
	__u32 attempt;
	__s32 err;
	__u32 ifindex;
	__u64 netns_cookie;
	__u64 old_unacked;
	__u64 sw_bytes;
	__u64 elapsed_ns;
	__u32 repeats;		/* clean_acked calls folded into this one */
	__u32 pad;
};

#define REC_MAX_CALLS	256

/* the policy's only .bss variable */
struct rec_log {
	__u32 nr;
	__u32 pad;
	struct rec_call calls[REC_MAX_CALLS];
};

/* the policy's only .data variable: what the decisions answer */
struct rec_answers {
	__s32 reinstall;
	__s32 dev_add_failed;
};

#endif
