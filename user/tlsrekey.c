// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey: manage the key update policy of offloaded kTLS sockets.
 *
 * A policy is a BPF struct_ops (struct tls_rekey_ops) that takes the
 * decisions of TLS 1.3 key updates on sockets whose records the NIC
 * encrypts or decrypts. This tool loads one (a built-in from bpf/, or any
 * .bpf.o), attaches it through a struct_ops link and pins the link and the
 * policy's maps in a bpffs directory, so that the policy outlives the tool;
 * it replaces, tunes, watches and removes it. `tlsrekey help` is the manual.
 *
 * What it relies on (bpf/README.md): the policy's struct_ops map is named
 * POLICY_ops, its tunables are the struct in its one-entry POLICY_conf
 * array, its counters are per-CPU maps whose values are structs of u64
 * fields (struct log2_hist fields are histograms). The policy's maps are
 * found again as the maps pinned as POLICY_... next to its link.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "default.skel.h"
#include "backoff.skel.h"
#include "ratelimit.skel.h"
#include "observe.skel.h"

#define DEFAULT_DIR	"/sys/fs/bpf/tls_rekey"
#define MAX_SETS	32
#define MAX_MAPS	64
#define LOG_TAIL	30

/* Exit codes, documented in `tlsrekey help` and tlsrekey(8). */
enum {
	EXIT_OK,
	EXIT_USAGE,	/* bad command line, tunable or value */
	EXIT_NO_KERNEL,	/* the kernel has no struct tls_rekey_ops */
	EXIT_PERM,	/* not allowed: needs root (CAP_BPF, CAP_NET_ADMIN) */
	EXIT_BPFFS,	/* no BPF filesystem, or the pin directory is unusable */
	EXIT_STATE,	/* a policy is active (load) / none is (replace, ...) */
	EXIT_LOAD,	/* the policy did not load or attach (verifier, ...) */
};

/* ------------------------------------------------------------ built-ins */

struct tunable_doc {
	const char *name;
	unsigned long long dflt, max;	/* 0 always means the default */
	const char *meaning;
};

struct builtin {
	const char *name;
	const void *(*elf)(size_t *size);
	const char *about;
	const struct tunable_doc *tunables;
};

static const struct tunable_doc backoff_tunables[] = {
	{ "base_ms", 100, 60000, "first retry of a refused key after this many ms" },
	{ "cap_ms", 10000, 60000, "longest retry delay (ms); delays double up to it" },
	{ "max_attempts", 5, 64, "tls_dev_add calls per key, then SW until the next key (the kernel stops at 64)" },
	{ "breaker_failures", 3, 1000000, "refusals in a row that trip a device's breaker" },
	{ "breaker_ms", 30000, 86400000, "how long a tripped device gets no new keys (ms)" },
	{ NULL }
};

static const struct tunable_doc ratelimit_tunables[] = {
	{ "per_sec", 100, 1000000, "key installs per device and second" },
	{ "burst", 0, 1000000, "installs at once after a quiet time (0: per_sec)" },
	{ NULL }
};

static const struct builtin builtins[] = {
	{ "default", default_bpf__elf_bytes,
	  "the kernel's own decisions, in BPF", NULL },
	{ "backoff", backoff_bpf__elf_bytes,
	  "retry refused keys with exponential backoff; per-device breaker",
	  backoff_tunables },
	{ "ratelimit", ratelimit_bpf__elf_bytes,
	  "at most per_sec key installs per device and second", ratelimit_tunables },
	{ "observe", observe_bpf__elf_bytes,
	  "default decisions; counts and histograms of everything", NULL },
};

static const struct builtin *builtin_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

static const struct tunable_doc *tunable_doc(const char *policy,
					     const char *name)
{
	const struct builtin *b = builtin_find(policy);
	const struct tunable_doc *d;

	for (d = b ? b->tunables : NULL; d && d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

/* ------------------------------------------------------------ output */

static const char *pin_dir = DEFAULT_DIR;
static bool verbose;

/* libbpf's messages are kept; a failed load prints their tail */
static char log_buf[1 << 16];
static size_t log_len;

/* set when libbpf passed on a verifier log: the kernel refused a program */
static bool verifier_refused;

static int libbpf_log(enum libbpf_print_level level, const char *fmt,
		      va_list ap)
{
	size_t keep = sizeof(log_buf) / 4, len;
	char *msg = NULL;
	int n;

	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	n = vasprintf(&msg, fmt, ap);
	if (n < 0)
		return n;
	if (strstr(msg, "BEGIN PROG LOAD LOG"))
		verifier_refused = true;
	if (verbose) {
		fputs(msg, stderr);
		free(msg);
		return n;
	}
	/* the newest part of the log: the verifier's error is at its end */
	len = n;
	if (len > keep) {
		memmove(msg, msg + len - keep, keep);
		len = keep;
	}
	if (log_len + len >= sizeof(log_buf)) {
		memmove(log_buf, log_buf + log_len - keep, keep);
		log_len = keep;
	}
	memcpy(log_buf + log_len, msg, len);
	log_len += len;
	free(msg);
	return n;
}

static void print_log_tail(void)
{
	size_t start = log_len;
	int lines = 0;

	log_buf[log_len] = 0;
	while (start > 0 && lines <= LOG_TAIL)
		if (log_buf[--start] == '\n')
			lines++;
	if (log_len)
		fprintf(stderr, "tlsrekey: last lines of the libbpf/verifier log:\n%s",
			log_buf + start + (start > 0));
}

static int fail(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tlsrekey: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* the exit code and message for a failed bpf() step */
static int fail_errno(int err, const char *what)
{
	err = err < 0 ? -err : err;
	if (err == EPERM || err == EACCES)
		return fail(EXIT_PERM, "%s: %s; run as root (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)",
			    what, strerror(err));
	return fail(EXIT_LOAD, "%s: %s", what, strerror(err));
}

/* ------------------------------------------------------------ checks */

static int check_kernel(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	int id;

	if (!vmlinux)
		return fail(EXIT_NO_KERNEL, "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): %s",
			    strerror(errno));
	id = btf__find_by_name_kind(vmlinux, "tls_rekey_ops", BTF_KIND_STRUCT);
	btf__free(vmlinux);
	if (id < 0)
		return fail(EXIT_NO_KERNEL, "this kernel has no TLS key update policies (no BTF type tls_rekey_ops); boot a kernel with the kernel/patches series");
	return 0;
}

/* the bpffs the pin directory lives on, and the directory */
static int check_bpffs(bool create)
{
	char parent[PATH_MAX], *slash;
	struct statfs fs;

	snprintf(parent, sizeof(parent), "%s", pin_dir);
	slash = strrchr(parent, '/');
	if (slash && slash != parent)
		*slash = 0;
	if (statfs(parent, &fs) || fs.f_type != BPF_FS_MAGIC)
		return fail(EXIT_BPFFS, "%s is not on a BPF filesystem; mount one with: mount -t bpf bpf %s",
			    pin_dir, parent);
	if (create && mkdir(pin_dir, 0700) && errno != EEXIST)
		return errno == EPERM || errno == EACCES ?
		       fail_errno(errno, pin_dir) :
		       fail(EXIT_BPFFS, "cannot create %s: %s", pin_dir,
			    strerror(errno));
	return 0;
}

/* ------------------------------------------------------------ active policy */

struct active {
	char name[64];		/* policy name: struct_ops map name less _ops */
	char link_pin[PATH_MAX];
	time_t since;
	__u32 link_id, ops_map_id, btf_id;
	int nr_maps;
	struct {
		char pin[PATH_MAX];
		const char *name;	/* the pin's name: the map's, untruncated */
		struct bpf_map_info info;
	} maps[MAX_MAPS];
};

/* Is @fd a BPF link (else a map or a program)? The info call answers for
 * any kind, so ask /proc/self/fdinfo, which names the link type.
 */
static bool fd_is_link(int fd)
{
	char path[64], buf[512];
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY);
	if (f < 0)
		return false;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, "link_type:") != NULL;
}

static bool pin_is_link(int fd, struct bpf_link_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return fd_is_link(fd) && !bpf_link_get_info_by_fd(fd, info, &len);
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, len);
	return bpf_map_get_info_by_fd(fd, info, &len);
}

