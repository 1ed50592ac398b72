/*
 * nft_read.c: nf_read for the nftables backend: table inet switchyard read
 * back into struct nf_state, each listener's rule and where it points, and
 * every difference from the plan as drift text.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include "netfilter/nf.h"
#include "netfilter/nft_nl.h"

/* Is r the services rule of listener l? (Its family, address and port.) */
static int rule_for(const struct nft_rule *r, const struct cfg_listener *l)
{
	int any = nft_addr_is_any(&l->addr);

	return strcmp(r->chain, NFT_SVC_CHAIN) == 0 && r->r.kind == NF_RK_JUMP &&
	       r->af == l->addr.family && r->r.dport == l->port && r->r.local == any &&
	       r->r.plen == (any                          ? 0
	                     : l->addr.family == AF_INET6 ? 128
	                                                  : 32) &&
	       (any || memcmp(r->r.addr, l->addr.a.v6, (size_t)r->r.plen / 8) == 0);
}

static void read_listeners(const struct cfg *cfg, const struct nft_scan *s, struct nf_state *st)
{
	int used[NFT_SCAN_MAX] = {0}, nr = s->nrules < NFT_SCAN_MAX ? s->nrules : NFT_SCAN_MAX;

	for (int i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		struct nf_listener_state *ls = &st->listeners[i];
		char want[40];
		int n = 0, m = 0, idx = -1, ok = 1;

		snprintf(want, sizeof(want), NFT_LSN_PREFIX "%s", l->name);
		for (int r = 0; r < nr; r++)
			if (rule_for(&s->rules[r], l)) {
				used[r] = 1;
				n++;
				/* A match that goes anywhere but the listener's
				 * own chain, or was changed, is not ours. */
				ok &= s->rules[r].r.exact && s->rules[r].verdict == NFT_GOTO &&
				      strcmp(s->rules[r].target, want) == 0;
			}
		for (int r = 0; n == 1 && r < nr; r++)
			if (strcmp(s->rules[r].chain, want) == 0) {
				used[r] = 1;
				if (m++ == 0)
					idx = r;
			}
		ls->colour = -1;
		if (n == 0 || (n == 1 && ok && m == 0)) {
			ls->state = NF_RULE_MISSING;
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "listener %s (%s port %u): rule missing", l->name, l->addr.text,
			           l->port);
		} else if (n > 1 || m > 1) {
			ls->state = NF_RULE_DUPLICATE;
			ls->to_port = idx >= 0 ? s->rules[idx].r.to_port : 0;
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "listener %s (%s port %u): %d rules", l->name, l->addr.text,
			           l->port, n > 1 ? n : m);
		} else {
			const struct nf_rule *r = &s->rules[idx].r;
			int exact = ok && r->exact && r->kind == NF_RK_REDIRECT;

			ls->to_port = r->to_port;
			for (int c = 0; c < CFG_NCOLOURS; c++)
				if (exact && r->to_port == cfg->instances[c].ports[i])
					ls->colour = c;
			ls->state = ls->colour < 0 ? NF_RULE_FOREIGN : NF_RULE_OK;
			if (ls->colour < 0)
				nft_append(st->drift_text, sizeof(st->drift_text),
				           "listener %s (%s port %u): rule %s to port %u, which is "
				           "neither blue nor green",
				           l->name, l->addr.text, l->port,
				           exact ? "redirects" : "was changed and redirects",
				           r->to_port);
		}
	}
	for (int r = 0; r < nr; r++)
		if (!used[r] &&
		    (strcmp(s->rules[r].chain, NFT_SVC_CHAIN) == 0 ||
		     strncmp(s->rules[r].chain, NFT_LSN_PREFIX, sizeof(NFT_LSN_PREFIX) - 1) == 0))
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "rule handle %llu of chain %s matches no listener",
			           (unsigned long long)s->rules[r].handle, s->rules[r].chain);
}

/* Jumps, guard and chains: everything but the per-listener rules. */
static void read_frame(const struct cfg *cfg, const struct nft_scan *s, const struct nft_plan *p,
                       struct nf_state *st)
{
	int jumps = 0;

