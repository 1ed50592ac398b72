/*
 * backend.c: netfilter.backend. Decides between the legacy backend (iptc.c,
 * libiptc) and the nftables backend (nft.c, libnftnl) and sends every public
 * nf_* call to the chosen one.
 *
 * The decision is a pure function of what the kernel offers
 * (nf_backend_decide, unit-tested); nf_backend_resolve probes once per
 * process and configured value, because a flip must not pay for a probe
 * and the answer does not change under a running daemon unless an operator
 * changes the host, which a restart picks up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"

static pthread_mutex_t nf_be_lock = PTHREAD_MUTEX_INITIALIZER;
static int nf_be_cached; /* 0 = nothing cached */
static enum cfg_nf_backend nf_be_want, nf_be_got;
static int nf_be_rc;
static char nf_be_why[512];

static void say(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

int nf_backend_decide(enum cfg_nf_backend want, const struct nf_probe *p, enum cfg_nf_backend *out,
                      char *why, size_t whylen)
{
	/* Without CAP_NET_ADMIN neither backend can work, and a refused probe
	 * says nothing about what the kernel offers: name the cause. */
	if (p->denied) {
		say(why, whylen, "%s",
		    p->nft_err[0] ? p->nft_err
		                  : "permission denied: not root (netfilter needs CAP_NET_ADMIN)");
		return -1;
	}
	switch (want) {
	case CFG_NF_NFTABLES:
		if (!p->nft) {
			say(why, whylen, "netfilter.backend is nftables, but %s",
			    p->nft_err[0] ? p->nft_err : "nf_tables does not answer");
			return -1;
		}
		*out = CFG_NF_NFTABLES;
		say(why, whylen, "configured (netfilter.backend: nftables)");
		return 0;
	case CFG_NF_IPTABLES:
		if (!p->legacy) {
			say(why, whylen,
			    "netfilter.backend is iptables, but the kernel has no legacy x_tables "
			    "(ip_tables)");
			return -1;
		}
		*out = CFG_NF_IPTABLES;
		say(why, whylen, "configured (netfilter.backend: iptables)");
		return 0;
	case CFG_NF_AUTO:
		break;
	}
	if (!p->nft && !p->legacy) {
		say(why, whylen,
		    "neither backend can run: the kernel has no legacy x_tables (ip_tables) and "
		    "%s",
		    p->nft_err[0] ? p->nft_err : "nf_tables does not answer");
		return -1;
	}
	if (!p->nft) {
		*out = CFG_NF_IPTABLES;
		say(why, whylen, "auto: nf_tables is not available (%s)",
		    p->nft_err[0] ? p->nft_err : "no answer");
		return 0;
	}
	if (!p->legacy) {
		*out = CFG_NF_NFTABLES;
		say(why, whylen, "auto: the kernel has no legacy x_tables");
		return 0;
	}
	if (p->nft_nat_chains > 0) {
		*out = CFG_NF_NFTABLES;
		say(why, whylen,
		    "auto: %d nftables nat chain%s of other tables on prerouting/output, so "
		    "the redirect goes into nftables at a priority ahead of them",
		    p->nft_nat_chains, p->nft_nat_chains == 1 ? "" : "s");
		return 0;
	}
	if (p->legacy_nat) {
		*out = CFG_NF_IPTABLES;
		say(why, whylen,
		    "auto: the legacy nat table is in use in this namespace and no nftables nat "
		    "chain shares its hooks");
		return 0;
	}
	*out = CFG_NF_NFTABLES;
	say(why, whylen, "auto: the legacy nat table is not in use in this namespace");
	return 0;
}

int nf_backend_resolve(const struct cfg *cfg, enum cfg_nf_backend *out, char *why, size_t whylen)
{
	enum cfg_nf_backend want = cfg->netfilter.backend;
	int rc;

	pthread_mutex_lock(&nf_be_lock);
	if (!nf_be_cached || nf_be_want != want) {
		struct nf_probe p;

		memset(&p, 0, sizeof(p));
		p.legacy = nf_iptc_available();
		p.legacy_nat = p.legacy && nf_iptc_nat_loaded();
		/* A configured iptables backend needs no netlink probe. */
		if (want != CFG_NF_IPTABLES) {
			p.nft = nf_nft_probe(&p.nft_nat_chains, NULL, 0, p.nft_err,
			                     sizeof(p.nft_err)) == 0;
			p.denied = !p.nft && (errno == EPERM || errno == EACCES);
		}
		nf_be_rc = nf_backend_decide(want, &p, &nf_be_got, nf_be_why, sizeof(nf_be_why));
		nf_be_want = want;
		/* A failed probe is not cached: the module may load later. */
		nf_be_cached = nf_be_rc == 0;
	}
	rc = nf_be_rc;
	*out = nf_be_got;
	say(why, whylen, "%s", nf_be_why);
	pthread_mutex_unlock(&nf_be_lock);
	if (rc < 0)
		errno = ENOPROTOOPT;
	return rc;
}

void nf_backend_describe(const struct cfg *cfg, char *out, size_t len)
{
	enum cfg_nf_backend b;
	char why[512];

	if (nf_backend_resolve(cfg, &b, why, sizeof(why)) < 0)
		say(out, len, "none (%s)", why);
	else
		say(out, len, "%s (%s)", cfg_nf_backend_name(b), why);
}

static int pick(const struct cfg *cfg, enum cfg_nf_backend *b, char *err, size_t errlen)
{
	char why[512];

	if (nf_backend_resolve(cfg, b, why, sizeof(why)) == 0)
		return 0;
	say(err, errlen, "no netfilter backend: %s", why);
	return -1;
}

/*
 * Install and flip write the chosen backend first, then take our rules out
 * of the other one, so a change of backend never leaves two redirects and
 * never a moment with none (for that moment both point at the same colour).
 */
static int leave_other(enum cfg_nf_backend b, char *err, size_t errlen)
{
	char e2[512];
	int rc = b == CFG_NF_NFTABLES ? nf_iptc_remove_loaded(e2, sizeof(e2))
	                              : nf_nft_remove_ours(e2, sizeof(e2));

	if (rc < 0)
		say(err, errlen,
		    "installed, but removing Switchyard's rules from the %s backend "
		    "failed: %s",
		    b == CFG_NF_NFTABLES ? "iptables" : "nftables", e2);
	return rc;
}

/* Only nf_tables answers the probe's netlink when it exists; the legacy
 * backend leaves it alone where it does not. */
static int nft_usable(void)
{
	int n;
	char e[128];

	return nf_nft_probe(&n, NULL, 0, e, sizeof(e)) == 0;
}

int nf_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen)
{
	enum cfg_nf_backend b;

	if (pick(cfg, &b, err, errlen) < 0)
		return -1;
	if (b == CFG_NF_NFTABLES) {
		if (nf_nft_install(cfg, live, err, errlen) < 0)
			return -1;
	} else {
		if (nf_iptc_install(cfg, live, err, errlen) < 0)
			return -1;
		if (!nft_usable())
			return 0;
	}
	return leave_other(b, err, errlen);
}

