/*
 * nft_nl.h: private to netfilter/. The nf_tables netlink plumbing and the
 * reading of table inet switchyard, shared by the nftables backend (nft.c)
 * and the coexistence check and probe (nft_nl.c).
 *
 * Layout of the table (docs/netfilter.md):
 *   map exact4 { type ipv4_addr . inet_service : inet_service }  listener
 *   map any4   { type inet_service : inet_service }                 ports by
 *   map exact6, any6 (the same for IPv6)                            key
 *   chain prerouting { type nat hook prerouting priority -101; jump services }
 *   chain output     { type nat hook output priority -101; jump services }
 *   chain services   { per non-empty map, exact before wildcard:
 *                      meta nfproto F [fib daddr type local] meta l4proto tcp
 *                      redirect to : [ip daddr .] tcp dport map @MAP }
 *   chain input      { type filter hook input priority 0; the filter guard }
 * A flip changes only map elements (delete and re-add each with the other
 * colour's port): the kernel parses no expression and rebuilds no chain for
 * that, which makes it about twice as fast as replacing redirect rules
 * (docs/netfilter.md has the figures). A key the maps do not hold makes the
 * lookup fail, so the rule does not match and the packet goes on.
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
/* One below dstnat (-100), where iptables-nft's and legacy iptable_nat's
 * nat chains sit: the first nat chain that decides a new connection's
 * destination wins, so ours is asked first (docs/netfilter.md). */
#define NFT_NAT_PRIO    (-101)
#define NFT_FILTER_PRIO 0
#define NFT_OWNER_MARK  "switchyard: owned by switchyardd, written over netlink; do not edit"
/* Rules of our table kept by one read; the table never holds more than
 * 2 jumps + 4 map rules + 16 * 2 * 3 guard rules. */
#define NFT_SCAN_MAX 256
/* The four maps (nft_map_kinds in nft.c) and their elements; a read keeps
 * this many of each, and counts any beyond (someone else's) as drift. */
#define NFT_MAPS     4
#define NFT_SETS_MAX 8
#define NFT_ELEM_MAX (2 * CFG_MAX_LISTENERS + 16)
/* The longest map key: an IPv6 address and a port padded to 4 bytes. */
#define NFT_KEY_MAX 20
/* Netlink dumps come in skbs of up to 32 KiB; a smaller buffer truncates. */
#define NFT_NL_BUF 32768

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
	/* Kind NF_RK_REDIRECT: the map that gives the port, and the length of
	 * the destination address in its key (4 or 16; 0: the port alone).
	 * r.local is the `fib daddr type local` of a wildcard map's rule. */
	char map[16];
	int key_addr;
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

/* A set of our table: a planned map or what a read found. */
struct nft_map {
	char name[16];
	uint32_t flags; /* NFT_SET_MAP */
	uint32_t key_type, key_len, data_type, data_len;
	/* The most elements it may hold. A set with a size gets the kernel's
	 * fixed hash table; without one it gets a resizable one, which a flip
	 * (every element deleted and added back) makes schedule a resize
	 * worker on each commit. */
	uint32_t size;
};

/* An element of one of our maps: the key as the kernel holds it (the
 * address, then the port in network order padded to 4 bytes, or the
 * port alone) and the port it maps to. */
struct nft_elem {
	int map; /* index into the maps[] of its scan or plan */
	uint8_t key[NFT_KEY_MAX];
	uint32_t klen;
	uint16_t to_port;
	int exact;    /* 2 bytes of data and nothing else we do not write */
	int listener; /* in a plan: the listener it serves */
};

/* What table inet switchyard holds now. */
struct nft_scan {
	uint32_t genid; /* ruleset generation the read started from */
	int table_present;
	int table_ours; /* it carries NFT_OWNER_MARK */
	struct nft_chain chains[8];
	int nchains; /* counted past the array too */
	struct nft_map maps[NFT_SETS_MAX];
	int nmaps; /* counted past the array too */
	struct nft_elem elems[NFT_ELEM_MAX];
	int nelems; /* counted past the array too */
	struct nft_rule rules[NFT_SCAN_MAX];
	int nrules; /* counted past NFT_SCAN_MAX too */
	/* nat chains of other tables on prerouting/output (for the probe and
	 * the coexistence warning), listed in other_text. */
	int other_nat;
	char other_text[768];
};

