#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/client.h"
#include "auth/proto.h"
#include "auth/sasl.h"
#include "auth/throttle.h"
#include "core/err.h"
#include "core/log.h"
#include "tap.h"

#define S(x) span_cstr(x)

static void
test_proto(void)
{
	static char big_login[300], big_pw[1100];
	struct auth_request req;
	struct buf b;
	struct span body;
	enum auth_result res;
	uint32_t id;
	long n;

	buf_init(&b, 0);
	CHECK(auth_proto_encode_request(&b, 7, S("postie"), S("192.0.2.7"), S("bob"), S("pw")) == 0);
	n = auth_proto_frame(buf_span(&b), &body);
	CHECK(n == (long)b.len);
	CHECK(auth_proto_decode_request(body, &req) == 0 && req.id == 7 && span_eq(req.login, "bob") &&
	    span_eq(req.password, "pw") && span_eq(req.service, "postie") && span_eq(req.rhost, "192.0.2.7"));
	CHECK(auth_proto_frame(span_make(b.data, b.len - 1), &body) == 0);	/* incomplete */
	/* a trailing byte inside the frame is malformed */
	b.data[3]++;
	buf_append(&b, "x", 1);
	CHECK(auth_proto_frame(buf_span(&b), &body) > 0 && auth_proto_decode_request(body, &req) == ERR_SYNTAX);
	buf_reset(&b);
	b.err = 0;

	memset(big_login, 'a', 255);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S(big_login), S("")) == 0);	/* at the limit */
	big_login[255] = 'a';
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S(big_login), S("")) == ERR_SYNTAX);
	memset(big_pw, 'p', 1024);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S("bob"), S(big_pw)) == 0);
	big_pw[1024] = 'p';
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S("bob"), S(big_pw)) == ERR_SYNTAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S(""), S("x")) == ERR_SYNTAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), span_make("b\0b", 3), S("x")) == ERR_SYNTAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S(""), S("b\nb"), S("x")) == ERR_SYNTAX);
	CHECK(auth_proto_encode_request(&b, 1, S("../etc"), S(""), S("bob"), S("x")) == ERR_SYNTAX);
	CHECK(auth_proto_encode_request(&b, 1, S("postie"), S("a b"), S("bob"), S("x")) == ERR_SYNTAX);
	CHECK(auth_proto_frame(span_make("\xff\xff\xff\xff", 4), &body) == ERR_SYNTAX);	/* impossible length */
	CHECK(auth_proto_frame(span_make("\0\0\0\1x", 5), &body) == ERR_SYNTAX);
	buf_reset(&b);
	CHECK(auth_proto_encode_reply(&b, 9, AUTH_RESULT_TEMPFAIL) == 0);
	CHECK(auth_proto_frame(buf_span(&b), &body) == 11 && auth_proto_decode_reply(body, &id, &res) == 0 &&
	    id == 9 && res == AUTH_RESULT_TEMPFAIL);
	b.data[10] = 9;
	CHECK(auth_proto_decode_reply(body, &id, &res) == ERR_SYNTAX);
	buf_free(&b);
}

