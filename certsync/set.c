/*
 * Building and publishing certificate sets.
 *
 * A set is a directory STATE_DIR/certsync/sets/ID holding the unit files and
 * the set's index (.certsync-index). Crash safety rests on two rules: a set
 * directory only gets its final name (rename of ID.tmp) once it is complete
 * and synced, and `current` only ever changes by rename. So kill -9 at any
 * point leaves either the old current or the new one, never a half-written
 * set; leftover *.tmp are removed by the next run.
 */
#include "certsync/cs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "certstore/cert.h"
#include "common/privs.h"

static int is_cert_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return 0;
	return (n > 4 && (strcmp(name + n - 4, ".pem") == 0 || strcmp(name + n - 4, ".crt") == 0 ||
	                  strcmp(name + n - 4, ".key") == 0));
}

/* One thread's share of the source's stats. */
struct stat_job {
	int dfd;
	struct cs_file *v;
	size_t from, to;
};

static void *stat_slice(void *arg)
{
	struct stat_job *j = arg;

	for (size_t i = j->from; i < j->to; i++) {
		struct cs_file *f = &j->v[i];
		struct stat st;

		if (fstatat(j->dfd, f->name, &st, 0) < 0 || !S_ISREG(st.st_mode)) {
			f->size = -1; /* gone, or not a regular file: dropped */
			continue;
		}
		f->size = st.st_size;
		f->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
	return NULL;
}

/* Up to this many threads stat a large source: the path lookups are the
 * kernel's work and run in parallel; a small source is stat'ed inline. */
#define SCAN_THREADS    4
#define SCAN_THREAD_MIN 4096

int cs_scan(const char *dir, struct cs_files *out, char *err, size_t errlen)
{
	struct stat_job jobs[SCAN_THREADS];
	pthread_t tids[SCAN_THREADS];
	int nt = 1, started = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t k = 0;

	if (d == NULL) {
		snprintf(err, errlen, "%s: cannot read the certificate source: %s", dir,
		         strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!is_cert_file(de->d_name))
			continue;
		if (cs_files_add(out, de->d_name) == NULL) {
			closedir(d);
			cs_files_free(out);
			snprintf(err, errlen, "out of memory while scanning %s", dir);
			return -1;
		}
	}
	if (out->n >= SCAN_THREAD_MIN && ncpu > 1)
		nt = ncpu < SCAN_THREADS ? (int)ncpu : SCAN_THREADS;
	for (int t = 0; t < nt; t++) {
		jobs[t] = (struct stat_job){.dfd = dirfd(d),
		                            .v = out->v,
		                            .from = out->n * (size_t)t / (size_t)nt,
		                            .to = out->n * (size_t)(t + 1) / (size_t)nt};
		/* The last slice runs here; a thread that cannot start
		 * leaves its slice to this thread too. */
		if (t + 1 < nt && pthread_create(&tids[started], NULL, stat_slice, &jobs[t]) == 0)
			started++;
		else
			stat_slice(&jobs[t]);
	}
	for (int t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	closedir(d);
	for (size_t i = 0; i < out->n; i++) {
		if (out->v[i].size < 0) {
			free(out->v[i].name);
			continue;
		}
		out->v[k++] = out->v[i];
	}
	out->n = k;
	cs_files_sort(out);
	return 0;
}

int cs_copy_hash(const char *from_dir, const char *to_dir, struct cs_file *f, char *err,
                 size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];
	unsigned char buf[65536], md[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int in = -1, out = -1, rc = -1;
	ssize_t n;

	cs_path(from, sizeof(from), from_dir, f->name);
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "%s: cannot hash: out of memory", from);
		goto out;
	}
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "%s: cannot read: %s", from, strerror(errno));
		goto out;
	}
	if (to_dir != NULL) {
		cs_path(to, sizeof(to), to_dir, f->name);
		out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (out < 0) {
			snprintf(err, errlen, "%s: cannot write: %s", to, strerror(errno));
			goto out;
		}
	}
	f->copied = out >= 0;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		if (out >= 0 && write(out, buf, (size_t)n) != n) {
			snprintf(err, errlen, "%s: write failed: %s", to, strerror(errno));
			goto out;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "%s: read failed: %s", from, strerror(errno));
		goto out;
	}
	EVP_DigestFinal_ex(ctx, md, NULL);
	cs_hex(md, f->hash);
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	EVP_MD_CTX_free(ctx);
	return rc;
}

