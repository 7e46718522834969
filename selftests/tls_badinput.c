// SPDX-License-Identifier: GPL-2.0
/*
 * Bad input to kTLS key updates, and that nothing is lost to it: each case
 * gives a connected TLS 1.3 pair (variant "offload": both ends offloaded
 * to the netdevsim pair of selftests/lib/topo.sh; variant "sw": loopback)
 * something wrong, checks the error, then checks that the connection is
 * intact: keys unchanged, data flows both ways byte for byte, and a proper
 * key update still works on it. README.md "Reliability" lists this matrix
 * with the rows tested elsewhere (policies, loader, privileges).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/tls.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "ktls.h"
#include "offload.h"

/* Each case builds the netdevsim pair (topo.sh) and moves data both ways: a
 * second or two here, but the first can take over the harness's 30 s on the
 * KASAN kernel. TEST_F() picks this up where it is expanded.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 120

FIXTURE(bad) {
	int a, b;
	struct tls_key ab, ba;		/* the keys in use each way */
	unsigned int ab_seed, ba_seed;
	unsigned long long ab_off, ba_off;	/* stream offsets */
	long tx_device;			/* TlsCurrTxDevice of a after setup */
	long decrypt_errors;		/* TlsDecryptError of a's netns then */
};

FIXTURE_VARIANT(bad) {
	bool offload;
};

FIXTURE_VARIANT_ADD(bad, offload) { .offload = true };
FIXTURE_VARIANT_ADD(bad, sw) { .offload = false };

/* A connected loopback pair in the caller's netns. */
static int loopback_pair(int *a, int *b)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	if (lfd < 0 || bind(lfd, (void *)&sin, len) || listen(lfd, 1) ||
	    getsockname(lfd, (void *)&sin, &len))
		return -1;
	*a = socket(AF_INET, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (void *)&sin, len))
		return -1;
	*b = accept(lfd, NULL, NULL);
	close(lfd);
	return *b < 0 ? -1 : 0;
}

/* A /proc/net/tls_stat counter of a's netns. */
static long a_stat(const FIXTURE_VARIANT(bad) *variant, const char *name)
{
	return variant->offload ? ns_stat("tls-a", name) : tls_stat(name);
}

FIXTURE_SETUP(bad)
{
	if (variant->offload) {
		ASSERT_EQ(topo("topo_up %d && topo_tls_offload", NSIM_A), 0);
		ASSERT_EQ(connect_pair(AF_INET, &self->a, &self->b), 0);
	} else {
		ASSERT_EQ(loopback_pair(&self->a, &self->b), 0);
	}
	ASSERT_EQ(tls_ulp(self->a), 0);
	ASSERT_EQ(tls_ulp(self->b), 0);
	self->ab_seed = 1;
	self->ba_seed = 51;
	key_init(&self->ab, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, self->ab_seed);
	key_init(&self->ba, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, self->ba_seed);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->ab), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->ab), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_TX, &self->ba), 0);
	ASSERT_EQ(tls_key_set(self->a, TLS_RX, &self->ba), 0);
	self->tx_device = variant->offload ? ns_stat("tls-a", "TlsCurrTxDevice") : 0;
	self->decrypt_errors = a_stat(variant, "TlsDecryptError");
	ASSERT_EQ(self->tx_device, variant->offload ? 1 : 0);
}

FIXTURE_TEARDOWN(bad)
{
	close(self->a);
	close(self->b);
	if (variant->offload)
		topo("topo_down %d", NSIM_A);
}

/* @len stream bytes from @tx to @rx, every byte checked. */
static int move(int tx, int rx, unsigned long long *off, size_t len)
{
	unsigned char buf[4096], type;
	size_t i, got;
	ssize_t n;

	for (i = 0; i < len; i++)
		buf[i] = stream_byte(*off + i, 3);
	if (send_all(tx, buf, len))
		return -1;
	for (got = 0; got < len; got += n) {
		n = recv_record(rx, buf + got, len - got, &type, 0);
		if (n <= 0 || type != TLS_RECORD_DATA)
			return -1;
	}
	for (i = 0; i < len; i++)
		if (buf[i] != stream_byte(*off + i, 3))
			return -1;
	*off += len;
	return 0;
}

