/* Unit tests for the certificate store's SNI index: exact names, one-label
 * wildcards, case, trailing dots, bad names, duplicates and the default. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cmocka.h>

#include "certstore/cert.h"
#include "tests/unit/certstore/cert_helpers.h"

static char *dir;

static int setup(void **state)
{
	static const char *a[] = {"www.example.com", "Example.ORG"};
	static const char *w[] = {"*.example.com"};
	static const char *t[] = {"Trailing.Example.NET."};
	static const char *dup[] = {"dup.example.com"};
	static const char *dual[] = {"dual.example.com"};
	static const char *def[] = {"default.example"};
	static const char *deep[] = {"*.b.example.com"};
	struct tc_opts rsa = {.rsa = 1};
	struct tc_opts cn = {.cn = "CN-Only.Example.IO"};

	(void)state;
	dir = tc_tmpdir();
	tc_site(dir, "a.pem", a, 2, NULL);
	tc_site(dir, "w.pem", w, 1, NULL);
	tc_site(dir, "t.pem", t, 1, NULL);
	tc_site(dir, "cnonly.pem", NULL, 0, &cn);
	tc_site(dir, "z-dup.pem", dup, 1, NULL);
	tc_site(dir, "a-dup.pem", dup, 1, NULL);
	tc_site(dir, "dual-rsa.pem", dual, 1, &rsa);
	tc_site(dir, "dual-ec.pem", dual, 1, NULL);
	tc_site(dir, "default.pem", def, 1, NULL);
	tc_site(dir, "deep.pem", deep, 1, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tc_rmdir(dir);
	free(dir);
	return 0;
}

static struct cert_store *load(const char *def)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;

	cert_opts_defaults(&o);
	o.default_cert = def;
	st = cert_store_load(dir, &o, &rep);
	assert_non_null(st);
	assert_int_equal(cert_report_nskipped(rep), 0);
	cert_report_free(rep);
	return st;
}

/* The file serving name, "-" for none, "default" when the default answered. */
static const char *who(const struct cert_store *st, const char *name, unsigned flags)
{
	int def = -1;
	const struct cert_item *it =
	    cert_store_lookup(st, name, name != NULL ? strlen(name) : 0, flags, &def);

	if (it == NULL) {
		assert_int_equal(def, 0);
		return "-";
	}
	return def ? "default" : cert_item_file(it);
}

static void unlink_site(const char *d, const char *file)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", d, file);
	assert_int_equal(unlink(path), 0);
}

static void test_exact_and_case(void **state)
{
	struct cert_store *st = load(NULL);

	(void)state;
	assert_string_equal(who(st, "www.example.com", 1), "a.pem");
	assert_string_equal(who(st, "WWW.Example.COM", 1), "a.pem");
	assert_string_equal(who(st, "example.org", 1), "a.pem");
	assert_string_equal(who(st, "EXAMPLE.ORG", 1), "a.pem");
	/* One trailing dot is ignored, in the SNI and in the certificate. */
	assert_string_equal(who(st, "www.example.com.", 1), "a.pem");
	assert_string_equal(who(st, "trailing.example.net", 1), "t.pem");
	assert_string_equal(who(st, "trailing.example.net.", 1), "t.pem");
	assert_string_equal(who(st, "www.example.com..", 1), "-");
	/* The CN counts only without SANs. */
	assert_string_equal(who(st, "cn-only.example.io", 1), "cnonly.pem");
	/* The lookup uses len, not a terminator. */
	assert_ptr_equal(cert_store_lookup(st, "www.example.comXYZ", 15, 1, NULL),
	                 cert_store_lookup(st, "www.example.com", 15, 1, NULL));
	cert_store_unref(st);
}

static void test_wildcard_one_label(void **state)
{
	struct cert_store *st = load(NULL);

	(void)state;
	assert_string_equal(who(st, "x.example.com", 1), "w.pem");
	assert_string_equal(who(st, "X-Y.EXAMPLE.COM.", 1), "w.pem");
	/* Exactly one label: neither the bare parent nor two labels. */
	assert_string_equal(who(st, "example.com", 1), "-");
	assert_string_equal(who(st, "a.x.example.com", 1), "-");
	/* a.b.example.com is covered by *.b.example.com, not *.example.com. */
	assert_string_equal(who(st, "a.b.example.com", 1), "deep.pem");
	assert_string_equal(who(st, "a.c.b.example.com", 1), "-");
	/* An exact name beats a wildcard. */
	assert_string_equal(who(st, "www.example.com", 1), "a.pem");
	assert_string_equal(who(st, "dup.example.com", 1), "a-dup.pem");
	cert_store_unref(st);
}

