/*
 * fake_conn.c: conn.c's API without sockets, for feeding protocol engines
 * scripted bytes in unit tests and fuzz targets. Output accumulates in
 * c->out; STARTTLS only records the request (and drops buffered input,
 * exactly as conn.c does, since that is part of the contract under test).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/authflow.h"
#include "fake_conn.h"
#include "server/server.h"
#include "server/worker.h"
#include "core/compat.h"

void
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->closed)
		return;
	if (buf_append(&c->out, p, n))
		c->closed = true;	/* conn.c closes a client that does not read */
}

void
conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->closed)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&c->out, fmt, ap))
		c->closed = true;	/* as conn_write: conn.c closes a client that does not read */
	va_end(ap);
}

void
conn_close_after_flush(struct conn *c)
{
	c->close_after_flush = true;
}

void
conn_close(struct conn *c, const char *reason)
{
	(void)reason;
	c->closed = true;
}

int
conn_starttls(struct conn *c)
{
	buf_reset(&c->in);
	c->tls_state = CONN_TLS_PENDING;
	return 0;
}

void
conn_touch(struct conn *c)
{
	(void)c;
}

void
fake_conn_init(struct conn *c, struct config *cfg, enum listen_proto proto,
    const struct proto_ops *ops)
{
	memset(c, 0, sizeof(*c));
	c->proto = proto;
	c->srv = &fake_server;
	c->ops = ops;
	c->cfg = cfg;
	c->refs = 1;
	snprintf(c->sid, sizeof(c->sid), "00000000");
	snprintf(c->ip, sizeof(c->ip), "192.0.2.7");
	buf_init(&c->in, CONN_INPUT_MAX);
	buf_init(&c->out, 1 << 20);
	c->session = ops->create(c);
}

void
fake_conn_feed(struct conn *c, const void *p, size_t n)
{
	buf_append(&c->in, p, n);
	if (!c->closed && !c->close_after_flush)
		c->ops->input(c);
}

void
fake_conn_tls_done(struct conn *c)
{
	c->tls_state = CONN_TLS_ON;
	c->ops->tls_ready(c);
}

void
fake_conn_free(struct conn *c)
{
	c->ops->destroy(c);
	buf_free(&c->in);
	buf_free(&c->out);
}

const char *
fake_conn_run(struct conn *c, struct config *cfg, enum listen_proto proto, const struct proto_ops *ops,
    const char *input)
{
	fake_conn_init(c, cfg, proto, ops);
	c->ops->start(c);
	fake_conn_feed(c, input, strlen(input));
	return fake_conn_out(c);
}

void
fake_conn_feed_str(struct conn *c, const char *text)
{
	fake_conn_feed(c, text, strlen(text));
}

const char *
fake_conn_out(const struct conn *c)
{
	return c->out.data ? (const char *)c->out.data : "";
}

bool
fake_conn_wait_resumed(struct conn *c, unsigned ms)
{
	unsigned i;

	for (i = 0; i < ms && c->paused && !c->closed; i++)
		usleep(1000);
	return !c->paused;
}

bool
fake_conn_wait_closing(struct conn *c, unsigned ms)
{
	unsigned i;

	for (i = 0; i < ms && !c->close_after_flush && !c->closed; i++)
		usleep(1000);
	return c->close_after_flush || c->closed;
}

void
fake_config_init(struct config *cfg)
{
	static char host[] = "mx.example.test", domain[] = "example.test";
	static char *domains[] = { domain, NULL };

	memset(cfg, 0, sizeof(*cfg));
	cfg->hostname = host;
	cfg->domains = domains;
	cfg->ndomains = 1;
	cfg->smtp.max_messages_per_session = 100;
	cfg->smtp.sender_must_match = true;
	cfg->limits.max_bad_commands = 10;
	cfg->limits.command_timeout = 300;
	cfg->smtp.max_message_size = 1 << 20;
	cfg->smtp.max_recipients = 100;
}

void
conn_set_cmd_timeout(struct conn *c, unsigned seconds)
{
	c->cmd_timeout_ms = (uint64_t)seconds * 1000;
}

/*
 * The login path without PAM: the password "good" is accepted for any
 * login, "temp" fails temporarily, anything else fails. authflow.c itself
 * is exercised by the integration tests with the real helper.
 */
bool
authflow_allowed(const struct conn *c)
{
	return conn_is_tls(c) || (c->is_loopback && c->cfg->auth.allow_plaintext_loopback);
}

void
authflow_check(struct conn *c, const char *proto, struct span login, struct span password,
    void (*done)(struct conn *c, enum authflow_result r, const char *login))
{
	char name[256];

	(void)proto;
	snprintf(name, sizeof(name), "%.*s", (int)login.len, (const char *)login.p);
	done(c, span_eq(password, "good") ? AUTHFLOW_OK : span_eq(password, "temp") ? AUTHFLOW_TEMPFAIL
	    : AUTHFLOW_FAIL, name);
}

/* What the engines reach beyond the connection: a test sets the store it wants. */
struct server fake_server;

size_t
conn_out_pending(const struct conn *c)
{
	return c->out.len;
}

void
conn_pause(struct conn *c)
{
	c->paused = true;
}

void
conn_resume(struct conn *c)
{
	c->paused = false;
}

void
conn_resume_input(struct conn *c)
{
	if (!c->closed && !c->paused)
		c->ops->input(c);
}

struct conn *
conn_ref(struct conn *c)
{
	c->refs++;
	return c;
}

void
conn_unref(struct conn *c)
{
	c->refs--;
}

void
worker_post(struct worker *w, void (*fn)(void *arg), void *arg)
{
	(void)w;
	fn(arg);
}

void
conn_consume(struct conn *c, size_t n)
{
	buf_consume(&c->in, n);
}

const char *
conn_tls_version(const struct conn *c)
{
	return conn_is_tls(c) ? "TLSv1.3" : NULL;
}

const char *
conn_tls_cipher(const struct conn *c)
{
	return conn_is_tls(c) ? "AES-256-GCM" : NULL;
}
