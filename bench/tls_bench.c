// SPDX-License-Identifier: GPL-2.0
/*
 * tls_bench: the measurements behind `make bench` (selftests/bench.sh), on
 * the two-namespace netdevsim pair set up by the caller (selftests/lib/
 * topo.sh). Each run prints one line of KEY=VALUE pairs; bench.sh adds
 * what the run was and bench_report.py turns the lines into the table.
 *
 *   stream   a -> b TLS 1.3 transfer, KeyUpdates every -e KiB (-k at a
 *            time), paced (-r) or not, every byte checked by b's kTLS
 *            socket: throughput, CPU
 *            time (all CPUs, /proc/stat) and the devices' key installs
 *   latency  setsockopt(TLS_TX) time of a key update on a's socket (device
 *            or SW, whichever the device's features make it), idle (-i:
 *            nothing unacked) or with a record in flight (the call opens a
 *            SW window), and the records sent in SW before the device had
 *            the key again; with -R setsockopt(TLS_RX) on b's socket, with
 *            a record of the new key queued (or, -i, none). Between two
 *            calls a SW socket gets the traffic an offloaded one needs to
 *            get its key back (a call right after other work costs more
 *            than one in a tight loop), and its ACKs are in.
 *   scale    -n connections update their TX key at the same moment with
 *            data in flight (ACKs delayed -d ms): slab memory per pending
 *            update, time until all are back in the device, CPU per ACK
 *            afterwards
 *   flood    a floods b with KeyUpdates (after every -e records or -E KiB;
 *            -u: update_requested, so that b updates its TX key in answer),
 *            every byte checked by b: b's throughput, CPU per key update,
 *            the devices' key installs and removals per second; with -L,
 *            meanwhile (or alone, -q: no flood), the time an unrelated
 *            socket c on a's device takes to get a new TX key
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "ktls.h"
#include "offload.h"

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* -P: the policies the sender's sockets choose, in turn */
static char *policy_names[16];
static int nr_policy_names;

static void policies_parse(char *list)
{
	char *save = NULL, *n;

	for (n = strtok_r(list, ",", &save); n && nr_policy_names < 16;
	     n = strtok_r(NULL, ",", &save))
		policy_names[nr_policy_names++] = strcmp(n, "-") ? n : "";
}

/* connection @i's socket @fd chooses its policy of -P, if any */
static void policy_choose(int fd, int i)
{
	const char *name;

	if (!nr_policy_names)
		return;
	name = policy_names[i % nr_policy_names];
	if (setsockopt(fd, SOL_TLS, TLS_REKEY_POLICY, name, strlen(name)))
		die("TLS_REKEY_POLICY");
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: tls_bench stream [-6] [-b MiB] [-e KiB] [-k N] [-w BYTES] [-S BYTES] [-r MiB/s] [-m] [-F N]\n"
		"       tls_bench latency [-i] [-R] [-n N]\n"
		"       tls_bench scale [-n N] [-d MS] [-P NAME,...]\n"
		"       tls_bench flood [-t SECS] [-e N | -E KiB] [-w BYTES] [-u] [-L [-q]]\n"
		"  -6        IPv6 (default IPv4)\n"
		"  -b MiB    bytes to send (default 64)\n"
		"  -e KiB    a key update every this many KiB (default 0: none)\n"
		"  -k N      key updates back to back at each point (default 1)\n"
		"  -w BYTES  bytes per send() (default 65536)\n"
		"  -S BYTES  SO_SNDBUF of the sender (default: autotuned)\n"
		"  -r MiB/s  pace the sender at this rate, never faster (a late send\n"
		"            skips the slots it missed; default: as fast as it can)\n"
		"  -m        mark each send() in the trace (trace_marker: \"send\")\n"
		"  -F N      a's device refuses the next N keys after the first (knob)\n"
		"  -P NAMES  stream, scale: the sender's socket(s) choose these key update\n"
		"            policies (setsockopt TLS_REKEY_POLICY), in turn; \"-\" for none\n"
		"  -i        latency: nothing in flight at the update\n"
		"  -R        latency: b's RX key update (default: a's TX)\n"
		"  -n N      latency: updates timed (default 200); scale: connections\n"
		"  -d MS     scale: b's ACKs this late while the updates are pending\n"
		"            (netem on b's port; default 200)\n"
		"  -t SECS   flood: how long (default 3)\n"
		"  -e N      flood: a KeyUpdate after every N records (default 1)\n"
		"  -E KiB    flood: a KeyUpdate after every this many KiB instead\n"
		"  -w BYTES  flood: bytes per record (default 16384)\n"
		"  -u        flood: update_requested: b answers with a KeyUpdate\n"
		"  -L        flood: time c's TX key installs meanwhile\n"
		"  -q        flood: no flood, only -L's measurement\n");
	exit(2);
}