/* Find the policy pinned in pin_dir: its link, and the maps of its BTF.
 * Returns 1 if there is one, 0 if not, an exit code on error.
 */
static int find_active(struct active *a)
{
	struct bpf_link_info link;
	struct bpf_map_info info;
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	int fd, mfd;
	DIR *d;

	memset(a, 0, sizeof(*a));
	d = opendir(pin_dir);
	if (!d)
		return errno == ENOENT ? 0 :
		       fail_errno(errno, pin_dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			if (errno == EPERM || errno == EACCES) {
				closedir(d);
				return fail_errno(errno, path);
			}
			continue;
		}
		if (pin_is_link(fd, &link) &&
		    link.type == BPF_LINK_TYPE_STRUCT_OPS && !a->link_id) {
			mfd = bpf_map_get_fd_by_id(link.struct_ops.map_id);
			if (mfd >= 0 && !map_info(mfd, &info)) {
				a->link_id = link.id;
				a->ops_map_id = info.id;
				a->btf_id = info.btf_id;
				/* the pin is named after the map, untruncated */
				snprintf(a->name, sizeof(a->name), "%.*s",
					 (int)sizeof(a->name) - 1, de->d_name);
				if (strlen(a->name) > 4 &&
				    !strcmp(a->name + strlen(a->name) - 4, "_ops"))
					a->name[strlen(a->name) - 4] = 0;
				snprintf(a->link_pin, sizeof(a->link_pin), "%s", path);
				if (!stat(path, &st))
					a->since = st.st_ctime;
			}
			if (mfd >= 0)
				close(mfd);
		}
		close(fd);
	}
	closedir(d);
	if (!a->link_id)
		return 0;

	/* the policy's maps: pinned here as POLICY_... (bpf/README.md); a
	 * map libbpf re-used from an earlier pin belongs to it as well
	 */
	d = opendir(pin_dir);
	while (d && (de = readdir(d)) && a->nr_maps < MAX_MAPS) {
		if (strncmp(de->d_name, a->name, strlen(a->name)) ||
		    de->d_name[strlen(a->name)] != '_')
			continue;
		snprintf(path, sizeof(path), "%s/%s", pin_dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (!fd_is_link(fd) && !map_info(fd, &info) &&
		    info.type != BPF_MAP_TYPE_STRUCT_OPS) {
			snprintf(a->maps[a->nr_maps].pin, PATH_MAX, "%s", path);
			a->maps[a->nr_maps].name = strrchr(a->maps[a->nr_maps].pin, '/') + 1;
			a->maps[a->nr_maps++].info = info;
		}
		close(fd);
	}
	if (d)
		closedir(d);
	return 1;
}

/* The active policy, for the commands that act on it: 0, or an exit code
 * after saying why not.
 */
static int need_active(struct active *a)
{
	int err = check_bpffs(false);

	if (err)
		return err;
	err = find_active(a);
	if (err == 1)
		return 0;
	return err ?: fail(EXIT_STATE, "no policy is active in %s", pin_dir);
}

/* the pin of the active policy's map NAME, or NULL */
static const char *active_map(const struct active *a, const char *suffix,
			      struct bpf_map_info *info)
{
	char name[BPF_OBJ_NAME_LEN + 64];
	int i;

	snprintf(name, sizeof(name), "%s_%s", a->name, suffix);
	for (i = 0; i < a->nr_maps; i++)
		if (!strcmp(a->maps[i].name, name)) {
			if (info)
				*info = a->maps[i].info;
			return a->maps[i].pin;
		}
	return NULL;
}

/* ------------------------------------------------------------ tunables */

/* KEY=VALUE checked against the conf struct in @btf (type @type_id) */
struct setting {
	const char *key;	/* KEY=VALUE; the key is key_len long */
	int key_len;
	unsigned long long value;
	__u32 offset, size;
};

