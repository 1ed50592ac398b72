/* Unit tests for delta loads that follow change lists (certstore/cert.h,
 * CERT_CHANGES_FILE; certstore/cert_changes.c): only the files a list names
 * are looked at, the result equals a full scan, the bases are followed, and
 * anything doubtful falls back to the full scan. */
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
static struct cert_opts opts;

static int setup(void **state)
{
	(void)state;
	root = tc_tmpdir();
	cert_opts_defaults(&opts);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tc_rmdir(root);
	free(root);
	return 0;
}

static void set_path(char *out, size_t len, const char *id)
{
	snprintf(out, len, "%s/%s", root, id);
}

static void site(const char *id, const char *file, const char *name1, const char *name2)
{
	char d[256];
	const char *names[2] = {name1, name2};

	set_path(d, sizeof(d), id);
	tc_site(d, file, names, name2 != NULL ? 2 : 1, NULL);
}

/* Set A: a.pem, b.pem, d.pem, the pair c.crt + c.key, and notes.txt. */
static void make_a(void)
{
	char d[256];
	EVP_PKEY *k = tc_key(0);
	const char *cn[1] = {"c.example"};
	X509 *c = tc_cert(k, cn, 1, NULL, NULL, NULL, 0);

	set_path(d, sizeof(d), "A");
	assert_int_equal(mkdir(d, 0700), 0);
	site("A", "a.pem", "a.example", NULL);
	site("A", "b.pem", "b.example", NULL);
	site("A", "d.pem", "d.example", NULL);
	tc_pair(d, "c", &c, 1, k, 0);
	tc_write(d, "notes.txt", "x", 1);
	X509_free(c);
}

/* A set `id` made as certsync makes one from `base`: every file linked
 * except those in `skip`, then the change list. */
static void make_from(const char *id, const char *base, const char *const *skip, int nskip,
                      const char *list)
{
	const char *files[] = {"a.pem", "b.pem", "c.crt", "c.key", "d.pem", "e.pem", "notes.txt"};
	char d[256], b[256], from[300], to[300], text[512];

	set_path(d, sizeof(d), id);
	set_path(b, sizeof(b), base);
	assert_int_equal(mkdir(d, 0700), 0);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int skipped = 0;

		for (int s = 0; s < nskip; s++)
			skipped |= strcmp(skip[s], files[i]) == 0;
		snprintf(from, sizeof(from), "%s/%s", b, files[i]);
		snprintf(to, sizeof(to), "%s/%s", d, files[i]);
		if (!skipped && access(from, F_OK) == 0)
			assert_int_equal(link(from, to), 0);
	}
	if (list != NULL) {
		snprintf(text, sizeof(text), "base %s\n%s", base, list);
		tc_write(d, CERT_CHANGES_FILE, text, strlen(text));
	}
}

/* B from A: b.pem renewed with a second name, d.pem removed, e.pem new. */
static void make_b(const char *list)
{
	const char *skip[] = {"b.pem", "d.pem"};

	make_from("B", "A", skip, 2, list);
	site("B", "b.pem", "b.example", "b2.example");
	site("B", "e.pem", "e.example", NULL);
}

static const char *B_LIST = "b.pem\nd.pem\ne.pem\n";

/* Replaces `file` of set `id` by bytes that are no certificate, as a new
 * inode: a load that looks at the file cannot miss it. */
static void spoil(const char *id, const char *file)
{
	char d[256], p[300];

	set_path(d, sizeof(d), id);
	snprintf(p, sizeof(p), "%s/%s", d, file);
	assert_int_equal(unlink(p), 0);
	tc_write(d, file, "not a certificate\n", 18);
}

static struct cert_store *load(const char *id)
{
	char d[256];
	struct cert_report *rep = NULL;
	struct cert_store *st;

	set_path(d, sizeof(d), id);
	st = cert_store_load(d, &opts, &rep);
	assert_non_null(st);
	cert_report_free(rep);
	return st;
}

static struct cert_store *reload(struct cert_store *old, const char *id, struct cert_report **rep)
{
	char d[256];
	struct cert_store *st;

	set_path(d, sizeof(d), id);
	st = cert_store_reload(old, d, &opts, rep);
	assert_non_null(st);
	return st;
}

