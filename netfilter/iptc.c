/*
 * iptc.c: the SWITCHYARD nat chain, its jumps and its REDIRECT rules, for
 * IPv4 and IPv6, through the family tables in iptc4.c and iptc6.c.
 *
 * Every change is one transaction per family: take the xtables lock, read the
 * table (iptc_init), edit the copy, commit it with one IPT_SO_SET_REPLACE,
 * read it back to verify, and only then release the lock. The commit is
 * atomic for one table of one family, never across families, which is why a
 * flip orders IPv4 before IPv6 and puts IPv4 back if IPv6 fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netfilter/nf.h"
#include "netfilter/nf_int.h"

#define NF_EAGAIN_TRIES 20
#define NF_SCAN_MAX     128
#define NF_MAX_JUMPS    (CFG_MAX_LISTENERS + 1)

static const struct nf_fam *const nf_fams[2] = {&nf_fam4, &nf_fam6};
/* A table we keep a SWITCHYARD chain in, and the hooks that jump to it. */
struct nf_table {
	const char *name;
	const char *what; /* for messages */
	const char *hooks[2];
	int nhooks;
};
static const struct nf_table nf_nat = {"nat", "nat", {"PREROUTING", "OUTPUT"}, 2};
/* The optional guard (supervisor.filter_guard) lives in filter INPUT. */
static const struct nf_table nf_guard = {"filter", "filter guard", {"INPUT", NULL}, 1};
static const char *const nf_colour_names[CFG_NCOLOURS] = {"blue", "green"};

/* What one family's nat table should hold. */
struct nf_plan {
	/* nat: one rule per listener; guard: three per instance port. */
	struct nf_rule chain[CFG_MAX_LISTENERS * CFG_NCOLOURS * 3];
	int nchain;
	struct nf_rule jumps[NF_MAX_JUMPS];
	int njumps;
};

/* What one family's nat table holds now, as far as it concerns us. */
struct nf_scan {
	int chain_present;
	struct nf_rule chain[NF_SCAN_MAX];
	int nchain; /* every rule of the chain is counted, the first NF_SCAN_MAX kept */
	struct nf_rule jumps[2][NF_SCAN_MAX];
	unsigned jpos[2][NF_SCAN_MAX]; /* 0-based positions in the hook chain */
	int njumps[2];
};

static const struct nf_fam *fam_of(const struct cfg_addr *a)
{
	return a->family == AF_INET6 ? &nf_fam6 : &nf_fam4;
}

static int validate(const struct cfg *cfg, char *err, size_t errlen)
{
	for (int i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		uint16_t b = cfg->instances[CFG_BLUE].ports[i];
		uint16_t g = cfg->instances[CFG_GREEN].ports[i];

		if (l->addr.family != AF_INET && l->addr.family != AF_INET6) {
			nf_seterr(err, errlen,
			          "listener %s: address family %d is neither IPv4 nor IPv6",
			          l->name, l->addr.family);
			return -1;
		}
		if (l->port == 0 || b == 0 || g == 0 || b == g) {
			nf_seterr(
			    err, errlen,
			    "listener %s: service port %u, blue port %u and green port %u must be "
			    "non-zero and the instance ports must differ",
			    l->name, l->port, b, g);
			return -1;
		}
	}
	return 0;
}

/* The jumps and rules for family f with every listener pointing at colour.
 *
 * A listener on the wildcard address gets a rule without -d; its jumps from
 * PREROUTING and OUTPUT match addrtype LOCAL so that neither this host's own
 * outgoing connections nor traffic it forwards (containers, a router role)
 * to other machines on the same port are hijacked (docs/internals.md, "Which
 * addresses a REDIRECT matches and rewrites"). A listener on
 * a specific address gets -d ADDR on both its jump and its rule. */
