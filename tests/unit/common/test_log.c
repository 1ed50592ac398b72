/* Unit tests for common/log.c: escaping the bytes a peer controls. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static void test_printable_kept(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(log_escape(out, sizeof(out), "www.example.com", 15), "www.example.com");
	assert_string_equal(log_escape(out, sizeof(out), "", 0), "");
}

static void test_controls_escaped(void **state)
{
	static const char in[] = "a\nsni=x\r\t\"\\ \x7f\xff\x00z";
	char out[LOG_ESC_LEN(sizeof(in) - 1)];

	(void)state;
	log_escape(out, sizeof(out), in, sizeof(in) - 1);
	assert_string_equal(out, "a\\x0asni=x\\x0d\\x09\\\"\\\\\\x20\\x7f\\xff\\x00z");
	assert_null(strchr(out, '\n'));
	assert_null(strchr(out, ' '));
}

static void test_worst_case_fits(void **state)
{
	unsigned char in[255];
	char out[LOG_ESC_LEN(sizeof(in))];

	(void)state;
	memset(in, '\n', sizeof(in));
	log_escape(out, sizeof(out), in, sizeof(in));
	assert_int_equal(strlen(out), 4 * sizeof(in));
}

static void test_truncation_is_marked(void **state)
{
	char out[12];

	(void)state;
	/* Never half an escape: "\x0a" does not fit after "abcde". */
	log_escape(out, sizeof(out), "abcde\n\n\n", 8);
	assert_string_equal(out, "abcde...");
	log_escape(out, sizeof(out), "abcdefghijklmnop", 16);
	assert_string_equal(out, "abcdefgh...");
	assert_string_equal(log_escape(out, 1, "abc", 3), "");
	/* Too small for a character and the marker: nothing rather than a cut
	 * that looks whole. */
	assert_string_equal(log_escape(out, 3, "abc", 3), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_printable_kept),
	    cmocka_unit_test(test_controls_escaped),
	    cmocka_unit_test(test_worst_case_fits),
	    cmocka_unit_test(test_truncation_is_marked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
