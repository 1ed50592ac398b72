/*
 * nft_nl.c: nf_tables netlink for the nftables backend: the socket, reading
 * table inet switchyard back into family-neutral rules, a flip's one-exchange
 * read-back, the probe for `auto`, and the coexistence
 * warning (nf_check_nft), which lists nat chains over the same netlink
 * instead of running the nft command.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/gen.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"
#include "netfilter/nft_nl.h"

/* How long one answer may take before the call fails (a kernel that never
 * answers must not hang a flip). */
#define NFT_RECV_TIMEOUT_MS 5000
/* A dump interrupted by a concurrent commit is read again, a bounded number
 * of times: a writer committing without pause must not hang us. */
#define NFT_DUMP_TRIES 100

int nft_nl_open(struct nft_nl *nl, char *err, size_t errlen)
{
	struct timeval tv = {NFT_RECV_TIMEOUT_MS / 1000, (NFT_RECV_TIMEOUT_MS % 1000) * 1000};
	int one = 1;

	memset(nl, 0, sizeof(*nl));
	nl->sock = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
	if (nl->sock == NULL) {
		nft_nl_error("open a netfilter netlink socket", err, errlen);
		return -1;
	}
	if (mnl_socket_bind(nl->sock, 0, MNL_SOCKET_AUTOPID) < 0) {
		int e = errno;

		mnl_socket_close(nl->sock);
		nl->sock = NULL;
		errno = e;
		nft_nl_error("bind a netfilter netlink socket", err, errlen);
		return -1;
	}
	setsockopt(mnl_socket_get_fd(nl->sock), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* Errors without a copy of the request: a refused read-back request
	 * with many keys must still fit one receive buffer. */
	setsockopt(mnl_socket_get_fd(nl->sock), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	nl->portid = mnl_socket_get_portid(nl->sock);
	nl->seq = (uint32_t)time(NULL);
	return 0;
}

void nft_nl_close(struct nft_nl *nl)
{
	if (nl->sock != NULL)
		mnl_socket_close(nl->sock);
	nl->sock = NULL;
}

void nft_nl_error(const char *what, char *err, size_t errlen)
{
	int e = errno;

	switch (e) {
	case EPERM:
	case EACCES:
		nf_seterr(err, errlen,
		          "nftables: %s: permission denied (%s): not root (nf_tables needs "
		          "CAP_NET_ADMIN in this network namespace)",
		          what, strerror(e));
		break;
	case EPROTONOSUPPORT:
	case EAFNOSUPPORT:
	case EOPNOTSUPP:
		nf_seterr(err, errlen,
		          "nftables: %s: %s: the kernel has no nf_tables (CONFIG_NF_TABLES, module "
		          "nf_tables)",
		          what, strerror(e));
		break;
	case EBUSY:
		nf_seterr(err, errlen,
		          "nftables: %s: %s: the kernel refused the change (EBUSY: an object is in "
		          "use, or another transaction holds it)",
		          what, strerror(e));
		break;
	case ENOBUFS:
		nf_seterr(err, errlen,
		          "nftables: %s: %s: netlink answers were lost (ENOBUFS: receive buffer "
		          "full); the state is read back before anything is trusted",
		          what, strerror(e));
		break;
	case EAGAIN:
		nf_seterr(err, errlen, "nftables: %s: the kernel did not answer within %d ms", what,
		          NFT_RECV_TIMEOUT_MS);
		break;
	default:
		nf_seterr(err, errlen, "nftables: %s: %s", what, strerror(e));
		break;
	}
	errno = e;
}

/* Reads and drops the rest of a dump up to its NLMSG_DONE. */
static void drain_dump(struct nft_nl *nl, char *buf, size_t len)
{
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, buf, len);
		const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
		int rest = (int)n;

		if (n <= 0)
			return;
		for (; mnl_nlmsg_ok(h, rest); h = mnl_nlmsg_next(h, &rest))
			if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
				return;
	}
}

/*
 * Sends one request and runs cb on every answer until the kernel is done.
 * A dump that a concurrent commit interrupted (NLM_F_DUMP_INTR: the kernel
 * cannot promise a consistent listing) fails with EINTR after the rest of it
 * has been read off the socket, so the caller can read again.
 */
