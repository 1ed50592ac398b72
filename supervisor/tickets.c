/*
 * tickets: the session ticket key file both instances read (format in
 * docs/control.md). Both instances must hold the same keys in the same
 * order, or a client resuming after a flip lands on an instance that cannot
 * decrypt its ticket and pays a full handshake. The supervisor is the only
 * writer; it writes a temporary file and renames it over the old one so an
 * instance never reads a half-written file, then asks both to re-read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/log.h"
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

static int write_keys(const char *path, const char *user, char lines[][B64_LEN + 1], int n,
                      char *err, size_t errlen)
{
	char tmp[PATH_MAX + 16];
	int fd, rc = -1;

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
	 * reload-tickets, so it must belong to their user. */
	if (user != NULL && user[0] != '\0') {
		struct passwd *pw = getpwnam(user);

		if (pw != NULL && fchown(fd, pw->pw_uid, pw->pw_gid) < 0)
			log_warn("%s: chown to %s", tmp, user);
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

int sv_tickets_ensure(const char *path, const char *user, char *err, size_t errlen)
{
	char lines[SV_TICKET_KEYS][B64_LEN + 1];
	int rc;

	if (sv_tickets_count(path) == SV_TICKET_KEYS)
		return 0;
	for (int i = 0; i < SV_TICKET_KEYS; i++)
		if (new_key(lines[i], err, errlen) < 0)
			return -1;
	rc = write_keys(path, user, lines, SV_TICKET_KEYS, err, errlen);
	OPENSSL_cleanse(lines, sizeof(lines));
	return rc < 0 ? -1 : 1;
}

int sv_tickets_rotate(const char *path, const char *user, char *err, size_t errlen)
{
	char lines[SV_TICKET_KEYS][B64_LEN + 1];
	int n = read_keys(path, lines), rc;

	if (n != SV_TICKET_KEYS) {
		OPENSSL_cleanse(lines, sizeof(lines));
		return sv_tickets_ensure(path, user, err, errlen) < 0 ? -1 : 0;
	}
	/* Oldest first: drop line 0, append a fresh key. The fresh key is
	 * decrypt-only everywhere until the next rotation (docs/control.md). */
	memmove(lines[0], lines[1], sizeof(lines[0]) * (SV_TICKET_KEYS - 1));
	if (new_key(lines[SV_TICKET_KEYS - 1], err, errlen) < 0) {
		OPENSSL_cleanse(lines, sizeof(lines));
		return -1;
	}
	rc = write_keys(path, user, lines, SV_TICKET_KEYS, err, errlen);
	OPENSSL_cleanse(lines, sizeof(lines));
	return rc;
}
