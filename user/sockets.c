// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey sockets and list: each TLS socket's key update state and which
 * policies namespaces and sockets use. The state comes from the kernel
 * through sock_diag, as ss gets it: the TLS ULP info (INET_DIAG_ULP_INFO)
 * carries TLS_INFO_REKEY_TX and _RX for offloaded directions. The kernel
 * gives ULP info to CAP_NET_ADMIN only; other namespaces need CAP_SYS_ADMIN
 * to enter.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tls.h>

#include "tlsrekey.h"

/* enum tls_info_rekey_mode, as the output names them */
static const char *const mode_names[] = {
	"device", "sw_window", "sw_refused", "sw_policy", "sw_no_device",
	"sw_storm",
};

struct rekey_dir {
	__u16 conf;		/* TLS_CONF_*; 0 if not set up */
	bool offloaded;		/* TLS_INFO_REKEY_* came */
	__u32 generation, attempts;
	__u8 mode;
	bool in_sw;		/* the window fields came */
	__u64 window_ns, window_bytes;
	char policy[32];
};

struct tls_sock {
	const struct netns *ns;
	char local[INET6_ADDRSTRLEN + 8], peer[INET6_ADDRSTRLEN + 8];
	__u64 cookie;
	struct rekey_dir tx, rx;
};

typedef void (*sock_fn)(const struct tls_sock *s, void *arg);

#define for_each_nla(nla, start, len)					\
	for (nla = (struct nlattr *)(start);				\
	     (len) >= (int)sizeof(*nla) && nla->nla_len >= sizeof(*nla) && \
	     nla->nla_len <= (len);					\
	     (len) -= NLA_ALIGN(nla->nla_len),				\
	     nla = (struct nlattr *)((char *)nla + NLA_ALIGN(nla->nla_len)))

#define NLA_DATA(nla)	((void *)((char *)(nla) + NLA_HDRLEN))
#define NLA_LEN(nla)	((int)(nla)->nla_len - NLA_HDRLEN)

static void parse_rekey(struct nlattr *nest, struct rekey_dir *d)
{
	int len = NLA_LEN(nest);
	struct nlattr *a;

	d->offloaded = true;
	for_each_nla(a, NLA_DATA(nest), len) {
		void *v = NLA_DATA(a);

		switch (a->nla_type) {
		case TLS_INFO_REKEY_GENERATION:
			d->generation = *(__u32 *)v;
			break;
		case TLS_INFO_REKEY_MODE:
			d->mode = *(__u8 *)v;
			break;
		case TLS_INFO_REKEY_ATTEMPTS:
			d->attempts = *(__u32 *)v;
			break;
		case TLS_INFO_REKEY_WINDOW_NS:
			memcpy(&d->window_ns, v, sizeof(__u64));
			d->in_sw = true;
			break;
		case TLS_INFO_REKEY_WINDOW_BYTES:
			memcpy(&d->window_bytes, v, sizeof(__u64));
			break;
		case TLS_INFO_REKEY_POLICY:
			snprintf(d->policy, sizeof(d->policy), "%.*s",
				 NLA_LEN(a), (char *)v);
			break;
		}
	}
}

/* INET_ULP_INFO_TLS: false if the socket's ULP is not TLS */
static bool parse_ulp(struct nlattr *ulp, struct tls_sock *s)
{
	int len = NLA_LEN(ulp), tlen;
	struct nlattr *a, *t;
	bool tls = false;

	for_each_nla(a, NLA_DATA(ulp), len) {
		if (a->nla_type == INET_ULP_INFO_NAME)
			tls = !strncmp(NLA_DATA(a), "tls", NLA_LEN(a));
		if (a->nla_type != INET_ULP_INFO_TLS)
			continue;
		tlen = NLA_LEN(a);
		for_each_nla(t, NLA_DATA(a), tlen) {
			switch (t->nla_type) {
			case TLS_INFO_TXCONF:
				s->tx.conf = *(__u16 *)NLA_DATA(t);
				break;
			case TLS_INFO_RXCONF:
				s->rx.conf = *(__u16 *)NLA_DATA(t);
				break;
			case TLS_INFO_REKEY_TX:
				parse_rekey(t, &s->tx);
				break;
			case TLS_INFO_REKEY_RX:
				parse_rekey(t, &s->rx);
				break;
			}
		}
	}
	return tls;
}

static void endpoint(char *buf, size_t size, int family, const __be32 *addr,
		     __be16 port)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, size, family == AF_INET6 ? "[%s]:%u" : "%s:%u", a,
		 ntohs(port));
}

