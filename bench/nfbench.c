/*
 * nfbench: figures for the netfilter module (bench/20-netfilter.sh runs it
 * inside a private network namespace; never run it on a host's tables).
 *
 *   nfbench flips N V4 V6 [BACKEND]
 *                           installs V4 IPv4 and V6 IPv6 listeners, then
 *                           times N alternating nf_flip() calls, each from
 *                           the call to the verified, acknowledged commit
 *                           (legacy: lock, init, edit, commit, read-back;
 *                           nftables: one batch of map elements against
 *                           the cached generation, its acknowledgement,
 *                           the planned keys and the generation read back):
 *                           median, p99, max. BACKEND is netfilter.backend
 *                           (auto, nftables or iptables; default iptables,
 *                           the figures of issue 4). NFBENCH_GAP_US=U sleeps
 *                           U us before each flip (not timed): flips spaced
 *                           as in production rather than back to back
 *   nfbench ruleflips N V4 V6
 *                           the nftables flip variant that is no longer
 *                           kept, measured for the comparison: a table
 *                           (set up with the nft command) in which each
 *                           listener's redirect is the one rule of a chain
 *                           l-I, and N flips that each replace those rules
 *                           by handle in one batch (with the generation
 *                           check), then list the table's rules and check
 *                           the ports: median, p99
 *   nfbench raw N           the floor under a flip on this machine right now:
 *                           N bare libiptc swaps of the first rule of
 *                           SWITCHYARD (init + replace + commit + free), no
 *                           lock and no read-back
 *   nfbench kernel N        the kernel's own share of that floor: N times
 *                           the two socket options every x_tables writer
 *                           needs, without libiptc: IPT_SO_GET_ENTRIES (read
 *                           the nat table) and IPT_SO_SET_REPLACE of the same
 *                           bytes (+ IPT_SO_SET_ADD_COUNTERS, as libiptc);
 *                           medians of each
 *   nfbench ctfill N        creates N TCP conntrack entries through
 *                           ctnetlink, a tenth of them looking like flows
 *                           pinned to blue (service port 443, instance 8443)
 *   nfbench count R         times R nf_count_flows() calls; prints the
 *                           counts, median and max, and the peak RSS
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

#include "netfilter/nf.h"
#include "netfilter/nft_nl.h"

static struct cfg cfg;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts the N samples of one series and prints its figures; with
 * NFBENCH_SAMPLES set, also appends every sample to that file, so that a
 * script can interleave short series of several cases and compute the
 * figures of each case over all of its rounds. */
static void report(const char *what, int v4, int v6, double *t, int n, int failed)
{
	const char *path = getenv("NFBENCH_SAMPLES");
	FILE *f;

	qsort(t, (size_t)n, sizeof(double), cmp_d);
	printf("%s flips %d listeners %d+%d failed %d median_us %.1f p99_us %.1f max_us %.1f\n",
	       what, n, v4, v6, failed, t[n / 2], t[(n * 99) / 100], t[n - 1]);
	if (path != NULL && (f = fopen(path, "a")) != NULL) {
		for (int i = 0; i < n; i++)
			fprintf(f, "%.1f\n", t[i]);
		fclose(f);
	}
}

static long rss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* Listener 0 is 0.0.0.0:443 -> 8443/9443; the others get their own ports. */
static void make_cfg(int v4, int v6)
{
	memset(&cfg, 0, sizeof(cfg));
	for (int i = 0; i < v4 + v6 && i < CFG_MAX_LISTENERS; i++) {
		struct cfg_listener *l = &cfg.listeners[i];

		snprintf(l->name, sizeof(l->name), "l%d", i);
		l->addr.family = i < v4 ? AF_INET : AF_INET6;
		if (i > 0 && i < v4) {
			/* 198.18.0.i, a specific address */
			l->addr.a.v4[0] = 198;
			l->addr.a.v4[1] = 18;
			l->addr.a.v4[3] = (uint8_t)i;
		}
		l->port = (uint16_t)(i == 0 ? 443 : 1000 + i);
		cfg.instances[CFG_BLUE].ports[i] = (uint16_t)(8443 + i);
		cfg.instances[CFG_GREEN].ports[i] = (uint16_t)(9443 + i);
		cfg.nlisteners++;
	}
}

