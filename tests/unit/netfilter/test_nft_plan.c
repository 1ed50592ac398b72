/*
 * Unit tests for netfilter/nft_plan.c: the nftables plan (which maps, which
 * elements with which keys, which rules), the refusal of two listeners
 * with one key, and the comparison of a read with a plan that decides
 * between a flip (elements only) and a rebuild. No kernel is involved.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <linux/netfilter/nf_tables.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"
#include "netfilter/nft_nl.h"

static void add_listener(struct cfg *cfg, const char *name, int family, const char *addr,
                         uint16_t port)
{
	int i = cfg->nlisteners++;
	struct cfg_listener *l = &cfg->listeners[i];

	snprintf(l->name, CFG_NAME_MAX, "%s", name);
	l->addr.family = family;
	inet_pton(family, addr, l->addr.a.v6);
	snprintf(l->addr.text, sizeof(l->addr.text), "%s", addr);
	l->port = port;
	cfg->instances[CFG_BLUE].ports[i] = (uint16_t)(8000 + i);
	cfg->instances[CFG_GREEN].ports[i] = (uint16_t)(9000 + i);
}

/* https 0.0.0.0:443, web 198.18.0.1:80, https6 [::]:443, web6 [fd00::1]:80 */
static void fill_cfg(struct cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	add_listener(cfg, "https", AF_INET, "0.0.0.0", 443);
	add_listener(cfg, "web", AF_INET, "198.18.0.1", 80);
	add_listener(cfg, "https6", AF_INET6, "::", 443);
	add_listener(cfg, "web6", AF_INET6, "fd00::1", 80);
}

/* What a read of a table built exactly from p would give. */
static void scan_of(const struct nft_plan *p, struct nft_scan *s)
{
	memset(s, 0, sizeof(*s));
	s->table_present = 1;
	s->table_ours = 1;
	memcpy(s->chains, p->chains, sizeof(p->chains));
	s->nchains = p->nchains;
	memcpy(s->maps, p->maps, sizeof(p->maps));
	s->nmaps = p->nmaps;
	memcpy(s->elems, p->elems, sizeof(p->elems));
	s->nelems = p->nelems;
	memcpy(s->rules, p->rules, sizeof(p->rules));
	s->nrules = p->nrules;
}

static void test_plan_layout(void **state)
{
	static const uint8_t k_web[8] = {198, 18, 0, 1, 0, 80, 0, 0};
	static const uint8_t k_https[2] = {1, 187};
	struct cfg cfg;
	struct nft_plan *p = malloc(sizeof(*p));
	char text[80];

	(void)state;
	assert_non_null(p);
	fill_cfg(&cfg);
	nft_plan_build(&cfg, CFG_GREEN, p);
	/* Exact before wildcard, per family. */
	assert_int_equal(p->nmaps, 4);
	assert_string_equal(p->maps[0].name, "exact4");
	assert_string_equal(p->maps[1].name, "any4");
	assert_string_equal(p->maps[2].name, "exact6");
	assert_string_equal(p->maps[3].name, "any6");
	assert_int_equal(p->maps[0].key_len, 8);
	assert_int_equal(p->maps[0].key_type, 7 << 6 | 13);
	assert_int_equal(p->maps[2].key_len, 20);
	assert_int_equal(p->maps[1].key_len, 2);
	assert_int_equal(p->maps[1].flags, NFT_SET_MAP);
	assert_int_equal(p->maps[1].size, CFG_MAX_LISTENERS);
	/* One element per listener, with the colour's port. */
	assert_int_equal(p->nelems, 4);
	assert_int_equal(p->elems[0].listener, 1);
	assert_int_equal(p->elems[0].klen, 8);
	assert_memory_equal(p->elems[0].key, k_web, 8);
	assert_int_equal(p->elems[0].to_port, 9001);
	assert_int_equal(p->elems[1].listener, 0);
	assert_int_equal(p->elems[1].klen, 2);
	assert_memory_equal(p->elems[1].key, k_https, 2);
	assert_int_equal(p->elems[2].klen, 20);
	nft_key_text(&p->elems[0], text, sizeof(text));
	assert_string_equal(text, "198.18.0.1 . 80");
	nft_key_text(&p->elems[2], text, sizeof(text));
	assert_string_equal(text, "fd00::1 . 80");
	nft_key_text(&p->elems[1], text, sizeof(text));
	assert_string_equal(text, "443");
	/* Two jumps, then one rule per map; only wildcards look at fib. */
	assert_int_equal(p->nrules, 6);
	assert_string_equal(p->rules[2].map, "exact4");
	assert_int_equal(p->rules[2].key_addr, 4);
	assert_int_equal(p->rules[2].r.local, 0);
	assert_string_equal(p->rules[3].map, "any4");
	assert_int_equal(p->rules[3].key_addr, 0);
	assert_int_equal(p->rules[3].r.local, 1);
	assert_int_equal(p->rules[5].af, AF_INET6);
	/* No listener of a kind: no map and no rule for it. */
	memset(&cfg, 0, sizeof(cfg));
	add_listener(&cfg, "https", AF_INET, "0.0.0.0", 443);
	nft_plan_build(&cfg, CFG_BLUE, p);
	assert_int_equal(p->nmaps, 1);
	assert_string_equal(p->maps[0].name, "any4");
	assert_int_equal(p->nrules, 3);
	free(p);
}

