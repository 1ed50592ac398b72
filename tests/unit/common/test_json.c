/*
 * Unit tests for common/json.c: the writer's nesting, escaping, invalid
 * UTF-8, big numbers, duplicate keys, misuse and allocation failures; the
 * reader's paths, arrays, malformed and deeply nested input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/json.h"

/* The writer's text for one string value, as the only member "s". */
static void expect_str(const char *val, size_t len, const char *want)
{
	struct json_buf jb;
	struct json_doc *doc;
	char err[128];

	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_strn(&jb, "s", val, len);
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), want);
	/* The parser refuses invalid UTF-8, so this is the validity check. */
	doc = json_parse(jb_cstr(&jb), err, sizeof(err));
	if (doc == NULL)
		fail_msg("%s does not parse: %s", jb_cstr(&jb), err);
	json_doc_free(doc);
	jb_free(&jb);
}

static void test_writer_nesting(void **state)
{
	struct json_buf jb;
	struct json_doc *doc;

	(void)state;
	jb_init(&jb);
	assert_string_equal(jb_cstr(&jb), "");
	assert_int_equal(jb.len, 0);
	jb_obj_begin(&jb, NULL);
	jb_bool(&jb, "ok", 1);
	jb_str(&jb, "s", "a\"b\\c\n\x01");
	jb_str(&jb, "none", NULL);
	jb_arr_begin(&jb, "list");
	jb_int(&jb, "ignored", -3);
	jb_bool(&jb, NULL, 0);
	jb_obj_begin(&jb, NULL);
	jb_null(&jb, "n");
	jb_obj_end(&jb);
	jb_arr_end(&jb);
	jb_arr_begin(&jb, "empty");
	jb_arr_end(&jb);
	jb_obj_begin(&jb, "o");
	jb_obj_end(&jb);
	jb_raw(&jb, "raw", " [1, {\"x\": \"y\"}] ");
	jb_obj_end(&jb);
	assert_true(jb.len > 0);
	assert_string_equal(jb_cstr(&jb),
	                    "{\"ok\":true,\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"none\":null,"
	                    "\"list\":[-3,false,{\"n\":null}],"
	                    "\"empty\":[],\"o\":{},\"raw\":[1,{\"x\":\"y\"}]}");
	/* A second call returns the same text. */
	assert_string_equal(jb_cstr(&jb), jb_cstr(&jb));
	doc = json_parse(jb_cstr(&jb), NULL, 0);
	assert_non_null(doc);
	json_doc_free(doc);
	/* Reset and reuse. */
	jb_reset(&jb);
	assert_int_equal(jb.len, 0);
	assert_string_equal(jb_cstr(&jb), "");
	jb_arr_begin(&jb, NULL);
	jb_str(&jb, NULL, "x");
	jb_arr_end(&jb);
	assert_string_equal(jb_cstr(&jb), "[\"x\"]");
	jb_free(&jb);
	jb_free(NULL);
}

static void test_writer_escaping(void **state)
{
	(void)state;
	expect_str("\"\\/", 3, "{\"s\":\"\\\"\\\\/\"}");
	/* Control characters, NUL excepted, are escaped as such. */
	expect_str("\b\f\n\r\t\x1b\x1f", 7, "{\"s\":\"\\b\\f\\n\\r\\t\\u001B\\u001F\"}");
	/* DEL is legal in JSON and passes as it is. */
	expect_str("a\x7f", 2, "{\"s\":\"a\x7f\"}");
	/* Well-formed UTF-8 of every length passes unchanged. */
	expect_str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 13,
	           "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\"}");
}

/* Every byte outside a well-formed sequence, and NUL, becomes U+FFFD. */
#define R "\xef\xbf\xbd"
static void test_writer_invalid_utf8(void **state)
{
	struct json_buf jb;

	(void)state;
	expect_str("a\xff"
	           "b",
	           3, "{\"s\":\"a" R "b\"}");
	expect_str("a\0b", 3, "{\"s\":\"a" R "b\"}");
	expect_str("\x80\xbf", 2, "{\"s\":\"" R R "\"}");             /* lone continuations */
	expect_str("\xe2\x82", 2, "{\"s\":\"" R R "\"}");             /* truncated */
	expect_str("\xe2\x82z", 3, "{\"s\":\"" R R "z\"}");           /* cut short */
	expect_str("\xc0\xaf", 2, "{\"s\":\"" R R "\"}");             /* overlong '/' */
	expect_str("\xe0\x80\xaf", 3, "{\"s\":\"" R R R "\"}");       /* overlong */
	expect_str("\xed\xa0\x80", 3, "{\"s\":\"" R R R "\"}");       /* surrogate */
	expect_str("\xf4\x90\x80\x80", 4, "{\"s\":\"" R R R R "\"}"); /* > U+10FFFF */
	expect_str("\xf5\xfe\xff", 3, "{\"s\":\"" R R R "\"}");
	expect_str("\"\xff\\\n", 4, "{\"s\":\"\\\"" R "\\\\\\n\"}");
	/* Keys follow the same policy. */
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_int(&jb, "k\xff", 1);
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), "{\"k" R "\":1}");
	jb_free(&jb);
}

