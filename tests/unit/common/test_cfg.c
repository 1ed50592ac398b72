/*
 * Unit tests for common/cfg.c: a full file, defaults, every error kind with
 * its exact FILE:LINE:COLUMN, several errors in one run, and the port
 * collision rules. The value syntaxes are in test_cfg_parse.c, the key
 * table in test_cfg_keys.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "common/log.h"

#include "tests/unit/common/cfg_helpers.h"

static void test_full_valid(void **state)
{
	static const char yaml[] =
	    "listeners:\n"
	    "  - {name: https, address: 192.0.2.10, port: 443, maxconn: 5000}\n"
	    "  - {name: alt, address: \"2001:db8::10\", port: 8443}\n"
	    "instances:\n"
	    "  blue:\n"
	    "    bind: [192.0.2.10, \"2001:db8::10\"]\n"
	    "    ports: [10443, 18443]\n"
	    "    control_socket: /run/sy/b.sock\n"
	    "    pid_file: /run/sy/b.pid\n"
	    "  green:\n"
	    "    bind: 0.0.0.0\n"
	    "    ports: [20443, 28443]\n"
	    "proxy:\n"
	    "  threads: 2\n"
	    "  cpu_map: [0, 1]\n"
	    "  maxconn: 1000\n"
	    "  backlog: 512\n"
	    "  accept: shared\n"
	    "  buffer_size: 32k\n"
	    "  timeouts: {handshake: 5s, connect: 500ms, client: 2m, server: 90, "
	    "hard_stop_after: 1h}\n"
	    "  user: nobody\n"
	    "  group: nogroup\n"
	    "  access_log: yes\n"
	    "  log: syslog\n"
	    "  log_level: debug\n"
	    "tls:\n"
	    "  min_version: TLSv1.3\n"
	    "  ciphers: ECDHE+AESGCM\n"
	    "  ciphersuites: TLS_AES_256_GCM_SHA384\n"
	    "  groups: X25519\n"
	    "  alpn: [h2, http/1.1]\n"
	    "  ticket_key_file: /etc/sy/tickets\n"
	    "  session_cache: on\n"
	    "certificates:\n"
	    "  directory: /srv/certs\n"
	    "  default: fallback.pem\n"
	    "  expired: skip\n"
	    "  max_file_size: 2MiB\n"
	    "  load_threads: 4\n"
	    "  cache_size: 2500\n"
	    "backend:\n"
	    "  balance: leastconn\n"
	    "  proxy_protocol: v2\n"
	    "  retries: 5\n"
	    "  servers:\n"
	    "    - {name: app1, address: 10.0.0.1, port: 8080}\n"
	    "    - \"[2001:db8::20]:8081\"\n"
	    "  health: {fail_threshold: 7, down_time: 30s, check_interval: 0, check_timeout: 250ms}\n"
	    "supervisor:\n"
	    "  control_socket: /run/sy/ctl.sock\n"
	    "  control_mode: \"0600\"\n"
	    "  state_dir: /srv/state\n"
	    "  drain_timeout: 10m\n"
	    "  hard_stop_after: 2h\n"
	    "  health_gate: {sample: 50, changed_cap: 500, timeout: 3s}\n"
	    "  initial_live: green\n"
	    "  proxy_binary: /opt/sy/switchyard-proxy\n"
	    "  metrics_listen: \"127.0.0.1:9100\"\n"
	    "  ticket_rotate: 30m\n"
	    "  filter_guard: true\n"
	    "certsync:\n"
	    "  source: {command: \"fetch --out {dir}\"}\n"
	    "  command_timeout: 1m\n"
	    "  keep_versions: 9\n"
	    "  mass_delete_percent: 25\n"
	    "  expiry_warn_days: 30\n";
	struct cfg *c;

	(void)state;
	c = load_ok(yaml);
	assert_string_equal(c->path, "t.yaml");
	assert_int_equal(c->nlisteners, 2);
	assert_string_equal(c->listeners[0].name, "https");
	assert_int_equal(c->listeners[0].addr.family, AF_INET);
	assert_string_equal(c->listeners[0].addr.text, "192.0.2.10");
	assert_int_equal(c->listeners[0].port, 443);
	assert_int_equal(c->listeners[0].maxconn, 5000);
	assert_string_equal(c->listeners[1].name, "alt");
	assert_int_equal(c->listeners[1].addr.family, AF_INET6);
	assert_int_equal(c->listeners[1].maxconn, 0);

	assert_int_equal(c->instances[CFG_BLUE].nbind, 2);
	assert_string_equal(c->instances[CFG_BLUE].bind[1].text, "2001:db8::10");
	assert_int_equal(c->instances[CFG_BLUE].ports[0], 10443);
	assert_int_equal(c->instances[CFG_BLUE].ports[1], 18443);
	assert_string_equal(c->instances[CFG_BLUE].control_socket, "/run/sy/b.sock");
	assert_string_equal(c->instances[CFG_BLUE].pid_file, "/run/sy/b.pid");
	assert_int_equal(c->instances[CFG_GREEN].nbind, 1);
	assert_string_equal(c->instances[CFG_GREEN].bind[0].text, "0.0.0.0");
	assert_int_equal(c->instances[CFG_GREEN].ports[1], 28443);
	/* Not set for green: derived from state_dir. */
	assert_string_equal(c->instances[CFG_GREEN].control_socket, "/srv/state/green.sock");
	assert_string_equal(c->instances[CFG_GREEN].pid_file, "/srv/state/green.pid");

	assert_int_equal(c->proxy.threads, 2);
	assert_int_equal(c->proxy.ncpu_map, 2);
	assert_int_equal(c->proxy.cpu_map[1], 1);
	assert_int_equal(c->proxy.cpu_map[2], -1);
	assert_int_equal(c->proxy.maxconn, 1000);
	assert_int_equal(c->proxy.backlog, 512);
	assert_int_equal(c->proxy.accept, CFG_ACCEPT_SHARED);
	assert_int_equal(c->proxy.buffer_size, 32768);
	assert_int_equal(c->proxy.handshake_timeout_ms, 5000);
	assert_int_equal(c->proxy.connect_timeout_ms, 500);
	assert_int_equal(c->proxy.client_timeout_ms, 120000);
	assert_int_equal(c->proxy.server_timeout_ms, 90000);
	assert_int_equal(c->proxy.hard_stop_after_ms, 3600000);
	assert_string_equal(c->proxy.user, "nobody");
	assert_string_equal(c->proxy.group, "nogroup");
	assert_int_equal(c->proxy.access_log, 1);
	assert_int_equal(c->proxy.log, CFG_LOG_SYSLOG);
	assert_int_equal(c->proxy.log_level, LOG_LVL_DEBUG);

	assert_int_equal(c->tls.min_version, TLS1_3_VERSION);
	assert_string_equal(c->tls.ciphers, "ECDHE+AESGCM");
	assert_string_equal(c->tls.ciphersuites, "TLS_AES_256_GCM_SHA384");
	assert_string_equal(c->tls.groups, "X25519");
	assert_int_equal(c->tls.nalpn, 2);
	assert_string_equal(c->tls.alpn[0], "h2");
	assert_string_equal(c->tls.alpn[1], "http/1.1");
	assert_string_equal(c->tls.ticket_key_file, "/etc/sy/tickets");
	assert_int_equal(c->tls.session_cache, 1);

	assert_string_equal(c->certs.directory, "/srv/certs");
	assert_string_equal(c->certs.default_cert, "fallback.pem");
	assert_int_equal(c->certs.expired, CFG_EXPIRED_SKIP);
	assert_int_equal(c->certs.max_file_size, 2 << 20);
	assert_int_equal(c->certs.load_threads, 4);
	assert_int_equal(c->certs.cache_size, 2500);

	assert_int_equal(c->backend.balance, CFG_BALANCE_LEASTCONN);
	assert_int_equal(c->backend.proxy_protocol, CFG_PP_V2);
	assert_int_equal(c->backend.retries, 5);
	assert_int_equal(c->backend.nservers, 2);
	assert_string_equal(c->backend.servers[0].name, "app1");
	assert_string_equal(c->backend.servers[0].addr.text, "10.0.0.1");
	assert_int_equal(c->backend.servers[0].port, 8080);
	assert_string_equal(c->backend.servers[1].name, "server1");
	assert_int_equal(c->backend.servers[1].addr.family, AF_INET6);
	assert_string_equal(c->backend.servers[1].addr.text, "2001:db8::20");
	assert_int_equal(c->backend.servers[1].port, 8081);
	assert_int_equal(c->backend.fail_threshold, 7);
	assert_int_equal(c->backend.down_time_ms, 30000);
	assert_int_equal(c->backend.check_interval_ms, 0);
	assert_int_equal(c->backend.check_timeout_ms, 250);

	assert_string_equal(c->supervisor.control_socket, "/run/sy/ctl.sock");
	assert_int_equal(c->supervisor.control_mode, 0600);
	assert_string_equal(c->supervisor.state_dir, "/srv/state");
	assert_int_equal(c->supervisor.drain_timeout_ms, 600000);
	assert_int_equal(c->supervisor.hard_stop_after_ms, 7200000);
	assert_int_equal(c->supervisor.gate_sample, 50);
	assert_int_equal(c->supervisor.gate_changed_cap, 500);
	assert_int_equal(c->supervisor.gate_timeout_ms, 3000);
	assert_int_equal(c->supervisor.initial_live, CFG_GREEN);
	assert_string_equal(c->supervisor.proxy_binary, "/opt/sy/switchyard-proxy");
	assert_string_equal(c->supervisor.metrics_listen, "127.0.0.1:9100");
	assert_int_equal(c->supervisor.ticket_rotate_ms, 1800000);
	assert_int_equal(c->supervisor.filter_guard, 1);

	assert_string_equal(c->certsync.source_dir, "");
	assert_string_equal(c->certsync.source_command, "fetch --out {dir}");
	assert_int_equal(c->certsync.command_timeout_ms, 60000);
	assert_int_equal(c->certsync.keep_versions, 9);
	assert_int_equal(c->certsync.mass_delete_percent, 25);
	assert_int_equal(c->certsync.expiry_warn_days, 30);
	cfg_free(c);
}