/* The stream repeats every PERIOD bytes: a send or a check is one memcpy
 * or memcmp, so the guest's CPU goes to the kernel under test.
 */
#define PERIOD	65536
static unsigned char pattern[2 * PERIOD];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* CPU time spent outside idle by all CPUs, in seconds. */
static double cpu_busy(void)
{
	unsigned long long v[8] = {}, busy = 0;
	FILE *f = fopen("/proc/stat", "r");
	int i;

	if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			 &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 8) {
		perror("/proc/stat");
		exit(1);
	}
	fclose(f);
	for (i = 0; i < 8; i++)
		busy += i == 3 || i == 4 ? 0 : v[i];	/* idle, iowait */
	return (double)busy / sysconf(_SC_CLK_TCK);
}

/* Unreclaimable slab memory in use (/proc/meminfo, kB): where the kernel's
 * allocations for a socket live, without the caches that come and go.
 */
static long long slab_kb(void)
{
	char line[128];
	long long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		die("/proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "SUnreclaim:", 11))
			kb = atoll(line + 11);
	fclose(f);
	return kb;
}

/* A /proc/net/snmp "Tcp:" counter of the caller's netns. */
static long long tcp_stat(const char *name)
{
	char names[1024], vals[1024], *n, *v, *sn, *sv;
	long long val = -1;
	FILE *f = fopen("/proc/net/snmp", "r");

	while (f && fgets(names, sizeof(names), f) && fgets(vals, sizeof(vals), f)) {
		if (strncmp(names, "Tcp:", 4))
			continue;
		n = strtok_r(names, " \n", &sn);
		v = strtok_r(vals, " \n", &sv);
		while (n && v) {
			if (!strcmp(n, name))
				val = atoll(v);
			n = strtok_r(NULL, " \n", &sn);
			v = strtok_r(NULL, " \n", &sv);
		}
	}
	if (f)
		fclose(f);
	return val;
}

static int send_key_update(int fd, struct tls_key *k, unsigned int seed)
{
	if (send_record(fd, TLS_RECORD_HANDSHAKE, key_update_msg,
			sizeof(key_update_msg)) != sizeof(key_update_msg))
		return -1;
	key_init(k, TLS_1_3_VERSION, k->info.cipher_type, seed);
	return tls_key_set(fd, TLS_TX, k);
}

/* ------------------------------------------------------------ stream */

/* b: checks every byte, installs each new RX key and, when the KeyUpdate
 * asks for it (flood -u), answers with one of its own TX key (@tx_key)
 */
struct receiver {
	int fd;
	struct tls_key key, tx_key;
	unsigned int seed, tx_seed, rekeys, answered;
	unsigned long long bytes;
	const char *err;
};

static void *receive_stream(void *arg)
{
	static unsigned char buf[PERIOD];
	struct receiver *r = arg;
	unsigned char type;
	ssize_t n;

	while ((n = recv_record(r->fd, buf, sizeof(buf), &type, 0)) > 0) {
		if (type == TLS_RECORD_HANDSHAKE) {
			key_init(&r->key, TLS_1_3_VERSION,
				 r->key.info.cipher_type, ++r->seed);
			if (n != sizeof(key_update_msg) ||
			    tls_key_set(r->fd, TLS_RX, &r->key)) {
				r->err = "key update";
				break;
			}
			r->rekeys++;
			if (buf[4] && send_key_update(r->fd, &r->tx_key, ++r->tx_seed)) {
				r->err = "answer";
				break;
			}
			r->answered += buf[4];
			continue;
		}
		if (memcmp(buf, pattern + r->bytes % PERIOD, n)) {
			r->err = "corrupt byte";
			break;
		}
		r->bytes += n;
	}
	if (n < 0)
		r->err = strerror(errno);
	shutdown(r->fd, SHUT_WR);	/* the end of b's answers */
	return NULL;
}

static int stream(int argc, char **argv)
{
	unsigned long long bytes = 64ULL << 20, every = 0, off, outq_sum = 0;
	long long adds[2], dels[2], windows[2], sealed;
	int family = AF_INET, burst = 1, wsize = 65536, sndbuf = 0;
	int a, b, opt, i, outq, points = 0, marker = -1, refuse = 0;
	unsigned int seed = 1, rekeys = 0;
	struct receiver r = { .seed = 1 };
	struct tls_key k;
	double t0, t1, c0, c1, rate = 0, t, next, skipped_s = 0;
	struct tcp_info ti;
	socklen_t ti_len = sizeof(ti);
	char rtts[4096] = "-";
	int rtts_len = 0;
	unsigned long sends = 0, skips = 0;
	pthread_t th;
	size_t len;

	while ((opt = getopt(argc, argv, "6b:e:k:w:S:r:mF:P:")) != -1) {
		switch (opt) {
		case '6': family = AF_INET6; break;
		case 'b': bytes = strtoull(optarg, NULL, 0) << 20; break;
		case 'e': every = strtoull(optarg, NULL, 0) << 10; break;
		case 'k': burst = atoi(optarg); break;
		case 'w': wsize = atoi(optarg); break;
		case 'S': sndbuf = atoi(optarg); break;
		case 'r': rate = atof(optarg) * (1 << 20); break;
		case 'm':
			marker = open("/sys/kernel/tracing/trace_marker", O_WRONLY);
			if (marker < 0)
				die("trace_marker");
			break;
		case 'F': refuse = atoi(optarg); break;
		case 'P': policies_parse(optarg); break;
		default: usage();
		}
	}
	if (!bytes || burst < 1 || wsize < 1 || wsize > PERIOD)
		usage();
	if (connect_pair(family, &a, &b) || tls_ulp(a) || tls_ulp(b))
		die("connection");
	policy_choose(a, 0);
	if (sndbuf && setsockopt(a, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)))
		die("SO_SNDBUF");
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, seed);
	r.fd = b;
	r.key = k;
	if (tls_key_set(a, TLS_TX, &k) || tls_key_set(b, TLS_RX, &k))
		die("keys");
	if (refuse && dev_knob(NSIM_A, "fail_add", refuse))
		die("fail_add");
	adds[0] = dev_stat(NSIM_A, "adds");
	dels[0] = dev_stat(NSIM_A, "dels");
	adds[1] = dev_stat(NSIM_B, "adds");
	dels[1] = dev_stat(NSIM_B, "dels");
	sealed = dev_stat(NSIM_A, "tx_records");
	windows[0] = ns_stat("tls-a", "TlsTxRekeyDeviceSw");
	windows[1] = ns_stat("tls-b", "TlsRxRekeyDeviceSw");
	pthread_create(&th, NULL, receive_stream, &r);

	c0 = cpu_busy();
	t0 = now();
	next = t0;
	for (off = 0; off < bytes; off += len) {
		len = bytes - off < (unsigned int)wsize ? bytes - off : wsize;
		if (every && len > every - off % every)
			len = every - off % every;
		/* Paced: each send waits for its slot. A sender more than one
		 * send late (a stall, a path slower than the pace) skips the
		 * slots it missed instead of catching up in a burst, which
		 * would fill the SW window of the next key update faster than
		 * the application's rate.
		 */
		if (rate) {
			t = now();
			if (next > t)
				usleep((next - t) * 1e6);
			else if (t - next > len / rate) {
				skipped_s += t - next - len / rate;
				skips++;
				next = t - len / rate;
			}
			next += len / rate;
		}
		if (marker >= 0 && write(marker, "send", 4) != 4)
			die("trace_marker");
		if (send_all(a, pattern + off % PERIOD, len))
			die("send");
		sends++;
		if (!every || (off + len) % every || off + len >= bytes)
			continue;
		ioctl(a, SIOCOUTQ, &outq);
		outq_sum += outq;
		/* TCP's smoothed RTT at each update: one round trip of data
		 * is the floor of the SW window (bench_report.py)
		 */
		if (getsockopt(a, IPPROTO_TCP, TCP_INFO, &ti, &ti_len))
			die("TCP_INFO");
		if (rtts_len < (int)sizeof(rtts) - 16)
			rtts_len += snprintf(rtts + rtts_len, 16, "%s%u",
					     points ? "," : "", ti.tcpi_rtt);
		points++;
		for (i = 0; i < burst; i++, rekeys++)
			if (send_key_update(a, &k, ++seed))
				die("key update");
	}
	shutdown(a, SHUT_WR);
	pthread_join(th, NULL);
	t1 = now();
	c1 = cpu_busy();

	if (r.err || r.bytes != bytes || r.rekeys != rekeys) {
		fprintf(stderr, "tls_bench: %llu of %llu bytes, %u of %u key updates: %s\n",
			r.bytes, bytes, r.rekeys, rekeys, r.err ?: "short");
		return 1;
	}
	printf("bytes=%llu secs=%.4f mibps=%.2f cpu_s=%.3f sends=%lu send_us=%.1f "
	       "rekeys=%u points=%d outq_sum=%llu records=%llu hw_records=%lld "
	       "tx_adds=%lld tx_dels=%lld tx_windows=%lld rx_adds=%lld rx_dels=%lld "
	       "rx_windows=%lld tx_open_at_end=%ld srtt_us=%s pace_skips=%lu "
	       "pace_skipped_s=%.3f intact=1\n",
	       bytes, t1 - t0, bytes / (t1 - t0) / (1 << 20), c1 - c0, sends,
	       (t1 - t0) * 1e6 / sends, rekeys, points, outq_sum,
	       (bytes + 16383) / 16384, dev_stat(NSIM_A, "tx_records") - sealed,
	       dev_stat(NSIM_A, "adds") - adds[0], dev_stat(NSIM_A, "dels") - dels[0],
	       ns_stat("tls-a", "TlsTxRekeyDeviceSw") - windows[0],
	       dev_stat(NSIM_B, "adds") - adds[1], dev_stat(NSIM_B, "dels") - dels[1],
	       ns_stat("tls-b", "TlsRxRekeyDeviceSw") - windows[1],
	       ns_stat("tls-a", "TlsCurrRekeyWindow"), rtts, skips, skipped_s);
	close(a);
	close(b);
	return 0;
}