static void test_bad_names(void **state)
{
	struct cert_store *st = load(NULL);
	char longname[300];

	(void)state;
	/* 254 characters: over the DNS limit of 253. */
	memset(longname, 'a', sizeof(longname));
	for (int i = 63; i < 254; i += 64)
		longname[i] = '.';
	longname[254] = '\0';
	assert_string_equal(who(st, longname, 1), "-");
	assert_string_equal(who(st, "", 1), "-");
	assert_string_equal(who(st, ".", 1), "-");
	assert_string_equal(who(st, "a..example.com", 1), "-");
	assert_string_equal(who(st, ".example.com", 1), "-");
	assert_string_equal(who(st, "www.exa mple.com", 1), "-");
	assert_string_equal(who(st, NULL, 1), "-");
	/* A label over 63 characters. */
	memset(longname, 'b', 64);
	strcpy(longname + 64, ".example.com");
	assert_string_equal(who(st, longname, 1), "-");
	cert_store_unref(st);
}

static void test_default(void **state)
{
	struct cert_store *st = load("default.pem");

	(void)state;
	assert_string_equal(who(st, "unknown.test", 1), "default");
	assert_string_equal(who(st, NULL, 1), "default");
	assert_string_equal(who(st, "a.x.example.com", 1), "default");
	assert_string_equal(who(st, "www.example.com", 1), "a.pem");
	/* The default certificate's own name is an ordinary match. */
	assert_string_equal(who(st, "default.example", 1), "default.pem");
	{
		int def = 0;
		const struct cert_item *it = cert_store_lookup(st, "nope", 4, 1, &def);

		assert_non_null(it);
		assert_int_equal(def, 1);
		assert_string_equal(cert_item_file(it), "default.pem");
	}
	cert_store_unref(st);
}

static void test_no_default(void **state)
{
	struct cert_store *st = load(NULL);
	struct cert_opts o;
	struct cert_report *rep = NULL;
	int found = 0;

	(void)state;
	assert_string_equal(who(st, "unknown.test", 1), "-");
	cert_store_unref(st);
	/* A configured default that does not exist is reported. */
	cert_opts_defaults(&o);
	o.default_cert = "missing.pem";
	st = cert_store_load(dir, &o, &rep);
	assert_non_null(st);
	assert_string_equal(who(st, "unknown.test", 1), "-");
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *msg;
		const char *f = cert_report_entry(rep, i, &sev, &msg);

		if (strcmp(f, "missing.pem") == 0) {
			found = 1;
			assert_int_equal(sev, CERT_SKIP);
			assert_non_null(strstr(msg, "default certificate"));
		}
	}
	assert_true(found);
	cert_report_free(rep);
	cert_store_unref(st);
}

static void test_duplicates_and_dual(void **state)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	int seen = 0;

	(void)state;
	cert_opts_defaults(&o);
	st = cert_store_load(dir, &o, &rep);
	assert_non_null(st);
	/* The smallest file name wins, and the loser is warned about. */
	assert_string_equal(who(st, "dup.example.com", 1), "a-dup.pem");
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *msg;
		const char *f = cert_report_entry(rep, i, &sev, &msg);

		if (strcmp(f, "z-dup.pem") == 0) {
			seen = 1;
			assert_int_equal(sev, CERT_WARN);
			assert_non_null(strstr(msg, "dup.example.com"));
			assert_non_null(strstr(msg, "a-dup.pem"));
		}
		if (strcmp(f, "a-dup.pem") == 0)
			assert_null(msg);
	}
	assert_true(seen);
	/* RSA and ECDSA for the same name are not duplicates. */
	assert_string_equal(who(st, "dual.example.com", CERT_LOOKUP_ECDSA_OK), "dual-ec.pem");
	assert_string_equal(who(st, "dual.example.com", 0), "dual-rsa.pem");
	assert_int_equal(cert_report_nwarned(rep), 1);
	cert_report_free(rep);
	cert_store_unref(st);
}

static void test_name_listing(void **state)
{
	struct cert_store *st = load(NULL);
	size_t n = cert_store_nnames(st);

	(void)state;
	/* www, example.org, *.example.com, trailing, cn-only, dup, dual,
	 * default, *.b.example.com */
	assert_int_equal(n, 9);
	assert_int_equal(cert_store_nitems(st), 10);
	for (size_t i = 1; i < n; i++)
		assert_true(strcmp(cert_store_name_at(st, i - 1), cert_store_name_at(st, i)) < 0);
	assert_null(cert_store_name_at(st, n));
	assert_int_equal(cert_store_generation(st), 1);
	cert_store_unref(st);
}

/*
 * Regression for a full wildcard table: the table used to be sized from a
 * quarter of all names, so a set where wildcards are more than that left
 * no empty slot, and every probe for an unknown name (any SNI nobody
 * covers) looped forever. An alarm turns a hang into a failure.
 */
static struct cert_store *load_dir(const char *d)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;

	cert_opts_defaults(&o);
	st = cert_store_load(d, &o, &rep);
	assert_non_null(st);
	assert_int_equal(cert_report_nskipped(rep), 0);
	cert_report_free(rep);
	return st;
}