static int talk(struct nft_nl *nl, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[NFT_NL_BUF] __attribute__((aligned(8)));
	uint32_t seq = nlh->nlmsg_seq;
	int ret, dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;

	if (mnl_socket_sendto(nl->sock, nlh, nlh->nlmsg_len) < 0)
		return -1;
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl->sock, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EWOULDBLOCK)
				errno = EAGAIN;
			return -1;
		}
		ret = mnl_cb_run(buf, (size_t)n, seq, nl->portid, cb, data);
		/* A request without NLM_F_ACK that is not a dump has one
		 * answer: the message (or an error, which is -1 here). */
		if (ret == MNL_CB_OK && !dump && !(nlh->nlmsg_flags & NLM_F_ACK))
			return 0;
		if (ret < 0 && errno == EINTR && dump) {
			const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
			int rest = (int)n, done = 0;

			/* Was NLMSG_DONE already in this buffer? */
			for (; mnl_nlmsg_ok(h, rest); h = mnl_nlmsg_next(h, &rest))
				done |= h->nlmsg_type == NLMSG_DONE;
			if (!done)
				drain_dump(nl, buf, sizeof(buf));
			errno = EINTR;
			return -1;
		}
		if (ret <= MNL_CB_STOP)
			return ret < 0 ? -1 : 0;
	}
}

static int gen_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_gen *g = nftnl_gen_alloc();

	if (g == NULL)
		return MNL_CB_ERROR;
	if (nftnl_gen_nlmsg_parse(nlh, g) == 0)
		*(uint32_t *)data = nftnl_gen_get_u32(g, NFTNL_GEN_ID);
	nftnl_gen_free(g);
	return MNL_CB_OK;
}

static int table_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_scan *s = data;
	struct nftnl_table *t = nftnl_table_alloc();
	const void *ud;
	uint32_t len = 0;

	if (t == NULL)
		return MNL_CB_ERROR;
	if (nftnl_table_nlmsg_parse(nlh, t) == 0) {
		s->table_present = 1;
		ud = nftnl_table_get_data(t, NFTNL_TABLE_USERDATA, &len);
		s->table_ours = ud != NULL &&
		                memmem(ud, len, NFT_OWNER_MARK, sizeof(NFT_OWNER_MARK) - 1) != NULL;
	}
	nftnl_table_free(t);
	return MNL_CB_OK;
}

static const char *hook_name(uint32_t hook)
{
	switch (hook) {
	case NF_INET_PRE_ROUTING:
		return "prerouting";
	case NF_INET_LOCAL_IN:
		return "input";
	case NF_INET_FORWARD:
		return "forward";
	case NF_INET_LOCAL_OUT:
		return "output";
	case NF_INET_POST_ROUTING:
		return "postrouting";
	}
	return "?";
}

static const char *family_name(uint32_t f)
{
	switch (f) {
	case NFPROTO_INET:
		return "inet";
	case NFPROTO_IPV4:
		return "ip";
	case NFPROTO_IPV6:
		return "ip6";
	}
	return "other";
}

static int chain_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_scan *s = data;
	struct nftnl_chain *c = nftnl_chain_alloc();
	const char *table, *name, *type;
	uint32_t fam, hook;
	int32_t prio;

	if (c == NULL)
		return MNL_CB_ERROR;
	if (nftnl_chain_nlmsg_parse(nlh, c) < 0)
		goto out;
	table = nftnl_chain_get_str(c, NFTNL_CHAIN_TABLE);
	name = nftnl_chain_get_str(c, NFTNL_CHAIN_NAME);
	fam = nftnl_chain_get_u32(c, NFTNL_CHAIN_FAMILY);
	if (table == NULL || name == NULL)
		goto out;
	hook = nftnl_chain_get_u32(c, NFTNL_CHAIN_HOOKNUM);
	prio = nftnl_chain_get_s32(c, NFTNL_CHAIN_PRIO);
	type =
	    nftnl_chain_is_set(c, NFTNL_CHAIN_TYPE) ? nftnl_chain_get_str(c, NFTNL_CHAIN_TYPE) : "";
	if (fam == NFPROTO_INET && strcmp(table, NFT_TABLE_NAME) == 0) {
		if (s->nchains < (int)(sizeof(s->chains) / sizeof(s->chains[0]))) {
			struct nft_chain *ch = &s->chains[s->nchains];

			memset(ch, 0, sizeof(*ch));
			snprintf(ch->name, sizeof(ch->name), "%s", name);
			ch->base = nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM);
			if (ch->base) {
				snprintf(ch->type, sizeof(ch->type), "%s", type);
				ch->hook = hook;
				ch->prio = prio;
			}
		}
		s->nchains++;
	} else if (nftnl_chain_is_set(c, NFTNL_CHAIN_HOOKNUM) && strcmp(type, "nat") == 0 &&
	           (hook == NF_INET_PRE_ROUTING || hook == NF_INET_LOCAL_OUT) &&
	           (fam == NFPROTO_INET || fam == NFPROTO_IPV4 || fam == NFPROTO_IPV6)) {
		if (s->other_nat++ < 8) {
			size_t used = strlen(s->other_text);

			snprintf(s->other_text + used, sizeof(s->other_text) - used,
			         "%s%s %s %s (%s, priority %d)", used ? ", " : "", family_name(fam),
			         table, name, hook_name(hook), prio);
		}
	}
