/*
 * nft_plan.c: the plan of table inet switchyard for a configuration and a
 * live colour (layout in nft_nl.h and docs/netfilter.md), the key each
 * listener has in the port maps, and the comparisons of a read against a
 * plan that the transactions (nft.c) and the drift report (nft_read.c) use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"
#include "netfilter/nft_nl.h"

/* nft's datatype numbers (its src/datatype.h): the map types are written
 * with them so that `nft list` prints addresses and ports. A concatenated
 * type is the component types, 6 bits each. */
#define NFT_TYPE_IPADDR       7
#define NFT_TYPE_IP6ADDR      8
#define NFT_TYPE_INET_SERVICE 13
#define NFT_TYPE_BITS         6

/*
 * The four maps, in the order of their rules in chain services: a
 * listener's address family and whether it is a wildcard pick its map.
 * Exact addresses come first, as in the legacy chain. The configuration
 * refuses two listeners on one port whose addresses overlap (the same
 * address, or a wildcard of the same family), so a key is never wanted
 * twice and a destination matches at most one map.
 */
static const struct {
	const char *name;
	int family;
	uint32_t alen;      /* address bytes in the key; 0: the port alone */
	uint32_t addr_type; /* nft datatype of that address */
} nft_map_kinds[NFT_MAPS] = {
    {"exact4", AF_INET, 4, NFT_TYPE_IPADDR},
    {"any4", AF_INET, 0, 0},
    {"exact6", AF_INET6, 16, NFT_TYPE_IP6ADDR},
    {"any6", AF_INET6, 0, 0},
};

static int map_kind(const struct cfg_listener *l)
{
	int any = nf_addr_is_any(&l->addr);

	for (int k = 0; k < NFT_MAPS; k++)
		if (nft_map_kinds[k].family == l->addr.family &&
		    (nft_map_kinds[k].alen == 0) == any)
			return k;
	return 0; /* not reached: validated families only */
}

const char *nft_listener_key(const struct cfg_listener *l, uint8_t key[NFT_KEY_MAX], uint32_t *klen)
{
	int k = map_kind(l);
	uint32_t alen = nft_map_kinds[k].alen;
	uint16_t port = htons(l->port);

	memset(key, 0, NFT_KEY_MAX);
	memcpy(key, l->addr.a.v6, alen);
	memcpy(key + alen, &port, sizeof(port));
	/* In a concatenation every component takes whole 4-byte registers. */
	*klen = alen > 0 ? alen + 4 : 2;
	return nft_map_kinds[k].name;
}

void nft_key_text(const struct nft_elem *e, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "";
	uint32_t alen = e->klen == 8 ? 4 : e->klen == 20 ? 16 : 0;

	if (alen == 0 && e->klen != 2) {
		snprintf(buf, len, "(a %u-byte key)", e->klen);
		return;
	}
	if (alen > 0)
		inet_ntop(alen == 4 ? AF_INET : AF_INET6, e->key, a, sizeof(a));
	snprintf(buf, len, "%s%s%u", a, alen > 0 ? " . " : "",
	         e->key[alen] << 8 | e->key[alen + 1]);
}

int nft_validate(const struct cfg *cfg, int colour, char *err, size_t errlen)
{
	if (colour != -1 && colour != CFG_BLUE && colour != CFG_GREEN) {
		nf_seterr(err, errlen, "colour %d is neither blue nor green", colour);
		errno = EINVAL;
		return -1;
	}
	for (int i = 0; cfg != NULL && i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		uint16_t b = cfg->instances[CFG_BLUE].ports[i];
		uint16_t g = cfg->instances[CFG_GREEN].ports[i];
		uint8_t ki[NFT_KEY_MAX], kj[NFT_KEY_MAX];
		uint32_t li, lj;
		const char *mi;

		if (l->addr.family != AF_INET && l->addr.family != AF_INET6) {
			nf_seterr(err, errlen,
			          "listener %s: address family %d is neither IPv4 nor IPv6",
			          l->name, l->addr.family);
			errno = EINVAL;
			return -1;
		}
		if (l->port == 0 || b == 0 || g == 0 || b == g) {
			nf_seterr(
			    err, errlen,
			    "listener %s: service port %u, blue port %u and green port %u must be "
			    "non-zero and the instance ports must differ",
			    l->name, l->port, b, g);
			errno = EINVAL;
			return -1;
		}
		/* The configuration refuses this already; a caller that builds
		 * its own (nfctl, nfbench) gets the same answer here, since a
		 * map holds one port per key. */
		mi = nft_listener_key(l, ki, &li);
		for (int j = 0; j < i; j++)
			if (strcmp(mi, nft_listener_key(&cfg->listeners[j], kj, &lj)) == 0 &&
			    li == lj && memcmp(ki, kj, li) == 0) {
				nf_seterr(err, errlen,
				          "listeners %s and %s: the same address and port (map %s "
				          "holds one port per key)",
				          cfg->listeners[j].name, l->name, mi);
				errno = EINVAL;
				return -1;
			}
	}
	return 0;
}

