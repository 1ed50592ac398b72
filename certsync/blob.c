/*
 * Index sets: the contents of every set live once in STATE_DIR/certsync/blobs,
 * named by their unit's content hash, and a set directory holds only its
 * index files (CERT_SET_FILE for the instances, CS_INDEX_NAME for certsync).
 * Publishing a set with one changed certificate then writes that
 * certificate's blob and two index files, instead of one hardlink per
 * certificate of the set; removing a set removes the blobs no other set
 * names.
 *
 * Crash safety: a blob is written under a temporary name and renamed to its
 * content name, so a blob name always means those bytes; blobs are placed
 * before the set that names them is complete, so a complete set never names
 * a missing blob; a set is removed by renaming it to ID.tmp before any of
 * its blobs go, and a leftover ID.tmp (a run killed at any step) makes the
 * next prune sweep the whole blob directory for blobs no set names.
 */
#include "certsync/cs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certstore/cert.h"
#include "common/privs.h"

/* Up to this many new blobs are synced one by one, more with one syncfs. */
#define BLOBS_FSYNC_MAX 64
/* Up to this many blobs that may be unnamed are searched for in each kept
 * index as it is (one memmem each); more are looked up record by record. */
#define BLOBS_SEARCH_MAX 32

/* A set names its blob directory relative to itself: sets/ID/../../blobs. */
#define BLOBS_FROM_SET "../../" CS_BLOBS_DIR

/* The blob of one file of unit u: the unit's hash and the file's
 * extension, so a pair's two files get two blobs. */
static void blob_name(const struct cs_unit *u, const char *file, char out[CS_HASH_HEX + 8])
{
	const char *dot = strrchr(file, '.');

	snprintf(out, CS_HASH_HEX + 8, "%s%s", u->hash, dot != NULL ? dot : "");
}

static int served(const struct cs_unit *u)
{
	return !u->rejected || u->kept_prev;
}

/* Opens one blob to the instances' group, and closes it to other users:
 * a blob may be a key. */
static int share_blob(const char *path, gid_t gid, char *err, size_t errlen)
{
	struct stat st;

	if (priv_share(path, gid, S_IRGRP, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO) != 0 &&
	    chmod(path, st.st_mode & 07770) != 0) {
		snprintf(err, errlen, "%s: cannot close it to other users: %s", path,
		         strerror(errno));
		return -1;
	}
	return 0;
}

int cs_blobs_open(const char *base, int share, gid_t gid, char *err, size_t errlen)
{
	char dir[PATH_MAX], p[PATH_MAX];
	struct dirent *de;
	struct stat st;
	int rc = 0;
	DIR *d;

	cs_path(dir, sizeof(dir), base, CS_BLOBS_DIR);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create the blob directory: %s", dir,
		         strerror(errno));
		return -1;
	}
	if (!share)
		return 0;
	/* The directory is shared last: a directory of the instances' group
	 * says every blob in it is shared too. Until then (proxy.user was
	 * just set, or a run died while sharing) every blob is checked once. */
	if (stat(dir, &st) == 0 && st.st_gid == gid && (st.st_mode & S_IRGRP) != 0)
		return 0;
	d = opendir(dir);
	if (d == NULL) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && cs_path(p, sizeof(p), dir, de->d_name) == 0)
			rc = share_blob(p, gid, err, errlen);
	closedir(d);
	return rc < 0 ? -1 : priv_share(dir, gid, S_IRGRP | S_IXGRP, err, errlen);
}

/* Moves a changed file from the new set's staging into the blob directory
 * (its name there is its content, so an existing blob is the same bytes and
 * is simply replaced). */
static int place_new(const char *tmpdir, const char *blobs, const char *file, const char *blob,
                     int share, gid_t gid, int sync, char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];

	cs_path(from, sizeof(from), tmpdir, file);
	cs_path(to, sizeof(to), blobs, blob);
	if (share && share_blob(from, gid, err, errlen) < 0)
		return -1;
	if (sync && cs_sync(from, CS_SYNC_FILE, err, errlen) < 0)
		return -1;
	if (rename(from, to) != 0) {
		snprintf(err, errlen, "%s: cannot move into the blob directory as %s: %s", from, to,
		         strerror(errno));
		return -1;
	}
	return 0;
}

