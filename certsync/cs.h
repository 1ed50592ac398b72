/*
 * cs: `switchyard certsync`, the cron-safe certificate sync job.
 *
 * One run: take an exclusive lock, fetch the source (a directory, or a
 * command that fills a staging directory), compare it with the manifest of
 * the last run (stat tuples, confirmed by content hash), validate only new
 * content with the certificate store (verdicts cached by hash), build a new
 * versioned set under STATE_DIR/certsync/sets/ (an index of the files'
 * content-addressed blobs in STATE_DIR/certsync/blobs, so that an unchanged
 * file costs a line, and a change list naming the others),
 * refuse it if too many names would disappear, switch the `current` symlink
 * atomically and ask switchyardd to reload and flip. If the reload fails,
 * `current` is switched back. See docs/certsync.md.
 */
#ifndef SY_CS_H
#define SY_CS_H

#include <stddef.h>
#include <stdint.h>

/* Exit codes, documented for cron users in docs/certsync.md. */
enum cs_exit {
	CS_EXIT_OK = 0,      /* changes applied, or nothing to do */
	CS_EXIT_ERROR = 1,   /* nothing promoted: source, I/O, supervisor or reload failure */
	CS_EXIT_PARTIAL = 2, /* promoted, but some files were bad and skipped or kept */
	CS_EXIT_REFUSED = 3, /* the mass-deletion guard refused the new set */
	CS_EXIT_RUNNING = 4, /* another run holds the lock; this one did nothing */
	CS_EXIT_USAGE = 64,
};

/* `switchyard certsync [-c FILE] [--dry-run] [--json] [--allow-mass-delete]
 * [--no-reload]`; argv[0] is "certsync". Returns an enum cs_exit. */
int cs_cmd(const char *cfgpath, int argc, char **argv);

/*
 * The last run that did something (not --dry-run, not one that found the
 * lock taken), kept in STATE_DIR/certsync/last-run for switchyardd's
 * metrics (docs/operations.md). names_gone counts the names the new set
 * dropped, or would have dropped when the guard refused it.
 */
#define CS_LAST_RUN_FILE "last-run"
struct cs_last_run {
	int64_t time;    /* Unix time at the end of the run */
	char status[32]; /* "applied", "no changes", "partial", "refused", "error" */
	int exit;        /* enum cs_exit */
	uint64_t names_before, names_after, names_gone;
	double duration_ms;
};
/* Replaces the record atomically; 0, or -1 with err naming the file. */
int cs_last_run_write(const char *state_dir, const struct cs_last_run *lr, char *err,
                      size_t errlen);
/* Reads it (duration_ms is left 0); 0, or -1 if there is none or it cannot
 * be parsed. */
int cs_last_run_read(const char *state_dir, struct cs_last_run *lr);

#endif
