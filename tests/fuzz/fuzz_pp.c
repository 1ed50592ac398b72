/*
 * fuzz_pp: the PROXY protocol header writer (px_pp_build), checked against
 * an independent parser of both versions written here from the protocol
 * specification (haproxy's proxy-protocol.txt). The input chooses the
 * version, both address families, addresses and ports, the SNI, ALPN and
 * TLS version strings (each possibly absent or long) and the output
 * capacity. The writer must never write past the capacity, must fail
 * exactly when the header does not fit (or cannot be encoded), and what it
 * writes must parse back to the inputs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/px.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rd {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct rd *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static unsigned u16(struct rd *r)
{
	unsigned hi = byte(r);

	return hi << 8 | byte(r);
}

/* A string for one of the optional fields: absent, taken from the input,
 * or one byte repeated up to 65535 times (lengths the input alone could not
 * reach). NUL bytes become 'x': the fields are C strings. */
static char *field(struct rd *r)
{
	unsigned mode = byte(r) % 3, len;
	char *s;

	if (mode == 0)
		return NULL;
	len = u16(r);
	if (mode == 1 && len > r->n)
		len = (unsigned)r->n;
	s = malloc((size_t)len + 1);
	if (s == NULL)
		abort();
	if (mode == 1) {
		memcpy(s, r->p, len);
		r->p += len;
		r->n -= len;
	} else {
		memset(s, (int)byte(r), len);
	}
	for (unsigned i = 0; i < len; i++)
		if (s[i] == '\0')
			s[i] = 'x';
	s[len] = '\0';
	return s;
}

static void addr(struct rd *r, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (byte(r) & 1) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		for (int i = 0; i < 16; i++)
			s->sin6_addr.s6_addr[i] = (uint8_t)byte(r);
		s->sin6_port = htons((uint16_t)u16(r));
	} else {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;
		uint8_t a[4];

		s->sin_family = AF_INET;
		for (int i = 0; i < 4; i++)
			a[i] = (uint8_t)byte(r);
		memcpy(&s->sin_addr, a, 4);
		s->sin_port = htons((uint16_t)u16(r));
	}
}

/* The address as the 16 bytes a v6 header carries (v4-mapped for IPv4). */
static void as_v6(const struct sockaddr_storage *ss, uint8_t out[16], unsigned *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;

		memcpy(out, s->sin6_addr.s6_addr, 16);
		*port = ntohs(s->sin6_port);
	} else {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &s->sin_addr, 4);
		*port = ntohs(s->sin_port);
	}
}

static void as_v4(const struct sockaddr_storage *ss, uint8_t out[4], unsigned *port)
{
	const struct sockaddr_in *s = (const struct sockaddr_in *)ss;

	memcpy(out, &s->sin_addr, 4);
	*port = ntohs(s->sin_port);
}

/* Parses a decimal port as the v1 grammar has it: 1 to 5 digits, no
 * leading zero except "0" itself, at most 65535. */
static int v1_port(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = v;
	return 0;
}

