/*
 * postied: options, configuration, listeners, privilege drop, worker
 * threads, and the main thread's signal loop (SIGTERM/SIGINT stop,
 * SIGHUP reload). The order of start-up is STYLE.md section 3.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth/client.h"
#include "conn.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "server/delivery/runner.h"
#include "listener.h"
#include "logincache.h"
#include "notify.h"
#include "core/privdrop.h"
#include "server.h"
#include "storage/store.h"
#include "server/dkim_keys.h"
#include "tls.h"
#include "worker.h"
#include "core/compat.h"

/* How long a stopping server waits for sessions that are finishing work. */
#define STOP_GRACE_MS 10000

/*
 * The exit status after a clean stop: 0, or EX_TEMPFAIL (75) when the root
 * PAM helper died after the privilege drop and cannot be started again with
 * root (auth/client.h); postie.service restarts on it (RestartForceExitStatus).
 */
static volatile sig_atomic_t stop_status;

/* On the auth client's reader thread: stop as on SIGTERM, then exit 75. */
static void
on_helper_lost(void)
{
	stop_status = EX_TEMPFAIL;
	kill(getpid(), SIGTERM);	/* blocked in every thread: the main thread's signalfd reads it */
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: postied [-c FILE] [-f] [--check-config] [--version] [--help]\n"
	    "  -c FILE          configuration file (default %s)\n"
	    "  -f               stay in the foreground and log to stderr\n"
	    "  --check-config   validate the configuration, print every problem, exit\n"
	    "  --version        print the version and exit\n",
	    CONFIG_DEFAULT_PATH);
}

/* Load TLS credentials from cfg and make them current. 0 or ERR_TLS. */
static int
load_tls(const struct config *cfg)
{
	struct tls_creds *creds;
	int rc = tls_creds_server_load(cfg->tls.certificate, cfg->tls.key, cfg->tls.priority, &creds);

	if (rc) {
		log_msg(LOG_LEVEL_ERR, "event=tls_load certificate=\"%s\" key=\"%s\" error=\"%s\"",
		    cfg->tls.certificate, cfg->tls.key, err_str(rc));
		return rc;
	}
	tls_creds_set_current(creds);
	return 0;
}

/*
 * Load the DKIM keys under dkim.directory and make them current (a bad key
 * file is logged and skipped inside). At start, each local domain without
 * a key is said once: its mail leaves unsigned.
 */
static void
load_dkim(const struct config *cfg, bool at_start)
{
	struct dkim_keyset *ks;
	size_t i;

	dkim_keyset_load(cfg->dkim.directory, &ks);
	for (i = 0; at_start && i < cfg->ndomains; i++)
		if (!dkim_keyset_find(ks, cfg->domains[i], TLS_KEY_ED25519) &&
		    !dkim_keyset_find(ks, cfg->domains[i], TLS_KEY_RSA))
			log_msg(LOG_LEVEL_NOTICE, "event=dkim_no_key domain=%s directory=\"%s\"", cfg->domains[i],
			    cfg->dkim.directory);
	dkim_keys_set_current(ks);
}

/* Every connection is a descriptor: take all the kernel allows this process. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_msg(LOG_LEVEL_WARN, "event=rlimit error=\"%s\"", strerror(errno));
	}
}

/* After the drop, so every store file belongs to `user` (STYLE 3). */
static int
open_store(const struct config *cfg, struct store **out)
{
	struct store_opts so = { cfg->storage.path, cfg->storage.map_size, 0, false };
	int rc = store_open(&so, out);

	if (rc) {
		fprintf(stderr, "postied: cannot open the store at %s: %s\n", cfg->storage.path,
		    rc == ERR_CORRUPT ? "not a postie store or damaged (refusing to touch it)" : err_str(rc));
		log_msg(LOG_LEVEL_ERR, "event=store_open path=\"%s\" error=\"%s\"", cfg->storage.path, err_str(rc));
	}
	return rc;
}