static enum cert_sev sev_of(const struct cert_report *rep, const char *file, const char **msg)
{
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *f = cert_report_entry(rep, i, &sev, msg);

		if (f != NULL && strcmp(f, file) == 0)
			return sev;
	}
	fail_msg("%s is not in the report", file);
	return CERT_SKIP;
}

static const char *served_by(const struct cert_store *st, const char *name)
{
	const struct cert_item *it = cert_store_lookup(st, name, strlen(name), 1, NULL);

	return it != NULL ? cert_item_file(it) : "-";
}

static void test_list_equals_full_scan(void **state)
{
	struct cert_store *a, *b, *full;
	struct cert_report *rep = NULL, *frep = NULL;
	char d[256];
	const char *msg;

	(void)state;
	make_a();
	make_b(B_LIST);
	a = load("A");
	b = reload(a, "B", &rep);
	set_path(d, sizeof(d), "B");
	full = cert_store_load(d, &opts, &frep);
	tc_same_lookups(b, full);
	assert_string_equal(served_by(b, "b2.example"), "b.pem");
	assert_string_equal(served_by(b, "e.example"), "e.pem");
	assert_string_equal(served_by(b, "c.example"), "c.crt");
	assert_string_equal(served_by(b, "d.example"), "-");
	assert_int_equal(cert_report_nfiles(rep), cert_report_nfiles(frep));
	assert_int_equal(cert_report_nloaded(rep), cert_report_nloaded(frep));
	assert_int_equal(cert_report_nignored(rep), cert_report_nignored(frep));
	assert_int_equal(sev_of(rep, "notes.txt", &msg), CERT_WARN);
	assert_non_null(strstr(msg, "ignored"));
	/* b.pem's two names (a new item serves b.example too), e.pem's new
	 * one and d.pem's gone one. */
	assert_int_equal(cert_report_nchanged(rep), 4);
	cert_report_free(rep);
	cert_report_free(frep);
	cert_store_unref(full);
	cert_store_unref(a);
	cert_store_unref(b);
}

static void test_unlisted_files_not_read(void **state)
{
	struct cert_store *a, *b;
	struct cert_report *rep = NULL;
	const char *msg;

	(void)state;
	make_a();
	make_b(B_LIST);
	/* Against the list's promise, a.pem differs: a load that read it would
	 * keep the previous version with a warning. */
	spoil("B", "a.pem");
	spoil("B", "c.key");
	a = load("A");
	b = reload(a, "B", &rep);
	assert_int_equal(sev_of(rep, "a.pem", &msg), CERT_OK);
	assert_int_equal(sev_of(rep, "c.crt", &msg), CERT_OK);
	assert_string_equal(served_by(b, "a.example"), "a.pem");
	assert_string_equal(served_by(b, "b2.example"), "b.pem");
	cert_report_free(rep);
	cert_store_unref(a);
	cert_store_unref(b);
}

static void test_bases_followed(void **state)
{
	const char *skip[] = {"a.pem"};
	struct cert_store *a, *c;
	struct cert_report *rep = NULL;
	const char *msg;

	(void)state;
	make_a();
	make_b(B_LIST);
	make_from("C", "B", skip, 1, "a.pem\n");
	site("C", "a.pem", "a.example", "a2.example");
	spoil("C", "c.key"); /* unlisted in both lists: not looked at */
	a = load("A");
	/* An instance that still holds A (it was the standby during B). */
	c = reload(a, "C", &rep);
	assert_string_equal(served_by(c, "a2.example"), "a.pem");
	assert_string_equal(served_by(c, "b2.example"), "b.pem");
	assert_string_equal(served_by(c, "e.example"), "e.pem");
	assert_string_equal(served_by(c, "d.example"), "-");
	assert_int_equal(sev_of(rep, "c.crt", &msg), CERT_OK);
	assert_int_equal(sev_of(rep, "notes.txt", &msg), CERT_WARN);
	cert_report_free(rep);
	cert_store_unref(a);
	cert_store_unref(c);
}

static int collect(const char *name, void *arg)
{
	char *out = arg;

	strcat(out, name);
	strcat(out, ",");
	return strcmp(name, "stop") == 0 ? 7 : 0;
}

/* cert_changes_each (certsync's pruning): the names along the bases from C
 * to A, sorted and once each; nothing for lists that do not lead there; fn's
 * nonzero result stops the walk and is returned. */
