/*
 * cfg: see cfg.h and docs/configuration.md.
 *
 * The file is loaded with libyaml's document API so that every node keeps
 * its start mark; that is what lets each message name FILE:LINE:COLUMN.
 * The schema is a set of key tables (one per mapping) walked generically:
 * each key names a type, a field offset and a range. Nothing stops at the
 * first problem: a bad value leaves the field at its default, the error is
 * appended to a list, and the walk goes on, so one run reports everything.
 * Checks that involve several keys (required keys, port collisions, paths
 * derived from state_dir) run after the walk, on the filled struct.
 */
#include "common/cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <yaml.h>

#include "common/log.h"

/* A configuration file is a few kilobytes; anything far larger is a mistake
 * (a certificate bundle passed with -c, say), not something to parse. */
#define CFG_MAX_FILE (4u << 20)

#define CFG_DEFAULT_STATE_DIR "/var/lib/switchyard"
#define CFG_DEFAULT_CIPHERS   "ECDHE+AESGCM:ECDHE+CHACHA20"
#define CFG_DEFAULT_SUITES                                                                         \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define CFG_PATH_MAX 256

/* One error line, kept with its position so the list can be sorted. */
struct cfg_msg {
	size_t line, column, seq;
	char *text;
};

/* The parse state: the error list, and what the cross-key checks need. */
struct cfg_ctx {
	const char *name; /* file name used in messages */
	struct cfg *cfg;
	yaml_document_t *doc;
	yaml_node_t *root;
	struct cfg_msg *msgs;
	size_t nmsgs, capmsgs;
	int nerrs;
	int oom;
	int colour; /* instance being walked, for the flags below */
	/* Paths with a default derived from state_dir that the file set. */
	int set_sock[CFG_NCOLOURS];
	int set_pid[CFG_NCOLOURS];
	int set_ticket;
	int nports[CFG_NCOLOURS]; /* entries given in instances.<c>.ports */
	yaml_node_t *lnode[CFG_MAX_LISTENERS];
};

static void cfg_errv(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt,
                     va_list ap) __attribute__((format(printf, 4, 0)));
static void cfg_err(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

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

static void cfg_err(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt,
                    ...)
{
	va_list ap;

	va_start(ap, fmt);
	cfg_errv(ctx, m, path, fmt, ap);
	va_end(ap);
}

/* Node helpers. */

static yaml_node_t *cfg_node(struct cfg_ctx *ctx, int id)
{
	return yaml_document_get_node(ctx->doc, id);
}

static const char *cfg_kind(const yaml_node_t *n)
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
static int cfg_is_null(const yaml_node_t *n)
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
static const char *cfg_scalar(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path,
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
static yaml_node_t *cfg_map_get(struct cfg_ctx *ctx, const yaml_node_t *n, const char *key)
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
static const yaml_mark_t *cfg_mark_of(struct cfg_ctx *ctx, const char *dotted)
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

static int cfg_parse_i64(const char *s, int64_t *out)
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

static int cfg_get_int(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path, int64_t lo,
                       int64_t hi, int64_t *out)
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
static int cfg_parse_duration(const char *s, uint64_t *ms)
{
	static const struct cfg_unit units[] = {
	    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};

	return cfg_parse_scaled(s, units, sizeof(units) / sizeof(units[0]), ms);
}

/* Sizes: a bare integer is bytes; k/K/KiB, M/MiB, G/GiB are powers of 1024. */
static int cfg_parse_size(const char *s, uint64_t *bytes)
{
	static const struct cfg_unit units[] = {
	    {"", 1},        {"k", 1024},      {"K", 1024},       {"KiB", 1024},
	    {"M", 1 << 20}, {"MiB", 1 << 20}, {"G", 1ull << 30}, {"GiB", 1ull << 30}};

	return cfg_parse_scaled(s, units, sizeof(units) / sizeof(units[0]), bytes);
}

/* Formats a millisecond count in the largest unit that divides it. */
static const char *cfg_fmt_ms(uint64_t ms, char *buf, size_t len)
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

static int cfg_parse_bool(const char *s, int *out)
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
static int cfg_parse_addr(const char *s, struct cfg_addr *out)
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
static int cfg_parse_hostport(const char *s, struct cfg_addr *addr, uint16_t *port,
                              const char **why)
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

/* The schema. */

enum cfg_type {
	CFG_T_MAP,
	CFG_T_INT,
	CFG_T_DUR,
	CFG_T_SIZE,
	CFG_T_BOOL,
	CFG_T_STR,
	CFG_T_NAME,
	CFG_T_ENUM,
	CFG_T_ADDR,
	CFG_T_FN,
};

/* Flags for string keys. */
#define CFG_F_SOCK     0x01 /* a unix socket path: must fit sun_path */
#define CFG_F_SETSOCK  0x02 /* instances.<c>.control_socket */
#define CFG_F_SETPID   0x04 /* instances.<c>.pid_file */
#define CFG_F_SETTICK  0x08 /* tls.ticket_key_file */
#define CFG_F_NONEMPTY 0x10
#define CFG_F_BASENAME 0x20 /* a file name inside a directory: no '/' */

struct cfg_key;
typedef void (*cfg_fn)(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                       const char *path);

struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off, size;
	int64_t min, max;          /* integers, durations (ms), sizes (bytes) */
	const struct cfg_key *sub; /* CFG_T_MAP */
	const char *const *names;  /* CFG_T_ENUM, NULL-terminated; index = value */
	cfg_fn fn;                 /* CFG_T_FN */
	unsigned flags;
};

#define CFG_FLD(t, f) offsetof(t, f), sizeof(((t *)0)->f)
#define CFG_K(t, n, ty, f, lo, hi)                                                                 \
	{                                                                                          \
		n, ty, CFG_FLD(t, f), lo, hi, NULL, NULL, NULL, 0                                  \
	}
#define CFG_KS(t, n, f, fl)                                                                        \
	{                                                                                          \
		n, CFG_T_STR, CFG_FLD(t, f), 0, 0, NULL, NULL, NULL, fl                            \
	}
#define CFG_KE(t, n, f, nm)                                                                        \
	{                                                                                          \
		n, CFG_T_ENUM, CFG_FLD(t, f), 0, 0, NULL, nm, NULL, 0                              \
	}
#define CFG_KM(n, s)                                                                               \
	{                                                                                          \
		n, CFG_T_MAP, 0, 0, 0, 0, s, NULL, NULL, 0                                         \
	}
#define CFG_KF(n, f, arg)                                                                          \
	{                                                                                          \
		n, CFG_T_FN, 0, 0, arg, 0, NULL, NULL, f, 0                                        \
	}
#define CFG_END                                                                                    \
	{                                                                                          \
		NULL, CFG_T_MAP, 0, 0, 0, 0, NULL, NULL, NULL, 0                                   \
	}

#define CFG_U32_MAX 4294967295LL

static void cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *keys,
                         void *base, const char *path);

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
	if ((key->flags & CFG_F_BASENAME) && strchr(s, '/') != NULL) {
		cfg_err(ctx, &n->start_mark, path,
		        "'%s' must be a file name inside the certificate directory, without '/'",
		        s);
		return;
	}
	memcpy(dst, s, strlen(s) + 1);
	if (key->flags & CFG_F_SETSOCK)
		ctx->set_sock[ctx->colour] = 1;
	if (key->flags & CFG_F_SETPID)
		ctx->set_pid[ctx->colour] = 1;
	if (key->flags & CFG_F_SETTICK)
		ctx->set_ticket = 1;
}

