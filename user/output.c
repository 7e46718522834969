// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey: status and stats, as text, JSON or Prometheus text exposition.
 *
 * Counters are the policy's per-CPU maps (bpf/README.md): values are
 * structs of u64 fields, a field that is an array of u64 (struct
 * log2_hist) is a log2 histogram whose slot i counts values in
 * [2^i, 2^(i+1)). Keys are structs whose fields name what they count by:
 * netns_cookie, ifindex and dir are shown as the namespace's name, the
 * device's name in it and rx/tx. Next to them, /proc/net/tls_stat.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "tlsrekey.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE	71
#endif

/* ------------------------------------------------------------ namespaces */

struct netns *netns;
int nr_netns;

static int self_netns = -1;

/* run in the namespace of @path; back with leave_netns() */
bool enter_netns(const char *path)
{
	int fd;
	bool ok;

	if (self_netns < 0)
		self_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ok = fd >= 0 && self_netns >= 0 && !setns(fd, CLONE_NEWNET);
	if (fd >= 0)
		close(fd);
	return ok;
}

void leave_netns(void)
{
	if (self_netns >= 0 && setns(self_netns, CLONE_NEWNET))
		fprintf(stderr, "tlsrekey: cannot return to its own netns: %s\n",
			strerror(errno));
}

static __u64 cookie_here(void)
{
	socklen_t len = sizeof(__u64);
	__u64 cookie = 0;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
		cookie = 0;
	if (fd >= 0)
		close(fd);
	return cookie;
}

static struct netns *netns_by_ino(ino_t ino)
{
	int i;

	for (i = 0; i < nr_netns; i++)
		if (netns[i].ino == ino)
			return &netns[i];
	return NULL;
}

static void netns_add(const char *path, const char *name, ino_t init_ino)
{
	struct netns *n, *grown;
	struct stat st;

	if (stat(path, &st))
		return;
	n = netns_by_ino(st.st_ino);
	if (n) {
		if (name)	/* a name beats an inode */
			snprintf(n->label, sizeof(n->label), "%s", name);
		return;
	}
	grown = realloc(netns, (nr_netns + 1) * sizeof(*netns));
	if (!grown)
		return;
	netns = grown;
	n = &netns[nr_netns++];
	memset(n, 0, sizeof(*n));
	n->ino = st.st_ino;
	snprintf(n->path, sizeof(n->path), "%s", path);
	if (name)
		snprintf(n->label, sizeof(n->label), "%s", name);
	else if (st.st_ino == init_ino)
		snprintf(n->label, sizeof(n->label), "init");
	else
		snprintf(n->label, sizeof(n->label), "ino:%lu", (unsigned long)st.st_ino);
}

/* Every namespace: named ones, then those of processes. Without the
 * right to enter one (CAP_SYS_ADMIN) its cookie stays 0.
 */
void netns_scan(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	ino_t init_ino;
	int i;
	DIR *d;

	if (netns)
		return;
	init_ino = stat("/proc/1/ns/net", &st) ? 0 : st.st_ino;
	netns_add("/proc/self/ns/net", NULL, init_ino);
	d = opendir("/run/netns");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/run/netns/%s", de->d_name);
		netns_add(path, de->d_name, init_ino);
	}
	if (d)
		closedir(d);
	d = opendir("/proc");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/net", de->d_name);
		netns_add(path, NULL, init_ino);
	}
	if (d)
		closedir(d);
	for (i = 0; i < nr_netns; i++) {
		if (!enter_netns(netns[i].path))
			continue;
		netns[i].cookie = cookie_here();
		leave_netns();
	}
}

static struct netns *netns_by_cookie(__u64 cookie)
{
	int i;

	netns_scan();
	for (i = 0; cookie && i < nr_netns; i++)
		if (netns[i].cookie == cookie)
			return &netns[i];
	return NULL;
}

/* the name of device @ifindex of namespace @n (tlsrekey's own if NULL) */
static bool device_name(const struct netns *n, __u32 ifindex,
			char buf[IF_NAMESIZE])
{
	bool ok;

	if (n && !enter_netns(n->path))
		return false;
	ok = if_indextoname(ifindex, buf) != NULL;
	if (n)
		leave_netns();
	return ok;
}

/* ------------------------------------------------------------ keys */

/* What a map's key says, as labels: its fields, with netns_cookie, ifindex
 * and dir shown as netns, device and direction where they can be named.
 */
#define MAX_LABELS	8

struct labels {
	int n;
	struct {
		char name[32];
		char value[80];
	} l[MAX_LABELS];
};

static void __attribute__((format(printf, 3, 4)))
label(struct labels *ls, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ls->n == MAX_LABELS)
		return;
	snprintf(ls->l[ls->n].name, sizeof(ls->l[0].name), "%s", name);
	va_start(ap, fmt);
	vsnprintf(ls->l[ls->n].value, sizeof(ls->l[0].value), fmt, ap);
	va_end(ap);
	ls->n++;
}

