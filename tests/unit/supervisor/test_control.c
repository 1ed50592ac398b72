/* Unit tests for supervisor/control.c: request parsing and error replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "supervisor/sv.h"

static struct sv sv;

static int setup(void **state)
{
	(void)state;
	memset(&sv, 0, sizeof(sv));
	sv.cfg = calloc(1, sizeof(*sv.cfg));
	cfg_defaults(sv.cfg);
	pthread_mutex_init(&sv.lock, NULL);
	pthread_mutex_init(&sv.op, NULL);
	pthread_mutex_init(&sv.commit_mu, NULL);
	sv.prev_live = -1;
	sv.op_inst = -1;
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		sv.inst[c].colour = (enum cfg_colour)c;
		sv.inst[c].state = c == 0 ? SV_LIVE : SV_READY;
		sv.inst[c].pidfd = -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(sv.cfg);
	return 0;
}

static void expect_error(const char *line, const char *fragment)
{
	struct json_buf jb;
	struct json_doc *doc;
	char err[512], perr[128];
	int ok = 1;

	jb_init(&jb);
	sv_ctl_handle(&sv, line, &jb);
	/* json_parse refuses invalid UTF-8 too, so this also checks that
	 * the words of a hostile request come back cleaned. */
	doc = json_parse(jb_cstr(&jb), perr, sizeof(perr));
	if (doc == NULL)
		fail_msg("'%s' -> unparseable reply (%s): %s", line, perr, jb_cstr(&jb));
	assert_int_equal(json_get_bool(doc, "ok", &ok), 0);
	assert_false(ok);
	assert_int_equal(json_get_str(doc, "error", err, sizeof(err)), 0);
	if (fragment != NULL && strstr(err, fragment) == NULL)
		fail_msg("'%s' -> '%s' lacks '%s'", line, err, fragment);
	json_doc_free(doc);
	jb_free(&jb);
}

static void test_garbage(void **state)
{
	(void)state;
	expect_error("", "empty");
	expect_error("   ", "empty");
	expect_error("launch-missiles", "unknown command");
	expect_error("status\x01", "control character (byte 0x01 at offset 6)");
	expect_error("\xff\xfe garbage", "unknown command");
	expect_error("status a b c d e f g h i", "too many");
	expect_error("status extra", "'status': unexpected argument 'extra' (usage: status)");
	expect_error(
	    "flip --sideways",
	    "'flip': unknown option '--sideways' (usage: flip [--force] [--allow-name-loss])");
	expect_error("flip --force --force", "given twice");
	expect_error("reload --certs relative/dir", "usage");
	expect_error("reload --bogus", "usage");
	expect_error("reload --certs", "needs a value");
	expect_error("rollback", "no previous flip");
}

static void keep_reply(void *arg, const char *reply)
{
	snprintf(arg, 512, "%s", reply);
}

/* The supervisor refuses a request line with a NUL byte, like the proxy:
 * both frame their input with the same code. */
static void test_nul_byte(void **state)
{
	static const char in[] = "status\0 --force\n";
	char reply[512];

	(void)state;
	assert_int_equal(ctl_feed(sv_ctl_cmds, &sv, in, sizeof(in) - 1, keep_reply, reply), 1);
	assert_string_equal(reply, "{\"ok\":false,\"error\":\"request contains a NUL byte\"}");
}

static void test_status_shape(void **state)
{
	struct json_buf jb;
	struct json_doc *doc;
	char live[16], st[16];
	int ok = 0;

	(void)state;
	jb_init(&jb);
	sv_ctl_handle(&sv, "status", &jb);
	doc = json_parse(jb_cstr(&jb), NULL, 0);
	assert_non_null(doc);
	assert_int_equal(json_get_bool(doc, "ok", &ok), 0);
	assert_true(ok);
	assert_int_equal(json_get_str(doc, "live", live, sizeof(live)), 0);
	assert_string_equal(live, "blue");
	assert_int_equal(json_array_len(doc, "instances"), 2);
	assert_int_equal(json_get_str(doc, "instances.1.state", st, sizeof(st)), 0);
	assert_string_equal(st, "ready");
	assert_int_equal(json_array_len(doc, "flips"), 0);
	json_doc_free(doc);
	jb_free(&jb);
}

/*
 * Concurrent control clients must not share tokenizer state: the old
 * handler used strtok(3), whose hidden static pointer let one thread's
 * words leak into another's request ("status" answered "unknown command",
 * "status extra" answered as a plain status). Every line here only ever
 * tokenizes to status or to an unknown command, so no mix-up can start an
 * operation; each thread checks every reply against its own line.
 */
/*
 * The race window of strtok(3) is a few instructions, too narrow to hit
 * reliably on an idle machine. This definition takes precedence over
 * libc's for the code linked into this test: the same hidden static
 * pointer as glibc's strtok, plus a yield after each call, the way a busy
 * machine preempts a thread there. Code that does not call strtok (the
 * fix) never reaches it.
 */
char *strtok(char *s, const char *delim);
char *strtok(char *s, const char *delim)
{
	static char *save;
	char *r = strtok_r(s, delim, &save);

	sched_yield();
	return r;
}

struct race_arg {
	const char *line;
	int want_ok;
	const char *want_word;
	int bad;
	char first_bad[600];
};

#define RACE_THREADS 4
#define RACE_ROUNDS  20000

static void *race_thread(void *p)
{
	struct race_arg *a = p;
	struct json_buf jb;

	jb_init(&jb);
	for (int i = 0; i < RACE_ROUNDS; i++) {
		char err[512];
		int ok = -1, good;
		struct json_doc *doc;

		jb_reset(&jb);
		sv_ctl_handle(&sv, a->line, &jb);
		doc = json_parse(jb_cstr(&jb), NULL, 0);
		good = json_get_bool(doc, "ok", &ok) == 0 && ok == a->want_ok;
		if (good && !a->want_ok) {
			char word[80];

			snprintf(word, sizeof(word), "'%s'", a->want_word);
			good = json_get_str(doc, "error", err, sizeof(err)) == 0 &&
			       strstr(err, word) != NULL;
		}
		json_doc_free(doc);
		if (!good && a->bad++ == 0)
			snprintf(a->first_bad, sizeof(a->first_bad), "%.500s", jb_cstr(&jb));
	}
	jb_free(&jb);
	return NULL;
}

static void test_concurrent_parse(void **state)
{
	struct race_arg args[RACE_THREADS] = {
	    {.line = "status", .want_ok = 1},
	    {.line = "status extra words", .want_ok = 0, .want_word = "status"},
	    {.line = "bogus one two", .want_ok = 0, .want_word = "bogus"},
	    {.line = "\tbogus\t one", .want_ok = 0, .want_word = "bogus"},
	};
	pthread_t t[RACE_THREADS];

	(void)state;
	for (int i = 0; i < RACE_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_thread, &args[i]), 0);
	for (int i = 0; i < RACE_THREADS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < RACE_THREADS; i++)
		if (args[i].bad > 0)
			fail_msg("'%s': %d of %d replies wrong, first: %s", args[i].line,
			         args[i].bad, RACE_ROUNDS, args[i].first_bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_status_shape, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_parse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nul_byte, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