/* The name of NAME.crt's partner with suffix sfx (".key" or ".crt"). */
static int partner(const char *name, size_t len, const char *sfx, char out[NAME_MAX + 1])
{
	int n = snprintf(out, NAME_MAX + 1, "%.*s%s", (int)(len - 4), name, sfx);

	return n < 0 || n > NAME_MAX ? -1 : 0;
}

int cs_units_group(const struct cs_files *src, struct cs_units *out)
{
	for (size_t i = 0; i < src->n; i++) {
		const char *name = src->v[i].name;
		size_t len = strlen(name);
		const struct cs_file *key = NULL;
		char other[NAME_MAX + 1];
		struct cs_unit *u;

		if (strcmp(name + len - 4, ".key") == 0 && partner(name, len, ".crt", other) == 0 &&
		    cs_files_find(src, other) != NULL)
			continue; /* belongs to NAME.crt's unit */
		if (strcmp(name + len - 4, ".crt") == 0 && partner(name, len, ".key", other) == 0)
			key = cs_files_find(src, other);
		u = cs_units_add(out);
		if (u == NULL)
			return -1;
		u->name = strdup(name);
		u->keyfile = key ? strdup(key->name) : NULL;
		if (u->name == NULL || (key != NULL && u->keyfile == NULL))
			return -1;
		if (key == NULL) {
			memcpy(u->hash, src->v[i].hash, CS_HASH_HEX);
		} else {
			/* The unit hash covers both files, in order. */
			unsigned char md[32];
			char both[2 * CS_HASH_HEX];

			snprintf(both, sizeof(both), "%s%s", src->v[i].hash, key->hash);
			EVP_Digest(both, strlen(both), md, NULL, EVP_sha256(), NULL);
			cs_hex(md, u->hash);
		}
	}
	return 0;
}

long cs_units_plan(const struct cs_units *cur, struct cs_units *next)
{
	long changed = 0;
	size_t j = 0;

	/* Both lists are sorted by name: walked in step, not searched. A
	 * unit of cur that the walk passes without a match was removed, which
	 * counts as a change too. */
	for (size_t i = 0; i < next->n; i++) {
		struct cs_unit *u = &next->v[i];
		const struct cs_unit *c = NULL;

		while (j < cur->n && strcmp(cur->v[j].name, u->name) < 0) {
			j++;
			changed++;
		}
		if (j < cur->n && strcmp(cur->v[j].name, u->name) == 0)
			c = &cur->v[j++];
		if (c != NULL && strcmp(c->hash, u->hash) == 0) {
			if (cs_unit_set_verdict(u, c) < 0)
				return -1;
			u->state = CS_UNIT_SAME;
			continue;
		}
		u->state = CS_UNIT_CHANGED;
		changed++;
	}
	changed += (long)(cur->n - j);
	return changed;
}

int cs_unit_keep_previous(struct cs_unit *u, const struct cs_unit *prev)
{
	char *msg = u->msg;

	u->msg = NULL;
	if (cs_unit_set_verdict(u, prev) < 0) {
		free(u->msg);
		u->msg = msg;
		return -1;
	}
	free(u->msg);
	u->msg = msg;
	u->kept_prev = 1;
	memcpy(u->hash, prev->hash, CS_HASH_HEX);
	free(u->keyfile);
	u->keyfile = prev->keyfile ? strdup(prev->keyfile) : NULL;
	return prev->keyfile && u->keyfile == NULL ? -1 : 0;
}

/* ---- what a set serves ---- */

