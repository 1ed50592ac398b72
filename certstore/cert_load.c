/*
 * cert_load: reads and validates one certificate file into a cert_item.
 *
 * This is the hot path of a cold load (10,000+ files), so it avoids the
 * generic OpenSSL 3.0 machinery where measurement showed it to be slow:
 *
 * - PEM blocks are split and base64-decoded by cert_pem.c instead of going
 *   through PEM_read_bio_*, which runs the generic OSSL_DECODER search for
 *   every object (about 565 us per combined file: docs/internals.md,
 *   "Loading certificates").
 * - Certificates are decoded with d2i_X509 into an X509 created with
 *   X509_new_ex(libctx), where libctx is private to the loader thread: the
 *   public key inside a certificate is decoded by an OSSL_DECODER, and on the
 *   default library context those decoders serialize every thread on the
 *   context's locks; a private context per thread scales linearly.
 * - Even in a private context, building that decoder costs ~170 of the
 *   ~200 us a leaf takes to decode here. The loader therefore decodes each
 *   leaf a first time in a context holding only the "null" provider: the
 *   opportunistic public-key decode fails at once (d2i_X509 tolerates that)
 *   and everything validation needs (names, validity, issuer, the public
 *   key's bytes) is still there, for ~29 us. The item keeps the leaf's DER;
 *   cert_item_use() decodes it for real on its first handshake (once per
 *   certificate and process) in a per-thread context.
 * - Private keys are decoded with the type-specific DER functions
 *   (d2i_ECPrivateKey, d2i_RSAPrivateKey) instead of d2i_PrivateKey_ex.
 *   On this machine d2i_PrivateKey_ex costs 150-230 us per key, nearly all of
 *   it in building a decoder chain (rwlocks, name lookups), while the
 *   type-specific functions cost 28 us (P-256) and 5 us (RSA-2048). They are
 *   deprecated in 3.0 but fully supported; the resulting "legacy" EVP_PKEY is
 *   exported once to the provider that signs with it and that export is
 *   cached inside the EVP_PKEY (see docs/certificates.md for the handshake
 *   measurement).
 * - Chain certificates are deduplicated by the SHA-256 of their DER, so each
 *   intermediate is decoded once per load and shared by every item.
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* d2i_ECPrivateKey etc., see above */

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "certstore/cert_int.h"

struct cert_loader {
	OSSL_LIB_CTX *lctx; /* default provider: chain certificates, digests */
	OSSL_LIB_CTX *nctx; /* null provider: the cheap first decode of leaves */
	EVP_MD *sha256;
	unsigned char *buf, *kbuf; /* file bytes, key file bytes */
	size_t cap, kcap;
	unsigned char *der;
	size_t dercap;
};

struct cert_loader *cert_loader_new(int idx)
{
	struct cert_loader *ld = calloc(1, sizeof(*ld));

	cert_pem_init();
	if (ld == NULL)
		return NULL;
	if (cert_loader_ctx(idx, &ld->lctx, &ld->nctx) < 0)
		goto fail;
	/* Fetching once per loader avoids a method lookup per digest. */
	ld->sha256 = EVP_MD_fetch(ld->lctx, "SHA2-256", NULL);
	if (ld->sha256 == NULL)
		goto fail;
	return ld;
fail:
	cert_loader_free(ld);
	return NULL;
}

void cert_loader_free(struct cert_loader *ld)
{
	if (ld == NULL)
		return;
	EVP_MD_free(ld->sha256);
	/* The buffers held private keys. */
	if (ld->buf != NULL)
		OPENSSL_cleanse(ld->buf, ld->cap);
	if (ld->kbuf != NULL)
		OPENSSL_cleanse(ld->kbuf, ld->kcap);
	if (ld->der != NULL)
		OPENSSL_cleanse(ld->der, ld->dercap);
	free(ld->buf);
	free(ld->kbuf);
	free(ld->der);
	free(ld);
}

struct cert_item *cert_item_ref(struct cert_item *item)
{
	atomic_fetch_add_explicit(&item->refs, 1, memory_order_relaxed);
	return item;
}

