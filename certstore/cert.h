/*
 * cert: the certificate store. The proxy serves handshakes from it, and
 * `switchyard certs`, check-config and certsync validate with it.
 *
 * A store is built from one directory of combined PEM files (leaf, chain,
 * key in one file, HAProxy style) and/or NAME.crt + NAME.key pairs. Once
 * built it is immutable and reference counted: the proxy publishes a new
 * store atomically (cert_slot) and the old one is freed when its last user
 * drops it, so handshakes in flight on other threads are never affected.
 *
 * Loading never stops at a bad file: every problem is recorded in a
 * cert_report (file name + message + severity), the file is skipped, and
 * the rest load.
 */
#ifndef SY_CERT_H
#define SY_CERT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <openssl/ssl.h>

#include "common/cfg.h"

struct cert_store;  /* opaque, immutable, refcounted */
struct cert_item;   /* one servable leaf + chain + key; owned by its store */
struct cert_report; /* opaque load report */

struct cert_opts {
	enum cfg_expired expired; /* serve (warn) or skip expired certificates */
	uint32_t max_file_size;   /* bytes; larger files are rejected */
	int threads;              /* loader threads, 0 = number of CPUs */
	const char *default_cert; /* file name inside the directory, or NULL */
	time_t now;               /* validity reference time; 0 = time(NULL) */
	/* Optional, may be NULL: the loader threads add 1 here (with
	 * __atomic_add_fetch, relaxed) for each certificate file they have
	 * processed, so that another thread can report progress while a large
	 * directory loads. The caller owns it and zeroes it before the load. */
	size_t *progress;
	/* Optional test hook: once hold_after files have been counted in
	 * progress, each loader thread waits while the file hold_file exists.
	 * Tests use it to hold a load in progress on purpose instead of
	 * hoping that a large directory takes long enough (the proxy sets it
	 * from SWITCHYARD_TEST_LOAD_HOLD=N:PATH). NULL: no hold. */
	const char *hold_file;
	size_t hold_after;
};
/* Fills opts from a loaded configuration. */
void cert_opts_from_cfg(struct cert_opts *opts, const struct cfg *cfg);
/* Fills opts with the documented defaults (serve expired, 1 MiB, all CPUs,
 * no default certificate), for callers without a configuration. */
void cert_opts_defaults(struct cert_opts *opts);

/*
 * Loads every file of dir. Returns a new store with one reference (even if
 * every file was bad: an empty store serves nothing), or NULL only if dir
 * itself cannot be read; the reason is then in the report. *rep receives a
 * new report the caller frees with cert_report_free().
 */
struct cert_store *cert_store_load(const char *dir, const struct cert_opts *opts,
                                   struct cert_report **rep);

/*
 * Delta load: builds a new store for dir that reuses every item of old whose
 * file content is unchanged (stat tuple confirmed by content hash), parsing
 * only new and changed files. old is not modified and keeps its reference.
 * The report lists the names that changed (cert_report_changed()).
 */
struct cert_store *cert_store_reload(struct cert_store *old, const char *dir,
                                     const struct cert_opts *opts, struct cert_report **rep);

/*
 * A change list lets a delta load skip listing and stat'ing the files that
 * did not change. A directory may hold a file of this name (a dot file, so
 * loads ignore it otherwise) whose first line is "base ID" and whose other
 * lines are file names, one a line: the directory is promised to equal its
 * sibling directory ID (../ID) except for the files named, which may have
 * been changed, added or removed; every other file is the same inode in
 * both. certsync writes it into every set it builds (sets are never changed
 * once complete). cert_store_reload follows the bases, up to
 * CERT_CHANGES_HOPS of them, to the directory old was loaded from; then it
 * looks only at the files named along the way, and otherwise scans dir
 * whole.
 */
#define CERT_CHANGES_FILE ".certsync-changes"
/* For readers outside the store (certsync's pruning): runs fn on each file
 * the change lists name between dir and base, two sets of one parent
 * directory given in the same form, once per name in sorted order, until fn
 * returns nonzero. Returns fn's nonzero result, 0, or -1 when the lists do
 * not lead from dir to base (or memory ran out). */
int cert_changes_each(const char *dir, const char *base, int (*fn)(const char *name, void *arg),
                      void *arg);

/*
 * An index set: a directory that holds a file of this name is loaded from
 * the index, not from its entries, so that a set of 100,000 certificates is
 * published by writing one file plus the changed contents (certsync), and
 * reloaded by reading one file. The format, one record a line:
 *
 *   switchyard-set 1 BLOBDIR
 *   NAME BLOB
 *   ...
 *
 * BLOBDIR is the directory that holds the contents, relative to dir (or
 * absolute); each NAME (a file name as in a plain directory: NAME.pem, or
 * NAME.crt with NAME.key) is served from BLOBDIR/BLOB. Names are sorted in
 * strictly ascending byte order; neither field holds a slash (BLOB) or
 * white space, nor starts with a dot. A BLOB is content-addressed and never
 * rewritten: a delta load takes every name whose BLOB is the previous
 * store's as unchanged, without opening or stat'ing it, and a BLOB whose
 * first 64 characters are hex digits is compared by those 256 bits.
 */
