/*
 * tickets: the session ticket key file both instances read (format in
 * docs/control.md). Both instances must hold the same keys in the same
 * order, or a client resuming after a flip lands on an instance that cannot
 * decrypt its ticket and pays a full handshake. The supervisor is the only
 * writer; it writes a temporary file and renames it over the old one so an
 * instance never reads a half-written file, then asks both to re-read it.
 *
 * With proxy.user set the instances re-read the file after their privilege
 * drop, so the file is root's, group the proxy's group, mode 0640 (readable,
 * not writable, by the proxy), and every directory above it must let that
 * group through: sv_tickets_prepare() gives the state directory group
 * search permission (0710, no listing) and checks the whole path.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/privs.h"
#include "supervisor/sv.h"

/* base64 of 80 bytes is 108 characters. */
#define B64_LEN 108

static int key_line_valid(const char *line, size_t len)
{
	unsigned char raw[B64_LEN];

	if (len != B64_LEN)
		return 0;
	/* EVP_DecodeBlock counts the padding: 80 bytes come back as 81. */
	return line[len - 1] == '=' && line[len - 2] != '=' &&
	       EVP_DecodeBlock(raw, (const unsigned char *)line, (int)len) == 81;
}

/* Reads up to SV_TICKET_KEYS valid lines into lines[]; returns the count or
 * -1 if the file cannot be read. A malformed line makes the file invalid. */
static int read_keys(const char *path, char lines[SV_TICKET_KEYS][B64_LEN + 1])
{
	char buf[1024];
	FILE *f = fopen(path, "re");
	int n = 0, bad = 0;

	if (f == NULL)
		return -1;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		size_t len = strcspn(buf, "\r\n");

		if (len == 0)
			continue;
		if (n >= SV_TICKET_KEYS || !key_line_valid(buf, len)) {
			bad = 1;
			continue;
		}
		memcpy(lines[n], buf, len);
		lines[n][len] = '\0';
		n++;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	fclose(f);
	return bad ? 0 : n;
}

static int new_key(char out[B64_LEN + 1], char *err, size_t errlen)
{
	unsigned char raw[SV_TICKET_KEY_LEN];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "RAND_bytes failed: no entropy for a ticket key");
		return -1;
	}
	EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

/* Whether uid/gid (no supplementary groups: the proxy drops them) may
 * search directory st. */
static int may_search(const struct stat *st, uid_t uid, gid_t gid)
{
	if (uid == 0)
		return 1;
	if (st->st_uid == uid)
		return (st->st_mode & S_IXUSR) != 0;
	if (st->st_gid == gid)
		return (st->st_mode & S_IXGRP) != 0;
	return (st->st_mode & S_IXOTH) != 0;
}

int sv_tickets_prepare(const char *path, const char *state_dir, const char *user, const char *group,
                       char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX], sd[PATH_MAX], real[PATH_MAX];
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (user == NULL || user[0] == '\0')
		return 0;
	if (priv_proxy_ids(user, group, &uid, &gid, err, errlen) < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(tmp));
	/* The state directory is ours: the proxy's group may search it (and
	 * so open the files it is meant to), not list it. */
	if (realpath(dir, real) != NULL && realpath(state_dir, sd) != NULL &&
	    strcmp(real, sd) == 0 && stat(sd, &st) == 0 && !may_search(&st, uid, gid)) {
		if (chown(sd, (uid_t)-1, gid) < 0 ||
		    chmod(sd, (st.st_mode & 07707) | S_IXGRP) < 0) {
			snprintf(err, errlen, "%s: cannot let group %u search it: %s", sd,
			         (unsigned)gid, strerror(errno));
			return -1;
		}
		log_info("ticket keys: %s is now group %u, mode %04o, so that proxy.user %s can "
		         "reach %s",
		         sd, (unsigned)gid, (unsigned)((st.st_mode & 07707) | S_IXGRP), user, path);
	}
	/* Every directory from the root down to the file's. */
	if (realpath(dir, real) == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	/* A file written by an earlier version (the proxy user's, 0600) or
	 * by hand: the supervisor is its only writer. */
	if (stat(path, &st) == 0 && (st.st_gid != gid || (st.st_mode & 0777) != 0640) &&
	    (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0640) < 0)) {
		snprintf(err, errlen, "%s: cannot give group %u read access: %s", path,
		         (unsigned)gid, strerror(errno));
		return -1;
	}
	for (char *p = real;;) {
		char save;

		p = strchr(p + 1, '/');
		save = p != NULL ? *p : '\0';
		if (p != NULL)
			*p = '\0';
		if (stat(real[0] != '\0' ? real : "/", &st) == 0 && !may_search(&st, uid, gid)) {
			snprintf(err, errlen,
			         "%s (mode %04o, uid %u, gid %u) does not let proxy.user %s reach "
			         "%s: the instances cannot re-read rotated ticket keys",
			         real[0] != '\0' ? real : "/", (unsigned)(st.st_mode & 07777),
			         (unsigned)st.st_uid, (unsigned)st.st_gid, user, path);
			return -1;
		}
		if (p == NULL)
			break;
		*p = save;
	}
	return 0;
}

