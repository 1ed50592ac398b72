/*
 * nft.c: the nftables backend. Switchyard owns one table, inet switchyard
 * (layout in nft_nl.h and docs/netfilter.md), and changes it only in
 * nf_tables batches, each one atomic transaction in the kernel:
 *
 *   read    GETGEN, then our table, its chains, maps, elements and rules
 *           (never anyone else's), or the copy the last verified commit
 *           left (below)
 *   plan    the whole table for the configuration and the live colour
 *   batch   a flip deletes the elements of the port maps and adds them
 *           back with the other colour's ports; anything else (first
 *           install, drift, a changed configuration) deletes and
 *           re-creates the table in the same batch
 *   commit  with NFNL_BATCH_GENID = the generation read: if anyone changed
 *           any ruleset in between the kernel refuses the batch (ERESTART)
 *           and the transaction starts over from a fresh read
 *   verify  the kernel acknowledged the batch, then a read of our table
 *           (after a flip: of the maps' elements) equals the plan
 *
 * Both families are in the one inet table, so IPv4 and IPv6 listeners move
 * in the same transaction: there is no window in which they disagree.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/rtnetlink.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"
#include "netfilter/nft_nl.h"

/* Transactions refused because the generation moved on are retried from a
 * fresh read this many times; a writer that commits faster than we can read
 * and send for this long gets a clear error instead of an endless loop. */
#define NFT_RESTART_TRIES 200
#define NFT_BATCH_CAP     (256 * 1024)
#define NFT_MSG_ROOM      4096

struct nft_batch {
	char *buf;
	size_t len;
	int n;
	uint32_t seq;
};

/* The next message's buffer, or NULL when the batch is full. */
static char *msg_room(struct nft_batch *b)
{
	return NFT_BATCH_CAP - b->len >= NFT_MSG_ROOM ? b->buf + b->len : NULL;
}

static void msg_done(struct nft_batch *b, struct nlmsghdr *nlh)
{
	b->len += NLMSG_ALIGN(nlh->nlmsg_len);
	b->n++;
}

static int add_table(struct nft_batch *b, uint16_t type)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nftnl_udata_buf *ud = NULL;
	struct nlmsghdr *nlh;
	char *m = msg_room(b);

	if (t == NULL || m == NULL) {
		nftnl_table_free(t);
		return -1;
	}
	nftnl_table_set_str(t, NFTNL_TABLE_NAME, NFT_TABLE_NAME);
	if (type == NFT_MSG_NEWTABLE) {
		ud = nftnl_udata_buf_alloc(NFTNL_UDATA_COMMENT_MAXLEN + 16);
		if (ud == NULL ||
		    !nftnl_udata_put_strz(ud, NFTNL_UDATA_TABLE_COMMENT, NFT_OWNER_MARK)) {
			nftnl_udata_buf_free(ud);
			nftnl_table_free(t);
			return -1;
		}
		nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, 0);
		nftnl_table_set_data(t, NFTNL_TABLE_USERDATA, nftnl_udata_buf_data(ud),
		                     nftnl_udata_buf_len(ud));
	}
	nlh = nftnl_nlmsg_build_hdr(
	    m, type, NFPROTO_INET,
	    (uint16_t)(NLM_F_ACK | (type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0)), ++b->seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	nftnl_udata_buf_free(ud);
	nftnl_table_free(t);
	msg_done(b, nlh);
	return 0;
}

