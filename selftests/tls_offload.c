// SPDX-License-Identifier: GPL-2.0
/*
 * kTLS device offload through the simulated NIC (netdevsim's TLS offload),
 * on the two-namespace topology of selftests/lib/topo.sh: netdevsim device
 * 200's port in netns tls-a, 201's in tls-b, linked.
 *
 * The device encrypts and decrypts with its own copy of the key, so these
 * tests check bytes, not code paths: what the device put on the wire is
 * decrypted by OpenSSL's libcrypto on a plain TCP peer, and bulk transfers
 * between two offloaded ends are checked byte by byte, with the device's
 * counters (debugfs) proving the records went through it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <libgen.h>
#include <linux/tls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <time.h>
#include <openssl/evp.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/if_ether.h>

#include "kselftest_harness.h"
#include "ktls.h"
#include "bpf/rekey_record.h"
#include "offload.h"

struct xfer {
	int fd;
	unsigned int salt;
	unsigned long long bytes;	/* to send; sent / checked */
	unsigned long long done;	/* progress, for the main thread */
	int control;			/* sender: a handshake record too */
	unsigned long long pause_at;	/* sender: wait there for @resume */
	int resume;
	const char *err;
};

static void *xfer_send(void *arg)
{
	struct xfer *x = arg;
	static __thread unsigned char buf[CHUNK];
	unsigned long long off = 0;
	size_t len, i;

	while (off < x->bytes) {
		while (x->pause_at && off == x->pause_at &&
		       !__atomic_load_n(&x->resume, __ATOMIC_ACQUIRE))
			usleep(1000);
		len = x->bytes - off < CHUNK ? x->bytes - off : CHUNK;
		for (i = 0; i < len; i++)
			buf[i] = stream_byte(off + i, x->salt);
		if (send_all(x->fd, buf, len)) {
			x->err = "send";
			return NULL;
		}
		off += len;
		__atomic_store_n(&x->done, off, __ATOMIC_RELAXED);
		if (x->control && off == CHUNK &&
		    send_record(x->fd, TLS_RECORD_HANDSHAKE, key_update_msg,
				sizeof(key_update_msg)) != sizeof(key_update_msg)) {
			x->err = "send control record";
			return NULL;
		}
	}
	shutdown(x->fd, SHUT_WR);
	return NULL;
}

/* kTLS receiver: every byte checked against the stream. */
static void *xfer_recv(void *arg)
{
	struct xfer *x = arg;
	static __thread unsigned char buf[CHUNK];
	unsigned long long off = 0;
	ssize_t n, i;

	while ((n = recv_eintr(x->fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++)
			if (buf[i] != stream_byte(off + i, x->salt)) {
				x->err = "corrupt byte";
				return NULL;
			}
		off += n;
		__atomic_store_n(&x->done, off, __ATOMIC_RELAXED);
	}
	if (n < 0)
		x->err = strerror(errno);
	x->bytes = off;
	return NULL;
}

static int read_full(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv_eintr(fd, buf + got, len - got);
		if (n <= 0)
			return n == 0 && !got ? 1 : -1;
		got += n;
	}
	return 0;
}

/* A plain TCP peer: reads the records as they came off the wire and opens
 * them with libcrypto, an implementation independent of the kernel's.
 */
struct wire {
	struct xfer x;
	struct tls_key *key;
	unsigned long records;
	unsigned long control_records;
	int follow_key_updates;	/* next key: key_init(.., seed + 1) */
	unsigned int seed;
	/* with follow_key_updates: the next key also takes over at this
	 * stream offset, without a KeyUpdate record (0: nowhere)
	 */
	unsigned long long new_key_at;
	int hold_ms;		/* start reading after this long, */
	int start;		/* or once this is set */
};

static int wire_open(EVP_CIPHER_CTX *ctx, struct tls_key *k,
		     unsigned long long sn, unsigned char *rec, int len,
		     unsigned char *out, int *out_len, unsigned char *type)
{
	unsigned char *key, *salt, *iv, *seq, nonce[12], aad[13];
	int key_len, aad_len, ct_off, ct_len, n, i;

	key_len = key_fields(k, &key, &salt, &iv, &seq);
	memcpy(nonce, salt, 4);
	if (k->info.version == TLS_1_3_VERSION) {
		memcpy(nonce + 4, iv, 8);
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= sn >> (56 - 8 * i);
		memcpy(aad, rec, 5);
		aad_len = 5;
		ct_off = 5;
	} else {
		memcpy(nonce + 4, rec + 5, 8);
		ct_off = 13;
	}
	ct_len = 5 + len - ct_off - 16;
	if (ct_len < 0)
		return -1;
	if (k->info.version != TLS_1_3_VERSION) {
		for (i = 0; i < 8; i++)
			aad[i] = sn >> (56 - 8 * i);
		memcpy(aad + 8, rec, 3);
		aad[11] = ct_len >> 8;
		aad[12] = ct_len;
		aad_len = 13;
	}

	if (!EVP_DecryptInit_ex(ctx, key_len == 16 ? EVP_aes_128_gcm() :
						     EVP_aes_256_gcm(),
				NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) ||
	    !EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) ||
	    !EVP_DecryptUpdate(ctx, NULL, &n, aad, aad_len) ||
	    !EVP_DecryptUpdate(ctx, out, &n, rec + ct_off, ct_len) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16,
				 rec + 5 + len - 16) ||
	    EVP_DecryptFinal_ex(ctx, out + n, &n) <= 0)
		return -1;

	*type = rec[0];
	if (k->info.version == TLS_1_3_VERSION) {
		/* inner plaintext: content, type, zero padding */
		while (ct_len > 0 && !out[ct_len - 1])
			ct_len--;
		if (!ct_len)
			return -1;
		*type = out[--ct_len];
	}
	*out_len = ct_len;
	return 0;
}

static void *wire_recv(void *arg)
{
	struct wire *w = arg;
	static __thread unsigned char rec[MAX_RECORD], pt[MAX_RECORD];
	unsigned long long sn = key_rec_seq(w->key), off = 0;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	unsigned char type;
	int len, n, i, rc;

	for (i = 0; i < w->hold_ms / 10 &&
		    !__atomic_load_n(&w->start, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	for (;; sn++) {
		if (w->follow_key_updates && w->new_key_at && off == w->new_key_at) {
			key_init(w->key, w->key->info.version,
				 w->key->info.cipher_type, ++w->seed);
			sn = key_rec_seq(w->key);
			w->new_key_at = 0;
		}
		rc = read_full(w->x.fd, rec, 5);
		if (rc == 1)
			break;
		len = rec[3] << 8 | rec[4];
		if (rc || len > MAX_RECORD - 5 || read_full(w->x.fd, rec + 5, len)) {
			w->x.err = "truncated record";
			break;
		}
		if (wire_open(ctx, w->key, sn, rec, len, pt, &n, &type)) {
			w->x.err = "record does not authenticate";
			break;
		}
		w->records++;
		if (type == TLS_RECORD_HANDSHAKE) {
			if (n != sizeof(key_update_msg) ||
			    memcmp(pt, key_update_msg, n)) {
				w->x.err = "wrong control record";
				break;
			}
			w->control_records++;
			if (w->follow_key_updates) {
				key_init(w->key, w->key->info.version,
					 w->key->info.cipher_type, ++w->seed);
				sn = key_rec_seq(w->key) - 1;
			}
			continue;
		}
		if (type != TLS_RECORD_DATA) {
			w->x.err = "unexpected record type";
			break;
		}
		for (i = 0; i < n; i++)
			if (pt[i] != stream_byte(off + i, w->x.salt)) {
				w->x.err = "corrupt byte";
				goto out;
			}
		off += n;
		__atomic_store_n(&w->x.done, off, __ATOMIC_RELAXED);
	}
out:
	EVP_CIPHER_CTX_free(ctx);
	w->x.bytes = off;
	return NULL;
}

/* ------------------------------------------------------------ fixture */

FIXTURE(offload) {
	int a, b;		/* the connection's ends in tls-a, tls-b */
	struct tls_key key_ab, key_ba;
};

FIXTURE_VARIANT(offload) {
	int family;
	__u16 version;
	__u16 cipher;
	unsigned int mib;	/* bulk size each way */
};

FIXTURE_VARIANT_ADD(offload, ip4_tls13_gcm128) {
	.family = AF_INET, .version = TLS_1_3_VERSION,
	.cipher = TLS_CIPHER_AES_GCM_128, .mib = 64,
};

FIXTURE_VARIANT_ADD(offload, ip4_tls13_gcm256) {
	.family = AF_INET, .version = TLS_1_3_VERSION,
	.cipher = TLS_CIPHER_AES_GCM_256, .mib = 64,
};

FIXTURE_VARIANT_ADD(offload, ip6_tls13_gcm128) {
	.family = AF_INET6, .version = TLS_1_3_VERSION,
	.cipher = TLS_CIPHER_AES_GCM_128, .mib = 8,
};

FIXTURE_VARIANT_ADD(offload, ip4_tls12_gcm128) {
	.family = AF_INET, .version = TLS_1_2_VERSION,
	.cipher = TLS_CIPHER_AES_GCM_128, .mib = 8,
};

FIXTURE_VARIANT_ADD(offload, ip6_tls12_gcm256) {
	.family = AF_INET6, .version = TLS_1_2_VERSION,
	.cipher = TLS_CIPHER_AES_GCM_256, .mib = 8,
};

FIXTURE_SETUP(offload)
{
	ASSERT_EQ(topo("topo_up %d && topo_tls_offload", NSIM_A), 0);
	ASSERT_EQ(connect_pair(variant->family, &self->a, &self->b), 0);
	ASSERT_EQ(tls_ulp(self->a), 0);
	ASSERT_EQ(tls_ulp(self->b), 0);
	key_init(&self->key_ab, variant->version, variant->cipher, 1);
	key_init(&self->key_ba, variant->version, variant->cipher, 2);
}

static int fault_attr(const char *attr, const char *file, const char *val);

FIXTURE_TEARDOWN(offload)
{
	/* no failures left set up by a test that ended early */
	fault_attr("fail_page_alloc", "times", "0");
	fault_attr("failslab", "times", "0");
	close(self->a);
	close(self->b);
	topo("topo_down %d", NSIM_A);
}

/* Both ends offloaded in both directions. */
static void offload_both(struct __test_metadata *_metadata,
			 FIXTURE_DATA(offload) *self)
{
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->key_ab), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_TX, &self->key_ba), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_RX, &self->key_ba), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRxDevice"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrTxDevice"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRxDevice"), 1);
}

/* Move @bytes each way at once; if @midway is given, run it when a third
 * of the data has arrived both ways. Every byte is checked.
 */
static void both_ways(struct __test_metadata *_metadata,
		      FIXTURE_DATA(offload) *self, unsigned long long bytes,
		      const char *midway)
{
	struct xfer tx[2] = { { .fd = self->a, .salt = 1, .bytes = bytes },
			      { .fd = self->b, .salt = 2, .bytes = bytes } };
	struct xfer rx[2] = { { .fd = self->b, .salt = 1 },
			      { .fd = self->a, .salt = 2 } };
	struct timespec t0, t1;
	pthread_t th[4];
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(pthread_create(&th[2 * i], NULL, xfer_send, &tx[i]), 0);
		ASSERT_EQ(pthread_create(&th[2 * i + 1], NULL, xfer_recv, &rx[i]), 0);
	}
	if (midway) {
		while (__atomic_load_n(&rx[0].done, __ATOMIC_RELAXED) < bytes / 3 ||
		       __atomic_load_n(&rx[1].done, __ATOMIC_RELAXED) < bytes / 3)
			usleep(10000);
		EXPECT_EQ(topo("%s", midway), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	TH_LOG("%llu KiB each way in %.1f s", bytes >> 10,
	       t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (i = 0; i < 2; i++) {
		EXPECT_EQ(tx[i].err, NULL) TH_LOG("sender %d: %s", i, tx[i].err);
		EXPECT_EQ(rx[i].err, NULL) TH_LOG("receiver %d: %s", i, rx[i].err);
		EXPECT_EQ(rx[i].bytes, bytes);
	}
}

struct dev_counts {
	long long tx_records, rx_records, rx_records_skipped, rx_lost_sync,
		  rx_resyncs;
};

static struct dev_counts dev_counts(int id)
{
	return (struct dev_counts){
		.tx_records = dev_stat(id, "tx_records"),
		.rx_records = dev_stat(id, "rx_records"),
		.rx_records_skipped = dev_stat(id, "rx_records_skipped"),
		.rx_lost_sync = dev_stat(id, "rx_lost_sync"),
		.rx_resyncs = dev_stat(id, "rx_resyncs"),
	};
}

/* Offload both ways on both ends: every record each end sent was sealed by
 * its device, and most records each end received were opened by its device.
 */
TEST_F_TIMEOUT(offload, bulk_both_ways, 600)
{
	unsigned long long bytes = variant->mib << 20;
	long long records = bytes / 16384;
	struct dev_counts a0 = dev_counts(NSIM_A), b0 = dev_counts(NSIM_B);
	struct dev_counts a, b;

	offload_both(_metadata, self);
	both_ways(_metadata, self, bytes, NULL);

	a = dev_counts(NSIM_A);
	b = dev_counts(NSIM_B);
	EXPECT_GE(a.tx_records - a0.tx_records, records);
	EXPECT_GE(b.tx_records - b0.tx_records, records);
	EXPECT_GE((a.rx_records - a0.rx_records) * 10, records * 9);
	EXPECT_GE((b.rx_records - b0.rx_records) * 10, records * 9);
	TH_LOG("%llu MiB each way; records sealed a %lld b %lld, opened by the device a %lld b %lld (left to SW a %lld b %lld) of %lld",
	       bytes >> 20, a.tx_records - a0.tx_records,
	       b.tx_records - b0.tx_records, a.rx_records - a0.rx_records,
	       b.rx_records - b0.rx_records,
	       a.rx_records_skipped - a0.rx_records_skipped,
	       b.rx_records_skipped - b0.rx_records_skipped, records);
	TH_LOG("RX sync lost a %lld b %lld times, regained a %lld b %lld",
	       a.rx_lost_sync - a0.rx_lost_sync, b.rx_lost_sync - b0.rx_lost_sync,
	       a.rx_resyncs - a0.rx_resyncs, b.rx_resyncs - b0.rx_resyncs);
	EXPECT_EQ(ns_stat("tls-a", "TlsDecryptError"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
}

/* What a's device sends is what libcrypto decrypts on b, a plain TCP end:
 * right key, nonces, AAD and (TLS 1.3) inner content types.
 */
static void wire_check(struct __test_metadata *_metadata,
		       FIXTURE_DATA(offload) *self, unsigned long long bytes)
{
	struct xfer tx = { .fd = self->a, .salt = 3, .bytes = bytes,
			   .control = 1 };
	struct wire w = { .x = { .fd = self->b, .salt = 3 },
			  .key = &self->key_ab };
	long long sealed = dev_stat(NSIM_A, "tx_records");
	pthread_t th[2];

	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	ASSERT_EQ(pthread_create(&th[0], NULL, xfer_send, &tx), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, wire_recv, &w), 0);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	EXPECT_EQ(tx.err, NULL) TH_LOG("sender: %s", tx.err);
	EXPECT_EQ(w.x.err, NULL) TH_LOG("wire: %s after %lu records",
				       w.x.err, w.records);
	EXPECT_EQ(w.x.bytes, bytes);
	EXPECT_EQ(w.control_records, 1);
	EXPECT_GE(dev_stat(NSIM_A, "tx_records") - sealed, (long long)w.records);
	TH_LOG("%lu records decrypted by libcrypto", w.records);
}

TEST_F_TIMEOUT(offload, wire_decrypts_with_libcrypto, 300)
{
	wire_check(_metadata, self, (unsigned long long)variant->mib << 18);
}

/* Loss both ways and reordering towards b (topo_lossy): a's device
 * re-encrypts retransmissions right.
 */
TEST_F_TIMEOUT(offload, wire_decrypts_with_libcrypto_lossy, 300)
{
	ASSERT_EQ(topo("topo_lossy $NS_A $DEV_A && topo_lossy $NS_B $DEV_B reorder"), 0);
	wire_check(_metadata, self, (unsigned long long)variant->mib << 17);
}

/* Loss both ways with offload on both ends: the RX devices lose track at
 * the gaps, resync with the core's help, and nothing is lost. (No
 * reordering: see topo_lossy.)
 */
TEST_F_TIMEOUT(offload, bulk_both_ways_lossy, 600)
{
	/* At least 4 MiB: with 1 MiB, about one run in a hundred lost no
	 * segment that the device had to resync after.
	 */
	unsigned long long bytes = (unsigned long long)variant->mib << 17;
	long long resyncs = dev_stat(NSIM_B, "rx_resyncs");

	ASSERT_EQ(topo("topo_lossy $NS_A $DEV_A && topo_lossy $NS_B $DEV_B"), 0);
	offload_both(_metadata, self);
	both_ways(_metadata, self, bytes > 4 << 20 ? bytes : 4 << 20, NULL);
	EXPECT_GT(dev_stat(NSIM_B, "rx_resyncs") - resyncs, 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsDecryptError"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
}

/* The device encrypts with its own copy of the key: give it a wrong one
 * (test knob) and the peer cannot authenticate what it sends.
 */
/* Data left in an open record (MSG_MORE), then a control record, from a
 * socket whose TX key went to the device before its RX key was set: the
 * device path closes the open record first. Regression (found by
 * tls_stress): setting the RX key switched the push of open records to the
 * SW path's, which then ran on the device's TX context and crashed.
 */
TEST_F_TIMEOUT(offload, open_record_then_control_record, 120)
{
	static const unsigned char control[] = { 1, 2, 3 };	/* not a KeyUpdate */
	unsigned char buf[64], type;

	offload_both(_metadata, self);
	ASSERT_EQ(send(self->a, "hello", 5, MSG_MORE), 5);
	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, control,
			      sizeof(control)), sizeof(control));
	ASSERT_EQ(send(self->a, "world", 5, 0), 5);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), 5);
	EXPECT_EQ(type, TLS_RECORD_DATA);
	EXPECT_EQ(memcmp(buf, "hello", 5), 0);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), sizeof(control));
	EXPECT_EQ(type, TLS_RECORD_HANDSHAKE);
	EXPECT_EQ(memcmp(buf, control, sizeof(control)), 0);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), 5);
	EXPECT_EQ(memcmp(buf, "world", 5), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
}

/* ------------------------------------------------------------ no memory */

static void rk_wait_acked(int fd);

/* Allocation failures through the kernel's fault injection (debugfs), for
 * the threads that ask for them only (/proc/thread-self/make-it-fail): any
 * order, sleeping or not, no log.
 */
