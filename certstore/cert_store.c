/*
 * cert_store: directory scanning, parallel loading, delta reloads, the store's
 * reference counting and the published slot.
 *
 * A store owns a sorted array of file records. A record holds the file's stat
 * tuple, its content hash and either an item or the reason it was skipped, so
 * that a reload reuses both good items (shared by reference count between the
 * old and the new store) and verdicts on bad files without reading them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "certstore/cert_int.h"

/* One directory entry found by the scan. */
struct scan_ent {
	const char *name; /* in the scan's arena */
	int kind;         /* CERT_FILE_* */
	struct cert_stat st, key_st;
	const char *key_name; /* NAME.key partner, or NULL */
	char *msg;            /* for ignored entries and scan errors */
	enum cert_sev sev;
	const struct cert_file *old; /* reload: the previous record to reuse */
	/* Results of the parse. */
	struct cert_item *item;
	unsigned char hash[32];
	int preset; /* the scan already decided: skipped without parsing */
	int kept;   /* the new content failed; item is the previous version */
	int need_stat, stat_errno, is_dir;
	int listed; /* named by a change list (scan_listed) */
};

struct scan {
	struct scan_ent *ents;
	size_t n, cap;
	int dirfd;
	/* ents[i] and the previous store's files[i] are the same file name
	 * (sort_like() succeeded). */
	int like_old;
	struct cert_arena names; /* ents' names, handed to the store */
	char realdir[PATH_MAX];  /* the directory's real path */
};

void cert_opts_defaults(struct cert_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->expired = CFG_EXPIRED_SERVE;
	opts->max_file_size = 1024 * 1024;
}

void cert_opts_from_cfg(struct cert_opts *opts, const struct cfg *cfg)
{
	cert_opts_defaults(opts);
	opts->expired = cfg->certs.expired;
	if (cfg->certs.max_file_size > 0)
		opts->max_file_size = cfg->certs.max_file_size;
	opts->threads = cfg->certs.load_threads;
	opts->default_cert = cfg->certs.default_cert[0] != '\0' ? cfg->certs.default_cert : NULL;
}

static void stat_copy(struct cert_stat *d, const struct stat *s)
{
	d->dev = s->st_dev;
	d->ino = s->st_ino;
	d->size = s->st_size;
	d->mtime = s->st_mtim;
	d->ctime = s->st_ctim;
}

static int stat_eq(const struct cert_stat *a, const struct cert_stat *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static int cmp_scan(const void *a, const void *b)
{
	return strcmp(((const struct scan_ent *)a)->name, ((const struct scan_ent *)b)->name);
}

static int has_ext(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
}

static struct scan_ent *scan_find(struct scan *sc, const char *name)
{
	struct scan_ent key = {.name = (char *)name};

	if (sc->n == 0)
		return NULL;
	return bsearch(&key, sc->ents, sc->n, sizeof(*sc->ents), cmp_scan);
}

static void scan_free(struct scan *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->ents[i].msg);
		cert_item_unref(sc->ents[i].item);
	}
	free(sc->ents);
	cert_arena_free(&sc->names);
	if (sc->dirfd >= 0)
		close(sc->dirfd);
}

/* The verdicts the scan gives without parsing; scan_dir and scan_listed
 * must agree on them. */
static void mark_dir(struct scan_ent *e)
{
	e->kind = CERT_FILE_DIR;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("is a directory; subdirectories are not loaded");
}

static void mark_ignored(struct scan_ent *e)
{
	e->kind = CERT_FILE_IGNORED;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("ignored: only *.pem and *.crt (with an optional NAME.key) "
	                            "are certificate files");
}

static void mark_orphan_key(struct scan_ent *e)
{
	e->kind = CERT_FILE_IGNORED;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("ignored: a .key file without a matching .crt or .pem file");
}

static int is_cert_name(const char *name)
{
	return has_ext(name, ".pem") || has_ext(name, ".crt") || has_ext(name, ".key");
}

/* A symlink is allowed only if it resolves inside the directory, so that a
 * certificate directory cannot be used to read arbitrary files. */
static int link_escapes(const char *realdir, const char *dir, const char *name)
{
	char path[PATH_MAX], *res;
	size_t n = strlen(realdir);
	int esc;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 1;
	res = realpath(path, NULL);
	if (res == NULL)
		return -1;
	esc = !(strncmp(res, realdir, n) == 0 && (res[n] == '/' || (n == 1 && realdir[0] == '/')));
	free(res);
	return esc;
}

/*
 * Stats every candidate file, on all CPUs. The stat calls dominate a delta
 * reload of a large directory (10,000 fstatat take 12-15 ms of CPU here,
 * listing the directory another 3-6 ms), so on a reload they start while the
 * directory is still being listed: the listing thread publishes entries as
 * it goes, and the stat threads work on the published ones. This needs the
 * entry array not to move, so a reload sizes it from the previous store and
 * the pipeline ends early if the directory has grown past that
 * (stat_pipe_finish, then a plain pass over the rest).
 */
struct stat_pipe {
	struct scan *sc;
	atomic_size_t next; /* next entry to claim */
	pthread_mutex_t lock;
	pthread_cond_t more;
	size_t published; /* entries fully listed (under lock) */
	int listed;       /* no more entries will be published (under lock) */
	pthread_t tids[16];
	int nthreads;
};