/* Listener and server names show up in logs, metrics and JSON; keep them plain. */
static int cfg_name_ok(const char *s)
{
	if (s[0] == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
			return 0;
	return 1;
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
		cfg_walk_map(ctx, n, key->sub, base, path);
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

static void cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *keys,
                         void *base, const char *path)
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

/*
 * Calls fn for every item of a sequence-valued key, after checking the
 * item count against max. With allow_scalar a single scalar counts as a
 * one-item sequence, so "bind: 0.0.0.0" and "bind: [0.0.0.0]" mean the
 * same. A null value is an empty sequence. Returns the number of items
 * visited, or -1 after reporting a type error.
 */
typedef void (*cfg_item_fn)(struct cfg_ctx *ctx, yaml_node_t *item, int i, void *arg,
                            const char *path);

static int cfg_each(struct cfg_ctx *ctx, yaml_node_t *n, const char *path, int allow_scalar,
                    int max, const char *what, cfg_item_fn fn, void *arg)
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

/* listeners */

static const struct cfg_key cfg_listener_keys[] = {
    {"name", CFG_T_NAME, CFG_FLD(struct cfg_listener, name), 0, 0, NULL, NULL, NULL, 0},
    CFG_K(struct cfg_listener, "address", CFG_T_ADDR, addr, 0, 0),
    CFG_K(struct cfg_listener, "port", CFG_T_INT, port, 1, 65535),
    CFG_K(struct cfg_listener, "maxconn", CFG_T_INT, maxconn, 0, 10000000),
    CFG_END,
};

static void cfg_listener_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg,
                              const char *path)
{
	struct cfg_listener *l = &ctx->cfg->listeners[i];
	char p[CFG_PATH_MAX];

	(void)arg;
	ctx->lnode[i] = it;
	if (it->type != YAML_MAPPING_NODE) {
		cfg_err(ctx, &it->start_mark, path, "expected a mapping, got %s", cfg_kind(it));
		return;
	}
	cfg_walk_map(ctx, it, cfg_listener_keys, l, path);
	if (cfg_map_get(ctx, it, "port") == NULL) {
		snprintf(p, sizeof(p), "%s.port", path);
		cfg_err(ctx, &it->start_mark, p, "missing required key");
	}
}

static void cfg_listeners(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n,
                          void *base, const char *path)
{
	int cnt;

	(void)key;
	(void)base;
	cnt = cfg_each(ctx, n, path, 0, CFG_MAX_LISTENERS, "listeners", cfg_listener_item, NULL);
	ctx->cfg->nlisteners = cnt < 0 ? 0 : cnt;
}

/* instances */

static void cfg_bind_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg, const char *path)
{
	struct cfg_instance *inst = arg;
	const char *s = cfg_scalar(ctx, it, path, "an address");

	if (s == NULL)
		return;
	if (cfg_parse_addr(s, &inst->bind[i]) < 0) {
		cfg_err(ctx, &it->start_mark, path, "'%s' is not an IPv4 or IPv6 address", s);
		return;
	}
	for (int j = 0; j < i; j++)
		if (inst->bind[j].family == inst->bind[i].family &&
		    memcmp(&inst->bind[j].a, &inst->bind[i].a, sizeof(inst->bind[i].a)) == 0)
			cfg_err(ctx, &it->start_mark, path, "address %s is listed twice", s);
}

static void cfg_bind(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                     const char *path)
{
	struct cfg_instance *inst = base;
	int cnt;

	(void)key;
	memset(inst->bind, 0, sizeof(inst->bind));
	cnt = cfg_each(ctx, n, path, 1, CFG_MAX_BIND, "bind addresses", cfg_bind_item, inst);
	if (cnt == 0)
		cfg_err(ctx, &n->start_mark, path, "at least one bind address is required");
	/* Entries that failed to parse have family 0; drop them. */
	inst->nbind = 0;
	for (int i = 0; i < cnt; i++)
		if (inst->bind[i].family != 0)
			inst->bind[inst->nbind++] = inst->bind[i];
}

static void cfg_port_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg, const char *path)
{
	struct cfg_instance *inst = arg;
	int64_t v;

	if (cfg_get_int(ctx, it, path, 1, 65535, &v) == 0)
		inst->ports[i] = (uint16_t)v;
}

static void cfg_ports(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                      const char *path)
{
	int cnt;

	(void)key;
	cnt = cfg_each(ctx, n, path, 1, CFG_MAX_LISTENERS, "ports", cfg_port_item, base);
	ctx->nports[ctx->colour] = cnt < 0 ? -1 : cnt;
}

static const struct cfg_key cfg_instance_keys[] = {
    CFG_KF("bind", cfg_bind, 0),
    CFG_KF("ports", cfg_ports, 0),
    CFG_KS(struct cfg_instance, "control_socket", control_socket,
           CFG_F_SOCK | CFG_F_SETSOCK | CFG_F_NONEMPTY),
    CFG_KS(struct cfg_instance, "pid_file", pid_file, CFG_F_SETPID | CFG_F_NONEMPTY),
    CFG_END,
};

static void cfg_instance(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                         const char *path)
{
	struct cfg *cfg = base;

	ctx->colour = (int)key->min;
	cfg_walk_map(ctx, n, cfg_instance_keys, &cfg->instances[ctx->colour], path);
}

static const struct cfg_key cfg_instances_keys[] = {
    CFG_KF("blue", cfg_instance, CFG_BLUE),
    CFG_KF("green", cfg_instance, CFG_GREEN),
    CFG_END,
};

/* proxy */

