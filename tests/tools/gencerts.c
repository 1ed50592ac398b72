/*
 * gencerts: a fast, multi-threaded generator of test certificates.
 *
 *   gencerts --out DIR --count N [--type ec|rsa] [--domain example.test]
 *            [--names-from FILE] [--wildcards K] [--expired K] [--split K]
 *            [--start I] [--threads T] [--key-pool P]
 *   gencerts --out DIR --one NAME --file OUT [--type ec|rsa] [--serial S]
 *            [--expired 1]
 *   gencerts --out DIR --mix N [--domain D] [--start I] [--threads T]
 *            [--key-pool P]
 *
 * DIR/ca.pem + ca.key is a self-signed root (the trust anchor), DIR/int.pem +
 * int.key one intermediate. Both are created on the first run and reused by
 * later runs in the same DIR, so every certificate ever issued there verifies
 * against the same ca.pem. Certificates go to DIR/certs/: combined PEM files
 * (leaf, intermediate, key; the key comes first in every third file to prove
 * that "key anywhere" works) or, for the first K of --split K, NAME.crt (leaf
 * + intermediate) + NAME.key pairs. Keys alternate between PKCS#8 ("BEGIN
 * PRIVATE KEY") and the traditional encodings ("BEGIN EC/RSA PRIVATE KEY").
 *
 * DIR/names.txt gets one "NAME FILE" line per servable certificate, where
 * NAME is a host name a client would send (for a wildcard, host.<parent>)
 * and FILE is the base name the store reports (NAME.crt for pairs). Expired
 * certificates are listed in DIR/expired.txt instead. names.txt is rewritten
 * unless --start is given, in which case lines are appended.
 *
 * --key-pool P reuses P keys round-robin instead of one key per certificate.
 * It exists because RSA-2048 key generation costs tens of milliseconds; the
 * store's load cost does not depend on whether keys are distinct.
 *
 * --mix N writes N files in the shapes real platforms hold, repeating a plan
 * of 100 (mix_plan below): single names, apex plus wildcard, wildcard only,
 * multi-SAN certificates of 20 to 100 names mixing exact and wildcard names,
 * ECDSA certificates with an RSA twin for the same names, RSA only, IDN
 * (punycode) names, expired and not yet valid. Every second file chains
 * through two intermediates (leaf, DIR/int2.pem, DIR/int.pem; int2 is issued
 * by int). It reuses a pool of keys (--key-pool, default 64 ECDSA; at most 2
 * RSA), so a few thousand files take about a second. Lists, "HOST FILE" per
 * covered name with wildcards instantiated:
 *   names.txt     every name a client accepting ECDSA is served, valid now;
 *   rsa.txt       names an RSA-only client gets another file for (twins,
 *                 RSA only);
 *   expired.txt, notyet.txt   names of expired and not yet valid files;
 *   uncovered.txt one name per line that no certificate covers (beside a
 *                 wildcard's parent, two labels under a wildcard, ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

enum gen_kind { GEN_SITE, GEN_WILD, GEN_EXPIRED };
/* Validity of a leaf: valid now, expired yesterday, valid from tomorrow. */
enum gen_valid { VALID_NOW, VALID_EXPIRED, VALID_LATER };
/* The lists DIR gets (names.txt etc.); the classic mode writes the first two. */
enum gen_list { L_NAMES, L_EXPIRED, L_NOTYET, L_RSA, L_UNCOVERED, L__COUNT };
static const char *const list_files[L__COUNT] = {"names.txt", "expired.txt", "notyet.txt",
                                                 "rsa.txt", "uncovered.txt"};

struct gen {
	const char *out;
	int count, wildcards, expired, split, start, threads, key_pool;
	int rsa, mix;
	const char *domain;
	char **names; /* from --names-from, or NULL */
	int nnames;
	/* The intermediates, as DER, so every thread can decode them in its own
	 * library context: decoding in the default one serializes the threads
	 * on its locks (docs/certificates.md). */
	unsigned char *int_der, *intkey_der, *int2_der, *int2key_der;
	int int_der_len, intkey_der_len, int2_der_len, int2key_der_len;
	atomic_int next;
	int total;
	atomic_int failed;
	FILE *lists[L__COUNT];
	pthread_mutex_t names_lock;
	EVP_PKEY **pool[2]; /* key pools (ECDSA, RSA), filled lazily per slot */
	int pool_size[2];
	pthread_mutex_t pool_lock;
};