#define STAT_CHUNK 64

static void stat_one(struct stat_pipe *sp, struct scan_ent *e)
{
	struct stat st;

	if (!e->need_stat)
		return;
	if (fstatat(sp->sc->dirfd, e->name, &st, 0) < 0) {
		e->stat_errno = errno;
		return;
	}
	stat_copy(&e->st, &st);
	e->is_dir = S_ISDIR(st.st_mode);
}

static void *stat_worker(void *arg)
{
	struct stat_pipe *sp = arg;

	/* Entries are claimed in chunks: one shared counter bumped per entry
	 * and neighbouring entries written by both threads made the cache
	 * lines bounce between the cores. */
	for (;;) {
		size_t i = atomic_fetch_add(&sp->next, STAT_CHUNK), avail;

		pthread_mutex_lock(&sp->lock);
		while (!sp->listed && sp->published < i + STAT_CHUNK)
			pthread_cond_wait(&sp->more, &sp->lock);
		avail = sp->published;
		pthread_mutex_unlock(&sp->lock);
		if (i >= avail)
			return NULL;
		for (size_t end = i + STAT_CHUNK < avail ? i + STAT_CHUNK : avail; i < end; i++)
			stat_one(sp, &sp->sc->ents[i]);
	}
}

static int ncpus(void);

/* Starts stat threads for about `expect` entries, beginning at entry
 * `from`; the caller publishes entries and then calls stat_pipe_finish. */
static void stat_pipe_start(struct stat_pipe *sp, struct scan *sc, size_t from, size_t expect)
{
	int nt = ncpus();

	sp->sc = sc;
	atomic_init(&sp->next, from);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->more, NULL);
	sp->published = from;
	sp->listed = 0;
	sp->nthreads = 0;
	if (nt > 16)
		nt = 16;
	if ((size_t)nt > expect / 1024 + 1)
		nt = (int)(expect / 1024 + 1);
	/* The caller's thread is busy listing, and joins in at the end. */
	for (int i = 1; i < nt; i++)
		if (pthread_create(&sp->tids[sp->nthreads], NULL, stat_worker, sp) == 0)
			sp->nthreads++;
}

/* Makes entries up to sc->n available to the stat threads. */
static void stat_pipe_publish(struct stat_pipe *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->published = sp->sc->n;
	pthread_cond_broadcast(&sp->more);
	pthread_mutex_unlock(&sp->lock);
}

/* Publishes the last entries, stats alongside the threads until every
 * published entry is done, and stops them. */
static void stat_pipe_finish(struct stat_pipe *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->published = sp->sc->n;
	sp->listed = 1;
	pthread_cond_broadcast(&sp->more);
	pthread_mutex_unlock(&sp->lock);
	stat_worker(sp);
	for (int i = 0; i < sp->nthreads; i++)
		pthread_join(sp->tids[i], NULL);
	pthread_cond_destroy(&sp->more);
	pthread_mutex_destroy(&sp->lock);
}

static uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

/*
 * Sorts the scan by name using the previous store's order, when the scan
 * holds exactly the previous store's names: each entry's old index is found
 * by hashing, and the entries are then permuted in place. That is the common
 * case of a reload (files changed in place or replaced by rename, none added
 * or removed) and costs one hash and one string comparison per entry instead
 * of qsort's ~14, and no second copy of the array (2 MB for 10,000 files,
 * whose page faults alone cost a millisecond). Returns -1 when the sets
 * differ; the caller then sorts.
 */
static int sort_like(struct scan *sc, const struct cert_store *old)
{
	size_t cap = 16, mask;
	uint32_t *tab = NULL, *perm = NULL;
	unsigned char *seen = NULL;
	int rc = -1;

	if (old == NULL || old->nfiles != sc->n || sc->n < 2 || sc->n >= UINT32_MAX)
		return -1;
	while (cap < sc->n * 2)
		cap *= 2;
	mask = cap - 1;
	tab = malloc(cap * sizeof(*tab));
	perm = malloc(sc->n * sizeof(*perm));
	seen = calloc(sc->n, 1);
	if (tab == NULL || perm == NULL || seen == NULL)
		goto done;
	memset(tab, 0xff, cap * sizeof(*tab));
	for (size_t i = 0; i < old->nfiles; i++) {
		size_t h = str_hash(old->files[i].name) & mask;

		while (tab[h] != UINT32_MAX)
			h = (h + 1) & mask;
		tab[h] = (uint32_t)i;
	}
	for (size_t i = 0; i < sc->n; i++) {
		size_t h = str_hash(sc->ents[i].name) & mask;

		while (tab[h] != UINT32_MAX &&
		       strcmp(old->files[tab[h]].name, sc->ents[i].name) != 0)
			h = (h + 1) & mask;
		if (tab[h] == UINT32_MAX || seen[tab[h]])
			goto done; /* a new name (or a listing with duplicates) */
		perm[i] = tab[h];
		seen[tab[h]] = 1;
	}
	/* Every entry moves to its old index; each swap puts one in place. */
	for (size_t i = 0; i < sc->n; i++)
		while (perm[i] != i) {
			uint32_t t = perm[i];
			struct scan_ent e = sc->ents[t];

			sc->ents[t] = sc->ents[i];
			sc->ents[i] = e;
			perm[i] = perm[t];
			perm[t] = t;
		}
	sc->like_old = 1;
	rc = 0;
done:
	free(tab);
	free(perm);
	free(seen);
	return rc;
}