/* Checks a version 1 header of n bytes against the inputs. */
static void check_v1(const uint8_t *h, size_t n, const struct sockaddr_storage *src,
                     const struct sockaddr_storage *dst)
{
	char line[108], *f[6];
	int nf = 0, v4 = src->ss_family == AF_INET && dst->ss_family == AF_INET;
	uint8_t want[2][16], got[16];
	unsigned wport[2], port;

	/* The specification caps a v1 line at 107 bytes, CRLF included. */
	if (n < 8 || n > 107 || h[n - 2] != '\r' || h[n - 1] != '\n')
		abort();
	memcpy(line, h, n - 2);
	line[n - 2] = '\0';
	if (memchr(line, '\0', n - 2) != NULL || memchr(line, '\r', n - 2) != NULL ||
	    memchr(line, '\n', n - 2) != NULL)
		abort();
	/* Fields are separated by exactly one space. */
	for (char *p = line;;) {
		char *sp = strchr(p, ' ');

		if (nf == 6 || sp == p)
			abort();
		f[nf++] = p;
		if (sp == NULL)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	if (nf != 6 || strcmp(f[0], "PROXY") != 0 || strcmp(f[1], v4 ? "TCP4" : "TCP6") != 0)
		abort();
	if (v4) {
		as_v4(src, want[0], &wport[0]);
		as_v4(dst, want[1], &wport[1]);
	} else {
		as_v6(src, want[0], &wport[0]);
		as_v6(dst, want[1], &wport[1]);
	}
	for (int i = 0; i < 2; i++) {
		if (inet_pton(v4 ? AF_INET : AF_INET6, f[2 + i], got) != 1 ||
		    memcmp(got, want[i], v4 ? 4 : 16) != 0)
			abort();
		if (v1_port(f[4 + i], strlen(f[4 + i]), &port) < 0 || port != wport[i])
			abort();
	}
}

/* Checks that one TLV value equals the expected C string. */
static void same(const uint8_t *v, size_t vl, const char *want)
{
	if (want == NULL || vl != strlen(want) || memcmp(v, want, vl) != 0)
		abort();
}

static void check_v2(const uint8_t *h, size_t n, const struct px_pp_info *in)
{
	static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
	                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	int v4 = in->src->ss_family == AF_INET && in->dst->ss_family == AF_INET;
	size_t alen = v4 ? 12 : 36, pos;
	uint8_t a[16], b[16];
	unsigned ap, bp;
	int seen_alpn = 0, seen_sni = 0, seen_ssl = 0;

	if (n < 16 || memcmp(h, sig, 12) != 0 || h[12] != 0x21)
		abort();
	if (h[13] != (v4 ? 0x11 : 0x21))
		abort();
	/* The length field counts every byte after the 16-byte header. */
	if ((size_t)(h[14] << 8 | h[15]) != n - 16 || n - 16 < alen)
		abort();
	if (v4) {
		as_v4(in->src, a, &ap);
		as_v4(in->dst, b, &bp);
		if (memcmp(h + 16, a, 4) != 0 || memcmp(h + 20, b, 4) != 0 ||
		    (unsigned)(h[24] << 8 | h[25]) != ap || (unsigned)(h[26] << 8 | h[27]) != bp)
			abort();
	} else {
		as_v6(in->src, a, &ap);
		as_v6(in->dst, b, &bp);
		if (memcmp(h + 16, a, 16) != 0 || memcmp(h + 32, b, 16) != 0 ||
		    (unsigned)(h[48] << 8 | h[49]) != ap || (unsigned)(h[50] << 8 | h[51]) != bp)
			abort();
	}
	for (pos = 16 + alen; pos < n;) {
		unsigned type, vl;
		const uint8_t *v;

		if (n - pos < 3)
			abort();
		type = h[pos];
		vl = (unsigned)(h[pos + 1] << 8 | h[pos + 2]);
		v = h + pos + 3;
		if (n - pos - 3 < vl)
			abort();
		pos += 3 + vl;
		if (type == 0x01 && !seen_alpn++) {
			same(v, vl, in->alpn);
		} else if (type == 0x02 && !seen_sni++) {
			same(v, vl, in->sni);
		} else if (type == 0x20 && !seen_ssl++) {
			/* PP2_TYPE_SSL: client flags, 32-bit verify, then sub-TLVs;
			 * the version is truncated to 32 bytes by design. */
			size_t tl;

			if (in->tls_version == NULL || vl < 8 || v[0] != 0x01 || v[1] || v[2] ||
			    v[3] || v[4] || v[5] != 0x21)
				abort();
			tl = strlen(in->tls_version);
			if (tl > 32)
				tl = 32;
			if ((size_t)(v[6] << 8 | v[7]) != tl || vl != 8 + tl ||
			    memcmp(v + 8, in->tls_version, tl) != 0)
				abort();
		} else {
			abort(); /* unknown or repeated TLV */
		}
	}
	if (seen_alpn != (in->alpn != NULL) || seen_sni != (in->sni != NULL) ||
	    seen_ssl != (in->tls_version != NULL))
		abort();
}

/* The length of the v2 header for these inputs, or 0 if it cannot be
 * encoded (a TLV or the whole header over 16 bits of length). */
static size_t v2_len(const struct px_pp_info *in)
{
	int v4 = in->src->ss_family == AF_INET && in->dst->ss_family == AF_INET;
	size_t n = v4 ? 12 : 36, l;

	if (in->alpn != NULL) {
		if ((l = strlen(in->alpn)) > 0xffff)
			return 0;
		n += 3 + l;
	}
	if (in->sni != NULL) {
		if ((l = strlen(in->sni)) > 0xffff)
			return 0;
		n += 3 + l;
	}
	if (in->tls_version != NULL) {
		l = strlen(in->tls_version);
		n += 3 + 8 + (l > 32 ? 32 : l);
	}
	return n > 0xffff ? 0 : 16 + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = {data, size};
	struct sockaddr_storage src, dst;
	struct px_pp_info in;
	int version = (byte(&r) & 1) ? 2 : 1, n;
	size_t cap, want;
	unsigned char *out;

	cap = (size_t)u16(&r) << 2;
	cap |= byte(&r) & 3;

	addr(&r, &src);
	addr(&r, &dst);
	in.src = &src;
	in.dst = &dst;
	in.sni = field(&r);
	in.alpn = field(&r);
	in.tls_version = field(&r);
	/* Exactly cap bytes, so that ASan sees any write past the capacity. */
	out = malloc(cap > 0 ? cap : 1);
	if (out == NULL)
		abort();
	n = px_pp_build(version, &in, out, cap);
	if (version == 1) {
		if (n >= 0) {
			if ((size_t)n > cap)
				abort();
			check_v1(out, (size_t)n, &src, &dst);
		}
		/* The longest v1 line (two full IPv6 addresses) is 104 bytes;
		 * any capacity above it must succeed. */
		if (n < 0 && cap > 104)
			abort();
	} else {
		want = v2_len(&in);
		/* The writer wants room for an IPv6 header even for IPv4. */
		if (want != 0 && want <= cap && cap >= 16 + 36) {
			if (n < 0 || (size_t)n != want)
				abort();
			check_v2(out, (size_t)n, &in);
		} else if (n >= 0) {
			abort();
		}
	}
	free(out);
	free((char *)in.sni);
	free((char *)in.alpn);
	free((char *)in.tls_version);
	return 0;
}
