/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two-namespace netdevsim topology of selftests/lib/topo.sh from C:
 * keys, the topology and its counters, connected kTLS pairs. Shared by the
 * offload selftests and the traffic tool of the demo and benchmarks.
 * Needs ktls.h, <linux/tls.h> and the usual libc headers first.
 */
#ifndef OFFLOAD_H
#define OFFLOAD_H

#define NSIM_A		200	/* netdevsim device of tls-a; 202 replaces it */
#define NSIM_B		201
#define PORT		7400
#define CHUNK		65536	/* whole 16 KiB records per send */
#define MAX_RECORD	(5 + 16384 + 256)

/* ------------------------------------------------------------ keys */

struct tls_key {
	union {
		struct tls_crypto_info info;
		struct tls12_crypto_info_aes_gcm_128 g128;
		struct tls12_crypto_info_aes_gcm_256 g256;
	};
	socklen_t len;
};

/* Where the key, salt, IV and record sequence of @k's cipher are. */
static inline int key_fields(struct tls_key *k, unsigned char **key,
		      unsigned char **salt, unsigned char **iv,
		      unsigned char **seq)
{
	if (k->info.cipher_type == TLS_CIPHER_AES_GCM_128) {
		*key = k->g128.key, *salt = k->g128.salt;
		*iv = k->g128.iv, *seq = k->g128.rec_seq;
		return sizeof(k->g128.key);
	}
	*key = k->g256.key, *salt = k->g256.salt;
	*iv = k->g256.iv, *seq = k->g256.rec_seq;
	return sizeof(k->g256.key);
}

/* Key material derived from @seed; the record sequence starts high, so
 * that nonces that ignore it show up.
 */
static inline void key_init(struct tls_key *k, __u16 version, __u16 cipher,
		     unsigned int seed)
{
	unsigned char *key, *salt, *iv, *seq;
	int key_len;

	memset(k, 0, sizeof(*k));
	k->info.version = version;
	k->info.cipher_type = cipher;
	k->len = cipher == TLS_CIPHER_AES_GCM_128 ? sizeof(k->g128) :
						    sizeof(k->g256);
	key_len = key_fields(k, &key, &salt, &iv, &seq);
	memset(key, seed * 7 + 1, key_len);
	memset(iv, seed, 8);
	memset(salt, ~seed, 4);
	seq[0] = seed;
}

/* The first record number of @k. */
static inline unsigned long long key_rec_seq(struct tls_key *k)
{
	unsigned char *key, *salt, *iv, *seq;
	unsigned long long sn = 0;
	int i;

	key_fields(k, &key, &salt, &iv, &seq);
	for (i = 0; i < 8; i++)
		sn = sn << 8 | seq[i];
	return sn;
}

/* ------------------------------------------------------------ topology */

/* Run shell commands in the initial netns (whichever this thread is in)
 * with selftests/lib/topo.sh sourced and DEV_A, DEV_B set when the
 * namespaces exist.
 */
static inline int topo(const char *fmt, ...)
{
	char exe[PATH_MAX], cmd[1024];
	ssize_t n;
	va_list ap;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return -1;
	exe[n] = 0;
	/* build/selftests/tls_offload -> selftests/lib/topo.sh */
	n = snprintf(cmd, sizeof(cmd),
		     "nsenter -t 1 -n bash -c '. %s/../../selftests/lib/topo.sh; topo_find 2>/dev/null; ",
		     dirname(exe));
	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - n, "'");
	return system(cmd);
}

static inline int in_netns(const char *name)
{
	char path[64];
	int fd, rc;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

/* A /proc/net/tls_stat counter of a netns. */
static inline long ns_stat(const char *ns, const char *name)
{
	return in_netns(ns) ? -1 : tls_stat(name);
}

static inline const char *dev_path(int id, const char *file)
{
	static __thread char path[128];

	snprintf(path, sizeof(path),
		 "/sys/kernel/debug/netdevsim/netdevsim%d/ports/0/tls/%s",
		 id, file);
	return path;
}

/* A counter of the simulated device (its debugfs "stats"). */
static inline long long dev_stat(int id, const char *name)
{
	return file_stat(dev_path(id, "stats"), name);
}

/* Is netdevsim's TLS driver in @profile for this run ($NSIM_TLS_PROFILE,
 * which topo.sh gives each new port)?
 */
static inline bool nsim_tls_profile_is(const char *profile)
{
	const char *env = getenv("NSIM_TLS_PROFILE");

	return !strcmp(env && *env ? env : "strict", profile);
}

static inline int dev_knob(int id, const char *knob, unsigned int val)
{
	FILE *f = fopen(dev_path(id, knob), "w");
	int rc;

	if (!f)
		return -1;
	rc = fprintf(f, "%u\n", val) < 0;
	return fclose(f) || rc ? -1 : 0;
}

/* ------------------------------------------------------------ sockets */

static inline int connect_pair(int family, int *a, int *b)
{
	struct sockaddr_storage ss = {};
	struct sockaddr_in *sin = (void *)&ss;
	struct sockaddr_in6 *sin6 = (void *)&ss;
	socklen_t len;
	int lfd, one = 1;

	if (family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(PORT);
		inet_pton(AF_INET, "10.77.0.2", &sin->sin_addr);
		len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(PORT);
		inet_pton(AF_INET6, "fd77::2", &sin6->sin6_addr);
		len = sizeof(*sin6);
	}
	if (in_netns("tls-b"))
		return -1;
	lfd = socket(family, SOCK_STREAM, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (void *)&ss, len) || listen(lfd, 1))
		return -1;
	if (in_netns("tls-a"))
		return -1;
	*a = socket(family, SOCK_STREAM, 0);
	if (*a < 0 || connect(*a, (void *)&ss, len))
		return -1;
	*b = accept(lfd, NULL, NULL);
	close(lfd);
	return *b < 0 ? -1 : 0;
}

