/* Unit tests for supervisor/backoff.c: the respawn schedule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "supervisor/sv.h"

static void test_doubles_to_cap(void **state)
{
	struct sv_backoff bo;
	uint32_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};

	(void)state;
	sv_backoff_init(&bo);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(sv_backoff_next(&bo, 10), want[i]);
}

static void test_reset_after_a_minute_up(void **state)
{
	struct sv_backoff bo;

	(void)state;
	sv_backoff_init(&bo);
	for (int i = 0; i < 5; i++)
		(void)sv_backoff_next(&bo, 500);
	/* 59.9 s of uptime is still a crash loop ... */
	assert_int_equal(sv_backoff_next(&bo, 59999), 32000);
	/* ... one minute is healthy: start over at 1 s. */
	assert_int_equal(sv_backoff_next(&bo, 60000), 1000);
	assert_int_equal(sv_backoff_next(&bo, 0), 2000);
}

static void test_uninitialised_is_safe(void **state)
{
	struct sv_backoff bo = {0};

	(void)state;
	assert_int_equal(sv_backoff_next(&bo, 0), 1000);
}

static void test_clock_monotonic(void **state)
{
	int64_t a = sv_now_us(), b = sv_now_us();

	(void)state;
	assert_true(b >= a);
	assert_true(sv_now_ms() >= a / 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_doubles_to_cap),
	    cmocka_unit_test(test_reset_after_a_minute_up),
	    cmocka_unit_test(test_uninitialised_is_safe),
	    cmocka_unit_test(test_clock_monotonic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
