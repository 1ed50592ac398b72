/*
 * nft_read.c: nf_read for the nftables backend: table inet switchyard read
 * back into struct nf_state, each listener's rule and where it points, and
 * every difference from the plan as drift text.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/netfilter/nf_tables.h>

#include "netfilter/nf.h"
#include "netfilter/nft_nl.h"

/*
 * What the rules of chain services make of one planned map: 1 when exactly
 * one rule reads it, is exact and has the planned form; 0 when none does;
 * -1 when one was changed (a match or a verdict of someone else's, another
 * family, another key); -2 when several read it. used[] marks the rules
 * seen.
 */
static int map_rule(const struct nft_scan *s, const struct nft_rule *want, int *used)
{
	int n = 0, ok = 0;

	for (int r = 0; r < s->nrules && r < NFT_SCAN_MAX; r++) {
		const struct nft_rule *x = &s->rules[r];

		if (strcmp(x->chain, NFT_SVC_CHAIN) != 0 || strcmp(x->map, want->map) != 0)
			continue;
		used[r] = 1;
		n++;
		ok += nft_rule_eq(x, want);
	}
	return n > 1 ? -2 : n == 0 ? 0 : ok == 1 ? 1 : -1;
}

/*
 * Each listener's state comes from its element in its map and from the
 * rule that reads that map: the element says where it points, the rule
 * whether anything is redirected at all.
 */
