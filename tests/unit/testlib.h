/*
 * testlib.h: what the unit tests and fuzz targets share, in one place:
 * temporary directories, small files, looking into replies, and a
 * temporary store (testlib_store.c). Script runners for the protocol
 * engines are in fake_conn.h. Built as tests/unit/libtesthelp.a with
 * fake_conn.c; each file is one object, so a test links only what it uses
 * (testlib.o needs libc only, testlib_store.o the store).
 *
 * Single-threaded test code: nothing here takes a lock.
 */
#ifndef POSTIE_TESTLIB_H
#define POSTIE_TESTLIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TESTLIB_DIR_MAX 64	/* "/tmp/" + a short name + "-XXXXXX" */

/*
 * Make a fresh directory /tmp/NAME-XXXXXX (mkdtemp) into dir_out (cap
 * bytes). False when it cannot be made or the name does not fit.
 */
bool testlib_tmpdir(const char *name, char *dir_out, size_t cap);

/* Remove dir and everything in it; a failure is a TAP comment, not a test failure. */
void testlib_rmtree(const char *dir);

/* Write a file (truncating), then chmod it to mode. False on any failure. */
bool testlib_write_file(const char *path, int mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool testlib_vwrite_file(const char *path, int mode, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * The whole of a file, malloc'd and NUL-terminated (free() it), its length
 * in *len_out when not NULL. NULL when it cannot be read.
 */
char *testlib_read_file(const char *path, size_t *len_out);

/* Does some line of the file (lines up to 4 KiB) contain needle? False when unreadable. */
bool testlib_file_contains(const char *path, const char *needle);

/* Replies and text: is want in out (NULL out: no), how many times is what in out. */
bool testlib_has(const char *out, const char *want);
int testlib_count(const char *out, const char *what);

/* ------------------------------------------------------------ temporary store */

struct store;

/* A store in a fresh directory of its own; testlib_store_close removes both. */
struct testlib_store {
	char dir[TESTLIB_DIR_MAX];
	struct store *st;
};

/*
 * Open a store in a new /tmp/NAME-XXXXXX with the given map size and
 * ceiling (0: the store's defaults), and add each login of logins (a
 * NULL-terminated list, may be NULL) with no quota. Returns 0, or the
 * store's error (ERR_IO when the directory cannot be made); on failure
 * nothing is left open and ts->st is NULL.
 */
int testlib_store_open(struct testlib_store *ts, const char *name, uint64_t map, uint64_t map_max,
    const char *const *logins);

/* Close the store (when open) and remove its directory. */
void testlib_store_close(struct testlib_store *ts);

/*
 * Deliver text (no prefix, no queue entry) to one login through the
 * writer, waiting for the commit. Returns store_submit_wait()'s code.
 */
int testlib_deliver(struct store *st, const char *login, const char *text);

/*
 * count copies of one message for login, TESTLIB_COPIES_WINDOW requests in
 * flight at a time so that they share group commits: the text when fd < 0,
 * else fd_len octets read from fd (with pread: the copies share it).
 * Returns 0 or the first error.
 */
#define TESTLIB_COPIES_WINDOW 256
int testlib_deliver_copies(struct store *st, const char *login, const char *text, int fd, uint64_t fd_len,
    size_t count);

#endif
