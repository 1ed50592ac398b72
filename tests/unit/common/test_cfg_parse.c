/*
 * Unit tests for the value syntaxes of the configuration (common/cfg_parse.c
 * and the key handlers in cfg_keys.c): durations, sizes, booleans, IPv6
 * addresses, server strings, octal modes, TLS versions and strings, ALPN
 * lists and cpu_map, each with its exact error text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>

#include <cmocka.h>

#include "common/cfg.h"
#include "tests/unit/common/cfg_helpers.h"

/* Loads BASE plus "proxy: {timeouts: {client: VALUE}}" and returns the ms. */
static long long client_timeout(const char *value, char **errs)
{
	char yaml[512];
	struct cfg *c;
	long long v;

	snprintf(yaml, sizeof(yaml), BASE "proxy: {timeouts: {client: %s}}\n", value);
	c = load(yaml, errs, NULL);
	if (c == NULL)
		return -1;
	v = c->proxy.client_timeout_ms;
	cfg_free(c);
	return v;
}

static void test_durations(void **state)
{
	static const struct {
		const char *in;
		long long ms;
	} ok[] = {{"500ms", 500},    {"10s", 10000}, {"5m", 300000},
	          {"1h", 3600000},   {"7", 7000},    {"\"10 s\"", 10000},
	          {"\"30\"", 30000}, {"1ms", 1},     {"1193h", 4294800000LL}};
	static const char *const bad[] = {"10y", "-1", "1.5s", "s", "10sec", "999999h", "0"};
	char *errs;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		errs = NULL;
		assert_int_equal(client_timeout(ok[i].in, &errs), ok[i].ms);
		assert_null(errs);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errs = NULL;
		assert_int_equal(client_timeout(bad[i], &errs), -1);
		assert_non_null(errs);
		assert_non_null(strstr(errs, "t.yaml:8:28: key 'proxy.timeouts.client': "));
		free(errs);
	}
	errs = NULL;
	client_timeout("999999h", &errs);
	assert_string_equal(errs, "t.yaml:8:28: key 'proxy.timeouts.client': 999999h is above the "
	                          "maximum of 4294967295ms (about 49 days)\n");
	free(errs);
	errs = NULL;
	client_timeout("0", &errs);
	assert_string_equal(
	    errs, "t.yaml:8:28: key 'proxy.timeouts.client': 0 is below the minimum of 1ms\n");
	free(errs);
}

static long long buffer_size(const char *value, char **errs)
{
	char yaml[512];
	struct cfg *c;
	long long v;

	snprintf(yaml, sizeof(yaml), BASE "proxy: {buffer_size: %s}\n", value);
	c = load(yaml, errs, NULL);
	if (c == NULL)
		return -1;
	v = c->proxy.buffer_size;
	cfg_free(c);
	return v;
}

static void test_sizes(void **state)
{
	static const struct {
		const char *in;
		long long bytes;
	} ok[] = {{"2048", 2048},  {"16k", 16384},    {"16K", 16384},      {"16KiB", 16384},
	          {"1M", 1 << 20}, {"1MiB", 1 << 20}, {"\"64 k\"", 65536}, {"16M", 16 << 20}};
	static const char *const bad[] = {"12x", "1.5M", "-1", "k", "16kb", "1G", "1023"};
	char *errs;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		errs = NULL;
		assert_int_equal(buffer_size(ok[i].in, &errs), ok[i].bytes);
		assert_null(errs);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errs = NULL;
		assert_int_equal(buffer_size(bad[i], &errs), -1);
		assert_non_null(strstr(errs, "t.yaml:8:22: key 'proxy.buffer_size': "));
		free(errs);
	}
	errs = NULL;
	buffer_size("1G", &errs);
	assert_string_equal(errs, "t.yaml:8:22: key 'proxy.buffer_size': 1G is out of range "
	                          "1024..16777216 bytes\n");
	free(errs);
}

static void test_booleans(void **state)
{
	static const struct {
		const char *in;
		int v;
	} ok[] = {{"true", 1}, {"false", 0}, {"yes", 1},  {"no", 0},
	          {"on", 1},   {"off", 0},   {"True", 1}, {"OFF", 0}};
	char yaml[512];
	struct cfg *c;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), BASE "proxy: {access_log: %s}\n", ok[i].in);
		c = load_ok(yaml);
		assert_int_equal(c->proxy.access_log, ok[i].v);
		cfg_free(c);
	}
	expect_errs(BASE "supervisor: {filter_guard: maybe}\n",
	            "t.yaml:8:28: key 'supervisor.filter_guard': expected a boolean (true/false, "
	            "yes/no, on/off), got 'maybe'\n");
}

