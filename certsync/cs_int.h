/*
 * Internal interface between the certsync files. Not for other modules.
 *
 *   state.c     unit lists, the set index and verdict cache format, the
 *               manifest (what is remembered between runs)
 *   set.c       building and publishing set directories, and what a set
 *               serves (the mass-deletion guard's count)
 *   validate.c  verdicts for new content, from the certificate store
 *   run.c       one run, step by step
 *   cmd.c       the command: options, lock, the printed report
 *   source.c    the source command
 *
 * Functions return 0 or -1; those that take err write why into it (naming
 * the file) on failure.
 */
#ifndef SY_CS_INT_H
#define SY_CS_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "certsync/cs.h"

struct cfg;

#define CS_HASH_HEX   65 /* SHA-256 in hex, plus NUL */
#define CS_INDEX_NAME ".certsync-index"

/* One file of the source or of a set. */
struct cs_file {
	char *name;
	int64_t size;
	int64_t mtime_ns;
	char hash[CS_HASH_HEX]; /* "" until known */
	int copied;             /* this run copied it into the new set */
};

/* A list of files, sorted by name once complete. Owns the names. */
struct cs_files {
	struct cs_file *v;
	size_t n, cap;
};

/* Where a unit of the set being built stands in this run. */
enum cs_unit_state {
	/* Same content as in the current set: linked from it, and its verdict
	 * is the current set's. */
	CS_UNIT_SAME = 0,
	/* New content: it needs a verdict, from the cache or the store. */
	CS_UNIT_CHANGED,
	/* New content staged for validation, waiting for the store's report. */
	CS_UNIT_STAGED,
	/* New content with its verdict. */
	CS_UNIT_JUDGED,
};

/* A certificate unit: a combined NAME.pem, or a NAME.crt + NAME.key pair.
 * Its hash covers every file of the unit. */
struct cs_unit {
	char *name;    /* NAME.pem or NAME.crt */
	char *keyfile; /* NAME.key for a pair, else NULL */
	char hash[CS_HASH_HEX];
	int sev; /* enum cert_sev, valid once the unit has a verdict */
	enum cs_unit_state state;
	time_t not_after;
	char *names;   /* comma-separated DNS names served, "" if none */
	char *msg;     /* validation message, NULL if clean */
	int rejected;  /* this version failed validation (msg says why) */
	int kept_prev; /* ... and the previous good version stays served */
	int learned;   /* verdict cache: added by this run, not yet saved */
};

/* A list of units. Owns every string of its units. */
struct cs_units {
	struct cs_unit *v;
	size_t n, cap;
};

/* ---- state.c ---- */

/* Joins a and b with a '/'; -1 if out does not hold the result. */
int cs_path(char *out, size_t len, const char *a, const char *b);
/* SHA-256 digest to lowercase hex. */
void cs_hex(const unsigned char md[32], char hex[CS_HASH_HEX]);

/* A set of strings (names, blob names): open addressing over v, cap slots
 * (a power of two, or 0 before the first add), n used; a slot is NULL or a
 * member. The strings are borrowed: the caller keeps them alive while the
 * set lives, and frees only v. cs_strset_add is 0, or -1 when out of
 * memory; cs_strset_reserve makes room for n members without growing again
 * (0 or -1); cs_strset_has is 1 for a member. */
struct cs_strset {
	const char **v;
	size_t cap, n;
};
int cs_strset_add(struct cs_strset *s, const char *k);
int cs_strset_reserve(struct cs_strset *s, size_t n);
int cs_strset_has(const struct cs_strset *s, const char *k);

/* A new zeroed unit at the end of u, or NULL when out of memory. Pointers
 * into u are invalid after this call. */
struct cs_unit *cs_units_add(struct cs_units *u);
void cs_units_free(struct cs_units *u);
void cs_units_sort_by_name(struct cs_units *u);
void cs_units_sort_by_hash(struct cs_units *u);
/* Lookups in a list sorted by name (by hash); NULL if absent. */
struct cs_unit *cs_units_find_name(const struct cs_units *u, const char *name);
struct cs_unit *cs_units_find_hash(const struct cs_units *u, const char *hash);
/* Copies the verdict part (severity, expiry, names, message; not the file
 * names or the hash) of src into dst. */
int cs_unit_set_verdict(struct cs_unit *dst, const struct cs_unit *src);
/*
 * Unit lists are stored one unit per line:
 *   NAME <TAB> KEYFILE|- <TAB> HASH <TAB> SEV <TAB> NOT_AFTER <TAB> NAMES|- <TAB> MESSAGE|-
 * The same format serves set indexes and the verdict cache. Loading appends
 * to u and skips torn lines; a missing file is an empty list. Saving is
 * atomic (PATH.tmp, fsync, rename); a rejected unit is saved without its
 * message, because the message describes a version that is not in the set.
 */
