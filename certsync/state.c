/*
 * What certsync remembers between runs, and the lists it keeps in memory:
 * unit lists (a set's index, the verdict cache) and file lists (the source,
 * the manifest), and the record of the last run that switchyardd's metrics
 * read. Every file is written atomically (PATH.tmp, fsync,
 * rename), so a run killed while writing leaves the previous version.
 */
#include "certsync/cs_int.h"

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/json.h"

int cs_path(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s/%s", a, b);

	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

void cs_hex(const unsigned char md[32], char hex[CS_HASH_HEX])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[64] = '\0';
}

static size_t str_hash(const char *s)
{
	size_t h = 1469598103934665603ull;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

int cs_strset_reserve(struct cs_strset *s, size_t n)
{
	struct cs_strset g = {.cap = s->cap ? s->cap : 1024};

	while (g.cap < 2 * n)
		g.cap *= 2;
	if (g.cap == s->cap)
		return 0;
	g.v = calloc(g.cap, sizeof(*g.v));
	if (g.v == NULL)
		return -1;
	for (size_t i = 0; i < s->cap; i++)
		if (s->v[i] != NULL)
			cs_strset_add(&g, s->v[i]);
	free(s->v);
	*s = g;
	return 0;
}

int cs_strset_add(struct cs_strset *s, const char *k)
{
	if (2 * (s->n + 1) > s->cap && cs_strset_reserve(s, s->n + 1) < 0)
		return -1;
	for (size_t h = str_hash(k) & (s->cap - 1);; h = (h + 1) & (s->cap - 1)) {
		if (s->v[h] == NULL) {
			s->v[h] = k;
			s->n++;
			return 0;
		}
		if (strcmp(s->v[h], k) == 0)
			return 0;
	}
}

int cs_strset_has(const struct cs_strset *s, const char *k)
{
	if (s->cap == 0)
		return 0;
	for (size_t h = str_hash(k) & (s->cap - 1); s->v[h] != NULL; h = (h + 1) & (s->cap - 1))
		if (strcmp(s->v[h], k) == 0)
			return 1;
	return 0;
}

/* Opens PATH.tmp for writing; *tmp receives its name. */
static FILE *atomic_open(const char *path, char tmp[PATH_MAX])
{
	if (snprintf(tmp, PATH_MAX, "%s.tmp", path) >= PATH_MAX)
		return NULL;
	return fopen(tmp, "w");
}

/* Makes the written file durable and gives it its final name; on failure
 * the temporary file is removed and the previous version stays. */
static int atomic_close(FILE *f, const char *tmp, const char *path)
{
	int rc = 0;

	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -1;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* ---- unit lists ---- */

struct cs_unit *cs_units_add(struct cs_units *u)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		struct cs_unit *nv = realloc(u->v, cap * sizeof(*nv));

		if (nv == NULL)
			return NULL;
		u->v = nv;
		u->cap = cap;
	}
	memset(&u->v[u->n], 0, sizeof(u->v[0]));
	return &u->v[u->n++];
}

void cs_units_free(struct cs_units *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		free(u->v[i].keyfile);
		free(u->v[i].names);
		free(u->v[i].msg);
	}
	free(u->v);
	memset(u, 0, sizeof(*u));
}

static int unit_by_name(const void *a, const void *b)
{
	return strcmp(((const struct cs_unit *)a)->name, ((const struct cs_unit *)b)->name);
}

static int unit_by_hash(const void *a, const void *b)
{
	return strcmp(((const struct cs_unit *)a)->hash, ((const struct cs_unit *)b)->hash);
}

/* Whether n elements of size sz at v are in cmp's order already: the
 * files certsync reads back were written sorted, and one comparison per
 * element is a fraction of a sort's. */
static int in_order(const void *v, size_t n, size_t sz, int (*cmp)(const void *, const void *))
{
	for (size_t i = 1; i < n; i++)
		if (cmp((const char *)v + (i - 1) * sz, (const char *)v + i * sz) > 0)
			return 0;
	return 1;
}

void cs_units_sort_by_name(struct cs_units *u)
{
	if (u->n > 0 && !in_order(u->v, u->n, sizeof(u->v[0]), unit_by_name))
		qsort(u->v, u->n, sizeof(u->v[0]), unit_by_name);
}

void cs_units_sort_by_hash(struct cs_units *u)
{
	if (u->n > 0 && !in_order(u->v, u->n, sizeof(u->v[0]), unit_by_hash))
		qsort(u->v, u->n, sizeof(u->v[0]), unit_by_hash);
}