/* Any byte string makes a document the strict parser accepts. */
static void test_writer_any_bytes(void **state)
{
	unsigned int seed = 12345;
	char buf[64];

	(void)state;
	for (int i = 0; i < 5000; i++) {
		struct json_buf jb;
		struct json_doc *doc;
		size_t n = (size_t)(i % (int)sizeof(buf));

		for (size_t j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			buf[j] = (char)(seed >> 16);
		}
		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		jb_strn(&jb, "s", buf, n);
		jb_obj_end(&jb);
		doc = json_parse(jb_cstr(&jb), NULL, 0);
		if (doc == NULL)
			fail_msg("iteration %d: %s does not parse", i, jb_cstr(&jb));
		assert_non_null(json_str(doc, "s"));
		json_doc_free(doc);
		jb_free(&jb);
	}
}

static void test_writer_numbers(void **state)
{
	struct json_buf jb;
	struct json_doc *doc;
	int64_t v;

	(void)state;
	jb_init(&jb);
	jb_arr_begin(&jb, NULL);
	jb_uint(&jb, NULL, UINT64_MAX);
	jb_uint(&jb, NULL, (uint64_t)INT64_MAX + 1);
	jb_uint(&jb, NULL, INT64_MAX);
	jb_int(&jb, NULL, INT64_MIN);
	jb_double(&jb, NULL, 0.1);
	jb_double(&jb, NULL, 2.0);
	jb_double(&jb, NULL, 0.0 / 0.0);
	jb_double(&jb, NULL, HUGE_VAL);
	jb_arr_end(&jb);
	/* Above INT64_MAX clamps; NaN and infinity are null. */
	assert_string_equal(jb_cstr(&jb), "[9223372036854775807,9223372036854775807,"
	                                  "9223372036854775807,-9223372036854775808,"
	                                  "0.1,2.0,null,null]");
	doc = json_parse(jb_cstr(&jb), NULL, 0);
	assert_int_equal(json_get_i64(doc, "0", &v), 0);
	assert_true(v == INT64_MAX);
	assert_int_equal(json_get_i64(doc, "3", &v), 0);
	assert_true(v == INT64_MIN);
	/* A real is not an integer. */
	assert_int_equal(json_get_i64(doc, "4", &v), -1);
	json_doc_free(doc);
	jb_free(&jb);
}

static void test_writer_duplicate_key(void **state)
{
	struct json_buf jb;

	(void)state;
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_uint(&jb, "generation", 1);
	jb_bool(&jb, "ok", 1);
	jb_uint(&jb, "generation", 2);
	jb_obj_end(&jb);
	/* One key, the later value, at the first one's place. */
	assert_string_equal(jb_cstr(&jb), "{\"generation\":2,\"ok\":true}");
	jb_free(&jb);
}

static const char bad_text[] =
    "{\"ok\":false,\"error\":\"internal error: the reply was built wrongly\"}";

static void test_writer_misuse(void **state)
{
	struct json_buf jb;

	(void)state;
	/* A value without a key inside an object. */
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_int(&jb, NULL, 1);
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	/* A key outside any object. */
	jb_init(&jb);
	jb_bool(&jb, "ok", 1);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	/* Two top-level values. */
	jb_init(&jb);
	jb_int(&jb, NULL, 1);
	jb_int(&jb, NULL, 2);
	assert_string_equal(jb_cstr(&jb), bad_text);
	/* jb_reset clears the error. */
	jb_reset(&jb);
	jb_int(&jb, NULL, 3);
	assert_string_equal(jb_cstr(&jb), "3");
	jb_free(&jb);
	/* Closing what is not open, or the wrong kind. */
	jb_init(&jb);
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_arr_end(&jb);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	/* jb_raw text that does not parse. */
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_raw(&jb, "r", "{\"a\":");
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	/* Too deep. */
	jb_init(&jb);
	for (int i = 0; i <= JB_MAX_DEPTH; i++)
		jb_arr_begin(&jb, NULL);
	assert_string_equal(jb_cstr(&jb), bad_text);
	jb_free(&jb);
	/* Containers left open are closed in the text. */
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_arr_begin(&jb, "a");
	assert_string_equal(jb_cstr(&jb), "{\"a\":[]}");
	jb_free(&jb);
}