static const struct btf_member *conf_field(const struct btf *btf, __u32 type_id,
					   const char *name, __u32 *size)
{
	const struct btf_type *t = btf__type_by_id(btf, type_id);
	const struct btf_member *m;
	int i;

	if (!t || !btf_is_struct(t))
		return NULL;
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		if (strcmp(btf__name_by_offset(btf, m->name_off), name))
			continue;
		*size = btf__resolve_size(btf, m->type);
		return m;
	}
	return NULL;
}

static void list_tunables(const char *policy, const struct btf *btf,
			  __u32 type_id)
{
	const struct btf_type *t = btf ? btf__type_by_id(btf, type_id) : NULL;
	const struct btf_member *m;
	int i;

	if (!t || !btf_is_struct(t) || !btf_vlen(t)) {
		fprintf(stderr, "tlsrekey: policy %s has no tunables\n", policy);
		return;
	}
	fprintf(stderr, "tlsrekey: tunables of %s:", policy);
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++)
		fprintf(stderr, " %s", btf__name_by_offset(btf, m->name_off));
	fputc('\n', stderr);
}

static int parse_settings(const char *policy, const struct btf *btf,
			  __u32 type_id, char **args, int n,
			  struct setting *out)
{
	const struct tunable_doc *doc;
	const struct btf_member *m;
	unsigned long long max;
	char *eq, *end;
	__u32 size;
	int i;

	for (i = 0; i < n; i++) {
		eq = strchr(args[i], '=');
		if (!eq || eq == args[i])
			return fail(EXIT_USAGE, "'%s': expected KEY=VALUE", args[i]);
		*eq = 0;
		out[i].key = args[i];
		out[i].key_len = eq - args[i];
		m = btf ? conf_field(btf, type_id, args[i], &size) : NULL;
		if (!m) {
			list_tunables(policy, btf, type_id);
			return fail(EXIT_USAGE, "unknown tunable '%s' for policy %s",
				    args[i], policy);
		}
		if (size != 1 && size != 2 && size != 4 && size != 8)
			return fail(EXIT_USAGE, "tunable %s is not an integer", args[i]);
		max = size == 8 ? ULLONG_MAX : (1ULL << (size * 8)) - 1;
		doc = tunable_doc(policy, args[i]);
		if (doc && doc->max < max)
			max = doc->max;
		errno = 0;
		out[i].value = strtoull(eq + 1, &end, 10);
		if (!isdigit((unsigned char)eq[1]) || *end || errno ||
		    out[i].value > max)
			return fail(EXIT_USAGE, "%s=%s: expected an integer from 0 to %llu%s",
				    args[i], eq + 1, max,
				    doc ? " (0: the default)" : "");
		out[i].offset = btf_member_bit_offset(btf__type_by_id(btf, type_id),
						      m - btf_members(btf__type_by_id(btf, type_id))) / 8;
		out[i].size = size;
		*eq = '=';
	}
	return 0;
}

static void apply_settings(void *conf, const struct setting *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		memcpy((char *)conf + s[i].offset, &s[i].value, s[i].size);
}

static unsigned long long read_uint(const void *p, __s64 size)
{
	unsigned long long v = 0;

	if (size > 0 && size <= 8)	/* wider members read as 0 */
		memcpy(&v, p, size);	/* little-endian, as the BPF target */
	return v;
}

/* ------------------------------------------------------------ load */

struct loaded {
	struct bpf_object *obj;
	struct bpf_map *ops, *conf;
	char name[64];
};

static int open_policy(const char *arg, struct loaded *l)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = pin_dir);
	const struct builtin *b = builtin_find(arg);
	char conf_name[96];
	struct bpf_map *map;
	const void *elf;
	size_t size;

	memset(l, 0, sizeof(*l));
	if (b) {
		elf = b->elf(&size);
		opts.object_name = b->name;
		l->obj = bpf_object__open_mem(elf, size, &opts);
	} else if (strchr(arg, '/') || strstr(arg, ".bpf.o")) {
		l->obj = bpf_object__open_file(arg, &opts);
	} else {
		fail(EXIT_USAGE, "unknown policy '%s'; built-in: default, backoff, ratelimit, observe (or a path to a .bpf.o)",
		     arg);
		return EXIT_USAGE;
	}
	if (!l->obj) {
		print_log_tail();
		return fail(EXIT_USAGE, "cannot open policy %s: %s", arg,
			    strerror(errno));
	}
	bpf_object__for_each_map(map, l->obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS && !l->ops)
			l->ops = map;
	if (!l->ops || strcmp(btf__name_by_offset(bpf_object__btf(l->obj),
			btf__type_by_id(bpf_object__btf(l->obj),
					bpf_map__btf_value_type_id(l->ops))->name_off),
			"tls_rekey_ops")) {
		bpf_object__close(l->obj);
		l->obj = NULL;
		return fail(EXIT_USAGE, "%s has no struct tls_rekey_ops (in a .struct_ops.link section)",
			    arg);
	}
	snprintf(l->name, sizeof(l->name), "%s", bpf_map__name(l->ops));
	if (strlen(l->name) > 4 && !strcmp(l->name + strlen(l->name) - 4, "_ops"))
		l->name[strlen(l->name) - 4] = 0;
	snprintf(conf_name, sizeof(conf_name), "%s_conf", l->name);
	l->conf = bpf_object__find_map_by_name(l->obj, conf_name);
	return 0;
}

static __u32 conf_type(struct bpf_map *conf)
{
	return conf ? bpf_map__btf_value_type_id(conf) : 0;
}

/* maps @l pinned that an active policy did not already have */
static void unpin_new_maps(struct loaded *l, const struct active *keep)
{
	struct bpf_map_info info;
	struct bpf_map *map;
	int i, reused;

	if (!l->obj)
		return;
	bpf_object__for_each_map(map, l->obj) {
		if (!bpf_map__is_pinned(map) || bpf_map__fd(map) < 0 ||
		    map_info(bpf_map__fd(map), &info))
			continue;
		for (i = 0, reused = 0; keep && i < keep->nr_maps; i++)
			reused |= keep->maps[i].info.id == info.id;
		if (!reused)
			bpf_map__unpin(map, NULL);
	}
}