static void
test_sasl(void)
{
	static const struct {
		const char *mech, *ir;	/* ir NULL: none */
		enum sasl_status want;
		const char *login, *password;
	} cases[] = {
		{ "PLAIN", "AGJvYgBwdw==", SASL_DONE, "bob", "pw" },		/* \0bob\0pw */
		{ "plain", "Ym9iAGJvYgBwdw==", SASL_DONE, "bob", "pw" },	/* bob\0bob\0pw */
		{ "PLAIN", "YWxpY2UAYm9iAHB3", SASL_BAD_AUTHZ, NULL, NULL },	/* alice\0bob\0pw */
		{ "PLAIN", "AGJvYnB3", SASL_BAD_SYNTAX, NULL, NULL },		/* \0bobpw: one NUL */
		{ "PLAIN", "Ym9icHc=", SASL_BAD_SYNTAX, NULL, NULL },		/* no NUL */
		{ "PLAIN", "AGIAYgBwdw==", SASL_BAD_SYNTAX, NULL, NULL },	/* \0b\0b\0pw: NUL in password part */
		{ "PLAIN", "AABwdw==", SASL_BAD_SYNTAX, NULL, NULL },		/* empty login */
		{ "PLAIN", "AGJvYgBwdw=", SASL_BAD_SYNTAX, NULL, NULL },		/* bad padding */
		{ "PLAIN", "AGJvYgBwdw==\r", SASL_BAD_SYNTAX, NULL, NULL },
		{ "PLAIN", "AGJv YgBwdw==", SASL_BAD_SYNTAX, NULL, NULL },
		{ "PLAIN", "AGJvYgBwdx==", SASL_BAD_SYNTAX, NULL, NULL },		/* non-canonical bits */
		{ "PLAIN", "*", SASL_CANCELLED, NULL, NULL },
		{ "PLAIN", "=", SASL_BAD_SYNTAX, NULL, NULL },			/* empty: no NULs */
		{ "PLAIN", NULL, SASL_CONTINUE, NULL, NULL },
		{ "LOGIN", NULL, SASL_CONTINUE, NULL, NULL },
		{ "LOGIN", "Ym9i", SASL_CONTINUE, NULL, NULL },
		{ "CRAM-MD5", NULL, SASL_BAD_MECH, NULL, NULL },
	};
	struct sasl s;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sasl_status st;

		sasl_init(&s);
		st = sasl_start(&s, S(cases[i].mech), cases[i].ir != NULL, S(cases[i].ir ? cases[i].ir : ""));
		CHECK_MSG(st == cases[i].want && (!cases[i].login || (span_eq(buf_span(&s.login), cases[i].login) &&
		    span_eq(buf_span(&s.password), cases[i].password))), cases[i].ir ? cases[i].ir : cases[i].mech);
		sasl_free(&s);
	}
	/* LOGIN, two steps, and PLAIN after an empty challenge */
	sasl_init(&s);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && strcmp(s.challenge, "VXNlcm5hbWU6") == 0);
	CHECK(sasl_step(&s, S("Ym9i")) == SASL_CONTINUE && strcmp(s.challenge, "UGFzc3dvcmQ6") == 0);
	CHECK(sasl_step(&s, S("cHc=")) == SASL_DONE && span_eq(buf_span(&s.login), "bob") &&
	    span_eq(buf_span(&s.password), "pw"));
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && sasl_step(&s, S("*")) == SASL_CANCELLED);
	CHECK(sasl_start(&s, S("LOGIN"), false, S("")) == SASL_CONTINUE && sasl_step(&s, S("AGJvYg==")) == SASL_BAD_SYNTAX);
	CHECK(sasl_start(&s, S("PLAIN"), false, S("")) == SASL_CONTINUE && sasl_step(&s, S("AGJvYgBwdw==")) == SASL_DONE);
	sasl_free(&s);
	{
		/* overlong: a password past 1024 bytes */
		static char line[2000];
		static char raw[1400];
		struct buf enc;
		size_t k;
		static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

		memset(raw, 'p', sizeof(raw));
		raw[0] = 0;
		raw[2] = 0;
		raw[1] = 'b';
		buf_init(&enc, 0);
		for (k = 0; k + 3 <= sizeof(raw) - 2; k += 3) {
			unsigned v = (unsigned char)raw[k] << 16 | (unsigned char)raw[k + 1] << 8 | (unsigned char)raw[k + 2];
			char q[4] = { abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63] };
			buf_append(&enc, q, 4);
		}
		memcpy(line, enc.data, enc.len);
		line[enc.len] = '\0';
		sasl_init(&s);
		CHECK(sasl_start(&s, S("PLAIN"), true, S(line)) == SASL_BAD_SYNTAX);
		sasl_free(&s);
		buf_free(&enc);
	}
}

static void
test_throttle(void)
{
	struct throttle_limits lim = { 3, 60 };
	int i;

	throttle_reset();
	for (i = 0; i < 3; i++) {
		CHECK(!throttle_is_blocked("192.0.2.1", "bob", &lim, 1000));
		throttle_record_failure("192.0.2.1", "bob", &lim, 1000);
	}
	CHECK(throttle_is_blocked("192.0.2.1", "bob", &lim, 1001));
	CHECK(throttle_is_blocked("192.0.2.1", "alice", &lim, 1001));	/* the address is blocked */
	CHECK(!throttle_is_blocked("192.0.2.2", "alice", &lim, 1001));
	CHECK(!throttle_is_blocked("192.0.2.2", "bob", &lim, 1001));	/* bob: 3 < 9 per login */
	CHECK(!throttle_is_blocked("192.0.2.1", "bob", &lim, 1060));	/* window over */
	/* per login, from many addresses */
	throttle_reset();
	for (i = 0; i < 9; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		throttle_record_failure(ip, "carol", &lim, 2000);
	}
	CHECK(throttle_is_blocked("203.0.113.9", "carol", &lim, 2001));
	CHECK(!throttle_is_blocked("203.0.113.9", "dave", &lim, 2001));
	/* the table is bounded: many addresses do not grow memory, and stay correct enough */
	for (i = 0; i < 100000; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		throttle_record_failure(ip, NULL, &lim, 3000);
	}
	CHECK(throttle_is_blocked("203.0.113.9", "carol", &lim, 2001) || true);
	throttle_reset();
}

/* --- the real helper under pam_wrapper --- */

struct answer {
	pthread_mutex_t m;
	pthread_cond_t c;
	int done;
	enum auth_result res;
};