static int fault_attr(const char *attr, const char *file, const char *val)
{
	char path[128];
	int fd, ok;

	snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s", attr, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

/* @attr set up to fail @percent of the allocations of the threads that
 * ask for it, @times times (-1: no limit), whoever calls the allocator.
 */
static int fault_setup(const char *attr, int percent, int times)
{
	static const char *const fixed[][2] = {
		{ "task-filter", "Y" }, { "interval", "1" }, { "space", "0" },
		{ "ignore-gfp-wait", "N" }, { "verbose", "0" },
		{ "require-start", "0" }, { "require-end", "0xffffffffffffffff" },
		{ "reject-start", "0" }, { "reject-end", "0" },
	};
	char val[16];
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fault_attr(attr, fixed[i][0], fixed[i][1]))
			return -1;
	/* fail_page_alloc only */
	if (!strcmp(attr, "fail_page_alloc") &&
	    (fault_attr(attr, "min-order", "0") ||
	     fault_attr(attr, "ignore-gfp-highmem", "N")))
		return -1;
	snprintf(val, sizeof(val), "%d", percent);
	if (fault_attr(attr, "probability", val))
		return -1;
	snprintf(val, sizeof(val), "%d", times);
	return fault_attr(attr, "times", val);
}

/* Whether this thread's allocations may fail as set up. The file stays
 * open: opening it allocates, which fails once armed.
 */
static int fault_arm(int on)
{
	static __thread int fd = -1;

	if (fd < 0)
		fd = open("/proc/thread-self/make-it-fail", O_WRONLY);
	return fd >= 0 && pwrite(fd, on ? "1" : "0", 1, 0) == 1 ? 0 : -1;
}

/* Only allocations made from kernel function @fn (its address range from
 * /proc/kallsyms: up to the next symbol) fail.
 */
static int fault_only_from(const char *attr, const char *fn)
{
	unsigned long long start = 0, end = ~0ULL, addr;
	char line[256], type, name[128], val[32];
	FILE *f = fopen("/proc/kallsyms", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx %c %127s", &addr, &type, name) == 3 &&
		    !strcmp(name, fn))
			start = addr;
	rewind(f);
	while (start && fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx", &addr) == 1 && addr > start && addr < end)
			end = addr;
	fclose(f);
	if (!start || end == ~0ULL)
		return -1;
	snprintf(val, sizeof(val), "%#llx", start);
	if (fault_attr(attr, "require-start", val))
		return -1;
	snprintf(val, sizeof(val), "%#llx", end);
	return fault_attr(attr, "require-end", val);
}

static long fault_times_left(const char *attr)
{
	char path[128], buf[32] = "";
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/debug/%s/times", attr);
	fd = open(path, O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		buf[0] = 0;
	if (fd >= 0)
		close(fd);
	return buf[0] ? strtol(buf, NULL, 10) : -2;
}

/* A memfd holding @len bytes of the stream salted @salt. */
static int stream_memfd(size_t len, unsigned int salt)
{
	unsigned char *buf = malloc(len);
	int fd = memfd_create("stream", 0);
	size_t i;

	if (!buf || fd < 0)
		goto fail;
	for (i = 0; i < len; i++)
		buf[i] = stream_byte(i, salt);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		goto fail;
	free(buf);
	return fd;
fail:
	free(buf);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A record sent without MSG_MORE goes out even when no page can be had for
 * its end. The device path builds records in the thread's page frag (32 KiB,
 * reused from its start once the records in it are acked): header, data,
 * and for TLS 1.3 the inner content type and the tag's room at the end,
 * refilled when the frag has too little left. Each send() here makes two
 * records in a frag page of its own, the second 10 bytes short of the
 * page's end at its end, and has the first two frag refills fail (a 32 KiB
 * page, then one page). Regression: that record was left open, its data
 * unsent until the next send, and one closed for having all its frags was
 * later written past its frags.
 */
TEST_F_TIMEOUT(offload, record_ends_without_memory, 300)
{
	int tls13 = variant->version == TLS_1_3_VERSION;
	int prepend = tls13 ? 5 : 5 + 8, trailer = tls13 ? 1 + 16 : 16;
	size_t len = 16384 + (32768 - 2 * prepend - 16384 - trailer - 10), got;
	struct pollfd pfd = { .fd = self->b, .events = POLLIN };
	static unsigned char buf[32768], in[32768];
	int injected = 0, retried = 0, i;
	size_t j;
	ssize_t n;

	offload_both(_metadata, self);
	ASSERT_EQ(fault_setup("fail_page_alloc", 100, 0), 0);
	ASSERT_EQ(fault_only_from("fail_page_alloc", "skb_page_frag_refill"), 0);
	for (i = 0; i < 20; i++) {
		for (j = 0; j < len; j++)
			buf[j] = stream_byte(i * len + j, 9);
		rk_wait_acked(self->a);	/* the frag is reused from its start */
		ASSERT_EQ(fault_attr("fail_page_alloc", "times", "2"), 0);
		ASSERT_EQ(fault_arm(1), 0);
		n = send(self->a, buf, len, 0);
		ASSERT_EQ(fault_arm(0), 0);
		if (fault_times_left("fail_page_alloc") < 2)
			injected++;
		if (n < 0 && errno == ENOMEM) {
			retried++;
			n = send(self->a, buf, len, 0);
		}
		ASSERT_EQ(n, len) TH_LOG("send #%d: %s", i, strerror(errno));
		for (got = 0; got < len; got += n) {
			ASSERT_EQ(poll(&pfd, 1, 5000), 1)
				TH_LOG("send #%d, without MSG_MORE: %zu of %zu bytes arrived",
				       i, got, len);
			n = recv(self->b, in + got, len - got, 0);
			ASSERT_GT(n, 0);
		}
		ASSERT_EQ(memcmp(in, buf, len), 0) TH_LOG("send #%d", i);
	}
	ASSERT_EQ(fault_setup("fail_page_alloc", 100, 0), 0);
	TH_LOG("%d sends met failed frag refills, %d failed", injected, retried);
	EXPECT_GE(injected, 10);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
}

/* Sending through the device with page and slab allocations failing at
 * random (@percent of this thread's allocations during each call): by
 * send(), by splice() of vmspliced pages (no copy), by sendfile(), in
 * pieces of random size, some with MSG_MORE. A call moves bytes or fails
 * cleanly (ENOMEM, then it is tried again); every byte arrives, in order.
 * On the KASAN kernel this also shows that no path writes out of bounds.
 */
#define FAULTS_MANY	1000000

static void send_without_memory(struct __test_metadata *_metadata,
				FIXTURE_DATA(offload) *self, int percent)
{
	const size_t total = 2 << 20;
	struct xfer rx = { .fd = self->b, .salt = 10 };
	unsigned long calls[3] = {}, failed = 0;
	long pages, slabs;
	unsigned char *data;
	size_t off = 0, len;
	int mfd, pipefd[2], how, more;
	pthread_t t;
	ssize_t n;
	off_t foff;

	offload_both(_metadata, self);
	mfd = stream_memfd(total, 10);
	ASSERT_GE(mfd, 0);
	data = mmap(NULL, total, PROT_READ, MAP_SHARED, mfd, 0);
	ASSERT_NE(data, MAP_FAILED);
	ASSERT_EQ(pipe(pipefd), 0);
	/* a count that does not run out, to read how many failed */
	ASSERT_EQ(fault_setup("fail_page_alloc", percent, FAULTS_MANY), 0);
	ASSERT_EQ(fault_setup("failslab", percent, FAULTS_MANY), 0);
	ASSERT_EQ(pthread_create(&t, NULL, xfer_recv, &rx), 0);
	srand(percent);

	while (off < total) {
		how = rand() % 3;
		len = 1 + rand() % 40000;
		if (len > total - off)
			len = total - off;
		more = off + len < total && rand() % 4 == 0;
		if (how == 1) {
			struct iovec iov = { data + off, len > 65536 ? 65536 : len };

			/* the pipe holds the pages themselves, not a copy */
			n = vmsplice(pipefd[1], &iov, 1, 0);
			ASSERT_GT(n, 0);
			len = n;
		}
		while (len) {
			ASSERT_EQ(fault_arm(1), 0);
			if (how == 0) {
				n = send(self->a, data + off, len,
					 more ? MSG_MORE : 0);
			} else if (how == 1) {
				n = splice(pipefd[0], NULL, self->a, NULL, len,
					   more ? SPLICE_F_MORE : 0);
			} else {
				foff = off;
				n = sendfile(self->a, mfd, &foff, len);
			}
			ASSERT_EQ(fault_arm(0), 0);
			calls[how]++;
			if (n < 0 && (errno == ENOMEM || errno == EAGAIN)) {
				failed++;
				continue;
			}
			ASSERT_GT(n, 0) TH_LOG("how %d: %s", how, strerror(errno));
			off += n;
			len -= n;
		}
	}
	pages = FAULTS_MANY - fault_times_left("fail_page_alloc");
	slabs = FAULTS_MANY - fault_times_left("failslab");
	ASSERT_EQ(fault_attr("fail_page_alloc", "times", "0"), 0);
	ASSERT_EQ(fault_attr("failslab", "times", "0"), 0);
	shutdown(self->a, SHUT_WR);
	pthread_join(t, NULL);
	TH_LOG("send %lu, splice %lu, sendfile %lu calls; %lu failed; %ld page and %ld slab allocations failed",
	       calls[0], calls[1], calls[2], failed, pages, slabs);
	EXPECT_GT(pages + slabs, 0);
	EXPECT_EQ(rx.err, NULL);
	EXPECT_EQ(rx.bytes, total);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	munmap(data, total);
	close(mfd);
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_F_TIMEOUT(offload, send_without_memory, 600)
{
	send_without_memory(_metadata, self, 5);
}

TEST_F_TIMEOUT(offload, device_uses_its_own_key, 120)
{
	struct xfer tx = { .fd = self->a, .salt = 4, .bytes = CHUNK };
	struct wire w = { .x = { .fd = self->b, .salt = 4 },
			  .key = &self->key_ab };

	ASSERT_EQ(dev_knob(NSIM_A, "corrupt_next_key", 1), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	xfer_send(&tx);
	ASSERT_EQ(tx.err, NULL);
	wire_recv(&w);
	EXPECT_STREQ(w.x.err, "record does not authenticate");
	EXPECT_EQ(w.records, 0);
}

/* The device's key table lists what it holds: one entry per direction
 * with its generation and the start record number it was given, nothing
 * derived from the key; the entries go with the connection.
 */
TEST_F_TIMEOUT(offload, key_table, 120)
{
	unsigned long long seq_tx = 0, seq_rx = 0, sn_tx = 0, sn_rx = 0;
	unsigned int gen_tx = 0, gen_rx = 0, entries = 0, tries;
	char line[256], dir[8], ver[8], more[16];
	unsigned long long seq, sn;
	unsigned int gen;
	FILE *f;

	offload_both(_metadata, self);
	f = fopen(dev_path(NSIM_A, "stats"), "r");
	ASSERT_NE(f, NULL);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%7s %u %7s %llu %llu %15s", dir, &gen, ver,
			   &seq, &sn, more) < 5)
			continue;
		entries++;
		EXPECT_STREQ(ver, variant->version == TLS_1_3_VERSION ? "1.3" : "1.2");
		/* nothing derived from the key */
		EXPECT_EQ(sscanf(line, "%*s %*s %*s %*s %*s %15s", more), -1);
		if (!strcmp(dir, "tx")) {
			gen_tx = gen, sn_tx = sn, seq_tx = seq;
		} else {
			gen_rx = gen, sn_rx = sn, seq_rx = seq;
		}
	}
	fclose(f);
	EXPECT_EQ(entries, 2);
	EXPECT_NE(gen_tx, gen_rx);
	EXPECT_EQ(sn_tx, 1ULL << 56);	/* key_init(.., 1) */
	EXPECT_EQ(sn_rx, 2ULL << 56);
	TH_LOG("tx generation %u from TCP seq %llu, rx generation %u from %llu",
	       gen_tx, seq_tx, gen_rx, seq_rx);

	/* TX is released from a work item after the socket is gone */
	close(self->a);
	for (tries = 0; tries < 3000 && dev_stat(NSIM_A, "dels") < 2; tries++)
		usleep(20000);
	EXPECT_EQ(dev_stat(NSIM_A, "dels"), 2);
	self->a = socket(AF_INET, SOCK_STREAM, 0);	/* for the teardown */
}

/* A second key on an offloaded socket: TLS 1.3 takes it in both
 * directions; TLS 1.2 has no key update (EBUSY), and keeps its keys.
 */
TEST_F_TIMEOUT(offload, key_update_on_offloaded_socket, 120)
{
	struct tls_key next = self->key_ab;
	int expect = variant->version == TLS_1_3_VERSION ? 0 : -1;

	offload_both(_metadata, self);
	key_init(&next, variant->version, variant->cipher, 9);
	EXPECT_EQ(tls_key_set(self->a, TLS_TX, &next), expect);
	EXPECT_EQ(tls_key_set(self->a, TLS_RX, &next), expect);
	if (expect)
		EXPECT_EQ(errno, EBUSY);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRxDevice"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyOk"), expect ? 0 : 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsRxRekeyOk"), expect ? 0 : 1);
}

/* tls_dev_add may sleep (test knob: it sleeps add_delay_ms first). */
TEST_F_TIMEOUT(offload, dev_add_delay, 120)
{
	struct timespec t0, t1;

	ASSERT_EQ(dev_knob(NSIM_A, "add_delay_ms", 300), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_GE((t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000, 300);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
}

/* A failing tls_dev_add (test knob) leaves the connection in SW, as with
 * any driver, and the data flows.
 */
TEST_F_TIMEOUT(offload, dev_add_failure_falls_back_to_sw, 300)
{
	long long failures = dev_stat(NSIM_A, "add_failures");

	ASSERT_EQ(dev_knob(NSIM_A, "fail_errno", ENOSPC), 0);
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 2), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_RX, &self->key_ba), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_TX, &self->key_ba), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->key_ab), 0);
	EXPECT_EQ(dev_stat(NSIM_A, "add_failures") - failures, 2);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxSw"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRxSw"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrTxDevice"), 1);
	both_ways(_metadata, self, (unsigned long long)variant->mib << 17, NULL);
}

/* The link goes down and up mid-transfer: tls_device_down takes the
 * connection off the device, it goes on in SW, nothing is lost.
 */
TEST_F_TIMEOUT(offload, link_down_mid_transfer, 300)
{
	long long dels = dev_stat(NSIM_A, "dels");

	offload_both(_metadata, self);
	both_ways(_metadata, self, (unsigned long long)variant->mib << 17,
		  "ip -n $NS_A link set $DEV_A down && ip -n $NS_A link set $DEV_A up");
	EXPECT_EQ(dev_stat(NSIM_A, "dels") - dels, 2);
}

/* a's netdevsim port is deleted mid-transfer and replaced by a new one:
 * the connection leaves the deleted device, continues in SW over the new
 * port, nothing is lost.
 */
TEST_F_TIMEOUT(offload, port_deleted_mid_transfer, 300)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "topo_replace_a %d %d", NSIM_A, NSIM_A + 2);
	offload_both(_metadata, self);
	both_ways(_metadata, self, (unsigned long long)variant->mib << 17, cmd);
}

/* a's port is replaced while a's stream is paused, and loses packets:
 * b's device loses track of a's records and leaves some, retransmissions
 * too, to b's SW path. a's records now come from the fallback, which must
 * not leave its ciphertext marked as plaintext: through netdevsim's link
 * the mark reaches b and passes the ciphertext off as decrypted there.
 */
TEST_F_TIMEOUT(offload, port_replaced_lossy_mid_transfer, 300)
{
	/* 7 MiB after the replacement, 100+ GSO skbs at 10% loss: b's
	 * device is all but certain to miss some (asserted below)
	 */
	unsigned long long bytes = 8 << 20;
	struct xfer tx = { .fd = self->a, .salt = 1, .bytes = bytes,
			   .pause_at = 1 << 20 };
	struct xfer rx = { .fd = self->b, .salt = 1 };
	long long lost = dev_stat(NSIM_B, "rx_lost_sync");
	struct timeval tv = { .tv_sec = 30 };	/* a receiver that failed */
	pthread_t th[2];
	int tries;

	offload_both(_metadata, self);
	ASSERT_EQ(setsockopt(self->a, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	ASSERT_EQ(pthread_create(&th[0], NULL, xfer_send, &tx), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, xfer_recv, &rx), 0);
	for (tries = 0; tries < 3000 &&
	     __atomic_load_n(&rx.done, __ATOMIC_RELAXED) < tx.pause_at; tries++)
		usleep(10000);
	EXPECT_EQ(topo("topo_replace_a %d %d && "
		       "tc -n $NS_A qdisc add dev $DEV_A root netem loss 10%%",
		       NSIM_A, NSIM_A + 2), 0);
	__atomic_store_n(&tx.resume, 1, __ATOMIC_RELEASE);
	pthread_join(th[0], NULL);
	pthread_join(th[1], NULL);
	EXPECT_EQ(tx.err, NULL) TH_LOG("sender: %s", tx.err);
	EXPECT_EQ(rx.err, NULL) TH_LOG("receiver: %s", rx.err);
	EXPECT_EQ(rx.bytes, bytes);
	EXPECT_GT(dev_stat(NSIM_B, "rx_lost_sync"), lost);
}

/* ------------------------------------------------------------ key updates */

/* TLS 1.3 key updates (KeyUpdate + a second setsockopt) on offloaded
 * sockets: the core runs TX in SW until the old key's records are acked,
 * then gives the device the newest key; RX swaps the device's key at once.
 */
FIXTURE(offload_rekey) {
	int a, b;
	struct tls_key key_ab, key_ba;
};

FIXTURE_VARIANT(offload_rekey) {
	int family;
	__u16 cipher;
	unsigned int rekeys;	/* in the bulk tests */
};

FIXTURE_VARIANT_ADD(offload_rekey, ip4_tls13_gcm256) {
	.family = AF_INET, .cipher = TLS_CIPHER_AES_GCM_256, .rekeys = 1000,
};

FIXTURE_VARIANT_ADD(offload_rekey, ip6_tls13_gcm128) {
	.family = AF_INET6, .cipher = TLS_CIPHER_AES_GCM_128, .rekeys = 200,
};

/* A connected pair with the TLS ULP on both ends, keys not set yet. */
static void rk_connect(struct __test_metadata *_metadata,
		       FIXTURE_DATA(offload_rekey) *self, int family,
		       __u16 cipher)
{
	ASSERT_EQ(connect_pair(family, &self->a, &self->b), 0);
	ASSERT_EQ(tls_ulp(self->a), 0);
	ASSERT_EQ(tls_ulp(self->b), 0);
	key_init(&self->key_ab, TLS_1_3_VERSION, cipher, 1);
	key_init(&self->key_ba, TLS_1_3_VERSION, cipher, 101);
}

FIXTURE_SETUP(offload_rekey)
{
	ASSERT_EQ(topo("topo_up %d && topo_tls_offload", NSIM_A), 0);
	rk_connect(_metadata, self, variant->family, variant->cipher);
}

FIXTURE_TEARDOWN(offload_rekey)
{
	close(self->a);
	close(self->b);
	topo("topo_down %d", NSIM_A);
}

/* a sends @bytes with a key update every @every bytes; b reads them with
 * kTLS (@wire unset) or libcrypto.
 */
static void rk_run(struct __test_metadata *_metadata,
		   FIXTURE_DATA(offload_rekey) *self,
		   unsigned long long bytes, unsigned long long every,
		   bool one_window, bool wire,
		   struct rk_send *tx, struct rk_recv *rx)
{
	struct tls_key wire_key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1 };
	struct timespec t0, t1;
	pthread_t th[2];

	*tx = (struct rk_send){ .fd = self->a, .key = self->key_ab, .seed = 1,
				.bytes = bytes, .every = every,
				.one_window = one_window };
	*rx = (struct rk_recv){ .fd = self->b, .key = self->key_ab, .seed = 1 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(pthread_create(&th[0], NULL, rk_sender, tx), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, wire ? wire_recv : rk_receiver,
				 wire ? (void *)&w : (void *)rx), 0);
	/* a receiver that fails stops reading: end the sender's send()
	 * (EPIPE, not SIGPIPE)
	 */
	signal(SIGPIPE, SIG_IGN);
	pthread_join(th[1], NULL);
	if (wire ? w.x.err != NULL : rx->err != NULL)
		shutdown(self->a, SHUT_RDWR);
	pthread_join(th[0], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (wire) {
		rx->bytes = w.x.bytes;
		rx->err = w.x.err;
		rx->rekeys = w.control_records;
	}
	EXPECT_EQ(tx->err, NULL) TH_LOG("sender: %s", tx->err);
	EXPECT_EQ(rx->err, NULL) TH_LOG("receiver: %s after %u key updates",
				       rx->err, rx->rekeys);
	EXPECT_EQ(rx->bytes, bytes);
	EXPECT_EQ(rx->rekeys, tx->rekeys);
	TH_LOG("%llu KiB, %u key updates in %.1f s", bytes >> 10, tx->rekeys,
	       t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static void rk_offload_ab(struct __test_metadata *_metadata,
			  FIXTURE_DATA(offload_rekey) *self, bool rx_too)
{
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->key_ab), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 1);
	if (!rx_too)
		return;
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->key_ab), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRxDevice"), 1);
}