out:
	nftnl_chain_free(c);
	return MNL_CB_OK;
}

/*
 * Reads one rule in the only forms this backend writes back into a
 * family-neutral nf_rule (exact 0 when anything else is in it):
 *   meta nfproto F [fib daddr type local] meta l4proto tcp
 *       redirect to : [ip|ip6 daddr .] tcp dport map @M -> NF_RK_REDIRECT
 *   jump services                                        -> NF_RK_JUMP
 *   meta nfproto F [iifname "lo"] meta l4proto tcp tcp dport P
 *       [ct status & dnat != 0] accept|drop      -> NF_RK_ACCEPT, NF_RK_DROP
 * Every load (meta, payload, fib, ct) is remembered with its register
 * until a cmp or a lookup consumes it; a load nothing consumes, or a
 * consumer that reads another register, is not a rule we wrote.
 */
enum load { L_NFPROTO, L_L4, L_DADDR, L_DPORT, L_FIB, L_IIF, L_CT, L_CTMASK };

struct parse {
	struct nft_rule *out;
	enum load load[2];
	int off[2]; /* byte offset of the register each load wrote */
	uint32_t alen;
	int nload;
	int lookup_dreg; /* -1 until a lookup wrote a port */
	int tcp;
};

/* The byte offset in the register file of a register number as the
 * kernel accepts and dumps it (16-byte NFT_REG_1..4 or 4-byte
 * NFT_REG32_00..15), or -1 for the verdict register or nonsense. */
static int reg_off(uint32_t reg)
{
	if (reg >= NFT_REG_1 && reg <= NFT_REG_4)
		return (int)(reg - NFT_REG_1) * 16;
	if (reg >= NFT_REG32_00 && reg <= NFT_REG32_15)
		return (int)(reg - NFT_REG32_00) * 4;
	return -1;
}

static void push(struct parse *p, enum load l, uint32_t reg)
{
	if (p->nload >= 2) {
		p->out->r.exact = 0;
		return;
	}
	p->load[p->nload] = l;
	p->off[p->nload++] = reg_off(reg);
}

static void parse_cmp(struct parse *p, struct nftnl_expr *e)
{
	struct nf_rule *r = &p->out->r;
	uint32_t op = nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_OP), len = 0;
	const uint8_t *d = nftnl_expr_get_data(e, NFTNL_EXPR_CMP_DATA, &len);
	static const char lo[16] = "lo";
	enum load l = p->load[0];
	uint32_t v = 1;

	if (p->nload != 1 || reg_off(nftnl_expr_get_u32(e, NFTNL_EXPR_CMP_SREG)) != p->off[0] ||
	    d == NULL || (op != NFT_CMP_EQ && !(op == NFT_CMP_NEQ && l == L_CTMASK))) {
		r->exact = 0;
		p->nload = 0;
		return;
	}
	p->nload = 0;
	if (len == 4)
		memcpy(&v, d, 4);
	switch (l) {
	case L_NFPROTO:
		if (len == 1 && d[0] == NFPROTO_IPV4)
			p->out->af = AF_INET;
		else if (len == 1 && d[0] == NFPROTO_IPV6)
			p->out->af = AF_INET6;
		else
			r->exact = 0;
		break;
	case L_L4:
		if (len == 1 && d[0] == IPPROTO_TCP)
			p->tcp = 1;
		else
			r->exact = 0;
		break;
	case L_DPORT:
		if (len == 2)
			r->dport = (uint16_t)(d[0] << 8 | d[1]);
		else
			r->exact = 0;
		break;
	case L_FIB:
		if (len == 4 && v == RTN_LOCAL)
			r->local = 1;
		else
			r->exact = 0;
		break;
	case L_IIF:
		if (len == sizeof(lo) && memcmp(d, lo, sizeof(lo)) == 0)
			r->lo = 1;
		else
			r->exact = 0;
		break;
	case L_CTMASK:
		if (op == NFT_CMP_NEQ && len == 4 && v == 0)
			r->ctdnat = 1;
		else
			r->exact = 0;
		break;
	default: /* an address compared: we look addresses up in maps */
		r->exact = 0;
		break;
	}
}

