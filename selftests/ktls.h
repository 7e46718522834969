/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers the kTLS selftests share: records with a type, the test stream,
 * /proc/net/tls_stat.
 */
#ifndef KTLS_H
#define KTLS_H

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/tls.h>

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#define TLS_RECORD_HANDSHAKE	22
#define TLS_RECORD_DATA		23
#define TLS_HS_KEY_UPDATE	24

/* KeyUpdate(update_not_requested): type, 24-bit length 1, request_update 0 */
static const unsigned char key_update_msg[] = { TLS_HS_KEY_UPDATE, 0, 0, 1, 0 };

/* The value of @name in a file of "name value" lines (it stops at the
 * first other line); -1 if missing.
 */
static inline long long file_stat(const char *path, const char *name)
{
	long long val, found = -1;
	char key[64];
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &val) == 2)
		if (!strcmp(key, name))
			found = val;
	fclose(f);
	return found;
}

/* A counter of /proc/net/tls_stat in the calling thread's netns (not the
 * process's: threads may be elsewhere); -1 if missing.
 */
static inline long tls_stat(const char *name)
{
	return file_stat("/proc/thread-self/net/tls_stat", name);
}

static inline ssize_t send_record(int fd, unsigned char type,
				  const void *buf, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(type))] = {};
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_TLS;
	cmsg->cmsg_type = TLS_SET_RECORD_TYPE;
	cmsg->cmsg_len = CMSG_LEN(sizeof(type));
	*CMSG_DATA(cmsg) = type;
	return sendmsg(fd, &msg, 0);
}

/* recvmsg() with room for the record type; *type is 0 when none came. */
static inline ssize_t recv_record(int fd, void *buf, size_t len,
				  unsigned char *type, int flags)
{
	char cbuf[CMSG_SPACE(sizeof(*type))];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cmsg;
	ssize_t n;

	n = recvmsg(fd, &msg, flags);
	*type = 0;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (n >= 0 && cmsg && cmsg->cmsg_level == SOL_TLS &&
	    cmsg->cmsg_type == TLS_GET_RECORD_TYPE)
		*type = *CMSG_DATA(cmsg);
	return n;
}

/* The stream's byte at offset off: a function of the offset alone, so the
 * receiver checks every byte without a copy of what was sent.
 */
static inline unsigned char stream_byte(unsigned long long off, unsigned int salt)
{
	unsigned long long x = off * 0x9e3779b97f4a7c15ULL + salt;

	return x >> 56;
}

#endif