/* Every TX key update either went back to the device or was overtaken by
 * a newer key; the device got exactly the keys that went back.
 */
static void rk_check_tx(struct __test_metadata *_metadata,
			struct rk_send *tx, long long adds0, long long sealed0,
			unsigned long long bytes)
{
	long long back = ns_stat("tls-a", "TlsTxRekeyDeviceReinstall");
	long long skipped = ns_stat("tls-a", "TlsTxRekeyDeviceSkip");
	long long sealed = dev_stat(NSIM_A, "tx_records") - sealed0;
	long long records = bytes / 16384 + tx->rekeys;

	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceSw"), tx->rekeys - skipped);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 0);
	EXPECT_GE(back + skipped + 1, tx->rekeys);
	EXPECT_EQ(dev_stat(NSIM_A, "adds") - adds0, back);
	EXPECT_GE(sealed, back);
	TH_LOG("tx: %u key updates, %lld back to the device, %lld overtaken; records sealed by the device %lld of %lld",
	       tx->rekeys, back, skipped, sealed, records);
	if (tx->rekeys && records > sealed)
		TH_LOG("tx: %.0f bytes sent in SW per key update, %.0f bytes in flight at the update",
		       (double)(records - sealed) * 16384 / tx->rekeys,
		       (double)tx->inflight / tx->rekeys);
}

static void rk_check_rx(struct __test_metadata *_metadata,
			struct rk_recv *rx, long long adds0, long long opened0)
{
	long long back = ns_stat("tls-b", "TlsRxRekeyDeviceReinstall");

	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyOk"), rx->rekeys);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceFail"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
	EXPECT_EQ(dev_stat(NSIM_B, "adds") - adds0, back);
	EXPECT_GT(back, 0);
	TH_LOG("rx: %u key updates, device context re-added %lld times, records opened by the device %lld",
	       rx->rekeys, back, dev_stat(NSIM_B, "rx_records") - opened0);
}

/* The acceptance run: many key updates under bulk traffic, a offloaded TX,
 * b offloaded RX; every byte checked by b.
 */
TEST_F_TIMEOUT(offload_rekey, bulk_with_key_updates, 900)
{
	unsigned long long bytes = (unsigned long long)variant->rekeys * 32768;
	long long adds_a = dev_stat(NSIM_A, "adds"), adds_b;
	long long sealed = dev_stat(NSIM_A, "tx_records"), opened;
	struct rk_send tx;
	struct rk_recv rx;

	rk_offload_ab(_metadata, self, true);
	adds_b = dev_stat(NSIM_B, "adds");
	opened = dev_stat(NSIM_B, "rx_records");
	rk_run(_metadata, self, bytes + 32768, 32768, false, false, &tx, &rx);
	EXPECT_EQ(tx.rekeys, variant->rekeys);
	rk_check_tx(_metadata, &tx, adds_a + 1, sealed, bytes);
	rk_check_rx(_metadata, &rx, adds_b, opened);
}

/* Key updates 1 MiB apart, so that b's device decrypts when each
 * KeyUpdate arrives: what its context touched after the KeyUpdate (with the
 * old key) and had not yet handed to TCP when b installed the next key
 * (in its ring, in GRO or in an RPS backlog) must be put back with the old
 * key, not the new. netdevsim's rx_deferred profile holds its ring from the
 * first record the old key fails to authenticate until b deletes that key,
 * so every update the device was in step for leaves such frames.
 */
TEST_F_TIMEOUT(offload_rekey, rx_updates_while_device_decrypts, 300)
{
	unsigned long long bytes = 48ULL << 20;
	int rcvbuf = 256 << 10;
	long long adds, opened, held;
	struct rk_send tx;
	struct rk_recv rx;

	/* a small receive window: the zone the old context may have
	 * touched is no wider than it
	 */
	ASSERT_EQ(setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
			     sizeof(rcvbuf)), 0);
	rk_offload_ab(_metadata, self, true);
	adds = dev_stat(NSIM_B, "adds");
	opened = dev_stat(NSIM_B, "rx_records");
	held = dev_stat(NSIM_B, "rx_held_decrypted");
	rk_run(_metadata, self, bytes, 1 << 20, false, false, &tx, &rx);
	rk_check_rx(_metadata, &rx, adds, opened);
	held = dev_stat(NSIM_B, "rx_held_decrypted") - held;
	TH_LOG("rx: %lld frames decrypted by a deleted context reached TCP late", held);
	if (nsim_tls_profile_is("rx_deferred"))
		EXPECT_GT(held, 0);
}

/* ACKs from b take @ms (netem on b's egress, which carries nothing
 * else): a key update on a stays in its SW window that long.
 */
static void rk_slow_acks(struct __test_metadata *_metadata, int ms)
{
	ASSERT_EQ(topo("tc -n $NS_B qdisc add dev $DEV_B root netem delay %dms", ms), 0);
}

/* The SW window against the floor: with key updates far apart (1 MiB or
 * more: the next one waits until the device has the last key, as a fast
 * machine can queue more than 1 MiB in one window), the bytes a sends in
 * SW per update stay close to what was in flight when the update came (one
 * round trip of data must go in SW). ACKs take 10 ms, so that something is
 * in flight.
 */
TEST_F_TIMEOUT(offload_rekey, sw_window_near_inflight, 600)
{
	unsigned long long bytes = 48ULL << 20;
	long long adds = dev_stat(NSIM_A, "adds") + 1;
	long long sealed = dev_stat(NSIM_A, "tx_records");
	long long sw_bytes;
	struct rk_send tx;
	struct rk_recv rx;

	rk_offload_ab(_metadata, self, true);
	rk_slow_acks(_metadata, 10);
	rk_run(_metadata, self, bytes, 1 << 20, true, false, &tx, &rx);
	rk_check_tx(_metadata, &tx, adds, sealed, bytes);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceSkip"), 0);
	EXPECT_GE(tx.rekeys, 8);
	EXPECT_GT(tx.inflight, 0);
	sw_bytes = (bytes / 16384 + tx.rekeys -
		    (dev_stat(NSIM_A, "tx_records") - sealed)) * 16384;
	/* The floor is what the writer queues during the round trip that
	 * retires the old key, which is more than SIOCOUTQ showed at the
	 * update when the writer outpaces the link (measured 1.0-1.3x over
	 * IPv6 with AES-128, up to 3.6x over IPv4 with AES-256); a window per
	 * send call, or a missed return to the device, is far above 6x.
	 */
	EXPECT_LE(sw_bytes, 6 * (long long)tx.inflight + 65536LL * tx.rekeys);
}

/* What a's device and a's SW path send across key updates is what
 * libcrypto decrypts on b.
 */
TEST_F_TIMEOUT(offload_rekey, wire_decrypts_across_key_updates, 600)
{
	long long adds = dev_stat(NSIM_A, "adds") + 1;
	long long sealed = dev_stat(NSIM_A, "tx_records");
	struct rk_send tx;
	struct rk_recv rx;

	rk_offload_ab(_metadata, self, false);
	rk_run(_metadata, self, 100 * 65536, 65536, false, true, &tx, &rx);
	rk_check_tx(_metadata, &tx, adds, sealed, 100 * 65536);
}

/* The acceptance run with loss both ways and reordering towards b:
 * retransmissions of the old key's records are encrypted by the device
 * with the old key, and libcrypto authenticates every record.
 */
TEST_F_TIMEOUT(offload_rekey, wire_decrypts_across_key_updates_lossy, 900)
{
	unsigned long long bytes = (unsigned long long)variant->rekeys * 32768;
	long long adds = dev_stat(NSIM_A, "adds") + 1;
	long long sealed = dev_stat(NSIM_A, "tx_records");
	struct rk_send tx;
	struct rk_recv rx;

	ASSERT_EQ(topo("topo_lossy $NS_A $DEV_A && topo_lossy $NS_B $DEV_B reorder"), 0);
	rk_offload_ab(_metadata, self, false);
	rk_run(_metadata, self, bytes + 32768, 32768, false, true, &tx, &rx);
	EXPECT_EQ(tx.rekeys, variant->rekeys);
	rk_check_tx(_metadata, &tx, adds, sealed, bytes);
}

/* Loss both ways with both devices: b's RX device context is replaced at
 * each key update while the device loses and regains sync at the gaps.
 * (No reordering: topo_lossy's ifb would drop b's device-decrypted skbs.)
 */
TEST_F_TIMEOUT(offload_rekey, bulk_with_key_updates_lossy, 900)
{
	unsigned long long bytes = (unsigned long long)variant->rekeys * 32768;
	long long adds_a = dev_stat(NSIM_A, "adds") + 1, adds_b;
	long long sealed = dev_stat(NSIM_A, "tx_records"), opened;
	struct rk_send tx;
	struct rk_recv rx;

	ASSERT_EQ(topo("topo_lossy $NS_A $DEV_A && topo_lossy $NS_B $DEV_B"), 0);
	rk_offload_ab(_metadata, self, true);
	adds_b = dev_stat(NSIM_B, "adds");
	opened = dev_stat(NSIM_B, "rx_records");
	rk_run(_metadata, self, bytes + 32768, 32768, false, false, &tx, &rx);
	EXPECT_EQ(tx.rekeys, variant->rekeys);
	rk_check_tx(_metadata, &tx, adds_a, sealed, bytes);
	rk_check_rx(_metadata, &rx, adds_b, opened);
}

static void rk_send_bytes(struct __test_metadata *_metadata, int fd,
			  unsigned long long *off, size_t len)
{
	static unsigned char buf[CHUNK];
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = stream_byte(*off + i, 7);
	ASSERT_EQ(send_all(fd, buf, len), 0) TH_LOG("send: %s", strerror(errno));
	*off += len;
}

/* After a TX key update with nothing in flight the device gets the key at
 * the first send an RCU grace period later; an idle socket lets one pass.
 */
static void rk_wait_grace_period(void)
{
	usleep(200000);
}

/* Everything a sent is acked, and a grace period passed since: a key update
 * window there retired the old key, and the device gets the next one at the
 * next send.
 */
static void rk_wait_acked(int fd)
{
	int outq = 1, tries;

	for (tries = 0; tries < 500 && outq; tries++) {
		ioctl(fd, SIOCOUTQ, &outq);
		if (outq)
			usleep(10000);
	}
	rk_wait_grace_period();
}

/* Three key updates in one window: only the last key reaches the device. */
TEST_F_TIMEOUT(offload_rekey, several_keys_in_one_window, 120)
{
	struct tls_key wire_key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1 };
	struct rk_send tx = { .fd = self->a, .key = self->key_ab, .seed = 1 };
	unsigned long long off = 0;
	long long adds;
	pthread_t th;
	int i;

	rk_offload_ab(_metadata, self, false);
	rk_slow_acks(_metadata, 300);
	ASSERT_EQ(pthread_create(&th, NULL, wire_recv, &w), 0);
	adds = dev_stat(NSIM_A, "adds");
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(rk_update_tx(&tx), 0);
		rk_send_bytes(_metadata, self->a, &off, 16384);
	}
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceSkip"), 2);
	EXPECT_EQ(dev_stat(NSIM_A, "adds"), adds);
	rk_wait_acked(self->a);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);	/* reinstalls */
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(dev_stat(NSIM_A, "adds") - adds, 1);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	shutdown(self->a, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(w.x.err, NULL) TH_LOG("wire: %s", w.x.err);
	EXPECT_EQ(w.x.bytes, off);
	EXPECT_EQ(w.control_records, 3);
}

/* Nothing unacked at the key update: setsockopt() does not wait for the
 * grace period that must pass before the device's old context goes (it
 * returns with the key not on the device yet), and the first send after
 * that period gives the device the key: no record of it goes out in SW.
 * Regression: setsockopt() waited for a grace period (with the socket
 * locked), 200 times as long as on a SW socket.
 */
TEST_F_TIMEOUT(offload_rekey, idle_key_update_installs_at_once, 120)
{
	struct tls_key wire_key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1 };
	struct rk_send tx = { .fd = self->a, .key = self->key_ab, .seed = 1 };
	unsigned long long off = 0;
	long long sealed;
	pthread_t th;

	rk_offload_ab(_metadata, self, false);
	ASSERT_EQ(pthread_create(&th, NULL, wire_recv, &w), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	rk_wait_acked(self->a);
	key_init(&tx.key, TLS_1_3_VERSION, tx.key.info.cipher_type, ++tx.seed);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &tx.key), 0);
	/* the grace period starts in the call: it cannot end there */
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 0);
	rk_wait_grace_period();
	sealed = dev_stat(NSIM_A, "tx_records");
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	rk_wait_acked(self->a);
	EXPECT_EQ(dev_stat(NSIM_A, "tx_records") - sealed, CHUNK / 16384);
	shutdown(self->a, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(w.x.err, NULL) TH_LOG("wire: %s", w.x.err);
	EXPECT_EQ(w.x.bytes, off);
}

/* a ends its stream; the libcrypto reader @w (thread @th) opened every
 * record and got all @bytes
 */
