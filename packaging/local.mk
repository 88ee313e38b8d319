# packaging: the default configuration and its man page
man_MANS += packaging/postie.conf.5
EXTRA_DIST += packaging/postie.conf packaging/postie.conf.5