/* n wildcard-only certificates (SAN *.tenantI.example only) into d. */
static void wild_only(const char *d, int from, int n)
{
	char nm[64], file[64];

	for (int i = from; i < from + n; i++) {
		const char *names[1] = {nm};

		snprintf(nm, sizeof(nm), "*.tenant%d.example", i);
		snprintf(file, sizeof(file), "wild%04d.pem", i);
		tc_site(d, file, names, 1, NULL);
	}
}

static void expect_tenants(const struct cert_store *st, int from, int n)
{
	char q[64], file[64];

	for (int i = from; i < from + n; i++) {
		const struct cert_item *it;

		snprintf(q, sizeof(q), "www.tenant%d.example", i);
		snprintf(file, sizeof(file), "wild%04d.pem", i);
		it = cert_store_lookup(st, q, strlen(q), 1, NULL);
		assert_non_null(it);
		assert_string_equal(cert_item_file(it), file);
	}
}

static void test_wildcard_heavy_sets(void **state)
{
	static const int sizes[] = {16, 1000};
	char *d = tc_tmpdir();

	(void)state;
	alarm(60);
	tc_site(d, "site1.pem", (const char *[]){"site1.example"}, 1, NULL);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		struct cert_store *st;

		wild_only(d, k == 0 ? 0 : sizes[k - 1], sizes[k] - (k == 0 ? 0 : sizes[k - 1]));
		st = load_dir(d);
		assert_int_equal(cert_store_nnames(st), (size_t)sizes[k] + 1);
		expect_tenants(st, 0, sizes[k]);
		assert_string_equal(who(st, "site1.example", 1), "site1.pem");
		assert_string_equal(who(st, "x.unknown.example", 1), "-");
		assert_string_equal(who(st, "unknown", 1), "-");
		assert_string_equal(who(st, "a.b.tenant1.example", 1), "-");
		cert_store_unref(st);
	}
	/* Only wildcards: no exact name at all. */
	unlink_site(d, "site1.pem");
	{
		struct cert_store *st = load_dir(d);

		assert_string_equal(who(st, "x.unknown.example", 1), "-");
		assert_string_equal(who(st, "tenant5.example", 1), "-");
		expect_tenants(st, 990, 10);
		cert_store_unref(st);
	}
	alarm(0);
	tc_rmdir(d);
	free(d);
}

/* A delta reload that adds many names grows the tables it patches instead
 * of filling them, and gives exactly what a full build gives. */
static void test_delta_grows_tables(void **state)
{
	char *d = tc_tmpdir(), nm[64], file[64];
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *cur, *n, *fresh;

	(void)state;
	alarm(60);
	cert_opts_defaults(&o);
	tc_site(d, "site1.pem", (const char *[]){"site1.example"}, 1, NULL);
	wild_only(d, 0, 3);
	cur = load_dir(d);
	for (int round = 0; round < 3; round++) {
		/* 40 wildcard-only and 40 exact files: past every table's cap. */
		wild_only(d, 3 + round * 40, 40);
		for (int i = 0; i < 40; i++) {
			const char *names[1] = {nm};

			snprintf(nm, sizeof(nm), "exact%d.example", round * 40 + i);
			snprintf(file, sizeof(file), "exact%04d.pem", round * 40 + i);
			tc_site(d, file, names, 1, NULL);
		}
		n = cert_store_reload(cur, d, &o, &rep);
		assert_non_null(n);
		assert_int_equal(cert_report_nchanged(rep), 80);
		cert_report_free(rep);
		fresh = load_dir(d);
		tc_same_lookups(n, fresh);
		assert_string_equal(who(n, "x.unknown.example", 1), "-");
		cert_store_unref(fresh);
		cert_store_unref(cur);
		cur = n;
	}
	/* And removals from the grown tables. */
	for (int i = 0; i < 100; i++) {
		snprintf(file, sizeof(file), "wild%04d.pem", i);
		unlink_site(d, file);
	}
	n = cert_store_reload(cur, d, &o, &rep);
	assert_non_null(n);
	cert_report_free(rep);
	fresh = load_dir(d);
	tc_same_lookups(n, fresh);
	expect_tenants(n, 100, 23);
	assert_string_equal(who(n, "www.tenant5.example", 1), "-");
	cert_store_unref(fresh);
	cert_store_unref(cur);
	cert_store_unref(n);
	alarm(0);
	tc_rmdir(d);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_and_case),     cmocka_unit_test(test_wildcard_one_label),
	    cmocka_unit_test(test_bad_names),          cmocka_unit_test(test_default),
	    cmocka_unit_test(test_no_default),         cmocka_unit_test(test_duplicates_and_dual),
	    cmocka_unit_test(test_name_listing),       cmocka_unit_test(test_wildcard_heavy_sets),
	    cmocka_unit_test(test_delta_grows_tables),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
