// SPDX-License-Identifier: GPL-2.0
/*
 * tls_stress: many offloaded TLS 1.3 connections at once over the netdevsim
 * pair (selftests/lib/topo.sh), driven by a seeded random schedule, while a
 * fault thread changes the ground under them. Nothing may be lost.
 *
 * Each connection slot runs generations of a connection: a -> b and b -> a
 * streams of random length, four threads (a sender and a receiver per
 * direction). Senders mix send() (with and without MSG_MORE), splice() from
 * a pipe and sendfile() of random sizes with TX key updates (one or several
 * in a row, so several keys can land in one SW window), short pauses and
 * the socket's own policy choice (the loaded policy's name, or none).
 * Receivers mix recvmsg(), MSG_PEEK and splice() to a pipe of random sizes,
 * and install each new RX key at once or a little later (records then wait
 * encrypted). a closes its socket right after a last key update, while the
 * update's window is still open. Every byte is compared with the stream
 * function of its offset, which stamps the offset and the stream's own
 * number every 4 KiB, so a lost, duplicated, shifted or foreign byte fails.
 *
 * Faults, one every 50-500 ms: tls_dev_add failures and delays (device
 * knobs), netem loss on a's port and loss/duplication/reordering on b's,
 * policy load/replace/unload (user/tlsrekey) and a namespace's default
 * switched between it and the built-in decisions, TLS offload features off and
 * on, a's netdevsim port deleted and re-created, a port's TLS driver
 * switched to the next of netdevsim's profiles: strict, trusting (a driver
 * that believes the socket, as real ones do), rx_deferred (decrypted frames
 * reach TCP late, after their context was deleted), a's port refusing
 * transmits for up to 200 ms (a full ring: validated skbs wait in the
 * qdisc's requeue slot across key updates). b never offloads TX: netem
 * cannot delay or duplicate what a device still has to encrypt (topo.sh).
 *
 * Fails on: any byte lost, duplicated or corrupted; any error from a socket
 * call the schedule made (a decryption error included); decryption or key
 * update errors in /proc/net/tls_stat; TLS contexts, rekey windows or device
 * keys left once every socket is closed. Splats fail the VM run (vm/run),
 * kmemleak is scanned there on the debug kernel.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#include "kselftest.h"
#include "ktls.h"
#include "offload.h"

#define MAX_IO		(128 * 1024)	/* largest single send or recv */
#define PERIOD		65521		/* prime: the stream never realigns */
#define STAMP_EVERY	4096		/* offset + stream id every this many bytes */
#define STALL_SECS	120		/* a connection still open this long after the end */

static unsigned char pattern[PERIOD + MAX_IO];
static atomic_bool stopping;
static struct timespec start;		/* CLOCK_MONOTONIC */
static char tlsrekey[PATH_MAX];
static int listener = -1;
static pthread_mutex_t connect_lock = PTHREAD_MUTEX_INITIALIZER;

/* What was done, for the summary: the schedule's operations and faults. */
enum {
	OP_SEND, OP_SEND_MORE, OP_SPLICE, OP_SENDFILE, OP_TX_UPDATE,
	OP_TX_UPDATE_BURST, OP_PAUSE, OP_RECV, OP_PEEK, OP_SPLICE_READ,
	OP_RX_UPDATE, OP_RX_UPDATE_LATE, OP_CLOSE_IN_WINDOW, OP_CONNECTION,
	OP_CHOOSE_POLICY,
	F_FAIL_ADD, F_ADD_DELAY, F_NETEM_A, F_NETEM_B, F_POLICY, F_FEATURE,
	F_PORT_REPLACE, F_PROFILE, F_TX_BUSY, F_NETNS_DEFAULT, NR_COUNTS,
};
static const char *const count_name[NR_COUNTS] = {
	"send", "send_msg_more", "splice", "sendfile", "tx_key_update",
	"tx_key_update_burst", "pause", "recv", "recv_peek", "splice_read",
	"rx_key_update", "rx_key_update_late", "close_in_window", "connection",
	"choose_policy", "fault_fail_add", "fault_add_delay", "fault_netem_a", "fault_netem_b",
	"fault_policy", "fault_feature", "fault_port_replace", "fault_profile",
	"fault_tx_busy", "fault_netns_default",
};
static atomic_ullong counts[NR_COUNTS];
static atomic_ullong bytes_verified;
static atomic_uint errors;

static void fail(const char *fmt, ...)
{
	va_list ap;

	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	va_start(ap, fmt);
	printf("# %7.2f s  FAIL: ", t.tv_sec - start.tv_sec +
	       (t.tv_nsec - start.tv_nsec) / 1e9);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	va_end(ap);
	atomic_fetch_add(&errors, 1);
	atomic_store(&stopping, true);
}

static void count(int what)
{
	atomic_fetch_add_explicit(&counts[what], 1, memory_order_relaxed);
}

