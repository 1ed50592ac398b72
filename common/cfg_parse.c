/*
 * cfg_parse: scalars into values, and errors at FILE:LINE:COLUMN (see
 * cfg_int.h). Every parser refuses what it does not fully understand: a
 * duration of "1.5s" or a size of "1MB" is an error, never a guess.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/cfg_int.h"

static void cfg_errv(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt,
                     va_list ap) __attribute__((format(printf, 4, 0)));

static void cfg_errv(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt,
                     va_list ap)
{
	struct cfg_msg *msg;
	char line[1024];
	int n;

	ctx->nerrs++;
	if (ctx->oom)
		return;
	if (ctx->nmsgs == ctx->capmsgs) {
		size_t cap = ctx->capmsgs ? ctx->capmsgs * 2 : 16;
		struct cfg_msg *p = realloc(ctx->msgs, cap * sizeof(*p));

		if (p == NULL) {
			ctx->oom = 1;
			return;
		}
		ctx->msgs = p;
		ctx->capmsgs = cap;
	}
	if (m != NULL)
		n = snprintf(line, sizeof(line), "%s:%zu:%zu: ", ctx->name, m->line + 1,
		             m->column + 1);
	else
		n = snprintf(line, sizeof(line), "%s: ", ctx->name);
	if (path != NULL && n >= 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, "key '%s': ", path);
	if (n >= 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	msg = &ctx->msgs[ctx->nmsgs];
	msg->line = m != NULL ? m->line + 1 : 0;
	msg->column = m != NULL ? m->column + 1 : 0;
	msg->seq = ctx->nmsgs;
	msg->text = strdup(line);
	if (msg->text == NULL) {
		ctx->oom = 1;
		return;
	}
	ctx->nmsgs++;
}

void cfg_err(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_errv(ctx, m, path, fmt, ap);
	va_end(ap);
}

/* Node helpers. */

yaml_node_t *cfg_node(struct cfg_ctx *ctx, int id)
{
	return yaml_document_get_node(ctx->doc, id);
}

const char *cfg_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a sequence";
	default:
		return "a scalar";
	}
}

/* A plain empty scalar, "~" or "null" is YAML's null: "key:" with nothing. */
int cfg_is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	s = (const char *)n->data.scalar.value;
	return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
	       strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/*
 * The scalar text of n, or NULL after reporting why not. what names the
 * expected type ("an integer") for the message. A double-quoted "\0" would
 * silently truncate a C string, so embedded NULs are refused.
 */
const char *cfg_scalar(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path,
                       const char *what)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE) {
		cfg_err(ctx, &n->start_mark, path, "expected %s, got %s", what, cfg_kind(n));
		return NULL;
	}
	s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length) {
		cfg_err(ctx, &n->start_mark, path, "value contains a NUL character");
		return NULL;
	}
	return s;
}

/* Value of key in mapping n (first occurrence), or NULL. */
yaml_node_t *cfg_map_get(struct cfg_ctx *ctx, const yaml_node_t *n, const char *key)
{
	if (n == NULL || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = cfg_node(ctx, p->key);

		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			return cfg_node(ctx, p->value);
	}
	return NULL;
}

/*
 * Where a dotted path is in the file, for checks made after the walk: the
 * value's mark if the whole path exists, else the mark of the deepest
 * mapping on the way (where the missing key belongs).
 */
const yaml_mark_t *cfg_mark_of(struct cfg_ctx *ctx, const char *dotted)
{
	char buf[CFG_PATH_MAX];
	yaml_node_t *n = ctx->root;
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", dotted);
	for (char *k = strtok_r(buf, ".", &save); k != NULL; k = strtok_r(NULL, ".", &save)) {
		yaml_node_t *v = cfg_map_get(ctx, n, k);

		if (v == NULL)
			break;
		n = v;
	}
	return &n->start_mark;
}

/* Scalar parsers. Each returns 0, or -1 with a message already reported. */

int cfg_parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (s[0] == '\0' || (s[0] != '-' && s[0] != '+' && (s[0] < '0' || s[0] > '9')))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int cfg_get_int(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path, int64_t lo, int64_t hi,
                int64_t *out)
{
	const char *s = cfg_scalar(ctx, n, path, "an integer");

	if (s == NULL)
		return -1;
	if (cfg_parse_i64(s, out) < 0) {
		cfg_err(ctx, &n->start_mark, path, "expected an integer, got '%s'", s);
		return -1;
	}
	if (*out < lo || *out > hi) {
		cfg_err(ctx, &n->start_mark, path, "%s is out of range %lld..%lld", s,
		        (long long)lo, (long long)hi);
		return -1;
	}
	return 0;
}