static int bench_flips(int n, int v4, int v6, const char *backend)
{
	double *t = calloc((size_t)n, sizeof(double));
	char err[1024];
	int failed = 0;
	long gap_us = getenv("NFBENCH_GAP_US") ? atol(getenv("NFBENCH_GAP_US")) : 0;

	make_cfg(v4, v6);
	cfg.netfilter.backend = strcmp(backend, "nftables") == 0 ? CFG_NF_NFTABLES
	                        : strcmp(backend, "auto") == 0   ? CFG_NF_AUTO
	                                                         : CFG_NF_IPTABLES;
	if (t == NULL || nf_install(&cfg, CFG_BLUE, err, sizeof(err)) < 0) {
		fprintf(stderr, "nfbench: install: %s\n", t ? err : "out of memory");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		double s;

		if (gap_us > 0)
			usleep((useconds_t)gap_us);
		s = now_us();
		if (nf_flip(&cfg, (i & 1) ? CFG_BLUE : CFG_GREEN, err, sizeof(err)) < 0) {
			failed++;
			fprintf(stderr, "nfbench: flip %d: %s\n", i, err);
		}
		t[i] = now_us() - s;
	}
	report(backend, v4, v6, t, n, failed);
	free(t);
	return failed ? 1 : 0;
}

/*
 * ruleflips: the variant the product no longer uses, kept for the
 * comparison. Each listener's redirect sits alone in a chain l-I, reached
 * by goto from its match in chain services; a flip replaces those rules by
 * handle (NLM_F_REPLACE) in one batch with the generation check, then lists
 * the table's rules and parses those of the l-I chains (their new handles
 * and ports), as the product did before it moved to port maps.
 */
struct rf {
	int n; /* listeners */
	uint64_t handle[CFG_MAX_LISTENERS];
	uint16_t port[CFG_MAX_LISTENERS];
};

/* The chain attribute of a rule message, found without parsing the rule. */
static const char *rf_chain(const struct nlmsghdr *nlh)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg))
	{
		if (mnl_attr_get_type(a) == NFTA_RULE_CHAIN &&
		    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
			return mnl_attr_get_str(a);
	}
	return NULL;
}

static int rf_expr(struct nftnl_expr *e, void *data)
{
	uint32_t len = 0;
	const uint8_t *d;

	if (strcmp(nftnl_expr_get_str(e, NFTNL_EXPR_NAME), "immediate") != 0 ||
	    nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT))
		return 0;
	d = nftnl_expr_get_data(e, NFTNL_EXPR_IMM_DATA, &len);
	if (d != NULL && len == 2)
		*(uint16_t *)data = (uint16_t)(d[0] << 8 | d[1]);
	return 0;
}

/* Lists the rules of table sybench; keeps handle and port of each l-I. */
static int rf_read(struct nft_nl *nl, struct rf *rf)
{
	char buf[32768] __attribute__((aligned(8)));
	struct nlmsghdr *nlh =
	    nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, ++nl->seq);
	uint32_t seq = nl->seq;

	mnl_attr_put_strz(nlh, NFTA_RULE_TABLE, "sybench");
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (;;) {
		ssize_t r = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		int rest = (int)r;

		if (r <= 0)
			return -1;
		for (; mnl_nlmsg_ok(h, rest); h = mnl_nlmsg_next(h, &rest)) {
			const char *chain;
			struct nftnl_rule *nr;
			int i;

			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return 0;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			chain = rf_chain(h);
			if (chain == NULL || strncmp(chain, "l-", 2) != 0)
				continue;
			i = atoi(chain + 2);
			if (i < 0 || i >= rf->n)
				continue;
			nr = nftnl_rule_alloc();
			if (nftnl_rule_nlmsg_parse(h, nr) == 0) {
				rf->handle[i] = nftnl_rule_get_u64(nr, NFTNL_RULE_HANDLE);
				nftnl_expr_foreach(nr, rf_expr, &rf->port[i]);
			}
			nftnl_rule_free(nr);
		}
	}
}

/* The replacement of l-I's rule: meta l4proto tcp redirect to :PORT. */
static void rf_msg(char *buf, size_t *len, uint32_t *seq, int i, uint64_t handle, uint16_t port)
{
	struct nftnl_rule *nr = nftnl_rule_alloc();
	struct nftnl_expr *e;
	struct nlmsghdr *nlh;
	char chain[16];
	uint8_t tcp = IPPROTO_TCP;
	uint16_t to = htons(port);

	snprintf(chain, sizeof(chain), "l-%d", i);
	nftnl_rule_set_u32(nr, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(nr, NFTNL_RULE_TABLE, "sybench");
	nftnl_rule_set_str(nr, NFTNL_RULE_CHAIN, chain);
	nftnl_rule_set_u64(nr, NFTNL_RULE_HANDLE, handle);
	e = nftnl_expr_alloc("meta");
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_L4PROTO);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	nftnl_rule_add_expr(nr, e);
	e = nftnl_expr_alloc("cmp");
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
	nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &tcp, 1);
	nftnl_rule_add_expr(nr, e);
	e = nftnl_expr_alloc("immediate");
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_1);
	nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, &to, sizeof(to));
	nftnl_rule_add_expr(nr, e);
	e = nftnl_expr_alloc("redir");
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	nftnl_rule_add_expr(nr, e);
	nlh = nftnl_nlmsg_build_hdr(buf + *len, NFT_MSG_NEWRULE, NFPROTO_INET,
	                            NLM_F_REPLACE | NLM_F_ACK, ++*seq);
	nftnl_rule_nlmsg_build_payload(nlh, nr);
	nftnl_rule_free(nr);
	*len += NLMSG_ALIGN(nlh->nlmsg_len);
}

