/*
 * Unit tests for netfilter.backend: nf_backend_decide with every
 * combination of what the kernel can offer (nf_tables or not, legacy
 * x_tables or not, a legacy nat table in use or not, other tables' nftables
 * nat chains on our hooks or not) for each configured value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "netfilter/nf.h"

/* What auto must pick for a probe, from the rule in docs/netfilter.md:
 * iptables when legacy x_tables exists and nf_tables does not, or when the
 * legacy nat table is in use and no other nftables nat chain sits on our
 * hooks; nftables in every other case where nf_tables answers. -1: none. */
static int expect_auto(const struct nf_probe *p)
{
	if (!p->nft && !p->legacy)
		return -1;
	if (!p->nft)
		return CFG_NF_IPTABLES;
	if (!p->legacy)
		return CFG_NF_NFTABLES;
	if (p->nft_nat_chains > 0)
		return CFG_NF_NFTABLES;
	return p->legacy_nat ? CFG_NF_IPTABLES : CFG_NF_NFTABLES;
}

static void test_every_combination(void **state)
{
	int n = 0;

	(void)state;
	for (int bits = 0; bits < 16; bits++) {
		struct nf_probe p;

		memset(&p, 0, sizeof(p));
		p.nft = bits & 1;
		p.legacy = (bits >> 1) & 1;
		/* A legacy nat table cannot be in use without legacy x_tables. */
		p.legacy_nat = p.legacy && ((bits >> 2) & 1);
		p.nft_nat_chains = p.nft && ((bits >> 3) & 1) ? 2 : 0;
		if (!p.nft)
			snprintf(p.nft_err, sizeof(p.nft_err), "the kernel has no nf_tables");
		for (int want = CFG_NF_AUTO; want <= CFG_NF_IPTABLES; want++) {
			enum cfg_nf_backend out = (enum cfg_nf_backend)99;
			char why[512] = "";
			int rc = nf_backend_decide((enum cfg_nf_backend)want, &p, &out, why,
			                           sizeof(why));
			int exp;

			if (want == CFG_NF_AUTO)
				exp = expect_auto(&p);
			else if (want == CFG_NF_NFTABLES)
				exp = p.nft ? CFG_NF_NFTABLES : -1;
			else
				exp = p.legacy ? CFG_NF_IPTABLES : -1;
			print_message(
			    "nft=%d legacy=%d legacy_nat=%d nat_chains=%d want=%s -> %s: %s\n",
			    p.nft, p.legacy, p.legacy_nat, p.nft_nat_chains,
			    cfg_nf_backend_name((enum cfg_nf_backend)want),
			    rc == 0 ? cfg_nf_backend_name(out) : "none", why);
			assert_true(why[0] != '\0');
			if (exp < 0) {
				assert_int_equal(rc, -1);
				/* The error names what is missing. */
				assert_true(strstr(why, "no nf_tables") != NULL ||
				            strstr(why, "no legacy x_tables") != NULL);
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(out, exp);
			}
			n++;
		}
	}
	assert_int_equal(n, 48);
}

/* The reason names the deciding fact. */
static void test_reasons(void **state)
{
	struct nf_probe p = {.nft = 1, .legacy = 1, .legacy_nat = 1, .nft_nat_chains = 1};
	enum cfg_nf_backend out;
	char why[512];

	(void)state;
	assert_int_equal(nf_backend_decide(CFG_NF_AUTO, &p, &out, why, sizeof(why)), 0);
	assert_int_equal(out, CFG_NF_NFTABLES);
	assert_non_null(strstr(why, "1 nftables nat chain of other tables"));
	p.nft_nat_chains = 0;
	assert_int_equal(nf_backend_decide(CFG_NF_AUTO, &p, &out, why, sizeof(why)), 0);
	assert_int_equal(out, CFG_NF_IPTABLES);
	assert_non_null(strstr(why, "legacy nat table is in use"));
	p.legacy_nat = 0;
	assert_int_equal(nf_backend_decide(CFG_NF_AUTO, &p, &out, why, sizeof(why)), 0);
	assert_int_equal(out, CFG_NF_NFTABLES);
	assert_non_null(strstr(why, "not in use"));
	assert_int_equal(nf_backend_decide(CFG_NF_IPTABLES, &p, &out, why, sizeof(why)), 0);
	assert_int_equal(out, CFG_NF_IPTABLES);
	assert_non_null(strstr(why, "configured"));
	p.nft = 0;
	snprintf(p.nft_err, sizeof(p.nft_err), "nftables: permission denied");
	assert_int_equal(nf_backend_decide(CFG_NF_NFTABLES, &p, &out, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "permission denied"));
	/* A refused probe (no CAP_NET_ADMIN) never falls back to iptables. */
	p.denied = 1;
	snprintf(p.nft_err, sizeof(p.nft_err), "nftables: permission denied: CAP_NET_ADMIN");
	for (int want = CFG_NF_AUTO; want <= CFG_NF_IPTABLES; want++) {
		assert_int_equal(
		    nf_backend_decide((enum cfg_nf_backend)want, &p, &out, why, sizeof(why)), -1);
		assert_non_null(strstr(why, "CAP_NET_ADMIN"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_combination),
	    cmocka_unit_test(test_reasons),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
