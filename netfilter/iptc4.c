/*
 * iptc4.c: the IPv4 half of struct nf_fam, on libip4tc (legacy x_tables).
 * Builds and parses the two entry shapes described in nf_int.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <libiptc/libiptc.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_addrtype.h>
#include <linux/netfilter/xt_conntrack.h>
#include <linux/netfilter/xt_tcpudp.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"

#define MATCH_HDR  XT_ALIGN(sizeof(struct xt_entry_match))
#define TARGET_HDR XT_ALIGN(sizeof(struct xt_entry_target))

/* libiptc declares chain names as xt_chainlabel, a char[32], and may read all
 * 32 bytes: hand it a zero-padded copy, never a shorter string literal. */
static const char *label(xt_chainlabel buf, const char *chain)
{
	memset(buf, 0, sizeof(xt_chainlabel));
	strncpy(buf, chain, sizeof(xt_chainlabel) - 1);
	return buf;
}

static void *f4_init(const char *table)
{
	return iptc_init(table);
}

static void f4_free(void *h)
{
	iptc_free(h);
}

static int f4_commit(void *h)
{
	return iptc_commit(h);
}

static const char *f4_strerror(int err)
{
	return iptc_strerror(err);
}

static int f4_is_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return iptc_is_chain(label(l, chain), h);
}

static int f4_create_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return iptc_create_chain(label(l, chain), h);
}

static int f4_flush(const char *chain, void *h)
{
	xt_chainlabel l;

	return iptc_flush_entries(label(l, chain), h);
}

static int f4_delete_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return iptc_delete_chain(label(l, chain), h);
}

static const void *f4_first(const char *chain, void *h)
{
	xt_chainlabel l;

	return iptc_first_rule(label(l, chain), h);
}

static const void *f4_next(const void *prev, void *h)
{
	return iptc_next_rule(prev, h);
}

static const char *f4_target(const void *e, void *h)
{
	return iptc_get_target(e, h);
}

static int f4_insert(const char *chain, const void *e, unsigned num, void *h)
{
	xt_chainlabel l;

	return iptc_insert_entry(label(l, chain), e, num, h);
}

static int f4_replace(const char *chain, const void *e, unsigned num, void *h)
{
	xt_chainlabel l;

	return iptc_replace_entry(label(l, chain), e, num, h);
}

static int f4_append(const char *chain, const void *e, void *h)
{
	xt_chainlabel l;

	return iptc_append_entry(label(l, chain), e, h);
}

static int f4_delete_num(const char *chain, unsigned num, void *h)
{
	xt_chainlabel l;

	return iptc_delete_num_entry(label(l, chain), num, h);
}