static int bench_ruleflips(int n, int v4, int v6)
{
	char *cmd = malloc(16384), err[512];
	double *t = calloc((size_t)n, sizeof(double));
	char *buf = malloc(65536);
	struct rf rf = {.n = v4 + v6};
	struct nft_nl nl;
	uint32_t gen = 0;
	int failed = 0, used;

	make_cfg(v4, v6);
	if (cmd == NULL || t == NULL || buf == NULL || rf.n > CFG_MAX_LISTENERS)
		return 1;
	used = snprintf(cmd, 16384,
	                "nft -f - <<'EOF'\ntable inet sybench {\n"
	                " chain pre { type nat hook prerouting priority -101; jump services; }\n"
	                " chain out { type nat hook output priority -101; jump services; }\n"
	                " chain services { }\n");
	for (int i = 0; i < rf.n; i++)
		used += snprintf(cmd + used, 16384 - (size_t)used,
		                 " chain l-%d { meta l4proto tcp redirect to :%u; }\n", i,
		                 cfg.instances[CFG_BLUE].ports[i]);
	used += snprintf(cmd + used, 16384 - (size_t)used, "}\n");
	for (int i = 0; i < rf.n; i++) {
		const struct cfg_listener *l = &cfg.listeners[i];
		char a[64];

		inet_ntop(l->addr.family, l->addr.a.v6, a, sizeof(a));
		if (i == 0 || i >= v4)
			used += snprintf(cmd + used, 16384 - (size_t)used,
			                 "add rule inet sybench services meta nfproto %s fib daddr "
			                 "type local tcp dport %u goto l-%d\n",
			                 l->addr.family == AF_INET ? "ipv4" : "ipv6", l->port, i);
		else
			used += snprintf(cmd + used, 16384 - (size_t)used,
			                 "add rule inet sybench services ip daddr %s tcp dport %u "
			                 "goto l-%d\n",
			                 a, l->port, i);
	}
	snprintf(cmd + used, 16384 - (size_t)used, "EOF\n");
	if (system(cmd) != 0 || nft_nl_open(&nl, err, sizeof(err)) < 0 ||
	    nft_nl_gen(&nl, &gen, err, sizeof(err)) < 0 || rf_read(&nl, &rf) < 0) {
		fprintf(stderr, "nfbench: ruleflips setup failed\n");
		return 1;
	}
	for (int k = 0; k < n; k++) {
		double s = now_us();
		size_t len = 0;
		int c = (k & 1) ? CFG_BLUE : CFG_GREEN, bad = 0;
		uint32_t seq = nl.seq + 1;

		for (int i = 0; i < rf.n; i++)
			rf_msg(buf, &len, &seq, i, rf.handle[i], cfg.instances[c].ports[i]);
		if (nft_nl_batch(&nl, gen, buf, len, rf.n, err, sizeof(err)) < 0 ||
		    rf_read(&nl, &rf) < 0)
			bad = 1;
		for (int i = 0; i < rf.n; i++)
			bad |= rf.port[i] != cfg.instances[c].ports[i];
		if (bad && ++failed < 5)
			fprintf(stderr, "nfbench: ruleflip %d: %s\n", k, err);
		gen++;
		t[k] = now_us() - s;
	}
	nft_nl_close(&nl);
	/* Gone again, so that the next round's setup starts from nothing. */
	if (system("nft delete table inet sybench") != 0)
		fprintf(stderr, "nfbench: could not delete table inet sybench\n");
	report("rules", v4, v6, t, n, failed);
	free(t);
	free(buf);
	free(cmd);
	return failed ? 1 : 0;
}

