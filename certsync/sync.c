/*
 * certsync: see cs.h and docs/certsync.md.
 *
 * State lives in STATE_DIR/certsync/:
 *   lock          flock(2)ed by the run; the kernel drops it if a run dies
 *   manifest      the source's stat tuples and hashes at the last promotion
 *   verdicts      validation verdicts by content hash
 *   staging/      filled by a source command
 *   sets/ID/      one immutable certificate set, with its .certsync-index
 *   current       symlink to sets/ID, switched with rename(2)
 *
 * Crash safety rests on two rules: a set directory only gets its final name
 * (rename of ID.tmp) once it is complete and synced, and `current` only ever
 * changes by rename. So kill -9 at any point leaves either the old current
 * or the new one, never a half-written set; leftover *.tmp are removed by the
 * next run.
 */
#include "certsync/cs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "certstore/cert.h"
#include "common/cfg.h"
#include "common/ctl.h"
#include "common/json.h"
#include "common/log.h"

struct cs_run {
	const struct cfg *cfg;
	int dry_run, json, allow_mass_delete, no_reload;
	char base[PATH_MAX];   /* STATE_DIR/certsync */
	char source[PATH_MAX]; /* directory the certificates are read from */
	char cur_id[256];      /* the set `current` points at, "" if none */
	char new_id[256];
	int promoted;          /* current now points at new_id */
	char tmpdir[PATH_MAX]; /* sets/NEW_ID.tmp */
	struct cs_file *src;   /* the source, sorted by name */
	size_t nsrc;
	struct cs_file *man; /* last manifest, sorted by name */
	size_t nman;
	struct cs_units cur;      /* units of the current set (from its index) */
	struct cs_units next;     /* units of the set being built */
	struct cs_units verdicts; /* cache: hash -> verdict */
	size_t validated, cached, changed_units;
	size_t old_names, new_names, gone_names;
	char err[2048];
};

static void cs_err(struct cs_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cs_err(struct cs_run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static int cs_path(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

/* ---- unit lists ---- */

static struct cs_unit *cs_units_add(struct cs_units *u)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		struct cs_unit *nv = realloc(u->v, cap * sizeof(*nv));
		if (nv == NULL)
			return NULL;
		u->v = nv;
		u->cap = cap;
	}
	memset(&u->v[u->n], 0, sizeof(u->v[0]));
	return &u->v[u->n++];
}

static void cs_units_free(struct cs_units *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		free(u->v[i].keyfile);
		free(u->v[i].names);
		free(u->v[i].msg);
	}
	free(u->v);
	memset(u, 0, sizeof(*u));
}

static int cs_unit_by_name(const void *a, const void *b)
{
	return strcmp(((const struct cs_unit *)a)->name, ((const struct cs_unit *)b)->name);
}

static int cs_unit_by_hash(const void *a, const void *b)
{
	return strcmp(((const struct cs_unit *)a)->hash, ((const struct cs_unit *)b)->hash);
}

static struct cs_unit *cs_find_name(struct cs_units *u, const char *name)
{
	struct cs_unit key = {.name = (char *)name};
	return u->n ? bsearch(&key, u->v, u->n, sizeof(key), cs_unit_by_name) : NULL;
}

static struct cs_unit *cs_find_hash(struct cs_units *u, const char *hash)
{
	struct cs_unit key;

	memcpy(key.hash, hash, CS_HASH_HEX);
	return u->n ? bsearch(&key, u->v, u->n, sizeof(key), cs_unit_by_hash) : NULL;
}

/* Copies the verdict part (not the file names) of src into dst. */
static int cs_unit_set_verdict(struct cs_unit *dst, const struct cs_unit *src)
{
	dst->sev = src->sev;
	dst->not_after = src->not_after;
	free(dst->names);
	free(dst->msg);
	dst->names = strdup(src->names ? src->names : "");
	dst->msg = src->msg ? strdup(src->msg) : NULL;
	return (dst->names == NULL || (src->msg && dst->msg == NULL)) ? -1 : 0;
}

/*
 * Unit lists are stored one unit per line:
 *   NAME <TAB> KEYFILE|- <TAB> HASH <TAB> SEV <TAB> NOT_AFTER <TAB> NAMES|- <TAB> MESSAGE|-
 * The same format serves set indexes and the verdict cache.
 */
static int cs_units_load(const char *path, struct cs_units *u)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (getline(&line, &cap, f) > 0) {
		char *fld[7], *save = NULL, *p = line;
		struct cs_unit *x;
		int n = 0;

		line[strcspn(line, "\n")] = '\0';
		for (; n < 7 && (fld[n] = strtok_r(p, "\t", &save)) != NULL; n++)
			p = NULL;
		if (n != 7 || strlen(fld[2]) != CS_HASH_HEX - 1)
			continue; /* a torn line from an older crash: ignore it */
		x = cs_units_add(u);
		if (x == NULL)
			break;
		x->name = strdup(fld[0]);
		x->keyfile = strcmp(fld[1], "-") ? strdup(fld[1]) : NULL;
		memcpy(x->hash, fld[2], CS_HASH_HEX);
		x->sev = atoi(fld[3]);
		x->not_after = (time_t)strtoll(fld[4], NULL, 10);
		x->names = strdup(strcmp(fld[5], "-") ? fld[5] : "");
		x->msg = strcmp(fld[6], "-") ? strdup(fld[6]) : NULL;
	}
	free(line);
	fclose(f);
	return 0;
}