static void check_defaults(const struct cfg *c)
{
	for (int k = 0; k < CFG_NCOLOURS; k++) {
		assert_int_equal(c->instances[k].nbind, 2);
		assert_string_equal(c->instances[k].bind[0].text, "0.0.0.0");
		assert_string_equal(c->instances[k].bind[1].text, "::");
	}
	assert_string_equal(c->instances[CFG_BLUE].control_socket, "/var/lib/switchyard/blue.sock");
	assert_string_equal(c->instances[CFG_GREEN].pid_file, "/var/lib/switchyard/green.pid");
	assert_int_equal(c->proxy.threads, 0);
	assert_int_equal(c->proxy.ncpu_map, 0);
	assert_int_equal(c->proxy.cpu_map[0], -1);
	assert_int_equal(c->proxy.maxconn, 20000);
	assert_int_equal(c->proxy.backlog, 4096);
	assert_int_equal(c->proxy.accept, CFG_ACCEPT_REUSEPORT);
	assert_int_equal(c->proxy.buffer_size, 16384);
	assert_int_equal(c->proxy.handshake_timeout_ms, 10000);
	assert_int_equal(c->proxy.connect_timeout_ms, 5000);
	assert_int_equal(c->proxy.client_timeout_ms, 60000);
	assert_int_equal(c->proxy.server_timeout_ms, 60000);
	assert_int_equal(c->proxy.hard_stop_after_ms, 0);
	assert_string_equal(c->proxy.user, "");
	assert_int_equal(c->proxy.access_log, 0);
	assert_int_equal(c->proxy.log, CFG_LOG_STDERR);
	assert_int_equal(c->proxy.log_level, LOG_LVL_INFO);
	assert_int_equal(c->tls.min_version, TLS1_2_VERSION);
	assert_string_equal(c->tls.groups, "X25519:P-256:P-384");
	assert_true(c->tls.ciphers[0] != '\0');
	assert_true(c->tls.ciphersuites[0] != '\0');
	assert_int_equal(c->tls.nalpn, 1);
	assert_string_equal(c->tls.alpn[0], "http/1.1");
	assert_string_equal(c->tls.ticket_key_file, "/var/lib/switchyard/ticket.keys");
	assert_int_equal(c->tls.session_cache, 0);
	assert_string_equal(c->certs.directory, "/etc/switchyard/certs");
	assert_string_equal(c->certs.default_cert, "");
	assert_int_equal(c->certs.expired, CFG_EXPIRED_SERVE);
	assert_int_equal(c->certs.max_file_size, 1 << 20);
	assert_int_equal(c->certs.load_threads, 0);
	assert_int_equal(c->certs.cache_size, CFG_CERTS_CACHE_SIZE_DEFAULT);
	assert_int_equal(c->backend.balance, CFG_BALANCE_ROUNDROBIN);
	assert_int_equal(c->backend.proxy_protocol, CFG_PP_NONE);
	assert_int_equal(c->backend.retries, 2);
	assert_int_equal(c->backend.fail_threshold, 3);
	assert_int_equal(c->backend.down_time_ms, 10000);
	assert_int_equal(c->backend.check_interval_ms, 2000);
	assert_int_equal(c->backend.check_timeout_ms, 1000);
	assert_string_equal(c->supervisor.control_socket, "/run/switchyard/switchyardd.sock");
	assert_int_equal(c->supervisor.control_mode, 0660);
	assert_string_equal(c->supervisor.state_dir, "/var/lib/switchyard");
	assert_int_equal(c->supervisor.drain_timeout_ms, 300000);
	assert_int_equal(c->supervisor.hard_stop_after_ms, 0);
	assert_int_equal(c->supervisor.gate_sample, 20);
	assert_int_equal(c->supervisor.gate_changed_cap, 200);
	assert_int_equal(c->supervisor.gate_timeout_ms, 2000);
	assert_int_equal(c->supervisor.initial_live, CFG_BLUE);
	assert_string_equal(c->supervisor.proxy_binary, "");
	assert_string_equal(c->supervisor.metrics_listen, "");
	assert_int_equal(c->supervisor.ticket_rotate_ms, 3600000);
	assert_int_equal(c->supervisor.filter_guard, 0);
	assert_string_equal(c->certsync.source_dir, "");
	assert_string_equal(c->certsync.source_command, "");
	assert_int_equal(c->certsync.command_timeout_ms, 300000);
	assert_int_equal(c->certsync.keep_versions, 5);
	assert_int_equal(c->certsync.mass_delete_percent, 10);
	assert_int_equal(c->certsync.expiry_warn_days, 14);
}

