/* Unit tests for supervisor/guard.c: the name-loss comparison and the
 * share that refuses a promotion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/sv.h"

/* A sorted set from literals (sv_names owns its strings). */
static struct sv_names set_of(const char *const *names, size_t n)
{
	struct sv_names ns = {calloc(n ? n : 1, sizeof(char *)), n};

	for (size_t i = 0; i < n; i++)
		ns.v[i] = strdup(names[i]);
	return ns;
}

static void test_counts_only_names_that_disappear(void **state)
{
	static const char *const before[] = {"a.test", "b.test", "c.test", "d.test"};
	static const char *const after[] = {"a.test", "c.test", "e.test"};
	struct sv_names ref = set_of(before, 4), next = set_of(after, 3);
	struct sv_loss l;

	(void)state;
	sv_names_loss(&ref, &next, &l);
	assert_true(l.checked);
	assert_int_equal(l.before, 4);
	assert_int_equal(l.after, 3);
	/* e.test is new, not a loss; b and d are gone. */
	assert_int_equal(l.lost, 2);
	assert_string_equal(l.shown, "b.test, d.test");
	sv_names_free(&ref);
	sv_names_free(&next);
	sv_names_free(&ref); /* freeing twice is harmless: emptied */
}

static void test_share_decides(void **state)
{
	struct cfg cfg;
	struct sv_loss l;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg_defaults(&cfg);
	memset(&l, 0, sizeof(l));
	l.checked = 1;
	l.before = 1004;
	/* The default share is 10%: 100 of 1,004 names pass, 101 do not. */
	l.lost = 100;
	assert_false(sv_loss_too_much(&cfg, &l));
	l.lost = 101;
	assert_true(sv_loss_too_much(&cfg, &l));
	/* The case: 1,002 of 1,004 names gone. */
	l.lost = 1002;
	assert_true(sv_loss_too_much(&cfg, &l));
	/* Nothing compared, or nothing served before: nothing to refuse. */
	l.checked = 0;
	assert_false(sv_loss_too_much(&cfg, &l));
	l.checked = 1;
	l.before = 0;
	l.lost = 0;
	assert_false(sv_loss_too_much(&cfg, &l));
	/* 0% refuses any loss. */
	cfg.certsync.mass_delete_percent = 0;
	l.before = 10;
	l.lost = 1;
	assert_true(sv_loss_too_much(&cfg, &l));
}

static void test_refusal_names_counts_and_share(void **state)
{
	static const char *const before[] = {"a.test", "b.test"};
	struct sv_names ref = set_of(before, 2), next = {NULL, 0};
	struct sv_loss l;
	struct cfg cfg;
	char text[700];

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg_defaults(&cfg);
	sv_names_loss(&ref, &next, &l);
	sv_loss_text(&cfg, &l, text, sizeof(text));
	assert_non_null(strstr(text, "2 of 2 names served now (100.0%)"));
	assert_non_null(strstr(text, "certsync.mass_delete_percent (10%)"));
	assert_non_null(strstr(text, "a.test, b.test"));
	sv_names_free(&ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts_only_names_that_disappear),
	    cmocka_unit_test(test_share_decides),
	    cmocka_unit_test(test_refusal_names_counts_and_share),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
