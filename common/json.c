/*
 * json: see json.h. The writer grows one heap buffer; the reader is a
 * recursive-descent skipper that walks the document in place.
 */
#include "common/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char jb_oom_text[] = "{\"ok\":false,\"error\":\"out of memory\"}";

void jb_init(struct json_buf *jb)
{
	memset(jb, 0, sizeof(*jb));
	jb->first[0] = 1;
}

void jb_free(struct json_buf *jb)
{
	if (jb == NULL)
		return;
	free(jb->buf);
	jb_init(jb);
}

void jb_reset(struct json_buf *jb)
{
	char *buf = jb->buf;
	size_t cap = jb->cap;

	jb_init(jb);
	jb->buf = buf;
	jb->cap = cap;
	if (buf != NULL)
		buf[0] = '\0';
}

static void jb_put(struct json_buf *jb, const char *s, size_t n)
{
	if (jb->oom)
		return;
	if (jb->len + n + 1 > jb->cap) {
		size_t cap = jb->cap ? jb->cap : 256;
		char *nb;

		while (cap < jb->len + n + 1)
			cap *= 2;
		nb = realloc(jb->buf, cap);
		if (nb == NULL) {
			jb->oom = 1;
			return;
		}
		jb->buf = nb;
		jb->cap = cap;
	}
	memcpy(jb->buf + jb->len, s, n);
	jb->len += n;
	jb->buf[jb->len] = '\0';
}

static void jb_puts(struct json_buf *jb, const char *s)
{
	jb_put(jb, s, strlen(s));
}

static void jb_escaped(struct json_buf *jb, const char *s, size_t n)
{
	jb_put(jb, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		switch (c) {
		case '"':
			jb_put(jb, "\\\"", 2);
			break;
		case '\\':
			jb_put(jb, "\\\\", 2);
			break;
		case '\n':
			jb_put(jb, "\\n", 2);
			break;
		case '\r':
			jb_put(jb, "\\r", 2);
			break;
		case '\t':
			jb_put(jb, "\\t", 2);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				jb_put(jb, esc, 6);
			} else {
				jb_put(jb, (const char *)&s[i], 1);
			}
		}
	}
	jb_put(jb, "\"", 1);
}

/* Writes the separator and, inside an object, the key of the next value. */
static void jb_prefix(struct json_buf *jb, const char *key)
{
	if (!jb->first[jb->depth])
		jb_put(jb, ",", 1);
	jb->first[jb->depth] = 0;
	if (key != NULL) {
		jb_escaped(jb, key, strlen(key));
		jb_put(jb, ":", 1);
	}
}

static void jb_open(struct json_buf *jb, const char *key, const char *bracket)
{
	jb_prefix(jb, key);
	jb_puts(jb, bracket);
	if (jb->depth + 1 < JB_MAX_DEPTH)
		jb->depth++;
	jb->first[jb->depth] = 1;
}

static void jb_close(struct json_buf *jb, const char *bracket)
{
	if (jb->depth > 0)
		jb->depth--;
	jb_puts(jb, bracket);
}

void jb_obj_begin(struct json_buf *jb, const char *key)
{
	jb_open(jb, key, "{");
}

void jb_obj_end(struct json_buf *jb)
{
	jb_close(jb, "}");
}

void jb_arr_begin(struct json_buf *jb, const char *key)
{
	jb_open(jb, key, "[");
}

void jb_arr_end(struct json_buf *jb)
{
	jb_close(jb, "]");
}

void jb_strn(struct json_buf *jb, const char *key, const char *val, size_t len)
{
	jb_prefix(jb, key);
	jb_escaped(jb, val, len);
}

void jb_str(struct json_buf *jb, const char *key, const char *val)
{
	if (val == NULL) {
		jb_null(jb, key);
		return;
	}
	jb_strn(jb, key, val, strlen(val));
}

void jb_int(struct json_buf *jb, const char *key, int64_t val)
{
	char num[32];

	jb_prefix(jb, key);
	snprintf(num, sizeof(num), "%" PRId64, val);
	jb_puts(jb, num);
}