/* Writes path atomically: PATH.tmp, fsync, rename. */
static int cs_units_save(const char *path, const struct cs_units *u)
{
	char tmp[PATH_MAX];
	FILE *f;
	int rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -1;
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	for (size_t i = 0; i < u->n; i++) {
		const struct cs_unit *x = &u->v[i];
		char msg[512];

		/* Messages are single-line; keep tabs and newlines out. */
		/* A rejected version's message describes a file that is not in
		 * the set; the kept version is recorded clean. */
		snprintf(msg, sizeof(msg), "%s", (x->msg && !x->rejected) ? x->msg : "-");
		for (char *p = msg; *p; p++)
			if (*p == '\t' || *p == '\n')
				*p = ' ';
		fprintf(f, "%s\t%s\t%s\t%d\t%lld\t%s\t%s\n", x->name, x->keyfile ? x->keyfile : "-",
		        x->hash, x->sev, (long long)x->not_after,
		        (x->names && *x->names) ? x->names : "-", msg);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* ---- files ---- */

static int cs_file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cs_file *)a)->name, ((const struct cs_file *)b)->name);
}

static void cs_files_free(struct cs_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(f[i].name);
	free(f);
}

static int cs_is_cert_file(const char *name)
{
	size_t n = strlen(name);

	if (name[0] == '.')
		return 0;
	return (n > 4 && (strcmp(name + n - 4, ".pem") == 0 || strcmp(name + n - 4, ".crt") == 0 ||
	                  strcmp(name + n - 4, ".key") == 0));
}

/* Lists the certificate files of dir (regular files, no dotfiles), sorted. */
static int cs_scan(struct cs_run *r, const char *dir, struct cs_file **out, size_t *nout)
{
	DIR *d = opendir(dir);
	struct cs_file *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (d == NULL) {
		cs_err(r, "%s: cannot read the certificate source: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (!cs_is_cert_file(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct cs_file *nv = realloc(v, cap * sizeof(*nv));
			if (nv == NULL)
				goto oom;
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		v[n].name = strdup(de->d_name);
		if (v[n].name == NULL)
			goto oom;
		v[n].size = st.st_size;
		v[n].mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		n++;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), cs_file_cmp);
	*out = v;
	*nout = n;
	return 0;
oom:
	closedir(d);
	cs_files_free(v, n);
	cs_err(r, "out of memory while scanning %s", dir);
	return -1;
}

static int cs_manifest_load(struct cs_run *r)
{
	char path[PATH_MAX];
	FILE *f;
	char name[NAME_MAX + 1], hash[CS_HASH_HEX];
	long long size, mtime;
	size_t cap = 0;

	cs_path(path, sizeof(path), r->base, "manifest");
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fscanf(f, "%255s %lld %lld %64s", name, &size, &mtime, hash) == 4) {
		if (r->nman == cap) {
			cap = cap ? cap * 2 : 1024;
			struct cs_file *nv = realloc(r->man, cap * sizeof(*nv));
			if (nv == NULL)
				break;
			r->man = nv;
		}
		r->man[r->nman].name = strdup(name);
		r->man[r->nman].size = size;
		r->man[r->nman].mtime_ns = mtime;
		memcpy(r->man[r->nman].hash, hash, CS_HASH_HEX);
		r->nman++;
	}
	fclose(f);
	qsort(r->man, r->nman, sizeof(*r->man), cs_file_cmp);
	return 0;
}

static int cs_manifest_save(struct cs_run *r)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;
	int rc = 0;

	cs_path(path, sizeof(path), r->base, "manifest");
	cs_path(tmp, sizeof(tmp), r->base, "manifest.tmp");
	f = fopen(tmp, "w");
	if (f == NULL)
		return -1;
	for (size_t i = 0; i < r->nsrc; i++)
		fprintf(f, "%s %lld %lld %s\n", r->src[i].name, (long long)r->src[i].size,
		        (long long)r->src[i].mtime_ns, r->src[i].hash);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return (rc == 0 && rename(tmp, path) == 0) ? 0 : -1;
}

static const struct cs_file *cs_man_find(struct cs_run *r, const char *name)
{
	struct cs_file key = {.name = (char *)name};
	return r->nman ? bsearch(&key, r->man, r->nman, sizeof(key), cs_file_cmp) : NULL;
}