/* every TLS socket of family @family in the namespace tlsrekey is in */
static int dump_family(int family, const struct netns *ns, sock_fn fn,
		       void *arg)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 req;
	} msg = {
		.nh = {
			.nlmsg_len = sizeof(msg),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
		},
		.req = {
			.sdiag_family = family,
			.sdiag_protocol = IPPROTO_TCP,
			/* listeners and time-wait sockets carry no TLS */
			.idiag_states = ~(1U << 10 | 1U << 6),
			.idiag_ext = 1 << (INET_DIAG_INFO - 1),
		},
	};
	static char buf[65536] __attribute__((aligned(NLMSG_ALIGNTO)));
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	struct nlmsghdr *h;
	int err = 0, len, alen;
	bool done = false;

	if (fd < 0)
		return -errno;
	if (send(fd, &msg, sizeof(msg), 0) < 0) {
		err = -errno;
		goto out;
	}
	while (!done) {
		len = recv(fd, buf, sizeof(buf), 0);
		if (len < 0) {
			err = -errno;
			break;
		}
		for (h = (void *)buf; NLMSG_OK(h, (unsigned int)len);
		     h = NLMSG_NEXT(h, len)) {
			struct inet_diag_msg *m = NLMSG_DATA(h);
			struct tls_sock s = { .ns = ns };
			struct nlattr *a;

			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
				done = true;
				break;
			}
			alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
			for_each_nla(a, m + 1, alen) {
				if (a->nla_type != INET_DIAG_ULP_INFO ||
				    !parse_ulp(a, &s))
					continue;
				endpoint(s.local, sizeof(s.local), family,
					 m->id.idiag_src, m->id.idiag_sport);
				endpoint(s.peer, sizeof(s.peer), family,
					 m->id.idiag_dst, m->id.idiag_dport);
				memcpy(&s.cookie, m->id.idiag_cookie,
				       sizeof(s.cookie));
				fn(&s, arg);
			}
		}
	}
out:
	close(fd);
	return err;
}

/* every TLS socket of namespace @ns (NULL: tlsrekey's) */
static int dump_netns(const struct netns *ns, sock_fn fn, void *arg)
{
	int err;

	if (ns && !enter_netns(ns->path))
		return -errno;
	err = dump_family(AF_INET, ns, fn, arg) ?:
	      dump_family(AF_INET6, ns, fn, arg);
	if (ns)
		leave_netns();
	return err;
}

static const char *conf_name(__u16 conf)
{
	switch (conf) {
	case TLS_CONF_SW:
		return "sw";
	case TLS_CONF_HW:
		return "hw";
	case TLS_CONF_HW_RECORD:
		return "hw_record";
	default:
		return "none";
	}
}

static const char *mode_name(__u8 mode)
{
	return mode < sizeof(mode_names) / sizeof(mode_names[0]) ?
	       mode_names[mode] : "unknown";
}

static void dir_json(const char *name, const struct rekey_dir *d)
{
	jsonw_name(json_wtr, name);
	jsonw_start_object(json_wtr);
	jsonw_string_field(json_wtr, "conf", conf_name(d->conf));
	if (d->offloaded) {
		jsonw_uint_field(json_wtr, "generation", d->generation);
		jsonw_string_field(json_wtr, "mode", mode_name(d->mode));
		jsonw_uint_field(json_wtr, "attempts", d->attempts);
		if (d->in_sw) {
			jsonw_lluint_field(json_wtr, "window_ns", d->window_ns);
			jsonw_lluint_field(json_wtr, "window_bytes",
					   d->window_bytes);
		}
		jsonw_string_field(json_wtr, "policy", d->policy);
	}
	jsonw_end_object(json_wtr);
}

static void dir_text(const char *name, const struct rekey_dir *d)
{
	printf("  %s %s", name, conf_name(d->conf));
	if (!d->offloaded)
		return;
	printf(" gen %u %s", d->generation, mode_name(d->mode));
	if (d->in_sw)
		printf(" %.1fms %lluB", d->window_ns / 1e6, d->window_bytes);
	printf(" attempts %u policy %s", d->attempts,
	       *d->policy ? d->policy : "built-in");
}

static void print_sock(const struct tls_sock *s, void *arg)
{
	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_string_field(json_wtr, "netns", s->ns ? s->ns->label : "");
		jsonw_string_field(json_wtr, "local", s->local);
		jsonw_string_field(json_wtr, "peer", s->peer);
		jsonw_lluint_field(json_wtr, "cookie", s->cookie);
		dir_json("tx", &s->tx);
		dir_json("rx", &s->rx);
		jsonw_end_object(json_wtr);
		return;
	}
	printf("%-8s %s -> %s", s->ns ? s->ns->label : "-", s->local, s->peer);
	dir_text("tx", &s->tx);
	dir_text("rx", &s->rx);
	putchar('\n');
}

