/*
 * privs: the credentials of the instances after their drop (proxy.user,
 * proxy.group), for the processes that prepare files and sockets they must
 * reach (switchyardd, certsync), and the per-thread drop of the health gate.
 * docs/operations.md ("Users, groups and capabilities") has the whole picture.
 */
#ifndef SY_PRIVS_H
#define SY_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

/* Resolves proxy.user and proxy.group as switchyard-proxy applies them: the
 * user's uid, and proxy.group's gid or else the user's primary group.
 * Returns 1 when user is "" (the instances keep the credentials they were
 * started with; *uid and *gid are untouched), 0 when resolved, and -1 with
 * err naming the key when the user or the group does not exist. */
int priv_proxy_ids(const char *user, const char *group, uid_t *uid, gid_t *gid, char *err,
                   size_t errlen);

/* Makes group gid the group of path (the owner stays) and adds the group
 * permission bits group_bits (e.g. S_IXGRP: search only) to its mode, when
 * either is missing; lchown for a symbolic link. 0, or -1 with err naming
 * the path and the cause. */
int priv_share(const char *path, gid_t gid, mode_t group_bits, char *err, size_t errlen);

/* Drops the calling thread, and only it, to uid and gid with no
 * supplementary groups, through the raw system calls (glibc's wrappers would
 * change every thread of the process). Its capabilities go with uid 0. For a
 * thread that exits afterwards: it cannot come back. 0, or -1 with errno. */
int priv_thread_drop(uid_t uid, gid_t gid);

/* Clears every capability of the calling thread (effective, permitted,
 * inheritable), keeping its uid: for work that must not run privileged when
 * there is no user to drop to. 0, or -1 with errno. */
int priv_thread_drop_caps(void);

#endif
