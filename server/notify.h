/*
 * notify.h: service manager readiness notifications (systemd's sd_notify
 * protocol, without libsystemd).
 *
 * When postied runs under systemd with Type=notify (packaging/postie.service),
 * the environment variable NOTIFY_SOCKET names an AF_UNIX datagram socket
 * ("/path" or "@abstract"); each notification is one datagram of
 * newline-separated VAR=value assignments (sd_notify(3), "the documented
 * socket protocol"). Without NOTIFY_SOCKET every call does nothing and
 * returns 0, so development runs and tests are unaffected.
 *
 * Main thread only: the calls are made from main.c's start-up and signal loop.
 */
#ifndef POSTIE_NOTIFY_H
#define POSTIE_NOTIFY_H

/* Send one notification text (e.g. "READY=1\nSTATUS=serving"). 0, or
 * ERR_CONFIG for an unusable NOTIFY_SOCKET value, or ERR_IO; failures are logged. */
int notify_send(const char *text);

/* Every listener and worker thread is up. */
int notify_ready(void);
/* A SIGHUP reload begins: RELOADING=1 with MONOTONIC_USEC, as Type=notify-reload requires. */
int notify_reloading(void);
/* SIGTERM/SIGINT: the server is stopping. */
int notify_stopping(void);

#endif
