/*
 * Unit tests for netfilter/: entry building and parsing per family (byte
 * orders, sizes), config validation, and, in a private network namespace
 * when run as root, the nftables coexistence check, the lock timeout
 * message and an install/flip/read round trip with each backend.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_tcpudp.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"

static int have_netns;
static char tmpdir[64];

static void fill_cfg(struct cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nlisteners = 2;
	snprintf(cfg->listeners[0].name, CFG_NAME_MAX, "https");
	cfg->listeners[0].addr.family = AF_INET;
	cfg->listeners[0].port = 443;
	snprintf(cfg->listeners[1].name, CFG_NAME_MAX, "https6");
	cfg->listeners[1].addr.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::1", cfg->listeners[1].addr.a.v6);
	snprintf(cfg->listeners[1].addr.text, sizeof(cfg->listeners[1].addr.text), "fd00::1");
	cfg->listeners[1].port = 443;
	cfg->instances[CFG_BLUE].ports[0] = 8443;
	cfg->instances[CFG_BLUE].ports[1] = 8444;
	cfg->instances[CFG_GREEN].ports[0] = 9443;
	cfg->instances[CFG_GREEN].ports[1] = 9444;
	cfg->netfilter.backend = CFG_NF_IPTABLES;
}

static void roundtrip(const struct nf_fam *f, const struct nf_rule *in, const char *target)
{
	unsigned char buf[NF_ENTRY_MAX] __attribute__((aligned(8)));
	struct nf_rule out;
	size_t n = f->build(in, buf, sizeof(buf));

	assert_true(n > 0);
	f->parse(buf, target, &out);
	assert_int_equal(out.kind, in->kind);
	assert_int_equal(out.exact, 1);
	assert_int_equal(out.plen, in->plen);
	assert_memory_equal(out.addr, in->addr, sizeof(in->addr));
	assert_int_equal(out.local, in->local);
	assert_int_equal(out.dport, in->dport);
	assert_int_equal(out.to_port, in->to_port);
}

static void test_entries_roundtrip(void **state)
{
	struct nf_rule r = {.kind = NF_RK_REDIRECT, .exact = 1, .dport = 443, .to_port = 8443};
	struct nf_rule j = {.kind = NF_RK_JUMP, .exact = 1, .local = 1};

	(void)state;
	roundtrip(&nf_fam4, &r, "REDIRECT");
	roundtrip(&nf_fam6, &r, "REDIRECT");
	roundtrip(&nf_fam4, &j, NF_CHAIN);
	roundtrip(&nf_fam6, &j, NF_CHAIN);
	r.plen = 32;
	inet_pton(AF_INET, "198.18.0.1", r.addr);
	roundtrip(&nf_fam4, &r, "REDIRECT");
	memset(r.addr, 0, sizeof(r.addr));
	r.plen = 128;
	inet_pton(AF_INET6, "fd00::1", r.addr);
	roundtrip(&nf_fam6, &r, "REDIRECT");
	j.local = 0;
	j.plen = 128;
	memcpy(j.addr, r.addr, sizeof(j.addr));
	roundtrip(&nf_fam6, &j, NF_CHAIN);
}

static void test_guard_entries_roundtrip(void **state)
{
	struct nf_rule lo = {.kind = NF_RK_ACCEPT, .exact = 1, .dport = 8443, .lo = 1};
	struct nf_rule dnat = {.kind = NF_RK_ACCEPT, .exact = 1, .dport = 8443, .ctdnat = 1};
	struct nf_rule drop = {.kind = NF_RK_DROP, .exact = 1, .dport = 8443};
	struct nf_rule jump = {.kind = NF_RK_JUMP, .exact = 1};

	(void)state;
	for (int i = 0; i < 2; i++) {
		const struct nf_fam *f = i ? &nf_fam6 : &nf_fam4;

		roundtrip(f, &lo, "ACCEPT");
		roundtrip(f, &dnat, "ACCEPT");
		roundtrip(f, &drop, "DROP");
		roundtrip(f, &jump, NF_CHAIN);
	}
}

/* The two byte orders and the jump's target size of docs/internals.md, "Rule
 * numbers, byte orders and jumps". */