static void test_each(void **state)
{
	const char *skip[] = {"a.pem"};
	char a[256], c[256], names[256] = "";

	(void)state;
	make_a();
	make_b(B_LIST);
	make_from("C", "B", skip, 1, "a.pem\nb.pem\n");
	set_path(a, sizeof(a), "A");
	set_path(c, sizeof(c), "C");
	assert_int_equal(cert_changes_each(c, a, collect, names), 0);
	assert_string_equal(names, "a.pem,b.pem,d.pem,e.pem,");
	names[0] = '\0';
	assert_int_equal(cert_changes_each(a, c, collect, names), -1);
	assert_string_equal(names, "");
	make_from("D", "C", NULL, 0, "stop\nz.pem\n");
	set_path(a, sizeof(a), "D");
	assert_int_equal(cert_changes_each(a, c, collect, names), 7);
	assert_string_equal(names, "stop,");
}

/* Reloads B (with a.pem spoiled) from A and expects the full scan: it
 * notices a.pem. */
static void expect_full_scan(void)
{
	struct cert_store *a, *b;
	struct cert_report *rep = NULL;
	const char *msg;

	spoil("B", "a.pem");
	a = load("A");
	b = reload(a, "B", &rep);
	assert_int_equal(sev_of(rep, "a.pem", &msg), CERT_WARN);
	assert_non_null(strstr(msg, "previous version stays served"));
	assert_string_equal(served_by(b, "b2.example"), "b.pem");
	assert_string_equal(served_by(b, "d.example"), "-");
	cert_report_free(rep);
	cert_store_unref(a);
	cert_store_unref(b);
}

static void test_no_list_full_scan(void **state)
{
	(void)state;
	make_a();
	make_b(NULL);
	expect_full_scan();
}

static void test_other_base_full_scan(void **state)
{
	char d[256];
	const char *text = "base X\nb.pem\nd.pem\ne.pem\n";

	(void)state;
	make_a();
	make_b(NULL);
	set_path(d, sizeof(d), "B");
	tc_write(d, CERT_CHANGES_FILE, text, strlen(text));
	expect_full_scan();
}

static void test_torn_list_full_scan(void **state)
{
	(void)state;
	make_a();
	/* The last line has no newline: cut short by whoever wrote it. */
	make_b("b.pem\nd.pem\ne.p");
	expect_full_scan();
}

static void test_path_in_list_full_scan(void **state)
{
	(void)state;
	make_a();
	/* A name with a slash could reach outside the set. */
	make_b("b.pem\nd.pem\ne.pem\n../A/a.pem\n");
	expect_full_scan();
}

static void test_half_pair_full_scan(void **state)
{
	(void)state;
	make_a();
	/* c.key listed without c.crt: the list and the pairs disagree. */
	make_b("b.pem\nc.key\nd.pem\ne.pem\n");
	expect_full_scan();
}

static void test_key_beside_unlisted_cert_full_scan(void **state)
{
	struct cert_store *a, *b, *full;
	struct cert_report *rep = NULL, *frep = NULL;
	const char *msg, *fmsg;
	char d[256];

	(void)state;
	make_a();
	/* A key file added beside a.pem, which did not change: only the full
	 * scan pairs the two as a load of B from scratch would. */
	make_from("B", "A", NULL, 0, "a.key\n");
	set_path(d, sizeof(d), "B");
	tc_write(d, "a.key", "x", 1);
	spoil("B", "d.pem"); /* shows that the full scan ran */
	a = load("A");
	b = reload(a, "B", &rep);
	full = cert_store_load(d, &opts, &frep);
	assert_int_equal(sev_of(rep, "d.pem", &msg), CERT_WARN);
	assert_int_equal(sev_of(rep, "a.pem", &msg), sev_of(frep, "a.pem", &fmsg));
	assert_int_equal(cert_report_nignored(rep), cert_report_nignored(frep));
	cert_report_free(rep);
	cert_report_free(frep);
	cert_store_unref(full);
	cert_store_unref(a);
	cert_store_unref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_list_equals_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unlisted_files_not_read, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bases_followed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_list_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_base_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_torn_list_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_half_pair_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_each, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path_in_list_full_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_key_beside_unlisted_cert_full_scan, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