#define CERT_SET_FILE  ".switchyard-set"
#define CERT_SET_MAGIC "switchyard-set 1"

/*
 * Where a file of a certificate directory is, for readers outside the store
 * (the health gate compares what an instance serves with the file; certsync
 * prunes the blobs no kept set names): a map of dir's index, or NULL for a
 * plain directory. The caller owns the map and frees it with
 * cert_set_map_free.
 *
 * cert_set_map_open reads and splits the index into records: 0 (with *map
 * NULL when dir has no index) or -1 with the reason in err. A split map
 * serves lookups from any thread.
 * cert_set_map_read only reads it (the same results), for a caller that may
 * need one or two records of a large index: cert_set_map_blob_of and
 * cert_set_map_names_blob then search the raw index, without splitting it.
 * cert_set_map_split splits a read map in place (0, or -1 when out of
 * memory or a record is malformed); it must not run beside other calls.
 * After a failed split the map is broken: cert_set_map_blob_of and
 * cert_set_map_path find nothing, and cert_set_map_names_blob says every
 * blob is named, so that a pruner keeps everything.
 *
 * cert_set_map_path writes dir/file or the file's blob path into out, -1
 * when the index does not list file, the map is not split, or out is too
 * small. cert_set_map_blob_of writes the blob that file is served from into
 * out (0, or -1 when not listed). cert_set_map_names_blob is 1 when a record
 * names blob. cert_set_map_count is the number of records of a split map
 * (0 before), and cert_set_map_entry gives record i's file and blob, in the
 * index's ascending order of files.
 */
struct cert_set_map;
int cert_set_map_open(const char *dir, struct cert_set_map **map, char *err, size_t errlen);
int cert_set_map_read(const char *dir, struct cert_set_map **map, char *err, size_t errlen);
int cert_set_map_split(struct cert_set_map *map);
int cert_set_map_path(const struct cert_set_map *map, const char *dir, const char *file, char *out,
                      size_t outlen);
int cert_set_map_blob_of(const struct cert_set_map *map, const char *file, char *out,
                         size_t outlen);
int cert_set_map_names_blob(const struct cert_set_map *map, const char *blob);
size_t cert_set_map_count(const struct cert_set_map *map);
void cert_set_map_entry(const struct cert_set_map *map, size_t i, const char **file,
                        const char **blob);
void cert_set_map_free(struct cert_set_map *map);
#define CERT_CHANGES_HOPS 16

/*
 * The number of entries of dir a load will process, for progress reports:
 * everything but dot files and NAME.key files (a NAME.crt + NAME.key pair
 * counts once). 0 if dir cannot be read.
 */
uint64_t cert_dir_nfiles(const char *dir);

/* Whether file's item is a previous version kept by a reload because the
 * file's new content failed to load (see cert_report_kept). */
int cert_store_file_kept(const struct cert_store *store, const char *file);

/* Reference counting; thread-safe. cert_store_unref(NULL) is a no-op. */
struct cert_store *cert_store_ref(struct cert_store *store);
void cert_store_unref(struct cert_store *store);

/* A monotonically increasing id of this set: generation 1 is the first load. */
uint64_t cert_store_generation(const struct cert_store *store);
/* Number of loaded items and of indexed names. */
size_t cert_store_nitems(const struct cert_store *store);
size_t cert_store_nnames(const struct cert_store *store);
/* The i-th indexed name (0 <= i < nnames), in a stable order; for sampling. */
const char *cert_store_name_at(const struct cert_store *store, size_t i);

/* Lookup flags. */
#define CERT_LOOKUP_ECDSA_OK 0x1 /* client accepts ECDSA signatures */

/*
 * Finds the item serving the SNI name (len bytes, not NUL-terminated; case
 * and one trailing dot ignored): exact match first, then a wildcard that
 * covers exactly one label. If nothing matches, returns the default item and
 * sets *used_default to 1, or NULL when there is no default. Cost does not
 * depend on the number of certificates. name may be NULL (no SNI). When both
 * an ECDSA and an RSA item serve the name, ECDSA wins if flags allows it.
 * The result is valid while the caller holds a reference to the store.
 */
const struct cert_item *cert_store_lookup(const struct cert_store *store, const char *name,
                                          size_t len, unsigned flags, int *used_default);

/* Installs the item's leaf, chain and key on ssl (in the ClientHello
 * callback). Returns 0, or -1 with the OpenSSL error queue set. */
