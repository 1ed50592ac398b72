/*
 * cert_int: private structures shared by the cert_*.c files. Nothing outside
 * certstore/cert_*.c includes this header.
 */
#ifndef SY_CERT_INT_H
#define SY_CERT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certstore/cert.h"

#define CERT_NAME_MAX 253

/* cert_arena.c: strings that are freed together (cert_arena.c says why). A
 * zeroed struct is an empty arena. */
struct cert_arena {
	struct cert_arena_blk *head;
};
/* A copy of s in the arena, or NULL when out of memory. */
char *cert_arena_strdup(struct cert_arena *a, const char *s);
/* Gives every string of `from` to `to`; `from` is left empty. */
void cert_arena_move(struct cert_arena *to, struct cert_arena *from);
void cert_arena_free(struct cert_arena *a);

/* The large arrays a load or reload builds (the file records, the scan's
 * listing, the index tables, the set index's text). Freed ones of 256 KB
 * and over are kept for the next load, up to the most that was ever in use
 * at once, so that a reload reuses memory that is already mapped;
 * cert_arena.c says why. Memory from these functions is freed only with
 * cert_hot_free (NULL is a no-op); cert_hot_realloc keeps the first old_n
 * bytes and frees p only on success. Thread-safe. */
void *cert_hot_alloc(size_t n);
void *cert_hot_calloc(size_t nmemb, size_t size);
void *cert_hot_realloc(void *p, size_t old_n, size_t n);
void cert_hot_free(void *p);
/* With keep, freed blocks are kept for the next load; without, the ones
 * kept are unmapped and no more are. A cold load ends with 0 (its
 * temporaries are not needed again soon), a reload starts with 1. */
void cert_hot_keep(int keep);
/* The number of freed blocks kept (always 0 under a sanitizer, where
 * every block comes from malloc). */
size_t cert_hot_spares(void);
/* A malloc'ed string formatted as printf would, or NULL when out of memory;
 * the caller frees it. */