/* ------------------------------------------------------------ drain */

/* Reads and drops what arrives on plain TCP sockets until all are at EOF
 * (epoll: the cost per wakeup does not grow with the number of sockets).
 */
struct drain {
	int *fds, n;
};

static void *drain(void *arg)
{
	static unsigned char buf[PERIOD];
	struct drain *d = arg;
	struct epoll_event ev[64];
	int i, k, ep = epoll_create1(0), open = d->n;
	ssize_t n;

	for (i = 0; i < d->n; i++) {
		ev[0] = (struct epoll_event){ .events = EPOLLIN, .data.fd = d->fds[i] };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, d->fds[i], &ev[0]))
			die("epoll_ctl");
	}
	while (open) {
		/* EINTR: topo()'s children end while this thread waits */
		k = epoll_wait(ep, ev, 64, -1);
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < k; i++) {
			n = recv(ev[i].data.fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
				continue;
			epoll_ctl(ep, EPOLL_CTL_DEL, ev[i].data.fd, NULL);
			open--;
		}
	}
	close(ep);
	return NULL;
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;

	return a < b ? -1 : a > b;
}

/* ------------------------------------------------------------ latency */

/* Records sent after each TX key update, to count those that went out in
 * SW before the device had the key again.
 */
#define FOLLOW	16