static void test_defaults(void **state)
{
	struct cfg *c = malloc(sizeof(*c));

	(void)state;
	assert_non_null(c);
	cfg_defaults(c);
	assert_int_equal(c->nlisteners, 0);
	assert_int_equal(c->backend.nservers, 0);
	check_defaults(c);
	free(c);
}

static void test_minimal_gets_defaults(void **state)
{
	struct cfg *c;

	(void)state;
	c = load_ok(BASE);
	check_defaults(c);
	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "listener0");
	assert_string_equal(c->listeners[0].addr.text, "0.0.0.0");
	assert_int_equal(c->instances[CFG_BLUE].ports[0], 8443);
	assert_int_equal(c->instances[CFG_GREEN].ports[0], 9443);
	assert_string_equal(c->backend.servers[0].name, "server0");
	cfg_free(c);
}

static void test_state_dir_derives(void **state)
{
	struct cfg *c;

	(void)state;
	c = load_ok("listeners: [{port: 443}]\n"
	            "instances:\n"
	            "  blue: {ports: [8443], pid_file: /tmp/b.pid}\n"
	            "  green: {ports: [9443], control_socket: /tmp/g.sock}\n"
	            "backend: {servers: [\"127.0.0.1:80\"]}\n"
	            "supervisor: {state_dir: /srv/sy}\n"
	            "tls: {ticket_key_file: \"\"}\n");
	assert_string_equal(c->instances[CFG_BLUE].control_socket, "/srv/sy/blue.sock");
	assert_string_equal(c->instances[CFG_BLUE].pid_file, "/tmp/b.pid");
	assert_string_equal(c->instances[CFG_GREEN].control_socket, "/tmp/g.sock");
	assert_string_equal(c->instances[CFG_GREEN].pid_file, "/srv/sy/green.pid");
	/* An explicit empty ticket file means "no tickets", not the default. */
	assert_string_equal(c->tls.ticket_key_file, "");
	cfg_free(c);
}