/* A lookup consumes the key: [daddr at 0] dport right after it, or the
 * port alone at 0. */
static void parse_lookup(struct parse *p, struct nftnl_expr *e)
{
	struct nft_rule *o = p->out;
	const char *set = nftnl_expr_get_str(e, NFTNL_EXPR_LOOKUP_SET);
	int keyed = p->nload == 2 && p->load[0] == L_DADDR && p->load[1] == L_DPORT &&
	            p->off[0] == 0 && p->off[1] == (int)p->alen;
	int port = p->nload == 1 && p->load[0] == L_DPORT && p->off[0] == 0;

	if (set == NULL || !(keyed || port) ||
	    reg_off(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_SREG)) != 0 ||
	    !nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_DREG) ||
	    (nftnl_expr_is_set(e, NFTNL_EXPR_LOOKUP_FLAGS) &&
	     nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_FLAGS) != 0)) {
		o->r.exact = 0;
	} else {
		snprintf(o->map, sizeof(o->map), "%s", set);
		o->key_addr = keyed ? (int)p->alen : 0;
		p->lookup_dreg = reg_off(nftnl_expr_get_u32(e, NFTNL_EXPR_LOOKUP_DREG));
	}
	p->nload = 0;
}

static int parse_expr(struct nftnl_expr *e, void *data)
{
	struct parse *p = data;
	struct nf_rule *r = &p->out->r;
	const char *name = nftnl_expr_get_str(e, NFTNL_EXPR_NAME);

	if (name == NULL) {
		r->exact = 0;
	} else if (strcmp(name, "meta") == 0) {
		uint32_t key = nftnl_expr_get_u32(e, NFTNL_EXPR_META_KEY);
		uint32_t reg = nftnl_expr_get_u32(e, NFTNL_EXPR_META_DREG);

		if (key == NFT_META_NFPROTO)
			push(p, L_NFPROTO, reg);
		else if (key == NFT_META_L4PROTO)
			push(p, L_L4, reg);
		else if (key == NFT_META_IIFNAME)
			push(p, L_IIF, reg);
		else
			r->exact = 0;
	} else if (strcmp(name, "payload") == 0) {
		uint32_t base = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_BASE);
		uint32_t off = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET);
		uint32_t len = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_LEN);
		uint32_t reg = nftnl_expr_get_u32(e, NFTNL_EXPR_PAYLOAD_DREG);

		if (base == NFT_PAYLOAD_NETWORK_HEADER &&
		    ((p->out->af == AF_INET && off == 16 && len == 4) ||
		     (p->out->af == AF_INET6 && off == 24 && len == 16))) {
			p->alen = len;
			push(p, L_DADDR, reg);
		} else if (base == NFT_PAYLOAD_TRANSPORT_HEADER && p->tcp && off == 2 && len == 2) {
			push(p, L_DPORT, reg);
		} else {
			r->exact = 0;
		}
	} else if (strcmp(name, "fib") == 0) {
		if (nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_RESULT) == NFT_FIB_RESULT_ADDRTYPE &&
		    nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_FLAGS) == NFTA_FIB_F_DADDR)
			push(p, L_FIB, nftnl_expr_get_u32(e, NFTNL_EXPR_FIB_DREG));
		else
			r->exact = 0;
	} else if (strcmp(name, "ct") == 0) {
		if (nftnl_expr_get_u32(e, NFTNL_EXPR_CT_KEY) == NFT_CT_STATUS)
			push(p, L_CT, nftnl_expr_get_u32(e, NFTNL_EXPR_CT_DREG));
		else
			r->exact = 0;
	} else if (strcmp(name, "bitwise") == 0) {
		uint32_t mlen = 0, xlen = 0, m = 0, x = 1;
		const void *md = nftnl_expr_get_data(e, NFTNL_EXPR_BITWISE_MASK, &mlen);
		const void *xd = nftnl_expr_get_data(e, NFTNL_EXPR_BITWISE_XOR, &xlen);

		if (md != NULL && mlen == 4)
			memcpy(&m, md, 4);
		if (xd != NULL && xlen == 4)
			memcpy(&x, xd, 4);
		if (p->nload == 1 && p->load[0] == L_CT && m == IPS_DST_NAT && x == 0 &&
		    reg_off(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_SREG)) == p->off[0] &&
		    reg_off(nftnl_expr_get_u32(e, NFTNL_EXPR_BITWISE_DREG)) == p->off[0])
			p->load[0] = L_CTMASK;
		else
			r->exact = 0;
	} else if (strcmp(name, "cmp") == 0) {
		parse_cmp(p, e);
	} else if (strcmp(name, "lookup") == 0) {
		parse_lookup(p, e);
	} else if (strcmp(name, "immediate") == 0 && p->nload == 0 &&
	           nftnl_expr_is_set(e, NFTNL_EXPR_IMM_VERDICT)) {
		int32_t v = (int32_t)nftnl_expr_get_u32(e, NFTNL_EXPR_IMM_VERDICT);
		const char *ch = nftnl_expr_get_str(e, NFTNL_EXPR_IMM_CHAIN);

		if ((v == NFT_JUMP || v == NFT_GOTO) && ch != NULL) {
			r->kind = NF_RK_JUMP;
			p->out->verdict = v;
			snprintf(p->out->target, sizeof(p->out->target), "%s", ch);
		} else if (v == NF_ACCEPT) {
			r->kind = NF_RK_ACCEPT;
		} else if (v == NF_DROP) {
			r->kind = NF_RK_DROP;
		} else {
			r->exact = 0;
		}
	} else if (strcmp(name, "redir") == 0) {
		uint32_t min = nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MIN);

		if (p->lookup_dreg >= 0 && p->nload == 0 && reg_off(min) == p->lookup_dreg &&
		    (!nftnl_expr_is_set(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) ||
		     nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_REG_PROTO_MAX) == min) &&
		    nftnl_expr_get_u32(e, NFTNL_EXPR_REDIR_FLAGS) == NF_NAT_RANGE_PROTO_SPECIFIED)
			r->kind = NF_RK_REDIRECT;
		else
			r->exact = 0;
	} else {
		r->exact = 0;
	}
	return 0;
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_scan *s = data;
	struct nftnl_rule *nr = nftnl_rule_alloc();
	const char *table, *chain;

	if (nr == NULL)
		return MNL_CB_ERROR;
	if (nftnl_rule_nlmsg_parse(nlh, nr) < 0)
		goto out;
	table = nftnl_rule_get_str(nr, NFTNL_RULE_TABLE);
	chain = nftnl_rule_get_str(nr, NFTNL_RULE_CHAIN);
	if (table == NULL || chain == NULL || strcmp(table, NFT_TABLE_NAME) != 0 ||
	    nftnl_rule_get_u32(nr, NFTNL_RULE_FAMILY) != NFPROTO_INET)
		goto out;
	if (s->nrules < NFT_SCAN_MAX) {
		struct nft_rule *r = &s->rules[s->nrules];
		struct parse p = {.out = r, .lookup_dreg = -1};

		memset(r, 0, sizeof(*r));
		snprintf(r->chain, sizeof(r->chain), "%s", chain);
		r->handle = nftnl_rule_get_u64(nr, NFTNL_RULE_HANDLE);
		r->r.exact = 1;
		r->r.kind = NF_RK_OTHER;
		nftnl_expr_foreach(nr, parse_expr, &p);
		if (p.nload != 0 || r->r.kind == NF_RK_OTHER ||
		    (r->r.kind == NF_RK_REDIRECT && (r->af == 0 || !p.tcp)))
			r->r.exact = 0;
	}
	s->nrules++;
