/*
 * cert_scan: lists a certificate directory for a load: every entry gets a
 * record, sorted by name, with its stat tuple and its NAME.key partner; the
 * entries that are no certificate files get their verdict. A reload lists
 * the directory from the previous store's records and a change list when
 * one leads from the previous store's directory (cert_changes.c), and
 * otherwise reads the directory and stats every file on all CPUs.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certstore/cert_int.h"

static void stat_copy(struct cert_stat *d, const struct stat *s)
{
	d->dev = s->st_dev;
	d->ino = s->st_ino;
	d->size = s->st_size;
	d->mtime = s->st_mtim;
	d->ctime = s->st_ctim;
}

int cert_stat_eq(const struct cert_stat *a, const struct cert_stat *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static int cmp_scan(const void *a, const void *b)
{
	return strcmp(((const struct cert_scan_ent *)a)->name,
	              ((const struct cert_scan_ent *)b)->name);
}

static int has_ext(const char *name, const char *ext)
{
	size_t n = strlen(name), e = strlen(ext);

	return n > e && strcmp(name + n - e, ext) == 0;
}

static struct cert_scan_ent *scan_find(struct cert_scan *sc, const char *name)
{
	struct cert_scan_ent key = {.name = (char *)name};

	if (sc->n == 0)
		return NULL;
	return bsearch(&key, sc->ents, sc->n, sizeof(*sc->ents), cmp_scan);
}

void cert_scan_free(struct cert_scan *sc)
{
	for (size_t i = 0; i < sc->n; i++) {
		free(sc->ents[i].msg);
		cert_item_unref(sc->ents[i].item);
	}
	cert_hot_free(sc->ents);
	cert_hot_free(sc->buf);
	cert_arena_free(&sc->names);
	if (sc->dirfd >= 0)
		close(sc->dirfd);
}

/* The verdicts the scan gives without parsing; scan_dir and scan_listed
 * must agree on them. */
static void mark_dir(struct cert_scan_ent *e)
{
	e->kind = CERT_FILE_DIR;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("is a directory; subdirectories are not loaded");
}

void cert_scan_mark_ignored(struct cert_scan_ent *e)
{
	e->kind = CERT_FILE_IGNORED;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("ignored: only *.pem and *.crt (with an optional NAME.key) "
	                            "are certificate files");
}

static void mark_orphan_key(struct cert_scan_ent *e)
{
	e->kind = CERT_FILE_IGNORED;
	e->sev = CERT_WARN;
	e->msg = cert_strdup_printf("ignored: a .key file without a matching .crt or .pem file");
}

int cert_is_cert_name(const char *name)
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
	struct cert_scan *sc;
	atomic_size_t next; /* next entry to claim */
	pthread_mutex_t lock;
	pthread_cond_t more;
	size_t published; /* entries fully listed (under lock) */
	int listed;       /* no more entries will be published (under lock) */
	pthread_t tids[16];
	int nthreads;
};

#define STAT_CHUNK 64

static void stat_one(struct stat_pipe *sp, struct cert_scan_ent *e)
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

/* Starts stat threads for about `expect` entries, beginning at entry
 * `from`; the caller publishes entries and then calls stat_pipe_finish. */