static void die(const char *what)
{
	fprintf(stderr, "gencerts: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	rc = X509_add_ext(cert, ext, -1) ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

static EVP_PKEY *keygen(OSSL_LIB_CTX *lctx, int rsa)
{
	if (rsa)
		return EVP_PKEY_Q_keygen(lctx, NULL, "RSA", (size_t)2048);
	return EVP_PKEY_Q_keygen(lctx, NULL, "EC", "P-256");
}

/*
 * Builds and signs one certificate. issuer/ikey NULL means self-signed.
 * ca != 0 makes a CA certificate; san (may be NULL) is the DNS name, or a
 * whole subjectAltName value when it starts with "DNS:".
 */
static X509 *make_cert(OSSL_LIB_CTX *lctx, EVP_PKEY *key, const char *cn, const char *san,
                       X509 *issuer, EVP_PKEY *ikey, int ca, long from, long to, long serial)
{
	X509 *c = X509_new_ex(lctx, NULL);
	X509_NAME *name = NULL;
	ASN1_INTEGER *sn = NULL;
	unsigned char rnd[8];
	char buf[300];
	int ok = 0;

	if (c == NULL)
		goto out;
	X509_set_version(c, X509_VERSION_3);
	if (serial > 0) {
		ASN1_INTEGER_set(X509_get_serialNumber(c), serial);
	} else {
		BIGNUM *bn;

		RAND_bytes(rnd, sizeof(rnd));
		rnd[0] &= 0x7f;
		rnd[0] |= 0x01;
		bn = BN_bin2bn(rnd, sizeof(rnd), NULL);
		sn = BN_to_ASN1_INTEGER(bn, NULL);
		BN_free(bn);
		if (sn == NULL)
			goto out;
		X509_set_serialNumber(c, sn);
	}
	X509_gmtime_adj(X509_getm_notBefore(c), from);
	X509_gmtime_adj(X509_getm_notAfter(c), to);
	name = X509_NAME_new();
	if (name == NULL)
		goto out;
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                           (const unsigned char *)"Switchyard test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(c, name);
	X509_set_issuer_name(c, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(c, key);
	if (ca) {
		if (add_ext(c, issuer ? issuer : c, NID_basic_constraints, "critical,CA:TRUE") <
		        0 ||
		    add_ext(c, issuer ? issuer : c, NID_key_usage, "critical,keyCertSign,cRLSign") <
		        0 ||
		    add_ext(c, issuer ? issuer : c, NID_subject_key_identifier, "hash") < 0)
			goto out;
		if (issuer != NULL &&
		    add_ext(c, issuer, NID_authority_key_identifier, "keyid:always") < 0)
			goto out;
	} else {
		snprintf(buf, sizeof(buf), "DNS:%s", san);
		if (add_ext(c, issuer, NID_basic_constraints, "CA:FALSE") < 0 ||
		    add_ext(c, issuer, NID_ext_key_usage, "serverAuth") < 0 ||
		    add_ext(c, issuer, NID_authority_key_identifier, "keyid") < 0 ||
		    add_ext(c, issuer, NID_subject_alt_name,
		            strncmp(san, "DNS:", 4) == 0 ? san : buf) < 0)
			goto out;
	}
	if (!X509_sign(c, ikey != NULL ? ikey : key, EVP_sha256()))
		goto out;
	ok = 1;
out:
	X509_NAME_free(name);
	ASN1_INTEGER_free(sn);
	if (!ok) {
		X509_free(c);
		c = NULL;
	}
	return c;
}

/* Writes buf to path through a temporary file and rename(), so a store
 * reloading concurrently never sees a half-written file. */
static int write_file(const char *path, const char *buf, size_t len, mode_t mode)
{
	char tmp[4200];
	int fd, rc = -1;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d.%lu", path, (int)getpid(),
	         (unsigned long)pthread_self());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto out;
		}
		buf += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0) {
		fd = -1;
		goto out;
	}
	fd = -1;
	rc = rename(tmp, path);
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int write_bio(const char *path, BIO *b, mode_t mode)
{
	char *p;
	long n = BIO_get_mem_data(b, &p);

	return write_file(path, p, (size_t)n, mode);
}

static int put_chain(BIO *b, X509 *const *chain, int nchain)
{
	for (int i = 0; i < nchain; i++)
		if (!PEM_write_bio_X509(b, chain[i]))
			return 0;
	return 1;
}

static int put_key(BIO *b, EVP_PKEY *key, int traditional)
{
	if (traditional)
		return PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL);
	return PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
}