out:
	nftnl_rule_free(nr);
	return MNL_CB_OK;
}

static int set_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nft_scan *s = data;
	struct nftnl_set *set = nftnl_set_alloc();
	const char *table, *name;

	if (set == NULL)
		return MNL_CB_ERROR;
	if (nftnl_set_nlmsg_parse(nlh, set) < 0)
		goto out;
	table = nftnl_set_get_str(set, NFTNL_SET_TABLE);
	name = nftnl_set_get_str(set, NFTNL_SET_NAME);
	if (table == NULL || name == NULL || strcmp(table, NFT_TABLE_NAME) != 0)
		goto out;
	if (s->nmaps < NFT_SETS_MAX) {
		struct nft_map *m = &s->maps[s->nmaps];

		memset(m, 0, sizeof(*m));
		snprintf(m->name, sizeof(m->name), "%s", name);
		/* A name too long for ours is not ours: keep it unequal. */
		if (strlen(name) >= sizeof(m->name))
			m->name[0] = '?';
		m->flags = nftnl_set_get_u32(set, NFTNL_SET_FLAGS);
		m->key_type = nftnl_set_get_u32(set, NFTNL_SET_KEY_TYPE);
		m->key_len = nftnl_set_get_u32(set, NFTNL_SET_KEY_LEN);
		m->data_type = nftnl_set_get_u32(set, NFTNL_SET_DATA_TYPE);
		m->data_len = nftnl_set_get_u32(set, NFTNL_SET_DATA_LEN);
		m->size = nftnl_set_get_u32(set, NFTNL_SET_DESC_SIZE);
		/* Timeouts, expressions or a size we never set: not ours. */
		if (nftnl_set_is_set(set, NFTNL_SET_TIMEOUT) ||
		    nftnl_set_is_set(set, NFTNL_SET_EXPR) ||
		    nftnl_set_is_set(set, NFTNL_SET_EXPRESSIONS))
			m->flags |= 0x80000000u;
	}
	s->nmaps++;