static void key_labels(const struct btf *btf, __u32 type_id, const void *key,
		       __u32 key_size, const char *number, struct labels *ls)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct netns *n = NULL;
	unsigned long long v, ifindex = 0;
	const struct btf_member *m;
	bool has_netns = false;
	char dev[IF_NAMESIZE];
	int i;

	ls->n = 0;
	if (!t || !btf_is_struct(t)) {
		label(ls, number, "%llu", read_uint(key, key_size > 8 ? 8 : key_size));
		return;
	}
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		v = read_uint((const char *)key + btf_member_bit_offset(t, i) / 8,
			      btf__resolve_size(btf, m->type));
		if (!strcmp(name, "pad"))
			continue;
		if (!strcmp(name, "dir")) {
			label(ls, "direction", "%s", v ? "tx" : "rx");
		} else if (!strcmp(name, "netns_cookie")) {
			has_netns = true;
			n = netns_by_cookie(v);
			if (n)
				label(ls, "netns", "%s", n->label);
			else
				label(ls, "netns", "cookie:%llu", v);
		} else if (!strcmp(name, "ifindex")) {
			ifindex = v;
		} else {
			label(ls, name, "%llu", v);
		}
	}
	/* an ifindex is its namespace's: named only when that is known */
	if (ifindex && (!has_netns || n) && device_name(n, ifindex, dev))
		label(ls, "device", "%s", dev);
	else if (ifindex)
		label(ls, "ifindex", "%llu", ifindex);
}

/* ------------------------------------------------------------ map values */

/* Slots of a histogram member @t (an array of u64, or a struct holding
 * only one); -1 if it is not one.
 */
static int hist_len(const struct btf *btf, const struct btf_type *t)
{
	const struct btf_type *elem;

	if (btf_is_struct(t) && btf_vlen(t) == 1)
		t = btf__type_by_id(btf, btf__resolve_type(btf, btf_members(t)->type));
	if (!t || !btf_is_array(t))
		return -1;
	elem = btf__type_by_id(btf, btf__resolve_type(btf, btf_array(t)->type));
	if (!elem || !btf_is_int(elem) || elem->size != 8)
		return -1;
	return btf_array(t)->nelems;
}

/* One counter of a value: a u64 (@slots 0) or a histogram, its name the
 * path of fields to it joined by dots.
 */
struct field {
	char name[128];
	const __u64 *v;
	int slots;
};

/* the counters of a value of type @type_id, @nr_u64 long, in order */
static int fields_of(const struct btf *btf, __u32 type_id, const __u64 *v,
		     size_t nr_u64, const char *prefix, struct field *out,
		     int max)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct btf_type *mt;
	const struct btf_member *m;
	int i, n = 0, slots;
	size_t at;

	if (!t || !btf_is_struct(t)) {
		if (max > 0 && nr_u64) {
			snprintf(out[0].name, sizeof(out[0].name), "%s", prefix);
			out[0].v = v;
			out[0].slots = 0;
			return 1;
		}
		return 0;
	}
	for (i = 0, m = btf_members(t); i < btf_vlen(t) && n < max; i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);
		char path[128];

		at = btf_member_bit_offset(t, i) / 64;
		if (at >= nr_u64)
			break;
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", name);
		mt = btf__type_by_id(btf, btf__resolve_type(btf, m->type));
		slots = mt ? hist_len(btf, mt) : -1;
		if (slots > 0 && at + slots <= nr_u64) {
			snprintf(out[n].name, sizeof(out[n].name), "%s", path);
			out[n].v = v + at;
			out[n++].slots = slots;
		} else if (mt && btf_is_struct(mt)) {
			n += fields_of(btf, m->type, v + at, nr_u64 - at, path,
				       out + n, max - n);
		} else {
			snprintf(out[n].name, sizeof(out[n].name), "%s", path);
			out[n].v = v + at;
			out[n++].slots = 0;
		}
	}
	return n;
}

/* One per-CPU map of the policy, read whole: each entry's key and value
 * with the CPUs summed.
 */
struct map_dump {
	const char *name;
	bool array;
	struct btf *btf;
	struct bpf_map_info info;
	int nr;
	void *keys;
	__u64 *values;		/* nr values of vsize bytes */
	size_t vsize;
};