struct cs_unit *cs_units_find_name(const struct cs_units *u, const char *name)
{
	struct cs_unit key = {.name = (char *)name};

	return u->n ? bsearch(&key, u->v, u->n, sizeof(key), unit_by_name) : NULL;
}

struct cs_unit *cs_units_find_hash(const struct cs_units *u, const char *hash)
{
	struct cs_unit key;

	snprintf(key.hash, sizeof(key.hash), "%s", hash);
	return u->n ? bsearch(&key, u->v, u->n, sizeof(key), unit_by_hash) : NULL;
}

int cs_unit_set_verdict(struct cs_unit *dst, const struct cs_unit *src)
{
	dst->sev = src->sev;
	dst->not_after = src->not_after;
	free(dst->names);
	free(dst->msg);
	dst->names = strdup(src->names ? src->names : "");
	dst->msg = src->msg ? strdup(src->msg) : NULL;
	return (dst->names == NULL || (src->msg && dst->msg == NULL)) ? -1 : 0;
}

/* Parses one line (without its newline, modified in place) into a new unit
 * of u: 1 if it was added, 0 for a torn line (ignored), -1 when out of
 * memory. */
static int unit_parse(char *line, struct cs_units *u)
{
	char *fld[7], *save = NULL, *p = line;
	struct cs_unit *x;
	int n = 0;

	for (; n < 7 && (fld[n] = strtok_r(p, "\t", &save)) != NULL; n++)
		p = NULL;
	if (n != 7 || strlen(fld[2]) != CS_HASH_HEX - 1)
		return 0; /* a torn line from an older crash: ignore it */
	x = cs_units_add(u);
	if (x == NULL)
		return -1;
	x->name = strdup(fld[0]);
	x->keyfile = strcmp(fld[1], "-") ? strdup(fld[1]) : NULL;
	memcpy(x->hash, fld[2], CS_HASH_HEX);
	x->sev = atoi(fld[3]);
	x->not_after = (time_t)strtoll(fld[4], NULL, 10);
	x->names = strdup(strcmp(fld[5], "-") ? fld[5] : "");
	x->msg = strcmp(fld[6], "-") ? strdup(fld[6]) : NULL;
	return (x->name == NULL || x->names == NULL) ? -1 : 1;
}

int cs_units_load(const char *path, struct cs_units *u)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		if (unit_parse(line, u) < 0) {
			rc = -1;
			break;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

int cs_units_load_hashes(const char *path, struct cs_units *u, const char *const *hashes,
                         size_t nhashes)
{
	char *buf = NULL, key[CS_HASH_HEX + 2];
	struct stat st;
	size_t len = 0;
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fileno(f), &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	len = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	buf[len] = '\0';
	/* The hash is the third field: TAB HASH TAB, anywhere in a line. */
	for (size_t i = 0; i < nhashes && rc == 0; i++) {
		const char *p;

		snprintf(key, sizeof(key), "\t%s\t", hashes[i]);
		for (p = buf; (p = memmem(p, len - (size_t)(p - buf), key, strlen(key))) != NULL;
		     p++) {
			const char *b = p, *e = memchr(p, '\n', len - (size_t)(p - buf));
			char *line;

			while (b > buf && b[-1] != '\n')
				b--;
			if (e == NULL)
				break; /* a torn last line */
			line = strndup(b, (size_t)(e - b));
			if (line == NULL || unit_parse(line, u) < 0)
				rc = -1;
			free(line);
			break; /* the cache holds each hash once */
		}
	}
	free(buf);
	return rc;
}

static void unit_line(FILE *f, const struct cs_unit *x)
{
	char msg[512];

	/* A rejected version's message describes a file that is not in the
	 * set; the kept version is recorded clean. Messages are one line
	 * without tabs, which separate the fields. */
	snprintf(msg, sizeof(msg), "%s", (x->msg && !x->rejected) ? x->msg : "-");
	for (char *p = msg; *p; p++)
		if (*p == '\t' || *p == '\n')
			*p = ' ';
	fprintf(f, "%s\t%s\t%s\t%d\t%lld\t%s\t%s\n", x->name, x->keyfile ? x->keyfile : "-",
	        x->hash, x->sev, (long long)x->not_after, (x->names && *x->names) ? x->names : "-",
	        msg);
}

int cs_units_save(const char *path, const struct cs_units *u)
{
	char tmp[PATH_MAX];
	FILE *f = atomic_open(path, tmp);

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < u->n; i++)
		unit_line(f, &u->v[i]);
	return atomic_close(f, tmp, path);
}

