/*
 * json: a small JSON writer for control-socket replies, status output and
 * reports, and a small reader for the replies the CLI and supervisor parse.
 * No allocation happens on the reader side.
 */
#ifndef SY_JSON_H
#define SY_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JB_MAX_DEPTH 32

/* Writer. Commas and escaping are handled; keys are ignored inside arrays
 * (pass NULL). An allocation failure is remembered and jb_cstr() then
 * returns a fixed error object. */
struct json_buf {
	char *buf;
	size_t len, cap;
	/* private */
	int depth;
	unsigned char first[JB_MAX_DEPTH];
	int oom;
};
void jb_init(struct json_buf *jb);
void jb_free(struct json_buf *jb); /* releases buf; jb_init again to reuse */
void jb_reset(struct json_buf *jb);
void jb_obj_begin(struct json_buf *jb, const char *key);
void jb_obj_end(struct json_buf *jb);
void jb_arr_begin(struct json_buf *jb, const char *key);
void jb_arr_end(struct json_buf *jb);
void jb_str(struct json_buf *jb, const char *key, const char *val); /* NULL val -> null */
void jb_strn(struct json_buf *jb, const char *key, const char *val, size_t len);
void jb_int(struct json_buf *jb, const char *key, int64_t val);
void jb_uint(struct json_buf *jb, const char *key, uint64_t val);
void jb_double(struct json_buf *jb, const char *key, double val);
void jb_bool(struct json_buf *jb, const char *key, int val);
void jb_null(struct json_buf *jb, const char *key);
/* Appends already-encoded JSON text as one value. */
void jb_raw(struct json_buf *jb, const char *key, const char *json);
/* The text so far (NUL-terminated). Owned by jb. */
const char *jb_cstr(struct json_buf *jb);

/* Reader. */
enum json_type { JSON_NONE = 0, JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };
struct json_val {
	enum json_type type;
	const char *start; /* points into the document; strings exclude quotes */
	size_t len;
};
/*
 * Finds the value at path in a JSON document: keys separated by '.', array
 * indexes as numbers ("instances.0.state"). Returns 0 and fills *out, or -1
 * if the path is absent or the document is malformed.
 */
int json_find(const char *doc, const char *path, struct json_val *out);
/* Convenience wrappers; return -1 if absent or of another type. The string
 * is unescaped into out (truncated to outlen - 1). */
int json_get_str(const char *doc, const char *path, char *out, size_t outlen);
int json_get_i64(const char *doc, const char *path, int64_t *out);
int json_get_bool(const char *doc, const char *path, int *out);
/* Number of elements of the array at path, or -1. */
int json_array_len(const char *doc, const char *path);
/* 0 if doc is one well-formed JSON value (whitespace around it allowed). */
int json_validate(const char *doc);

#endif