static void cfg_cpu_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg, const char *path)
{
	struct cfg_proxy *px = arg;
	int64_t v;

	/* CPU ids index a cpu_set_t, which holds CPU_SETSIZE (1024) CPUs. */
	if (cfg_get_int(ctx, it, path, -1, 1023, &v) == 0)
		px->cpu_map[i] = (int)v;
}

static void cfg_cpu_map(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                        const char *path)
{
	struct cfg *cfg = base;
	int cnt;

	(void)key;
	cnt = cfg_each(ctx, n, path, 0, CFG_MAX_CPUS, "cpu_map entries", cfg_cpu_item, &cfg->proxy);
	cfg->proxy.ncpu_map = cnt < 0 ? 0 : cnt;
}

static void cfg_log_level(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n,
                          void *base, const char *path)
{
	const char *s = cfg_scalar(ctx, n, path, "a log level");
	int lvl;

	(void)key;
	if (s == NULL)
		return;
	lvl = log_level_parse(s);
	if (lvl < 0) {
		cfg_err(ctx, &n->start_mark, path,
		        "expected one of error, warning, info, debug, got '%s'", s);
		return;
	}
	((struct cfg *)base)->proxy.log_level = lvl;
}

static const char *const cfg_log_names[] = {"stderr", "syslog", NULL};
static const char *const cfg_accept_names[] = {"shared", "reuseport", NULL};

static const struct cfg_key cfg_timeout_keys[] = {
    CFG_K(struct cfg, "handshake", CFG_T_DUR, proxy.handshake_timeout_ms, 1, CFG_U32_MAX),
    CFG_K(struct cfg, "connect", CFG_T_DUR, proxy.connect_timeout_ms, 1, CFG_U32_MAX),
    CFG_K(struct cfg, "client", CFG_T_DUR, proxy.client_timeout_ms, 1, CFG_U32_MAX),
    CFG_K(struct cfg, "server", CFG_T_DUR, proxy.server_timeout_ms, 1, CFG_U32_MAX),
    CFG_K(struct cfg, "hard_stop_after", CFG_T_DUR, proxy.hard_stop_after_ms, 0, CFG_U32_MAX),
    CFG_END,
};

static const struct cfg_key cfg_proxy_keys[] = {
    CFG_K(struct cfg, "threads", CFG_T_INT, proxy.threads, 0, 256),
    CFG_KF("cpu_map", cfg_cpu_map, 0),
    CFG_K(struct cfg, "maxconn", CFG_T_INT, proxy.maxconn, 1, 10000000),
    CFG_K(struct cfg, "backlog", CFG_T_INT, proxy.backlog, 1, 65535),
    CFG_KE(struct cfg, "accept", proxy.accept, cfg_accept_names),
    CFG_K(struct cfg, "buffer_size", CFG_T_SIZE, proxy.buffer_size, 1024, 16 << 20),
    CFG_KM("timeouts", cfg_timeout_keys),
    CFG_KS(struct cfg, "user", proxy.user, 0),
    CFG_KS(struct cfg, "group", proxy.group, 0),
    CFG_K(struct cfg, "access_log", CFG_T_BOOL, proxy.access_log, 0, 1),
    CFG_KE(struct cfg, "log", proxy.log, cfg_log_names),
    CFG_KF("log_level", cfg_log_level, 0),
    CFG_END,
};

/* tls */

static void cfg_min_version(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n,
                            void *base, const char *path)
{
	static const struct {
		const char *s;
		int v;
	} vers[] = {{"1.2", TLS1_2_VERSION},     {"1.3", TLS1_3_VERSION},
	            {"TLSv1.2", TLS1_2_VERSION}, {"TLSv1.3", TLS1_3_VERSION},
	            {"TLS1.2", TLS1_2_VERSION},  {"TLS1.3", TLS1_3_VERSION}};
	const char *s = cfg_scalar(ctx, n, path, "a TLS version");

	(void)key;
	if (s == NULL)
		return;
	for (size_t i = 0; i < sizeof(vers) / sizeof(vers[0]); i++) {
		if (strcasecmp(s, vers[i].s) == 0) {
			((struct cfg *)base)->tls.min_version = vers[i].v;
			return;
		}
	}
	cfg_err(ctx, &n->start_mark, path, "expected \"1.2\" or \"1.3\", got '%s'", s);
}

static void cfg_alpn_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg, const char *path)
{
	struct cfg_tls *tls = arg;
	const char *s = cfg_scalar(ctx, it, path, "a protocol name");

	if (s == NULL)
		return;
	if (s[0] == '\0' || strlen(s) >= sizeof(tls->alpn[0])) {
		cfg_err(ctx, &it->start_mark, path,
		        "an ALPN protocol name must be 1..%zu bytes, got '%s'",
		        sizeof(tls->alpn[0]) - 1, s);
		return;
	}
	memcpy(tls->alpn[i], s, strlen(s) + 1);
}

static void cfg_alpn(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                     const char *path)
{
	struct cfg_tls *tls = &((struct cfg *)base)->tls;
	int cnt;

	(void)key;
	memset(tls->alpn, 0, sizeof(tls->alpn));
	cnt = cfg_each(ctx, n, path, 1, CFG_MAX_ALPN, "ALPN protocols", cfg_alpn_item, tls);
	tls->nalpn = 0;
	for (int i = 0; i < cnt; i++)
		if (tls->alpn[i][0] != '\0')
			memmove(tls->alpn[tls->nalpn++], tls->alpn[i], sizeof(tls->alpn[i]));
}

static const struct cfg_key cfg_tls_keys[] = {
    CFG_KF("min_version", cfg_min_version, 0),
    CFG_KS(struct cfg, "ciphers", tls.ciphers, 0),
    CFG_KS(struct cfg, "ciphersuites", tls.ciphersuites, 0),
    CFG_KS(struct cfg, "groups", tls.groups, 0),
    CFG_KF("alpn", cfg_alpn, 0),
    CFG_KS(struct cfg, "ticket_key_file", tls.ticket_key_file, CFG_F_SETTICK),
    CFG_K(struct cfg, "session_cache", CFG_T_BOOL, tls.session_cache, 0, 1),
    CFG_END,
};

/* certificates */

static const char *const cfg_expired_names[] = {"serve", "skip", NULL};

static const struct cfg_key cfg_certs_keys[] = {
    CFG_KS(struct cfg, "directory", certs.directory, CFG_F_NONEMPTY),
    CFG_KS(struct cfg, "default", certs.default_cert, CFG_F_BASENAME),
    CFG_KE(struct cfg, "expired", certs.expired, cfg_expired_names),
    CFG_K(struct cfg, "max_file_size", CFG_T_SIZE, certs.max_file_size, 1024, 1LL << 30),
    CFG_K(struct cfg, "load_threads", CFG_T_INT, certs.load_threads, 0, 256),
    CFG_K(struct cfg, "cache_size", CFG_T_INT, certs.cache_size, 0, 10000000),
    CFG_END,
};

