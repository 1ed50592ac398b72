/*
 * iptc6.c: the IPv6 half of struct nf_fam, on libip6tc (legacy x_tables).
 * Builds and parses the two entry shapes described in nf_int.h.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <libiptc/libip6tc.h>
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

static void *f6_init(const char *table)
{
	return ip6tc_init(table);
}

static void f6_free(void *h)
{
	ip6tc_free(h);
}

static int f6_commit(void *h)
{
	return ip6tc_commit(h);
}

static const char *f6_strerror(int err)
{
	return ip6tc_strerror(err);
}

static int f6_is_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return ip6tc_is_chain(label(l, chain), h);
}

static int f6_create_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return ip6tc_create_chain(label(l, chain), h);
}

static int f6_flush(const char *chain, void *h)
{
	xt_chainlabel l;

	return ip6tc_flush_entries(label(l, chain), h);
}

static int f6_delete_chain(const char *chain, void *h)
{
	xt_chainlabel l;

	return ip6tc_delete_chain(label(l, chain), h);
}

static const void *f6_first(const char *chain, void *h)
{
	xt_chainlabel l;

	return ip6tc_first_rule(label(l, chain), h);
}

static const void *f6_next(const void *prev, void *h)
{
	return ip6tc_next_rule(prev, h);
}

static const char *f6_target(const void *e, void *h)
{
	return ip6tc_get_target(e, h);
}

static int f6_insert(const char *chain, const void *e, unsigned num, void *h)
{
	xt_chainlabel l;

	return ip6tc_insert_entry(label(l, chain), e, num, h);
}

static int f6_replace(const char *chain, const void *e, unsigned num, void *h)
{
	xt_chainlabel l;

	return ip6tc_replace_entry(label(l, chain), e, num, h);
}

static int f6_append(const char *chain, const void *e, void *h)
{
	xt_chainlabel l;

	return ip6tc_append_entry(label(l, chain), e, h);
}

static int f6_delete_num(const char *chain, unsigned num, void *h)
{
	xt_chainlabel l;

	return ip6tc_delete_num_entry(label(l, chain), num, h);
}

static void f6_parse(const void *entry, const char *target, struct nf_rule *r)
{
	const struct ip6t_entry *e = entry;
	const struct xt_entry_target *t;
	const struct nf_nat_range *nr;
	static const uint8_t full[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t zero[16];
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

	/* ip6_tables compares the protocol only when IP6T_F_PROTO is set. */
	if (e->ipv6.proto != IPPROTO_TCP || e->ipv6.invflags != 0 ||
	    e->ipv6.flags != IP6T_F_PROTO || memcmp(&e->ipv6.smsk, zero, 16) != 0 ||
	    e->ipv6.outiface[0] != '\0')
		r->exact = 0;
	if (memcmp(&e->ipv6.dmsk, full, 16) == 0) {
		r->plen = 128;
		memcpy(r->addr, &e->ipv6.dst, 16);
	} else if (memcmp(&e->ipv6.dmsk, zero, 16) != 0) {
		r->exact = 0;
	}

	/* The only interface we ever match is -i lo, in guard rules; iptables
	 * masks the name and its terminating NUL. */
	if (e->ipv6.iniface[0] != '\0') {
		static const unsigned char lo_mask[IFNAMSIZ] = {0xff, 0xff, 0xff};

		if (strcmp(e->ipv6.iniface, "lo") == 0 &&
		    memcmp(e->ipv6.iniface_mask, lo_mask, IFNAMSIZ) == 0)
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
	if (t->u.target_size < TARGET_HDR + sizeof(*nr)) {
		r->exact = 0;
		return;
	}
	/* The IPv6 REDIRECT payload is struct nf_nat_range, not the IPv4
	 * multi-range; its ports are in network byte order too. */
	nr = (const void *)t->data;
	r->to_port = ntohs(nr->min_proto.tcp.port);
	if (nr->flags != NF_NAT_RANGE_PROTO_SPECIFIED ||
	    nr->min_proto.tcp.port != nr->max_proto.tcp.port)
		r->exact = 0;
}

static size_t f6_build(const struct nf_rule *r, void *buf, size_t len)
{
	struct ip6t_entry *e = buf;
	struct xt_entry_match *m;
	struct xt_entry_target *t;
	size_t off = sizeof(*e), need;

	need = sizeof(*e) + MATCH_HDR + XT_ALIGN(sizeof(struct xt_tcp)) + MATCH_HDR +
	       XT_ALIGN(sizeof(struct xt_conntrack_mtinfo3)) + MATCH_HDR +
	       XT_ALIGN(sizeof(struct xt_addrtype_info_v1)) + TARGET_HDR +
	       XT_ALIGN(sizeof(struct nf_nat_range)) + XT_ALIGN(sizeof(struct xt_standard_target));
	if (len < need) {
		errno = EMSGSIZE;
		return 0;
	}
	memset(buf, 0, need);
	e->ipv6.proto = IPPROTO_TCP;
	e->ipv6.flags = IP6T_F_PROTO;
	if (r->plen == 128) {
		memcpy(&e->ipv6.dst, r->addr, 16);
		memset(&e->ipv6.dmsk, 0xff, 16);
	}
	if (r->lo) {
		strcpy(e->ipv6.iniface, "lo");
		memset(e->ipv6.iniface_mask, 0xff, 3);
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
		struct nf_nat_range *nr;

		t->u.target_size = TARGET_HDR + XT_ALIGN(sizeof(*nr));
		strcpy(t->u.user.name, "REDIRECT");
		nr = (void *)t->data;
		nr->flags = NF_NAT_RANGE_PROTO_SPECIFIED;
		/* Network byte order here (docs/internals.md, "Rule numbers,
		 * byte orders and jumps"). */
		nr->min_proto.tcp.port = nr->max_proto.tcp.port = htons(r->to_port);
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

const struct nf_fam nf_fam6 = {
    .af = AF_INET6,
    .idx = 1,
    .name = "IPv6",
    .tool = "ip6tables-legacy",
    .kmod = "ip6_tables/ip6table_nat",
    .alen = 16,
    .init = f6_init,
    .free = f6_free,
    .commit = f6_commit,
    .strerror = f6_strerror,
    .is_chain = f6_is_chain,
    .create_chain = f6_create_chain,
    .flush = f6_flush,
    .delete_chain = f6_delete_chain,
    .first = f6_first,
    .next = f6_next,
    .target = f6_target,
    .parse = f6_parse,
    .build = f6_build,
    .insert = f6_insert,
    .replace = f6_replace,
    .append = f6_append,
    .delete_num = f6_delete_num,
};