/* Open POLICY, check the settings against it, load it and set them. On
 * error l->obj is NULL or left for the caller to clean up.
 */
static int load_object(const char *policy, struct loaded *l, char **sets,
		       int nr_sets, struct setting *s)
{
	void *conf;
	__u32 zero = 0;
	int err;

	err = open_policy(policy, l);
	if (err)
		return err;
	err = parse_settings(l->name, bpf_object__btf(l->obj), conf_type(l->conf),
			     sets, nr_sets, s);
	if (err)
		return err;
	if (bpf_object__load(l->obj)) {
		err = -errno;
		print_log_tail();
		/* the verifier says EACCES too: its log tells them apart */
		if (verifier_refused)
			return fail(EXIT_LOAD, "the kernel refused the policy's programs (verifier log above)");
		return fail_errno(err, "loading the policy failed");
	}
	if (!nr_sets)
		return 0;
	conf = calloc(1, bpf_map__value_size(l->conf));
	if (!conf)
		return fail(EXIT_LOAD, "out of memory");
	bpf_map__lookup_elem(l->conf, &zero, sizeof(zero), conf,
			     bpf_map__value_size(l->conf), 0);
	apply_settings(conf, s, nr_sets);
	err = bpf_map__update_elem(l->conf, &zero, sizeof(zero), conf,
				   bpf_map__value_size(l->conf), 0);
	free(conf);
	return err ? fail_errno(err, "setting the tunables") : 0;
}

static int cmd_load(char *policy, char **sets, int nr_sets)
{
	struct setting s[MAX_SETS];
	char pin[PATH_MAX];
	struct bpf_link *link;
	struct active a;
	struct loaded l;
	int err;

	err = check_kernel() ?: check_bpffs(true);
	if (err)
		return err;
	err = find_active(&a);
	if (err > 1)
		return err;
	if (err == 1)
		return fail(EXIT_STATE, "policy %s is active (link %u, pinned at %s); use 'tlsrekey replace %s'",
			    a.name, a.link_id, a.link_pin, policy);
	err = load_object(policy, &l, sets, nr_sets, s);
	if (err)
		goto out;
	link = bpf_map__attach_struct_ops(l.ops);
	if (!link) {
		err = -errno;
		err = err == -EBUSY ?
		      fail(EXIT_STATE, "another policy was attached meanwhile (not pinned in %s)", pin_dir) :
		      fail_errno(err, "attaching the policy");
		goto out;
	}
	snprintf(pin, sizeof(pin), "%s/%s_ops", pin_dir, l.name);
	if (bpf_link__pin(link, pin)) {
		err = fail_errno(errno, "pinning the link");
		bpf_link__destroy(link);
		goto out;
	}
	printf("loaded %s: link pinned at %s, maps in %s\n", l.name, pin, pin_dir);
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	bpf_object__close(l.obj);
	return 0;
out:
	unpin_new_maps(&l, NULL);
	bpf_object__close(l.obj);
	rmdir(pin_dir);		/* only if empty */
	return err;
}

static void unpin_maps_of(const struct active *a, const struct loaded *except)
{
	struct bpf_map_info info;
	struct bpf_map *map;
	int i, kept;

	for (i = 0; i < a->nr_maps; i++) {
		kept = 0;
		if (except)
			bpf_object__for_each_map(map, except->obj)
				kept |= bpf_map__fd(map) >= 0 &&
					!map_info(bpf_map__fd(map), &info) &&
					info.id == a->maps[i].info.id;
		if (!kept)
			unlink(a->maps[i].pin);
	}
}

static int cmd_replace(char *policy, char **sets, int nr_sets)
{
	struct setting s[MAX_SETS];
	struct bpf_link *new_link;
	char pin[PATH_MAX];
	struct active a;
	struct loaded l;
	int err, link_fd;

	err = check_kernel() ?: check_bpffs(false);
	if (err)
		return err;
	err = find_active(&a);
	if (err > 1)
		return err;
	if (!err)
		return fail(EXIT_STATE, "no policy is active in %s; use 'tlsrekey load %s'",
			    pin_dir, policy);
	err = load_object(policy, &l, sets, nr_sets, s);
	if (err)
		goto out;
	/* libbpf gives the kernel the new struct_ops value only on its way
	 * to a link of its own; with a policy attached that link is refused
	 * (EBUSY), which leaves the map ready for the pinned link's update.
	 */
	new_link = bpf_map__attach_struct_ops(l.ops);
	if (new_link) {
		/* the old policy went away meanwhile: this is a load */
		bpf_link__destroy(new_link);
		err = fail(EXIT_STATE, "policy %s was detached meanwhile; use 'tlsrekey load'", a.name);
		goto out;
	}
	if (errno != EBUSY) {
		err = fail_errno(errno, "preparing the policy");
		goto out;
	}
	link_fd = bpf_obj_get(a.link_pin);
	/* one atomic switch: the kernel never runs without a policy */
	if (link_fd < 0 || bpf_link_update(link_fd, bpf_map__fd(l.ops), NULL)) {
		err = fail_errno(errno, "replacing the policy (link update)");
		if (link_fd >= 0)
			close(link_fd);
		goto out;
	}
	snprintf(pin, sizeof(pin), "%s/%s_ops", pin_dir, l.name);
	if (strcmp(pin, a.link_pin)) {
		if (bpf_obj_pin(link_fd, pin))
			fprintf(stderr, "tlsrekey: the link stays pinned at %s: %s\n",
				a.link_pin, strerror(errno));
		else
			unlink(a.link_pin);
	}
	close(link_fd);		/* the pin keeps the link */
	unpin_maps_of(&a, &l);
	printf("replaced %s with %s (link %u)\n", a.name, l.name, a.link_id);
	bpf_object__close(l.obj);
	return 0;
out:
	unpin_new_maps(&l, &a);
	bpf_object__close(l.obj);
	return err;
}

