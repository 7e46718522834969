/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tlsrekey: what its parts share. main.c parses the command line and
 * dispatches, policy.c finds, loads, replaces and unloads policies,
 * tunables.c reads what a policy's BTF says about itself and sets its
 * tunables, output.c prints status and stats (text, JSON, Prometheus),
 * sockets.c lists sockets and policies in use (sock_diag).
 */
#ifndef TLSREKEY_H
#define TLSREKEY_H

#include <limits.h>
#include <stdbool.h>
#include <time.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "json_writer.h"

#define DEFAULT_DIR	"/sys/fs/bpf/tls_rekey"
#define MAX_SETS	32
#define MAX_MAPS	64
#define MAX_TUNABLES	32

/* Exit codes, documented in `tlsrekey --help` and tlsrekey(8). */
enum {
	EXIT_OK,
	EXIT_USAGE,	/* bad command line, tunable or value */
	EXIT_NO_KERNEL,	/* the kernel has no struct tls_rekey_ops */
	EXIT_PERM,	/* not allowed: needs root (CAP_BPF, CAP_NET_ADMIN) */
	EXIT_BPFFS,	/* no BPF filesystem, or the pin directory is unusable */
	EXIT_STATE,	/* a policy is active (load) / none is (replace, ...) */
	EXIT_LOAD,	/* the policy did not load or attach (verifier, ...) */
};

/* global options (main.c) */
extern const char *pin_dir;
extern const char *policy_sel;	/* --policy: which pinned policy, or NULL */
extern bool verbose;
extern json_writer_t *json_wtr;	/* set with -j/--json: output is JSON */

/* Print "tlsrekey: MESSAGE" (an {"error": MESSAGE} object with -j) and
 * return @code.
 */
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* the exit code and message for a failed step that set @err */
int fail_errno(int err, const char *what);

/* ------------------------------------------------------------ policy.c */

/* The policy pinned in pin_dir. */
struct active {
	char name[64];		/* policy name: struct_ops map name less _ops */
	char link_pin[PATH_MAX];
	time_t since;		/* when its link was pinned */
	__u32 link_id, ops_map_id, btf_id;
	int nr_maps;
	struct {
		char pin[PATH_MAX];
		const char *name;	/* the pin's name: the map's, untruncated */
		struct bpf_map_info info;
	} maps[MAX_MAPS];
};

/* A built-in policy: bpf/NAME.bpf.c, embedded through its skeleton. */
struct builtin {
	const char *name;
	const void *(*elf)(size_t *size);
};

extern const struct builtin builtins[];
extern const int nr_builtins;

void log_to_buffer(void);
int check_kernel(void);
int check_bpffs(bool create);
/* 1 if a policy is pinned in pin_dir (policy_sel, if set, or the only
 * one), 0 if none, an exit code on error (also: several, none chosen)
 */
int find_active(struct active *a);
/* the active policy or, after saying why not, an exit code */
int need_active(struct active *a);
/* the pin of the active policy's map POLICY_@suffix, or NULL */
const char *active_map(const struct active *a, const char *suffix,
		       struct bpf_map_info *info);
/* the BTF of built-in @b (bpf_object's, free with bpf_object__close) */
struct bpf_object *builtin_open(const struct builtin *b);

int cmd_load(const char *policy, char **sets, int nr_sets);
int cmd_replace(const char *policy, char **sets, int nr_sets);
int cmd_unload(const char *name);
int policy_name_of(const char *arg, char *name, size_t size);

/* ------------------------------------------------------------ tunables.c */

/* A tunable of a policy: a field of its POLICY_conf struct, with what the
 * policy's BTF says of it (bpf/tls_rekey.bpf.h, TUNABLES()).
 */
struct tunable {
	const char *name;
	__u32 offset, size;		/* in the conf struct, bytes */
	bool documented;		/* the policy gave the three below */
	unsigned long long dflt, max;	/* max: the field's range otherwise */
	const char *meaning;
};

/* The tunables of conf struct @type_id in @btf (at most MAX_TUNABLES);
 * their strings point into @btf.
 */
int tunables_of(const struct btf *btf, __u32 type_id, struct tunable *t);
/* the line a policy gives on itself (TLS_REKEY_POLICY()), or NULL */
const char *policy_about(const struct btf *btf);
unsigned long long read_uint(const void *p, __u32 size);

/* KEY=VALUE checked against a conf struct */
struct setting {
	const struct tunable *t;
	unsigned long long value;
};

int parse_settings(const char *policy, const struct tunable *t, int nr,
		   char **args, int n, struct setting *out);
void apply_settings(void *conf, const struct setting *s, int n);
/* the conf struct of the active policy, read from its pinned map */
void *read_conf(const struct active *a, struct btf **btf, __u32 *type_id,
		const char **pin);
/* the tunables of each built-in, for the help of load, replace and set */
void print_builtin_tunables(void);

int cmd_set(char **sets, int nr_sets);

/* ------------------------------------------------------------ output.c */

/* A network namespace on this host: how to enter it and what to call it
 * (its name in /run/netns as ip-netns gives it; "init" for PID 1's; else
 * "ino:INODE", the inode of its nsfs file).
 */
struct netns {
	char label[80];
	char path[PATH_MAX];	/* /run/netns/NAME or /proc/PID/ns/net */
	ino_t ino;
	__u64 cookie;
};

/* every namespace, after netns_scan() */
extern struct netns *netns;
extern int nr_netns;
void netns_scan(void);
/* /run/netns/@name's, or NULL */
struct netns *netns_by_name(const char *name);
/* run in the namespace of @path; back with leave_netns() */
bool enter_netns(const char *path);
void leave_netns(void);

enum format { FORMAT_TEXT, FORMAT_JSON, FORMAT_PROMETHEUS };

int cmd_status(void);
int cmd_default(const char *name, const char *netns);
/* net.tls.rekey_policy of the netns tlsrekey is in ("" = built-in) */
bool netns_default(char *name, size_t size);
/* @netns: a name in /run/netns, or NULL for tlsrekey's own; @output: a
 * file each round replaces whole, or NULL for stdout
 */
int cmd_stats(enum format format, const char *netns, const char *output,
	      int watch, int count);

/* ------------------------------------------------------------ sockets.c */

int cmd_sockets(const char *netns);
int cmd_list(void);

#endif /* TLSREKEY_H */