static int bench_raw(int n)
{
	double *t = calloc((size_t)n, sizeof(double));
	xt_chainlabel chain = NF_CHAIN;
	int failed = 0;

	for (int i = 0; t != NULL && i < n; i++) {
		double s = now_us();
		struct xtc_handle *h = iptc_init("nat");
		const struct ipt_entry *e = h ? iptc_first_rule(chain, h) : NULL;

		if (e == NULL || !iptc_replace_entry(chain, e, 0, h) || !iptc_commit(h))
			failed++;
		if (h != NULL)
			iptc_free(h);
		t[i] = now_us() - s;
	}
	if (t == NULL)
		return 1;
	qsort(t, (size_t)n, sizeof(double), cmp_d);
	printf("raw swaps %d failed %d median_us %.1f p99_us %.1f\n", n, failed, t[n / 2],
	       t[(n * 99) / 100]);
	free(t);
	return failed ? 1 : 0;
}

/*
 * Reads the nat table and writes the same bytes back, as any x_tables writer
 * must at least do (libiptc adds parsing the blob into chains and serialising
 * it again). No edit: the entry count is unchanged, so nothing else in the
 * namespace notices.
 */
static int kernel_swap(int s, double *get_us, double *set_us)
{
	struct ipt_getinfo info;
	socklen_t l = sizeof(info);
	struct ipt_get_entries *ge = NULL;
	struct ipt_replace *r = NULL;
	struct xt_counters_info *ac = NULL;
	size_t nc;
	double t0 = now_us(), t1;
	int rc = -1;

	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "nat");
	if (getsockopt(s, IPPROTO_IP, IPT_SO_GET_INFO, &info, &l) < 0)
		return -1;
	nc = info.num_entries;
	ge = malloc(sizeof(*ge) + info.size);
	r = malloc(sizeof(*r) + info.size);
	ac = malloc(sizeof(*ac) + nc * sizeof(struct xt_counters));
	if (ge == NULL || r == NULL || ac == NULL)
		goto out;
	memset(ge, 0, sizeof(*ge));
	snprintf(ge->name, sizeof(ge->name), "nat");
	ge->size = info.size;
	l = (socklen_t)(sizeof(*ge) + info.size);
	if (getsockopt(s, IPPROTO_IP, IPT_SO_GET_ENTRIES, ge, &l) < 0)
		goto out;
	t1 = now_us();
	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "nat");
	r->valid_hooks = info.valid_hooks;
	r->num_entries = info.num_entries;
	r->size = info.size;
	memcpy(r->hook_entry, info.hook_entry, sizeof(r->hook_entry));
	memcpy(r->underflow, info.underflow, sizeof(r->underflow));
	r->num_counters = (unsigned)nc;
	r->counters = ac->counters; /* the kernel returns the old counters here */
	memcpy(r->entries, ge->entrytable, info.size);
	if (setsockopt(s, IPPROTO_IP, IPT_SO_SET_REPLACE, r, (socklen_t)(sizeof(*r) + info.size)) <
	    0)
		goto out;
	memset(ac->name, 0, sizeof(ac->name));
	snprintf(ac->name, sizeof(ac->name), "nat");
	ac->num_counters = (unsigned)nc;
	if (setsockopt(s, IPPROTO_IP, IPT_SO_SET_ADD_COUNTERS, ac,
	               (socklen_t)(sizeof(*ac) + nc * sizeof(struct xt_counters))) < 0)
		goto out;
	*get_us = t1 - t0;
	*set_us = now_us() - t1;
	rc = 0;
out:
	free(ge);
	free(r);
	free(ac);
	return rc;
}

