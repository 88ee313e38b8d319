/*
 * postie-seed: test fixture. Delivers a file as a message to a login in a
 * store (while postied runs), so POP3 tests do not depend on SMTP.
 *   postie-seed STORE_PATH LOGIN FILE [COUNT]
 * COUNT copies go to the writer a window at a time (testlib_deliver_copies),
 * so they share commits:
 * a test can fill a mailbox with tens of thousands of messages in seconds.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/store.h"
#include "testlib.h"
#include "core/compat.h"

int
main(int argc, char **argv)
{
	struct store_opts o = { NULL, 0, 0, false };
	struct store *st;
	struct stat sb;
	long count = argc > 4 ? strtol(argv[4], NULL, 10) : 1;
	int fd, rc;

	if (argc < 4 || count < 1) {
		fprintf(stderr, "usage: postie-seed STORE_PATH LOGIN FILE [COUNT]\n");
		return 2;
	}
	log_open("postie-seed", true, LOG_LEVEL_WARN);
	o.path = argv[1];
	fd = open(argv[3], O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || store_open(&o, &st)) {
		fprintf(stderr, "postie-seed: cannot open %s or %s\n", argv[3], argv[1]);
		return 1;
	}
	rc = testlib_deliver_copies(st, argv[2], NULL, fd, (uint64_t)sb.st_size, (size_t)count);
	if (rc)
		fprintf(stderr, "postie-seed: %s\n", err_str(rc));
	store_close(st);
	close(fd);
	return rc ? 1 : 0;
}
