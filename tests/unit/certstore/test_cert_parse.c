/* Unit tests for certificate file parsing and validation (every bad input
 * gets a message naming the file and the problem, and never stops the rest),
 * delta reloads, and the published slot. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/time.h>

#include <cmocka.h>

#include "certstore/cert.h"
#include "tests/unit/certstore/cert_helpers.h"

static char *dir, *outside;

/* The report entry for file, or fails the test. */
static enum cert_sev entry(const struct cert_report *rep, const char *file, const char **msg)
{
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *f = cert_report_entry(rep, i, &sev, msg);

		if (strcmp(f, file) == 0)
			return sev;
	}
	fail_msg("no report entry for %s", file);
	return CERT_OK;
}

static void expect(const struct cert_report *rep, const char *file, enum cert_sev sev,
                   const char *needle)
{
	const char *msg = NULL;
	enum cert_sev got = entry(rep, file, &msg);

	if (got != sev || (needle == NULL && msg != NULL) ||
	    (needle != NULL && (msg == NULL || strstr(msg, needle) == NULL)))
		fail_msg("%s: expected severity %d with '%s', got %d: %s", file, sev,
		         needle ? needle : "(no message)", got, msg ? msg : "(none)");
}

static void write_str(const char *file, const char *s)
{
	tc_write(dir, file, s, strlen(s));
}