static void stat_pipe_start(struct stat_pipe *sp, struct cert_scan *sc, size_t from, size_t expect)
{
	int nt = cert_ncpus();

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
static int sort_like(struct cert_scan *sc, const struct cert_store *old)
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
			struct cert_scan_ent e = sc->ents[t];

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

/* For a listing already in name order: whether it holds exactly old's
 * names, which are in the same order (one comparison per entry, no table). */
static void same_as_old(struct cert_scan *sc, const struct cert_store *old)
{
	if (old == NULL || old->nfiles != sc->n)
		return;
	for (size_t i = 0; i < sc->n; i++)
		if (strcmp(sc->ents[i].name, old->files[i].name) != 0)
			return;
	sc->like_old = 1;
}

int cert_scan_pair(struct cert_scan *sc, const struct cert_store *old, size_t nkeyfiles, int sorted)
{
	if (sorted)
		same_as_old(sc, old);
	else if (sc->n > 1 && sort_like(sc, old) < 0)
		qsort(sc->ents, sc->n, sizeof(*sc->ents), cmp_scan);
	/* Pair NAME.crt / NAME.pem with NAME.key. A .key without a partner is
	 * reported; one with a partner is consumed silently. Most directories
	 * hold combined files only, and then the search is skipped. */
	for (size_t i = 0; i < sc->n && nkeyfiles > 0; i++) {
		struct cert_scan_ent *e = &sc->ents[i];
		char kn[NAME_MAX + 8];
		size_t l = strlen(e->name);

		if (e->kind != CERT_FILE_CERT || has_ext(e->name, ".key"))
			continue;
		snprintf(kn, sizeof(kn), "%.*s.key", (int)(l - 4), e->name);
		struct cert_scan_ent *k = scan_find(sc, kn);

		if (k != NULL && k->kind == CERT_FILE_CERT && !k->preset) {
			e->key_name = cert_arena_strdup(&sc->names, kn);
			if (e->key_name == NULL)
				return -1;
			e->key_st = k->st;
			e->key_path = k->path;
			k->kind = -1; /* consumed */
		}
	}
	for (size_t i = 0; i < sc->n; i++) {
		struct cert_scan_ent *e = &sc->ents[i];

		if (e->kind == CERT_FILE_CERT && !e->preset && has_ext(e->name, ".key"))
			mark_orphan_key(e);
	}
	return 0;
}

/*
 * Lists dir: every entry gets a record, sorted by name. Certificate files
 * (*.pem, *.crt) get their stat tuple and their NAME.key partner; other
 * entries are reported as ignored. Returns -1 if dir cannot be read.
 */
uint64_t cert_scan_nfiles(const char *dir)
{
	struct dirent *e;
	uint64_t n = 0;
	DIR *d;

	d = opendir(dir);
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

static int scan_dir(const char *dir, struct cert_scan *sc, const struct cert_store *old,
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
		sc->ents = cert_hot_alloc(sc->cap * sizeof(*sc->ents));
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
		struct cert_scan_ent *e;

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
			struct cert_scan_ent *ne =
			    cert_hot_realloc(sc->ents, sc->cap * sizeof(*ne), nc * sizeof(*ne));

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
		} else if (!cert_is_cert_name(e->name)) {
			cert_scan_mark_ignored(e);
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
		struct cert_scan_ent *e = &sc->ents[i];

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
	if (cert_scan_pair(sc, old, nkeyfiles, 0) < 0)
		goto oom;
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
static int listed_ent(struct cert_scan *sc, const char *name)
{
	struct cert_scan_ent *e;
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
	else if (!cert_is_cert_name(name))
		cert_scan_mark_ignored(e);
	else
		stat_copy(&e->st, &st);
	return 0;
}

/* Adds the entry of a file the change list does not name: the previous
 * store's record, without looking at the file. Returns 0, 1 when its key
 * file is named by the list (only the full scan pairs it right), or -1. */
static int kept_ent(struct cert_scan *sc, const struct cert_file *of, const struct cert_changes *ch)
{
	struct cert_scan_ent *e = &sc->ents[sc->n];
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

/* Whether every entry of NAME.crt, NAME.pem and NAME.key (name is one of
 * them) is named by the change list. */
static int stem_listed(struct cert_scan *sc, const char *name)
{
	static const char *const ext[] = {".crt", ".pem", ".key"};
	char other[NAME_MAX + 8];
	size_t l = strlen(name);

	for (int i = 0; i < 3; i++) {
		const struct cert_scan_ent *o;

		if (snprintf(other, sizeof(other), "%.*s%s", (int)(l - 4), name, ext[i]) >=
		    (int)sizeof(other))
			return 0;
		o = scan_find(sc, other);
		if (o != NULL && !o->listed)
			return 0;
	}
	return 1;
}

/*
 * Lists dir from the previous store's records and a change list: the files
 * the list names are looked at, every other one is the previous store's
 * record as it was (the list promises the same inode). The result is what
 * scan_dir would give, without a readdir or a stat per file. Returns 0, 1
 * when the full scan must be used instead (sc is then to be freed), or -1
 * with the reason in the report.
 */
static int scan_listed(const char *dir, struct cert_scan *sc, const struct cert_store *old,
                       const struct cert_changes *ch, struct cert_report *rep)
{
	size_t i = 0, j = 0;
	int rc = 0;

	sc->cap = old->nfiles + ch->n + 1;
	sc->ents = cert_hot_alloc(sc->cap * sizeof(*sc->ents));
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
	/* Pairs are made as scan_dir makes them (NAME.crt before NAME.pem
	 * takes NAME.key), which the listed entries alone can do only when
	 * every file of the name is listed: a key that did not change beside
	 * a certificate that did, or the reverse, is left to the full scan. */
	for (size_t k = 0; rc == 0 && k < sc->n; k++) {
		struct cert_scan_ent *e = &sc->ents[k], *key;
		char kn[NAME_MAX + 8];

		if (!e->listed || e->kind != CERT_FILE_CERT)
			continue;
		if (has_ext(e->name, ".key")) {
			rc = stem_listed(sc, e->name) ? 0 : 1;
			continue;
		}
		if (key_name_of(e->name, kn) < 0 || (key = scan_find(sc, kn)) == NULL)
			continue;
		if (!stem_listed(sc, e->name))
			rc = 1;
		else if (key->kind == CERT_FILE_CERT) {
			e->key_name = key->name;
			e->key_st = key->st;
			key->kind = -1; /* consumed */
		}
	}
	for (size_t k = 0; rc == 0 && k < sc->n; k++) {
		struct cert_scan_ent *e = &sc->ents[k];

		if (e->listed && e->kind == CERT_FILE_CERT && has_ext(e->name, ".key"))
			mark_orphan_key(e);
	}
	if (rc < 0)
		cert_report_set_fatal(rep, "%s: out of memory", dir);
	return rc;
}

/* Lists dir for a load: from a change list when one leads from the
 * directory old was loaded from, otherwise by reading the directory. */
int cert_scan_list(const char *dir, struct cert_scan *sc, const struct cert_store *old,
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
	cert_scan_free(sc);
	return scan_dir(dir, sc, old, rep);
}

int cert_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}