int nf_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen)
{
	enum cfg_nf_backend b;

	if (pick(cfg, &b, err, errlen) < 0)
		return -1;
	return b == CFG_NF_NFTABLES ? nf_nft_flip(cfg, to, err, errlen)
	                            : nf_iptc_flip(cfg, to, err, errlen);
}

int nf_remove(const struct cfg *cfg, char *err, size_t errlen)
{
	enum cfg_nf_backend b;

	if (pick(cfg, &b, err, errlen) < 0)
		return -1;
	if (b == CFG_NF_NFTABLES)
		return nf_nft_remove(cfg, err, errlen) < 0 ? -1
		                                           : nf_iptc_remove_loaded(err, errlen);
	if (nf_iptc_remove(cfg, err, errlen) < 0)
		return -1;
	return nft_usable() ? nf_nft_remove_ours(err, errlen) : 0;
}

int nf_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen)
{
	enum cfg_nf_backend b;

	if (pick(cfg, &b, err, errlen) < 0)
		return -1;
	return b == CFG_NF_NFTABLES ? nf_nft_read(cfg, st, err, errlen)
	                            : nf_iptc_read(cfg, st, err, errlen);
}

void nf_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void nf_append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	va_list ap;

	if (used + 1 >= len)
		return;
	if (used > 0) {
		snprintf(buf + used, len - used, "; ");
		used = strlen(buf);
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

int nf_addr_is_any(const struct cfg_addr *a)
{
	int n = a->family == AF_INET6 ? 16 : 4;

	for (int i = 0; i < n; i++)
		if (a->a.v6[i] != 0)
			return 0;
	return 1;
}