void cert_item_unref(struct cert_item *item)
{
	if (item == NULL)
		return;
	if (atomic_fetch_sub_explicit(&item->refs, 1, memory_order_acq_rel) != 1)
		return;
	cert_item_cache_drop(item);
	X509_free(item->leaf);
	EVP_PKEY_free(item->key); /* a key left by a failed load */
	OPENSSL_free(item->leaf_der);
	OPENSSL_clear_free(item->key_der, item->key_der_len);
	sk_X509_pop_free(item->chain, X509_free);
	for (size_t i = 0; i < item->nnames; i++)
		free(item->names[i]);
	free(item->names);
	free(item->file);
	free(item);
}

/* ---- chain pool ---- */

struct cert_chain_pool *cert_chain_pool_new(const struct cert_chain_pool *seed)
{
	struct cert_chain_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->cap = 64;
	p->ents = calloc(p->cap, sizeof(*p->ents));
	if (p->ents == NULL) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->seed = seed;
	return p;
}

void cert_chain_pool_free(struct cert_chain_pool *pool)
{
	if (pool == NULL)
		return;
	for (size_t i = 0; i < pool->cap; i++)
		X509_free(pool->ents[i].x509);
	free(pool->ents);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

static size_t pool_slot(const struct cert_chain_pool *p, const unsigned char sha[32])
{
	size_t h, mask = p->cap - 1;

	memcpy(&h, sha, sizeof(h));
	for (h &= mask;; h = (h + 1) & mask)
		if (p->ents[h].x509 == NULL || memcmp(p->ents[h].sha, sha, 32) == 0)
			return h;
}

/* Called with the lock held. Takes over one reference of x. */
static int pool_insert(struct cert_chain_pool *p, const unsigned char sha[32], X509 *x)
{
	size_t i;

	if ((p->n + 1) * 2 > p->cap) {
		struct cert_chain_pool np = *p;

		np.cap = p->cap * 2;
		np.ents = calloc(np.cap, sizeof(*np.ents));
		if (np.ents == NULL)
			return -1;
		for (i = 0; i < p->cap; i++)
			if (p->ents[i].x509 != NULL)
				np.ents[pool_slot(&np, p->ents[i].sha)] = p->ents[i];
		free(p->ents);
		p->ents = np.ents;
		p->cap = np.cap;
	}
	i = pool_slot(p, sha);
	memcpy(p->ents[i].sha, sha, 32);
	p->ents[i].x509 = x;
	p->n++;
	return 0;
}

/* Returns a new reference to the chain certificate with these DER bytes,
 * decoding it only if neither this load nor the previous store has it. */
static X509 *pool_get(struct cert_loader *ld, struct cert_chain_pool *p, const unsigned char *der,
                      size_t len)
{
	unsigned char sha[32];
	const unsigned char *q = der;
	X509 *x = NULL, *found;
	size_t i;

	if (!EVP_Digest(der, len, sha, NULL, ld->sha256, NULL))
		return NULL;
	pthread_mutex_lock(&p->lock);
	i = pool_slot(p, sha);
	found = p->ents[i].x509;
	if (found == NULL && p->seed != NULL) {
		const struct cert_chain_pool *s = p->seed;

		found = s->ents[pool_slot(s, sha)].x509;
		if (found != NULL && X509_up_ref(found) && pool_insert(p, sha, found) < 0) {
			X509_free(found);
			found = NULL;
		}
	}
	if (found != NULL && !X509_up_ref(found))
		found = NULL;
	pthread_mutex_unlock(&p->lock);
	if (found != NULL)
		return found;
	x = X509_new_ex(ld->lctx, NULL);
	if (x == NULL || d2i_X509(&x, &q, (long)len) == NULL) {
		X509_free(x);
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	i = pool_slot(p, sha);
	if (p->ents[i].x509 != NULL) {
		/* Another thread decoded the same certificate meanwhile. */
		X509_free(x);
		x = p->ents[i].x509;
	} else if (pool_insert(p, sha, x) < 0) {
		pthread_mutex_unlock(&p->lock);
		X509_free(x);
		return NULL;
	}
	X509_up_ref(x);
	pthread_mutex_unlock(&p->lock);
	return x;
}

/* ---- PEM blocks to DER ---- */

/* Decodes one block into ld->der (grown as needed). */
static long block_der(struct cert_loader *ld, const struct cert_pem_block *b)
{
	size_t need = b->len / 4 * 3 + 3;

	if (ld->dercap < need) {
		unsigned char *nd = malloc(need);

		if (nd == NULL)
			return -1;
		if (ld->der != NULL)
			OPENSSL_cleanse(ld->der, ld->dercap);
		free(ld->der);
		ld->der = nd;
		ld->dercap = need;
	}
	return cert_b64_decode(b->body, b->len, ld->der);
}

/* ---- key decoding ---- */

/* Decodes a private key of the given PEM kind. Returns NULL with *why set
 * to a static explanation on failure. */
static EVP_PKEY *decode_key(struct cert_loader *ld, enum cert_pem_kind kind,
                            const unsigned char *der, long len, const char **why)
{
	const unsigned char *q = der;
	PKCS8_PRIV_KEY_INFO *p8 = NULL;
	EVP_PKEY *k = NULL;

	*why = "invalid private key encoding";
	if (kind == CERT_PEM_KEY_EC) {
		EC_KEY *ec = d2i_ECPrivateKey(NULL, &q, len);

		if (ec != NULL)
			k = cert_key_wrap_ec(ec);
	} else if (kind == CERT_PEM_KEY_RSA) {
		RSA *rsa = d2i_RSAPrivateKey(NULL, &q, len);

		if (rsa != NULL)
			k = cert_key_wrap_rsa(rsa);
	} else {
		const ASN1_OBJECT *alg;
		const X509_ALGOR *palg;
		const unsigned char *pk;
		int pklen, ptype, nid;
		const void *pval;

		p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &q, len);
		if (p8 == NULL || !PKCS8_pkey_get0(&alg, &pk, &pklen, &palg, p8))
			goto out;
		nid = OBJ_obj2nid(alg);
		if (nid == NID_rsaEncryption) {
			RSA *rsa = d2i_RSAPrivateKey(NULL, &pk, pklen);

			if (rsa != NULL)
				k = cert_key_wrap_rsa(rsa);
		} else if (nid == NID_X9_62_id_ecPublicKey) {
			EC_KEY *ec;

			/* PKCS#8 carries the curve in the algorithm parameters and
			 * OpenSSL omits it from the inner ECPrivateKey, so the key
			 * must be created on its group before decoding into it. */
			X509_ALGOR_get0(NULL, &ptype, &pval, palg);
			if (ptype != V_ASN1_OBJECT) {
				*why = "EC private key with explicit curve parameters (only named "
				       "curves are supported)";
				goto out;
			}
			ec = EC_KEY_new_by_curve_name_ex(ld->lctx, NULL, OBJ_obj2nid(pval));
			if (ec == NULL) {
				*why = "EC private key on an unsupported curve";
				goto out;
			}
			if (d2i_ECPrivateKey(&ec, &pk, pklen) == NULL) {
				EC_KEY_free(ec);
				goto out;
			}
			k = cert_key_wrap_ec(ec);
		} else {
			*why = "unsupported private key type (only RSA and ECDSA are supported)";
		}
	}
out:
	PKCS8_PRIV_KEY_INFO_free(p8);
	return k;
}

/*
 * Compares the certificate's public key with the private key's public half
 * by their encodings. EVP_PKEY_eq would export the legacy key into the
 * certificate's provider first, which costs more than the whole comparison.
 */
/* Whether a certificate's EC key parameters (a named curve's OID, or
 * explicit parameters) are those of group. */
static int ec_params_match(int ptype, const void *pval, const EC_GROUP *group)
{
	if (ptype == V_ASN1_OBJECT)
		return OBJ_obj2nid(pval) != NID_undef &&
		       OBJ_obj2nid(pval) == EC_GROUP_get_curve_name(group);
	if (ptype == V_ASN1_SEQUENCE) {
		const ASN1_STRING *seq = pval;
		const unsigned char *p = ASN1_STRING_get0_data(seq);
		EC_GROUP *g = d2i_ECPKParameters(NULL, &p, ASN1_STRING_length(seq));
		int same = g != NULL && EC_GROUP_cmp(g, group, NULL) == 0;

		EC_GROUP_free(g);
		return same;
	}
	return 0;
}

static int key_matches(X509 *cert, EVP_PKEY *key)
{
	X509_PUBKEY *xpk = X509_get_X509_PUBKEY(cert);
	const unsigned char *spk;
	unsigned char *enc = NULL;
	int spklen, enclen = -1, rc = 0;
	ASN1_OBJECT *alg;
	X509_ALGOR *pa;

	if (xpk == NULL || !X509_PUBKEY_get0_param(&alg, &spk, &spklen, &pa, xpk))
		return 0;
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
		const void *curve;
		int ptype;

		if (OBJ_obj2nid(alg) != NID_X9_62_id_ecPublicKey || ec == NULL ||
		    EC_KEY_get0_public_key(ec) == NULL)
			return 0;
		/* The same point bytes on another curve, or with parameters
		 * that are no curve at all, are not this key: OpenSSL then
		 * fails to decode the certificate's key when it serves it, so
		 * every handshake would fail. The certificate must name the
		 * key's curve or spell out the same parameters. */
		X509_ALGOR_get0(NULL, &ptype, &curve, pa);
		if (!ec_params_match(ptype, curve, EC_KEY_get0_group(ec)))
			return 0;
		/* The certificate may use the compressed form. */
		enclen = (int)EC_POINT_point2buf(EC_KEY_get0_group(ec), EC_KEY_get0_public_key(ec),
		                                 spklen > 0 && (spk[0] == 2 || spk[0] == 3)
		                                     ? POINT_CONVERSION_COMPRESSED
		                                     : POINT_CONVERSION_UNCOMPRESSED,
		                                 &enc, NULL);
	} else if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		if (OBJ_obj2nid(alg) != NID_rsaEncryption)
			return 0;
		enclen = i2d_RSAPublicKey(EVP_PKEY_get0_RSA(key), &enc);
	}
	if (enclen > 0 && enclen == spklen && memcmp(enc, spk, (size_t)spklen) == 0)
		rc = 1;
	OPENSSL_free(enc);
	return rc;
}

