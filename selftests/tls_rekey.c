// SPDX-License-Identifier: GPL-2.0
/*
 * TLS 1.3 key update in the kTLS software path, beyond tls.c's unit cases:
 *  - many rekeys in both directions at once with data in flight, every byte
 *    checked, the five rekey counters of /proc/net/tls_stat checked exactly;
 *  - a KeyUpdate reaching a reader blocked in recv() and one blocked in poll();
 *  - records after a KeyUpdate still readable once the peer reset the
 *    connection (what OpenSSL's s_server met when s_client closed early);
 *  - a KeyUpdate that a read of data decrypted behind it is readable for
 *    poll() (upstream 7.3 says it is not, and a select() loop waits forever);
 *  - the key update counters' UAPI values and /proc order, and what counts
 *    as a failed update, as upstream has them.
 * Each test runs in a network namespace of its own, so the counters it reads
 * are its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/snmp.h>
#include <linux/tls.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "kselftest_harness.h"
#include "ktls.h"

/* 1000 updates each way take about 6 s here and several times the harness's
 * 30 s on the KASAN kernel. TEST() picks this up where it is expanded.
 */
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 180

struct tls_key {
	struct tls12_crypto_info_aes_gcm_128 info;
};

/* Generation g of the test key: key, IV and salt bytes derived from g, record
 * sequence zero (a TLS 1.3 key update restarts the sequence).
 */
static struct tls_key key_gen(unsigned int g)
{
	struct tls_key k = {};

	k.info.info.version = TLS_1_3_VERSION;
	k.info.info.cipher_type = TLS_CIPHER_AES_GCM_128;
	memset(k.info.key, g * 7 + 1, sizeof(k.info.key));
	memset(k.info.iv, g, sizeof(k.info.iv));
	memset(k.info.salt, ~g, sizeof(k.info.salt));
	return k;
}

static int set_key(int fd, int dir, unsigned int gen)
{
	struct tls_key k = key_gen(gen);

	return setsockopt(fd, SOL_TLS, dir, &k.info, sizeof(k.info));
}

/* A private network namespace with lo up: counters start from zero. */
static int enter_netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd, ret;

	if (unshare(CLONE_NEWNET))
		return -1;
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		return -1;
	ret = ioctl(fd, SIOCGIFFLAGS, &ifr);
	ifr.ifr_flags |= IFF_UP;
	if (!ret)
		ret = ioctl(fd, SIOCSIFFLAGS, &ifr);
	close(fd);
	return ret;
}