/* A unit kept from a current set of the older, hardlinked kind: its file
 * becomes a blob by one more link (once; later sets name the blob). */
static int place_old(const char *curdir, const char *blobs, const char *file, const char *blob,
                     char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];

	cs_path(from, sizeof(from), curdir, file);
	cs_path(to, sizeof(to), blobs, blob);
	if (link(from, to) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot link into the blob directory: %s", from,
		         strerror(errno));
		return -1;
	}
	return 0;
}

struct rec {
	const char *file;
	char blob[CS_HASH_HEX + 8];
};

static int rec_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rec *)a)->file, ((const struct rec *)b)->file);
}

int cs_blobs_publish(struct cs_run *r)
{
	char blobs[PATH_MAX], cur[PATH_MAX], path[PATH_MAX];
	struct rec *recs;
	size_t n = 0, nnew = 0;
	FILE *f;
	int rc = -1;

	cs_path(blobs, sizeof(blobs), r->base, CS_BLOBS_DIR);
	snprintf(cur, sizeof(cur), "%s/sets/%s", r->base, r->cur_id);
	recs = malloc((2 * r->next.n + 1) * sizeof(*recs));
	if (recs == NULL) {
		cs_err(r, "out of memory while writing the set index");
		return -1;
	}
	/* A blob must be durable before a set that names it is: one fsync
	 * each for a few, one syncfs for many (a first run's 100,000). */
	for (size_t i = 0; i < r->next.n; i++)
		nnew += served(&r->next.v[i]) && r->next.v[i].state != CS_UNIT_SAME &&
		        !r->next.v[i].kept_prev;
	for (size_t i = 0; i < r->next.n; i++) {
		const struct cs_unit *u = &r->next.v[i];
		const char *files[2] = {u->name, u->keyfile};
		/* Same content as the current set's unit: the current set
		 * already names (or, hardlinked, holds) its bytes. */
		int from_cur = u->state == CS_UNIT_SAME || u->kept_prev;

		if (!served(u))
			continue;
		for (int k = 0; k < 2 && files[k] != NULL; k++) {
			struct rec *rec = &recs[n++];
			int ret = 0;

			rec->file = files[k];
			blob_name(u, files[k], rec->blob);
			if (!from_cur)
				ret = place_new(r->tmpdir, blobs, files[k], rec->blob, r->share,
				                r->gid, nnew <= BLOBS_FSYNC_MAX, r->err,
				                sizeof(r->err));
			else if (!r->cur_indexed)
				ret = place_old(cur, blobs, files[k], rec->blob, r->err,
				                sizeof(r->err));
			if (ret < 0)
				goto out;
		}
	}
	if (cs_sync(blobs, nnew > BLOBS_FSYNC_MAX ? CS_SYNC_FS : CS_SYNC_DIR, r->err,
	            sizeof(r->err)) < 0)
		goto out;
	cs_test_point("placed");
	qsort(recs, n, sizeof(*recs), rec_cmp);
	cs_path(path, sizeof(path), r->tmpdir, CERT_SET_FILE);
	f = fopen(path, "w");
	if (f == NULL) {
		cs_err(r, "%s: cannot write the set index: %s", path, strerror(errno));
		goto out;
	}
	fprintf(f, "%s %s\n", CERT_SET_MAGIC, BLOBS_FROM_SET);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s %s\n", recs[i].file, recs[i].blob);
	if (fclose(f) != 0) {
		cs_err(r, "%s: cannot write the set index: %s", path, strerror(errno));
		goto out;
	}
	cs_test_point("indexed");
	rc = 0;
out:
	free(recs);
	return rc;
}

/* ---- removing sets and their blobs ---- */

/* One set's index (certstore's map of its CERT_SET_FILE, read whole and
 * split into records only when every record is needed; NULL for a set
 * without one), and the blob names copied out of it for the doomed set. */
struct setidx {
	struct cert_set_map *m;
	char **kept;
	size_t nkept;
};

static void setidx_free(struct setidx *x)
{
	for (size_t i = 0; i < x->nkept; i++)
		free(x->kept[i]);
	free(x->kept);
	cert_set_map_free(x->m);
	memset(x, 0, sizeof(*x));
}

static int keep_string(struct setidx *x, char *s)
{
	char **nv = realloc(x->kept, (x->nkept + 1) * sizeof(*nv));

	if (nv == NULL)
		return -1;
	x->kept = nv;
	x->kept[x->nkept++] = s;
	return 0;
}