static void rk_wire_end(struct __test_metadata *_metadata, int fd,
			pthread_t th, struct wire *w, unsigned long long bytes)
{
	shutdown(fd, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(w->x.err, NULL) TH_LOG("wire: %s after %lu records",
					 w->x.err, w->records);
	EXPECT_EQ(w->x.bytes, bytes);
}

/* How a stale copy of an old-key record meets the key update: it waits in
 * a's qdisc while the peer acks the original, and the old key retires.
 */
enum rk_stale {
	STALE_QUEUED,		/* behind another refused skb, not validated */
	STALE_REQUEUED,		/* refused itself: validated, in the requeue slot */
	STALE_REQUEUED_SW,	/* the same, and the next key's device add fails */
};

/* Does any frame seen on @cap carry @len bytes of @plain? */
static bool rk_seen_on_wire(int cap, const unsigned char *plain, size_t len)
{
	static unsigned char frame[65536 + 256];
	bool seen = false;
	ssize_t n;

	while ((n = recv(cap, frame, sizeof(frame), MSG_DONTWAIT)) > 0)
		if (memmem(frame, n, plain, len))
			seen = true;
	return seen;
}

/* A copy of an old-key record that TCP retransmitted while the peer's ACK
 * was late waits in a's qdisc (the device refuses transmits) until the ACK
 * has come, the old key has retired and the next key is on the device (or
 * failed to get there). When the queue runs again the copy must not reach
 * the wire as plaintext, nor a driver that no longer has its key: a driver
 * that finds it before its start marker sends it as it is (the trusting
 * profile does, as mlx5 does), one without its context reads freed state.
 * Regressions: qdiscs sent a requeued skb without validating it again
 * (found as plaintext on b's wire, and as netdevsim's warning with the
 * context deleted), and tls_validate_xmit_skb() passed stale copies of
 * acked data to the device (plaintext again).
 */
static void rk_stale_copy(struct __test_metadata *_metadata,
			  FIXTURE_DATA(offload_rekey) *self, enum rk_stale how)
{
	struct tls_key wire_key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1 };
	struct rk_send tx = { .fd = self->a, .key = self->key_ab, .seed = 1 };
	long long before_start, drops, busy;
	unsigned long long off = 0;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	unsigned char plain[32];
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	int cap, udp, tries, unsent, one = 1, bufsz = 8 << 20;
	__u32 retrans;
	pthread_t th;
	size_t i;

	rk_offload_ab(_metadata, self, false);
	/* netdevsim has no qdisc; a NIC's refused skbs wait in one */
	ASSERT_EQ(topo("tc -n $NS_A qdisc add dev $DEV_A root pfifo limit 1000"), 0);
	ASSERT_EQ(in_netns("tls-b"), 0);
	cap = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	ASSERT_GE(cap, 0);
	setsockopt(cap, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz));
	ASSERT_EQ(pthread_create(&th, NULL, wire_recv, &w), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wait_acked(self->a);
	rk_slow_acks(_metadata, 1500);
	ASSERT_EQ(setsockopt(self->a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
	for (i = 0; i < sizeof(plain); i++)
		plain[i] = stream_byte(off + i, 7);
	/* a record of the old key, on the wire at once (one segment: no
	 * window or cwnd holds part of it), acked 1.5 s later
	 */
	rk_send_bytes(_metadata, self->a, &off, 1000);
	ASSERT_EQ(rk_update_tx(&tx), 0);
	/* all of it: Nagle or autocork would keep a tail for later */
	for (tries = 0, unsent = 1; tries < 100 && unsent; tries++) {
		ASSERT_EQ(ioctl(self->a, SIOCOUTQNSD, &unsent), 0);
		if (unsent)
			usleep(1000);
	}
	ASSERT_EQ(unsent, 0);
	busy = dev_stat(NSIM_A, "tx_busy");
	ASSERT_EQ(dev_knob(NSIM_A, "tx_busy", 1), 0);
	ASSERT_EQ(getsockopt(self->a, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
	retrans = ti.tcpi_total_retrans;
	if (how == STALE_QUEUED) {
		/* a datagram takes the refusal: the copy queues behind it */
		ASSERT_EQ(getpeername(self->a, (void *)&ss, &sl), 0);
		((struct sockaddr_in *)&ss)->sin_port = htons(9);
		ASSERT_EQ(in_netns("tls-a"), 0);
		udp = socket(ss.ss_family, SOCK_DGRAM, 0);
		ASSERT_EQ(sendto(udp, "x", 1, 0, (void *)&ss, sl), 1);
		close(udp);
	}
	/* the loss probe or the retransmission timer sends the copy */
	for (tries = 0; tries < 130; tries++) {
		ASSERT_EQ(getsockopt(self->a, IPPROTO_TCP, TCP_INFO, &ti, &tl), 0);
		if (ti.tcpi_total_retrans > retrans)
			break;
		usleep(10000);
	}
	ASSERT_GT(ti.tcpi_total_retrans, retrans);
	EXPECT_GE(dev_stat(NSIM_A, "tx_busy") - busy, 1);
	/* the late ACK retires the old key */
	rk_wait_acked(self->a);
	if (how == STALE_REQUEUED_SW)
		ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	before_start = dev_stat(NSIM_A, "tx_before_start");
	drops = dev_stat(NSIM_A, "tx_drops");
	/* the next key goes to the device here; the data waits too */
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"),
		  how != STALE_REQUEUED_SW);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"),
		  how == STALE_REQUEUED_SW);
	ASSERT_EQ(dev_knob(NSIM_A, "tx_busy", 0), 0);
	rk_wire_end(_metadata, self->a, th, &w, off);
	EXPECT_EQ(w.control_records, 1);
	EXPECT_FALSE(rk_seen_on_wire(cap, plain, sizeof(plain)))
		TH_LOG("the old key's plaintext went out on a's wire");
	EXPECT_EQ(dev_stat(NSIM_A, "tx_before_start") - before_start, 0);
	EXPECT_EQ(dev_stat(NSIM_A, "tx_drops") - drops, 0);
	close(cap);
}

TEST_F_TIMEOUT(offload_rekey, stale_copy_queued, 60)
{
	rk_stale_copy(_metadata, self, STALE_QUEUED);
}

TEST_F_TIMEOUT(offload_rekey, stale_copy_requeued, 60)
{
	rk_stale_copy(_metadata, self, STALE_REQUEUED);
}

TEST_F_TIMEOUT(offload_rekey, stale_copy_requeued_key_refused, 60)
{
	rk_stale_copy(_metadata, self, STALE_REQUEUED_SW);
}

static long ms_between(const struct timespec *t0, const struct timespec *t1)
{
	return (t1->tv_sec - t0->tv_sec) * 1000 +
	       (t1->tv_nsec - t0->tv_nsec) / 1000000;
}

/* Data queued with MSG_MORE after the KeyUpdate record (which closed any
 * earlier record) is the new key's: the key set next seals it, in SW, on
 * the device path in a window (old records in flight) and with nothing in
 * flight. A libcrypto peer opens every record. Regression: the open record
 * was closed with the old key at setsockopt(TLS_TX).
 */
static void rk_open_record_across_update(struct __test_metadata *_metadata,
					 FIXTURE_DATA(offload_rekey) *self,
					 bool offload, bool in_flight)
{
	struct tls_key wire_key = self->key_ab, key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1 };
	unsigned long long off = 0;
	unsigned char buf[1000];
	pthread_t th;
	size_t i;

	if (!offload)
		ASSERT_EQ(topo("ip netns exec $NS_A ethtool -K $DEV_A tls-hw-tx-offload off"), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &key), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), offload);
	if (in_flight)
		rk_slow_acks(_metadata, 300);
	ASSERT_EQ(pthread_create(&th, NULL, wire_recv, &w), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	if (!in_flight)
		rk_wait_acked(self->a);
	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = stream_byte(off + i, 7);
	ASSERT_EQ(send(self->a, buf, sizeof(buf), MSG_MORE), sizeof(buf));
	off += sizeof(buf);
	key_init(&key, TLS_1_3_VERSION, key.info.cipher_type, 2);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &key), 0);
	if (offload)
		EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	rk_send_bytes(_metadata, self->a, &off, 3000);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wire_end(_metadata, self->a, th, &w, off);
	EXPECT_EQ(w.control_records, 1);
}

TEST_F_TIMEOUT(offload_rekey, open_record_takes_new_key, 120)
{
	rk_open_record_across_update(_metadata, self, true, true);
}

TEST_F_TIMEOUT(offload_rekey, open_record_takes_new_key_idle, 120)
{
	rk_open_record_across_update(_metadata, self, true, false);
}

TEST_F_TIMEOUT(offload_rekey, open_record_takes_new_key_sw, 120)
{
	rk_open_record_across_update(_metadata, self, false, true);
}

/* The next key while a's send buffer is full, b not reading (the device
 * path's last record is likely only partly in TCP): setsockopt(TLS_TX)
 * neither waits for room nor fails with EAGAIN, on a blocking socket with
 * a send timeout and on an O_NONBLOCK one. What send() took before is the
 * old key's, what comes after the new one's. Regression: setsockopt()
 * waited for room to flush the device's record, and failed with EAGAIN
 * once the send timeout passed.
 */
static void rk_update_with_full_sndbuf(struct __test_metadata *_metadata,
				       FIXTURE_DATA(offload_rekey) *self,
				       bool nonblock)
{
	struct tls_key wire_key = self->key_ab, key = self->key_ab;
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1,
			  .hold_ms = 3000 };
	struct timeval sndtimeo = { .tv_usec = 200000 };
	static unsigned char buf[CHUNK];
	unsigned long long off = 0;
	struct timespec t0, t1;
	int sndbuf = 65536;
	pthread_t th;
	ssize_t n;
	size_t i;

	ASSERT_EQ(setsockopt(self->a, SOL_SOCKET, SO_SNDBUF, &sndbuf,
			     sizeof(sndbuf)), 0);
	ASSERT_EQ(setsockopt(self->a, SOL_SOCKET, SO_SNDTIMEO, &sndtimeo,
			     sizeof(sndtimeo)), 0);
	rk_offload_ab(_metadata, self, false);
	for (;;) {
		for (i = 0; i < CHUNK; i++)
			buf[i] = stream_byte(off + i, 7);
		n = send(self->a, buf, 12345, MSG_DONTWAIT);
		if (n < 0)
			break;
		off += n;
	}
	ASSERT_EQ(errno, EAGAIN);
	w.new_key_at = off;
	ASSERT_EQ(pthread_create(&th, NULL, wire_recv, &w), 0);
	if (nonblock)
		ASSERT_EQ(fcntl(self->a, F_SETFL, O_NONBLOCK), 0);
	key_init(&key, TLS_1_3_VERSION, key.info.cipher_type, 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	EXPECT_EQ(tls_key_set(self->a, TLS_TX, &key), 0)
		TH_LOG("setsockopt: %s", strerror(errno));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	__atomic_store_n(&w.start, 1, __ATOMIC_RELEASE);
	EXPECT_LT(ms_between(&t0, &t1), 100);
	ASSERT_EQ(fcntl(self->a, F_SETFL, 0), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wire_end(_metadata, self->a, th, &w, off);
}

TEST_F_TIMEOUT(offload_rekey, update_with_full_sndbuf, 120)
{
	rk_update_with_full_sndbuf(_metadata, self, false);
}

TEST_F_TIMEOUT(offload_rekey, update_with_full_sndbuf_nonblock, 120)
{
	rk_update_with_full_sndbuf(_metadata, self, true);
}

/* A writer blocked in a large send() (b does not read yet) released the
 * socket, not the TX lock: setsockopt(TLS_TX) from a second thread waits
 * for its message to end, and all of that message is the old key's, in SW
 * and on the device path. Regression: the SW path sealed the rest of the
 * writer's message with the new key.
 */
struct rk_writer {
	int fd;
	size_t len;
	ssize_t sent;
	int done;
};

static void *rk_write(void *arg)
{
	struct rk_writer *x = arg;
	unsigned char *buf = malloc(x->len);
	size_t i;

	for (i = 0; buf && i < x->len; i++)
		buf[i] = stream_byte(i, 7);
	x->sent = buf ? send(x->fd, buf, x->len, 0) : -1;
	__atomic_store_n(&x->done, 1, __ATOMIC_RELEASE);
	free(buf);
	return NULL;
}

static void rk_update_under_blocked_writer(struct __test_metadata *_metadata,
					   FIXTURE_DATA(offload_rekey) *self,
					   bool offload)
{
	struct tls_key wire_key = self->key_ab, key = self->key_ab;
	struct rk_writer writer = { .fd = self->a, .len = 4 << 20 };
	struct wire w = { .x = { .fd = self->b, .salt = 7 }, .key = &wire_key,
			  .follow_key_updates = 1, .seed = 1,
			  .new_key_at = writer.len, .hold_ms = 1000 };
	unsigned long long off = writer.len;
	int outq = 0, last = -1, sndbuf = 65536;
	struct timespec t0, t1;
	pthread_t th[2];

	/* most of the message is still to be sealed when the writer blocks */
	ASSERT_EQ(setsockopt(self->a, SOL_SOCKET, SO_SNDBUF, &sndbuf,
			     sizeof(sndbuf)), 0);
	if (!offload)
		ASSERT_EQ(topo("ip netns exec $NS_A ethtool -K $DEV_A tls-hw-tx-offload off"), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &key), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), offload);
	ASSERT_EQ(pthread_create(&th[0], NULL, rk_write, &writer), 0);
	/* blocked: its bytes stop growing in the send queue */
	while (!outq || outq != last) {
		last = outq;
		usleep(100000);
		ioctl(self->a, SIOCOUTQ, &outq);
	}
	ASSERT_EQ(__atomic_load_n(&writer.done, __ATOMIC_ACQUIRE), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, wire_recv, &w), 0);
	key_init(&key, TLS_1_3_VERSION, key.info.cipher_type, 2);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &key), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the writer can only end once b reads, after hold_ms */
	EXPECT_GE(ms_between(&t0, &t1), w.hold_ms / 2);
	pthread_join(th[0], NULL);
	EXPECT_EQ(writer.sent, (ssize_t)writer.len);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wire_end(_metadata, self->a, th[1], &w, off);
}

TEST_F_TIMEOUT(offload_rekey, update_waits_for_blocked_writer, 120)
{
	rk_update_under_blocked_writer(_metadata, self, true);
}

TEST_F_TIMEOUT(offload_rekey, update_waits_for_blocked_writer_sw, 120)
{
	rk_update_under_blocked_writer(_metadata, self, false);
}

/* tls_dev_add refuses the new key (test knob) on both devices: a's TX and
 * b's RX stay in SW, the data flows, the failures are counted; the next
 * key update gets both back to the devices.
 */