static int setup(void **state)
{
	static const char *one[] = {"one.example"};
	EVP_PKEY *k = tc_key(0), *other = tc_fresh_key(), *cakey = tc_fresh_key();
	struct tc_opts o = {0};
	X509 *leaf, *leaf2, *leaf3, *ca, *unrelated, *certs[3];
	BIO *b;
	char *p, path[4200];
	long n;

	(void)state;
	dir = tc_tmpdir();
	outside = tc_tmpdir();

	/* Good files in all four key encodings, and a pair. */
	tc_site(dir, "ec-p8.pem", (const char *[]){"ec-p8.example"}, 1, NULL);
	o.traditional = 1;
	tc_site(dir, "ec-trad.pem", (const char *[]){"ec-trad.example"}, 1, &o);
	o.rsa = 1;
	tc_site(dir, "rsa-trad.pem", (const char *[]){"rsa-trad.example"}, 1, &o);
	o.traditional = 0;
	tc_site(dir, "rsa-p8.pem", (const char *[]){"rsa-p8.example"}, 1, &o);

	ca = tc_cert(cakey, NULL, 0, &(struct tc_opts){.cn = "Test CA"}, NULL, NULL, 1);
	leaf = tc_cert(k, one, 1, NULL, ca, cakey, 0);
	leaf2 = tc_cert(k, (const char *[]){"kf.example"}, 1, NULL, ca, cakey, 0);
	leaf3 = tc_cert(k, (const char *[]){"cw.example"}, 1, NULL, ca, cakey, 0);
	unrelated = tc_cert(other, NULL, 0, &(struct tc_opts){.cn = "Unrelated"}, NULL, NULL, 1);

	/* pair.crt (leaf + CA) + pair.key */
	certs[0] = leaf;
	certs[1] = ca;
	tc_pair(dir, "pair", certs, 2, k, 1);
	/* Key first, then leaf and chain: fine. */
	b = BIO_new(BIO_s_mem());
	certs[0] = leaf2;
	tc_pem(b, NULL, 0, k, 0);
	tc_pem(b, certs, 2, NULL, 0);
	tc_write_bio(dir, "keyfirst.pem", b);
	BIO_free(b);

	/* chain in the wrong order: CA first, then the leaf. */
	b = BIO_new(BIO_s_mem());
	certs[0] = ca;
	certs[1] = leaf;
	tc_pem(b, certs, 2, k, 0);
	tc_write_bio(dir, "order.pem", b);
	BIO_free(b);
	/* leaf followed by a certificate that did not issue it: a warning. */
	b = BIO_new(BIO_s_mem());
	certs[0] = leaf3;
	certs[1] = unrelated;
	tc_pem(b, certs, 2, k, 0);
	tc_write_bio(dir, "chainwarn.pem", b);
	BIO_free(b);
	/* key of another certificate */
	b = BIO_new(BIO_s_mem());
	tc_pem(b, &leaf, 1, other, 0);
	tc_write_bio(dir, "mismatch.pem", b);
	BIO_free(b);
	/* missing key, missing cert */
	b = BIO_new(BIO_s_mem());
	tc_pem(b, &leaf, 1, NULL, 0);
	tc_write_bio(dir, "nokey.pem", b);
	tc_write_bio(dir, "nokey-pair.crt", b); /* no nokey-pair.key */
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	tc_pem(b, NULL, 0, k, 0);
	tc_write_bio(dir, "nocert.pem", b);
	BIO_free(b);
	/* encrypted keys: PKCS#8 and traditional (Proc-Type header) */
	b = BIO_new(BIO_s_mem());
	tc_pem(b, &leaf, 1, NULL, 0);
	PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_128_cbc(), NULL, 0, NULL, (void *)"secret");
	tc_write_bio(dir, "enc-p8.pem", b);
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	tc_pem(b, &leaf, 1, NULL, 0);
	PEM_write_bio_PrivateKey_traditional(b, k, EVP_aes_128_cbc(), NULL, 0, NULL,
	                                     (void *)"secret");
	tc_write_bio(dir, "enc-trad.pem", b);
	BIO_free(b);
	/* truncated: a good file cut in the middle of the certificate */
	b = BIO_new(BIO_s_mem());
	tc_pem(b, &leaf, 1, k, 0);
	n = BIO_get_mem_data(b, &p);
	tc_write(dir, "trunc.pem", p, (size_t)n / 4);
	/* corrupt base64 and corrupt DER inside well-formed PEM */
	write_str("badb64.pem",
	          "-----BEGIN CERTIFICATE-----\nMIIB$$$$\n-----END CERTIFICATE-----\n");
	write_str("badder.pem",
	          "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n-----END CERTIFICATE-----\n");
	/* mismatched END label */
	write_str("spliced.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n");
	/* over the size limit (the test sets 8 KiB) */
	{
		char *big = malloc(9000);

		memset(big, '#', 9000);
		memcpy(big, p, (size_t)n);
		tc_write(dir, "big.pem", big, 9000);
		free(big);
	}
	BIO_free(b);
	tc_write(dir, "empty.pem", "", 0);
	tc_write(dir, "garbage.pem", "\x30\x82\x01\x00\x00\xff\xfe\x01binary", 14);
	write_str("text.pem", "just some text\n");
	/* validity */
	tc_site(dir, "expired.pem", (const char *[]){"expired.example"}, 1,
	        &(struct tc_opts){.from = -10 * 86400, .to = -86400});
	tc_site(dir, "future.pem", (const char *[]){"future.example"}, 1,
	        &(struct tc_opts){.from = 86400, .to = 10 * 86400});
	/* directory entries that are not certificate files */
	snprintf(path, sizeof(path), "%s/sub", dir);
	mkdir(path, 0755);
	write_str("README.txt", "not a cert\n");
	write_str("lonely.key", "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n");
	write_str(".hidden.pem", "dotfiles are skipped silently\n");
	/* symlinks: one inside the directory, one escaping it */
	tc_site(outside, "secret.pem", (const char *[]){"secret.example"}, 1, NULL);
	snprintf(path, sizeof(path), "%s/link-in.pem", dir);
	if (symlink("ec-p8.pem", path) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/link-out.pem", dir);
	{
		char target[4200];

		snprintf(target, sizeof(target), "%s/secret.pem", outside);
		if (symlink(target, path) < 0)
			return -1;
	}
	X509_free(leaf);
	X509_free(leaf2);
	X509_free(leaf3);
	X509_free(ca);
	X509_free(unrelated);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
	EVP_PKEY_free(cakey);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tc_rmdir(dir);
	tc_rmdir(outside);
	free(dir);
	free(outside);
	return 0;
}

