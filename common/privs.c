/*
 * privs: see privs.h. Linux keeps credentials per thread; the C library
 * makes setuid() and friends change every thread at once (POSIX wants a
 * process-wide identity), so a single thread drops itself with the system
 * calls directly. docs/internals.md ("Per-thread credentials") has why this
 * is safe for the gate.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/privs.h"

int priv_proxy_ids(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
                   size_t errlen)
{
	struct passwd *pw;

	if (user == NULL || user[0] == '\0')
		return 1;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "proxy.user: no user '%s'", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (group != NULL && group[0] != '\0') {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			snprintf(err, errlen, "proxy.group: no group '%s'", group);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

int priv_share(const char *path, gid_t gid, mode_t group_bits, char *err, size_t errlen)
{
	struct stat st;

	if (lstat(path, &st) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (st.st_gid != gid && lchown(path, (uid_t)-1, gid) != 0) {
		snprintf(err, errlen, "%s: cannot give it to group %u: %s", path, (unsigned)gid,
		         strerror(errno));
		return -1;
	}
	/* chown clears set-id bits, and a link has no mode of its own. */
	if (!S_ISLNK(st.st_mode) && (st.st_mode & group_bits) != group_bits &&
	    chmod(path, (st.st_mode & 07777) | group_bits) != 0) {
		snprintf(err, errlen, "%s: cannot open it to group %u: %s", path, (unsigned)gid,
		         strerror(errno));
		return -1;
	}
	return 0;
}

int priv_thread_drop(uid_t uid, gid_t gid)
{
	/* The 32-bit ABIs have 16-bit ids in the plain calls. */
#ifdef SYS_setresgid32
	const long nr_groups = SYS_setgroups32, nr_gid = SYS_setresgid32, nr_uid = SYS_setresuid32;
#else
	const long nr_groups = SYS_setgroups, nr_gid = SYS_setresgid, nr_uid = SYS_setresuid;
#endif

	/* Groups first: once the uid is gone, so is the right to set them. */
	if (syscall(nr_groups, 1, &gid) != 0 || syscall(nr_gid, gid, gid, gid) != 0 ||
	    syscall(nr_uid, uid, uid, uid) != 0)
		return -1;
	return 0;
}

int priv_thread_drop_caps(void)
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -1;
}