/* Everything a sent is acked (or ioctl failed). */
static void wait_acked(int a)
{
	int outq;

	do
		usleep(1000);
	while (!ioctl(a, SIOCOUTQ, &outq) && outq);
}

/* The device has a's TX key again: some time (a grace period) after the
 * old key retired, at a send. Returns with nothing in flight, so that no
 * ACK of it lands in the next update's timed call.
 */
static void tx_key_back(int a, long long adds)
{
	int tries;

	for (tries = 0; tries < 200 && dev_stat(NSIM_A, "adds") == adds; tries++) {
		wait_acked(a);
		if (send_all(a, pattern, 1))
			die("send");
	}
	wait_acked(a);
}

static unsigned char sink[PERIOD];

/* The device has b's RX key again: past the receive window offered at the
 * update (b's receive buffer is small), and the key carried 128 KiB, so
 * that it is not short (TLS_REKEY_SHORT_KEY_BYTES: a series of short keys
 * is a storm, which the device sits out). @adds -1 (SW): the 128 KiB.
 */
static void rx_key_back(int a, int b, long long adds)
{
	int tries = 0;

	do
		if (send_all(a, pattern, 16384) ||
		    recv(b, sink, 16384, MSG_WAITALL) != 16384)
			die("rx stream");
	while (++tries < 256 && (tries < 8 || dev_stat(NSIM_B, "adds") == adds));
}

/* b reads up to and including a KeyUpdate record. */
static void read_to_key_update(int b)
{
	unsigned char type;
	ssize_t n;

	do
		n = recv_record(b, sink, sizeof(sink), &type, 0);
	while (n > 0 && type != TLS_RECORD_HANDSHAKE);
	if (n <= 0)
		die("recv");
}