static void test_every_bad_input(void **state)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	size_t progress = 0;

	(void)state;
	cert_opts_defaults(&o);
	o.max_file_size = 8192;
	o.threads = 2;
	o.progress = &progress;
	st = cert_store_load(dir, &o, &rep);
	assert_non_null(st);
	assert_null(cert_report_fatal(rep));
	/* Every certificate file counts once in the progress, good or bad. */
	assert_int_equal(progress, cert_report_nfiles(rep));

	expect(rep, "ec-p8.pem", CERT_OK, NULL);
	expect(rep, "ec-trad.pem", CERT_OK, NULL);
	expect(rep, "rsa-p8.pem", CERT_OK, NULL);
	expect(rep, "rsa-trad.pem", CERT_OK, NULL);
	expect(rep, "pair.crt", CERT_OK, NULL);
	expect(rep, "keyfirst.pem", CERT_OK, NULL);
	/* A symlink inside the directory loads (and duplicates its target). */
	expect(rep, "link-in.pem", CERT_WARN, "also claimed by ec-p8.pem");

	expect(rep, "order.pem", CERT_SKIP, "leaf certificate must come first");
	expect(rep, "chainwarn.pem", CERT_WARN, "chain order");
	expect(rep, "mismatch.pem", CERT_SKIP, "does not match");
	expect(rep, "nokey.pem", CERT_SKIP, "no private key");
	expect(rep, "nokey-pair.crt", CERT_SKIP, "no private key");
	expect(rep, "nocert.pem", CERT_SKIP, "no certificate");
	expect(rep, "enc-p8.pem", CERT_SKIP, "encrypted");
	expect(rep, "enc-trad.pem", CERT_SKIP, "encrypted");
	expect(rep, "trunc.pem", CERT_SKIP, "truncated");
	expect(rep, "badb64.pem", CERT_SKIP, "invalid base64");
	expect(rep, "badder.pem", CERT_SKIP, "invalid DER");
	expect(rep, "spliced.pem", CERT_SKIP, "not closed");
	expect(rep, "big.pem", CERT_SKIP, "over the limit");
	expect(rep, "empty.pem", CERT_SKIP, "empty file");
	expect(rep, "garbage.pem", CERT_SKIP, "binary data");
	expect(rep, "text.pem", CERT_SKIP, "no PEM block");
	expect(rep, "expired.pem", CERT_WARN, "expired on");
	expect(rep, "future.pem", CERT_WARN, "not valid before");
	expect(rep, "sub", CERT_WARN, "directory");
	expect(rep, "README.txt", CERT_WARN, "ignored");
	expect(rep, "lonely.key", CERT_WARN, "without a matching");
	expect(rep, "link-out.pem", CERT_SKIP, "outside the certificate directory");
	for (size_t i = 0; i < cert_report_nentries(rep); i++)
		assert_true(strcmp(cert_report_entry(rep, i, NULL, NULL), ".hidden.pem") != 0);

	/* Every good file loaded despite the bad ones. */
	assert_int_equal(cert_report_nloaded(rep), 10);
	assert_int_equal(cert_report_nwarned(rep), 4);
	assert_int_equal(cert_report_nskipped(rep), 16);
	assert_int_equal(cert_report_nignored(rep), 3);
	assert_int_equal(cert_report_nfiles(rep), 26);
	assert_true(cert_report_soonest_expiry(rep) < time(NULL));
	/* The pair serves its name and chain. */
	{
		const struct cert_item *it = cert_store_lookup(st, "one.example", 11, 1, NULL);

		assert_non_null(it);
		assert_string_equal(cert_item_file(it), "pair.crt");
		it = cert_store_lookup(st, "kf.example", 10, 1, NULL);
		assert_non_null(it);
		assert_string_equal(cert_item_file(it), "keyfirst.pem");
	}
	cert_report_free(rep);
	cert_store_unref(st);

	/* Expired certificates are skipped when configured so. */
	o.expired = CFG_EXPIRED_SKIP;
	st = cert_store_load(dir, &o, &rep);
	expect(rep, "expired.pem", CERT_SKIP, "expired on");
	assert_null(cert_store_lookup(st, "expired.example", 15, 1, NULL));
	cert_report_free(rep);
	cert_store_unref(st);

	/* A missing directory is the only fatal error. */
	assert_null(cert_store_load("/nonexistent/certs", &o, &rep));
	assert_non_null(strstr(cert_report_fatal(rep), "/nonexistent/certs"));
	cert_report_free(rep);
}

