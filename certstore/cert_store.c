/*
 * cert_store: parallel loading, delta reloads, the store's reference
 * counting and the published slot; cert_scan.c lists the directory.
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

/* ---- parallel parsing ---- */

struct job {
	struct cert_scan *sc;
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

static void parse_one(struct cert_loader *ld, struct job *j, struct cert_scan_ent *e)
{
	/* An index set's files are opened by their blob names. */
	const char *path = e->path != NULL ? e->path : e->name;
	const char *key_path = e->key_path != NULL ? e->key_path : e->key_name;
	char *msg = NULL;

	/* A reload first checks whether a touched file's bytes changed at all:
	 * hashing costs a fraction of parsing. */
	if (e->old != NULL && e->old->item != NULL &&
	    cert_hash_file(ld, j->sc->dirfd, path, key_path, j->opts->max_file_size, e->hash) ==
	        0 &&
	    memcmp(e->hash, e->old->hash, 32) == 0) {
		e->item = cert_item_ref(e->old->item);
		e->sev = e->old->sev;
		e->msg = e->old->msg != NULL ? strdup(e->old->msg) : NULL;
		return;
	}
	e->item = cert_load_file(ld, j->sc->dirfd, path, key_path, j->opts, j->pool, e->hash,
	                         &e->sev, &msg);
	e->msg = msg;
	/* The item is known by its name in the set, not by its blob's. */
	if (e->item != NULL && e->path != NULL) {
		char *file = strdup(e->name);

		if (file == NULL) {
			cert_item_unref(e->item);
			e->item = NULL;
			e->sev = CERT_SKIP;
			free(e->msg);
			e->msg = cert_strdup_printf("out of memory");
		} else {
			free(e->item->file);
			e->item->file = file;
		}
	}
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
		struct cert_scan_ent *e = &j->sc->ents[j->work[i]];

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

static void run_jobs(struct job *j)
{
	int nt = j->opts->threads > 0 ? j->opts->threads : cert_ncpus();
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
	cert_hot_free(st->files);
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
static struct cert_store *assemble(struct cert_scan *sc, const struct cert_store *old,
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
	st->files = cert_hot_calloc(sc->n + 1, sizeof(*st->files));
	if (st->files == NULL)
		goto fail;
	for (size_t i = 0; i < sc->n; i++) {
		struct cert_scan_ent *e = &sc->ents[i];
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
	struct cert_scan sc = {.dirfd = -1};
	struct job j;
	size_t nwork = 0;
	int rc;

	*repp = rep;
	if (rep == NULL)
		return NULL;
	memset(&j, 0, sizeof(j));
	/* Reloads come one after another (certsync every few minutes): their
	 * large arrays are kept for the next one (cert_arena.c). */
	if (old != NULL)
		cert_hot_keep(1);
	/* An index set is listed from its index; anything else is a
	 * directory. */
	rc = cert_set_scan(dir, &sc, old, rep);
	if (rc < 0 || (rc > 0 && cert_scan_list(dir, &sc, old, rep) < 0))
		goto out;
	j.work = cert_hot_alloc((sc.n + 1) * sizeof(*j.work));
	pool = cert_chain_pool_new(old != NULL ? old->pool : NULL);
	if (j.work == NULL || pool == NULL) {
		cert_report_set_fatal(rep, "%s: out of memory", dir);
		goto out;
	}
	for (size_t i = 0, oi = 0; i < sc.n; i++) {
		struct cert_scan_ent *e = &sc.ents[i];
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
		    of->has_key_file == (e->key_name != NULL) && cert_stat_eq(&of->st, &e->st) &&
		    (e->key_name == NULL || cert_stat_eq(&of->key_st, &e->key_st))) {
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
	cert_hot_free(j.work);
	cert_scan_free(&sc);
	/* Decoding leaves many freed temporaries in the loader threads' malloc
	 * arenas; glibc keeps them mapped unless asked. A cold load is rare
	 * and this costs about a millisecond. */
	if (nwork > 64)
		malloc_trim(0);
	/* A cold load's temporaries are not needed again soon. */
	if (old == NULL)
		cert_hot_keep(0);
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