/* xorshift64*: one generator per thread, seeded from the run's seed. */
static unsigned long long rnd(unsigned long long *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static unsigned int pick(unsigned long long *s, unsigned int n)
{
	return rnd(s) % n;
}

/* A size from 1 to @max, log-uniform: as many small I/Os as large ones. */
static size_t rnd_size(unsigned long long *s, size_t max)
{
	size_t top = 1;

	for (unsigned int bits = pick(s, 18); bits; bits--)
		top <<= 1;
	top = top < max ? top : max;
	return 1 + pick(s, top);
}

/* ------------------------------------------------------------ streams */

/* Bytes [off, off + len) of stream @id into @buf. */
static void stream_fill(unsigned char *buf, unsigned long long off,
			size_t len, unsigned long long id)
{
	unsigned long long q, stamp;
	int i;

	memcpy(buf, pattern + off % PERIOD, len);
	for (q = off & ~(STAMP_EVERY - 1ULL); q < off + len; q += STAMP_EVERY) {
		stamp = (id << 32) ^ (q / STAMP_EVERY);
		for (i = 0; i < 8; i++)
			if (q + i >= off && q + i < off + len)
				buf[q + i - off] = stamp >> (56 - 8 * i);
	}
}

/* One direction of a connection. */
struct stream {
	unsigned long long id;		/* stamped into the data, < 2^32 */
	int tx, rx;			/* sender's and receiver's socket */
	unsigned int tx_seed, rx_seed;	/* key generations (key_init seeds) */
	__u16 cipher;
	unsigned long long budget;	/* bytes the sender sends */
	atomic_ullong sent;		/* final once the sender is done */
	atomic_bool sender_done;
	unsigned long long rnd;
	const char *name;
};

struct conn {
	int a, b;
	struct stream ab, ba;
	atomic_bool a_drained;		/* b -> a has reached EOF at a */
	bool close_in_window;		/* a closes right after a key update */
};

struct worker {
	struct conn *c;
	struct stream *s;
	unsigned char buf[MAX_IO], expect[MAX_IO];
	int pipe[2], memfd;
	unsigned long long rnd;
};

static int update_tx_key(struct stream *s, int fd)
{
	struct tls_key k;

	if (send_record(fd, TLS_RECORD_HANDSHAKE, key_update_msg,
			sizeof(key_update_msg)) != sizeof(key_update_msg))
		return -1;
	key_init(&k, TLS_1_3_VERSION, s->cipher, ++s->tx_seed);
	return tls_key_set(fd, TLS_TX, &k);
}

/* Send @len bytes of w->buf (the stream's next bytes) by send(), splice()
 * through a pipe or sendfile() from a memfd; @more: more data follows.
 */
static int tx_chunk(struct worker *w, int fd, size_t len, bool more, int how)
{
	size_t done = 0;
	off_t pos = 0;
	ssize_t n;

	if (how == OP_SPLICE && write(w->pipe[1], w->buf, len) != (ssize_t)len)
		return -1;
	if (how == OP_SENDFILE && pwrite(w->memfd, w->buf, len, 0) != (ssize_t)len)
		return -1;
	while (done < len) {
		if (how == OP_SPLICE)
			n = splice(w->pipe[0], NULL, fd, NULL, len - done,
				   more ? SPLICE_F_MORE : 0);
		else if (how == OP_SENDFILE)
			n = sendfile(fd, w->memfd, &pos, len - done);
		else
			n = send(fd, w->buf + done, len - done, more ? MSG_MORE : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

/* the policy the fault thread loaded last, a built-in's name ("" none) */
static _Atomic(const char *) policy_loaded = "";

/* The socket chooses the loaded policy or none (its namespace's default).
 * ENOENT: the fault thread unloaded it meanwhile.
 */
static int choose_policy(struct worker *w, int fd)
{
	const char *name = pick(&w->rnd, 2) ? atomic_load(&policy_loaded) : "";

	count(OP_CHOOSE_POLICY);
	if (!setsockopt(fd, SOL_TLS, TLS_REKEY_POLICY, name, strlen(name)) ||
	    errno == ENOENT)
		return 0;
	fail("%s: choosing policy '%s': %s", w->s->name, name, strerror(errno));
	return -1;
}

static void *sender(void *arg)
{
	struct worker *w = arg;
	struct stream *s = w->s;
	struct conn *c = w->c;
	unsigned long long off = 0;
	int fd = s->tx, how, i, n;
	bool more = false;
	size_t len;

	while (off < s->budget) {
		if (atomic_load(&stopping) && !more)
			break;
		switch (pick(&w->rnd, 20)) {
		case 0:	/* key update(s); a pending MSG_MORE record goes first */
			n = pick(&w->rnd, 4) ? 1 : 2 + pick(&w->rnd, 3);
			count(n > 1 ? OP_TX_UPDATE_BURST : OP_TX_UPDATE);
			for (i = 0; i < n; i++)
				if (update_tx_key(s, fd)) {
					fail("%s: TX key update %u: %s", s->name,
					     s->tx_seed, strerror(errno));
					return NULL;
				}
			more = false;
			continue;
		case 1:
			if (!more) {
				count(OP_PAUSE);
				usleep(pick(&w->rnd, 3000));
				continue;
			}
			break;
		case 2:
			if (!pick(&w->rnd, 4) && choose_policy(w, fd))
				return NULL;
			break;
		}
		how = pick(&w->rnd, 4);
		how = how == 0 ? OP_SPLICE : how == 1 ? OP_SENDFILE : OP_SEND;
		len = rnd_size(&w->rnd, how == OP_SPLICE ? 65536 : MAX_IO);
		len = len < s->budget - off ? len : s->budget - off;
		/* the last bytes never stay in an open record */
		more = off + len < s->budget && !pick(&w->rnd, 3);
		count(how == OP_SEND && more ? OP_SEND_MORE : how);
		stream_fill(w->buf, off, len, s->id);
		if (tx_chunk(w, fd, len, more, how)) {
			fail("%s: %s of %zu at %llu: %s", s->name,
			     count_name[how], len, off, strerror(errno));
			return NULL;
		}
		off += len;
	}
	/* a waits until b's stream has ended: closing with unread data would
	 * reset the connection
	 */
	if (s == &c->ab) {
		while (!atomic_load(&c->a_drained) && !atomic_load(&errors))
			usleep(1000);
		if (atomic_load(&errors)) {	/* the run is over: unblock all */
			shutdown(fd, SHUT_RDWR);
			return NULL;
		}
		if (c->close_in_window) {
			/* the update's window opens with this record unacked
			 * and is still open when the socket goes
			 */
			len = 1 + pick(&w->rnd, 16384);
			if (update_tx_key(s, fd)) {
				fail("%s: last key update: %s", s->name, strerror(errno));
				return NULL;
			}
			stream_fill(w->buf, off, len, s->id);
			if (tx_chunk(w, fd, len, false, OP_SEND)) {
				fail("%s: last send: %s", s->name, strerror(errno));
				return NULL;
			}
			off += len;
			count(OP_CLOSE_IN_WINDOW);
			atomic_store(&s->sent, off);
			atomic_store(&s->sender_done, true);
			close(fd);
			c->a = -1;
			return NULL;
		}
	}
	atomic_store(&s->sent, off);
	atomic_store(&s->sender_done, true);
	shutdown(fd, SHUT_WR);
	return NULL;
}

/* Check @n received bytes at @off; false (and the run failed) if wrong. */
static bool rx_check(struct worker *w, unsigned long long off, size_t n)
{
	struct stream *s = w->s;
	size_t i;

	stream_fill(w->expect, off, n, s->id);
	if (!memcmp(w->buf, w->expect, n))
		return true;
	for (i = 0; w->buf[i] == w->expect[i]; i++)
		;
	fail("%s: byte %llu is %#x, not %#x", s->name, off + i, w->buf[i],
	     w->expect[i]);
	return false;
}

static void *receiver(void *arg)
{
	struct worker *w = arg;
	struct stream *s = w->s;
	unsigned long long off = 0;
	bool try_splice = true;
	unsigned char type;
	struct tls_key k;
	int fd = s->rx, op;
	unsigned char hs[sizeof(key_update_msg)];
	size_t len, hs_len = 0;
	ssize_t n, m, got;

	for (;;) {
		op = pick(&w->rnd, 8);
		len = rnd_size(&w->rnd, op == 0 ? 65536 : MAX_IO);
		if (op == 0 && try_splice) {
			/* a record that is not data stops splice with
			 * EINVAL; recvmsg() then takes it with its type
			 */
			n = splice(fd, NULL, w->pipe[1], NULL, len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EINVAL) {
				try_splice = false;
				continue;
			}
			if (n < 0) {
				fail("%s: splice read at %llu: %s", s->name, off,
				     strerror(errno));
				return NULL;
			}
			for (got = 0; got < n; got += m)
				if ((m = read(w->pipe[0], w->buf + got, n - got)) <= 0) {
					fail("%s: pipe read", s->name);
					return NULL;
				}
			type = TLS_RECORD_DATA;
			count(OP_SPLICE_READ);
		} else {
			int flags = op == 1 ? MSG_PEEK : 0;

			n = recv_record(fd, w->buf, len, &type, flags);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				fail("%s: recv at %llu: %s", s->name, off,
				     strerror(errno));
				return NULL;
			}
			count(flags ? OP_PEEK : OP_RECV);
			if (n && flags) {	/* the same bytes come again */
				if (type == TLS_RECORD_DATA && !rx_check(w, off, n))
					return NULL;
				continue;
			}
		}
		try_splice = true;
		if (!n)
			break;
		if (type == TLS_RECORD_HANDSHAKE) {
			/* a read smaller than the record takes it in parts */
			if (hs_len + n > sizeof(hs)) {
				fail("%s: handshake record longer than a KeyUpdate",
				     s->name);
				return NULL;
			}
			memcpy(hs + hs_len, w->buf, n);
			hs_len += n;
			if (hs_len < sizeof(hs))
				continue;
			hs_len = 0;
			if (memcmp(hs, key_update_msg, sizeof(hs))) {
				fail("%s: handshake record that is not a KeyUpdate",
				     s->name);
				return NULL;
			}
			/* late: records behind the update wait encrypted */
			if (!pick(&w->rnd, 4)) {
				usleep(200 + pick(&w->rnd, 5000));
				count(OP_RX_UPDATE_LATE);
			}
			count(OP_RX_UPDATE);
			key_init(&k, TLS_1_3_VERSION, s->cipher, ++s->rx_seed);
			if (tls_key_set(fd, TLS_RX, &k)) {
				fail("%s: TLS_RX key update %u: %s", s->name,
				     s->rx_seed, strerror(errno));
				return NULL;
			}
			continue;
		}
		if (type != TLS_RECORD_DATA || hs_len) {
			fail("%s: record type %u", s->name, type);
			return NULL;
		}
		if (!rx_check(w, off, n))
			return NULL;
		off += n;
		atomic_fetch_add_explicit(&bytes_verified, n, memory_order_relaxed);
	}
	/* EOF: the sender has said how much it sent before it shut down */
	if (!atomic_load(&s->sender_done) || off != atomic_load(&s->sent))
		fail("%s: %llu bytes arrived, %llu sent", s->name, off,
		     (unsigned long long)atomic_load(&s->sent));
	if (s->rx == w->c->a)
		atomic_store(&w->c->a_drained, true);
	return NULL;
}

/* ------------------------------------------------------------ connections */

/* A connected pair from tls-a to b's listener, TLS 1.3 keys set both ways. */
static int conn_open(struct conn *c, unsigned long long *r)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	__u16 cipher = pick(r, 2) ? TLS_CIPHER_AES_GCM_128 : TLS_CIPHER_AES_GCM_256;
	struct tls_key k;
	int rc = -1;

	int tries;

	inet_pton(AF_INET, "10.77.0.2", &sin.sin_addr);
	pthread_mutex_lock(&connect_lock);
	/* a's port may be being replaced (no route for a moment) */
	for (tries = 0; tries < 50; tries++) {
		c->a = socket(AF_INET, SOCK_STREAM, 0);
		while (c->a >= 0 && (rc = connect(c->a, (void *)&sin, sizeof(sin))) &&
		       errno == EINTR)
			;
		if (c->a < 0 || !rc)
			break;
		close(c->a);
		c->a = -1;
		usleep(100000);
	}
	if (c->a >= 0)
		do
			c->b = accept(listener, NULL, NULL);
		while (c->b < 0 && errno == EINTR);
	pthread_mutex_unlock(&connect_lock);
	if (c->a < 0 || c->b < 0 || tls_ulp(c->a) || tls_ulp(c->b))
		return -1;
	c->ab.cipher = c->ba.cipher = cipher;
	key_init(&k, TLS_1_3_VERSION, cipher, c->ab.tx_seed);
	rc = tls_key_set(c->a, TLS_TX, &k) || tls_key_set(c->b, TLS_RX, &k);
	key_init(&k, TLS_1_3_VERSION, cipher, c->ba.tx_seed);
	rc = rc || tls_key_set(c->b, TLS_TX, &k) || tls_key_set(c->a, TLS_RX, &k);
	return rc ? -1 : 0;
}

struct slot {
	pthread_t thread;
	unsigned int id;
	unsigned long long seed;
	atomic_bool done;
};

static pthread_attr_t small_stack;

/* Connection after connection until the run stops. */
static void *slot_run(void *arg)
{
	struct slot *sl = arg;
	struct worker *w[4];
	pthread_t t[4];
	unsigned long long r = sl->seed;
	unsigned int gen, i;
	struct conn c;

	/* traffic threads (this one's children inherit it) yield to the
	 * fault thread
	 */
	setpriority(PRIO_PROCESS, syscall(SYS_gettid), 10);
	if (in_netns("tls-a")) {
		fail("slot %u: no netns tls-a", sl->id);
		return NULL;
	}
	for (i = 0; i < 4; i++) {
		w[i] = calloc(1, sizeof(*w[i]));
		if (!w[i] || pipe(w[i]->pipe) ||
		    (w[i]->memfd = memfd_create("stress", 0)) < 0) {
			fail("slot %u: worker: %s", sl->id, strerror(errno));
			return NULL;
		}
	}
	for (gen = 0; !atomic_load(&stopping); gen++) {
		memset(&c, 0, sizeof(c));
		c.a = c.b = -1;
		c.ab.id = ((sl->id << 20) + gen) << 1;
		c.ba.id = c.ab.id | 1;
		c.ab.name = "a->b", c.ba.name = "b->a";
		c.ab.tx_seed = c.ab.rx_seed = 1 + pick(&r, 200);
		c.ba.tx_seed = c.ba.rx_seed = 1 + pick(&r, 200);
		/* streams of 1 KiB to 8 MiB, log-uniform */
		c.ab.budget = 1024ULL << pick(&r, 14);
		c.ba.budget = 1024ULL << pick(&r, 14);
		c.close_in_window = pick(&r, 2);
		if (conn_open(&c, &r)) {
			fail("slot %u: connection %u: %s", sl->id, gen, strerror(errno));
			break;
		}
		count(OP_CONNECTION);
		c.ab.tx = c.a, c.ab.rx = c.b;
		c.ba.tx = c.b, c.ba.rx = c.a;
		for (i = 0; i < 4; i++) {
			w[i]->c = &c;
			w[i]->s = i < 2 ? &c.ab : &c.ba;
			w[i]->rnd = rnd(&r) | 1;
			if (pthread_create(&t[i], &small_stack, i % 2 ? receiver : sender, w[i])) {
				fail("slot %u: pthread_create", sl->id);
				return NULL;
			}
		}
		for (i = 0; i < 4; i++)
			pthread_join(t[i], NULL);
		if (c.a >= 0)
			close(c.a);
		close(c.b);
	}
	for (i = 0; i < 4; i++) {
		close(w[i]->pipe[0]);
		close(w[i]->pipe[1]);
		close(w[i]->memfd);
		free(w[i]);
	}
	atomic_store(&sl->done, true);
	return NULL;
}

/* ------------------------------------------------------------ faults */

static int dev_a = NSIM_A;		/* a's netdevsim device: 200 or 202 */

static const char *const policies[] = { "default", "backoff", "ratelimit", "observe" };

/* Run shell command @fmt (topo.sh's functions and variables at hand),
 * logged with the time since the start.
 */
static int fault_cmd(const char *fmt, ...)
{
	struct timespec t;
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_MONOTONIC, &t);
	printf("# %7.2f s  %s\n", t.tv_sec - start.tv_sec +
	       (t.tv_nsec - start.tv_nsec) / 1e9, cmd);
	return topo("%s", cmd);
}

static void fault(unsigned long long *r, int what)
{
	static bool netem_a, netem_b, policy, feature_off[3];
	static const char *const feature[3] = {
		"$NS_A $DEV_A tls-hw-tx-offload", "$NS_A $DEV_A tls-hw-rx-offload",
		"$NS_B $DEV_B tls-hw-rx-offload",
	};
	static const char *const netem_b_kinds[] = {
		"loss 3%", "duplicate 3%", "delay 1ms reorder 75% 50%",
		"loss 2% duplicate 2% delay 1ms reorder 80% 50%",
	};
	static const int errnos[] = { ENOSPC, EBUSY, ENOMEM, EIO };
	static unsigned int delay_ms[2];
	static const char * const profiles[] = { "strict", "trusting", "rx_deferred" };
	static unsigned int profile[2];
	int dev, rc = 0;
	const char *feat;

	switch (what) {
	case F_FAIL_ADD:
		dev = pick(r, 2) ? NSIM_B : dev_a;
		rc = fault_cmd("cd %s && echo %d >fail_errno && echo %u >fail_add",
			       dev_path(dev, ""), errnos[pick(r, 4)], 1 + pick(r, 3));
		break;
	case F_ADD_DELAY:
		dev = pick(r, 2);
		delay_ms[dev] = delay_ms[dev] ? 0 : 1 + pick(r, 20);
		rc = fault_cmd("echo %u >%s", delay_ms[dev],
			       dev_path(dev ? NSIM_B : dev_a, "add_delay_ms"));
		break;
	case F_NETEM_A:
		netem_a = !netem_a;
		rc = netem_a ? fault_cmd("tc -n $NS_A qdisc replace dev $DEV_A root netem loss %u%%",
					 1 + pick(r, 5)) :
			       fault_cmd("tc -n $NS_A qdisc del dev $DEV_A root");
		break;
	case F_NETEM_B:
		netem_b = !netem_b;
		rc = netem_b ? fault_cmd("tc -n $NS_B qdisc replace dev $DEV_B root netem %s",
					 netem_b_kinds[pick(r, 4)]) :
			       fault_cmd("tc -n $NS_B qdisc del dev $DEV_B root");
		break;
	case F_POLICY:
		if (!policy) {
			const char *name = policies[pick(r, 4)];

			/* registered, and the default of both namespaces */
			rc = fault_cmd("%s load %s >/dev/null && %s default %s -n $NS_A >/dev/null && %s default %s -n $NS_B >/dev/null",
				       tlsrekey, name, tlsrekey, name, tlsrekey, name);
			policy = !rc;
			if (policy)
				atomic_store(&policy_loaded, name);
		} else if (pick(r, 3)) {
			const char *name = policies[pick(r, 4)];

			rc = fault_cmd("%s replace %s >/dev/null", tlsrekey, name);
			if (!rc)
				atomic_store(&policy_loaded, name);
		} else {
			rc = fault_cmd("%s unload >/dev/null", tlsrekey);
			policy = !!rc;
			if (!policy)
				atomic_store(&policy_loaded, "");
		}
		break;
	case F_NETNS_DEFAULT:
		/* the loaded policy or the built-in decisions, for sockets
		 * whose next key update starts now
		 */
		rc = fault_cmd("%s default \"%s\" -n %s >/dev/null", tlsrekey,
			       pick(r, 2) ? atomic_load(&policy_loaded) : "",
			       pick(r, 2) ? "$NS_A" : "$NS_B");
		break;
	case F_FEATURE:
		dev = pick(r, 3);
		feature_off[dev] = !feature_off[dev];
		feat = feature[dev];
		rc = fault_cmd("ip netns exec %.5s ethtool -K %s %s", feat, feat + 6,
			       feature_off[dev] ? "off" : "on");
		break;
	case F_PORT_REPLACE:
		/* a's sockets leave the deleted device, go on in SW over the
		 * new port
		 */
		rc = fault_cmd("topo_replace_a %d %d && ip netns exec $NS_A ethtool -K $DEV_A "
			       "rx on tls-hw-tx-offload on tls-hw-rx-offload on", dev_a, dev_a ^ 2);
		dev_a ^= 2;
		netem_a = feature_off[0] = feature_off[1] = false;
		delay_ms[0] = 0;
		profile[0] = 0;
		break;
	case F_PROFILE:
		dev = pick(r, 2);
		profile[dev] = (profile[dev] + 1) % ARRAY_SIZE(profiles);
		rc = fault_cmd("topo_tls_profile %d %s %s", dev ? NSIM_B : dev_a,
			       dev ? "$NS_B $DEV_B" : "$NS_A $DEV_A", profiles[profile[dev]]);
		break;
	case F_TX_BUSY:
		/* refused skbs wait in a qdisc (netdevsim has none; keep
		 * netem's)
		 */
		rc = fault_cmd("%scd %s && echo 1 >tx_busy && sleep 0.%03u; echo 0 >tx_busy",
			       netem_a ? "" : "tc -n $NS_A qdisc replace dev $DEV_A root pfifo limit 10000 && ",
			       dev_path(dev_a, ""), 1 + pick(r, 200));
		break;
	}
	count(what);
	if (rc)
		fail("%s did not take", count_name[what]);
}

/* bit (F_x - F_FAIL_ADD) */
#define FAULTS_ALL	((1u << (NR_COUNTS - F_FAIL_ADD)) - 1)
static unsigned int faults_enabled = FAULTS_ALL;

/* The next fault: by weight, but each kind at least once in a run. */
static int next_fault(unsigned long long *r, bool second_half)
{
	static const unsigned int weight[] = {
		[F_FAIL_ADD - F_FAIL_ADD] = 6, [F_ADD_DELAY - F_FAIL_ADD] = 4,
		[F_NETEM_A - F_FAIL_ADD] = 4, [F_NETEM_B - F_FAIL_ADD] = 4,
		[F_POLICY - F_FAIL_ADD] = 5, [F_FEATURE - F_FAIL_ADD] = 6,
		[F_PORT_REPLACE - F_FAIL_ADD] = 1, [F_PROFILE - F_FAIL_ADD] = 3,
		[F_TX_BUSY - F_FAIL_ADD] = 3, [F_NETNS_DEFAULT - F_FAIL_ADD] = 3,
	};
	unsigned int i, total = 0, x;

	for (i = F_FAIL_ADD; second_half && i < NR_COUNTS; i++)
		if (!counts[i] && faults_enabled & 1u << (i - F_FAIL_ADD))
			return i;
	for (i = 0; i < sizeof(weight) / sizeof(*weight); i++)
		if (faults_enabled & 1u << i)
			total += weight[i];
	x = pick(r, total);
	for (i = 0; !(faults_enabled & 1u << i) || x >= weight[i]; i++)
		if (faults_enabled & 1u << i)
			x -= weight[i];
	return F_FAIL_ADD + i;
}

/* Undo what fault() left: knobs, qdiscs, policy. */
static int faults_clear(void)
{
	int rc = 0, i;

	for (i = 0; i < 2; i++) {
		rc |= dev_knob(i ? NSIM_B : dev_a, "fail_add", 0);
		rc |= dev_knob(i ? NSIM_B : dev_a, "add_delay_ms", 0);
		rc |= dev_knob(i ? NSIM_B : dev_a, "tx_busy", 0);
	}
	topo("tc -n $NS_A qdisc del dev $DEV_A root 2>/dev/null;"
	     "tc -n $NS_B qdisc del dev $DEV_B root 2>/dev/null;"
	     "%s unload >/dev/null 2>&1", tlsrekey);
	return rc;
}

/* ------------------------------------------------------------ checks */

static const char *const tls_stat_zero[] = {
	"TlsDecryptError", "TlsRxRekeyError", "TlsTxRekeyError",
};
static const char *const tls_stat_gone[] = {
	"TlsCurrTxSw", "TlsCurrRxSw", "TlsCurrTxDevice", "TlsCurrRxDevice",
	"TlsCurrRekeyWindow",
};

/* Device keys still installed: key table lines of the debugfs stats. */
static int dev_keys(int id)
{
	char line[256];
	int n = 0;
	FILE *f = fopen(dev_path(id, "stats"), "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !strncmp(line, "tx ", 3) || !strncmp(line, "rx ", 3);
	fclose(f);
	return n;
}

/* Everything a closed socket held is gone (within @secs). */
static bool nothing_left(int secs, bool report)
{
	const char *ns[2] = { "tls-a", "tls-b" };
	bool clean = true;
	long v;
	int i, j;

	for (i = 0; i < 2; i++)
		for (j = 0; j < (int)(sizeof(tls_stat_gone) / sizeof(*tls_stat_gone)); j++) {
			v = ns_stat(ns[i], tls_stat_gone[j]);
			if (v) {
				clean = false;
				if (report)
					printf("# %s %s %ld\n", ns[i], tls_stat_gone[j], v);
			}
		}
	for (i = 0; i < 2; i++) {
		v = dev_keys(i ? NSIM_B : dev_a);
		if (v) {
			clean = false;
			if (report)
				printf("# netdevsim%d: %ld keys installed\n",
				       i ? NSIM_B : dev_a, v);
		}
	}
	if (clean || secs <= 0)
		return clean;
	sleep(1);
	return nothing_left(secs - 1, report);
}

static void usage(void)
{
	fprintf(stderr,
		"Usage: tls_stress [-n CONNECTIONS] [-t SECONDS] [-s SEED] [-f FAULT,...]\n"
		"  -n N   connections at once (default 64)\n"
		"  -t S   run this long (default: $STRESS_SECONDS, else 60)\n"
		"  -s N   seed of the schedule (default: from the clock; printed)\n"
		"  -f L   these faults: fail_add, add_delay, netem_a, netem_b, policy,\n"
		"         feature, port_replace, profile, tx_busy, netns_default, or all\n"
		"         (default: all)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long long seed = 0, r;
	unsigned int conns = 64, secs = 60, i;
	const char *env = getenv("STRESS_SECONDS");
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	struct sched_param fault_prio = { .sched_priority = 10 };
	char exe[PATH_MAX];
	struct timespec t0, t, t1;
	unsigned int stuck;
	struct slot *slots;
	bool decrypt_ok = true, clean;
	long v;
	int opt, one = 1;
	ssize_t n;

	signal(SIGPIPE, SIG_IGN);	/* a reset shows as EPIPE, and fails */
	if (env)
		secs = atoi(env);
	while ((opt = getopt(argc, argv, "n:t:s:f:")) != -1) {
		switch (opt) {
		case 'f':
			faults_enabled = 0;
			for (char *f = strtok(optarg, ","); f; f = strtok(NULL, ",")) {
				if (!strcmp(f, "all")) {
					faults_enabled = FAULTS_ALL;
					continue;
				}
				for (i = F_FAIL_ADD; i < NR_COUNTS; i++)
					if (!strcmp(f, count_name[i] + strlen("fault_")))
						break;
				if (i == NR_COUNTS)
					usage();
				faults_enabled |= 1u << (i - F_FAIL_ADD);
			}
			break;
		case 'n': conns = atoi(optarg); break;
		case 't': secs = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!conns || !secs)
		usage();
	clock_gettime(CLOCK_REALTIME, &t0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (!seed)
		seed = t0.tv_sec * 1000003ULL ^ t0.tv_nsec;
	r = seed | 1;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		ksft_exit_fail_msg("readlink: %s\n", strerror(errno));
	exe[n] = 0;
	/* build/selftests/tls_stress -> build/user/tlsrekey */
	snprintf(tlsrekey, sizeof(tlsrekey), "%s/../user/tlsrekey", dirname(exe));

	ksft_print_header();
	ksft_set_plan(4);
	printf("# seed %llu (tls_stress -s %llu -n %u -t %u repeats the schedule)\n",
	       seed, seed, conns, secs);
	printf("# faults:");
	for (i = F_FAIL_ADD; i < NR_COUNTS; i++)
		if (faults_enabled & 1u << (i - F_FAIL_ADD))
			printf(" %s", count_name[i] + strlen("fault_"));
	printf("\n");
	for (i = 0; i < PERIOD + MAX_IO; i++)
		pattern[i] = i < PERIOD ? rnd(&r) >> 56 : pattern[i - PERIOD];

	if (topo("topo_up %d && topo_tls_offload && "
		 "ip netns exec $NS_B ethtool -K $DEV_B tls-hw-tx-offload off >/dev/null",
		 NSIM_A))
		ksft_exit_fail_msg("topology\n");
	inet_pton(AF_INET, "10.77.0.2", &sin.sin_addr);
	if (in_netns("tls-b") || (listener = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
	    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(listener, (void *)&sin, sizeof(sin)) || listen(listener, 128))
		ksft_exit_fail_msg("listener: %s\n", strerror(errno));

	pthread_attr_init(&small_stack);
	pthread_attr_setstacksize(&small_stack, 256 * 1024);
	slots = calloc(conns, sizeof(*slots));
	for (i = 0; i < conns; i++) {
		slots[i].id = i;
		slots[i].seed = rnd(&r) | 1;
		if (pthread_create(&slots[i].thread, &small_stack, slot_run, &slots[i]))
			ksft_exit_fail_msg("pthread_create\n");
	}
	/* Faults until the time is up. Their commands (tc, ethtool, the
	 * loader) run real-time: network softirqs ignore nice, and a shell
	 * among 256 busy threads on a 2-CPU guest would get a fault in every
	 * few seconds instead of several a second.
	 */
	if (sched_setscheduler(0, SCHED_FIFO, &fault_prio))
		ksft_exit_fail_msg("SCHED_FIFO: %s\n", strerror(errno));
	for (;;) {
		clock_gettime(CLOCK_REALTIME, &t);
		if (t.tv_sec - t0.tv_sec >= secs || atomic_load(&stopping))
			break;
		usleep(50000 + pick(&r, 450000));
		fault(&r, next_fault(&r, 2 * (t.tv_sec - t0.tv_sec) >= secs));
	}
	atomic_store(&stopping, true);
	if (faults_clear())
		fail("clearing the faults");
	/* a connection that does not end within STALL_SECS has lost data
	 * (or the run failed and its peer stopped reading)
	 */
	clock_gettime(CLOCK_REALTIME, &t);
	for (stuck = conns; stuck; usleep(100000)) {
		for (stuck = 0, i = 0; i < conns; i++)
			stuck += !atomic_load(&slots[i].done);
		clock_gettime(CLOCK_REALTIME, &t1);
		if (t1.tv_sec - t.tv_sec > STALL_SECS)
			break;
	}
	for (i = 0; stuck && i < conns; i++)
		if (!atomic_load(&slots[i].done))
			fail("connection %u stalled", i);
	clock_gettime(CLOCK_REALTIME, &t);

	for (i = 0; i < NR_COUNTS; i++)
		printf("# %-22s %llu\n", count_name[i], (unsigned long long)counts[i]);
	printf("# bytes verified %llu in %ld s with %u connections at once\n",
	       (unsigned long long)bytes_verified, (long)(t.tv_sec - t0.tv_sec), conns);
	for (i = 0; i < 2; i++) {
		int id = i ? NSIM_B : dev_a;

		printf("# netdevsim%d: adds %lld dels %lld add_failures %lld tx_records %lld "
		       "rx_records %lld rx_resyncs %lld\n", id, dev_stat(id, "adds"),
		       dev_stat(id, "dels"), dev_stat(id, "add_failures"),
		       dev_stat(id, "tx_records"), dev_stat(id, "rx_records"),
		       dev_stat(id, "rx_resyncs"));
	}
	for (i = 0; i < 2 * sizeof(tls_stat_zero) / sizeof(*tls_stat_zero); i++) {
		const char *ns = i % 2 ? "tls-b" : "tls-a";

		v = ns_stat(ns, tls_stat_zero[i / 2]);
		if (v) {
			printf("# %s %s %ld\n", ns, tls_stat_zero[i / 2], v);
			decrypt_ok = false;
		}
	}
	/* stalled sockets still hold what they hold */
	clean = !stuck && (nothing_left(20, false) || nothing_left(0, true));
	ksft_test_result(!atomic_load(&errors), "every byte arrived once, intact, in order\n");
	ksft_test_result(decrypt_ok, "no decryption or key update errors\n");
	ksft_test_result(clean, "no TLS context, rekey window or device key left\n");
	for (i = F_FAIL_ADD, v = 1; i < NR_COUNTS; i++)
		if (faults_enabled & 1u << (i - F_FAIL_ADD) && !counts[i])
			v = 0;
	ksft_test_result(v && counts[OP_TX_UPDATE] && counts[OP_RX_UPDATE] &&
			 counts[OP_CLOSE_IN_WINDOW] && counts[OP_CHOOSE_POLICY] &&
			 bytes_verified,
			 "the schedule did what it is for\n");
	topo("topo_down %d", NSIM_A);
	if (stuck)	/* its threads are blocked in the stalled sockets */
		exit(KSFT_FAIL);
	ksft_finished();
}