TEST_F_TIMEOUT(offload_rekey, dev_add_fails_at_reinstall, 300)
{
	long long adds_a, adds_b;
	struct rk_send tx;
	struct rk_recv rx;

	/* a bounded send buffer retires each old key well before the next
	 * update, also where ACKs come late (a slow kernel, rx_deferred's
	 * batches): the return to the device is tried at a send after that
	 */
	ASSERT_EQ(setsockopt(self->a, SOL_SOCKET, SO_SNDBUF, &(int){ 131072 },
			     sizeof(int)), 0);
	/* and b's receive window is narrower than the stream after the last
	 * update: the RX context returns past it (the old context's zone)
	 */
	ASSERT_EQ(setsockopt(self->b, SOL_SOCKET, SO_RCVBUF, &(int){ 262144 },
			     sizeof(int)), 0);
	rk_offload_ab(_metadata, self, true);
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	ASSERT_EQ(dev_knob(NSIM_B, "fail_add", 1), 0);
	adds_a = dev_stat(NSIM_A, "adds");
	adds_b = dev_stat(NSIM_B, "adds");
	rk_run(_metadata, self, 3 << 20, 1 << 20, false, false, &tx, &rx);
	EXPECT_EQ(tx.rekeys, 2);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceFail"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(dev_stat(NSIM_A, "adds") - adds_a, 1);
	EXPECT_EQ(dev_stat(NSIM_B, "adds") - adds_b, 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
}

/* b's KeyUpdate and records of its next key wait in a's socket, the
 * device having run the old key over parts of them, when a's port is
 * deleted: the key update that follows tls_device_down() must still undo
 * what the old context did to those records.
 */
TEST_F_TIMEOUT(offload_rekey, rx_update_after_port_deleted, 120)
{
	struct rk_recv rx = { .fd = self->a, .key = self->key_ba, .seed = 101 };
	struct rk_send tx = { .fd = self->b, .key = self->key_ba, .seed = 101 };
	unsigned long long off = 0;

	ASSERT_EQ(tls_key_set(self->b, TLS_TX, &self->key_ba), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_RX, &self->key_ba), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRxDevice"), 1);
	/* all of it fits a's receive buffer: a reads only at the end */
	rk_send_bytes(_metadata, self->b, &off, 16384);
	ASSERT_EQ(rk_update_tx(&tx), 0);
	rk_send_bytes(_metadata, self->b, &off, 3 * 16384);
	shutdown(self->b, SHUT_WR);
	rk_wait_acked(self->b);
	/* the old key met records of the new one */
	EXPECT_GT(dev_stat(NSIM_A, "rx_auth_failures"), 0);
	ASSERT_EQ(topo("topo_replace_a %d %d", NSIM_A, NSIM_A + 2), 0);
	rk_receiver(&rx);
	EXPECT_EQ(rx.err, NULL) TH_LOG("receiver: %s", rx.err);
	EXPECT_EQ(rx.bytes, off);
	EXPECT_EQ(rx.rekeys, 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsDecryptError"), 0);
}

/* A SW window is open on a (slow ACKs) when @what happens: nothing leaks
 * or splats (the runner checks the kernel log, kmemleak in DEBUG runs),
 * and b reads every byte a sent, then the end of the stream. With
 * @a_gone, a's netns is gone: b gets what arrived, then a timeout or a
 * reset, never a wrong byte.
 */
enum rk_end { RK_CLOSE_FIRST, RK_SEND_AFTER, RK_A_GONE };

static void rk_end_mid_window(struct __test_metadata *_metadata,
			      FIXTURE_DATA(offload_rekey) *self,
			      const char *what, enum rk_end how)
{
	struct rk_recv rx = { .fd = self->b, .key = self->key_ab, .seed = 1 };
	struct rk_send tx = { .fd = self->a, .key = self->key_ab, .seed = 1 };
	struct timeval tv = { .tv_sec = how == RK_A_GONE ? 3 : 20 };
	unsigned long long off = 0;
	pthread_t th;

	rk_offload_ab(_metadata, self, true);
	ASSERT_EQ(setsockopt(self->b, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	rk_slow_acks(_metadata, 300);
	ASSERT_EQ(pthread_create(&th, NULL, rk_receiver, &rx), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	ASSERT_EQ(rk_update_tx(&tx), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	if (how == RK_CLOSE_FIRST) {
		close(self->a);
		self->a = socket(AF_INET, SOCK_STREAM, 0);
	}
	EXPECT_EQ(topo("%s", what), 0);
	if (how == RK_SEND_AFTER)
		rk_send_bytes(_metadata, self->a, &off, CHUNK);
	if (how != RK_CLOSE_FIRST) {
		close(self->a);
		self->a = socket(AF_INET, SOCK_STREAM, 0);
	}
	pthread_join(th, NULL);
	if (how == RK_A_GONE) {
		EXPECT_TRUE(!rx.err || strcmp(rx.err, "corrupt byte"));
		EXPECT_LE(rx.bytes, off);
		return;
	}
	EXPECT_EQ(rx.err, NULL) TH_LOG("receiver: %s", rx.err);
	EXPECT_EQ(rx.bytes, off);
	EXPECT_EQ(rx.rekeys, 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
}

TEST_F_TIMEOUT(offload_rekey, socket_closed_mid_window, 120)
{
	rk_end_mid_window(_metadata, self, "true", RK_CLOSE_FIRST);
}

TEST_F_TIMEOUT(offload_rekey, device_removed_mid_window, 120)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "topo_replace_a %d %d", NSIM_A, NSIM_A + 2);
	rk_end_mid_window(_metadata, self, cmd, RK_SEND_AFTER);
}

TEST_F_TIMEOUT(offload_rekey, netns_deleted_mid_window, 120)
{
	rk_end_mid_window(_metadata, self, "ip netns del $NS_A", RK_A_GONE);
}

/* ------------------------------------------------------------ storms */

/* include/net/tls_rekey.h's thresholds (not UAPI) */
#define SHORT_KEY_BYTES	(128 << 10)	/* TLS_REKEY_SHORT_KEY_BYTES */
#define STORM_KEYS	8		/* TLS_REKEY_STORM_KEYS */
#define CALM_MS		1000		/* TLS_REKEY_CALM_MS */

/* A KeyUpdate after every @rec bytes of a, @n times: a's TX key and b's RX
 * key (@rx, read by its thread) change every record.
 */
static void rk_flood(struct __test_metadata *_metadata, struct rk_send *tx,
		     struct rk_recv *rx, unsigned long long *off, int n,
		     size_t rec)
{
	unsigned int want = tx->rekeys + n;
	int i, tries;

	for (i = 0; i < n; i++) {
		rk_send_bytes(_metadata, tx->fd, off, rec);
		ASSERT_EQ(rk_update_tx(tx), 0);
	}
	for (tries = 0; tries < 1000 && rx->rekeys < want; tries++)
		usleep(10000);
	ASSERT_EQ(rx->rekeys, want) TH_LOG("b took %u of %u keys", rx->rekeys, want);
}

/* A peer re-keying after every record (and a sender doing the same on its
 * TX): after STORM_KEYS short keys each direction is in a storm and stays in
 * SW, the devices see no more key installs however long the flood; once
 * the key has been in force CALM_MS, the next records give both devices
 * the key again. Every byte arrives intact.
 */
TEST_F_TIMEOUT(offload_rekey, key_update_flood_stays_in_sw, 180)
{
	struct rk_send tx = { .fd = self->a, .key = self->key_ab, .seed = 1 };
	struct rk_recv rx = { .fd = self->b, .key = self->key_ab, .seed = 1 };
	long long adds_a, adds_b, dels_b, mid_a, mid_b;
	unsigned long long off = 0;
	pthread_t th;
	int i;

	rk_offload_ab(_metadata, self, true);
	ASSERT_EQ(pthread_create(&th, NULL, rk_receiver, &rx), 0);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	adds_a = dev_stat(NSIM_A, "adds");
	adds_b = dev_stat(NSIM_B, "adds");
	dels_b = dev_stat(NSIM_B, "dels");

	/* up to the storm: each direction's keys may still reach its device */
	rk_flood(_metadata, &tx, &rx, &off, STORM_KEYS + 1, 1000);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyStorm"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyStorm"), 1);
	mid_a = dev_stat(NSIM_A, "adds");
	mid_b = dev_stat(NSIM_B, "adds");
	EXPECT_LE(mid_a - adds_a, STORM_KEYS + 1);
	EXPECT_LE(mid_b - adds_b, STORM_KEYS + 1);

	/* the storm: no device call, whatever else goes on */
	rk_flood(_metadata, &tx, &rx, &off, 200, 1000);
	for (i = 0; i < 4; i++)
		rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wait_acked(self->a);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	EXPECT_EQ(dev_stat(NSIM_A, "adds"), mid_a);
	EXPECT_EQ(dev_stat(NSIM_B, "adds"), mid_b);
	EXPECT_LE(dev_stat(NSIM_B, "dels") - dels_b, mid_b - adds_b + 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyStorm"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyStorm"), 1);

	/* calm: the key in force for CALM_MS, then traffic past b's zone */
	usleep((CALM_MS + 100) * 1000);
	rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wait_acked(self->a);
	for (i = 0; i < 32; i++)
		rk_send_bytes(_metadata, self->a, &off, CHUNK);
	rk_wait_acked(self->a);
	EXPECT_EQ(dev_stat(NSIM_A, "adds"), mid_a + 1);
	EXPECT_EQ(dev_stat(NSIM_B, "adds"), mid_b + 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRekeyWindow"), 0);

	shutdown(self->a, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(rx.err, NULL) TH_LOG("receiver: %s", rx.err);
	EXPECT_EQ(rx.bytes, off);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
}

/* One pair floods (a KeyUpdate after every 16 KiB record) while OTHERS other
 * offloaded pairs on the same devices each make one ordinary key update
 * (after 512 KiB, then 256 KiB more: past b's zone, its receive buffer is
 * small), all at once, with a device budget of BUDGET installs a second:
 * the flood's directions go into their storm and take none of the budget,
 * the others all get their keys without waiting for it. Every byte
 * intact.
 */
#define OTHERS		20
#define BUDGET		20

struct rk_flooder {
	struct rk_send tx;
	struct rk_recv *rx;
	volatile int stop;
	const char *err;
};

static void *rk_flooder(void *arg)
{
	struct rk_flooder *f = arg;
	static unsigned char buf[16384];
	unsigned long long off = 0;
	size_t i;

	while (!f->stop) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = stream_byte(off + i, 7);
		if (send_all(f->tx.fd, buf, sizeof(buf)) || rk_update_tx(&f->tx)) {
			f->err = "flood";
			break;
		}
		off += sizeof(buf);
	}
	f->tx.bytes = off;
	shutdown(f->tx.fd, SHUT_WR);
	return NULL;
}

TEST_F_TIMEOUT(offload_rekey, flood_does_not_starve_others, 300)
{
	struct rk_send tx[OTHERS];
	struct rk_recv rx[OTHERS], frx = { .fd = self->b, .key = self->key_ab,
					   .seed = 1 };
	struct rk_flooder f = { .tx = { .fd = self->a, .key = self->key_ab,
					.seed = 1 }, .rx = &frx };
	long long adds_a, adds_b, back_a, back_b, waits;
	int a[OTHERS], b[OTHERS], i, tries;
	pthread_t th[2 * OTHERS + 2];
	struct timespec t0, t;
	double secs = 0;

	ASSERT_EQ(topo("ip netns exec $NS_A sysctl -qw net.tls.rekey_device_budget=%d && "
		       "ip netns exec $NS_B sysctl -qw net.tls.rekey_device_budget=%d",
		       BUDGET, BUDGET), 0);
	rk_offload_ab(_metadata, self, true);
	for (i = 0; i < OTHERS; i++) {
		ASSERT_EQ(connect_pair(variant->family, &a[i], &b[i]), 0);
		ASSERT_EQ(tls_ulp(a[i]), 0);
		ASSERT_EQ(tls_ulp(b[i]), 0);
		ASSERT_EQ(setsockopt(b[i], SOL_SOCKET, SO_RCVBUF, &(int){ 65536 },
				     sizeof(int)), 0);
		ASSERT_EQ(tls_key_set(a[i], TLS_TX, &self->key_ab), 0);
		ASSERT_EQ(tls_key_set(b[i], TLS_RX, &self->key_ab), 0);
	}
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), OTHERS + 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRxDevice"), OTHERS + 1);

	/* the flood, past the keys that go to the devices before its
	 * storm, and until the budget they took is back
	 */
	ASSERT_EQ(pthread_create(&th[0], NULL, rk_receiver, &frx), 0);
	ASSERT_EQ(pthread_create(&th[1], NULL, rk_flooder, &f), 0);
	for (tries = 0; tries < 600 && frx.rekeys < 4 * STORM_KEYS; tries++)
		usleep(10000);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyStorm"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyStorm"), 1);
	usleep(1100000);

	/* the others */
	adds_a = dev_stat(NSIM_A, "adds");
	adds_b = dev_stat(NSIM_B, "adds");
	back_a = ns_stat("tls-a", "TlsTxRekeyDeviceReinstall");
	back_b = ns_stat("tls-b", "TlsRxRekeyDeviceReinstall");
	waits = ns_stat("tls-a", "TlsRekeyDeviceBudgetWait") +
		ns_stat("tls-b", "TlsRekeyDeviceBudgetWait");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < OTHERS; i++) {
		tx[i] = (struct rk_send){ .fd = a[i], .key = self->key_ab,
					  .seed = 1, .bytes = 768 << 10,
					  .every = 512 << 10 };
		rx[i] = (struct rk_recv){ .fd = b[i], .key = self->key_ab,
					  .seed = 1 };
		ASSERT_EQ(pthread_create(&th[2 + 2 * i], NULL, rk_receiver, &rx[i]), 0);
		ASSERT_EQ(pthread_create(&th[3 + 2 * i], NULL, rk_sender, &tx[i]), 0);
	}
	for (i = 0; i < OTHERS; i++) {
		pthread_join(th[3 + 2 * i], NULL);
		pthread_join(th[2 + 2 * i], NULL);
		EXPECT_EQ(tx[i].err, NULL);
		EXPECT_EQ(rx[i].err, NULL) TH_LOG("pair %d: %s", i, rx[i].err);
		EXPECT_EQ(rx[i].bytes, 768 << 10);
		EXPECT_EQ(rx[i].rekeys, 1);
	}
	for (tries = 0; tries < 300; tries++) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		secs = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		if (ns_stat("tls-b", "TlsRxRekeyDeviceReinstall") - back_b >= OTHERS)
			break;
		usleep(10000);
	}
	TH_LOG("the others: %lld TX and %lld RX keys back on the devices after %.2f s; %lld installs waited for the budget",
	       ns_stat("tls-a", "TlsTxRekeyDeviceReinstall") - back_a,
	       ns_stat("tls-b", "TlsRxRekeyDeviceReinstall") - back_b, secs,
	       ns_stat("tls-a", "TlsRekeyDeviceBudgetWait") +
	       ns_stat("tls-b", "TlsRekeyDeviceBudgetWait") - waits);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceReinstall") - back_b, OTHERS);
	/* the flood took nothing: every install was one of the others' (a's
	 * go back at a send after their ACKs, if one came), none waited
	 */
	EXPECT_EQ(dev_stat(NSIM_B, "adds") - adds_b, OTHERS);
	EXPECT_LE(dev_stat(NSIM_A, "adds") - adds_a, OTHERS);
	EXPECT_EQ(ns_stat("tls-a", "TlsRekeyDeviceBudgetWait") +
		  ns_stat("tls-b", "TlsRekeyDeviceBudgetWait"), waits);

	f.stop = 1;
	pthread_join(th[1], NULL);
	pthread_join(th[0], NULL);
	EXPECT_EQ(f.err, NULL);
	EXPECT_EQ(frx.err, NULL) TH_LOG("flood receiver: %s", frx.err);
	EXPECT_EQ(frx.bytes, f.tx.bytes);
	EXPECT_EQ(frx.rekeys, f.tx.rekeys);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
	for (i = 0; i < OTHERS; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* ------------------------------------------------------------ policies */

/* Key update policies (struct tls_rekey_ops; bpf/ and selftests/bpf/)
 * loaded with libbpf. Their maps are pinned by name under PIN_DIR while
 * loaded; at most one is attached at a time, system-wide.
 */
#define PIN_DIR		"/sys/fs/bpf/tls_rekey_selftest"
/* tls_rekey_ctx.dir: the kernel's enum tls_offload_ctx_dir */
#define DIR_RX		0
#define DIR_TX		1
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE	71
#endif

struct policy {
	struct bpf_object *obj;
	struct bpf_link *link;
};

/* A value of enum tls_rekey_decision: not UAPI, the kernel's BTF has it
 * (vmlinux's, or tls.ko's where TLS is a module), as vmlinux.h has for the
 * policies. INT_MIN if it is not there.
 */
static int rekey_decision(const char *name)
{
	static struct btf *vmlinux, *btf;
	const struct btf_enum *e;
	const struct btf_type *t;
	int id = -1, i;

	if (!vmlinux)
		vmlinux = btf__load_vmlinux_btf();
	if (!btf && vmlinux)
		btf = btf__find_by_name_kind(vmlinux, "tls_rekey_decision",
					     BTF_KIND_ENUM) >= 0 ? vmlinux :
		      btf__load_module_btf("tls", vmlinux);
	if (btf)
		id = btf__find_by_name_kind(btf, "tls_rekey_decision", BTF_KIND_ENUM);
	if (id < 0)
		return INT_MIN;
	t = btf__type_by_id(btf, id);
	for (i = 0, e = btf_enum(t); i < btf_vlen(t); i++, e++)
		if (!strcmp(btf__name_by_offset(btf, e->name_off), name))
			return e->val;
	return INT_MIN;
}

#define TLS_REKEY_STAY_SW	rekey_decision("TLS_REKEY_STAY_SW")
#define TLS_REKEY_INSTALL	rekey_decision("TLS_REKEY_INSTALL")

/* build/selftests/bpf/NAME.bpf.o (test policies) or build/bpf/NAME.bpf.o */
static const char *policy_file(const char *name)
{
	static __thread char path[PATH_MAX + 64];
	char exe[PATH_MAX], *dir;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n < 0 ? 0 : n] = 0;
	dir = dirname(exe);
	snprintf(path, sizeof(path), "%s/bpf/%s.bpf.o", dir, name);
	if (access(path, R_OK))
		snprintf(path, sizeof(path), "%s/../bpf/%s.bpf.o", dir, name);
	return path;
}

static int policy_load(struct policy *p, const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .pin_root_path = PIN_DIR);
	int err;

	p->link = NULL;
	p->obj = bpf_object__open_file(policy_file(name), &opts);
	if (!p->obj)
		return -errno;
	if (bpf_object__load(p->obj)) {
		err = -errno;
		bpf_object__close(p->obj);
		p->obj = NULL;
		return err;
	}
	return 0;
}

static struct bpf_map *policy_ops(struct policy *p)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, p->obj)
		if (bpf_map__type(map) == BPF_MAP_TYPE_STRUCT_OPS)
			return map;
	return NULL;
}

/* the name @p registers under: its struct_ops map is NAME_ops */
static const char *policy_name(struct policy *p)
{
	static __thread char name[64];
	const char *ops = bpf_map__name(policy_ops(p));

	snprintf(name, sizeof(name), "%.*s", (int)strlen(ops) - 4, ops);
	return name;
}

/* Run @fn in netns @ns (NULL: this thread's), then come back. */
static int in_netns_do(const char *ns, int (*fn)(void *), void *arg)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY), err;

	if (self < 0)
		return -errno;
	err = ns && in_netns(ns) ? -errno : fn(arg);
	if (setns(self, CLONE_NEWNET))
		err = -errno;
	close(self);
	return err;
}

struct sysctl_io {
	const char *name;	/* to write, or NULL to read into @buf */
	char buf[64];
};

static int rekey_sysctl_io(void *arg)
{
	struct sysctl_io *io = arg;
	int fd = open("/proc/sys/net/tls/rekey_policy",
		      io->name ? O_WRONLY : O_RDONLY);
	ssize_t n;
	int err = 0;

	if (fd < 0)
		return -errno;
	if (io->name) {
		/* a newline ends a name, and is the whole of an empty one */
		char line[128];

		snprintf(line, sizeof(line), "%s\n", io->name);
		if (write(fd, line, strlen(line)) < 0)
			err = -errno;
	} else {
		n = read(fd, io->buf, sizeof(io->buf) - 1);
		if (n < 0)
			err = -errno;
		io->buf[n > 0 ? n - 1 : 0] = 0;
	}
	close(fd);
	return err;
}

/* net.tls.rekey_policy of netns @ns: 0 or -errno */
static int ns_policy_set(const char *ns, const char *name)
{
	struct sysctl_io io = { .name = name };

	return in_netns_do(ns, rekey_sysctl_io, &io);
}

static const char *ns_policy(const char *ns)
{
	static __thread struct sysctl_io io;

	if (in_netns_do(ns, rekey_sysctl_io, &io))
		snprintf(io.buf, sizeof(io.buf), "(unreadable)");
	return io.buf;
}

/* what decides @fd's next key update: getsockopt(TLS_REKEY_POLICY) */
static const char *sock_policy(int fd)
{
	static __thread char name[32];
	socklen_t len = sizeof(name);

	memset(name, 0, sizeof(name));
	if (getsockopt(fd, SOL_TLS, TLS_REKEY_POLICY, name, &len))
		snprintf(name, sizeof(name), "(errno %d)", errno);
	return name;
}

static int sock_choose(int fd, const char *name, socklen_t len)
{
	return setsockopt(fd, SOL_TLS, TLS_REKEY_POLICY, name, len) ? -errno : 0;
}

/* register @p; nothing uses it until a socket or a namespace chooses it */
static int policy_register(struct policy *p)
{
	p->link = bpf_map__attach_struct_ops(policy_ops(p));
	return p->link ? 0 : -errno;
}

/* register @p and make it the default of both test namespaces */
static int policy_attach(struct policy *p)
{
	int err = policy_register(p);

	if (!err)
		err = ns_policy_set("tls-a", policy_name(p));
	if (!err)
		err = ns_policy_set("tls-b", policy_name(p));
	return err;
}

/* @to's policy takes over @from's link: never a moment without one */
static int policy_replace(struct policy *from, struct policy *to)
{
	int err = bpf_link__update_map(from->link, policy_ops(to));

	if (err)
		return err;
	to->link = from->link;
	from->link = NULL;
	return 0;
}

static void policy_unload(struct policy *p)
{
	bpf_link__destroy(p->link);
	p->link = NULL;
	if (!p->obj)
		return;
	bpf_object__unpin_maps(p->obj, NULL);
	bpf_object__close(p->obj);
	p->obj = NULL;
}

/* the live memory of a global data section (".bss", ".data") */
static void *policy_data(struct policy *p, const char *section)
{
	struct bpf_map *map = bpf_object__find_map_by_name(p->obj, section);
	size_t size;

	return map ? bpf_map__initial_value(map, &size) : NULL;
}

/* write a policy's tunables (its one-entry NAME_conf map) */
static int policy_tune(struct policy *p, const char *map, const void *conf,
		       size_t size)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->obj, map);
	__u32 zero = 0;

	return m ? bpf_map__update_elem(m, &zero, sizeof(zero), conf, size,
					 BPF_ANY) : -ENOENT;
}

/* u64 number @idx in a per-CPU STATS map's struct, all CPUs summed */
static long long policy_counter(struct policy *p, const char *map, __u32 idx)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->obj, map);
	int cpus = libbpf_num_possible_cpus(), i;
	size_t size = m ? (bpf_map__value_size(m) + 7) / 8 * 8 : 0;
	long long sum = -1;
	__u32 zero = 0;
	__u64 *v;

	if (!m || (idx + 1) * 8 > size)
		return -1;
	v = calloc(cpus, size);
	if (v && !bpf_map__lookup_elem(m, &zero, sizeof(zero), v, cpus * size, 0))
		for (sum = 0, i = 0; i < cpus; i++)
			sum += v[i * size / 8 + idx];
	free(v);
	return sum;
}

static const char *const rec_hook_name[] = {
	[REC_STARTED] = "started", [REC_CLEAN_ACKED] = "acked",
	[REC_OLD_KEY_RETIRED] = "retired", [REC_REINSTALL] = "reinstall",
	[REC_DEV_ADD_FAILED] = "failed", [REC_RESUMED] = "resumed",
};

/* The recorded calls of direction @dir as "hook:generation[/attempt]"
 * words (attempt for the decisions and resumed), runs of clean_acked left
 * out; *@acked counts those runs.
 */
static const char *rec_calls(const struct rec_log *log, __u32 dir, int *acked)
{
	static char out[4096];
	const struct rec_call *c;
	size_t n = 0;
	__u32 i;

	out[0] = 0;
	*acked = 0;
	for (i = 0; i < log->nr && i < REC_MAX_CALLS; i++) {
		c = &log->calls[i];
		if (c->dir != dir)
			continue;
		if (c->hook == REC_CLEAN_ACKED) {
			++*acked;
			continue;
		}
		n += snprintf(out + n, sizeof(out) - n, "%s%s:%u", n ? " " : "",
			      rec_hook_name[c->hook], c->generation);
		if (c->hook >= REC_REINSTALL)
			n += snprintf(out + n, sizeof(out) - n, "/%u",
				      c->attempt);
	}
	return out;
}

/* the first recorded call of @hook for @dir and @generation */
static const struct rec_call *rec_find(const struct rec_log *log, __u32 hook,
				       __u32 dir, __u32 generation)
{
	__u32 i;

	for (i = 0; i < log->nr && i < REC_MAX_CALLS; i++)
		if (log->calls[i].hook == hook && log->calls[i].dir == dir &&
		    log->calls[i].generation == generation)
			return &log->calls[i];
	return NULL;
}

static __u64 netns_cookie(int fd)
{
	__u64 cookie = 0;
	socklen_t len = sizeof(cookie);

	getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
	return cookie;
}

/* One AES-GCM-128 connection over IPv4, a's TX offloaded (b's RX too
 * where a test says so), and the policy slots a test uses. Teardown
 * detaches whatever a test left attached.
 */
FIXTURE(rekey_policy) {
	FIXTURE_DATA(offload_rekey) rk;
	struct policy p, q;
	struct wire w;
	struct tls_key wire_key;
	struct rk_send tx;
	unsigned long long off;
	pthread_t reader;
	bool reading;
};

