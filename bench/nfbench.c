/*
 * nfbench: figures for the netfilter module (bench/20-netfilter.sh runs it
 * inside a private network namespace; never run it on a host's tables).
 *
 *   nfbench flips N V4 V6 [BACKEND]
 *                           installs V4 IPv4 and V6 IPv6 listeners, then
 *                           times N alternating nf_flip() calls, each from
 *                           the call to the verified, acknowledged commit
 *                           (legacy: lock, init, edit, commit, read-back;
 *                           nftables: generation, batch, acknowledgements,
 *                           read-back): median, p99, max. BACKEND is
 *                           netfilter.backend (auto, nftables or iptables;
 *                           default iptables, the figures of issue 4)
 *   nfbench mapflips N V4 V6
 *                           the nftables flip variant that was not kept,
 *                           measured for the comparison: a table whose
 *                           redirect reads `ip daddr . tcp dport` from a map
 *                           per family (set up with the nft command), and N
 *                           flips that each send one batch (with the
 *                           generation check) deleting and re-adding every
 *                           element with the other colour's port, then dump
 *                           both maps back and check the ports: median, p99
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
#include <libnftnl/set.h>
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

	make_cfg(v4, v6);
	cfg.netfilter.backend = strcmp(backend, "nftables") == 0 ? CFG_NF_NFTABLES
	                        : strcmp(backend, "auto") == 0   ? CFG_NF_AUTO
	                                                         : CFG_NF_IPTABLES;
	if (t == NULL || nf_install(&cfg, CFG_BLUE, err, sizeof(err)) < 0) {
		fprintf(stderr, "nfbench: install: %s\n", t ? err : "out of memory");
		return 1;
	}
	for (int i = 0; i < n; i++) {
		double s = now_us();

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

/* mapflips: the element messages of one map: delete all, add all with the
 * ports of colour c (0 blue, 1 green). */
static void map_msgs(char *buf, size_t *len, uint32_t *seq, int *n, int v6, int first, int count,
                     int c)
{
	for (int op = 0; op < 2; op++) {
		struct nftnl_set *set = nftnl_set_alloc();
		struct nlmsghdr *nlh;

		nftnl_set_set_str(set, NFTNL_SET_TABLE, "sybench");
		nftnl_set_set_str(set, NFTNL_SET_NAME, v6 ? "m6" : "m4");
		for (int i = first; i < first + count; i++) {
			struct nftnl_set_elem *e = nftnl_set_elem_alloc();
			uint8_t key[20] = {0};
			uint16_t port = htons((uint16_t)(1000 + i)),
			         to = htons((uint16_t)((c ? 9443 : 8443) + i));
			int alen = v6 ? 16 : 4;

			if (v6) {
				key[0] = 0xfd;
				key[15] = (uint8_t)i;
			} else {
				key[0] = 198;
				key[1] = 18;
				key[3] = (uint8_t)i;
			}
			memcpy(key + alen, &port, 2);
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, (uint32_t)alen + 4);
			if (op == 1)
				nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &to, 2);
			nftnl_set_elem_add(set, e);
		}
		nlh =
		    nftnl_nlmsg_build_hdr(buf + *len, op ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM,
		                          NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK, ++*seq);
		nftnl_set_elems_nlmsg_build_payload(nlh, set);
		nftnl_set_free(set);
		*len += NLMSG_ALIGN(nlh->nlmsg_len);
		(*n)++;
	}
}

static int elem_port_cb(struct nftnl_set_elem *e, void *data)
{
	uint32_t len = 0;
	const uint8_t *d = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);

	if (d != NULL && len >= 2)
		((int *)data)[(d[0] << 8 | d[1]) >= 9443]++;
	return 0;
}