/* A proper key update from @tx to @rx: KeyUpdate, new keys both ends. */
static int update(int tx, int rx, struct tls_key *k, unsigned int *seed)
{
	unsigned char buf[16], type;

	if (send_record(tx, TLS_RECORD_HANDSHAKE, key_update_msg,
			sizeof(key_update_msg)) != sizeof(key_update_msg))
		return -1;
	key_init(k, TLS_1_3_VERSION, k->info.cipher_type, ++*seed);
	if (tls_key_set(tx, TLS_TX, k))
		return -1;
	if (recv_record(rx, buf, sizeof(buf), &type, 0) != sizeof(key_update_msg) ||
	    type != TLS_RECORD_HANDSHAKE)
		return -1;
	return tls_key_set(rx, TLS_RX, k);
}

/* getsockopt() of @dir's key is @k (the record sequence has moved on). */
static int key_is(int fd, int dir, const struct tls_key *k)
{
	unsigned char *key, *salt, *iv, *seq;
	struct tls_key got, want = *k;
	socklen_t len = k->len;

	if (getsockopt(fd, SOL_TLS, dir, &got.info, &len) || len != k->len)
		return -1;
	got.len = len;
	key_fields(&got, &key, &salt, &iv, &seq);
	memset(seq, 0, 8);
	key_fields(&want, &key, &salt, &iv, &seq);
	memset(seq, 0, 8);
	return memcmp(&got.info, &want.info, k->len) ? -1 : 0;
}

/* The connection after the bad input: the keys it had, data both ways,
 * a key update each way, data again, a's TX still on the device.
 */
static void intact(struct __test_metadata *_metadata, FIXTURE_DATA(bad) *self,
		   const FIXTURE_VARIANT(bad) *variant)
{
	EXPECT_EQ(key_is(self->a, TLS_TX, &self->ab), 0);
	EXPECT_EQ(key_is(self->b, TLS_RX, &self->ab), 0);
	EXPECT_EQ(key_is(self->b, TLS_TX, &self->ba), 0);
	EXPECT_EQ(key_is(self->a, TLS_RX, &self->ba), 0);
	ASSERT_EQ(move(self->a, self->b, &self->ab_off, 3000), 0);
	ASSERT_EQ(move(self->b, self->a, &self->ba_off, 3000), 0);
	ASSERT_EQ(update(self->a, self->b, &self->ab, &self->ab_seed), 0);
	ASSERT_EQ(update(self->b, self->a, &self->ba, &self->ba_seed), 0);
	ASSERT_EQ(move(self->a, self->b, &self->ab_off, 4000), 0);
	ASSERT_EQ(move(self->b, self->a, &self->ba_off, 4000), 0);
	if (variant->offload) {
		EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), self->tx_device);
		EXPECT_EQ(ns_stat("tls-a", "TlsCurrRxDevice"), 1);
	}
	EXPECT_EQ(a_stat(variant, "TlsDecryptError"), self->decrypt_errors);
}

/* setsockopt(TLS_TX/TLS_RX) with @info/@len; returns errno or 0. */
static int set_key(int fd, int dir, const void *info, socklen_t len)
{
	return setsockopt(fd, SOL_TLS, dir, info, len) ? errno : 0;
}

/* ------------------------------------------------------------ key buffers */

TEST_F(bad, key_too_short)
{
	struct tls_key k = self->ab;

	k.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len - 1), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, &k.info, k.len - 1), EINVAL);
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, sizeof(k.info) - 1), EINVAL);
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, 0), EINVAL);
	intact(_metadata, self, variant);
}

TEST_F(bad, key_too_long)
{
	struct { struct tls_key k; char more[64]; } big = { .k = self->ab };

	EXPECT_EQ(set_key(self->a, TLS_TX, &big.k.info, big.k.len + 1), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, &big.k.info, big.k.len + 64), EINVAL);
	intact(_metadata, self, variant);
}

/* A NULL key is no key: EINVAL, as for a short one. */
TEST_F(bad, key_null)
{
	EXPECT_EQ(set_key(self->a, TLS_TX, NULL, self->ab.len), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, NULL, self->ab.len), EINVAL);
	intact(_metadata, self, variant);
}

