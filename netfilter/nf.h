/*
 * nf: Switchyard's netfilter side. It owns one nat chain, SWITCHYARD, per
 * family (libiptc for IPv4, libip6tc for IPv6), jumped to from PREROUTING and
 * OUTPUT, holding one REDIRECT rule per service listener. A flip rewrites all
 * of a family's rules in one atomic commit. It also counts the conntrack
 * flows pinned to each instance (libnl-nf-3), never deleting any.
 *
 * Every function that writes (install, remove, flip) takes the xtables lock
 * the way iptables does (flock on $XTABLES_LOCKFILE or /run/xtables.lock,
 * bounded wait), retries on EAGAIN, and verifies its commit by reading the
 * table back. nf_read() takes no lock: a table read is an atomic snapshot.
 * Errors fill err with a message naming the cause (not root, no legacy
 * x_tables in this kernel, lock held by pid N, ...) and return -1.
 *
 * Families: a listener on 0.0.0.0 or an IPv4 address gets IPv4 rules only;
 * one on :: or an IPv6 address gets IPv6 rules only. docs/netfilter.md has
 * the rule layout.
 *
 * The kernel is the source of truth: nf_read() says where each listener's
 * REDIRECT points now.
 */
#ifndef SY_NF_H
#define SY_NF_H

#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"

#define NF_CHAIN "SWITCHYARD"

/* Per-listener state found in the kernel. */
enum nf_rule_state {
	NF_RULE_OK = 0,    /* present, points at one of our instances */
	NF_RULE_MISSING,   /* no rule for this listener */
	NF_RULE_FOREIGN,   /* a rule for it points at a port that is neither colour */
	NF_RULE_DUPLICATE, /* more than one rule for it */
};

/* "ok", "missing", "foreign" or "duplicate". */
const char *nf_rule_state_name(enum nf_rule_state s);

struct nf_listener_state {
	enum nf_rule_state state;
	int colour;       /* enum cfg_colour when state == NF_RULE_OK, else -1 */
	uint16_t to_port; /* the REDIRECT target port found, 0 if none */
};

struct nf_state {
	int chain_present[2]; /* [0] IPv4, [1] IPv6 */
	int jumps_present[2]; /* PREROUTING and OUTPUT jumps both present */
	struct nf_listener_state listeners[CFG_MAX_LISTENERS];
	int nlisteners;
	/* The colour every listener points at, or -1 if they disagree or any
	 * is missing. */
	int live;
	int drift;             /* non-zero if anything differs from the config */
	char drift_text[1024]; /* human-readable description of the drift */
};

/* Installs (idempotently) the chains, jumps and one rule per listener pointing
 * at `live`. Repairs drift. Running it twice never duplicates anything. */
int nf_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen);
/* Removes exactly what nf_install created. */
int nf_remove(const struct cfg *cfg, char *err, size_t errlen);
/* Points every listener at colour `to`: one commit per family, IPv4 first
 * then IPv6; if IPv6 fails, IPv4 is put back. It writes the whole plan, so it
 * also repairs drift (a missing chain, jump or rule). */
int nf_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen);
/* Reads the kernel's tables into *st (see struct nf_state). */
int nf_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen);
/* How long nf_install/nf_remove/nf_flip wait for the xtables lock before
 * failing with "held by pid N" (default 5000 ms). Not thread-safe; call it at
 * startup. */
void nf_set_lock_wait(unsigned ms);
/* Writes a warning into warn (empty if none) when nat chains of other
 * nftables tables share the prerouting/output hooks with Switchyard's rules.
 * Lists the chains over nf_tables netlink; silent when nf_tables does not
 * answer. Call it from the CLI or the supervisor's slow path. */
void nf_check_nft(char *warn, size_t warnlen);

/*
 * Backends. netfilter.backend picks how the redirect reaches the kernel:
 * "iptables" is the legacy x_tables layout above (libiptc); "nftables" is
 * one table, inet switchyard, written over nf_tables netlink (libnftnl) in
 * one batch per change; "auto" decides from what the kernel offers, once per
 * process and configured value (docs/netfilter.md has the rule). Every nf_*
 * function above goes to the chosen backend.
 */
struct nf_probe {
	int nft;            /* nf_tables answers netlink in this namespace */
	int legacy;         /* the kernel has legacy x_tables (ip_tables) */
	int legacy_nat;     /* a legacy nat table is instantiated in this namespace */
	int nft_nat_chains; /* nat chains of other nftables tables on prerouting/output */
	int denied;         /* the probe was refused: no CAP_NET_ADMIN (nothing can run) */
	char nft_err[256];  /* why nf_tables does not answer, when nft is 0 */
};
/* The decision as a pure function of the probe: sets *out to
 * CFG_NF_NFTABLES or CFG_NF_IPTABLES and why to a sentence saying why, or
 * returns -1 with why naming what is missing when the wanted backend (or,
 * for auto, either) cannot run here. */
int nf_backend_decide(enum cfg_nf_backend want, const struct nf_probe *p, enum cfg_nf_backend *out,
                      char *why, size_t whylen);
/* Probes this namespace and decides for cfg (cached per process and
 * configured value). Returns 0 with *out and why, or -1 with why as the
 * error. Thread-safe. */
int nf_backend_resolve(const struct cfg *cfg, enum cfg_nf_backend *out, char *why, size_t whylen);
/* One line for status and rules show: "nftables (auto: ...)" or the error. */
void nf_backend_describe(const struct cfg *cfg, char *out, size_t len);

/* Conntrack flows pinned to one instance (reply src port = instance port and
 * original dst port = service port), summed over listeners. */
struct nf_flows {
	uint64_t syn; /* SYN_SENT / SYN_RECV (and NONE: no TCP state yet) */
	uint64_t established;
	uint64_t closing; /* FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE */
	uint64_t total;
};
/* Fills flows[CFG_BLUE] and flows[CFG_GREEN] from streaming ctnetlink dumps
 * (one kernel-filtered dump per distinct family and service port), in
 * constant memory. Never deletes an entry. Closed flows sit in `closing`
 * (TIME_WAIT) until conntrack expires them. */
int nf_count_flows(const struct cfg *cfg, struct nf_flows flows[CFG_NCOLOURS], char *err,
                   size_t errlen);

/* `switchyard rules ...` and `switchyard flows ...`: argv[0] is "rules" or
 * "flows"; cfgpath is the -c argument or NULL. Return the exit code. */
int nf_cmd_rules(const char *cfgpath, int argc, char **argv);
int nf_cmd_flows(const char *cfgpath, int argc, char **argv);

#endif
