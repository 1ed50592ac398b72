/*
 * Unit tests for the key table (common/cfg_keys.c, cfg_walk.c): every key
 * is listed once with a default or "required" and a class, the defaults
 * come from the table, cfg_diff names exactly the keys that changed with
 * their class, and cfg_load_lenient still finds the control socket in a
 * broken file. docs/configuration.md is compared with the same table by
 * tests/integration/15-config-keys.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cfg.h"

#include "tests/unit/common/cfg_helpers.h"

struct seen {
	int n, required, live, flip, restart;
	int accept_ok, listeners_required, servers_item;
};

static void count_key(void *arg, const char *key, const char *def, enum cfg_apply apply)
{
	struct seen *s = arg;

	s->n++;
	s->required += def == NULL;
	s->live += apply == CFG_APPLY_LIVE;
	s->flip += apply == CFG_APPLY_FLIP;
	s->restart += apply == CFG_APPLY_RESTART;
	assert_non_null(key);
	assert_true(key[0] != '\0');
	if (strcmp(key, "proxy.accept") == 0)
		s->accept_ok = def != NULL && strcmp(def, "reuseport") == 0;
	if (strcmp(key, "listeners") == 0)
		s->listeners_required = def == NULL && apply == CFG_APPLY_RESTART;
	if (strcmp(key, "backend.servers[].address") == 0)
		s->servers_item = 1;
}

static void test_table_listing(void **state)
{
	struct seen s;

	(void)state;
	memset(&s, 0, sizeof(s));
	cfg_keys_each(count_key, &s);
	assert_true(s.n > 60);
	assert_int_equal(s.live + s.flip + s.restart, s.n);
	assert_true(s.live > 0 && s.flip > 0 && s.restart > 0);
	/* The default that drifted once: cfg.h said shared. */
	assert_true(s.accept_ok);
	assert_true(s.listeners_required);
	assert_true(s.servers_item);
	assert_string_equal(cfg_apply_name(CFG_APPLY_LIVE), "live");
	assert_string_equal(cfg_apply_name(CFG_APPLY_FLIP), "flip");
	assert_string_equal(cfg_apply_name(CFG_APPLY_RESTART), "restart");
}

/* The defaults cfg_defaults() gives are the table's, parsed by the key's
 * own type. */
static void test_defaults_from_table(void **state)
{
	struct cfg *c = malloc(sizeof(*c));

	(void)state;
	assert_non_null(c);
	cfg_defaults(c);
	assert_int_equal(c->proxy.accept, CFG_ACCEPT_REUSEPORT);
	assert_int_equal(c->proxy.handshake_timeout_ms, 10000);
	assert_int_equal(c->certs.max_file_size, 1u << 20);
	assert_int_equal(c->certs.cache_size, CFG_CERTS_CACHE_SIZE_DEFAULT);
	assert_int_equal(c->supervisor.control_mode, 0660);
	assert_int_equal(c->supervisor.drain_timeout_ms, 300000);
	assert_int_equal(c->instances[CFG_GREEN].nbind, 2);
	assert_string_equal(c->instances[CFG_GREEN].bind[1].text, "::");
	assert_int_equal(c->tls.nalpn, 1);
	assert_string_equal(c->tls.alpn[0], "http/1.1");
	assert_string_equal(c->instances[CFG_BLUE].control_socket, "/var/lib/switchyard/blue.sock");
	assert_int_equal(c->proxy.cpu_map[0], -1);
	assert_int_equal(c->proxy.ncpu_map, 0);
	free(c);
}

/* Item defaults apply to each listener and server. */
static void test_item_defaults(void **state)
{
	struct cfg *c = load_ok(BASE);

	(void)state;
	assert_string_equal(c->listeners[0].addr.text, "0.0.0.0");
	assert_string_equal(c->listeners[0].name, "listener0");
	assert_string_equal(c->backend.servers[0].name, "server0");
	cfg_free(c);
}

static int find(const struct cfg_change *ch, int n, const char *key, enum cfg_apply *apply)
{
	for (int i = 0; i < n; i++) {
		if (strcmp(ch[i].key, key) == 0) {
			*apply = ch[i].apply;
			return 1;
		}
	}
	return 0;
}