/*
 * Found by tests/fuzz/fuzz_cert: a certificate whose public key carries the
 * right point but not the key's named curve (here the curve OID's tag
 * turned into OBJECT DESCRIPTOR) passed the key match, which compared only
 * the algorithm and the point bytes. `certs check` said OK, yet OpenSSL
 * cannot decode that public key, so every handshake for its names failed.
 */
static void test_spki_curve_mismatch(void **state)
{
	static const char *names[] = {"curve.example"};
	static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
	                                     0xce, 0x3d, 0x03, 0x01, 0x07};
	EVP_PKEY *k = tc_key(0);
	X509 *leaf = tc_cert(k, names, 1, NULL, NULL, NULL, 0);
	unsigned char *der = NULL, *at;
	int len = i2d_X509(leaf, &der);
	char *d = tc_tmpdir();
	BIO *b = BIO_new(BIO_s_mem());
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	const char *msg = NULL;

	(void)state;
	assert_true(len > 0);
	at = memmem(der, (size_t)len, p256, sizeof(p256));
	assert_non_null(at);
	at[0] = 0x07;
	assert_true(PEM_write_bio(b, "CERTIFICATE", "", der, len) > 0);
	tc_pem(b, NULL, 0, k, 0);
	tc_write_bio(d, "curve.pem", b);
	cert_opts_defaults(&o);
	st = cert_store_load(d, &o, &rep);
	assert_non_null(st);
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev;
		const char *f = cert_report_entry(rep, i, &sev, &msg);

		if (strcmp(f, "curve.pem") == 0) {
			assert_int_equal(sev, CERT_SKIP);
			assert_non_null(msg);
			assert_non_null(strstr(msg, "does not match"));
		}
	}
	assert_null(cert_store_lookup(st, "curve.example", 13, 1, NULL));
	assert_int_equal(cert_report_nloaded(rep), 0);
	cert_report_free(rep);
	cert_store_unref(st);
	BIO_free(b);
	OPENSSL_free(der);
	X509_free(leaf);
	EVP_PKEY_free(k);
	tc_rmdir(d);
	free(d);
}

static void test_item_serves(void **state)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = SSL_new(ctx);
	const char *names[] = {"ec-p8.example", "ec-trad.example", "rsa-p8.example",
	                       "rsa-trad.example", "one.example"};

	(void)state;
	cert_opts_defaults(&o);
	st = cert_store_load(dir, &o, &rep);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const struct cert_item *it =
		    cert_store_lookup(st, names[i], strlen(names[i]), 1, NULL);

		assert_non_null(it);
		assert_int_equal(cert_item_use(it, ssl), 0);
		assert_true(SSL_check_private_key(ssl) == 1);
		assert_true(cert_item_not_after(it) > time(NULL));
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	cert_report_free(rep);
	cert_store_unref(st);
}

static int has_changed(const struct cert_report *rep, const char *name)
{
	for (size_t i = 0; i < cert_report_nchanged(rep); i++)
		if (strcmp(cert_report_changed(rep, i), name) == 0)
			return 1;
	return 0;
}

