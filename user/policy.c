// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey: a policy's life. Load it (a built-in or a .bpf.o), attach it
 * through a struct_ops link and pin the link and its maps in pin_dir, find
 * it there again, swap it for another with one link update, unload it.
 *
 * What it relies on (bpf/README.md): the policy's struct_ops map is named
 * POLICY_ops, its tunables are the struct in its one-entry POLICY_conf
 * array. The policy's maps are found again as the maps pinned as
 * POLICY_... next to its link.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spawn.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "tlsrekey.h"
#include "builtins.h"	/* generated: the skeletons of bpf/ policies */

#define BUILTIN(n)	{ #n, n##_bpf__elf_bytes },
const struct builtin builtins[] = { BUILTIN_POLICIES(BUILTIN) };
const int nr_builtins = sizeof(builtins) / sizeof(builtins[0]);

static const struct builtin *builtin_find(const char *name)
{
	int i;

	for (i = 0; i < nr_builtins; i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

struct bpf_object *builtin_open(const struct builtin *b)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = b->name);
	const void *elf;
	size_t size;

	elf = b->elf(&size);
	return bpf_object__open_mem(elf, size, &opts);
}

/* ------------------------------------------------------------ libbpf's log */

#define LOG_TAIL	30

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

void log_to_buffer(void)
{
	libbpf_set_print(libbpf_log);
}

/* the tail of libbpf's log, on stderr (also with -j: it is not JSON) */
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

/* ------------------------------------------------------------ checks */

/* modprobe NAME, quietly: false if it could not run or failed */
static bool modprobe(const char *name)
{
	char *const argv[] = { "modprobe", "-q", (char *)name, NULL };
	int status;
	pid_t pid;

	if (posix_spawnp(&pid, "modprobe", NULL, NULL, argv, environ))
		return false;
	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       !WEXITSTATUS(status);
}

/* struct tls_rekey_ops is in vmlinux's BTF (TLS built in), or in the tls
 * module's, which is loaded for it when it is not
 */
int check_kernel(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf(), *tls = NULL;
	bool loaded = true;
	int id;

	if (!vmlinux)
		return fail(EXIT_NO_KERNEL, "cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): %s",
			    strerror(errno));
	id = btf__find_by_name_kind(vmlinux, "tls_rekey_ops", BTF_KIND_STRUCT);
	if (id < 0) {
		loaded = !access("/sys/kernel/btf/tls", F_OK) || modprobe("tls");
		tls = loaded ? btf__load_module_btf("tls", vmlinux) : NULL;
		if (tls)
			id = btf__find_by_name_kind(tls, "tls_rekey_ops", BTF_KIND_STRUCT);
	}
	btf__free(tls);
	btf__free(vmlinux);
	if (id < 0)
		return fail(EXIT_NO_KERNEL, "this kernel has no TLS key update policies (no BTF type tls_rekey_ops in vmlinux or the tls module%s); boot a kernel with the kernel/patches series",
			    loaded ? "" : ", which did not load");
	return 0;
}

/* the bpffs the pin directory lives on, and the directory */
int check_bpffs(bool create)
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

/* ------------------------------------------------------------ the active policy */

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

/* "NAME_ops" -> "NAME" in @name */
static void strip_ops(char *name)
{
	size_t len = strlen(name);

	if (len > 4 && !strcmp(name + len - 4, "_ops"))
		name[len - 4] = 0;
}