/* Dumps one map and counts its elements per colour. */
static int map_read(struct nft_nl *nl, int v6, int counts[2])
{
	char buf[32768] __attribute__((aligned(8)));
	struct nftnl_set *set = nftnl_set_alloc();
	struct nlmsghdr *nlh =
	    nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, ++nl->seq);
	uint32_t seq = nl->seq;
	int rc = -1;

	nftnl_set_set_str(set, NFTNL_SET_TABLE, "sybench");
	nftnl_set_set_str(set, NFTNL_SET_NAME, v6 ? "m6" : "m4");
	nftnl_set_elems_nlmsg_build_payload(nlh, set);
	nftnl_set_free(set);
	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (;;) {
		ssize_t r = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		int rest = (int)r;

		if (r <= 0)
			return -1;
		for (; mnl_nlmsg_ok(h, rest); h = mnl_nlmsg_next(h, &rest)) {
			struct nftnl_set *s;

			if (h->nlmsg_seq != seq)
				continue;
			if (h->nlmsg_type == NLMSG_DONE)
				return rc == -1 ? 0 : rc;
			if (h->nlmsg_type == NLMSG_ERROR)
				return -1;
			s = nftnl_set_alloc();
			if (nftnl_set_elems_nlmsg_parse(h, s) == 0)
				nftnl_set_elem_foreach(s, elem_port_cb, counts);
			nftnl_set_free(s);
		}
	}
}

static int bench_mapflips(int n, int v4, int v6)
{
	char cmd[4096], err[512];
	double *t = calloc((size_t)n, sizeof(double));
	char *buf = malloc(65536);
	struct nft_nl nl;
	uint32_t gen = 0;
	int failed = 0, used;

	used = snprintf(
	    cmd, sizeof(cmd),
	    "nft -f - <<'EOF'\ntable inet sybench {\n"
	    " map m4 { type ipv4_addr . inet_service : inet_service; }\n"
	    " map m6 { type ipv6_addr . inet_service : inet_service; }\n"
	    " chain pre { type nat hook prerouting priority -101;"
	    " meta nfproto ipv4 meta l4proto tcp redirect to : ip daddr . tcp dport map @m4;"
	    " meta nfproto ipv6 meta l4proto tcp redirect to : ip6 daddr . tcp dport map @m6; }\n"
	    "}\n");
	for (int i = 1; i <= v4; i++)
		used += snprintf(cmd + used, sizeof(cmd) - (size_t)used,
		                 "add element inet sybench m4 { 198.18.0.%d . %d : %d }\n", i,
		                 1000 + i, 8443 + i);
	for (int i = v4 + 1; i <= v4 + v6; i++)
		used += snprintf(cmd + used, sizeof(cmd) - (size_t)used,
		                 "add element inet sybench m6 { fd00::%x . %d : %d }\n", i,
		                 1000 + i, 8443 + i);
	snprintf(cmd + used, sizeof(cmd) - (size_t)used, "EOF\n");
	if (t == NULL || buf == NULL || system(cmd) != 0 ||
	    nft_nl_open(&nl, err, sizeof(err)) < 0 || nft_nl_gen(&nl, &gen, err, sizeof(err)) < 0) {
		fprintf(stderr, "nfbench: mapflips setup failed\n");
		return 1;
	}
	for (int k = 0; k < n; k++) {
		double s = now_us();
		size_t len = 0;
		int nmsg = 0, c4[2] = {0, 0}, c6[2] = {0, 0}, c = (k & 1) ? 0 : 1;
		uint32_t seq = nl.seq + 1;

		map_msgs(buf, &len, &seq, &nmsg, 0, 1, v4, c);
		map_msgs(buf, &len, &seq, &nmsg, 1, v4 + 1, v6, c);
		if (nft_nl_batch(&nl, gen, buf, len, nmsg, err, sizeof(err)) < 0 ||
		    map_read(&nl, 0, c4) < 0 || map_read(&nl, 1, c6) < 0 || c4[c] != v4 ||
		    c6[c] != v6) {
			failed++;
			if (failed < 5)
				fprintf(stderr, "nfbench: mapflip %d: %s\n", k, err);
		}
		gen++;
		t[k] = now_us() - s;
	}
	nft_nl_close(&nl);
	/* Gone again, so that the next round's setup starts from nothing. */
	if (system("nft delete table inet sybench") != 0)
		fprintf(stderr, "nfbench: could not delete table inet sybench\n");
	report("map", v4, v6, t, n, failed);
	free(t);
	free(buf);
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
	if (argc == 5 && strcmp(argv[1], "mapflips") == 0)
		return bench_mapflips(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
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
	    "usage: nfbench flips N V4 V6 [BACKEND] | mapflips N V4 V6 | raw N | kernel N | ctfill N | count REPS\n");
	return 2;
}