static void cs_hex(const unsigned char *md, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

/*
 * Copies src/NAME into the new set and hashes exactly the bytes it copied,
 * so a file that changes while we read it can never be validated in one
 * version and served in another.
 */
static int cs_copy_hash(struct cs_run *r, struct cs_file *f)
{
	char from[PATH_MAX], to[PATH_MAX];
	unsigned char buf[65536], md[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int in = -1, out = -1, rc = -1;
	ssize_t n;

	cs_path(from, sizeof(from), r->source, f->name);
	cs_path(to, sizeof(to), r->tmpdir, f->name);
	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		cs_err(r, "%s: cannot read: %s", from, strerror(errno));
		goto out;
	}
	if (!r->dry_run) {
		out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (out < 0) {
			cs_err(r, "%s: cannot write: %s", to, strerror(errno));
			goto out;
		}
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		if (out >= 0 && write(out, buf, (size_t)n) != n) {
			cs_err(r, "%s: write failed: %s", to, strerror(errno));
			goto out;
		}
	}
	if (n < 0) {
		cs_err(r, "%s: read failed: %s", from, strerror(errno));
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

/* Links sets/CUR/NAME into the new set under the same name. */
static int cs_link_prev(struct cs_run *r, const char *name)
{
	char from[PATH_MAX], to[PATH_MAX], set[PATH_MAX];

	if (r->dry_run)
		return 0;
	snprintf(set, sizeof(set), "%s/sets/%s", r->base, r->cur_id);
	cs_path(from, sizeof(from), set, name);
	cs_path(to, sizeof(to), r->tmpdir, name);
	unlink(to);
	if (link(from, to) != 0) {
		cs_err(r, "%s: cannot hardlink into the new set: %s", from, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- the run ---- */

static int cs_lock(struct cs_run *r, int *fd)
{
	char path[PATH_MAX];

	cs_path(path, sizeof(path), r->base, "lock");
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		cs_err(r, "%s: cannot open the lock file: %s", path, strerror(errno));
		return -1;
	}
	/* flock, not a pid file: the kernel releases it when a run dies, so
	 * a crashed run never blocks the next one. */
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
		return 1;
	return 0;
}

static int cs_mkdirs(struct cs_run *r)
{
	char p[PATH_MAX];
	const char *sub[] = {"", "/sets", "/staging"};

	if (mkdir(r->cfg->supervisor.state_dir, 0750) != 0 && errno != EEXIST) {
		cs_err(r, "%s: cannot create the state directory: %s", r->cfg->supervisor.state_dir,
		       strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", r->base, sub[i]);
		if (mkdir(p, 0750) != 0 && errno != EEXIST) {
			cs_err(r, "%s: cannot create: %s", p, strerror(errno));
			return -1;
		}
	}
	return 0;
}

static void cs_rmtree(const char *dir)
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

static int cs_id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Removes *.tmp sets left by a killed run and all but the newest `keep`
 * complete sets; the current set is never removed. */
static void cs_prune(struct cs_run *r, size_t keep)
{
	char sets[PATH_MAX], p[PATH_MAX];
	char **ids = NULL;
	size_t n = 0, cap = 0;
	DIR *d;
	struct dirent *de;

	cs_path(sets, sizeof(sets), r->base, "sets");
	d = opendir(sets);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0) {
			cs_path(p, sizeof(p), sets, de->d_name);
			if (strcmp(p, r->tmpdir) != 0)
				cs_rmtree(p);
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nv = realloc(ids, cap * sizeof(*nv));
			if (nv == NULL)
				break;
			ids = nv;
		}
		ids[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n > 0)
		qsort(ids, n, sizeof(*ids), cs_id_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + keep < n && strcmp(ids[i], r->cur_id) != 0) {
			cs_path(p, sizeof(p), sets, ids[i]);
			cs_rmtree(p);
		}
		free(ids[i]);
	}
	free(ids);
}

static void cs_read_current(struct cs_run *r)
{
	char link[PATH_MAX], target[PATH_MAX], idx[PATH_MAX];
	ssize_t n;

	cs_path(link, sizeof(link), r->base, "current");
	n = readlink(link, target, sizeof(target) - 1);
	r->cur_id[0] = '\0';
	if (n <= 0)
		return;
	target[n] = '\0';
	/* current -> sets/ID */
	snprintf(r->cur_id, sizeof(r->cur_id), "%s",
	         strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	snprintf(idx, sizeof(idx), "%s/sets/%s/%s", r->base, r->cur_id, CS_INDEX_NAME);
	cs_units_load(idx, &r->cur);
	if (r->cur.n > 0)
		qsort(r->cur.v, r->cur.n, sizeof(r->cur.v[0]), cs_unit_by_name);
}

/* Points `current` at sets/ID with one rename, so readers see either the old
 * or the new target. */
static int cs_point_current(struct cs_run *r, const char *id)
{
	char link[PATH_MAX], tmp[PATH_MAX], target[PATH_MAX];

	cs_path(link, sizeof(link), r->base, "current");
	cs_path(tmp, sizeof(tmp), r->base, "current.tmp");
	snprintf(target, sizeof(target), "sets/%s", id);
	unlink(tmp);
	if (symlink(target, tmp) != 0 || rename(tmp, link) != 0) {
		cs_err(r, "%s: cannot switch the current link: %s", link, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Groups the source files into units and computes each unit's hash. A .key
 * without its .crt, and a .crt without its .key, are units of their own that
 * the validator then rejects with a clear message. */
static int cs_build_units(struct cs_run *r)
{
	for (size_t i = 0; i < r->nsrc; i++) {
		const char *name = r->src[i].name;
		size_t len = strlen(name);
		struct cs_unit *u;
		const struct cs_file *key = NULL;

		if (strcmp(name + len - 4, ".key") == 0) {
			char crt[NAME_MAX + 1];
			struct cs_file k;

			snprintf(crt, sizeof(crt), "%.*s.crt", (int)(len - 4), name);
			k.name = crt;
			if (bsearch(&k, r->src, r->nsrc, sizeof(k), cs_file_cmp) != NULL)
				continue; /* belongs to NAME.crt's unit */
		}
		if (strcmp(name + len - 4, ".crt") == 0) {
			char kn[NAME_MAX + 1];
			struct cs_file k;

			snprintf(kn, sizeof(kn), "%.*s.key", (int)(len - 4), name);
			k.name = kn;
			key = bsearch(&k, r->src, r->nsrc, sizeof(k), cs_file_cmp);
		}
		u = cs_units_add(&r->next);
		if (u == NULL)
			return -1;
		u->name = strdup(name);
		u->keyfile = key ? strdup(key->name) : NULL;
		if (key == NULL) {
			memcpy(u->hash, r->src[i].hash, CS_HASH_HEX);
		} else {
			/* The unit hash covers both files, in order. */
			unsigned char md[32];
			char both[2 * CS_HASH_HEX];

			snprintf(both, sizeof(both), "%s%s", r->src[i].hash, key->hash);
			EVP_Digest(both, strlen(both), md, NULL, EVP_sha256(), NULL);
			cs_hex(md, u->hash);
		}
	}
	return 0;
}

/*
 * Validates every unit whose hash has no cached verdict, with the
 * certificate store itself: the changed files are hardlinked into a scratch
 * directory and loaded exactly the way an instance would load them.
 */
static int cs_validate(struct cs_run *r, const struct cert_opts *opts)
{
	char scratch[PATH_MAX], from[PATH_MAX], to[PATH_MAX];
	struct cert_report *rep = NULL;
	struct cert_store *store;
	struct cs_units fresh = {0};
	size_t todo = 0;

	snprintf(scratch, sizeof(scratch), "%s/validate.tmp", r->base);
	cs_rmtree(scratch);
	if (mkdir(scratch, 0700) != 0) {
		cs_err(r, "%s: cannot create: %s", scratch, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		struct cs_unit *c = cs_find_hash(&r->verdicts, u->hash);
		const char *files[2] = {u->name, u->keyfile};

		if (c != NULL) {
			if (cs_unit_set_verdict(u, c) < 0)
				return -1;
			r->cached++;
			continue;
		}
		for (int k = 0; k < 2 && files[k] != NULL; k++) {
			/* In a dry run nothing was copied: validate the source. */
			cs_path(from, sizeof(from), r->dry_run ? r->source : r->tmpdir, files[k]);
			cs_path(to, sizeof(to), scratch, files[k]);
			if (link(from, to) != 0 && symlink(from, to) != 0) {
				cs_err(r, "%s: cannot stage for validation: %s", from,
				       strerror(errno));
				return -1;
			}
		}
		u->sev = -1; /* to be filled from the report */
		todo++;
	}
	r->validated = todo;
	if (todo == 0) {
		cs_rmtree(scratch);
		return 0;
	}
	store = cert_store_load(scratch, opts, &rep);
	if (store == NULL) {
		cs_err(r, "%s: validation failed: %s", scratch,
		       rep && cert_report_fatal(rep) ? cert_report_fatal(rep) : "unknown error");
		cert_report_free(rep);
		return -1;
	}
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *msg;
		const char *file = cert_report_entry(rep, i, &sev, &msg);
		struct cs_unit *u = file ? cs_find_name(&r->next, file) : NULL;

		if (u == NULL || u->sev != -1)
			continue;
		u->sev = (int)sev;
		free(u->msg);
		u->msg = msg ? strdup(msg) : NULL;
		free(u->names);
		u->names = strdup("");
	}
	/* Names and expiry per file, from what the store actually indexed. */
	for (size_t i = 0; i < cert_store_nnames(store); i++) {
		const char *name = cert_store_name_at(store, i);
		int dflt = 0;
		const struct cert_item *it =
		    cert_store_lookup(store, name, strlen(name), CERT_LOOKUP_ECDSA_OK, &dflt);
		struct cs_unit *u =
		    (it && !dflt) ? cs_find_name(&r->next, cert_item_file(it)) : NULL;
		size_t old;
		char *nn;

		if (u == NULL || u->names == NULL)
			continue;
		old = strlen(u->names);
		nn = realloc(u->names, old + strlen(name) + 2);
		if (nn == NULL)
			continue;
		snprintf(nn + old, strlen(name) + 2, "%s%s", old ? "," : "", name);
		u->names = nn;
		u->not_after = cert_item_not_after(it);
	}
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		struct cs_unit *c;

		if (u->sev == -1) {
			/* The store never mentioned it: treat as rejected. */
			u->sev = CERT_SKIP;
			u->msg = strdup("not recognised as a certificate file by the store");
			u->names = strdup("");
		}
		if (cs_find_hash(&r->verdicts, u->hash) != NULL)
			continue;
		c = cs_units_add(&fresh);
		if (c == NULL)
			break;
		c->name = strdup(u->name);
		memcpy(c->hash, u->hash, CS_HASH_HEX);
		cs_unit_set_verdict(c, u);
	}
	/* Merge the fresh verdicts into the cache, keeping it sorted. */
	for (size_t i = 0; i < fresh.n; i++) {
		struct cs_unit *c = cs_units_add(&r->verdicts);
		if (c == NULL)
			break;
		*c = fresh.v[i];
	}
	free(fresh.v);
	if (r->verdicts.n > 0)
		qsort(r->verdicts.v, r->verdicts.n, sizeof(r->verdicts.v[0]), cs_unit_by_hash);
	cert_store_unref(store);
	cert_report_free(rep);
	cs_rmtree(scratch);
	return 0;
}

/* Counts the distinct names of a unit list (names may repeat across files). */
static size_t cs_count_names(const struct cs_units *u, int (*want)(const struct cs_unit *))
{
	size_t n = 0;

	for (size_t i = 0; i < u->n; i++) {
		const char *p = u->v[i].names;

		if (want != NULL && !want(&u->v[i]))
			continue;
		while (p && *p) {
			n++;
			p = strchr(p, ',');
			p = p ? p + 1 : NULL;
		}
	}
	return n;
}

static int cs_served(const struct cs_unit *u)
{
	return u->sev != CERT_SKIP;
}

static int cs_str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits the names of every wanted unit into one sorted array of strings
 * (the caller frees the array and *buf). */
static char **cs_name_array(const struct cs_units *u, int (*want)(const struct cs_unit *),
                            size_t *n, char **buf)
{
	size_t total = cs_count_names(u, want), len = 0, k = 0;
	char **v;

	for (size_t i = 0; i < u->n; i++)
		len += u->v[i].names ? strlen(u->v[i].names) + 1 : 0;
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
	qsort(v, k, sizeof(*v), cs_str_cmp);
	*n = k;
	return v;
}

/* The mass-deletion guard counts how many of the current set's names the
 * new set would no longer serve. */
static int cs_guard_count(struct cs_run *r)
{
	char *oldbuf = NULL, *newbuf = NULL;
	size_t nold = 0, nnew = 0;
	char **oldv = cs_name_array(&r->cur, NULL, &nold, &oldbuf);
	char **newv = cs_name_array(&r->next, cs_served, &nnew, &newbuf);
	int rc = -1;

	if (oldv == NULL || newv == NULL) {
		cs_err(r, "out of memory in the mass-deletion guard");
		goto out;
	}
	r->old_names = nold;
	r->new_names = nnew;
	r->gone_names = 0;
	for (size_t i = 0; i < nold; i++)
		if (bsearch(&oldv[i], newv, nnew, sizeof(*newv), cs_str_cmp) == NULL)
			r->gone_names++;
	rc = 0;
out:
	free(oldv);
	free(newv);
	free(oldbuf);
	free(newbuf);
	return rc;
}

/* Expiring soon: served units whose leaf expires within the warning window. */
static int cs_expiring(const struct cs_run *r, const struct cs_unit *u)
{
	time_t limit = time(NULL) + (time_t)r->cfg->certsync.expiry_warn_days * 86400;

	return cs_served(u) && u->not_after != 0 && u->not_after < limit;
}

/* Asks switchyardd to load the set and flip; waits for the result. */
static int cs_supervisor(struct cs_run *r, const char *line, int timeout_ms)
{
	char err[512], *reply = NULL;
	struct json_doc *doc;
	int ok = 0;

	if (ctl_request(r->cfg->supervisor.control_socket, line, &reply, timeout_ms, err,
	                sizeof(err)) < 0) {
		cs_err(r, "switchyardd is not reachable, nothing was promoted: %s", err);
		return -1;
	}
	doc = json_parse(reply, NULL, 0);
	free(reply);
	if (json_get_bool(doc, "ok", &ok) < 0 || !ok) {
		const char *why = json_str(doc, "error");

		cs_err(r, "switchyardd refused '%s': %s", line,
		       why != NULL ? why : "no reason given");
		json_doc_free(doc);
		return -1;
	}
	json_doc_free(doc);
	return 0;
}

static void cs_print(struct cs_run *r, const char *status, int code, double ms)
{
	size_t bad = 0, kept = 0;

	for (size_t i = 0; i < r->next.n; i++) {
		bad += r->next.v[i].rejected;
		kept += r->next.v[i].kept_prev;
	}
	if (r->json) {
		struct json_buf jb;

		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		jb_str(&jb, "status", status);
		jb_int(&jb, "exit", code);
		if (r->err[0])
			jb_str(&jb, "error", r->err);
		jb_str(&jb, "source", r->source);
		jb_str(&jb, "previous_set", r->cur_id[0] ? r->cur_id : NULL);
		jb_str(&jb, "set", r->promoted ? r->new_id : NULL);
		jb_uint(&jb, "files", r->nsrc);
		jb_uint(&jb, "units", r->next.n);
		jb_uint(&jb, "changed", r->changed_units);
		jb_uint(&jb, "validated", r->validated);
		jb_uint(&jb, "cached_verdicts", r->cached);
		jb_uint(&jb, "skipped", bad);
		jb_uint(&jb, "kept_previous", kept);
		jb_uint(&jb, "names_before", r->old_names);
		jb_uint(&jb, "names_after", r->new_names);
		jb_uint(&jb, "names_gone", r->gone_names);
		jb_arr_begin(&jb, "problems");
		for (size_t i = 0; i < r->next.n; i++) {
			const struct cs_unit *u = &r->next.v[i];

			if (u->msg == NULL)
				continue;
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "file", u->name);
			jb_str(&jb, "severity", u->rejected ? "skipped" : "warning");
			jb_str(&jb, "message", u->msg);
			jb_bool(&jb, "kept_previous", u->kept_prev);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		jb_arr_begin(&jb, "expiring");
		for (size_t i = 0; i < r->next.n; i++) {
			const struct cs_unit *u = &r->next.v[i];

			if (!cs_expiring(r, u))
				continue;
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "file", u->name);
			jb_str(&jb, "names", u->names);
			jb_int(&jb, "not_after", (int64_t)u->not_after);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		jb_double(&jb, "duration_ms", ms);
		jb_obj_end(&jb);
		printf("%s\n", jb_cstr(&jb));
		jb_free(&jb);
		return;
	}
	for (size_t i = 0; i < r->next.n; i++) {
		const struct cs_unit *u = &r->next.v[i];

		if (u->msg != NULL)
			printf("%s: %s/%s: %s%s\n", u->rejected ? "skipped" : "warning", r->source,
			       u->name, u->msg,
			       u->kept_prev ? " (the previous version stays served)" : "");
		if (cs_expiring(r, u)) {
			char when[32];
			struct tm tm;

			gmtime_r(&u->not_after, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
			printf("warning: %s/%s expires %s (%s)\n", r->source, u->name, when,
			       u->names);
		}
	}
	if (r->err[0])
		fprintf(stderr, "certsync: %s\n", r->err);
	printf("certsync: %s: %zu files, %zu changed, %zu validated (%zu cached), %zu skipped, "
	       "names %zu -> %zu (%zu gone)%s%s, %.0f ms\n",
	       status, r->nsrc, r->changed_units, r->validated, r->cached, bad, r->old_names,
	       r->new_names, r->gone_names, r->promoted ? ", set " : "",
	       r->promoted ? r->new_id : "", ms);
}

/* Not fatal if this fails: the next run re-validates what it cannot find. */
static void cs_save_verdicts(struct cs_run *r)
{
	char vfile[PATH_MAX];

	cs_path(vfile, sizeof(vfile), r->base, "verdicts");
	if (cs_units_save(vfile, &r->verdicts) < 0)
		log_warn("%s: cannot save the verdict cache", vfile);
}

static int cs_execute(struct cs_run *r)
{
	struct cert_opts opts;
	char idx[PATH_MAX], final[PATH_MAX], vpath[PATH_MAX];
	size_t bad = 0, changed_files = 0;
	int code;

	cs_read_current(r);
	if (r->cfg->certsync.source_command[0] != '\0') {
		cs_path(r->source, sizeof(r->source), r->base, "staging");
		if (cs_run_source(r->cfg->certsync.source_command, r->source,
		                  r->cfg->certsync.command_timeout_ms, r->err, sizeof(r->err)) < 0)
			return CS_EXIT_ERROR;
	} else if (r->cfg->certsync.source_dir[0] != '\0') {
		snprintf(r->source, sizeof(r->source), "%s", r->cfg->certsync.source_dir);
	} else {
		cs_err(r, "%s: certsync.source has neither a directory nor a command",
		       r->cfg->path);
		return CS_EXIT_ERROR;
	}
	if (cs_scan(r, r->source, &r->src, &r->nsrc) < 0)
		return CS_EXIT_ERROR;
	cs_manifest_load(r);

	/* The fast path: same names with the same size and mtime as at the
	 * last promotion, and that promotion is still current. */
	if (r->nsrc == r->nman && r->cur_id[0] != '\0') {
		size_t i;

		for (i = 0; i < r->nsrc; i++)
			if (strcmp(r->src[i].name, r->man[i].name) != 0 ||
			    r->src[i].size != r->man[i].size ||
			    r->src[i].mtime_ns != r->man[i].mtime_ns)
				break;
		if (i == r->nsrc)
			return -1; /* no changes */
	}

	snprintf(r->new_id, sizeof(r->new_id), "%lld-%d", (long long)time(NULL), (int)getpid());
	snprintf(r->tmpdir, sizeof(r->tmpdir), "%s/sets/%s.tmp", r->base, r->new_id);
	if (!r->dry_run && mkdir(r->tmpdir, 0750) != 0) {
		cs_err(r, "%s: cannot create the new set: %s", r->tmpdir, strerror(errno));
		return CS_EXIT_ERROR;
	}
	/* Hash every file whose stat tuple changed (copying it into the new
	 * set as we go); reuse the manifest hash of the others. */
	for (size_t i = 0; i < r->nsrc; i++) {
		struct cs_file *f = &r->src[i];
		const struct cs_file *m = cs_man_find(r, f->name);

		if (m != NULL && m->size == f->size && m->mtime_ns == f->mtime_ns) {
			memcpy(f->hash, m->hash, CS_HASH_HEX);
			continue;
		}
		if (cs_copy_hash(r, f) < 0)
			return CS_EXIT_ERROR;
		changed_files++;
	}
	if (cs_build_units(r) < 0) {
		cs_err(r, "out of memory");
		return CS_EXIT_ERROR;
	}
	cs_path(idx, sizeof(idx), r->base, "verdicts");
	cs_units_load(idx, &r->verdicts);
	if (r->verdicts.n > 0)
		qsort(r->verdicts.v, r->verdicts.n, sizeof(r->verdicts.v[0]), cs_unit_by_hash);
	/* Units whose content is already in the current set are linked from it
	 * and inherit its verdict; the rest are new and were copied above. */
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		struct cs_unit *c = cs_find_name(&r->cur, u->name);

		if (c != NULL && strcmp(c->hash, u->hash) == 0) {
			if (cs_unit_set_verdict(u, c) < 0 || cs_link_prev(r, u->name) < 0 ||
			    (u->keyfile && cs_link_prev(r, u->keyfile) < 0))
				return CS_EXIT_ERROR;
			continue;
		}
		r->changed_units++;
		/* A unit whose stat tuple did not change but whose content is not
		 * in the current set (e.g. the current set kept an older version)
		 * still needs its bytes in the new set. */
		const char *files[2] = {u->name, u->keyfile};
		for (int k = 0; k < 2 && files[k] != NULL; k++) {
			char p[PATH_MAX];
			struct stat st;

			cs_path(p, sizeof(p), r->tmpdir, files[k]);
			if (!r->dry_run && stat(p, &st) != 0) {
				struct cs_file key = {.name = (char *)files[k]};
				struct cs_file *f =
				    bsearch(&key, r->src, r->nsrc, sizeof(key), cs_file_cmp);

				if (f == NULL || cs_copy_hash(r, f) < 0)
					return CS_EXIT_ERROR;
			}
		}
		u->sev = -2; /* to validate */
	}
	/* Removed units count as changes too. */
	for (size_t i = 0; i < r->cur.n; i++)
		if (cs_find_name(&r->next, r->cur.v[i].name) == NULL)
			r->changed_units++;

	cert_opts_from_cfg(&opts, r->cfg);
	opts.default_cert = NULL;
	{
		/* Validate only the changed units: the others keep their verdict. */
		struct cs_units todo = r->next, keep = {0};

		r->next = keep;
		for (size_t i = 0; i < todo.n; i++) {
			if (todo.v[i].sev != -2)
				continue;
			struct cs_unit *x = cs_units_add(&r->next);
			if (x == NULL)
				return CS_EXIT_ERROR;
			*x = todo.v[i];
			x->sev = 0;
		}
		int vrc = cs_validate(r, &opts);

		/* The subset shares its strings with todo; copy the (possibly
		 * replaced) pointers back so each is owned exactly once. */
		for (size_t i = 0, j = 0; i < todo.n; i++)
			if (todo.v[i].sev == -2)
				todo.v[i] = r->next.v[j++];
		free(r->next.v);
		r->next = todo;
		if (vrc < 0)
			return CS_EXIT_ERROR;
	}
	/* A bad new version of a file keeps the previous good one, if any. */
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		struct cs_unit *c;
		char p[PATH_MAX];

		if (u->sev != CERT_SKIP)
			continue;
		u->rejected = 1;
		bad++;
		if (!r->dry_run) {
			cs_path(p, sizeof(p), r->tmpdir, u->name);
			unlink(p);
			if (u->keyfile) {
				cs_path(p, sizeof(p), r->tmpdir, u->keyfile);
				unlink(p);
			}
		}
		c = cs_find_name(&r->cur, u->name);
		if (c != NULL && c->sev != CERT_SKIP) {
			char *msg = u->msg;

			/* Serve the previous version's verdict and names, but keep
			 * the rejection message for the report. */
			u->msg = NULL;
			if (cs_unit_set_verdict(u, c) < 0)
				return CS_EXIT_ERROR;
			free(u->msg);
			u->msg = msg;
			u->kept_prev = 1;
			memcpy(u->hash, c->hash, CS_HASH_HEX);
			free(u->keyfile);
			u->keyfile = c->keyfile ? strdup(c->keyfile) : NULL;
			if (cs_link_prev(r, u->name) < 0 ||
			    (c->keyfile && cs_link_prev(r, c->keyfile) < 0))
				return CS_EXIT_ERROR;
		}
	}
	if (cs_guard_count(r) < 0)
		return CS_EXIT_ERROR;
	/* Every change rejected (and the previous versions kept): the new set
	 * would equal the current one, so promote nothing and flip nothing.
	 * The manifest is not saved either, so each run reports "partial"
	 * until the source is fixed; the cached verdicts keep that cheap. */
	if (r->cur_id[0] != '\0' && r->changed_units == bad && bad > 0) {
		if (!r->dry_run)
			cs_save_verdicts(r);
		return CS_EXIT_PARTIAL;
	}
	if (r->nsrc == 0 && r->cur.n == 0) {
		cs_err(r, "%s: the source holds no certificate files; nothing to promote",
		       r->source);
		return CS_EXIT_ERROR;
	}
	if (r->old_names > 0 && !r->allow_mass_delete &&
	    r->gone_names * 100 > (size_t)r->cfg->certsync.mass_delete_percent * r->old_names) {
		cs_err(r,
		       "refusing to promote: %zu of %zu names (%.1f%%) would disappear, more than "
		       "certsync.mass_delete_percent (%u%%); check the source %s, or rerun with "
		       "--allow-mass-delete",
		       r->gone_names, r->old_names,
		       100.0 * (double)r->gone_names / (double)r->old_names,
		       r->cfg->certsync.mass_delete_percent, r->source);
		return CS_EXIT_REFUSED;
	}
	if (r->changed_units == 0 && r->cur_id[0] != '\0') {
		/* Only stat tuples changed (a touch, or a re-sync of identical
		 * bytes): remember them and promote nothing. */
		if (!r->dry_run)
			cs_manifest_save(r);
		return -1;
	}
	code = bad ? CS_EXIT_PARTIAL : CS_EXIT_OK;
	if (r->dry_run)
		return code;

	/* Complete the set and give it its final name. */
	cs_path(idx, sizeof(idx), r->tmpdir, CS_INDEX_NAME);
	if (cs_units_save(idx, &r->next) < 0) {
		cs_err(r, "%s: cannot write the set index: %s", idx, strerror(errno));
		return CS_EXIT_ERROR;
	}
	/* One syncfs for the whole set instead of an fsync per file: the set
	 * must be durable before its final name makes it promotable. */
	{
		int dfd = open(r->tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd < 0 || syncfs(dfd) != 0) {
			cs_err(r, "%s: cannot sync the new set: %s", r->tmpdir, strerror(errno));
			if (dfd >= 0)
				close(dfd);
			return CS_EXIT_ERROR;
		}
		close(dfd);
	}
	snprintf(final, sizeof(final), "%s/sets/%s", r->base, r->new_id);
	if (rename(r->tmpdir, final) != 0) {
		cs_err(r, "%s: cannot complete the new set: %s", final, strerror(errno));
		return CS_EXIT_ERROR;
	}
	/* From here on a failure must not leave a complete, unpromoted set. */
	snprintf(r->tmpdir, sizeof(r->tmpdir), "%s", final);
	if (r->no_reload) {
		if (cs_point_current(r, r->new_id) < 0)
			return CS_EXIT_ERROR;
	} else {
		char line[PATH_MAX + 32];

		/* The supervisor must be there before anything is promoted. */
		if (cs_supervisor(r, "status", 5000) < 0)
			return CS_EXIT_ERROR;
		if (cs_point_current(r, r->new_id) < 0)
			return CS_EXIT_ERROR;
		if (realpath(final, vpath) == NULL)
			snprintf(vpath, sizeof(vpath), "%s", final);
		snprintf(line, sizeof(line), "reload --certs %s", vpath);
		if (cs_supervisor(r, line, 600000) < 0) {
			/* Put current back: the live traffic never saw this set. */
			char why[sizeof(r->err)];

			memcpy(why, r->err, sizeof(why));
			if (r->cur_id[0] != '\0')
				cs_point_current(r, r->cur_id);
			snprintf(r->err, sizeof(r->err), "%s; current switched back to set %s", why,
			         r->cur_id[0] ? r->cur_id : "(none)");
			return CS_EXIT_ERROR;
		}
	}
	/* Not fatal if this fails: the next run re-hashes what it cannot find. */
	if (cs_manifest_save(r) < 0)
		log_warn("%s/manifest: cannot save the manifest", r->base);
	cs_save_verdicts(r);
	snprintf(r->cur_id, sizeof(r->cur_id), "%s", r->new_id);
	r->tmpdir[0] = '\0';
	r->promoted = 1;
	return code;
}

int cs_cmd(const char *cfgpath, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"allow-mass-delete", no_argument, NULL, 'M'},
	    {"no-reload", no_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cs_run r;
	struct timespec t0, t1;
	struct cfg *cfg;
	int ch, lockfd = -1, code;
	const char *status;

	memset(&r, 0, sizeof(r));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			r.dry_run = 1;
			break;
		case 'j':
			r.json = 1;
			break;
		case 'M':
			r.allow_mass_delete = 1;
			break;
		case 'R':
			r.no_reload = 1;
			break;
		default:
			fprintf(stderr, "usage: switchyard certsync [-c FILE] [--dry-run] [--json] "
			                "[--allow-mass-delete] [--no-reload]\n");
			return ch == 'h' ? CS_EXIT_OK : CS_EXIT_USAGE;
		}
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return CS_EXIT_ERROR;
	r.cfg = cfg;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	snprintf(r.base, sizeof(r.base), "%s/certsync", cfg->supervisor.state_dir);
	if (cs_mkdirs(&r) < 0) {
		code = CS_EXIT_ERROR;
		status = "error";
		goto done;
	}
	switch (cs_lock(&r, &lockfd)) {
	case 1:
		printf("certsync: another run holds %s/lock; exiting without doing anything\n",
		       r.base);
		code = CS_EXIT_RUNNING;
		goto out;
	case -1:
		code = CS_EXIT_ERROR;
		status = "error";
		goto done;
	default:
		break;
	}
	code = cs_execute(&r);
	if (code == -1) {
		code = CS_EXIT_OK;
		status = "no changes";
	} else {
		static const char *const names[] = {"applied", "error", "partial", "refused"};
		status = code <= CS_EXIT_REFUSED ? names[code] : "error";
		if (r.dry_run && (code == CS_EXIT_OK || code == CS_EXIT_PARTIAL))
			status = "dry run: would apply";
	}
	if (!r.dry_run) {
		if (r.tmpdir[0] != '\0')
			cs_rmtree(r.tmpdir);
		cs_prune(&r, cfg->certsync.keep_versions);
	} else if (r.tmpdir[0] != '\0') {
		rmdir(r.tmpdir);
	}
done:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cs_print(&r, status, code,
	         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
out:
	if (lockfd >= 0)
		close(lockfd);
	cs_files_free(r.src, r.nsrc);
	cs_files_free(r.man, r.nman);
	cs_units_free(&r.cur);
	cs_units_free(&r.next);
	cs_units_free(&r.verdicts);
	cfg_free(cfg);
	return code;
}