int cs_units_append_learned(const char *path, const struct cs_units *u)
{
	FILE *f = fopen(path, "a");
	struct stat st;
	int rc = 0;

	if (f == NULL)
		return -1;
	/* A line torn by a crash has no newline: end it, so that it stays
	 * the one line the loader skips. */
	if (fstat(fileno(f), &st) == 0 && st.st_size > 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		char last = '\n';

		if (fd >= 0) {
			if (pread(fd, &last, 1, st.st_size - 1) != 1)
				last = '\n';
			close(fd);
		}
		if (last != '\n')
			fputc('\n', f);
	}
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].learned)
			unit_line(f, &u->v[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

long cs_verdicts_learn(struct cs_units *verdicts, const struct cs_units *next)
{
	/* Only the cache as it was before this call is searched (it must stay
	 * sorted for that); two units of one run with the same content may
	 * then both be added, which costs a line and changes no verdict. */
	size_t known = verdicts->n;
	struct cs_units old = {.v = verdicts->v, .n = known};
	long rc = 0;

	for (size_t i = 0; i < next->n; i++) {
		const struct cs_unit *u = &next->v[i];
		struct cs_unit *c;

		if (u->state != CS_UNIT_JUDGED || cs_units_find_hash(&old, u->hash) != NULL)
			continue;
		c = cs_units_add(verdicts);
		if (c == NULL) {
			rc = -1;
			break;
		}
		old.v = verdicts->v; /* the add may have moved the array */
		c->learned = 1;
		c->name = strdup(u->name);
		memcpy(c->hash, u->hash, CS_HASH_HEX);
		if (c->name == NULL || cs_unit_set_verdict(c, u) < 0) {
			rc = -1;
			break;
		}
	}
	cs_units_sort_by_hash(verdicts);
	return rc < 0 ? rc : (long)(verdicts->n - known);
}

/* ---- file lists and the manifest ---- */

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cs_file *)a)->name, ((const struct cs_file *)b)->name);
}

void cs_files_free(struct cs_files *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->v[i].name);
	free(f->v);
	memset(f, 0, sizeof(*f));
}

void cs_files_sort(struct cs_files *f)
{
	if (f->n > 0 && !in_order(f->v, f->n, sizeof(f->v[0]), file_cmp))
		qsort(f->v, f->n, sizeof(f->v[0]), file_cmp);
}

struct cs_file *cs_files_add(struct cs_files *f, const char *name)
{
	struct cs_file *x;

	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 1024;
		struct cs_file *nv = realloc(f->v, cap * sizeof(*nv));

		if (nv == NULL)
			return NULL;
		f->v = nv;
		f->cap = cap;
	}
	x = &f->v[f->n];
	memset(x, 0, sizeof(*x));
	x->name = strdup(name);
	if (x->name == NULL)
		return NULL;
	f->n++;
	return x;
}

struct cs_file *cs_files_find(const struct cs_files *f, const char *name)
{
	struct cs_file key = {.name = (char *)name};

	return f->n ? bsearch(&key, f->v, f->n, sizeof(key), file_cmp) : NULL;
}

int cs_manifest_load(const char *path, struct cs_files *man)
{
	FILE *f = fopen(path, "r");
	char name[NAME_MAX + 1], hash[CS_HASH_HEX];
	long long size, mtime;
	int rc = 0;

	if (f == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fscanf(f, "%255s %lld %lld %64s", name, &size, &mtime, hash) == 4) {
		struct cs_file *x = cs_files_add(man, name);

		if (x == NULL) {
			rc = -1;
			break;
		}
		x->size = size;
		x->mtime_ns = mtime;
		memcpy(x->hash, hash, CS_HASH_HEX);
	}
	fclose(f);
	cs_files_sort(man);
	return rc;
}

int cs_manifest_save(const char *path, const struct cs_files *src)
{
	char tmp[PATH_MAX];
	FILE *f = atomic_open(path, tmp);

	if (f == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++)
		fprintf(f, "%s %lld %lld %s\n", src->v[i].name, (long long)src->v[i].size,
		        (long long)src->v[i].mtime_ns, src->v[i].hash);
	return atomic_close(f, tmp, path);
}

