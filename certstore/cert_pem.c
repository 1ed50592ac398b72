/*
 * cert_pem: the first half of loading a certificate file, before OpenSSL
 * sees any of it: reading the file into the loader's reusable buffer,
 * splitting it into PEM blocks and decoding their base64. cert_load.c does
 * this itself instead of calling PEM_read_bio_*, which runs the generic
 * OSSL_DECODER search for every object (the top of cert_load.c gives the
 * figures). Nothing here keeps state but the base64 table.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "certstore/cert_int.h"

/* Maps a base64 character to its value; -2 for whitespace, -3 for '=',
 * -1 for anything else. A table, because decoding is a tenth of a load. */
static signed char b64_tab[256];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void b64_init(void)
{
	static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	memset(b64_tab, -1, sizeof(b64_tab));
	for (int i = 0; i < 64; i++)
		b64_tab[(unsigned char)al[i]] = (signed char)i;
	b64_tab['\n'] = b64_tab['\r'] = b64_tab[' '] = b64_tab['\t'] = -2;
	b64_tab['='] = -3;
}

void cert_pem_init(void)
{
	pthread_once(&b64_once, b64_init);
}

int cert_read_file(int dirfd, const char *name, uint32_t max, unsigned char **buf, size_t *cap,
                   size_t *len, char **msg)
{
	struct stat st;
	int fd, rc = -1;
	size_t got = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		*msg = cert_strdup_printf("cannot open %s: %s", name, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		*msg = cert_strdup_printf("cannot stat %s: %s", name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		*msg = cert_strdup_printf("%s is not a regular file", name);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		*msg = cert_strdup_printf("%s is %lld bytes, over the limit of %u bytes "
		                          "(certs.max_file_size)",
		                          name, (long long)st.st_size, max);
		goto out;
	}
	if (*cap < (size_t)st.st_size + 1) {
		unsigned char *nb = malloc((size_t)st.st_size + 1);

		if (nb == NULL) {
			*msg = cert_strdup_printf("out of memory");
			goto out;
		}
		if (*buf != NULL)
			OPENSSL_cleanse(*buf, *cap);
		free(*buf);
		*buf = nb;
		*cap = (size_t)st.st_size + 1;
	}
	/* The file may grow between fstat and read; reading at most cap - 1
	 * bytes keeps the size limit and the buffer bound. */
	while (got < *cap - 1) {
		ssize_t n = read(fd, *buf + got, *cap - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*msg = cert_strdup_printf("cannot read %s: %s", name, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	(*buf)[got] = '\0';
	*len = got;
	rc = 0;
out:
	close(fd);
	return rc;
}

static const unsigned char *find_str(const unsigned char *p, const unsigned char *end,
                                     const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(end - p) < n)
		return NULL;
	return memmem(p, (size_t)(end - p), s, n);
}

static enum cert_pem_kind pem_label_kind(const unsigned char *l, size_t n)
{
#define IS(s) (n == sizeof(s) - 1 && memcmp(l, s, n) == 0)
	if (IS("CERTIFICATE") || IS("X509 CERTIFICATE"))
		return CERT_PEM_CERT;
	if (IS("PRIVATE KEY"))
		return CERT_PEM_KEY_P8;
	if (IS("EC PRIVATE KEY"))
		return CERT_PEM_KEY_EC;
	if (IS("RSA PRIVATE KEY"))
		return CERT_PEM_KEY_RSA;
	if (IS("ENCRYPTED PRIVATE KEY"))
		return CERT_PEM_KEY_ENC;
	return CERT_PEM_OTHER;
#undef IS
}

int cert_pem_split(const unsigned char *buf, size_t len, struct cert_pem_block *blk, int max,
                   char **msg, const char *where)
{
	const unsigned char *p = buf, *end = buf + len;
	int n = 0;

	while ((p = find_str(p, end, "-----BEGIN ")) != NULL) {
		const unsigned char *label = p + 11, *lend, *body, *e;
		size_t llen;

		lend = find_str(label, end, "-----");
		if (lend == NULL || memchr(label, '\n', (size_t)(lend - label)) != NULL) {
			*msg = cert_strdup_printf("%smalformed PEM BEGIN line", where);
			return -1;
		}
		llen = (size_t)(lend - label);
		body = memchr(lend, '\n', (size_t)(end - lend));
		if (body == NULL) {
			*msg = cert_strdup_printf("%struncated PEM block '%.*s' (no END line)",
			                          where, (int)llen, (const char *)label);
			return -1;
		}
		body++;
		e = find_str(body, end, "-----END ");
		if (e == NULL) {
			*msg = cert_strdup_printf("%struncated PEM block '%.*s' (no END line)",
			                          where, (int)llen, (const char *)label);
			return -1;
		}
		if ((size_t)(end - e) < 9 + llen + 5 || memcmp(e + 9, label, llen) != 0 ||
		    memcmp(e + 9 + llen, "-----", 5) != 0) {
			*msg = cert_strdup_printf("%sPEM block '%.*s' is not closed by its END "
			                          "line (truncated or spliced file)",
			                          where, (int)llen, (const char *)label);
			return -1;
		}
		if (n == max) {
			*msg = cert_strdup_printf("%smore than %d PEM blocks", where, max);
			return -1;
		}
		blk[n].kind = pem_label_kind(label, llen);
		blk[n].body = body;
		blk[n].len = (size_t)(e - body);
		blk[n].encrypted_header = 0;
		/* RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") precede a blank
		 * line in traditional encrypted keys. */
		if (memchr(body, ':', blk[n].len) != NULL && find_str(body, e, "ENCRYPTED") != NULL)
			blk[n].encrypted_header = 1;
		n++;
		p = e + 9 + llen + 5;
	}
	return n;
}

long cert_b64_decode(const unsigned char *in, size_t len, unsigned char *out)
{
	uint32_t acc = 0;
	int bits = 0, pad = 0;
	long n = 0;

	for (size_t i = 0; i < len; i++) {
		int v = b64_tab[in[i]];

		if (v == -2)
			continue;
		if (v == -3) {
			pad++;
			continue;
		}
		if (v < 0 || pad > 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6)
		return -1;
	return n;
}