struct nft_plan {
	struct nft_chain chains[4];
	int nchains;
	struct nft_map maps[NFT_MAPS];
	int nmaps;
	struct nft_elem elems[CFG_MAX_LISTENERS];
	int nelems;
	struct nft_rule rules[NFT_SCAN_MAX];
	int nrules;
};

/* nft_plan.c: the plan and the comparisons (nft.c and nft_read.c). */
/* The map that holds listener l's element ("exact4", "any6", ...) and its
 * key; returns the key's length. */
const char *nft_listener_key(const struct cfg_listener *l, uint8_t key[NFT_KEY_MAX],
                             uint32_t *klen);
/* Writes an element's key as nft shows it ("198.18.0.1 . 80", "443"). */
void nft_key_text(const struct nft_elem *e, char *buf, size_t len);
/* The whole table for cfg with every listener pointing at colour: chains
 * and rules in the kernel's dump order (chains in creation order, rules in
 * chain order), the maps that have elements, one element per listener. */
void nft_plan_build(const struct cfg *cfg, enum cfg_colour colour, struct nft_plan *p);
int nft_rule_eq(const struct nft_rule *a, const struct nft_rule *b);
/* -1 with err when cfg cannot be planned (a family, a zero or equal port,
 * two listeners with one key) or colour (-1: none) is not a colour. */
int nft_validate(const struct cfg *cfg, int colour, char *err, size_t errlen);
int nft_chains_match(const struct nft_scan *s, const struct nft_plan *p);
/* 1 when the scan has exactly the plan's maps (names and types). */
int nft_maps_match(const struct nft_scan *s, const struct nft_plan *p);
/* The scan's element of map `map` with that key, or NULL. */
const struct nft_elem *nft_scan_elem(const struct nft_scan *s, const char *map, const uint8_t *key,
                                     uint32_t klen);
/* 1 when the table has the plan's chains, rules, maps and element keys,
 * comparing the elements' ports only with with_port. */
int nft_table_matches(const struct nft_scan *s, const struct nft_plan *p, int with_port);

/* Opens a netfilter netlink socket; -1 with err naming the cause. */
int nft_nl_open(struct nft_nl *nl, char *err, size_t errlen);
void nft_nl_close(struct nft_nl *nl);
/* Fills err for a failed netlink call: what was being done and the cause
 * (no nf_tables, no CAP_NET_ADMIN, EBUSY, ENOBUFS, ...). Keeps errno. */
void nft_nl_error(const char *what, char *err, size_t errlen);
/*
 * Reads the generation, our table, its chains, maps with their elements and
 * rules into *s, and again when the generation moved on meanwhile (the
 * dumps are separate, so only an unchanged generation makes them one
 * consistent picture). With
 * others set it also lists nat chains of every other table (a dump of all
 * chains); without it only our table is read, whatever else the kernel
 * holds.
 */
int nft_nl_scan(struct nft_nl *nl, struct nft_scan *s, int others, char *err, size_t errlen);
/* The ruleset generation now (NFT_MSG_GETGEN). */
int nft_nl_gen(struct nft_nl *nl, uint32_t *gen, char *err, size_t errlen);
/*
 * The read-back of a flip, which changes only map elements: sends req (len
 * bytes: GETSETELEM requests, not dumps, naming the planned keys of each
 * map in s->maps) together with a GETGEN, and reads the answers: the
 * elements into s->elems and s->nelems, and the generation after them into
 * *gen. A key the map does not hold fails the call (ENOENT); the caller
 * then reads the whole table. After -1 the socket may hold stray answers.
 */
int nft_nl_readback(struct nft_nl *nl, struct nft_scan *s, void *req, size_t len, uint32_t *gen,
                    char *err, size_t errlen);
/*
 * nft_batch.c: sends one batch (the messages in buf, len bytes, nmsg of them with
 * consecutive sequence numbers) wrapped in begin/end with the generation
 * check genid. It sets NLM_F_ACK on the last message only (editing buf) and
 * reads the answers up to that one. Returns 0, or -1 with errno (ERESTART:
 * the ruleset changed since genid) and err naming the message that failed.
 */
int nft_nl_batch(struct nft_nl *nl, uint32_t genid, void *buf, size_t len, int nmsg, char *err,
                 size_t errlen);

#endif
