/*
 * ct.c: counts the conntrack flows pinned to each instance, with one
 * streaming ctnetlink dump through libnl-nf-3.
 *
 * A REDIRECTed flow shows its service port as the original destination port
 * and the instance port as the reply source port. Requiring both leaves out
 * direct connections to an instance port (health checks, the gate). Every
 * message is parsed and dropped in the callback, so memory stays constant
 * whatever the table size: nfnl_ct_alloc_cache would hold about 330 bytes per
 * entry (docs/internals.md, "Dumping flows").
 *
 * This module never deletes or flushes conntrack entries: with
 * nf_conntrack_tcp_loose=1 (the default) a flow whose entry vanished is
 * picked up again mid-stream, redirected to the new port and reset.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netlink/netfilter/ct.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/netlink.h>

#include "netfilter/nf.h"

/* Large enough that the kernel can fill whole batches of a dump; the dump
 * itself is flow-controlled, so this bounds memory, not correctness. */
#define NF_CT_RCVBUF (2 * 1024 * 1024)

struct ct_ctx {
	const struct cfg *cfg;
	struct nf_flows *flows;
	uint64_t seen;
	int parse_errors;
};

static void ct_add(struct nf_flows *fl, uint8_t state)
{
	switch (state) {
	case TCP_CONNTRACK_ESTABLISHED:
		fl->established++;
		break;
	case TCP_CONNTRACK_FIN_WAIT:
	case TCP_CONNTRACK_CLOSE_WAIT:
	case TCP_CONNTRACK_LAST_ACK:
	case TCP_CONNTRACK_TIME_WAIT:
	case TCP_CONNTRACK_CLOSE:
		fl->closing++;
		break;
	default:
		/* SYN_SENT, SYN_RECV, SYN_SENT2, and NONE (an entry created
		 * without TCP state): not established yet. */
		fl->syn++;
		break;
	}
	fl->total++;
}

/* The nested attribute type inside a (nested) attribute, or NULL. */
static struct nlattr *nest_find(const struct nlattr *nest, int type)
{
	return nest == NULL ? NULL : nla_find(nla_data(nest), nla_len(nest), type);
}

/*
 * One conntrack entry of the dump. The attributes are read in place
 * (CTA_TUPLE_ORIG/REPLY -> CTA_TUPLE_PROTO -> ports, CTA_PROTOINFO ->
 * CTA_PROTOINFO_TCP -> state) instead of through nfnlmsg_ct_parse(), which
 * allocates an object and two addresses per entry and made a 100k-entry count
 * four times slower. Ports in ctnetlink attributes are in network byte order.
 */
static int ct_valid(struct nl_msg *msg, void *arg)
{
	struct ct_ctx *c = arg;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	const struct nfgenmsg *nfg;
	struct nlattr *orig, *reply, *op, *rp, *a, *pi;
	uint16_t odport, rsport;
	uint8_t state = TCP_CONNTRACK_NONE;
	int family;

	c->seen++;
	if (!nlmsg_valid_hdr(nlh, sizeof(*nfg))) {
		c->parse_errors++;
		return NL_SKIP;
	}
	nfg = nlmsg_data(nlh);
	family = nfg->nfgen_family;
	orig = nlmsg_find_attr(nlh, sizeof(*nfg), CTA_TUPLE_ORIG);
	reply = nlmsg_find_attr(nlh, sizeof(*nfg), CTA_TUPLE_REPLY);
	op = nest_find(orig, CTA_TUPLE_PROTO);
	rp = nest_find(reply, CTA_TUPLE_PROTO);
	a = nest_find(op, CTA_PROTO_NUM);
	if (a == NULL || rp == NULL || nla_get_u8(a) != IPPROTO_TCP)
		return NL_OK;
	a = nest_find(op, CTA_PROTO_DST_PORT);
	if (a == NULL)
		return NL_OK;
	odport = ntohs(nla_get_u16(a));
	a = nest_find(rp, CTA_PROTO_SRC_PORT);
	if (a == NULL)
		return NL_OK;
	rsport = ntohs(nla_get_u16(a));
	pi = nest_find(
	    nest_find(nlmsg_find_attr(nlh, sizeof(*nfg), CTA_PROTOINFO), CTA_PROTOINFO_TCP),
	    CTA_PROTOINFO_TCP_STATE);
	if (pi != NULL)
		state = nla_get_u8(pi);
	for (int i = 0; i < c->cfg->nlisteners; i++) {
		const struct cfg_listener *l = &c->cfg->listeners[i];

		if (l->port != odport || l->addr.family != family)
			continue;
		for (int col = 0; col < CFG_NCOLOURS; col++)
			if (c->cfg->instances[col].ports[i] == rsport) {
				ct_add(&c->flows[col], state);
				return NL_OK;
			}
	}
	return NL_OK;
}

