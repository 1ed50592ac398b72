/* Unit tests for the bounded leaf cache (certstore/cert_cache.c): eviction,
 * CLOCK's second chance, a limit of 0, concurrent use from worker threads
 * while the cache evicts and reloads free cached items, and every at-rest
 * key form signing for real once served. Under ASan (`make check`) the
 * concurrent test catches any use of an evicted leaf. */
#define OPENSSL_SUPPRESS_DEPRECATED /* EC_KEY_set_asn1_flag: explicit curve */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "certstore/cert.h"
#include "tests/unit/certstore/cert_helpers.h"

#define NSITES 8

static char *dir;

static const char *site_name(int i)
{
	static const char *n[NSITES] = {"s0.example", "s1.example", "s2.example", "s3.example",
	                                "s4.example", "s5.example", "s6.example", "s7.example"};

	return n[i];
}

static int setup(void **state)
{
	char file[32];

	(void)state;
	dir = tc_tmpdir();
	for (int i = 0; i < NSITES; i++) {
		const char *n = site_name(i);

		snprintf(file, sizeof(file), "s%d.pem", i);
		tc_site(dir, file, &n, 1, NULL);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	cert_leaf_cache_set_limit(CERT_LEAF_CACHE_DEFAULT);
	tc_rmdir(dir);
	free(dir);
	return 0;
}

static struct cert_store *load(void)
{
	struct cert_opts o;
	struct cert_report *rep = NULL;
	struct cert_store *st;

	cert_opts_defaults(&o);
	st = cert_store_load(dir, &o, &rep);
	assert_non_null(st);
	assert_int_equal(cert_report_nloaded(rep), NSITES);
	cert_report_free(rep);
	return st;
}

static const struct cert_item *item(const struct cert_store *st, int i)
{
	const struct cert_item *it =
	    cert_store_lookup(st, site_name(i), strlen(site_name(i)), 1, NULL);

	if (it == NULL)
		abort();
	return it;
}

/* The certificate installed on ssl is the item's leaf: a cache that mixed
 * up items or served a freed X509 would fail here (or under ASan). */
static int serves(SSL *ssl, const struct cert_item *it)
{
	unsigned char md[32];
	unsigned int len = 0;
	X509 *x = SSL_get_certificate(ssl);

	return x != NULL && X509_digest(x, EVP_sha256(), md, &len) && len == 32 &&
	       memcmp(md, cert_item_sha256(it), 32) == 0 && SSL_check_private_key(ssl) == 1;
}

static void use(SSL_CTX *ctx, const struct cert_item *it)
{
	SSL *ssl = SSL_new(ctx);

	assert_non_null(ssl);
	assert_int_equal(cert_item_use(it, ssl), 0);
	assert_true(serves(ssl, it));
	SSL_free(ssl);
}

static void test_eviction(void **state)
{
	struct cert_store *st = load();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct cert_leaf_cache_stats a, b;
	SSL *held = SSL_new(ctx);

	(void)state;
	cert_leaf_cache_set_limit(3);
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.limit, 3);
	assert_int_equal(a.cached, 0);
	/* A connection that installed item 0 keeps serving it after the
	 * cache has evicted it: OpenSSL holds its own reference. */
	assert_int_equal(cert_item_use(item(st, 0), held), 0);
	for (int i = 1; i < NSITES; i++)
		use(ctx, item(st, i));
	cert_leaf_cache_stats(&b);
	assert_int_equal(b.cached, 3);
	assert_int_equal(b.misses - a.misses, NSITES);
	assert_int_equal(b.evictions - a.evictions, NSITES - 3);
	assert_true(serves(held, item(st, 0)));
	/* The most recent item is still cached: a hit. */
	use(ctx, item(st, NSITES - 1));
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.hits - b.hits, 1);
	assert_int_equal(a.misses, b.misses);
	/* Lowering the limit evicts at once; freeing the store empties it. */
	cert_leaf_cache_set_limit(1);
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.cached, 1);
	cert_store_unref(st);
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.cached, 0);
	assert_non_null(SSL_get_certificate(held));
	SSL_free(held);
	SSL_CTX_free(ctx);
}

