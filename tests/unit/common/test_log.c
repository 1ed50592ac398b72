/* Unit tests for common/log.c: escaping the bytes a peer controls, and the
 * line format on stderr (RFC 3339 time, or journald priorities). */
#include <regex.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
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

/* Runs one log call with stderr sent to a temporary file and returns the
 * line written (static buffer). */
static const char *capture(void (*emit)(void))
{
	static char line[1024];
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	assert_non_null(f);
	assert_true(saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fileno(f), 2), 2);
	emit();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(line, 1, sizeof(line) - 1, f);
	line[n] = '\0';
	fclose(f);
	return line;
}

static void matches(const char *s, const char *re)
{
	regex_t rx;
	int rc;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rc = regexec(&rx, s, 0, NULL, 0);
	regfree(&rx);
	if (rc != 0)
		fail_msg("'%s' does not match /%s/", s, re);
}

static void emit_err(void)
{
	log_init("switchyardd", NULL, 0);
	log_errx("FAILOVER: test %d", 1);
}

static void emit_levels(void)
{
	log_init("proxy", "blue", 0);
	log_warnx("w");
	log_info("i");
}

static void test_rfc3339_time(void **state)
{
	(void)state;
	unsetenv("JOURNAL_STREAM");
	matches(capture(emit_err),
	        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
	        "switchyardd: error: FAILOVER: test 1\n$");
}

/* The device:inode of the file capture() will use is not known before, so
 * emit_journal sets JOURNAL_STREAM from fd 2 itself, as systemd would. */
static void emit_journal(void)
{
	struct stat st;
	char v[64];

	assert_int_equal(fstat(2, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	emit_err();
	emit_levels();
	log_set_level(LOG_LVL_DEBUG);
	log_debug("d");
	log_set_level(LOG_LVL_INFO);
}

static void test_journal_priorities(void **state)
{
	(void)state;
	assert_string_equal(capture(emit_journal), "<3>switchyardd: error: FAILOVER: test 1\n"
	                                           "<4>proxy[blue]: warning: w\n"
	                                           "<6>proxy[blue]: info: i\n"
	                                           "<7>proxy[blue]: debug: d\n");
	unsetenv("JOURNAL_STREAM");
}

/* JOURNAL_STREAM inherited by a process whose stderr is elsewhere (a
 * redirect) must not turn the priorities on. */
static void emit_stale_journal(void)
{
	setenv("JOURNAL_STREAM", "1:2", 1);
	emit_levels();
}

static void test_journal_stream_elsewhere(void **state)
{
	(void)state;
	matches(capture(emit_stale_journal),
	        "^[0-9-]{10}T[0-9:.]{12}Z proxy\\[blue\\]: warning: w\n"
	        "[0-9-]{10}T[0-9:.]{12}Z proxy\\[blue\\]: info: i\n$");
	assert_int_equal(log_to_journal(), 0);
	unsetenv("JOURNAL_STREAM");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_printable_kept),
	    cmocka_unit_test(test_controls_escaped),
	    cmocka_unit_test(test_worst_case_fits),
	    cmocka_unit_test(test_truncation_is_marked),
	    cmocka_unit_test(test_rfc3339_time),
	    cmocka_unit_test(test_journal_priorities),
	    cmocka_unit_test(test_journal_stream_elsewhere),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