static int cmd_unload(void)
{
	struct active a;
	int err = need_active(&a);

	if (err)
		return err;
	if (unlink(a.link_pin))
		return fail_errno(errno, a.link_pin);
	unpin_maps_of(&a, NULL);
	rmdir(pin_dir);
	printf("unloaded %s; the kernel's default decisions apply\n", a.name);
	return 0;
}

/* ------------------------------------------------------------ status */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	putchar('"');
}

/* the conf struct of the active policy, read from its pinned map */
static void *read_conf(const struct active *a, struct btf **btf,
		       __u32 *type_id, __u32 *size, const char **pin)
{
	struct bpf_map_info info;
	__u32 zero = 0;
	void *conf;
	int fd;

	*btf = NULL;
	*pin = active_map(a, "conf", &info);
	if (!*pin || info.type != BPF_MAP_TYPE_ARRAY || info.key_size != 4)
		return NULL;
	fd = bpf_obj_get(*pin);
	conf = calloc(1, info.value_size);
	if (fd < 0 || !conf || bpf_map_lookup_elem(fd, &zero, conf)) {
		free(conf);
		conf = NULL;
	}
	if (fd >= 0)
		close(fd);
	*btf = btf__load_from_kernel_by_id(info.btf_id);
	*type_id = info.btf_value_type_id;
	*size = info.value_size;
	return conf;
}

static int cmd_status(bool json)
{
	const struct tunable_doc *doc;
	const struct btf_type *t;
	const struct btf_member *m;
	bool supported = !check_kernel();
	const char *conf_pin = NULL;
	struct btf *btf = NULL;
	__u32 type_id = 0, size = 0, fsize;
	void *conf = NULL;
	struct active a;
	char when[64];
	int err, i;

	err = check_bpffs(false);
	if (err)
		return err;
	err = find_active(&a);
	if (err > 1)
		return err;
	if (err)
		conf = read_conf(&a, &btf, &type_id, &size, &conf_pin);
	t = btf && conf ? btf__type_by_id(btf, type_id) : NULL;
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&a.since));

	if (json) {
		printf("{\"kernel_support\": %s, \"pin_dir\": ", supported ? "true" : "false");
		json_str(pin_dir);
		if (!err) {
			printf(", \"policy\": null}\n");
			goto out;
		}
		printf(", \"policy\": ");
		json_str(a.name);
		printf(", \"since\": %lld, \"link_id\": %u, \"struct_ops_map_id\": %u, \"maps\": {",
		       (long long)a.since, a.link_id, a.ops_map_id);
		for (i = 0; i < a.nr_maps; i++) {
			printf("%s", i ? ", " : "");
			json_str(a.maps[i].name);
			printf(": %u", a.maps[i].info.id);
		}
		printf("}, \"tunables\": {");
		for (i = 0, m = t ? btf_members(t) : NULL; t && i < btf_vlen(t); i++, m++) {
			fsize = btf__resolve_size(btf, m->type);
			printf("%s", i ? ", " : "");
			json_str(btf__name_by_offset(btf, m->name_off));
			printf(": %llu", read_uint((char *)conf + btf_member_bit_offset(t, i) / 8, fsize));
		}
		printf("}}\n");
		goto out;
	}

	printf("kernel support: %s\n", supported ? "yes (struct tls_rekey_ops)" :
	       "no (this kernel lacks the kernel/patches series)");
	if (!err) {
		printf("policy:         none in %s; the kernel's default decisions apply\n", pin_dir);
		goto out;
	}
	printf("policy:         %s\n", a.name);
	printf("since:          %s\n", when);
	printf("link:           id %u, pinned at %s\n", a.link_id, a.link_pin);
	printf("struct_ops map: id %u\n", a.ops_map_id);
	for (i = 0; i < a.nr_maps; i++)
		printf("map:            %-18s id %-5u %s\n", a.maps[i].name,
		       a.maps[i].info.id, a.maps[i].pin);
	if (!t) {
		printf("tunables:       none\n");
		goto out;
	}
	printf("tunables (%s; 0 = default):\n", conf_pin);
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		fsize = btf__resolve_size(btf, m->type);
		doc = tunable_doc(a.name, name);
		printf("  %-18s %-10llu", name,
		       read_uint((char *)conf + btf_member_bit_offset(t, i) / 8, fsize));
		if (doc)
			printf(" %s (default %llu, max %llu)", doc->meaning,
			       doc->dflt, doc->max);
		putchar('\n');
	}
out:
	free(conf);
	btf__free(btf);
	return 0;
}

static int cmd_set(char **sets, int nr_sets)
{
	struct setting s[MAX_SETS];
	const char *pin;
	struct btf *btf;
	__u32 type_id, size, zero = 0;
	struct active a;
	void *conf;
	int err, fd, i;

	err = need_active(&a);
	if (err)
		return err;
	conf = read_conf(&a, &btf, &type_id, &size, &pin);
	if (!conf) {
		btf__free(btf);
		list_tunables(a.name, NULL, 0);
		return fail(EXIT_USAGE, "policy %s has no tunables to set", a.name);
	}
	err = parse_settings(a.name, btf, type_id, sets, nr_sets, s);
	if (err)
		goto out;
	for (i = 0; i < nr_sets; i++)
		printf("%s: %.*s %llu -> %llu\n", a.name, s[i].key_len, s[i].key,
		       read_uint((char *)conf + s[i].offset, s[i].size), s[i].value);
	apply_settings(conf, s, nr_sets);
	fd = bpf_obj_get(pin);
	err = fd < 0 || bpf_map_update_elem(fd, &zero, conf, BPF_ANY) ?
	      fail_errno(errno, "updating the tunables") : 0;
	if (fd >= 0)
		close(fd);
out:
	free(conf);
	btf__free(btf);
	return err;
}

/* ------------------------------------------------------------ stats */

/* Prints a value of BTF type @t: u64 fields as numbers, u64 arrays as
 * histograms (text) or lists (JSON), nested structs by name.
 */