char *cert_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* What identifies a file's content without reading it. */
struct cert_stat {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

/* A deduplicated chain certificate, keyed by the SHA-256 of its DER. */
struct cert_chain_ent {
	unsigned char sha[32];
	X509 *x509; /* one reference held by the table that owns the entry */
};

/* A table of chain certificates, shared by the loader threads of one load. */
struct cert_chain_pool {
	pthread_mutex_t lock;
	struct cert_chain_ent *ents; /* open addressing, cap is a power of two */
	size_t cap, n;
	const struct cert_chain_pool *seed; /* the previous store's pool, read-only */
};

struct cert_item {
	atomic_uint refs;
	/* The leaf and the key are kept as DER and decoded on use
	 * (cert_item_use); the decoded pair is cached in a bounded,
	 * process-wide CLOCK cache (cert_cache.c, docs/certificates.md). leaf
	 * and key are the cache's references, guarded by the item's stripe
	 * lock: eviction sets them back to NULL. (While cert_load_file runs,
	 * key holds the loader's key.) cache_pos is the ring index + 1 (0: not
	 * cached), written under the cache lock; cache_ref is CLOCK's "used
	 * recently" bit. */
	X509 *leaf;
	EVP_PKEY *key;
	atomic_long cache_pos;
	atomic_uchar cache_ref;
	unsigned char *leaf_der;
	size_t leaf_der_len;
	STACK_OF(X509) * chain; /* owns one reference per element */
	/* The private key at rest (cert_key.c): an EC key as its big-endian
	 * scalar (key_priv_len bytes) followed by its uncompressed public
	 * point, on curve key_nid, so that a serving thread can build a
	 * provider-native key without a decoder; RSA as RSAPrivateKey DER. */
	unsigned char *key_der;
	size_t key_der_len, key_priv_len;
	int key_nid;
	int is_ec;
	time_t not_before, not_after;
	unsigned char sha256[32];
	char *file;   /* base name of the certificate file */
	char **names; /* normalised DNS names ("*.x" for wildcards) */
	size_t nnames;
};

/* One directory entry's verdict, kept by the store so that a reload can
 * reuse both good items and the verdict on bad files without re-reading. */
struct cert_file {
	const char *name; /* base name, in the store's arena */
	struct cert_stat st, key_st;
	int has_key_file;       /* NAME.key was read too */
	unsigned char hash[32]; /* SHA-256 of the file bytes (+ key file bytes) */
	int hashed;
	struct cert_item *item; /* NULL if skipped or ignored */
	enum cert_sev sev;
	char *msg;    /* from loading; survives reloads with the item */
	char *dupmsg; /* duplicate-name warnings, rebuilt with every index */
	int kind;     /* CERT_FILE_* */
	/* The file's new content failed to load on a reload: item is the
	 * previous version's, and st/hash are the previous version's too, so
	 * that the next reload looks at the file again. */
	int kept;
};
enum { CERT_FILE_CERT = 0, CERT_FILE_IGNORED, CERT_FILE_DIR };

/* Name index: open addressing hash table. */
struct cert_name_ent {
	const char *key;  /* lowercase; for wildcards the parent ("example.com") */
	const char *name; /* as listed: "a.example.com" or "*.example.com" */
	uint32_t hash;
	uint32_t len;
	const struct cert_item *ec, *rsa;
};
struct cert_index {
	struct cert_name_ent *ents;
	size_t cap, n;
};

struct cert_store {
	atomic_uint refs;
	uint64_t generation;
	struct cert_file *files; /* sorted by name */
	size_t nfiles;
	struct cert_index exact, wild;
	/* Every name, sorted, for name_at. Built on first use under order_lock:
	 * only the health gate samples names, and sorting 10,000 names would
	 * otherwise be a tenth of a delta reload. */
	_Atomic(const struct cert_name_ent **) order;
	pthread_mutex_t order_lock;
	size_t nnames, nitems;
	size_t ndups; /* names claimed twice for one key type (warned) */
	const struct cert_item *def;
	struct cert_chain_pool *pool;
	struct cert_arena names; /* the files' names */
	char *dir;               /* the directory's real path (malloc'ed), NULL if unknown */
};

struct cert_report {
	size_t nfiles, nloaded, nskipped, nwarned, nignored, nnames;
	char *fatal;
	struct cert_arena strs; /* entries' file names and messages, changed names */
	int unsorted;           /* ents are not in cmp order */
	char **changed;
	size_t nchanged;
	time_t soonest;
	struct cert_rep_ent {
		char *file;
		enum cert_sev sev;
		char *msg;
	} * ents;
	size_t nents, cap;
	struct cert_rep_kept {
		char *file, *msg;
	} * kept;
	size_t nkept;
};

/* cert_load.c */
struct cert_loader; /* per-thread state: library context, buffers */
struct cert_loader *cert_loader_new(int idx);
void cert_loader_free(struct cert_loader *ld);
/*
 * Reads and parses one certificate file (dirfd-relative name; key_name is
 * the NAME.key partner or NULL). On success returns an item with one
 * reference; otherwise NULL and *msg holds a malloc'ed message. A warning
 * may also be returned with a non-NULL item. hash receives the SHA-256 of
 * the bytes read.
 */
struct cert_item *cert_load_file(struct cert_loader *ld, int dirfd, const char *name,
                                 const char *key_name, const struct cert_opts *opts,
                                 struct cert_chain_pool *pool, unsigned char hash[32],
                                 enum cert_sev *sev, char **msg);
/* Hashes a file (and key file) as cert_load_file would, for delta checks. */
int cert_hash_file(struct cert_loader *ld, int dirfd, const char *name, const char *key_name,
                   uint32_t max, unsigned char hash[32]);
void cert_item_unref(struct cert_item *item);
struct cert_item *cert_item_ref(struct cert_item *item);
struct cert_chain_pool *cert_chain_pool_new(const struct cert_chain_pool *seed);
void cert_chain_pool_free(struct cert_chain_pool *pool);

/* cert_pem.c: files to PEM blocks to DER, without OpenSSL's decoders. */
enum cert_pem_kind {
	CERT_PEM_CERT,
	CERT_PEM_KEY_P8,
	CERT_PEM_KEY_EC,
	CERT_PEM_KEY_RSA,
	CERT_PEM_KEY_ENC,
	CERT_PEM_OTHER
};
struct cert_pem_block {
	enum cert_pem_kind kind;
	const unsigned char *body; /* base64 text, inside the buffer that was split */
	size_t len;
	int encrypted_header; /* "Proc-Type: 4,ENCRYPTED" */
};
#define CERT_PEM_MAX_BLOCKS 16
/* Builds the base64 table once per process; call it before
 * cert_b64_decode (cert_loader_new does). */
void cert_pem_init(void);
/*
 * Reads the regular file name (relative to dirfd), at most max bytes, into
 * *buf, a buffer of *cap bytes that the caller owns and that is replaced by
 * a larger one when needed (the old one wiped first: it may have held a
 * key); the content is NUL-terminated and *len is its length. Returns 0, or
 * -1 with *msg a malloc'ed message naming the file and the cause.
 */
int cert_read_file(int dirfd, const char *name, uint32_t max, unsigned char **buf, size_t *cap,
                   size_t *len, char **msg);
/*
 * Splits buf into at most max PEM blocks (blk points into buf). Returns the
 * number of blocks, or -1 with *msg (malloc'ed, prefixed by where) when a
 * block has no END line or a mismatched one (a truncated file).
 */
int cert_pem_split(const unsigned char *buf, size_t len, struct cert_pem_block *blk, int max,
                   char **msg, const char *where);
/* Decodes base64 text (whitespace allowed, '=' padding only at the end)
 * into out, which must hold len * 3 / 4 bytes. Returns the length or -1. */
long cert_b64_decode(const unsigned char *in, size_t len, unsigned char *out);

/* cert_key.c */
/* The two library contexts of loader slot idx (modulo the pool size): one
 * with the default provider, one with only the "null" provider. They live
 * as long as the process. Returns 0, or -1 when one cannot be created. */
int cert_loader_ctx(int idx, OSSL_LIB_CTX **lctx, OSSL_LIB_CTX **nctx);
/* The library context this serving thread decodes leaves in. */
OSSL_LIB_CTX *cert_serve_ctx(void);
/* A new EVP_PKEY that takes ownership of ec (or rsa); on failure the key is
 * freed and NULL returned. */
EVP_PKEY *cert_key_wrap_ec(EC_KEY *ec);
EVP_PKEY *cert_key_wrap_rsa(RSA *rsa);
/* The named curve of an EC key, or NID_undef if TLS could not sign with it
 * (explicit parameters that match no named curve). */
int cert_key_curve(const EVP_PKEY *k);
/* Replaces it->key by its at-rest form in it->key_der (it->key is freed and
 * set to NULL). Returns 0, or -1 on failure (it->key is then untouched). */
int cert_item_key_to_rest(struct cert_item *it);
/* Builds the item's private key from its at-rest form; NULL on failure. */
EVP_PKEY *cert_item_key_decode(const struct cert_item *item);

/* cert_cache.c */
/* New references to the item's decoded leaf and key (release them with
 * X509_free and EVP_PKEY_free), from the cache or decoded now. Returns 0,
 * or -1 on failure. */
int cert_item_material_get(const struct cert_item *item, X509 **leaf, EVP_PKEY **key);
/* Removes a dying item (no references left) from the leaf cache. */
void cert_item_cache_drop(struct cert_item *item);

/* cert_index.c */
/* Normalises name (len bytes) into out[CERT_NAME_MAX + 1]: lowercase, one
 * trailing dot removed. Returns the length, or -1 if the name is empty, too
 * long, has an empty label or a character outside [a-z0-9-_*]. */
int cert_name_norm(const char *name, size_t len, char *out);
int cert_index_build(struct cert_store *st);
/* What a reload changed between the previous store and the new one: the
 * items dropped and the items added (a replaced file's are in both). Items a
 * reload reuses are the same pointers in both stores, so they are in
 * neither list. */
struct cert_delta {
	const struct cert_item **rm, **add;
	size_t nrm, nadd, caprm, capadd;
};
/* Builds st's index by patching old's with delta d, when only a few items
 * differ and neither store has a duplicate name; returns -1 when a full
 * build is needed (st's index is then untouched). */
int cert_index_update(struct cert_store *st, const struct cert_store *old,
                      const struct cert_delta *d);
void cert_index_free(struct cert_store *st);
const struct cert_name_ent *cert_index_find(const struct cert_index *ix, const char *key,
                                            size_t len);

/* cert_scan.c */
/* One directory entry found by the scan. */
struct cert_scan_ent {
	const char *name; /* in the scan's arena */
	int kind;         /* CERT_FILE_* */
	struct cert_stat st, key_st;
	const char *key_name; /* NAME.key partner, or NULL */
	/* What to open in the scan's dirfd for name and key_name: the blobs
	 * of an index set (cert_set.c), NULL for a plain directory (the
	 * names themselves). In the scan's buf. */
	const char *path, *key_path;
	char *msg; /* for ignored entries and scan errors */
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

struct cert_scan {
	struct cert_scan_ent *ents;
	size_t n, cap;
	int dirfd;
	/* ents[i] and the previous store's files[i] are the same file name
	 * (sort_like() succeeded). */
	int like_old;
	struct cert_arena names; /* ents' names, handed to the store */
	char *buf;               /* an index set's index, which paths point into */
	char realdir[PATH_MAX];  /* the directory's real path */
};

/* Lists dir into sc (zeroed, dirfd -1): from old's records and a change
 * list when one applies, else by reading dir. Returns 0, or -1 with the
 * reason in the report; the caller frees sc with cert_scan_free either way. */
int cert_scan_list(const char *dir, struct cert_scan *sc, const struct cert_store *old,
                   struct cert_report *rep);
void cert_scan_free(struct cert_scan *sc);
/* Sorts a finished listing by name (in old's order when it can; not at all
 * when sorted says it is in strictly ascending order already) and pairs
 * each NAME.crt / NAME.pem with NAME.key; nkeyfiles is how many .key
 * entries the listing holds (0 skips the search). -1 when out of memory. */
int cert_scan_pair(struct cert_scan *sc, const struct cert_store *old, size_t nkeyfiles,
                   int sorted);
/* The verdict for an entry that is no certificate file. */
void cert_scan_mark_ignored(struct cert_scan_ent *e);
/* Whether name ends in .pem, .crt or .key. */
int cert_is_cert_name(const char *name);
/* cert_dir_nfiles (cert.h) for a plain directory. */
uint64_t cert_scan_nfiles(const char *dir);

/* cert_set.c */
/* Lists an index set (CERT_SET_FILE in dir, cert.h) into sc: 0 when done,
 * 1 when dir holds no index (the caller scans the directory), or -1 with
 * the reason in the report. */
int cert_set_scan(const char *dir, struct cert_scan *sc, const struct cert_store *old,
                  struct cert_report *rep);

/* Whether two stat tuples are the same. */
int cert_stat_eq(const struct cert_stat *a, const struct cert_stat *b);
/* The number of CPUs online, at least 1. */
int cert_ncpus(void);

/* cert_changes.c */
/* The files that may differ between two directories, from change lists
 * (CERT_CHANGES_FILE, cert.h). */
struct cert_changes {
	const char **names; /* sorted, unique; the strings live in strs */
	size_t n, cap;
	struct cert_arena strs;
};
/* Follows realdir's change list through its bases to old_realdir (both
 * real paths) and collects the names listed on the way. Returns 0, or -1
 * when the lists do not lead there (ch is then empty): the caller must
 * then look at every file. */
int cert_changes_read(const char *realdir, const char *old_realdir, struct cert_changes *ch);
/* Whether name is in ch. */
int cert_changes_has(const struct cert_changes *ch, const char *name);
void cert_changes_free(struct cert_changes *ch);

/* cert_report.c */
struct cert_report *cert_report_new(void);
int cert_report_add(struct cert_report *rep, const char *file, enum cert_sev sev, const char *msg);
int cert_report_add_kept(struct cert_report *rep, const char *file, const char *msg);
void cert_report_set_fatal(struct cert_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cert_report_add_changed(struct cert_report *rep, const char *name);
void cert_report_sort(struct cert_report *rep);

#endif