/* backend */

static const struct cfg_key cfg_server_keys[] = {
    {"name", CFG_T_NAME, CFG_FLD(struct cfg_server, name), 0, 0, NULL, NULL, NULL, 0},
    CFG_K(struct cfg_server, "address", CFG_T_ADDR, addr, 0, 0),
    CFG_K(struct cfg_server, "port", CFG_T_INT, port, 1, 65535),
    CFG_END,
};

static void cfg_server_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg,
                            const char *path)
{
	struct cfg_server *srv = &ctx->cfg->backend.servers[i];
	char p[CFG_PATH_MAX];
	const char *why;

	(void)arg;
	if (it->type == YAML_SCALAR_NODE && !cfg_is_null(it)) {
		const char *s = cfg_scalar(ctx, it, path, "a server");

		if (s != NULL && cfg_parse_hostport(s, &srv->addr, &srv->port, &why) < 0)
			cfg_err(ctx, &it->start_mark, path, "bad server '%s': %s", s, why);
		return;
	}
	if (it->type != YAML_MAPPING_NODE) {
		cfg_err(ctx, &it->start_mark, path,
		        "expected a mapping or an \"ADDRESS:PORT\" string, got %s", cfg_kind(it));
		return;
	}
	cfg_walk_map(ctx, it, cfg_server_keys, srv, path);
	if (cfg_map_get(ctx, it, "address") == NULL) {
		snprintf(p, sizeof(p), "%s.address", path);
		cfg_err(ctx, &it->start_mark, p, "missing required key");
	}
	if (cfg_map_get(ctx, it, "port") == NULL) {
		snprintf(p, sizeof(p), "%s.port", path);
		cfg_err(ctx, &it->start_mark, p, "missing required key");
	}
}

static void cfg_servers(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                        const char *path)
{
	int cnt;

	(void)key;
	(void)base;
	cnt = cfg_each(ctx, n, path, 0, CFG_MAX_SERVERS, "servers", cfg_server_item, NULL);
	ctx->cfg->backend.nservers = cnt < 0 ? 0 : cnt;
}

static const char *const cfg_balance_names[] = {"roundrobin", "leastconn", NULL};
static const char *const cfg_pp_names[] = {"none", "v1", "v2", NULL};

static const struct cfg_key cfg_health_keys[] = {
    CFG_K(struct cfg, "fail_threshold", CFG_T_INT, backend.fail_threshold, 1, 1000000),
    CFG_K(struct cfg, "down_time", CFG_T_DUR, backend.down_time_ms, 1, CFG_U32_MAX),
    CFG_K(struct cfg, "check_interval", CFG_T_DUR, backend.check_interval_ms, 0, CFG_U32_MAX),
    CFG_K(struct cfg, "check_timeout", CFG_T_DUR, backend.check_timeout_ms, 1, CFG_U32_MAX),
    CFG_END,
};

static const struct cfg_key cfg_backend_keys[] = {
    CFG_KE(struct cfg, "balance", backend.balance, cfg_balance_names),
    CFG_KE(struct cfg, "proxy_protocol", backend.proxy_protocol, cfg_pp_names),
    CFG_K(struct cfg, "retries", CFG_T_INT, backend.retries, 0, 100),
    CFG_KF("servers", cfg_servers, 0),
    CFG_KM("health", cfg_health_keys),
    CFG_END,
};

/* supervisor */

/*
 * A file mode, always read as octal like chmod(1): "0660", 0660 and 660 all
 * mean rw-rw----. Reading 660 as decimal would silently give a mode nobody
 * meant.
 */
static void cfg_mode(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                     const char *path)
{
	const char *s = cfg_scalar(ctx, n, path, "an octal mode");
	const char *p;
	unsigned long v = 0;

	(void)key;
	if (s == NULL)
		return;
	p = s;
	if (strncmp(p, "0o", 2) == 0)
		p += 2;
	if (*p == '\0' || strlen(p) > 5 || strspn(p, "01234567") != strlen(p)) {
		cfg_err(ctx, &n->start_mark, path,
		        "expected an octal mode such as \"0660\", got '%s'", s);
		return;
	}
	v = strtoul(p, NULL, 8);
	if (v > 07777) {
		cfg_err(ctx, &n->start_mark, path, "mode %s is out of range 0..07777", s);
		return;
	}
	((struct cfg *)base)->supervisor.control_mode = (uint32_t)v;
}

static void cfg_metrics(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                        const char *path)
{
	struct cfg_supervisor *sv = &((struct cfg *)base)->supervisor;
	struct cfg_addr a;
	uint16_t port;
	const char *s, *why;

	(void)key;
	if (cfg_is_null(n)) {
		sv->metrics_listen[0] = '\0';
		return;
	}
	s = cfg_scalar(ctx, n, path, "ADDRESS:PORT");
	if (s == NULL)
		return;
	if (s[0] != '\0' && cfg_parse_hostport(s, &a, &port, &why) < 0) {
		cfg_err(ctx, &n->start_mark, path, "bad address '%s': %s", s, why);
		return;
	}
	snprintf(sv->metrics_listen, sizeof(sv->metrics_listen), "%s", s);
}

static const char *const cfg_colour_names[] = {"blue", "green", NULL};

static const struct cfg_key cfg_gate_keys[] = {
    CFG_K(struct cfg, "sample", CFG_T_INT, supervisor.gate_sample, 0, 1000000),
    CFG_K(struct cfg, "changed_cap", CFG_T_INT, supervisor.gate_changed_cap, 0, 10000000),
    CFG_K(struct cfg, "timeout", CFG_T_DUR, supervisor.gate_timeout_ms, 1, CFG_U32_MAX),
    CFG_END,
};

