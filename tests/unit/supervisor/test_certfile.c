/* Unit tests for supervisor/certfile.c: the gate's expected fingerprint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "supervisor/sv.h"

static EVP_PKEY *key;

static X509 *make_cert(const char *cn, int ca, long days)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX ctx;

	ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), days * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
	                          ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	X509_sign(x, key, EVP_sha256());
	return x;
}

static void sha_of(X509 *x, unsigned char out[32])
{
	unsigned char *der = NULL;
	unsigned int n = 0;
	int len = i2d_X509(x, &der);

	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, out, &n, EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
}

/* Key first, then the chain cert, then the leaf: the leaf must still be
 * the one picked (first non-CA certificate). */
static void test_leaf_found_anywhere(void **state)
{
	char path[] = "/tmp/sv-certfile.XXXXXX", err[256];
	unsigned char want[32], got[32];
	X509 *ca = make_cert("ca", 1, 100), *leaf = make_cert("site.test", 0, 30);
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	PEM_write_X509(f, ca);
	PEM_write_X509(f, leaf);
	fclose(f);
	sha_of(leaf, want);
	assert_int_equal(sv_gate_file_sha256(path, got, err, sizeof(err)), 0);
	assert_memory_equal(want, got, 32);
	/* The expiry reader takes the first certificate of the file. */
	assert_true(sv_file_not_after(path) > time(NULL) + 99 * 86400);
	unlink(path);
	X509_free(ca);
	X509_free(leaf);
}

static void test_missing_and_empty(void **state)
{
	char path[] = "/tmp/sv-certfile.XXXXXX", err[256];
	unsigned char got[32];
	int fd;

	(void)state;
	assert_int_equal(sv_gate_file_sha256("/nonexistent/x.pem", got, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/x.pem"));
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage\n", 8), 8);
	close(fd);
	assert_int_equal(sv_gate_file_sha256(path, got, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no certificate"));
	assert_int_equal(sv_file_not_after(path), 0);
	unlink(path);
}

static void test_sni_for_wildcards(void **state)
{
	char out[64];

	(void)state;
	sv_gate_sni("*.example.test", out, sizeof(out));
	assert_string_equal(out, "gate.example.test");
	sv_gate_sni("www.example.test", out, sizeof(out));
	assert_string_equal(out, "www.example.test");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_leaf_found_anywhere),
	    cmocka_unit_test(test_missing_and_empty),
	    cmocka_unit_test(test_sni_for_wildcards),
	};
	int rc;

	key = EVP_EC_gen("P-256");
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	EVP_PKEY_free(key);
	return rc;
}