static void test_entry_layout_v4(void **state)
{
	unsigned char buf[NF_ENTRY_MAX] __attribute__((aligned(8)));
	struct nf_rule r = {.kind = NF_RK_REDIRECT, .exact = 1, .dport = 443, .to_port = 8443};
	struct nf_rule j = {.kind = NF_RK_JUMP, .exact = 1, .local = 1};
	const struct ipt_entry *e = (const void *)buf;
	const struct xt_entry_match *m;
	const struct xt_tcp *tcp;
	const struct xt_entry_target *t;
	const struct nf_nat_ipv4_multi_range_compat *mr;

	(void)state;
	assert_true(nf_fam4.build(&r, buf, sizeof(buf)) > 0);
	m = (const void *)(buf + sizeof(*e));
	assert_string_equal(m->u.user.name, "tcp");
	tcp = (const void *)m->data;
	assert_int_equal(tcp->dpts[0], 443); /* host order */
	assert_int_equal(tcp->spts[0], 0);
	assert_int_equal(tcp->spts[1], 65535);
	t = (const void *)(buf + e->target_offset);
	mr = (const void *)t->data;
	assert_int_equal(mr->range[0].min.tcp.port, htons(8443)); /* network order */
	assert_int_equal(mr->rangesize, 1);
	assert_int_equal(e->next_offset, e->target_offset + t->u.target_size);

	assert_true(nf_fam4.build(&j, buf, sizeof(buf)) > 0);
	t = (const void *)(buf + e->target_offset);
	assert_int_equal(t->u.target_size, XT_ALIGN(sizeof(struct xt_standard_target)));
	assert_string_equal(t->u.user.name, NF_CHAIN);
	assert_int_equal(nf_fam4.build(&j, buf, 16), 0);
}

static void test_changed_rule_not_exact(void **state)
{
	unsigned char buf[NF_ENTRY_MAX] __attribute__((aligned(8)));
	struct nf_rule r = {.kind = NF_RK_REDIRECT, .exact = 1, .dport = 443, .to_port = 8443};
	struct nf_rule out;
	struct ipt_entry *e = (void *)buf;

	(void)state;
	assert_true(nf_fam4.build(&r, buf, sizeof(buf)) > 0);
	strcpy(e->ip.iniface, "eth0");
	memset(e->ip.iniface_mask, 0xff, 5);
	nf_fam4.parse(buf, "REDIRECT", &out);
	assert_int_equal(out.exact, 0);
	assert_int_equal(out.dport, 443);
}

static void test_validation(void **state)
{
	struct cfg cfg;
	char err[512] = "";

	(void)state;
	fill_cfg(&cfg);
	cfg.instances[CFG_GREEN].ports[0] = 8443;
	assert_int_equal(nf_install(&cfg, CFG_BLUE, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "listener https"));
	assert_non_null(strstr(err, "must differ"));
	fill_cfg(&cfg);
	assert_int_equal(nf_flip(&cfg, (enum cfg_colour)7, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "neither blue nor green"));
}

/* nat chains of other nftables tables on our hooks are listed over netlink;
 * filter chains and chains on other hooks are not. */
