/*
 * test_notify: server/notify.c speaks the sd_notify datagram protocol to a
 * socket we bind ourselves, on a path and in the abstract namespace, and does
 * nothing without NOTIFY_SOCKET.
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/err.h"
#include "server/notify.h"
#include "tap.h"
#include "testlib.h"

/* bind a datagram socket on name ("/path" or "@abstract") */
static int
bind_dgram(const char *name)
{
	struct sockaddr_un sa;
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		return -1;
	return fd;
}

/* the next datagram, or "" when none is waiting */
static const char *
next(int fd)
{
	static char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int
main(void)
{
	char dir[TESTLIB_DIR_MAX], path[128], abstract[64];
	const char *m;
	unsigned long long usec;
	int fd, afd;

	if (!testlib_tmpdir("postie-notify", dir, sizeof(dir)))
		return 1;
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = bind_dgram(path);
	CHECK(fd >= 0);

	unsetenv("NOTIFY_SOCKET");
	CHECK(notify_ready() == 0);
	CHECK(strcmp(next(fd), "") == 0);

	setenv("NOTIFY_SOCKET", path, 1);
	CHECK(notify_ready() == 0);
	CHECK_MSG(strcmp(next(fd), "READY=1\nSTATUS=serving") == 0, "READY=1 on a path socket");
	CHECK(notify_reloading() == 0);
	m = next(fd);
	CHECK_MSG(strncmp(m, "RELOADING=1\n", 12) == 0, "RELOADING=1 first");
	m = strstr(m, "MONOTONIC_USEC=");
	CHECK_MSG(m && sscanf(m, "MONOTONIC_USEC=%llu", &usec) == 1 && usec > 0, "MONOTONIC_USEC given");
	CHECK(notify_stopping() == 0);
	CHECK(strcmp(next(fd), "STOPPING=1\nSTATUS=stopping") == 0);

	snprintf(abstract, sizeof(abstract), "@postie-test-notify-%ld", (long)getpid());
	afd = bind_dgram(abstract);
	CHECK(afd >= 0);
	setenv("NOTIFY_SOCKET", abstract, 1);
	CHECK(notify_send("STATUS=x") == 0);
	CHECK_MSG(strcmp(next(afd), "STATUS=x") == 0, "abstract socket");

	setenv("NOTIFY_SOCKET", "relative/name", 1);
	CHECK(notify_ready() == ERR_CONFIG);
	close(fd);
	unlink(path);
	setenv("NOTIFY_SOCKET", path, 1);	/* nobody listens there any more */
	CHECK(notify_ready() == ERR_IO);

	close(afd);
	testlib_rmtree(dir);
	return tap_done();
}
