/*
 * cert_set: index sets (CERT_SET_FILE, cert.h). A directory with an index is
 * listed from the index alone: one read of one file instead of a readdir and
 * a stat per certificate, and the contents are opened from the blob
 * directory only when their blob differs from the previous store's. That
 * makes a reload of a 100,000-certificate set with one change cost one
 * file's parse plus a pass over 100,000 short lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certstore/cert_int.h"

/* The index is read whole; a set of 100,000 certificates takes about 8 MB,
 * so this bounds a hostile or corrupt file, not a real one. */
#define SET_MAX_BYTES (256u << 20)

/* A marker device number no file system hands out, so that an index
 * identity never equals a stat tuple. */
#define SET_DEV ((dev_t)-1)

/* Hex digit values plus one (0: not a hex digit): one load per character,
 * for 6.4 million characters in a reload of 100,000 names. */
static const unsigned char hexv[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static uint64_t fnv64(const char *s, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	return h;
}

/*
 * The identity of a blob in the fields of a stat tuple, so that the store's
 * reuse test (cert_stat_eq) serves index sets unchanged: the 256 bits of a
 * content hash when the blob's name starts with one (certsync's blobs), else
 * two 64-bit FNV-1a hashes of the name with different offsets and its
 * length.
 */
static void set_identity(struct cert_stat *st, const char *blob, size_t n)
{
	uint64_t w[4] = {0, 0, 0, 0};
	size_t i;

	memset(st, 0, sizeof(*st));
	st->dev = SET_DEV;
	for (i = 0; i < 64 && i < n; i++) {
		unsigned v = hexv[(unsigned char)blob[i]];

		if (v == 0)
			break;
		w[i / 16] = w[i / 16] << 4 | (v - 1);
	}
	if (i < 64) {
		w[0] = fnv64(blob, n, 14695981039346656037ull);
		w[1] = fnv64(blob, n, 0x9e3779b97f4a7c15ull);
		w[2] = n;
		w[3] = 0;
	} else {
		/* The name's tail (".pem", ".key") tells a pair's files apart. */
		w[3] ^= fnv64(blob + 64, n - 64, 14695981039346656037ull);
	}
	st->ino = (ino_t)w[0];
	st->size = (off_t)w[1];
	st->mtime.tv_sec = (time_t)w[2];
	st->ctime.tv_sec = (time_t)w[3];
}

/* Reads dir's index whole into a NUL-terminated buffer: 0, 1 when there is
 * none, -1 with the reason in err. */
static int read_index(const char *dir, char **buf, size_t *len, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	size_t got = 0;
	int fd;

	if (snprintf(path, sizeof(path), "%s/%s", dir, CERT_SET_FILE) >= (int)sizeof(path))
		return 1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno, dfd;

		if (e == ENOENT || e == ENOTDIR)
			return 1;
		/* A directory that cannot be opened has its own error, which
		 * the directory scan reports; an index that exists and cannot
		 * be read must not be taken for a directory without one. */
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return 1;
		close(dfd);
		snprintf(err, errlen, "%s: cannot open the set index: %s", path, strerror(e));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > SET_MAX_BYTES) {
		snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path,
		         SET_MAX_BYTES);
		close(fd);
		return -1;
	}
	*buf = cert_hot_alloc((size_t)st.st_size + 1);
	if (*buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		close(fd);
		return -1;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + got, (size_t)st.st_size - got);

		if (r <= 0) {
			snprintf(err, errlen, "%s: read failed: %s", path,
			         r < 0 ? strerror(errno) : "file shrank");
			close(fd);
			cert_hot_free(*buf);
			*buf = NULL;
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	(*buf)[got] = '\0';
	*len = got;
	return 0;
}

/* Splits "A B" at the first space or tab into a and b; -1 unless there
 * are exactly two non-empty fields. */
static int fields(char *line, char **a, char **b)
{
	char *sp = line + strcspn(line, " \t");

	if (*sp == '\0' || sp == line)
		return -1;
	*sp++ = '\0';
	sp += strspn(sp, " \t");
	*a = line;
	*b = sp;
	return (*sp != '\0' && sp[strcspn(sp, " \t")] == '\0') ? 0 : -1;
}