static int latency(int argc, char **argv)
{
	int a, b, opt, i, j, n = 200;
	bool idle = false, rx = false, offloaded;
	struct drain d = { .fds = &b, .n = 1 };
	long long adds, sealed;
	struct tls_key k, kr;
	double *us, *sw, t;
	pthread_t th;

	while ((opt = getopt(argc, argv, "in:R")) != -1) {
		switch (opt) {
		case 'i': idle = true; break;
		case 'n': n = atoi(optarg); break;
		case 'R': rx = true; break;
		default: usage();
		}
	}
	if (n < 1)
		usage();
	us = calloc(n, sizeof(*us));
	sw = calloc(n, sizeof(*sw));
	if (connect_pair(AF_INET, &a, &b) || tls_ulp(a) || (rx && tls_ulp(b)) ||
	    (rx && setsockopt(b, SOL_SOCKET, SO_RCVBUF, &(int){ 65536 },
			      sizeof(int))))
		die("connection");
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 1);
	kr = k;
	adds = dev_stat(rx ? NSIM_B : NSIM_A, "adds");
	if (tls_key_set(a, TLS_TX, &k) || (rx && tls_key_set(b, TLS_RX, &kr)))
		die("TLS_TX/TLS_RX");
	offloaded = dev_stat(rx ? NSIM_B : NSIM_A, "adds") > adds;
	if (!rx)
		pthread_create(&th, NULL, drain, &d);

	for (i = 0; i < n; i++) {
		if (rx) {
			/* b's update, after the KeyUpdate and (unless idle)
			 * a record of the next key arrived
			 */
			adds = dev_stat(NSIM_B, "adds");
			if (send_key_update(a, &k, i + 2) ||
			    (!idle && send_all(a, pattern, 16384)))
				die("key update");
			read_to_key_update(b);
			if (!idle)
				usleep(2000);
			key_init(&kr, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, i + 2);
			t = now();
			if (tls_key_set(b, TLS_RX, &kr))
				die("RX key update");
			us[i] = (now() - t) * 1e6;
			if (!idle && recv(b, sink, 16384, MSG_WAITALL) != 16384)
				die("recv");
			/* a SW socket gets the same traffic between updates */
			rx_key_back(a, b, offloaded ? adds : -1);
			continue;
		}
		if (!idle && send_all(a, pattern, 16384))
			die("send");
		key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, i + 2);
		adds = dev_stat(NSIM_A, "adds");
		sealed = dev_stat(NSIM_A, "tx_records");
		t = now();
		if (tls_key_set(a, TLS_TX, &k))
			die("key update");
		us[i] = (now() - t) * 1e6;
		/* a SW socket sends the same between updates */
		for (j = 0; j < FOLLOW; j++)
			if (send_all(a, pattern, 16384))
				die("send");
		if (!offloaded) {
			wait_acked(a);
			continue;
		}
		sw[i] = FOLLOW + !idle - (dev_stat(NSIM_A, "tx_records") - sealed);
		tx_key_back(a, adds);
	}
	shutdown(a, SHUT_WR);
	if (!rx)
		pthread_join(th, NULL);
	qsort(us, n, sizeof(*us), cmp_double);
	qsort(sw, n, sizeof(*sw), cmp_double);
	printf("offloaded=%d dir=%s idle=%d n=%d median_us=%.1f p10_us=%.1f p90_us=%.1f",
	       offloaded, rx ? "rx" : "tx", idle, n, us[n / 2], us[n / 10],
	       us[n * 9 / 10]);
	if (offloaded && !rx)
		printf(" sw_records_median=%.0f sw_records_max=%.0f", sw[n / 2],
		       sw[n - 1]);
	/* every call's time, sorted: the distribution bench_report draws */
	for (i = 0; i < n; i++)
		printf("%s%.1f", i ? "," : " samples_us=", us[i]);
	printf("\n");
	close(a);
	close(b);
	return 0;
}

/* ------------------------------------------------------------ scale */

/* what scale sends once every connection is back in the device */
#define SCALE_MIB	16