static inline int tls_ulp(int fd)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
}

static inline int tls_key_set(int fd, int dir, const struct tls_key *k)
{
	return setsockopt(fd, SOL_TLS, dir, &k->info, k->len);
}

/* ------------------------------------------------------------ streams */

/* The test's threads get EINTR when topo()'s children end: retry, and
 * finish partial sends.
 */
static inline int send_all(int fd, const unsigned char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= n;
	}
	return 0;
}

static inline ssize_t recv_eintr(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}


/* A sender that updates its key every @every bytes: the KeyUpdate record
 * with the old key, then the next key (seed + 1).
 */
struct rk_send {
	int fd;
	struct tls_key key;
	unsigned int seed;
	unsigned long long bytes, every;
	unsigned int rekeys;
	unsigned long long inflight;	/* SIOCOUTQ summed at the updates */
	bool one_window;	/* next update only once the device has the key */
	long long adds;		/* device key installs seen at the last update */
	volatile unsigned long long sent;	/* progress, for samplers */
	const char *err;
};

static inline int rk_update_tx(struct rk_send *x)
{
	int outq = 0;

	ioctl(x->fd, SIOCOUTQ, &outq);
	if (send_record(x->fd, TLS_RECORD_HANDSHAKE, key_update_msg,
			sizeof(key_update_msg)) != sizeof(key_update_msg))
		return -1;
	key_init(&x->key, TLS_1_3_VERSION, x->key.info.cipher_type, ++x->seed);
	if (tls_key_set(x->fd, TLS_TX, &x->key))
		return -1;
	x->inflight += outq;
	x->rekeys++;
	return 0;
}

static inline void *rk_sender(void *arg)
{
	struct rk_send *x = arg;
	static __thread unsigned char buf[CHUNK];
	unsigned long long off = 0;
	size_t len, i;

	while (off < x->bytes) {
		len = x->bytes - off < CHUNK ? x->bytes - off : CHUNK;
		if (x->every && len > x->every)
			len = x->every;
		for (i = 0; i < len; i++)
			buf[i] = stream_byte(off + i, 7);
		if (send_all(x->fd, buf, len)) {
			x->err = "send";
			return NULL;
		}
		off += len;
		x->sent = off;
		if (!x->every || off % x->every || off >= x->bytes)
			continue;
		/* one window at a time: an update while the previous one
		 * still waits for its ACKs would only replace its SW key
		 */
		if (x->one_window && x->rekeys &&
		    dev_stat(NSIM_A, "adds") == x->adds)
			continue;
		if (x->one_window)
			x->adds = dev_stat(NSIM_A, "adds");
		if (rk_update_tx(x)) {
			x->err = "key update";
			return NULL;
		}
	}
	shutdown(x->fd, SHUT_WR);
	return NULL;
}

/* kTLS receiver that installs the next key at each KeyUpdate. */
struct rk_recv {
	int fd;
	struct tls_key key;
	unsigned int seed;
	unsigned long long bytes;
	unsigned int rekeys;
	volatile unsigned long long received;	/* progress, for samplers */
	const char *err;
};

static inline void *rk_receiver(void *arg)
{
	struct rk_recv *x = arg;
	static __thread unsigned char buf[CHUNK];
	unsigned long long off = 0;
	unsigned char type;
	ssize_t n, i;

	/* EINTR: topo() children end while this thread waits */
	while ((n = recv_record(x->fd, buf, sizeof(buf), &type, 0)) > 0 ||
	       (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (type == TLS_RECORD_HANDSHAKE) {
			if (n != sizeof(key_update_msg) ||
			    memcmp(buf, key_update_msg, n)) {
				x->err = "wrong control record";
				return NULL;
			}
			key_init(&x->key, TLS_1_3_VERSION,
				 x->key.info.cipher_type, ++x->seed);
			if (tls_key_set(x->fd, TLS_RX, &x->key)) {
				x->err = "TLS_RX key update";
				return NULL;
			}
			x->rekeys++;
			continue;
		}
		for (i = 0; i < n; i++)
			if (buf[i] != stream_byte(off + i, 7)) {
				x->err = "corrupt byte";
				return NULL;
			}
		off += n;
		x->received = off;
	}
	if (n < 0)
		x->err = strerror(errno);
	x->bytes = off;
	return NULL;
}

#endif /* OFFLOAD_H */
