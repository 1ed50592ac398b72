/*
 * cert_key: what the loader (cert_load.c) and the serving cache
 * (cert_cache.c) share: the process's OpenSSL library contexts, and a
 * private key's compact at-rest form with the decoder that builds a serving
 * key from it.
 *
 * Both directions of the at-rest form live here so that the loader, which
 * writes it, and the cache, which reads it, depend on this file and not on
 * each other. The type-specific DER functions are used for the reasons given
 * at the top of cert_load.c.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* d2i_RSAPrivateKey, EC_KEY, see cert_load.c */

#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "certstore/cert_int.h"

#define LOADER_CTX_MAX 64

/* Library contexts of loader threads. They live as long as the process,
 * because objects decoded in a context keep pointers into it (its provider
 * and key management) and items outlive the load that created them. */
static OSSL_LIB_CTX *ctx_pool[LOADER_CTX_MAX];
static OSSL_LIB_CTX *null_pool[LOADER_CTX_MAX];
static pthread_mutex_t ctx_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int serve_slots = LOADER_CTX_MAX / 2;
static _Thread_local int serve_slot = -1;

int cert_loader_ctx(int idx, OSSL_LIB_CTX **lctx, OSSL_LIB_CTX **nctx)
{
	int slot = idx % LOADER_CTX_MAX;

	pthread_mutex_lock(&ctx_pool_lock);
	if (ctx_pool[slot] == NULL)
		ctx_pool[slot] = OSSL_LIB_CTX_new();
	if (null_pool[slot] == NULL) {
		OSSL_LIB_CTX *n = OSSL_LIB_CTX_new();

		/* Loading "null" explicitly keeps the default provider from
		 * being loaded into this context on its first fetch. */
		if (n != NULL && OSSL_PROVIDER_load(n, "null") == NULL) {
			OSSL_LIB_CTX_free(n);
			n = NULL;
		}
		null_pool[slot] = n;
	}
	*lctx = ctx_pool[slot];
	*nctx = null_pool[slot];
	pthread_mutex_unlock(&ctx_pool_lock);
	return *lctx != NULL && *nctx != NULL ? 0 : -1;
}

EVP_PKEY *cert_key_wrap_ec(EC_KEY *ec)
{
	EVP_PKEY *k = EVP_PKEY_new();

	if (k == NULL || !EVP_PKEY_assign_EC_KEY(k, ec)) {
		EVP_PKEY_free(k);
		EC_KEY_free(ec);
		return NULL;
	}
	return k;
}

EVP_PKEY *cert_key_wrap_rsa(RSA *rsa)
{
	EVP_PKEY *k = EVP_PKEY_new();

	if (k == NULL || !EVP_PKEY_assign_RSA(k, rsa)) {
		EVP_PKEY_free(k);
		RSA_free(rsa);
		return NULL;
	}
	return k;
}

/* The library context a serving thread decodes leaves in: one of the upper
 * half of the pool, assigned round-robin on the thread's first use, so that
 * worker threads do not all contend on the default context's locks. */
OSSL_LIB_CTX *cert_serve_ctx(void)
{
	OSSL_LIB_CTX *c;

	if (serve_slot < 0)
		serve_slot =
		    atomic_fetch_add(&serve_slots, 1) % (LOADER_CTX_MAX / 2) + LOADER_CTX_MAX / 2;
	pthread_mutex_lock(&ctx_pool_lock);
	if (ctx_pool[serve_slot] == NULL)
		ctx_pool[serve_slot] = OSSL_LIB_CTX_new();
	c = ctx_pool[serve_slot];
	pthread_mutex_unlock(&ctx_pool_lock);
	return c;
}

/* Bytes of the largest EC private scalar kept (sect571 curves: 72). */
#define EC_SCALAR_MAX 72

/* Builds a provider-native EC key from the item's raw scalar and point:
 * ~27 us and ~2.2 KB, where d2i_ECPrivateKey gives a legacy key (~25 us,
 * ~2.3 KB) that the first signature then exports to the provider (~40 us,
 * ~2.1 KB more, kept inside the EVP_PKEY). The public point is stored, so
 * nothing is recomputed from the scalar. */
