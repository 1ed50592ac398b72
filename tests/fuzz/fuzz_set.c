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

#include "certstore/cert.h"
#include "tests/unit/certstore/cert_helpers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *root_;
static char set_[96], blobs_[96];
static struct cert_opts opts_;
static struct cert_store *base_;

static void cleanup(void)
{
	tc_rmdir(root_);
	free(root_);
}

static void setup(void)
{
	const char *a[1] = {"a.example"}, *b[1] = {"b.example"};
	struct cert_report *rep = NULL;
	EVP_PKEY *k = tc_key(0);
	X509 *c = tc_cert(k, b, 1, NULL, NULL, NULL, 0);
	char idx[200];

	root_ = tc_tmpdir();
	atexit(cleanup);
	snprintf(set_, sizeof(set_), "%s/set", root_);
	snprintf(blobs_, sizeof(blobs_), "%s/blobs", root_);
	if (mkdir(set_, 0700) != 0 || mkdir(blobs_, 0700) != 0)
		abort();
	/* A combined file and a pair: records naming them load. */
	tc_site(blobs_, "a.pem", a, 1, NULL);
	tc_pair(blobs_, "b", &c, 1, k, 0);
	X509_free(c);
	EVP_PKEY_free(k);
	cert_opts_defaults(&opts_);
	opts_.threads = 1;
	/* The previous store a reload starts from. */
	snprintf(idx, sizeof(idx), "%s ../blobs\na.pem a.pem\nb.crt b.crt\nb.key b.key\n",
	         CERT_SET_MAGIC);
	tc_write(set_, CERT_SET_FILE, idx, strlen(idx));
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
	char err[600], out[400];

	if (!ready) {
		setup();
		ready = 1;
	}
	tc_write(set_, CERT_SET_FILE, (const char *)data, size);
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
