// SPDX-License-Identifier: GPL-2.0
/*
 * tls_bulk: a TLS 1.3 bulk transfer between the two netdevsim namespaces
 * (selftests/lib/topo.sh, set up by the caller with TLS offload on), both
 * ends offloaded, with a KeyUpdate every few MiB, for the demo and the
 * benchmarks. Every byte is checked by the receiving kTLS socket.
 *
 * While it runs it samples, every -i ms, the throughput of each direction
 * and the share of its records the sending device sealed (1: all in HW,
 * 0: all in SW), as CSV on stdout or in -o FILE. The last line of stderr is
 * the verdict.
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
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "ktls.h"
#include "offload.h"

static void usage(void)
{
	fprintf(stderr,
		"Usage: tls_bulk [-6] [-c 128|256] [-b MiB] [-e MiB] [-1] [-i ms] [-o FILE]\n"
		"  -6       IPv6 (default IPv4)\n"
		"  -c BITS  AES-GCM key size (default 128)\n"
		"  -b MiB   bytes each way (default 256)\n"
		"  -e MiB   a KeyUpdate every this many MiB each way (default 4; 0: none)\n"
		"  -1       one direction only (a to b)\n"
		"  -i ms    sample interval (default 200)\n"
		"  -o FILE  samples as CSV (default stdout): t_s, then per direction\n"
		"           MiB/s, share of records the device sealed, key updates\n");
	exit(2);
}

static double now_s(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec - t0->tv_sec + (t.tv_nsec - t0->tv_nsec) / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long long bytes = 256ULL << 20, every = 4ULL << 20;
	long long sealed[2], prev_sealed[2], prev_bytes[2];
	int family = AF_INET, bits = 128, interval_ms = 200, dirs = 2;
	struct rk_send tx[2];
	struct rk_recv rx[2];
	struct tls_key k[2];
	pthread_t th[4];
	struct timespec t0;
	double t, prev_t = 0, share;
	FILE *out = stdout;
	int a, b, i, opt, bad = 0;
	bool done;
	__u16 cipher;

	while ((opt = getopt(argc, argv, "6c:b:e:1i:o:")) != -1) {
		switch (opt) {
		case '6': family = AF_INET6; break;
		case 'c': bits = atoi(optarg); break;
		case 'b': bytes = strtoull(optarg, NULL, 0) << 20; break;
		case 'e': every = strtoull(optarg, NULL, 0) << 20; break;
		case '1': dirs = 1; break;
		case 'i': interval_ms = atoi(optarg); break;
		case 'o':
			out = fopen(optarg, "w");
			if (!out) {
				perror(optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	if ((bits != 128 && bits != 256) || !bytes || interval_ms <= 0)
		usage();
	cipher = bits == 128 ? TLS_CIPHER_AES_GCM_128 : TLS_CIPHER_AES_GCM_256;

	if (connect_pair(family, &a, &b) || tls_ulp(a) || tls_ulp(b)) {
		perror("tls_bulk: connection");
		return 1;
	}
	/* a -> b with key seeds 1, 2, ...; b -> a with 101, 102, ... */
	key_init(&k[0], TLS_1_3_VERSION, cipher, 1);
	key_init(&k[1], TLS_1_3_VERSION, cipher, 101);
	if (tls_key_set(a, TLS_TX, &k[0]) || tls_key_set(b, TLS_RX, &k[0]) ||
	    tls_key_set(b, TLS_TX, &k[1]) || tls_key_set(a, TLS_RX, &k[1])) {
		perror("tls_bulk: keys");
		return 1;
	}
	for (i = 0; i < 2; i++) {
		tx[i] = (struct rk_send){ .fd = i ? b : a, .key = k[i],
					  .seed = i ? 101 : 1, .bytes = bytes,
					  .every = every };
		rx[i] = (struct rk_recv){ .fd = i ? a : b, .key = k[i],
					  .seed = i ? 101 : 1 };
		sealed[i] = prev_sealed[i] = dev_stat(i ? NSIM_B : NSIM_A,
						      "tx_records");
		prev_bytes[i] = 0;
	}
	if (dirs == 1)
		shutdown(b, SHUT_WR);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < dirs; i++) {
		pthread_create(&th[2 * i], NULL, rk_sender, &tx[i]);
		pthread_create(&th[2 * i + 1], NULL, rk_receiver, &rx[i]);
	}
	/* t_s counts from t0, CLOCK_MONOTONIC (the "mono" trace clock) */
	fprintf(out, "# t0_mono=%ld.%09ld\n", (long)t0.tv_sec, t0.tv_nsec);
	fprintf(out, "t_s,ab_mibps,ab_hw_share,ab_updates,ba_mibps,ba_hw_share,ba_updates\n");
	do {
		usleep(interval_ms * 1000);
		t = now_s(&t0);
		fprintf(out, "%.3f", t);
		done = true;
		for (i = 0; i < 2; i++) {
			long long got = rx[i].received, records;

			sealed[i] = dev_stat(i ? NSIM_B : NSIM_A, "tx_records");
			records = (got - prev_bytes[i] + 16383) / 16384;
			share = records > 0 ? (double)(sealed[i] - prev_sealed[i]) / records : 0;
			fprintf(out, ",%.2f,%.2f,%u",
				(got - prev_bytes[i]) / (t - prev_t) / (1 << 20),
				share > 1 ? 1 : share, tx[i].rekeys);
			prev_sealed[i] = sealed[i];
			prev_bytes[i] = got;
			if (i < dirs && got < (long long)bytes && !rx[i].err &&
			    !tx[i].err)
				done = false;
		}
		fputc('\n', out);
		fflush(out);
		prev_t = t;
	} while (!done);

	for (i = 0; i < dirs; i++) {
		pthread_join(th[2 * i], NULL);
		pthread_join(th[2 * i + 1], NULL);
	}
	t = now_s(&t0);
	for (i = 0; i < dirs; i++) {
		const char *dir = i ? "b->a" : "a->b";

		if (tx[i].err || rx[i].err || rx[i].bytes != bytes ||
		    rx[i].rekeys != tx[i].rekeys) {
			fprintf(stderr, "tls_bulk: %s: %llu of %llu bytes, %u of %u key updates, %s\n",
				dir, rx[i].bytes, bytes, rx[i].rekeys, tx[i].rekeys,
				tx[i].err ?: rx[i].err ?: "short");
			bad++;
		} else {
			fprintf(stderr, "tls_bulk: %s: %llu MiB, %u key updates, every byte checked\n",
				dir, bytes >> 20, tx[i].rekeys);
		}
	}
	fprintf(stderr, "tls_bulk: %s in %.1f s\n",
		bad ? "FAILED" : "every byte arrived intact", t);
	close(a);
	close(b);
	return bad ? 1 : 0;
}