static void print_value(const struct btf *btf, __u32 type_id, const __u64 *v,
			size_t nr_u64, bool json, const char *indent);

/* Slots of a histogram member @t (an array of u64, or a struct holding
 * only one) starting @at u64s into a value of @nr_u64; -1 if not one.
 */
static int hist_len(const struct btf *btf, const struct btf_type *t,
		    size_t at, size_t nr_u64)
{
	const struct btf_type *elem;
	__u32 n;

	if (btf_is_struct(t) && btf_vlen(t) == 1)
		t = btf__type_by_id(btf, btf__resolve_type(btf, btf_members(t)->type));
	if (!t || !btf_is_array(t))
		return -1;
	elem = btf__type_by_id(btf, btf__resolve_type(btf, btf_array(t)->type));
	n = btf_array(t)->nelems;
	if (!elem || !btf_is_int(elem) || elem->size != 8 || at + n > nr_u64)
		return -1;
	return n;
}

static void print_hist(const __u64 *slot, int n, bool json, const char *indent)
{
	unsigned long long max = 0;
	int i, first = -1, last = -1, bar;

	if (json) {
		putchar('[');
		for (i = 0; i < n; i++)
			printf("%s%llu", i ? ", " : "", (unsigned long long)slot[i]);
		putchar(']');
		return;
	}
	for (i = 0; i < n; i++) {
		if (!slot[i])
			continue;
		if (first < 0)
			first = i;
		last = i;
		if (slot[i] > max)
			max = slot[i];
	}
	if (first < 0) {
		printf(" (empty)\n");
		return;
	}
	putchar('\n');
	for (i = first; i <= last; i++) {
		bar = max ? (int)(slot[i] * 40 / max) : 0;
		printf("%s  [%10llu, %10llu) %8llu |%.*s\n", indent,
		       i ? 1ULL << i : 0ULL, i < 63 ? 1ULL << (i + 1) : ~0ULL,
		       (unsigned long long)slot[i], bar,
		       "########################################");
	}
}

static void print_value(const struct btf *btf, __u32 type_id, const __u64 *v,
			size_t nr_u64, bool json, const char *indent)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct btf_member *m;
	const struct btf_type *mt;
	char deeper[32];
	int i;

	if (!t || !btf_is_struct(t)) {
		printf(json ? "%llu" : " %llu\n", (unsigned long long)v[0]);
		return;
	}
	snprintf(deeper, sizeof(deeper), "%s  ", indent);
	if (json)
		putchar('{');
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);
		const __u64 *f = v + btf_member_bit_offset(t, i) / 64;

		mt = btf__type_by_id(btf, btf__resolve_type(btf, m->type));
		if (json) {
			printf("%s", i ? ", " : "");
			json_str(name);
			putchar(':');
		} else {
			printf("%s%s:", indent, name);
		}
		if (hist_len(btf, mt, f - v, nr_u64) >= 0)
			print_hist(f, hist_len(btf, mt, f - v, nr_u64), json,
				   indent);
		else if (btf_is_struct(mt) && (size_t)(f - v) < nr_u64) {
			if (!json)
				putchar('\n');
			print_value(btf, m->type, f, nr_u64 - (f - v), json, deeper);
		} else
			printf(json ? "%llu" : " %llu\n", (size_t)(f - v) < nr_u64 ?
			       (unsigned long long)f[0] : 0ULL);
	}
	if (json)
		putchar('}');
}

/* a key: its fields by name, "dir" as rx/tx (an ifindex is the device's
 * in the socket's netns, so no name is looked up here)
 */
static void print_key(const struct btf *btf, __u32 type_id, const void *key,
		      __u32 key_size, bool json)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct btf_member *m;
	unsigned long long v;
	int i, shown = 0;

	if (!t || !btf_is_struct(t)) {
		v = read_uint(key, key_size > 8 ? 8 : key_size);
		printf(json ? "%llu" : "%llu", v);
		return;
	}
	if (json)
		putchar('{');
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		if (!strcmp(name, "pad"))
			continue;
		v = read_uint((const char *)key + btf_member_bit_offset(t, i) / 8,
			      btf__resolve_size(btf, m->type));
		if (json) {
			printf("%s", shown++ ? ", " : "");
			json_str(name);
			printf(": %llu", v);
		} else if (!strcmp(name, "dir")) {
			printf(" %s", v ? "tx" : "rx");
		} else {
			printf(" %s %llu", name, v);
		}
	}
	if (json)
		putchar('}');
}

/* One per-CPU map of the policy: every entry, the CPUs summed. */
static bool print_map(const char *pin, const char *name,
		      const struct bpf_map_info *info, bool json)
{
	int cpus = libbpf_num_possible_cpus(), fd, i, n = 0;
	size_t vsize = (info->value_size + 7) / 8 * 8;
	void *key = calloc(1, info->key_size), *next = calloc(1, info->key_size);
	__u64 *percpu = calloc(cpus, vsize), *sum = calloc(1, vsize);
	struct btf *btf = btf__load_from_kernel_by_id(info->btf_id);
	bool first = true, array = info->type == BPF_MAP_TYPE_PERCPU_ARRAY;
	bool printed = false;
	size_t w;

	fd = bpf_obj_get(pin);
	if (fd < 0 || !btf || !key || !next || !percpu || !sum)
		goto out;
	printed = true;
	if (json) {
		json_str(name);
		printf(array ? ": " : ": [");
	} else {
		printf("%s\n", name);
	}
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		first = false;
		memcpy(key, next, info->key_size);
		if (bpf_map_lookup_elem(fd, key, percpu))
			continue;
		memset(sum, 0, vsize);
		for (i = 0; i < cpus; i++)
			for (w = 0; w < vsize / 8; w++)
				sum[w] += percpu[i * vsize / 8 + w];
		if (json) {
			if (!array)
				printf("%s{\"key\": ", n ? ", " : "");
			if (!array)
				print_key(btf, info->btf_key_type_id, key,
					  info->key_size, true);
			printf(array ? "" : ", \"value\": ");
			print_value(btf, info->btf_value_type_id, sum, vsize / 8,
				    true, "");
			printf(array ? "" : "}");
		} else {
			if (!array) {
				printf("  key:");
				print_key(btf, info->btf_key_type_id, key,
					  info->key_size, false);
				putchar('\n');
			}
			print_value(btf, info->btf_value_type_id, sum, vsize / 8,
				    false, array ? "  " : "    ");
		}
		n++;
		if (array)
			break;
	}
	if (json)
		printf(array ? (n ? "" : "null") : "]");
	else if (!n)
		printf("  (no entries)\n");