/*
 * Lists dir: every entry gets a record, sorted by name. Certificate files
 * (*.pem, *.crt) get their stat tuple and their NAME.key partner; other
 * entries are reported as ignored. Returns -1 if dir cannot be read.
 */
uint64_t cert_dir_nfiles(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t n = 0;

	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] != '.' && !(l > 4 && strcmp(e->d_name + l - 4, ".key") == 0))
			n++;
	}
	closedir(d);
	return n;
}

static int scan_dir(const char *dir, struct scan *sc, const struct cert_store *old,
                    struct cert_report *rep)
{
	char *realdir = sc->realdir;
	struct dirent *de;
	DIR *d = NULL;
	int rc = -1, piping = 0;
	size_t nkeyfiles = 0, piped = 0;
	struct stat_pipe sp;

	memset(sc, 0, sizeof(*sc));
	/* A reload sizes the listing from the previous one: growing 10,000
	 * records by doubling copied and faulted in twice the memory. */
	if (old != NULL) {
		sc->cap = old->nfiles + old->nfiles / 8 + 16;
		sc->ents = malloc(sc->cap * sizeof(*sc->ents));
		if (sc->ents == NULL)
			sc->cap = 0;
	}
	sc->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sc->dirfd < 0) {
		cert_report_set_fatal(rep, "%s: cannot open certificate directory: %s", dir,
		                      strerror(errno));
		return -1;
	}
	if (realpath(dir, realdir) == NULL) {
		cert_report_set_fatal(rep, "%s: cannot resolve directory: %s", dir,
		                      strerror(errno));
		return -1;
	}
	d = fdopendir(dup(sc->dirfd));
	if (d == NULL) {
		cert_report_set_fatal(rep, "%s: cannot read directory: %s", dir, strerror(errno));
		return -1;
	}
	if (sc->cap > 0) {
		stat_pipe_start(&sp, sc, 0, sc->cap);
		piping = 1;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		struct scan_ent *e;

		/* Dotfiles are editor and tool leftovers (and "." / ".."). */
		if (de->d_name[0] == '.')
			continue;
		/* Entries below sc->n are complete: hand them to the stat
		 * threads a chunk at a time. */
		if (piping && sc->n % STAT_CHUNK == 0)
			stat_pipe_publish(&sp);
		if (sc->n == sc->cap) {
			/* The array is about to move: the stat threads must
			 * be done with it. The rest is stat'ed after the
			 * listing. */
			if (piping) {
				stat_pipe_finish(&sp);
				piping = 0;
				piped = sc->n;
			}
			size_t nc = sc->cap ? sc->cap * 2 : 256;
			struct scan_ent *ne = realloc(sc->ents, nc * sizeof(*ne));

			if (ne == NULL)
				goto oom;
			sc->ents = ne;
			sc->cap = nc;
		}
		e = &sc->ents[sc->n];
		memset(e, 0, sizeof(*e));
		e->name = cert_arena_strdup(&sc->names, de->d_name);
		if (e->name == NULL)
			goto oom;
		sc->n++;
		e->kind = de->d_type == DT_DIR ? CERT_FILE_DIR : CERT_FILE_CERT;
		if (de->d_type == DT_LNK || de->d_type == DT_UNKNOWN) {
			struct stat lst;

			if (fstatat(sc->dirfd, e->name, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(lst.st_mode)) {
				int esc = link_escapes(realdir, dir, e->name);

				if (esc != 0) {
					e->preset = 1;
					e->sev = CERT_SKIP;
					e->msg = cert_strdup_printf(
					    esc > 0 ? "symlink points outside the certificate "
					              "directory; skipped"
					            : "dangling symlink; skipped");
					continue;
				}
			}
		}
		if (e->kind == CERT_FILE_DIR) {
			mark_dir(e);
		} else if (!is_cert_name(e->name)) {
			mark_ignored(e);
		} else {
			e->need_stat = 1;
			nkeyfiles += has_ext(e->name, ".key");
		}
	}
	if (errno != 0) {
		cert_report_set_fatal(rep, "%s: cannot read directory: %s", dir, strerror(errno));
		goto out;
	}
	if (!piping)
		stat_pipe_start(&sp, sc, piped, sc->n - piped);
	stat_pipe_finish(&sp);
	piping = 0;
	for (size_t i = 0; i < sc->n; i++) {
		struct scan_ent *e = &sc->ents[i];

		if (!e->need_stat)
			continue;
		if (e->stat_errno != 0) {
			e->preset = 1;
			e->sev = CERT_SKIP;
			e->msg = cert_strdup_printf("cannot stat: %s", strerror(e->stat_errno));
		} else if (e->is_dir) {
			mark_dir(e);
		}
	}
	if (sc->n > 1 && sort_like(sc, old) < 0)
		qsort(sc->ents, sc->n, sizeof(*sc->ents), cmp_scan);
	/* Pair NAME.crt / NAME.pem with NAME.key. A .key without a partner is
	 * reported; one with a partner is consumed silently. Most directories
	 * hold combined files only, and then the search is skipped. */
	for (size_t i = 0; i < sc->n && nkeyfiles > 0; i++) {
		struct scan_ent *e = &sc->ents[i];
		char kn[NAME_MAX + 8];
		size_t l = strlen(e->name);

		if (e->kind != CERT_FILE_CERT || has_ext(e->name, ".key"))
			continue;
		snprintf(kn, sizeof(kn), "%.*s.key", (int)(l - 4), e->name);
		struct scan_ent *k = scan_find(sc, kn);

		if (k != NULL && k->kind == CERT_FILE_CERT && !k->preset) {
			e->key_name = cert_arena_strdup(&sc->names, kn);
			if (e->key_name == NULL)
				goto oom;
			e->key_st = k->st;
			k->kind = -1; /* consumed */
		}
	}
	for (size_t i = 0; i < sc->n; i++) {
		struct scan_ent *e = &sc->ents[i];

		if (e->kind == CERT_FILE_CERT && !e->preset && has_ext(e->name, ".key"))
			mark_orphan_key(e);
	}
	rc = 0;
	goto out;
oom:
	cert_report_set_fatal(rep, "%s: out of memory", dir);
out:
	if (piping)
		stat_pipe_finish(&sp);
	closedir(d);
	return rc;
}

