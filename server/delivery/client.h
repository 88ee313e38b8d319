/*
 * delivery/client.h: the outbound SMTP client session (RFC 5321): greeting,
 * EHLO (HELO fallback), STARTTLS whenever offered, AUTH PLAIN/LOGIN to a
 * smarthost, and transactions with PIPELINING, SIZE, 8BITMIME, SMTPUTF8
 * and DSN, one result per recipient with the remote reply.
 *
 * Remote replies are hostile input: they go through reply.c (bounded line
 * length and count, strict CRLF); bytes that arrive ahead of the STARTTLS
 * handshake are discarded, never read as a TLS-protected reply (the class
 * of CVE-2021-38371). Only CRLF line endings are ever sent.
 *
 * TLS is a property of the destination (struct smtpc_opts.tls): opportunistic
 * by default, or verified, where STARTTLS is required and the server's
 * certificate must chain to a trusted CA and name the host we meant to reach.
 * Credentials (AUTH) are only ever sent over verified TLS.
 *
 * A session runs on one delivery thread and owns nothing shared. It talks
 * through struct smtpc_transport, so tests and the fuzz target drive it
 * from scripted bytes.
 */
#ifndef POSTIE_DELIVERY_CLIENT_H
#define POSTIE_DELIVERY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "server/delivery/reply.h"

/* Input held at once: a few pipelined replies; reply.c bounds each line. */
#define SMTPC_INPUT_MAX (16 * 1024)
/*
 * The largest SIZE a peer may announce (RFC 1870 4: size-value is 1*20DIGIT,
 * which can exceed 64 bits): a value above it, or one with anything but
 * digits, is read as no fixed limit.
 */
#define SMTPC_PEER_SIZE_MAX UINT64_MAX
/* Text kept of a remote reply for a recipient (DSNs, logs, the queue). */
#define SMTPC_REPLY_MAX 400

struct smtpc_transport {
	/* the calls of netio.h; io is their first argument */
	int (*fill)(void *io, struct buf *in, uint64_t deadline_ms);
	int (*write)(void *io, const void *p, size_t n, uint64_t deadline_ms);
	/*
	 * NULL: TLS not possible. verify_name NULL: any certificate is taken;
	 * else it must be trusted and name verify_name, or ERR_TLS with the
	 * reason in why (why[0] stays '\0' for other failures).
	 */
	int (*starttls)(void *io, const char *verify_name, uint64_t deadline_ms, char *why, size_t why_cap);
	void *io;
};

/* Extensions the peer announced in its EHLO reply. */
enum {
	SMTPC_EXT_PIPELINING = 1, SMTPC_EXT_SIZE = 2, SMTPC_EXT_8BITMIME = 4, SMTPC_EXT_STARTTLS = 8,
	SMTPC_EXT_DSN = 16, SMTPC_EXT_SMTPUTF8 = 32, SMTPC_EXT_AUTH_PLAIN = 64, SMTPC_EXT_AUTH_LOGIN = 128,
};

/* How an attempt ended, for one recipient or the whole session. */
enum smtpc_result { SMTPC_OK = 0, SMTPC_TEMP, SMTPC_PERM };

/* TLS for one destination; the caller picks it per destination. */
enum smtpc_tls {
	SMTPC_TLS_NONE = 0,	/* plaintext (the retry after a failed handshake, when allowed) */
	SMTPC_TLS_MAY,		/* STARTTLS when offered, certificate not checked (RFC 7435 opportunistic) */
	SMTPC_TLS_VERIFY,	/* STARTTLS required, certificate verified for tls_name: else a temporary failure */
};

struct smtpc_opts {
	const char *helo_name;		/* our hostname */
	const char *peer_name;		/* for texts: "mx1.example.net[192.0.2.1]:25" */
	enum smtpc_tls tls;
	const char *tls_name;		/* SMTPC_TLS_VERIFY: the name the certificate must carry */
	const char *auth_user;		/* NULL = no AUTH; AUTH only over verified TLS */
	const char *auth_password;
	unsigned command_timeout_ms;	/* RFC 5321 4.5.3.2: 5 minutes for most replies */
	unsigned data_timeout_ms;	/* 10 minutes for the reply to the final dot */
};

struct smtpc {
	const struct smtpc_transport *t;
	const struct smtpc_opts *o;
	struct buf in;
	struct smtp_reply_reader rr;
	unsigned ext;
	uint64_t max_size;		/* SIZE the peer announced; 0 = none (or not a number) */
	bool tls;
	bool tls_verified;		/* the certificate was verified (SMTPC_TLS_VERIFY) */
	bool tls_failed;		/* the handshake failed: the caller may retry without */
	bool broken;			/* the connection is unusable (timeout, bad reply, closed) */
	char error[SMTPC_REPLY_MAX + 64];	/* why the session failed */
};

struct smtpc_rcpt {
	const char *address;
	const char *orcpt;		/* "" = none */
	uint8_t notify;			/* STORE_NOTIFY_* bits, 0 = not given */
	/* out */
	enum smtpc_result result;
	char reply[SMTPC_REPLY_MAX + 64];
	bool peer_dsn;			/* the peer offers DSN: NOTIFY went on with it (RFC 3461 5.2.1) */
};

struct smtpc_msg {
	const char *sender;		/* "" = null sender */
	const char *envid;		/* "" = none */
	bool ret_full;
	bool has_ret;			/* RET was given */
	uint64_t size;			/* octets sent (for SIZE) */
	bool body_8bit;			/* the content has 8-bit octets */
	bool smtputf8;			/* the envelope needs SMTPUTF8 */
	/* the content, read in pieces: *got_out = 0 at the end */
	int (*read)(void *arg, uint64_t off, void *buf, size_t n, size_t *got_out);
	void *read_arg;
	uint64_t offset;		/* where the content starts (our Return-Path line skipped) */
	struct smtpc_rcpt *rcpts;
	size_t nrcpts;
};

void smtpc_init(struct smtpc *c, const struct smtpc_transport *t, const struct smtpc_opts *o);
void smtpc_free(struct smtpc *c);

/*
 * Greeting, EHLO/HELO, STARTTLS, EHLO again, AUTH. SMTPC_OK, or TEMP/PERM
 * with c->error set (PERM: the peer refused us with 5xx; try the next host
 * anyway, as RFC 5321 5.1 asks for a host that does not serve). A
 * certificate that fails verification is TEMP, "4.7.5" with the reason.
 */
enum smtpc_result smtpc_open(struct smtpc *c);

/*
 * One transaction. Each recipient gets its result; the return value is
 * SMTPC_OK when the session can carry another transaction, else TEMP with
 * c->error (the recipients without a final answer are TEMP with it too).
 */
enum smtpc_result smtpc_send(struct smtpc *c, struct smtpc_msg *m);

/* QUIT, waiting briefly for its reply. */
void smtpc_quit(struct smtpc *c);

/* Remote reply text made safe for a header or a log: printable ASCII, one line, bounded. */
void smtpc_clean_text(char *out, size_t cap, const char *prefix, int code, struct span text);

#endif
