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

int cs_blobs_open(const char *base, int share, gid_t gid, char *err, size_t errlen)
{
	char dir[PATH_MAX];

	cs_path(dir, sizeof(dir), base, CS_BLOBS_DIR);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "%s: cannot create the blob directory: %s", dir,
		         strerror(errno));
		return -1;
	}
	return share ? priv_share(dir, gid, S_IRGRP | S_IXGRP, err, errlen) : 0;
}

/* Moves a changed file from the new set's staging into the blob directory
 * (its name there is its content, so an existing blob is the same bytes and
 * is simply replaced). */
static int place_new(const char *tmpdir, const char *blobs, const char *file, const char *blob,
                     int share, gid_t gid, char *err, size_t errlen)
{
	char from[PATH_MAX], to[PATH_MAX];

	cs_path(from, sizeof(from), tmpdir, file);
	cs_path(to, sizeof(to), blobs, blob);
	if (share && priv_share(from, gid, S_IRGRP, err, errlen) < 0)
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
	size_t n = 0;
	FILE *f;
	int rc = -1;

	cs_path(blobs, sizeof(blobs), r->base, CS_BLOBS_DIR);
	snprintf(cur, sizeof(cur), "%s/sets/%s", r->base, r->cur_id);
	recs = malloc((2 * r->next.n + 1) * sizeof(*recs));
	if (recs == NULL) {
		cs_err(r, "out of memory while writing the set index");
		return -1;
	}
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
				                r->gid, r->err, sizeof(r->err));
			else if (!r->cur_indexed)
				ret = place_old(cur, blobs, files[k], rec->blob, r->err,
				                sizeof(r->err));
			if (ret < 0)
				goto out;
		}
	}
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
	rc = 0;
out:
	free(recs);
	return rc;
}

/* ---- removing sets and their blobs ---- */

/* A set of strings (blob names), open addressing; the strings are borrowed
 * from the index buffers that outlive it. */
struct strset {
	const char **v;
	size_t cap, n;
};

static size_t str_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int strset_add(struct strset *s, const char *k)
{
	if (2 * (s->n + 1) > s->cap) {
		struct strset g = {.cap = s->cap ? 2 * s->cap : 1024};

		g.v = calloc(g.cap, sizeof(*g.v));
		if (g.v == NULL)
			return -1;
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i] != NULL)
				strset_add(&g, s->v[i]);
		free(s->v);
		*s = g;
	}
	for (size_t h = str_hash(k) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
		if (s->v[h] == NULL) {
			s->v[h] = k;
			s->n++;
			return 0;
		}
		if (strcmp(s->v[h], k) == 0)
			return 0;
	}
}

static int strset_has(const struct strset *s, const char *k)
{
	if (s->cap == 0)
		return 0;
	for (size_t h = str_hash(k) & (s->cap - 1); s->v[h] != NULL; h = (h + 1) & (s->cap - 1))
		if (strcmp(s->v[h], k) == 0)
			return 1;
	return 0;
}

/* One set's CERT_SET_FILE, split into records in place. */
struct setidx {
	char *buf;
	char **file, **blob;
	size_t n;
};

static void setidx_free(struct setidx *x)
{
	free(x->buf);
	free(x->file);
	free(x->blob);
	memset(x, 0, sizeof(*x));
}

/* Reads sets/ID's index: 0, 1 if the set has none (a hardlinked set), -1
 * if it cannot be read. */
static int setidx_read(const char *sets, const char *id, struct setidx *x)
{
	char path[PATH_MAX];
	struct stat st;
	size_t len, cap;
	FILE *f;

	memset(x, 0, sizeof(*x));
	snprintf(path, sizeof(path), "%s/%s/%s", sets, id, CERT_SET_FILE);
	f = fopen(path, "r");
	if (f == NULL)
		return errno == ENOENT ? 1 : -1;
	if (fstat(fileno(f), &st) != 0 || (x->buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	len = fread(x->buf, 1, (size_t)st.st_size, f);
	fclose(f);
	x->buf[len] = '\0';
	cap = 1;
	for (size_t i = 0; i < len; i++)
		cap += x->buf[i] == '\n';
	x->file = malloc(cap * sizeof(*x->file));
	x->blob = malloc(cap * sizeof(*x->blob));
	if (x->file == NULL || x->blob == NULL) {
		setidx_free(x);
		return -1;
	}
	/* The header is skipped; a torn line (no newline) is ignored. */
	for (char *l = strchr(x->buf, '\n'); l != NULL && l[1] != '\0';) {
		char *nl = strchr(l + 1, '\n'), *sp;

		if (nl == NULL)
			break;
		*nl = '\0';
		sp = strchr(l + 1, ' ');
		if (sp != NULL) {
			*sp = '\0';
			x->file[x->n] = l + 1;
			x->blob[x->n++] = sp + 1;
		}
		l = nl;
	}
	return 0;
}

/* Removes every blob that no kept set (x[i] with doomed_set[i] 0) names.
 * For a run after a crash: it reads the whole blob directory. */
static void sweep(const char *blobs, const struct setidx *x, size_t n,
                  const unsigned char *doomed_set)
{
	struct strset named = {0};
	struct dirent *de;
	DIR *d;

	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; !doomed_set[i] && k < x[i].n; k++)
			if (strset_add(&named, x[i].blob[k]) < 0)
				goto out;
	d = opendir(blobs);
	if (d == NULL)
		goto out;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && !strset_has(&named, de->d_name))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
out:
	free(named.v);
}

int cs_blobs_prune(const char *base, char **ids, size_t n, const unsigned char *doomed_set,
                   int full)
{
	char sets[PATH_MAX], blobs[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
	struct setidx *x = calloc(n + 1, sizeof(*x));
	struct strset doomed = {0}, rescued = {0};
	int rc = -1;

	cs_path(sets, sizeof(sets), base, "sets");
	cs_path(blobs, sizeof(blobs), base, CS_BLOBS_DIR);
	if (x == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (setidx_read(sets, ids[i], &x[i]) < 0)
			goto out; /* unsure what a set names: remove nothing */
	/* The candidates: what a removed set names and the next set (the one
	 * built from it) does not. A blob is named by the same record in
	 * consecutive sets unless its unit changed, so this is a merge of two
	 * sorted indexes, not a table of every blob. */
	for (size_t i = 0; i + 1 < n && !full; i++) {
		const struct setidx *a = &x[i], *b = &x[i + 1];
		size_t j = 0, k = 0;

		if (!doomed_set[i])
			continue;
		while (j < a->n) {
			int c = k == b->n ? -1 : strcmp(a->file[j], b->file[k]);

			if (c > 0) {
				k++;
				continue;
			}
			if ((c < 0 || strcmp(a->blob[j], b->blob[k]) != 0) &&
			    strset_add(&doomed, a->blob[j]) < 0)
				goto out;
			j++;
			k += c == 0;
		}
	}
	/* A blob may be named again by a later set (a revert to the same
	 * bytes), or under another name: only what no kept set names goes. */
	for (size_t i = 0; i < n && doomed.n > 0; i++)
		for (size_t k = 0; !doomed_set[i] && k < x[i].n; k++)
			if (strset_has(&doomed, x[i].blob[k]) &&
			    strset_add(&rescued, x[i].blob[k]) < 0)
				goto out;
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
	if (full) {
		sweep(blobs, x, n, doomed_set);
	} else {
		for (size_t h = 0; h < doomed.cap; h++)
			if (doomed.v[h] != NULL && !strset_has(&rescued, doomed.v[h]) &&
			    cs_path(p, sizeof(p), blobs, doomed.v[h]) == 0)
				unlink(p);
	}
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
