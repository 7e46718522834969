// SPDX-License-Identifier: GPL-2.0
/*
 * tlsrekey: manage the key update policies of offloaded kTLS sockets.
 *
 * A policy is a BPF struct_ops (struct tls_rekey_ops) that takes the
 * decisions of TLS 1.3 key updates on sockets whose records the NIC
 * encrypts or decrypts. This tool loads one (a built-in from bpf/, or any
 * .bpf.o), registers it by name through a struct_ops link and pins the link
 * and the policy's maps in a bpffs directory, so that the policy outlives
 * the tool; it chooses namespaces' defaults, shows who uses which policy and
 * each socket's state, replaces, tunes, watches and removes policies.
 * `tlsrekey --help` is the manual. This file: the command line, the help,
 * the dispatch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tlsrekey.h"

#ifndef TLSREKEY_VERSION
#define TLSREKEY_VERSION "unknown"
#endif

const char *pin_dir = DEFAULT_DIR;
const char *policy_sel;
bool verbose;
json_writer_t *json_wtr;

int fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_name(json_wtr, "error");
		jsonw_vprintf_enquote(json_wtr, fmt, ap);
		jsonw_int_field(json_wtr, "exit_code", code);
		jsonw_end_object(json_wtr);
	} else {
		fprintf(stderr, "tlsrekey: ");
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
	return code;
}

int fail_errno(int err, const char *what)
{
	err = err < 0 ? -err : err;
	if (err == EPERM || err == EACCES)
		return fail(EXIT_PERM, "%s: %s; run as root (needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)",
			    what, strerror(err));
	return fail(EXIT_LOAD, "%s: %s", what, strerror(err));
}

/* ------------------------------------------------------------ options */

/* Each option but the global ones applies to some commands only; any
 * other use is refused.
 */
enum {
	OPT_SET = 1 << 0,
	OPT_NETNS = 1 << 1,
	OPT_WATCH = 1 << 2,
	OPT_COUNT = 1 << 3,
	OPT_FORMAT = 1 << 4,
	OPT_OUTPUT = 1 << 5,
};

static const struct option options[] = {
	{ "pin-dir", required_argument, NULL, 'd' },
	{ "policy", required_argument, NULL, 'P' },
	{ "json", no_argument, NULL, 'j' },
	{ "pretty", no_argument, NULL, 'p' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "version", no_argument, NULL, 'V' },
	{ "help", no_argument, NULL, 'h' },
	{ "set", required_argument, NULL, 's' },
	{ "netns", required_argument, NULL, 'n' },
	{ "watch", required_argument, NULL, 'w' },
	{ "count", required_argument, NULL, 'c' },
	{ "format", required_argument, NULL, 'f' },
	{ "output", required_argument, NULL, 'o' },
	{ 0 }
};

static const char short_options[] = ":d:P:jpvVhs:n:w:c:f:o:";