/* ---- names and times ---- */

static int add_name(struct cert_item *it, const char *n, size_t len)
{
	char norm[CERT_NAME_MAX + 1];
	char **nn;
	int l = cert_name_norm(n, len, norm);

	if (l < 0)
		return -1;
	for (size_t i = 0; i < it->nnames; i++)
		if (strcmp(it->names[i], norm) == 0)
			return 0;
	nn = realloc(it->names, (it->nnames + 1) * sizeof(*nn));
	if (nn == NULL)
		return -2;
	it->names = nn;
	it->names[it->nnames] = strdup(norm);
	if (it->names[it->nnames] == NULL)
		return -2;
	it->nnames++;
	return 0;
}

/* Collects the DNS names; returns the number of invalid ones skipped, and
 * writes the first of them to bad. */
static int collect_names(struct cert_item *it, X509 *leaf, char *bad, size_t badlen)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int nbad = 0, ndns = 0;

	bad[0] = '\0';
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const unsigned char *s;
		int l;

		if (g->type != GEN_DNS)
			continue;
		ndns++;
		s = ASN1_STRING_get0_data(g->d.dNSName);
		l = ASN1_STRING_length(g->d.dNSName);
		if (add_name(it, (const char *)s, (size_t)l) < 0) {
			if (nbad++ == 0)
				snprintf(bad, badlen, "%.*s", l > 80 ? 80 : l, (const char *)s);
		}
	}
	GENERAL_NAMES_free(gens);
	if (ndns == 0) {
		/* RFC 6125: the CN is only a fallback when there is no DNS SAN. */
		X509_NAME *sub = X509_get_subject_name(leaf);
		int idx = X509_NAME_get_index_by_NID(sub, NID_commonName, -1);

		if (idx >= 0) {
			ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(sub, idx));
			const unsigned char *s = ASN1_STRING_get0_data(cn);
			int l = ASN1_STRING_length(cn);

			if (add_name(it, (const char *)s, (size_t)l) < 0 && nbad++ == 0)
				snprintf(bad, badlen, "%.*s", l > 80 ? 80 : l, (const char *)s);
		}
	}
	return nbad;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return timegm(&tm);
}

