/*
 * postie-seed: test fixture. Delivers a file as a message to a login in a
 * store (while postied runs), so POP3 tests do not depend on SMTP.
 *   postie-seed STORE_PATH LOGIN FILE [COUNT]
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "storage/store.h"
#include "core/compat.h"

int
main(int argc, char **argv)
{
	struct store_opts o = { NULL, 0, 0, false };
	const char *logins[1];
	struct store *st;
	struct stat sb;
	long count = argc > 4 ? strtol(argv[4], NULL, 10) : 1, i;
	int fd, rc = 0;

	if (argc < 4 || count < 1) {
		fprintf(stderr, "usage: postie-seed STORE_PATH LOGIN FILE [COUNT]\n");
		return 2;
	}
	log_open("postie-seed", true, LOG_LEVEL_WARN);
	o.path = argv[1];
	logins[0] = argv[2];
	fd = open(argv[3], O_RDONLY);
	if (fd < 0 || fstat(fd, &sb) < 0 || store_open(&o, &st)) {
		fprintf(stderr, "postie-seed: cannot open %s or %s\n", argv[3], argv[1]);
		return 1;
	}
	for (i = 0; i < count && !rc; i++) {
		struct store_req r = { .op = STORE_OP_DELIVER };

		r.u.deliver.fd = fd;
		r.u.deliver.fd_len = (uint64_t)sb.st_size;
		r.u.deliver.logins = logins;
		r.u.deliver.nlogins = 1;
		r.u.deliver.now = (uint64_t)time(NULL);
		rc = store_submit_wait(st, &r);
	}
	if (rc)
		fprintf(stderr, "postie-seed: %s\n", err_str(rc));
	store_close(st);
	close(fd);
	return rc ? 1 : 0;
}