static void test_duplicate_top_level(void **state)
{
	(void)state;
	/* "instances:" again at line 8 is a duplicate even though it is null. */
	expect_errs(
	    BASE "instances:\n",
	    "t.yaml:8:1: key 'instances': duplicate key (first defined at line 3 column 1)\n");
}

static void test_unknown_key(void **state)
{
	(void)state;
	expect_errs(BASE "proxy:\n"
	                 "  thread: 4\n",
	            "t.yaml:9:3: key 'proxy.thread': unknown key\n");
	expect_errs(BASE "bogus: 1\n", "t.yaml:8:1: key 'bogus': unknown key\n");
	expect_errs("listeners:\n"
	            "  - port: 443\n"
	            "    adress: 10.0.0.1\n"
	            "instances:\n"
	            "  blue: {ports: [8443]}\n"
	            "  green: {ports: [9443]}\n"
	            "  red: {ports: [7443]}\n"
	            "backend:\n"
	            "  servers: [\"127.0.0.1:8080\"]\n",
	            "t.yaml:3:5: key 'listeners[0].adress': unknown key\n"
	            "t.yaml:7:3: key 'instances.red': unknown key\n");
}

static void test_wrong_type(void **state)
{
	(void)state;
	expect_errs(BASE "proxy:\n"
	                 "  threads: many\n",
	            "t.yaml:9:12: key 'proxy.threads': expected an integer, got 'many'\n");
	expect_errs(BASE "proxy: [1, 2]\n",
	            "t.yaml:8:8: key 'proxy': expected a mapping, got a sequence\n");
	expect_errs(BASE "proxy:\n"
	                 "  threads: {a: 1}\n",
	            "t.yaml:9:12: key 'proxy.threads': expected an integer, got a mapping\n");
	expect_errs(BASE "tls:\n"
	                 "  ciphers: [a, b]\n",
	            "t.yaml:9:12: key 'tls.ciphers': expected a string, got a sequence\n");
	expect_errs(BASE "proxy:\n"
	                 "  cpu_map: 3\n",
	            "t.yaml:9:12: key 'proxy.cpu_map': expected a sequence, got a scalar\n");
	expect_errs("- 1\n", "t.yaml:1:1: expected a mapping at the top level, got a sequence\n");
	expect_errs(BASE "proxy: {timeouts: {client: }}\n",
	            "t.yaml:8:28: key 'proxy.timeouts.client': expected a duration such as 500ms, "
	            "10s, 5m or 1h, got ''\n");
}

static void test_out_of_range(void **state)
{
	(void)state;
	expect_errs(
	    "listeners:\n"
	    "  - port: 0\n"
	    "  - port: 65536\n"
	    "instances:\n"
	    "  blue: {ports: [8443, 8444]}\n"
	    "  green: {ports: [9443, 99999]}\n"
	    "backend:\n"
	    "  servers: [\"127.0.0.1:8080\"]\n"
	    "proxy: {threads: 257, backlog: 0}\n"
	    "certsync: {mass_delete_percent: 101}\n",
	    "t.yaml:2:11: key 'listeners[0].port': 0 is out of range 1..65535\n"
	    "t.yaml:3:11: key 'listeners[1].port': 65536 is out of range 1..65535\n"
	    "t.yaml:6:25: key 'instances.green.ports[1]': 99999 is out of range 1..65535\n"
	    "t.yaml:9:18: key 'proxy.threads': 257 is out of range 0..256\n"
	    "t.yaml:9:32: key 'proxy.backlog': 0 is out of range 1..65535\n"
	    "t.yaml:10:33: key 'certsync.mass_delete_percent': 101 is out of range 0..100\n");
	expect_errs(BASE "proxy: {threads: -1}\n",
	            "t.yaml:8:18: key 'proxy.threads': -1 is out of range 0..256\n");
}

