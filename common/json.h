/*
 * json: the writer for control-socket replies, status output and reports
 * (jb_*), and the reader for the replies the CLI and the supervisor parse
 * (json_*). Both are thin layers over jansson, which owns escaping, nesting
 * and parsing; this module adds the policies below so that every caller
 * gets them.
 *
 * Writer policies (docs/control.md, "Encoding"):
 * - Any byte string makes valid UTF-8 JSON: every byte that is not part of
 *   a well-formed UTF-8 sequence, and every NUL byte, becomes U+FFFD.
 *   Control characters are escaped (\n, \u001B), quotes and backslashes too.
 * - A key written twice in one object is stored once: the later value
 *   replaces the earlier one at the earlier one's position.
 * - jb_uint clamps values above INT64_MAX to INT64_MAX (jansson integers
 *   are signed 64-bit, and a number that stays a number is what scripts
 *   expect; no counter reaches 2^63).
 * - NaN and infinities become null (JSON has neither).
 */
#ifndef SY_JSON_H
#define SY_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JB_MAX_DEPTH 32

struct json_t; /* jansson's value type */

/* Writer. Keys are ignored inside arrays (pass NULL). A value inside an
 * object without a key, a key outside any object, a second value at the
 * top level, nesting deeper than JB_MAX_DEPTH or jb_raw text that does not
 * parse is a bug in the caller: jb_cstr() then returns a fixed error
 * object, as it does after an allocation failure. */
struct json_buf {
	size_t len; /* values written since jb_init/jb_reset; 0: nothing yet */
	int oom;    /* an allocation failed */
	/* private */
	int bad;
	int depth;
	struct json_t *root;
	struct json_t *open[JB_MAX_DEPTH];
	char *text;
	size_t textlen, textcap;
};
void jb_init(struct json_buf *jb);
void jb_free(struct json_buf *jb); /* releases everything; jb_init again to reuse */
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
/* Parses already-encoded JSON text and adds it as one value. */
void jb_raw(struct json_buf *jb, const char *key, const char *json);
/* The document so far as compact one-line JSON (containers still open are
 * closed in the text), NUL-terminated, "" if nothing was written. Owned by
 * jb, valid until the next jb_* call on it. */
const char *jb_cstr(struct json_buf *jb);

/*
 * Reader: parse once, then query the tree. A struct json_doc is either a
 * whole document (from json_parse*, owned by the caller, released with
 * json_doc_free) or a value inside one (from json_at, borrowed: valid until
 * its document is freed).
 *
 * Paths are keys separated by '.', array elements by decimal index
 * ("instances.0.state"); NULL or "" is the value itself. If a key appears
 * twice in a parsed object, the later value is the one found.
 */
struct json_doc;
/* Parses NUL-terminated text; NULL with a message (line, column, what) in
 * err if it is not one well-formed JSON value with only whitespace around. */
struct json_doc *json_parse(const char *text, char *err, size_t errlen);
/* The same for len bytes that need not be NUL-terminated (fuzz targets). */
struct json_doc *json_parse_buf(const uint8_t *data, size_t len, char *err, size_t errlen);
void json_doc_free(struct json_doc *doc);

/* The value at path, or NULL if absent. */
const struct json_doc *json_at(const struct json_doc *doc, const char *path);
/* Getters return -1 if the path is absent or holds another type (a missing
 * value is never read as zero). json_get_str copies the string into out,
 * truncated to outlen - 1 bytes. */
int json_get_str(const struct json_doc *doc, const char *path, char *out, size_t outlen);
int json_get_i64(const struct json_doc *doc, const char *path, int64_t *out);
int json_get_bool(const struct json_doc *doc, const char *path, int *out);
/* The string at path, NUL-terminated, or NULL. Borrowed from doc. */
const char *json_str(const struct json_doc *doc, const char *path);
/* Number of elements of the array at path, or -1. */
int json_array_len(const struct json_doc *doc, const char *path);

#endif
