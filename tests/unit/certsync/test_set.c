/* Unit tests for certsync/set.c: scanning and hashing a source, grouping
 * files into units, planning which units changed, keeping a previous
 * version, the mass-deletion guard's count, and publishing a set. */
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
#include <openssl/evp.h>

#include "certstore/cert.h"
#include "certsync/cs_int.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cs-set.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

/* Removes the test's tree: dir/sub/file, two levels at most. */
static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void fake_hash(char out[CS_HASH_HEX], const char *tag)
{
	memset(out, '0', CS_HASH_HEX - 1);
	out[CS_HASH_HEX - 1] = '\0';
	memcpy(out, tag, strlen(tag));
}

static void add_file(struct cs_files *f, const char *name, const char *tag)
{
	struct cs_file *x = cs_files_add(f, name);

	assert_non_null(x);
	fake_hash(x->hash, tag);
}

static struct cs_unit *add_unit(struct cs_units *u, const char *name, const char *tag, int sev,
                                const char *names)
{
	struct cs_unit *x = cs_units_add(u);

	assert_non_null(x);
	x->name = strdup(name);
	fake_hash(x->hash, tag);
	x->sev = sev;
	x->names = strdup(names);
	return x;
}

static void write_file(const char *d, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", d, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void sha_hex(const char *text, char out[CS_HASH_HEX])
{
	unsigned char md[32];

	EVP_Digest(text, strlen(text), md, NULL, EVP_sha256(), NULL);
	cs_hex(md, out);
}

static void test_group_pairs_and_orphans(void **state)
{
	struct cs_files src = {0};
	struct cs_units u = {0};
	char both[2 * CS_HASH_HEX], want[CS_HASH_HEX];

	(void)state;
	add_file(&src, "a.crt", "a1");
	add_file(&src, "a.key", "a2");
	add_file(&src, "b.pem", "b1");
	add_file(&src, "c.key", "c2"); /* a key without its certificate */
	add_file(&src, "d.crt", "d1"); /* a certificate without its key */
	cs_files_sort(&src);
	assert_int_equal(cs_units_group(&src, &u), 0);
	assert_int_equal(u.n, 4);
	assert_string_equal(u.v[0].name, "a.crt");
	assert_string_equal(u.v[0].keyfile, "a.key");
	/* A pair's hash covers both files, in order. */
	snprintf(both, sizeof(both), "%s%s", src.v[0].hash, src.v[1].hash);
	sha_hex(both, want);
	assert_string_equal(u.v[0].hash, want);
	assert_string_equal(u.v[1].name, "b.pem");
	assert_null(u.v[1].keyfile);
	assert_string_equal(u.v[1].hash, src.v[2].hash);
	/* The orphans are units of their own, for the validator to reject. */
	assert_string_equal(u.v[2].name, "c.key");
	assert_null(u.v[2].keyfile);
	assert_string_equal(u.v[3].name, "d.crt");
	assert_null(u.v[3].keyfile);
	cs_files_free(&src);
	cs_units_free(&u);
}

static void test_plan_marks_only_changed_units(void **state)
{
	struct cs_units cur = {0}, next = {0};
	long changed;

	(void)state;
	add_unit(&cur, "same.pem", "11", CERT_WARN, "same.example")->msg = strdup("expires soon");
	add_unit(&cur, "edited.pem", "22", CERT_OK, "edited.example");
	add_unit(&cur, "removed.pem", "33", CERT_OK, "removed.example");
	add_unit(&next, "same.pem", "11", 0, "");
	add_unit(&next, "edited.pem", "2f", 0, "");
	add_unit(&next, "added.pem", "44", 0, "");
	cs_units_sort_by_name(&cur);
	cs_units_sort_by_name(&next);
	changed = cs_units_plan(&cur, &next);
	/* edited and added in next, removed from cur. */
	assert_int_equal(changed, 3);
	assert_int_equal(cs_units_find_name(&next, "same.pem")->state, CS_UNIT_SAME);
	assert_int_equal(cs_units_find_name(&next, "edited.pem")->state, CS_UNIT_CHANGED);
	assert_int_equal(cs_units_find_name(&next, "added.pem")->state, CS_UNIT_CHANGED);
	/* The unchanged unit takes the current set's verdict. */
	assert_int_equal(cs_units_find_name(&next, "same.pem")->sev, CERT_WARN);
	assert_string_equal(cs_units_find_name(&next, "same.pem")->names, "same.example");
	assert_string_equal(cs_units_find_name(&next, "same.pem")->msg, "expires soon");

	/* Nothing changed: nothing to do. */
	cs_units_free(&next);
	add_unit(&next, "same.pem", "11", 0, "");
	add_unit(&next, "edited.pem", "22", 0, "");
	add_unit(&next, "removed.pem", "33", 0, "");
	cs_units_sort_by_name(&next);
	assert_int_equal(cs_units_plan(&cur, &next), 0);
	cs_units_free(&cur);
	cs_units_free(&next);
}

static void test_keep_previous(void **state)
{
	struct cs_units u = {0};
	struct cs_unit *bad, *prev;

	(void)state;
	prev = add_unit(&u, "a.crt", "aa", CERT_OK, "a.example");
	prev->keyfile = strdup("a.key");
	prev->not_after = 1900000000;
	bad = add_unit(&u, "a.crt", "bb", CERT_SKIP, "");
	bad->msg = strdup("no private key found");
	bad->rejected = 1;
	prev = &u.v[0];
	assert_int_equal(cs_unit_keep_previous(bad, prev), 0);
	/* The previous version is served, and the report still says why the
	 * new one was refused. */
	assert_true(bad->kept_prev);
	assert_true(bad->rejected);
	assert_int_equal(bad->sev, CERT_OK);
	assert_string_equal(bad->names, "a.example");
	assert_string_equal(bad->hash, prev->hash);
	assert_string_equal(bad->keyfile, "a.key");
	assert_int_equal(bad->not_after, 1900000000);
	assert_string_equal(bad->msg, "no private key found");
	cs_units_free(&u);
}

static void test_names_gone(void **state)
{
	struct cs_units cur = {0}, next = {0};
	size_t nold, nnew, gone;

	(void)state;
	add_unit(&cur, "a.pem", "aa", CERT_OK, "a.example,www.a.example");
	add_unit(&cur, "b.pem", "bb", CERT_OK, "b.example");
	add_unit(&cur, "c.pem", "cc", CERT_WARN, "c.example");
	/* b moved to another file; c is rejected (a skipped unit serves
	 * nothing); www.a is dropped; d is new. */
	add_unit(&next, "a.pem", "a2", CERT_OK, "a.example");
	add_unit(&next, "b2.pem", "b2", CERT_OK, "b.example,d.example");
	add_unit(&next, "c.pem", "c2", CERT_SKIP, "c.example");
	assert_int_equal(cs_names_gone(&cur, &next, &nold, &nnew, &gone), 0);
	assert_int_equal(nold, 4);
	assert_int_equal(nnew, 3);
	assert_int_equal(gone, 2);
	cs_units_free(&cur);
	cs_units_free(&next);
}

static void test_scan_and_copy_hash(void **state)
{
	char src[128], dst[128], path[256], want[CS_HASH_HEX], err[256];
	struct cs_files f = {0};
	struct stat st;

	(void)state;
	snprintf(src, sizeof(src), "%s/src", dir);
	snprintf(dst, sizeof(dst), "%s/dst", dir);
	assert_int_equal(mkdir(src, 0700), 0);
	assert_int_equal(mkdir(dst, 0700), 0);
	write_file(src, "b.pem", "bee");
	write_file(src, "a.crt", "ay");
	write_file(src, "a.key", "key");
	write_file(src, ".hidden.pem", "x");
	write_file(src, "notes.txt", "x");
	snprintf(path, sizeof(path), "%s/sub.pem", src);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(cs_scan(src, &f, err, sizeof(err)), 0);
	/* Only top-level regular *.pem, *.crt and *.key, sorted. */
	assert_int_equal(f.n, 3);
	assert_string_equal(f.v[0].name, "a.crt");
	assert_string_equal(f.v[1].name, "a.key");
	assert_string_equal(f.v[2].name, "b.pem");
	assert_int_equal(f.v[2].size, 3);
	assert_true(f.v[2].mtime_ns > 0);

	/* Hash only (a dry run), then hash and copy. */
	assert_int_equal(cs_copy_hash(src, NULL, &f.v[2], err, sizeof(err)), 0);
	sha_hex("bee", want);
	assert_string_equal(f.v[2].hash, want);
	snprintf(path, sizeof(path), "%s/b.pem", dst);
	assert_int_not_equal(access(path, F_OK), 0);
	assert_int_equal(cs_copy_hash(src, dst, &f.v[2], err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 3);

	assert_true(f.v[2].copied);
	/* A copy names the file when it fails. */
	assert_int_equal(
	    cs_copy_hash(src, dst, &(struct cs_file){.name = "gone.pem"}, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "gone.pem"));
	cs_files_free(&f);
}

static void test_publish_point_and_prune(void **state)
{
	char base[128], sets[160], tmp[192], final[192], id[64], err[256];
	struct cs_units u = {0}, back = {0};
	struct stat st;

	(void)state;
	snprintf(base, sizeof(base), "%s", dir);
	snprintf(sets, sizeof(sets), "%s/sets", base);
	assert_int_equal(mkdir(sets, 0700), 0);
	add_unit(&u, "a.pem", "aa", CERT_OK, "a.example");
	for (int i = 1; i <= 4; i++) {
		snprintf(tmp, sizeof(tmp), "%s/%d.tmp", sets, i);
		snprintf(final, sizeof(final), "%s/%d", sets, i);
		assert_int_equal(mkdir(tmp, 0700), 0);
		write_file(tmp, "a.pem", "x");
		assert_int_equal(cs_set_finish(tmp, final, &u, 0, 0, err, sizeof(err)), 0);
		assert_int_not_equal(stat(tmp, &st), 0);
		assert_int_equal(stat(final, &st), 0);
	}
	/* No current yet. */
	cs_current_read(base, id, sizeof(id), &back);
	assert_string_equal(id, "");
	assert_int_equal(back.n, 0);
	assert_int_equal(cs_current_point(base, "1", err, sizeof(err)), 0);
	cs_current_read(base, id, sizeof(id), &back);
	assert_string_equal(id, "1");
	assert_int_equal(back.n, 1);
	assert_string_equal(back.v[0].names, "a.example");

	/* A killed run's leftover goes; the run's own set in progress stays;
	 * of the complete sets the newest two and the current one stay. */
	snprintf(tmp, sizeof(tmp), "%s/9.tmp", sets);
	assert_int_equal(mkdir(tmp, 0700), 0);
	snprintf(final, sizeof(final), "%s/5.tmp", sets);
	assert_int_equal(mkdir(final, 0700), 0);
	cs_sets_prune(base, "1", final, 2, 0);
	assert_int_not_equal(stat(tmp, &st), 0);
	assert_int_equal(stat(final, &st), 0);
	snprintf(tmp, sizeof(tmp), "%s/1", sets);
	assert_int_equal(stat(tmp, &st), 0);
	snprintf(tmp, sizeof(tmp), "%s/2", sets);
	assert_int_not_equal(stat(tmp, &st), 0);
	snprintf(tmp, sizeof(tmp), "%s/3", sets);
	assert_int_equal(stat(tmp, &st), 0);
	snprintf(tmp, sizeof(tmp), "%s/4", sets);
	assert_int_equal(stat(tmp, &st), 0);
	cs_units_free(&u);
	cs_units_free(&back);
}

static void test_change_list(void **state)
{
	struct cs_units cur = {0}, next = {0};
	char path[160], text[512], err[256];
	struct cs_unit *x;
	FILE *f;
	size_t n;

	(void)state;
	add_unit(&cur, "same.pem", "11", CERT_OK, "same.example");
	x = add_unit(&cur, "pair.crt", "22", CERT_OK, "pair.example");
	x->keyfile = strdup("pair.key");
	add_unit(&cur, "gone.pem", "33", CERT_OK, "gone.example");
	add_unit(&next, "same.pem", "11", CERT_OK, "same.example")->state = CS_UNIT_SAME;
	/* pair.crt lost its key file: both files are named. */
	add_unit(&next, "pair.crt", "2f", CERT_SKIP, "")->state = CS_UNIT_JUDGED;
	add_unit(&next, "new.pem", "44", CERT_OK, "new.example")->state = CS_UNIT_JUDGED;
	cs_units_sort_by_name(&cur);
	cs_units_sort_by_name(&next);
	assert_int_equal(cs_set_changes(dir, "BASE", &cur, &next, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, CERT_CHANGES_FILE);
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_string_equal(text, "base BASE\nnew.pem\npair.crt\npair.key\ngone.pem\n");

	/* A name that cannot be a line: no list, so a full scan. */
	x = add_unit(&next, "odd\nname.pem", "55", CERT_OK, "");
	x->state = CS_UNIT_JUDGED;
	cs_units_sort_by_name(&next);
	assert_int_equal(cs_set_changes(dir, "BASE", &cur, &next, err, sizeof(err)), 0);
	assert_int_not_equal(access(path, F_OK), 0);
	cs_units_free(&cur);
	cs_units_free(&next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_group_pairs_and_orphans),
	    cmocka_unit_test(test_plan_marks_only_changed_units),
	    cmocka_unit_test(test_keep_previous),
	    cmocka_unit_test(test_names_gone),
	    cmocka_unit_test_setup_teardown(test_scan_and_copy_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_publish_point_and_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_change_list, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