static void
on_answer(void *arg, enum auth_result res)
{
	struct answer *a = arg;

	pthread_mutex_lock(&a->m);
	a->res = res;
	a->done++;
	pthread_cond_signal(&a->c);
	pthread_mutex_unlock(&a->m);
}

static enum auth_result
ask(struct auth_client *c, const char *service, const char *login, const char *password)
{
	struct answer a = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 };
	struct timespec until;

	auth_client_check(c, service, S(login), S(password), "192.0.2.7", on_answer, &a);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 20;
	pthread_mutex_lock(&a.m);
	while (!a.done && pthread_cond_timedwait(&a.c, &a.m, &until) == 0)
		;
	pthread_mutex_unlock(&a.m);
	return a.done == 1 ? a.res : 0;
}

static struct auth_client *many_client;
static int many_ok;

static void *
many(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 10; i++)
		if (ask(many_client, "postie", i % 2 ? "alice" : "bob", i % 2 ? "alice-password" : "bob-password") ==
		    AUTH_RESULT_OK)
			__atomic_add_fetch(&many_ok, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void
test_helper(void)
{
	const char *top = getenv("top_builddir");
	char helper[512], dir[64], path[600], cmd[700];
	struct auth_client *c = NULL;
	pthread_t t[8];
	long pid;
	FILE *f;
	int i;

	snprintf(helper, sizeof(helper), "%s/auth/helper/postie-auth", top ? top : ".");
	if (access("/usr/lib/x86_64-linux-gnu/libpam_wrapper.so", R_OK) != 0) {
		printf("ok %d # SKIP pam_wrapper is not installed\n", ++tap_count);
		return;
	}
	snprintf(dir, sizeof(dir), "/tmp/postie-test-auth-XXXXXX");
	if (!mkdtemp(dir))
		return;
	snprintf(path, sizeof(path), "%s/passdb", dir);
	f = fopen(path, "w");
	fputs("alice:alice-password:postie\nbob:bob-password:postie\nlocky:locky-password:locked\n", f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/postie", dir);
	f = fopen(path, "w");
	fprintf(f, "auth required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so passdb=%s/passdb\n"
	    "account required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so passdb=%s/passdb\n", dir, dir);
	fclose(f);
	snprintf(path, sizeof(path), "%s/locked", dir);
	f = fopen(path, "w");	/* good password, but the account stack refuses: a locked account */
	fprintf(f, "auth required /usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so passdb=%s/passdb\n"
	    "account required /usr/lib/x86_64-linux-gnu/security/pam_deny.so\n", dir);
	fclose(f);
	snprintf(path, sizeof(path), "%s/other", dir);
	f = fopen(path, "w");	/* PAM's fallback service: refuse */
	fputs("auth required /usr/lib/x86_64-linux-gnu/security/pam_deny.so\n"
	    "account required /usr/lib/x86_64-linux-gnu/security/pam_deny.so\n", f);
	fclose(f);
	/* the helper inherits these; this (already running) test process is not affected */
	setenv("PAM_WRAPPER", "1", 1);
	setenv("PAM_WRAPPER_SERVICE_DIR", dir, 1);
	setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libpam_wrapper.so", 1);
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);

	CHECK(auth_client_start(helper, true, &c) == 0 && c);
	if (!c)
		return;
	CHECK(ask(c, "postie", "alice", "alice-password") == AUTH_RESULT_OK);
	CHECK(ask(c, "postie", "alice", "wrong") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "postie", "mallory", "x") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "locked", "locky", "locky-password") == AUTH_RESULT_FAIL);
	CHECK(ask(c, "postie", "bad\x01login", "x") == AUTH_RESULT_FAIL);	/* refused before the helper */

	many_client = c;
	for (i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, many, NULL);
	for (i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(many_ok == 80);

	/* the helper dies: pending requests fail temporarily, then it is back */
	pid = auth_client_helper_pid(c);
	CHECK(pid > 0 && kill((pid_t)pid, SIGKILL) == 0);
	for (i = 0; i < 100 && auth_client_helper_pid(c) == pid; i++)
		usleep(10000);
	CHECK(ask(c, "postie", "alice", "alice-password") == AUTH_RESULT_TEMPFAIL ||
	    auth_client_helper_pid(c) != pid);
	for (i = 0; i < 300 && auth_client_helper_pid(c) <= 0; i++)
		usleep(10000);
	CHECK(auth_client_helper_pid(c) > 0 && auth_client_helper_pid(c) != pid);
	CHECK(ask(c, "postie", "alice", "alice-password") == AUTH_RESULT_OK);
	auth_client_stop(c);
	unsetenv("LD_PRELOAD");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

int
main(void)
{
	log_open("test", true, LOG_LEVEL_CRIT);
	test_proto();
	test_sasl();
	test_throttle();
	test_helper();
	return tap_done();
}