static void plan_build(const struct cfg *cfg, const struct nf_fam *f, enum cfg_colour colour,
                       struct nf_plan *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < cfg->nlisteners; i++) {
		const struct cfg_listener *l = &cfg->listeners[i];
		struct nf_rule r = {.kind = NF_RK_REDIRECT, .exact = 1};
		struct nf_rule j = {.kind = NF_RK_JUMP, .exact = 1};
		int dup = 0;

		if (fam_of(&l->addr) != f)
			continue;
		if (!nf_addr_is_any(&l->addr)) {
			r.plen = f->alen * 8;
			memcpy(r.addr, l->addr.a.v6, f->alen);
			j.plen = r.plen;
			memcpy(j.addr, r.addr, sizeof(j.addr));
		} else {
			j.local = 1;
		}
		r.dport = l->port;
		r.to_port = cfg->instances[colour].ports[i];
		p->chain[p->nchain++] = r;
		for (int k = 0; k < p->njumps; k++)
			if (p->jumps[k].local == j.local && p->jumps[k].plen == j.plen &&
			    memcmp(p->jumps[k].addr, j.addr, sizeof(j.addr)) == 0)
				dup = 1;
		if (!dup)
			p->jumps[p->njumps++] = j;
	}
}

/*
 * The optional filter guard for family f (supervisor.filter_guard): each
 * instance port of the family is reachable only through the REDIRECT or from
 * this host, so nobody bypasses the service address by dialling an instance
 * port directly. Per port, in filter INPUT via one -p tcp jump:
 *   -p tcp -i lo --dport P -j ACCEPT                          this host
 *   -p tcp --dport P -m conntrack --ctstate DNAT -j ACCEPT    redirected
 *   -p tcp --dport P -j DROP                                  everyone else
 * The guard covers both colours at once, so a flip never touches it: it is a
 * separate table, and x_tables could not commit it atomically with nat.
 */
static void plan_guard(const struct cfg *cfg, const struct nf_fam *f, struct nf_plan *p)
{
	memset(p, 0, sizeof(*p));
	for (int i = 0; i < cfg->nlisteners; i++) {
		if (fam_of(&cfg->listeners[i].addr) != f)
			continue;
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			uint16_t port = cfg->instances[c].ports[i];
			struct nf_rule r = {.kind = NF_RK_ACCEPT, .exact = 1, .dport = port};
			int dup = 0;

			for (int k = 0; k < p->nchain; k++)
				if (p->chain[k].dport == port)
					dup = 1;
			if (dup)
				continue;
			r.lo = 1;
			p->chain[p->nchain++] = r;
			r.lo = 0;
			r.ctdnat = 1;
			p->chain[p->nchain++] = r;
			r.ctdnat = 0;
			r.kind = NF_RK_DROP;
			p->chain[p->nchain++] = r;
		}
	}
	if (p->nchain > 0) {
		p->jumps[0] = (struct nf_rule){.kind = NF_RK_JUMP, .exact = 1};
		p->njumps = 1;
	}
}

/* Same rule; to_port is compared only when with_port is set. */
static int rule_eq(const struct nf_rule *a, const struct nf_rule *b, int with_port)
{
	return a->kind == b->kind && a->exact && b->exact && a->plen == b->plen &&
	       (a->plen == 0 || memcmp(a->addr, b->addr, sizeof(a->addr)) == 0) &&
	       a->local == b->local && a->dport == b->dport && a->lo == b->lo &&
	       a->ctdnat == b->ctdnat && (!with_port || a->to_port == b->to_port);
}

static void scan(const struct nf_fam *f, const struct nf_table *t, void *h, struct nf_scan *s)
{
	const void *e;

	memset(s, 0, sizeof(*s));
	s->chain_present = f->is_chain(NF_CHAIN, h);
	if (s->chain_present) {
		for (e = f->first(NF_CHAIN, h); e != NULL; e = f->next(e, h)) {
			if (s->nchain < NF_SCAN_MAX)
				f->parse(e, f->target(e, h), &s->chain[s->nchain]);
			s->nchain++;
		}
	}
	for (int k = 0; k < t->nhooks; k++) {
		unsigned pos = 0;

		for (e = f->first(t->hooks[k], h); e != NULL; e = f->next(e, h), pos++) {
			const char *tg = f->target(e, h);

			if (strcmp(tg, NF_CHAIN) != 0 || s->njumps[k] >= NF_SCAN_MAX)
				continue;
			f->parse(e, tg, &s->jumps[k][s->njumps[k]]);
			s->jpos[k][s->njumps[k]++] = pos;
		}
	}
}