static void test_diff(void **state)
{
	struct cfg *a = load_ok(BASE);
	struct cfg *b = load_ok(BASE "supervisor:\n  drain_timeout: 45s\n"
	                             "certificates:\n  directory: /srv/certs\n"
	                             "netfilter:\n  backend: nftables\n"
	                             "certsync:\n  mass_delete_percent: 50\n");
	struct cfg *same = load_ok(BASE "proxy:\n  accept: reuseport\n");
	struct cfg_change ch[16];
	enum cfg_apply ap;
	int n;

	(void)state;
	assert_int_equal(cfg_diff(a, same, ch, 16), 0);
	n = cfg_diff(a, b, ch, 16);
	assert_int_equal(n, 4);
	assert_true(find(ch, n, "supervisor.drain_timeout", &ap));
	assert_int_equal(ap, CFG_APPLY_LIVE);
	assert_true(find(ch, n, "certificates.directory", &ap));
	assert_int_equal(ap, CFG_APPLY_FLIP);
	assert_true(find(ch, n, "netfilter.backend", &ap));
	assert_int_equal(ap, CFG_APPLY_RESTART);
	assert_true(find(ch, n, "certsync.mass_delete_percent", &ap));
	assert_int_equal(ap, CFG_APPLY_LIVE);
	/* More changes than room: counted, the first ones stored. */
	assert_int_equal(cfg_diff(a, b, ch, 1), 4);
	cfg_free(a);
	cfg_free(b);
	cfg_free(same);
}

/* A list and an instance key: both sides of the comparison use the
 * offsets of their own struct. */
static void test_diff_lists(void **state)
{
	struct cfg *a = load_ok(BASE);
	struct cfg *b = load_ok("listeners:\n"
	                        "  - port: 444\n"
	                        "instances:\n"
	                        "  blue: {ports: [8443]}\n"
	                        "  green: {ports: [9444]}\n"
	                        "backend:\n"
	                        "  servers: [\"127.0.0.1:8081\"]\n");
	struct cfg_change ch[16];
	enum cfg_apply ap;
	int n;

	(void)state;
	n = cfg_diff(a, b, ch, 16);
	assert_int_equal(n, 3);
	assert_true(find(ch, n, "listeners", &ap));
	assert_int_equal(ap, CFG_APPLY_RESTART);
	assert_true(find(ch, n, "instances.green.ports", &ap));
	assert_int_equal(ap, CFG_APPLY_RESTART);
	assert_true(find(ch, n, "backend.servers", &ap));
	assert_int_equal(ap, CFG_APPLY_FLIP);
	cfg_free(a);
	cfg_free(b);
}

/* check-config and switchyardd would resolve a relative path in different
 * directories (switchyardd daemonizes into /), so paths are absolute. */
static void test_relative_paths(void **state)
{
	const char *yaml = BASE "supervisor: {state_dir: var/sy}\n"
	                        "certificates: {directory: certs}\n";
	char *errs = NULL;
	int n = 0;

	(void)state;
	assert_null(cfg_load_buf("t.yaml", yaml, strlen(yaml), &errs, &n));
	assert_int_equal(n, 2);
	assert_string_equal(errs, "t.yaml:8:25: key 'supervisor.state_dir': 'var/sy' must be an "
	                          "absolute path (switchyardd and the instances do not run in "
	                          "this directory)\n"
	                          "t.yaml:9:27: key 'certificates.directory': 'certs' must be an "
	                          "absolute path (switchyardd and the instances do not run in "
	                          "this directory)\n");
	free(errs);
}

/* A broken file still tells where the supervisor listens. */
static void test_lenient(void **state)
{
	char path[] = "/tmp/test_cfg_keys.XXXXXX";
	const char *text = BASE "supervisor:\n  control_socket: /tmp/x.sock\n"
	                        "proxy:\n  threads: many\n";
	char *errs = NULL;
	struct cfg *c;
	int fd = mkstemp(path), n = 0;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_null(cfg_load(path, NULL, NULL));
	c = cfg_load_lenient(path, &errs, &n);
	assert_non_null(c);
	assert_int_equal(n, 1);
	assert_non_null(strstr(errs, "key 'proxy.threads': expected an integer"));
	assert_string_equal(c->supervisor.control_socket, "/tmp/x.sock");
	free(errs);
	cfg_free(c);
	unlink(path);
	c = cfg_load_lenient("/nonexistent/switchyard.yaml", NULL, NULL);
	assert_non_null(c);
	assert_string_equal(c->supervisor.control_socket, "/run/switchyard/switchyardd.sock");
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_listing),  cmocka_unit_test(test_defaults_from_table),
	    cmocka_unit_test(test_item_defaults),  cmocka_unit_test(test_diff),
	    cmocka_unit_test(test_diff_lists),     cmocka_unit_test(test_lenient),
	    cmocka_unit_test(test_relative_paths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