/* A unit suffix and its multiplier; "" is the unit of a bare number. */
struct cfg_unit {
	const char *unit;
	uint64_t mul;
};

/* Parses decimal digits, optional spaces and one of units[]; 0 or -1 on a
 * bad unit or overflow. Durations and sizes differ only in their tables. */
static int cfg_parse_scaled(const char *s, const struct cfg_unit *units, size_t nunits,
                            uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	while (*p == ' ')
		p++;
	for (size_t i = 0; i < nunits; i++) {
		if (strcmp(p, units[i].unit) == 0) {
			if (v > UINT64_MAX / units[i].mul)
				return -1;
			*out = v * units[i].mul;
			return 0;
		}
	}
	return -1;
}

/* Durations: a bare integer is seconds; units ms, s, m, h. Returns ms. */
int cfg_parse_duration(const char *s, uint64_t *ms)
{
	static const struct cfg_unit units[] = {
	    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

	return cfg_parse_scaled(s, units, sizeof(units) / sizeof(units[0]), ms);
}

/* Sizes: a bare integer is bytes; k/K/KiB, M/MiB, G/GiB are powers of 1024. */
int cfg_parse_size(const char *s, uint64_t *bytes)
{
	static const struct cfg_unit units[] = {
	    {"", 1},        {"k", 1024},      {"K", 1024},       {"KiB", 1024},
	    {"M", 1 << 20}, {"MiB", 1 << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30}};

	return cfg_parse_scaled(s, units, sizeof(units) / sizeof(units[0]), bytes);
}

/* Formats a millisecond count in the largest unit that divides it. */
const char *cfg_fmt_ms(uint64_t ms, char *buf, size_t len)
{
	if (ms == 4294967295u)
		snprintf(buf, len, "4294967295ms (about 49 days)");
	else if (ms != 0 && ms % 3600000 == 0)
		snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms != 0 && ms % 60000 == 0)
		snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
	else if (ms != 0 && ms % 1000 == 0)
		snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(buf, len, "%llums", (unsigned long long)ms);
	return buf;
}

int cfg_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};

	for (size_t i = 0; i < 3; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* An IPv4 or IPv6 literal; brackets around an IPv6 one are allowed. */
int cfg_parse_addr(const char *s, struct cfg_addr *out)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(s);

	memset(out, 0, sizeof(*out));
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		if (n - 2 >= sizeof(buf))
			return -1;
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = '\0';
		if (inet_pton(AF_INET6, buf, out->a.v6) != 1)
			return -1;
		out->family = AF_INET6;
	} else if (inet_pton(AF_INET, s, out->a.v4) == 1) {
		out->family = AF_INET;
	} else if (inet_pton(AF_INET6, s, out->a.v6) == 1) {
		out->family = AF_INET6;
	} else {
		return -1;
	}
	inet_ntop(out->family, &out->a, out->text, sizeof(out->text));
	return 0;
}

/*
 * "addr:port" or "[v6addr]:port". An unbracketed IPv6 address is refused
 * because its last group cannot be told apart from a port.
 */
int cfg_parse_hostport(const char *s, struct cfg_addr *addr, uint16_t *port, const char **why)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(s, ':');
	int64_t p;

	*why = "expected ADDRESS:PORT or [IPV6]:PORT";
	if (colon == NULL || colon == s)
		return -1;
	if (s[0] != '[' && memchr(s, ':', (size_t)(colon - s)) != NULL) {
		*why = "an IPv6 address needs brackets: [ADDRESS]:PORT";
		return -1;
	}
	if (s[0] == '[' && colon[-1] != ']')
		return -1;
	if ((size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (cfg_parse_addr(host, addr) < 0) {
		*why = "not an IPv4 or IPv6 address";
		return -1;
	}
	if (cfg_parse_i64(colon + 1, &p) < 0 || p < 1 || p > 65535) {
		*why = "the port must be an integer 1..65535";
		return -1;
	}
	*port = (uint16_t)p;
	return 0;
}

/* Listener and server names show up in logs, metrics and JSON; keep them plain. */
int cfg_name_ok(const char *s)
{
	if (s[0] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
}