static void fmt_time(time_t t, char *out, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static int looks_binary(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n && i < 512; i++)
		if (b[i] == 0 || (b[i] < 0x20 && b[i] != '\n' && b[i] != '\r' && b[i] != '\t'))
			return 1;
	return 0;
}

static const char *cn_of(X509 *x, char *buf, size_t len)
{
	X509_NAME *n = X509_get_subject_name(x);

	if (X509_NAME_get_text_by_NID(n, NID_commonName, buf, (int)len) < 0)
		snprintf(buf, len, "?");
	return buf;
}

/* Appends a warning to *msg ("; "-separated). */
static void warn_append(char **msg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn_append(char **msg, const char *fmt, ...)
{
	char part[512];
	char *n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(part, sizeof(part), fmt, ap);
	va_end(ap);
	if (*msg == NULL)
		n = cert_strdup_printf("%s", part);
	else
		n = cert_strdup_printf("%s; %s", *msg, part);
	if (n != NULL) {
		free(*msg);
		*msg = n;
	}
}

int cert_hash_file(struct cert_loader *ld, int dirfd, const char *name, const char *key_name,
                   uint32_t max, unsigned char hash[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	size_t len, klen;
	char *msg = NULL;
	int rc = -1;

	if (md == NULL || !EVP_DigestInit_ex(md, ld->sha256, NULL))
		goto out;
	if (cert_read_file(dirfd, name, max, &ld->buf, &ld->cap, &len, &msg) < 0)
		goto out;
	if (!EVP_DigestUpdate(md, ld->buf, len))
		goto out;
	if (key_name != NULL) {
		if (cert_read_file(dirfd, key_name, max, &ld->kbuf, &ld->kcap, &klen, &msg) < 0 ||
		    !EVP_DigestUpdate(md, ld->kbuf, klen))
			goto out;
	}
	if (!EVP_DigestFinal_ex(md, hash, NULL))
		goto out;
	rc = 0;
out:
	free(msg);
	EVP_MD_CTX_free(md);
	return rc;
}

struct cert_item *cert_load_file(struct cert_loader *ld, int dirfd, const char *name,
                                 const char *key_name, const struct cert_opts *opts,
                                 struct cert_chain_pool *pool, unsigned char hash[32],
                                 enum cert_sev *sev, char **msg)
{
	struct cert_pem_block blk[CERT_PEM_MAX_BLOCKS], kblk[CERT_PEM_MAX_BLOCKS];
	const struct cert_pem_block *keyb = NULL;
	const unsigned char *q;
	struct cert_item *it = NULL;
	EVP_MD_CTX *md = NULL;
	X509 *certs[CERT_PEM_MAX_BLOCKS];
	size_t len = 0, klen = 0;
	int nb, nk = 0, nc = 0, ncert_blocks = 0, nkeys = 0, ok = 0;
	char bad[100], cn1[128], cn2[128], tbuf[40], where[NAME_MAX + 16];
	const char *why;
	time_t now = opts->now != 0 ? opts->now : time(NULL);
	long dl;

	*sev = CERT_SKIP;
	*msg = NULL;
	memset(certs, 0, sizeof(certs));
	memset(hash, 0, 32);
	if (cert_read_file(dirfd, name, opts->max_file_size, &ld->buf, &ld->cap, &len, msg) < 0)
		goto out;
	md = EVP_MD_CTX_new();
	if (md == NULL || !EVP_DigestInit_ex(md, ld->sha256, NULL) ||
	    !EVP_DigestUpdate(md, ld->buf, len))
		goto oom;
	if (len == 0) {
		*msg = cert_strdup_printf("empty file");
		goto out;
	}
	nb = cert_pem_split(ld->buf, len, blk, CERT_PEM_MAX_BLOCKS, msg, "");
	if (nb < 0)
		goto out;
	if (nb == 0) {
		if (looks_binary(ld->buf, len))
			*msg = cert_strdup_printf("binary data, not a PEM file (DER files are "
			                          "not supported)");
		else
			*msg = cert_strdup_printf("no PEM block found");
		goto out;
	}
	for (int i = 0; i < nb; i++) {
		if (blk[i].kind == CERT_PEM_CERT)
			ncert_blocks++;
		else if (blk[i].kind != CERT_PEM_OTHER) {
			nkeys++;
			keyb = &blk[i];
		}
	}
	if (key_name != NULL && nkeys == 0) {
		/* NAME.crt + NAME.key: the key comes from the partner file. */
		if (cert_read_file(dirfd, key_name, opts->max_file_size, &ld->kbuf, &ld->kcap,
		                   &klen, msg) < 0)
			goto out;
		if (!EVP_DigestUpdate(md, ld->kbuf, klen))
			goto oom;
		if (klen == 0) {
			*msg = cert_strdup_printf("key file %s is empty", key_name);
			goto out;
		}
		snprintf(where, sizeof(where), "key file %s: ", key_name);
		nk = cert_pem_split(ld->kbuf, klen, kblk, CERT_PEM_MAX_BLOCKS, msg, where);
		if (nk < 0)
			goto out;
		for (int i = 0; i < nk; i++)
			if (kblk[i].kind != CERT_PEM_OTHER && kblk[i].kind != CERT_PEM_CERT) {
				nkeys++;
				keyb = &kblk[i];
			}
		if (nkeys == 0) {
			*msg = cert_strdup_printf("key file %s holds no private key", key_name);
			goto out;
		}
	} else if (key_name != NULL) {
		/* Hash the partner too, so that editing it triggers a reload of
		 * this file even though the embedded key wins. */
		if (cert_read_file(dirfd, key_name, opts->max_file_size, &ld->kbuf, &ld->kcap,
		                   &klen, msg) < 0)
			goto out;
		if (!EVP_DigestUpdate(md, ld->kbuf, klen))
			goto oom;
	}
	if (!EVP_DigestFinal_ex(md, hash, NULL))
		goto oom;
	if (ncert_blocks == 0) {
		*msg = cert_strdup_printf("no certificate found (expected a CERTIFICATE PEM "
		                          "block)");
		goto out;
	}
	it = calloc(1, sizeof(*it));
	if (it == NULL)
		goto oom;
	atomic_init(&it->refs, 1);
	it->file = strdup(name);
	it->chain = sk_X509_new_null();
	if (it->file == NULL || it->chain == NULL)
		goto oom;
	for (int i = 0; i < nb; i++) {
		if (blk[i].kind != CERT_PEM_CERT)
			continue;
		dl = block_der(ld, &blk[i]);
		if (dl <= 0) {
			*msg = cert_strdup_printf("certificate #%d: invalid base64", nc + 1);
			goto out;
		}
		if (nc == 0) {
			q = ld->der;
			certs[0] = X509_new_ex(ld->nctx, NULL);
			if (certs[0] == NULL || d2i_X509(&certs[0], &q, dl) == NULL) {
				X509_free(certs[0]);
				certs[0] = NULL;
			} else {
				it->leaf_der = OPENSSL_memdup(ld->der, (size_t)dl);
				it->leaf_der_len = (size_t)dl;
				if (it->leaf_der == NULL ||
				    !EVP_Digest(ld->der, (size_t)dl, it->sha256, NULL, ld->sha256,
				                NULL))
					goto oom;
			}
		} else {
			certs[nc] = pool_get(ld, pool, ld->der, (size_t)dl);
		}
		if (certs[nc] == NULL) {
			*msg = cert_strdup_printf("certificate #%d: invalid DER (corrupt or "
			                          "truncated)",
			                          nc + 1);
			goto out;
		}
		nc++;
	}
	if (nkeys == 0) {
		*msg = cert_strdup_printf("no private key found (expected in the file, or in "
		                          "a .key file next to a .crt)");
		goto out;
	}
	if (nkeys > 1) {
		*msg = cert_strdup_printf("more than one private key");
		goto out;
	}
	if (keyb->kind == CERT_PEM_KEY_ENC || keyb->encrypted_header) {
		*msg = cert_strdup_printf("the private key is encrypted; encrypted keys are not "
		                          "supported (store it unencrypted with mode 0600)");
		goto out;
	}

	dl = block_der(ld, keyb);
	if (dl <= 0) {
		*msg = cert_strdup_printf("private key: invalid base64");
		goto out;
	}
	it->key = decode_key(ld, keyb->kind, ld->der, dl, &why);
	OPENSSL_cleanse(ld->der, (size_t)dl);
	if (it->key == NULL) {
		*msg = cert_strdup_printf("private key: %s", why);
		goto out;
	}
	it->is_ec = EVP_PKEY_get_base_id(it->key) == EVP_PKEY_EC;
	if (it->is_ec && cert_key_curve(it->key) == NID_undef) {
		*msg = cert_strdup_printf("private key: an EC key with explicit curve parameters "
		                          "that match no named curve; TLS signs only with named "
		                          "curves such as P-256");
		goto out;
	}
	if (!key_matches(certs[0], it->key)) {
		int other = -1;

		for (int i = 1; i < nc && other < 0; i++)
			if (key_matches(certs[i], it->key))
				other = i;
		if (other > 0)
			*msg =
			    cert_strdup_printf("the private key belongs to certificate #%d "
			                       "(%s), not to the first one: the leaf certificate "
			                       "must come first",
			                       other + 1, cn_of(certs[other], cn1, sizeof(cn1)));
		else
			*msg = cert_strdup_printf("the private key does not match the "
			                          "certificate (%s)",
			                          cn_of(certs[0], cn1, sizeof(cn1)));
		goto out;
	}
	for (int i = 1; i < nc; i++) {
		if (!sk_X509_push(it->chain, certs[i]))
			goto oom;
		certs[i] = NULL;
	}

	/* Warnings from here on: the item is usable. */
	*sev = CERT_OK;
	for (int i = 0; i + 1 < nc; i++) {
		X509 *a = i == 0 ? certs[0] : sk_X509_value(it->chain, i - 1);
		X509 *b = sk_X509_value(it->chain, i);

		if (X509_NAME_cmp(X509_get_issuer_name(a), X509_get_subject_name(b)) != 0) {
			warn_append(
			    msg,
			    "chain order: certificate #%d (%s) is not issued by the next "
			    "certificate #%d (%s); each certificate must be followed by its "
			    "issuer",
			    i + 1, cn_of(a, cn1, sizeof(cn1)), i + 2, cn_of(b, cn2, sizeof(cn2)));
			*sev = CERT_WARN;
			break;
		}
	}
	it->not_before = asn1_time(X509_get0_notBefore(certs[0]));
	it->not_after = asn1_time(X509_get0_notAfter(certs[0]));
	if (it->not_after != 0 && it->not_after < now) {
		fmt_time(it->not_after, tbuf, sizeof(tbuf));
		if (opts->expired == CFG_EXPIRED_SKIP) {
			free(*msg);
			*msg = cert_strdup_printf("expired on %s; skipped (certs.expired: skip)",
			                          tbuf);
			*sev = CERT_SKIP;
			goto out;
		}
		warn_append(msg, "expired on %s; served anyway (certs.expired: serve)", tbuf);
		*sev = CERT_WARN;
	}
	if (it->not_before > now) {
		fmt_time(it->not_before, tbuf, sizeof(tbuf));
		warn_append(msg, "not valid before %s", tbuf);
		*sev = CERT_WARN;
	}
	{
		int nbad = collect_names(it, certs[0], bad, sizeof(bad));

		if (nbad > 0) {
			warn_append(msg, "%d invalid DNS name(s) ignored, e.g. '%s'", nbad, bad);
			*sev = CERT_WARN;
		}
		if (it->nnames == 0) {
			warn_append(msg, "no usable DNS name; only usable as the default "
			                 "certificate");
			*sev = CERT_WARN;
		}
	}
	if (cert_item_key_to_rest(it) < 0)
		goto oom;
	ok = 1;
	goto out;
oom:
	free(*msg);
	*msg = cert_strdup_printf("out of memory or OpenSSL failure");
	*sev = CERT_SKIP;
out:
	ERR_clear_error();
	for (int i = 0; i < CERT_PEM_MAX_BLOCKS; i++)
		X509_free(certs[i]);
	EVP_MD_CTX_free(md);
	if (klen > 0)
		OPENSSL_cleanse(ld->kbuf, klen);
	/* The file buffer held a private key in the combined case. */
	if (len > 0)
		OPENSSL_cleanse(ld->buf, len);
	if (!ok) {
		*sev = CERT_SKIP;
		cert_item_unref(it);
		it = NULL;
	}
	return it;
}
