/*
 * cfg_walk: applies a YAML document to struct cfg with the key tables of
 * cfg_keys.c, and reads those tables for the defaults, the key listing and
 * the comparison of two configurations. Nothing stops at the first
 * problem: a bad value leaves the field at its default, the error is
 * appended to the list, and the walk goes on, so one run reports
 * everything.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "common/cfg_int.h"

/* Which instance a struct cfg_instance inside ctx->cfg belongs to. */
int cfg_colour_of(struct cfg_ctx *ctx, const void *inst)
{
	return (const struct cfg_instance *)inst == &ctx->cfg->instances[CFG_GREEN] ? CFG_GREEN
	                                                                            : CFG_BLUE;
}

static void cfg_join(char *out, const char *path, const char *key)
{
	if (path[0] == '\0')
		snprintf(out, CFG_PATH_MAX, "%s", key);
	else
		snprintf(out, CFG_PATH_MAX, "%s.%s", path, key);
}

static void cfg_store_int(const struct cfg_key *key, void *base, int64_t v)
{
	char *p = (char *)base + key->off;

	if (key->size == sizeof(uint16_t)) {
		uint16_t u = (uint16_t)v;
		memcpy(p, &u, sizeof(u));
	} else if (key->min < 0) {
		int32_t i = (int32_t)v;
		memcpy(p, &i, sizeof(i));
	} else {
		uint32_t u = (uint32_t)v;
		memcpy(p, &u, sizeof(u));
	}
}

static void cfg_apply_str(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n,
                          void *base, const char *path)
{
	char *dst = (char *)base + key->off;
	const char *s;
	size_t max = key->size - 1;

	if (cfg_is_null(n)) {
		s = "";
	} else {
		s = cfg_scalar(ctx, n, path, "a string");
		if (s == NULL)
			return;
	}
	if ((key->flags & CFG_F_SOCK) && max > sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
		max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (strlen(s) > max) {
		cfg_err(ctx, &n->start_mark, path, "too long (at most %zu bytes%s)", max,
		        (key->flags & CFG_F_SOCK) ? " for a unix socket path" : "");
		return;
	}
	if ((key->flags & CFG_F_NONEMPTY) && s[0] == '\0') {
		cfg_err(ctx, &n->start_mark, path, "must not be empty");
		return;
	}
	if ((key->flags & CFG_F_ABS) && s[0] != '\0' && s[0] != '/') {
		cfg_err(ctx, &n->start_mark, path,
		        "'%s' must be an absolute path (switchyardd and the instances do not run "
		        "in this directory)",
		        s);
		return;
	}
	if ((key->flags & CFG_F_BASENAME) && strchr(s, '/') != NULL) {
		cfg_err(ctx, &n->start_mark, path,
		        "'%s' must be a file name inside the certificate directory, without '/'",
		        s);
		return;
	}
	memcpy(dst, s, strlen(s) + 1);
	if (key->flags & CFG_F_SETSOCK)
		ctx->set_sock[cfg_colour_of(ctx, base)] = 1;
	if (key->flags & CFG_F_SETPID)
		ctx->set_pid[cfg_colour_of(ctx, base)] = 1;
	if (key->flags & CFG_F_SETTICK)
		ctx->set_ticket = 1;
}

static void cfg_apply(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                      const char *path)
{
	const char *s;
	int64_t i;
	uint64_t u;
	char b1[32];
	int b;

	switch (key->type) {
	case CFG_T_MAP:
		cfg_walk_map(ctx, n, key->sub, (char *)base + key->off, path);
		return;
	case CFG_T_FN:
		key->fn(ctx, key, n, base, path);
		return;
	case CFG_T_STR:
		cfg_apply_str(ctx, key, n, base, path);
		return;
	case CFG_T_INT:
		if (cfg_get_int(ctx, n, path, key->min, key->max, &i) == 0)
			cfg_store_int(key, base, i);
		return;
	case CFG_T_DUR:
		s = cfg_scalar(ctx, n, path, "a duration");
		if (s == NULL)
			return;
		if (cfg_parse_duration(s, &u) < 0) {
			cfg_err(ctx, &n->start_mark, path,
			        "expected a duration such as 500ms, 10s, 5m or 1h, got '%s'", s);
			return;
		}
		if (u < (uint64_t)key->min) {
			cfg_err(ctx, &n->start_mark, path, "%s is below the minimum of %s", s,
			        cfg_fmt_ms((uint64_t)key->min, b1, sizeof(b1)));
			return;
		}
		if (u > (uint64_t)key->max) {
			cfg_err(ctx, &n->start_mark, path, "%s is above the maximum of %s", s,
			        cfg_fmt_ms((uint64_t)key->max, b1, sizeof(b1)));
			return;
		}
		cfg_store_int(key, base, (int64_t)u);
		return;
	case CFG_T_SIZE:
		s = cfg_scalar(ctx, n, path, "a size");
		if (s == NULL)
			return;
		if (cfg_parse_size(s, &u) < 0) {
			cfg_err(ctx, &n->start_mark, path,
			        "expected a size such as 16384, 64k or 1M, got '%s'", s);
			return;
		}
		if (u < (uint64_t)key->min || u > (uint64_t)key->max) {
			cfg_err(ctx, &n->start_mark, path, "%s is out of range %lld..%lld bytes", s,
			        (long long)key->min, (long long)key->max);
			return;
		}
		cfg_store_int(key, base, (int64_t)u);
		return;
	case CFG_T_BOOL:
		s = cfg_scalar(ctx, n, path, "a boolean");
		if (s == NULL)
			return;
		if (cfg_parse_bool(s, &b) < 0) {
			cfg_err(ctx, &n->start_mark, path,
			        "expected a boolean (true/false, yes/no, on/off), got '%s'", s);
			return;
		}
		memcpy((char *)base + key->off, &b, sizeof(b));
		return;
	case CFG_T_NAME:
		s = cfg_scalar(ctx, n, path, "a name");
		if (s == NULL)
			return;
		if (!cfg_name_ok(s) || strlen(s) >= key->size) {
			cfg_err(ctx, &n->start_mark, path,
			        "'%s' is not a valid name (1..%zu characters of A-Z a-z 0-9 . _ -)",
			        s, key->size - 1);
			return;
		}
		memcpy((char *)base + key->off, s, strlen(s) + 1);
		return;
	case CFG_T_ENUM: {
		char list[256] = "";

		s = cfg_scalar(ctx, n, path, "a string");
		if (s == NULL)
			return;
		for (int k = 0; key->names[k] != NULL; k++) {
			if (strcmp(s, key->names[k]) == 0) {
				memcpy((char *)base + key->off, &k, sizeof(k));
				return;
			}
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
			         k ? ", " : "", key->names[k]);
		}
		cfg_err(ctx, &n->start_mark, path, "expected one of %s, got '%s'", list, s);
		return;
	}
	case CFG_T_ADDR:
		s = cfg_scalar(ctx, n, path, "an address");
		if (s == NULL)
			return;
		if (cfg_parse_addr(s, (struct cfg_addr *)((char *)base + key->off)) < 0)
			cfg_err(ctx, &n->start_mark, path, "'%s' is not an IPv4 or IPv6 address",
			        s);
		return;
	}
}

void cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *keys, void *base,
                  const char *path)
{
	yaml_node_pair_t *start, *top;

	if (cfg_is_null(n))
		return;
	if (n->type != YAML_MAPPING_NODE) {
		cfg_err(ctx, &n->start_mark, path[0] ? path : NULL, "expected a mapping, got %s",
		        cfg_kind(n));
		return;
	}
	start = n->data.mapping.pairs.start;
	top = n->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = start; p < top; p++) {
		yaml_node_t *k = cfg_node(ctx, p->key);
		yaml_node_t *v = cfg_node(ctx, p->value);
		const struct cfg_key *key;
		char child[CFG_PATH_MAX];
		const char *name;
		int dup = 0;

		if (k == NULL || v == NULL)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			cfg_err(ctx, &k->start_mark, path[0] ? path : NULL,
			        "a key must be a scalar, got %s", cfg_kind(k));
			continue;
		}
		name = (const char *)k->data.scalar.value;
		cfg_join(child, path, name);
		/* libyaml keeps duplicate keys; YAML forbids them, and silently
		 * taking the last one hides typos in long files. */
		for (yaml_node_pair_t *q = start; q < p; q++) {
			yaml_node_t *qk = cfg_node(ctx, q->key);

			if (qk != NULL && qk->type == YAML_SCALAR_NODE &&
			    strcmp((const char *)qk->data.scalar.value, name) == 0) {
				cfg_err(ctx, &k->start_mark, child,
				        "duplicate key (first defined at line %zu column %zu)",
				        qk->start_mark.line + 1, qk->start_mark.column + 1);
				dup = 1;
				break;
			}
		}
		if (dup)
			continue;
		for (key = keys; key->name != NULL; key++)
			if (strcmp(key->name, name) == 0)
				break;
		if (key->name == NULL) {
			cfg_err(ctx, &k->start_mark, child, "unknown key");
			continue;
		}
		cfg_apply(ctx, key, v, base, child);
	}
}

/* See cfg_int.h. */
int cfg_each(struct cfg_ctx *ctx, yaml_node_t *n, const char *path, int allow_scalar, int max,
             const char *what, cfg_item_fn fn, void *arg)
{
	int count;

	if (cfg_is_null(n))
		return 0;
	if (allow_scalar && n->type == YAML_SCALAR_NODE) {
		fn(ctx, n, 0, arg, path);
		return 1;
	}
	if (n->type != YAML_SEQUENCE_NODE) {
		cfg_err(ctx, &n->start_mark, path, "expected a sequence, got %s", cfg_kind(n));
		return -1;
	}
	count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (count > max) {
		cfg_err(ctx, &n->start_mark, path, "too many %s (at most %d)", what, max);
		count = max;
	}
	for (int i = 0; i < count; i++) {
		char child[CFG_PATH_MAX];
		yaml_node_t *it = cfg_node(ctx, n->data.sequence.items.start[i]);

		if (it == NULL)
			continue;
		snprintf(child, sizeof(child), "%s[%d]", path, i);
		fn(ctx, it, i, arg, child);
	}
	return count;
}