static void test_duplicate_key(void **state)
{
	(void)state;
	expect_errs(
	    BASE "proxy:\n"
	         "  threads: 2\n"
	         "  maxconn: 10\n"
	         "  threads: 4\n",
	    "t.yaml:11:3: key 'proxy.threads': duplicate key (first defined at line 9 column "
	    "3)\n");
}

static void test_bad_address(void **state)
{
	(void)state;
	expect_errs("listeners:\n"
	            "  - {port: 443, address: 10.0.0.256}\n"
	            "instances:\n"
	            "  blue: {ports: [8443], bind: [0.0.0.0, localhost]}\n"
	            "  green: {ports: [9443], bind: \"fe80::1::2\"}\n"
	            "backend:\n"
	            "  servers: [\"127.0.0.1:8080\", {address: app.local, port: 80}]\n",
	            "t.yaml:2:26: key 'listeners[0].address': '10.0.0.256' is not an IPv4 or IPv6 "
	            "address\n"
	            "t.yaml:4:41: key 'instances.blue.bind[1]': 'localhost' is not an IPv4 or IPv6 "
	            "address\n"
	            "t.yaml:5:32: key 'instances.green.bind': 'fe80::1::2' is not an IPv4 or IPv6 "
	            "address\n"
	            "t.yaml:7:41: key 'backend.servers[1].address': 'app.local' is not an IPv4 or "
	            "IPv6 address\n");
}

static void test_bad_enum(void **state)
{
	(void)state;
	expect_errs(BASE "backend2: 1\n"
	                 "certificates: {expired: maybe}\n"
	                 "supervisor: {initial_live: red}\n"
	                 "tls: {min_version: \"1.1\"}\n"
	                 "proxy: {log: file, log_level: loud, accept: bogus}\n",
	            "t.yaml:8:1: key 'backend2': unknown key\n"
	            "t.yaml:9:25: key 'certificates.expired': expected one of serve, skip, got "
	            "'maybe'\n"
	            "t.yaml:10:28: key 'supervisor.initial_live': expected one of blue, green, got "
	            "'red'\n"
	            "t.yaml:11:20: key 'tls.min_version': expected \"1.2\" or \"1.3\", got '1.1'\n"
	            "t.yaml:12:14: key 'proxy.log': expected one of stderr, syslog, got 'file'\n"
	            "t.yaml:12:31: key 'proxy.log_level': expected one of error, warning, info, "
	            "debug, got 'loud'\n"
	            "t.yaml:12:45: key 'proxy.accept': expected one of shared, reuseport, got "
	            "'bogus'\n");
	expect_errs(
	    "listeners: [{port: 443}]\n"
	    "instances: {blue: {ports: [1]}, green: {ports: [2]}}\n"
	    "backend:\n"
	    "  servers: [\"127.0.0.1:8080\"]\n"
	    "  balance: random\n"
	    "  proxy_protocol: v3\n",
	    "t.yaml:5:12: key 'backend.balance': expected one of roundrobin, leastconn, got "
	    "'random'\n"
	    "t.yaml:6:19: key 'backend.proxy_protocol': expected one of none, v1, v2, got "
	    "'v3'\n");
}

static void test_syntax_error(void **state)
{
	(void)state;
	expect_errs(
	    "listeners:\n"
	    "  - port: 443\n"
	    " bad indent: 1\n",
	    "t.yaml:3:2: YAML syntax error: did not find expected key (while parsing a block "
	    "mapping at line 1 column 1)\n");
	expect_errs(
	    "a: [1, 2\n"
	    "b: 3\n",
	    "t.yaml:2:2: YAML syntax error: did not find expected ',' or ']' (while parsing "
	    "a flow sequence at line 1 column 4)\n");
	expect_errs(
	    "a: \"unterminated\n",
	    "t.yaml:2:1: YAML syntax error: found unexpected end of stream (while scanning a "
	    "quoted scalar at line 1 column 4)\n");
	expect_errs(
	    "a: b\n\tc: d\n",
	    "t.yaml:2:1: YAML syntax error: found a tab character that violates indentation "
	    "(while scanning a plain scalar at line 1 column 4)\n");
}

static void test_bad_utf8(void **state)
{
	(void)state;
	expect_errs("listeners: []\n"
	            "x: \xff\n",
	            "t.yaml:2:4: YAML syntax error: invalid leading UTF-8 octet\n");
}

static void test_empty(void **state)
{
	(void)state;
	expect_errs("", "t.yaml:1:1: the configuration is empty\n");
	expect_errs("# only a comment\n", "t.yaml:1:1: the configuration is empty\n");
	expect_errs("---\n...\n", "t.yaml:1:1: the configuration is empty\n");
}

static void test_two_documents(void **state)
{
	(void)state;
	expect_errs(BASE "---\n"
	                 "proxy: {}\n",
	            "t.yaml:9:1: only one YAML document is allowed, found a second one\n");
}