/* The name of NAME.pem's or NAME.crt's key file. */
static int key_name_of(const char *name, char out[NAME_MAX + 8])
{
	size_t l = strlen(name);

	return snprintf(out, NAME_MAX + 8, "%.*s.key", (int)(l - 4), name) < NAME_MAX + 8 ? 0 : -1;
}

/* Adds the entry of a file named by the change list, as scan_dir would
 * list it. Returns 0 (a file that is gone gets no entry), 1 when only the
 * full scan can judge it (a symlink, whose target it checks, or a stat
 * error, which it reports), or -1 when out of memory. */
static int listed_ent(struct scan *sc, const char *name)
{
	struct scan_ent *e;
	struct stat st;

	if (name[0] == '.')
		return 0; /* dot files are never loaded */
	if (fstatat(sc->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return errno == ENOENT ? 0 : 1;
	if (S_ISLNK(st.st_mode))
		return 1;
	e = &sc->ents[sc->n];
	memset(e, 0, sizeof(*e));
	e->name = cert_arena_strdup(&sc->names, name);
	if (e->name == NULL)
		return -1;
	sc->n++;
	e->listed = 1;
	e->kind = CERT_FILE_CERT;
	if (S_ISDIR(st.st_mode))
		mark_dir(e);
	else if (!is_cert_name(name))
		mark_ignored(e);
	else
		stat_copy(&e->st, &st);
	return 0;
}

/* Adds the entry of a file the change list does not name: the previous
 * store's record, without looking at the file. Returns 0, 1 when its key
 * file is named by the list (only the full scan pairs it right), or -1. */
static int kept_ent(struct scan *sc, const struct cert_file *of, const struct cert_changes *ch)
{
	struct scan_ent *e = &sc->ents[sc->n];
	char kn[NAME_MAX + 8];

	memset(e, 0, sizeof(*e));
	e->name = cert_arena_strdup(&sc->names, of->name);
	if (e->name == NULL)
		return -1;
	sc->n++;
	e->kind = of->kind;
	e->st = of->st;
	e->sev = of->sev;
	/* load() takes a certificate's message from the record it reuses; the
	 * scan gives the others theirs. */
	if (of->kind != CERT_FILE_CERT && of->msg != NULL && (e->msg = strdup(of->msg)) == NULL)
		return -1;
	if (of->has_key_file) {
		if (key_name_of(of->name, kn) < 0 || cert_changes_has(ch, kn))
			return 1;
		e->key_name = cert_arena_strdup(&sc->names, kn);
		if (e->key_name == NULL)
			return -1;
		e->key_st = of->key_st;
	}
	return 0;
}

/*
 * Lists dir from the previous store's records and a change list: the files
 * the list names are looked at, every other one is the previous store's
 * record as it was (the list promises the same inode). The result is what
 * scan_dir would give, without a readdir or a stat per file. Returns 0, 1
 * when the full scan must be used instead (sc is then to be freed), or -1
 * with the reason in the report.
 */
static int scan_listed(const char *dir, struct scan *sc, const struct cert_store *old,
                       const struct cert_changes *ch, struct cert_report *rep)
{
	size_t i = 0, j = 0;
	int rc = 0;

	sc->cap = old->nfiles + ch->n + 1;
	sc->ents = malloc(sc->cap * sizeof(*sc->ents));
	sc->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sc->ents == NULL || sc->dirfd < 0)
		return 1;
	/* Both lists are sorted by name: merge them. A listed name replaces
	 * the previous record of that name. */
	while (rc == 0 && (i < old->nfiles || j < ch->n)) {
		int c = i == old->nfiles ? 1
		        : j == ch->n     ? -1
		                         : strcmp(old->files[i].name, ch->names[j]);

		if (c < 0) {
			rc = kept_ent(sc, &old->files[i++], ch);
			continue;
		}
		i += c == 0;
		rc = listed_ent(sc, ch->names[j++]);
	}
	/* A listed certificate takes its NAME.key if that is listed too; a
	 * key that did not change beside a certificate that did, or the
	 * reverse, means the list and the previous store disagree on the
	 * pairs: the full scan sorts that out. */
	for (size_t k = 0; rc == 0 && k < sc->n; k++) {
		struct scan_ent *e = &sc->ents[k], *key;
		char kn[NAME_MAX + 8];

		if (!e->listed || e->kind != CERT_FILE_CERT || has_ext(e->name, ".key"))
			continue;
		if (key_name_of(e->name, kn) < 0 || (key = scan_find(sc, kn)) == NULL)
			continue;
		if (!key->listed) {
			rc = 1;
		} else if (key->kind == CERT_FILE_CERT) {
			e->key_name = key->name;
			e->key_st = key->st;
			key->kind = -1; /* consumed */
		}
	}
	for (size_t k = 0; rc == 0 && k < sc->n; k++) {
		struct scan_ent *e = &sc->ents[k];

		if (e->listed && e->kind == CERT_FILE_CERT && has_ext(e->name, ".key"))
			mark_orphan_key(e);
	}
	if (rc < 0)
		cert_report_set_fatal(rep, "%s: out of memory", dir);
	return rc;
}

/* Lists dir for a load: from a change list when one leads from the
 * directory old was loaded from, otherwise by reading the directory. */
static int scan(const char *dir, struct scan *sc, const struct cert_store *old,
                struct cert_report *rep)
{
	struct cert_changes ch;
	int rc;

	if (old == NULL || old->dir == NULL || realpath(dir, sc->realdir) == NULL ||
	    cert_changes_read(sc->realdir, old->dir, &ch) < 0)
		return scan_dir(dir, sc, old, rep);
	rc = scan_listed(dir, sc, old, &ch, rep);
	cert_changes_free(&ch);
	if (rc <= 0)
		return rc;
	scan_free(sc);
	return scan_dir(dir, sc, old, rep);
}

/* ---- parallel parsing ---- */

struct job {
	struct scan *sc;
	size_t *work; /* indexes into sc->ents */
	size_t nwork;
	atomic_size_t next;
	const struct cert_opts *opts;
	struct cert_chain_pool *pool;
	atomic_int idx;
};

/* Counts files processed for a caller that reports load progress. */
static void progress_add(const struct cert_opts *opts, size_t n)
{
	size_t done;

	if (opts->progress == NULL)
		return;
	done = __atomic_add_fetch(opts->progress, n, __ATOMIC_RELAXED);
	if (opts->hold_file != NULL && done >= opts->hold_after)
		while (access(opts->hold_file, F_OK) == 0)
			usleep(10000);
}

static void parse_one(struct cert_loader *ld, struct job *j, struct scan_ent *e)
{
	char *msg = NULL;

	/* A reload first checks whether a touched file's bytes changed at all:
	 * hashing costs a fraction of parsing. */
	if (e->old != NULL && e->old->item != NULL &&
	    cert_hash_file(ld, j->sc->dirfd, e->name, e->key_name, j->opts->max_file_size,
	                   e->hash) == 0 &&
	    memcmp(e->hash, e->old->hash, 32) == 0) {
		e->item = cert_item_ref(e->old->item);
		e->sev = e->old->sev;
		e->msg = e->old->msg != NULL ? strdup(e->old->msg) : NULL;
		return;
	}
	e->item = cert_load_file(ld, j->sc->dirfd, e->name, e->key_name, j->opts, j->pool, e->hash,
	                         &e->sev, &msg);
	e->msg = msg;
	/* A served file whose renewal cannot be loaded (written 0600 by root
	 * while the proxy runs as proxy.user, a half-written copy, a key that
	 * does not match) would take its names offline: the previous version
	 * stays served instead, and the report says which file and why. Its
	 * stat tuple and hash stay the previous version's, so the next reload
	 * tries the file again. */
	if (e->item == NULL && e->old != NULL && e->old->item != NULL) {
		e->item = cert_item_ref(e->old->item);
		e->sev = CERT_WARN;
		e->msg = cert_strdup_printf("%s; the previous version stays served",
		                            msg != NULL ? msg : "cannot be loaded");
		free(msg);
		e->st = e->old->st;
		e->key_st = e->old->key_st;
		memcpy(e->hash, e->old->hash, 32);
		e->kept = 1;
	}
}

static void *parse_worker(void *arg)
{
	struct job *j = arg;
	struct cert_loader *ld = cert_loader_new(atomic_fetch_add(&j->idx, 1));
	size_t i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->nwork) {
		struct scan_ent *e = &j->sc->ents[j->work[i]];

		if (ld == NULL) {
			e->sev = CERT_SKIP;
			e->msg = cert_strdup_printf("cannot create a loader (out of memory)");
		} else {
			parse_one(ld, j, e);
		}
		progress_add(j->opts, 1);
	}
	cert_loader_free(ld);
	/* Each thread has its own OpenSSL error queue; leave it empty. */
	ERR_clear_error();
	return NULL;
}