FIXTURE_SETUP(rekey_policy)
{
	ASSERT_EQ(topo("topo_up %d && topo_tls_offload", NSIM_A), 0);
	rk_connect(_metadata, &self->rk, AF_INET, TLS_CIPHER_AES_GCM_128);
	self->tx = (struct rk_send){ .fd = self->rk.a, .key = self->rk.key_ab,
				     .seed = 1 };
}

FIXTURE_TEARDOWN(rekey_policy)
{
	policy_unload(&self->p);
	policy_unload(&self->q);
	if (self->reading) {
		shutdown(self->rk.a, SHUT_WR);
		pthread_join(self->reader, NULL);
	}
	close(self->rk.a);
	close(self->rk.b);
	topo("topo_down %d", NSIM_A);
	rmdir(PIN_DIR);
}

/* a's TX offloaded; b checks every byte with libcrypto in a thread */
static void pol_start(struct __test_metadata *_metadata,
		      FIXTURE_DATA(rekey_policy) *self)
{
	rk_offload_ab(_metadata, &self->rk, false);
	self->wire_key = self->rk.key_ab;
	self->w = (struct wire){ .x = { .fd = self->rk.b, .salt = 7 },
				 .key = &self->wire_key,
				 .follow_key_updates = 1, .seed = 1 };
	ASSERT_EQ(pthread_create(&self->reader, NULL, wire_recv, &self->w), 0);
	self->reading = true;
}

/* a ends the stream; b got every byte and every KeyUpdate */
static void pol_finish(struct __test_metadata *_metadata,
		       FIXTURE_DATA(rekey_policy) *self)
{
	shutdown(self->rk.a, SHUT_WR);
	pthread_join(self->reader, NULL);
	self->reading = false;
	EXPECT_EQ(self->w.x.err, NULL) TH_LOG("wire: %s", self->w.x.err);
	EXPECT_EQ(self->w.x.bytes, self->off);
	EXPECT_EQ(self->w.control_records, self->tx.rekeys);
}

/* a key update with nothing in flight, its KeyUpdate record included; the
 * next send gives the device the key
 */
static void pol_idle_update(struct __test_metadata *_metadata,
			    FIXTURE_DATA(rekey_policy) *self)
{
	struct rk_send *tx = &self->tx;

	ASSERT_EQ(send_record(tx->fd, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	rk_wait_acked(tx->fd);
	key_init(&tx->key, TLS_1_3_VERSION, tx->key.info.cipher_type,
		 ++tx->seed);
	ASSERT_EQ(tls_key_set(tx->fd, TLS_TX, &tx->key), 0);
	tx->rekeys++;
	rk_wait_grace_period();
}

static void pol_send(struct __test_metadata *_metadata,
		     FIXTURE_DATA(rekey_policy) *self, size_t len)
{
	rk_send_bytes(_metadata, self->rk.a, &self->off, len);
}

/* b installed its @n-th RX key */
static void pol_wait_rx_rekeys(long n)
{
	int tries;

	for (tries = 0; tries < 1000 && ns_stat("tls-b", "TlsRxRekeyOk") < n;
	     tries++)
		usleep(10000);
}

/* b's device gets the RX key back past the receive window offered at the
 * update (the old context's zone): send until it had it @n times, at most
 * 4 MiB
 */
static void pol_send_until_rx_back(struct __test_metadata *_metadata,
				   FIXTURE_DATA(rekey_policy) *self, long n)
{
	int i;

	for (i = 0; i < 64 && ns_stat("tls-b", "TlsRxRekeyDeviceReinstall") < n;
	     i++) {
		pol_send(_metadata, self, CHUNK);
		usleep(10000);
	}
}

/* a's TX and b's RX (both offloaded) take one key update with nothing in
 * flight and go back to the device; b reads every byte with kTLS
 */
static void pol_update_both_ends(struct __test_metadata *_metadata,
				 FIXTURE_DATA(rekey_policy) *self)
{
	struct rk_recv rx = { .fd = self->rk.b, .key = self->rk.key_ab,
			      .seed = 1 };
	pthread_t th;

	ASSERT_EQ(pthread_create(&th, NULL, rk_receiver, &rx), 0);
	pol_send(_metadata, self, CHUNK);
	pol_idle_update(_metadata, self);
	pol_wait_rx_rekeys(1);
	pol_send_until_rx_back(_metadata, self, 1);
	shutdown(self->rk.a, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(rx.err, NULL);
	EXPECT_EQ(rx.bytes, self->off);
}

/* attach selftests/bpf/rekey_record.bpf.c; its log of calls */
static struct rec_log *pol_record(struct __test_metadata *_metadata,
				  FIXTURE_DATA(rekey_policy) *self)
{
	struct rec_log *log;

	EXPECT_EQ(policy_load(&self->p, "rekey_record"), 0);
	EXPECT_EQ(policy_attach(&self->p), 0);
	log = policy_data(&self->p, ".bss");
	EXPECT_NE(log, NULL);
	return log;
}

/* the recording policy attached and a's stream started: its answers (and
 * its log in @log), NULL if it did not load
 */
static struct rec_answers *pol_record_start(struct __test_metadata *_metadata,
					    FIXTURE_DATA(rekey_policy) *self,
					    struct rec_log **log)
{
	*log = pol_record(_metadata, self);
	if (!*log || !policy_data(&self->p, ".data"))
		return NULL;
	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	return policy_data(&self->p, ".data");
}

/* a key update with 64 KiB in flight and ACKs 300 ms away: a SW window */
static void pol_open_window(struct __test_metadata *_metadata,
			    FIXTURE_DATA(rekey_policy) *self)
{
	rk_slow_acks(_metadata, 300);
	pol_send(_metadata, self, CHUNK);
	ASSERT_EQ(rk_update_tx(&self->tx), 0);
	pol_send(_metadata, self, 16384);
}

/* Each hook at its moment: a key update with nothing in flight goes to
 * the device at once on TX, on RX past the old context's zone; with the
 * socket's context.
 */
TEST_F_TIMEOUT(rekey_policy, hooks_immediate_install, 120)
{
	const struct rec_call *c;
	struct rec_log *log;
	int acked;

	log = pol_record(_metadata, self);
	ASSERT_NE(log, NULL);
	rk_offload_ab(_metadata, &self->rk, true);
	pol_update_both_ends(_metadata, self);

	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	EXPECT_EQ(acked, 0);
	EXPECT_STREQ(rec_calls(log, DIR_RX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	c = rec_find(log, REC_STARTED, DIR_TX, 2);
	ASSERT_NE(c, NULL);
	EXPECT_EQ(c->old_unacked, 0);
	EXPECT_NE(c->ifindex, 0);
	EXPECT_EQ(c->netns_cookie, netns_cookie(self->rk.a));
	c = rec_find(log, REC_RESUMED, DIR_TX, 2);
	ASSERT_NE(c, NULL);
	EXPECT_EQ(c->sw_bytes, 0);
	EXPECT_GT(c->elapsed_ns, 0);
	c = rec_find(log, REC_STARTED, DIR_RX, 2);
	ASSERT_NE(c, NULL);
	EXPECT_EQ(c->netns_cookie, netns_cookie(self->rk.b));
	EXPECT_NE(c->netns_cookie, netns_cookie(self->rk.a));
}

/* A key update with data in flight: the socket sends in SW, clean_acked
 * reports the old key's data going, retirement, and the next send puts
 * the new key in the device.
 */
TEST_F_TIMEOUT(rekey_policy, hooks_sw_window_then_retire, 120)
{
	const struct rec_call *started, *resumed;
	struct rec_log *log;
	int acked;

	log = pol_record(_metadata, self);
	ASSERT_NE(log, NULL);
	pol_start(_metadata, self);
	pol_open_window(_metadata, self);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked), "started:2");
	rk_wait_acked(self->rk.a);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 retired:2");
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 retired:2 reinstall:2/0 resumed:2/1");
	EXPECT_GE(acked, 1);
	started = rec_find(log, REC_STARTED, DIR_TX, 2);
	resumed = rec_find(log, REC_RESUMED, DIR_TX, 2);
	ASSERT_NE(started, NULL);
	ASSERT_NE(resumed, NULL);
	EXPECT_GT(started->old_unacked, 0);
	EXPECT_GE(resumed->sw_bytes, 16384);
	EXPECT_GE(resumed->elapsed_ns, 300000000ULL);
	pol_finish(_metadata, self);
}

/* Three keys in one window: one retirement, one reinstall, of the last. */
TEST_F_TIMEOUT(rekey_policy, hooks_several_keys_in_one_window, 120)
{
	struct rec_log *log;
	int acked, i;

	log = pol_record(_metadata, self);
	ASSERT_NE(log, NULL);
	pol_start(_metadata, self);
	rk_slow_acks(_metadata, 300);
	pol_send(_metadata, self, CHUNK);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(rk_update_tx(&self->tx), 0);
		pol_send(_metadata, self, 16384);
	}
	rk_wait_acked(self->rk.a);
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 started:3 started:4 retired:4 reinstall:4/0 resumed:4/1");
	pol_finish(_metadata, self);
}

/* tls_dev_add fails: dev_add_failed gets the error; an answer of 0 ms
 * retries at the next send, TLS_REKEY_STAY_SW (the default) waits for the
 * next key.
 */
TEST_F_TIMEOUT(rekey_policy, hooks_dev_add_failed, 120)
{
	const struct rec_call *failed;
	struct rec_answers *answers;
	struct rec_log *log;
	int acked;

	answers = pol_record_start(_metadata, self, &log);
	ASSERT_NE(answers, NULL);

	answers->dev_add_failed = 0;
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	pol_idle_update(_metadata, self);	/* fails */
	pol_send(_metadata, self, CHUNK);	/* retries */
	rk_wait_acked(self->rk.a);
	answers->dev_add_failed = TLS_REKEY_STAY_SW;
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	pol_idle_update(_metadata, self);	/* fails */
	pol_send(_metadata, self, CHUNK);	/* stays in SW */
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);	/* installs */
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 reinstall:2/0 failed:2/1 reinstall:2/1 resumed:2/2 "
		     "started:3 reinstall:3/0 failed:3/1 "
		     "started:4 reinstall:4/0 resumed:4/1");
	failed = rec_find(log, REC_DEV_ADD_FAILED, DIR_TX, 3);
	ASSERT_NE(failed, NULL);
	EXPECT_LT(failed->err, 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 2);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 2);
	pol_finish(_metadata, self);
}

/* A policy keeps TX in SW until the next key: the device gets its key
 * slot back at once (tls_dev_del), not at close, and the rest of a message
 * goes out in one piece, as on a SW socket; the next key goes back to the
 * device. Regression: the old context stayed on the device until close.
 */
TEST_F_TIMEOUT(rekey_policy, stay_sw_gives_the_key_slot_back, 120)
{
	struct rec_answers *answers;
	long long dels, adds;
	struct rec_log *log;
	int acked, i;

	answers = pol_record_start(_metadata, self, &log);
	ASSERT_NE(answers, NULL);

	answers->reinstall = TLS_REKEY_STAY_SW;
	dels = dev_stat(NSIM_A, "dels");
	adds = dev_stat(NSIM_A, "adds");
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);	/* stays in SW */
	EXPECT_EQ(dev_stat(NSIM_A, "dels") - dels, 1);
	EXPECT_EQ(dev_stat(NSIM_A, "adds"), adds);
	for (i = 0; i < 4; i++)
		pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 0);

	answers->reinstall = TLS_REKEY_INSTALL;
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);	/* installs */
	EXPECT_EQ(dev_stat(NSIM_A, "adds") - adds, 1);
	EXPECT_EQ(dev_stat(NSIM_A, "dels") - dels, 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked),
		     "started:2 reinstall:2/0 started:3 reinstall:3/0 resumed:3/1");
	pol_finish(_metadata, self);
}

/* A SW stretch longer than 2 GiB, across which 32-bit sequence numbers
 * compare the wrong way: a policy keeps TX in SW while 2 GiB and a bit go
 * out, then the next key goes back to the device at the next send, and b
 * opens every record. Regression: while the device kept its context in SW,
 * the next key's "old key all acked?" test (snd_una against the old key's
 * end) read 2 GiB behind as ahead, and the socket stayed in SW for good;
 * now a socket in SW has no device context and no such test.
 */
TEST_F_TIMEOUT(rekey_policy, sw_past_2gib_returns_to_device, 900)
{
	unsigned long long sent;
	struct rec_answers *answers;
	struct rec_log *log;
	long long adds;

	answers = pol_record_start(_metadata, self, &log);
	ASSERT_NE(answers, NULL);

	answers->reinstall = TLS_REKEY_STAY_SW;
	adds = dev_stat(NSIM_A, "adds");
	pol_idle_update(_metadata, self);
	for (sent = 0; sent < (2ULL << 30) + CHUNK; sent += CHUNK)
		pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(dev_stat(NSIM_A, "adds"), adds);

	answers->reinstall = TLS_REKEY_INSTALL;
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(dev_stat(NSIM_A, "adds") - adds, 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	pol_finish(_metadata, self);
}

/* RX: b's device refuses the new key; an answer of 0 ms retries at the
 * next record, and the device decrypts again.
 */
TEST_F_TIMEOUT(rekey_policy, hooks_rx_dev_add_failed_retry, 120)
{
	struct rec_log *log = pol_record(_metadata, self);
	struct rec_answers *answers;
	int acked;

	ASSERT_NE(log, NULL);
	answers = policy_data(&self->p, ".data");
	ASSERT_NE(answers, NULL);
	answers->dev_add_failed = 0;
	rk_offload_ab(_metadata, &self->rk, true);
	ASSERT_EQ(dev_knob(NSIM_B, "fail_add", 1), 0);
	pol_update_both_ends(_metadata, self);
	EXPECT_STREQ(rec_calls(log, DIR_RX, &acked),
		     "started:2 reinstall:2/0 failed:2/1 reinstall:2/1 resumed:2/2");
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceFail"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
}

/* a's device goes away in a window: nothing is asked of the policy after
 * that (there is no device to decide about), the socket goes on in SW.
 */
TEST_F_TIMEOUT(rekey_policy, hooks_device_removed, 120)
{
	struct rec_log *log;
	const char *calls;
	int acked;

	log = pol_record(_metadata, self);
	ASSERT_NE(log, NULL);
	pol_start(_metadata, self);
	pol_open_window(_metadata, self);
	EXPECT_EQ(topo("topo_replace_a %d %d", NSIM_A, NSIM_A + 2), 0);
	rk_wait_acked(self->rk.a);
	pol_send(_metadata, self, CHUNK);
	calls = rec_calls(log, DIR_TX, &acked);
	EXPECT_TRUE(!strcmp(calls, "started:2") ||
		    !strcmp(calls, "started:2 retired:2")) TH_LOG("%s", calls);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	pol_finish(_metadata, self);
}

/* The same scenario without a policy and with bpf/default.bpf.o: the
 * same counters and device key installs.
 */
static const char *const pol_counters[] = {
	"TlsTxRekeyDeviceSw", "TlsTxRekeyDeviceReinstall",
	"TlsTxRekeyDeviceFail", "TlsTxRekeyDeviceSkip", "TlsCurrRekeyWindow",
	"TlsRekeyPolicyInvalid",
};
#define NR_POL_COUNTERS	(sizeof(pol_counters) / sizeof(pol_counters[0]))

static void pol_scenario(struct __test_metadata *_metadata,
			 FIXTURE_DATA(rekey_policy) *self, long long *out)
{
	long long before[NR_POL_COUNTERS + 2], adds;
	size_t i;
	int n, tries;

	for (i = 0; i < NR_POL_COUNTERS; i++)
		before[i] = ns_stat("tls-a", pol_counters[i]);
	before[i++] = dev_stat(NSIM_A, "adds");
	before[i++] = dev_stat(NSIM_A, "dels");

	/* six SW windows (slow ACKs), each back on the device before the
	 * next, then a key the device refuses, then one it takes
	 */
	rk_slow_acks(_metadata, 10);
	for (n = 0; n < 6; n++) {
		for (tries = 0; tries < 4; tries++)
			pol_send(_metadata, self, CHUNK);
		ASSERT_EQ(rk_update_tx(&self->tx), 0);
		adds = dev_stat(NSIM_A, "adds");
		for (tries = 0; tries < 1000 &&
		     dev_stat(NSIM_A, "adds") == adds; tries++)
			pol_send(_metadata, self, 16384);
	}
	ASSERT_EQ(topo("tc -n $NS_B qdisc del dev $DEV_B root"), 0);
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);

	for (i = 0; i < NR_POL_COUNTERS; i++)
		out[i] = ns_stat("tls-a", pol_counters[i]) - before[i];
	out[i] = dev_stat(NSIM_A, "adds") - before[i];
	i++;
	out[i] = dev_stat(NSIM_A, "dels") - before[i];
}

TEST_F_TIMEOUT(rekey_policy, default_policy_matches_builtin, 300)
{
	long long builtin[NR_POL_COUNTERS + 2], bpf[NR_POL_COUNTERS + 2];
	size_t i;

	pol_start(_metadata, self);
	pol_scenario(_metadata, self, builtin);
	ASSERT_EQ(policy_load(&self->p, "default"), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	pol_scenario(_metadata, self, bpf);
	for (i = 0; i < NR_POL_COUNTERS + 2; i++)
		EXPECT_EQ(bpf[i], builtin[i])
			TH_LOG("%s", i < NR_POL_COUNTERS ? pol_counters[i] :
			       i == NR_POL_COUNTERS ? "device adds" : "device dels");
	EXPECT_EQ(builtin[1], 7);	/* reinstalls */
	EXPECT_EQ(builtin[2], 1);	/* the refused key */
	pol_finish(_metadata, self);
}

struct backoff_conf {
	__u32 base_ms, cap_ms, max_attempts, breaker_failures, breaker_ms;
};

/* When something happened in a send: between @lo and @hi (seconds). */
struct when {
	double lo, hi;
};

/* Sends a record every 10 ms until the device took a key (or @secs
 * passed); notes the sends in which the device refused one (at most
 * @max_fails), and the one in which it took it. Returns the refusals, or
 * -1 if the device took no key.
 */
static int pol_send_until_installed(struct __test_metadata *_metadata,
				    FIXTURE_DATA(rekey_policy) *self,
				    double secs, struct when *fail_at,
				    int max_fails, struct when *install_at)
{
	long long adds = dev_stat(NSIM_A, "adds");
	long long fails = dev_stat(NSIM_A, "add_failures"), f;
	struct timespec t0, t;
	struct when w;
	int nfails = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		w.lo = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		pol_send(_metadata, self, 100);
		clock_gettime(CLOCK_MONOTONIC, &t);
		w.hi = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		f = dev_stat(NSIM_A, "add_failures");
		for (; fails < f; fails++)
			if (nfails < max_fails)
				fail_at[nfails++] = w;
		if (dev_stat(NSIM_A, "adds") > adds) {
			*install_at = w;
			return nfails;
		}
		if (w.hi > secs)
			return -1;
		usleep(10000);
	}
}