static void test_missing_required(void **state)
{
	(void)state;
	expect_errs("proxy: {threads: 1}\n",
	            "t.yaml:1:1: key 'listeners': at least one listener is required\n"
	            "t.yaml:1:1: key 'instances.blue.ports': missing required key (one port per "
	            "listener)\n"
	            "t.yaml:1:1: key 'instances.green.ports': missing required key (one port per "
	            "listener)\n"
	            "t.yaml:1:1: key 'backend.servers': at least one backend server is required\n");
	expect_errs(
	    "listeners: []\n"
	    "instances:\n"
	    "  blue: {bind: \"::\"}\n"
	    "backend: {servers: []}\n",
	    "t.yaml:1:12: key 'listeners': at least one listener is required\n"
	    "t.yaml:3:3: key 'instances.green.ports': missing required key (one port per "
	    "listener)\n"
	    "t.yaml:3:9: key 'instances.blue.ports': missing required key (one port per "
	    "listener)\n"
	    "t.yaml:4:20: key 'backend.servers': at least one backend server is required\n");
	expect_errs("listeners:\n"
	            "  - {address: 10.0.0.1}\n"
	            "instances: {blue: {ports: [1]}, green: {ports: [2]}}\n"
	            "backend:\n"
	            "  servers:\n"
	            "    - {name: a, port: 80}\n",
	            "t.yaml:2:5: key 'listeners[0].port': missing required key\n"
	            "t.yaml:6:7: key 'backend.servers[0].address': missing required key\n");
}

static void test_ports_count(void **state)
{
	(void)state;
	expect_errs(
	    "listeners:\n"
	    "  - port: 443\n"
	    "  - port: 80\n"
	    "instances:\n"
	    "  blue: {ports: [8443]}\n"
	    "  green: {ports: [9443, 9080, 9081]}\n"
	    "backend:\n"
	    "  servers: [\"127.0.0.1:8080\"]\n",
	    "t.yaml:5:17: key 'instances.blue.ports': 1 port for 2 listeners: give one port "
	    "per listener, in the same order\n"
	    "t.yaml:6:18: key 'instances.green.ports': 3 ports for 2 listeners: give one "
	    "port per listener, in the same order\n");
}

static void test_port_collisions(void **state)
{
	struct cfg *c;

	(void)state;
	/* blue vs green, blue vs a listener, and a port twice in one instance. */
	expect_errs("listeners:\n"
	            "  - port: 443\n"
	            "  - port: 80\n"
	            "instances:\n"
	            "  blue: {ports: [8443, 443]}\n"
	            "  green: {ports: [8443, 9080]}\n"
	            "backend:\n"
	            "  servers: [\"127.0.0.1:8080\"]\n",
	            "t.yaml:5:24: key 'instances.blue.ports[1]': port 443 collides with "
	            "'listeners[0].port'\n"
	            "t.yaml:6:19: key 'instances.green.ports[0]': port 8443 collides with "
	            "'instances.blue.ports[0]'\n");
	/* The metrics endpoint counts too: with an instance port always, with
	 * a listener only on an overlapping address. */
	expect_errs("listeners: [{port: 443, address: 192.0.2.1}, {port: 80}]\n"
	            "instances: {blue: {ports: [8443, 8080]}, green: {ports: [9443, 9080]}}\n"
	            "backend: {servers: [\"127.0.0.1:8080\"]}\n"
	            "supervisor: {metrics_listen: \"127.0.0.1:9080\"}\n",
	            "t.yaml:4:30: key 'supervisor.metrics_listen': port 9080 collides with "
	            "'instances.green.ports[1]'\n");
	expect_errs(BASE "supervisor: {metrics_listen: \"127.0.0.1:443\"}\n",
	            "t.yaml:8:30: key 'supervisor.metrics_listen': port 443 collides with "
	            "'listeners[0].port'\n");
	c = load_ok("listeners: [{port: 443, address: 192.0.2.1}]\n"
	            "instances: {blue: {ports: [8443]}, green: {ports: [9443]}}\n"
	            "backend: {servers: [\"127.0.0.1:8080\"]}\n"
	            "supervisor: {metrics_listen: \"127.0.0.1:443\"}\n");
	cfg_free(c);
	expect_errs("listeners: [{port: 443}]\n"
	            "instances:\n"
	            "  blue: {ports: 8443}\n"
	            "  green: {ports: 8443}\n"
	            "backend:\n"
	            "  servers: [\"127.0.0.1:8080\"]\n",
	            "t.yaml:4:18: key 'instances.green.ports': port 8443 collides with "
	            "'instances.blue.ports'\n");
}