static const struct command {
	const char *name, *args;
	unsigned int options;
	const char *text;
} commands[] = {
	{ "load", "POLICY [-s|--set KEY=VALUE]...", OPT_SET,
	  "Load POLICY, set its tunables, register it with the kernel by its name\n"
	  "and pin its link and maps in the pin directory, so that it stays\n"
	  "registered after tlsrekey exits; several can be pinned side by side\n"
	  "(the other commands then take --policy NAME). POLICY is a built-in\n"
	  "(below) or a path to a .bpf.o implementing struct tls_rekey_ops.\n"
	  "Registering is not choosing: a policy decides for the sockets of the\n"
	  "namespaces that make it their default (tlsrekey default) and for\n"
	  "sockets that choose it (setsockopt TLS_REKEY_POLICY). Refuses if the\n"
	  "policy is pinned already (use replace) or the kernel has another of\n"
	  "that name. A failed load leaves no pins behind.\n" },
	{ "default", "NAME [-n|--netns NETNS]", OPT_NETNS,
	  "Make the registered policy NAME (or the one of a .bpf.o given by its\n"
	  "path) the default of tlsrekey's network namespace, or of NETNS\n"
	  "(/run/netns/NETNS): the sysctl net.tls.rekey_policy. An empty NAME\n"
	  "('') returns it to the kernel's built-in decisions. A namespace created later starts with the initial\n"
	  "namespace's default. Key updates under way keep their policy.\n" },
	{ "replace", "POLICY [-s|--set KEY=VALUE]...", OPT_SET,
	  "Load POLICY and swap it for the pinned one with one link update: the\n"
	  "namespaces and sockets that chose the old policy have the new one, never\n"
	  "no decision. The old policy's maps are unpinned (those the new one\n"
	  "shares by name are kept).\n" },
	{ "unload", "[NAME]", 0,
	  "Unregister the pinned policy NAME (or the only one pinned): unpin its\n"
	  "link and remove its pins. Namespaces whose default it was get the\n"
	  "built-in decisions, sockets that chose it their namespace's default;\n"
	  "a socket in the middle of a key update finishes it with that default.\n" },
	{ "list", "", 0,
	  "List the registered policies and the built-in decisions, each with the\n"
	  "network namespaces whose default it is and the TLS sockets it decides\n"
	  "for (a socket counts once per policy deciding one of its offloaded\n"
	  "directions). JSON: [{policy, default_in: [netns], sockets}], the\n"
	  "built-in decisions as policy \"\".\n" },
	{ "sockets", "[-n|--netns NETNS]", OPT_NETNS,
	  "List the TLS sockets of every network namespace (or of NETNS) with\n"
	  "each direction's key update state, from the kernel (sock_diag, as ss\n"
	  "reads it): conf (sw, hw), and for offloaded directions the key\n"
	  "generation, the mode (device; sw_window: in software until the device\n"
	  "may have the key; sw_refused: the device refused it; sw_policy: in\n"
	  "software by the policy's decision; sw_no_device; sw_storm: in software\n"
	  "until a key update storm calms down), tls_dev_add attempts\n"
	  "for the key, time and bytes in software for it, and the policy deciding\n"
	  "(that of a key update under way, else the socket's next one's). JSON:\n"
	  "[{netns, local, peer, cookie, tx: {conf, generation, mode, attempts,\n"
	  "window_ns, window_bytes, policy}, rx: {...}}].\n" },
	{ "status", "", 0,
	  "Show whether the kernel supports policies, which ones are registered\n"
	  "(/sys/kernel/tls_rekey/policies), the default of tlsrekey's network\n"
	  "namespace (net.tls.rekey_policy), the policy pinned in the pin\n"
	  "directory and what it decides, since when, its link and map ids, and\n"
	  "its tunables with their meaning. JSON: {kernel_support, registered:\n"
	  "[name], netns_default, pin_dir, policy, about, since, link_id,\n"
	  "struct_ops_map_id, maps: {name: id}, tunables: {name: value}}.\n" },
	{ "stats", "[-f FORMAT] [-n NETNS] [-o FILE] [-w SECONDS [-c N]]",
	  OPT_NETNS | OPT_WATCH | OPT_COUNT | OPT_FORMAT | OPT_OUTPUT,
	  "  -f, --format text|json|prometheus  (default text; json is -j)\n"
	  "  -n, --netns NAME      /proc/net/tls_stat of netns NAME\n"
	  "  -o, --output FILE     each round replaces FILE whole (FILE.tmp, renamed)\n"
	  "  -w, --watch SECONDS   again every SECONDS\n"
	  "  -c, --count N         N times (with --watch)\n\n"
	  "Show the active policy's counters (per-CPU maps, CPUs summed) by the\n"
	  "netns, device and direction its keys name, histograms as text bars\n"
	  "(slot [a, b) counts values from a to b), then the key update lines of\n"
	  "/proc/net/tls_stat of tlsrekey's netns, or of the netns NAME\n"
	  "(/run/netns/NAME, as ip-netns names them). --watch repeats every\n"
	  "SECONDS (N times with --count, else until interrupted).\n"
	  "JSON (-j), one object per line: {time, policy, maps: {MAP: VALUE or\n"
	  "[{key, labels, value}]}, tls_stat: {name: value}}; values are objects\n"
	  "of counters, histograms arrays of log2 slots. Fields are only ever\n"
	  "added. Prometheus text exposition: every policy counter as\n"
	  "tlsrekey_MAP_FIELD_total, histograms as _bucket{le} and _count (fields\n"
	  "in _us, _ms, _ns in _seconds), and\n"
	  "every line of /proc/net/tls_stat of every netns (or of NAME) as\n"
	  "tlsrekey_tls_LINE (_total unless a Curr gauge), labels policy, netns,\n"
	  "device, direction. Naming devices and namespaces other than its own\n"
	  "needs CAP_SYS_ADMIN.\n" },
	{ "set", "KEY=VALUE...", 0,
	  "Change tunables of the active policy, live. Values are checked\n"
	  "(unsigned integer, within the limit the policy gives); 0 selects the\n"
	  "policy's default.\n" },
};

