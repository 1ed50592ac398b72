/*
 * Verdicts for new content. A unit's verdict comes from the cache (by
 * content hash) when that content was ever judged before; otherwise from
 * the certificate store itself: the units are loaded exactly the way an
 * instance would load them (from the new set, or hardlinked into a scratch
 * directory when the new set also holds units with cached verdicts), so
 * certsync never accepts what an instance would refuse.
 */
#include "certsync/cs_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certstore/cert.h"

/* Gives every changed unit whose content was judged before its cached
 * verdict, and marks the others staged. Returns the number staged, or -1. */
static long take_cached(struct cs_run *r)
{
	long staged = 0;

	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];
		struct cs_unit *c;

		if (u->state != CS_UNIT_CHANGED)
			continue;
		c = cs_units_find_hash(&r->verdicts, u->hash);
		if (c == NULL) {
			u->state = CS_UNIT_STAGED;
			staged++;
			continue;
		}
		if (cs_unit_set_verdict(u, c) < 0) {
			snprintf(r->err, sizeof(r->err), "out of memory");
			return -1;
		}
		u->state = CS_UNIT_JUDGED;
		r->cached++;
	}
	return staged;
}

/* Links the files of the staged units from dir into scratch. */
static int stage(struct cs_run *r, const char *dir, const char *scratch)
{
	char from[PATH_MAX], to[PATH_MAX];

	for (size_t i = 0; i < r->next.n; i++) {
		const struct cs_unit *u = &r->next.v[i];
		const char *files[2] = {u->name, u->keyfile};

		if (u->state != CS_UNIT_STAGED)
			continue;
		for (int k = 0; k < 2 && files[k] != NULL; k++) {
			cs_path(from, sizeof(from), dir, files[k]);
			cs_path(to, sizeof(to), scratch, files[k]);
			if (link(from, to) != 0 && symlink(from, to) != 0) {
				snprintf(r->err, sizeof(r->err),
				         "%s: cannot stage for validation: %s", from,
				         strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

/* Appends name to the unit's comma-separated list. */
static int add_name(struct cs_unit *u, const char *name)
{
	size_t old = strlen(u->names), len = strlen(name);
	char *nn = realloc(u->names, old + len + 2);

	if (nn == NULL)
		return -1;
	snprintf(nn + old, len + 2, "%s%s", old ? "," : "", name);
	u->names = nn;
	return 0;
}

/* Fills the staged units' verdicts from what the store reported and
 * indexed. */
static void judge(struct cs_run *r, struct cert_store *store, const struct cert_report *rep)
{
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *msg;
		const char *file = cert_report_entry(rep, i, &sev, &msg);
		struct cs_unit *u = file ? cs_units_find_name(&r->next, file) : NULL;

		if (u == NULL || u->state != CS_UNIT_STAGED)
			continue;
		u->state = CS_UNIT_JUDGED;
		u->sev = (int)sev;
		free(u->msg);
		u->msg = msg ? strdup(msg) : NULL;
		free(u->names);
		u->names = strdup("");
	}
	/* Names and expiry per file, from what the store actually indexed. */
	for (size_t i = 0; i < cert_store_nnames(store); i++) {
		const char *name = cert_store_name_at(store, i);
		int dflt = 0;
		const struct cert_item *it =
		    cert_store_lookup(store, name, strlen(name), CERT_LOOKUP_ECDSA_OK, &dflt);
		struct cs_unit *u =
		    (it && !dflt) ? cs_units_find_name(&r->next, cert_item_file(it)) : NULL;

		/* Only units judged in this run: a name of a unit the store did
		 * not report on stays unknown. */
		if (u == NULL || u->state != CS_UNIT_JUDGED || u->names == NULL ||
		    add_name(u, name) < 0)
			continue;
		u->not_after = cert_item_not_after(it);
	}
	for (size_t i = 0; i < r->next.n; i++) {
		struct cs_unit *u = &r->next.v[i];

		if (u->state != CS_UNIT_STAGED)
			continue;
		/* The store never mentioned it: treat as rejected. */
		u->state = CS_UNIT_JUDGED;
		u->sev = CERT_SKIP;
		free(u->msg);
		free(u->names);
		u->msg = strdup("not recognised as a certificate file by the store");
		u->names = strdup("");
	}
}

int cs_validate(struct cs_run *r, const struct cert_opts *opts)
{
	/* In a dry run nothing was copied into the new set: stage from the
	 * source. */
	const char *dir = r->dry_run ? r->source : r->tmpdir;
	char scratch[PATH_MAX];
	const char *from;
	struct cert_report *rep = NULL;
	struct cert_store *store;
	long staged, learned;
	int in_place, loaded;

	/* A run killed while validating left its scratch directory. */
	snprintf(scratch, sizeof(scratch), "%s/validate.tmp", r->base);
	cs_rmtree(scratch);
	staged = take_cached(r);
	if (staged <= 0)
		return (int)staged;
	r->validated = (size_t)staged;
	/* The store reads a whole directory. The new set holds copies of the
	 * files of exactly the changed units, so when every one of them is
	 * staged, as in a first run, the set is read where it is; otherwise
	 * the staged units are linked into a scratch directory. */
	in_place = !r->dry_run && r->cached == 0;
	if (!in_place) {
		if (mkdir(scratch, 0700) != 0) {
			snprintf(r->err, sizeof(r->err), "%s: cannot create: %s", scratch,
			         strerror(errno));
			return -1;
		}
		if (stage(r, dir, scratch) < 0) {
			cs_rmtree(scratch);
			return -1;
		}
	}
	from = in_place ? dir : scratch;
	store = cert_store_load(from, opts, &rep);
	loaded = store != NULL;
	if (loaded)
		judge(r, store, rep);
	else
		snprintf(r->err, sizeof(r->err), "%s: validation failed: %s", from,
		         rep && cert_report_fatal(rep) ? cert_report_fatal(rep) : "unknown error");
	cert_store_unref(store);
	cert_report_free(rep);
	if (!in_place)
		cs_rmtree(scratch);
	if (!loaded)
		return -1;
	/* A verdict that cannot be cached is only found again next time; the
	 * ones added make the cache worth saving. */
	learned = cs_verdicts_learn(&r->verdicts, &r->next);
	if (learned > 0)
		r->learned += (size_t)learned;
	return 0;
}