static void ct_err(char *err, size_t errlen, const char *what, int nlerr)
{
	const char *why = "";

	if (nlerr == -NLE_PERM)
		why = " (reading conntrack needs root or CAP_NET_ADMIN)";
	else if (nlerr == -NLE_OBJ_NOTFOUND || nlerr == -NLE_OPNOTSUPP ||
	         nlerr == -NLE_PROTO_MISMATCH)
		why = " (is nf_conntrack_netlink available in this kernel?)";
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "conntrack: %s: %s%s", what, nl_geterror(nlerr), why);
}

/* Kernel ABI values of CTA_FILTER_ORIG_FLAGS bits (net/netfilter/
 * nf_internals.h; not exported in the uapi headers). */
#define NF_CTA_FILTER_PROTO_NUM      (1u << 3)
#define NF_CTA_FILTER_PROTO_DST_PORT (1u << 5)

/*
 * Asks for a dump of the TCP entries of one family whose original destination
 * port is port. The kernel (5.8+) then skips every other entry before
 * building a message for it, which is most of the cost of a 100k-entry dump.
 */
static int dump_filtered(struct nl_sock *sk, int family, uint16_t port)
{
	struct nl_msg *msg;
	struct nlattr *t, *p, *f;
	int rc;

	msg = nfnlmsg_alloc_simple(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, NLM_F_DUMP,
	                           (uint8_t)family, 0);
	if (msg == NULL)
		return -NLE_NOMEM;
	t = nla_nest_start(msg, CTA_TUPLE_ORIG);
	p = nla_nest_start(msg, CTA_TUPLE_PROTO);
	nla_put_u8(msg, CTA_PROTO_NUM, IPPROTO_TCP);
	nla_put_u16(msg, CTA_PROTO_DST_PORT, htons(port));
	nla_nest_end(msg, p);
	nla_nest_end(msg, t);
	f = nla_nest_start(msg, CTA_FILTER);
	nla_put_u32(msg, CTA_FILTER_ORIG_FLAGS,
	            NF_CTA_FILTER_PROTO_NUM | NF_CTA_FILTER_PROTO_DST_PORT);
	nla_put_u32(msg, CTA_FILTER_REPLY_FLAGS, 0);
	nla_nest_end(msg, f);
	rc = nl_send_auto(sk, msg);
	nlmsg_free(msg);
	if (rc < 0)
		return rc;
	return nl_recvmsgs_default(sk);
}

int nf_count_flows(const struct cfg *cfg, struct nf_flows flows[CFG_NCOLOURS], char *err,
                   size_t errlen)
{
	struct ct_ctx c = {.cfg = cfg, .flows = flows};
	struct nl_sock *sk;
	int rc = 0;

	memset(flows, 0, sizeof(*flows) * CFG_NCOLOURS);
	sk = nl_socket_alloc();
	if (sk == NULL) {
		snprintf(err, errlen, "conntrack: out of memory");
		errno = ENOMEM;
		return -1;
	}
	rc = nfnl_connect(sk);
	if (rc < 0) {
		ct_err(err, errlen, "cannot open a netfilter netlink socket", rc);
		goto fail;
	}
	nl_socket_set_buffer_size(sk, NF_CT_RCVBUF, 0);
	/* Read several messages per recvmsg instead of libnl's page-sized
	 * default. */
	nl_socket_set_msg_buf_size(sk, 64 * 1024);
	rc = nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, ct_valid, &c);
	if (rc < 0) {
		ct_err(err, errlen, "callback", rc);
		goto fail;
	}
	/* One kernel-filtered dump per distinct (family, service port). */
	for (int i = 0; i < cfg->nlisteners && rc == 0; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		int seen = 0;

		for (int j = 0; j < i; j++)
			if (cfg->listeners[j].port == l->port &&
			    cfg->listeners[j].addr.family == l->addr.family)
				seen = 1;
		if (!seen)
			rc = dump_filtered(sk, l->addr.family, l->port);
	}
	if (rc < 0) {
		/* A kernel older than 5.8 rejects CTA_FILTER: count again
		 * from one unfiltered dump of every family (AF_UNSPEC). */
		memset(flows, 0, sizeof(*flows) * CFG_NCOLOURS);
		nl_socket_free(sk);
		sk = nl_socket_alloc();
		if (sk == NULL || (rc = nfnl_connect(sk)) < 0) {
			ct_err(err, errlen, "cannot open a netfilter netlink socket",
			       sk ? rc : -NLE_NOMEM);
			goto fail;
		}
		nl_socket_set_buffer_size(sk, NF_CT_RCVBUF, 0);
		nl_socket_set_msg_buf_size(sk, 64 * 1024);
		nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, ct_valid, &c);
		rc = nfnl_ct_dump_request(sk);
		if (rc < 0) {
			ct_err(err, errlen, "dump request", rc);
			goto fail;
		}
		rc = nl_recvmsgs_default(sk);
		if (rc < 0) {
			ct_err(err, errlen, "dump", rc);
			goto fail;
		}
	}
	nl_socket_free(sk);
	return 0;
fail:
	nl_socket_free(sk);
	errno = EIO;
	return -1;
}
