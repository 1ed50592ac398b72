/* Unit tests for common/json.c: writer escaping and nesting, reader paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

static void test_writer_nesting(void **state)
{
	struct json_buf jb;

	(void)state;
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_bool(&jb, "ok", 1);
	jb_str(&jb, "s", "a\"b\\c\n\x01");
	jb_arr_begin(&jb, "list");
	jb_int(&jb, NULL, -3);
	jb_uint(&jb, NULL, 18446744073709551615ULL);
	jb_obj_begin(&jb, NULL);
	jb_null(&jb, "n");
	jb_obj_end(&jb);
	jb_arr_end(&jb);
	jb_arr_begin(&jb, "empty");
	jb_arr_end(&jb);
	jb_obj_end(&jb);
	assert_string_equal(jb_cstr(&jb), "{\"ok\":true,\"s\":\"a\\\"b\\\\c\\n\\u0001\","
	                                  "\"list\":[-3,18446744073709551615,{\"n\":null}],"
	                                  "\"empty\":[]}");
	assert_int_equal(json_validate(jb_cstr(&jb)), 0);
	jb_free(&jb);
}

static void test_reader_paths(void **state)
{
	const char *doc = "{ \"ok\": true, \"instances\": [ {\"name\":\"blue\",\"active\": 12},"
	                  " {\"name\":\"gr\\\"een\", \"active\": -4} ], \"x\": {\"y\": \"z\"} }";
	char s[32];
	int64_t n;
	int b;

	(void)state;
	assert_int_equal(json_get_bool(doc, "ok", &b), 0);
	assert_true(b);
	assert_int_equal(json_get_i64(doc, "instances.0.active", &n), 0);
	assert_int_equal(n, 12);
	assert_int_equal(json_get_i64(doc, "instances.1.active", &n), 0);
	assert_int_equal(n, -4);
	assert_int_equal(json_get_str(doc, "instances.1.name", s, sizeof(s)), 0);
	assert_string_equal(s, "gr\"een");
	assert_int_equal(json_get_str(doc, "x.y", s, sizeof(s)), 0);
	assert_string_equal(s, "z");
	assert_int_equal(json_array_len(doc, "instances"), 2);
	/* Absent paths and type mismatches are errors, not zero values. */
	assert_int_equal(json_get_i64(doc, "instances.2.active", &n), -1);
	assert_int_equal(json_get_i64(doc, "x.y", &n), -1);
	assert_int_equal(json_get_str(doc, "nope", s, sizeof(s)), -1);
}

static void test_reader_malformed(void **state)
{
	(void)state;
	assert_int_equal(json_validate("{\"a\":1}"), 0);
	assert_int_equal(json_validate("{\"a\":}"), -1);
	assert_int_equal(json_validate("{\"a\":1"), -1);
	assert_int_equal(json_validate("[1,2"), -1);
	assert_int_equal(json_validate("\"unterminated"), -1);
	assert_int_equal(json_validate("{\"a\":1} trailing"), -1);
	assert_int_equal(json_validate(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_writer_nesting),
	    cmocka_unit_test(test_reader_paths),
	    cmocka_unit_test(test_reader_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
