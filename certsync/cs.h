/*
 * cs: `switchyard certsync`, the cron-safe certificate sync job.
 *
 * One run: take an exclusive lock, fetch the source (a directory, or a
 * command that fills a staging directory), compare it with the manifest of
 * the last run (stat tuples, confirmed by content hash), validate only new
 * content with the certificate store (verdicts cached by hash), build a new
 * versioned set under STATE_DIR/certsync/sets/ (unchanged files hardlinked,
 * and a change list naming the others for the instances' delta load),
 * refuse it if too many names would disappear, switch the `current` symlink
 * atomically and ask switchyardd to reload and flip. If the reload fails,
 * `current` is switched back. See docs/certsync.md.
 */
#ifndef SY_CS_H
#define SY_CS_H

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

#endif
