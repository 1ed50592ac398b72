/*
 * certfile: reading a leaf certificate from a PEM file on disk, for the
 * gate's expected fingerprints and the expiry metric. Kept apart from the
 * gate so it can be unit-tested without a running instance.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "supervisor/sv.h"

void sv_gate_sni(const char *name, char *out, size_t outlen)
{
	if (name[0] == '*' && name[1] == '.')
		snprintf(out, outlen, "gate%s", name + 1);
	else
		snprintf(out, outlen, "%s", name);
}

int sv_gate_file_sha256(const char *path, unsigned char out[32], char *err, size_t errlen)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *x, *first = NULL, *leaf = NULL;
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len, rc = -1;

	if (bio == NULL) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	/* PEM_read_bio_X509 skips blocks of other types, so a key written
	 * before the certificates does not matter. The leaf is the first
	 * certificate that is not a CA; files list it first anyway. */
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (first == NULL) {
			first = x;
		} else if (leaf == NULL && X509_check_ca(first) != 0 && X509_check_ca(x) == 0) {
			leaf = x;
			break;
		} else {
			X509_free(x);
		}
		if (X509_check_ca(first) == 0)
			break;
	}
	ERR_clear_error();
	BIO_free(bio);
	if (first == NULL) {
		snprintf(err, errlen, "%s: no certificate in the file", path);
		return -1;
	}
	x = leaf != NULL ? leaf : first;
	len = i2d_X509(x, &der);
	if (len > 0 && EVP_Digest(der, (size_t)len, out, &mdlen, EVP_sha256(), NULL) == 1 &&
	    mdlen == 32)
		rc = 0;
	else
		snprintf(err, errlen, "%s: cannot encode the leaf certificate", path);
	OPENSSL_free(der);
	X509_free(first);
	X509_free(leaf);
	return rc;
}

time_t sv_file_not_after(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *x;
	struct tm tm;
	time_t t = 0;

	if (bio == NULL)
		return 0;
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x != NULL && ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
		t = timegm(&tm);
	X509_free(x);
	BIO_free(bio);
	ERR_clear_error();
	return t;
}