static bool dump_map(const char *pin, const char *name,
		     const struct bpf_map_info *info, struct map_dump *d)
{
	int cpus = libbpf_num_possible_cpus(), fd, i;
	void *key = NULL, *next = NULL, *grown;
	__u64 *percpu = NULL, *sum;
	bool first = true, ok = false;
	size_t w;

	memset(d, 0, sizeof(*d));
	d->name = name;
	d->info = *info;
	d->array = info->type == BPF_MAP_TYPE_PERCPU_ARRAY;
	d->vsize = (info->value_size + 7) / 8 * 8;
	d->btf = btf__load_from_kernel_by_id(info->btf_id);
	fd = bpf_obj_get(pin);
	key = calloc(1, info->key_size);
	next = calloc(1, info->key_size);
	percpu = calloc(cpus, d->vsize);
	if (fd < 0 || !d->btf || !key || !next || !percpu || cpus <= 0)
		goto out;
	while (!bpf_map_get_next_key(fd, first ? NULL : key, next)) {
		first = false;
		memcpy(key, next, info->key_size);
		if (bpf_map_lookup_elem(fd, key, percpu))
			continue;
		grown = realloc(d->keys, (d->nr + 1) * info->key_size);
		if (!grown)
			goto out;
		d->keys = grown;
		grown = realloc(d->values, (d->nr + 1) * d->vsize);
		if (!grown)
			goto out;
		d->values = grown;
		memcpy((char *)d->keys + d->nr * info->key_size, key, info->key_size);
		sum = d->values + d->nr * d->vsize / 8;
		memset(sum, 0, d->vsize);
		for (i = 0; i < cpus; i++)
			for (w = 0; w < d->vsize / 8; w++)
				sum[w] += percpu[i * d->vsize / 8 + w];
		d->nr++;
		if (d->array)
			break;
	}
	ok = true;
out:
	if (fd >= 0)
		close(fd);
	free(key);
	free(next);
	free(percpu);
	return ok;
}

static void free_dump(struct map_dump *d)
{
	btf__free(d->btf);
	free(d->keys);
	free(d->values);
}

#define MAX_FIELDS	64

/* the policy's counter maps, read */
static int dump_maps(const struct active *a, struct map_dump *d)
{
	int i, n = 0;

	for (i = 0; i < a->nr_maps; i++) {
		if (a->maps[i].info.type != BPF_MAP_TYPE_PERCPU_ARRAY &&
		    a->maps[i].info.type != BPF_MAP_TYPE_PERCPU_HASH)
			continue;
		if (dump_map(a->maps[i].pin, a->maps[i].name, &a->maps[i].info, &d[n]))
			n++;
		else
			free_dump(&d[n]);
	}
	return n;
}

/* ------------------------------------------------------------ /proc/net/tls_stat */

struct stat_line {
	char name[64];
	unsigned long long value;
};

/* the lines of /proc/net/tls_stat of @n (tlsrekey's own if NULL) */
static int read_tls_stat(const struct netns *n, struct stat_line **out)
{
	struct stat_line *lines = NULL, *grown;
	char name[64];
	unsigned long long v;
	int nr = 0;
	FILE *f;

	if (n && !enter_netns(n->path))
		return -1;
	f = fopen("/proc/thread-self/net/tls_stat", "r");
	if (n)
		leave_netns();
	if (!f)
		return -1;
	while (fscanf(f, "%63s %llu", name, &v) == 2) {
		grown = realloc(lines, (nr + 1) * sizeof(*lines));
		if (!grown)
			break;
		lines = grown;
		snprintf(lines[nr].name, sizeof(lines[nr].name), "%s", name);
		lines[nr++].value = v;
	}
	fclose(f);
	*out = lines;
	return nr;
}

/* ------------------------------------------------------------ status */

/* The policies the kernel has registered (/sys/kernel/tls_rekey/policies),
 * one name a line, into @buf joined by ", "; false on a kernel without it.
 */
static bool registered(char *buf, size_t size)
{
	FILE *f = fopen("/sys/kernel/tls_rekey/policies", "r");
	char line[64];
	size_t n = 0;

	buf[0] = 0;
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		n += snprintf(buf + n, n < size ? size - n : 0, "%s%s",
			      n ? ", " : "", line);
	}
	fclose(f);
	return true;
}

#define NETNS_DEFAULT	"/proc/sys/net/tls/rekey_policy"

/* net.tls.rekey_policy of the netns tlsrekey is in: "" for the built-in
 * decisions; false without it (no such kernel, or tls.ko not loaded)
 */
bool netns_default(char *name, size_t size)
{
	FILE *f = fopen(NETNS_DEFAULT, "r");
	bool ok = f && fgets(name, size, f);

	if (f)
		fclose(f);
	name[ok ? strcspn(name, "\n") : 0] = 0;
	return ok;
}