static EVP_PKEY *ec_from_raw(const struct cert_item *item)
{
	size_t plen = item->key_priv_len;
	unsigned char native[EC_SCALAR_MAX];
	OSSL_PARAM params[4];
	EVP_PKEY_CTX *pc;
	EVP_PKEY *k = NULL;

	if (plen > sizeof(native))
		return NULL;
		/* OSSL_PARAM integers are in native byte order; the scalar is kept
		 * big-endian, as in its DER. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (size_t i = 0; i < plen; i++)
		native[i] = item->key_der[plen - 1 - i];
#else
	memcpy(native, item->key_der, plen);
#endif
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
	                                             (char *)OBJ_nid2sn(item->key_nid), 0);
	params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native, plen);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, item->key_der + plen,
	                                              item->key_der_len - plen);
	params[3] = OSSL_PARAM_construct_end();
	pc = EVP_PKEY_CTX_new_from_name(cert_serve_ctx(), "EC", NULL);
	if (pc == NULL || EVP_PKEY_fromdata_init(pc) <= 0 ||
	    EVP_PKEY_fromdata(pc, &k, EVP_PKEY_KEYPAIR, params) <= 0)
		k = NULL;
	EVP_PKEY_CTX_free(pc);
	OPENSSL_cleanse(native, sizeof(native));
	return k;
}

EVP_PKEY *cert_item_key_decode(const struct cert_item *item)
{
	const unsigned char *q = item->key_der;

	/* The type-specific decoders, for the reason given at the top of this
	 * loader (cert_load.c): ~28 us (P-256) instead of ~200 us through OSSL_DECODER. */
	if (item->is_ec)
		return ec_from_raw(item);
	RSA *rsa = d2i_RSAPrivateKey(NULL, &q, (long)item->key_der_len);

	return rsa != NULL ? cert_key_wrap_rsa(rsa) : NULL;
}

/* The curve of an EC key, or NID_undef if it has none that TLS could sign
 * with: explicit parameters that match no named curve. (Explicit
 * parameters of a named curve are recognised as that curve.) */
int cert_key_curve(const EVP_PKEY *k)
{
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(k);
	const EC_GROUP *g = ec != NULL ? EC_KEY_get0_group(ec) : NULL;

	return g != NULL && EC_GROUP_order_bits(g) <= EC_SCALAR_MAX * 8 ? EC_GROUP_get_curve_name(g)
	                                                                : NID_undef;
}

/* Keeps an EC key on a named curve as its raw scalar and public point, for
 * ec_from_raw(). Returns 0, or -1 on failure. */
static int ec_to_raw(struct cert_item *it, const EC_KEY *ec)
{
	const EC_GROUP *g = EC_KEY_get0_group(ec);
	const BIGNUM *priv = EC_KEY_get0_private_key(ec);
	const EC_POINT *pub = EC_KEY_get0_public_key(ec);
	size_t plen, publen;
	unsigned char *buf;

	if (priv == NULL || pub == NULL)
		return -1;
	plen = (size_t)(EC_GROUP_order_bits(g) + 7) / 8;
	publen = EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, NULL, 0, NULL);
	if (publen == 0)
		return -1;
	buf = OPENSSL_malloc(plen + publen);
	if (buf == NULL)
		return -1;
	if (BN_bn2binpad(priv, buf, (int)plen) < 0 ||
	    EC_POINT_point2oct(g, pub, POINT_CONVERSION_UNCOMPRESSED, buf + plen, publen, NULL) !=
	        publen) {
		OPENSSL_clear_free(buf, plen + publen);
		return -1;
	}
	it->key_der = buf;
	it->key_der_len = plen + publen;
	it->key_priv_len = plen;
	it->key_nid = EC_GROUP_get_curve_name(g);
	return 0;
}

/*
 * Replaces the item's decoded key by its at-rest form. A legacy EVP_PKEY
 * costs about 2.3 KB, and about 2 KB more once a handshake has exported it to
 * the provider; the at-rest form is ~100 bytes (P-256). The serving cache
 * builds the key again with the leaf (cert_cache.c).
 */
int cert_item_key_to_rest(struct cert_item *it)
{
	unsigned char *der = NULL;
	int n;

	if (it->is_ec) {
		if (ec_to_raw(it, EVP_PKEY_get0_EC_KEY(it->key)) < 0)
			return -1;
	} else {
		n = i2d_RSAPrivateKey(EVP_PKEY_get0_RSA(it->key), &der);
		if (n <= 0)
			return -1;
		it->key_der = der;
		it->key_der_len = (size_t)n;
	}
	EVP_PKEY_free(it->key);
	it->key = NULL;
	return 0;
}