/* A buffer that ends where the address space of the process does not. */
TEST_F(bad, key_unmapped)
{
	EXPECT_EQ(set_key(self->a, TLS_TX, (void *)16, self->ab.len), EFAULT);
	intact(_metadata, self, variant);
}

/* Not an error: a key at an odd address is a key. */
TEST_F(bad, key_unaligned_is_fine)
{
	unsigned char raw[sizeof(struct tls_key) + 1], buf[16], type;
	struct tls_key k = self->ab;

	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, ++self->ab_seed);
	memcpy(raw + 1, &k.info, k.len);
	EXPECT_EQ(set_key(self->a, TLS_TX, raw + 1, k.len), 0);
	ASSERT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0),
		  sizeof(key_update_msg));
	EXPECT_EQ(set_key(self->b, TLS_RX, raw + 1, k.len), 0);
	self->ab = k;
	intact(_metadata, self, variant);
}

/* ------------------------------------------------------------ key contents */

TEST_F(bad, version_changed)
{
	struct tls_key k = self->ab;

	k.info.version = TLS_1_2_VERSION;
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, &k.info, k.len), EINVAL);
	k.info.version = 0x0305;	/* no such TLS */
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len), EINVAL);
	k.info.version = 0;
	EXPECT_EQ(set_key(self->b, TLS_RX, &k.info, k.len), EINVAL);
	intact(_metadata, self, variant);
}

TEST_F(bad, cipher_changed)
{
	struct tls_key k;

	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_256, 99);
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, &k.info, k.len), EINVAL);
	k = self->ab;
	k.info.cipher_type = 9999;	/* no such cipher */
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len), EINVAL);
	EXPECT_EQ(set_key(self->b, TLS_RX, &k.info, k.len), EINVAL);
	intact(_metadata, self, variant);
}

/* ------------------------------------------------------------ sockets */

TEST_F(bad, not_a_tls_socket)
{
	struct tls_key k = self->ab;
	char buf[8];
	int x, y;

	ASSERT_EQ(loopback_pair(&x, &y), 0);
	EXPECT_EQ(set_key(x, TLS_TX, &k.info, k.len), ENOPROTOOPT);
	EXPECT_EQ(set_key(y, TLS_RX, &k.info, k.len), ENOPROTOOPT);
	/* the plain connection is unharmed */
	EXPECT_EQ(send(x, "plain", 5, 0), 5);
	EXPECT_EQ(recv(y, buf, sizeof(buf), 0), 5);
	EXPECT_EQ(memcmp(buf, "plain", 5), 0);
	close(x);
	close(y);
	intact(_metadata, self, variant);
}

TEST_F(bad, listening_socket)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct tls_key k = self->ab;
	int l = socket(AF_INET, SOCK_STREAM, 0);

	ASSERT_EQ(bind(l, (void *)&sin, sizeof(sin)), 0);
	ASSERT_EQ(listen(l, 1), 0);
	EXPECT_EQ(setsockopt(l, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")), -1);
	EXPECT_EQ(errno, ENOTCONN);
	EXPECT_EQ(set_key(l, TLS_TX, &k.info, k.len), ENOPROTOOPT);
	close(l);
	intact(_metadata, self, variant);
}

TEST_F(bad, closed_fd)
{
	struct tls_key k = self->ab;
	int fd = dup(self->a);

	close(fd);
	EXPECT_EQ(set_key(fd, TLS_TX, &k.info, k.len), EBADF);
	intact(_metadata, self, variant);
}

/* The peer has closed and the stream is over: a key update is still
 * accepted (the socket is still TLS and may have data to read), a send
 * after it soon fails as TCP does (the peer resets), and closing leaves
 * nothing behind.
 */
TEST_F(bad, connection_closed)
{
	unsigned char buf[16];
	struct tls_key k;
	int i;

	EXPECT_EQ(shutdown(self->b, SHUT_WR), 0);
	EXPECT_EQ(recv(self->a, buf, sizeof(buf), 0), 0);
	close(self->b);
	self->b = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 77);
	EXPECT_EQ(set_key(self->a, TLS_TX, &k.info, k.len), 0);
	/* the peer answers with a reset; a send then fails */
	for (i = 0; i < 50 && send(self->a, "x", 1, MSG_NOSIGNAL) == 1; i++)
		usleep(20000);
	EXPECT_LT(i, 50);
	EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET) TH_LOG("errno %d", errno);
	key_init(&k, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, 78);
	/* an update on a reset connection: refused or accepted, never harm */
	set_key(self->a, TLS_TX, &k.info, k.len);
	close(self->a);
	self->a = socket(AF_INET, SOCK_STREAM, 0);
	if (variant->offload) {
		/* nothing of the TLS state outlives the sockets */
		for (i = 0; i < 100 && ns_stat("tls-a", "TlsCurrTxDevice"); i++)
			usleep(20000);
		EXPECT_EQ(ns_stat("tls-a", "TlsCurrTxDevice"), 0);
		EXPECT_EQ(ns_stat("tls-a", "TlsCurrRekeyWindow"), 0);
	}
}