/* default NAME [--netns NS]: choose the policy of a network namespace */
int cmd_default(const char *policy, const char *netns)
{
	char path[PATH_MAX], previous[64], name[64];
	bool ok;
	FILE *f;
	int err;

	err = policy_name_of(policy, name, sizeof(name));
	if (err)
		return err;
	if (strlen(name) >= 16)
		return fail(EXIT_USAGE, "'%s': a policy name has at most 15 characters", name);
	err = check_kernel();
	if (err)
		return err;
	snprintf(path, sizeof(path), "/run/netns/%s", netns ?: "");
	if (netns && !enter_netns(path))
		return fail_errno(errno, path);
	ok = netns_default(previous, sizeof(previous));
	f = ok ? fopen(NETNS_DEFAULT, "w") : NULL;
	if (!f) {
		err = fail_errno(errno, NETNS_DEFAULT);
	} else {
		/* the kernel answers the write, which fclose() makes */
		ok = fprintf(f, "%s\n", name) > 0;
		if (fclose(f) || !ok)
			err = errno == ENOENT ?
			      fail(EXIT_STATE, "no policy '%s' is registered (see tlsrekey status)", name) :
			      fail_errno(errno, NETNS_DEFAULT);
	}
	if (netns)
		leave_netns();
	if (err)
		return err;
	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_string_field(json_wtr, "netns", netns ?: "");
		jsonw_string_field(json_wtr, "policy", name);
		jsonw_string_field(json_wtr, "previous", previous);
		jsonw_end_object(json_wtr);
	} else {
		printf("netns %s: %s -> %s\n", netns ?: "(tlsrekey's)",
		       *previous ? previous : "built-in", *name ? name : "built-in");
	}
	return 0;
}

int cmd_status(void)
{
	struct tunable t[MAX_TUNABLES];
	bool supported = !check_kernel();
	const char *conf_pin = NULL, *about = NULL;
	struct btf *btf = NULL, *ops_btf = NULL;
	__u32 type_id = 0;
	void *conf = NULL;
	char when[64], names[512], dflt[64];
	bool kernel_says, has_default;
	struct active a;
	int err, i, nr = 0;
	unsigned long long v;

	err = check_bpffs(false);
	if (err)
		return err;
	err = find_active(&a);
	if (err > 1)
		return err;
	if (err) {
		conf = read_conf(&a, &btf, &type_id, &conf_pin);
		nr = conf ? tunables_of(btf, type_id, t) : 0;
		ops_btf = btf__load_from_kernel_by_id(a.btf_id);
		about = policy_about(ops_btf);
	}
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", localtime(&a.since));
	kernel_says = registered(names, sizeof(names));
	has_default = netns_default(dflt, sizeof(dflt));

	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_bool_field(json_wtr, "kernel_support", supported);
		if (kernel_says) {	/* what the kernel has, pinned here or not */
			char *n, *save = NULL;

			jsonw_name(json_wtr, "registered");
			jsonw_start_array(json_wtr);
			for (n = strtok_r(names, ", ", &save); n;
			     n = strtok_r(NULL, ", ", &save))
				jsonw_string(json_wtr, n);
			jsonw_end_array(json_wtr);
		}
		if (has_default) {
			if (*dflt)
				jsonw_string_field(json_wtr, "netns_default", dflt);
			else
				jsonw_null_field(json_wtr, "netns_default");
		}
		jsonw_string_field(json_wtr, "pin_dir", pin_dir);
		if (!err) {
			jsonw_null_field(json_wtr, "policy");
			jsonw_end_object(json_wtr);
			goto out;
		}
		jsonw_string_field(json_wtr, "policy", a.name);
		if (about)
			jsonw_string_field(json_wtr, "about", about);
		jsonw_int_field(json_wtr, "since", a.since);
		jsonw_uint_field(json_wtr, "link_id", a.link_id);
		jsonw_uint_field(json_wtr, "struct_ops_map_id", a.ops_map_id);
		jsonw_name(json_wtr, "maps");
		jsonw_start_object(json_wtr);
		for (i = 0; i < a.nr_maps; i++)
			jsonw_uint_field(json_wtr, a.maps[i].name, a.maps[i].info.id);
		jsonw_end_object(json_wtr);
		jsonw_name(json_wtr, "tunables");
		jsonw_start_object(json_wtr);
		for (i = 0; i < nr; i++)
			jsonw_lluint_field(json_wtr, t[i].name,
					   read_uint((char *)conf + t[i].offset, t[i].size));
		jsonw_end_object(json_wtr);
		jsonw_end_object(json_wtr);
		goto out;
	}

	printf("kernel support: %s\n", supported ? "yes (struct tls_rekey_ops)" :
	       "no (this kernel lacks the kernel/patches series)");
	if (kernel_says)
		printf("registered:     %s\n", *names ? names : "none");
	if (has_default)
		printf("this netns:     %s (net.tls.rekey_policy)\n",
		       *dflt ? dflt : "the built-in decisions");
	if (!err) {
		printf("policy:         none in %s\n", pin_dir);
		goto out;
	}
	printf("policy:         %s%s%s\n", a.name, about ? ": " : "", about ?: "");
	printf("since:          %s\n", when);
	printf("link:           id %u, pinned at %s\n", a.link_id, a.link_pin);
	printf("struct_ops map: id %u\n", a.ops_map_id);
	for (i = 0; i < a.nr_maps; i++)
		printf("map:            %-18s id %-5u %s\n", a.maps[i].name,
		       a.maps[i].info.id, a.maps[i].pin);
	if (!nr) {
		printf("tunables:       none\n");
		goto out;
	}
	printf("tunables (%s; 0 = default):\n", conf_pin);
	for (i = 0; i < nr; i++) {
		v = read_uint((char *)conf + t[i].offset, t[i].size);
		printf("  %-18s %-10llu", t[i].name, v);
		if (t[i].documented)
			printf(" %s (default %llu, max %llu)", t[i].meaning,
			       t[i].dflt, t[i].max);
		putchar('\n');
	}
