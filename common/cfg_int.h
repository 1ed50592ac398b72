/*
 * cfg_int: what the three parts of the configuration loader share, and
 * nothing else includes. cfg_parse.c turns scalars into values and reports
 * errors at their FILE:LINE:COLUMN; cfg_keys.c holds the schema (one table
 * per mapping: each key's type, range, default and how a change applies)
 * and walks a document with it; cfg.c checks across keys and loads files.
 */
#ifndef SY_CFG_INT_H
#define SY_CFG_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include "common/cfg.h"

/* Longest dotted key path, such as "backend.servers[63].address". */
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
	int lenient; /* cfg_load_lenient: keep the result despite errors */
	/* Paths with a default derived from state_dir that the file set. */
	int set_sock[CFG_NCOLOURS];
	int set_pid[CFG_NCOLOURS];
	int set_ticket;
	int nports[CFG_NCOLOURS]; /* entries given in instances.<c>.ports */
	yaml_node_t *lnode[CFG_MAX_LISTENERS];
};

/* Errors (cfg_parse.c). m NULL reports "FILE: message"; path names the key. */
void cfg_err(struct cfg_ctx *ctx, const yaml_mark_t *m, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Node helpers (cfg_parse.c). */
yaml_node_t *cfg_node(struct cfg_ctx *ctx, int id);
const char *cfg_kind(const yaml_node_t *n);
/* A plain empty scalar, "~" or "null": YAML's null, as in "key:" with nothing. */
int cfg_is_null(const yaml_node_t *n);
/* The scalar text of n, or NULL after reporting why not; what names the
 * expected type ("an integer") for the message. */
const char *cfg_scalar(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path,
                       const char *what);
/* Value of key in mapping n (first occurrence), or NULL. */
yaml_node_t *cfg_map_get(struct cfg_ctx *ctx, const yaml_node_t *n, const char *key);
/* Where a dotted path is in the file, for checks made after the walk. */
const yaml_mark_t *cfg_mark_of(struct cfg_ctx *ctx, const char *dotted);

/* Scalar parsers (cfg_parse.c): 0, or -1 when s is not a valid value. */
int cfg_parse_i64(const char *s, int64_t *out);
int cfg_get_int(struct cfg_ctx *ctx, const yaml_node_t *n, const char *path, int64_t lo, int64_t hi,
                int64_t *out); /* reports its own errors */
int cfg_parse_duration(const char *s, uint64_t *ms);
int cfg_parse_size(const char *s, uint64_t *bytes);
const char *cfg_fmt_ms(uint64_t ms, char *buf, size_t len);
int cfg_parse_bool(const char *s, int *out);
int cfg_parse_addr(const char *s, struct cfg_addr *out);
int cfg_parse_hostport(const char *s, struct cfg_addr *addr, uint16_t *port, const char **why);
int cfg_name_ok(const char *s);

/* The schema: its tables are in cfg_keys.c. */

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
/* The default is worked out by cfg_check or cfg_derive from other values;
 * def is how the documentation writes it, not a value to parse. */
#define CFG_F_DERIVED 0x40
/* A path: absolute when set, because switchyardd (which daemonizes into /)
 * and the instances do not share the working directory of whoever ran
 * check-config. */
#define CFG_F_ABS 0x80

struct cfg_key;
typedef void (*cfg_fn)(struct cfg_ctx *ctx, const struct cfg_key *key, yaml_node_t *n, void *base,
                       const char *path);

/*
 * One key of a mapping. off and size locate the value inside the struct the
 * mapping fills (base): for a CFG_T_FN key the field its handler writes, so
 * that two configurations can be compared key by key; for a CFG_T_MAP key
 * the sub-struct its keys fill. def is the default as a YAML flow value,
 * exactly as docs/configuration.md shows it (parsed like a value from the
 * file, so a default obeys the key's own type and range); NULL means the
 * key is required. apply says how a changed value reaches the service.
 */
struct cfg_key {
	const char *name;
	enum cfg_type type;
	size_t off, size;
	int64_t min, max;          /* integers, durations (ms), sizes (bytes) */
	const struct cfg_key *sub; /* CFG_T_MAP; for a list, the keys of one item */
	const char *const *names;  /* CFG_T_ENUM, NULL-terminated; index = value */
	cfg_fn fn;                 /* CFG_T_FN */
	unsigned flags;
	const char *def;
	enum cfg_apply apply;
};

#define CFG_FLD(t, f) .off = offsetof(t, f), .size = sizeof(((t *)0)->f)
/* A typed key: integer, duration, size, boolean, name or address. */
#define CFG_K(t, n, ty, f, lo, hi, d, ap)                                                          \
	{                                                                                          \
		.name = n, .type = ty, CFG_FLD(t, f), .min = lo, .max = hi, .def = d, .apply = ap  \
	}
#define CFG_KS(t, n, f, fl, d, ap)                                                                 \
	{                                                                                          \
		.name = n, .type = CFG_T_STR, CFG_FLD(t, f), .flags = fl, .def = d, .apply = ap    \
	}
#define CFG_KE(t, n, f, nm, d, ap)                                                                 \
	{                                                                                          \
		.name = n, .type = CFG_T_ENUM, CFG_FLD(t, f), .names = nm, .def = d, .apply = ap   \
	}
/* A mapping whose keys fill the struct at offset f of this one. */
#define CFG_KM(n, t, f, s)                                                                         \
	{                                                                                          \
		.name = n, .type = CFG_T_MAP, CFG_FLD(t, f), .sub = s                              \
	}
/* A section of struct cfg: its keys use struct cfg offsets themselves. */
#define CFG_KSEC(n, s)                                                                             \
	{                                                                                          \
		.name = n, .type = CFG_T_MAP, .sub = s                                             \
	}
/* A key with its own handler, which writes field f. */
#define CFG_KF(n, h, t, f, d, ap)                                                                  \
	{                                                                                          \
		.name = n, .type = CFG_T_FN, CFG_FLD(t, f), .fn = h, .def = d, .apply = ap         \
	}
/* A list of mappings (listeners, servers): s holds the keys of one item. */
#define CFG_KL(n, h, t, f, s, ap)                                                                  \
	{                                                                                          \
		.name = n, .type = CFG_T_FN, CFG_FLD(t, f), .fn = h, .sub = s, .apply = ap         \
	}
#define CFG_END                                                                                    \
	{                                                                                          \
		.name = NULL                                                                       \
	}

#define CFG_U32_MAX 4294967295LL
/* A number macro as the string a default is written in. */
#define CFG_STR_(x) #x
#define CFG_XSTR(x) CFG_STR_(x)

/* The top-level table (cfg_keys.c). */
extern const struct cfg_key cfg_top_keys[];

/* The walk (cfg_walk.c). */

/* Walks the top-level mapping of a document into ctx->cfg. */
void cfg_walk_top(struct cfg_ctx *ctx, yaml_node_t *root);
/* Walks mapping n with keys, filling base. */
void cfg_walk_map(struct cfg_ctx *ctx, yaml_node_t *n, const struct cfg_key *keys, void *base,
                  const char *path);
/* Applies the defaults of keys (and of the mappings below them) to base. */
void cfg_defaults_walk(struct cfg_ctx *ctx, const struct cfg_key *keys, void *base,
                       const char *path);
/* Applies every key's default from the tables to ctx->cfg, which must be
 * zeroed; a default that does not parse is reported as an error. */
void cfg_apply_defaults(struct cfg_ctx *ctx);
/* Which instance a struct cfg_instance inside ctx->cfg belongs to. */
int cfg_colour_of(struct cfg_ctx *ctx, const void *inst);

/*
 * Calls fn for every item of a sequence-valued key, after checking the
 * item count against max. With allow_scalar a single scalar counts as a
 * one-item sequence, so "bind: 0.0.0.0" and "bind: [0.0.0.0]" mean the
 * same. A null value is an empty sequence. Returns the number of items
 * visited, or -1 after reporting a type error.
 */
typedef void (*cfg_item_fn)(struct cfg_ctx *ctx, yaml_node_t *item, int i, void *arg,
                            const char *path);
int cfg_each(struct cfg_ctx *ctx, yaml_node_t *n, const char *path, int allow_scalar, int max,
             const char *what, cfg_item_fn fn, void *arg);

#endif