out:
	nftnl_set_free(set);
	return MNL_CB_OK;
}

struct elem_ctx {
	struct nft_scan *s;
	int map;
};

static int elem_one(struct nftnl_set_elem *se, void *data)
{
	struct elem_ctx *c = data;
	struct nft_scan *s = c->s;
	uint32_t klen = 0, dlen = 0;
	const uint8_t *k = nftnl_set_elem_get(se, NFTNL_SET_ELEM_KEY, &klen);
	const uint8_t *d = nftnl_set_elem_get(se, NFTNL_SET_ELEM_DATA, &dlen);

	if (s->nelems < NFT_ELEM_MAX) {
		struct nft_elem *e = &s->elems[s->nelems];

		memset(e, 0, sizeof(*e));
		e->map = c->map;
		e->listener = -1;
		if (k != NULL && klen <= NFT_KEY_MAX) {
			memcpy(e->key, k, klen);
			e->klen = klen;
		}
		if (d != NULL && dlen == 2)
			e->to_port = (uint16_t)(d[0] << 8 | d[1]);
		e->exact = k != NULL && klen <= NFT_KEY_MAX && d != NULL && dlen == 2 &&
		           !nftnl_set_elem_is_set(se, NFTNL_SET_ELEM_TIMEOUT) &&
		           !nftnl_set_elem_is_set(se, NFTNL_SET_ELEM_EXPR) &&
		           !nftnl_set_elem_is_set(se, NFTNL_SET_ELEM_KEY_END);
	}
	s->nelems++;
	return 0;
}

static int elem_cb(const struct nlmsghdr *nlh, void *data)
{
	struct nftnl_set *set = nftnl_set_alloc();

	if (set == NULL)
		return MNL_CB_ERROR;
	if (nftnl_set_elems_nlmsg_parse(nlh, set) == 0)
		nftnl_set_elem_foreach(set, elem_one, data);
	nftnl_set_free(set);
	return MNL_CB_OK;
}

static int scan_once(struct nft_nl *nl, struct nft_scan *s, int others, char *err, size_t errlen);

int nft_nl_gen(struct nft_nl *nl, uint32_t *gen, char *err, size_t errlen)
{
	char buf[256] __attribute__((aligned(8)));
	struct nlmsghdr *nlh;

	/* No NLM_F_ACK: the one NEWGEN answer ends the exchange. */
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETGEN, AF_UNSPEC, 0, ++nl->seq);
	if (talk(nl, nlh, gen_cb, gen) < 0) {
		nft_nl_error("read the ruleset generation", err, errlen);
		return -1;
	}
	return 0;
}

/* One dump of our table's objects of one kind (GETRULE, GETSET), filtered
 * by the kernel to table inet switchyard. */
static int dump_ours(struct nft_nl *nl, uint16_t type, mnl_cb_t cb, void *data, const char *what,
                     char *err, size_t errlen)
{
	char buf[512] __attribute__((aligned(8)));
	struct nlmsghdr *nlh;

	nlh = nftnl_nlmsg_build_hdr(buf, type, NFPROTO_INET, NLM_F_DUMP, ++nl->seq);
	mnl_attr_put_strz(nlh, type == NFT_MSG_GETRULE ? NFTA_RULE_TABLE : NFTA_SET_TABLE,
	                  NFT_TABLE_NAME);
	if (talk(nl, nlh, cb, data) < 0) {
		nft_nl_error(what, err, errlen);
		return -1;
	}
	return 0;
}

/* The elements of every map in s->maps (one dump each: the kernel lists
 * the elements of one named set per request). */
static int elems_once(struct nft_nl *nl, struct nft_scan *s, char *err, size_t errlen)
{
	char buf[512] __attribute__((aligned(8)));

	s->nelems = 0;
	for (int m = 0; m < s->nmaps && m < NFT_SETS_MAX; m++) {
		struct elem_ctx c = {.s = s, .map = m};
		struct nlmsghdr *nlh;

		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP,
		                            ++nl->seq);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, NFT_TABLE_NAME);
		mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, s->maps[m].name);
		if (talk(nl, nlh, elem_cb, &c) < 0) {
			nft_nl_error("list the elements of a map of table inet " NFT_TABLE_NAME,
			             err, errlen);
			return -1;
		}
	}
	return 0;
}