static int ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

static void run_jobs(struct job *j)
{
	int nt = j->opts->threads > 0 ? j->opts->threads : ncpus();
	pthread_t tids[64];
	int started = 0;

	if (nt > 64)
		nt = 64;
	/* Each file costs ~0.2 ms; below a few dozen files a thread's start-up
	 * and its library context's first fetches cost more than they save. */
	if ((size_t)nt > j->nwork / 16 + 1)
		nt = (int)(j->nwork / 16 + 1);
	for (int i = 1; i < nt; i++) {
		if (pthread_create(&tids[started], NULL, parse_worker, j) != 0)
			break;
		started++;
	}
	parse_worker(j);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
}

/* ---- store assembly ---- */

static void file_clear(struct cert_file *f)
{
	free(f->msg);
	free(f->dupmsg);
	cert_item_unref(f->item);
}

static void store_free(struct cert_store *st)
{
	for (size_t i = 0; i < st->nfiles; i++)
		file_clear(&st->files[i]);
	free(st->files);
	cert_index_free(st);
	cert_arena_free(&st->names);
	free(st->dir);
	cert_chain_pool_free(st->pool);
	pthread_mutex_destroy(&st->order_lock);
	free(st);
}

struct cert_store *cert_store_ref(struct cert_store *store)
{
	if (store != NULL)
		atomic_fetch_add_explicit(&store->refs, 1, memory_order_relaxed);
	return store;
}

