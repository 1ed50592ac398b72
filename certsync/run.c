/*
 * One certsync run, step by step (docs/certsync.md, "What a run does").
 *
 * State lives in STATE_DIR/certsync/:
 *   lock          flock(2)ed by the run; the kernel drops it if a run dies
 *   manifest      the source's stat tuples and hashes at the last promotion
 *   verdicts      validation verdicts by content hash
 *   staging/      filled by a source command
 *   sets/ID/      one immutable certificate set, with its .certsync-index
 *   current       symlink to sets/ID, switched with rename(2)
 *
 * set.c says why kill -9 at any step leaves a consistent state.
 */
#include "certsync/cs_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certstore/cert.h"
#include "common/cfg.h"
#include "common/ctl.h"
#include "common/json.h"
#include "common/log.h"

void cs_err(struct cs_run *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

void cs_run_free(struct cs_run *r)
{
	cs_files_free(&r->src);
	cs_files_free(&r->man);
	cs_units_free(&r->cur);
	cs_units_free(&r->next);
	cs_units_free(&r->verdicts);
}

/* Step 2: runs the source command, if any, and names the directory the
 * certificates are read from. */
static int fetch(struct cs_run *r)
{
	const struct cfg *cfg = r->cfg;

	if (cfg->certsync.source_command[0] != '\0') {
		cs_path(r->source, sizeof(r->source), r->base, "staging");
		return cs_run_source(cfg->certsync.source_command, r->source,
		                     cfg->certsync.command_timeout_ms, r->err, sizeof(r->err));
	}
	if (cfg->certsync.source_dir[0] != '\0') {
		snprintf(r->source, sizeof(r->source), "%s", cfg->certsync.source_dir);
		return 0;
	}
	cs_err(r, "%s: certsync.source has neither a directory nor a command", cfg->path);
	return -1;
}

/* Step 4: hashes every file whose stat tuple changed since the manifest,
 * copying it into the new set as it goes; the others keep the manifest's
 * hash. */
static int hash_changed(struct cs_run *r)
{
	const char *to = r->dry_run ? NULL : r->tmpdir;
	size_t j = 0;

	/* Both lists are sorted by name: walked in step, not searched. */
	for (size_t i = 0; i < r->src.n; i++) {
		struct cs_file *f = &r->src.v[i];
		const struct cs_file *m = NULL;

		while (j < r->man.n && strcmp(r->man.v[j].name, f->name) < 0)
			j++;
		if (j < r->man.n && strcmp(r->man.v[j].name, f->name) == 0)
			m = &r->man.v[j];

		if (m != NULL && m->size == f->size && m->mtime_ns == f->mtime_ns) {
			memcpy(f->hash, m->hash, CS_HASH_HEX);
			continue;
		}
		if (cs_copy_hash(r->source, to, f, r->err, sizeof(r->err)) < 0)
			return -1;
	}
	return 0;
}

/* Stages the files of every changed unit in the new set: most were copied
 * by hash_changed, but not those whose content, not their stat tuple,
 * differs from the current set (e.g. the current set kept an older
 * version), which are copied now. An unchanged unit stays where the current
 * set has it (cs_blobs_publish), and a copy made because only its stat
 * tuple changed goes. */
static int fill_set(struct cs_run *r)
{
	char p[PATH_MAX];
	struct stat st;

	if (r->dry_run)
		return 0;
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		const char *files[2] = {u->name, u->keyfile};

		for (int k = 0; k < 2 && files[k] != NULL; k++) {
			struct cs_file *f;

			cs_path(p, sizeof(p), r->tmpdir, files[k]);
			if (u->state == CS_UNIT_SAME) {
				f = cs_files_find(&r->src, files[k]);
				if (f != NULL && f->copied)
					unlink(p);
				continue;
			}
			if (stat(p, &st) == 0)
				continue;
			f = cs_files_find(&r->src, files[k]);
			if (f == NULL ||
			    cs_copy_hash(r->source, r->tmpdir, f, r->err, sizeof(r->err)) < 0)
				return -1;
		}
	}
	return 0;
}

