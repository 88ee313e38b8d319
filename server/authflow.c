#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/client.h"
#include "auth/throttle.h"
#include "authflow.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "logincache.h"
#include "server.h"
#include "worker.h"
#include "core/compat.h"

struct attempt {
	struct conn *conn;	/* referenced until the end */
	const char *proto;
	char login[AUTH_LOGIN_MAX + 1];
	enum auth_result result;
	enum authflow_result outcome;
	unsigned char mac[32];	/* the login cache's hash of the credentials, not the password */
	bool have_mac, cached;
	bool counted;		/* throttle_begin() counted it (a cached success is not counted) */
	uint64_t generation;
	uint64_t started;	/* when throttle_begin() counted this attempt */
	struct timer delay;
	void (*done)(struct conn *c, enum authflow_result r, const char *login);
};

bool
authflow_allowed(const struct conn *c)
{
	return conn_is_tls(c) || (c->is_loopback && c->cfg->auth.allow_plaintext_loopback);
}

static void
finish(struct attempt *a)
{
	struct conn *c = a->conn;

	if (!conn_is_closed(c)) {
		/* answer first: a resume may carry a pending shutdown's goodbye */
		a->done(c, a->outcome, a->login);
		conn_resume(c);
	}
	conn_unref(c);
	free(a);
}

static void
on_delay(struct timer *t)
{
	finish((struct attempt *)((char *)t - offsetof(struct attempt, delay)));
}

static struct throttle_limits
limits(const struct conn *c)
{
	struct throttle_limits lim = { c->cfg->auth.max_failures, c->cfg->auth.failure_window };
	return lim;
}

/* On the worker again: judge the answer, count and log failures, delay them. */
static void
on_answer_here(void *arg)
{
	struct attempt *a = arg;
	struct conn *c = a->conn;
	struct throttle_limits lim = limits(c);
	struct store_account acct;
	const char *reason = NULL;

	if (conn_is_closed(c)) {
		/* nobody hears the answer; a failed guess still counts */
		if (a->result != AUTH_RESULT_FAIL && a->counted)
			throttle_release(c->ip, a->login, &lim, a->started, (uint64_t)time(NULL));
		conn_unref(c);
		free(a);
		return;
	}
	switch (a->result) {
	case AUTH_RESULT_OK:
		/* PAM said yes; the mail service also needs a mailbox */
		if (!store_valid_login(a->login) || store_user_get(c->srv->store, a->login, &acct) ||
		    !acct.enabled) {
			a->outcome = AUTHFLOW_FAIL;
			reason = "no_mailbox";
		} else {
			a->outcome = AUTHFLOW_OK;
			if (a->have_mac && !a->cached)
				logincache_store(span_cstr(a->login), a->mac, a->generation, (uint64_t)time(NULL));
			log_msg(LOG_LEVEL_INFO, "sid=%s event=auth result=ok proto=%s ip=%s login=\"%s\" cached=%s",
			    c->sid, a->proto, c->ip, a->login, a->cached ? "yes" : "no");
		}
		break;
	case AUTH_RESULT_FAIL:
		a->outcome = AUTHFLOW_FAIL;
		reason = "bad_credentials";
		break;
	default:
		a->outcome = AUTHFLOW_TEMPFAIL;
		log_msg(LOG_LEVEL_WARN, "sid=%s event=auth result=tempfail proto=%s ip=%s", c->sid, a->proto, c->ip);
		break;
	}
	if (a->outcome != AUTHFLOW_FAIL) {
		/* not a failed guess: give back the attempt counted at the start */
		if (a->counted)
			throttle_release(c->ip, a->login, &lim, a->started, (uint64_t)time(NULL));
		finish(a);
		return;
	}
	/* a failure stays counted: throttle_begin() counted it when it started */
	if (!a->counted)
		throttle_record_failure(c->ip, a->login, &lim, (uint64_t)time(NULL));
	throttle_log_failure(c->sid, a->proto, c->ip, a->login, reason);
	a->delay.fn = on_delay;
	worker_timer_set(c->worker, &a->delay, c->cfg->auth.failure_delay_ms);
}

/* On the auth client's reader thread: hand the answer to the connection's worker. */
static void
on_answer(void *arg, enum auth_result result)
{
	struct attempt *a = arg;

	a->result = result;
	worker_post(a->conn->worker, on_answer_here, a);
}

/* Refused by the throttle: logged as a failure (fail2ban counts it), answered after the delay. */
static void
throttled(struct attempt *a, const char *proto)
{
	struct conn *c = a->conn;

	throttle_log_failure(c->sid, proto, c->ip, a->login, "throttled");
	a->outcome = AUTHFLOW_THROTTLED;
	a->delay.fn = on_delay;
	worker_timer_set(c->worker, &a->delay, c->cfg->auth.failure_delay_ms);
}

void
authflow_check(struct conn *c, const char *proto, struct span login, struct span password,
    void (*done)(struct conn *c, enum authflow_result r, const char *login))
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	struct throttle_limits lim = limits(c);

	a->conn = conn_ref(c);
	a->proto = proto;
	a->done = done;
	memcpy(a->login, login.p, login.len > AUTH_LOGIN_MAX ? AUTH_LOGIN_MAX : login.len);
	conn_pause(c);
	a->started = (uint64_t)time(NULL);
	if (throttle_is_blocked(c->ip, a->login, &lim, a->started)) {
		throttled(a, proto);
		return;
	}
	/*
	 * A remembered success skips PAM (and its 100 ms of yescrypt). It is
	 * no guess (the password is one PAM accepted), so it is not counted:
	 * a client's many connections at once do not fill the limit.
	 */
	if (c->cfg->auth.cache_ttl && store_auth_generation(c->srv->store, &a->generation) == 0 &&
	    (a->have_mac = logincache_mac(login, password, a->mac)) &&
	    logincache_hit(login, a->mac, c->cfg->auth.cache_ttl, a->generation, (uint64_t)time(NULL))) {
		a->cached = true;
		a->result = AUTH_RESULT_OK;
		worker_post(c->worker, on_answer_here, a);
		return;
	}
	/* counted now, under the throttle's lock: attempts in flight count against the limit */
	if (!throttle_begin(c->ip, a->login, &lim, a->started)) {
		throttled(a, proto);
		return;
	}
	a->counted = true;
	if (!c->srv->auth) {
		a->result = AUTH_RESULT_TEMPFAIL;
		worker_post(c->worker, on_answer_here, a);
		return;
	}
	auth_client_check(c->srv->auth, login, password, c->ip, on_answer, a);
}