out:
	if (fd >= 0)
		close(fd);
	btf__free(btf);
	free(key);
	free(next);
	free(percpu);
	free(sum);
	return printed;
}

/* --netns: the network namespace whose /proc/net/tls_stat stats shows */
static const char *stat_netns;

/* /proc/net/tls_stat of @stat_netns (a name in /run/netns), else of ours */
static FILE *open_tls_stat(void)
{
	char path[PATH_MAX];
	int self, fd;
	FILE *f;

	if (!stat_netns)
		return fopen("/proc/net/tls_stat", "r");
	snprintf(path, sizeof(path), "/run/netns/%s", stat_netns);
	fd = open(path, O_RDONLY);
	self = open("/proc/self/ns/net", O_RDONLY);
	if (fd < 0 || self < 0 || setns(fd, CLONE_NEWNET)) {
		f = NULL;
	} else {
		f = fopen("/proc/thread-self/net/tls_stat", "r");
		setns(self, CLONE_NEWNET);
	}
	if (fd >= 0)
		close(fd);
	if (self >= 0)
		close(self);
	return f;
}

/* the key update lines of /proc/net/tls_stat */
static void print_tls_stat(bool json)
{
	FILE *f = open_tls_stat();
	char name[64];
	unsigned long long v;
	int n = 0;

	if (json)
		printf("\"tls_stat\": {");
	else
		printf("/proc/net/tls_stat, key updates (netns %s)%s\n",
		       stat_netns ?: "of tlsrekey", f ? "" : ": cannot read it");
	while (f && fscanf(f, "%63s %llu", name, &v) == 2) {
		if (!strstr(name, "Rekey"))
			continue;
		if (json) {
			printf("%s", n++ ? ", " : "");
			json_str(name);
			printf(": %llu", v);
		} else {
			printf("  %-28s %llu\n", name, v);
		}
	}
	if (json)
		printf("}");
	if (f)
		fclose(f);
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static int cmd_stats(bool json, int watch, int count)
{
	struct active a;
	int err, i, shown, round;
	time_t now;

	err = check_bpffs(false);
	if (err)
		return err;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (round = 0; !stop; round++) {
		err = find_active(&a);
		if (err > 1)
			return err;
		now = time(NULL);
		if (json) {
			printf("{\"time\": %lld, \"policy\": ", (long long)now);
			if (err)
				json_str(a.name);
			else
				printf("null");
			printf(", \"maps\": {");
		} else {
			if (watch)
				printf("--- %s", ctime(&now));
			printf("policy: %s\n", err ? a.name : "none (kernel defaults)");
		}
		for (i = 0, shown = 0; err && i < a.nr_maps; i++) {
			if (a.maps[i].info.type != BPF_MAP_TYPE_PERCPU_ARRAY &&
			    a.maps[i].info.type != BPF_MAP_TYPE_PERCPU_HASH)
				continue;
			if (json && shown)
				printf(", ");
			if (print_map(a.maps[i].pin, a.maps[i].name,
				      &a.maps[i].info, json))
				shown++;
			else if (json && shown)
				printf("\"-\": null");	/* keeps the JSON whole */
		}
		if (json) {
			printf("}, ");
			print_tls_stat(true);
			printf("}\n");
		} else {
			print_tls_stat(false);
		}
		fflush(stdout);
		if (!watch || (count && round + 1 >= count))
			break;
		sleep(watch);
	}
	return 0;
}

/* ------------------------------------------------------------ help */

static const struct {
	const char *name, *usage, *text;
} commands[] = {
	{ "load", "load POLICY [--set KEY=VALUE]...",
	  "Load POLICY, set its tunables, attach it and pin its link and maps in\n"
	  "the pin directory, so that it stays active after tlsrekey exits.\n"
	  "POLICY is a built-in (default, backoff, ratelimit, observe) or a path\n"
	  "to a .bpf.o implementing struct tls_rekey_ops. Refuses if a policy is\n"
	  "active (use replace). A failed load leaves no pins behind.\n" },
	{ "replace", "replace POLICY [--set KEY=VALUE]...",
	  "Load POLICY and swap it for the active one with one link update:\n"
	  "sockets never run without a policy decision. The old policy's maps\n"
	  "are unpinned (those the new one shares by name are kept).\n" },
	{ "unload", "unload",
	  "Detach the active policy (unpin its link) and remove its pins; the\n"
	  "kernel's default decisions apply again. A socket in the middle of a\n"
	  "key update finishes it with the defaults.\n" },
	{ "status", "status [--json]",
	  "Show whether the kernel supports policies, the active policy, since\n"
	  "when, its link and map ids, and its tunables with their meaning.\n"
	  "JSON: {kernel_support, pin_dir, policy, since, link_id,\n"
	  "struct_ops_map_id, maps: {name: id}, tunables: {name: value}}.\n" },
	{ "stats", "stats [--json] [--netns NAME] [--watch SECONDS [--count N]]",
	  "Show the active policy's counters (per-CPU maps, CPUs summed): by\n"
	  "device and netns where the policy keys them so, histograms as text\n"
	  "bars (slot [a, b) counts values from a to b), then the key update\n"
	  "lines of /proc/net/tls_stat of tlsrekey's netns, or of the netns NAME\n"
	  "(/run/netns/NAME, as ip-netns names them). --watch repeats every\n"
	  "SECONDS (N times with --count, else until interrupted).\n"
	  "JSON, one object per line: {time, policy, maps: {MAP: VALUE or\n"
	  "[{key, value}]}, tls_stat: {name: value}}; values are objects of\n"
	  "counters, histograms are arrays of 64 log2 slots. Stable: fields are\n"
	  "only ever added.\n" },
	{ "set", "set KEY=VALUE...",
	  "Change tunables of the active policy, live. Values are checked\n"
	  "(unsigned integer, range of the field or the policy's limit); 0\n"
	  "selects the policy's default.\n" },
};

static void usage_all(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: tlsrekey [-d DIR] [-v] COMMAND [ARGS]\n"
		"       tlsrekey help [COMMAND]\n\n"
		"Manage the key update policy of offloaded kTLS sockets: a BPF\n"
		"struct_ops (struct tls_rekey_ops) that decides when a NIC gets the new\n"
		"key after a TLS 1.3 KeyUpdate and how refused keys are retried.\n\n"
		"Commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f,
		"\nBuilt-in policies:\n");
	for (i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++)
		fprintf(f, "  %-10s %s\n", builtins[i].name, builtins[i].about);
	fprintf(f,
		"\nOptions:\n"
		"  -d DIR   pin directory on bpffs (default " DEFAULT_DIR ")\n"
		"  -v       print libbpf's messages as they come\n\n"
		"Exit codes: 0 done; 1 bad command line, tunable or value; 2 kernel\n"
		"without struct tls_rekey_ops; 3 permission denied (run as root);\n"
		"4 no bpffs or unusable pin directory; 5 a policy is active (load) or\n"
		"none is (replace, unload, set); 6 the policy failed to load or attach.\n\n"
		"Without tlsrekey: bpftool struct_ops register POLICY.bpf.o " DEFAULT_DIR "\n"
		"See tlsrekey(8) and 'tlsrekey help COMMAND'.\n");
}