static void test_delta_reload(void **state)
{
	char *d = tc_tmpdir(), path[4200];
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *s1, *s2, *s3;
	const struct cert_item *a1, *b1;

	(void)state;
	cert_opts_defaults(&o);
	tc_site(d, "a.pem", (const char *[]){"a.example"}, 1, NULL);
	tc_site(d, "b.pem", (const char *[]){"b.example"}, 1, NULL);
	tc_site(d, "c.pem", (const char *[]){"c.example"}, 1, NULL);
	s1 = cert_store_load(d, &o, &rep);
	cert_report_free(rep);
	a1 = cert_store_lookup(s1, "a.example", 9, 1, NULL);
	b1 = cert_store_lookup(s1, "b.example", 9, 1, NULL);

	/* Nothing changed: every item is shared, nothing reported. */
	s2 = cert_store_reload(s1, d, &o, &rep);
	assert_non_null(s2);
	assert_int_equal(cert_store_generation(s2), 2);
	assert_int_equal(cert_report_nchanged(rep), 0);
	assert_ptr_equal(cert_store_lookup(s2, "a.example", 9, 1, NULL), a1);
	cert_report_free(rep);

	/* Touched but identical bytes: confirmed by hash, still shared. */
	snprintf(path, sizeof(path), "%s/a.pem", d);
	assert_int_equal(utimes(path, (struct timeval[]){{1000, 0}, {1000, 0}}), 0);
	/* Changed: b.pem gets a new certificate; c.pem goes; d.pem arrives. */
	tc_site(d, "b.pem", (const char *[]){"b.example", "b2.example"}, 2,
	        &(struct tc_opts){.cn = "new"});
	snprintf(path, sizeof(path), "%s/c.pem", d);
	unlink(path);
	tc_site(d, "d.pem", (const char *[]){"d.example"}, 1, NULL);
	s3 = cert_store_reload(s2, d, &o, &rep);
	assert_non_null(s3);
	assert_int_equal(cert_store_generation(s3), 3);
	assert_ptr_equal(cert_store_lookup(s3, "a.example", 9, 1, NULL), a1);
	assert_ptr_not_equal(cert_store_lookup(s3, "b.example", 9, 1, NULL), b1);
	assert_non_null(cert_store_lookup(s3, "b2.example", 10, 1, NULL));
	assert_null(cert_store_lookup(s3, "c.example", 9, 1, NULL));
	assert_int_equal(cert_report_nchanged(rep), 4);
	assert_true(has_changed(rep, "b.example"));
	assert_true(has_changed(rep, "b2.example"));
	assert_true(has_changed(rep, "c.example"));
	assert_true(has_changed(rep, "d.example"));
	assert_false(has_changed(rep, "a.example"));
	cert_report_free(rep);

	/* The old stores stay intact while referenced. */
	assert_ptr_equal(cert_store_lookup(s1, "b.example", 9, 1, NULL), b1);
	assert_non_null(cert_store_lookup(s1, "c.example", 9, 1, NULL));
	cert_store_unref(s1);
	cert_store_unref(s2);
	assert_ptr_equal(cert_store_lookup(s3, "a.example", 9, 1, NULL), a1);
	cert_store_unref(s3);
	cert_store_unref(NULL);
	tc_rmdir(d);
	free(d);
}

struct hammer {
	struct cert_slot *slot;
	atomic_int stop;
	atomic_long reads;
};

static void *reader(void *arg)
{
	struct hammer *h = arg;

	while (!atomic_load(&h->stop)) {
		struct cert_store *st = cert_slot_acquire(h->slot);

		if (st != NULL) {
			const struct cert_item *it = cert_store_lookup(st, "a.example", 9, 1, NULL);

			if (it == NULL || strcmp(cert_item_file(it), "a.pem") != 0)
				abort();
			cert_store_unref(st);
		}
		atomic_fetch_add(&h->reads, 1);
	}
	return NULL;
}

