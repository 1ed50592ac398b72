/*
 * cert_int: private structures shared by the cert_*.c files. Nothing outside
 * common/cert_*.c includes this header.
 */
#ifndef SY_CERT_INT_H
#define SY_CERT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common/cert.h"

#define CERT_NAME_MAX 253

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
	/* The leaf is kept as DER and decoded on first use (cert_item_use):
	 * see docs/certificates.md. Once set, the pointer never changes. */
	_Atomic(X509 *) leaf;
	unsigned char *leaf_der;
	size_t leaf_der_len;
	STACK_OF(X509) * chain; /* owns one reference per element */
	EVP_PKEY *key;
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
	char *name; /* base name */
	struct cert_stat st, key_st;
	int has_key_file;       /* NAME.key was read too */
	unsigned char hash[32]; /* SHA-256 of the file bytes (+ key file bytes) */
	int hashed;
	struct cert_item *item; /* NULL if skipped or ignored */
	enum cert_sev sev;
	char *msg;    /* from loading; survives reloads with the item */
	char *dupmsg; /* duplicate-name warnings, rebuilt with every index */
	int kind;     /* CERT_FILE_* */
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
	const struct cert_item *def;
	struct cert_chain_pool *pool;
};

struct cert_report {
	size_t nfiles, nloaded, nskipped, nwarned, nignored, nnames;
	char *fatal;
	char **changed;
	size_t nchanged;
	time_t soonest;
	struct cert_rep_ent {
		char *file;
		enum cert_sev sev;
		char *msg;
	} * ents;
	size_t nents, cap;
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
/* The item's decoded leaf, decoding it on first use; NULL on failure. */
X509 *cert_item_leaf(const struct cert_item *item);

/* cert_index.c */
/* Normalises name (len bytes) into out[CERT_NAME_MAX + 1]: lowercase, one
 * trailing dot removed. Returns the length, or -1 if the name is empty, too
 * long, has an empty label or a character outside [a-z0-9-_*]. */
int cert_name_norm(const char *name, size_t len, char *out);
int cert_index_build(struct cert_store *st);
void cert_index_free(struct cert_store *st);
const struct cert_name_ent *cert_index_find(const struct cert_index *ix, const char *key,
                                            size_t len);

/* cert_report.c */
struct cert_report *cert_report_new(void);
int cert_report_add(struct cert_report *rep, const char *file, enum cert_sev sev, const char *msg);
void cert_report_set_fatal(struct cert_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cert_report_add_changed(struct cert_report *rep, const char *name);
void cert_report_sort(struct cert_report *rep);

char *cert_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