/* One answer of a flip's read-back: an element (one message per key) or,
 * last, the generation, which ends the exchange. */
struct readback_ctx {
	struct nft_scan *s;
	uint32_t gen_seq;
	uint32_t *gen;
	int done;
};

static int readback_cb(const struct nlmsghdr *nlh, void *data)
{
	struct readback_ctx *c = data;
	struct nftnl_set *set;
	struct elem_ctx ec = {.s = c->s, .map = -1};
	const char *name;

	if (NFNL_MSG_TYPE(nlh->nlmsg_type) == NFT_MSG_NEWGEN) {
		if (nlh->nlmsg_seq != c->gen_seq)
			return MNL_CB_OK;
		c->done = 1;
		return gen_cb(nlh, c->gen) == MNL_CB_OK ? MNL_CB_STOP : MNL_CB_ERROR;
	}
	if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFT_MSG_NEWSETELEM)
		return MNL_CB_OK;
	set = nftnl_set_alloc();
	if (set == NULL)
		return MNL_CB_ERROR;
	/* An answer we cannot read, or one for a map we did not ask about,
	 * cannot be placed: the read-back fails and the caller reads the
	 * whole table instead. */
	if (nftnl_set_elems_nlmsg_parse(nlh, set) == 0 &&
	    (name = nftnl_set_get_str(set, NFTNL_SET_NAME)) != NULL)
		for (int m = 0; m < c->s->nmaps && m < NFT_SETS_MAX; m++)
			if (strcmp(c->s->maps[m].name, name) == 0)
				ec.map = m;
	if (ec.map < 0) {
		nftnl_set_free(set);
		errno = EPROTO;
		return MNL_CB_ERROR;
	}
	nftnl_set_elem_foreach(set, elem_one, &ec);
	nftnl_set_free(set);
	return MNL_CB_OK;
}

int nft_nl_readback(struct nft_nl *nl, struct nft_scan *s, void *req, size_t len, uint32_t *gen,
                    char *err, size_t errlen)
{
	enum { NVEC = NFT_ELEM_MAX + 4 };
	char bufs[NVEC][512] __attribute__((aligned(8)));
	char genreq[64] __attribute__((aligned(8)));
	struct mmsghdr vec[NVEC];
	struct iovec iov[2], riov[NVEC];
	struct sockaddr_nl snl = {.nl_family = AF_NETLINK};
	struct msghdr mh = {
	    .msg_name = &snl, .msg_namelen = sizeof(snl), .msg_iov = iov, .msg_iovlen = 2};
	struct nlmsghdr *g;
	struct readback_ctx c = {.s = s, .gen = gen};

	g = nftnl_nlmsg_build_hdr(genreq, NFT_MSG_GETGEN, AF_UNSPEC, 0, ++nl->seq);
	c.gen_seq = g->nlmsg_seq;
	iov[0] = (struct iovec){req, len};
	iov[1] = (struct iovec){genreq, g->nlmsg_len};
	s->nelems = 0;
	if (sendmsg(mnl_socket_get_fd(nl->sock), &mh, 0) < 0) {
		nft_nl_error("send the read-back of the maps", err, errlen);
		return -1;
	}
	/* Requests that are not dumps are answered inside our sendmsg, in
	 * order and one message per element, so every answer is queued now
	 * and a few receive calls take them all (the generation last). */
	while (!c.done) {
		int n;

		for (int i = 0; i < NVEC; i++) {
			riov[i] = (struct iovec){bufs[i], sizeof(bufs[i])};
			vec[i] =
			    (struct mmsghdr){.msg_hdr = {.msg_iov = &riov[i], .msg_iovlen = 1}};
		}
		n = recvmmsg(mnl_socket_get_fd(nl->sock), vec, NVEC, MSG_DONTWAIT, NULL);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			nf_seterr(err, errlen,
			          "nftables: the read-back of the maps ended before the generation "
			          "(answers were lost)");
			errno = EIO;
			return -1;
		}
		if (n < 0) {
			nft_nl_error("read back the maps", err, errlen);
			return -1;
		}
		for (int i = 0; i < n && !c.done; i++) {
			if (vec[i].msg_hdr.msg_flags & MSG_TRUNC) {
				nf_seterr(err, errlen,
				          "nftables: an answer of the read-back was truncated");
				errno = EMSGSIZE;
				return -1;
			}
			if (mnl_cb_run(bufs[i], vec[i].msg_len, 0, nl->portid, readback_cb, &c) <
			    0) {
				nft_nl_error(
				    "read back the elements of the maps of table inet " NFT_TABLE_NAME,
				    err, errlen);
				return -1;
			}
		}
	}
	return 0;
}