static const struct cfg_key cfg_supervisor_keys[] = {
    CFG_KS(struct cfg, "control_socket", supervisor.control_socket, CFG_F_SOCK | CFG_F_NONEMPTY),
    CFG_KF("control_mode", cfg_mode, 0),
    CFG_KS(struct cfg, "control_group", supervisor.control_group, 0),
    CFG_KS(struct cfg, "state_dir", supervisor.state_dir, CFG_F_NONEMPTY),
    CFG_K(struct cfg, "drain_timeout", CFG_T_DUR, supervisor.drain_timeout_ms, 0, CFG_U32_MAX),
    CFG_K(struct cfg, "hard_stop_after", CFG_T_DUR, supervisor.hard_stop_after_ms, 0, CFG_U32_MAX),
    CFG_KM("health_gate", cfg_gate_keys),
    CFG_KE(struct cfg, "initial_live", supervisor.initial_live, cfg_colour_names),
    CFG_KS(struct cfg, "proxy_binary", supervisor.proxy_binary, 0),
    CFG_KF("metrics_listen", cfg_metrics, 0),
    CFG_K(struct cfg, "metrics_public", CFG_T_BOOL, supervisor.metrics_public, 0, 1),
    /* Rotating more often than once a minute only shortens resumption. */
    CFG_K(struct cfg, "ticket_rotate", CFG_T_DUR, supervisor.ticket_rotate_ms, 60000, CFG_U32_MAX),
    CFG_K(struct cfg, "filter_guard", CFG_T_BOOL, supervisor.filter_guard, 0, 1),
    CFG_END,
};

/* netfilter */

static const char *const cfg_nf_backend_names[] = {"auto", "nftables", "iptables", NULL};

const char *cfg_nf_backend_name(enum cfg_nf_backend b)
{
	return (unsigned)b < 3 ? cfg_nf_backend_names[b] : "?";
}

static const struct cfg_key cfg_netfilter_keys[] = {
    CFG_KE(struct cfg, "backend", netfilter.backend, cfg_nf_backend_names),
    CFG_END,
};

/* certsync */

static const struct cfg_key cfg_source_keys[] = {
    CFG_KS(struct cfg, "directory", certsync.source_dir, 0),
    CFG_KS(struct cfg, "command", certsync.source_command, 0),
    CFG_END,
};

static const struct cfg_key cfg_certsync_keys[] = {
    CFG_KM("source", cfg_source_keys),
    CFG_K(struct cfg, "command_timeout", CFG_T_DUR, certsync.command_timeout_ms, 1000, CFG_U32_MAX),
    CFG_K(struct cfg, "keep_versions", CFG_T_INT, certsync.keep_versions, 1, 1000),
    CFG_K(struct cfg, "mass_delete_percent", CFG_T_INT, certsync.mass_delete_percent, 0, 100),
    CFG_K(struct cfg, "expiry_warn_days", CFG_T_INT, certsync.expiry_warn_days, 0, 3650),
    CFG_END,
};

static const struct cfg_key cfg_top_keys[] = {
    CFG_KF("listeners", cfg_listeners, 0),     CFG_KM("instances", cfg_instances_keys),
    CFG_KM("proxy", cfg_proxy_keys),           CFG_KM("tls", cfg_tls_keys),
    CFG_KM("certificates", cfg_certs_keys),    CFG_KM("backend", cfg_backend_keys),
    CFG_KM("supervisor", cfg_supervisor_keys), CFG_KM("netfilter", cfg_netfilter_keys),
    CFG_KM("certsync", cfg_certsync_keys),     CFG_END,
};

/* Defaults and derived paths. */

/* Fills the paths that live under state_dir unless the file set them. */
static int cfg_derive(struct cfg *cfg, const int set_sock[CFG_NCOLOURS],
                      const int set_pid[CFG_NCOLOURS], int set_ticket)
{
	const char *dir = cfg->supervisor.state_dir;
	int rc = 0;

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		struct cfg_instance *in = &cfg->instances[c];
		int n;

		if (!set_sock[c]) {
			n = snprintf(in->control_socket, sizeof(in->control_socket), "%s/%s.sock",
			             dir, cfg_colour_name((enum cfg_colour)c));
			if (n < 0 || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
				rc = -1;
		}
		if (!set_pid[c]) {
			n = snprintf(in->pid_file, sizeof(in->pid_file), "%s/%s.pid", dir,
			             cfg_colour_name((enum cfg_colour)c));
			if (n < 0 || (size_t)n >= sizeof(in->pid_file))
				rc = -1;
		}
	}
	if (!set_ticket) {
		int n = snprintf(cfg->tls.ticket_key_file, sizeof(cfg->tls.ticket_key_file),
		                 "%s/ticket.keys", dir);
		if (n < 0 || (size_t)n >= sizeof(cfg->tls.ticket_key_file))
			rc = -1;
	}
	return rc;
}

void cfg_defaults(struct cfg *cfg)
{
	static const int none[CFG_NCOLOURS];

	memset(cfg, 0, sizeof(*cfg));
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		cfg_parse_addr("0.0.0.0", &cfg->instances[c].bind[0]);
		cfg_parse_addr("::", &cfg->instances[c].bind[1]);
		cfg->instances[c].nbind = 2;
	}

	cfg->proxy.threads = 0;
	for (int i = 0; i < CFG_MAX_CPUS; i++)
		cfg->proxy.cpu_map[i] = -1;
	cfg->proxy.maxconn = 20000;
	cfg->proxy.backlog = 4096;
	cfg->proxy.accept = CFG_ACCEPT_REUSEPORT;
	cfg->proxy.buffer_size = 16384;
	cfg->proxy.handshake_timeout_ms = 10000;
	cfg->proxy.connect_timeout_ms = 5000;
	cfg->proxy.client_timeout_ms = 60000;
	cfg->proxy.server_timeout_ms = 60000;
	cfg->proxy.hard_stop_after_ms = 0;
	cfg->proxy.log = CFG_LOG_STDERR;
	cfg->proxy.log_level = LOG_LVL_INFO;

	cfg->tls.min_version = TLS1_2_VERSION;
	snprintf(cfg->tls.ciphers, sizeof(cfg->tls.ciphers), "%s", CFG_DEFAULT_CIPHERS);
	snprintf(cfg->tls.ciphersuites, sizeof(cfg->tls.ciphersuites), "%s", CFG_DEFAULT_SUITES);
	snprintf(cfg->tls.groups, sizeof(cfg->tls.groups), "%s", "X25519:P-256:P-384");
	snprintf(cfg->tls.alpn[0], sizeof(cfg->tls.alpn[0]), "%s", "http/1.1");
	cfg->tls.nalpn = 1;

	snprintf(cfg->certs.directory, sizeof(cfg->certs.directory), "%s", "/etc/switchyard/certs");
	cfg->certs.expired = CFG_EXPIRED_SERVE;
	cfg->certs.max_file_size = 1u << 20;
	cfg->certs.cache_size = CFG_CERTS_CACHE_SIZE_DEFAULT;

	cfg->backend.balance = CFG_BALANCE_ROUNDROBIN;
	cfg->backend.proxy_protocol = CFG_PP_NONE;
	cfg->backend.retries = 2;
	cfg->backend.fail_threshold = 3;
	cfg->backend.down_time_ms = 10000;
	cfg->backend.check_interval_ms = 2000;
	cfg->backend.check_timeout_ms = 1000;

	snprintf(cfg->supervisor.control_socket, sizeof(cfg->supervisor.control_socket), "%s",
	         "/run/switchyard/switchyardd.sock");
	cfg->supervisor.control_mode = 0660;
	snprintf(cfg->supervisor.state_dir, sizeof(cfg->supervisor.state_dir), "%s",
	         CFG_DEFAULT_STATE_DIR);
	cfg->supervisor.drain_timeout_ms = 300000;
	cfg->supervisor.gate_sample = 20;
	cfg->supervisor.gate_changed_cap = 200;
	cfg->supervisor.gate_timeout_ms = 2000;
	cfg->supervisor.initial_live = CFG_BLUE;
	cfg->supervisor.ticket_rotate_ms = 3600000;

	cfg->netfilter.backend = CFG_NF_AUTO;

	cfg->certsync.command_timeout_ms = 300000;
	cfg->certsync.keep_versions = 5;
	cfg->certsync.mass_delete_percent = 10;
	cfg->certsync.expiry_warn_days = 14;

	cfg_derive(cfg, none, none, 0);
}

