/*
 * json: see json.h. The writer builds a jansson tree and dumps it on
 * jb_cstr(); the reader is jansson's parser plus dotted-path lookups.
 */
#include "common/json.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char jb_oom_text[] = "{\"ok\":false,\"error\":\"out of memory\"}";
static const char jb_bad_text[] =
    "{\"ok\":false,\"error\":\"internal error: the reply was built wrongly\"}";

/* 15 significant digits keep what a double carries in decimal without the
 * 17-digit noise of 0.1 printed as 0.10000000000000001. */
#define JB_DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15))

void jb_init(struct json_buf *jb)
{
	memset(jb, 0, sizeof(*jb));
}

void jb_free(struct json_buf *jb)
{
	if (jb == NULL)
		return;
	json_decref(jb->root);
	free(jb->text);
	jb_init(jb);
}

void jb_reset(struct json_buf *jb)
{
	char *text = jb->text;
	size_t cap = jb->textcap;

	json_decref(jb->root);
	jb_init(jb);
	jb->text = text;
	jb->textcap = cap;
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), or 0 if
 * the byte at s does not start one. The ranges are those of RFC 3629
 * section 4: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] >= 0x01 && s[0] <= 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Number of bytes of s that are not part of a well-formed sequence. */
static size_t utf8_bad(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t bad = 0;

	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);

		bad += l == 0;
		i += l ? l : 1;
	}
	return bad;
}

/* A jansson string of n bytes of s, where every byte outside a well-formed
 * UTF-8 sequence (NUL included) becomes U+FFFD; NULL only if out of memory. */
static json_t *jb_string(const char *s, size_t n)
{
	static const char repl[] = "\xef\xbf\xbd";
	const unsigned char *u = (const unsigned char *)s;
	size_t bad = utf8_bad(s, n), o = 0;
	char *clean;
	json_t *v;

	if (bad == 0)
		return json_stringn(s, n);
	/* Each bad byte grows by 2 bytes; n and bad are bounded by memory. */
	clean = malloc(n + 2 * bad);
	if (clean == NULL)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t l = utf8_seq(u + i, n - i);

		if (l == 0) {
			memcpy(clean + o, repl, 3);
			o += 3;
			i++;
		} else {
			memcpy(clean + o, s + i, l);
			o += l;
			i += l;
		}
	}
	v = json_stringn(clean, o);
	free(clean);
	return v;
}

/* Adds v (a new reference, NULL after a failed allocation) under key to
 * the innermost open container, or as the top-level value. */
static void jb_add(struct json_buf *jb, const char *key, json_t *v)
{
	json_t *parent;
	int rc = 0;

	if (v == NULL)
		jb->oom = 1;
	if (jb->oom || jb->bad) {
		json_decref(v);
		return;
	}
	jb->len++;
	jb->textlen = 0; /* the text no longer matches the tree */
	if (jb->depth == 0) {
		if (jb->root != NULL || key != NULL) {
			jb->bad = 1;
			json_decref(v);
			return;
		}
		jb->root = v;
		return;
	}
	parent = jb->open[jb->depth - 1];
	if (json_is_array(parent)) {
		rc = json_array_append_new(parent, v);
	} else if (key == NULL) {
		jb->bad = 1;
		json_decref(v);
		return;
	} else if (utf8_bad(key, strlen(key)) == 0) {
		rc = json_object_set_new(parent, key, v);
	} else {
		/* jansson wants keys in valid UTF-8 too; the cleaned copy is. */
		json_t *k = jb_string(key, strlen(key));

		if (k == NULL) {
			json_decref(v);
			rc = -1;
		} else {
			rc = json_object_set_new(parent, json_string_value(k), v);
			json_decref(k);
		}
	}
	if (rc < 0)
		jb->oom = 1;
}

static void jb_open(struct json_buf *jb, const char *key, json_t *c)
{
	if (c != NULL && jb->depth == JB_MAX_DEPTH) {
		jb->bad = 1;
		json_decref(c);
		return;
	}
	jb_add(jb, key, c);
	/* The parent (or root) holds the reference; open[] borrows it. */
	if (!jb->oom && !jb->bad)
		jb->open[jb->depth++] = c;
}

static void jb_close(struct json_buf *jb, int is_obj)
{
	if (jb->oom || jb->bad)
		return;
	if (jb->depth == 0 || (json_is_object(jb->open[jb->depth - 1]) != 0) != is_obj) {
		jb->bad = 1;
		return;
	}
	jb->depth--;
}

void jb_obj_begin(struct json_buf *jb, const char *key)
{
	jb_open(jb, key, json_object());
}

void jb_obj_end(struct json_buf *jb)
{
	jb_close(jb, 1);
}

void jb_arr_begin(struct json_buf *jb, const char *key)
{
	jb_open(jb, key, json_array());
}

void jb_arr_end(struct json_buf *jb)
{
	jb_close(jb, 0);
}

void jb_strn(struct json_buf *jb, const char *key, const char *val, size_t len)
{
	jb_add(jb, key, jb_string(val, len));
}

