/*
 * cfg: see cfg.h and docs/configuration.md.
 *
 * The file is loaded with libyaml's document API so that every node keeps
 * its start mark; that is what lets each message name FILE:LINE:COLUMN.
 * The schema and the walk that applies it are in cfg_keys.c, the scalar
 * parsers in cfg_parse.c. This file holds what runs after the walk: the
 * checks that involve several keys (required keys, port collisions, paths
 * derived from state_dir), on the filled struct, and the loading itself.
 */
#include "common/cfg.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <yaml.h>

#include "common/cfg_int.h"

/* A configuration file is a few kilobytes; anything far larger is a mistake
 * (a certificate bundle passed with -c, say), not something to parse. */
#define CFG_MAX_FILE (4u << 20)

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

static char *cfg_join_msgs(struct cfg_ctx *ctx);

/*
 * The defaults are parsed from the key table once per process into a
 * template that every load starts from. A default the table gets wrong
 * (a typo, a value out of its own range) is kept as a message that every
 * load then reports, so it fails the unit tests instead of going unseen.
 */
static struct cfg cfg_template;
static char *cfg_template_errs;
static pthread_once_t cfg_template_once = PTHREAD_ONCE_INIT;

static void cfg_template_build(void)
{
	static const int none[CFG_NCOLOURS];
	struct cfg_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.name = "built-in defaults";
	ctx.cfg = &cfg_template;
	memset(&cfg_template, 0, sizeof(cfg_template));
	/* Not a default but the representation of "no pinning". */
	for (int i = 0; i < CFG_MAX_CPUS; i++)
		cfg_template.proxy.cpu_map[i] = -1;
	cfg_apply_defaults(&ctx);
	cfg_derive(&cfg_template, none, none, 0);
	if (ctx.nerrs > 0)
		cfg_template_errs = cfg_join_msgs(&ctx);
	for (size_t k = 0; k < ctx.nmsgs; k++)
		free(ctx.msgs[k].text);
	free(ctx.msgs);
}

void cfg_defaults(struct cfg *cfg)
{
	pthread_once(&cfg_template_once, cfg_template_build);
	memcpy(cfg, &cfg_template, sizeof(*cfg));
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
	if (ctx->nerrs > 0 && !ctx->lenient) {
		free(cfg);
		return NULL;
	}
	return cfg;
}

static struct cfg *cfg_load_buf_as(const char *name, const char *buf, size_t len, int lenient,
                                   char **errs, int *nerrs)
{
	struct cfg_ctx ctx;
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct cfg *cfg;

	memset(&ctx, 0, sizeof(ctx));
	ctx.name = name != NULL ? name : "<config>";
	ctx.lenient = lenient;
	cfg = malloc(sizeof(*cfg));
	if (cfg == NULL) {
		cfg_err(&ctx, NULL, NULL, "out of memory");
		return cfg_finish(&ctx, NULL, errs, nerrs);
	}
	cfg_defaults(cfg);
	snprintf(cfg->path, sizeof(cfg->path), "%s", ctx.name);
	ctx.cfg = cfg;
	if (cfg_template_errs != NULL) {
		cfg_err(&ctx, NULL, NULL, "the built-in defaults are broken:\n%s",
		        cfg_template_errs);
		return cfg_finish(&ctx, cfg, errs, nerrs);
	}

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
	cfg_walk_top(&ctx, ctx.root);
	cfg_check(&ctx);
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return cfg_finish(&ctx, cfg, errs, nerrs);
}

struct cfg *cfg_load_buf(const char *name, const char *buf, size_t len, char **errs, int *nerrs)
{
	return cfg_load_buf_as(name, buf, len, 0, errs, nerrs);
}

static struct cfg *cfg_load_as(const char *path, int lenient, char **errs, int *nerrs)
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
	cfg = cfg_load_buf_as(path, buf, len, lenient, errs, nerrs);
	free(buf);
	return cfg;
fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	return cfg_finish(&ctx, NULL, errs, nerrs);
}

struct cfg *cfg_load(const char *path, char **errs, int *nerrs)
{
	return cfg_load_as(path, 0, errs, nerrs);
}

struct cfg *cfg_load_lenient(const char *path, char **errs, int *nerrs)
{
	struct cfg *cfg = cfg_load_as(path, 1, errs, nerrs);

	/* A file that cannot be read at all still has the defaults. */
	if (cfg == NULL && (cfg = malloc(sizeof(*cfg))) != NULL) {
		cfg_defaults(cfg);
		snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	}
	return cfg;
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
