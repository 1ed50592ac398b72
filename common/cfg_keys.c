/*
 * cfg_keys: the schema of the configuration file, one table per mapping,
 * with the handlers of the keys that need their own parsing. Each key
 * carries its type, range, default and how a changed value reaches the
 * service (enum cfg_apply), so those facts live here once: cfg_defaults(),
 * `switchyard config-keys`, reload-config and the documentation test all
 * read these tables (through cfg_walk.c).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include <openssl/ssl.h>

#include "common/cfg_int.h"
#include "common/log.h"

/* listeners */

static const struct cfg_key cfg_listener_keys[] = {
    {.name = "name",
     .type = CFG_T_NAME,
     CFG_FLD(struct cfg_listener, name),
     .flags = CFG_F_DERIVED,
     .def = "listener<N>",
     .apply = CFG_APPLY_RESTART},
    CFG_K(struct cfg_listener, "address", CFG_T_ADDR, addr, 0, 0, "0.0.0.0", CFG_APPLY_RESTART),
    CFG_K(struct cfg_listener, "port", CFG_T_INT, port, 1, 65535, NULL, CFG_APPLY_RESTART),
    CFG_K(struct cfg_listener, "maxconn", CFG_T_INT, maxconn, 0, 10000000, "0", CFG_APPLY_RESTART),
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
	cfg_defaults_walk(ctx, cfg_listener_keys, l, path);
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
	ctx->nports[cfg_colour_of(ctx, base)] = cnt < 0 ? -1 : cnt;
}

static const struct cfg_key cfg_instance_keys[] = {
    CFG_KF("bind", cfg_bind, struct cfg_instance, bind, "[0.0.0.0, \"::\"]", CFG_APPLY_FLIP),
    CFG_KF("ports", cfg_ports, struct cfg_instance, ports, NULL, CFG_APPLY_RESTART),
    CFG_KS(struct cfg_instance, "control_socket", control_socket,
           CFG_F_SOCK | CFG_F_SETSOCK | CFG_F_NONEMPTY | CFG_F_DERIVED | CFG_F_ABS,
           "STATE_DIR/<colour>.sock", CFG_APPLY_RESTART),
    CFG_KS(struct cfg_instance, "pid_file", pid_file,
           CFG_F_SETPID | CFG_F_NONEMPTY | CFG_F_DERIVED | CFG_F_ABS, "STATE_DIR/<colour>.pid",
           CFG_APPLY_RESTART),
    CFG_END,
};

static const struct cfg_key cfg_instances_keys[] = {
    CFG_KM("blue", struct cfg, instances[CFG_BLUE], cfg_instance_keys),
    CFG_KM("green", struct cfg, instances[CFG_GREEN], cfg_instance_keys),
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
    CFG_K(struct cfg, "handshake", CFG_T_DUR, proxy.handshake_timeout_ms, 1, CFG_U32_MAX, "10s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "connect", CFG_T_DUR, proxy.connect_timeout_ms, 1, CFG_U32_MAX, "5s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "client", CFG_T_DUR, proxy.client_timeout_ms, 1, CFG_U32_MAX, "60s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "server", CFG_T_DUR, proxy.server_timeout_ms, 1, CFG_U32_MAX, "60s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "hard_stop_after", CFG_T_DUR, proxy.hard_stop_after_ms, 0, CFG_U32_MAX, "0",
          CFG_APPLY_FLIP),
    CFG_END,
};

static const struct cfg_key cfg_proxy_keys[] = {
    CFG_K(struct cfg, "threads", CFG_T_INT, proxy.threads, 0, 256, "0", CFG_APPLY_FLIP),
    CFG_KF("cpu_map", cfg_cpu_map, struct cfg, proxy.cpu_map, "[]", CFG_APPLY_FLIP),
    CFG_K(struct cfg, "maxconn", CFG_T_INT, proxy.maxconn, 1, 10000000, "20000", CFG_APPLY_FLIP),
    CFG_K(struct cfg, "backlog", CFG_T_INT, proxy.backlog, 1, 65535, "4096", CFG_APPLY_FLIP),
    CFG_KE(struct cfg, "accept", proxy.accept, cfg_accept_names, "reuseport", CFG_APPLY_FLIP),
    CFG_K(struct cfg, "buffer_size", CFG_T_SIZE, proxy.buffer_size, 1024, 16 << 20, "16384",
          CFG_APPLY_FLIP),
    CFG_KSEC("timeouts", cfg_timeout_keys),
    CFG_KS(struct cfg, "user", proxy.user, 0, "\"\"", CFG_APPLY_RESTART),
    CFG_KS(struct cfg, "group", proxy.group, 0, "\"\"", CFG_APPLY_RESTART),
    CFG_K(struct cfg, "access_log", CFG_T_BOOL, proxy.access_log, 0, 1, "false", CFG_APPLY_FLIP),
    CFG_KE(struct cfg, "log", proxy.log, cfg_log_names, "stderr", CFG_APPLY_FLIP),
    CFG_KF("log_level", cfg_log_level, struct cfg, proxy.log_level, "info", CFG_APPLY_FLIP),
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
    CFG_KF("min_version", cfg_min_version, struct cfg, tls.min_version, "\"1.2\"", CFG_APPLY_FLIP),
    CFG_KS(struct cfg, "ciphers", tls.ciphers, 0, "ECDHE+AESGCM:ECDHE+CHACHA20", CFG_APPLY_FLIP),
    CFG_KS(struct cfg, "ciphersuites", tls.ciphersuites, 0,
           "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
           CFG_APPLY_FLIP),
    CFG_KS(struct cfg, "groups", tls.groups, 0, "X25519:P-256:P-384", CFG_APPLY_FLIP),
    CFG_KF("alpn", cfg_alpn, struct cfg, tls.alpn, "[http/1.1]", CFG_APPLY_FLIP),
    CFG_KS(struct cfg, "ticket_key_file", tls.ticket_key_file,
           CFG_F_SETTICK | CFG_F_DERIVED | CFG_F_ABS, "STATE_DIR/ticket.keys", CFG_APPLY_RESTART),
    CFG_K(struct cfg, "session_cache", CFG_T_BOOL, tls.session_cache, 0, 1, "false",
          CFG_APPLY_FLIP),
    CFG_END,
};