int cmd_sockets(const char *name)
{
	const struct netns *one = NULL;
	int err = check_kernel(), i;

	if (err)
		return err;
	if (name) {
		one = netns_by_name(name);
		if (!one)
			return fail(EXIT_USAGE, "no netns '%s' in /run/netns", name);
	} else {
		netns_scan();
	}
	if (json_wtr)
		jsonw_start_array(json_wtr);
	for (i = 0; !err && i < (one ? 1 : nr_netns); i++) {
		err = dump_netns(one ?: &netns[i], print_sock, NULL);
		if (err == -EPERM || err == -EACCES) {
			if (json_wtr)
				jsonw_end_array(json_wtr);
			return fail_errno(err, "sock_diag");
		}
		if (err) {
			if (json_wtr)
				jsonw_end_array(json_wtr);
			return fail(EXIT_STATE, "sock_diag in netns %s: %s",
				    (one ?: &netns[i])->label, strerror(-err));
		}
	}
	if (json_wtr)
		jsonw_end_array(json_wtr);
	return 0;
}

/* ------------------------------------------------------------ list */

#define MAX_LISTED	64

struct usage {
	int nr;
	struct {
		char name[32];		/* "" for the built-in decisions */
		char defaults[512];	/* namespaces whose default it is */
		int sockets;		/* TLS sockets it decides for */
	} p[MAX_LISTED];
};

static int usage_of(struct usage *u, const char *name)
{
	int i;

	for (i = 0; i < u->nr; i++)
		if (!strcmp(u->p[i].name, name))
			return i;
	if (u->nr == MAX_LISTED)
		return -1;
	snprintf(u->p[u->nr].name, sizeof(u->p[0].name), "%s", name);
	return u->nr++;
}

/* a socket counts once for each policy deciding one of its directions */
static void count_sock(const struct tls_sock *s, void *arg)
{
	struct usage *u = arg;
	int i = s->tx.offloaded ? usage_of(u, s->tx.policy) : -1;

	if (i >= 0)
		u->p[i].sockets++;
	if (s->rx.offloaded && (!s->tx.offloaded ||
				strcmp(s->rx.policy, s->tx.policy))) {
		i = usage_of(u, s->rx.policy);
		if (i >= 0)
			u->p[i].sockets++;
	}
}

static void read_default(const struct netns *n, struct usage *u)
{
	char name[64];
	size_t len;
	int i;

	if (!enter_netns(n->path))
		return;
	if (netns_default(name, sizeof(name))) {
		i = usage_of(u, name);
		len = i < 0 ? 0 : strlen(u->p[i].defaults);
		if (i >= 0)
			snprintf(u->p[i].defaults + len,
				 sizeof(u->p[i].defaults) - len, "%s%s",
				 len ? " " : "", n->label);
	}
	leave_netns();
}

int cmd_list(void)
{
	static struct usage u;
	char line[64];
	FILE *f;
	int err = check_kernel(), i;

	if (err)
		return err;
	u.nr = 0;
	f = fopen("/sys/kernel/tls_rekey/policies", "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		usage_of(&u, line);
	}
	if (f)
		fclose(f);
	usage_of(&u, "");	/* the built-in decisions, last */
	netns_scan();
	for (i = 0; i < nr_netns; i++) {
		read_default(&netns[i], &u);
		err = dump_netns(&netns[i], count_sock, &u);
		if (err == -EPERM || err == -EACCES)
			return fail_errno(err, "sock_diag");
	}
	if (json_wtr)
		jsonw_start_array(json_wtr);
	for (i = 0; i < u.nr; i++) {
		char *n, *save = NULL;

		if (!json_wtr) {
			printf("%-16s default in: %-24s sockets: %d\n",
			       *u.p[i].name ? u.p[i].name : "(built-in)",
			       *u.p[i].defaults ? u.p[i].defaults : "-",
			       u.p[i].sockets);
			continue;
		}
		jsonw_start_object(json_wtr);
		jsonw_string_field(json_wtr, "policy", u.p[i].name);
		jsonw_name(json_wtr, "default_in");
		jsonw_start_array(json_wtr);
		for (n = strtok_r(u.p[i].defaults, " ", &save); n;
		     n = strtok_r(NULL, " ", &save))
			jsonw_string(json_wtr, n);
		jsonw_end_array(json_wtr);
		jsonw_int_field(json_wtr, "sockets", u.p[i].sockets);
		jsonw_end_object(json_wtr);
	}
	if (json_wtr)
		jsonw_end_array(json_wtr);
	return 0;
}