static void f4_parse(const void *entry, const char *target, struct nf_rule *r)
{
	const struct ipt_entry *e = entry;
	const struct xt_entry_target *t;
	const struct nf_nat_ipv4_multi_range_compat *mr;
	unsigned off;

	memset(r, 0, sizeof(*r));
	r->exact = 1;
	if (strcmp(target, NF_CHAIN) == 0)
		r->kind = NF_RK_JUMP;
	else if (strcmp(target, "REDIRECT") == 0)
		r->kind = NF_RK_REDIRECT;
	else if (strcmp(target, "ACCEPT") == 0)
		r->kind = NF_RK_ACCEPT;
	else if (strcmp(target, "DROP") == 0)
		r->kind = NF_RK_DROP;
	else
		r->kind = NF_RK_OTHER;

	if (e->ip.proto != IPPROTO_TCP || e->ip.invflags != 0 || e->ip.flags != 0 ||
	    e->ip.smsk.s_addr != 0 || e->ip.outiface[0] != '\0')
		r->exact = 0;
	if (e->ip.dmsk.s_addr == 0xffffffffu) {
		r->plen = 32;
		memcpy(r->addr, &e->ip.dst.s_addr, 4);
	} else if (e->ip.dmsk.s_addr != 0) {
		r->exact = 0;
	}

	/* The only interface we ever match is -i lo, in guard rules; iptables
	 * masks the name and its terminating NUL. */
	if (e->ip.iniface[0] != '\0') {
		static const unsigned char lo_mask[IFNAMSIZ] = {0xff, 0xff, 0xff};

		if (strcmp(e->ip.iniface, "lo") == 0 &&
		    memcmp(e->ip.iniface_mask, lo_mask, IFNAMSIZ) == 0)
			r->lo = 1;
		else
			r->exact = 0;
	}

	for (off = sizeof(*e); off + sizeof(struct xt_entry_match) <= e->target_offset;) {
		const struct xt_entry_match *m = (const void *)((const char *)e + off);
		size_t psize = m->u.match_size - MATCH_HDR;

		if (m->u.match_size < MATCH_HDR)
			break;
		if (strcmp(m->u.user.name, "tcp") == 0 && psize >= sizeof(struct xt_tcp) &&
		    r->kind != NF_RK_JUMP && r->dport == 0) {
			const struct xt_tcp *tcp = (const void *)m->data;

			/* xt_tcp ports are in host byte order; a rule that
			 * matches every source port has spts 0..65535. */
			if (tcp->spts[0] != 0 || tcp->spts[1] != 0xffff ||
			    tcp->dpts[0] != tcp->dpts[1] || tcp->option != 0 ||
			    tcp->flg_mask != 0 || tcp->invflags != 0)
				r->exact = 0;
			r->dport = tcp->dpts[0];
		} else if (strcmp(m->u.user.name, "addrtype") == 0 && m->u.user.revision == 1 &&
		           psize >= sizeof(struct xt_addrtype_info_v1) && r->kind == NF_RK_JUMP &&
		           !r->local) {
			const struct xt_addrtype_info_v1 *at = (const void *)m->data;

			if (at->source != 0 || at->dest != XT_ADDRTYPE_LOCAL || at->flags != 0)
				r->exact = 0;
			r->local = 1;
		} else if (strcmp(m->u.user.name, "conntrack") == 0 && m->u.user.revision == 3 &&
		           psize >= sizeof(struct xt_conntrack_mtinfo3) &&
		           r->kind == NF_RK_ACCEPT && !r->ctdnat) {
			const struct xt_conntrack_mtinfo3 *ctm = (const void *)m->data;

			if (ctm->match_flags != XT_CONNTRACK_STATE || ctm->invert_flags != 0 ||
			    ctm->state_mask != XT_CONNTRACK_STATE_DNAT)
				r->exact = 0;
			r->ctdnat = 1;
		} else {
			r->exact = 0;
		}
		off += m->u.match_size;
	}
	if (r->kind != NF_RK_JUMP && r->dport == 0)
		r->exact = 0;
	if (r->kind != NF_RK_ACCEPT && (r->lo || r->ctdnat))
		r->exact = 0;
	if (r->kind == NF_RK_JUMP && r->plen != 0 && r->local)
		r->exact = 0;

	if (r->kind != NF_RK_REDIRECT)
		return;
	t = (const void *)((const char *)e + e->target_offset);
	if (t->u.target_size < TARGET_HDR + sizeof(*mr)) {
		r->exact = 0;
		return;
	}
	mr = (const void *)t->data;
	/* NAT range ports are in network byte order, unlike xt_tcp's. */
	r->to_port = ntohs(mr->range[0].min.tcp.port);
	if (mr->rangesize != 1 || mr->range[0].flags != NF_NAT_RANGE_PROTO_SPECIFIED ||
	    mr->range[0].min.tcp.port != mr->range[0].max.tcp.port)
		r->exact = 0;
}