/* backoff: 3 refusals, retried after 200, 400 and 800 ms; the 4th
 * attempt gives the device the key.
 */
TEST_F_TIMEOUT(rekey_policy, backoff_retries_then_resumes, 120)
{
	struct backoff_conf conf = { .base_ms = 200, .cap_ms = 800,
				     .max_attempts = 5, .breaker_failures = 10 };
	struct when fail_at[3], install_at, at;
	int i;

	ASSERT_EQ(policy_load(&self->p, "backoff"), 0);
	ASSERT_EQ(policy_tune(&self->p, "backoff_conf", &conf, sizeof(conf)), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 3), 0);
	pol_idle_update(_metadata, self);
	ASSERT_EQ(pol_send_until_installed(_metadata, self, 20, fail_at, 3,
					   &install_at), 3);
	/* each retry its backoff after the refusal before it (the kernel
	 * counts in jiffies: up to one tick, 10 ms at HZ=100, early), and
	 * soon after that (a send every 10 ms)
	 */
	for (i = 0; i < 3; i++) {
		at = i < 2 ? fail_at[i + 1] : install_at;
		TH_LOG("retry %d after %.0f-%.0f ms (backoff %u ms)", i + 1,
		       (at.lo - fail_at[i].hi) * 1000,
		       (at.hi - fail_at[i].lo) * 1000, conf.base_ms << i);
		EXPECT_GE((at.hi - fail_at[i].lo) * 1000, (conf.base_ms << i) - 10);
		EXPECT_LE((at.lo - fail_at[i].hi) * 1000, (conf.base_ms << i) + 400);
	}
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 3);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(policy_counter(&self->p, "backoff_stats", 0), 3); /* retries */
	EXPECT_EQ(policy_counter(&self->p, "backoff_stats", 4), 1); /* resumed */
	pol_finish(_metadata, self);
}

/* backoff with a limit of 2 attempts: the key stays in SW, and 2 refusals
 * in a row trip the device's breaker: the next key waits out breaker_ms
 * in SW, then goes to the device.
 */
TEST_F_TIMEOUT(rekey_policy, backoff_gives_up_and_trips_breaker, 120)
{
	struct backoff_conf conf = { .base_ms = 100, .max_attempts = 2,
				     .breaker_failures = 2, .breaker_ms = 1500 };
	struct when fail_at[2], install_at;
	struct timespec t0, t1;

	ASSERT_EQ(policy_load(&self->p, "backoff"), 0);
	ASSERT_EQ(policy_tune(&self->p, "backoff_conf", &conf, sizeof(conf)), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 2), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pol_idle_update(_metadata, self);
	EXPECT_EQ(pol_send_until_installed(_metadata, self, 1, fail_at, 2,
					   &install_at), -1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 2);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(policy_counter(&self->p, "backoff_stats", 1), 1); /* gave up */
	EXPECT_EQ(policy_counter(&self->p, "backoff_stats", 2), 1); /* trips */

	/* the breaker holds the next key in SW (asked at the next send) */
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, 100);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	EXPECT_GE(policy_counter(&self->p, "backoff_stats", 3), 1); /* held */
	EXPECT_EQ(pol_send_until_installed(_metadata, self, 10, fail_at, 0,
					   &install_at), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_GE(t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9,
		  conf.breaker_ms / 1000.0);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	pol_finish(_metadata, self);
}

/* RL_SOCKETS sockets update their idle TX keys at once, with installs
 * limited to @per_sec a second and bursts of as many (by @attach, which
 * attaches a policy, or by the device's budget): the device gets at most
 * per_sec + per_sec/s of them, and all in the end.
 */
#define RL_SOCKETS	100

static void spread_reinstalls(struct __test_metadata *_metadata, int per_sec,
			      int (*attach)(void *), void *arg)
{
	struct rk_send tx[RL_SOCKETS];
	int a[RL_SOCKETS], b[RL_SOCKETS], i, over = 0;
	long long base, done = 0;
	struct timespec t0, t;
	double now = 0;
	char byte = 'x';

	for (i = 0; i < RL_SOCKETS; i++) {
		ASSERT_EQ(connect_pair(AF_INET, &a[i], &b[i]), 0);
		ASSERT_EQ(tls_ulp(a[i]), 0);
		tx[i] = (struct rk_send){ .fd = a[i], .seed = 1 };
		key_init(&tx[i].key, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 1);
		ASSERT_EQ(tls_key_set(a[i], TLS_TX, &tx[i].key), 0);
		ASSERT_EQ(send(a[i], &byte, 1, 0), 1);
	}
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), RL_SOCKETS);
	for (i = 0; i < RL_SOCKETS; i++)
		rk_wait_acked(a[i]);
	if (attach)
		ASSERT_EQ(attach(arg), 0);

	base = ns_stat("tls-a", "TlsTxRekeyDeviceReinstall");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < RL_SOCKETS; i++)
		ASSERT_EQ(rk_update_tx(&tx[i]), 0);
	while (now < 60) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		now = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		done = ns_stat("tls-a", "TlsTxRekeyDeviceReinstall") - base;
		if (done > per_sec + per_sec * now + 1)
			over++;
		if (done == RL_SOCKETS)
			break;
		for (i = 0; i < RL_SOCKETS; i++)
			ASSERT_EQ(send(a[i], &byte, 1, 0), 1);
		usleep(50000);
	}
	TH_LOG("%lld of %d sockets back on the device after %.1f s", done,
	       RL_SOCKETS, now);
	EXPECT_EQ(done, RL_SOCKETS);
	EXPECT_EQ(over, 0);
	EXPECT_GE(now, (RL_SOCKETS - per_sec) / (double)per_sec - 0.5);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	for (i = 0; i < RL_SOCKETS; i++) {
		close(a[i]);
		close(b[i]);
	}
}

static int rl_attach(void *p)
{
	return policy_attach(p);
}

/* ratelimit at 10 installs/s (burst 10) */
TEST_F_TIMEOUT(rekey_policy, ratelimit_spreads_reinstalls, 300)
{
	struct { __u32 per_sec, burst; } conf = { .per_sec = 10 };

	ASSERT_EQ(policy_load(&self->p, "ratelimit"), 0);
	ASSERT_EQ(policy_tune(&self->p, "ratelimit_conf", &conf, sizeof(conf)), 0);
	spread_reinstalls(_metadata, conf.per_sec, rl_attach, &self->p);
	EXPECT_EQ(policy_counter(&self->p, "ratelimit_stats", 0), RL_SOCKETS);
	EXPECT_GT(policy_counter(&self->p, "ratelimit_stats", 1), 0);
}

/* observe's events of direction @dir (DIR_TX, DIR_RX) summed over devices
 * and CPUs: field @idx of struct observe_events
 */
static long long observe_events(struct policy *p, __u32 dir, __u32 idx)
{
	struct bpf_map *m = bpf_object__find_map_by_name(p->obj, "observe_dev");
	int cpus = libbpf_num_possible_cpus(), i;
	struct { __u64 netns_cookie; __u32 ifindex, dir; } key, next, *prev = NULL;
	size_t size = m ? bpf_map__value_size(m) : 0;
	long long sum = 0;
	__u64 *v;

	if (!m || (idx + 1) * 8 > size || !(v = calloc(cpus, size)))
		return -1;
	while (!bpf_map__get_next_key(m, prev, &next, sizeof(next))) {
		key = next;
		prev = &key;
		if (key.dir != dir ||
		    bpf_map__lookup_elem(m, &key, sizeof(key), v, cpus * size, 0))
			continue;
		for (i = 0; i < cpus; i++)
			sum += v[i * size / 8 + idx];
	}
	free(v);
	return sum;
}

#define OBSERVE_STARTED	0	/* struct observe_events, bpf/observe.bpf.c */
#define OBSERVE_STORM	6

/* observe reports storms: the key updates that came in one, per
 * direction, as the kernel counts the storms themselves
 */
TEST_F_TIMEOUT(rekey_policy, observe_reports_storms, 120)
{
	struct rk_recv rx = { .fd = self->rk.b, .key = self->rk.key_ab, .seed = 1 };
	unsigned long long off = 0;
	pthread_t th;

	ASSERT_EQ(policy_load(&self->p, "observe"), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	rk_offload_ab(_metadata, &self->rk, true);
	ASSERT_EQ(pthread_create(&th, NULL, rk_receiver, &rx), 0);
	rk_flood(_metadata, &self->tx, &rx, &off, STORM_KEYS + 5, 1000);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyStorm"), 1);
	EXPECT_EQ(ns_stat("tls-b", "TlsRxRekeyStorm"), 1);
	/* the key set up with the device is never short: the storm from the
	 * (STORM_KEYS + 1)th update on, 5 of the 13
	 */
	EXPECT_EQ(observe_events(&self->p, DIR_TX, OBSERVE_STARTED), STORM_KEYS + 5);
	EXPECT_EQ(observe_events(&self->p, DIR_RX, OBSERVE_STARTED), STORM_KEYS + 5);
	EXPECT_EQ(observe_events(&self->p, DIR_TX, OBSERVE_STORM), 5);
	EXPECT_EQ(observe_events(&self->p, DIR_RX, OBSERVE_STORM), 5);
	shutdown(self->rk.a, SHUT_WR);
	pthread_join(th, NULL);
	EXPECT_EQ(rx.err, NULL) TH_LOG("receiver: %s", rx.err);
	EXPECT_EQ(rx.bytes, off);
}

/* ratelimit holds RX installs to the same budget: RL_RX receivers update
 * their keys at once (b's RX; a's TX is on its own device), at 5 installs/s
 * (burst 5); each receiver's device context comes back once it read past
 * the window its old context may have touched, as the traffic goes on.
 */
#define RL_RX		30

TEST_F_TIMEOUT(rekey_policy, ratelimit_spreads_rx_installs, 300)
{
	struct { __u32 per_sec, burst; } conf = { .per_sec = 5 };
	static unsigned char buf[16384];
	struct rk_send tx[RL_RX];
	struct tls_key kr[RL_RX];
	int a[RL_RX], b[RL_RX], i, over = 0;
	long long base, done = 0;
	struct timespec t0, t;
	unsigned char type;
	double now = 0;

	ASSERT_EQ(policy_load(&self->p, "ratelimit"), 0);
	ASSERT_EQ(policy_tune(&self->p, "ratelimit_conf", &conf, sizeof(conf)), 0);
	for (i = 0; i < RL_RX; i++) {
		ASSERT_EQ(connect_pair(AF_INET, &a[i], &b[i]), 0);
		ASSERT_EQ(tls_ulp(a[i]), 0);
		ASSERT_EQ(tls_ulp(b[i]), 0);
		ASSERT_EQ(setsockopt(b[i], SOL_SOCKET, SO_RCVBUF, &(int){ 65536 },
				     sizeof(int)), 0);
		tx[i] = (struct rk_send){ .fd = a[i], .seed = 1 };
		key_init(&tx[i].key, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 1);
		kr[i] = tx[i].key;
		ASSERT_EQ(tls_key_set(a[i], TLS_TX, &tx[i].key), 0);
		ASSERT_EQ(tls_key_set(b[i], TLS_RX, &kr[i]), 0);
	}
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRxDevice"), RL_RX);
	ASSERT_EQ(policy_attach(&self->p), 0);

	base = ns_stat("tls-b", "TlsRxRekeyDeviceReinstall");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < RL_RX; i++) {
		ASSERT_EQ(rk_update_tx(&tx[i]), 0);
		ASSERT_EQ(recv_record(b[i], buf, sizeof(buf), &type, 0),
			  sizeof(key_update_msg));
		ASSERT_EQ(type, TLS_RECORD_HANDSHAKE);
		key_init(&kr[i], TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 2);
		ASSERT_EQ(tls_key_set(b[i], TLS_RX, &kr[i]), 0);
	}
	while (now < 60) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		now = t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9;
		done = ns_stat("tls-b", "TlsRxRekeyDeviceReinstall") - base;
		if (done > conf.per_sec + conf.per_sec * now + 1)
			over++;
		if (done == RL_RX)
			break;
		for (i = 0; i < RL_RX; i++) {
			ASSERT_EQ(send_all(a[i], buf, sizeof(buf)), 0);
			ASSERT_EQ(recv(b[i], buf, sizeof(buf), MSG_WAITALL),
				  sizeof(buf));
		}
		usleep(20000);
	}
	TH_LOG("%lld of %d receivers back on the device after %.1f s", done,
	       RL_RX, now);
	EXPECT_EQ(done, RL_RX);
	EXPECT_EQ(over, 0);
	EXPECT_GE(now, (RL_RX - conf.per_sec) / (double)conf.per_sec - 0.5);
	EXPECT_GT(policy_counter(&self->p, "ratelimit_stats", 1), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-b", "TlsDecryptError"), 0);
	for (i = 0; i < RL_RX; i++) {
		close(a[i]);
		close(b[i]);
	}
}

/* The same with no policy: the device's budget (net.tls.rekey_device_budget
 * of its namespace) at 10 installs/s; installs over it wait and count
 */
TEST_F_TIMEOUT(rekey_policy, device_budget_spreads_reinstalls, 300)
{
	/* out of range: refused, the value stays */
	ASSERT_EQ(topo("ip netns exec $NS_A sysctl -qw net.tls.rekey_device_budget=10 && "
		       "! ip netns exec $NS_A sysctl -qw net.tls.rekey_device_budget=0 2>/dev/null && "
		       "! ip netns exec $NS_A sysctl -qw net.tls.rekey_device_budget=1000001 2>/dev/null && "
		       "! ip netns exec $NS_A sysctl -qw net.tls.rekey_device_budget=ten 2>/dev/null && "
		       "test $(ip netns exec $NS_A sysctl -n net.tls.rekey_device_budget) = 10 && "
		       "test $(ip netns exec $NS_B sysctl -n net.tls.rekey_device_budget) = 5000"),
		  0);
	spread_reinstalls(_metadata, 10, NULL, NULL);
	EXPECT_GT(ns_stat("tls-a", "TlsRekeyDeviceBudgetWait"), 0);
}

/* observe is replaced by backoff (link update) and then detached while
 * key updates run under bulk traffic both ways: every byte arrives, the
 * counters add up.
 */
struct pol_switch {
	struct policy *from, *to;
	long long adds;		/* a's device installs at the start */
	int replaced, detached;
};

/* a's device took @n more keys (or 60 s passed) */
static void pol_wait_adds(struct pol_switch *s, long long n)
{
	int tries;

	for (tries = 0; tries < 6000 && dev_stat(NSIM_A, "adds") < s->adds + n;
	     tries++)
		usleep(10000);
}

/* replace after 100 key installs, detach after 250: mid-run on any machine */
static void *pol_switcher(void *arg)
{
	struct pol_switch *s = arg;

	pol_wait_adds(s, 100);
	s->replaced = policy_replace(s->from, s->to);
	pol_wait_adds(s, 250);
	bpf_link__destroy(s->to->link);
	s->to->link = NULL;
	s->detached = 1;
	return NULL;
}

TEST_F_TIMEOUT(rekey_policy, replaced_and_detached_under_traffic, 300)
{
	struct pol_switch sw = { .from = &self->p, .to = &self->q };
	long long adds_a = dev_stat(NSIM_A, "adds") + 1, adds_b, opened;
	long long windows;
	int i;
	long long sealed = dev_stat(NSIM_A, "tx_records");
	struct rk_send tx;
	struct rk_recv rx;
	pthread_t th;

	ASSERT_EQ(policy_load(&self->p, "observe"), 0);
	ASSERT_EQ(policy_load(&self->q, "backoff"), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	rk_offload_ab(_metadata, &self->rk, true);
	/* Less in flight than between two key updates, so that windows close
	 * and keys go back to the device, which drives the switches below. An
	 * autotuned send buffer can grow past it, and then every key is
	 * overtaken by the next in the SW path, which is fast enough to keep
	 * it so: the switches came after the traffic.
	 */
	ASSERT_EQ(setsockopt(self->rk.a, SOL_SOCKET, SO_SNDBUF, &(int){ 16384 },
			     sizeof(int)), 0);
	adds_b = dev_stat(NSIM_B, "adds");
	opened = dev_stat(NSIM_B, "rx_records");
	sw.adds = dev_stat(NSIM_A, "adds");
	ASSERT_EQ(pthread_create(&th, NULL, pol_switcher, &sw), 0);
	/* keys 128 KiB apart: closer, they would be a storm (STORM_KEYS),
	 * which the devices sit out
	 */
	rk_run(_metadata, &self->rk, 400 * SHORT_KEY_BYTES, SHORT_KEY_BYTES,
	       false, false, &tx, &rx);
	pthread_join(th, NULL);
	EXPECT_EQ(sw.replaced, 0);
	EXPECT_EQ(sw.detached, 1);
	rk_check_tx(_metadata, &tx, adds_a, sealed, 400 * SHORT_KEY_BYTES);
	rk_check_rx(_metadata, &rx, adds_b, opened);
	EXPECT_EQ(ns_stat("tls-a", "TlsRekeyPolicyInvalid"), 0);
	/* observe drew SW windows (its window_us histogram, 64 slots) */
	for (i = 0, windows = 0; i < 64; i++)
		windows += policy_counter(&self->p, "observe_windows", i);
	EXPECT_GT(windows, 0);
	EXPECT_GT(policy_counter(&self->q, "backoff_stats", 4), 0); /* resumed */
}

/* Detached in the middle of a window: the socket finishes its key update
 * with the default decisions.
 */
TEST_F_TIMEOUT(rekey_policy, detached_mid_window, 120)
{
	struct rec_log *log = pol_record(_metadata, self);
	int acked;

	ASSERT_NE(log, NULL);
	pol_start(_metadata, self);
	pol_open_window(_metadata, self);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	EXPECT_STREQ(rec_calls(log, DIR_TX, &acked), "started:2");
	policy_unload(&self->p);
	rk_wait_acked(self->rk.a);
	pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	pol_finish(_metadata, self);
}

/* Answers out of range get the default decision and are counted. */
TEST_F_TIMEOUT(rekey_policy, invalid_answers_take_default, 120)
{
	struct rec_answers *answers;

	ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
	ASSERT_EQ(policy_attach(&self->p), 0);
	answers = policy_data(&self->p, ".data");
	ASSERT_NE(answers, NULL);
	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);

	answers->reinstall = rekey_decision("TLS_REKEY_MAX_DELAY_MS") + 1;
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsRekeyPolicyInvalid"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	answers->reinstall = -7;
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsRekeyPolicyInvalid"), 2);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 2);
	answers->reinstall = TLS_REKEY_INSTALL;
	answers->dev_add_failed = INT_MAX;
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_EQ(ns_stat("tls-a", "TlsRekeyPolicyInvalid"), 3);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceFail"), 1);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	pol_finish(_metadata, self);
}

