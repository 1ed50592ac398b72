/* Unit tests for proxy/control.c's command table: arguments are checked
 * against the usage texts before any handler runs, so these need no
 * running instance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "common/ctl.h"
#include "proxy/px.h"

struct replies {
	int n;
	char text[8][1024];
};

static void keep(void *arg, const char *reply)
{
	struct replies *r = arg;

	if (r->n < 8)
		snprintf(r->text[r->n], sizeof(r->text[0]), "%s", reply);
	r->n++;
}

static void expect(const char *line, const char *fragment)
{
	struct replies r = {0};
	struct json_doc *doc;
	char in[512];
	int n = snprintf(in, sizeof(in), "%s\n", line);

	/* A NULL instance: a handler that ran would crash the test. */
	assert_int_equal(ctl_feed(px_ctl_cmds, NULL, in, (size_t)n, keep, &r), 1);
	doc = json_parse(r.text[0], NULL, 0);
	assert_non_null(doc);
	json_doc_free(doc);
	if (strstr(r.text[0], "\"ok\":false") == NULL || strstr(r.text[0], fragment) == NULL)
		fail_msg("'%s' -> '%s' lacks '%s'", line, r.text[0], fragment);
}

static void test_arguments(void **state)
{
	(void)state;
	expect("sample", "'sample': missing argument 'N' (usage: sample N)");
	expect("sample ten", "'sample': argument 'ten' needs a decimal number");
	expect("sample -1", "needs a decimal number");
	expect("cert", "'cert': missing argument 'NAME' (usage: cert NAME)");
	expect("cert a b", "unexpected argument 'b'");
	expect("reload-certs /a /b", "'reload-certs': unexpected argument '/b'");
	expect("status --verbose", "unknown option '--verbose'");
	expect("quit now", "(usage: quit)");
	expect("launch", "unknown command 'launch' (commands: status, stats, reload-certs [DIR], "
	                 "reload-tickets, cert NAME, sample N, names N, cache-trim, drain, quit)");
	expect("sta\ttus\x1b", "control character (byte 0x1b at offset 7)");
}

static void test_nul_byte(void **state)
{
	static const char in[] = "status\0\n";
	struct replies r = {0};

	(void)state;
	assert_int_equal(ctl_feed(px_ctl_cmds, NULL, in, sizeof(in) - 1, keep, &r), 1);
	assert_string_equal(r.text[0], "{\"ok\":false,\"error\":\"request contains a NUL byte\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_arguments),
	    cmocka_unit_test(test_nul_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