/* Checks across keys, after the walk. */

/* Two service addresses overlap if they are the same, or one of them is the
 * wildcard of the same family. */
static int cfg_addr_overlap(const struct cfg_addr *a, const struct cfg_addr *b)
{
	static const uint8_t zero[16];
	size_t n;

	if (a->family != b->family)
		return 0;
	n = a->family == AF_INET ? 4 : 16;
	return memcmp(a->a.v6, zero, n) == 0 || memcmp(b->a.v6, zero, n) == 0 ||
	       memcmp(a->a.v6, b->a.v6, n) == 0;
}

struct cfg_port_use {
	uint16_t port;
	/* The address a listener or the metrics endpoint uses; NULL for an
	 * instance port, which binds every address in instances.<c>.bind. */
	const struct cfg_addr *addr;
	char path[80];
	const yaml_mark_t *mark;
};

/*
 * The metrics tell traffic levels, backend health and when certificates
 * expire: nobody else's business by default. An address beyond loopback
 * (a wildcard included) needs supervisor.metrics_public, checked here so
 * that check-config and the daemon refuse the same files.
 */
static void cfg_check_metrics(struct cfg_ctx *ctx)
{
	static const uint8_t v6_loopback[16] = {[15] = 1};
	const struct cfg_supervisor *sv = &ctx->cfg->supervisor;
	struct cfg_addr a;
	uint16_t port;
	const char *why;

	if (sv->metrics_listen[0] == '\0' || sv->metrics_public ||
	    cfg_parse_hostport(sv->metrics_listen, &a, &port, &why) < 0)
		return;
	if ((a.family == AF_INET && a.a.v4[0] == 127) ||
	    (a.family == AF_INET6 && memcmp(a.a.v6, v6_loopback, 16) == 0))
		return;
	cfg_err(ctx, cfg_mark_of(ctx, "supervisor.metrics_listen"), "supervisor.metrics_listen",
	        "'%s' is not a loopback address; serving metrics beyond this host needs "
	        "supervisor.metrics_public: true",
	        sv->metrics_listen);
}

static void cfg_check_ports(struct cfg_ctx *ctx)
{
	struct cfg *cfg = ctx->cfg;
	struct cfg_port_use use[CFG_MAX_LISTENERS * 3 + 1];
	struct cfg_addr maddr;
	uint16_t mport;
	const char *why;
	int n = 0;

	for (int i = 0; i < cfg->nlisteners; i++) {
		yaml_node_t *pn = cfg_map_get(ctx, ctx->lnode[i], "port");

		if (cfg->listeners[i].port == 0 || cfg->listeners[i].addr.family == 0 || pn == NULL)
			continue;
		use[n].port = cfg->listeners[i].port;
		use[n].addr = &cfg->listeners[i].addr;
		snprintf(use[n].path, sizeof(use[n].path), "listeners[%d].port", i);
		use[n].mark = &pn->start_mark;
		n++;
	}
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char key[40];
		yaml_node_t *pn;

		snprintf(key, sizeof(key), "instances.%s.ports",
		         cfg_colour_name((enum cfg_colour)c));
		pn = cfg_map_get(ctx,
		                 cfg_map_get(ctx, cfg_map_get(ctx, ctx->root, "instances"),
		                             cfg_colour_name((enum cfg_colour)c)),
		                 "ports");
		for (int i = 0; i < ctx->nports[c] && i < CFG_MAX_LISTENERS; i++) {
			if (cfg->instances[c].ports[i] == 0 || pn == NULL)
				continue;
			use[n].port = cfg->instances[c].ports[i];
			use[n].addr = NULL;
			if (pn->type == YAML_SEQUENCE_NODE) {
				snprintf(use[n].path, sizeof(use[n].path), "%s[%d]", key, i);
				use[n].mark =
				    &cfg_node(ctx, pn->data.sequence.items.start[i])->start_mark;
			} else {
				snprintf(use[n].path, sizeof(use[n].path), "%s", key);
				use[n].mark = &pn->start_mark;
			}
			n++;
		}
	}
	/* The metrics endpoint binds on this host too. */
	if (cfg->supervisor.metrics_listen[0] != '\0' &&
	    cfg_parse_hostport(cfg->supervisor.metrics_listen, &maddr, &mport, &why) == 0) {
		use[n].port = mport;
		use[n].addr = &maddr;
		snprintf(use[n].path, sizeof(use[n].path), "supervisor.metrics_listen");
		use[n].mark = cfg_mark_of(ctx, "supervisor.metrics_listen");
		n++;
	}
	/* Report each later use against the first earlier one it collides with. */
	for (int j = 1; j < n; j++) {
		for (int i = 0; i < j; i++) {
			if (use[i].port != use[j].port)
				continue;
			if (use[i].addr != NULL && use[j].addr != NULL &&
			    !cfg_addr_overlap(use[i].addr, use[j].addr))
				continue;
			cfg_err(ctx, use[j].mark, use[j].path, "port %u collides with '%s'",
			        use[j].port, use[i].path);
			break;
		}
	}
}

/*
 * The TLS strings are handed to OpenSSL by the proxy; check them here so
 * that a typo is an error with a line number instead of a proxy that fails
 * its health gate.
 */