out:
	free(conf);
	btf__free(btf);
	btf__free(ops_btf);
	return 0;
}

/* ------------------------------------------------------------ stats: text, JSON */

static void print_hist_text(const __u64 *slot, int n, const char *indent)
{
	unsigned long long max = 0;
	int i, first = -1, last = -1, bar;

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

/* a value as JSON: u64 fields as numbers, histograms as arrays, nested
 * structs as objects (the shape bpftool's map dump gives it)
 */
static void value_json(const struct btf *btf, __u32 type_id, const __u64 *v,
		       size_t nr_u64)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct btf_type *mt;
	const struct btf_member *m;
	int i, slots, s;
	size_t at;

	if (!t || !btf_is_struct(t)) {
		jsonw_lluint(json_wtr, nr_u64 ? v[0] : 0);
		return;
	}
	jsonw_start_object(json_wtr);
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		at = btf_member_bit_offset(t, i) / 64;
		jsonw_name(json_wtr, btf__name_by_offset(btf, m->name_off));
		mt = btf__type_by_id(btf, btf__resolve_type(btf, m->type));
		slots = mt ? hist_len(btf, mt) : -1;
		if (slots > 0 && at + slots <= nr_u64) {
			jsonw_start_array(json_wtr);
			for (s = 0; s < slots; s++)
				jsonw_lluint(json_wtr, v[at + s]);
			jsonw_end_array(json_wtr);
		} else if (mt && btf_is_struct(mt) && at < nr_u64) {
			value_json(btf, m->type, v + at, nr_u64 - at);
		} else {
			jsonw_lluint(json_wtr, at < nr_u64 ? v[at] : 0);
		}
	}
	jsonw_end_object(json_wtr);
}

/* the key's fields as bpftool gives them (pad left out) */
static void key_json(const struct btf *btf, __u32 type_id, const void *key,
		     __u32 key_size)
{
	const struct btf_type *t = btf__type_by_id(btf, btf__resolve_type(btf, type_id));
	const struct btf_member *m;
	int i;

	if (!t || !btf_is_struct(t)) {
		jsonw_lluint(json_wtr, read_uint(key, key_size > 8 ? 8 : key_size));
		return;
	}
	jsonw_start_object(json_wtr);
	for (i = 0, m = btf_members(t); i < btf_vlen(t); i++, m++) {
		const char *name = btf__name_by_offset(btf, m->name_off);

		if (!strcmp(name, "pad"))
			continue;
		jsonw_lluint_field(json_wtr, name,
				   read_uint((const char *)key + btf_member_bit_offset(t, i) / 8,
					     btf__resolve_size(btf, m->type)));
	}
	jsonw_end_object(json_wtr);
}

static void map_json(const struct map_dump *d)
{
	struct labels ls;
	int i, l;

	jsonw_name(json_wtr, d->name);
	if (d->array) {
		if (d->nr)
			value_json(d->btf, d->info.btf_value_type_id, d->values,
				   d->vsize / 8);
		else
			jsonw_null(json_wtr);
		return;
	}
	jsonw_start_array(json_wtr);
	for (i = 0; i < d->nr; i++) {
		const void *key = (char *)d->keys + i * d->info.key_size;

		jsonw_start_object(json_wtr);
		jsonw_name(json_wtr, "key");
		key_json(d->btf, d->info.btf_key_type_id, key, d->info.key_size);
		key_labels(d->btf, d->info.btf_key_type_id, key, d->info.key_size,
			   "key", &ls);
		jsonw_name(json_wtr, "labels");
		jsonw_start_object(json_wtr);
		for (l = 0; l < ls.n; l++)
			jsonw_string_field(json_wtr, ls.l[l].name, ls.l[l].value);
		jsonw_end_object(json_wtr);
		jsonw_name(json_wtr, "value");
		value_json(d->btf, d->info.btf_value_type_id,
			   d->values + i * d->vsize / 8, d->vsize / 8);
		jsonw_end_object(json_wtr);
	}
	jsonw_end_array(json_wtr);
}