static void plan_chain(struct nft_plan *p, const char *name, const char *type, uint32_t hook,
                       int32_t prio)
{
	struct nft_chain *c = &p->chains[p->nchains++];

	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (type != NULL) {
		c->base = 1;
		snprintf(c->type, sizeof(c->type), "%s", type);
		c->hook = hook;
		c->prio = prio;
	}
}

static struct nft_rule *plan_rule(struct nft_plan *p, const char *chain, int af,
                                  enum nf_rule_kind kind)
{
	struct nft_rule *r = &p->rules[p->nrules++];

	memset(r, 0, sizeof(*r));
	snprintf(r->chain, sizeof(r->chain), "%s", chain);
	r->af = af;
	r->r.kind = kind;
	r->r.exact = 1;
	return r;
}

static void plan_maps(const struct cfg *cfg, enum cfg_colour colour, struct nft_plan *p)
{
	for (int k = 0; k < NFT_MAPS; k++) {
		struct nft_map *m = &p->maps[p->nmaps];
		int n = 0;

		for (int i = 0; i < cfg->nlisteners; i++) {
			const struct cfg_listener *l = &cfg->listeners[i];
			struct nft_elem *e;

			if (map_kind(l) != k)
				continue;
			e = &p->elems[p->nelems++];
			memset(e, 0, sizeof(*e));
			e->map = p->nmaps;
			nft_listener_key(l, e->key, &e->klen);
			e->to_port = cfg->instances[colour].ports[i];
			e->exact = 1;
			e->listener = i;
			n++;
		}
		/* A map without elements and its rule would match nothing. */
		if (n == 0)
			continue;
		memset(m, 0, sizeof(*m));
		snprintf(m->name, sizeof(m->name), "%s", nft_map_kinds[k].name);
		m->flags = NFT_SET_MAP;
		m->key_type =
		    nft_map_kinds[k].alen > 0
		        ? nft_map_kinds[k].addr_type << NFT_TYPE_BITS | NFT_TYPE_INET_SERVICE
		        : NFT_TYPE_INET_SERVICE;
		m->key_len = nft_map_kinds[k].alen > 0 ? nft_map_kinds[k].alen + 4 : 2;
		m->data_type = NFT_TYPE_INET_SERVICE;
		m->data_len = 2;
		m->size = CFG_MAX_LISTENERS;
		p->nmaps++;
	}
}

/*
 * The whole table for cfg with every listener pointing at colour. A
 * wildcard listener (0.0.0.0 or ::) is looked up only for destinations of
 * `fib daddr type local`, so that neither this host's own connections to
 * other machines nor forwarded traffic on the same port is captured; a
 * listener on an address is looked up by that destination and port. The
 * guard (supervisor.filter_guard) is the legacy one: per instance port,
 * loopback and redirected connections are accepted, everything else
 * dropped.
 */
void nft_plan_build(const struct cfg *cfg, enum cfg_colour colour, struct nft_plan *p)
{
	int guard = cfg->supervisor.filter_guard && cfg->nlisteners > 0;

	memset(p, 0, sizeof(*p));
	plan_chain(p, "prerouting", "nat", NF_INET_PRE_ROUTING, NFT_NAT_PRIO);
	plan_chain(p, "output", "nat", NF_INET_LOCAL_OUT, NFT_NAT_PRIO);
	plan_chain(p, NFT_SVC_CHAIN, NULL, 0, 0);
	if (guard)
		plan_chain(p, "input", "filter", NF_INET_LOCAL_IN, NFT_FILTER_PRIO);
	plan_maps(cfg, colour, p);
	for (int k = 0; k < 2; k++) {
		struct nft_rule *r = plan_rule(p, k == 0 ? "prerouting" : "output", 0, NF_RK_JUMP);

		r->verdict = NFT_JUMP;
		snprintf(r->target, sizeof(r->target), "%s", NFT_SVC_CHAIN);
	}
	for (int m = 0; m < p->nmaps; m++) {
		int k = 0;
		struct nft_rule *r;

		while (strcmp(nft_map_kinds[k].name, p->maps[m].name) != 0)
			k++;
		r = plan_rule(p, NFT_SVC_CHAIN, nft_map_kinds[k].family, NF_RK_REDIRECT);
		snprintf(r->map, sizeof(r->map), "%s", p->maps[m].name);
		r->key_addr = (int)nft_map_kinds[k].alen;
		r->r.local = nft_map_kinds[k].alen == 0;
	}
	for (int af = 0; guard && af < 2; af++) {
		int family = af == 0 ? AF_INET : AF_INET6;
		uint16_t seen[CFG_MAX_LISTENERS * CFG_NCOLOURS];
		int nseen = 0;

		for (int i = 0; i < cfg->nlisteners; i++) {
			if (cfg->listeners[i].addr.family != family)
				continue;
			for (int c = 0; c < CFG_NCOLOURS; c++) {
				uint16_t port = cfg->instances[c].ports[i];
				struct nft_rule *r;
				int dup = 0;

				for (int k = 0; k < nseen; k++)
					dup |= seen[k] == port;
				if (dup)
					continue;
				seen[nseen++] = port;
				r = plan_rule(p, "input", family, NF_RK_ACCEPT);
				r->r.dport = port;
				r->r.lo = 1;
				r = plan_rule(p, "input", family, NF_RK_ACCEPT);
				r->r.dport = port;
				r->r.ctdnat = 1;
				r = plan_rule(p, "input", family, NF_RK_DROP);
				r->r.dport = port;
			}
		}
	}
}