static void test_ipv6(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct cfg *c;
	char buf[INET6_ADDRSTRLEN];

	(void)state;
	c = load_ok("listeners:\n"
	            "  - {address: \"2001:DB8:0:0::1\", port: 443}\n"
	            "  - {address: \"[::1]\", port: 443}\n"
	            "instances:\n"
	            "  blue: {ports: [8443, 8444], bind: \"::\"}\n"
	            "  green: {ports: [9443, 9444], bind: [\"::1\", 127.0.0.1]}\n"
	            "backend:\n"
	            "  servers:\n"
	            "    - \"[2001:db8::2]:8080\"\n"
	            "    - {address: \"fe80::1\", port: 80}\n"
	            "    - \"10.1.2.3:81\"\n");
	assert_int_equal(c->listeners[0].addr.family, AF_INET6);
	assert_string_equal(c->listeners[0].addr.text, "2001:db8::1");
	assert_string_equal(c->listeners[1].addr.text, "::1");
	assert_int_equal(c->instances[CFG_BLUE].nbind, 1);
	assert_string_equal(c->instances[CFG_BLUE].bind[0].text, "::");
	assert_int_equal(c->instances[CFG_GREEN].bind[1].family, AF_INET);
	assert_string_equal(c->backend.servers[0].addr.text, "2001:db8::2");
	assert_int_equal(c->backend.servers[0].port, 8080);
	assert_string_equal(c->backend.servers[1].addr.text, "fe80::1");

	assert_int_equal(cfg_sockaddr(&c->listeners[0].addr, 443, &ss), sizeof(*sin6));
	assert_int_equal(sin6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(sin6->sin6_port), 443);
	inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf));
	assert_string_equal(buf, "2001:db8::1");
	assert_int_equal(cfg_sockaddr(&c->backend.servers[2].addr, 81, &ss), sizeof(*sin));
	assert_int_equal(sin->sin_family, AF_INET);
	assert_int_equal(ntohs(sin->sin_port), 81);
	assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x0a010203);
	cfg_free(c);
}

static void test_server_strings(void **state)
{
	(void)state;
	expect_errs("listeners: [{port: 443}]\n"
	            "instances: {blue: {ports: [1]}, green: {ports: [2]}}\n"
	            "backend:\n"
	            "  servers:\n"
	            "    - \"::1:80\"\n"
	            "    - 10.0.0.1\n"
	            "    - \"10.0.0.1:0\"\n"
	            "    - \"[10.0.0.1]:80\"\n"
	            "    - [a]\n",
	            "t.yaml:5:7: key 'backend.servers[0]': bad server '::1:80': an IPv6 address "
	            "needs brackets: [ADDRESS]:PORT\n"
	            "t.yaml:6:7: key 'backend.servers[1]': bad server '10.0.0.1': expected "
	            "ADDRESS:PORT or [IPV6]:PORT\n"
	            "t.yaml:7:7: key 'backend.servers[2]': bad server '10.0.0.1:0': the port must "
	            "be an integer 1..65535\n"
	            "t.yaml:8:7: key 'backend.servers[3]': bad server '[10.0.0.1]:80': not an IPv4 "
	            "or IPv6 address\n"
	            "t.yaml:9:7: key 'backend.servers[4]': expected a mapping or an "
	            "\"ADDRESS:PORT\" string, got a sequence\n");
}

static void test_control_mode(void **state)
{
	static const struct {
		const char *in;
		unsigned mode;
	} ok[] = {{"\"0660\"", 0660}, {"0600", 0600}, {"644", 0644}, {"\"0o640\"", 0640}};
	char yaml[512];
	struct cfg *c;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), BASE "supervisor: {control_mode: %s}\n", ok[i].in);
		c = load_ok(yaml);
		assert_int_equal(c->supervisor.control_mode, ok[i].mode);
		cfg_free(c);
	}
	expect_errs(BASE "supervisor: {control_mode: \"0999\"}\n",
	            "t.yaml:8:28: key 'supervisor.control_mode': expected an octal mode such as "
	            "\"0660\", got '0999'\n");
}

static void test_tls_versions(void **state)
{
	static const struct {
		const char *in;
		int v;
	} ok[] = {{"\"1.2\"", TLS1_2_VERSION},
	          {"1.3", TLS1_3_VERSION},
	          {"TLSv1.2", TLS1_2_VERSION},
	          {"tlsv1.3", TLS1_3_VERSION}};
	char yaml[512];
	struct cfg *c;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(yaml, sizeof(yaml), BASE "tls: {min_version: %s}\n", ok[i].in);
		c = load_ok(yaml);
		assert_int_equal(c->tls.min_version, ok[i].v);
		cfg_free(c);
	}
}

static void test_tls_strings_checked(void **state)
{
	(void)state;
	expect_errs(
	    BASE "tls:\n"
	         "  ciphers: NOT-A-CIPHER\n"
	         "  groups: \"X25519:P-999\"\n",
	    "t.yaml:9:12: key 'tls.ciphers': OpenSSL accepts no cipher in 'NOT-A-CIPHER'\n"
	    "t.yaml:10:11: key 'tls.groups': OpenSSL rejects the group list 'X25519:P-999'\n");
}

static void test_alpn(void **state)
{
	struct cfg *c;

	(void)state;
	c = load_ok(BASE "tls: {alpn: h2}\n");
	assert_int_equal(c->tls.nalpn, 1);
	assert_string_equal(c->tls.alpn[0], "h2");
	cfg_free(c);
	c = load_ok(BASE "tls: {alpn: []}\n");
	assert_int_equal(c->tls.nalpn, 0);
	cfg_free(c);
}

static void test_cpu_map(void **state)
{
	(void)state;
	expect_errs(BASE "proxy:\n"
	                 "  threads: 2\n"
	                 "  cpu_map: [0, 1, 1024]\n",
	            "t.yaml:10:12: key 'proxy.cpu_map': 3 entries for 2 threads\n"
	            "t.yaml:10:19: key 'proxy.cpu_map[2]': 1024 is out of range -1..1023\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),      cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_booleans),       cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_server_strings), cmocka_unit_test(test_control_mode),
	    cmocka_unit_test(test_tls_versions),   cmocka_unit_test(test_tls_strings_checked),
	    cmocka_unit_test(test_alpn),           cmocka_unit_test(test_cpu_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