/* The blob directory that an index's header line (h, hlen bytes without
 * its newline) names, resolved against dir into out: 0, -1 when the line is
 * not CERT_SET_MAGIC and one BLOBDIR field, -2 when the path does not fit.
 * The line is not written to. */
static int header_blobdir(const char *dir, const char *h, size_t hlen, char *out, size_t outlen)
{
	const char *bd = h + sizeof(CERT_SET_MAGIC);
	size_t n;

	if (hlen <= sizeof(CERT_SET_MAGIC) ||
	    strncmp(h, CERT_SET_MAGIC " ", sizeof(CERT_SET_MAGIC)) != 0)
		return -1;
	n = hlen - sizeof(CERT_SET_MAGIC);
	for (size_t i = 0; i < n; i++)
		if (bd[i] == ' ' || bd[i] == '\t' || bd[i] == '\0')
			return -1;
	if (snprintf(out, outlen, "%s%s%.*s", bd[0] == '/' ? "" : dir, bd[0] == '/' ? "" : "/",
	             (int)n, bd) >= (int)outlen)
		return -2;
	return 0;
}

static int fail(struct cert_report *rep, const char *dir, size_t lineno, const char *what)
{
	cert_report_set_fatal(rep, "%s/%s:%zu: %s", dir, CERT_SET_FILE, lineno, what);
	return -1;
}

int cert_set_scan(const char *dir, struct cert_scan *sc, const struct cert_store *old,
                  struct cert_report *rep)
{
	char err[PATH_MAX + 100], *buf = NULL, *line, *next, *a, *b;
	char blobdir[PATH_MAX];
	const char *prev = NULL;
	size_t len, lineno = 1, nkeyfiles = 0, nlines = 0;
	int rc, hdr;

	rc = read_index(dir, &buf, &len, err, sizeof(err));
	if (rc != 0) {
		if (rc < 0)
			cert_report_set_fatal(rep, "%s", err);
		return rc;
	}
	rc = -1;
	memset(sc, 0, sizeof(*sc));
	sc->dirfd = -1;
	if (realpath(dir, sc->realdir) == NULL) {
		cert_report_set_fatal(rep, "%s: cannot resolve directory: %s", dir,
		                      strerror(errno));
		goto out;
	}
	next = memchr(buf, '\n', len);
	if (next == NULL) {
		fail(rep, dir, 1, "no records after the header (an index is written whole)");
		goto out;
	}
	hdr = header_blobdir(dir, buf, (size_t)(next - buf), blobdir, sizeof(blobdir));
	*next++ = '\0';
	if (hdr < 0) {
		fail(rep, dir, 1,
		     hdr == -1 ? "expected \"" CERT_SET_MAGIC " BLOBDIR\""
		               : "the blob directory's path is too long");
		goto out;
	}
	sc->dirfd = open(blobdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sc->dirfd < 0) {
		cert_report_set_fatal(rep, "%s/%s:1: cannot open the blob directory %s: %s", dir,
		                      CERT_SET_FILE, blobdir, strerror(errno));
		goto out;
	}
	for (const char *p = next; (p = memchr(p, '\n', (size_t)(buf + len - p))) != NULL; p++)
		nlines++;
	sc->cap = nlines + 1;
	sc->ents = cert_hot_alloc(sc->cap * sizeof(*sc->ents));
	if (sc->ents == NULL)
		goto oom;
	for (line = next; line < buf + len; line = next) {
		struct cert_scan_ent *e;
		char *nl = memchr(line, '\n', (size_t)(buf + len - line));

		lineno++;
		if (nl == NULL) {
			fail(rep, dir, lineno, "the last record has no newline (a torn write)");
			goto out;
		}
		*nl = '\0';
		next = nl + 1;
		if (fields(line, &a, &b) < 0) {
			fail(rep, dir, lineno, "expected \"NAME BLOB\"");
			goto out;
		}
		if (a[0] == '.' || b[0] == '.' || strchr(a, '/') != NULL ||
		    strchr(b, '/') != NULL) {
			fail(rep, dir, lineno, "a name or blob starts with a dot or holds a slash");
			goto out;
		}
		if (prev != NULL && strcmp(prev, a) >= 0) {
			fail(rep, dir, lineno, "names are not in strictly ascending order");
			goto out;
		}
		e = &sc->ents[sc->n];
		memset(e, 0, sizeof(*e));
		/* The names go to the store; the blob names are needed only
		 * while the load opens files, and stay in the index buffer. */
		e->name = cert_arena_strdup(&sc->names, a);
		e->path = b;
		if (e->name == NULL)
			goto oom;
		sc->n++;
		prev = e->name;
		e->kind = CERT_FILE_CERT;
		if (!cert_is_cert_name(a)) {
			cert_scan_mark_ignored(e);
			continue;
		}
		set_identity(&e->st, b, strlen(b));
		nkeyfiles += strlen(a) > 4 && strcmp(a + strlen(a) - 4, ".key") == 0;
	}
	/* The index is in strictly ascending order (checked above). */
	if (cert_scan_pair(sc, old, nkeyfiles, 1) < 0)
		goto oom;
	rc = 0;
	goto out;
oom:
	cert_report_set_fatal(rep, "%s/%s: out of memory", dir, CERT_SET_FILE);
out:
	sc->buf = buf;
	return rc;
}