int nft_rule_eq(const struct nft_rule *a, const struct nft_rule *b)
{
	const struct nf_rule *x = &a->r, *y = &b->r;

	return strcmp(a->chain, b->chain) == 0 && a->af == b->af && x->kind == y->kind &&
	       (x->kind != NF_RK_JUMP ||
	        (a->verdict == b->verdict && strcmp(a->target, b->target) == 0)) &&
	       (x->kind != NF_RK_REDIRECT ||
	        (strcmp(a->map, b->map) == 0 && a->key_addr == b->key_addr)) &&
	       x->exact && y->exact && x->plen == y->plen &&
	       (x->plen == 0 || memcmp(x->addr, y->addr, (size_t)x->plen / 8) == 0) &&
	       x->local == y->local && x->dport == y->dport && x->lo == y->lo &&
	       x->ctdnat == y->ctdnat && x->to_port == y->to_port;
}

int nft_chains_match(const struct nft_scan *s, const struct nft_plan *p)
{
	if (s->nchains != p->nchains)
		return 0;
	for (int i = 0; i < p->nchains; i++) {
		const struct nft_chain *want = &p->chains[i];
		int found = 0;

		for (int k = 0; k < s->nchains && !found; k++) {
			const struct nft_chain *c = &s->chains[k];

			found = strcmp(c->name, want->name) == 0 && c->base == want->base &&
			        (!want->base || (strcmp(c->type, want->type) == 0 &&
			                         c->hook == want->hook && c->prio == want->prio));
		}
		if (!found)
			return 0;
	}
	return 1;
}

/* The scan's map of that name with the planned type and size, or -1 (both
 * sides are zeroed before they are filled, so they compare as bytes). */
static int scan_map(const struct nft_scan *s, const struct nft_map *want)
{
	for (int k = 0; k < s->nmaps && k < NFT_SETS_MAX; k++) {
		const struct nft_map *m = &s->maps[k];

		if (strcmp(m->name, want->name) == 0)
			return memcmp(m, want, sizeof(*m)) == 0 ? k : -1;
	}
	return -1;
}

int nft_maps_match(const struct nft_scan *s, const struct nft_plan *p)
{
	if (s->nmaps != p->nmaps)
		return 0;
	for (int i = 0; i < p->nmaps; i++)
		if (scan_map(s, &p->maps[i]) < 0)
			return 0;
	return 1;
}

const struct nft_elem *nft_scan_elem(const struct nft_scan *s, const char *map, const uint8_t *key,
                                     uint32_t klen)
{
	for (int i = 0; i < s->nelems && i < NFT_ELEM_MAX; i++) {
		const struct nft_elem *e = &s->elems[i];

		if (e->klen == klen && memcmp(e->key, key, klen) == 0 &&
		    strcmp(s->maps[e->map].name, map) == 0)
			return e;
	}
	return NULL;
}

/* The elements: one per planned element, with its key (and port), and no
 * others. The kernel lists a map's elements in hash order, so they are
 * looked up by key rather than compared in order. */
static int elems_match(const struct nft_scan *s, const struct nft_plan *p, int with_port)
{
	if (s->nelems != p->nelems)
		return 0;
	for (int i = 0; i < p->nelems; i++) {
		const struct nft_elem *want = &p->elems[i];
		const struct nft_elem *e =
		    nft_scan_elem(s, p->maps[want->map].name, want->key, want->klen);

		if (e == NULL || !e->exact || (with_port && e->to_port != want->to_port))
			return 0;
	}
	return 1;
}

int nft_table_matches(const struct nft_scan *s, const struct nft_plan *p, int with_port)
{
	if (!s->table_present || !s->table_ours || !nft_chains_match(s, p) ||
	    !nft_maps_match(s, p) || s->nrules != p->nrules)
		return 0;
	for (int i = 0; i < p->nrules; i++)
		if (!nft_rule_eq(&s->rules[i], &p->rules[i]))
			return 0;
	return elems_match(s, p, with_port);
}