/* Up to this many changed units look their verdicts up in the cache file
 * one by one; more load the whole cache. */
#define VERDICTS_SEARCH_MAX 64

/* Loads the cached verdicts this run can use: those of its changed units. */
static void load_verdicts(struct cs_run *r, const char *path)
{
	const char *want[VERDICTS_SEARCH_MAX];
	size_t n = 0;

	for (size_t i = 0; i < r->next.n; i++) {
		if (r->next.v[i].state != CS_UNIT_CHANGED)
			continue;
		if (n == VERDICTS_SEARCH_MAX) {
			cs_units_load(path, &r->verdicts);
			return;
		}
		want[n++] = r->next.v[i].hash;
	}
	if (n > 0)
		cs_units_load_hashes(path, &r->verdicts, want, n);
}

/* Step 6: a unit that failed validation leaves the new set, and the
 * previous good version, if the current set has one, stays in its place. */
static int reject_bad(struct cs_run *r)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		const struct cs_unit *c;

		if (u->sev != CERT_SKIP)
			continue;
		u->rejected = 1;
		r->bad_units++;
		if (!r->dry_run) {
			cs_path(p, sizeof(p), r->tmpdir, u->name);
			unlink(p);
			if (u->keyfile) {
				cs_path(p, sizeof(p), r->tmpdir, u->keyfile);
				unlink(p);
			}
		}
		c = cs_units_find_name(&r->cur, u->name);
		if (c == NULL || c->sev == CERT_SKIP)
			continue;
		/* Its files are the current set's (cs_blobs_publish). */
		if (cs_unit_keep_previous(u, c) < 0) {
			cs_err(r, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* Step 7: whether the new set may be promoted: 1 if so, else 0 with
 * *code set to what the run ends with. */
static int may_promote(struct cs_run *r, int *code)
{
	const struct cfg *cfg = r->cfg;

	if (cs_names_gone(&r->cur, &r->next, &r->old_names, &r->new_names, &r->gone_names) < 0) {
		cs_err(r, "out of memory in the mass-deletion guard");
		*code = CS_EXIT_ERROR;
		return 0;
	}
	/* Every change rejected (and the previous versions kept): the new set
	 * would equal the current one, so promote nothing and flip nothing.
	 * The manifest is not saved either, so each run reports "partial"
	 * until the source is fixed; the cached verdicts keep that cheap. */
	if (r->cur_id[0] != '\0' && r->changed_units == r->bad_units && r->bad_units > 0) {
		*code = CS_EXIT_PARTIAL;
		return 0;
	}
	if (r->src.n == 0 && r->cur.n == 0) {
		cs_err(r, "%s: the source holds no certificate files; nothing to promote",
		       r->source);
		*code = CS_EXIT_ERROR;
		return 0;
	}
	if (r->old_names > 0 && !r->allow_mass_delete &&
	    r->gone_names * 100 > (size_t)cfg->certsync.mass_delete_percent * r->old_names) {
		cs_err(r,
		       "refusing to promote: %zu of %zu names (%.1f%%) would disappear, more than "
		       "certsync.mass_delete_percent (%u%%); check the source %s, or rerun with "
		       "--allow-mass-delete",
		       r->gone_names, r->old_names,
		       100.0 * (double)r->gone_names / (double)r->old_names,
		       cfg->certsync.mass_delete_percent, r->source);
		*code = CS_EXIT_REFUSED;
		return 0;
	}
	/* Only stat tuples changed (a touch, or a re-sync of identical bytes):
	 * nothing to promote. */
	if (r->changed_units == 0 && r->cur_id[0] != '\0') {
		*code = CS_NO_CHANGES;
		return 0;
	}
	*code = r->bad_units ? CS_EXIT_PARTIAL : CS_EXIT_OK;
	return 1;
}

/* Asks switchyardd for one command and waits for its answer. */
static int ask_supervisor(struct cs_run *r, const char *line, int timeout_ms)
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

/* Steps 8 and 9: completes the set, switches `current` to it and has
 * switchyardd load it; if the reload fails, `current` is switched back. */
static int promote(struct cs_run *r)
{
	char final[PATH_MAX], vpath[PATH_MAX], line[PATH_MAX + 32];

	snprintf(final, sizeof(final), "%s/sets/%s", r->base, r->new_id);
	/* The change list lets an instance that holds the current set load
	 * only what changed (docs/certsync.md). */
	if (r->cur_id[0] != '\0' &&
	    cs_set_changes(r->tmpdir, r->cur_id, &r->cur, &r->next, r->err, sizeof(r->err)) < 0)
		return -1;
	r->placed = 1;
	if (cs_blobs_publish(r) < 0 ||
	    cs_set_finish(r->tmpdir, final, &r->next, r->share, r->gid, r->err, sizeof(r->err)) < 0)
		return -1;
	/* From here on a failure must not leave a complete, unpromoted set. */
	snprintf(r->tmpdir, sizeof(r->tmpdir), "%s", final);
	cs_test_point("finished");
	if (r->no_reload)
		return cs_current_point(r->base, r->new_id, r->err, sizeof(r->err));
	/* The supervisor must be there before anything is promoted. */
	if (ask_supervisor(r, "status", 5000) < 0 ||
	    cs_current_point(r->base, r->new_id, r->err, sizeof(r->err)) < 0)
		return -1;
	if (realpath(final, vpath) == NULL)
		snprintf(vpath, sizeof(vpath), "%s", final);
	/* switchyardd guards promotions with the same share; an operator who
	 * allowed the deletion here allowed it there. */
	snprintf(line, sizeof(line), "reload --certs %s%s", vpath,
	         r->allow_mass_delete ? " --allow-name-loss" : "");
	if (ask_supervisor(r, line, 600000) < 0) {
		/* Put current back: the live traffic never saw this set. */
		char why[sizeof(r->err)];

		memcpy(why, r->err, sizeof(why));
		if (r->cur_id[0] != '\0')
			cs_current_point(r->base, r->cur_id, r->err, sizeof(r->err));
		snprintf(r->err, sizeof(r->err), "%s; current switched back to set %s", why,
		         r->cur_id[0] ? r->cur_id : "(none)");
		return -1;
	}
	return 0;
}

/* Not fatal if these fail: the next run re-hashes what its manifest lacks
 * and re-validates what its cache lacks. */
static void save_manifest(struct cs_run *r)
{
	char path[PATH_MAX];

	cs_path(path, sizeof(path), r->base, "manifest");
	if (cs_manifest_save(path, &r->src) < 0) {
		log_warn("%s: cannot save the manifest", path);
		return;
	}
	/* After the manifest: a crash between the two leaves an old digest,
	 * which only sends the next run the long way. */
	cs_path(path, sizeof(path), r->base, "manifest.sum");
	if (cs_manifest_sum_save(path, &r->src) < 0)
		log_warn("%s: cannot save the manifest's digest", path);
}

static void save_verdicts(struct cs_run *r)
{
	char path[PATH_MAX];

	/* Rewriting an unchanged cache would cost a line and an fsync'ed
	 * byte range per unit ever judged, for one changed file. */
	if (r->learned == 0)
		return;

	cs_path(path, sizeof(path), r->base, "verdicts");
	if (cs_units_append_learned(path, &r->verdicts) < 0)
		log_warn("%s: cannot save the verdict cache", path);
}

int cs_execute(struct cs_run *r)
{
	struct cert_opts opts;
	char path[PATH_MAX];
	long changed;
	int code;

	cs_current_read(r->base, r->cur_id, sizeof(r->cur_id), NULL);
	snprintf(path, sizeof(path), "%s/sets/%s/%s", r->base, r->cur_id, CERT_SET_FILE);
	r->cur_indexed = r->cur_id[0] != '\0' && access(path, F_OK) == 0;
	if (!r->dry_run && cs_blobs_open(r->base, r->share, r->gid, r->err, sizeof(r->err)) < 0)
		return CS_EXIT_ERROR;
	if (fetch(r) < 0 || cs_scan(r->source, &r->src, r->err, sizeof(r->err)) < 0)
		return CS_EXIT_ERROR;
	/* Step 3, the fast path: same names with the same size and mtime as
	 * at the last promotion, and that promotion is still current. The
	 * manifest's digest says so without loading the manifest. */
	cs_path(path, sizeof(path), r->base, "manifest.sum");
	if (r->cur_id[0] != '\0' && cs_manifest_sum_same(path, &r->src))
		return CS_NO_CHANGES;
	cs_path(path, sizeof(path), r->base, "manifest");
	cs_manifest_load(path, &r->man);
	if (r->cur_id[0] != '\0' && cs_manifest_same(&r->src, &r->man))
		return CS_NO_CHANGES;
	/* Only a run with work to do needs the current set's units. */
	cs_current_read(r->base, r->cur_id, sizeof(r->cur_id), &r->cur);

	snprintf(r->new_id, sizeof(r->new_id), "%lld-%d", (long long)time(NULL), (int)getpid());
	snprintf(r->tmpdir, sizeof(r->tmpdir), "%s/sets/%s.tmp", r->base, r->new_id);
	if (!r->dry_run && mkdir(r->tmpdir, 0750) != 0) {
		cs_err(r, "%s: cannot create the new set: %s", r->tmpdir, strerror(errno));
		return CS_EXIT_ERROR;
	}
	if (hash_changed(r) < 0)
		return CS_EXIT_ERROR;
	cs_test_point("copied");
	if (cs_units_group(&r->src, &r->next) < 0 ||
	    (changed = cs_units_plan(&r->cur, &r->next)) < 0) {
		cs_err(r, "out of memory");
		return CS_EXIT_ERROR;
	}
	r->changed_units = (size_t)changed;
	if (fill_set(r) < 0)
		return CS_EXIT_ERROR;

	/* Step 5: validate only the changed units; the others keep their
	 * verdict. */
	cs_path(path, sizeof(path), r->base, "verdicts");
	load_verdicts(r, path);
	cs_units_sort_by_hash(&r->verdicts);
	cert_opts_from_cfg(&opts, r->cfg);
	opts.default_cert = NULL;
	if (cs_validate(r, &opts) < 0 || reject_bad(r) < 0)
		return CS_EXIT_ERROR;

	cs_test_point("validated");
	if (!may_promote(r, &code)) {
		if (code == CS_EXIT_PARTIAL && !r->dry_run)
			save_verdicts(r);
		if (code == CS_NO_CHANGES && !r->dry_run)
			save_manifest(r); /* remember the new stat tuples */
		return code;
	}
	if (r->dry_run)
		return code;
	if (promote(r) < 0)
		return CS_EXIT_ERROR;
	/* The reload's reply comes after the flip: from here on the new set
	 * is served. What follows (the manifest, the prune) is bookkeeping. */
	{
		struct timespec t1;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		r->promoted_ms = (double)(t1.tv_sec - r->t0.tv_sec) * 1e3 +
		                 (double)(t1.tv_nsec - r->t0.tv_nsec) / 1e6;
	}
	/* Step 10. */
	cs_test_point("current");
	save_manifest(r);
	cs_test_point("manifest");
	save_verdicts(r);
	snprintf(r->cur_id, sizeof(r->cur_id), "%s", r->new_id);
	r->tmpdir[0] = '\0';
	r->promoted = 1;
	return code;
}