/*
 * Issues one leaf for host (the CN; also the SAN unless san is given, see
 * make_cert) and writes it. chain[0..nchain) follows the leaf in the file,
 * chain[0] is its issuer and ikey that issuer's key. file is the base name
 * without extension. split writes file.crt + file.key. idx only varies the
 * key encoding and position.
 */
static int issue(OSSL_LIB_CTX *lctx, const char *dir, const char *host, const char *san,
                 const char *file, X509 *const *chain, int nchain, EVP_PKEY *ikey, EVP_PKEY *key,
                 int idx, int split, enum gen_valid valid, long serial, const char *outpath)
{
	X509 *leaf;
	BIO *b = NULL, *kb = NULL;
	char path[4200];
	int rc = -1;
	int trad = idx % 2, key_first = (idx % 3) == 2;
	long from = -86400L, to = 397L * 86400;

	if (valid == VALID_EXPIRED) {
		from = -60L * 86400;
		to = -86400L;
	} else if (valid == VALID_LATER) {
		from = 86400L;
		to = 90L * 86400;
	}
	leaf = make_cert(lctx, key, host, san != NULL ? san : host, chain[0], ikey, 0, from, to,
	                 serial);
	if (leaf == NULL)
		return -1;
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		goto out;
	if (split) {
		kb = BIO_new(BIO_s_mem());
		if (kb == NULL || !PEM_write_bio_X509(b, leaf) || !put_chain(b, chain, nchain) ||
		    !put_key(kb, key, trad))
			goto out;
		snprintf(path, sizeof(path), "%s/%s.key", dir, file);
		if (write_bio(path, kb, 0600) < 0)
			goto out;
		snprintf(path, sizeof(path), "%s/%s.crt", dir, file);
		if (write_bio(path, b, 0644) < 0)
			goto out;
	} else {
		if (key_first && !put_key(b, key, trad))
			goto out;
		if (!PEM_write_bio_X509(b, leaf) || !put_chain(b, chain, nchain))
			goto out;
		if (!key_first && !put_key(b, key, trad))
			goto out;
		if (outpath != NULL)
			snprintf(path, sizeof(path), "%s", outpath);
		else
			snprintf(path, sizeof(path), "%s/%s.pem", dir, file);
		if (write_bio(path, b, 0600) < 0)
			goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	BIO_free(kb);
	X509_free(leaf);
	return rc;
}

static EVP_PKEY *pool_key(struct gen *g, OSSL_LIB_CTX *lctx, int i, int rsa)
{
	EVP_PKEY **slot, *k;

	if (g->pool_size[rsa] <= 0)
		return keygen(lctx, rsa);
	/* Pooled keys live in the default context so any thread can sign with
	 * them; only their public half is used here. */
	slot = &g->pool[rsa][i % g->pool_size[rsa]];
	pthread_mutex_lock(&g->pool_lock);
	k = *slot;
	pthread_mutex_unlock(&g->pool_lock);
	if (k == NULL) {
		k = keygen(NULL, rsa);
		if (k == NULL)
			return NULL;
		pthread_mutex_lock(&g->pool_lock);
		if (*slot == NULL) {
			*slot = k;
		} else {
			EVP_PKEY_free(k);
			k = *slot;
		}
		pthread_mutex_unlock(&g->pool_lock);
	}
	EVP_PKEY_up_ref(k);
	return k;
}

static void put_line(struct gen *g, enum gen_list l, const char *line)
{
	pthread_mutex_lock(&g->names_lock);
	fputs(line, g->lists[l]);
	pthread_mutex_unlock(&g->names_lock);
}

/* One file of the classic mode: sites, then wildcards, then expired. */
static int classic_one(struct gen *g, OSSL_LIB_CTX *lctx, const char *certs, X509 *icert,
                       EVP_PKEY *ikey, int i)
{
	char host[300], file[300], line[700];
	int n = g->start + i, kind, split = 0, rc;
	EVP_PKEY *key;

	if (i < g->count) {
		kind = GEN_SITE;
		split = i < g->split;
		if (g->names != NULL) {
			snprintf(host, sizeof(host), "%s", g->names[i]);
			snprintf(file, sizeof(file), "%s", g->names[i]);
			for (size_t k = 0; file[k] != '\0'; k++)
				if (file[k] == '*' || file[k] == '/')
					file[k] = '_';
		} else {
			snprintf(host, sizeof(host), "site%d.%s", n, g->domain);
			snprintf(file, sizeof(file), "site%d", n);
		}
	} else if (i < g->count + g->wildcards) {
		kind = GEN_WILD;
		n = g->start + i - g->count;
		snprintf(host, sizeof(host), "*.wild%d.%s", n, g->domain);
		snprintf(file, sizeof(file), "wild%d", n);
	} else {
		kind = GEN_EXPIRED;
		n = g->start + i - g->count - g->wildcards;
		snprintf(host, sizeof(host), "expired%d.%s", n, g->domain);
		snprintf(file, sizeof(file), "expired%d", n);
	}
	key = pool_key(g, lctx, i, g->rsa);
	rc = key == NULL ? -1
	                 : issue(lctx, certs, host, NULL, file, &icert, 1, ikey, key, i, split,
	                         kind == GEN_EXPIRED ? VALID_EXPIRED : VALID_NOW, 0, NULL);
	EVP_PKEY_free(key);
	if (rc < 0)
		return -1;
	snprintf(line, sizeof(line), "%s%s %s%s\n", kind == GEN_WILD ? "host" : "",
	         kind == GEN_WILD ? host + 1 : host, file, split ? ".crt" : ".pem");
	put_line(g, kind == GEN_EXPIRED ? L_EXPIRED : L_NAMES, line);
	return 0;
}

/*
 * The --mix plan: file i gets the shape of the first row whose bound exceeds
 * i % 100. The shares follow what a SaaS platform holds: mostly single names,
 * many apex + wildcard and wildcard-only certificates, some large multi-SAN
 * ones, and a few of every other kind.
 */
enum mix_kind {
	MIX_SITE,
	MIX_APEX,
	MIX_WILD,
	MIX_MULTI,
	MIX_TWIN,
	MIX_IDN,
	MIX_RSA,
	MIX_OLD,
	MIX_NEW
};
static const struct {
	int below;
	enum mix_kind kind;
} mix_plan[] = {{48, MIX_SITE}, {63, MIX_APEX}, {77, MIX_WILD}, {80, MIX_MULTI}, {88, MIX_TWIN},
                {92, MIX_IDN},  {94, MIX_RSA},  {97, MIX_OLD},  {100, MIX_NEW}};

/* A SAN list under construction, and the list lines that go with it. */
struct mix_out {
	char cn[300], san[8192], lines[16384], unc[1024];
	size_t sanlen, linelen, unclen;
};

/* Adds name to the SAN list; its "HOST FILE" line uses inst (the name with
 * a wildcard instantiated) when given. */
static void mix_name(struct mix_out *o, const char *file, const char *inst, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void mix_name(struct mix_out *o, const char *file, const char *inst, const char *fmt, ...)
{
	char name[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	if (o->sanlen == 0)
		snprintf(o->cn, sizeof(o->cn), "%s", name);
	o->sanlen += (size_t)snprintf(o->san + o->sanlen, sizeof(o->san) - o->sanlen, "%sDNS:%s",
	                              o->sanlen ? "," : "", name);
	if (name[0] == '*')
		o->linelen += (size_t)snprintf(o->lines + o->linelen, sizeof(o->lines) - o->linelen,
		                               "%s%s %s.pem\n", inst, name + 1, file);
	else
		o->linelen += (size_t)snprintf(o->lines + o->linelen, sizeof(o->lines) - o->linelen,
		                               "%s %s.pem\n", name, file);
}

static void mix_uncovered(struct mix_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mix_uncovered(struct mix_out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	o->unclen += (size_t)vsnprintf(o->unc + o->unclen, sizeof(o->unc) - o->unclen, fmt, ap);
	va_end(ap);
	o->unclen += (size_t)snprintf(o->unc + o->unclen, sizeof(o->unc) - o->unclen, "\n");
}

/* One file of --mix. chain1 is {int}, chain2 {int2, int}; ikeys their keys. */
static int mix_one(struct gen *g, OSSL_LIB_CTX *lctx, const char *certs, X509 *const *chain1,
                   X509 *const *chain2, EVP_PKEY *const *ikeys, int i)
{
	struct mix_out *o = calloc(1, sizeof(*o));
	const char *d = g->domain;
	char file[300];
	int n = g->start + i, r = i % 100, two = i % 2, rsa = 0, rc = -1, k = 0, m;
	enum gen_list list = L_NAMES;
	enum gen_valid valid = VALID_NOW;
	enum mix_kind kind;
	EVP_PKEY *key;

	if (o == NULL)
		return -1;
	while (mix_plan[k].below <= r)
		k++;
	kind = mix_plan[k].kind;
	switch (kind) {
	case MIX_SITE:
		snprintf(file, sizeof(file), "site%d", n);
		mix_name(o, file, NULL, "site%d.%s", n, d);
		mix_uncovered(o, "x.site%d.%s", n, d);
		break;
	case MIX_APEX:
		snprintf(file, sizeof(file), "apex%d", n);
		mix_name(o, file, NULL, "apex%d.%s", n, d);
		mix_name(o, file, "www", "*.apex%d.%s", n, d);
		mix_uncovered(o, "a.b.apex%d.%s", n, d);
		break;
	case MIX_WILD:
		snprintf(file, sizeof(file), "wc%d", n);
		mix_name(o, file, "host", "*.wc%d.%s", n, d);
		mix_uncovered(o, "wc%d.%s", n, d);
		mix_uncovered(o, "a.b.wc%d.%s", n, d);
		break;
	case MIX_MULTI:
		/* 20 to 100 names: exact, apex + wildcard pairs, wildcard only. */
		snprintf(file, sizeof(file), "multi%d", n);
		m = 20 + (n * 37) % 81;
		for (k = 0; k < m; k++) {
			if (k % 4 == 0)
				mix_name(o, file, NULL, "m%d-%d.%s", n, k, d);
			else if (k % 4 == 1)
				mix_name(o, file, "h1", "*.m%d-%d.%s", n, k - 1, d);
			else if (k % 4 == 2)
				mix_name(o, file, "h2", "*.mw%d-%d.%s", n, k, d);
			else
				mix_name(o, file, NULL, "www.m%d-%d.%s", n, k, d);
		}
		mix_uncovered(o, "mw%d-2.%s", n, d);
		mix_uncovered(o, "m%d-%d.%s", n, m + 3, d);
		break;
	case MIX_TWIN:
		/* Even rows are the ECDSA file, odd rows its RSA twin: the same
		 * names, so only the client's signature algorithms decide. */
		rsa = r % 2;
		snprintf(file, sizeof(file), "twin%d%s", n - rsa, rsa ? "-rsa" : "");
		mix_name(o, file, NULL, "twin%d.%s", n - rsa, d);
		mix_name(o, file, "api", "*.twin%d.%s", n - rsa, d);
		if (rsa)
			list = L_RSA;
		else
			mix_uncovered(o, "a.b.twin%d.%s", n, d);
		break;
	case MIX_IDN:
		/* bücher, café and münchen in their ACE (punycode) form. */
		snprintf(file, sizeof(file), "idn%d", n);
		mix_name(o, file, NULL, "xn--bcher-kva.idn%d.%s", n, d);
		mix_name(o, file, NULL, "xn--caf-dma.idn%d.%s", n, d);
		mix_name(o, file, "host", "*.xn--mnchen-3ya.idn%d.%s", n, d);
		mix_uncovered(o, "xn--mnchen-3ya.idn%d.%s", n, d);
		break;
	case MIX_RSA:
		rsa = 1;
		snprintf(file, sizeof(file), "rsa%d", n);
		mix_name(o, file, NULL, "rsa%d.%s", n, d);
		break;
	case MIX_OLD:
		snprintf(file, sizeof(file), "expired%d", n);
		mix_name(o, file, NULL, "expired%d.%s", n, d);
		list = L_EXPIRED;
		valid = VALID_EXPIRED;
		break;
	case MIX_NEW:
		snprintf(file, sizeof(file), "future%d", n);
		mix_name(o, file, NULL, "future%d.%s", n, d);
		list = L_NOTYET;
		valid = VALID_LATER;
		break;
	}
	mix_uncovered(o, "nobody%d.%s", n, d);
	key = pool_key(g, lctx, i, rsa);
	if (key != NULL && issue(lctx, certs, o->cn, o->san, file, two ? chain2 : chain1,
	                         two ? 2 : 1, ikeys[two], key, i, 0, valid, 0, NULL) == 0) {
		put_line(g, list, o->lines);
		if (kind == MIX_RSA)
			put_line(g, L_RSA, o->lines);
		put_line(g, L_UNCOVERED, o->unc);
		rc = 0;
	}
	EVP_PKEY_free(key);
	free(o);
	return rc;
}

static X509 *der_cert(OSSL_LIB_CTX *lctx, const unsigned char *der, int len)
{
	X509 *x = X509_new_ex(lctx, NULL);

	if (x != NULL && d2i_X509(&x, &der, len) == NULL) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static void *worker(void *arg)
{
	struct gen *g = arg;
	OSSL_LIB_CTX *lctx = OSSL_LIB_CTX_new();
	const unsigned char *p;
	X509 *chain1[1] = {NULL}, *chain2[2] = {NULL, NULL};
	EVP_PKEY *ikeys[2] = {NULL, NULL};
	char certs[4200];
	int i, ok = 0;

	if (lctx == NULL || (chain1[0] = der_cert(lctx, g->int_der, g->int_der_len)) == NULL)
		goto out;
	p = g->intkey_der;
	if ((ikeys[0] = d2i_AutoPrivateKey_ex(NULL, &p, g->intkey_der_len, lctx, NULL)) == NULL)
		goto out;
	if (g->mix) {
		chain2[1] = chain1[0];
		chain2[0] = der_cert(lctx, g->int2_der, g->int2_der_len);
		p = g->int2key_der;
		ikeys[1] = d2i_AutoPrivateKey_ex(NULL, &p, g->int2key_der_len, lctx, NULL);
		if (chain2[0] == NULL || ikeys[1] == NULL)
			goto out;
	}
	ok = 1;
	snprintf(certs, sizeof(certs), "%s/certs", g->out);
	while ((i = atomic_fetch_add(&g->next, 1)) < g->total) {
		int rc = g->mix ? mix_one(g, lctx, certs, chain1, chain2, ikeys, i)
		                : classic_one(g, lctx, certs, chain1[0], ikeys[0], i);

		if (rc < 0) {
			fprintf(stderr, "gencerts: cannot issue certificate #%d\n", g->start + i);
			ERR_print_errors_fp(stderr);
			atomic_fetch_add(&g->failed, 1);
		}
	}
out:
	if (!ok) {
		fprintf(stderr, "gencerts: worker setup failed\n");
		ERR_print_errors_fp(stderr);
		atomic_fetch_add(&g->failed, 1);
	}
	X509_free(chain1[0]);
	X509_free(chain2[0]);
	EVP_PKEY_free(ikeys[0]);
	EVP_PKEY_free(ikeys[1]);
	OSSL_LIB_CTX_free(lctx);
	return NULL;
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL)
		return NULL;
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	return x;
}

static EVP_PKEY *read_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		return NULL;
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	return k;
}

static void write_cert_key(const char *dir, const char *base, X509 *c, EVP_PKEY *k)
{
	char path[4200];
	BIO *b = BIO_new(BIO_s_mem());

	if (b == NULL || !PEM_write_bio_X509(b, c))
		die("cannot encode CA");
	snprintf(path, sizeof(path), "%s/%s.pem", dir, base);
	if (write_bio(path, b, 0644) < 0)
		die("cannot write CA certificate");
	BIO_free(b);
	b = BIO_new(BIO_s_mem());
	if (b == NULL || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
		die("cannot encode CA key");
	snprintf(path, sizeof(path), "%s/%s.key", dir, base);
	if (write_bio(path, b, 0600) < 0)
		die("cannot write CA key");
	BIO_free(b);
}

/* Loads DIR's CA and intermediate, creating both on the first run. */
static void ca_setup(const char *dir, X509 **icert, EVP_PKEY **ikey)
{
	char path[4200];
	X509 *ca;
	EVP_PKEY *cakey;

	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	if (access(path, F_OK) == 0) {
		snprintf(path, sizeof(path), "%s/int.pem", dir);
		*icert = read_cert(path);
		snprintf(path, sizeof(path), "%s/int.key", dir);
		*ikey = read_key(path);
		if (*icert == NULL || *ikey == NULL)
			die("DIR/ca.pem exists but int.pem/int.key cannot be read");
		return;
	}
	cakey = keygen(NULL, 0);
	*ikey = keygen(NULL, 0);
	if (cakey == NULL || *ikey == NULL)
		die("CA key generation failed");
	/* The CAs are valid from ten years ago so that "expired" leaves still
	 * chain to a CA that was valid at the time. */
	ca = make_cert(NULL, cakey, "Switchyard Test Root CA", NULL, NULL, NULL, 1, -3650L * 86400,
	               3650L * 86400, 0);
	if (ca == NULL)
		die("cannot make root CA");
	*icert = make_cert(NULL, *ikey, "Switchyard Test Intermediate CA", NULL, ca, cakey, 1,
	                   -3650L * 86400, 3650L * 86400, 0);
	if (*icert == NULL)
		die("cannot make intermediate CA");
	write_cert_key(dir, "ca", ca, cakey);
	write_cert_key(dir, "int", *icert, *ikey);
	X509_free(ca);
	EVP_PKEY_free(cakey);
}

/* Loads DIR's second intermediate (issued by the first), creating it on the
 * first --mix run. */
static void int2_setup(const char *dir, X509 *icert, EVP_PKEY *ikey, X509 **i2, EVP_PKEY **k2)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/int2.pem", dir);
	if (access(path, F_OK) == 0) {
		*i2 = read_cert(path);
		snprintf(path, sizeof(path), "%s/int2.key", dir);
		*k2 = read_key(path);
		if (*i2 == NULL || *k2 == NULL)
			die("DIR/int2.pem exists but int2.pem/int2.key cannot be read");
		return;
	}
	*k2 = keygen(NULL, 0);
	if (*k2 == NULL)
		die("CA key generation failed");
	*i2 = make_cert(NULL, *k2, "Switchyard Test Intermediate CA 2", NULL, icert, ikey, 1,
	                -3650L * 86400, 3650L * 86400, 0);
	if (*i2 == NULL)
		die("cannot make the second intermediate CA");
	write_cert_key(dir, "int2", *i2, *k2);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: gencerts --out DIR --count N [--type ec|rsa] [--domain D]\n"
	        "                [--names-from FILE] [--wildcards K] [--expired K] [--split K]\n"
	        "                [--start I] [--threads T] [--key-pool P]\n"
	        "       gencerts --out DIR --one NAME --file OUT [--type ec|rsa] [--serial S]\n"
	        "                [--expired 1]\n"
	        "       gencerts --out DIR --mix N [--domain D] [--start I] [--threads T]\n"
	        "                [--key-pool P]\n");
	exit(2);
}

static int load_names(struct gen *g, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[300];

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *s = strtok(line, " \t\r\n");

		if (s == NULL || s[0] == '#')
			continue;
		g->names = realloc(g->names, sizeof(char *) * (size_t)(g->nnames + 1));
		if (g->names == NULL)
			die("out of memory");
		g->names[g->nnames++] = strdup(s);
	}
	fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"out", 1, NULL, 'o'},     {"count", 1, NULL, 'n'},      {"type", 1, NULL, 't'},
	    {"domain", 1, NULL, 'd'},  {"names-from", 1, NULL, 'N'}, {"wildcards", 1, NULL, 'w'},
	    {"expired", 1, NULL, 'e'}, {"split", 1, NULL, 's'},      {"start", 1, NULL, 'S'},
	    {"threads", 1, NULL, 'T'}, {"one", 1, NULL, '1'},        {"file", 1, NULL, 'f'},
	    {"serial", 1, NULL, 'r'},  {"key-pool", 1, NULL, 'k'},   {"mix", 1, NULL, 'm'},
	    {NULL, 0, NULL, 0}};
	struct gen g;
	const char *one = NULL, *onefile = NULL, *names_from = NULL;
	long serial = 0;
	int c, start_given = 0;
	char path[4200];
	X509 *icert = NULL, *i2 = NULL;
	EVP_PKEY *ikey = NULL, *k2 = NULL;
	pthread_t *tids;
	struct timespec t0, t1;

	memset(&g, 0, sizeof(g));
	g.domain = "example.test";
	g.start = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o':
			g.out = optarg;
			break;
		case 'n':
			g.count = atoi(optarg);
			break;
		case 't':
			if (strcmp(optarg, "rsa") == 0)
				g.rsa = 1;
			else if (strcmp(optarg, "ec") != 0)
				usage();
			break;
		case 'd':
			g.domain = optarg;
			break;
		case 'N':
			names_from = optarg;
			break;
		case 'w':
			g.wildcards = atoi(optarg);
			break;
		case 'e':
			g.expired = atoi(optarg);
			break;
		case 's':
			g.split = atoi(optarg);
			break;
		case 'S':
			g.start = atoi(optarg);
			start_given = 1;
			break;
		case 'T':
			g.threads = atoi(optarg);
			break;
		case '1':
			one = optarg;
			break;
		case 'f':
			onefile = optarg;
			break;
		case 'r':
			serial = atol(optarg);
			break;
		case 'k':
			g.key_pool = atoi(optarg);
			break;
		case 'm':
			g.mix = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (g.out == NULL || optind != argc || (one == NULL && g.count < 0) ||
	    (one != NULL && onefile == NULL) || (g.mix > 0 && (one != NULL || g.count > 0)))
		usage();
	if (mkdir(g.out, 0755) < 0 && errno != EEXIST)
		die("cannot create --out directory");
	snprintf(path, sizeof(path), "%s/certs", g.out);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die("cannot create DIR/certs");
	ca_setup(g.out, &icert, &ikey);

	if (one != NULL) {
		EVP_PKEY *key = keygen(NULL, g.rsa);

		if (key == NULL ||
		    issue(NULL, g.out, one, NULL, one, &icert, 1, ikey, key, 0, 0,
		          g.expired > 0 ? VALID_EXPIRED : VALID_NOW, serial, onefile) < 0)
			die("cannot issue the certificate");
		EVP_PKEY_free(key);
		X509_free(icert);
		EVP_PKEY_free(ikey);
		return 0;
	}

	if (names_from != NULL) {
		if (load_names(&g, names_from) < 0)
			die("cannot read --names-from file");
		if (g.count == 0 || g.count > g.nnames)
			g.count = g.nnames;
	}
	g.int_der_len = i2d_X509(icert, &g.int_der);
	g.intkey_der_len = i2d_PrivateKey(ikey, &g.intkey_der);
	if (g.int_der_len <= 0 || g.intkey_der_len <= 0)
		die("cannot encode the intermediate");
	if (g.mix > 0) {
		int2_setup(g.out, icert, ikey, &i2, &k2);
		g.int2_der_len = i2d_X509(i2, &g.int2_der);
		g.int2key_der_len = i2d_PrivateKey(k2, &g.int2key_der);
		if (g.int2_der_len <= 0 || g.int2key_der_len <= 0)
			die("cannot encode the second intermediate");
		if (g.key_pool <= 0)
			g.key_pool = 64;
	}
	for (int l = 0; l < (g.mix > 0 ? L__COUNT : L_EXPIRED + 1); l++) {
		snprintf(path, sizeof(path), "%s/%s", g.out, list_files[l]);
		g.lists[l] = fopen(path, start_given ? "a" : "w");
		if (g.lists[l] == NULL)
			die("cannot write the name lists (names.txt, ...)");
	}
	/* A mixed set needs few RSA keys: each costs ~180 ms to generate. */
	g.pool_size[g.rsa] = g.key_pool;
	if (g.mix > 0)
		g.pool_size[1] = g.key_pool < 2 ? g.key_pool : 2;
	for (int t = 0; t < 2; t++) {
		if (g.pool_size[t] > 0 &&
		    (g.pool[t] = calloc((size_t)g.pool_size[t], sizeof(EVP_PKEY *))) == NULL)
			die("out of memory");
	}
	pthread_mutex_init(&g.names_lock, NULL);
	pthread_mutex_init(&g.pool_lock, NULL);
	if (g.threads <= 0)
		g.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (g.threads <= 0)
		g.threads = 1;
	g.total = g.mix > 0 ? g.mix : g.count + g.wildcards + g.expired;
	tids = calloc((size_t)g.threads, sizeof(*tids));
	if (tids == NULL)
		die("out of memory");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < g.threads; i++)
		if (pthread_create(&tids[i], NULL, worker, &g) != 0)
			die("pthread_create failed");
	for (int i = 0; i < g.threads; i++)
		pthread_join(tids[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int l = 0; l < L__COUNT; l++)
		if (g.lists[l] != NULL)
			fclose(g.lists[l]);
	fprintf(stderr, "gencerts: %d certificates (%s) in %s/certs in %.2f s\n", g.total,
	        g.mix > 0 ? "mixed"
	        : g.rsa   ? "RSA-2048"
	                  : "ECDSA P-256",
	        g.out, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	for (int t = 0; t < 2; t++) {
		for (int i = 0; i < g.pool_size[t]; i++)
			EVP_PKEY_free(g.pool[t][i]);
		free(g.pool[t]);
	}
	for (int i = 0; i < g.nnames; i++)
		free(g.names[i]);
	free(g.names);
	free(tids);
	OPENSSL_free(g.int_der);
	OPENSSL_clear_free(g.intkey_der, (size_t)g.intkey_der_len);
	OPENSSL_free(g.int2_der);
	if (g.int2key_der != NULL)
		OPENSSL_clear_free(g.int2key_der, (size_t)g.int2key_der_len);
	X509_free(icert);
	X509_free(i2);
	EVP_PKEY_free(ikey);
	EVP_PKEY_free(k2);
	return atomic_load(&g.failed) > 0 ? 1 : 0;
}