static void cfg_check_tls(struct cfg_ctx *ctx)
{
	struct cfg_tls *tls = &ctx->cfg->tls;
	SSL_CTX *sc = SSL_CTX_new(TLS_server_method());

	if (sc == NULL) {
		ERR_clear_error();
		return;
	}
	if (tls->ciphers[0] != '\0' && SSL_CTX_set_cipher_list(sc, tls->ciphers) != 1)
		cfg_err(ctx, cfg_mark_of(ctx, "tls.ciphers"), "tls.ciphers",
		        "OpenSSL accepts no cipher in '%s'", tls->ciphers);
	if (tls->ciphersuites[0] != '\0' && SSL_CTX_set_ciphersuites(sc, tls->ciphersuites) != 1)
		cfg_err(ctx, cfg_mark_of(ctx, "tls.ciphersuites"), "tls.ciphersuites",
		        "OpenSSL rejects the TLS 1.3 ciphersuites '%s'", tls->ciphersuites);
	if (tls->groups[0] != '\0' && SSL_CTX_set1_groups_list(sc, tls->groups) != 1)
		cfg_err(ctx, cfg_mark_of(ctx, "tls.groups"), "tls.groups",
		        "OpenSSL rejects the group list '%s'", tls->groups);
	SSL_CTX_free(sc);
	ERR_clear_error();
}

static void cfg_check(struct cfg_ctx *ctx)
{
	struct cfg *cfg = ctx->cfg;
	const int *ss = ctx->set_sock, *sp = ctx->set_pid;

	if (cfg->nlisteners == 0)
		cfg_err(ctx, cfg_mark_of(ctx, "listeners"), "listeners",
		        "at least one listener is required");
	for (int i = 0; i < cfg->nlisteners; i++) {
		if (cfg->listeners[i].name[0] == '\0')
			snprintf(cfg->listeners[i].name, sizeof(cfg->listeners[i].name),
			         "listener%d", i);
		/* A listener whose address did not parse keeps family 0 and is
		 * left out of the collision check, which would only add noise. */
		if (cfg->listeners[i].addr.family == 0 &&
		    cfg_map_get(ctx, ctx->lnode[i], "address") == NULL)
			cfg_parse_addr("0.0.0.0", &cfg->listeners[i].addr);
	}
	for (int j = 1; j < cfg->nlisteners; j++) {
		for (int i = 0; i < j; i++) {
			char p[64];

			if (strcmp(cfg->listeners[i].name, cfg->listeners[j].name) != 0)
				continue;
			snprintf(p, sizeof(p), "listeners[%d].name", j);
			cfg_err(ctx,
			        ctx->lnode[j] ? &ctx->lnode[j]->start_mark : cfg_mark_of(ctx, ""),
			        p, "name '%s' is already used by listeners[%d]",
			        cfg->listeners[j].name, i);
			break;
		}
	}

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char key[64];
		const char *cn = cfg_colour_name((enum cfg_colour)c);

		snprintf(key, sizeof(key), "instances.%s.ports", cn);
		if (ctx->nports[c] < 0)
			continue; /* a type error was already reported */
		if (ctx->nports[c] == 0 &&
		    cfg_map_get(ctx, cfg_map_get(ctx, cfg_map_get(ctx, ctx->root, "instances"), cn),
		                "ports") == NULL) {
			cfg_err(ctx, cfg_mark_of(ctx, key), key,
			        "missing required key (one port per listener)");
		} else if (ctx->nports[c] != cfg->nlisteners && cfg->nlisteners > 0) {
			cfg_err(
			    ctx, cfg_mark_of(ctx, key), key,
			    "%d port%s for %d listener%s: give one port per listener, in the same "
			    "order",
			    ctx->nports[c], ctx->nports[c] == 1 ? "" : "s", cfg->nlisteners,
			    cfg->nlisteners == 1 ? "" : "s");
		}
	}
	cfg_check_ports(ctx);
	cfg_check_metrics(ctx);

	if (cfg->backend.nservers == 0)
		cfg_err(ctx, cfg_mark_of(ctx, "backend.servers"), "backend.servers",
		        "at least one backend server is required");
	for (int i = 0; i < cfg->backend.nservers; i++)
		if (cfg->backend.servers[i].name[0] == '\0')
			snprintf(cfg->backend.servers[i].name, sizeof(cfg->backend.servers[i].name),
			         "server%d", i);

	if (cfg->proxy.threads > 0 && cfg->proxy.ncpu_map > cfg->proxy.threads)
		cfg_err(ctx, cfg_mark_of(ctx, "proxy.cpu_map"), "proxy.cpu_map",
		        "%d entries for %d threads", cfg->proxy.ncpu_map, cfg->proxy.threads);

	if (cfg->certsync.source_dir[0] != '\0' && cfg->certsync.source_command[0] != '\0')
		cfg_err(ctx, cfg_mark_of(ctx, "certsync.source.command"), "certsync.source",
		        "set either 'directory' or 'command', not both");

	if (cfg_derive(cfg, ss, sp, ctx->set_ticket) < 0)
		cfg_err(ctx, cfg_mark_of(ctx, "supervisor.state_dir"), "supervisor.state_dir",
		        "too long: the paths derived from it (e.g. %s/green.sock) do not fit a "
		        "unix socket path",
		        cfg->supervisor.state_dir);
	/* Two daemons on one socket or pid file would take each other's place. */
	if (strcmp(cfg->instances[0].control_socket, cfg->instances[1].control_socket) == 0)
		cfg_err(ctx, cfg_mark_of(ctx, "instances.green.control_socket"),
		        "instances.green.control_socket", "'%s' is also blue's control socket",
		        cfg->instances[1].control_socket);
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char key[64];

		snprintf(key, sizeof(key), "instances.%s.control_socket",
		         cfg_colour_name((enum cfg_colour)c));
		if (strcmp(cfg->instances[c].control_socket, cfg->supervisor.control_socket) == 0)
			cfg_err(ctx, cfg_mark_of(ctx, key), key,
			        "'%s' is also the supervisor's control socket",
			        cfg->instances[c].control_socket);
	}
	if (strcmp(cfg->instances[0].pid_file, cfg->instances[1].pid_file) == 0)
		cfg_err(ctx, cfg_mark_of(ctx, "instances.green.pid_file"),
		        "instances.green.pid_file", "'%s' is also blue's pid file",
		        cfg->instances[1].pid_file);

	cfg_check_tls(ctx);
}

/* Loading. */

/* libyaml reports reader errors (bad UTF-8) by byte offset, not by mark. */
static void cfg_offset_mark(const char *buf, size_t len, size_t off, yaml_mark_t *m)
{
	m->line = 0;
	m->column = 0;
	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			m->line++;
			m->column = 0;
		} else {
			m->column++;
		}
	}
}