static void map_text(const struct map_dump *d)
{
	struct field f[MAX_FIELDS];
	struct labels ls;
	int i, j, l, nf;

	printf("%s\n", d->name);
	if (!d->nr)
		printf("  (no entries)\n");
	for (i = 0; i < d->nr; i++) {
		const void *key = (char *)d->keys + i * d->info.key_size;
		const char *indent = d->array ? "  " : "    ";

		if (!d->array) {
			key_labels(d->btf, d->info.btf_key_type_id, key,
				   d->info.key_size, "key", &ls);
			printf("  key:");
			for (l = 0; l < ls.n; l++)	/* a plain key: its number */
				printf(" %s%s%s", strcmp(ls.l[l].name, "key") ? ls.l[l].name : "",
				       strcmp(ls.l[l].name, "key") ? " " : "", ls.l[l].value);
			putchar('\n');
		}
		nf = fields_of(d->btf, d->info.btf_value_type_id,
			       d->values + i * d->vsize / 8, d->vsize / 8, "",
			       f, MAX_FIELDS);
		for (j = 0; j < nf; j++) {
			printf("%s%s:", indent, f[j].name);
			if (f[j].slots)
				print_hist_text(f[j].v, f[j].slots, indent);
			else
				printf(" %llu\n", (unsigned long long)f[j].v[0]);
		}
	}
}

/* the key update lines of /proc/net/tls_stat of @n */
static void tls_stat_text_json(const struct netns *n, const char *label)
{
	struct stat_line *lines = NULL;
	int nr = read_tls_stat(n, &lines), i;

	if (json_wtr) {
		jsonw_name(json_wtr, "tls_stat");
		jsonw_start_object(json_wtr);
	} else {
		printf("/proc/net/tls_stat, key updates (netns %s)%s\n", label,
		       nr < 0 ? ": cannot read it" : "");
	}
	for (i = 0; i < nr; i++) {
		if (!strstr(lines[i].name, "Rekey"))
			continue;
		if (json_wtr)
			jsonw_lluint_field(json_wtr, lines[i].name, lines[i].value);
		else
			printf("  %-28s %llu\n", lines[i].name, lines[i].value);
	}
	if (json_wtr)
		jsonw_end_object(json_wtr);
	free(lines);
}

/* ------------------------------------------------------------ stats: Prometheus */

static void prom_escape(const char *s)
{
	for (; *s; s++)
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
}

/* A field counted in a fraction of a second (its name ends in _ns, _us,
 * _ms) is shown in seconds, Prometheus's base unit, as an exact decimal.
 */
static const struct time_unit {
	const char *suffix;
	unsigned long long per_sec;
	int digits;
} time_units[] = {
	{ "_ns", 1000000000ULL, 9 },
	{ "_us", 1000000ULL, 6 },
	{ "_ms", 1000ULL, 3 },
};

static const struct time_unit *time_unit(const char *field)
{
	size_t i, len = strlen(field);

	for (i = 0; i < sizeof(time_units) / sizeof(time_units[0]); i++)
		if (len > 3 && !strcmp(field + len - 3, time_units[i].suffix))
			return &time_units[i];
	return NULL;
}

static void print_in(unsigned long long v, const struct time_unit *u)
{
	if (u)
		printf("%llu.%0*llu", v / u->per_sec, u->digits, v % u->per_sec);
	else
		printf("%llu", v);
}

/* the le label of a histogram's bucket: none, the last (unbounded) one, or
 * slot i's, which holds integers up to 2^(i+1) - 1
 */
enum { NO_LE = -1, LE_INF = -2 };

/* {policy="...",LABELS...,le="..."}, le in @u's unit */
static void prom_labels(const char *policy, const struct labels *ls,
			int slot, const struct time_unit *u)
{
	int l, n = 0;

	putchar('{');
	if (policy) {
		printf("policy=\"");
		prom_escape(policy);
		putchar('"');
		n++;
	}
	for (l = 0; ls && l < ls->n; l++, n++) {
		printf("%s%s=\"", n ? "," : "", ls->l[l].name);
		prom_escape(ls->l[l].value);
		putchar('"');
	}
	if (slot == LE_INF) {
		printf("%sle=\"+Inf\"", n ? "," : "");
	} else if (slot >= 0) {
		printf("%sle=\"", n ? "," : "");
		print_in((2ULL << slot) - 1, u);
		putchar('"');
	}
	putchar('}');
}

/* map observe_windows, field window_us ->
 * tlsrekey_observe_windows_window_seconds
 */
static void prom_name(char *buf, size_t size, const char *map, const char *field,
		      const struct time_unit *u)
{
	size_t i;

	snprintf(buf, size, "tlsrekey_%.200s%s%.*s%s", map, *field ? "_" : "",
		 (int)(strlen(field) - (u ? 3 : 0)), field, u ? "_seconds" : "");
	for (i = 0; buf[i]; i++)
		if (buf[i] == '.')
			buf[i] = '_';
}

/* Every field of every entry of @d: counters as NAME_total, histograms as
 * NAME_bucket{le} (slot i holds integers up to 2^(i+1) - 1) and NAME_count.
 */