static void test_listener_overlap(void **state)
{
	struct cfg *c;

	(void)state;
	/* Distinct addresses, or different families, may share a port. */
	c = load_ok("listeners:\n"
	            "  - {address: 192.0.2.1, port: 443}\n"
	            "  - {address: 192.0.2.2, port: 443}\n"
	            "  - {address: \"::\", port: 443}\n"
	            "  - {address: 0.0.0.0, port: 80}\n"
	            "instances:\n"
	            "  blue: {ports: [8001, 8002, 8003, 8004]}\n"
	            "  green: {ports: [9001, 9002, 9003, 9004]}\n"
	            "backend: {servers: [\"127.0.0.1:8080\"]}\n");
	assert_int_equal(c->nlisteners, 4);
	cfg_free(c);
	/* The wildcard overlaps every address of its family. */
	expect_errs("listeners:\n"
	            "  - {address: 192.0.2.1, port: 443}\n"
	            "  - {address: 0.0.0.0, port: 443}\n"
	            "  - {address: \"2001:db8::1\", port: 443}\n"
	            "  - {address: \"2001:db8::1\", port: 443}\n"
	            "instances:\n"
	            "  blue: {ports: [8001, 8002, 8003, 8004]}\n"
	            "  green: {ports: [9001, 9002, 9003, 9004]}\n"
	            "backend: {servers: [\"127.0.0.1:8080\"]}\n",
	            "t.yaml:3:30: key 'listeners[1].port': port 443 collides with "
	            "'listeners[0].port'\n"
	            "t.yaml:5:36: key 'listeners[3].port': port 443 collides with "
	            "'listeners[2].port'\n");
}

static void test_many_errors_one_run(void **state)
{
	static const char yaml[] = "listeners:\n"                                        /* 1 */
	                           "  - {port: 443, maxconn: lots}\n"                    /* 2 */
	                           "instances:\n"                                        /* 3 */
	                           "  blue: {ports: [8443]}\n"                           /* 4 */
	                           "  green: {ports: [8443]}\n"                          /* 5 */
	                           "proxy:\n"                                            /* 6 */
	                           "  threads: x\n"                                      /* 7 */
	                           "  timeouts: {client: 5d}\n"                          /* 8 */
	                           "tls: {alpn: [h2, h2, h2, h2, h2, h2, h2, h2, h2]}\n" /* 9 */
	                           "supervisor: {control_mode: rw}\n"                    /* 10 */
	                           "unknown: {}\n";                                      /* 11 */
	char *errs = NULL;
	int n = 0;

	(void)state;
	assert_null(load(yaml, &errs, &n));
	assert_int_equal(n, 8);
	assert_string_equal(
	    errs,
	    "t.yaml:1:1: key 'backend.servers': at least one backend server is required\n"
	    "t.yaml:2:26: key 'listeners[0].maxconn': expected an integer, got 'lots'\n"
	    "t.yaml:5:19: key 'instances.green.ports[0]': port 8443 collides with "
	    "'instances.blue.ports[0]'\n"
	    "t.yaml:7:12: key 'proxy.threads': expected an integer, got 'x'\n"
	    "t.yaml:8:22: key 'proxy.timeouts.client': expected a duration such as 500ms, 10s, 5m "
	    "or 1h, got '5d'\n"
	    "t.yaml:9:13: key 'tls.alpn': too many ALPN protocols (at most 8)\n"
	    "t.yaml:10:28: key 'supervisor.control_mode': expected an octal mode such as \"0660\", "
	    "got 'rw'\n"
	    "t.yaml:11:1: key 'unknown': unknown key\n");
	free(errs);
}

static void test_too_many_listeners(void **state)
{
	char yaml[2048];
	size_t n;

	(void)state;
	n = (size_t)snprintf(yaml, sizeof(yaml), "listeners:\n");
	for (int i = 0; i < CFG_MAX_LISTENERS + 1; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "  - port: %d\n", 1000 + i);
	snprintf(yaml + n, sizeof(yaml) - n, "bogus: 1\n");
	{
		char *errs = NULL;

		assert_null(load(yaml, &errs, NULL));
		assert_non_null(strstr(errs, "t.yaml:2:3: key 'listeners': too many listeners (at "
		                             "most 16)\n"));
		assert_non_null(strstr(errs, "t.yaml:19:1: key 'bogus': unknown key\n"));
		free(errs);
	}
}

static void test_paths(void **state)
{
	char longdir[200];

	(void)state;
	expect_errs(BASE "certsync:\n"
	                 "  source: {directory: /a, command: b}\n"
	                 "certificates: {default: sub/x.pem, directory: \"\"}\n",
	            "t.yaml:9:36: key 'certsync.source': set either 'directory' or 'command', not "
	            "both\n"
	            "t.yaml:10:25: key 'certificates.default': 'sub/x.pem' must be a file name "
	            "inside the certificate directory, without '/'\n"
	            "t.yaml:10:47: key 'certificates.directory': must not be empty\n");
	expect_errs("listeners: [{port: 443}]\n"
	            "instances:\n"
	            "  blue: {ports: [1], control_socket: /run/x.sock}\n"
	            "  green: {ports: [2], control_socket: /run/x.sock}\n"
	            "backend: {servers: [\"127.0.0.1:80\"]}\n",
	            "t.yaml:4:39: key 'instances.green.control_socket': '/run/x.sock' is also "
	            "blue's control socket\n");
	memset(longdir, 'd', sizeof(longdir));
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = '\0';
	{
		char yaml[1024], want[1024];

		snprintf(yaml, sizeof(yaml), BASE "supervisor: {state_dir: %s}\n", longdir);
		snprintf(
		    want, sizeof(want),
		    "t.yaml:8:25: key 'supervisor.state_dir': too long: the paths derived from "
		    "it (e.g. %s/green.sock) do not fit a unix socket path\n",
		    longdir);
		expect_errs(yaml, want);
		snprintf(yaml, sizeof(yaml), BASE "supervisor: {control_socket: %s}\n", longdir);
		expect_errs(yaml, "t.yaml:8:30: key 'supervisor.control_socket': too long (at most "
		                  "107 bytes for a unix socket path)\n");
	}
}