static void cfg_syntax_error(struct cfg_ctx *ctx, yaml_parser_t *p, const char *buf, size_t len)
{
	yaml_mark_t m = p->problem_mark;
	const char *problem = p->problem ? p->problem : "cannot parse";

	if (p->error == YAML_READER_ERROR)
		cfg_offset_mark(buf, len, p->problem_offset, &m);
	if (p->context != NULL)
		cfg_err(ctx, &m, NULL, "YAML syntax error: %s (%s at line %zu column %zu)", problem,
		        p->context, p->context_mark.line + 1, p->context_mark.column + 1);
	else
		cfg_err(ctx, &m, NULL, "YAML syntax error: %s", problem);
}

/* File order reads best: checks made after the walk land where they belong. */
static int cfg_msg_cmp(const void *a, const void *b)
{
	const struct cfg_msg *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static char *cfg_join_msgs(struct cfg_ctx *ctx)
{
	size_t len = 1;
	char *out, *p;

	if (ctx->oom)
		return strdup("out of memory while reporting configuration errors\n");
	qsort(ctx->msgs, ctx->nmsgs, sizeof(ctx->msgs[0]), cfg_msg_cmp);
	for (size_t i = 0; i < ctx->nmsgs; i++)
		len += strlen(ctx->msgs[i].text) + 1;
	out = malloc(len);
	if (out == NULL)
		return NULL;
	p = out;
	for (size_t i = 0; i < ctx->nmsgs; i++) {
		size_t n = strlen(ctx->msgs[i].text);

		memcpy(p, ctx->msgs[i].text, n);
		p[n] = '\n';
		p += n + 1;
	}
	*p = '\0';
	return out;
}

static struct cfg *cfg_finish(struct cfg_ctx *ctx, struct cfg *cfg, char **errs, int *nerrs)
{
	if (nerrs != NULL)
		*nerrs = ctx->nerrs;
	if (errs != NULL)
		*errs = ctx->nerrs > 0 ? cfg_join_msgs(ctx) : NULL;
	for (size_t i = 0; i < ctx->nmsgs; i++)
		free(ctx->msgs[i].text);
	free(ctx->msgs);
	if (ctx->nerrs > 0) {
		free(cfg);
		return NULL;
	}
	return cfg;
}

struct cfg *cfg_load_buf(const char *name, const char *buf, size_t len, char **errs, int *nerrs)
{
	struct cfg_ctx ctx;
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct cfg *cfg;

	memset(&ctx, 0, sizeof(ctx));
	ctx.name = name != NULL ? name : "<config>";
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		cfg_err(&ctx, NULL, NULL, "out of memory");
		return cfg_finish(&ctx, NULL, errs, nerrs);
	}
	cfg_defaults(cfg);
	snprintf(cfg->path, sizeof(cfg->path), "%s", ctx.name);
	ctx.cfg = cfg;

	if (!yaml_parser_initialize(&parser)) {
		cfg_err(&ctx, NULL, NULL, "out of memory");
		return cfg_finish(&ctx, cfg, errs, nerrs);
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		cfg_syntax_error(&ctx, &parser, buf, len);
		yaml_parser_delete(&parser);
		return cfg_finish(&ctx, cfg, errs, nerrs);
	}
	ctx.doc = &doc;
	ctx.root = yaml_document_get_root_node(&doc);
	if (ctx.root == NULL || cfg_is_null(ctx.root)) {
		yaml_mark_t m = {0, 0, 0};

		cfg_err(&ctx, &m, NULL, "the configuration is empty");
		goto out;
	}
	/* A second document would be silently ignored; say so instead. */
	if (!yaml_parser_load(&parser, &extra)) {
		cfg_syntax_error(&ctx, &parser, buf, len);
	} else {
		yaml_node_t *r = yaml_document_get_root_node(&extra);

		if (r != NULL)
			cfg_err(&ctx, &r->start_mark, NULL,
			        "only one YAML document is allowed, found a second one");
		yaml_document_delete(&extra);
	}
	if (ctx.root->type != YAML_MAPPING_NODE) {
		cfg_err(&ctx, &ctx.root->start_mark, NULL,
		        "expected a mapping at the top level, got %s", cfg_kind(ctx.root));
		goto out;
	}
	cfg_walk_map(&ctx, ctx.root, cfg_top_keys, cfg, "");
	cfg_check(&ctx);
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return cfg_finish(&ctx, cfg, errs, nerrs);
}

struct cfg *cfg_load(const char *path, char **errs, int *nerrs)
{
	struct cfg_ctx ctx;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	struct cfg *cfg;
	int fd;

	memset(&ctx, 0, sizeof(ctx));
	ctx.name = path;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cfg_err(&ctx, NULL, NULL, "cannot open: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		cfg_err(&ctx, NULL, NULL, "cannot open: %s",
		        S_ISDIR(st.st_mode) ? strerror(EISDIR) : "not a regular file");
		goto fail;
	}
	if ((uint64_t)st.st_size > CFG_MAX_FILE) {
		cfg_err(&ctx, NULL, NULL, "too large for a configuration file (%lld bytes)",
		        (long long)st.st_size);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		cfg_err(&ctx, NULL, NULL, "out of memory");
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			cfg_err(&ctx, NULL, NULL, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	buf[len] = '\0';
	close(fd);
	cfg = cfg_load_buf(path, buf, len, errs, nerrs);
	free(buf);
	return cfg;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return cfg_finish(&ctx, NULL, errs, nerrs);
}

struct cfg *cfg_load_report(const char *path)
{
	char *errs = NULL;
	struct cfg *cfg;

	if (path == NULL)
		path = CFG_DEFAULT_PATH;
	cfg = cfg_load(path, &errs, NULL);
	if (cfg == NULL && errs != NULL)
		fputs(errs, stderr);
	free(errs);
	return cfg;
}

void cfg_free(struct cfg *cfg)
{
	free(cfg);
}

const char *cfg_colour_name(enum cfg_colour c)
{
	return c == CFG_GREEN ? "green" : "blue";
}

int cfg_colour_parse(const char *s, enum cfg_colour *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "blue") == 0) {
		*out = CFG_BLUE;
		return 0;
	}
	if (strcmp(s, "green") == 0) {
		*out = CFG_GREEN;
		return 0;
	}
	return -1;
}

socklen_t cfg_sockaddr(const struct cfg_addr *addr, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (addr->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, addr->a.v4, 4);
		return sizeof(*sin);
	}
	if (addr->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, addr->a.v6, 16);
		return sizeof(*sin6);
	}
	return 0;
}
