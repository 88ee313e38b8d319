/*
 * conn.h: one client connection: socket, TLS state, bounded input and
 * output buffers, deadlines, and the one path that closes it.
 *
 * A connection belongs to the worker that accepted it; every function here
 * is for that worker's thread only. Protocol code (SMTP, POP3) sees the
 * connection through this API and struct proto_ops; it never touches the
 * socket or TLS directly.
 *
 * Lifetime: conn_close() ends the connection at once; the memory is freed
 * when the last reference is dropped. Asynchronous work (auth, storage)
 * takes a reference with conn_ref() before it starts and drops it in its
 * completion callback (posted back to the owning worker); the callback
 * checks conn_is_closed() before touching the session.
 */
#ifndef POSTIE_CONN_H
#define POSTIE_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/linereader.h"
#include "worker.h"

struct conn;
struct tls_conn;

/* Why a deadline fired, for the protocol's reply. */
enum conn_timeout {
	CONN_TIMEOUT_COMMAND,	/* no complete command line in time (idle or trickling) */
	CONN_TIMEOUT_SESSION,	/* the whole session lasted too long */
};

/* What a protocol implements. All callbacks run on the owning worker. */
struct proto_ops {
	const char *name;				/* "smtp", "pop3" for logs */
	void *(*create)(struct conn *c);		/* new session state */
	void (*start)(struct conn *c);			/* send the greeting */
	void (*input)(struct conn *c);			/* bytes arrived in conn_input(c) */
	void (*tls_ready)(struct conn *c);		/* STARTTLS/STLS handshake done */
	void (*drained)(struct conn *c);		/* output buffer emptied (back-pressure) */
	void (*timeout)(struct conn *c, enum conn_timeout why);	/* reply; conn closes after */
	void (*shutdown)(struct conn *c);		/* server stopping: reply; conn closes after */
	void (*destroy)(struct conn *c);		/* free session state */
	/* plaintext reply for "too many connections" (NULL for implicit TLS) */
	const char *(*busy_reply)(const struct config *cfg);
};

/* Input buffer bound: enough for a whole AUTH line (RFC 4954 section 4) and a read batch. */
#define CONN_INPUT_MAX (16 * 1024)
/* One read() at most; keeps a single client from monopolising a worker. */
#define CONN_READ_CHUNK (16 * 1024)
/* Replies queued past this stop reading input: a pipelining client must read too. */
#define CONN_OUT_HIGH (64 * 1024)
/* The session id is 8 hex digits, unique per process. */
#define CONN_SID_LEN 8

struct conn {
	struct ev_handler ev;		/* epoll handler, must stay first */
	int fd;
	struct worker *worker;
	uint32_t events;		/* events currently registered */
	enum listen_proto proto;
	const struct server *srv;	/* the process-wide objects (server.h) */
	const struct proto_ops *ops;
	void *session;			/* the protocol's state */
	struct config *cfg;		/* the configuration this session started with */
	char sid[CONN_SID_LEN + 1];
	struct sockaddr_storage peer;	/* client address, for the per-address count */
	char ip[INET6_ADDRSTRLEN];	/* client address, numeric */
	unsigned port;
	bool is_loopback;

	struct buf in;			/* received plaintext not yet consumed */
	struct buf out;			/* replies not yet sent */

	struct tls_conn *tls;
	struct tls_creds *tls_creds;	/* held from STARTTLS until the handshake starts */
	bool tls_want_write;		/* GnuTLS needs the socket writable to go on */
	enum { CONN_TLS_NONE, CONN_TLS_PENDING, CONN_TLS_HANDSHAKE, CONN_TLS_ON } tls_state;
	bool tls_implicit;		/* 465/995: handshake before the greeting */

	bool closed;			/* conn_close() was called */
	bool close_after_flush;		/* close once out is sent */
	bool paused;			/* protocol is waiting for async work */
	bool read_eof;			/* the client shut its side */
	bool in_callback;		/* re-entrancy guard for input processing */
	bool shutdown_pending;		/* server stopping while paused: reply when resumed */
	int refs;
	struct conn *w_prev, *w_next;	/* the worker's list of live connections */

	struct timer cmd_timer;		/* command/idle deadline */
	struct timer session_timer;	/* whole-session deadline */
	struct timer tls_timer;		/* handshake deadline */
	uint64_t cmd_timeout_ms;	/* the current command deadline */
	uint64_t started_ms;		/* for the disconnect log line */
};

/* Create a connection for an accepted socket (takes fd) and start it. */
void conn_accept(struct worker *w, int fd, const struct sockaddr_storage *peer,
    enum listen_proto proto, struct config *cfg);

/* The received bytes not yet consumed; the protocol consumes with conn_consume(). */
static inline struct buf *conn_input(struct conn *c) { return &c->in; }
void conn_consume(struct conn *c, size_t n);

/*
 * Queue reply bytes and try to send them. When the output buffer would
 * exceed limits.output_buffer_max the client is not reading: the
 * connection is closed (logged). Safe on a closed connection (no-op).
 */
void conn_write(struct conn *c, const void *p, size_t n);
void conn_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t conn_out_pending(const struct conn *c);

/* Close once everything queued is sent (bounded by the write deadline). */
void conn_close_after_flush(struct conn *c);
/* Close now. Idempotent. reason goes into the log line. */
void conn_close(struct conn *c, const char *reason);
static inline bool conn_is_closed(const struct conn *c) { return c->closed; }

/*
 * Begin STARTTLS/STLS: the protocol has queued its "go ahead" reply. Any
 * input already buffered is discarded (CVE-2011-0411 class: plaintext never
 * crosses into TLS), reading stops until the reply is sent, then the
 * handshake runs and ops->tls_ready() is called. Returns 0, or ERR_TLS
 * when no credentials are loaded (the protocol then answers with an error).
 */
int conn_starttls(struct conn *c);
static inline bool conn_is_tls(const struct conn *c) { return c->tls_state == CONN_TLS_ON; }
const char *conn_tls_version(const struct conn *c);	/* NULL without TLS */
const char *conn_tls_cipher(const struct conn *c);

/* Stop / resume feeding input to the protocol while async work runs. */
void conn_pause(struct conn *c);
void conn_resume(struct conn *c);

/*
 * The next command line from the input, for line-based protocols. On
 * LR_LINE the line is copied into line_buf (at least lr->max bytes), NUL
 * terminated, consumed from the input, and the command deadline re-armed;
 * *line_out points into line_buf, valid until the next call. LR_TOO_LONG
 * and LR_BAD have consumed the offending bytes (*line_out: the start of
 * them, for logging, valid until the next input change). LR_MORE: wait.
 */
enum lr_result conn_next_line(struct conn *c, struct linereader *lr, char *line_buf,
    struct span *line_out);

/* Whether the protocol may take another command now. */
static inline bool
conn_can_take_input(const struct conn *c)
{
	return !c->closed && !c->paused && !c->close_after_flush && c->tls_state != CONN_TLS_PENDING;
}

/* Feed already-buffered input to the protocol again soon (after a stream ended). */
void conn_resume_input(struct conn *c);

/* Re-arm the command deadline (call after each complete command). */
void conn_touch(struct conn *c);
/* Change the command deadline used from now on (e.g. after login). */
void conn_set_cmd_timeout(struct conn *c, unsigned seconds);

struct conn *conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Server stopping: ask the protocol for its shutdown reply and close after flush. */
void conn_shutdown(struct conn *c);

/* The protocol implementations, by listener protocol. */

#endif