/*
 * One postied a store: an flock on the store directory itself, which root
 * can open without writing into a directory that belongs to `user` (the
 * unit's capabilities include no DAC override), held for the process's
 * life. The kernel drops it when the last thread of the holder is gone,
 * zombie or not, so a start right after kill -9 works. The descriptor, or
 * -1 after saying why on stderr and in the log.
 */
static int
lock_store(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		bool held = fd >= 0 && e == EWOULDBLOCK;

		fprintf(stderr, "postied: %s the store at %s%s%s\n", held ? "another postied already serves" :
		    "cannot lock", path, held ? "; stop it first" : ": ", held ? "" : strerror(e));
		log_msg(LOG_LEVEL_ERR, "event=lock path=\"%s\" error=\"%s\"", path,
		    held ? "held by another postied" : strerror(e));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/*
 * pid_file: created, locked (flock) and given our pid, as root before the
 * drop (its directory may be root's), kept open for the process's life. A
 * second postied with the same pid_file refuses and names the first.
 */
static int
lock_pid_file(const char *path)
{
	char line[32];
	int fd, len;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		fprintf(stderr, "postied: cannot open the pid file %s: %s\n", path, strerror(errno));
		log_msg(LOG_LEVEL_ERR, "event=lock path=\"%s\" error=\"%s\"", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = errno == EWOULDBLOCK ? pread(fd, line, sizeof(line) - 1, 0) : -1;

		line[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "postied: another postied (pid %ld) holds the pid file %s; stop it first\n",
		    strtol(line, NULL, 10), path);
		log_msg(LOG_LEVEL_ERR, "event=lock path=\"%s\" error=\"held by pid %ld\"", path, strtol(line, NULL, 10));
		close(fd);
		return -1;
	}
	len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, line, (size_t)len, 0) != len)
		log_msg(LOG_LEVEL_ERR, "event=lock path=\"%s\" error=\"%s\"", path, strerror(errno));
	return fd;
}