static void test_one_key_one_port(void **state)
{
	struct cfg cfg;
	char err[256] = "";

	(void)state;
	fill_cfg(&cfg);
	assert_int_equal(nft_validate(&cfg, CFG_BLUE, err, sizeof(err)), 0);
	add_listener(&cfg, "web-again", AF_INET, "198.18.0.1", 80);
	assert_int_equal(nft_validate(&cfg, CFG_BLUE, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "listeners web and web-again"));
	assert_non_null(strstr(err, "map exact4"));
	fill_cfg(&cfg);
	add_listener(&cfg, "https6-again", AF_INET6, "::", 443);
	assert_int_equal(nft_validate(&cfg, CFG_BLUE, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "map any6"));
	/* The same port on another address, or in the other family, is fine. */
	fill_cfg(&cfg);
	add_listener(&cfg, "web2", AF_INET, "198.18.0.2", 80);
	assert_int_equal(nft_validate(&cfg, CFG_BLUE, err, sizeof(err)), 0);
}

static void test_matches(void **state)
{
	struct cfg cfg;
	struct nft_plan *p = malloc(sizeof(*p));
	struct nft_scan *s = malloc(sizeof(*s));
	struct nft_elem tmp;

	(void)state;
	assert_non_null(p);
	assert_non_null(s);
	fill_cfg(&cfg);
	nft_plan_build(&cfg, CFG_BLUE, p);
	scan_of(p, s);
	assert_true(nft_table_matches(s, p, 1));
	/* The kernel lists elements in hash order: order does not matter. */
	tmp = s->elems[0];
	s->elems[0] = s->elems[3];
	s->elems[3] = tmp;
	assert_true(nft_table_matches(s, p, 1));
	/* The other colour: same shape (a flip), other ports. */
	nft_plan_build(&cfg, CFG_GREEN, p);
	assert_true(nft_table_matches(s, p, 0));
	assert_false(nft_table_matches(s, p, 1));
	/* A deleted element, an extra element, a changed map, a changed
	 * rule: not the plan's shape (a rebuild). */
	s->nelems--;
	assert_false(nft_table_matches(s, p, 0));
	s->nelems++;
	s->elems[s->nelems] = s->elems[0];
	s->elems[s->nelems].key[0] ^= 1;
	s->nelems++;
	assert_false(nft_table_matches(s, p, 0));
	s->nelems--;
	s->maps[1].key_len = 4;
	assert_false(nft_table_matches(s, p, 0));
	s->maps[1].key_len = 2;
	s->maps[1].size = 0; /* a resizable hash: rebuilt with a size */
	assert_false(nft_table_matches(s, p, 0));
	s->maps[1].size = CFG_MAX_LISTENERS;
	s->rules[3].r.exact = 0;
	assert_false(nft_table_matches(s, p, 0));
	s->rules[3].r.exact = 1;
	assert_true(nft_table_matches(s, p, 0));
	s->table_ours = 0;
	assert_false(nft_table_matches(s, p, 0));
	free(s);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_layout),
	    cmocka_unit_test(test_one_key_one_port),
	    cmocka_unit_test(test_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