int cs_units_load(const char *path, struct cs_units *u);
/* Appends to u only the units of the file at path whose hash is one of
 * hashes: for the verdict cache, when a run needs a few verdicts out of
 * 100,000 (one search of the file per hash instead of a parse of each
 * line). */
int cs_units_load_hashes(const char *path, struct cs_units *u, const char *const *hashes,
                         size_t nhashes);
int cs_units_save(const char *path, const struct cs_units *u);
/* Appends u's units marked learned to the file at path (the verdict cache
 * only grows, so a run that judged one unit writes one line, not the
 * cache) and syncs it. */
int cs_units_append_learned(const char *path, const struct cs_units *u);
/* Adds to the verdict cache (sorted by hash) the verdicts of next's units
 * that were judged in this run and are not cached yet; keeps it sorted.
 * Returns the number added, or -1 when out of memory. */
long cs_verdicts_learn(struct cs_units *verdicts, const struct cs_units *next);

void cs_files_free(struct cs_files *f);
void cs_files_sort(struct cs_files *f);
/* A new zeroed file at the end of f (its name is name's copy), or NULL when
 * out of memory. */
struct cs_file *cs_files_add(struct cs_files *f, const char *name);
/* Lookup in a list sorted by name; NULL if absent. */
struct cs_file *cs_files_find(const struct cs_files *f, const char *name);
/* The manifest: the source's stat tuples and hashes at the last promotion,
 * one "NAME SIZE MTIME_NS HASH" line per file. Loading a missing file gives
 * an empty list; saving is atomic. */
int cs_manifest_load(const char *path, struct cs_files *man);
int cs_manifest_save(const char *path, const struct cs_files *src);
/* A digest of src's names, sizes and mtimes. The manifest's digest is
 * kept beside it (manifest.sum, saved after the manifest), so that a run
 * with no change compares one line instead of loading the manifest:
 * cs_manifest_sum_same is 1 when path holds src's digest. */
void cs_manifest_digest(const struct cs_files *src, char hex[CS_HASH_HEX]);
int cs_manifest_sum_same(const char *path, const struct cs_files *src);
int cs_manifest_sum_save(const char *path, const struct cs_files *src);
/* Whether src has exactly man's names with the same sizes and mtimes (both
 * sorted by name): then nothing changed since the last promotion. */
int cs_manifest_same(const struct cs_files *src, const struct cs_files *man);

/* ---- set.c ---- */

/* Lists the certificate files of dir (*.pem, *.crt, *.key; regular files,
 * no dotfiles) with their stat tuples, sorted by name. */
int cs_scan(const char *dir, struct cs_files *out, char *err, size_t errlen);
/* Copies from_dir/NAME to to_dir/NAME (to_dir NULL: copies nothing) and
 * puts the SHA-256 of exactly the bytes read into f->hash, so a file that
 * changes while it is read is never validated in one version and served in
 * another. */
int cs_copy_hash(const char *from_dir, const char *to_dir, struct cs_file *f, char *err,
                 size_t errlen);
/* Groups the hashed source files into units (sorted by name, as src is):
 * NAME.crt takes NAME.key and the unit hash covers both. A .key without its
 * .crt, and a .crt without its .key, are units of their own that the
 * validator then rejects with a clear message. */
int cs_units_group(const struct cs_files *src, struct cs_units *out);
/* Decides for every unit of next (both lists sorted by name) whether its
 * content is the current set's: such a unit is CS_UNIT_SAME and takes the
 * current verdict, every other one is CS_UNIT_CHANGED. Returns the number
 * of changed units, counting units that next no longer has, or -1 when out
 * of memory. */
long cs_units_plan(const struct cs_units *cur, struct cs_units *next);
/* A unit u rejected by validation keeps the previous good version prev
 * (from the current set): its verdict, names, hash and key file, with u's
 * rejection message kept for the report. */
int cs_unit_keep_previous(struct cs_unit *u, const struct cs_unit *prev);
/* The mass-deletion guard's figures: the distinct names cur serves, those
 * next would serve (units not skipped), and how many of cur's next lacks. */
int cs_names_gone(const struct cs_units *cur, const struct cs_units *next, size_t *nold,
                  size_t *nnew, size_t *gone);
/* Writes the set's change list (CERT_CHANGES_FILE, certstore/cert.h) into
 * tmpdir: the set equals the set base_id (whose units are cur) except for
 * the files of next's units that are not CS_UNIT_SAME and of cur's units
 * that next lacks. */
int cs_set_changes(const char *tmpdir, const char *base_id, const struct cs_units *cur,
                   const struct cs_units *next, char *err, size_t errlen);
/* Writes the set index into tmpdir, syncs the set and renames it to
 * final: only a complete, durable set gets a final name. With share, the
 * set directory and every file in it get group gid and group read access
 * first (the instances' group, privs.h). */
int cs_set_finish(const char *tmpdir, const char *final, const struct cs_units *units, int share,
                  gid_t gid, char *err, size_t errlen);