static int scale(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	struct rlimit nofile;
	long long slab0, slab1, slab2, segs, window;
	int *a, *b, lfd, opt, i, n = 100, one = 1, rounds, delay_ms = 200;
	struct drain d;
	struct tls_key k;
	double t0, t_set, t_acked, t_hw, c0, c1;
	pthread_t th;
	int outq;

	while ((opt = getopt(argc, argv, "n:d:P:")) != -1) {
		switch (opt) {
		case 'n': n = atoi(optarg); break;
		case 'd': delay_ms = atoi(optarg); break;
		case 'P': policies_parse(optarg); break;
		default: usage();
		}
	}
	if (n < 1)
		usage();
	/* both ends of every connection, and what the process has open */
	nofile.rlim_cur = nofile.rlim_max = 2 * n + 64;
	if (setrlimit(RLIMIT_NOFILE, &nofile))
		die("RLIMIT_NOFILE");
	a = calloc(n, sizeof(*a));
	b = calloc(n, sizeof(*b));
	inet_pton(AF_INET, "10.77.0.2", &sin.sin_addr);
	if (in_netns("tls-b"))
		die("netns tls-b");
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (void *)&sin, sizeof(sin)) || listen(lfd, n))
		die("listen");
	if (in_netns("tls-a"))
		die("netns tls-a");
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 1);
	for (i = 0; i < n; i++) {
		a[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (a[i] < 0 || connect(a[i], (void *)&sin, sizeof(sin)))
			die("connect");
		b[i] = accept(lfd, NULL, NULL);
		if (b[i] < 0 || tls_ulp(a[i]))
			die("accept, TLS ULP");
		policy_choose(a[i], i);
		if (tls_key_set(a[i], TLS_TX, &k))
			die("TLS_TX");
	}
	close(lfd);
	d = (struct drain){ .fds = b, .n = n };
	pthread_create(&th, NULL, drain, &d);

	/* ACKs late from here (connections are set up: SYN-ACKs are not
	 * delayed), a record in flight everywhere (within the initial send
	 * buffer, so that no send waits), then every socket's key update
	 */
	if (topo("tc -n $NS_B qdisc replace dev $DEV_B root netem delay %dms limit 100000",
		 delay_ms))
		die("netem");
	for (i = 0; i < n; i++)
		if (send_all(a[i], pattern, 4096))
			die("send");
	slab0 = slab_kb();
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 2);
	t0 = now();
	for (i = 0; i < n; i++)
		if (tls_key_set(a[i], TLS_TX, &k))
			die("key update");
	t_set = now() - t0;
	slab1 = slab_kb();
	window = tls_stat("TlsCurrRekeyWindow");

	/* each socket gets its device key back at its first send after its
	 * old key retired (bench.sh delays the ACKs, so that all updates are
	 * pending together): wait for the ACKs, then send a record on each
	 * until none is left in SW
	 */
	for (i = 0; i < n; i++)
		while (!ioctl(a[i], SIOCOUTQ, &outq) && outq)
			usleep(1000);
	t_acked = now() - t0;
	for (rounds = 0; tls_stat("TlsCurrRekeyWindow") > 0 && rounds < 100; rounds++)
		for (i = 0; i < n; i++)
			if (send_all(a[i], pattern, 4096))
				die("send");
	t_hw = now() - t0;
	slab2 = slab_kb();
	if (topo("tc -n $NS_B qdisc del dev $DEV_B root"))
		die("netem");

	/* per-ACK cost: SCALE_MIB spread over all connections, in the device */
	segs = tcp_stat("InSegs");
	c0 = cpu_busy();
	for (i = 0; i < SCALE_MIB * 256; i++)	/* 4 KiB each */
		if (send_all(a[i % n], pattern, 4096))
			die("send");
	for (i = 0; i < n; i++)
		shutdown(a[i], SHUT_WR);
	pthread_join(th, NULL);
	c1 = cpu_busy();
	segs = tcp_stat("InSegs") - segs;

	printf("conns=%d setsockopt_s=%.4f acked_s=%.4f back_in_hw_s=%.4f rounds=%d "
	       "in_window=%lld slab_per_update_b=%.0f slab_after_b=%.0f acks=%lld "
	       "cpu_per_ack_us=%.2f cpu_per_mib_ms=%.2f in_window_after=%ld\n",
	       n, t_set, t_acked, t_hw, rounds, window, (slab1 - slab0) * 1024.0 / n,
	       (slab2 - slab0) * 1024.0 / n, segs, (c1 - c0) * 1e6 / segs,
	       (c1 - c0) * 1e3 / SCALE_MIB,
	       tls_stat("TlsCurrRekeyWindow"));
	for (i = 0; i < n; i++) {
		close(a[i]);
		close(b[i]);
	}
	return 0;
}

/* ------------------------------------------------------------ flood */

static const unsigned char key_update_req_msg[] = { TLS_HS_KEY_UPDATE, 0, 0, 1, 1 };

/* a reads b's answers: KeyUpdates only */
static void *flood_answers(void *arg)
{
	struct receiver *r = arg;
	unsigned char buf[64], type;
	ssize_t n;

	while ((n = recv_record(r->fd, buf, sizeof(buf), &type, 0)) > 0) {
		key_init(&r->key, TLS_1_3_VERSION, r->key.info.cipher_type,
			 ++r->seed);
		if (type != TLS_RECORD_HANDSHAKE ||
		    tls_key_set(r->fd, TLS_RX, &r->key)) {
			r->err = "answer";
			break;
		}
		r->rekeys++;
	}
	if (n < 0)
		r->err = strerror(errno);
	return NULL;
}