static void test_slot_publish(void **state)
{
	char *d = tc_tmpdir();
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st, *held;
	struct hammer h = {0};
	pthread_t t[2];

	(void)state;
	cert_opts_defaults(&o);
	tc_site(d, "a.pem", (const char *[]){"a.example"}, 1, NULL);
	h.slot = cert_slot_new();
	assert_null(cert_slot_acquire(h.slot));
	st = cert_store_load(d, &o, &rep);
	cert_report_free(rep);
	cert_slot_publish(h.slot, st);
	held = cert_slot_acquire(h.slot);
	assert_ptr_equal(held, st);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader, &h);
	/* Readers on other threads hold and drop references while the writer
	 * publishes new generations; ASan in `make check` catches any
	 * use-after-free in the acquire/publish race. */
	for (int i = 0; i < 200; i++) {
		struct cert_store *cur = cert_slot_acquire(h.slot);
		struct cert_store *n = cert_store_reload(cur, d, &o, &rep);

		cert_report_free(rep);
		cert_store_unref(cur);
		assert_non_null(n);
		cert_slot_publish(h.slot, n);
	}
	atomic_store(&h.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_true(atomic_load(&h.reads) > 0);
	/* The first store is still usable through the reference we held. */
	assert_non_null(cert_store_lookup(held, "a.example", 9, 1, NULL));
	assert_int_equal(cert_store_generation(held), 1);
	cert_store_unref(held);
	st = cert_slot_acquire(h.slot);
	assert_int_equal(cert_store_generation(st), 201);
	cert_store_unref(st);
	cert_slot_free(h.slot);
	cert_slot_free(NULL);
	tc_rmdir(d);
	free(d);
}

/* A reload patches a copy of the previous index (cert_index_update) when
 * few items changed and no name is claimed twice; it must give exactly
 * what a full build gives, including after removals that shift entries of
 * a probe cluster back, names shared by an ECDSA and an RSA item, and a
 * change that creates a duplicate (which falls back to a full build). */
static void test_reload_patch_matches_build(void **state)
{
	char *d = tc_tmpdir(), path[4200];
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *cur, *fresh;
	struct tc_opts rsa = {.rsa = 1};
	char nm[64], file[64];

	(void)state;
	cert_opts_defaults(&o);
	for (int i = 0; i < 40; i++) {
		const char *names[2] = {nm, "*.w.example"};

		snprintf(nm, sizeof(nm), "n%d.example", i);
		snprintf(file, sizeof(file), "f%02d.pem", i);
		tc_site(d, file, names, i == 7 ? 2 : 1, NULL);
	}
	tc_site(d, "r.pem", (const char *[]){"n3.example", "rsa-only.example"}, 2, &rsa);
	cur = cert_store_load(d, &o, &rep);
	cert_report_free(rep);
	for (int step = 0; step < 8; step++) {
		struct cert_store *n;
		size_t want_changed = SIZE_MAX;

		switch (step) {
		case 0: /* new names for one file */
			tc_site(d, "f05.pem", (const char *[]){"x5.example", "y5.example"}, 2,
			        NULL);
			break;
		case 1: /* removals: entries of a cluster shift back */
			for (int i = 10; i < 20; i++) {
				snprintf(path, sizeof(path), "%s/f%02d.pem", d, i);
				unlink(path);
			}
			break;
		case 2: /* the ECDSA claimant of a dual name goes away */
			snprintf(path, sizeof(path), "%s/f03.pem", d);
			unlink(path);
			break;
		case 3: /* the wildcard moves to another file */
			tc_site(d, "f07.pem", (const char *[]){"n7.example"}, 1, NULL);
			tc_site(d, "f08.pem", (const char *[]){"n8.example", "*.w.example"}, 2,
			        NULL);
			break;
		case 4: /* a duplicate: full build, the smaller file name wins */
			tc_site(d, "f09.pem", (const char *[]){"n9.example", "n8.example"}, 2,
			        NULL);
			break;
		case 5: /* and back to no duplicate */
			tc_site(d, "f09.pem", (const char *[]){"n9.example"}, 1, NULL);
			tc_site(d, "f03.pem", (const char *[]){"n3.example"}, 1, NULL);
			break;
		case 6: /* the directory grows past the listing a reload sizes
		         * from the previous store: the stat pipeline stops early */
			for (int i = 0; i < 60; i++) {
				const char *nmp = nm;

				snprintf(nm, sizeof(nm), "g%d.example", i);
				snprintf(file, sizeof(file), "g%02d.pem", i);
				tc_site(d, file, &nmp, 1, NULL);
			}
			want_changed = 60;
			break;
		default: { /* a NAME.crt + NAME.key pair: a listing unlike the store's */
			EVP_PKEY *k = tc_key(0);
			X509 *c =
			    tc_cert(k, (const char *[]){"pair.example"}, 1, NULL, NULL, NULL, 0);

			tc_pair(d, "pair", &c, 1, k, 0);
			X509_free(c);
			EVP_PKEY_free(k);
			want_changed = 1;
			break;
		}
		}
		n = cert_store_reload(cur, d, &o, &rep);
		assert_non_null(n);
		if (want_changed != SIZE_MAX)
			assert_int_equal(cert_report_nchanged(rep), want_changed);
		cert_report_free(rep);
		fresh = cert_store_load(d, &o, &rep);
		cert_report_free(rep);
		tc_same_lookups(n, fresh);
		cert_store_unref(fresh);
		cert_store_unref(cur);
		cur = n;
	}
	cert_store_unref(cur);
	tc_rmdir(d);
	free(d);
}