	for (int k = 0; k < 2; k++) {
		const char *hook = k == 0 ? "prerouting" : "output";
		int n = 0, good = 0;

		for (int r = 0; r < s->nrules && r < NFT_SCAN_MAX; r++)
			if (strcmp(s->rules[r].chain, hook) == 0) {
				n++;
				good += s->rules[r].r.kind == NF_RK_JUMP && s->rules[r].r.exact &&
				        s->rules[r].af == 0 && s->rules[r].verdict == NFT_JUMP &&
				        strcmp(s->rules[r].target, NFT_SVC_CHAIN) == 0;
			}
		if (n == 1 && good == 1)
			jumps++;
		else
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "chain %s holds %d rules (%d jumps to %s), expected one jump",
			           hook, n, good, NFT_SVC_CHAIN);
	}
	if (!nft_chains_match(s, p))
		nft_append(st->drift_text, sizeof(st->drift_text),
		           "the chains of table inet %s differ from Switchyard's layout (names, "
		           "types, hooks or priority %d)",
		           NFT_TABLE_NAME, NFT_NAT_PRIO);
	for (int fi = 0; fi < 2; fi++) {
		int fam = fi == 0 ? AF_INET : AF_INET6, has = 0;

		for (int i = 0; i < cfg->nlisteners; i++)
			has |= cfg->listeners[i].addr.family == fam;
		st->chain_present[fi] = has && s->table_present;
		st->jumps_present[fi] = has && jumps == 2;
	}
	/* The guard: the planned input rules, in order, or none at all. */
	{
		int want = 0, have = 0, same = 1, first = 0;

		for (int i = 0; i < p->nrules; i++)
			if (strcmp(p->rules[i].chain, "input") == 0 && want++ == 0)
				first = i;
		for (int r = 0; r < s->nrules && r < NFT_SCAN_MAX; r++) {
			if (strcmp(s->rules[r].chain, "input") != 0)
				continue;
			if (have >= want || !nft_rule_eq(&s->rules[r], &p->rules[first + have], 1))
				same = 0;
			have++;
		}
		if (have != want || !same)
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "filter guard: chain input holds %d rules, expected %d%s", have,
			           want, have == want ? " (some differ)" : "");
	}
}

int nf_nft_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen)
{
	struct nft_scan *s = malloc(sizeof(*s));
	struct nft_plan *p = malloc(sizeof(*p));
	struct nft_nl nl;
	int rc = -1, live = -2;

	memset(st, 0, sizeof(*st));
	st->live = -1;
	st->nlisteners = cfg->nlisteners;
	if (s == NULL || p == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out_free;
	}
	if (nft_nl_open(&nl, err, errlen) < 0)
		goto out_free;
	if (nft_nl_scan(&nl, s, 0, err, errlen) < 0)
		goto out;
	nft_plan_build(cfg, CFG_BLUE, p);
	if (s->table_present && !s->table_ours) {
		nft_append(st->drift_text, sizeof(st->drift_text),
		           "table inet %s exists but Switchyard did not create it", NFT_TABLE_NAME);
		memset(s->rules, 0, sizeof(s->rules));
		s->nrules = 0;
	} else if (!s->table_present) {
		if (cfg->nlisteners > 0)
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "table inet %s is missing", NFT_TABLE_NAME);
	} else {
		if (s->nrules > NFT_SCAN_MAX)
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "table inet %s holds %d rules, only the first %d were examined",
			           NFT_TABLE_NAME, s->nrules, NFT_SCAN_MAX);
		read_frame(cfg, s, p, st);
	}
	read_listeners(cfg, s, st);
	for (int i = 0; i < cfg->nlisteners; i++) {
		const struct nf_listener_state *ls = &st->listeners[i];

		if (ls->state != NF_RULE_OK || (live != -2 && live != ls->colour)) {
			live = -1;
			break;
		}
		live = ls->colour;
	}
	st->live = live >= 0 ? live : -1;
	if (live == -1) {
		int c0 = -1, mixed = 0;

		for (int i = 0; i < cfg->nlisteners; i++) {
			if (st->listeners[i].state != NF_RULE_OK)
				continue;
			if (c0 >= 0 && st->listeners[i].colour != c0)
				mixed = 1;
			c0 = st->listeners[i].colour;
		}
		if (mixed)
			nft_append(st->drift_text, sizeof(st->drift_text),
			           "listeners point at different colours");
	}
	st->drift = st->drift_text[0] != '\0';
	rc = 0;
out:
	nft_nl_close(&nl);
out_free:
	free(p);
	free(s);
	return rc;
}