static int served(const struct cs_unit *u)
{
	return u->sev != CERT_SKIP;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits the names of every wanted unit (want NULL: all) into one array of
 * strings; the caller frees the array and *buf. */
static char **name_array(const struct cs_units *u, int (*want)(const struct cs_unit *), size_t *n,
                         char **buf)
{
	size_t total = 0, len = 0, k = 0;
	char **v;

	for (size_t i = 0; i < u->n; i++) {
		const char *p = u->v[i].names;

		if (p == NULL)
			continue;
		len += strlen(p) + 1;
		for (total += *p != '\0'; (p = strchr(p, ',')) != NULL; p++)
			total++;
	}
	v = malloc((total + 1) * sizeof(*v));
	*buf = malloc(len + 1);
	if (v == NULL || *buf == NULL) {
		free(v);
		free(*buf);
		*buf = NULL;
		return NULL;
	}
	len = 0;
	for (size_t i = 0; i < u->n; i++) {
		char *p;

		if (u->v[i].names == NULL || (want != NULL && !want(&u->v[i])))
			continue;
		p = strcpy(*buf + len, u->v[i].names);
		len += strlen(u->v[i].names) + 1;
		while (p && *p && k < total) {
			char *e = strchr(p, ',');

			if (e)
				*e = '\0';
			v[k++] = p;
			p = e ? e + 1 : NULL;
		}
	}
	*n = k;
	return v;
}

int cs_names_gone(const struct cs_units *cur, const struct cs_units *next, size_t *nold,
                  size_t *nnew, size_t *gone)
{
	char *oldbuf = NULL, *newbuf = NULL;
	char **oldv = name_array(cur, NULL, nold, &oldbuf);
	char **newv = name_array(next, served, nnew, &newbuf);
	struct cs_strset names = {0};
	int rc = -1;

	if (oldv == NULL || newv == NULL || cs_strset_reserve(&names, *nnew) < 0)
		goto out;
	/* The new names in a hash set, each old name looked up once: two
	 * passes over 100,000 names instead of two sorts. */
	for (size_t i = 0; i < *nnew; i++)
		if (cs_strset_add(&names, newv[i]) < 0)
			goto out;
	*gone = 0;
	for (size_t i = 0; i < *nold; i++)
		*gone += !cs_strset_has(&names, oldv[i]);
	rc = 0;
out:
	free(names.v);
	free(oldv);
	free(newv);
	free(oldbuf);
	free(newbuf);
	return rc;
}

/* ---- publishing ---- */

/* Writes one unit's files (and those of the current set's unit of that
 * name, whose key file may differ) as change lines; 1 if a name cannot be
 * written as a line. */
static int changes_unit(FILE *f, const struct cs_unit *u, const struct cs_unit *c)
{
	const char *v[4] = {u->name, u->keyfile, c ? c->name : NULL, c ? c->keyfile : NULL};

	for (int i = 0; i < 4; i++) {
		if (v[i] == NULL || (i == 2 && strcmp(v[2], v[0]) == 0) ||
		    (i == 3 && u->keyfile != NULL && strcmp(v[3], u->keyfile) == 0))
			continue;
		if (strchr(v[i], '\n') != NULL)
			return 1;
		fprintf(f, "%s\n", v[i]);
	}
	return 0;
}

int cs_set_changes(const char *tmpdir, const char *base_id, const struct cs_units *cur,
                   const struct cs_units *next, char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *f;
	int odd = 0;

	cs_path(path, sizeof(path), tmpdir, CERT_CHANGES_FILE);
	f = fopen(path, "w");
	if (f == NULL) {
		snprintf(err, errlen, "%s: cannot write the change list: %s", path,
		         strerror(errno));
		return -1;
	}
	fprintf(f, "base %s\n", base_id);
	for (size_t i = 0; i < next->n && !odd; i++)
		if (next->v[i].state != CS_UNIT_SAME)
			odd =
			    changes_unit(f, &next->v[i], cs_units_find_name(cur, next->v[i].name));
	for (size_t i = 0; i < cur->n && !odd; i++)
		if (cs_units_find_name(next, cur->v[i].name) == NULL)
			odd = changes_unit(f, &cur->v[i], NULL);
	if (fclose(f) != 0) {
		snprintf(err, errlen, "%s: cannot write the change list: %s", path,
		         strerror(errno));
		unlink(path);
		return -1;
	}
	/* A file name with a newline cannot be a line: without the list, the
	 * instance scans the whole set, which is always correct. */
	if (odd)
		unlink(path);
	return 0;
}

/*
 * Opens a set directory to the instances' group: they load it after
 * dropping to proxy.user. It holds its index files only; the contents are
 * blobs, shared as they are placed (blob.c).
 */
static int set_share(const char *dir, gid_t gid, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	if (priv_share(dir, gid, S_IRGRP | S_IXGRP, err, errlen) < 0)
		return -1;
	d = opendir(dir);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cs_path(path, sizeof(path), dir, de->d_name);
		rc = priv_share(path, gid, S_IRGRP, err, errlen);
		/* Keys are for the instances' group only; the index files
		 * were written with the process's umask. */
		if (rc == 0 && lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & S_IRWXO) != 0 && chmod(path, st.st_mode & 07770) != 0) {
			snprintf(err, errlen, "%s: cannot close it to other users: %s", path,
			         strerror(errno));
			rc = -1;
		}
	}
	closedir(d);
	return rc;
}