uint64_t cert_dir_nfiles(const char *dir)
{
	char err[PATH_MAX + 100], *buf = NULL;
	uint64_t n = 0;
	size_t len;

	if (read_index(dir, &buf, &len, err, sizeof(err)) != 0)
		return cert_scan_nfiles(dir);
	/* Every line after the header is one record; a NAME.key record is
	 * part of its certificate's pair. */
	for (char *l = memchr(buf, '\n', len); l != NULL && l + 1 < buf + len;
	     l = memchr(l + 1, '\n', (size_t)(buf + len - l - 1))) {
		size_t f = strcspn(l + 1, " \t\n");

		n += !(f > 4 && memcmp(l + 1 + f - 4, ".key", 4) == 0);
	}
	cert_hot_free(buf);
	return n;
}

struct cert_set_map {
	char *buf; /* the index, NUL-terminated; records split in place once split */
	size_t len;
	char **file, **blob; /* into buf, in the index's (ascending) order */
	size_t n;
	int split;
	int broken; /* a split failed half way: no answer can be trusted */
	char blobdir[PATH_MAX];
};

int cert_set_map_read(const char *dir, struct cert_set_map **out, char *err, size_t errlen)
{
	struct cert_set_map *m;
	const char *nl;
	int rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "%s: out of memory", dir);
		return -1;
	}
	rc = read_index(dir, &m->buf, &m->len, err, errlen);
	if (rc != 0) {
		free(m);
		return rc > 0 ? 0 : -1;
	}
	/* The header is parsed without writing to the buffer: the raw
	 * searches below look for a record as "\nNAME ", the first one
	 * included. */
	nl = memchr(m->buf, '\n', m->len);
	if (nl == NULL || header_blobdir(dir, m->buf, (size_t)(nl - m->buf), m->blobdir,
	                                 sizeof(m->blobdir)) < 0) {
		snprintf(err, errlen, "%s/%s: not a valid set index", dir, CERT_SET_FILE);
		cert_set_map_free(m);
		return -1;
	}
	/* The raw searches expect each record as "NAME BLOB" with one space,
	 * as certsync writes it; an index that separates its fields any
	 * other way is split at once, and searched record by record. */
	if ((memchr(m->buf, '\t', m->len) != NULL || memmem(m->buf, m->len, "  ", 2) != NULL) &&
	    cert_set_map_split(m) < 0) {
		snprintf(err, errlen, "%s/%s: not a valid set index", dir, CERT_SET_FILE);
		cert_set_map_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

int cert_set_map_split(struct cert_set_map *m)
{
	size_t cap = 1;
	char *line, *next, *a, *b;

	if (m->split)
		return 0;
	if (m->broken)
		return -1;
	/* From here on the buffer is being cut into records: a failure
	 * leaves it half cut, and the map broken. */
	m->broken = 1;
	for (size_t i = 0; i < m->len; i++)
		cap += m->buf[i] == '\n';
	m->file = malloc(cap * sizeof(*m->file));
	m->blob = malloc(cap * sizeof(*m->blob));
	if (m->file == NULL || m->blob == NULL)
		return -1;
	next = (char *)memchr(m->buf, '\n', m->len) + 1; /* past the header (map_read) */
	for (line = next; line < m->buf + m->len; line = next) {
		char *nl = memchr(line, '\n', (size_t)(m->buf + m->len - line));

		if (nl == NULL)
			return -1;
		*nl = '\0';
		next = nl + 1;
		if (fields(line, &a, &b) < 0)
			return -1;
		m->file[m->n] = a;
		m->blob[m->n++] = b;
	}
	m->split = 1;
	m->broken = 0;
	return 0;
}

int cert_set_map_open(const char *dir, struct cert_set_map **out, char *err, size_t errlen)
{
	if (cert_set_map_read(dir, out, err, errlen) < 0)
		return -1;
	if (*out != NULL && cert_set_map_split(*out) < 0) {
		snprintf(err, errlen, "%s/%s: not a valid set index", dir, CERT_SET_FILE);
		cert_set_map_free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

size_t cert_set_map_count(const struct cert_set_map *m)
{
	return m->split ? m->n : 0;
}

void cert_set_map_entry(const struct cert_set_map *m, size_t i, const char **file,
                        const char **blob)
{
	*file = m->file[i];
	*blob = m->blob[i];
}

/* The index of file in a split map, or -1. */
static ssize_t find(const struct cert_set_map *m, const char *file)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->file[mid], file);

		if (c == 0)
			return (ssize_t)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int cert_set_map_blob_of(const struct cert_set_map *m, const char *file, char *out, size_t outlen)
{
	char key[NAME_MAX + 4];
	const char *p, *e;
	ssize_t i;
	int n;

	if (m->broken)
		return -1;
	if (m->split) {
		i = find(m, file);
		n = i < 0 ? -1 : snprintf(out, outlen, "%s", m->blob[i]);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	/* Unsplit: one search of the raw index for its record. */
	n = snprintf(key, sizeof(key), "\n%s ", file);
	if (n < 0 || n >= (int)sizeof(key))
		return -1;
	p = memmem(m->buf, m->len, key, (size_t)n);
	if (p == NULL)
		return -1;
	p += n;
	e = memchr(p, '\n', m->len - (size_t)(p - m->buf));
	if (e == NULL || (size_t)(e - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return 0;
}

int cert_set_map_names_blob(const struct cert_set_map *m, const char *blob)
{
	char key[NAME_MAX + 4];
	int n;

	if (m->broken)
		return 1; /* the answer that removes nothing */
	if (m->split) {
		for (size_t i = 0; i < m->n; i++)
			if (strcmp(m->blob[i], blob) == 0)
				return 1;
		return 0;
	}
	n = snprintf(key, sizeof(key), " %s\n", blob);
	return n > 0 && n < (int)sizeof(key) && memmem(m->buf, m->len, key, (size_t)n) != NULL;
}

int cert_set_map_path(const struct cert_set_map *m, const char *dir, const char *file, char *out,
                      size_t outlen)
{
	ssize_t i;
	int n;

	if (m == NULL) {
		n = snprintf(out, outlen, "%s/%s", dir, file);
		return n < 0 || (size_t)n >= outlen ? -1 : 0;
	}
	i = m->split ? find(m, file) : -1;
	if (i < 0)
		return -1;
	n = snprintf(out, outlen, "%s/%s", m->blobdir, m->blob[i]);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

void cert_set_map_free(struct cert_set_map *m)
{
	if (m == NULL)
		return;
	cert_hot_free(m->buf);
	free(m->file);
	free(m->blob);
	free(m);
}
