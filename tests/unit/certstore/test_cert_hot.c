/* Unit tests for the store's large arrays (certstore/cert_arena.c,
 * cert_hot_*): contents survive realloc, calloc zeroes reused memory,
 * freed blocks are kept only while reloads run and only up to the most
 * ever in use, and cert_hot_keep(0) gives them back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "certstore/cert_int.h"

#define BIG (1024 * 1024)

/* Whether freed blocks are kept in this build: not under a sanitizer. */
static int pooled(void)
{
	char *p;
	size_t n;

	cert_hot_keep(1);
	p = cert_hot_alloc(BIG);
	assert_non_null(p);
	cert_hot_free(p);
	n = cert_hot_spares();
	cert_hot_keep(0);
	return n == 1;
}

static void test_small_and_null(void **state)
{
	char *p = cert_hot_calloc(100, 3);

	(void)state;
	assert_non_null(p);
	for (int i = 0; i < 300; i++)
		assert_int_equal(p[i], 0);
	p = cert_hot_realloc(p, 300, 5000);
	assert_non_null(p);
	for (int i = 0; i < 300; i++)
		assert_int_equal(p[i], 0);
	cert_hot_free(p);
	cert_hot_free(NULL);
	assert_null(cert_hot_calloc(SIZE_MAX / 2, 4));
	assert_int_equal(cert_hot_spares(), 0);
}

static void test_reuse_only_while_kept(void **state)
{
	int pool = pooled();
	char *a, *b;

	(void)state;
	/* Without keep, nothing is kept. */
	a = cert_hot_alloc(BIG);
	assert_non_null(a);
	memset(a, 0x5a, BIG);
	cert_hot_free(a);
	assert_int_equal(cert_hot_spares(), 0);

	cert_hot_keep(1);
	a = cert_hot_alloc(BIG);
	memset(a, 0x5a, BIG);
	cert_hot_free(a);
	assert_int_equal(cert_hot_spares(), pool ? 1 : 0);
	/* A block of the same size is the kept one, and calloc zeroes what
	 * it held. */
	b = cert_hot_calloc(BIG, 1);
	assert_non_null(b);
	if (pool)
		assert_ptr_equal(a, b);
	assert_int_equal(cert_hot_spares(), 0);
	for (size_t i = 0; i < BIG; i += 4096)
		assert_int_equal(b[i], 0);
	cert_hot_free(b);
	assert_int_equal(cert_hot_spares(), pool ? 1 : 0);
	/* A spare more than twice the size asked for is not handed out; a new
	 * block is mapped, and the spare goes, since both would be more than
	 * the peak. */
	a = cert_hot_alloc(BIG / 4);
	assert_non_null(a);
	assert_int_equal(cert_hot_spares(), 0);
	cert_hot_free(a);
	cert_hot_keep(0);
	assert_int_equal(cert_hot_spares(), 0);
}

static void test_never_more_than_peak(void **state)
{
	int pool = pooled();
	char *v[4];

	(void)state;
	cert_hot_keep(0); /* peak is what is in use now: nothing */
	cert_hot_keep(1);
	v[0] = cert_hot_alloc(BIG);
	v[1] = cert_hot_alloc(BIG);
	cert_hot_free(v[0]);
	cert_hot_free(v[1]);
	assert_int_equal(cert_hot_spares(), pool ? 2 : 0);
	/* Both spares are taken again: the peak was two blocks. */
	v[0] = cert_hot_alloc(BIG);
	v[1] = cert_hot_alloc(BIG);
	assert_int_equal(cert_hot_spares(), 0);
	cert_hot_free(v[0]);
	cert_hot_free(v[1]);
	/* Growth keeps the data. */
	v[2] = cert_hot_alloc(BIG);
	memset(v[2], 7, BIG);
	v[3] = cert_hot_realloc(v[2], BIG, 3 * BIG);
	assert_non_null(v[3]);
	for (size_t i = 0; i < BIG; i += 512)
		assert_int_equal(v[3][i], 7);
	cert_hot_free(v[3]);
	cert_hot_keep(0);
	assert_int_equal(cert_hot_spares(), 0);
}

/* A set that grows or shrinks: spares that no longer fit give way, so the
 * mapped total stays within the most ever in use and the new size is kept
 * instead. */
static void test_spares_follow_the_size(void **state)
{
	int pool = pooled();
	char *a, *b;

	(void)state;
	cert_hot_keep(0);
	cert_hot_keep(1);
	a = cert_hot_alloc(BIG);
	b = cert_hot_alloc(BIG);
	cert_hot_free(a);
	cert_hot_free(b);
	assert_int_equal(cert_hot_spares(), pool ? 2 : 0);
	/* Larger than both: they go, and the new block is kept once freed. */
	a = cert_hot_alloc(3 * BIG);
	assert_non_null(a);
	assert_int_equal(cert_hot_spares(), 0);
	cert_hot_free(a);
	assert_int_equal(cert_hot_spares(), pool ? 1 : 0);
	/* Much smaller: the large spare does not fit and would hold more
	 * than the peak beside the new block, so it goes. */
	a = cert_hot_alloc(BIG);
	assert_non_null(a);
	assert_int_equal(cert_hot_spares(), 0);
	cert_hot_free(a);
	assert_int_equal(cert_hot_spares(), pool ? 1 : 0);
	cert_hot_keep(0);
	assert_int_equal(cert_hot_spares(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_small_and_null),
	    cmocka_unit_test(test_reuse_only_while_kept),
	    cmocka_unit_test(test_never_more_than_peak),
	    cmocka_unit_test(test_spares_follow_the_size),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