static void test_clock_second_chance(void **state)
{
	struct cert_store *st = load();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct cert_leaf_cache_stats a, b;

	(void)state;
	cert_leaf_cache_set_limit(4);
	for (int i = 0; i < 4; i++)
		use(ctx, item(st, i));
	/* Item 0 is used again, so the hand skips it once and evicts item 1
	 * for item 4. */
	use(ctx, item(st, 0));
	use(ctx, item(st, 4));
	cert_leaf_cache_stats(&a);
	use(ctx, item(st, 0));
	cert_leaf_cache_stats(&b);
	assert_int_equal(b.hits - a.hits, 1);
	use(ctx, item(st, 1));
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.misses - b.misses, 1);
	cert_store_unref(st);
	SSL_CTX_free(ctx);
}

static void test_limit_zero(void **state)
{
	struct cert_store *st = load();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct cert_leaf_cache_stats a, b;

	(void)state;
	cert_leaf_cache_set_limit(0);
	cert_leaf_cache_stats(&a);
	for (int r = 0; r < 3; r++)
		for (int i = 0; i < NSITES; i++)
			use(ctx, item(st, i));
	cert_leaf_cache_stats(&b);
	assert_int_equal(b.cached, 0);
	assert_int_equal(b.hits, a.hits);
	assert_int_equal(b.misses - a.misses, 3 * NSITES);
	cert_store_unref(st);
	SSL_CTX_free(ctx);
}

/* cache-trim on a standby: every entry goes, the limit stays, and the next
 * use decodes again and is cached again. */
static void test_trim(void **state)
{
	struct cert_store *st = load();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct cert_leaf_cache_stats a, b;

	(void)state;
	cert_leaf_cache_set_limit(5);
	for (int i = 0; i < 4; i++)
		use(ctx, item(st, i));
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.cached, 4);
	assert_int_equal(cert_leaf_cache_trim(), 4);
	cert_leaf_cache_stats(&b);
	assert_int_equal(b.cached, 0);
	assert_int_equal(b.limit, 5);
	assert_int_equal(b.evictions - a.evictions, 4);
	assert_int_equal(cert_leaf_cache_trim(), 0);
	use(ctx, item(st, 0));
	cert_leaf_cache_stats(&a);
	assert_int_equal(a.cached, 1);
	assert_int_equal(a.misses - b.misses, 1);
	cert_store_unref(st);
	SSL_CTX_free(ctx);
}

struct hammer {
	struct cert_slot *slot;
	SSL_CTX *ctx;
	atomic_int stop;
	atomic_int bad;
	atomic_int uses;
	unsigned seed;
};

static void *worker(void *arg)
{
	struct hammer *h = arg;
	unsigned seed = __atomic_add_fetch(&h->seed, 7919, __ATOMIC_RELAXED);
	SSL *ssl = NULL;

	while (!atomic_load(&h->stop)) {
		struct cert_store *st = cert_slot_acquire(h->slot);
		const struct cert_item *it = item(st, (int)(rand_r(&seed) % NSITES));

		/* A fresh SSL now and then, so that some connections hold an
		 * installed leaf across many evictions. */
		if (ssl == NULL || rand_r(&seed) % 4 == 0) {
			SSL_free(ssl);
			ssl = SSL_new(h->ctx);
		}
		if (ssl == NULL || cert_item_use(it, ssl) != 0 || !serves(ssl, it))
			atomic_fetch_add(&h->bad, 1);
		atomic_fetch_add(&h->uses, 1);
		cert_store_unref(st);
	}
	SSL_free(ssl);
	return NULL;
}

static void test_concurrent_use(void **state)
{
	struct hammer h = {.seed = 1};
	struct cert_opts o;
	struct cert_report *rep = NULL;
	pthread_t t[4];
	char path[4200];

	(void)state;
	cert_opts_defaults(&o);
	h.slot = cert_slot_new();
	h.ctx = SSL_CTX_new(TLS_server_method());
	cert_slot_publish(h.slot, load());
	cert_leaf_cache_set_limit(3);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, &h);
	/* Meanwhile: the limit changes (evicting from this thread), and
	 * reloads replace items, so cached items are freed while workers use
	 * the cache. */
	/* At least 60 reloads, and until the workers have served 5,000
	 * times, so that they overlap many evictions even on a slow run. */
	for (int r = 0; r < 2000 && (r < 60 || atomic_load(&h.uses) < 5000); r++) {
		struct cert_store *cur = cert_slot_acquire(h.slot), *n;
		const char *nm = site_name(r % NSITES);

		cert_leaf_cache_set_limit((size_t)(r % 5));
		snprintf(path, sizeof(path), "s%d.pem", r % NSITES);
		tc_site(dir, path, &nm, 1, NULL);
		n = cert_store_reload(cur, dir, &o, &rep);
		cert_report_free(rep);
		cert_store_unref(cur);
		assert_non_null(n);
		cert_slot_publish(h.slot, n);
	}
	atomic_store(&h.stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&h.bad), 0);
	assert_true(atomic_load(&h.uses) >= 5000);
	cert_slot_free(h.slot);
	SSL_CTX_free(h.ctx);
	/* Every store is gone, so no item is left cached. */
	{
		struct cert_leaf_cache_stats s;

		cert_leaf_cache_stats(&s);
		assert_int_equal(s.cached, 0);
	}
}