/* -L: c (tls-a, a's device) updates its idle TX key again and again; a
 * sample is the time from setsockopt(TLS_TX) until a send finds the device
 * holding the key (tls-a's TlsTxRekeyDeviceReinstall moves: the flood's
 * own TX is in its storm by then and installs nothing).
 */
#define LAT_MAX	4096

struct install_lat {
	int c;
	volatile int stop;
	int n;
	double us[LAT_MAX];
};

static void *install_latency(void *arg)
{
	struct install_lat *l = arg;
	struct tls_key k;
	long long back;
	int outq, i;
	double t;

	if (in_netns("tls-a"))
		die("netns tls-a");
	while (!l->stop && l->n < LAT_MAX) {
		if (send_record(l->c, TLS_RECORD_HANDSHAKE, key_update_msg,
				sizeof(key_update_msg)) != sizeof(key_update_msg))
			die("c: KeyUpdate");
		do
			usleep(1000);
		while (!ioctl(l->c, SIOCOUTQ, &outq) && outq);
		key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, l->n + 2);
		back = tls_stat("TlsTxRekeyDeviceReinstall");
		t = now();
		if (tls_key_set(l->c, TLS_TX, &k))
			die("c: TLS_TX");
		while (tls_stat("TlsTxRekeyDeviceReinstall") == back) {
			if (now() - t > 10)
				die("c: no device key for 10 s");
			if (send_all(l->c, pattern, 1))
				die("c: send");
			usleep(500);
		}
		l->us[l->n++] = (now() - t) * 1e6;
		/* c's key carries enough not to be short (TLS_REKEY_SHORT_KEY_BYTES):
		 * c is no storm itself
		 */
		for (i = 0; i < 10; i++)
			if (send_all(l->c, pattern, 16384))
				die("c: send");
		usleep(20000);
	}
	return NULL;
}