/* certificates */

static const char *const cfg_expired_names[] = {"serve", "skip", NULL};

static const struct cfg_key cfg_certs_keys[] = {
    CFG_KS(struct cfg, "directory", certs.directory, CFG_F_NONEMPTY | CFG_F_ABS,
           "/etc/switchyard/certs", CFG_APPLY_FLIP),
    CFG_KS(struct cfg, "default", certs.default_cert, CFG_F_BASENAME, "\"\"", CFG_APPLY_FLIP),
    CFG_KE(struct cfg, "expired", certs.expired, cfg_expired_names, "serve", CFG_APPLY_FLIP),
    CFG_K(struct cfg, "max_file_size", CFG_T_SIZE, certs.max_file_size, 1024, 1LL << 30, "1M",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "load_threads", CFG_T_INT, certs.load_threads, 0, 256, "0", CFG_APPLY_FLIP),
    CFG_K(struct cfg, "cache_size", CFG_T_INT, certs.cache_size, 0, 10000000,
          CFG_XSTR(CFG_CERTS_CACHE_SIZE_DEFAULT), CFG_APPLY_FLIP),
    CFG_END,
};

/* backend */

static const struct cfg_key cfg_server_keys[] = {
    {.name = "name",
     .type = CFG_T_NAME,
     CFG_FLD(struct cfg_server, name),
     .flags = CFG_F_DERIVED,
     .def = "server<N>",
     .apply = CFG_APPLY_FLIP},
    CFG_K(struct cfg_server, "address", CFG_T_ADDR, addr, 0, 0, NULL, CFG_APPLY_FLIP),
    CFG_K(struct cfg_server, "port", CFG_T_INT, port, 1, 65535, NULL, CFG_APPLY_FLIP),
    CFG_END,
};

static void cfg_server_item(struct cfg_ctx *ctx, yaml_node_t *it, int i, void *arg,
                            const char *path)
{
	struct cfg_server *srv = &ctx->cfg->backend.servers[i];
	char p[CFG_PATH_MAX];
	const char *why;

	(void)arg;
	cfg_defaults_walk(ctx, cfg_server_keys, srv, path);
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
    CFG_K(struct cfg, "fail_threshold", CFG_T_INT, backend.fail_threshold, 1, 1000000, "3",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "down_time", CFG_T_DUR, backend.down_time_ms, 1, CFG_U32_MAX, "10s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "check_interval", CFG_T_DUR, backend.check_interval_ms, 0, CFG_U32_MAX, "2s",
          CFG_APPLY_FLIP),
    CFG_K(struct cfg, "check_timeout", CFG_T_DUR, backend.check_timeout_ms, 1, CFG_U32_MAX, "1s",
          CFG_APPLY_FLIP),
    CFG_END,
};

static const struct cfg_key cfg_backend_keys[] = {
    CFG_KE(struct cfg, "balance", backend.balance, cfg_balance_names, "roundrobin", CFG_APPLY_FLIP),
    CFG_KE(struct cfg, "proxy_protocol", backend.proxy_protocol, cfg_pp_names, "none",
           CFG_APPLY_FLIP),
    CFG_K(struct cfg, "retries", CFG_T_INT, backend.retries, 0, 100, "2", CFG_APPLY_FLIP),
    CFG_KL("servers", cfg_servers, struct cfg, backend.servers, cfg_server_keys, CFG_APPLY_FLIP),
    CFG_KSEC("health", cfg_health_keys),
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
    CFG_K(struct cfg, "sample", CFG_T_INT, supervisor.gate_sample, 0, 1000000, "20",
          CFG_APPLY_LIVE),
    CFG_K(struct cfg, "changed_cap", CFG_T_INT, supervisor.gate_changed_cap, 0, 10000000, "200",
          CFG_APPLY_LIVE),
    CFG_K(struct cfg, "timeout", CFG_T_DUR, supervisor.gate_timeout_ms, 1, CFG_U32_MAX, "2s",
          CFG_APPLY_LIVE),
    CFG_END,
};