/* Reads sets/ID's index: 0 (x->m NULL if the set has none: a hardlinked
 * set), -1 if it cannot be read. Only an index that certainly does not
 * exist means "none": a set whose directory cannot be read (EACCES,
 * EMFILE) must not count as naming nothing. */
static int setidx_read(const char *sets, const char *id, struct setidx *x)
{
	char path[PATH_MAX], idx[PATH_MAX], err[PATH_MAX + 100];

	memset(x, 0, sizeof(*x));
	snprintf(path, sizeof(path), "%s/%s", sets, id);
	if (cert_set_map_read(path, &x->m, err, sizeof(err)) < 0)
		return -1;
	snprintf(idx, sizeof(idx), "%s/%s", path, CERT_SET_FILE);
	if (x->m == NULL && (access(idx, F_OK) == 0 || errno != ENOENT))
		return -1;
	return 0;
}

/* Splits x into records: 0, or -1 (out of memory, a malformed record). */
static int setidx_split(struct setidx *x)
{
	return x->m == NULL ? 0 : cert_set_map_split(x->m);
}

/* The records of a split x (none for a set without an index). */
static size_t setidx_n(const struct setidx *x)
{
	return x->m == NULL ? 0 : cert_set_map_count(x->m);
}

static const char *setidx_file(const struct setidx *x, size_t i)
{
	const char *f, *b;

	cert_set_map_entry(x->m, i, &f, &b);
	return f;
}

static const char *setidx_blob(const struct setidx *x, size_t i)
{
	const char *f, *b;

	cert_set_map_entry(x->m, i, &f, &b);
	return b;
}

/* Removes every blob that no kept set (x[i] with doomed_set[i] 0) names.
 * For a run after a crash: it reads the whole blob directory. */
static void sweep(const char *blobs, struct setidx *x, size_t n, const unsigned char *doomed_set)
{
	struct cs_strset named = {0};
	struct dirent *de;
	DIR *d;

	for (size_t i = 0; i < n; i++) {
		if (doomed_set[i])
			continue;
		if (setidx_split(&x[i]) < 0)
			goto out;
		for (size_t k = 0; k < setidx_n(&x[i]); k++)
			if (cs_strset_add(&named, setidx_blob(&x[i], k)) < 0)
				goto out;
	}
	d = opendir(blobs);
	if (d == NULL)
		goto out;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && !cs_strset_has(&named, de->d_name))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
out:
	free(named.v);
}

struct doomed_ctx {
	struct setidx *a;
	struct cs_strset *doomed;
};

/* One changed file: the blob a names for it (none for an added file)
 * becomes a candidate; a keeps the copy of its name. */
static int doom_changed(const char *file, void *arg)
{
	struct doomed_ctx *c = arg;
	char blob[CS_HASH_HEX + 8], *keep;

	if (cert_set_map_blob_of(c->a->m, file, blob, sizeof(blob)) < 0)
		return 0;
	keep = strdup(blob);
	if (keep == NULL || keep_string(c->a, keep) < 0) {
		free(keep);
		return -1;
	}
	return cs_strset_add(c->doomed, keep) < 0 ? -1 : 0;
}

/* Adds to doomed the blobs a names for the files that the change lists
 * say changed between a and b (b was built from a; ids aid and bid). 0, or
 * 1 when the lists do not lead from b to a or memory ran out (the caller
 * merges the two indexes instead). a owns the copies of the blob names,
 * and outlives doomed. */
static int doomed_by_changes(const char *sets, const char *aid, const char *bid, struct setidx *a,
                             struct cs_strset *doomed)
{
	char adir[PATH_MAX], bdir[PATH_MAX];
	struct doomed_ctx c = {a, doomed};
	int rc;

	if (a->m == NULL)
		return 1;
	snprintf(adir, sizeof(adir), "%s/%s", sets, aid);
	snprintf(bdir, sizeof(bdir), "%s/%s", sets, bid);
	/* Any failure falls back to the merge, which finds every candidate
	 * by itself; candidates taken before it only add to what the
	 * remaining sets are searched for. */
	rc = cert_changes_each(bdir, adir, doom_changed, &c);
	return rc < 0 ? 1 : 0;
}