void jb_uint(struct json_buf *jb, const char *key, uint64_t val)
{
	char num[32];

	jb_prefix(jb, key);
	snprintf(num, sizeof(num), "%" PRIu64, val);
	jb_puts(jb, num);
}

void jb_double(struct json_buf *jb, const char *key, double val)
{
	char num[64];

	jb_prefix(jb, key);
	/* JSON has no NaN or infinity; null is the honest substitute. */
	if (val != val || val > 1e308 || val < -1e308)
		snprintf(num, sizeof(num), "null");
	else
		snprintf(num, sizeof(num), "%.6g", val);
	jb_puts(jb, num);
}

void jb_bool(struct json_buf *jb, const char *key, int val)
{
	jb_prefix(jb, key);
	jb_puts(jb, val ? "true" : "false");
}

void jb_null(struct json_buf *jb, const char *key)
{
	jb_prefix(jb, key);
	jb_puts(jb, "null");
}

void jb_raw(struct json_buf *jb, const char *key, const char *json)
{
	jb_prefix(jb, key);
	jb_puts(jb, json);
}

const char *jb_cstr(struct json_buf *jb)
{
	if (jb->oom)
		return jb_oom_text;
	if (jb->buf == NULL)
		return "";
	return jb->buf;
}

/* ---- reader ---- */

static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Skips one string starting at the opening quote; returns the char after
 * the closing quote or NULL. */
static const char *js_skip_str(const char *p)
{
	for (p++; *p != '\0'; p++) {
		if (*p == '\\') {
			if (p[1] == '\0')
				return NULL;
			p++;
		} else if (*p == '"') {
			return p + 1;
		} else if ((unsigned char)*p < 0x20) {
			return NULL;
		}
	}
	return NULL;
}

static const char *js_skip(const char *p, int depth, struct json_val *v);

static const char *js_skip_container(const char *p, int depth, char close, int is_obj)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (is_obj) {
			if (*p != '"')
				return NULL;
			p = js_skip_str(p);
			if (p == NULL)
				return NULL;
			p = js_ws(p);
			if (*p != ':')
				return NULL;
			p = js_ws(p + 1);
		}
		p = js_skip(p, depth + 1, NULL);
		if (p == NULL)
			return NULL;
		p = js_ws(p);
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = js_ws(p + 1);
	}
}

/* Skips one value at p (no leading whitespace); fills v if not NULL. */
static const char *js_skip(const char *p, int depth, struct json_val *v)
{
	const char *end = NULL;
	enum json_type t = JSON_NONE;

	if (depth > 64)
		return NULL;
	switch (*p) {
	case '{':
		t = JSON_OBJ;
		end = js_skip_container(p, depth, '}', 1);
		break;
	case '[':
		t = JSON_ARR;
		end = js_skip_container(p, depth, ']', 0);
		break;
	case '"':
		t = JSON_STR;
		end = js_skip_str(p);
		break;
	case 't':
		t = JSON_BOOL;
		end = strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
		break;
	case 'f':
		t = JSON_BOOL;
		end = strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
		break;
	case 'n':
		t = JSON_NULL;
		end = strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
		break;
	default:
		if (*p == '-' || (*p >= '0' && *p <= '9')) {
			t = JSON_NUM;
			end = p + 1;
			while (strchr("0123456789.eE+-", *end) != NULL && *end != '\0')
				end++;
		}
	}
	if (end != NULL && v != NULL) {
		v->type = t;
		if (t == JSON_STR) {
			v->start = p + 1;
			v->len = (size_t)(end - p - 2);
		} else {
			v->start = p;
			v->len = (size_t)(end - p);
		}
	}
	return end;
}

int json_validate(const char *doc)
{
	const char *p = js_skip(js_ws(doc), 0, NULL);

	return (p != NULL && *js_ws(p) == '\0') ? 0 : -1;
}

