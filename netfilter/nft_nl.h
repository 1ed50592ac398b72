/*
 * nft_nl.h: private to netfilter/. The nf_tables netlink plumbing and the
 * reading of table inet switchyard, shared by the nftables backend (nft.c)
 * and the coexistence check and probe (nft_nl.c).
 *
 * Layout of the table (docs/netfilter.md):
 *   chain prerouting { type nat hook prerouting priority -101; jump services }
 *   chain output     { type nat hook output priority -101; jump services }
 *   chain services   { per listener: its match, goto l-NAME }
 *   chain input      { type filter hook input priority 0; the filter guard }
 *   chain l-NAME     { meta l4proto tcp redirect to :PORT } (one per listener)
 * A flip replaces only the one small rule in each l-NAME chain: the kernel
 * parses every expression of a rule it is given, so the fewer a flip
 * sends, the faster it is (docs/netfilter.md has the figures).
 * The table carries a comment (NFTA_TABLE_USERDATA) that marks it as ours;
 * a table of that name without it is someone else's and is never touched.
 */
#ifndef SY_NFT_NL_H
#define SY_NFT_NL_H

#include <stddef.h>
#include <stdint.h>

#include "netfilter/nf_int.h"

#define NFT_TABLE_NAME "switchyard"
#define NFT_SVC_CHAIN  "services"
#define NFT_LSN_PREFIX "l-"
/* One below dstnat (-100), where iptables-nft's and legacy iptable_nat's
 * nat chains sit: the first nat chain that decides a new connection's
 * destination wins, so ours is asked first (docs/netfilter.md). */
#define NFT_NAT_PRIO    (-101)
#define NFT_FILTER_PRIO 0
#define NFT_OWNER_MARK  "switchyard: owned by switchyardd, written over netlink; do not edit"
/* Rules of our table kept by one read; the table never holds more than
 * 2 jumps + 16 redirects + 16 * 2 * 3 guard rules. */
#define NFT_SCAN_MAX 256

struct mnl_socket;

/* One netlink socket and its sequence numbers. */
struct nft_nl {
	struct mnl_socket *sock;
	uint32_t portid;
	uint32_t seq;
};

/* A rule of our table as read back or as planned. */
struct nft_rule {
	char chain[40];
	uint64_t handle; /* 0 in a plan */
	int verdict;     /* NFT_JUMP or NFT_GOTO for kind NF_RK_JUMP */
	char target[40]; /* the chain it jumps or goes to */
	int af;          /* AF_INET or AF_INET6 (meta nfproto), 0 for the jumps */
	struct nf_rule r;
};

/* A chain of our table: its name and, for base chains, type/hook/priority. */
struct nft_chain {
	char name[40];
	int base;
	char type[8]; /* "nat" or "filter" */
	uint32_t hook;
	int32_t prio;
};

/* What table inet switchyard holds now. */
struct nft_scan {
	uint32_t genid; /* ruleset generation the read started from */
	int table_present;
	int table_ours; /* it carries NFT_OWNER_MARK */
	struct nft_chain chains[4 + CFG_MAX_LISTENERS];
	int nchains; /* counted past the array too */
	struct nft_rule rules[NFT_SCAN_MAX];
	int nrules; /* counted past NFT_SCAN_MAX too */
	/* For nft_nl_rules: keep rules[] of chains other than l-NAME as they
	 * are when the kernel lists a rule of the same chain at that place. */
	int only_lsn;
	/* nat chains of other tables on prerouting/output (for the probe and
	 * the coexistence warning), listed in other_text. */
	int other_nat;
	char other_text[768];
};

struct nft_plan {
	struct nft_chain chains[4 + CFG_MAX_LISTENERS];
	int nchains;
	struct nft_rule rules[NFT_SCAN_MAX];
	int nrules;
};

/* nft.c: the helpers the read side (nft_read.c) shares. */
int nft_addr_is_any(const struct cfg_addr *a);
void nft_append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The whole table for cfg with every listener pointing at colour, in the
 * kernel's dump order (chains in creation order, rules in chain order). */
void nft_plan_build(const struct cfg *cfg, enum cfg_colour colour, struct nft_plan *p);
int nft_rule_eq(const struct nft_rule *a, const struct nft_rule *b, int with_port);
int nft_chains_match(const struct nft_scan *s, const struct nft_plan *p);
/* 1 when the table has the plan's chains and rules, comparing target ports
 * only with with_port. */
int nft_table_matches(const struct nft_scan *s, const struct nft_plan *p, int with_port);

/* Opens a netfilter netlink socket; -1 with err naming the cause. */
int nft_nl_open(struct nft_nl *nl, char *err, size_t errlen);
void nft_nl_close(struct nft_nl *nl);
/* Fills err for a failed netlink call: what was being done and the cause
 * (no nf_tables, no CAP_NET_ADMIN, EBUSY, ENOBUFS, ...). Keeps errno. */
void nft_nl_error(const char *what, char *err, size_t errlen);
/*
 * Reads the generation, our table, its chains and rules into *s. With
 * others set it also lists nat chains of every other table (a dump of all
 * chains); without it only our table is read, whatever else the kernel
 * holds.
 */
int nft_nl_scan(struct nft_nl *nl, struct nft_scan *s, int others, char *err, size_t errlen);
/* The ruleset generation now (NFT_MSG_GETGEN). */
int nft_nl_gen(struct nft_nl *nl, uint32_t *gen, char *err, size_t errlen);
/* Only the rules of our table, into s->rules and s->nrules (see
 * only_lsn). */
int nft_nl_rules(struct nft_nl *nl, struct nft_scan *s, char *err, size_t errlen);
/*
 * Sends one batch (the messages in buf, len bytes, nmsg of them with
 * consecutive sequence numbers) wrapped in begin/end with the generation
 * check genid. It sets NLM_F_ACK on the last message only (editing buf) and
 * reads the answers up to that one. Returns 0, or -1 with errno (ERESTART:
 * the ruleset changed since genid) and err naming the message that failed.
 */
int nft_nl_batch(struct nft_nl *nl, uint32_t genid, void *buf, size_t len, int nmsg, char *err,
                 size_t errlen);

#endif