void cs_manifest_digest(const struct cs_files *src, char hex[CS_HASH_HEX])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char d[32];

	memset(d, 0, sizeof(d));
	if (md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1) {
		for (size_t i = 0; i < src->n; i++) {
			int64_t v[2] = {src->v[i].size, src->v[i].mtime_ns};

			EVP_DigestUpdate(md, src->v[i].name, strlen(src->v[i].name) + 1);
			EVP_DigestUpdate(md, v, sizeof(v));
		}
		EVP_DigestFinal_ex(md, d, NULL);
	}
	EVP_MD_CTX_free(md);
	cs_hex(d, hex);
}

int cs_manifest_sum_same(const char *path, const struct cs_files *src)
{
	char want[CS_HASH_HEX], got[CS_HASH_HEX + 2] = "";
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return 0;
	if (fgets(got, sizeof(got), f) == NULL)
		got[0] = '\0';
	fclose(f);
	got[strcspn(got, "\n")] = '\0';
	cs_manifest_digest(src, want);
	return strcmp(got, want) == 0;
}

int cs_manifest_sum_save(const char *path, const struct cs_files *src)
{
	char tmp[PATH_MAX], hex[CS_HASH_HEX];
	FILE *f = atomic_open(path, tmp);

	if (f == NULL)
		return -1;
	cs_manifest_digest(src, hex);
	fprintf(f, "%s\n", hex);
	return atomic_close(f, tmp, path);
}

int cs_manifest_same(const struct cs_files *src, const struct cs_files *man)
{
	if (src->n != man->n)
		return 0;
	for (size_t i = 0; i < src->n; i++)
		if (strcmp(src->v[i].name, man->v[i].name) != 0 ||
		    src->v[i].size != man->v[i].size || src->v[i].mtime_ns != man->v[i].mtime_ns)
			return 0;
	return 1;
}

/* ---- the record of the last run (cs.h) ---- */

static void last_run_path(char *out, size_t len, const char *state_dir)
{
	snprintf(out, len, "%s/certsync/%s", state_dir, CS_LAST_RUN_FILE);
}

int cs_last_run_write(const char *state_dir, const struct cs_last_run *lr, char *err, size_t errlen)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct json_buf jb;
	FILE *f;
	int rc = -1;

	last_run_path(path, sizeof(path), state_dir);
	f = atomic_open(path, tmp);
	if (f == NULL) {
		snprintf(err, errlen, "%s.tmp: %s", path, strerror(errno));
		return -1;
	}
	/* switchyardd reads it, possibly as another user; it holds no
	 * secret. */
	(void)fchmod(fileno(f), 0644);
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_int(&jb, "time", lr->time);
	jb_str(&jb, "status", lr->status);
	jb_int(&jb, "exit", lr->exit);
	jb_uint(&jb, "names_before", lr->names_before);
	jb_uint(&jb, "names_after", lr->names_after);
	jb_uint(&jb, "names_gone", lr->names_gone);
	jb_double(&jb, "duration_ms", lr->duration_ms);
	jb_obj_end(&jb);
	fprintf(f, "%s\n", jb_cstr(&jb));
	jb_free(&jb);
	if (atomic_close(f, tmp, path) < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	else
		rc = 0;
	return rc;
}

int cs_last_run_read(const char *state_dir, struct cs_last_run *lr)
{
	char path[PATH_MAX], buf[1024];
	struct json_doc *doc;
	size_t n;
	int64_t v;
	FILE *f;

	memset(lr, 0, sizeof(*lr));
	last_run_path(path, sizeof(path), state_dir);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	doc = json_parse(buf, NULL, 0);
	if (doc == NULL || json_get_i64(doc, "time", &lr->time) < 0 ||
	    json_get_str(doc, "status", lr->status, sizeof(lr->status)) < 0 ||
	    json_get_i64(doc, "exit", &v) < 0) {
		json_doc_free(doc);
		return -1;
	}
	lr->exit = (int)v;
	if (json_get_i64(doc, "names_before", &v) == 0)
		lr->names_before = (uint64_t)v;
	if (json_get_i64(doc, "names_after", &v) == 0)
		lr->names_after = (uint64_t)v;
	if (json_get_i64(doc, "names_gone", &v) == 0)
		lr->names_gone = (uint64_t)v;
	json_doc_free(doc);
	return 0;
}

void cs_test_point(const char *step)
{
	const char *want = getenv("SWITCHYARD_TEST_CERTSYNC_KILL");

	if (want != NULL && strcmp(want, step) == 0)
		kill(getpid(), SIGKILL);
}