/* jansson's allocator fails after `budget` allocations. */
static long budget;

static void *failing_malloc(size_t n)
{
	if (budget-- <= 0)
		return NULL;
	return malloc(n);
}

static void build_reply(struct json_buf *jb)
{
	jb_obj_begin(jb, NULL);
	jb_bool(jb, "ok", 1);
	jb_str(jb, "name", "caf\xc3\xa9 \xff");
	jb_arr_begin(jb, "list");
	for (int i = 0; i < 20; i++)
		jb_int(jb, NULL, i);
	jb_arr_end(jb);
	jb_obj_begin(jb, "nested");
	jb_str(jb, "k", "v");
	jb_obj_end(jb);
	jb_obj_end(jb);
}

static void test_writer_oom(void **state)
{
	struct json_buf jb;
	const char *want = "{\"ok\":true,\"name\":\"caf\xc3\xa9 " R "\","
	                   "\"list\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19],"
	                   "\"nested\":{\"k\":\"v\"}}";
	int ok_seen = 0, oom;
	char *text;

	(void)state;
	/* Every failure point gives the fixed error object or the whole
	 * reply, never a partial one; ASan checks that nothing leaks. */
	for (long b = 0; b < 200 && !ok_seen; b++) {
		budget = b;
		json_set_alloc_funcs(failing_malloc, free);
		jb_init(&jb);
		build_reply(&jb);
		/* The text is dumped (and may fail) in jb_cstr. */
		text = strdup(jb_cstr(&jb));
		oom = jb.oom;
		jb_free(&jb);
		json_set_alloc_funcs(malloc, free);
		assert_non_null(text);
		if (oom) {
			assert_string_equal(text, "{\"ok\":false,\"error\":\"out of memory\"}");
		} else {
			assert_string_equal(text, want);
			ok_seen = 1;
		}
		free(text);
	}
	assert_true(ok_seen);
}
#undef R