/* Writes n junk files NAME%04d.pem from `from` on: each is a certificate
 * file that fails to parse, which is all a test of the directory scan
 * needs, at a fraction of the cost of real certificates. */
static void junk_files(const char *d, const char *prefix, int from, int n)
{
	char file[64];

	for (int i = from; i < from + n; i++) {
		snprintf(file, sizeof(file), "%s%04d.pem", prefix, i);
		tc_write(d, file, "junk\n", 5);
	}
}

static void counts(struct cert_report *rep, size_t files, size_t loaded, size_t changed)
{
	assert_int_equal(cert_report_nfiles(rep), files);
	assert_int_equal(cert_report_nloaded(rep), loaded);
	assert_int_equal(cert_report_nskipped(rep), files - loaded);
	assert_int_equal(cert_report_nchanged(rep), changed);
}

/*
 * A directory large enough that a reload stats on several threads while it
 * lists (cert_store.c: the stat pipeline starts at 1,024 files per thread),
 * then one that grew past the listing the reload sized from the previous
 * store, so the pipeline stops mid-listing with its threads running. Under
 * ASan (`make check`) a stat thread reading a moved array would show here.
 */
static void test_reload_large_dir(void **state)
{
	char *d = tc_tmpdir();
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *cur, *n;

	(void)state;
	cert_opts_defaults(&o);
	junk_files(d, "j", 0, 3000);
	tc_site(d, "a.pem", (const char *[]){"a.example"}, 1, NULL);
	tc_site(d, "b.pem", (const char *[]){"b.example"}, 1, NULL);
	cur = cert_store_load(d, &o, &rep);
	assert_non_null(cur);
	counts(rep, 3002, 2, 0);
	cert_report_free(rep);

	/* Nothing changed. */
	n = cert_store_reload(cur, d, &o, &rep);
	assert_non_null(n);
	counts(rep, 3002, 2, 0);
	cert_report_free(rep);
	cert_store_unref(cur);
	cur = n;

	/* 600 more files (past the 3002 + 3002/8 + 16 pre-sized) and a new
	 * certificate among them. */
	junk_files(d, "k", 0, 600);
	tc_site(d, "c.pem", (const char *[]){"c.example"}, 1, NULL);
	n = cert_store_reload(cur, d, &o, &rep);
	assert_non_null(n);
	counts(rep, 3603, 3, 1);
	assert_true(has_changed(rep, "c.example"));
	assert_non_null(cert_store_lookup(n, "c.example", 9, 1, NULL));
	cert_report_free(rep);
	cert_store_unref(cur);
	cur = n;

	/* One certificate replaced in the big directory: both of its names
	 * are served by a new item. */
	tc_site(d, "a.pem", (const char *[]){"a.example", "a2.example"}, 2, NULL);
	n = cert_store_reload(cur, d, &o, &rep);
	assert_non_null(n);
	counts(rep, 3603, 3, 2);
	assert_true(has_changed(rep, "a.example"));
	assert_true(has_changed(rep, "a2.example"));
	cert_report_free(rep);
	cert_store_unref(cur);
	cert_store_unref(n);
	tc_rmdir(d);
	free(d);
}