/* The answers are not UAPI: the kernel's BTF (so vmlinux.h) carries them.
 * Regression: they were UAPI #defines, which no policy could see in
 * vmlinux.h.
 */
TEST_F_TIMEOUT(rekey_policy, decisions_in_btf, 120)
{
	EXPECT_NE(rekey_decision("TLS_REKEY_STAY_SW"), INT_MIN);
	EXPECT_NE(rekey_decision("TLS_REKEY_INSTALL"), INT_MIN);
	EXPECT_GT(rekey_decision("TLS_REKEY_MAX_DELAY_MS"), 0);
}

/* Programs the kernel must refuse at load. */
TEST_F_TIMEOUT(rekey_policy, bad_programs_refused, 120)
{
	EXPECT_NE(policy_load(&self->q, "rekey_sleepable"), 0);
	EXPECT_NE(policy_load(&self->q, "rekey_write_sk"), 0);
	/* regression: both loaded (6.12 offers tcp_ca's kfuncs to every
	 * struct_ops, and the base helpers include bpf_probe_read_kernel)
	 */
	EXPECT_NE(policy_load(&self->q, "rekey_tcp_ca_kfunc"), 0);
	EXPECT_NE(policy_load(&self->q, "rekey_probe_read"), 0);
	/* and nothing got attached meanwhile */
	ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
	EXPECT_EQ(policy_attach(&self->p), 0);
}

static const char *registered_policies(void)
{
	static char buf[256];
	FILE *f = fopen("/sys/kernel/tls_rekey/policies", "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	buf[n] = 0;
	if (f)
		fclose(f);
	return buf;
}

/* Registration is not activation: any number of policies at once, each
 * by a name of its own, and no namespace uses one before it chooses it.
 */
TEST_F_TIMEOUT(rekey_policy, policies_register_by_name, 120)
{
	struct policy again;

	ASSERT_EQ(policy_load(&self->p, "observe"), 0);
	ASSERT_EQ(policy_load(&self->q, "rekey_record"), 0);
	EXPECT_EQ(policy_register(&self->p), 0);
	EXPECT_EQ(policy_register(&self->q), 0);
	EXPECT_STREQ(registered_policies(), "observe\nrecord\n");
	EXPECT_STREQ(ns_policy("tls-a"), "");
	EXPECT_STREQ(sock_policy(self->rk.a), "");

	/* a name is taken until its policy is unregistered */
	ASSERT_EQ(policy_load(&again, "rekey_record"), 0);
	EXPECT_EQ(policy_register(&again), -EEXIST);
	policy_unload(&self->q);
	EXPECT_STREQ(registered_policies(), "observe\n");
	EXPECT_EQ(policy_register(&again), 0);
	EXPECT_STREQ(registered_policies(), "observe\nrecord\n");
	policy_unload(&again);
}

/* record (in p) and record2 (in q) registered, tls-a's default @dflt
 * (NULL: left as it is); their logs in *@log_p and *@log_q
 */
static void pol_two_recorders(struct __test_metadata *_metadata,
			      FIXTURE_DATA(rekey_policy) *self,
			      const char *dflt, struct rec_log **log_p,
			      struct rec_log **log_q)
{
	ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
	ASSERT_EQ(policy_load(&self->q, "rekey_record2"), 0);
	ASSERT_EQ(policy_register(&self->p), 0);
	ASSERT_EQ(policy_register(&self->q), 0);
	if (dflt)
		ASSERT_EQ(ns_policy_set("tls-a", dflt), 0);
	*log_p = policy_data(&self->p, ".bss");
	*log_q = policy_data(&self->q, ".bss");
	ASSERT_NE(*log_p, NULL);
	ASSERT_NE(*log_q, NULL);
}

/* Two namespaces, two policies, at once: each socket's key updates go to
 * its namespace's policy, which the hooks each policy saw prove.
 */
TEST_F_TIMEOUT(rekey_policy, namespaces_choose_their_policy, 120)
{
	struct rec_log *log_a, *log_b;
	int acked;

	pol_two_recorders(_metadata, self, "record", &log_a, &log_b);
	ASSERT_EQ(ns_policy_set("tls-b", "record2"), 0);
	EXPECT_STREQ(ns_policy("tls-a"), "record");
	EXPECT_STREQ(ns_policy("tls-b"), "record2");

	rk_offload_ab(_metadata, &self->rk, true);
	EXPECT_STREQ(sock_policy(self->rk.a), "record");
	EXPECT_STREQ(sock_policy(self->rk.b), "record2");
	pol_update_both_ends(_metadata, self);

	EXPECT_STREQ(rec_calls(log_a, DIR_TX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	EXPECT_STREQ(rec_calls(log_a, DIR_RX, &acked), "");
	EXPECT_STREQ(rec_calls(log_b, DIR_RX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	EXPECT_STREQ(rec_calls(log_b, DIR_TX, &acked), "");
}

/* A socket's own choice comes before its namespace's; bad names are
 * refused and change nothing.
 */
TEST_F_TIMEOUT(rekey_policy, socket_choice_overrides_namespace, 120)
{
	struct rec_log *log_ns, *log_sk;
	int acked;

	pol_two_recorders(_metadata, self, "record", &log_ns, &log_sk);

	EXPECT_STREQ(sock_policy(self->rk.a), "record");
	/* a name with or without its NUL */
	EXPECT_EQ(sock_choose(self->rk.a, "record2", 7), 0);
	EXPECT_STREQ(sock_policy(self->rk.a), "record2");
	EXPECT_EQ(sock_choose(self->rk.a, "record2", 8), 0);
	EXPECT_EQ(sock_choose(self->rk.a, "nope", 5), -ENOENT);
	EXPECT_EQ(sock_choose(self->rk.a, "a_name_too_long_for_it", 23),
		  -EINVAL);
	EXPECT_EQ(sock_choose(self->rk.a, "bad name", 9), -ENOENT);
	EXPECT_STREQ(sock_policy(self->rk.a), "record2");
	EXPECT_EQ(ns_policy_set("tls-a", "nope"), -ENOENT);
	EXPECT_EQ(ns_policy_set("tls-a", "a_name_too_long_for_it"), -EINVAL);
	EXPECT_STREQ(ns_policy("tls-a"), "record");

	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log_sk, DIR_TX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	EXPECT_STREQ(rec_calls(log_ns, DIR_TX, &acked), "");

	/* no choice: the namespace's default again */
	EXPECT_EQ(sock_choose(self->rk.a, "", 0), 0);
	EXPECT_STREQ(sock_policy(self->rk.a), "record");
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log_ns, DIR_TX, &acked),
		     "started:3 reinstall:3/0 resumed:3/1");
	EXPECT_STREQ(rec_calls(log_sk, DIR_TX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	pol_finish(_metadata, self);
}

/* A key update keeps the policy it started with when the socket chooses
 * another; when its policy is unregistered, the socket's default takes
 * the rest of it over, under traffic, every byte intact.
 */
TEST_F_TIMEOUT(rekey_policy, unregistered_mid_window_goes_to_default, 120)
{
	struct rec_log *log_sk, *log_ns;
	int acked;

	pol_two_recorders(_metadata, self, "record2", &log_sk, &log_ns);

	pol_start(_metadata, self);
	ASSERT_EQ(sock_choose(self->rk.a, "record", 7), 0);
	pol_send(_metadata, self, CHUNK);
	pol_open_window(_metadata, self);
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 1);
	/* a choice made meanwhile counts from the next key update */
	ASSERT_EQ(sock_choose(self->rk.a, "record2", 7), 0);
	ASSERT_EQ(sock_choose(self->rk.a, "record", 7), 0);
	pol_send(_metadata, self, 16384);
	EXPECT_STREQ(rec_calls(log_sk, DIR_TX, &acked), "started:2");
	EXPECT_GE(acked, 0);

	policy_unload(&self->p);
	EXPECT_STREQ(registered_policies(), "record2\n");
	EXPECT_STREQ(sock_policy(self->rk.a), "record2");
	pol_send(_metadata, self, 16384);
	rk_wait_acked(self->rk.a);
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log_ns, DIR_TX, &acked),
		     "retired:2 reinstall:2/0 resumed:2/1");
	EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	EXPECT_EQ(ns_stat("tls-a", "TlsTxRekeyDeviceReinstall"), 1);
	pol_finish(_metadata, self);
}

static int file_write(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* A cgroup's sock_ops program chooses for the sockets of its cgroup
 * (selftests/bpf/rekey_choose.bpf.c), once the application set up TLS.
 */
TEST_F_TIMEOUT(rekey_policy, sock_ops_chooses_for_its_cgroup, 120)
{
	static const char cg[] = "/sys/fs/cgroup/tls_rekey_selftest";
	struct bpf_object *obj = NULL;
	struct bpf_link *link = NULL;
	struct rec_log *log_ns, *log_cg;
	unsigned int *chosen;
	int cgfd, acked;
	char pid[32];

	pol_two_recorders(_metadata, self, "record", &log_ns, &log_cg);

	if (access("/sys/fs/cgroup/cgroup.procs", F_OK))
		ASSERT_EQ(mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, NULL), 0);
	ASSERT_TRUE(!mkdir(cg, 0755) || errno == EEXIST);
	cgfd = open(cg, O_RDONLY | O_DIRECTORY);
	ASSERT_GE(cgfd, 0);
	obj = bpf_object__open_file(policy_file("rekey_choose"), NULL);
	ASSERT_NE(obj, NULL);
	ASSERT_EQ(bpf_object__load(obj), 0);
	chosen = policy_data(&(struct policy){ .obj = obj }, ".bss");
	ASSERT_NE(chosen, NULL);
	link = bpf_program__attach_cgroup(
		bpf_object__find_program_by_name(obj, "choose_rekey_policy"),
		cgfd);
	ASSERT_NE(link, NULL);

	/* new sockets, made in the cgroup */
	snprintf(pid, sizeof(pid), "%d", getpid());
	ASSERT_EQ(file_write(cg, "cgroup.procs", pid), 0);
	close(self->rk.a);
	close(self->rk.b);
	rk_connect(_metadata, &self->rk, AF_INET, TLS_CIPHER_AES_GCM_128);
	ASSERT_EQ(file_write("/sys/fs/cgroup", "cgroup.procs", pid), 0);
	self->tx.fd = self->rk.a;

	pol_start(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_GE(*chosen, 1);
	EXPECT_STREQ(sock_policy(self->rk.a), "record2");
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	EXPECT_STREQ(rec_calls(log_cg, DIR_TX, &acked),
		     "started:2 reinstall:2/0 resumed:2/1");
	EXPECT_STREQ(rec_calls(log_ns, DIR_TX, &acked), "");
	pol_finish(_metadata, self);

	bpf_link__destroy(link);
	bpf_object__close(obj);
	close(cgfd);
	rmdir(cg);
}

/* `tlsrekey -j sockets --netns @ns`: the kernel's sock_diag report */
static const char *tlsrekey_sockets(const char *ns)
{
	static char out[16384];
	char exe[PATH_MAX], cmd[PATH_MAX + 64];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t len = 0;
	FILE *f;

	exe[n < 0 ? 0 : n] = 0;
	snprintf(cmd, sizeof(cmd), "%s/../user/tlsrekey -j sockets --netns %s",
		 dirname(exe), ns);
	out[0] = 0;
	f = popen(cmd, "r");
	if (f) {
		len = fread(out, 1, sizeof(out) - 1, f);
		pclose(f);
	}
	out[len] = 0;
	return out;
}

/* What `tlsrekey sockets` says of a's TX, as its JSON begins it */
static const char *tx_state(__u32 generation, const char *mode,
			    __u32 attempts)
{
	static char want[128];

	snprintf(want, sizeof(want),
		 "\"tx\":{\"conf\":\"hw\",\"generation\":%u,\"mode\":\"%s\",\"attempts\":%u",
		 generation, mode, attempts);
	return want;
}

/* `tlsrekey sockets` says of a's TX what the policy's hook @hook saw of
 * key @generation, in mode @mode
 */
static void expect_tx_state(struct __test_metadata *_metadata,
			    const struct rec_log *log, __u32 hook,
			    __u32 generation, const char *mode)
{
	const struct rec_call *c = rec_find(log, hook, DIR_TX, generation);
	const char *out;

	ASSERT_NE(c, NULL);
	out = tlsrekey_sockets("tls-a");
	EXPECT_NE(strstr(out, tx_state(c->generation, mode, c->attempt)), NULL)
		TH_LOG("%s", out);
}

/* `tlsrekey sockets -j` (the kernel's sock_diag) says of a's TX what the
 * policy's hooks saw: generation, mode, attempts, bytes, policy.
 */
TEST_F_TIMEOUT(rekey_policy, sockets_agree_with_hooks, 120)
{
	const struct rec_call *c;
	struct rec_answers *answers;
	struct rec_log *log;
	unsigned long long bytes = 0;
	const char *out, *p;

	answers = pol_record_start(_metadata, self, &log);
	ASSERT_NE(answers, NULL);
	out = tlsrekey_sockets("tls-a");
	EXPECT_NE(strstr(out, tx_state(1, "device", 0)), NULL) TH_LOG("%s", out);
	EXPECT_NE(strstr(out, "\"policy\":\"record\""), NULL) TH_LOG("%s", out);
	EXPECT_NE(strstr(out, "\"rx\":{\"conf\":\"none\"}"), NULL) TH_LOG("%s", out);

	/* in its SW window: the hooks' started, and the bytes since */
	pol_open_window(_metadata, self);
	expect_tx_state(_metadata, log, REC_STARTED, 2, "sw_window");
	out = tlsrekey_sockets("tls-a");
	p = strstr(out, "\"window_bytes\":");
	ASSERT_NE(p, NULL);
	sscanf(p, "\"window_bytes\":%llu", &bytes);
	rk_wait_acked(self->rk.a);
	pol_send(_metadata, self, CHUNK);
	c = rec_find(log, REC_RESUMED, DIR_TX, 2);
	ASSERT_NE(c, NULL);
	/* nothing was sent between the two: the same bytes in SW */
	EXPECT_EQ(bytes, c->sw_bytes);
	EXPECT_GE(bytes, 16384);
	expect_tx_state(_metadata, log, REC_RESUMED, 2, "device");

	/* refused, and left in SW by the policy */
	answers->dev_add_failed = TLS_REKEY_STAY_SW;
	ASSERT_EQ(dev_knob(NSIM_A, "fail_add", 1), 0);
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	expect_tx_state(_metadata, log, REC_DEV_ADD_FAILED, 3, "sw_refused");
	answers->reinstall = TLS_REKEY_STAY_SW;
	pol_idle_update(_metadata, self);
	pol_send(_metadata, self, CHUNK);
	expect_tx_state(_metadata, log, REC_REINSTALL, 4, "sw_policy");
	pol_finish(_metadata, self);
}

/* A container's root (its own user and network namespaces) chooses among
 * the registered policies for its namespace, but cannot register one,
 * even with a struct_ops map the host loaded.
 */
TEST_F_TIMEOUT(rekey_policy, container_root_selects_not_registers, 120)
{
	int status;
	pid_t pid;

	ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
	ASSERT_EQ(policy_register(&self->p), 0);
	ASSERT_EQ(policy_load(&self->q, "rekey_record2"), 0);

	pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNET))
			_exit(10);
		if (strcmp(ns_policy(NULL), ""))
			_exit(11);
		if (ns_policy_set(NULL, "record"))
			_exit(12);
		if (strcmp(ns_policy(NULL), "record"))
			_exit(13);
		if (ns_policy_set(NULL, "nope") != -ENOENT)
			_exit(14);
		_exit(policy_register(&self->q) == -EPERM ? 0 : 15);
	}
	ASSERT_EQ(waitpid(pid, &status, 0), pid);
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(WEXITSTATUS(status), 0);
	/* the host's namespaces are untouched */
	EXPECT_STREQ(ns_policy("tls-a"), "");
	EXPECT_STREQ(registered_policies(), "record\n");
}

/* Drop @cap (or every privilege with -1), load and attach a policy:
 * returns the errno of the first step that failed, 0 if none did.
 */
static int pol_attach_without(int cap)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	struct policy p;
	int status, err;
	pid_t pid = fork();

	if (pid == 0) {
		if (cap < 0) {
			if (setgid(65534) || setuid(65534))
				_exit(100);
		} else {
			if (syscall(SYS_capget, &h, d))
				_exit(101);
			d[cap / 32].effective &= ~(1U << (cap % 32));
			d[cap / 32].permitted &= ~(1U << (cap % 32));
			if (syscall(SYS_capset, &h, d))
				_exit(102);
		}
		err = policy_load(&p, "rekey_record");
		if (!err)
			err = policy_register(&p);
		_exit(-err);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

TEST_F_TIMEOUT(rekey_policy, unprivileged_attach_refused, 120)
{
	EXPECT_EQ(pol_attach_without(CAP_NET_ADMIN), EPERM);
	EXPECT_EQ(pol_attach_without(-1), EPERM);
	/* the privileged path still works */
	ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
	EXPECT_EQ(policy_attach(&self->p), 0);
}

/* Every policy registers with bpftool alone, pins its link and maps in
 * the directory given, and is gone when the directory is.
 */
TEST_F_TIMEOUT(rekey_policy, policies_register_with_bpftool, 120)
{
	static const char *const names[] = { "default", "backoff",
					     "ratelimit", "observe" };
	char dir[PATH_MAX], cmd[PATH_MAX * 3], pin[PATH_MAX + 32];
	struct stat st;
	size_t i;

	snprintf(dir, sizeof(dir), "%s", policy_file("default"));
	*strrchr(dir, '/') = 0;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(cmd, sizeof(cmd),
			 "%s/../tools/bpftool/bpftool struct_ops register %s/%s.bpf.o %s >/dev/null",
			 dir, dir, names[i], PIN_DIR);
		EXPECT_EQ(system(cmd), 0) TH_LOG("%s", cmd);
		snprintf(pin, sizeof(pin), "%s/%s_ops", PIN_DIR, names[i]);
		EXPECT_EQ(stat(pin, &st), 0) TH_LOG("no %s", pin);
		if (strcmp(names[i], "default")) {
			snprintf(pin, sizeof(pin), "%s/%s_%s", PIN_DIR, names[i],
				 strcmp(names[i], "observe") ? "stats" : "dev");
			EXPECT_EQ(stat(pin, &st), 0) TH_LOG("no %s", pin);
		}
		snprintf(cmd, sizeof(cmd), "rm -rf %s", PIN_DIR);
		EXPECT_EQ(system(cmd), 0);
		/* its link is gone with the pin: another can attach */
		ASSERT_EQ(policy_load(&self->p, "rekey_record"), 0);
		EXPECT_EQ(policy_attach(&self->p), 0);
		policy_unload(&self->p);
	}
}

TEST_HARNESS_MAIN