static void test_reader_paths(void **state)
{
	const char *text =
	    "{ \"ok\": true, \"instances\": [ {\"name\":\"blue\",\"active\": 12},"
	    " {\"name\":\"gr\\\"een\\u00e9\", \"active\": -4} ], \"x\": {\"y\": \"z\"},"
	    " \"d\": 1, \"d\": 2, \"f\": false, \"n\": null, \"e\": [] }";
	const struct json_doc *in;
	struct json_doc *doc;
	char s[32];
	int64_t n;
	int b;

	(void)state;
	doc = json_parse(text, NULL, 0);
	assert_non_null(doc);
	assert_int_equal(json_get_bool(doc, "ok", &b), 0);
	assert_true(b);
	assert_int_equal(json_get_bool(doc, "f", &b), 0);
	assert_false(b);
	assert_int_equal(json_get_i64(doc, "instances.0.active", &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(json_get_i64(doc, "instances.1.active", &n), 0);
	assert_int_equal(n, -4);
	assert_int_equal(json_get_str(doc, "instances.1.name", s, sizeof(s)), 0);
	assert_string_equal(s, "gr\"een\xc3\xa9");
	assert_int_equal(json_get_str(doc, "x.y", s, sizeof(s)), 0);
	assert_string_equal(s, "z");
	assert_string_equal(json_str(doc, "x.y"), "z");
	assert_int_equal(json_array_len(doc, "instances"), 2);
	assert_int_equal(json_array_len(doc, "e"), 0);
	/* A value inside the document, queried with relative paths. */
	in = json_at(doc, "instances.1");
	assert_non_null(in);
	assert_int_equal(json_get_i64(in, "active", &n), 0);
	assert_int_equal(n, -4);
	assert_ptr_equal(json_at(doc, ""), doc);
	assert_ptr_equal(json_at(doc, NULL), doc);
	/* The later of two equal keys. */
	assert_int_equal(json_get_i64(doc, "d", &n), 0);
	assert_int_equal(n, 2);
	/* Truncation to the buffer. */
	assert_int_equal(json_get_str(doc, "instances.0.name", s, 3), 0);
	assert_string_equal(s, "bl");
	/* Absent paths and type mismatches are errors, not zero values. */
	assert_int_equal(json_get_i64(doc, "instances.2.active", &n), -1);
	assert_int_equal(json_get_i64(doc, "x.y", &n), -1);
	assert_int_equal(json_get_str(doc, "nope", s, sizeof(s)), -1);
	assert_int_equal(json_get_str(doc, "n", s, sizeof(s)), -1);
	assert_int_equal(json_get_bool(doc, "d", &b), -1);
	assert_int_equal(json_array_len(doc, "x"), -1);
	assert_null(json_str(doc, "ok"));
	assert_null(json_at(doc, "instances.-1"));
	assert_null(json_at(doc, "instances.+1"));
	assert_null(json_at(doc, "instances.1x"));
	assert_null(json_at(doc, "instances.99999999999999999999"));
	assert_null(json_at(doc, "instances."));
	assert_null(json_at(doc, "x.y.z"));
	assert_null(json_at(doc, "ok.0"));
	/* A NULL document (a failed parse) reads as absent everywhere. */
	assert_int_equal(json_get_bool(NULL, "ok", &b), -1);
	assert_int_equal(json_array_len(NULL, "instances"), -1);
	assert_null(json_str(NULL, "x"));
	json_doc_free(doc);
	json_doc_free(NULL);
}

static void test_reader_malformed(void **state)
{
	static const char *bad[] = {
	    "{\"a\":}",  "{\"a\":1",      "[1,2",          "\"unterminated", "{\"a\":1} trailing",
	    "",          "   ",           "{a:1}",         "[1,]",           "01",
	    "\"\xff\"",  "\"\xc0\xaf\"",  "\"a\\u0000b\"", "\"tab\there\"",  "nul",
	    "{\"a\" 1}", "[\"\\ud800\"]", "1e999999"};
	struct json_doc *doc;
	char err[160];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		doc = json_parse(bad[i], err, sizeof(err));
		if (doc != NULL)
			fail_msg("'%s' parsed", bad[i]);
		assert_non_null(strstr(err, "line "));
	}
	/* A raw NUL byte inside the buffer. */
	assert_null(json_parse_buf((const uint8_t *)"{\"a\":\"x\0y\"}", 11, NULL, 0));
	/* Bare values are documents; the buffer needs no terminator. */
	doc = json_parse(" 42 ", NULL, 0);
	assert_non_null(doc);
	json_doc_free(doc);
	doc = json_parse_buf((const uint8_t *)"{\"a\":1}garbage", 7, NULL, 0);
	assert_non_null(doc);
	json_doc_free(doc);
	assert_null(json_parse_buf((const uint8_t *)"", 0, NULL, 0));
}

static void test_reader_deep(void **state)
{
	size_t n = 100000;
	char *text = malloc(2 * n + 1);
	struct json_doc *doc;
	char err[160];

	(void)state;
	assert_non_null(text);
	/* Far deeper than any reply: refused with an error, no stack overflow. */
	memset(text, '[', n);
	memset(text + n, ']', n);
	text[2 * n] = '\0';
	assert_null(json_parse(text, err, sizeof(err)));
	assert_non_null(strstr(err, "depth"));
	/* Unbalanced. */
	text[n] = '\0';
	assert_null(json_parse(text, NULL, 0));
	/* Moderately deep is fine. */
	memset(text, '[', 500);
	memset(text + 500, ']', 500);
	text[1000] = '\0';
	doc = json_parse(text, NULL, 0);
	assert_non_null(doc);
	assert_int_equal(json_array_len(doc, "0.0.0"), 1);
	json_doc_free(doc);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writer_nesting),      cmocka_unit_test(test_writer_escaping),
	    cmocka_unit_test(test_writer_invalid_utf8), cmocka_unit_test(test_writer_any_bytes),
	    cmocka_unit_test(test_writer_numbers),      cmocka_unit_test(test_writer_duplicate_key),
	    cmocka_unit_test(test_writer_misuse),       cmocka_unit_test(test_writer_oom),
	    cmocka_unit_test(test_reader_paths),        cmocka_unit_test(test_reader_malformed),
	    cmocka_unit_test(test_reader_deep),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