int nft_nl_scan(struct nft_nl *nl, struct nft_scan *s, int others, char *err, size_t errlen)
{
	for (int i = 0; i < NFT_DUMP_TRIES; i++) {
		uint32_t gen;

		if (scan_once(nl, s, others, err, errlen) < 0) {
			if (errno != EINTR)
				return -1;
			continue;
		}
		/* Each dump is consistent in itself; the generation tells
		 * whether anyone committed between them. */
		if (nft_nl_gen(nl, &gen, err, errlen) < 0)
			return -1;
		if (gen == s->genid)
			return 0;
	}
	nf_seterr(err, errlen,
	          "nftables: every listing of table inet %s was interrupted by other commits "
	          "(%d attempts)",
	          NFT_TABLE_NAME, NFT_DUMP_TRIES);
	errno = EAGAIN;
	return -1;
}

static int scan_once(struct nft_nl *nl, struct nft_scan *s, int others, char *err, size_t errlen)
{
	char buf[NFT_NL_BUF] __attribute__((aligned(8)));
	struct nlmsghdr *nlh;
	struct nftnl_table *t;
	struct nftnl_chain *c;

	memset(s, 0, sizeof(*s));
	if (nft_nl_gen(nl, &s->genid, err, errlen) < 0)
		return -1;

	t = nftnl_table_alloc();
	if (t == NULL)
		goto oom;
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE_NAME);
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, ++nl->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_table_free(t);
	if (talk(nl, nlh, table_cb, s) < 0 && errno != ENOENT) {
		nft_nl_error("read table inet " NFT_TABLE_NAME, err, errlen);
		return -1;
	}

	/* Chains: only ours unless the caller wants the other tables' nat
	 * chains too; the kernel filters a dump by table when one is given. */
	if (s->table_present || others) {
		c = nftnl_chain_alloc();
		if (c == NULL)
			goto oom;
		nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETCHAIN,
		                            others ? NFPROTO_UNSPEC : NFPROTO_INET, NLM_F_DUMP,
		                            ++nl->seq);
		if (!others) {
			nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, NFT_TABLE_NAME);
			nftnl_chain_nlmsg_build_payload(nlh, c);
		}
		nftnl_chain_free(c);
		if (talk(nl, nlh, chain_cb, s) < 0) {
			nft_nl_error("list chains", err, errlen);
			return -1;
		}
	}
	if (!s->table_present)
		return 0;
	if (dump_ours(nl, NFT_MSG_GETSET, set_cb, s, "list the maps of table inet " NFT_TABLE_NAME,
	              err, errlen) < 0 ||
	    elems_once(nl, s, err, errlen) < 0)
		return -1;
	return dump_ours(nl, NFT_MSG_GETRULE, rule_cb, s,
	                 "list the rules of table inet " NFT_TABLE_NAME, err, errlen);
oom:
	nf_seterr(err, errlen, "nftables: out of memory");
	errno = ENOMEM;
	return -1;
}

int nf_nft_probe(int *nat_chains, char *text, size_t textlen, char *err, size_t errlen)
{
	struct nft_scan *s = malloc(sizeof(*s));
	struct nft_nl nl;
	int rc, e;

	if (s == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (nft_nl_open(&nl, err, errlen) < 0) {
		e = errno;
		free(s);
		errno = e;
		return -1;
	}
	rc = nft_nl_scan(&nl, s, 1, err, errlen);
	e = errno;
	nft_nl_close(&nl);
	if (rc == 0) {
		*nat_chains = s->other_nat;
		if (text != NULL && textlen > 0)
			snprintf(text, textlen, "%s%s", s->other_text,
			         s->other_nat > 8 ? ", ..." : "");
	}
	free(s);
	return rc;
}

void nf_check_nft(char *warn, size_t warnlen)
{
	char list[800], err[256];
	int n = 0;

	if (warn == NULL || warnlen == 0)
		return;
	warn[0] = '\0';
	if (nf_nft_probe(&n, list, sizeof(list), err, sizeof(err)) < 0 || n == 0)
		return;
	snprintf(warn, warnlen,
	         "%d nftables nat chain%s of other tables share the prerouting/output hooks with "
	         "Switchyard's redirect: %s. The first nat chain that decides a new connection "
	         "wins (by priority; at equal priority the most recently registered one), so "
	         "make sure no other rule redirects the service ports",
	         n, n == 1 ? "" : "s", list);
}