void jb_str(struct json_buf *jb, const char *key, const char *val)
{
	if (val == NULL)
		jb_null(jb, key);
	else
		jb_strn(jb, key, val, strlen(val));
}

void jb_int(struct json_buf *jb, const char *key, int64_t val)
{
	jb_add(jb, key, json_integer((json_int_t)val));
}

void jb_uint(struct json_buf *jb, const char *key, uint64_t val)
{
	jb_add(jb, key, json_integer(val > INT64_MAX ? INT64_MAX : (json_int_t)val));
}

void jb_double(struct json_buf *jb, const char *key, double val)
{
	/* json_real refuses NaN and infinities; null is the honest stand-in. */
	if (val != val || val > 1e308 || val < -1e308)
		jb_null(jb, key);
	else
		jb_add(jb, key, json_real(val));
}

void jb_bool(struct json_buf *jb, const char *key, int val)
{
	jb_add(jb, key, json_boolean(val));
}

void jb_null(struct json_buf *jb, const char *key)
{
	jb_add(jb, key, json_null());
}

void jb_raw(struct json_buf *jb, const char *key, const char *json)
{
	json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);

	if (v == NULL) {
		jb->bad = 1;
		return;
	}
	jb_add(jb, key, v);
}

static int jb_dump_cb(const char *buf, size_t size, void *data)
{
	struct json_buf *jb = data;

	if (jb->textlen + size + 1 > jb->textcap) {
		size_t cap = jb->textcap ? jb->textcap : 256;
		char *nb;

		while (cap < jb->textlen + size + 1)
			cap *= 2;
		nb = realloc(jb->text, cap);
		if (nb == NULL)
			return -1;
		jb->text = nb;
		jb->textcap = cap;
	}
	memcpy(jb->text + jb->textlen, buf, size);
	jb->textlen += size;
	jb->text[jb->textlen] = '\0';
	return 0;
}

const char *jb_cstr(struct json_buf *jb)
{
	if (jb->oom)
		return jb_oom_text;
	if (jb->bad)
		return jb_bad_text;
	if (jb->root == NULL)
		return "";
	if (jb->textlen > 0)
		return jb->text;
	if (json_dump_callback(jb->root, jb_dump_cb, jb, JB_DUMP_FLAGS) < 0 || jb->text == NULL) {
		jb->oom = 1;
		return jb_oom_text;
	}
	return jb->text;
}

/* ---- reader ---- */

/* A struct json_doc is a jansson value under another name, so that
 * callers need not include jansson.h; it is never dereferenced as such. */
static json_t *J(const struct json_doc *d)
{
	return (json_t *)(uintptr_t)d;
}

struct json_doc *json_parse_buf(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	json_error_t e;
	json_t *root;

	/* JSON_DECODE_ANY: a bare string or number is a document too. NUL
	 * bytes, raw or as \u0000, are refused (the default): every string
	 * handed out is a C string. */
	root = json_loadb((const char *)data, len, JSON_DECODE_ANY, &e);
	if (root == NULL) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "line %d column %d: %s", e.line, e.column, e.text);
		errno = EINVAL;
		return NULL;
	}
	return (struct json_doc *)root;
}

struct json_doc *json_parse(const char *text, char *err, size_t errlen)
{
	return json_parse_buf((const uint8_t *)text, strlen(text), err, errlen);
}

void json_doc_free(struct json_doc *doc)
{
	json_decref(J(doc));
}

/* Array index segment: decimal digits only, no sign, no overflow. */
static int seg_index(const char *s, size_t n, size_t *out)
{
	size_t v = 0;

	if (n == 0 || n > 9)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (size_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

const struct json_doc *json_at(const struct json_doc *doc, const char *path)
{
	json_t *v = J(doc);

	if (v == NULL || path == NULL || path[0] == '\0')
		return doc;
	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path), idx;

		if (json_is_object(v))
			v = json_object_getn(v, path, n);
		else if (json_is_array(v) && seg_index(path, n, &idx) == 0)
			v = json_array_get(v, idx);
		else
			v = NULL;
		if (v == NULL || dot == NULL)
			return (const struct json_doc *)v;
		path = dot + 1;
	}
}

const char *json_str(const struct json_doc *doc, const char *path)
{
	return json_string_value(J(json_at(doc, path)));
}

int json_get_str(const struct json_doc *doc, const char *path, char *out, size_t outlen)
{
	json_t *v = J(json_at(doc, path));
	size_t n;

	if (!json_is_string(v) || outlen == 0)
		return -1;
	n = json_string_length(v);
	if (n > outlen - 1)
		n = outlen - 1;
	memcpy(out, json_string_value(v), n);
	out[n] = '\0';
	return 0;
}

int json_get_i64(const struct json_doc *doc, const char *path, int64_t *out)
{
	json_t *v = J(json_at(doc, path));

	if (!json_is_integer(v))
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int json_get_bool(const struct json_doc *doc, const char *path, int *out)
{
	json_t *v = J(json_at(doc, path));

	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 0;
}

int json_array_len(const struct json_doc *doc, const char *path)
{
	json_t *v = J(json_at(doc, path));
	size_t n;

	if (!json_is_array(v))
		return -1;
	n = json_array_size(v);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}
