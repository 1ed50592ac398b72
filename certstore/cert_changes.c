/*
 * cert_changes: reads the change lists certsync leaves in its sets
 * (CERT_CHANGES_FILE, cert.h), so that a delta load from one set to another
 * looks only at the files that changed instead of listing and stat'ing
 * every file of the new set.
 *
 * The lists are a promise made by the writer, not something checked here
 * file by file (checking would cost the stat calls they save). What is
 * checked is that the promise is about the directory the previous store
 * was loaded from: the bases are followed from the new directory until one
 * is that directory, and anything else (a list missing, unreadable or
 * malformed, a base pruned, too many hops) makes the caller scan the whole
 * directory, as without a list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certstore/cert_int.h"

static int add_name(struct cert_changes *ch, const char *name)
{
	if (ch->n == ch->cap) {
		size_t cap = ch->cap ? ch->cap * 2 : 64;
		const char **nv = realloc(ch->names, cap * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ch->names = nv;
		ch->cap = cap;
	}
	ch->names[ch->n] = cert_arena_strdup(&ch->strs, name);
	if (ch->names[ch->n] == NULL)
		return -1;
	ch->n++;
	return 0;
}

/* Appends the names of dir's change list to ch and puts its base's path
 * (a sibling of dir) into base. Returns 0, or -1 if there is no usable
 * list. */
static int read_list(const char *dir, struct cert_changes *ch, char *base, size_t baselen)
{
	char path[PATH_MAX], *line = NULL;
	const char *slash = strrchr(dir, '/');
	size_t cap = 0;
	ssize_t len;
	int rc = -1;
	FILE *f;

	if (slash == NULL ||
	    snprintf(path, sizeof(path), "%s/%s", dir, CERT_CHANGES_FILE) >= (int)sizeof(path))
		return -1;
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	len = getline(&line, &cap, f);
	if (len < 7 || strncmp(line, "base ", 5) != 0 || line[len - 1] != '\n')
		goto out;
	line[len - 1] = '\0';
	/* The base is a set beside this one: a plain name. */
	if (strchr(line + 5, '/') != NULL || strcmp(line + 5, ".") == 0 ||
	    strcmp(line + 5, "..") == 0 ||
	    snprintf(base, baselen, "%.*s/%s", (int)(slash - dir), dir, line + 5) >= (int)baselen)
		goto out;
	while ((len = getline(&line, &cap, f)) > 0) {
		/* A line without its newline was cut short: the list is not
		 * what its writer meant, so it is not used at all. */
		if (line[len - 1] != '\n')
			goto out;
		line[len - 1] = '\0';
		/* A directory's own files have plain names; anything else
		 * could name a file outside it. */
		if (strchr(line, '/') != NULL || (line[0] != '\0' && add_name(ch, line) < 0))
			goto out;
	}
	rc = ferror(f) ? -1 : 0;
out:
	free(line);
	fclose(f);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int cert_changes_read(const char *realdir, const char *old_realdir, struct cert_changes *ch)
{
	char cur[PATH_MAX], base[PATH_MAX];
	size_t k = 0;

	memset(ch, 0, sizeof(*ch));
	if (snprintf(cur, sizeof(cur), "%s", realdir) >= (int)sizeof(cur))
		return -1;
	for (int hop = 0; hop < CERT_CHANGES_HOPS; hop++) {
		if (read_list(cur, ch, base, sizeof(base)) < 0)
			break;
		if (strcmp(base, old_realdir) != 0) {
			memcpy(cur, base, sizeof(cur));
			continue;
		}
		if (ch->n > 1)
			qsort(ch->names, ch->n, sizeof(*ch->names), cmp_str);
		for (size_t i = 0; i < ch->n; i++)
			if (k == 0 || strcmp(ch->names[k - 1], ch->names[i]) != 0)
				ch->names[k++] = ch->names[i];
		ch->n = k;
		return 0;
	}
	cert_changes_free(ch);
	return -1;
}

int cert_changes_has(const struct cert_changes *ch, const char *name)
{
	return ch->n > 0 && bsearch(&name, ch->names, ch->n, sizeof(*ch->names), cmp_str) != NULL;
}

void cert_changes_free(struct cert_changes *ch)
{
	free(ch->names);
	cert_arena_free(&ch->strs);
	memset(ch, 0, sizeof(*ch));
}

int cert_changes_each(const char *dir, const char *base, int (*fn)(const char *name, void *arg),
                      void *arg)
{
	struct cert_changes ch;
	int rc = 0;

	if (cert_changes_read(dir, base, &ch) < 0)
		return -1;
	for (size_t i = 0; i < ch.n && rc == 0; i++)
		rc = fn(ch.names[i], arg);
	cert_changes_free(&ch);
	return rc;
}
