/* Unit tests for certsync/state.c: unit lists, the set index and verdict
 * cache format, the verdict cache, the manifest, and the last-run record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "certstore/cert.h"
#include "certsync/cs_int.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cs-state.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cs_rmtree(dir);
	return 0;
}

/* A hash of 64 hex digits whose first digits are tag's. */
static void fake_hash(char out[CS_HASH_HEX], const char *tag)
{
	memset(out, '0', CS_HASH_HEX - 1);
	out[CS_HASH_HEX - 1] = '\0';
	memcpy(out, tag, strlen(tag));
}

static struct cs_unit *add_unit(struct cs_units *u, const char *name, const char *key,
                                const char *tag, int sev, const char *names, const char *msg)
{
	struct cs_unit *x = cs_units_add(u);

	assert_non_null(x);
	x->name = strdup(name);
	x->keyfile = key ? strdup(key) : NULL;
	fake_hash(x->hash, tag);
	x->sev = sev;
	x->not_after = 1900000000;
	x->names = strdup(names);
	x->msg = msg ? strdup(msg) : NULL;
	return x;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_units_roundtrip(void **state)
{
	struct cs_units u = {0}, back = {0};
	char path[128], tmp[160];
	struct cs_unit *x;

	(void)state;
	snprintf(path, sizeof(path), "%s/index", dir);
	add_unit(&u, "b.pem", NULL, "bb", CERT_OK, "b.example,www.b.example", NULL);
	add_unit(&u, "a.crt", "a.key", "aa", CERT_WARN, "a.example", "expires soon\twith\ttabs");
	assert_int_equal(cs_units_save(path, &u), 0);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_not_equal(access(tmp, F_OK), 0);
	assert_int_equal(cs_units_load(path, &back), 0);
	assert_int_equal(back.n, 2);
	cs_units_sort_by_name(&back);
	x = cs_units_find_name(&back, "a.crt");
	assert_non_null(x);
	assert_string_equal(x->keyfile, "a.key");
	assert_int_equal(x->sev, CERT_WARN);
	assert_int_equal(x->not_after, 1900000000);
	assert_string_equal(x->names, "a.example");
	/* Tabs separate the fields, so a message's tabs become blanks. */
	assert_string_equal(x->msg, "expires soon with tabs");
	x = cs_units_find_name(&back, "b.pem");
	assert_non_null(x);
	assert_null(x->keyfile);
	assert_null(x->msg);
	assert_string_equal(x->names, "b.example,www.b.example");
	assert_null(cs_units_find_name(&back, "c.pem"));
	cs_units_free(&u);
	cs_units_free(&back);
}

static void test_rejected_saved_without_message(void **state)
{
	struct cs_units u = {0}, back = {0};
	struct cs_unit *x;
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/index", dir);
	/* A kept previous version: the message is about the rejected new
	 * version, which is not in the set, so the index records it clean. */
	x = add_unit(&u, "a.pem", NULL, "aa", CERT_OK, "a.example", "no private key found");
	x->rejected = 1;
	x->kept_prev = 1;
	assert_int_equal(cs_units_save(path, &u), 0);
	assert_int_equal(cs_units_load(path, &back), 0);
	assert_int_equal(back.n, 1);
	assert_null(back.v[0].msg);
	assert_int_equal(back.v[0].sev, CERT_OK);
	cs_units_free(&u);
	cs_units_free(&back);
}

static void test_torn_lines_ignored(void **state)
{
	struct cs_units back = {0};
	char path[128], hash[CS_HASH_HEX], text[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/verdicts", dir);
	fake_hash(hash, "cc");
	/* A whole line, a line with a short hash, and a line cut off by a
	 * crash before its last fields. */
	snprintf(text, sizeof(text),
	         "c.pem\t-\t%s\t0\t0\tc.example\t-\n"
	         "d.pem\t-\t0123\t0\t0\td.example\t-\n"
	         "e.pem\t-\t%s\t0",
	         hash, hash);
	write_file(path, text);
	assert_int_equal(cs_units_load(path, &back), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].name, "c.pem");
	cs_units_free(&back);
}

/* A run that needs a few verdicts reads only their lines; a verdict that
 * was learnt is appended, and read back the same way. */
static void test_verdicts_by_hash_and_append(void **state)
{
	struct cs_units back = {0}, cache = {0};
	char path[128], h1[CS_HASH_HEX], h2[CS_HASH_HEX], h3[CS_HASH_HEX], text[512];
	const char *want[3];
	struct cs_unit *x;

	(void)state;
	snprintf(path, sizeof(path), "%s/verdicts", dir);
	fake_hash(h1, "aa");
	fake_hash(h2, "bb");
	fake_hash(h3, "cc");
	/* The last line was cut short by a crash. */
	snprintf(text, sizeof(text),
	         "a.pem\t-\t%s\t0\t0\ta.example\t-\n"
	         "b.pem\tb.key\t%s\t1\t7\tb.example,*.b.example\tweak key\n"
	         "c.pem\t-\t%s\t0",
	         h1, h2, h3);
	write_file(path, text);
	want[0] = h2;
	want[1] = h3;
	assert_int_equal(cs_units_load_hashes(path, &back, want, 2), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].name, "b.pem");
	assert_string_equal(back.v[0].keyfile, "b.key");
	assert_string_equal(back.v[0].names, "b.example,*.b.example");
	assert_string_equal(back.v[0].msg, "weak key");
	assert_int_equal(back.v[0].not_after, 7);
	cs_units_free(&back);

	/* Appending ends the torn line first, so that it stays the one line
	 * skipped, and writes only the units marked learned. */
	x = add_unit(&cache, "d.pem", NULL, "dd", CERT_OK, "d.example", NULL);
	x->learned = 1;
	add_unit(&cache, "a.pem", NULL, "aa", CERT_OK, "a.example", NULL);
	assert_int_equal(cs_units_append_learned(path, &cache), 0);
	assert_int_equal(cs_units_load(path, &back), 0);
	assert_int_equal(back.n, 3);
	assert_string_equal(back.v[2].name, "d.pem");
	cs_units_free(&back);
	fake_hash(h3, "dd");
	want[2] = h3;
	assert_int_equal(cs_units_load_hashes(path, &back, &want[2], 1), 0);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].name, "d.pem");
	cs_units_free(&back);
	cs_units_free(&cache);
}

