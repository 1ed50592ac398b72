/*
 * cert_report: the per-file verdicts and counts of one load or reload.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "certstore/cert_int.h"
#include "common/json.h"

struct cert_report *cert_report_new(void)
{
	return calloc(1, sizeof(struct cert_report));
}

void cert_report_free(struct cert_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->ents);
	free(rep->changed);
	free(rep->kept);
	cert_arena_free(&rep->strs);
	free(rep->fatal);
	free(rep);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct cert_rep_ent *x = a, *y = b;
	int c = strcmp(x->file, y->file);

	return c != 0 ? c : (int)x->sev - (int)y->sev;
}

int cert_report_add(struct cert_report *rep, const char *file, enum cert_sev sev, const char *msg)
{
	struct cert_rep_ent *e;

	if (rep->nents == rep->cap) {
		size_t nc = rep->cap ? rep->cap * 2 : 64;
		struct cert_rep_ent *ne = realloc(rep->ents, nc * sizeof(*ne));

		if (ne == NULL)
			return -1;
		rep->ents = ne;
		rep->cap = nc;
	}
	e = &rep->ents[rep->nents];
	e->file = cert_arena_strdup(&rep->strs, file);
	e->msg = msg != NULL ? cert_arena_strdup(&rep->strs, msg) : NULL;
	e->sev = sev;
	if (e->file == NULL || (msg != NULL && e->msg == NULL))
		return -1;
	/* Entries usually arrive in order (a store's files are sorted);
	 * noting it here spares cert_report_sort a pass over every entry. */
	if (rep->nents > 0 && cmp_ent(&rep->ents[rep->nents - 1], e) > 0)
		rep->unsorted = 1;
	rep->nents++;
	return 0;
}

void cert_report_set_fatal(struct cert_report *rep, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (rep->fatal != NULL)
		return; /* the first cause is the useful one */
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	rep->fatal = s;
}

int cert_report_add_changed(struct cert_report *rep, const char *name)
{
	char **nc = realloc(rep->changed, (rep->nchanged + 1) * sizeof(*nc));

	if (nc == NULL)
		return -1;
	rep->changed = nc;
	rep->changed[rep->nchanged] = cert_arena_strdup(&rep->strs, name);
	if (rep->changed[rep->nchanged] == NULL)
		return -1;
	rep->nchanged++;
	return 0;
}

int cert_report_add_kept(struct cert_report *rep, const char *file, const char *msg)
{
	struct cert_rep_kept *nk = realloc(rep->kept, (rep->nkept + 1) * sizeof(*nk));

	if (nk == NULL)
		return -1;
	rep->kept = nk;
	nk[rep->nkept].file = cert_arena_strdup(&rep->strs, file);
	nk[rep->nkept].msg = cert_arena_strdup(&rep->strs, msg != NULL ? msg : "");
	if (nk[rep->nkept].file == NULL || nk[rep->nkept].msg == NULL)
		return -1;
	rep->nkept++;
	return 0;
}

size_t cert_report_nkept(const struct cert_report *rep)
{
	return rep->nkept;
}