static void map_prometheus(const char *policy, const struct map_dump *d)
{
	struct field f[MAX_FIELDS], g[MAX_FIELDS];
	const struct time_unit *u;
	unsigned long long sum;
	struct labels ls;
	char name[512];
	int i, j, nf, s;

	if (!d->nr)
		return;
	nf = fields_of(d->btf, d->info.btf_value_type_id, d->values,
		       d->vsize / 8, "", f, MAX_FIELDS);
	for (j = 0; j < nf; j++) {
		u = time_unit(f[j].name);
		prom_name(name, sizeof(name), d->name, f[j].name, u);
		printf("# HELP %s%s Field %s of map %s of key update policy %s%s.\n",
		       name, f[j].slots ? "" : "_total", f[j].name, d->name, policy,
		       u ? ", in seconds" : "");
		printf("# TYPE %s%s %s\n", name, f[j].slots ? "" : "_total",
		       f[j].slots ? "histogram" : "counter");
		for (i = 0; i < d->nr; i++) {
			const void *key = (char *)d->keys + i * d->info.key_size;

			ls.n = 0;
			if (!d->array)
				key_labels(d->btf, d->info.btf_key_type_id, key,
					   d->info.key_size, "key", &ls);
			fields_of(d->btf, d->info.btf_value_type_id,
				  d->values + i * d->vsize / 8, d->vsize / 8, "",
				  g, MAX_FIELDS);
			if (!g[j].slots) {
				printf("%s_total", name);
				prom_labels(policy, &ls, NO_LE, NULL);
				putchar(' ');
				print_in(g[j].v[0], u);
				putchar('\n');
				continue;
			}
			for (s = 0, sum = 0; s < g[j].slots; s++) {
				sum += g[j].v[s];
				printf("%s_bucket", name);
				prom_labels(policy, &ls, s + 1 < g[j].slots ? s : LE_INF, u);
				printf(" %llu\n", sum);
			}
			printf("%s_count", name);
			prom_labels(policy, &ls, NO_LE, NULL);
			printf(" %llu\n", sum);
		}
	}
}

/* "TlsTxRekeyOk" -> "rekey_ok" with direction "tx"; "TlsCurr..." gauges */
static bool tls_stat_metric(const char *line, char *buf, size_t size,
			    const char **dir, bool *gauge)
{
	const char *p = line;
	size_t n = 0;

	*dir = NULL;
	if (strncmp(p, "Tls", 3))
		return false;
	p += 3;
	*gauge = !strncmp(p, "Curr", 4);
	while (*p && n + 2 < size) {
		if ((!strncmp(p, "Tx", 2) || !strncmp(p, "Rx", 2)) &&
		    (p[2] < 'a' || p[2] > 'z')) {
			*dir = *p == 'T' ? "tx" : "rx";
			p += 2;
			continue;
		}
		if (*p >= 'A' && *p <= 'Z') {
			if (n)
				buf[n++] = '_';
			buf[n++] = *p - 'A' + 'a';
		} else {
			buf[n++] = *p;
		}
		p++;
	}
	buf[n] = 0;
	return n > 0;
}

/* /proc/net/tls_stat of every namespace (or of @only): a family per line
 * name less Tx/Rx, with the namespace and the direction as labels
 */
static void tls_stat_prometheus(const struct netns *only)
{
	int i, j, k, f, count = only ? 1 : nr_netns, nr_families = 0;
	const char **first = NULL;	/* a line of each family */
	struct stat_line **lines;
	char metric[96], other[96];
	const char *dir;
	struct labels ls;
	bool gauge;
	int *nr;

	lines = calloc(count, sizeof(*lines));
	nr = calloc(count, sizeof(*nr));
	first = calloc(256, sizeof(*first));
	if (!lines || !nr || !first)
		goto out;
	for (i = 0; i < count; i++) {
		nr[i] = read_tls_stat(only ?: &netns[i], &lines[i]);
		if (nr[i] < 0)
			printf("# netns %s: cannot read /proc/net/tls_stat\n",
			       (only ?: &netns[i])->label);
		for (j = 0; j < nr[i]; j++) {
			if (!tls_stat_metric(lines[i][j].name, metric,
					     sizeof(metric), &dir, &gauge))
				continue;
			for (f = 0; f < nr_families; f++)
				if (tls_stat_metric(first[f], other, sizeof(other),
						    &dir, &gauge) &&
				    !strcmp(other, metric))
					break;
			if (f == nr_families && nr_families < 256)
				first[nr_families++] = lines[i][j].name;
		}
	}
	for (f = 0; f < nr_families; f++) {
		tls_stat_metric(first[f], metric, sizeof(metric), &dir, &gauge);
		printf("# HELP tlsrekey_tls_%s%s /proc/net/tls_stat: %s%s.\n",
		       metric, gauge ? "" : "_total", first[f],
		       dir ? " (Rx and Tx as label direction)" : "");
		printf("# TYPE tlsrekey_tls_%s%s %s\n", metric,
		       gauge ? "" : "_total", gauge ? "gauge" : "counter");
		for (i = 0; i < count; i++) {
			for (k = 0; k < nr[i]; k++) {
				if (!tls_stat_metric(lines[i][k].name, other,
						     sizeof(other), &dir, &gauge) ||
				    strcmp(other, metric))
					continue;
				ls.n = 0;
				label(&ls, "netns", "%s", (only ?: &netns[i])->label);
				if (dir)
					label(&ls, "direction", "%s", dir);
				printf("tlsrekey_tls_%s%s", metric, gauge ? "" : "_total");
				prom_labels(NULL, &ls, NO_LE, NULL);
				printf(" %llu\n", lines[i][k].value);
			}
		}
	}
out:
	for (i = 0; lines && i < count; i++)
		free(lines[i]);
	free(lines);
	free(nr);
	free(first);
}