static void test_missing_file_is_empty(void **state)
{
	struct cs_units u = {0};
	struct cs_files f = {0};
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(cs_units_load(path, &u), 0);
	assert_int_equal(u.n, 0);
	assert_int_equal(cs_manifest_load(path, &f), 0);
	assert_int_equal(f.n, 0);
}

static void test_verdicts_learn(void **state)
{
	struct cs_units cache = {0}, next = {0};
	struct cs_unit *x;
	char h[CS_HASH_HEX];

	(void)state;
	add_unit(&cache, "old.pem", NULL, "55", CERT_OK, "old.example", NULL);
	cs_units_sort_by_hash(&cache);
	/* Judged now: learned. Judged now but already cached: not twice.
	 * Unchanged, or given a cached verdict: not learned again. */
	x = add_unit(&next, "new.pem", NULL, "99", CERT_SKIP, "", "invalid base64");
	x->state = CS_UNIT_JUDGED;
	x = add_unit(&next, "copy.pem", NULL, "55", CERT_OK, "old.example", NULL);
	x->state = CS_UNIT_JUDGED;
	x = add_unit(&next, "same.pem", NULL, "11", CERT_OK, "same.example", NULL);
	x->state = CS_UNIT_SAME;
	assert_int_equal(cs_verdicts_learn(&cache, &next), 1);
	assert_int_equal(cache.n, 2);
	/* Sorted by hash, so that lookups by hash work. */
	fake_hash(h, "11");
	assert_null(cs_units_find_hash(&cache, h));
	fake_hash(h, "99");
	x = cs_units_find_hash(&cache, h);
	assert_non_null(x);
	assert_int_equal(x->sev, CERT_SKIP);
	assert_string_equal(x->msg, "invalid base64");
	fake_hash(h, "55");
	assert_non_null(cs_units_find_hash(&cache, h));
	assert_true(strcmp(cache.v[0].hash, cache.v[1].hash) < 0);
	cs_units_free(&cache);
	cs_units_free(&next);
}

static void test_set_verdict_copies(void **state)
{
	struct cs_units u = {0};
	struct cs_unit *src, *dst;

	(void)state;
	add_unit(&u, "src.pem", NULL, "aa", CERT_WARN, "a.example", "weak");
	add_unit(&u, "dst.pem", "dst.key", "bb", CERT_OK, "b.example", NULL);
	src = &u.v[0];
	dst = &u.v[1];
	assert_int_equal(cs_unit_set_verdict(dst, src), 0);
	/* The verdict is copied, the files and hash stay the unit's own. */
	assert_int_equal(dst->sev, CERT_WARN);
	assert_string_equal(dst->names, "a.example");
	assert_string_equal(dst->msg, "weak");
	assert_ptr_not_equal(dst->msg, src->msg);
	assert_string_equal(dst->name, "dst.pem");
	assert_string_equal(dst->keyfile, "dst.key");
	assert_memory_equal(dst->hash, "bb", 2);
	cs_units_free(&u);
}