/* Writes a self-signed site for name with key, its key PEM traditional or
 * PKCS#8. */
static void key_site(const char *d, const char *file, const char *name, EVP_PKEY *k, int trad)
{
	X509 *c = tc_cert(k, &name, 1, NULL, NULL, NULL, 0);
	BIO *b = BIO_new(BIO_s_mem());

	assert_non_null(c);
	tc_pem(b, &c, 1, k, trad);
	tc_write_bio(d, file, b);
	BIO_free(b);
	X509_free(c);
}

/*
 * Every way an item keeps its key at rest (cert_load.c: raw scalar and point
 * for named EC curves, ECPrivateKey DER otherwise, RSAPrivateKey DER) must
 * give back a key that signs for the served certificate: a wrong byte order
 * of the scalar or a mismatched curve would pass the public-key comparison
 * and fail only here.
 */
static void test_key_forms(void **state)
{
	static const char *names[] = {"p256.example", "p384.example", "rsa.example",
	                              "explicit.example"};
	char *d = tc_tmpdir();
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *rsa = tc_key(1), *p256 = tc_fresh_key(), *expl = tc_fresh_key();
	EC_KEY *ec = EVP_PKEY_get1_EC_KEY(expl);
	EVP_PKEY *expl_legacy = EVP_PKEY_new();
	struct cert_store *st;
	struct cert_report *rep = NULL;
	struct cert_opts o;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	(void)state;
	/* A P-256 key written with explicit curve parameters. */
	assert_non_null(ec);
	EC_KEY_set_asn1_flag(ec, OPENSSL_EC_EXPLICIT_CURVE);
	assert_int_equal(EVP_PKEY_assign_EC_KEY(expl_legacy, ec), 1);
	key_site(d, "p256.pem", names[0], p256, 0);
	key_site(d, "p384.pem", names[1], p384, 1);
	key_site(d, "rsa.pem", names[2], rsa, 0);
	key_site(d, "explicit.pem", names[3], expl_legacy, 1);
	cert_opts_defaults(&o);
	st = cert_store_load(d, &o, &rep);
	assert_non_null(st);
	assert_int_equal(cert_report_nloaded(rep), 4);
	cert_report_free(rep);
	for (int pass = 0; pass < 2; pass++) {
		/* Pass 0 decodes (cache misses), pass 1 serves from the cache. */
		for (int i = 0; i < 4; i++) {
			const struct cert_item *it =
			    cert_store_lookup(st, names[i], strlen(names[i]), 1, NULL);
			SSL *ssl = SSL_new(ctx);
			unsigned char sig[512], msg[32] = "switchyard key form test";
			size_t siglen = sizeof(sig);
			EVP_MD_CTX *mc = EVP_MD_CTX_new();

			assert_non_null(it);
			assert_int_equal(cert_item_use(it, ssl), 0);
			assert_true(serves(ssl, it));
			assert_int_equal(EVP_DigestSignInit(mc, NULL, EVP_sha256(), NULL,
			                                    SSL_get_privatekey(ssl)),
			                 1);
			assert_int_equal(EVP_DigestSign(mc, sig, &siglen, msg, sizeof(msg)), 1);
			EVP_MD_CTX_reset(mc);
			assert_int_equal(
			    EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL,
			                         X509_get0_pubkey(SSL_get_certificate(ssl))),
			    1);
			assert_int_equal(EVP_DigestVerify(mc, sig, siglen, msg, sizeof(msg)), 1);
			EVP_MD_CTX_free(mc);
			SSL_free(ssl);
		}
	}
	cert_store_unref(st);
	SSL_CTX_free(ctx);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p256);
	EVP_PKEY_free(expl);
	EVP_PKEY_free(expl_legacy);
	tc_rmdir(d);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_eviction),   cmocka_unit_test(test_clock_second_chance),
	    cmocka_unit_test(test_limit_zero), cmocka_unit_test(test_concurrent_use),
	    cmocka_unit_test(test_key_forms),  cmocka_unit_test(test_trim),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