void cert_store_unref(struct cert_store *store)
{
	if (store == NULL)
		return;
	if (atomic_fetch_sub_explicit(&store->refs, 1, memory_order_acq_rel) == 1)
		store_free(store);
}

static const struct cert_file *file_find(const struct cert_store *st, const char *name)
{
	size_t lo = 0, hi = st->nfiles;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(name, st->files[mid].name);

		if (c == 0)
			return &st->files[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Fills the report's verdicts and counts from the store's file records. */
static void report_fill(struct cert_report *rep, const struct cert_store *st)
{
	for (size_t i = 0; i < st->nfiles; i++) {
		const struct cert_file *f = &st->files[i];
		char *m = NULL;

		if (f->msg != NULL && f->dupmsg != NULL)
			m = cert_strdup_printf("%s; %s", f->msg, f->dupmsg);
		cert_report_add(rep, f->name, f->sev, m != NULL ? m : f->msg ? f->msg : f->dupmsg);
		free(m);
		if (f->kept)
			cert_report_add_kept(rep, f->name, f->msg);
		if (f->kind != CERT_FILE_CERT) {
			rep->nignored++;
			continue;
		}
		rep->nfiles++;
		if (f->item != NULL) {
			rep->nloaded++;
			if (f->sev == CERT_WARN)
				rep->nwarned++;
			if (f->item->not_after != 0 &&
			    (rep->soonest == 0 || f->item->not_after < rep->soonest))
				rep->soonest = f->item->not_after;
		} else {
			rep->nskipped++;
		}
	}
	rep->nnames = st->nnames;
}

static int delta_push(const struct cert_item ***v, size_t *n, size_t *cap,
                      const struct cert_item *it)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		const struct cert_item **nv = realloc(*v, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = it;
	return 0;
}

/*
 * Fills d with the items that differ between old and st. Reused items are
 * the same pointers and both file lists are sorted by name, so one walk in
 * step finds them; when st's files are old's, name for name (like_old and
 * the same count), the walk compares positions and no names.
 */
static int delta_find(const struct cert_store *st, const struct cert_store *old, int like_old,
                      struct cert_delta *d)
{
	size_t i = 0, j = 0;

	like_old = like_old && st->nfiles == old->nfiles;
	while (i < old->nfiles || j < st->nfiles) {
		int c = like_old           ? 0
		        : i == old->nfiles ? 1
		        : j == st->nfiles  ? -1
		                           : strcmp(old->files[i].name, st->files[j].name);
		const struct cert_item *a = c <= 0 ? old->files[i].item : NULL;
		const struct cert_item *b = c >= 0 ? st->files[j].item : NULL;

		if (a != b && ((a != NULL && delta_push(&d->rm, &d->nrm, &d->caprm, a) < 0) ||
		               (b != NULL && delta_push(&d->add, &d->nadd, &d->capadd, b) < 0)))
			return -1;
		i += c <= 0;
		j += c >= 0;
	}
	return 0;
}

/*
 * Turns a finished scan into a store: moves records over, builds the index
 * and resolves the default certificate. On a reload, d receives what
 * changed since old.
 */
static struct cert_store *assemble(struct scan *sc, const struct cert_store *old,
                                   const struct cert_opts *opts, struct cert_chain_pool *pool,
                                   struct cert_report *rep, struct cert_delta *d)
{
	struct cert_store *st = calloc(1, sizeof(*st));
	size_t k = 0;

	if (st == NULL)
		goto fail;
	atomic_init(&st->refs, 1);
	pthread_mutex_init(&st->order_lock, NULL);
	st->generation = old != NULL ? old->generation + 1 : 1;
	st->pool = pool;
	cert_arena_move(&st->names, &sc->names);
	st->dir = strdup(sc->realdir);
	if (st->dir == NULL)
		goto fail;
	st->files = calloc(sc->n + 1, sizeof(*st->files));
	if (st->files == NULL)
		goto fail;
	for (size_t i = 0; i < sc->n; i++) {
		struct scan_ent *e = &sc->ents[i];
		struct cert_file *f = &st->files[k];

		if (e->kind < 0)
			continue; /* a consumed .key */
		f->name = e->name;
		f->st = e->st;
		f->key_st = e->key_st;
		f->has_key_file = e->key_name != NULL;
		memcpy(f->hash, e->hash, 32);
		f->item = e->item;
		e->item = NULL;
		f->sev = e->sev;
		f->msg = e->msg;
		e->msg = NULL;
		f->kind = e->kind;
		f->kept = e->kept;
		k++;
	}
	st->nfiles = k;
	/* A reload that replaced a few items patches a copy of the previous
	 * index: a full build touches every item and name (about 2 ms and a
	 * page fault per 4 KB of fresh table for 10,000 names). */
	if (old != NULL && delta_find(st, old, sc->like_old, d) < 0)
		goto fail;
	if ((old == NULL || cert_index_update(st, old, d) < 0) && cert_index_build(st) < 0)
		goto fail;
	if (opts->default_cert != NULL && opts->default_cert[0] != '\0') {
		const struct cert_file *f = file_find(st, opts->default_cert);

		st->def = f != NULL ? f->item : NULL;
		if (st->def == NULL) {
			/* A SKIP entry that is not counted as a skipped file: the
			 * file may not exist, and callers looking for the default's
			 * verdict see that it is not served. */
			char *m = cert_strdup_printf("the default certificate is %s; clients "
			                             "without a known SNI name get an "
			                             "unrecognized_name alert",
			                             f != NULL ? "not loaded" : "missing");

			cert_report_add(rep, opts->default_cert, CERT_SKIP, m);
			free(m);
		}
	}
	report_fill(rep, st);
	cert_report_sort(rep);
	return st;
fail:
	if (st != NULL) {
		st->pool = NULL;
		store_free(st);
	}
	cert_chain_pool_free(pool);
	cert_report_set_fatal(rep, "out of memory while building the certificate store");
	return NULL;
}

static struct cert_store *load(struct cert_store *old, const char *dir,
                               const struct cert_opts *opts, struct cert_report **repp,
                               struct cert_delta *d)
{
	struct cert_report *rep = cert_report_new();
	struct cert_store *st = NULL;
	struct cert_chain_pool *pool = NULL;
	struct scan sc = {.dirfd = -1};
	struct job j;
	size_t nwork = 0;

	*repp = rep;
	if (rep == NULL)
		return NULL;
	memset(&j, 0, sizeof(j));
	if (scan(dir, &sc, old, rep) < 0)
		goto out;
	j.work = malloc((sc.n + 1) * sizeof(*j.work));
	pool = cert_chain_pool_new(old != NULL ? old->pool : NULL);
	if (j.work == NULL || pool == NULL) {
		cert_report_set_fatal(rep, "%s: out of memory", dir);
		goto out;
	}
	for (size_t i = 0, oi = 0; i < sc.n; i++) {
		struct scan_ent *e = &sc.ents[i];
		const struct cert_file *of = NULL;

		if (e->kind != CERT_FILE_CERT)
			continue;
		if (e->preset) {
			progress_add(opts, 1);
			continue;
		}
		/* Both lists are sorted by name: walk them in step instead of
		 * searching, which halves a large reload's string comparisons.
		 * When the scan is in the old store's order already, the old
		 * record is at the same index and needs none. */
		if (sc.like_old) {
			of = &old->files[i];
		} else {
			while (old != NULL && oi < old->nfiles &&
			       strcmp(old->files[oi].name, e->name) < 0)
				oi++;
			if (old != NULL && oi < old->nfiles &&
			    strcmp(old->files[oi].name, e->name) == 0)
				of = &old->files[oi];
		}
		if (of != NULL && of->kind == CERT_FILE_CERT &&
		    of->has_key_file == (e->key_name != NULL) && stat_eq(&of->st, &e->st) &&
		    (e->key_name == NULL || stat_eq(&of->key_st, &e->key_st))) {
			/* Unchanged: share the item and keep the verdict. */
			e->item = of->item != NULL ? cert_item_ref(of->item) : NULL;
			e->sev = of->sev;
			e->msg = of->msg != NULL ? strdup(of->msg) : NULL;
			e->kept = of->kept;
			memcpy(e->hash, of->hash, 32);
			progress_add(opts, 1);
			continue;
		}
		e->old = of;
		j.work[nwork++] = i;
	}
	j.sc = &sc;
	j.nwork = nwork;
	j.opts = opts;
	j.pool = pool;
	atomic_init(&j.next, 0);
	atomic_init(&j.idx, 0);
	if (nwork > 0)
		run_jobs(&j);
	st = assemble(&sc, old, opts, pool, rep, d);
	pool = NULL;
out:
	cert_chain_pool_free(pool);
	free(j.work);
	scan_free(&sc);
	/* Decoding leaves many freed temporaries in the loader threads' malloc
	 * arenas; glibc keeps them mapped unless asked. A cold load is rare
	 * and this costs about a millisecond. */
	if (nwork > 64)
		malloc_trim(0);
	return st;
}

struct cert_store *cert_store_load(const char *dir, const struct cert_opts *opts,
                                   struct cert_report **rep)
{
	return load(NULL, dir, opts, rep, NULL);
}

static int same_ent(const struct cert_name_ent *a, const struct cert_name_ent *b)
{
	return a != NULL && b != NULL && a->ec == b->ec && a->rsa == b->rsa;
}

/* Reports name (as listed in an item) if the items serving it differ
 * between the two stores. */
static void diff_name(struct cert_report *rep, const struct cert_store *a,
                      const struct cert_store *b, const char *name)
{
	int w = name[0] == '*';
	const char *key = w ? name + 2 : name;
	size_t len = strlen(key);

	if (!same_ent(cert_index_find(w ? &a->wild : &a->exact, key, len),
	              cert_index_find(w ? &b->wild : &b->exact, key, len)))
		cert_report_add_changed(rep, name);
}

static void diff_item(struct cert_report *rep, const struct cert_store *a,
                      const struct cert_store *b, const struct cert_item *it)
{
	for (size_t i = 0; it != NULL && i < it->nnames; i++)
		diff_name(rep, a, b, it->names[i]);
}

struct cert_store *cert_store_reload(struct cert_store *old, const char *dir,
                                     const struct cert_opts *opts, struct cert_report **rep)
{
	struct cert_delta d = {0};
	struct cert_store *st = load(old, dir, opts, rep, &d);

	/*
	 * Changed names: those whose serving item differs, both ways. The
	 * serving item of a name can only change if one of the items claiming
	 * it was added, replaced or removed, so only the names of those items
	 * are looked up, not every name of both indexes (20,000 probes for a
	 * 10,000-name store).
	 */
	if (st != NULL && old != NULL) {
		for (size_t i = 0; i < d.nrm; i++)
			diff_item(*rep, st, old, d.rm[i]);
		for (size_t i = 0; i < d.nadd; i++)
			diff_item(*rep, st, old, d.add[i]);
		cert_report_sort(*rep);
	}
	free(d.rm);
	free(d.add);
	return st;
}

int cert_store_file_kept(const struct cert_store *store, const char *file)
{
	const struct cert_file *f = file != NULL ? file_find(store, file) : NULL;

	return f != NULL && f->kept;
}

uint64_t cert_store_generation(const struct cert_store *store)
{
	return store->generation;
}

size_t cert_store_nitems(const struct cert_store *store)
{
	return store->nitems;
}

/* ---- items ---- */

int cert_item_use(const struct cert_item *item, SSL *ssl)
{
	/* SSL_use_cert_and_key takes its own references to the leaf, the key
	 * and every chain certificate, so the item can be shared by any number
	 * of connections on any thread. The leaf and key come with references
	 * of ours, which keep them alive even if the cache evicts them before
	 * OpenSSL has taken its own. */
	X509 *leaf;
	EVP_PKEY *key;
	int rc;

	if (cert_item_material_get(item, &leaf, &key) < 0)
		return -1;
	rc = SSL_use_cert_and_key(ssl, leaf, key, item->chain, 1) == 1 ? 0 : -1;
	X509_free(leaf);
	EVP_PKEY_free(key);
	return rc;
}

const char *cert_item_file(const struct cert_item *item)
{
	return item->file;
}

const unsigned char *cert_item_sha256(const struct cert_item *item)
{
	return item->sha256;
}

time_t cert_item_not_after(const struct cert_item *item)
{
	return item->not_after;
}

/* ---- slot ---- */

/*
 * The slot is a mutex-protected pointer. Taking the mutex in acquire closes
 * the race a bare atomic pointer has (a reader loads the pointer, the writer
 * swaps and drops the last reference, the reader then increments freed
 * memory). The critical section is two instructions long, so the mutex is
 * uncontended in practice: acquire happens once per handshake.
 */
struct cert_slot {
	pthread_mutex_t lock;
	struct cert_store *cur;
};

struct cert_slot *cert_slot_new(void)
{
	struct cert_slot *s = calloc(1, sizeof(*s));

	if (s != NULL)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

void cert_slot_free(struct cert_slot *slot)
{
	if (slot == NULL)
		return;
	cert_store_unref(slot->cur);
	pthread_mutex_destroy(&slot->lock);
	free(slot);
}

void cert_slot_publish(struct cert_slot *slot, struct cert_store *store)
{
	struct cert_store *old;

	pthread_mutex_lock(&slot->lock);
	old = slot->cur;
	slot->cur = store;
	pthread_mutex_unlock(&slot->lock);
	/* Freeing happens outside the lock: a large store takes milliseconds. */
	cert_store_unref(old);
}

struct cert_store *cert_slot_acquire(struct cert_slot *slot)
{
	struct cert_store *s;

	pthread_mutex_lock(&slot->lock);
	s = cert_store_ref(slot->cur);
	pthread_mutex_unlock(&slot->lock);
	return s;
}
