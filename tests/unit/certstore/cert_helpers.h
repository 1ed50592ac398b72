/*
 * Test helpers for the certificate store tests: make keys and certificates
 * with the OpenSSL API and write them as PEM files into a temporary
 * directory. Included by test_cert_*.c and the certificate fuzz targets
 * (static functions).
 */
#ifndef SY_TEST_CERT_HELPERS_H
#define SY_TEST_CERT_HELPERS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct tc_opts {
	int rsa;         /* RSA-2048 instead of P-256 */
	long from, to;   /* validity offsets from now in seconds (default -1d..+1y) */
	int traditional; /* "BEGIN EC/RSA PRIVATE KEY" instead of PKCS#8 */
	const char *cn;  /* subject CN (default: first SAN or "test") */
};

static __attribute__((unused)) EVP_PKEY *tc_key(int rsa)
{
	static EVP_PKEY *ec_cache, *rsa_cache;
	EVP_PKEY **c = rsa ? &rsa_cache : &ec_cache;

	/* Keys are expensive (RSA especially) and only their pairing matters
	 * here, so tests reuse one per type unless they ask for a fresh one. */
	if (*c == NULL)
		*c = rsa ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)
		         : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	EVP_PKEY_up_ref(*c);
	return *c;
}

static __attribute__((unused)) EVP_PKEY *tc_fresh_key(void)
{
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

/* Makes a certificate for key, signed by ikey/issuer (NULL: self-signed). */
static __attribute__((unused)) X509 *tc_cert(EVP_PKEY *key, const char *const *sans, int nsans,
                                             const struct tc_opts *o, X509 *issuer, EVP_PKEY *ikey,
                                             int ca)
{
	X509 *c = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509V3_CTX v3;
	char buf[2048] = "";
	const char *cn = o != NULL && o->cn != NULL ? o->cn : nsans > 0 ? sans[0] : "test";
	long from = o != NULL && (o->from || o->to) ? o->from : -86400;
	long to = o != NULL && (o->from || o->to) ? o->to : 365L * 86400;
	static long serial = 1;

	X509_set_version(c, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(c), serial++);
	X509_gmtime_adj(X509_getm_notBefore(c), from);
	X509_gmtime_adj(X509_getm_notAfter(c), to);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, n);
	X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : n);
	X509_NAME_free(n);
	X509_set_pubkey(c, key);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : c, c, NULL, NULL, 0);
	if (ca) {
		X509_EXTENSION *e =
		    X509V3_EXT_nconf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(c, e, -1);
		X509_EXTENSION_free(e);
	}
	for (int i = 0; i < nsans; i++) {
		strcat(buf, i ? ",DNS:" : "DNS:");
		strcat(buf, sans[i]);
	}
	if (nsans > 0) {
		X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, buf);
		X509_add_ext(c, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(c, ikey != NULL ? ikey : key, EVP_sha256());
	return c;
}

static __attribute__((unused)) void tc_write(const char *dir, const char *file, const char *data,
                                             size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "wb");
	if (f == NULL)
		abort();
	if (len > 0 && fwrite(data, 1, len, f) != len)
		abort();
	fclose(f);
}

/* Appends PEM of certs and key (either may be NULL) to a memory BIO. */
static __attribute__((unused)) void tc_pem(BIO *b, X509 *const *certs, int ncerts, EVP_PKEY *key,
                                           int traditional)
{
	for (int i = 0; i < ncerts; i++)
		PEM_write_bio_X509(b, certs[i]);
	if (key != NULL) {
		if (traditional)
			PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL);
		else
			PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
	}
}

static __attribute__((unused)) void tc_write_bio(const char *dir, const char *file, BIO *b)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);

	tc_write(dir, file, p, (size_t)n);
}

/* Writes NAME.crt (certs) and NAME.key (key; traditional or PKCS#8). */
static __attribute__((unused)) void tc_pair(const char *dir, const char *name, X509 *const *certs,
                                            int ncerts, EVP_PKEY *key, int traditional)
{
	char file[256];
	BIO *b = BIO_new(BIO_s_mem());

	tc_pem(b, certs, ncerts, NULL, 0);
	snprintf(file, sizeof(file), "%s.crt", name);
	tc_write_bio(dir, file, b);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	tc_pem(b, NULL, 0, key, traditional);
	snprintf(file, sizeof(file), "%s.key", name);
	tc_write_bio(dir, file, b);
	BIO_free(b);
}

/* Writes a combined PEM (leaf + key) for sans; returns 0. */
static __attribute__((unused)) int tc_site(const char *dir, const char *file,
                                           const char *const *sans, int nsans,
                                           const struct tc_opts *o)
{
	EVP_PKEY *k = tc_key(o != NULL && o->rsa);
	X509 *c = tc_cert(k, sans, nsans, o, NULL, NULL, 0);
	BIO *b = BIO_new(BIO_s_mem());

	tc_pem(b, &c, 1, k, o != NULL && o->traditional);
	tc_write_bio(dir, file, b);
	BIO_free(b);
	X509_free(c);
	EVP_PKEY_free(k);
	return 0;
}

static __attribute__((unused)) char *tc_tmpdir(void)
{
	char *d = strdup("/tmp/sy-certtest.XXXXXX");

	if (d == NULL || mkdtemp(d) == NULL)
		abort();
	return d;
}

static __attribute__((unused)) void tc_rmdir(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

#ifdef CMOCKA_H_
/* Every name of either store resolves to the same file in both (cmocka
 * asserts: only where this header is included after cmocka.h; the fuzz
 * targets use the rest without cmocka). */
static __attribute__((unused)) void tc_same_lookups(const struct cert_store *a,
                                                    const struct cert_store *b)
{
	const struct cert_store *st[2] = {a, b};

	assert_int_equal(cert_store_nnames(a), cert_store_nnames(b));
	assert_int_equal(cert_store_nitems(a), cert_store_nitems(b));
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < cert_store_nnames(st[s]); i++) {
			const char *n = cert_store_name_at(st[s], i);
			char q[300];

			/* A wildcard is probed with a host under it. */
			snprintf(q, sizeof(q), "%s%s", n[0] == '*' ? "h" : "",
			         n[0] == '*' ? n + 1 : n);
			for (unsigned fl = 0; fl < 2; fl++) {
				const struct cert_item *x =
				    cert_store_lookup(a, q, strlen(q), fl, NULL);
				const struct cert_item *y =
				    cert_store_lookup(b, q, strlen(q), fl, NULL);

				assert_true((x == NULL) == (y == NULL));
				if (x != NULL)
					assert_string_equal(cert_item_file(x), cert_item_file(y));
			}
			assert_string_equal(cert_store_name_at(a, i), cert_store_name_at(b, i));
		}
}
#endif

#endif
