/*
 * fuzz_cert: the certificate file parser and validator (cert_load_file),
 * the code that `switchyard certs check` and every store load run on each
 * file: PEM splitting, base64, DER decoding of the leaf, the chain and the
 * key, key match, chain order, dates and DNS names.
 *
 * The first input byte picks how the rest becomes files:
 *   mode 0: the rest is one combined file, as is;
 *   mode 1: a two-byte length splits the rest into NAME.crt and NAME.key;
 *   mode 2: the rest is a list of blocks (kind byte, two-byte length, DER),
 *           each written as a PEM block whose label the kind picks, so that
 *           the fuzzer mutates DER rather than base64. Bit 7 of the first
 *           byte moves every key block into NAME.key.
 * Bit 6 of the first byte selects certs.expired: skip.
 *
 * The files live in a private directory on tmpfs when there is one. A
 * loaded item must be self-consistent: normalised names, a leaf that
 * decodes, a private key at rest that decodes back into the key of the
 * leaf, and the same content hash as cert_hash_file.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "certstore/cert_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed "now" (2030-01-01T00:00:00Z) keeps the verdicts reproducible. */
#define FUZZ_NOW 1893456000

static int dirfd_ = -1;
static char dir_[64];
static struct cert_loader *ld_;
static struct cert_chain_pool *pool_;

static const char *const labels[] = {"CERTIFICATE",     "PRIVATE KEY",           "EC PRIVATE KEY",
                                     "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "X509 CRL"};

static void cleanup(void)
{
	unlinkat(dirfd_, "f.crt", 0);
	unlinkat(dirfd_, "f.key", 0);
	rmdir(dir_);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(dir_, sizeof(dir_), "%s/fuzz_cert.XXXXXX", base);
	if (mkdtemp(dir_) == NULL)
		abort();
	dirfd_ = open(dir_, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ld_ = cert_loader_new(0);
	pool_ = cert_chain_pool_new(NULL);
	if (dirfd_ < 0 || ld_ == NULL || pool_ == NULL)
		abort();
	atexit(cleanup);
}

/* A growable byte buffer; out of memory aborts (the target, not the
 * product, ran out). */
struct buf {
	unsigned char *p;
	size_t n, cap;
};

static void put(struct buf *b, const void *d, size_t n)
{
	if (n == 0)
		return;
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->n, d, n);
	b->n += n;
}

static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void put_pem(struct buf *b, const char *label, const unsigned char *der, size_t n)
{
	unsigned char *enc = malloc(4 * ((n + 2) / 3) + 1);
	int len;

	if (enc == NULL)
		abort();
	len = EVP_EncodeBlock(enc, der, (int)n);
	put_str(b, "-----BEGIN ");
	put_str(b, label);
	put_str(b, "-----\n");
	for (int i = 0; i < len; i += 64) {
		put(b, enc + i, (size_t)(len - i < 64 ? len - i : 64));
		put_str(b, "\n");
	}
	put_str(b, "-----END ");
	put_str(b, label);
	put_str(b, "-----\n");
	free(enc);
}

static void write_file(const char *name, const unsigned char *d, size_t n)
{
	int fd = openat(dirfd_, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		abort();
	for (size_t off = 0; off < n;) {
		ssize_t w = write(fd, d + off, n - off);

		if (w <= 0)
			abort();
		off += (size_t)w;
	}
	close(fd);
}

static void check_item(struct cert_item *it, const char *key_name, enum cert_sev sev,
                       const char *msg, const unsigned char hash[32], const struct cert_opts *opts)
{
	char norm[CERT_NAME_MAX + 1];
	unsigned char h2[32];
	const unsigned char *q = it->leaf_der;
	X509 *leaf;
	EVP_PKEY *k;

	if (sev != CERT_OK && sev != CERT_WARN)
		abort();
	if (sev == CERT_WARN && (msg == NULL || msg[0] == '\0'))
		abort();
	for (size_t i = 0; i < it->nnames; i++) {
		int n = cert_name_norm(it->names[i], strlen(it->names[i]), norm);

		if (n < 0 || strcmp(norm, it->names[i]) != 0)
			abort();
	}
	leaf = d2i_X509(NULL, &q, (long)it->leaf_der_len);
	if (leaf == NULL)
		abort();
	/* The key kept at rest must decode into the leaf's key. */
	k = cert_item_key_decode(it);
	if (k == NULL || X509_check_private_key(leaf, k) != 1)
		abort();
	if ((EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) != (it->is_ec != 0))
		abort();
	EVP_PKEY_free(k);
	X509_free(leaf);
	/* A delta reload compares this hash with cert_hash_file's. */
	if (cert_hash_file(ld_, dirfd_, "f.crt", key_name, opts->max_file_size, h2) < 0 ||
	    memcmp(h2, hash, 32) != 0)
		abort();
	ERR_clear_error();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf crt = {0}, key = {0};
	struct cert_opts opts;
	const char *key_name = NULL;
	unsigned char hash[32];
	enum cert_sev sev;
	struct cert_item *it;
	char *msg = NULL;
	unsigned mode;

	if (dirfd_ < 0)
		setup();
	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;
	switch (mode & 3) {
	case 1: {
		size_t split = size >= 2 ? (size_t)(data[0] << 8 | data[1]) : 0;

		data += size >= 2 ? 2 : size;
		size -= size >= 2 ? 2 : size;
		if (split > size)
			split = size;
		put(&crt, data, split);
		put(&key, data + split, size - split);
		key_name = "f.key";
		break;
	}
	case 2:
		while (size >= 3) {
			unsigned kind = data[0] % (sizeof(labels) / sizeof(labels[0]));
			size_t n = (size_t)(data[1] << 8 | data[2]);

			data += 3;
			size -= 3;
			if (n > size)
				n = size;
			put_pem(kind != 0 && (mode & 0x80) ? &key : &crt, labels[kind], data, n);
			data += n;
			size -= n;
		}
		if (mode & 0x80)
			key_name = "f.key";
		break;
	default:
		put(&crt, data, size);
		break;
	}
	write_file("f.crt", crt.p, crt.n);
	if (key_name != NULL)
		write_file(key_name, key.p, key.n);

	cert_opts_defaults(&opts);
	opts.now = FUZZ_NOW;
	opts.threads = 1;
	opts.expired = (mode & 0x40) ? CFG_EXPIRED_SKIP : CFG_EXPIRED_SERVE;
	it = cert_load_file(ld_, dirfd_, "f.crt", key_name, &opts, pool_, hash, &sev, &msg);
	if (it == NULL) {
		/* A skipped file always says why. */
		if (sev != CERT_SKIP || msg == NULL || msg[0] == '\0')
			abort();
	} else {
		check_item(it, key_name, sev, msg, hash, &opts);
		cert_item_unref(it);
	}
	free(msg);
	free(crt.p);
	free(key.p);
	if (key_name != NULL)
		unlinkat(dirfd_, key_name, 0);
	/* The chain pool keeps every distinct chain certificate it has seen;
	 * a new pool per input keeps memory flat over a long run. */
	cert_chain_pool_free(pool_);
	pool_ = cert_chain_pool_new(NULL);
	if (pool_ == NULL)
		abort();
	return 0;
}
