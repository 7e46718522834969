// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey: what a policy's BTF says about itself, and its tunables.
 *
 * A policy documents itself in its own BTF (bpf/tls_rekey.bpf.h): a decl
 * tag "about:LINE" on its struct_ops variable, and on each field of its
 * POLICY_conf struct a decl tag "tunable:DEFAULT:MAX:MEANING". The loader
 * reads them from the object before loading it, and from the kernel (the
 * BTF of the pinned map) for the active policy, so that the help, the
 * checks and the status of a third party's policy are those of ours.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlsrekey.h"

/* the decl tag starting with @prefix on member @idx of @type_id (-1: on
 * @type_id itself, with @type_id 0 any), after the prefix; or NULL
 */
static const char *decl_tag(const struct btf *btf, __u32 type_id, int idx,
			    const char *prefix)
{
	__u32 i, n = btf__type_cnt(btf);
	const struct btf_type *t;
	const char *s;

	for (i = 1; i < n; i++) {
		t = btf__type_by_id(btf, i);
		if (!btf_is_decl_tag(t) || btf_decl_tag(t)->component_idx != idx ||
		    (type_id && t->type != type_id))
			continue;
		s = btf__name_by_offset(btf, t->name_off);
		if (s && !strncmp(s, prefix, strlen(prefix)))
			return s + strlen(prefix);
	}
	return NULL;
}

const char *policy_about(const struct btf *btf)
{
	return btf ? decl_tag(btf, 0, -1, "about:") : NULL;
}

int tunables_of(const struct btf *btf, __u32 type_id, struct tunable *out)
{
	const struct btf_type *t = btf ? btf__type_by_id(btf, type_id) : NULL;
	const struct btf_member *m;
	const char *tag;
	int i, n = 0, used;

	if (!t || !btf_is_struct(t))
		return 0;
	for (i = 0, m = btf_members(t); i < btf_vlen(t) && n < MAX_TUNABLES; i++, m++) {
		struct tunable *tu = &out[n++];

		memset(tu, 0, sizeof(*tu));
		tu->name = btf__name_by_offset(btf, m->name_off);
		tu->offset = btf_member_bit_offset(t, i) / 8;
		tu->size = btf__resolve_size(btf, m->type);
		tu->max = tu->size >= 8 ? ~0ULL : (1ULL << (tu->size * 8)) - 1;
		tag = decl_tag(btf, type_id, i, "tunable:");
		if (tag && sscanf(tag, "%llu:%llu:%n", &tu->dflt, &tu->max, &used) == 2) {
			tu->documented = true;
			tu->meaning = tag + used;
		}
	}
	return n;
}

unsigned long long read_uint(const void *p, __u32 size)
{
	unsigned long long v = 0;

	if (size > 0 && size <= 8)	/* wider members read as 0 */
		memcpy(&v, p, size);	/* little-endian, as the BPF target */
	return v;
}

static void list_tunables(const char *policy, const struct tunable *t, int nr)
{
	int i;

	if (!nr) {
		fprintf(stderr, "tlsrekey: policy %s has no tunables\n", policy);
		return;
	}
	fprintf(stderr, "tlsrekey: tunables of %s:", policy);
	for (i = 0; i < nr; i++)
		fprintf(stderr, " %s", t[i].name);
	fputc('\n', stderr);
}

int parse_settings(const char *policy, const struct tunable *t, int nr,
		   char **args, int n, struct setting *out)
{
	const char *value;
	char *end;
	int i, j;

	for (i = 0; i < n; i++) {
		value = strchr(args[i], '=');
		if (!value || value == args[i])
			return fail(EXIT_USAGE, "'%s': expected KEY=VALUE", args[i]);
		value++;
		for (j = 0; j < nr; j++)
			if (!strncmp(t[j].name, args[i], value - 1 - args[i]) &&
			    !t[j].name[value - 1 - args[i]])
				break;
		if (j == nr) {
			list_tunables(policy, t, nr);
			return fail(EXIT_USAGE, "unknown tunable '%.*s' for policy %s",
				    (int)(value - 1 - args[i]), args[i], policy);
		}
		if (t[j].size != 1 && t[j].size != 2 && t[j].size != 4 && t[j].size != 8)
			return fail(EXIT_USAGE, "tunable %s is not an integer", t[j].name);
		out[i].t = &t[j];
		errno = 0;
		out[i].value = strtoull(value, &end, 10);
		if (!isdigit((unsigned char)*value) || *end || errno ||
		    out[i].value > t[j].max)
			return fail(EXIT_USAGE, "%s: expected an integer from 0 to %llu%s",
				    args[i], t[j].max,
				    t[j].documented ? " (0: the default)" : "");
	}
	return 0;
}