static int bench_kernel(int n)
{
	double *g = calloc((size_t)n * 2, sizeof(double)), *w = g + n;
	int s = socket(AF_INET, SOCK_RAW, IPPROTO_RAW), failed = 0;

	if (g == NULL || s < 0) {
		perror("nfbench kernel");
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (kernel_swap(s, &g[i], &w[i]) < 0)
			failed++;
	close(s);
	qsort(g, (size_t)n, sizeof(double), cmp_d);
	qsort(w, (size_t)n, sizeof(double), cmp_d);
	printf("kernel swaps %d failed %d get_entries median_us %.1f replace+add_counters "
	       "median_us %.1f sum %.1f\n",
	       n, failed, g[n / 2], w[n / 2], g[n / 2] + w[n / 2]);
	free(g);
	return failed ? 1 : 0;
}

/* nfnl_ct_add() does not send the TCP state, so the entry would stay in
 * state NONE; append CTA_PROTOINFO by hand to make it ESTABLISHED. */
static int add_established(struct nl_sock *sk, const struct nfnl_ct *ct)
{
	struct nl_msg *msg = NULL;
	struct nlattr *pi, *tcp;
	int rc;

	if (nfnl_ct_build_add_request(ct, NLM_F_CREATE, &msg) < 0)
		return -1;
	pi = nla_nest_start(msg, CTA_PROTOINFO);
	tcp = nla_nest_start(msg, CTA_PROTOINFO_TCP);
	nla_put_u8(msg, CTA_PROTOINFO_TCP_STATE, TCP_CONNTRACK_ESTABLISHED);
	nla_nest_end(msg, tcp);
	nla_nest_end(msg, pi);
	rc = nl_send_auto_complete(sk, msg);
	nlmsg_free(msg);
	if (rc < 0)
		return -1;
	return nl_wait_for_ack(sk) < 0 ? -1 : 0;
}

static int ctfill(long n)
{
	struct nl_sock *sk = nl_socket_alloc();
	long failed = 0;
	int rc;

	if (sk == NULL || (rc = nfnl_connect(sk)) < 0) {
		fprintf(stderr, "nfbench: nfnl_connect failed\n");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		struct nfnl_ct *ct = nfnl_ct_alloc();
		uint8_t src[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
		uint8_t dst[4] = {198, 18, 0, 1};
		struct nl_addr *a_src = nl_addr_build(AF_INET, src, 4);
		struct nl_addr *a_dst = nl_addr_build(AF_INET, dst, 4);
		uint16_t sport = (uint16_t)(10000 + i % 50000);
		int pinned = i % 10 == 0;

		nfnl_ct_set_family(ct, AF_INET);
		nfnl_ct_set_proto(ct, IPPROTO_TCP);
		nfnl_ct_set_src(ct, 0, a_src);
		nfnl_ct_set_dst(ct, 0, a_dst);
		nfnl_ct_set_src_port(ct, 0, sport);
		nfnl_ct_set_dst_port(ct, 0, pinned ? 443 : 80);
		nfnl_ct_set_src(ct, 1, a_dst);
		nfnl_ct_set_dst(ct, 1, a_src);
		nfnl_ct_set_src_port(ct, 1, pinned ? 8443 : 80);
		nfnl_ct_set_dst_port(ct, 1, sport);
		nfnl_ct_set_timeout(ct, 3600);
		if (add_established(sk, ct) < 0)
			failed++;
		nl_addr_put(a_src);
		nl_addr_put(a_dst);
		nfnl_ct_put(ct);
	}
	nl_socket_free(sk);
	printf("ctfill %ld failed %ld\n", n, failed);
	return failed ? 1 : 0;
}

static int bench_count(int reps)
{
	struct nf_flows fl[CFG_NCOLOURS];
	double *t = calloc((size_t)reps, sizeof(double));
	char err[1024];
	long rss0 = rss_kb();

	make_cfg(1, 0);
	for (int i = 0; t != NULL && i < reps; i++) {
		double s = now_us();

		if (nf_count_flows(&cfg, fl, err, sizeof(err)) < 0) {
			fprintf(stderr, "nfbench: count: %s\n", err);
			return 1;
		}
		t[i] = now_us() - s;
	}
	if (t == NULL)
		return 1;
	qsort(t, (size_t)reps, sizeof(double), cmp_d);
	printf("count reps %d blue_total %llu blue_established %llu median_ms %.1f max_ms %.1f "
	       "rss_before_kb %ld rss_peak_kb %ld\n",
	       reps, (unsigned long long)fl[CFG_BLUE].total,
	       (unsigned long long)fl[CFG_BLUE].established, t[reps / 2] / 1000, t[reps - 1] / 1000,
	       rss0, rss_kb());
	free(t);
	return 0;
}

int main(int argc, char **argv)
{
	if ((argc == 5 || argc == 6) && strcmp(argv[1], "flips") == 0)
		return bench_flips(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]),
		                   argc == 6 ? argv[5] : "iptables");
	if (argc == 5 && strcmp(argv[1], "ruleflips") == 0)
		return bench_ruleflips(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 3 && strcmp(argv[1], "raw") == 0)
		return bench_raw(atoi(argv[2]));
	if (argc == 3 && strcmp(argv[1], "kernel") == 0)
		return bench_kernel(atoi(argv[2]));
	if (argc == 3 && strcmp(argv[1], "ctfill") == 0)
		return ctfill(atol(argv[2]));
	if (argc == 3 && strcmp(argv[1], "count") == 0)
		return bench_count(atoi(argv[2]));
	fprintf(
	    stderr,
	    "usage: nfbench flips N V4 V6 [BACKEND] | ruleflips N V4 V6 | raw N | kernel N | ctfill N | count REPS\n");
	return 2;
}