static int help(const char *cmd)
{
	const struct builtin *b;
	const struct tunable_doc *d;
	size_t i;

	if (!cmd) {
		usage_all(stdout);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(cmd, commands[i].name))
			continue;
		printf("Usage: tlsrekey [-d DIR] %s\n\n%s", commands[i].usage,
		       commands[i].text);
		if (strcmp(cmd, "load") && strcmp(cmd, "replace") && strcmp(cmd, "set"))
			return 0;
		printf("\nTunables of the built-in policies:\n");
		for (b = builtins; b < builtins + sizeof(builtins) / sizeof(builtins[0]); b++)
			for (d = b->tunables; d && d->name; d++)
				printf("  %-9s %-17s %s (default %llu, max %llu)\n",
				       b->name, d->name, d->meaning, d->dflt, d->max);
		return 0;
	}
	usage_all(stderr);
	return fail(EXIT_USAGE, "no command '%s'", cmd);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
	char *sets[MAX_SETS], *policy = NULL;
	int i, nr_sets = 0, watch = 0, count = 0;
	bool json = false;
	const char *cmd;
	char *end;

	while (argc > 1 && argv[1][0] == '-') {
		if (!strcmp(argv[1], "-d") && argc > 2) {
			pin_dir = argv[2];
			argv += 2;
			argc -= 2;
		} else if (!strcmp(argv[1], "-v")) {
			verbose = true;
			argv++;
			argc--;
		} else if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
			return help(NULL);
		} else {
			usage_all(stderr);
			return fail(EXIT_USAGE, "unknown option '%s'", argv[1]);
		}
	}
	if (argc < 2) {
		usage_all(stderr);
		return EXIT_USAGE;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "help"))
		return help(argc > 2 ? argv[2] : NULL);
	for (i = 2; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return help(cmd);

	libbpf_set_print(libbpf_log);
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if ((!strcmp(argv[i], "--watch") || !strcmp(argv[i], "--count")) &&
			   i + 1 < argc) {
			long v = strtol(argv[i + 1], &end, 10);

			if (*end || v <= 0 || v > 86400)
				return fail(EXIT_USAGE, "%s %s: expected a whole number from 1 to 86400",
					    argv[i], argv[i + 1]);
			*(argv[i][2] == 'w' ? &watch : &count) = v;
			i++;
		} else if (!strcmp(argv[i], "--netns") && i + 1 < argc &&
			   !strcmp(cmd, "stats")) {
			stat_netns = argv[++i];
		} else if (!strcmp(argv[i], "--set") && i + 1 < argc) {
			if (nr_sets == MAX_SETS)
				return fail(EXIT_USAGE, "at most %d settings", MAX_SETS);
			sets[nr_sets++] = argv[++i];
		} else if (!strcmp(cmd, "set") && strchr(argv[i], '=') &&
			   nr_sets < MAX_SETS) {
			sets[nr_sets++] = argv[i];
		} else if (!policy && argv[i][0] != '-' &&
			   (!strcmp(cmd, "load") || !strcmp(cmd, "replace"))) {
			policy = argv[i];
		} else {
			fprintf(stderr, "tlsrekey: unexpected argument '%s' for %s\n",
				argv[i], cmd);
			return help(cmd) ? EXIT_USAGE : EXIT_USAGE;
		}
	}

	if (!strcmp(cmd, "load") || !strcmp(cmd, "replace")) {
		if (!policy)
			return fail(EXIT_USAGE, "%s needs a POLICY; see 'tlsrekey help %s'",
				    cmd, cmd);
		return cmd[0] == 'l' ? cmd_load(policy, sets, nr_sets) :
				       cmd_replace(policy, sets, nr_sets);
	}
	if (!strcmp(cmd, "unload"))
		return cmd_unload();
	if (!strcmp(cmd, "status"))
		return cmd_status(json);
	if (!strcmp(cmd, "stats"))
		return cmd_stats(json, watch, count);
	if (!strcmp(cmd, "set")) {
		if (!nr_sets)
			return fail(EXIT_USAGE, "set needs KEY=VALUE; see 'tlsrekey help set'");
		return cmd_set(sets, nr_sets);
	}
	usage_all(stderr);
	return fail(EXIT_USAGE, "no command '%s'", cmd);
}