int cert_item_use(const struct cert_item *item, SSL *ssl);
/*
 * Decoded leaves and keys are cached process-wide, in a bounded CLOCK cache
 * shared by every store: an item keeps only its leaf's DER and its key's
 * at-rest form (~600 + 100 bytes for ECDSA), while a decoded leaf and key
 * cost ~10 KB, so the bound is what caps memory once many certificates have
 * served. A miss decodes both again (about 0.2 ms, against 3 us for a hit).
 * Thread-safe; cert_item_use() takes references of its own, so eviction
 * never frees a leaf or key that a handshake is installing. The limit is
 * certs.cache_size.
 */
#define CERT_LEAF_CACHE_DEFAULT CFG_CERTS_CACHE_SIZE_DEFAULT
/* Sets the maximum number of cached leaves (0: decode on every use) and
 * evicts down to it. */
void cert_leaf_cache_set_limit(size_t n);
/* Evicts every cached entry, keeping the limit (a standby instance gives
 * its decoded certificates back); returns how many were evicted. */
size_t cert_leaf_cache_trim(void);
struct cert_leaf_cache_stats {
	size_t limit, cached;
	unsigned long hits, misses, evictions; /* since the process started */
};
void cert_leaf_cache_stats(struct cert_leaf_cache_stats *s);

/* The file the item was loaded from (base name inside the directory). */
const char *cert_item_file(const struct cert_item *item);
/* SHA-256 of the leaf certificate's DER. */
const unsigned char *cert_item_sha256(const struct cert_item *item);
time_t cert_item_not_after(const struct cert_item *item);

/*
 * cert_slot: the atomically published "current store" of a running proxy.
 * Readers (worker threads) acquire a reference for the duration of one
 * lookup; the writer publishes a new store and the old one is freed when the
 * last reader releases it.
 */
struct cert_slot;
struct cert_slot *cert_slot_new(void);
void cert_slot_free(struct cert_slot *slot); /* drops the published store */
/* Takes ownership of store's reference and releases the previous store. */
void cert_slot_publish(struct cert_slot *slot, struct cert_store *store);
/* Returns a new reference to the current store (NULL if none); release it
 * with cert_store_unref(). */
struct cert_store *cert_slot_acquire(struct cert_slot *slot);

/* Report. Severities: */
enum cert_sev { CERT_OK = 0, CERT_WARN, CERT_SKIP };
size_t cert_report_nfiles(const struct cert_report *rep);
size_t cert_report_nloaded(const struct cert_report *rep);
size_t cert_report_nskipped(const struct cert_report *rep);
size_t cert_report_nwarned(const struct cert_report *rep);
/* Directory entries that are not certificate files (other extensions,
 * subdirectories, unpaired .key files, escaping symlinks); each has an
 * entry with a message but is not counted in nfiles. */
size_t cert_report_nignored(const struct cert_report *rep);
/* A message naming the directory when the whole load failed, else NULL. */
const char *cert_report_fatal(const struct cert_report *rep);
/* Names added, changed or removed by a reload, in sorted order. */
size_t cert_report_nchanged(const struct cert_report *rep);
const char *cert_report_changed(const struct cert_report *rep, size_t i);
/*
 * Files whose new content failed to load on a reload (unreadable, cut short,
 * invalid) while their previous version was served: the new store keeps the
 * previous version, so no name goes offline, and reports it here, in file
 * order: the file name and why its new content was not loaded. Each such
 * file also has a warning entry and counts as loaded and warned.
 */
size_t cert_report_nkept(const struct cert_report *rep);
const char *cert_report_kept(const struct cert_report *rep, size_t i, const char **why);
/* Soonest notAfter over the loaded items, 0 if none. */
time_t cert_report_soonest_expiry(const struct cert_report *rep);
/* Per-file verdicts, sorted by file name: entry i's file name (inside the
 * directory), severity and message (NULL when the file loaded cleanly).
 * certsync uses these to cache a verdict per content hash. */
size_t cert_report_nentries(const struct cert_report *rep);
const char *cert_report_entry(const struct cert_report *rep, size_t i, enum cert_sev *sev,
                              const char **msg);
/* Prints every file's verdict and a summary, as text or one JSON object. */
void cert_report_print(const struct cert_report *rep, FILE *out, int json);
void cert_report_free(struct cert_report *rep);

/*
 * `switchyard certs check [DIR] [--json] [--default FILE]` and
 * `switchyard certs lookup [DIR] NAME [--rsa]`; argv[0] is "certs". DIR
 * defaults to certs.directory of the configuration (cfgpath, or the default
 * path when NULL); with an explicit DIR and no -c, built-in defaults are used.
 * Returns the process exit status.
 */
int cert_cmd(const char *cfgpath, int argc, char **argv);

#endif