#define NR_COMMANDS	(int)(sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *name)
{
	int i;

	for (i = 0; name && i < NR_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void usage(FILE *f)
{
	struct bpf_object *obj;
	const char *about;
	int i;

	fprintf(f,
		"Usage: tlsrekey [OPTIONS] COMMAND [ARGS]\n"
		"       tlsrekey help [COMMAND]\n\n"
		"Manage the key update policies of offloaded kTLS sockets: BPF\n"
		"struct_ops (struct tls_rekey_ops) that decide when a NIC gets the new\n"
		"key after a TLS 1.3 KeyUpdate and how refused keys are retried,\n"
		"registered by name and chosen per network namespace or per socket.\n\n"
		"Commands:\n");
	for (i = 0; i < NR_COMMANDS; i++)
		fprintf(f, "  %s%s%s\n", commands[i].name, *commands[i].args ? " " : "",
			commands[i].args);
	fprintf(f, "\nBuilt-in policies:\n");
	for (i = 0; i < nr_builtins; i++) {
		obj = builtin_open(&builtins[i]);
		about = obj ? policy_about(bpf_object__btf(obj)) : NULL;
		fprintf(f, "  %-10s %s\n", builtins[i].name, about ?: "");
		bpf_object__close(obj);
	}
	fprintf(f,
		"\nOptions:\n"
		"  -d, --pin-dir DIR  pin directory on bpffs (default " DEFAULT_DIR ")\n"
		"  -P, --policy NAME  the pinned policy to act on, when DIR has several\n"
		"  -j, --json         output JSON (errors too: {\"error\", \"exit_code\"})\n"
		"  -p, --pretty       output JSON, indented\n"
		"  -v, --verbose      print libbpf's messages as they come\n"
		"  -V, --version      print the version and exit\n"
		"  -h, --help         print this help, or a command's with COMMAND\n\n"
		"Exit codes: 0 done; 1 bad command line, tunable or value; 2 kernel\n"
		"without struct tls_rekey_ops; 3 permission denied (run as root);\n"
		"4 no bpffs or unusable pin directory; 5 a policy is pinned (load) or\n"
		"none is (replace, unload, set), several are and --policy is missing,\n"
		"or no policy of that name is registered (default); 6 the policy\n"
		"failed to load or register.\n\n"
		"Without tlsrekey: bpftool struct_ops register POLICY.bpf.o " DEFAULT_DIR "\n"
		"See tlsrekey(8) and 'tlsrekey help COMMAND'.\n");
}

static int help(const char *name)
{
	const struct command *c = command_find(name);

	if (!name) {
		usage(stdout);
		return 0;
	}
	if (!c)
		return fail(EXIT_USAGE, "no command '%s'; see 'tlsrekey --help'", name);
	printf("Usage: tlsrekey [OPTIONS] %s%s%s\n\n%s", c->name, *c->args ? " " : "",
	       c->args, c->text);
	if (c->options & OPT_SET || !strcmp(c->name, "set"))
		print_builtin_tunables();
	return 0;
}

static int version(void)
{
	if (json_wtr) {
		jsonw_start_object(json_wtr);
		jsonw_string_field(json_wtr, "version", TLSREKEY_VERSION);
		jsonw_string_field(json_wtr, "libbpf_version",
				   libbpf_version_string());
		jsonw_end_object(json_wtr);
	} else {
		printf("tlsrekey %s\nusing libbpf %s\n", TLSREKEY_VERSION,
		       libbpf_version_string());
	}
	return 0;
}

/* a whole number from 1 to 86400 for --watch and --count */
static int seconds_or_count(const char *opt, const char *arg, int *out)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (!*arg || *end || v <= 0 || v > 86400)
		return fail(EXIT_USAGE, "%s %s: expected a whole number from 1 to 86400",
			    opt, arg);
	*out = v;
	return 0;
}

/* -j and -p, before anything can fail: errors are JSON too */
static void json_first(int argc, char **argv)
{
	bool json = false, pretty = false;
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i];

		json |= !strcmp(a, "--json");
		pretty |= !strcmp(a, "--pretty");
		/* -j, -p, and clusters of flags such as -jp */
		if (a[0] == '-' && a[1] != '-' && strspn(a + 1, "jpvVh") == strlen(a + 1)) {
			json |= strchr(a, 'j') != NULL;
			pretty |= strchr(a, 'p') != NULL;
		}
	}
	if (!json && !pretty)
		return;
	json_wtr = jsonw_new(stdout);
	if (json_wtr)
		jsonw_pretty(json_wtr, pretty);
}