static size_t f4_build(const struct nf_rule *r, void *buf, size_t len)
{
	struct ipt_entry *e = buf;
	struct xt_entry_match *m;
	struct xt_entry_target *t;
	size_t off = sizeof(*e), need;

	need = sizeof(*e) + MATCH_HDR + XT_ALIGN(sizeof(struct xt_tcp)) + MATCH_HDR +
	       XT_ALIGN(sizeof(struct xt_conntrack_mtinfo3)) + MATCH_HDR +
	       XT_ALIGN(sizeof(struct xt_addrtype_info_v1)) + TARGET_HDR +
	       XT_ALIGN(sizeof(struct nf_nat_ipv4_multi_range_compat)) +
	       XT_ALIGN(sizeof(struct xt_standard_target));
	if (len < need) {
		errno = EMSGSIZE;
		return 0;
	}
	memset(buf, 0, need);
	e->ip.proto = IPPROTO_TCP;
	if (r->plen == 32) {
		memcpy(&e->ip.dst.s_addr, r->addr, 4);
		e->ip.dmsk.s_addr = 0xffffffffu;
	}
	if (r->lo) {
		strcpy(e->ip.iniface, "lo");
		memset(e->ip.iniface_mask, 0xff, 3);
	}
	if (r->kind != NF_RK_JUMP) {
		struct xt_tcp *tcp;

		m = (void *)((char *)buf + off);
		m->u.match_size = MATCH_HDR + XT_ALIGN(sizeof(*tcp));
		strcpy(m->u.user.name, "tcp");
		tcp = (void *)m->data;
		/* Host byte order, and the full source range: spts 0..0
		 * would match only source port 0 (docs/internals.md, "Rule
		 * numbers, byte orders and jumps"). */
		tcp->spts[0] = 0;
		tcp->spts[1] = 0xffff;
		tcp->dpts[0] = tcp->dpts[1] = r->dport;
		off += m->u.match_size;
	}
	if (r->ctdnat) {
		struct xt_conntrack_mtinfo3 *ctm;

		/* -m conntrack --ctstate DNAT: REDIRECT is a DNAT, so this
		 * is what a redirected connection looks like on INPUT. */
		m = (void *)((char *)buf + off);
		m->u.match_size = MATCH_HDR + XT_ALIGN(sizeof(*ctm));
		strcpy(m->u.user.name, "conntrack");
		m->u.user.revision = 3;
		ctm = (void *)m->data;
		ctm->match_flags = XT_CONNTRACK_STATE;
		ctm->state_mask = XT_CONNTRACK_STATE_DNAT;
		off += m->u.match_size;
	}
	if (r->kind == NF_RK_JUMP && r->local) {
		struct xt_addrtype_info_v1 *at;

		m = (void *)((char *)buf + off);
		m->u.match_size = MATCH_HDR + XT_ALIGN(sizeof(*at));
		strcpy(m->u.user.name, "addrtype");
		m->u.user.revision = 1;
		at = (void *)m->data;
		at->dest = XT_ADDRTYPE_LOCAL;
		off += m->u.match_size;
	}
	e->target_offset = off;
	t = (void *)((char *)buf + off);
	if (r->kind == NF_RK_REDIRECT) {
		struct nf_nat_ipv4_multi_range_compat *mr;

		t->u.target_size = TARGET_HDR + XT_ALIGN(sizeof(*mr));
		strcpy(t->u.user.name, "REDIRECT");
		mr = (void *)t->data;
		mr->rangesize = 1;
		mr->range[0].flags = NF_NAT_RANGE_PROTO_SPECIFIED;
		/* Network byte order here (docs/internals.md, "Rule numbers,
		 * byte orders and jumps"). */
		mr->range[0].min.tcp.port = mr->range[0].max.tcp.port = htons(r->to_port);
	} else {
		/* A jump to a user chain is a standard target named after the
		 * chain, and so are ACCEPT and DROP; libiptc resolves the
		 * names, and the size must be exactly the aligned standard
		 * target (docs/internals.md, "Rule numbers, byte orders and
		 * jumps"). */
		t->u.target_size = XT_ALIGN(sizeof(struct xt_standard_target));
		strcpy(t->u.user.name, r->kind == NF_RK_ACCEPT ? "ACCEPT"
		                       : r->kind == NF_RK_DROP ? "DROP"
		                                               : NF_CHAIN);
	}
	off += t->u.target_size;
	e->next_offset = off;
	return off;
}

const struct nf_fam nf_fam4 = {
    .af = AF_INET,
    .idx = 0,
    .name = "IPv4",
    .tool = "iptables-legacy",
    .kmod = "ip_tables/iptable_nat",
    .alen = 4,
    .init = f4_init,
    .free = f4_free,
    .commit = f4_commit,
    .strerror = f4_strerror,
    .is_chain = f4_is_chain,
    .create_chain = f4_create_chain,
    .flush = f4_flush,
    .delete_chain = f4_delete_chain,
    .first = f4_first,
    .next = f4_next,
    .target = f4_target,
    .parse = f4_parse,
    .build = f4_build,
    .insert = f4_insert,
    .replace = f4_replace,
    .append = f4_append,
    .delete_num = f4_delete_num,
};