/* A served file whose new content fails to load keeps its previous version
 * (reported, counted as loaded and warned); a new file that fails is skipped
 * as before; once the file is good again the next reload takes it. */
static void test_reload_keeps_previous_version(void **state)
{
	char *d = tc_tmpdir();
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *s1, *s2, *s3, *s4;
	const struct cert_item *b1;
	const char *why = NULL;

	(void)state;
	cert_opts_defaults(&o);
	tc_site(d, "a.pem", (const char *[]){"a.example"}, 1, NULL);
	tc_site(d, "b.pem", (const char *[]){"b.example"}, 1, NULL);
	s1 = cert_store_load(d, &o, &rep);
	cert_report_free(rep);
	b1 = cert_store_lookup(s1, "b.example", 9, 1, NULL);
	assert_non_null(b1);

	static const char cut[] = "-----BEGIN CERTIFICATE-----\ncut short\n", junk[] = "junk\n";

	tc_write(d, "b.pem", cut, sizeof(cut) - 1);
	tc_write(d, "e.pem", junk, sizeof(junk) - 1);
	s2 = cert_store_reload(s1, d, &o, &rep);
	assert_non_null(s2);
	assert_ptr_equal(cert_store_lookup(s2, "b.example", 9, 1, NULL), b1);
	assert_int_equal(cert_report_nkept(rep), 1);
	assert_string_equal(cert_report_kept(rep, 0, &why), "b.pem");
	assert_non_null(strstr(why, "the previous version stays served"));
	assert_null(cert_report_kept(rep, 1, NULL));
	assert_true(cert_store_file_kept(s2, "b.pem"));
	assert_false(cert_store_file_kept(s2, "a.pem"));
	assert_false(cert_store_file_kept(s2, "e.pem"));
	assert_int_equal(cert_report_nloaded(rep), 2);
	assert_int_equal(cert_report_nskipped(rep), 1); /* e.pem, never served */
	assert_int_equal(cert_report_nwarned(rep), 1);
	assert_int_equal(cert_report_nchanged(rep), 0);
	cert_report_free(rep);

	/* Still broken: tried again, still kept. */
	s3 = cert_store_reload(s2, d, &o, &rep);
	assert_ptr_equal(cert_store_lookup(s3, "b.example", 9, 1, NULL), b1);
	assert_int_equal(cert_report_nkept(rep), 1);
	cert_report_free(rep);

	/* Repaired: the new version is served, nothing kept. */
	tc_site(d, "b.pem", (const char *[]){"b.example"}, 1, &(struct tc_opts){.cn = "new"});
	s4 = cert_store_reload(s3, d, &o, &rep);
	assert_non_null(cert_store_lookup(s4, "b.example", 9, 1, NULL));
	assert_ptr_not_equal(cert_store_lookup(s4, "b.example", 9, 1, NULL), b1);
	assert_int_equal(cert_report_nkept(rep), 0);
	assert_false(cert_store_file_kept(s4, "b.pem"));
	assert_true(has_changed(rep, "b.example"));
	cert_report_free(rep);
	cert_store_unref(s1);
	cert_store_unref(s2);
	cert_store_unref(s3);
	cert_store_unref(s4);
	tc_rmdir(d);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_bad_input),
	    cmocka_unit_test(test_spki_curve_mismatch),
	    cmocka_unit_test(test_item_serves),
	    cmocka_unit_test(test_delta_reload),
	    cmocka_unit_test(test_slot_publish),
	    cmocka_unit_test(test_reload_patch_matches_build),
	    cmocka_unit_test(test_reload_large_dir),
	    cmocka_unit_test(test_reload_keeps_previous_version),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