static int run(int argc, char **argv)
{
	static const char *const formats[] = { "text", "json", "prometheus" };
	int opt, err, watch = 0, count = 0, nr_sets = 0, i;
	unsigned int given = 0, format_set = 0;
	enum format format = FORMAT_TEXT;
	const struct command *c;
	const char *netns = NULL, *output = NULL;
	char *sets[MAX_SETS];
	bool want_help = false;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, short_options, options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			pin_dir = optarg;
			break;
		case 'P':
			policy_sel = optarg;
			break;
		case 'j':
		case 'p':
			break;		/* json_first() */
		case 'v':
			verbose = true;
			break;
		case 'V':
			return version();
		case 'h':
			want_help = true;
			break;
		case 's':
			if (nr_sets == MAX_SETS)
				return fail(EXIT_USAGE, "at most %d settings", MAX_SETS);
			sets[nr_sets++] = optarg;
			given |= OPT_SET;
			break;
		case 'n':
			netns = optarg;
			given |= OPT_NETNS;
			break;
		case 'o':
			output = optarg;
			given |= OPT_OUTPUT;
			break;
		case 'w':
		case 'c':
			err = seconds_or_count(opt == 'w' ? "--watch" : "--count",
					       optarg, opt == 'w' ? &watch : &count);
			if (err)
				return err;
			given |= opt == 'w' ? OPT_WATCH : OPT_COUNT;
			break;
		case 'f':
			for (i = 0; i < 3 && strcmp(optarg, formats[i]); i++)
				;
			if (i == 3)
				return fail(EXIT_USAGE, "--format %s: expected text, json or prometheus",
					    optarg);
			format = i;
			format_set = 1;
			given |= OPT_FORMAT;
			break;
		case ':':
			if (optopt)
				return fail(EXIT_USAGE, "option '-%c' needs a value", optopt);
			return fail(EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
		default:
			if (optopt)
				return fail(EXIT_USAGE, "unknown option '-%c'; see 'tlsrekey --help'",
					    optopt);
			return fail(EXIT_USAGE, "unknown option '%s'; see 'tlsrekey --help'",
				    argv[optind - 1]);
		}
	}
	argv += optind;
	argc -= optind;

	if (argc && !strcmp(argv[0], "help"))
		return argc > 2 ? fail(EXIT_USAGE, "help takes one COMMAND") :
				  help(argc > 1 ? argv[1] : NULL);
	if (!argc) {
		if (want_help)
			return help(NULL);
		return fail(EXIT_USAGE, "no command given; see 'tlsrekey --help'");
	}
	c = command_find(argv[0]);
	if (!c)
		return fail(EXIT_USAGE, "no command '%s'; see 'tlsrekey --help'", argv[0]);
	if (want_help)
		return help(c->name);
	if (given & ~c->options)
		return fail(EXIT_USAGE, "%s takes no %s; see 'tlsrekey help %s'",
			    c->name,
			    given & ~c->options & OPT_SET ? "--set" :
			    given & ~c->options & OPT_NETNS ? "--netns" :
			    given & ~c->options & OPT_WATCH ? "--watch" :
			    given & ~c->options & OPT_COUNT ? "--count" :
			    given & ~c->options & OPT_OUTPUT ? "--output" : "--format",
			    c->name);
	if (count && !watch)
		return fail(EXIT_USAGE, "--count needs --watch");
	if (format_set && (format == FORMAT_JSON) != !!json_wtr)
		return fail(EXIT_USAGE, "--format %s and %s disagree: -j is --format json",
			    formats[format], json_wtr ? "-j" : "no -j");
	if (format == FORMAT_JSON && !json_wtr) {
		json_wtr = jsonw_new(stdout);
		if (!json_wtr)
			return fail(EXIT_LOAD, "out of memory");
	}

	log_to_buffer();
	if (c->options & OPT_SET) {	/* load, replace */
		if (argc < 2)
			return fail(EXIT_USAGE, "%s needs a POLICY; see 'tlsrekey help %s'",
				    c->name, c->name);
		if (argc > 2)
			return fail(EXIT_USAGE, "unexpected argument '%s' for %s", argv[2],
				    c->name);
		return !strcmp(c->name, "load") ? cmd_load(argv[1], sets, nr_sets) :
						  cmd_replace(argv[1], sets, nr_sets);
	}
	if (!strcmp(c->name, "default")) {
		if (argc != 2)
			return fail(EXIT_USAGE, argc < 2 ? "default needs a NAME ('' for the built-in decisions)" :
				    "unexpected argument '%s' for default", argv[argc - 1]);
		return cmd_default(argv[1], netns);
	}
	if (!strcmp(c->name, "set")) {
		if (argc < 2)
			return fail(EXIT_USAGE, "set needs KEY=VALUE; see 'tlsrekey help set'");
		if (argc - 1 > MAX_SETS)
			return fail(EXIT_USAGE, "at most %d settings", MAX_SETS);
		return cmd_set(argv + 1, argc - 1);
	}
	if (!strcmp(c->name, "unload")) {
		if (argc > 2)
			return fail(EXIT_USAGE, "unexpected argument '%s' for unload", argv[2]);
		return cmd_unload(argc > 1 ? argv[1] : NULL);
	}
	if (argc > 1)
		return fail(EXIT_USAGE, "unexpected argument '%s' for %s", argv[1],
			    c->name);
	if (!strcmp(c->name, "status"))
		return cmd_status();
	if (!strcmp(c->name, "list"))
		return cmd_list();
	if (!strcmp(c->name, "sockets"))
		return cmd_sockets(netns);
	return cmd_stats(json_wtr ? FORMAT_JSON : format, netns, output, watch, count);
}

int main(int argc, char **argv)
{
	int err;

	json_first(argc, argv);
	err = run(argc, argv);
	if (json_wtr)
		jsonw_destroy(&json_wtr);
	return err;
}
