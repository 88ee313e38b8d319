# postied: the network process
noinst_LIBRARIES += server/libserver.a
server_libserver_a_SOURCES = \
	server/worker.c server/worker.h \
	server/conn.c server/conn.h \
	server/listener.c server/listener.h \
	server/privdrop.c server/privdrop.h \
	server/smtp/session.c server/smtp/session.h \
	server/pop3/session.c server/pop3/session.h
server_libserver_a_CFLAGS = $(AM_CFLAGS)

sbin_PROGRAMS += server/postied
server_postied_SOURCES = server/main.c
server_postied_LDADD = server/libserver.a server/libtls.a server/core/libconf.a \
	server/core/libcore.a $(GNUTLS_LIBS) $(LIBCONFIG_LIBS) $(PTHREAD_LIBS)
server_postied_CFLAGS = $(AM_CFLAGS) $(PTHREAD_CFLAGS)
