/* Unit tests for the proxy's PROXY protocol builder and connection limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxy/px.h"

static void v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s->sin_addr);
}

static void v6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
}

static void test_pp2_v4_tlvs(void **state)
{
	struct sockaddr_storage a, b;
	struct px_pp_info in = {&a, &b, "www.example.test", "h2", "TLSv1.3"};
	unsigned char out[512];
	static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
	                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	int n;

	(void)state;
	v4(&a, "192.0.2.1", 40000);
	v4(&b, "198.51.100.2", 443);
	n = px_pp_build(2, &in, out, sizeof(out));
	assert_true(n > 28);
	assert_memory_equal(out, sig, 12);
	assert_int_equal(out[12], 0x21);
	assert_int_equal(out[13], 0x11);
	assert_int_equal((out[14] << 8) | out[15], n - 16);
	assert_int_equal(out[16], 192);
	assert_int_equal(out[20], 198);
	assert_int_equal((out[24] << 8) | out[25], 40000);
	assert_int_equal((out[26] << 8) | out[27], 443);
	/* First TLV: ALPN "h2". */
	assert_int_equal(out[28], 0x01);
	assert_int_equal((out[29] << 8) | out[30], 2);
	assert_memory_equal(out + 31, "h2", 2);
	/* Then the authority. */
	assert_int_equal(out[33], 0x02);
	assert_int_equal((out[34] << 8) | out[35], 16);
	assert_memory_equal(out + 36, "www.example.test", 16);
	/* Then PP2_TYPE_SSL with the version sub-TLV. */
	assert_int_equal(out[52], 0x20);
	assert_int_equal(out[55], 0x01);
	assert_int_equal(out[60], 0x21);
	assert_memory_equal(out + 63, "TLSv1.3", 7);
	assert_int_equal(n, 70);
}

static void test_pp2_mixed_families_use_v6(void **state)
{
	struct sockaddr_storage a, b;
	struct px_pp_info in = {&a, &b, NULL, NULL, NULL};
	unsigned char out[128];

	(void)state;
	v4(&a, "192.0.2.1", 1);
	v6(&b, "2001:db8::1", 443);
	assert_int_equal(px_pp_build(2, &in, out, sizeof(out)), 16 + 36);
	assert_int_equal(out[13], 0x21);
	assert_int_equal(out[16 + 10], 0xff);
	assert_int_equal(out[16 + 12], 192);
	/* Too small a buffer is an error, never an overflow. */
	assert_int_equal(px_pp_build(2, &in, out, 40), -1);
}

/* Found by tests/fuzz/fuzz_pp: TLVs that each fit in 16 bits of length but
 * together do not made the header's own 16-bit length field wrap, so a
 * backend would have read a truncated header and taken the rest as data. */
static void test_pp2_length_field_overflow(void **state)
{
	struct sockaddr_storage a, b;
	static char sni[40001], alpn[40001];
	struct px_pp_info in = {&a, &b, sni, alpn, NULL};
	static unsigned char out[100000];

	(void)state;
	memset(sni, 'q', sizeof(sni) - 1);
	memset(alpn, 'x', sizeof(alpn) - 1);
	v4(&a, "192.0.2.1", 40000);
	v4(&b, "198.51.100.2", 443);
	assert_int_equal(px_pp_build(2, &in, out, sizeof(out)), -1);
	/* The largest header that can be encoded still is. */
	sni[65535 - 12 - 3 - 3 - 40000] = '\0';
	assert_int_equal(px_pp_build(2, &in, out, sizeof(out)), 16 + 65535);
	assert_int_equal((out[14] << 8) | out[15], 65535);
}

static void test_pp1(void **state)
{
	struct sockaddr_storage a, b;
	struct px_pp_info in = {&a, &b, NULL, NULL, NULL};
	unsigned char out[128];
	int n;

	(void)state;
	v4(&a, "192.0.2.1", 40000);
	v4(&b, "198.51.100.2", 443);
	n = px_pp_build(1, &in, out, sizeof(out));
	assert_int_equal(n, (int)strlen("PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n"));
	assert_memory_equal(out, "PROXY TCP4 192.0.2.1 198.51.100.2 40000 443\r\n", (size_t)n);
	v6(&a, "2001:db8::5", 1);
	n = px_pp_build(1, &in, out, sizeof(out));
	assert_true(n > 0);
	assert_memory_equal(out, "PROXY TCP6 2001:db8::5 ::ffff:198.51.100.2 1 443\r\n", (size_t)n);
}

static void test_limit(void **state)
{
	struct px_limit l;

	(void)state;
	memset(&l, 0, sizeof(l));
	l.max = 2;
	assert_int_equal(px_limit_take(&l, 100), 0);
	assert_int_equal(px_limit_take(&l, 100), 0);
	assert_int_equal(px_limit_take(&l, 100), -1);
	assert_int_equal(atomic_load(&l.active), 2);
	assert_int_equal(px_limit_ms(&l, 150), 50);
	/* Releasing at the limit says "wake the workers" and stops the clock. */
	assert_int_equal(px_limit_put(&l, 300), 1);
	assert_int_equal(px_limit_ms(&l, 1000), 200);
	assert_int_equal(px_limit_put(&l, 400), 0);
	l.max = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(px_limit_take(&l, 1), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pp2_v4_tlvs),
	    cmocka_unit_test(test_pp2_mixed_families_use_v6),
	    cmocka_unit_test(test_pp2_length_field_overflow),
	    cmocka_unit_test(test_pp1),
	    cmocka_unit_test(test_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