static int write_keys(const char *path, const char *user, const char *group,
                      char lines[][B64_LEN + 1], int n, char *err, size_t errlen)
{
	char tmp[PATH_MAX + 16];
	int fd, rc = -1;
	uid_t uid;
	gid_t gid;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	/* The proxies drop privileges after start and re-read the file on
	 * reload-tickets: their group may read it, nobody else. */
	if (user != NULL && user[0] != '\0') {
		if (priv_proxy_ids(user, group, &uid, &gid, err, errlen) < 0)
			goto out;
		if (fchown(fd, (uid_t)-1, gid) < 0 || fchmod(fd, 0640) < 0) {
			snprintf(err, errlen, "%s: cannot give group %u read access: %s", tmp,
			         (unsigned)gid, strerror(errno));
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		if (write(fd, lines[i], B64_LEN) != B64_LEN || write(fd, "\n", 1) != 1) {
			snprintf(err, errlen, "%s: write: %s", tmp, strerror(errno));
			goto out;
		}
	}
	if (fsync(fd) < 0) {
		snprintf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0) {
		snprintf(err, errlen, "rename %s to %s: %s", tmp, path, strerror(errno));
		rc = -1;
	}
	if (rc < 0)
		(void)unlink(tmp);
	return rc;
}

int sv_tickets_count(const char *path)
{
	char lines[SV_TICKET_KEYS][B64_LEN + 1];
	int n = read_keys(path, lines);

	OPENSSL_cleanse(lines, sizeof(lines));
	return n;
}

int sv_tickets_ensure(const char *path, const char *user, const char *group, char *err,
                      size_t errlen)
{
	char lines[SV_TICKET_KEYS][B64_LEN + 1];
	int rc;

	if (sv_tickets_count(path) == SV_TICKET_KEYS)
		return 0;
	for (int i = 0; i < SV_TICKET_KEYS; i++)
		if (new_key(lines[i], err, errlen) < 0)
			return -1;
	rc = write_keys(path, user, group, lines, SV_TICKET_KEYS, err, errlen);
	OPENSSL_cleanse(lines, sizeof(lines));
	return rc < 0 ? -1 : 1;
}

int sv_tickets_rotate(const char *path, const char *user, const char *group, char *err,
                      size_t errlen)
{
	char lines[SV_TICKET_KEYS][B64_LEN + 1];
	int n = read_keys(path, lines), rc;

	if (n != SV_TICKET_KEYS) {
		OPENSSL_cleanse(lines, sizeof(lines));
		return sv_tickets_ensure(path, user, group, err, errlen) < 0 ? -1 : 0;
	}
	/* Oldest first: drop line 0, append a fresh key. The fresh key is
	 * decrypt-only everywhere until the next rotation (docs/control.md). */
	memmove(lines[0], lines[1], sizeof(lines[0]) * (SV_TICKET_KEYS - 1));
	if (new_key(lines[SV_TICKET_KEYS - 1], err, errlen) < 0) {
		OPENSSL_cleanse(lines, sizeof(lines));
		return -1;
	}
	rc = write_keys(path, user, group, lines, SV_TICKET_KEYS, err, errlen);
	OPENSSL_cleanse(lines, sizeof(lines));
	return rc;
}
