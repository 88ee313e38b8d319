/*
 * notify.c: the sd_notify datagram protocol, the few lines postied needs of it
 * (see notify.h and sd_notify(3)).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "notify.h"

int
notify_send(const char *text)
{
	const char *name = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t nlen;
	ssize_t n;
	int fd, saved;

	if (!name || !*name)
		return 0;
	nlen = strlen(name);
	/* "/path" or "@name" (abstract namespace); anything else is not for us */
	if ((name[0] != '/' && name[0] != '@') || nlen >= sizeof(sa.sun_path)) {
		log_msg(LOG_LEVEL_WARN, "event=notify error=\"unusable NOTIFY_SOCKET\"");
		return ERR_CONFIG;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, nlen);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';	/* the abstract address is exactly nlen bytes */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + nlen + (name[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		saved = errno;
		log_msg(LOG_LEVEL_WARN, "event=notify error=\"socket: %s\"", strerror(saved));
		return ERR_IO;
	}
	/* a datagram socket: the whole text goes, or nothing */
	n = sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	saved = errno;
	close(fd);
	if (n < 0) {
		log_msg(LOG_LEVEL_WARN, "event=notify socket=\"%s\" error=\"%s\"", name, strerror(saved));
		return ERR_IO;
	}
	return 0;
}

int
notify_ready(void)
{
	return notify_send("READY=1\nSTATUS=serving");
}

int
notify_reloading(void)
{
	struct timespec ts;
	char text[96];

	/* systemd matches MONOTONIC_USEC against the time it sent SIGHUP */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(text, sizeof(text), "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	return notify_send(text);
}

int
notify_stopping(void)
{
	return notify_send("STOPPING=1\nSTATUS=stopping");
}