TEST_F(bad, tls12_refuses_rekey)
{
	unsigned long long off = 0;
	struct tls_key k;
	int x, y;

	ASSERT_EQ(variant->offload ? connect_pair(AF_INET, &x, &y) :
				     loopback_pair(&x, &y), 0);
	ASSERT_EQ(tls_ulp(x), 0);
	ASSERT_EQ(tls_ulp(y), 0);
	key_init(&k, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 5);
	ASSERT_EQ(set_key(x, TLS_TX, &k.info, k.len), 0);
	ASSERT_EQ(set_key(y, TLS_RX, &k.info, k.len), 0);
	key_init(&k, TLS_1_2_VERSION, TLS_CIPHER_AES_GCM_128, 6);
	EXPECT_EQ(set_key(x, TLS_TX, &k.info, k.len), EBUSY);
	EXPECT_EQ(set_key(y, TLS_RX, &k.info, k.len), EBUSY);
	EXPECT_EQ(move(x, y, &off, 2000), 0);	/* the old key still works */
	close(x);
	close(y);
	intact(_metadata, self, variant);
}

/* ------------------------------------------------------------ receiving */

/* recv() with no room for the record type meets the KeyUpdate: EIO, and
 * the record stays; recvmsg() with a cmsg buffer then gets it.
 */
TEST_F(bad, recv_keyupdate_without_cmsg)
{
	unsigned char buf[64], type;

	ASSERT_EQ(move(self->a, self->b, &self->ab_off, 100), 0);
	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	key_init(&self->ab, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, ++self->ab_seed);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->ab), 0);
	EXPECT_EQ(recv(self->b, buf, sizeof(buf), 0), -1);
	EXPECT_EQ(errno, EIO);
	EXPECT_EQ(recv(self->b, buf, sizeof(buf), MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EIO);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), sizeof(key_update_msg));
	EXPECT_EQ(type, TLS_RECORD_HANDSHAKE);
	EXPECT_EQ(memcmp(buf, key_update_msg, sizeof(key_update_msg)), 0);
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->ab), 0);
	intact(_metadata, self, variant);
}

/* Data sent with the new key before the receiver has it: reads say
 * EKEYEXPIRED (blocking or not), nothing is lost, and it all arrives once
 * the key is in.
 */
TEST_F(bad, recv_before_new_key)
{
	unsigned char buf[64], type;

	ASSERT_EQ(send_record(self->a, TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	key_init(&self->ab, TLS_1_3_VERSION, TLS_CIPHER_AES_GCM_128, ++self->ab_seed);
	ASSERT_EQ(tls_key_set(self->a, TLS_TX, &self->ab), 0);
	for (int i = 0; i < 8; i++)
		buf[i] = stream_byte(self->ab_off + i, 3);
	ASSERT_EQ(send(self->a, buf, 8, 0), 8);
	ASSERT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), sizeof(key_update_msg));
	usleep(50000);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, MSG_DONTWAIT), -1);
	EXPECT_EQ(errno, EKEYEXPIRED);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), -1);
	EXPECT_EQ(errno, EKEYEXPIRED);
	ASSERT_EQ(tls_key_set(self->b, TLS_RX, &self->ab), 0);
	EXPECT_EQ(recv_record(self->b, buf, sizeof(buf), &type, 0), 8);
	for (int i = 0; i < 8; i++)
		EXPECT_EQ(buf[i], stream_byte(self->ab_off + i, 3));
	self->ab_off += 8;
	intact(_metadata, self, variant);
}

TEST_HARNESS_MAIN