/* Finds member `key` (klen bytes) of the object or element of the array at p. */
static const char *js_member(const char *p, const char *key, size_t klen)
{
	if (*p == '{') {
		p = js_ws(p + 1);
		if (*p == '}')
			return NULL;
		for (;;) {
			const char *ks, *ke;

			if (*p != '"')
				return NULL;
			ks = p + 1;
			ke = js_skip_str(p);
			if (ke == NULL)
				return NULL;
			p = js_ws(ke);
			if (*p != ':')
				return NULL;
			p = js_ws(p + 1);
			if ((size_t)(ke - 1 - ks) == klen && memcmp(ks, key, klen) == 0)
				return p;
			p = js_skip(p, 0, NULL);
			if (p == NULL)
				return NULL;
			p = js_ws(p);
			if (*p != ',')
				return NULL;
			p = js_ws(p + 1);
		}
	}
	if (*p == '[') {
		char *endnum;
		char idx[24];
		long want;

		if (klen == 0 || klen >= sizeof(idx))
			return NULL;
		memcpy(idx, key, klen);
		idx[klen] = '\0';
		want = strtol(idx, &endnum, 10);
		if (*endnum != '\0' || want < 0)
			return NULL;
		p = js_ws(p + 1);
		for (long i = 0; *p != ']'; i++) {
			if (i == want)
				return p;
			p = js_skip(p, 0, NULL);
			if (p == NULL)
				return NULL;
			p = js_ws(p);
			if (*p == ',')
				p = js_ws(p + 1);
			else if (*p != ']')
				return NULL;
		}
	}
	return NULL;
}

int json_find(const char *doc, const char *path, struct json_val *out)
{
	const char *p = js_ws(doc);

	while (path != NULL && *path != '\0') {
		const char *dot = strchr(path, '.');
		size_t klen = dot ? (size_t)(dot - path) : strlen(path);

		p = js_member(p, path, klen);
		if (p == NULL)
			return -1;
		path = dot ? dot + 1 : NULL;
	}
	return js_skip(p, 0, out) != NULL ? 0 : -1;
}

int json_get_str(const char *doc, const char *path, char *out, size_t outlen)
{
	struct json_val v;
	size_t o = 0;

	if (json_find(doc, path, &v) < 0 || v.type != JSON_STR || outlen == 0)
		return -1;
	for (size_t i = 0; i < v.len && o + 1 < outlen; i++) {
		char c = v.start[i];

		if (c == '\\' && i + 1 < v.len) {
			c = v.start[++i];
			switch (c) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'u':
				/* Only the control characters the writer emits. */
				if (i + 4 < v.len) {
					char hex[5] = {v.start[i + 1], v.start[i + 2],
					               v.start[i + 3], v.start[i + 4], '\0'};
					c = (char)strtol(hex, NULL, 16);
					i += 4;
				}
				break;
			default:
				break;
			}
		}
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

int json_get_i64(const char *doc, const char *path, int64_t *out)
{
	struct json_val v;
	char num[32];

	if (json_find(doc, path, &v) < 0 || v.type != JSON_NUM || v.len >= sizeof(num))
		return -1;
	memcpy(num, v.start, v.len);
	num[v.len] = '\0';
	*out = strtoll(num, NULL, 10);
	return 0;
}

int json_get_bool(const char *doc, const char *path, int *out)
{
	struct json_val v;

	if (json_find(doc, path, &v) < 0 || v.type != JSON_BOOL)
		return -1;
	*out = v.start[0] == 't';
	return 0;
}

int json_array_len(const char *doc, const char *path)
{
	struct json_val v;
	const char *p;
	int n = 0;

	if (json_find(doc, path, &v) < 0 || v.type != JSON_ARR)
		return -1;
	p = js_ws(v.start + 1);
	while (*p != ']') {
		p = js_skip(p, 0, NULL);
		if (p == NULL)
			return -1;
		n++;
		p = js_ws(p);
		if (*p == ',')
			p = js_ws(p + 1);
	}
	return n;
}