static void test_nft_check(void **state)
{
	char warn[2048];

	(void)state;
	if (!have_netns || system("command -v nft >/dev/null") != 0)
		skip();
	assert_int_equal(system("nft add table ip nat && nft add chain ip nat PREROUTING "
	                        "'{ type nat hook prerouting priority dstnat; }' && "
	                        "nft add table ip filter && nft add chain ip filter INPUT "
	                        "'{ type filter hook input priority 0; }' && "
	                        "nft add table inet x && nft add chain inet x out "
	                        "'{ type nat hook output priority -100; }' && "
	                        "nft add chain inet x post '{ type nat hook postrouting "
	                        "priority 100; }'"),
	                 0);
	nf_check_nft(warn, sizeof(warn));
	assert_non_null(strstr(warn, "2 nftables nat chains"));
	assert_non_null(strstr(warn, "ip nat PREROUTING (prerouting, priority -100)"));
	assert_non_null(strstr(warn, "inet x out (output, priority -100)"));
	assert_int_equal(system("nft delete table ip nat && nft delete table inet x"), 0);
	nf_check_nft(warn, sizeof(warn));
	assert_string_equal(warn, "");
	assert_int_equal(system("nft delete table ip filter"), 0);
}

static void test_lock_held(void **state)
{
	struct cfg cfg;
	char err[512] = "", lock[128], want[64];
	int fd;

	(void)state;
	if (!have_netns)
		skip();
	fill_cfg(&cfg);
	snprintf(lock, sizeof(lock), "%s/xtables.lock", tmpdir);
	/* A second open file description conflicts with ours even in the same
	 * process: flock locks belong to the open file, not the process. */
	fd = open(lock, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	nf_set_lock_wait(100);
	assert_int_equal(nf_install(&cfg, CFG_BLUE, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "held by pid %ld", (long)getpid());
	assert_non_null(strstr(err, want));
	close(fd);
	nf_set_lock_wait(5000);
}

static void install_flip_read(struct cfg *cfgp);

static void test_install_flip_read(void **state)
{
	struct cfg cfg;

	(void)state;
	if (!have_netns)
		skip();
	for (int b = CFG_NF_NFTABLES; b <= CFG_NF_IPTABLES; b++) {
		fill_cfg(&cfg);
		cfg.netfilter.backend = (enum cfg_nf_backend)b;
		install_flip_read(&cfg);
	}
}

static void install_flip_read(struct cfg *cfgp)
{
	struct cfg cfg = *cfgp;
	struct nf_state st;
	char err[512] = "";

	assert_int_equal(nf_install(&cfg, CFG_GREEN, err, sizeof(err)), 0);
	assert_int_equal(nf_read(&cfg, &st, err, sizeof(err)), 0);
	assert_int_equal(st.live, CFG_GREEN);
	assert_int_equal(st.drift, 0);
	assert_int_equal(st.chain_present[0], 1);
	assert_int_equal(st.chain_present[1], 1);
	assert_int_equal(nf_flip(&cfg, CFG_BLUE, err, sizeof(err)), 0);
	assert_int_equal(nf_read(&cfg, &st, err, sizeof(err)), 0);
	assert_int_equal(st.live, CFG_BLUE);
	assert_int_equal(st.listeners[1].to_port, 8444);
	assert_int_equal(nf_remove(&cfg, err, sizeof(err)), 0);
	assert_int_equal(nf_read(&cfg, &st, err, sizeof(err)), 0);
	assert_int_equal(st.live, -1);
	assert_int_equal(st.listeners[0].state, NF_RULE_MISSING);
	assert_int_equal(st.drift, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_entries_roundtrip),
	    cmocka_unit_test(test_guard_entries_roundtrip),
	    cmocka_unit_test(test_entry_layout_v4),
	    cmocka_unit_test(test_changed_rule_not_exact),
	    cmocka_unit_test(test_validation),
	    cmocka_unit_test(test_nft_check),
	    cmocka_unit_test(test_lock_held),
	    cmocka_unit_test(test_install_flip_read),
	};
	char lock[128];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sy-test-nf.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 1;
	snprintf(lock, sizeof(lock), "%s/xtables.lock", tmpdir);
	setenv("XTABLES_LOCKFILE", lock, 1);
	/* The kernel tests run only in a network namespace of our own, never
	 * on the host's tables. */
	have_netns = geteuid() == 0 && unshare(CLONE_NEWNET) == 0;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			rc = rc ? rc : 1;
	}
	return rc;
}