/* Makes path durable: fsync(2) of a file (CS_SYNC_FILE) or of a directory's
 * entries (CS_SYNC_DIR), or syncfs(2) of a directory's file system
 * (CS_SYNC_FS). 0, or -1 with the reason in err. */
enum cs_sync { CS_SYNC_FILE, CS_SYNC_DIR, CS_SYNC_FS };
int cs_sync(const char *path, enum cs_sync how, char *err, size_t errlen);
/* The set `current` points at (id "" if none), and with units non-NULL
 * its index's units sorted by name. */
void cs_current_read(const char *base, char *id, size_t idlen, struct cs_units *units);
/* Points base/current at sets/ID with one rename, so readers see either
 * the old or the new target. */
int cs_current_point(const char *base, const char *id, char *err, size_t errlen);
/* Removes sets/ *.tmp left by a killed run (except skip_tmp) and all but
 * the newest `keep` complete sets, with the blobs no remaining set names;
 * the set cur_id is never removed. With sweep (a run that failed after it
 * placed blobs), or when a *.tmp is found, every blob no remaining set
 * names is removed (blob.c). */
void cs_sets_prune(const char *base, const char *cur_id, const char *skip_tmp, size_t keep,
                   int sweep);
/* Removes dir and the files in it (a set has no subdirectories). */
void cs_rmtree(const char *dir);

/* The tests' crash points: with SWITCHYARD_TEST_CERTSYNC_KILL=STEP in the
 * environment, the run kills itself with SIGKILL when it reaches STEP (a
 * name in docs/certsync.md, "Crash safety"), so that a test can stop it at
 * each step on purpose instead of by timing. */
void cs_test_point(const char *step);

/* ---- blob.c ---- */

/* The blob directory, in STATE_DIR/certsync. */
#define CS_BLOBS_DIR "blobs"
/* Creates the blob directory if needed; with share, opens it to gid. */
int cs_blobs_open(const char *base, int share, gid_t gid, char *err, size_t errlen);
struct cs_run;
/* Places the new set's contents in the blob directory (the changed units'
 * files move there from r->tmpdir) and writes its CERT_SET_FILE
 * (certstore/cert.h) into r->tmpdir. */
int cs_blobs_publish(struct cs_run *r);
/* Removes the sets ids[i] with doomed_set[i] set (ids: every complete set,
 * oldest first) and the blobs that only they name; with full, every blob
 * no remaining set names. 0, or -1 when an index could not be read and
 * nothing was removed. */
int cs_blobs_prune(const char *base, char **ids, size_t n, const unsigned char *doomed_set,
                   int full);

/* ---- run.c ---- */

/* One run's state. */
struct cs_run {
	const struct cfg *cfg;
	int dry_run, json, allow_mass_delete, no_reload;
	char base[PATH_MAX];   /* STATE_DIR/certsync */
	char source[PATH_MAX]; /* directory the certificates are read from */
	char cur_id[256];      /* the set `current` points at, "" if none */
	char new_id[256];
	int promoted;             /* current now points at new_id */
	int cur_indexed;          /* the current set is an index set (blob.c) */
	int placed;               /* blobs were placed for the new set */
	struct timespec t0;       /* when the run started */
	double promoted_ms;       /* from t0 until switchyardd served the set */
	char tmpdir[PATH_MAX];    /* sets/NEW_ID.tmp, "" when there is none */
	int share;                /* proxy.user is set: sets are opened to gid */
	gid_t gid;                /* the instances' group after their drop */
	struct cs_files src;      /* the source, sorted by name */
	struct cs_files man;      /* last manifest, sorted by name */
	struct cs_units cur;      /* units of the current set (from its index) */
	struct cs_units next;     /* units of the set being built */
	struct cs_units verdicts; /* cache: hash -> verdict */
	size_t validated, cached, changed_units, bad_units;
	size_t learned; /* verdicts added to the cache: it needs saving */
	size_t old_names, new_names, gone_names;
	char err[2048];
};

/* What cs_execute returns besides an enum cs_exit: nothing changed. */
#define CS_NO_CHANGES (-1)

void cs_err(struct cs_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs the sync with r's options; r->cfg and r->base are set and the lock
 * is held. Returns an enum cs_exit or CS_NO_CHANGES. */
int cs_execute(struct cs_run *r);
void cs_run_free(struct cs_run *r);

/* ---- validate.c ---- */

struct cert_opts;
/* Gives every CS_UNIT_CHANGED unit of r->next a verdict: from the cache,
 * or by loading the unit with the certificate store itself. The verdicts
 * found are added to r->verdicts. */
int cs_validate(struct cs_run *r, const struct cert_opts *opts);

/* ---- source.c ---- */

/* Runs cmd ("{dir}" replaced by dir) under /bin/sh with a timeout. */
int cs_run_source(const char *cmd, const char *dir, uint32_t timeout_ms, char *err, size_t errlen);

#endif