/* ------------------------------------------------------------ stats */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

struct netns *netns_by_name(const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	if (stat(path, &st))
		return NULL;
	netns_scan();
	return netns_by_ino(st.st_ino);
}

/* --output FILE: each round is written to FILE.tmp, then renamed over
 * FILE, so that a reader (node-exporter's textfile collector) never sees
 * half of one. Between the two, stdout is the file.
 */
static int saved_stdout = -1;

static int round_begin(const char *output)
{
	char tmp[PATH_MAX];
	int fd;

	if (!output)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", output);
	fflush(stdout);
	if (saved_stdout < 0)
		saved_stdout = dup(STDOUT_FILENO);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || saved_stdout < 0 || dup2(fd, STDOUT_FILENO) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(EXIT_USAGE, "cannot write %s: %s", tmp, strerror(errno));
	}
	close(fd);
	return 0;
}

static int round_end(const char *output)
{
	char tmp[PATH_MAX];
	int err = 0;

	if (!output)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", output);
	if (fflush(stdout) || fsync(STDOUT_FILENO))
		err = errno;
	if (dup2(saved_stdout, STDOUT_FILENO) < 0 && !err)
		err = errno;
	if (!err && rename(tmp, output))
		err = errno;
	if (!err)
		return 0;
	unlink(tmp);
	return fail(EXIT_USAGE, "cannot write %s: %s", output, strerror(err));
}

int cmd_stats(enum format format, const char *netns_name, const char *output,
	      int watch, int count)
{
	struct map_dump d[MAX_MAPS];
	const struct netns *n = NULL;
	struct active a;
	int err, i, nd, round;
	bool last;
	time_t now;

	err = check_bpffs(false);
	if (err)
		return err;
	if (netns_name) {
		n = netns_by_name(netns_name);
		if (!n)
			return fail(EXIT_USAGE, "no network namespace '%s' (/run/netns/%s): %s",
				    netns_name, netns_name, strerror(errno));
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	for (round = 0; !stop; round++) {
		err = find_active(&a);
		if (err > 1)
			return err;
		nd = err ? dump_maps(&a, d) : 0;
		now = time(NULL);
		if (round_begin(output)) {
			for (i = 0; i < nd; i++)
				free_dump(&d[i]);
			return EXIT_USAGE;
		}
		if (format == FORMAT_PROMETHEUS) {
			printf("# HELP tlsrekey_policy_info The key update policy attached, by name.\n"
			       "# TYPE tlsrekey_policy_info gauge\n");
			if (err)
				printf("tlsrekey_policy_info{policy=\"%s\"} 1\n", a.name);
			printf("# HELP tlsrekey_policy_attached_timestamp_seconds When the policy's link was pinned, Unix time.\n"
			       "# TYPE tlsrekey_policy_attached_timestamp_seconds gauge\n");
			if (err)
				printf("tlsrekey_policy_attached_timestamp_seconds{policy=\"%s\"} %lld\n",
				       a.name, (long long)a.since);
			for (i = 0; i < nd; i++)
				map_prometheus(a.name, &d[i]);
			if (!n)
				netns_scan();
			tls_stat_prometheus(n);
		} else if (json_wtr) {
			jsonw_start_object(json_wtr);
			jsonw_int_field(json_wtr, "time", now);
			if (err)
				jsonw_string_field(json_wtr, "policy", a.name);
			else
				jsonw_null_field(json_wtr, "policy");
			jsonw_name(json_wtr, "maps");
			jsonw_start_object(json_wtr);
			for (i = 0; i < nd; i++)
				map_json(&d[i]);
			jsonw_end_object(json_wtr);
			tls_stat_text_json(n, n ? n->label : "of tlsrekey");
			jsonw_end_object(json_wtr);
		} else {
			if (watch)
				printf("--- %s", ctime(&now));
			printf("policy: %s\n", err ? a.name : "none (kernel defaults)");
			for (i = 0; i < nd; i++)
				map_text(&d[i]);
			tls_stat_text_json(n, n ? n->label : "of tlsrekey");
		}
		for (i = 0; i < nd; i++)
			free_dump(&d[i]);
		last = !watch || (count && round + 1 >= count) || stop;
		if (json_wtr && (output || !last)) {	/* one object per line */
			putchar('\n');
			jsonw_reset(json_wtr);
		}
		if (round_end(output))
			return EXIT_USAGE;
		if (last)
			break;
		fflush(stdout);
		sleep(watch);
	}
	return 0;
}