const char *cert_report_kept(const struct cert_report *rep, size_t i, const char **msg)
{
	if (i >= rep->nkept)
		return NULL;
	if (msg != NULL)
		*msg = rep->kept[i].msg;
	return rep->kept[i].file;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cert_report_sort(struct cert_report *rep)
{
	size_t k = 0, i;

	if (rep->unsorted)
		qsort(rep->ents, rep->nents, sizeof(*rep->ents), cmp_ent);
	rep->unsorted = 0;
	if (rep->nchanged > 1)
		qsort(rep->changed, rep->nchanged, sizeof(*rep->changed), cmp_str);
	/* A name can be reported twice (changed in both directions). */
	for (i = 0; i < rep->nchanged; i++) {
		if (k > 0 && strcmp(rep->changed[k - 1], rep->changed[i]) == 0)
			continue;
		rep->changed[k++] = rep->changed[i];
	}
	rep->nchanged = k;
}

size_t cert_report_nfiles(const struct cert_report *rep)
{
	return rep->nfiles;
}

size_t cert_report_nloaded(const struct cert_report *rep)
{
	return rep->nloaded;
}

size_t cert_report_nskipped(const struct cert_report *rep)
{
	return rep->nskipped;
}

size_t cert_report_nwarned(const struct cert_report *rep)
{
	return rep->nwarned;
}

size_t cert_report_nignored(const struct cert_report *rep)
{
	return rep->nignored;
}

const char *cert_report_fatal(const struct cert_report *rep)
{
	return rep->fatal;
}

size_t cert_report_nchanged(const struct cert_report *rep)
{
	return rep->nchanged;
}

const char *cert_report_changed(const struct cert_report *rep, size_t i)
{
	return i < rep->nchanged ? rep->changed[i] : NULL;
}

time_t cert_report_soonest_expiry(const struct cert_report *rep)
{
	return rep->soonest;
}

size_t cert_report_nentries(const struct cert_report *rep)
{
	return rep->nents;
}

const char *cert_report_entry(const struct cert_report *rep, size_t i, enum cert_sev *sev,
                              const char **msg)
{
	if (i >= rep->nents)
		return NULL;
	if (sev != NULL)
		*sev = rep->ents[i].sev;
	if (msg != NULL)
		*msg = rep->ents[i].msg;
	return rep->ents[i].file;
}

static const char *sev_name(enum cert_sev s)
{
	return s == CERT_OK ? "ok" : s == CERT_WARN ? "warn" : "skip";
}

void cert_report_print(const struct cert_report *rep, FILE *out, int json)
{
	char tbuf[40] = "none";

	if (rep->soonest != 0) {
		struct tm tm;

		gmtime_r(&rep->soonest, &tm);
		strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	if (json) {
		struct json_buf jb;

		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		jb_bool(&jb, "ok", rep->fatal == NULL && rep->nskipped == 0);
		if (rep->fatal != NULL)
			jb_str(&jb, "error", rep->fatal);
		jb_arr_begin(&jb, "files");
		for (size_t i = 0; i < rep->nents; i++) {
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "file", rep->ents[i].file);
			jb_str(&jb, "status", sev_name(rep->ents[i].sev));
			jb_str(&jb, "message", rep->ents[i].msg);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		jb_obj_begin(&jb, "summary");
		jb_uint(&jb, "files", rep->nfiles);
		jb_uint(&jb, "names", rep->nnames);
		jb_uint(&jb, "loaded", rep->nloaded);
		jb_uint(&jb, "skipped", rep->nskipped);
		jb_uint(&jb, "warned", rep->nwarned);
		jb_uint(&jb, "ignored", rep->nignored);
		if (rep->soonest != 0) {
			jb_str(&jb, "soonest_expiry", tbuf);
			jb_int(&jb, "soonest_expiry_unix", (int64_t)rep->soonest);
		} else {
			jb_null(&jb, "soonest_expiry");
		}
		jb_obj_end(&jb);
		if (rep->nchanged > 0) {
			jb_arr_begin(&jb, "changed");
			for (size_t i = 0; i < rep->nchanged; i++)
				jb_str(&jb, NULL, rep->changed[i]);
			jb_arr_end(&jb);
		}
		jb_obj_end(&jb);
		fprintf(out, "%s\n", jb_cstr(&jb));
		jb_free(&jb);
		return;
	}
	if (rep->fatal != NULL)
		fprintf(out, "error: %s\n", rep->fatal);
	for (size_t i = 0; i < rep->nents; i++) {
		const struct cert_rep_ent *e = &rep->ents[i];

		if (e->msg == NULL)
			fprintf(out, "ok    %s\n", e->file);
		else
			fprintf(out, "%-5s %s: %s\n", sev_name(e->sev), e->file, e->msg);
	}
	fprintf(out,
	        "summary: %zu files, %zu names, %zu loaded, %zu skipped, %zu warned, %zu "
	        "ignored; soonest expiry %s\n",
	        rep->nfiles, rep->nnames, rep->nloaded, rep->nskipped, rep->nwarned, rep->nignored,
	        tbuf);
}