int cs_sync(const char *path, enum cs_sync how, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | (how == CS_SYNC_FILE ? 0 : O_DIRECTORY));

	if (fd < 0 || (how == CS_SYNC_FS ? syncfs(fd) : fsync(fd)) != 0) {
		snprintf(err, errlen, "%s: cannot sync: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int cs_set_finish(const char *tmpdir, const char *final, const struct cs_units *units, int share,
                  gid_t gid, char *err, size_t errlen)
{
	char idx[PATH_MAX];
	struct dirent *de;
	int rc = 0;
	DIR *d;

	cs_path(idx, sizeof(idx), tmpdir, CS_INDEX_NAME);
	if (cs_units_save(idx, units) < 0) {
		snprintf(err, errlen, "%s: cannot write the set index: %s", idx, strerror(errno));
		return -1;
	}
	if (share && set_share(tmpdir, gid, err, errlen) < 0)
		return -1;
	/* The set must be durable before its final name makes it promotable.
	 * It holds a few index files (its contents are blobs, synced when
	 * placed), so each is synced, and not the whole file system: syncfs
	 * would also wait for every other writer's dirty data. */
	d = opendir(tmpdir);
	if (d == NULL) {
		snprintf(err, errlen, "%s: cannot sync the new set: %s", tmpdir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")))
			if (cs_path(idx, sizeof(idx), tmpdir, de->d_name) < 0 ||
			    cs_sync(idx, CS_SYNC_FILE, err, errlen) < 0)
				rc = -1;
	closedir(d);
	if (rc < 0 || cs_sync(tmpdir, CS_SYNC_DIR, err, errlen) < 0)
		return -1;
	if (rename(tmpdir, final) != 0) {
		snprintf(err, errlen, "%s: cannot complete the new set: %s", final,
		         strerror(errno));
		return -1;
	}
	return 0;
}

void cs_current_read(const char *base, char *id, size_t idlen, struct cs_units *units)
{
	char link[PATH_MAX], target[PATH_MAX], idx[PATH_MAX];
	const char *slash;
	ssize_t n;

	cs_path(link, sizeof(link), base, "current");
	n = readlink(link, target, sizeof(target) - 1);
	id[0] = '\0';
	if (n <= 0)
		return;
	target[n] = '\0';
	/* current -> sets/ID */
	slash = strrchr(target, '/');
	snprintf(id, idlen, "%s", slash ? slash + 1 : target);
	if (units == NULL)
		return;
	snprintf(idx, sizeof(idx), "%s/sets/%s/%s", base, id, CS_INDEX_NAME);
	cs_units_load(idx, units);
	cs_units_sort_by_name(units);
}

int cs_current_point(const char *base, const char *id, char *err, size_t errlen)
{
	char link[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];

	cs_path(link, sizeof(link), base, "current");
	cs_path(tmp, sizeof(tmp), base, "current.tmp");
	snprintf(target, sizeof(target), "sets/%s", id);
	unlink(tmp);
	if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
		snprintf(err, errlen, "%s: cannot switch the current link: %s", link,
		         strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

void cs_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

void cs_sets_prune(const char *base, const char *cur_id, const char *skip_tmp, size_t keep,
                   int sweep)
{
	char sets[PATH_MAX], p[PATH_MAX];
	char **ids = NULL;
	unsigned char *doomed = NULL;
	size_t n = 0, cap = 0, ndoomed = 0;
	DIR *d;
	struct dirent *de;

	cs_path(sets, sizeof(sets), base, "sets");
	d = opendir(sets);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
			cs_path(p, sizeof(p), sets, de->d_name);
			if (strcmp(p, skip_tmp) != 0) {
				/* A run was killed while it built or removed
				 * a set: blobs may be left that no set names. */
				cs_rmtree(p);
				sweep = 1;
			}
			continue;
		}
		if (n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 16;
			nv = realloc(ids, cap * sizeof(*nv));
			if (nv == NULL)
				break;
			ids = nv;
		}
		if ((ids[n] = strdup(de->d_name)) != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), str_cmp);
	doomed = calloc(n + 1, 1);
	for (size_t i = 0; doomed != NULL && i < n; i++)
		if (i + keep < n && strcmp(ids[i], cur_id) != 0) {
			doomed[i] = 1;
			ndoomed++;
		}
	if (doomed != NULL && (ndoomed > 0 || sweep))
		cs_blobs_prune(base, ids, n, doomed, sweep);
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(doomed);
}
