/*
 * fuzz_set: the index-set parser (certstore/cert_set.c): a load, and a
 * reload from a store of the same directory, read CERT_SET_FILE written
 * from the input, and the map that the health gate resolves names with
 * reads it too. The blob directory holds two real certificates (a.pem and a
 * pair b.crt + b.key, generated once), so that records naming them load and
 * others fail to open. A load either fails with a fatal message, or gives a
 * store whose every name is found again; the map resolves names to paths
 * under a directory.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certstore/cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root_[64], set_[96], blobs_[96];
static struct cert_opts opts_;
static struct cert_store *base_;

static void cleanup(void)
{
	char p[200];
	const char *f[] = {"a.pem", "b.crt", "b.key"};

	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", blobs_, f[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", set_, CERT_SET_FILE);
	unlink(p);
	rmdir(set_);
	rmdir(blobs_);
	rmdir(root_);
}

/* A self-signed P-256 certificate for name, as PEM into f (and its key
 * into kf, or into f as well when kf is NULL). */
static void make_cert(const char *name, FILE *f, FILE *kf)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	X509_NAME *n;

	if (k == NULL || c == NULL)
		abort();
	ASN1_INTEGER_set(X509_get_serialNumber(c), 1);
	X509_gmtime_adj(X509_getm_notBefore(c), 0);
	X509_gmtime_adj(X509_getm_notAfter(c), 86400L * 3650);
	X509_set_pubkey(c, k);
	n = X509_get_subject_name(c);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(c, n);
	X509_sign(c, k, EVP_sha256());
	PEM_write_X509(f, c);
	PEM_write_PrivateKey(kf != NULL ? kf : f, k, NULL, NULL, 0, NULL, NULL);
	X509_free(c);
	EVP_PKEY_free(k);
}

static FILE *open_blob(const char *name)
{
	char p[200];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", blobs_, name);
	f = fopen(p, "w");
	if (f == NULL)
		abort();
	return f;
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	struct cert_report *rep = NULL;
	FILE *a, *b, *k;

	snprintf(root_, sizeof(root_), "%s/fuzz_set.XXXXXX", base);
	if (mkdtemp(root_) == NULL)
		abort();
	snprintf(set_, sizeof(set_), "%s/set", root_);
	snprintf(blobs_, sizeof(blobs_), "%s/blobs", root_);
	if (mkdir(set_, 0700) != 0 || mkdir(blobs_, 0700) != 0)
		abort();
	atexit(cleanup);
	a = open_blob("a.pem");
	b = open_blob("b.crt");
	k = open_blob("b.key");
	make_cert("a.example", a, NULL);
	make_cert("b.example", b, k);
	fclose(a);
	fclose(b);
	fclose(k);
	cert_opts_defaults(&opts_);
	opts_.threads = 1;
	/* The previous store a reload starts from. */
	{
		char p[200];
		FILE *f;

		snprintf(p, sizeof(p), "%s/%s", set_, CERT_SET_FILE);
		f = fopen(p, "w");
		if (f == NULL)
			abort();
		fprintf(f, "%s ../blobs\na.pem a.pem\nb.crt b.crt\nb.key b.key\n", CERT_SET_MAGIC);
		fclose(f);
	}
	base_ = cert_store_load(set_, &opts_, &rep);
	if (base_ == NULL)
		abort();
	cert_report_free(rep);
}

static void check_store(const struct cert_store *st)
{
	for (size_t i = 0; i < cert_store_nnames(st); i++) {
		const char *n = cert_store_name_at(st, i);
		char q[300];

		snprintf(q, sizeof(q), "%s%s", n[0] == '*' ? "h" : "", n[0] == '*' ? n + 1 : n);
		if (cert_store_lookup(st, q, strlen(q), CERT_LOOKUP_ECDSA_OK, NULL) == NULL)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	struct cert_set_map *map = NULL;
	char p[200], err[600], out[400];
	FILE *f;

	if (!ready) {
		setup();
		ready = 1;
	}
	snprintf(p, sizeof(p), "%s/%s", set_, CERT_SET_FILE);
	f = fopen(p, "w");
	if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size))
		abort();
	fclose(f);
	(void)cert_dir_nfiles(set_);
	for (int reload = 0; reload < 2; reload++) {
		st = reload ? cert_store_reload(base_, set_, &opts_, &rep)
		            : cert_store_load(set_, &opts_, &rep);
		if (st == NULL) {
			if (cert_report_fatal(rep) == NULL)
				abort(); /* a failed load says why */
		} else {
			check_store(st);
			cert_store_unref(st);
		}
		cert_report_free(rep);
		rep = NULL;
	}
	if (cert_set_map_open(set_, &map, err, sizeof(err)) == 0 && map != NULL) {
		const char *names[] = {"a.pem", "b.crt", "b.key", "c.pem"};

		/* The path of a listed name ends in its blob, which holds
		 * no slash. */
		for (int i = 0; i < 4; i++)
			if (cert_set_map_path(map, set_, names[i], out, sizeof(out)) == 0 &&
			    strrchr(out, '/') == NULL)
				abort();
		cert_set_map_free(map);
	}
	return 0;
}
