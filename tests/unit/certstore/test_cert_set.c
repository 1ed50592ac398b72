/* Unit tests for index sets (certstore/cert.h, CERT_SET_FILE;
 * certstore/cert_set.c): an index set loads what the same files load as a
 * plain directory, a reload between two index sets opens only the changed
 * blob, a malformed index is refused with the file and line, and the map
 * for readers outside the store resolves names to blobs. */
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
#include "tests/unit/certstore/cert_helpers.h"

static char *root;
static char plain[300], blobs[300], set1[300], set2[300];
static struct cert_opts opts;

/* The same content under a blob name, as certsync stores it: the names
 * here are made up, but shaped like a content hash plus the extension. */
static void blob(const char *from_file, const char *blob_name)
{
	char a[700], b[700];

	snprintf(a, sizeof(a), "%s/%s", plain, from_file);
	snprintf(b, sizeof(b), "%s/%s", blobs, blob_name);
	assert_int_equal(link(a, b), 0);
}

static void write_index(const char *dir, const char *text)
{
	mkdir(dir, 0755);
	tc_write(dir, CERT_SET_FILE, text, strlen(text));
}

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"
#define H4 "4444444444444444444444444444444444444444444444444444444444444444"

static int setup(void **state)
{
	const char *a[1] = {"a.example"}, *b[2] = {"b.example", "*.b.example"};
	const char *c[1] = {"c.example"};
	EVP_PKEY *k = tc_key(0);
	X509 *cc = tc_cert(k, c, 1, NULL, NULL, NULL, 0);

	(void)state;
	root = tc_tmpdir();
	cert_opts_defaults(&opts);
	snprintf(plain, sizeof(plain), "%s/plain", root);
	snprintf(blobs, sizeof(blobs), "%s/blobs", root);
	snprintf(set1, sizeof(set1), "%s/sets/1", root);
	snprintf(set2, sizeof(set2), "%s/sets/2", root);
	mkdir(plain, 0755);
	mkdir(blobs, 0755);
	snprintf(set1, sizeof(set1), "%s/sets", root);
	mkdir(set1, 0755);
	snprintf(set1, sizeof(set1), "%s/sets/1", root);
	tc_site(plain, "a.pem", a, 1, NULL);
	tc_site(plain, "b.pem", b, 2, NULL);
	tc_pair(plain, "c", &cc, 1, k, 0);
	X509_free(cc);
	EVP_PKEY_free(k);
	blob("a.pem", H1 ".pem");
	blob("b.pem", H2 ".pem");
	blob("c.crt", H3 ".crt");
	blob("c.key", H3 ".key");
	write_index(set1, CERT_SET_MAGIC " ../../blobs\n"
	                                 "a.pem " H1 ".pem\n"
	                                 "b.pem " H2 ".pem\n"
	                                 "c.crt " H3 ".crt\n"
	                                 "c.key " H3 ".key\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tc_rmdir(root);
	free(root);
	return 0;
}

static void test_index_equals_plain(void **state)
{
	struct cert_report *r1 = NULL, *r2 = NULL;
	struct cert_store *p, *s;

	(void)state;
	p = cert_store_load(plain, &opts, &r1);
	s = cert_store_load(set1, &opts, &r2);
	assert_non_null(p);
	assert_non_null(s);
	assert_int_equal(cert_report_nloaded(r2), 3);
	assert_int_equal(cert_report_nloaded(r1), cert_report_nloaded(r2));
	tc_same_lookups(p, s);
	/* Items are known by their names in the set, not by their blobs. */
	assert_string_equal(
	    cert_item_file(cert_store_lookup(s, "c.example", 9, CERT_LOOKUP_ECDSA_OK, NULL)),
	    "c.crt");
	assert_int_equal(cert_dir_nfiles(set1), 3);
	cert_store_unref(p);
	cert_store_unref(s);
	cert_report_free(r1);
	cert_report_free(r2);
}

static void test_reload_opens_changed_blob_only(void **state)
{
	const char *a[1] = {"a.example"};
	struct cert_report *r1 = NULL, *r2 = NULL, *r3 = NULL;
	struct cert_store *s1, *s2, *s3;
	char p[700];

	(void)state;
	s1 = cert_store_load(set1, &opts, &r1);
	assert_non_null(s1);
	/* Set 2 differs by a.pem. Every other blob is made unreadable: a
	 * reload that opened one would report it. */
	snprintf(p, sizeof(p), "%s/%s", plain, "a.pem");
	unlink(p); /* a new inode: blob H1 keeps its bytes */
	tc_site(plain, "a.pem", a, 1, NULL);
	blob("a.pem", H4 ".pem");
	write_index(set2, CERT_SET_MAGIC " ../../blobs\n"
	                                 "a.pem " H4 ".pem\n"
	                                 "b.pem " H2 ".pem\n"
	                                 "c.crt " H3 ".crt\n"
	                                 "c.key " H3 ".key\n");
	snprintf(p, sizeof(p), "%s/%s", blobs, H2 ".pem");
	assert_int_equal(truncate(p, 0), 0);
	snprintf(p, sizeof(p), "%s/%s", blobs, H3 ".crt");
	assert_int_equal(truncate(p, 0), 0);
	s2 = cert_store_reload(s1, set2, &opts, &r2);
	assert_non_null(s2);
	assert_int_equal(cert_report_nchanged(r2), 1);
	assert_int_equal(cert_report_nskipped(r2), 0);
	assert_int_equal(cert_store_nnames(s2), cert_store_nnames(s1));
	/* And back: the previous blob, named again, is the previous item. */
	s3 = cert_store_reload(s2, set1, &opts, &r3);
	assert_non_null(s3);
	assert_int_equal(cert_report_nchanged(r3), 1);
	assert_int_equal(cert_report_nskipped(r3), 0);
	cert_store_unref(s1);
	cert_store_unref(s2);
	cert_store_unref(s3);
	cert_report_free(r1);
	cert_report_free(r2);
	cert_report_free(r3);
}

/* A malformed index is refused as a whole, naming the file and line. */
static void refused(const char *text, const char *want)
{
	struct cert_report *r = NULL;
	struct cert_store *s;

	write_index(set2, text);
	s = cert_store_load(set2, &opts, &r);
	assert_null(s);
	assert_non_null(cert_report_fatal(r));
	if (strstr(cert_report_fatal(r), want) == NULL)
		fail_msg("'%s' does not say '%s'", cert_report_fatal(r), want);
	cert_report_free(r);
}

static void test_malformed_refused(void **state)
{
	(void)state;
	refused("switchyard-set 9 ../../blobs\na.pem " H1 ".pem\n", CERT_SET_FILE ":1: expected");
	refused(CERT_SET_MAGIC " ../../blobs\nb.pem " H2 ".pem\na.pem " H1 ".pem\n",
	        CERT_SET_FILE ":3: names are not in strictly ascending order");
	refused(CERT_SET_MAGIC " ../../blobs\na.pem " H1 ".pem\na.pem " H1 ".pem\n",
	        ":3: names are not in strictly ascending order");
	refused(CERT_SET_MAGIC " ../../blobs\na.pem ../" H1 ".pem\n", ":2: a name or blob");
	refused(CERT_SET_MAGIC " ../../blobs\na.pem\n", ":2: expected \"NAME BLOB\"");
	refused(CERT_SET_MAGIC " ../../blobs\na.pem " H1 ".pem",
	        ":2: the last record has no newline");
	refused(CERT_SET_MAGIC " ../../nowhere\na.pem " H1 ".pem\n",
	        "cannot open the blob directory");
}

static void test_map(void **state)
{
	struct cert_set_map *m = NULL;
	char err[300], out[700], want[700];

	(void)state;
	assert_int_equal(cert_set_map_open(set1, &m, err, sizeof(err)), 0);
	assert_non_null(m);
	assert_int_equal(cert_set_map_path(m, set1, "c.key", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/../../blobs/%s", set1, H3 ".key");
	assert_string_equal(out, want);
	assert_int_equal(cert_set_map_path(m, set1, "nope.pem", out, sizeof(out)), -1);
	assert_int_equal(cert_set_map_count(m), 4);
	cert_set_map_free(m);
	/* Read without a split (certsync's pruning): the raw searches find
	 * the first record and the last, the split ones find the same, and
	 * the records come in the index's order. */
	for (int split = 0; split < 2; split++) {
		const char *f, *b;

		assert_int_equal(cert_set_map_read(set1, &m, err, sizeof(err)), 0);
		assert_non_null(m);
		if (split)
			assert_int_equal(cert_set_map_split(m), 0);
		assert_int_equal(cert_set_map_count(m), split ? 4 : 0);
		assert_int_equal(cert_set_map_blob_of(m, "a.pem", out, sizeof(out)), 0);
		assert_string_equal(out, H1 ".pem");
		assert_int_equal(cert_set_map_blob_of(m, "c.key", out, sizeof(out)), 0);
		assert_string_equal(out, H3 ".key");
		assert_int_equal(cert_set_map_blob_of(m, "c", out, sizeof(out)), -1);
		assert_int_equal(cert_set_map_blob_of(m, "a.pem", out, 10), -1);
		assert_int_equal(cert_set_map_names_blob(m, H1 ".pem"), 1);
		assert_int_equal(cert_set_map_names_blob(m, H3 ".key"), 1);
		assert_int_equal(cert_set_map_names_blob(m, H4 ".pem"), 0);
		assert_int_equal(cert_set_map_names_blob(m, H1), 0);
		if (split) {
			cert_set_map_entry(m, 0, &f, &b);
			assert_string_equal(f, "a.pem");
			assert_string_equal(b, H1 ".pem");
			cert_set_map_entry(m, 3, &f, &b);
			assert_string_equal(f, "c.key");
			assert_string_equal(b, H3 ".key");
		}
		cert_set_map_free(m);
	}
	/* Fields separated by a tab or several spaces: read splits at once,
	 * so the answers stay right. */
	write_index(set2, CERT_SET_MAGIC " ../../blobs\n"
	                                 "a.pem\t" H1 ".pem\n"
	                                 "b.pem  " H2 ".pem\n");
	assert_int_equal(cert_set_map_read(set2, &m, err, sizeof(err)), 0);
	assert_int_equal(cert_set_map_count(m), 2);
	assert_int_equal(cert_set_map_names_blob(m, H1 ".pem"), 1);
	assert_int_equal(cert_set_map_blob_of(m, "b.pem", out, sizeof(out)), 0);
	assert_string_equal(out, H2 ".pem");
	cert_set_map_free(m);
	/* A record that is not two fields: the read (no split) succeeds, the
	 * split fails, and the broken map answers so that nothing is pruned. */
	write_index(set2, CERT_SET_MAGIC " ../../blobs\n"
	                                 "a.pem " H1 ".pem\n"
	                                 "lonely\n");
	assert_int_equal(cert_set_map_read(set2, &m, err, sizeof(err)), 0);
	assert_int_equal(cert_set_map_split(m), -1);
	assert_int_equal(cert_set_map_split(m), -1);
	assert_int_equal(cert_set_map_count(m), 0);
	assert_int_equal(cert_set_map_names_blob(m, H4 ".pem"), 1);
	assert_int_equal(cert_set_map_blob_of(m, "a.pem", out, sizeof(out)), -1);
	assert_int_equal(cert_set_map_path(m, set2, "a.pem", out, sizeof(out)), -1);
	cert_set_map_free(m);
	assert_int_equal(cert_set_map_open(set2, &m, err, sizeof(err)), -1);
	assert_null(m);
	/* A plain directory has no map; its files are where they are. */
	assert_int_equal(cert_set_map_open(plain, &m, err, sizeof(err)), 0);
	assert_null(m);
	assert_int_equal(cert_set_map_path(NULL, plain, "a.pem", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/a.pem", plain);
	assert_string_equal(out, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_index_equals_plain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reload_opens_changed_blob_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_map, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