static void test_nul_and_key_types(void **state)
{
	(void)state;
	expect_errs(BASE "proxy: {user: \"ro\\0ot\"}\n",
	            "t.yaml:8:15: key 'proxy.user': value contains a NUL character\n");
	expect_errs(BASE "proxy: {? [a] : 1}\n",
	            "t.yaml:8:11: key 'proxy': a key must be a scalar, got a sequence\n");
	expect_errs(BASE "proxy: {user: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}\n",
	            "t.yaml:8:15: key 'proxy.user': too long (at most 31 bytes)\n");
}

static void test_null_sections(void **state)
{
	struct cfg *c;

	(void)state;
	/* "proxy:" with nothing under it keeps every default. */
	c = load_ok(BASE "proxy:\n"
	                 "tls: ~\n"
	                 "certsync: {source: {directory: ~}}\n");
	assert_int_equal(c->proxy.maxconn, 20000);
	assert_string_equal(c->certsync.source_dir, "");
	cfg_free(c);
}

static void test_listener_names(void **state)
{
	(void)state;
	expect_errs("listeners:\n"
	            "  - {name: web, port: 443}\n"
	            "  - {name: web, port: 80}\n"
	            "  - {name: \"a b\", port: 81}\n"
	            "instances:\n"
	            "  blue: {ports: [1, 2, 3]}\n"
	            "  green: {ports: [4, 5, 6]}\n"
	            "backend: {servers: [\"127.0.0.1:80\"]}\n",
	            "t.yaml:3:5: key 'listeners[1].name': name 'web' is already used by "
	            "listeners[0]\n"
	            "t.yaml:4:12: key 'listeners[2].name': 'a b' is not a valid name (1..31 "
	            "characters of A-Z a-z 0-9 . _ -)\n");
}

static void test_colours(void **state)
{
	enum cfg_colour c = CFG_BLUE;

	(void)state;
	assert_string_equal(cfg_colour_name(CFG_BLUE), "blue");
	assert_string_equal(cfg_colour_name(CFG_GREEN), "green");
	assert_int_equal(cfg_colour_parse("green", &c), 0);
	assert_int_equal(c, CFG_GREEN);
	assert_int_equal(cfg_colour_parse("blue", &c), 0);
	assert_int_equal(c, CFG_BLUE);
	assert_int_equal(cfg_colour_parse("red", &c), -1);
	assert_int_equal(cfg_colour_parse("Blue", &c), -1);
	assert_int_equal(cfg_colour_parse(NULL, &c), -1);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/sy-test-cfg-XXXXXX";
	char *errs = NULL;
	int n = 0, fd;
	struct cfg *c;

	(void)state;
	c = cfg_load("/nonexistent/switchyard.yaml", &errs, &n);
	assert_null(c);
	assert_int_equal(n, 1);
	assert_string_equal(
	    errs, "/nonexistent/switchyard.yaml: cannot open: No such file or directory\n");
	free(errs);
	c = cfg_load("/", &errs, &n);
	assert_null(c);
	assert_string_equal(errs, "/: cannot open: Is a directory\n");
	free(errs);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, BASE, strlen(BASE)), (ssize_t)strlen(BASE));
	close(fd);
	c = cfg_load(path, &errs, &n);
	assert_non_null(c);
	assert_null(errs);
	assert_string_equal(c->path, path);
	cfg_free(c);
	c = cfg_load_report(path);
	assert_non_null(c);
	cfg_free(c);
	unlink(path);
	cfg_free(NULL);
	/* errs and nerrs are optional. */
	assert_null(cfg_load("/nonexistent/x", NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_valid),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_minimal_gets_defaults),
	    cmocka_unit_test(test_state_dir_derives),
	    cmocka_unit_test(test_duplicate_top_level),
	    cmocka_unit_test(test_unknown_key),
	    cmocka_unit_test(test_wrong_type),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_duplicate_key),
	    cmocka_unit_test(test_bad_address),
	    cmocka_unit_test(test_bad_enum),
	    cmocka_unit_test(test_syntax_error),
	    cmocka_unit_test(test_bad_utf8),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_two_documents),
	    cmocka_unit_test(test_missing_required),
	    cmocka_unit_test(test_ports_count),
	    cmocka_unit_test(test_port_collisions),
	    cmocka_unit_test(test_listener_overlap),
	    cmocka_unit_test(test_many_errors_one_run),
	    cmocka_unit_test(test_too_many_listeners),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_nul_and_key_types),
	    cmocka_unit_test(test_null_sections),
	    cmocka_unit_test(test_listener_names),
	    cmocka_unit_test(test_colours),
	    cmocka_unit_test(test_load_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