/* Empty text and 1 when the scan is exactly the plan. */
static int scan_matches(const struct nf_fam *f, const struct nf_table *t, const struct nf_scan *s,
                        const struct nf_plan *p, char *text, size_t len)
{
	text[0] = '\0';
	if (!s->chain_present) {
		nf_append(text, len, "%s %s: chain %s is missing", f->name, t->what, NF_CHAIN);
		return 0;
	}
	if (s->nchain != p->nchain) {
		nf_append(text, len, "%s %s: chain %s holds %d rules, expected %d", f->name,
		          t->what, NF_CHAIN, s->nchain, p->nchain);
	} else {
		for (int i = 0; i < p->nchain; i++)
			if (!rule_eq(&s->chain[i], &p->chain[i], 1))
				nf_append(text, len, "%s %s: rule %d of chain %s differs", f->name,
				          t->what, i, NF_CHAIN);
	}
	for (int k = 0; k < t->nhooks; k++) {
		int found = 0;

		for (int j = 0; j < p->njumps; j++)
			for (int i = 0; i < s->njumps[k]; i++)
				if (rule_eq(&s->jumps[k][i], &p->jumps[j], 0)) {
					found++;
					break;
				}
		if (found != p->njumps || s->njumps[k] != p->njumps)
			nf_append(text, len, "%s %s: %s has %d jumps to %s, expected %d", f->name,
			          t->what, t->hooks[k], s->njumps[k], NF_CHAIN, p->njumps);
	}
	return text[0] == '\0';
}

static int init_error(const struct nf_fam *f, const struct nf_table *t, char *err, size_t errlen)
{
	int e = errno;

	switch (e) {
	case EPERM:
	case EACCES:
		nf_seterr(
		    err, errlen,
		    "%s %s table: permission denied: not root (reading or changing netfilter rules "
		    "needs CAP_NET_ADMIN in this network namespace)",
		    f->name, t->name);
		break;
	case ENOPROTOOPT:
	case EAFNOSUPPORT:
	case EPROTONOSUPPORT:
		nf_seterr(err, errlen,
		          "legacy x_tables (%s) is not available in this kernel (%s); Switchyard "
		          "writes legacy tables through libiptc",
		          f->kmod, f->strerror(e));
		break;
	case ENOENT:
		nf_seterr(
		    err, errlen,
		    "the legacy %s %s table does not exist and could not be loaded (%s): legacy "
		    "x_tables (%s) is not available in this kernel",
		    f->name, t->name, f->strerror(e), f->kmod);
		break;
	default:
		nf_seterr(err, errlen, "cannot read the %s %s table: %s", f->name, t->name,
		          f->strerror(e));
		break;
	}
	errno = e;
	return -1;
}

static int init_unavailable(int e)
{
	return e == ENOPROTOOPT || e == EAFNOSUPPORT || e == EPROTONOSUPPORT || e == ENOENT;
}

static int edit_error(const struct nf_fam *f, const struct nf_table *t, const char *what, char *err,
                      size_t errlen)
{
	int e = errno;

	nf_seterr(err, errlen, "%s %s table: %s: %s", f->name, t->name, what, f->strerror(e));
	errno = e;
	return -1;
}