static int flood(int argc, char **argv)
{
	int a, b, c = -1, d = -1, opt, every = 1, wsize = 16384, answer = 0;
	unsigned long long bytes = 0, every_bytes = 0, since = 0;
	long long adds0[2], dels0[2], storm0[2], adds[2], dels[2];
	struct receiver rx = { .seed = 1, .tx_seed = 101 }, ans = { .seed = 101 };
	unsigned int seed = 1, rekeys = 0, records = 0;
	struct install_lat *lat = NULL;
	bool quiet = false, sampling = false;
	double secs = 3, t0, t1, c0, c1;
	pthread_t th[4];
	struct drain dr;
	struct tls_key k;
	int i;

	while ((opt = getopt(argc, argv, "t:e:E:w:uLq")) != -1) {
		switch (opt) {
		case 't': secs = atof(optarg); break;
		case 'e': every = atoi(optarg); break;
		case 'E': every_bytes = strtoull(optarg, NULL, 0) << 10; break;
		case 'w': wsize = atoi(optarg); break;
		case 'u': answer = 1; break;
		case 'L': lat = calloc(1, sizeof(*lat)); break;
		case 'q': quiet = true; break;
		default: usage();
		}
	}
	if (secs <= 0 || every < 1 || wsize < 1 || wsize > 16384 || (quiet && !lat))
		usage();
	if (connect_pair(AF_INET, &a, &b) || tls_ulp(a) || tls_ulp(b))
		die("connection");
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, seed);
	rx.fd = b;
	rx.key = k;
	key_init(&rx.tx_key, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 101);
	ans.fd = a;
	ans.key = rx.tx_key;
	if (tls_key_set(a, TLS_TX, &k) || tls_key_set(b, TLS_RX, &k) ||
	    (answer && (tls_key_set(b, TLS_TX, &rx.tx_key) ||
			tls_key_set(a, TLS_RX, &ans.key))))
		die("keys");
	if (lat) {
		/* c's TX on a's device; d drains what it sends */
		if (connect_pair(AF_INET, &c, &d) || tls_ulp(c))
			die("c, d");
		key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 1);
		if (tls_key_set(c, TLS_TX, &k))
			die("c: TLS_TX");
		lat->c = c;
		dr = (struct drain){ .fds = &d, .n = 1 };
		pthread_create(&th[2], NULL, drain, &dr);
		key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, seed);
	}
	for (i = 0; i < 2; i++) {
		adds0[i] = dev_stat(i ? NSIM_B : NSIM_A, "adds");
		dels0[i] = dev_stat(i ? NSIM_B : NSIM_A, "dels");
	}
	storm0[0] = ns_stat("tls-a", "TlsTxRekeyStorm");
	storm0[1] = ns_stat("tls-b", "TlsRxRekeyStorm");
	pthread_create(&th[0], NULL, receive_stream, &rx);
	if (answer)
		pthread_create(&th[1], NULL, flood_answers, &ans);

	c0 = cpu_busy();
	t0 = t1 = now();
	while (t1 - t0 < secs) {
		/* the samples start once the flood is well past its first
		 * keys, which may still reach the device
		 */
		if (lat && !sampling && (quiet || rekeys >= 64)) {
			pthread_create(&th[3], NULL, install_latency, lat);
			sampling = true;
		}
		if (quiet) {
			usleep(10000);
			t1 = now();
			continue;
		}
		if (send_all(a, pattern + bytes % PERIOD, wsize))
			die("send");
		bytes += wsize;
		since += wsize;
		records++;
		if (every_bytes ? since >= every_bytes : records % every == 0) {
			since = 0;
			if (send_record(a, TLS_RECORD_HANDSHAKE,
					answer ? key_update_req_msg : key_update_msg,
					sizeof(key_update_msg)) != sizeof(key_update_msg))
				die("KeyUpdate");
			key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, ++seed);
			if (tls_key_set(a, TLS_TX, &k))
				die("TLS_TX");
			rekeys++;
		}
		t1 = now();
	}
	if (lat) {
		lat->stop = 1;
		if (sampling)
			pthread_join(th[3], NULL);
		shutdown(c, SHUT_WR);
		pthread_join(th[2], NULL);
	}
	shutdown(a, SHUT_WR);
	pthread_join(th[0], NULL);
	t1 = now();
	c1 = cpu_busy();
	if (answer)
		pthread_join(th[1], NULL);
	if (rx.err || ans.err || rx.bytes != bytes || rx.rekeys != rekeys ||
	    (answer && (rx.answered != rekeys || ans.rekeys != rekeys))) {
		fprintf(stderr, "tls_bench: %llu of %llu bytes, %u of %u key updates, %u answers: %s\n",
			rx.bytes, bytes, rx.rekeys, rekeys, ans.rekeys,
			rx.err ?: ans.err ?: "short");
		return 1;
	}
	for (i = 0; i < 2; i++) {
		adds[i] = dev_stat(i ? NSIM_B : NSIM_A, "adds") - adds0[i];
		dels[i] = dev_stat(i ? NSIM_B : NSIM_A, "dels") - dels0[i];
	}
	printf("bytes=%llu secs=%.4f mibps=%.2f cpu_s=%.3f rekeys=%u answered=%u "
	       "cpu_per_update_us=%.1f updates_per_s=%.0f a_adds=%lld a_dels=%lld "
	       "b_adds=%lld b_dels=%lld adds_per_s=%.1f calls_per_s=%.1f "
	       "tx_storms=%lld rx_storms=%lld",
	       bytes, t1 - t0, bytes / (t1 - t0) / (1 << 20), c1 - c0, rekeys,
	       rx.answered, rekeys ? (c1 - c0) * 1e6 / rekeys : 0,
	       rekeys / (t1 - t0), adds[0], dels[0], adds[1], dels[1],
	       (adds[0] + adds[1]) / (t1 - t0),
	       (adds[0] + adds[1] + dels[0] + dels[1]) / (t1 - t0),
	       ns_stat("tls-a", "TlsTxRekeyStorm") - storm0[0],
	       ns_stat("tls-b", "TlsRxRekeyStorm") - storm0[1]);
	if (lat && lat->n) {
		qsort(lat->us, lat->n, sizeof(double), cmp_double);
		printf(" lat_n=%d lat_median_us=%.1f lat_p90_us=%.1f", lat->n,
		       lat->us[lat->n / 2], lat->us[lat->n * 9 / 10]);
	}
	printf(" intact=1\n");
	close(a);
	close(b);
	if (lat) {
		close(c);
		close(d);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int i;

	for (i = 0; i < (int)sizeof(pattern); i++)
		pattern[i] = stream_byte(i % PERIOD, 7);
	if (argc < 2)
		usage();
	argv++, argc--;
	if (!strcmp(argv[0], "stream"))
		return stream(argc, argv);
	if (!strcmp(argv[0], "latency"))
		return latency(argc, argv);
	if (!strcmp(argv[0], "scale"))
		return scale(argc, argv);
	if (!strcmp(argv[0], "flood"))
		return flood(argc, argv);
	usage();
}