/* SIGHUP: a new configuration and new certificates, or the old ones kept. */
static void
reload(const char *path)
{
	struct config *next = NULL, *cur = config_get();
	struct tls_creds *relay_creds = NULL;
	int rc = config_load(path, &next, config_report_stderr, NULL);

	if (rc) {
		log_msg(LOG_LEVEL_ERR, "event=reload result=fail error=\"%s\" keeping=old", err_str(rc));
		config_unref(cur);
		return;
	}
	if (runner_tls_load(next, &relay_creds) || load_tls(next)) {
		log_msg(LOG_LEVEL_ERR, "event=reload result=fail error=\"TLS credentials\" keeping=old");
		tls_creds_unref(relay_creds);
		config_unref(next);
		config_unref(cur);
		return;
	}
	if (strcmp(next->user, cur->user) != 0 || config_threads(next) != config_threads(cur) ||
	    next->nlisteners != cur->nlisteners)
		log_msg(LOG_LEVEL_WARN, "event=reload note=\"listeners, user and threads change only on restart\"");
	/* the root helper was given its PAM service at start and keeps it (auth/client.h) */
	if (strcmp(next->auth.pam_service, cur->auth.pam_service) != 0)
		log_msg(LOG_LEVEL_WARN, "event=reload note=\"auth.pam_service changes only on restart\"");
	log_set_level((enum log_level)next->log_level);
	logincache_flush();
	runner_tls_set(relay_creds);	/* new outbound connections verify with it */
	load_dkim(next, false);		/* messages accepted from now on are signed with these */
	config_set(next);
	config_unref(cur);
	log_msg(LOG_LEVEL_NOTICE, "event=reload result=ok");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "check-config", no_argument, NULL, 'C' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = CONFIG_DEFAULT_PATH;
	bool foreground = false, check_only = false, as_root = geteuid() == 0;
	static struct server srv;	/* what every connection shares (server.h) */
	struct listener *listeners = NULL;
	struct config *cfg = NULL;
	size_t nlisteners = 0;
	sigset_t sigs;
	int opt, sfd, rc, status = 1, store_lock_fd = -1, pid_fd = -1;

	while ((opt = getopt_long(argc, argv, "c:fh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 'f': foreground = true; break;
		case 'C': check_only = true; break;
		case 'V': printf("postied %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	rc = config_load(path, &cfg, config_report_stderr, NULL);
	if (check_only) {
		if (!rc)
			printf("%s: configuration OK\n", path);
		config_unref(cfg);
		return rc ? 1 : 0;
	}
	if (rc)
		return 1;
	log_open("postied", foreground, (enum log_level)cfg->log_level);

	/* signals go to the main thread's signalfd; worker threads block them all */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0) {
		log_msg(LOG_LEVEL_CRIT, "event=signalfd error=\"%s\"", strerror(errno));
		return 1;
	}

	raise_fd_limit();
	server_init(&srv);
	/* one postied a store, decided before anything is bound or started */
	if (privdrop_own_dir(cfg->storage.path, cfg->user, as_root))
		goto out;
	if ((store_lock_fd = lock_store(cfg->storage.path)) < 0)
		goto out;
	if (*cfg->pid_file && (pid_fd = lock_pid_file(cfg->pid_file)) < 0)
		goto out;
	if (listener_open_all(cfg, &listeners, &nlisteners))
		goto out;
	/* the PAM helper keeps root: it is started before the drop */
	if (auth_client_start(cfg->auth.helper, cfg->auth.pam_service, foreground, &srv.auth)) {
		fprintf(stderr, "postied: cannot start the PAM helper %s\n", cfg->auth.helper);
		goto out;
	}
	auth_client_set_on_lost(srv.auth, on_helper_lost);
	if (as_root && privdrop_to(cfg->user))
		goto out;
	if (tls_global_init() || load_tls(cfg) || logincache_init())
		goto out;
	load_dkim(cfg, true);	/* after the drop: the key files are readable by user's group */
	if (open_store(cfg, &srv.store))
		goto out;
	config_set(config_ref(cfg));
	if (runner_start(srv.store))
		goto out;
	srv.queued = runner_kick;
	if (worker_pool_start(&srv, config_threads(cfg), listeners, nlisteners))
		goto out;
	log_msg(LOG_LEVEL_NOTICE, "event=ready version=%s threads=%u listeners=%zu uid=%u",
	    PACKAGE_VERSION, config_threads(cfg), nlisteners, (unsigned)geteuid());
	notify_ready();

	for (;;) {
		struct signalfd_siginfo si;
		ssize_t n = read(sfd, &si, sizeof(si));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != sizeof(si)) {
			log_msg(LOG_LEVEL_CRIT, "event=signalfd error=\"%s\"", strerror(errno));
			break;
		}
		if (si.ssi_signo == SIGHUP) {
			notify_reloading();
			reload(path);
			notify_ready();
			continue;
		}
		log_msg(LOG_LEVEL_NOTICE, "event=stopping signal=%s",
		    si.ssi_signo == SIGTERM ? "TERM" : "INT");
		notify_stopping();
		break;
	}
	worker_pool_stop(STOP_GRACE_MS);
	srv.queued = NULL;
	runner_stop();	/* deliveries end at their next step; their results are committed */
	status = 0;
	log_msg(LOG_LEVEL_NOTICE, "event=stopped");
out:
	/* unlinked while still locked; may fail after the drop (a root-owned directory): the lock decides */
	if (pid_fd >= 0 && status == 0)
		unlink(cfg->pid_file);
	if (listeners)
		listener_close_all(listeners, nlisteners);
	auth_client_stop(srv.auth);
	srv.auth = NULL;
	runner_stop();
	/* after the workers: the writer answers what is queued before it stops */
	store_close(srv.store);
	srv.store = NULL;
	tls_creds_set_current(NULL);
	dkim_keys_set_current(NULL);
	config_set(NULL);
	config_unref(cfg);
	tls_global_deinit();
	close(sfd);
	if (pid_fd >= 0)
		close(pid_fd);
	if (store_lock_fd >= 0)
		close(store_lock_fd);
	return status ? status : stop_status;
}