static int sync_handle(const struct nf_fam *f, const struct nf_table *t, void *h,
                       const struct nf_plan *p, int *changed, char *err, size_t errlen)
{
	unsigned char buf[NF_ENTRY_MAX] __attribute__((aligned(8)));
	struct nf_scan *s;
	int same = 1, rc = -1;

	s = malloc(sizeof(*s));
	if (s == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (!f->is_chain(NF_CHAIN, h)) {
		if (!f->create_chain(NF_CHAIN, h)) {
			edit_error(f, t, "create chain " NF_CHAIN, err, errlen);
			goto out;
		}
		*changed = 1;
	}
	scan(f, t, h, s);

	/* The common case, a flip, keeps the chain's shape and only rewrites
	 * the target ports in place: the entry count stays the same. Anything
	 * else (first install, drift, a changed config) rebuilds the chain. */
	if (s->nchain != p->nchain)
		same = 0;
	for (int i = 0; same && i < p->nchain; i++)
		if (!rule_eq(&s->chain[i], &p->chain[i], 0))
			same = 0;
	if (same) {
		for (int i = 0; i < p->nchain; i++) {
			if (s->chain[i].to_port == p->chain[i].to_port)
				continue;
			if (f->build(&p->chain[i], buf, sizeof(buf)) == 0 ||
			    !f->replace(NF_CHAIN, buf, (unsigned)i, h)) {
				edit_error(f, t, "replace rule in " NF_CHAIN, err, errlen);
				goto out;
			}
			*changed = 1;
		}
	} else {
		if (!f->flush(NF_CHAIN, h)) {
			edit_error(f, t, "flush chain " NF_CHAIN, err, errlen);
			goto out;
		}
		for (int i = 0; i < p->nchain; i++) {
			if (f->build(&p->chain[i], buf, sizeof(buf)) == 0 ||
			    !f->append(NF_CHAIN, buf, h)) {
				edit_error(f, t, "append rule to " NF_CHAIN, err, errlen);
				goto out;
			}
		}
		*changed = 1;
	}

	/* Jumps: when every wanted jump is there, keep them wherever they
	 * are and delete every other jump to our chain (stale addresses,
	 * duplicates, jumps someone edited). When one is missing, delete all
	 * of ours and insert the wanted ones at the top, in order, so that
	 * our REDIRECTs are reached before other nat rules on the same hook
	 * and a repaired table looks exactly like a fresh install. */
	for (int k = 0; k < t->nhooks; k++) {
		int have[NF_MAX_JUMPS] = {0};
		int del[NF_SCAN_MAX];
		int ndel = 0, nhave = 0;

		for (int i = 0; i < s->njumps[k]; i++) {
			int keep = 0;

			for (int j = 0; j < p->njumps && !keep; j++)
				if (!have[j] && rule_eq(&s->jumps[k][i], &p->jumps[j], 0))
					have[j] = keep = 1;
			nhave += keep;
			if (!keep)
				del[ndel++] = i;
		}
		if (nhave != p->njumps) {
			memset(have, 0, sizeof(have));
			ndel = 0;
			for (int i = 0; i < s->njumps[k]; i++)
				del[ndel++] = i;
		}
		/* Delete from the bottom up so earlier positions stay valid. */
		for (int d = ndel - 1; d >= 0; d--) {
			if (!f->delete_num(t->hooks[k], s->jpos[k][del[d]], h)) {
				edit_error(f, t, "delete stale jump", err, errlen);
				goto out;
			}
			*changed = 1;
		}
		for (int j = p->njumps - 1; j >= 0; j--) {
			if (have[j])
				continue;
			if (f->build(&p->jumps[j], buf, sizeof(buf)) == 0 ||
			    !f->insert(t->hooks[k], buf, 0, h)) {
				edit_error(f, t, "insert jump", err, errlen);
				goto out;
			}
			*changed = 1;
		}
	}
	rc = 0;
out:
	free(s);
	return rc;
}

static int remove_handle(const struct nf_fam *f, const struct nf_table *t, void *h, int *changed,
                         char *err, size_t errlen)
{
	struct nf_scan *s = malloc(sizeof(*s));
	int rc = -1;

	if (s == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	scan(f, t, h, s);
	/* Every jump to our chain goes, whatever its form: the chain cannot
	 * be deleted while anything references it. */
	for (int k = 0; k < t->nhooks; k++)
		for (int d = s->njumps[k] - 1; d >= 0; d--) {
			if (!f->delete_num(t->hooks[k], s->jpos[k][d], h)) {
				edit_error(f, t, "delete jump", err, errlen);
				goto out;
			}
			*changed = 1;
		}
	if (s->chain_present) {
		if (!f->flush(NF_CHAIN, h) || !f->delete_chain(NF_CHAIN, h)) {
			edit_error(f, t, "delete chain " NF_CHAIN, err, errlen);
			goto out;
		}
		*changed = 1;
	}
	rc = 0;
out:
	free(s);
	return rc;
}

enum nf_op { NF_OP_SYNC, NF_OP_REMOVE };

/*
 * One family's transaction; the caller holds the xtables lock. before, if not
 * NULL, receives the table as it was. With optional set, a table that the
 * kernel does not have is not an error (there is nothing of ours in it).
 */
static int txn(const struct nf_fam *f, const struct nf_table *t, enum nf_op op,
               const struct nf_plan *p, struct nf_scan *before, int optional, char *err,
               size_t errlen)
{
	struct nf_scan *s;
	char text[512];
	int rc = -1;

	for (int attempt = 0; attempt < NF_EAGAIN_TRIES; attempt++) {
		void *h = f->init(t->name);
		int changed = 0;

		if (h == NULL) {
			if (optional && init_unavailable(errno))
				return 0;
			return init_error(f, t, err, errlen);
		}
		if (before != NULL)
			scan(f, t, h, before);
		rc = op == NF_OP_SYNC ? sync_handle(f, t, h, p, &changed, err, errlen)
		                      : remove_handle(f, t, h, &changed, err, errlen);
		if (rc < 0 || !changed) {
			f->free(h);
			return rc;
		}
		if (!f->commit(h)) {
			int e = errno;

			f->free(h);
			/* The kernel refuses a replace with EAGAIN only when
			 * the entry count changed since our read: someone
			 * that does not take the xtables lock wrote to the
			 * table. Start over from a fresh copy. */
			if (e == EAGAIN)
				continue;
			errno = e;
			return edit_error(f, t, "commit", err, errlen);
		}
		f->free(h);
		goto verify;
	}
	nf_seterr(err, errlen, "%s %s table: commit kept failing with EAGAIN (%d attempts)",
	          f->name, t->name, NF_EAGAIN_TRIES);
	errno = EAGAIN;
	return -1;

verify:
	s = malloc(sizeof(*s));
	if (s == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	{
		void *h = f->init(t->name);

		if (h == NULL) {
			free(s);
			return init_error(f, t, err, errlen);
		}
		scan(f, t, h, s);
		f->free(h);
	}
	rc = 0;
	if (op == NF_OP_SYNC) {
		if (!scan_matches(f, t, s, p, text, sizeof(text))) {
			nf_seterr(err, errlen, "%s %s table: read back after commit differs: %s",
			          f->name, t->name, text);
			rc = -1;
		}
	} else if (s->chain_present || s->njumps[0] || s->njumps[1]) {
		nf_seterr(err, errlen, "%s %s table: read back after commit still holds %s",
		          f->name, t->name, NF_CHAIN);
		rc = -1;
	}
	free(s);
	if (rc < 0)
		errno = EIO;
	return rc;
}

/*
 * Is the legacy table already loaded in this network namespace? iptc_init()
 * of a missing table autoloads its module and creates the table, hooks and
 * all; we only want that for a table we are about to fill, not to look for a
 * guard that was never installed.
 */
static int table_loaded(const struct nf_fam *f, const char *table)
{
	char line[64];
	int found = 0;
	FILE *fp = fopen(
	    f->af == AF_INET6 ? "/proc/net/ip6_tables_names" : "/proc/net/ip_tables_names", "re");

	if (fp == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		found = strcmp(line, table) == 0;
	}
	fclose(fp);
	return found;
}

static int bad_colour(int c, char *err, size_t errlen)
{
	if (c == CFG_BLUE || c == CFG_GREEN)
		return 0;
	nf_seterr(err, errlen, "colour %d is neither blue nor green", c);
	errno = EINVAL;
	return 1;
}

int nf_iptc_install(const struct cfg *cfg, enum cfg_colour live, char *err, size_t errlen)
{
	struct nf_plan p;
	int fd, rc = 0;

	if (bad_colour((int)live, err, errlen) || validate(cfg, err, errlen) < 0)
		return -1;
	if (nf_xtlock_take(&fd, err, errlen) < 0)
		return -1;
	for (int i = 0; i < 2 && rc == 0; i++) {
		plan_build(cfg, nf_fams[i], live, &p);
		/* A family without listeners keeps nothing of ours: leftovers
		 * from an older configuration are removed. */
		if (p.nchain == 0)
			rc = txn(nf_fams[i], &nf_nat, NF_OP_REMOVE, NULL, NULL, 1, err, errlen);
		else
			rc = txn(nf_fams[i], &nf_nat, NF_OP_SYNC, &p, NULL, 0, err, errlen);
	}
	for (int i = 0; i < 2 && rc == 0; i++) {
		plan_guard(cfg, nf_fams[i], &p);
		if (p.nchain == 0 || !cfg->supervisor.filter_guard) {
			if (table_loaded(nf_fams[i], nf_guard.name))
				rc = txn(nf_fams[i], &nf_guard, NF_OP_REMOVE, NULL, NULL, 1, err,
				         errlen);
		} else {
			rc = txn(nf_fams[i], &nf_guard, NF_OP_SYNC, &p, NULL, 0, err, errlen);
		}
	}
	nf_xtlock_release(fd);
	return rc;
}

int nf_iptc_remove(const struct cfg *cfg, char *err, size_t errlen)
{
	int fd, rc = 0;

	(void)cfg;
	if (nf_xtlock_take(&fd, err, errlen) < 0)
		return -1;
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = txn(nf_fams[i], &nf_nat, NF_OP_REMOVE, NULL, NULL, 1, err, errlen);
	for (int i = 0; i < 2 && rc == 0; i++)
		if (table_loaded(nf_fams[i], nf_guard.name))
			rc = txn(nf_fams[i], &nf_guard, NF_OP_REMOVE, NULL, NULL, 1, err, errlen);
	nf_xtlock_release(fd);
	return rc;
}

/*
 * Removes what the legacy backend left in tables that are already loaded in
 * this namespace, and nothing else: unlike nf_iptc_remove it never makes the
 * kernel instantiate a legacy table (iptc_init would), so the nftables
 * backend can call it on every install without registering legacy hooks.
 */
int nf_iptc_remove_loaded(char *err, size_t errlen)
{
	const struct nf_table *const tables[2] = {&nf_nat, &nf_guard};
	int fd = -1, rc = 0;

	for (int t = 0; t < 2 && rc == 0; t++)
		for (int i = 0; i < 2 && rc == 0; i++) {
			if (!table_loaded(nf_fams[i], tables[t]->name))
				continue;
			if (fd < 0 && nf_xtlock_take(&fd, err, errlen) < 0)
				return -1;
			rc = txn(nf_fams[i], tables[t], NF_OP_REMOVE, NULL, NULL, 1, err, errlen);
		}
	if (fd >= 0)
		nf_xtlock_release(fd);
	return rc;
}

int nf_iptc_available(void)
{
	return access("/proc/net/ip_tables_names", F_OK) == 0 ||
	       access("/proc/net/ip6_tables_names", F_OK) == 0;
}

int nf_iptc_nat_loaded(void)
{
	return table_loaded(&nf_fam4, "nat") || table_loaded(&nf_fam6, "nat");
}

int nf_iptc_flip(const struct cfg *cfg, enum cfg_colour to, char *err, size_t errlen)
{
	struct nf_plan p4, p6;
	struct nf_scan *before4;
	char err6[512];
	int fd, rc;

	if (bad_colour((int)to, err, errlen) || validate(cfg, err, errlen) < 0)
		return -1;
	plan_build(cfg, &nf_fam4, to, &p4);
	plan_build(cfg, &nf_fam6, to, &p6);
	before4 = malloc(sizeof(*before4));
	if (before4 == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	if (nf_xtlock_take(&fd, err, errlen) < 0) {
		free(before4);
		return -1;
	}
	/* IPv4 first, then IPv6: two commits, because x_tables replaces one
	 * table of one family at a time. Between them, for a few
	 * microseconds, new IPv4 connections already go to `to` while new
	 * IPv6 ones still go to the other colour; both instances serve, so
	 * that window is harmless. */
	rc = p4.nchain > 0 ? txn(&nf_fam4, &nf_nat, NF_OP_SYNC, &p4, before4, 0, err, errlen) : 0;
	if (rc == 0 && p6.nchain > 0) {
		rc = txn(&nf_fam6, &nf_nat, NF_OP_SYNC, &p6, NULL, 0, err6, sizeof(err6));
		if (rc < 0 && p4.nchain > 0) {
			int e = errno,
			    same = before4->chain_present && before4->nchain == p4.nchain;
			char err4[512] = "";

			/* Put IPv4 back the way it was, port by port, when
			 * it was in our layout before; otherwise there is no
			 * known good state to restore. */
			for (int i = 0; same && i < p4.nchain; i++)
				if (!rule_eq(&before4->chain[i], &p4.chain[i], 0))
					same = 0;
			if (same) {
				struct nf_plan back = p4;

				for (int i = 0; i < p4.nchain; i++)
					back.chain[i].to_port = before4->chain[i].to_port;
				if (txn(&nf_fam4, &nf_nat, NF_OP_SYNC, &back, NULL, 0, err4,
				        sizeof(err4)) == 0)
					nf_seterr(err, errlen, "%s; IPv4 was put back as it was",
					          err6);
				else
					nf_seterr(
					    err, errlen,
					    "%s; putting IPv4 back failed too, IPv4 points at %s: "
					    "%s",
					    err6, nf_colour_names[to], err4);
			} else {
				nf_seterr(err, errlen,
				          "%s; IPv4 now points at %s (its previous state was not "
				          "Switchyard's layout, so it was not restored)",
				          err6, nf_colour_names[to]);
			}
			errno = e;
		} else if (rc < 0) {
			nf_seterr(err, errlen, "%s", err6);
		}
	}
	nf_xtlock_release(fd);
	free(before4);
	return rc;
}

/* Does redirect rule r belong to listener l? (Its address and port.) */
static int rule_for(const struct nf_fam *f, const struct nf_rule *r, const struct cfg_listener *l)
{
	int plen = nf_addr_is_any(&l->addr) ? 0 : f->alen * 8;

	return r->kind == NF_RK_REDIRECT && r->dport == l->port && r->plen == plen &&
	       (plen == 0 || memcmp(r->addr, l->addr.a.v6, (size_t)f->alen) == 0);
}

int nf_iptc_read(const struct cfg *cfg, struct nf_state *st, char *err, size_t errlen)
{
	struct nf_scan *s;
	int live = -2;

	memset(st, 0, sizeof(*st));
	st->live = -1;
	st->nlisteners = cfg->nlisteners;
	s = malloc(sizeof(*s));
	if (s == NULL) {
		nf_seterr(err, errlen, "out of memory");
		return -1;
	}
	/* Reading takes no lock: iptc_init copies the table in one
	 * getsockopt, and every writer replaces the table atomically, so the
	 * copy is always a consistent snapshot. */
	for (int fi = 0; fi < 2; fi++) {
		const struct nf_fam *f = nf_fams[fi];
		struct nf_plan p;
		int used[NF_SCAN_MAX] = {0};
		void *h;

		plan_build(cfg, f, CFG_BLUE, &p);
		h = f->init(nf_nat.name);
		if (h == NULL) {
			if (p.nchain == 0 && init_unavailable(errno))
				continue;
			free(s);
			return init_error(f, &nf_nat, err, errlen);
		}
		scan(f, &nf_nat, h, s);
		f->free(h);
		st->chain_present[fi] = s->chain_present;
		if (p.nchain == 0) {
			if (s->chain_present || s->njumps[0] || s->njumps[1])
				nf_append(
				    st->drift_text, sizeof(st->drift_text),
				    "%s: chain %s or jumps to it present but no listener is %s",
				    f->name, NF_CHAIN, f->name);
			continue;
		}
		if (!s->chain_present)
			nf_append(st->drift_text, sizeof(st->drift_text), "%s: chain %s is missing",
			          f->name, NF_CHAIN);
		if (s->nchain > NF_SCAN_MAX)
			nf_append(st->drift_text, sizeof(st->drift_text),
			          "%s: chain %s holds %d rules, only the first %d were examined",
			          f->name, NF_CHAIN, s->nchain, NF_SCAN_MAX);
		st->jumps_present[fi] = 1;
		for (int k = 0; k < nf_nat.nhooks; k++) {
			int found = 0;

			for (int j = 0; j < p.njumps; j++)
				for (int i = 0; i < s->njumps[k]; i++)
					if (rule_eq(&s->jumps[k][i], &p.jumps[j], 0)) {
						found++;
						break;
					}
			if (found != p.njumps) {
				st->jumps_present[fi] = 0;
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "%s: %d of %d jumps from %s to %s missing", f->name,
				          p.njumps - found, p.njumps, nf_nat.hooks[k], NF_CHAIN);
			}
			if (s->njumps[k] > found)
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "%s: %d extra or changed jumps from %s to %s", f->name,
				          s->njumps[k] - found, nf_nat.hooks[k], NF_CHAIN);
		}
		for (int i = 0; i < cfg->nlisteners; i++) {
			const struct cfg_listener *l = &cfg->listeners[i];
			struct nf_listener_state *ls = &st->listeners[i];
			int n = 0, idx = -1;

			if (fam_of(&l->addr) != f)
				continue;
			for (int r = 0; r < s->nchain && r < NF_SCAN_MAX; r++)
				if (rule_for(f, &s->chain[r], l)) {
					used[r] = 1;
					if (n++ == 0)
						idx = r;
				}
			ls->colour = -1;
			if (n == 0) {
				ls->state = NF_RULE_MISSING;
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "listener %s (%s port %u): rule missing", l->name,
				          l->addr.text, l->port);
			} else if (n > 1) {
				ls->state = NF_RULE_DUPLICATE;
				ls->to_port = s->chain[idx].to_port;
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "listener %s (%s port %u): %d rules", l->name,
				          l->addr.text, l->port, n);
			} else {
				const struct nf_rule *r = &s->chain[idx];

				ls->to_port = r->to_port;
				for (int c = 0; c < CFG_NCOLOURS; c++)
					if (r->exact && r->to_port == cfg->instances[c].ports[i])
						ls->colour = c;
				if (ls->colour < 0) {
					ls->state = NF_RULE_FOREIGN;
					nf_append(
					    st->drift_text, sizeof(st->drift_text),
					    "listener %s (%s port %u): rule %s to port %u, which "
					    "is neither blue nor green",
					    l->name, l->addr.text, l->port,
					    r->exact ? "redirects" : "was changed and redirects",
					    r->to_port);
				} else {
					ls->state = NF_RULE_OK;
				}
			}
		}
		for (int r = 0; r < s->nchain && r < NF_SCAN_MAX; r++)
			if (!used[r])
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "%s: rule %d of chain %s matches no listener", f->name, r,
				          NF_CHAIN);
	}
	for (int fi = 0; fi < 2; fi++) {
		const struct nf_fam *f = nf_fams[fi];
		struct nf_plan p;
		char text[512];
		void *h;

		plan_guard(cfg, f, &p);
		if (!table_loaded(f, nf_guard.name)) {
			if (cfg->supervisor.filter_guard && p.nchain > 0)
				nf_append(st->drift_text, sizeof(st->drift_text),
				          "%s filter guard: the filter table is not loaded",
				          f->name);
			continue;
		}
		h = f->init(nf_guard.name);
		if (h == NULL)
			continue; /* no filter table: no guard either way */
		scan(f, &nf_guard, h, s);
		f->free(h);
		if (cfg->supervisor.filter_guard && p.nchain > 0) {
			if (!scan_matches(f, &nf_guard, s, &p, text, sizeof(text)))
				nf_append(st->drift_text, sizeof(st->drift_text), "%s", text);
		} else if (s->chain_present || s->njumps[0]) {
			nf_append(
			    st->drift_text, sizeof(st->drift_text),
			    "%s filter guard: chain %s present but supervisor.filter_guard is off",
			    f->name, NF_CHAIN);
		}
	}
	free(s);
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
	return 0;
}