/* A connected TCP pair over loopback, both ends with the "tls" ULP. */
static int ulp_pair(int fds[2])
{
	struct sockaddr_in addr = { .sin_family = AF_INET,
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int lfd, i;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (void *)&addr, len) || listen(lfd, 1) ||
	    getsockname(lfd, (void *)&addr, &len))
		return -1;
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fds[0], (void *)&addr, len))
		return -1;
	fds[1] = accept(lfd, NULL, NULL);
	close(lfd);
	if (fds[1] < 0)
		return -1;
	for (i = 0; i < 2; i++)
		if (setsockopt(fds[i], IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")))
			return -1;
	return 0;
}

/* ulp_pair() with key generation 0 in both directions. */
static int tls_pair(int fds[2])
{
	int i;

	if (ulp_pair(fds))
		return -1;
	for (i = 0; i < 2; i++)
		if (set_key(fds[i], TLS_TX, 0) || set_key(fds[i], TLS_RX, 0))
			return -1;
	return 0;
}

struct stream {
	int fd;
	unsigned int salt;
	unsigned int rekeys;		/* KeyUpdates to send / expect */
	unsigned int bad_updates;	/* failed updates tried on purpose */
	unsigned long long bytes;	/* sent / checked */
	const char *err;
};

/* Sender: chunks of varied size (some with MSG_MORE, so the open record
 * spans the update), a KeyUpdate and the next TX key after every few chunks,
 * and now and then an update that must fail without harm.
 */
static void *sender(void *arg)
{
	struct stream *s = arg;
	unsigned char buf[20000];
	unsigned long long off = 0;
	unsigned int gen, chunk, i, seed = s->salt;

	for (gen = 1; gen <= s->rekeys; gen++) {
		for (chunk = 0; chunk < 3; chunk++) {
			size_t len = 1 + rand_r(&seed) % sizeof(buf);
			int flags = chunk == 2 && gen % 3 == 0 ? MSG_MORE : 0;

			for (i = 0; i < len; i++)
				buf[i] = stream_byte(off + i, s->salt);
			if (send(s->fd, buf, len, flags) != (ssize_t)len) {
				s->err = "send";
				return NULL;
			}
			off += len;
		}
		if (send_record(s->fd, TLS_RECORD_HANDSHAKE, key_update_msg,
				sizeof(key_update_msg)) != sizeof(key_update_msg)) {
			s->err = "send KeyUpdate";
			return NULL;
		}
		if (gen % 100 == 0) {
			struct tls_key k = key_gen(gen);

			/* wrong length, then wrong cipher: EINVAL each */
			if (setsockopt(s->fd, SOL_TLS, TLS_TX, &k.info, sizeof(k.info) - 1) != -1 ||
			    errno != EINVAL) {
				s->err = "short update accepted";
				return NULL;
			}
			k.info.info.cipher_type = TLS_CIPHER_AES_GCM_256;
			if (setsockopt(s->fd, SOL_TLS, TLS_TX, &k.info, sizeof(k.info)) != -1 ||
			    errno != EINVAL) {
				s->err = "cipher change accepted";
				return NULL;
			}
			s->bad_updates += 2;
		}
		if (set_key(s->fd, TLS_TX, gen)) {
			s->err = "TLS_TX update";
			return NULL;
		}
	}
	s->bytes = off;
	shutdown(s->fd, SHUT_WR);
	return NULL;
}

/* Receiver: checks every byte; on a KeyUpdate, first proves that nothing
 * after it is readable, then installs the next RX key.
 */
static void *receiver(void *arg)
{
	struct stream *s = arg;
	unsigned char buf[16384], type;
	unsigned long long off = 0;
	unsigned int gen = 0;
	ssize_t n, i;

	for (;;) {
		n = recv_record(s->fd, buf, sizeof(buf), &type, 0);
		if (n == 0)
			break;
		if (n < 0) {
			s->err = "recv";
			return NULL;
		}
		if (type == TLS_RECORD_HANDSHAKE) {
			if (n != sizeof(key_update_msg) ||
			    memcmp(buf, key_update_msg, n)) {
				s->err = "handshake record is not the KeyUpdate";
				return NULL;
			}
			if (recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT) != -1 ||
			    errno != EKEYEXPIRED) {
				s->err = "read past KeyUpdate without the new key";
				return NULL;
			}
			if (set_key(s->fd, TLS_RX, ++gen)) {
				s->err = "TLS_RX update";
				return NULL;
			}
			continue;
		}
		for (i = 0; i < n; i++) {
			if (buf[i] != stream_byte(off + i, s->salt)) {
				s->err = "corrupt byte";
				return NULL;
			}
		}
		off += n;
	}
	if (gen != s->rekeys)
		s->err = "wrong number of KeyUpdates received";
	s->bytes = off;
	return NULL;
}

#define REKEYS 1000