void cfg_walk_top(struct cfg_ctx *ctx, yaml_node_t *root)
{
	cfg_walk_map(ctx, root, cfg_top_keys, ctx->cfg, "");
}

/* Defaults. */

/*
 * Applies key->def the way a value from the file is applied: the default
 * is parsed as a one-value YAML document, so it is held to the key's own
 * type and range, and a default that the parser would refuse is an error
 * at load time rather than a silent zero.
 */
static void cfg_default_one(struct cfg_ctx *ctx, const struct cfg_key *key, void *base,
                            const char *path)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_document_t *saved = ctx->doc;
	yaml_node_t *n;
	int nerrs = ctx->nerrs;

	if (!yaml_parser_initialize(&parser)) {
		cfg_err(ctx, NULL, path, "out of memory reading the built-in default");
		return;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)key->def, strlen(key->def));
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_err(ctx, NULL, path, "built-in default '%s' is not YAML", key->def);
		yaml_parser_delete(&parser);
		return;
	}
	n = yaml_document_get_root_node(&doc);
	ctx->doc = &doc;
	if (n == NULL)
		cfg_err(ctx, NULL, path, "built-in default '%s' is empty", key->def);
	else
		cfg_apply(ctx, key, n, base, path);
	ctx->doc = saved;
	if (ctx->nerrs > nerrs)
		cfg_err(ctx, NULL, path, "the built-in default '%s' is refused", key->def);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
}

void cfg_defaults_walk(struct cfg_ctx *ctx, const struct cfg_key *keys, void *base,
                       const char *path)
{
	for (const struct cfg_key *k = keys; k->name != NULL; k++) {
		char child[CFG_PATH_MAX];

		cfg_join(child, path, k->name);
		if (k->type == CFG_T_MAP)
			cfg_defaults_walk(ctx, k->sub, (char *)base + k->off, child);
		else if (k->def != NULL && !(k->flags & CFG_F_DERIVED))
			cfg_default_one(ctx, k, base, child);
	}
}

void cfg_apply_defaults(struct cfg_ctx *ctx)
{
	cfg_defaults_walk(ctx, cfg_top_keys, ctx->cfg, "");
}

/* The table for people: config-keys, the documentation test, reload-config. */

static void cfg_keys_walk(const struct cfg_key *keys, const char *path, cfg_key_cb cb, void *arg)
{
	for (const struct cfg_key *k = keys; k->name != NULL; k++) {
		char child[CFG_PATH_MAX];

		cfg_join(child, path, k->name);
		if (k->type == CFG_T_MAP) {
			cfg_keys_walk(k->sub, child, cb, arg);
			continue;
		}
		cb(arg, child, k->def, k->apply);
		if (k->sub != NULL) {
			char items[CFG_PATH_MAX];

			snprintf(items, sizeof(items), "%s[]", child);
			cfg_keys_walk(k->sub, items, cb, arg);
		}
	}
}

void cfg_keys_each(cfg_key_cb cb, void *arg)
{
	cfg_keys_walk(cfg_top_keys, "", cb, arg);
}

const char *cfg_apply_name(enum cfg_apply a)
{
	switch (a) {
	case CFG_APPLY_LIVE:
		return "live";
	case CFG_APPLY_FLIP:
		return "flip";
	case CFG_APPLY_RESTART:
		return "restart";
	}
	return "?";
}

/* Strings are compared as strings: the bytes after the NUL may differ. */
static int cfg_key_differs(const struct cfg_key *k, const void *a, const void *b)
{
	const char *x = (const char *)a + k->off, *y = (const char *)b + k->off;

	if (k->type == CFG_T_STR || k->type == CFG_T_NAME)
		return strncmp(x, y, k->size) != 0;
	return memcmp(x, y, k->size) != 0;
}

static int cfg_diff_walk(const struct cfg_key *keys, const void *a, const void *b, const char *path,
                         struct cfg_change *out, int max, int n)
{
	for (const struct cfg_key *k = keys; k->name != NULL; k++) {
		char child[CFG_PATH_MAX];

		cfg_join(child, path, k->name);
		if (k->type == CFG_T_MAP) {
			n = cfg_diff_walk(k->sub, (const char *)a + k->off,
			                  (const char *)b + k->off, child, out, max, n);
			continue;
		}
		if (!cfg_key_differs(k, a, b))
			continue;
		if (n < max) {
			snprintf(out[n].key, sizeof(out[n].key), "%s", child);
			out[n].apply = k->apply;
		}
		n++;
	}
	return n;
}

int cfg_diff(const struct cfg *a, const struct cfg *b, struct cfg_change *out, int max)
{
	return cfg_diff_walk(cfg_top_keys, a, b, "", out, max, 0);
}
