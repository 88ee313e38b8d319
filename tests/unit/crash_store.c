/*
 * crash_store: kill -9 during delivery, twenty times. A child process
 * delivers under load (several threads, many mailboxes) and reports each
 * delivery on a pipe only after its commit was acknowledged; the parent
 * kills it at a random moment, reopens the store, runs verify, and checks
 * that every acknowledged delivery is present exactly once.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/store.h"
#include "tap.h"
#include "testlib.h"

#define ROUNDS 20
#define MAILBOXES 16
#define THREADS 8
#define ACK_MAX 200000

static char dir[TESTLIB_DIR_MAX];
static int ack_fd;
static struct store *child_store;

struct ack {
	uint32_t round, serial;
	uint8_t mailbox;
};

static void
login_of(int i, char *out, size_t n)
{
	snprintf(out, n, "user%02d", i);
}

static struct store *
open_store(void)
{
	struct store_opts o = { dir, 4 << 20, 0, false };
	struct store *st = NULL;

	return store_open(&o, &st) ? NULL : st;
}

static void *
child_thread(void *p)
{
	uint32_t round = (uint32_t)(uintptr_t)p >> 8, t = (uint32_t)(uintptr_t)p & 0xff, i;
	unsigned seed = round * 131 + t;

	for (i = 0;; i++) {
		char login[16], text[128];
		struct ack a;

		a.round = round;
		a.serial = t << 24 | i;
		a.mailbox = (uint8_t)(rand_r(&seed) % MAILBOXES);
		login_of(a.mailbox, login, sizeof(login));
		snprintf(text, sizeof(text), "X-Id: %u-%u\r\n\r\nbody %u\r\n", a.round, a.serial, i);
		if (testlib_deliver(child_store, login, text) == 0)
			if (write(ack_fd, &a, sizeof(a)) != sizeof(a))	/* atomic: < PIPE_BUF */
				_exit(3);
	}
	return NULL;
}

static void __attribute__((noreturn))
child(uint32_t round)
{
	pthread_t t[THREADS];
	uintptr_t i;

	child_store = open_store();
	if (!child_store)
		_exit(2);
	for (i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, child_thread, (void *)(uintptr_t)(round << 8 | i));
	for (;;)
		pause();	/* until SIGKILL */
}

/* How many stored messages in mailbox carry "X-Id: round-serial". */
static int
count_in(struct store *st, int mailbox, uint32_t round, uint32_t serial)
{
	static struct store_msg *msgs[MAILBOXES];
	static size_t nmsgs[MAILBOXES];
	static char **ids[MAILBOXES];
	static uint32_t loaded_round = UINT32_MAX;
	char want[64];
	size_t i;
	int n = 0;

	if (loaded_round != round) {	/* read every mailbox once per round */
		for (i = 0; i < MAILBOXES; i++) {
			char login[16];
			size_t j;

			for (j = 0; j < nmsgs[i]; j++)
				free(ids[i][j]);
			free(ids[i]);
			free(msgs[i]);
			login_of((int)i, login, sizeof(login));
			store_mailbox_snapshot(st, login, &msgs[i], &nmsgs[i]);
			ids[i] = calloc(nmsgs[i] + 1, sizeof(char *));
			for (j = 0; j < nmsgs[i]; j++) {
				char buf[64];
				size_t got = 0;

				store_body_read(st, msgs[i][j].body_id, 0, buf, sizeof(buf) - 1, &got);
				buf[got] = '\0';
				buf[strcspn(buf, "\r")] = '\0';
				ids[i][j] = strdup(buf);
			}
		}
		loaded_round = round;
	}
	if (mailbox < 0) {	/* free everything */
		for (i = 0; i < MAILBOXES; i++) {
			size_t j;
			for (j = 0; j < nmsgs[i]; j++)
				free(ids[i][j]);
			free(ids[i]);
			free(msgs[i]);
			ids[i] = NULL;
			msgs[i] = NULL;
			nmsgs[i] = 0;
		}
		loaded_round = UINT32_MAX;
		return 0;
	}
	snprintf(want, sizeof(want), "X-Id: %u-%u", round, serial);
	for (i = 0; i < nmsgs[mailbox]; i++)
		n += strcmp(ids[mailbox][i], want) == 0;
	return n;
}

int
main(void)
{
	static struct ack acks[ACK_MAX];
	struct store *st;
	uint32_t round;
	unsigned seed = (unsigned)time(NULL);
	int i;

	log_open("crash", true, LOG_LEVEL_CRIT);
	if (!testlib_tmpdir("postie-crash", dir, sizeof(dir)))
		return 1;
	st = open_store();
	for (i = 0; i < MAILBOXES; i++) {
		char login[16];
		login_of(i, login, sizeof(login));
		store_user_add(st, login, 0);
	}
	store_close(st);
	printf("# seed %u\n", seed);

	for (round = 0; round < ROUNDS; round++) {
		int fds[2], status, missing = 0, doubled = 0;
		size_t nacks = 0;
		ssize_t r;
		pid_t pid;

		if (pipe(fds) < 0)
			return 1;
		pid = fork();
		if (pid == 0) {
			close(fds[0]);
			ack_fd = fds[1];
			child(round);
		}
		close(fds[1]);
		/* once the child delivers (a loaded machine may take a while to start it),
		   kill it at a random moment */
		alarm(60);
		if (read(fds[0], &acks[0], sizeof(acks[0])) == sizeof(acks[0]))
			nacks = 1;
		alarm(0);
		usleep((unsigned)rand_r(&seed) % 200000);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		while (nacks < ACK_MAX && (r = read(fds[0], &acks[nacks], sizeof(acks[0]))) == sizeof(acks[0]))
			nacks++;
		close(fds[0]);

		st = open_store();
		CHECK_MSG(st != NULL, "the store opens after kill -9");
		if (!st)
			break;
		CHECK_MSG(store_verify(st, NULL, NULL) == 0, "verify passes after kill -9");
		for (size_t k = 0; k < nacks; k++) {
			int n = count_in(st, acks[k].mailbox, acks[k].round, acks[k].serial);
			missing += n == 0;
			doubled += n > 1;
		}
		count_in(st, -1, 0, 0);
		printf("# round %u: %zu acknowledged deliveries\n", round, nacks);
		CHECK_MSG(WIFSIGNALED(status) && nacks > 0, "the child was delivering when killed");
		CHECK_MSG(missing == 0, "every acknowledged delivery is present");
		CHECK_MSG(doubled == 0, "none is present twice");
		store_close(st);
	}
	testlib_rmtree(dir);
	return tap_done();
}