/* Adds to doomed what a names and b does not name under the same file. */
static int doomed_by_merge(struct setidx *a, struct setidx *b, struct cs_strset *doomed)
{
	size_t j = 0, k = 0, na, nb;

	if (setidx_split(a) < 0 || setidx_split(b) < 0)
		return -1;
	na = setidx_n(a);
	nb = setidx_n(b);
	while (j < na) {
		int c = k == nb ? -1 : strcmp(setidx_file(a, j), setidx_file(b, k));

		if (c > 0) {
			k++;
			continue;
		}
		if ((c < 0 || strcmp(setidx_blob(a, j), setidx_blob(b, k)) != 0) &&
		    cs_strset_add(doomed, setidx_blob(a, j)) < 0)
			return -1;
		j++;
		k += c == 0;
	}
	return 0;
}

int cs_blobs_prune(const char *base, char **ids, size_t n, const unsigned char *doomed_set,
                   int full)
{
	char sets[PATH_MAX], blobs[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	struct setidx *x = calloc(n + 1, sizeof(*x));
	struct cs_strset doomed = {0}, rescued = {0};
	int rc = -1;

	cs_path(sets, sizeof(sets), base, "sets");
	cs_path(blobs, sizeof(blobs), base, CS_BLOBS_DIR);
	if (x == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (setidx_read(sets, ids[i], &x[i]) < 0)
			goto out; /* unsure what a set names: remove nothing */
	/* The candidates: what a removed set names and the next set (the one
	 * built from it) does not. Its change list says which files those
	 * are; without one, the two indexes are merged. */
	for (size_t i = 0; i + 1 < n && !full; i++) {
		if (!doomed_set[i])
			continue;
		if (doomed_by_changes(sets, ids[i], ids[i + 1], &x[i], &doomed) > 0 &&
		    doomed_by_merge(&x[i], &x[i + 1], &doomed) < 0)
			goto out;
	}
	/* A blob may be named again by a later set (a revert to the same
	 * bytes), or under another name: only what no kept set names goes.
	 * A few candidates are searched for in each kept index as it is;
	 * many are looked up record by record. */
	for (size_t i = 0; i < n && doomed.n > 0; i++) {
		if (doomed_set[i])
			continue;
		if (x[i].m == NULL)
			continue;
		if (doomed.n <= BLOBS_SEARCH_MAX) {
			for (size_t h = 0; h < doomed.cap; h++)
				if (doomed.v[h] != NULL &&
				    cert_set_map_names_blob(x[i].m, doomed.v[h]) &&
				    cs_strset_add(&rescued, doomed.v[h]) < 0)
					goto out;
			continue;
		}
		if (setidx_split(&x[i]) < 0)
			goto out;
		for (size_t k = 0; k < setidx_n(&x[i]); k++)
			if (cs_strset_has(&doomed, setidx_blob(&x[i], k)) &&
			    cs_strset_add(&rescued, setidx_blob(&x[i], k)) < 0)
				goto out;
	}
	/* A set is set aside (ID.tmp) before its blobs go: killed from here
	 * on, the next prune finds the .tmp and sweeps. */
	for (size_t i = 0; i < n; i++) {
		if (!doomed_set[i])
			continue;
		cs_path(p, sizeof(p), sets, ids[i]);
		snprintf(q, sizeof(q), "%s.tmp", p);
		if (rename(p, q) != 0)
			goto out;
	}
	cs_test_point("prune-aside");
	if (full) {
		sweep(blobs, x, n, doomed_set);
	} else {
		for (size_t h = 0; h < doomed.cap; h++)
			if (doomed.v[h] != NULL && !cs_strset_has(&rescued, doomed.v[h]) &&
			    cs_path(p, sizeof(p), blobs, doomed.v[h]) == 0)
				unlink(p);
	}
	cs_test_point("prune-blobs");
	for (size_t i = 0; i < n; i++) {
		if (!doomed_set[i])
			continue;
		cs_path(p, sizeof(p), sets, ids[i]);
		snprintf(q, sizeof(q), "%s.tmp", p);
		cs_rmtree(q);
	}
	rc = 0;
out:
	for (size_t i = 0; i < n; i++)
		setidx_free(&x[i]);
	free(x);
	free(doomed.v);
	free(rescued.v);
	return rc;
}