static int add_chain(struct nft_batch *b, const struct nft_chain *c)
{
	struct nftnl_chain *ch = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	char *m = msg_room(b);

	if (ch == NULL || m == NULL) {
		nftnl_chain_free(ch);
		return -1;
	}
	nftnl_chain_set_str(ch, NFTNL_CHAIN_TABLE, NFT_TABLE_NAME);
	nftnl_chain_set_str(ch, NFTNL_CHAIN_NAME, c->name);
	if (c->base) {
		nftnl_chain_set_str(ch, NFTNL_CHAIN_TYPE, c->type);
		nftnl_chain_set_u32(ch, NFTNL_CHAIN_HOOKNUM, c->hook);
		nftnl_chain_set_s32(ch, NFTNL_CHAIN_PRIO, c->prio);
		nftnl_chain_set_u32(ch, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	}
	nlh = nftnl_nlmsg_build_hdr(m, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK,
	                            ++b->seq);
	nftnl_chain_nlmsg_build_payload(nlh, ch);
	nftnl_chain_free(ch);
	msg_done(b, nlh);
	return 0;
}

/*
 * A map with nft's own user data (the byte order of key and data), without
 * which `nft list` would print the ports byte-swapped. id names the map
 * within the batch, for the rules that follow it.
 */
static int add_set(struct nft_batch *b, const struct nft_map *mp, uint32_t id)
{
	struct nftnl_set *set = nftnl_set_alloc();
	struct nftnl_udata_buf *ud = nftnl_udata_buf_alloc(64);
	struct nlmsghdr *nlh;
	char *m = msg_room(b);
	/* nft's BYTEORDER_BIG_ENDIAN; a concatenation has none of its own. */
	uint32_t key_order = mp->key_len == 2 ? 2 : 0, data_order = 2;

	if (set == NULL || ud == NULL || m == NULL ||
	    !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_KEYBYTEORDER, key_order) ||
	    !nftnl_udata_put_u32(ud, NFTNL_UDATA_SET_DATABYTEORDER, data_order)) {
		nftnl_udata_buf_free(ud);
		nftnl_set_free(set);
		return -1;
	}
	nftnl_set_set_str(set, NFTNL_SET_TABLE, NFT_TABLE_NAME);
	nftnl_set_set_str(set, NFTNL_SET_NAME, mp->name);
	nftnl_set_set_u32(set, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(set, NFTNL_SET_FLAGS, mp->flags);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_TYPE, mp->key_type);
	nftnl_set_set_u32(set, NFTNL_SET_KEY_LEN, mp->key_len);
	nftnl_set_set_u32(set, NFTNL_SET_DATA_TYPE, mp->data_type);
	nftnl_set_set_u32(set, NFTNL_SET_DATA_LEN, mp->data_len);
	nftnl_set_set_u32(set, NFTNL_SET_ID, id);
	nftnl_set_set_u32(set, NFTNL_SET_DESC_SIZE, mp->size);
	nftnl_set_set_data(set, NFTNL_SET_USERDATA, nftnl_udata_buf_data(ud),
	                   nftnl_udata_buf_len(ud));
	nlh = nftnl_nlmsg_build_hdr(m, NFT_MSG_NEWSET, NFPROTO_INET, NLM_F_CREATE | NLM_F_ACK,
	                            ++b->seq);
	nftnl_set_nlmsg_build_payload(nlh, set);
	nftnl_udata_buf_free(ud);
	nftnl_set_free(set);
	msg_done(b, nlh);
	return 0;
}

/*
 * One message adding (NFT_MSG_NEWSETELEM, with their ports), deleting
 * (NFT_MSG_DELSETELEM, by key) or asking for (NFT_MSG_GETSETELEM, by key,
 * answered without an acknowledgement) the elements of map `map` among es
 * that pick[i] selects (all when pick is NULL). Nothing when none is
 * picked.
 */
static int add_elems(struct nft_batch *b, uint16_t type, const char *map, const struct nft_elem *es,
                     int n, const int *pick)
{
	struct nftnl_set *set = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	char *m = msg_room(b);
	int count = 0;

	if (set == NULL || m == NULL) {
		nftnl_set_free(set);
		return -1;
	}
	nftnl_set_set_str(set, NFTNL_SET_TABLE, NFT_TABLE_NAME);
	nftnl_set_set_str(set, NFTNL_SET_NAME, map);
	for (int i = 0; i < n; i++) {
		struct nftnl_set_elem *e;
		uint16_t to = htons(es[i].to_port);

		if (pick != NULL && !pick[i])
			continue;
		e = nftnl_set_elem_alloc();
		if (e == NULL) {
			nftnl_set_free(set);
			return -1;
		}
		nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, es[i].key, es[i].klen);
		if (type == NFT_MSG_NEWSETELEM)
			nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA, &to, sizeof(to));
		nftnl_set_elem_add(set, e);
		count++;
	}
	if (count > 0) {
		uint16_t flags = type == NFT_MSG_GETSETELEM   ? 0
		                 : type == NFT_MSG_NEWSETELEM ? NLM_F_ACK | NLM_F_CREATE
		                                              : NLM_F_ACK;

		nlh = nftnl_nlmsg_build_hdr(m, type, NFPROTO_INET, flags, ++b->seq);
		nftnl_set_elems_nlmsg_build_payload(nlh, set);
		msg_done(b, nlh);
	}
	nftnl_set_free(set);
	return 0;
}

