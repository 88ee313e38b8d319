#include <config.h>

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/compat.h"

int
privdrop_lookup(const char *user, uid_t *uid_out, gid_t *gid_out)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		log_msg(LOG_LEVEL_ERR, "event=privdrop user=\"%s\" error=\"no such user\"", user);
		return ERR_NOTFOUND;
	}
	*uid_out = pw->pw_uid;
	*gid_out = pw->pw_gid;
	return 0;
}

int
privdrop_to(const char *user)
{
	uid_t uid;
	gid_t gid;

	if (privdrop_lookup(user, &uid, &gid))
		return ERR_PERM;
	if (uid == 0) {
		log_msg(LOG_LEVEL_ERR, "event=privdrop user=\"%s\" error=\"user is root\"", user);
		return ERR_PERM;
	}
	if (initgroups(user, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=privdrop user=\"%s\" error=\"%s\"", user, strerror(errno));
		return ERR_PERM;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=privdrop error=\"no_new_privs: %s\"", strerror(errno));
		return ERR_PERM;
	}
	/* a drop that can be undone is no drop: prove it cannot */
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || getuid() != uid ||
	    geteuid() != uid || getgid() != gid || getegid() != gid) {
		log_msg(LOG_LEVEL_CRIT, "event=privdrop error=\"root could be regained\"");
		return ERR_PERM;
	}
	log_msg(LOG_LEVEL_INFO, "event=privdrop user=\"%s\" uid=%u gid=%u", user,
	    (unsigned)uid, (unsigned)gid);
	return 0;
}

int
privdrop_own_dir(const char *path, const char *user, bool as_root)
{
	uid_t uid;
	gid_t gid;

	if (mkdir(path, 0750) < 0 && errno != EEXIST) {
		log_msg(LOG_LEVEL_ERR, "event=store_dir path=\"%s\" error=\"%s\"", path, strerror(errno));
		return ERR_IO;
	}
	if (!as_root)
		return 0;
	if (privdrop_lookup(user, &uid, &gid))
		return ERR_CONFIG;
	if (chown(path, uid, gid) < 0) {
		log_msg(LOG_LEVEL_ERR, "event=store_dir path=\"%s\" error=\"chown: %s\"", path, strerror(errno));
		return ERR_IO;
	}
	return 0;
}
