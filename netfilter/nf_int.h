/*
 * nf_int.h: private to netfilter/. The generic transaction logic in iptc.c
 * drives one struct nf_fam per address family; iptc4.c (libip4tc) and
 * iptc6.c (libip6tc) implement it. libiptc and libip6tc have the same shape
 * but different entry types, so each family builds and parses its own
 * entries into the family-neutral struct nf_rule.
 */
#ifndef SY_NF_INT_H
#define SY_NF_INT_H

#include <stddef.h>
#include <stdint.h>

#include "netfilter/nf.h"

#define NF_TABLE "nat"

/* Formats an error into err (if err is non-NULL and errlen > 0); shared by
 * both backends so every error buffer is filled the same way. */
void nf_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Appends a formatted item to the NUL-terminated text in buf, separated from
 * what is there by "; ", cut at len; a full buffer takes nothing more. Both
 * backends build their drift reports with it. */
void nf_append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Is a the wildcard address of its family (0.0.0.0 or ::)? */
int nf_addr_is_any(const struct cfg_addr *a);

enum nf_rule_kind {
	NF_RK_OTHER = 0, /* a target we do not produce */
	NF_RK_JUMP,      /* -j SWITCHYARD */
	NF_RK_REDIRECT,  /* -j REDIRECT --to-ports N */
	NF_RK_ACCEPT,    /* filter guard: -j ACCEPT */
	NF_RK_DROP,      /* filter guard: -j DROP */
};

/*
 * One rule in the only two forms Switchyard writes:
 *   jump:     -p tcp [-d ADDR | -m addrtype --dst-type LOCAL] -j SWITCHYARD
 *   redirect: -p tcp [-d ADDR] -m tcp --dport P -j REDIRECT --to-ports Q
 *   guard:    -p tcp [-i lo] -m tcp --dport P [-m conntrack --ctstate DNAT]
 *             -j ACCEPT|DROP (filter table, optional)
 * exact is 0 when the kernel's entry carries anything else (another match,
 * an interface, a source, an inversion, a netmask that is not a host mask):
 * such a rule was changed by someone else and counts as drift.
 */
struct nf_rule {
	enum nf_rule_kind kind;
	uint8_t addr[16]; /* destination, meaningful when plen > 0 */
	int plen;         /* 0 = any destination, else 32 or 128 */
	int local;        /* -m addrtype --dst-type LOCAL */
	uint16_t dport;   /* redirect rules only */
	uint16_t to_port; /* redirect rules only */
	int lo;           /* -i lo (guard ACCEPT rules only) */
	int ctdnat;       /* -m conntrack --ctstate DNAT (guard ACCEPT rules only) */
	int exact;
};

struct nf_fam {
	int af;           /* AF_INET or AF_INET6 */
	int idx;          /* 0 or 1, index into nf_state arrays */
	const char *name; /* "IPv4" */
	const char *tool; /* "iptables-legacy" */
	const char *kmod; /* "ip_tables" */
	int alen;         /* address length, 4 or 16 */
	void *(*init)(const char *table);
	void (*free)(void *h);
	int (*commit)(void *h);
	const char *(*strerror)(int err);
	int (*is_chain)(const char *chain, void *h);
	int (*create_chain)(const char *chain, void *h);
	int (*flush)(const char *chain, void *h);
	int (*delete_chain)(const char *chain, void *h);
	const void *(*first)(const char *chain, void *h);
	const void *(*next)(const void *prev, void *h);
	const char *(*target)(const void *e, void *h);
	/* Fills r from the entry e whose target name is target. */
	void (*parse)(const void *e, const char *target, struct nf_rule *r);
	/* Builds the entry for r into buf; returns its size, 0 if too small. */
	size_t (*build)(const struct nf_rule *r, void *buf, size_t len);
	/* Rule numbers are 0-based for all of these, whatever the libiptc
	 * header comments say (docs/internals.md, "Rule numbers, byte orders
	 * and jumps"). */
	int (*insert)(const char *chain, const void *e, unsigned num, void *h);
	int (*replace)(const char *chain, const void *e, unsigned num, void *h);
	int (*append)(const char *chain, const void *e, void *h);
	int (*delete_num)(const char *chain, unsigned num, void *h);
};

extern const struct nf_fam nf_fam4;
extern const struct nf_fam nf_fam6;

/* Big enough for any entry nf_fam.build produces. */
#define NF_ENTRY_MAX 1024

/*
 * xtlock.c: the xtables lock that iptables-legacy takes. nf_xtlock_take
 * waits at most the nf_set_lock_wait limit and fails with err naming the
 * holder; on success *fdp is a descriptor the caller owns until it hands it
 * to nf_xtlock_release, or -1 when a read-only /run has no lock file and the
 * transaction goes on unlocked (nf_xtlock_release(-1) does nothing).
 */
int nf_xtlock_take(int *fdp, char *err, size_t errlen);
void nf_xtlock_release(int fd);

/*
 * The two backends behind the public nf_* functions (backend.c picks one).
 * Each has the meaning of the nf.h function of the same name.
 */
int nf_iptc_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen);
int nf_iptc_remove(const struct cfg *cfg, char *err, size_t errlen);
int nf_iptc_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen);
int nf_iptc_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen);
/* Removes the legacy chain and jumps from legacy tables that are already
 * loaded here; never loads one. */
int nf_iptc_remove_loaded(char *err, size_t errlen);
/* Does this kernel have legacy x_tables (ip_tables or ip6_tables)? */
int nf_iptc_available(void);
/* Is a legacy nat table (IPv4 or IPv6) instantiated in this namespace? */
int nf_iptc_nat_loaded(void);

int nf_nft_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen);
int nf_nft_remove(const struct cfg *cfg, char *err, size_t errlen);
int nf_nft_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen);
int nf_nft_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen);
/* Deletes table inet switchyard if it is ours; absent is fine, a foreign
 * table of that name is left alone (no error: it is not ours to remove). */
int nf_nft_remove_ours(char *err, size_t errlen);
/* What nf_tables offers here: 0 and *nat_chains (nat chains of other tables
 * on prerouting/output, listed in text) when nf_tables answers, -1 with err
 * naming the cause when it does not. */
int nf_nft_probe(int *nat_chains, char *text, size_t textlen, char *err, size_t errlen);

#endif
