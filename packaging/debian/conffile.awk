# packaging/postie.conf -> /etc/postie/postie.conf for the Debian package:
# the "hostname" and "domains" settings (and the comments just above them)
# become an @include of /etc/postie/domains.conf, written at installation.
/^# The name in the greeting/ { skip = 1 }
skip && /^domains[ \t]*=/ {
	skip = 0
	print "# The host name (greeting, Received:, bounces) and the local domains are"
	print "# in /etc/postie/domains.conf, written at installation from /etc/mailname"
	print "# (or the host name) and kept on upgrades: change them there."
	print "@include \"/etc/postie/domains.conf\""
	next
}
!skip { print }