static void read_listeners(const struct cfg *cfg, const struct nft_scan *s,
                           const struct nft_plan *p, struct nf_state *st)
{
	int used[NFT_SCAN_MAX] = {0}, rule_state[NFT_MAPS], map_ok[NFT_MAPS];

	for (int m = 0; m < p->nmaps; m++) {
		const struct nft_rule *want = NULL;

		for (int r = 0; r < p->nrules && want == NULL; r++)
			if (strcmp(p->rules[r].map, p->maps[m].name) == 0)
				want = &p->rules[r];
		rule_state[m] = s->table_ours && want != NULL ? map_rule(s, want, used) : 0;
		map_ok[m] = 0;
		for (int k = 0; k < s->nmaps && k < NFT_SETS_MAX; k++)
			if (strcmp(s->maps[k].name, p->maps[m].name) == 0)
				map_ok[m] =
				    memcmp(&s->maps[k], &p->maps[m], sizeof(p->maps[m])) == 0 ? 1
				                                                              : -1;
		if (!s->table_present || !s->table_ours)
			continue;
		if (map_ok[m] <= 0)
			nf_append(
			    st->drift_text, sizeof(st->drift_text), "map %s %s", p->maps[m].name,
			    map_ok[m] == 0 ? "is missing" : "was changed (type, flags or size)");
	}
	for (int i = 0; i < cfg->nlisteners; i++) {
		const struct nft_elem *want;
		const char *map;
		const struct cfg_listener *l = &cfg->listeners[i];
		struct nf_listener_state *ls = &st->listeners[i];
		const struct nft_elem *e;
		int rs, k;

		/* The plan has one element per listener, in map order. */
		for (k = 0; p->elems[k].listener != i; k++)
			;
		want = &p->elems[k];
		map = p->maps[want->map].name;
		e = map_ok[want->map] > 0 ? nft_scan_elem(s, map, want->key, want->klen) : NULL;
		rs = rule_state[want->map];
		ls->colour = -1;
		ls->to_port = e != NULL ? e->to_port : 0;
		for (int c = 0; e != NULL && e->exact && c < CFG_NCOLOURS; c++)
			if (e->to_port == cfg->instances[c].ports[want->listener])
				ls->colour = c;
		if (e == NULL || rs == 0) {
			ls->state = NF_RULE_MISSING;
			ls->colour = -1;
			nf_append(
			    st->drift_text, sizeof(st->drift_text),
			    "listener %s (%s port %u): %s %s%s", l->name, l->addr.text, l->port,
			    e == NULL ? "no element in map" : "rule missing: nothing reads map",
			    map, e == NULL ? "" : " any more");
		} else if (rs == -2) {
			ls->state = NF_RULE_DUPLICATE;
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "listener %s (%s port %u): more than one rule reads map %s",
			          l->name, l->addr.text, l->port, map);
		} else if (rs == -1) {
			ls->state = NF_RULE_FOREIGN;
			ls->colour = -1;
			nf_append(
			    st->drift_text, sizeof(st->drift_text),
			    "listener %s (%s port %u): the rule that reads map %s was changed "
			    "(its element says port %u)",
			    l->name, l->addr.text, l->port, map, e->to_port);
		} else if (ls->colour < 0) {
			ls->state = NF_RULE_FOREIGN;
			nf_append(
			    st->drift_text, sizeof(st->drift_text),
			    "listener %s (%s port %u): element of map %s redirects to port %u, "
			    "which is neither blue nor green",
			    l->name, l->addr.text, l->port, map, e->to_port);
		} else {
			ls->state = NF_RULE_OK;
		}
	}
	/* Elements nobody configured (in our maps, or in sets that are not
	 * ours) and services rules that read no planned map. */
	for (int i = 0; i < s->nelems && i < NFT_ELEM_MAX; i++) {
		const struct nft_elem *e = &s->elems[i];
		int planned = 0;
		char key[80];

		for (int k = 0; k < p->nelems && !planned; k++)
			planned =
			    strcmp(p->maps[p->elems[k].map].name, s->maps[e->map].name) == 0 &&
			    p->elems[k].klen == e->klen &&
			    memcmp(p->elems[k].key, e->key, e->klen) == 0;
		if (planned)
			continue;
		nft_key_text(e, key, sizeof(key));
		nf_append(st->drift_text, sizeof(st->drift_text),
		          "element %s : %u of map %s matches no listener", key, e->to_port,
		          s->maps[e->map].name);
	}
	for (int r = 0; r < s->nrules && r < NFT_SCAN_MAX; r++)
		if (!used[r] && strcmp(s->rules[r].chain, NFT_SVC_CHAIN) == 0)
			nf_append(st->drift_text, sizeof(st->drift_text),
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
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "chain %s holds %d rules (%d jumps to %s), expected one jump",
			          hook, n, good, NFT_SVC_CHAIN);
	}
	for (int k = 0; k < s->nmaps && k < NFT_SETS_MAX; k++) {
		int planned = 0;

		for (int m = 0; m < p->nmaps; m++)
			planned |= strcmp(s->maps[k].name, p->maps[m].name) == 0;
		if (!planned)
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "set %s of table inet %s is not in Switchyard's layout",
			          s->maps[k].name, NFT_TABLE_NAME);
	}
	if (!nft_chains_match(s, p))
		nf_append(st->drift_text, sizeof(st->drift_text),
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
			if (have >= want || !nft_rule_eq(&s->rules[r], &p->rules[first + have]))
				same = 0;
			have++;
		}
		if (have != want || !same)
			nf_append(st->drift_text, sizeof(st->drift_text),
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
		nf_append(st->drift_text, sizeof(st->drift_text),
		          "table inet %s exists but Switchyard did not create it", NFT_TABLE_NAME);
		s->nrules = 0;
		s->nmaps = 0;
		s->nelems = 0;
	} else if (!s->table_present) {
		if (cfg->nlisteners > 0)
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "table inet %s is missing", NFT_TABLE_NAME);
	} else {
		if (s->nrules > NFT_SCAN_MAX || s->nmaps > NFT_SETS_MAX || s->nelems > NFT_ELEM_MAX)
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "table inet %s holds %d rules, %d sets and %d elements; only the "
			          "first %d, %d and %d were examined",
			          NFT_TABLE_NAME, s->nrules, s->nmaps, s->nelems, NFT_SCAN_MAX,
			          NFT_SETS_MAX, NFT_ELEM_MAX);
		read_frame(cfg, s, p, st);
	}
	read_listeners(cfg, s, p, st);
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
			nf_append(st->drift_text, sizeof(st->drift_text),
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
