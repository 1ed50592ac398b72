/*
 * pp: PROXY protocol headers towards the backend (version 1 text, version 2
 * binary with TLVs for the SNI, the ALPN protocol and the TLS version).
 */
#include "proxy/px.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define PP2_TYPE_ALPN           0x01
#define PP2_TYPE_AUTHORITY      0x02
#define PP2_TYPE_SSL            0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_CLIENT_SSL          0x01

static const unsigned char pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Both addresses as IPv6 (v4-mapped when needed), or both IPv4. */
static void to_v6(const struct sockaddr_storage *ss, unsigned char a[16], uint16_t *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		memcpy(a, &s->sin6_addr, 16);
		*port = s->sin6_port;
	} else {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		memset(a, 0, 10);
		a[10] = a[11] = 0xff;
		memcpy(a + 12, &s->sin_addr, 4);
		*port = s->sin_port;
	}
}

static int tlv(unsigned char *out, size_t cap, size_t *pos, int type, const void *v, size_t len)
{
	if (*pos + 3 + len > cap || len > 0xffff)
		return -1;
	out[(*pos)++] = (unsigned char)type;
	out[(*pos)++] = (unsigned char)(len >> 8);
	out[(*pos)++] = (unsigned char)len;
	memcpy(out + *pos, v, len);
	*pos += len;
	return 0;
}

static int pp1(const struct px_pp_info *in, unsigned char *out, size_t cap)
{
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	unsigned sp, dp;
	int n, v4 = in->src->ss_family == AF_INET && in->dst->ss_family == AF_INET;

	if (v4) {
		const struct sockaddr_in *a = (const void *)in->src, *b = (const void *)in->dst;
		inet_ntop(AF_INET, &a->sin_addr, s, sizeof(s));
		inet_ntop(AF_INET, &b->sin_addr, d, sizeof(d));
		sp = ntohs(a->sin_port);
		dp = ntohs(b->sin_port);
	} else {
		unsigned char a[16], b[16];
		uint16_t ap, bp;
		to_v6(in->src, a, &ap);
		to_v6(in->dst, b, &bp);
		inet_ntop(AF_INET6, a, s, sizeof(s));
		inet_ntop(AF_INET6, b, d, sizeof(d));
		sp = ntohs(ap);
		dp = ntohs(bp);
	}
	n = snprintf((char *)out, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", s, d, sp,
	             dp);
	return n < 0 || (size_t)n >= cap ? -1 : n;
}

int px_pp_build(int version, const struct px_pp_info *in, unsigned char *out, size_t cap)
{
	size_t pos = 16;
	int v4 = in->src->ss_family == AF_INET && in->dst->ss_family == AF_INET;

	if (version == 1)
		return pp1(in, out, cap);
	if (cap < 16 + 36)
		return -1;
	memcpy(out, pp2_sig, 12);
	out[12] = 0x21; /* version 2, PROXY command */
	if (v4) {
		const struct sockaddr_in *a = (const void *)in->src, *b = (const void *)in->dst;
		out[13] = 0x11; /* TCP over IPv4 */
		memcpy(out + pos, &a->sin_addr, 4);
		memcpy(out + pos + 4, &b->sin_addr, 4);
		memcpy(out + pos + 8, &a->sin_port, 2);
		memcpy(out + pos + 10, &b->sin_port, 2);
		pos += 12;
	} else {
		uint16_t ap, bp;
		out[13] = 0x21; /* TCP over IPv6 */
		to_v6(in->src, out + pos, &ap);
		to_v6(in->dst, out + pos + 16, &bp);
		memcpy(out + pos + 32, &ap, 2);
		memcpy(out + pos + 34, &bp, 2);
		pos += 36;
	}
	if (in->alpn && tlv(out, cap, &pos, PP2_TYPE_ALPN, in->alpn, strlen(in->alpn)) < 0)
		return -1;
	if (in->sni && tlv(out, cap, &pos, PP2_TYPE_AUTHORITY, in->sni, strlen(in->sni)) < 0)
		return -1;
	if (in->tls_version) {
		unsigned char ssl[5 + 3 + 32];
		size_t vl = strlen(in->tls_version);
		if (vl > 32)
			vl = 32;
		ssl[0] = PP2_CLIENT_SSL;
		memset(ssl + 1, 0, 4); /* verify: 0, no client certificate involved */
		ssl[5] = PP2_SUBTYPE_SSL_VERSION;
		ssl[6] = (unsigned char)(vl >> 8);
		ssl[7] = (unsigned char)vl;
		memcpy(ssl + 8, in->tls_version, vl);
		if (tlv(out, cap, &pos, PP2_TYPE_SSL, ssl, 8 + vl) < 0)
			return -1;
	}
	/* Each TLV's length fits in 16 bits, but their sum may not: the
	 * header's length field would wrap and the backend would read a
	 * truncated header followed by garbage. */
	if (pos - 16 > 0xffff)
		return -1;
	out[14] = (unsigned char)((pos - 16) >> 8);
	out[15] = (unsigned char)(pos - 16);
	return (int)pos;
}