/* Expressions put their value in register 1; every helper returns 0 or -1
 * (out of memory). */
static int ex(struct nftnl_rule *nr, struct nftnl_expr *e)
{
	if (e == NULL)
		return -1;
	nftnl_rule_add_expr(nr, e);
	return 0;
}

static int ex_meta(struct nftnl_rule *nr, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return ex(nr, e);
}

static int ex_cmp(struct nftnl_rule *nr, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
	}
	return ex(nr, e);
}

static int ex_payload(struct nftnl_rule *nr, uint32_t base, uint32_t off, uint32_t len,
                      uint32_t reg)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, reg);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	}
	return ex(nr, e);
}

static int ex_verdict(struct nftnl_rule *nr, int verdict, const char *chain)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, (uint32_t)verdict);
		if (chain != NULL)
			nftnl_expr_set_str(e, NFTNL_EXPR_IMM_CHAIN, chain);
	}
	return ex(nr, e);
}

static int ex_fib_local(struct nftnl_rule *nr)
{
	struct nftnl_expr *e = nftnl_expr_alloc("fib");
	uint32_t local = RTN_LOCAL;

	if (e != NULL) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
	}
	return ex(nr, e) | ex_cmp(nr, NFT_CMP_EQ, &local, sizeof(local));
}

/* meta nfproto F [iifname "lo"] meta l4proto tcp tcp dport P: the start
 * of a guard rule. */
static int ex_tcp_to(struct nftnl_rule *nr, const struct nft_rule *r)
{
	uint8_t nfproto = r->af == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4, tcp = IPPROTO_TCP;
	uint16_t port = htons(r->r.dport);
	int rc = ex_meta(nr, NFT_META_NFPROTO) | ex_cmp(nr, NFT_CMP_EQ, &nfproto, 1);

	if (r->r.lo) {
		static const char lo[16] = "lo";

		rc |= ex_meta(nr, NFT_META_IIFNAME) | ex_cmp(nr, NFT_CMP_EQ, lo, sizeof(lo));
	}
	rc |= ex_meta(nr, NFT_META_L4PROTO) | ex_cmp(nr, NFT_CMP_EQ, &tcp, 1);
	rc |= ex_payload(nr, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1) |
	      ex_cmp(nr, NFT_CMP_EQ, &port, sizeof(port));
	return rc ? -1 : 0;
}

/*
 * A map's rule, what `nft` makes of
 *   meta nfproto F [fib daddr type local] meta l4proto tcp
 *   redirect to : [ip daddr .] tcp dport map @MAP
 * The key is loaded into consecutive registers from register 1 on, each
 * component padded to 4 bytes (so the port of an IPv4 key sits in 32-bit
 * register 1, that of an IPv6 key in register 4), and the lookup leaves
 * the port in register 1 for redir. A key the map does not hold ends the
 * rule there (NFT_BREAK), so the packet goes on to the next rule.
 */