void apply_settings(void *conf, const struct setting *s, int n)
{
	int i;

	for (i = 0; i < n; i++)
		memcpy((char *)conf + s[i].t->offset, &s[i].value, s[i].t->size);
}

void *read_conf(const struct active *a, struct btf **btf, __u32 *type_id,
		const char **pin)
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
	return conf;
}

void print_builtin_tunables(void)
{
	struct tunable t[MAX_TUNABLES];
	struct bpf_object *obj;
	struct bpf_map *conf;
	char name[96];
	int i, j, nr;

	printf("\nTunables of the built-in policies:\n");
	for (i = 0; i < nr_builtins; i++) {
		obj = builtin_open(&builtins[i]);
		snprintf(name, sizeof(name), "%s_conf", builtins[i].name);
		conf = obj ? bpf_object__find_map_by_name(obj, name) : NULL;
		nr = conf ? tunables_of(bpf_object__btf(obj),
					bpf_map__btf_value_type_id(conf), t) : 0;
		for (j = 0; j < nr; j++)
			printf("  %-9s %-17s %s (default %llu, max %llu)\n",
			       builtins[i].name, t[j].name,
			       t[j].meaning ?: "", t[j].dflt, t[j].max);
		bpf_object__close(obj);
	}
}

int cmd_set(char **sets, int nr_sets)
{
	struct tunable t[MAX_TUNABLES];
	struct setting s[MAX_SETS];
	__u32 type_id, zero = 0;
	unsigned long long was[MAX_SETS];
	const char *pin;
	struct btf *btf;
	struct active a;
	void *conf;
	int err, fd, i, nr;

	err = need_active(&a);
	if (err)
		return err;
	conf = read_conf(&a, &btf, &type_id, &pin);
	nr = conf ? tunables_of(btf, type_id, t) : 0;
	if (!nr) {
		list_tunables(a.name, t, 0);
		err = fail(EXIT_USAGE, "policy %s has no tunables to set", a.name);
		goto out;
	}
	err = parse_settings(a.name, t, nr, sets, nr_sets, s);
	if (err)
		goto out;
	for (i = 0; i < nr_sets; i++)
		was[i] = read_uint((char *)conf + s[i].t->offset, s[i].t->size);
	apply_settings(conf, s, nr_sets);
	fd = bpf_obj_get(pin);
	err = fd < 0 || bpf_map_update_elem(fd, &zero, conf, BPF_ANY) ?
	      fail_errno(errno, "updating the tunables") : 0;
	if (fd >= 0)
		close(fd);
	if (err)
		goto out;
	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_string_field(json_wtr, "policy", a.name);
		jsonw_name(json_wtr, "tunables");
		jsonw_start_object(json_wtr);
	}
	for (i = 0; i < nr_sets; i++) {
		if (!json_wtr) {
			printf("%s: %s %llu -> %llu\n", a.name, s[i].t->name,
			       was[i], s[i].value);
			continue;
		}
		jsonw_name(json_wtr, s[i].t->name);
		jsonw_start_object(json_wtr);
		jsonw_lluint_field(json_wtr, "was", was[i]);
		jsonw_lluint_field(json_wtr, "now", s[i].value);
		jsonw_end_object(json_wtr);
	}
	if (json_wtr) {
		jsonw_end_object(json_wtr);
		jsonw_end_object(json_wtr);
	}
out:
	free(conf);
	btf__free(btf);
	return err;
}