static void add_file(struct cs_files *f, const char *name, int64_t size, int64_t mtime,
                     const char *tag)
{
	struct cs_file *x = cs_files_add(f, name);

	assert_non_null(x);
	x->size = size;
	x->mtime_ns = mtime;
	fake_hash(x->hash, tag);
}

static void test_manifest_roundtrip_and_compare(void **state)
{
	struct cs_files src = {0}, man = {0};
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/manifest", dir);
	add_file(&src, "b.pem", 100, 1700000000123456789LL, "bb");
	add_file(&src, "a.crt", 200, 1700000000000000001LL, "aa");
	add_file(&src, "a.key", 50, 1700000000000000002LL, "ak");
	cs_files_sort(&src);
	assert_int_equal(cs_manifest_save(path, &src), 0);
	assert_int_equal(cs_manifest_load(path, &man), 0);
	assert_int_equal(man.n, 3);
	assert_string_equal(man.v[0].name, "a.crt");
	assert_int_equal(man.v[2].mtime_ns, 1700000000123456789LL);
	assert_memory_equal(cs_files_find(&man, "a.key")->hash, "ak", 2);
	assert_true(cs_manifest_same(&src, &man));

	/* Any difference in a stat tuple, or in the set of names, is a change. */
	src.v[1].mtime_ns++;
	assert_false(cs_manifest_same(&src, &man));
	src.v[1].mtime_ns--;
	src.v[2].size++;
	assert_false(cs_manifest_same(&src, &man));
	src.v[2].size--;
	add_file(&src, "c.pem", 1, 1, "cc");
	cs_files_sort(&src);
	assert_false(cs_manifest_same(&src, &man));
	cs_files_free(&src);
	cs_files_free(&man);
}

/* The last-run record: what is written reads back, mode 0644 so that
 * switchyardd may read it as another user; absent or torn reads as none. */
static void test_last_run_roundtrip(void **state)
{
	struct cs_last_run w = {.time = 1796279312,
	                        .exit = CS_EXIT_REFUSED,
	                        .names_before = 40,
	                        .names_after = 20,
	                        .names_gone = 20,
	                        .duration_ms = 12.5},
	                   rd;
	char path[128], sub[96], err[256];
	struct stat st;
	FILE *f;

	(void)state;
	assert_int_equal(cs_last_run_read(dir, &rd), -1);
	snprintf(w.status, sizeof(w.status), "refused");
	/* The certsync directory does not exist yet: an error naming it. */
	assert_int_equal(cs_last_run_write(dir, &w, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "certsync/last-run"));
	snprintf(sub, sizeof(sub), "%s/certsync", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(cs_last_run_write(dir, &w, err, sizeof(err)), 0);
	assert_int_equal(cs_last_run_read(dir, &rd), 0);
	assert_int_equal(rd.time, w.time);
	assert_string_equal(rd.status, "refused");
	assert_int_equal(rd.exit, CS_EXIT_REFUSED);
	assert_int_equal(rd.names_before, 40);
	assert_int_equal(rd.names_after, 20);
	assert_int_equal(rd.names_gone, 20);
	snprintf(path, sizeof(path), "%s/%s", sub, CS_LAST_RUN_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"time\": 1, \"stat", f);
	fclose(f);
	assert_int_equal(cs_last_run_read(dir, &rd), -1);
}

/* The string set keeps every member across growth and a reserve, finds no
 * non-member, and does not count a member added twice. */
static void test_strset(void **state)
{
	enum { N = 5000 };
	static char names[N][16];
	struct cs_strset set = {0};

	(void)state;
	assert_int_equal(cs_strset_has(&set, "x"), 0);
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		if (i == N / 2)
			assert_int_equal(cs_strset_reserve(&set, N), 0);
		assert_int_equal(cs_strset_add(&set, names[i]), 0);
	}
	assert_int_equal(cs_strset_add(&set, "n17"), 0);
	assert_int_equal(set.n, N);
	assert_true(set.cap >= 2 * set.n);
	for (int i = 0; i < N; i++)
		assert_int_equal(cs_strset_has(&set, names[i]), 1);
	assert_int_equal(cs_strset_has(&set, "n5000"), 0);
	assert_int_equal(cs_strset_has(&set, ""), 0);
	free(set.v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_units_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rejected_saved_without_message, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_lines_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verdicts_by_hash_and_append, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file_is_empty, setup, teardown),
	    cmocka_unit_test(test_verdicts_learn),
	    cmocka_unit_test(test_set_verdict_copies),
	    cmocka_unit_test_setup_teardown(test_manifest_roundtrip_and_compare, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_last_run_roundtrip, setup, teardown),
	    cmocka_unit_test(test_strset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