static int ex_map_redirect(struct nftnl_rule *nr, const struct nft_rule *r)
{
	uint8_t nfproto = r->af == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4, tcp = IPPROTO_TCP;
	uint32_t alen = (uint32_t)r->key_addr;
	int rc = ex_meta(nr, NFT_META_NFPROTO) | ex_cmp(nr, NFT_CMP_EQ, &nfproto, 1);
	struct nftnl_expr *lk, *rd;

	if (r->r.local)
		rc |= ex_fib_local(nr);
	rc |= ex_meta(nr, NFT_META_L4PROTO) | ex_cmp(nr, NFT_CMP_EQ, &tcp, 1);
	if (alen > 0)
		rc |= ex_payload(nr, NFT_PAYLOAD_NETWORK_HEADER, r->af == AF_INET6 ? 24 : 16, alen,
		                 NFT_REG_1);
	rc |= ex_payload(nr, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG32_00 + alen / 4);
	lk = nftnl_expr_alloc("lookup");
	if (lk != NULL) {
		nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(lk, NFTNL_EXPR_LOOKUP_DREG, NFT_REG_1);
		nftnl_expr_set_str(lk, NFTNL_EXPR_LOOKUP_SET, r->map);
	}
	rc |= ex(nr, lk);
	rd = nftnl_expr_alloc("redir");
	if (rd != NULL) {
		nftnl_expr_set_u32(rd, NFTNL_EXPR_REDIR_REG_PROTO_MIN, NFT_REG_1);
		nftnl_expr_set_u32(rd, NFTNL_EXPR_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	}
	return (rc | ex(nr, rd)) ? -1 : 0;
}

static int build_exprs(struct nftnl_rule *nr, const struct nft_rule *r)
{
	int rc = 0;

	switch (r->r.kind) {
	case NF_RK_JUMP:
		return ex_verdict(nr, r->verdict, r->target);
	case NF_RK_REDIRECT:
		return ex_map_redirect(nr, r);
	case NF_RK_ACCEPT:
	case NF_RK_DROP:
		rc = ex_tcp_to(nr, r);
		if (r->r.ctdnat) {
			struct nftnl_expr *ct = nftnl_expr_alloc("ct"), *bw;
			uint32_t mask = IPS_DST_NAT, zero = 0;

			if (ct != NULL) {
				nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_KEY, NFT_CT_STATUS);
				nftnl_expr_set_u32(ct, NFTNL_EXPR_CT_DREG, NFT_REG_1);
			}
			rc |= ex(nr, ct);
			bw = nftnl_expr_alloc("bitwise");
			if (bw != NULL) {
				nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
				nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
				nftnl_expr_set_u32(bw, NFTNL_EXPR_BITWISE_LEN, sizeof(mask));
				nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
				nftnl_expr_set(bw, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
			}
			rc |= ex(nr, bw) | ex_cmp(nr, NFT_CMP_NEQ, &zero, sizeof(zero));
		}
		return rc | ex_verdict(nr, r->r.kind == NF_RK_ACCEPT ? NF_ACCEPT : NF_DROP, NULL);
	case NF_RK_OTHER:
		break;
	}
	return -1;
}

/* Appends rule r to its chain. */
static int add_rule(struct nft_batch *b, const struct nft_rule *r)
{
	struct nftnl_rule *nr = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	char *m = msg_room(b);
	int rc = -1;

	if (nr == NULL || m == NULL)
		goto out;
	nftnl_rule_set_u32(nr, NFTNL_RULE_FAMILY, NFPROTO_INET);
	nftnl_rule_set_str(nr, NFTNL_RULE_TABLE, NFT_TABLE_NAME);
	nftnl_rule_set_str(nr, NFTNL_RULE_CHAIN, r->chain);
	if (build_exprs(nr, r) < 0)
		goto out;
	nlh = nftnl_nlmsg_build_hdr(m, NFT_MSG_NEWRULE, NFPROTO_INET,
	                            NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND, ++b->seq);
	nftnl_rule_nlmsg_build_payload(nlh, nr);
	msg_done(b, nlh);
	rc = 0;
out:
	nftnl_rule_free(nr);
	return rc;
}

static int foreign_error(char *err, size_t errlen)
{
	nf_seterr(err, errlen,
	          "nftables: table inet %s exists but Switchyard did not create it (it has no "
	          "ownership comment); refusing to touch it: rename or delete it (nft delete "
	          "table inet %s) if it is a leftover",
	          NFT_TABLE_NAME, NFT_TABLE_NAME);
	errno = EEXIST;
	return -1;
}

/*
 * Builds the batch that takes the table from s to p (p NULL: remove it).
 * b->n is then the message count, 0 when nothing needs to change.
 */
static int build_batch(const struct nft_scan *s, const struct nft_plan *p, struct nft_batch *b)
{
	if (p == NULL)
		return s->table_present ? add_table(b, NFT_MSG_DELTABLE) : 0;
	if (nft_table_matches(s, p, 0)) {
		/* A flip: the table has the plan's shape and only ports
		 * differ. Per map, the elements whose port changes are
		 * deleted and added back with the new one; the kernel has
		 * no replace for an element, and both messages commit
		 * together, so no packet sees a key without its port. */
		for (int m = 0; m < p->nmaps; m++) {
			int pick[CFG_MAX_LISTENERS] = {0}, n = 0;

			for (int i = 0; i < p->nelems; i++) {
				const struct nft_elem *e = &p->elems[i];
				const struct nft_elem *old;

				if (e->map != m)
					continue;
				old = nft_scan_elem(s, p->maps[m].name, e->key, e->klen);
				pick[i] = old == NULL || old->to_port != e->to_port;
				n += pick[i];
			}
			if (n > 0 && (add_elems(b, NFT_MSG_DELSETELEM, p->maps[m].name, p->elems,
			                        p->nelems, pick) < 0 ||
			              add_elems(b, NFT_MSG_NEWSETELEM, p->maps[m].name, p->elems,
			                        p->nelems, pick) < 0))
				return -1;
		}
		return 0;
	}
	/* Anything else: a fresh table in the same transaction. The
	 * deletion and the creation commit together, so no packet sees a
	 * table without our redirect. */
	if (s->table_present && add_table(b, NFT_MSG_DELTABLE) < 0)
		return -1;
	if (add_table(b, NFT_MSG_NEWTABLE) < 0)
		return -1;
	for (int i = 0; i < p->nchains; i++)
		if (add_chain(b, &p->chains[i]) < 0)
			return -1;
	for (int m = 0; m < p->nmaps; m++) {
		int pick[CFG_MAX_LISTENERS] = {0};

		for (int i = 0; i < p->nelems; i++)
			pick[i] = p->elems[i].map == m;
		if (add_set(b, &p->maps[m], (uint32_t)m + 1) < 0 ||
		    add_elems(b, NFT_MSG_NEWSETELEM, p->maps[m].name, p->elems, p->nelems, pick) <
		        0)
			return -1;
	}
	for (int i = 0; i < p->nrules; i++)
		if (add_rule(b, &p->rules[i]) < 0)
			return -1;
	return 0;
}

/*
 * The process keeps one netlink socket and what its last verified commit
 * left in our table, tagged with the generation that commit produced. A
 * flip plans its batch from that and sends it with that generation: if
 * nobody has committed since, the kernel takes it, and the flip costs one
 * batch and one read-back; if anyone has, the kernel refuses it (ERESTART)
 * and the flip reads everything and tries again.
 * All of it is guarded by nft_mu, which also serialises our transactions.
 */
static pthread_mutex_t nft_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nft_nl nft_sock;
static struct nft_scan *nft_cache;
static int nft_cache_ok;

static void sock_drop(void)
{
	nft_nl_close(&nft_sock);
	nft_cache_ok = 0;
}

/* The shared socket, opened on first use or after an error dropped it. */
static struct nft_nl *sock_get(char *err, size_t errlen)
{
	if (nft_sock.sock == NULL && nft_nl_open(&nft_sock, err, errlen) < 0)
		return NULL;
	return &nft_sock;
}

/* Fills s for a transaction: the cache when there is one (the batch's
 * generation check refuses it if it is stale), else a full read. */
static int txn_read(struct nft_nl *nl, struct nft_scan *s, int *cached, char *err, size_t errlen)
{
	*cached = nft_cache_ok && nft_cache != NULL;
	if (*cached) {
		memcpy(s, nft_cache, sizeof(*s));
		return 0;
	}
	return nft_nl_scan(nl, s, 0, err, errlen);
}

/*
 * Reads back after a commit made from generation genid. A flip changed
 * only map elements: the batch's generation check proved that nobody
 * changed anything between the read it was planned from and the commit, so
 * the table, chains, maps and rules are still those of that read. The flip
 * therefore asks the kernel for each planned key of each map, and for the
 * generation, in one exchange (nft_nl_readback). If the generation is
 * genid + 1, the one our commit made, nobody committed after us either,
 * no other element can have appeared, and the result becomes the cache.
 * If someone did, or a key is missing, the whole table is read and
 * compared instead. Any other batch is read back whole and not cached.
 * SWITCHYARD_TEST_NFT_READBACK (miss: ask for a key no map holds; late:
 * take the generation as moved on) makes tests walk both fallbacks.
 */
static int txn_verify(struct nft_nl *nl, struct nft_scan *s, uint32_t genid,
                      const struct nft_plan *p, struct nft_batch *b, int flipped, char *err,
                      size_t errlen)
{
	const char *test;
	uint32_t gen = 0;

	nft_cache_ok = 0;
	if (p == NULL || !s->table_present || !flipped)
		return nft_nl_scan(nl, s, 0, err, errlen);
	b->len = 0;
	b->n = 0;
	b->seq = nl->seq;
	for (int m = 0; m < p->nmaps; m++) {
		int pick[CFG_MAX_LISTENERS] = {0};

		for (int i = 0; i < p->nelems; i++)
			pick[i] = p->elems[i].map == m;
		if (add_elems(b, NFT_MSG_GETSETELEM, p->maps[m].name, p->elems, p->nelems, pick) <
		    0) {
			nf_seterr(err, errlen, "nftables: out of memory");
			errno = ENOMEM;
			return -1;
		}
	}
	test = getenv("SWITCHYARD_TEST_NFT_READBACK");
	if (test != NULL && strcmp(test, "miss") == 0 && p->nelems > 0) {
		/* Tests: one more key, which no map holds (ENOENT). */
		struct nft_elem bogus = p->elems[0];

		bogus.key[0] ^= 0xff;
		if (add_elems(b, NFT_MSG_GETSETELEM, p->maps[bogus.map].name, &bogus, 1, NULL) <
		    0) {
			nf_seterr(err, errlen, "nftables: out of memory");
			errno = ENOMEM;
			return -1;
		}
	}
	nl->seq = b->seq;
	if (nft_nl_readback(nl, s, b->buf, b->len, &gen, err, errlen) < 0) {
		/* Stray answers may be left: read the table on a fresh socket. */
		sock_drop();
		nl = sock_get(err, errlen);
		if (nl == NULL)
			return -1;
		return nft_nl_scan(nl, s, 0, err, errlen);
	}
	/* Tests: "late" acts as if someone had committed after us. */
	if (gen != genid + 1 || (test != NULL && strcmp(test, "late") == 0))
		return nft_nl_scan(nl, s, 0, err, errlen);
	s->genid = gen;
	if (nft_cache == NULL)
		nft_cache = malloc(sizeof(*nft_cache));
	if (nft_cache != NULL && nft_table_matches(s, p, 1)) {
		memcpy(nft_cache, s, sizeof(*s));
		nft_cache_ok = 1;
	}
	return 0;
}

/*
 * One transaction: read, plan the batch, commit it against the generation
 * read, verify. p NULL removes the table. With foreign_ok, a foreign table
 * is not an error for a removal (it is simply not ours).
 */
static int txn_locked(const struct nft_plan *p, int foreign_ok, char *err, size_t errlen)
{
	struct nft_scan *s = malloc(sizeof(*s));
	struct nft_batch b = {.buf = malloc(NFT_BATCH_CAP)};
	struct nft_nl *nl;
	int rc = -1, attempt, flipped = 0;
	uint32_t genid = 0;

	if (s == NULL || b.buf == NULL) {
		nf_seterr(err, errlen, "out of memory");
		goto out;
	}
	nl = sock_get(err, errlen);
	if (nl == NULL)
		goto out;
	for (attempt = 0; attempt < NFT_RESTART_TRIES; attempt++) {
		int cached;

		if (txn_read(nl, s, &cached, err, errlen) < 0)
			goto out_drop;
		if (s->table_present && !s->table_ours) {
			if (p == NULL && foreign_ok)
				rc = 0;
			else
				foreign_error(err, errlen);
			goto out;
		}
		b.len = 0;
		b.n = 0;
		b.seq = nl->seq + 1; /* the batch begin takes this one */
		if (build_batch(s, p, &b) < 0) {
			nf_seterr(err, errlen, "nftables: cannot build the batch (out of memory)");
			errno = ENOMEM;
			goto out;
		}
		if (b.n == 0) {
			uint32_t gen;

			/* Nothing to send, so no generation check will catch a
			 * stale cache: ask whether it is still current. */
			if (cached) {
				if (nft_nl_gen(nl, &gen, err, errlen) < 0)
					goto out_drop;
				if (gen != s->genid) {
					nft_cache_ok = 0;
					continue;
				}
			}
			rc = 0; /* already as planned: the read was the verification */
			goto out;
		}
		genid = s->genid;
		flipped = p != NULL && nft_table_matches(s, p, 0);
		nft_cache_ok = 0;
		if (nft_nl_batch(nl, genid, b.buf, b.len, b.n, err, errlen) == 0)
			break;
		/* ERESTART: another writer committed since our read. ENOENT on
		 * an element's deletion: it went away under us. Both mean:
		 * read again and start over. */
		if (errno != ERESTART && errno != ENOENT)
			goto out_drop;
	}
	if (attempt == NFT_RESTART_TRIES) {
		nf_seterr(
		    err, errlen,
		    "nftables: the ruleset kept changing during the transaction (%d attempts)",
		    NFT_RESTART_TRIES);
		errno = EAGAIN;
		goto out;
	}
	if (txn_verify(nl, s, genid, p, &b, flipped, err, errlen) < 0)
		goto out_drop;
	if (p == NULL ? s->table_present : !nft_table_matches(s, p, 1)) {
		nf_seterr(err, errlen, "nftables: read back after commit: table inet %s %s",
		          NFT_TABLE_NAME,
		          p == NULL ? "is still there" : "differs from what was committed");
		nft_cache_ok = 0;
		errno = EIO;
		goto out;
	}
	rc = 0;
	goto out;
out_drop:
	/* After a netlink error the socket may hold stray answers: start
	 * the next transaction on a fresh one. */
	{
		int e = errno;

		sock_drop();
		errno = e;
	}
out:
	free(b.buf);
	free(s);
	return rc;
}

static int txn(const struct nft_plan *p, int foreign_ok, char *err, size_t errlen)
{
	int rc, e;

	pthread_mutex_lock(&nft_mu);
	rc = txn_locked(p, foreign_ok, err, errlen);
	e = errno;
	pthread_mutex_unlock(&nft_mu);
	errno = e;
	return rc;
}

static int sync_txn(const struct cfg *cfg, enum cfg_colour colour, char *err, size_t errlen)
{
	struct nft_plan *p;
	int rc;

	if (nft_validate(cfg, (int)colour, err, errlen) < 0)
		return -1;
	p = malloc(sizeof(*p));
	if (p == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	nft_plan_build(cfg, colour, p);
	rc = txn(p, 0, err, errlen);
	free(p);
	return rc;
}

int nf_nft_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen)
{
	return sync_txn(cfg, live, err, errlen);
}

int nf_nft_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen)
{
	return sync_txn(cfg, to, err, errlen);
}

int nf_nft_remove(const struct cfg *cfg, char *err, size_t errlen)
{
	(void)cfg;
	return txn(NULL, 0, err, errlen);
}

int nf_nft_remove_ours(char *err, size_t errlen)
{
	return txn(NULL, 1, err, errlen);
}
