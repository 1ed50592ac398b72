/*
 * fuzz_json: the JSON reader and writer (common/json.c over jansson).
 *
 * The first byte picks a mode.
 * - Reader: the input up to the first NUL is a document for json_parse_buf;
 *   every later NUL-separated piece is a path, queried with each getter. A
 *   parse must never crash, leak or recurse without bound, and the getters
 *   must agree with each other (a string found by json_str is the one
 *   json_get_str copies; an array length is never below -1).
 * - Writer round trip: NUL-separated pieces become string values under keys
 *   k0, k1, ... (some inside a nested object and an array), plus one key made
 *   of raw bytes. jb_cstr must give one line that json_parse accepts, and
 *   every value that was valid UTF-8 without NUL must read back unchanged;
 *   any other value must read back as valid UTF-8 (the writer's U+FFFD).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An independent UTF-8 check (RFC 3629: no overlongs, no surrogates, at
 * most U+10FFFF), written here rather than taken from the code under test. */
static int utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t need;
		uint32_t cp, min;

		if (c == 0)
			return 0;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			need = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			need = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (i + need >= n)
			return 0;
		for (size_t k = 1; k <= need; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Splits data at NUL bytes: up to max pieces, each pointer and length. */
static size_t pieces(const uint8_t *data, size_t size, const uint8_t **p, size_t *len, size_t max)
{
	size_t n = 0, start = 0;

	for (size_t i = 0; i <= size && n < max; i++) {
		if (i == size || data[i] == 0) {
			p[n] = data + start;
			len[n++] = i - start;
			start = i + 1;
		}
	}
	return n;
}

static void reader(const uint8_t *data, size_t size)
{
	const uint8_t *p[16];
	size_t len[16], n = pieces(data, size, p, len, 16);
	char err[256], path[256], out[64];
	struct json_doc *doc = json_parse_buf(p[0], len[0], err, sizeof(err));

	if (doc == NULL) {
		if (err[0] == '\0')
			abort(); /* a refusal always says why */
		return;
	}
	for (size_t i = 1; i < n; i++) {
		const char *s;
		int64_t v;
		int b;

		snprintf(path, sizeof(path), "%.*s", (int)(len[i] < 255 ? len[i] : 255),
		         (const char *)p[i]);
		s = json_str(doc, path);
		if (json_get_str(doc, path, out, sizeof(out)) == 0) {
			if (s == NULL || strncmp(s, out, sizeof(out) - 1) != 0)
				abort();
		} else if (s != NULL) {
			abort();
		}
		(void)json_get_i64(doc, path, &v);
		(void)json_get_bool(doc, path, &b);
		if (json_array_len(doc, path) < -1)
			abort();
		(void)json_at(doc, path);
	}
	json_doc_free(doc);
}

static void writer(const uint8_t *data, size_t size)
{
	const uint8_t *p[12];
	size_t len[12], n = pieces(data, size, p, len, 12);
	struct json_buf jb;
	struct json_doc *doc;
	char key[16], path[32], err[256];
	const char *text;

	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "k%zu", i);
		if (i == 3)
			jb_obj_begin(&jb, "in");
		if (i == 6)
			jb_obj_end(&jb);
		jb_strn(&jb, key, (const char *)p[i], len[i]);
	}
	if (n > 3 && n < 7)
		jb_obj_end(&jb);
	jb_arr_begin(&jb, "arr");
	for (size_t i = 0; i < n; i++)
		jb_strn(&jb, NULL, (const char *)p[i], len[i]);
	jb_arr_end(&jb);
	/* A key of raw bytes, after an "r" so that it never names one of the
	 * keys checked below (a key is a string like any other). */
	if (n > 0 && len[0] < 200) {
		char rawkey[202];

		rawkey[0] = 'r';
		memcpy(rawkey + 1, p[0], len[0]);
		rawkey[len[0] + 1] = '\0';
		jb_int(&jb, rawkey, (int64_t)size);
	}
	jb_uint(&jb, "big", UINT64_MAX);
	jb_obj_end(&jb);
	text = jb_cstr(&jb);
	if (strchr(text, '\n') != NULL || !utf8_ok((const uint8_t *)text, strlen(text)))
		abort();
	doc = json_parse(text, err, sizeof(err));
	if (doc == NULL)
		abort(); /* the writer's output must always parse */
	for (size_t i = 0; i < n; i++) {
		const char *s;

		snprintf(path, sizeof(path), "%sk%zu", i >= 3 && i < 6 ? "in." : "", i);
		s = json_str(doc, path);
		if (s == NULL || !utf8_ok((const uint8_t *)s, strlen(s)))
			abort();
		if (utf8_ok(p[i], len[i]) && (strlen(s) != len[i] || memcmp(s, p[i], len[i]) != 0))
			abort();
		snprintf(path, sizeof(path), "arr.%zu", i);
		if (json_str(doc, path) == NULL)
			abort();
	}
	if (json_array_len(doc, "arr") != (int)n)
		abort();
	json_doc_free(doc);
	jb_free(&jb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		writer(data + 1, size - 1);
	else
		reader(data + 1, size - 1);
	return 0;
}