static const struct cfg_key cfg_supervisor_keys[] = {
    CFG_KS(struct cfg, "control_socket", supervisor.control_socket,
           CFG_F_SOCK | CFG_F_NONEMPTY | CFG_F_ABS, "/run/switchyard/switchyardd.sock",
           CFG_APPLY_RESTART),
    CFG_KF("control_mode", cfg_mode, struct cfg, supervisor.control_mode, "\"0660\"",
           CFG_APPLY_RESTART),
    CFG_KS(struct cfg, "control_group", supervisor.control_group, 0, "\"\"", CFG_APPLY_RESTART),
    CFG_KS(struct cfg, "state_dir", supervisor.state_dir, CFG_F_NONEMPTY | CFG_F_ABS,
           "/var/lib/switchyard", CFG_APPLY_RESTART),
    CFG_K(struct cfg, "drain_timeout", CFG_T_DUR, supervisor.drain_timeout_ms, 0, CFG_U32_MAX, "5m",
          CFG_APPLY_LIVE),
    CFG_K(struct cfg, "hard_stop_after", CFG_T_DUR, supervisor.hard_stop_after_ms, 0, CFG_U32_MAX,
          "0", CFG_APPLY_LIVE),
    CFG_KSEC("health_gate", cfg_gate_keys),
    CFG_KE(struct cfg, "initial_live", supervisor.initial_live, cfg_colour_names, "blue",
           CFG_APPLY_LIVE),
    CFG_KS(struct cfg, "proxy_binary", supervisor.proxy_binary, CFG_F_ABS, "\"\"",
           CFG_APPLY_RESTART),
    CFG_KF("metrics_listen", cfg_metrics, struct cfg, supervisor.metrics_listen, "\"\"",
           CFG_APPLY_RESTART),
    CFG_K(struct cfg, "metrics_public", CFG_T_BOOL, supervisor.metrics_public, 0, 1, "false",
          CFG_APPLY_RESTART),
    /* Rotating more often than once a minute only shortens resumption. */
    CFG_K(struct cfg, "ticket_rotate", CFG_T_DUR, supervisor.ticket_rotate_ms, 60000, CFG_U32_MAX,
          "1h", CFG_APPLY_LIVE),
    CFG_K(struct cfg, "filter_guard", CFG_T_BOOL, supervisor.filter_guard, 0, 1, "false",
          CFG_APPLY_RESTART),
    CFG_END,
};

/* netfilter */

static const char *const cfg_nf_backend_names[] = {"auto", "nftables", "iptables", NULL};

const char *cfg_nf_backend_name(enum cfg_nf_backend b)
{
	return (unsigned)b < 3 ? cfg_nf_backend_names[b] : "?";
}

static const struct cfg_key cfg_netfilter_keys[] = {
    CFG_KE(struct cfg, "backend", netfilter.backend, cfg_nf_backend_names, "auto",
           CFG_APPLY_RESTART),
    CFG_END,
};

/* certsync */

static const struct cfg_key cfg_source_keys[] = {
    CFG_KS(struct cfg, "directory", certsync.source_dir, CFG_F_ABS, "\"\"", CFG_APPLY_LIVE),
    CFG_KS(struct cfg, "command", certsync.source_command, 0, "\"\"", CFG_APPLY_LIVE),
    CFG_END,
};

static const struct cfg_key cfg_certsync_keys[] = {
    CFG_KSEC("source", cfg_source_keys),
    CFG_K(struct cfg, "command_timeout", CFG_T_DUR, certsync.command_timeout_ms, 1000, CFG_U32_MAX,
          "5m", CFG_APPLY_LIVE),
    CFG_K(struct cfg, "keep_versions", CFG_T_INT, certsync.keep_versions, 1, 1000, "5",
          CFG_APPLY_LIVE),
    CFG_K(struct cfg, "mass_delete_percent", CFG_T_INT, certsync.mass_delete_percent, 0, 100, "10",
          CFG_APPLY_LIVE),
    CFG_K(struct cfg, "expiry_warn_days", CFG_T_INT, certsync.expiry_warn_days, 0, 3650, "14",
          CFG_APPLY_LIVE),
    CFG_END,
};

const struct cfg_key cfg_top_keys[] = {
    CFG_KL("listeners", cfg_listeners, struct cfg, listeners, cfg_listener_keys, CFG_APPLY_RESTART),
    CFG_KSEC("instances", cfg_instances_keys),
    CFG_KSEC("proxy", cfg_proxy_keys),
    CFG_KSEC("tls", cfg_tls_keys),
    CFG_KSEC("certificates", cfg_certs_keys),
    CFG_KSEC("backend", cfg_backend_keys),
    CFG_KSEC("supervisor", cfg_supervisor_keys),
    CFG_KSEC("netfilter", cfg_netfilter_keys),
    CFG_KSEC("certsync", cfg_certsync_keys),
    CFG_END,
};