int find_active(struct active *a)
{
	struct bpf_link_info link;
	struct bpf_map_info info;
	char path[PATH_MAX], name[64], others[256] = "";
	struct dirent *de;
	struct stat st;
	size_t n = 0;
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
		/* the pin is named after the map, untruncated */
		snprintf(name, sizeof(name), "%.*s", (int)sizeof(name) - 1,
			 de->d_name);
		strip_ops(name);
		if (pin_is_link(fd, &link) &&
		    link.type == BPF_LINK_TYPE_STRUCT_OPS && a->link_id &&
		    (!policy_sel || !strcmp(name, policy_sel)))
			n += snprintf(others + n, n < sizeof(others) ? sizeof(others) - n : 0,
				      ", %s", name);
		else if (pin_is_link(fd, &link) &&
			 link.type == BPF_LINK_TYPE_STRUCT_OPS &&
			 (!policy_sel || !strcmp(name, policy_sel))) {
			mfd = bpf_map_get_fd_by_id(link.struct_ops.map_id);
			if (mfd >= 0 && !map_info(mfd, &info)) {
				a->link_id = link.id;
				a->ops_map_id = info.id;
				a->btf_id = info.btf_id;
				snprintf(a->name, sizeof(a->name), "%s", name);
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
	if (*others)
		return fail(EXIT_STATE, "several policies are pinned in %s (%s%s): choose one with --policy NAME",
			    pin_dir, a->name, others);

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

int need_active(struct active *a)
{
	int err = check_bpffs(false);

	if (err)
		return err;
	err = find_active(a);
	if (err == 1)
		return 0;
	if (err)
		return err;
	if (policy_sel)
		return fail(EXIT_STATE, "no policy %s is pinned in %s", policy_sel, pin_dir);
	return fail(EXIT_STATE, "no policy is active in %s", pin_dir);
}

const char *active_map(const struct active *a, const char *suffix,
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
	const struct btf_type *t;
	char conf_name[96];
	struct bpf_map *map;
	const void *elf;
	size_t size;
	int i;

	memset(l, 0, sizeof(*l));
	if (b) {
		elf = b->elf(&size);
		opts.object_name = b->name;
		l->obj = bpf_object__open_mem(elf, size, &opts);
	} else if (strchr(arg, '/') || strstr(arg, ".bpf.o")) {
		l->obj = bpf_object__open_file(arg, &opts);
	} else {
		char names[256] = "";

		for (i = 0; i < nr_builtins; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names),
				 "%s%s", i ? ", " : "", builtins[i].name);
		return fail(EXIT_USAGE, "unknown policy '%s'; built-in: %s (or a path to a .bpf.o)",
			    arg, names);
	}
	if (!l->obj) {
		print_log_tail();
		return fail(EXIT_USAGE, "cannot open policy %s: %s", arg,
			    strerror(errno));
	}
	bpf_object__for_each_map(map, l->obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS && !l->ops)
			l->ops = map;
	t = l->ops ? btf__type_by_id(bpf_object__btf(l->obj),
				     bpf_map__btf_value_type_id(l->ops)) : NULL;
	if (!t || strcmp(btf__name_by_offset(bpf_object__btf(l->obj), t->name_off),
			 "tls_rekey_ops")) {
		bpf_object__close(l->obj);
		l->obj = NULL;
		return fail(EXIT_USAGE, "%s has no struct tls_rekey_ops (in a .struct_ops.link section)",
			    arg);
	}
	snprintf(l->name, sizeof(l->name), "%s", bpf_map__name(l->ops));
	strip_ops(l->name);
	snprintf(conf_name, sizeof(conf_name), "%s_conf", l->name);
	l->conf = bpf_object__find_map_by_name(l->obj, conf_name);
	return 0;
}

/* The name policy @arg registers under: that of the object if @arg is a
 * path to one, else @arg (a built-in's or any registered policy's name).
 */
int policy_name_of(const char *arg, char *name, size_t size)
{
	struct loaded l;
	int err;

	if (!strchr(arg, '/') && !strstr(arg, ".bpf.o")) {
		snprintf(name, size, "%s", arg);
		return 0;
	}
	err = open_policy(arg, &l);
	if (err)
		return err;
	snprintf(name, size, "%s", l.name);
	bpf_object__close(l.obj);
	return 0;
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
		       int nr_sets)
{
	struct tunable t[MAX_TUNABLES];
	struct setting s[MAX_SETS];
	__u32 zero = 0;
	void *conf;
	int err, nr;

	err = open_policy(policy, l);
	if (err)
		return err;
	nr = l->conf ? tunables_of(bpf_object__btf(l->obj),
				   bpf_map__btf_value_type_id(l->conf), t) : 0;
	err = parse_settings(l->name, t, nr, sets, nr_sets, s);
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

/* the result of a command that changed the policy: a line, or an object */
static void done(const char *verb, const char *name, const char *previous,
		 __u32 link_id, const char *pin)
{
	if (!json_wtr) {
		if (previous)
			printf("replaced %s with %s (link %u)\n", previous, name, link_id);
		else if (pin)
			printf("loaded %s: link %u pinned at %s, maps in %s\n",
			       name, link_id, pin, pin_dir);
		else
			printf("unloaded %s; the kernel's default decisions apply\n", name);
		return;
	}
	jsonw_start_object(json_wtr);
	jsonw_string_field(json_wtr, "action", verb);
	jsonw_string_field(json_wtr, "policy", name);
	if (previous)
		jsonw_string_field(json_wtr, "previous", previous);
	jsonw_uint_field(json_wtr, "link_id", link_id);
	if (pin)
		jsonw_string_field(json_wtr, "link_pin", pin);
	jsonw_end_object(json_wtr);
}

int cmd_load(const char *policy, char **sets, int nr_sets)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	char pin[PATH_MAX];
	struct bpf_link *link;
	struct active a;
	struct loaded l;
	int err;

	char name[64];
	const char *sel = policy_sel;

	err = check_kernel() ?: check_bpffs(true) ?:
	      policy_name_of(policy, name, sizeof(name));
	if (err)
		return err;
	/* other policies may be pinned next to it */
	policy_sel = name;
	err = find_active(&a);
	policy_sel = sel;
	if (err > 1)
		return err;
	if (err == 1)
		return fail(EXIT_STATE, "policy %s is pinned already (link %u at %s); use 'tlsrekey replace %s'",
			    a.name, a.link_id, a.link_pin, policy);
	err = load_object(policy, &l, sets, nr_sets);
	if (err)
		goto out;
	link = bpf_map__attach_struct_ops(l.ops);
	if (!link) {
		err = -errno;
		err = err == -EEXIST ?
		      fail(EXIT_STATE, "a policy named %s is registered already (not pinned in %s)",
			   l.name, pin_dir) :
		      fail_errno(err, "registering the policy");
		goto out;
	}
	snprintf(pin, sizeof(pin), "%s/%s_ops", pin_dir, l.name);
	if (bpf_link__pin(link, pin)) {
		err = fail_errno(errno, "pinning the link");
		bpf_link__destroy(link);
		goto out;
	}
	memset(&info, 0, sizeof(info));
	bpf_link_get_info_by_fd(bpf_link__fd(link), &info, &len);
	done("load", l.name, NULL, info.id, pin);
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

int cmd_replace(const char *policy, char **sets, int nr_sets)
{
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
	err = load_object(policy, &l, sets, nr_sets);
	if (err)
		goto out;
	/* libbpf gives the kernel the new struct_ops value only on its way
	 * to a link of its own. Under the pinned policy's name that link is
	 * refused (EEXIST); under another it registers the policy for a
	 * moment in which nothing chose it. Either leaves the map ready for
	 * the pinned link's update.
	 */
	new_link = bpf_map__attach_struct_ops(l.ops);
	if (new_link)
		bpf_link__destroy(new_link);
	else if (errno != EEXIST) {
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
	done("replace", l.name, a.name, a.link_id, NULL);
	bpf_object__close(l.obj);
	return 0;
out:
	unpin_new_maps(&l, &a);
	bpf_object__close(l.obj);
	return err;
}

/* unload [NAME]: NAME, or --policy's, or the only one pinned */
int cmd_unload(const char *name)
{
	char sel[64];
	struct active a;
	int err;

	if (name) {
		err = policy_name_of(name, sel, sizeof(sel));
		if (err)
			return err;
		policy_sel = sel;
	}
	err = need_active(&a);
	if (err)
		return err;
	if (unlink(a.link_pin))
		return fail_errno(errno, a.link_pin);
	unpin_maps_of(&a, NULL);
	rmdir(pin_dir);
	done("unload", a.name, NULL, a.link_id, NULL);
	return 0;
}