TEST(rekey_1000_both_directions)
{
	struct stream tx[2], rx[2];
	pthread_t th[4];
	int fds[2], i;

	ASSERT_EQ(enter_netns(), 0);
	ASSERT_EQ(tls_pair(fds), 0);

	for (i = 0; i < 2; i++) {
		tx[i] = (struct stream){ .fd = fds[i], .salt = 17 + i, .rekeys = REKEYS };
		rx[i] = (struct stream){ .fd = fds[!i], .salt = 17 + i, .rekeys = REKEYS };
		ASSERT_EQ(pthread_create(&th[2 * i], NULL, sender, &tx[i]), 0);
		ASSERT_EQ(pthread_create(&th[2 * i + 1], NULL, receiver, &rx[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);

	for (i = 0; i < 2; i++) {
		EXPECT_EQ(tx[i].err, NULL) TH_LOG("sender %d: %s", i, tx[i].err);
		EXPECT_EQ(rx[i].err, NULL) TH_LOG("receiver %d: %s", i, rx[i].err);
		EXPECT_EQ(rx[i].bytes, tx[i].bytes);
		EXPECT_GT(rx[i].bytes, (unsigned long long)REKEYS * 3);
	}
	TH_LOG("verified %llu + %llu bytes across %d rekeys each way",
	       rx[0].bytes, rx[1].bytes, REKEYS);

	EXPECT_EQ(tls_stat("TlsTxRekeyOk"), 2 * REKEYS);
	EXPECT_EQ(tls_stat("TlsRxRekeyOk"), 2 * REKEYS);
	EXPECT_EQ(tls_stat("TlsRxRekeyReceived"), 2 * REKEYS);
	EXPECT_EQ(tls_stat("TlsTxRekeyError"), tx[0].bad_updates + tx[1].bad_updates);
	EXPECT_EQ(tls_stat("TlsRxRekeyError"), 0);
	EXPECT_EQ(tls_stat("TlsDecryptError"), 0);
	close(fds[0]);
	close(fds[1]);
}

struct blocked_reader {
	int fd;
	int use_poll;
	ssize_t ret;
	unsigned char type;
	short revents;
};

static void *block_then_read(void *arg)
{
	struct blocked_reader *r = arg;
	unsigned char buf[64];

	if (r->use_poll) {
		struct pollfd pfd = { .fd = r->fd, .events = POLLIN };

		r->ret = poll(&pfd, 1, 10000);
		r->revents = pfd.revents;
	} else {
		r->ret = recv_record(r->fd, buf, sizeof(buf), &r->type, 0);
	}
	return NULL;
}

/* A reader already waiting when the KeyUpdate arrives (in recv() or in
 * poll()) gets the KeyUpdate, then EKEYEXPIRED in blocking mode, sees no
 * EPOLLIN for data under the new key, and is woken by the new RX key.
 */
static void keyupdate_to_blocked_reader(struct __test_metadata *_metadata,
					int use_poll)
{
	struct blocked_reader r = { .use_poll = use_poll };
	struct pollfd pfd;
	unsigned char buf[64], type;
	const char data[] = "after the update";
	pthread_t th;
	int fds[2];

	ASSERT_EQ(enter_netns(), 0);
	ASSERT_EQ(tls_pair(fds), 0);
	r.fd = fds[1];

	ASSERT_EQ(pthread_create(&th, NULL, block_then_read, &r), 0);
	usleep(300000);		/* let the reader block */
	ASSERT_EQ(send_record(fds[0], TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	ASSERT_EQ(set_key(fds[0], TLS_TX, 1), 0);
	ASSERT_EQ(send(fds[0], data, sizeof(data), 0), sizeof(data));
	pthread_join(th, NULL);

	if (use_poll) {
		EXPECT_EQ(r.ret, 1);
		EXPECT_TRUE(r.revents & POLLIN);
		EXPECT_EQ(recv_record(fds[1], buf, sizeof(buf), &type, 0),
			  sizeof(key_update_msg));
	} else {
		EXPECT_EQ(r.ret, sizeof(key_update_msg));
		type = r.type;
	}
	EXPECT_EQ(type, TLS_RECORD_HANDSHAKE);
	EXPECT_EQ(tls_stat("TlsRxRekeyReceived"), 1);

	/* blocking read: an error at once, not a wait for the key */
	EXPECT_EQ(recv(fds[1], buf, sizeof(buf), 0), -1);
	EXPECT_EQ(errno, EKEYEXPIRED);
	pfd = (struct pollfd){ .fd = fds[1], .events = POLLIN };
	EXPECT_EQ(poll(&pfd, 1, 200), 0);

	/* a poller waiting for the key is woken when it is set */
	r = (struct blocked_reader){ .fd = fds[1], .use_poll = 1 };
	ASSERT_EQ(pthread_create(&th, NULL, block_then_read, &r), 0);
	usleep(300000);
	ASSERT_EQ(set_key(fds[1], TLS_RX, 1), 0);
	pthread_join(th, NULL);
	EXPECT_EQ(r.ret, 1);
	EXPECT_EQ(recv(fds[1], buf, sizeof(buf), 0), sizeof(data));
	EXPECT_EQ(memcmp(buf, data, sizeof(data)), 0);
	close(fds[0]);
	close(fds[1]);
}

TEST(keyupdate_to_reader_blocked_in_recv)
{
	keyupdate_to_blocked_reader(_metadata, 0);
}

TEST(keyupdate_to_reader_blocked_in_poll)
{
	keyupdate_to_blocked_reader(_metadata, 1);
}

static struct tcp_info tcp_info(int fd)
{
	struct tcp_info ti = {};
	socklen_t len = sizeof(ti);

	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	return ti;
}

/* One data record of the test stream (salt 19) from @got on: its length, or
 * -1 (errno set) on an error, another record type or a wrong byte.
 */
static ssize_t read_stream(int fd, unsigned char *buf, size_t len,
			   unsigned long long got)
{
	unsigned char type;
	ssize_t n = recv_record(fd, buf, len, &type, 0);

	if (n > 0 && type != TLS_RECORD_DATA) {
		errno = EPROTO;
		return -1;
	}
	for (ssize_t j = 0; j < n; j++)
		if (buf[j] != stream_byte(got + j, 19)) {
			errno = EILSEQ;
			return -1;
		}
	return n;
}

/* The interleaving of the OpenSSL runs that lost data: the client (a) sends
 * data, a KeyUpdate and data under its next key, and closes while a record
 * of the server (b) waits unread in its socket, so b gets a reset. b reads
 * the KeyUpdate, its answer fails (EPIPE, as s_server's did), and still it
 * installs the next key and reads every byte a sent: the reset loses
 * nothing the kernel queued; s_server lost it by stopping at the failed send.
 */
TEST(records_after_keyupdate_readable_after_reset)
{
	static unsigned char buf[16384];
	const size_t chunk = sizeof(buf);	/* a's records fit b's window */
	unsigned long long off = 0, got = 0;
	unsigned char type;
	int fds[2], i;
	ssize_t n;

	ASSERT_EQ(enter_netns(), 0);
	ASSERT_EQ(tls_pair(fds), 0);

	for (i = 0; i < 2; i++) {
		for (size_t j = 0; j < chunk; j++)
			buf[j] = stream_byte(off + j, 19);
		ASSERT_EQ(send(fds[0], buf, chunk, 0), chunk);
		off += chunk;
		if (i)
			break;
		ASSERT_EQ(send_record(fds[0], TLS_RECORD_HANDSHAKE, key_update_msg,
				      sizeof(key_update_msg)), sizeof(key_update_msg));
		ASSERT_EQ(set_key(fds[0], TLS_TX, 1), 0);
	}
	/* everything a sent is in b's socket; unread data in a's: a's close
	 * is a reset
	 */
	ASSERT_EQ(send(fds[1], "x", 1, 0), 1);
	for (i = 0; i < 200 && (tcp_info(fds[0]).tcpi_unacked ||
				tcp_info(fds[1]).tcpi_unacked); i++)
		usleep(10000);
	ASSERT_EQ(tcp_info(fds[0]).tcpi_unacked, 0);
	close(fds[0]);
	for (i = 0; i < 200 && tcp_info(fds[1]).tcpi_state != TCP_CLOSE; i++)
		usleep(10000);
	ASSERT_EQ(tcp_info(fds[1]).tcpi_state, TCP_CLOSE);

	for (; got < chunk; got += n) {
		n = read_stream(fds[1], buf, sizeof(buf), got);
		ASSERT_GT(n, 0)
			TH_LOG("%llu of %llu bytes read, then %s", got, off, strerror(errno));
	}
	ASSERT_EQ(recv_record(fds[1], buf, sizeof(buf), &type, 0), sizeof(key_update_msg));
	ASSERT_EQ(type, TLS_RECORD_HANDSHAKE);
	EXPECT_EQ(send_record(fds[1], TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), -1);
	EXPECT_TRUE(errno == EPIPE || errno == ECONNRESET);
	ASSERT_EQ(set_key(fds[1], TLS_RX, 1), 0);
	for (; got < off; got += n) {
		n = read_stream(fds[1], buf, sizeof(buf), got);
		ASSERT_GT(n, 0)
			TH_LOG("%llu of %llu bytes read, then %s", got, off, strerror(errno));
	}
	EXPECT_EQ(got, off);
	close(fds[1]);
}

/* A read of data goes on to the records behind it that are already in; when
 * one is the KeyUpdate, it is decrypted, the KeyUpdate stop set, and the
 * record kept for the next read. poll() must report it: an application that
 * reads when select() says so (OpenSSL's s_server) would otherwise never read
 * the KeyUpdate, never install the next key, and wait forever with its peer
 * blocked on a full window. Upstream 7.3 drops EPOLLIN whenever the stop is
 * set; the series only when nothing but records under the next key waits.
 */
TEST(keyupdate_behind_data_readable_for_poll)
{
	const char data[] = "before the update", next[] = "after the update";
	struct pollfd pfd;
	unsigned char buf[4096], type;
	int fds[2], i;

	ASSERT_EQ(enter_netns(), 0);
	ASSERT_EQ(tls_pair(fds), 0);
	ASSERT_EQ(send(fds[0], data, sizeof(data), 0), sizeof(data));
	ASSERT_EQ(send_record(fds[0], TLS_RECORD_HANDSHAKE, key_update_msg,
			      sizeof(key_update_msg)), sizeof(key_update_msg));
	ASSERT_EQ(set_key(fds[0], TLS_TX, 1), 0);
	ASSERT_EQ(send(fds[0], next, sizeof(next), 0), sizeof(next));
	/* all three records in b's socket before b reads */
	for (i = 0; i < 200 && tcp_info(fds[0]).tcpi_unacked; i++)
		usleep(10000);
	ASSERT_EQ(tcp_info(fds[0]).tcpi_unacked, 0);

	ASSERT_EQ(recv_record(fds[1], buf, sizeof(buf), &type, 0), sizeof(data));
	ASSERT_EQ(type, TLS_RECORD_DATA);
	ASSERT_EQ(tls_stat("TlsRxRekeyReceived"), 1);	/* decrypted behind */

	pfd = (struct pollfd){ .fd = fds[1], .events = POLLIN };
	EXPECT_EQ(poll(&pfd, 1, 1000), 1);
	EXPECT_TRUE(pfd.revents & POLLIN);
	ASSERT_EQ(recv_record(fds[1], buf, sizeof(buf), &type, MSG_DONTWAIT),
		  sizeof(key_update_msg));
	ASSERT_EQ(type, TLS_RECORD_HANDSHAKE);

	/* now only the next key's record waits: not readable until the key */
	pfd.revents = 0;
	EXPECT_EQ(poll(&pfd, 1, 200), 0);
	ASSERT_EQ(set_key(fds[1], TLS_RX, 1), 0);
	EXPECT_EQ(poll(&pfd, 1, 1000), 1);
	ASSERT_EQ(recv(fds[1], buf, sizeof(buf), 0), sizeof(next));
	EXPECT_EQ(memcmp(buf, next, sizeof(next)), 0);
	close(fds[0]);
	close(fds[1]);
}

/* The key update counters are upstream's to the value: their enum values
 * (UAPI), and their place in /proc/net/tls_stat, right after
 * TlsRxNoPadViolation and in upstream's order (our own counters follow).
 */
TEST(rekey_counters_as_upstream)
{
	static const char * const order[] = {
		"TlsRxNoPadViolation", "TlsRxRekeyOk", "TlsRxRekeyError",
		"TlsTxRekeyOk", "TlsTxRekeyError", "TlsRxRekeyReceived",
	};
	int n = 0, at = -1;
	char name[64];
	long long val;
	FILE *f;

	EXPECT_EQ(LINUX_MIB_TLSRXNOPADVIOL, 12);
	EXPECT_EQ(LINUX_MIB_TLSRXREKEYOK, 13);
	EXPECT_EQ(LINUX_MIB_TLSRXREKEYERROR, 14);
	EXPECT_EQ(LINUX_MIB_TLSTXREKEYOK, 15);
	EXPECT_EQ(LINUX_MIB_TLSTXREKEYERROR, 16);
	EXPECT_EQ(LINUX_MIB_TLSRXREKEYRECEIVED, 17);

	ASSERT_EQ(enter_netns(), 0);
	f = fopen("/proc/net/tls_stat", "r");
	ASSERT_NE(f, NULL);
	while (fscanf(f, "%63s %lld", name, &val) == 2) {
		if (!strcmp(name, order[0]))
			at = n;
		if (at >= 0 && n - at < ARRAY_SIZE(order))
			EXPECT_STREQ(name, order[n - at]);
		n++;
	}
	fclose(f);
	EXPECT_EQ(at, LINUX_MIB_TLSRXNOPADVIOL - 1);
	EXPECT_GE(n - at, ARRAY_SIZE(order));
}

/* A second key on a TLS 1.2 socket: EBUSY, counted as a failed key update
 * in its direction, as upstream counts it.
 */
TEST(tls12_second_key_is_a_rekey_error)
{
	struct tls12_crypto_info_aes_gcm_128 k = {
		.info.version = TLS_1_2_VERSION,
		.info.cipher_type = TLS_CIPHER_AES_GCM_128,
	};
	int fds[2], i;

	ASSERT_EQ(enter_netns(), 0);
	ASSERT_EQ(ulp_pair(fds), 0);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(setsockopt(fds[i], SOL_TLS, TLS_TX, &k, sizeof(k)), 0);
		ASSERT_EQ(setsockopt(fds[i], SOL_TLS, TLS_RX, &k, sizeof(k)), 0);
	}
	EXPECT_EQ(setsockopt(fds[0], SOL_TLS, TLS_TX, &k, sizeof(k)), -1);
	EXPECT_EQ(errno, EBUSY);
	EXPECT_EQ(tls_stat("TlsTxRekeyError"), 1);
	EXPECT_EQ(tls_stat("TlsRxRekeyError"), 0);
	EXPECT_EQ(setsockopt(fds[0], SOL_TLS, TLS_RX, &k, sizeof(k)), -1);
	EXPECT_EQ(errno, EBUSY);
	EXPECT_EQ(tls_stat("TlsRxRekeyError"), 1);
	EXPECT_EQ(tls_stat("TlsTxRekeyOk"), 0);
	EXPECT_EQ(tls_stat("TlsRxRekeyOk"), 0);
	close(fds[0]);
	close(fds[1]);
}

TEST_HARNESS_MAIN
