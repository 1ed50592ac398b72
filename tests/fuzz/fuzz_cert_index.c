/*
 * fuzz_cert_index: the SNI index (certstore/cert_index.c): full builds, lookups
 * and delta updates, each delta checked against a full rebuild of the same
 * set and against a model of what every lookup must return.
 *
 * The input is a program over up to 256 file slots ("f000" .. "f255", so
 * slot order is file-name order). Each slot is absent, a file that failed
 * to load (no item) or a loaded item with 1 to 64 names, ECDSA or RSA.
 * Names are drawn from a small universe (a few dozen parent domains, exact,
 * apex and wildcard names) so that collisions, duplicates and
 * wildcard-heavy sets are common. Operations, one byte each plus operands:
 *   0: put a new item into a slot (replacing what was there);
 *   1: remove a slot;
 *   2: turn a slot into a file that failed to load;
 *   3: commit: build the next store as a reload would (cert_index_update
 *      with the delta, else cert_index_build) and check it;
 *   4: put an item with many generated names (wildcard-only, exact-only or
 *      mixed), the shape of SaaS certificate sets;
 *   5: look up raw input bytes as an SNI name in the current store.
 * The input ends with a commit. After each commit the previous store's
 * index is freed and so are the items the delta removed, as a reload does,
 * so that ASan sees an index entry that still points into them.
 *
 * A probe loop that never ends (a full table) shows as a libFuzzer timeout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certstore/cert_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSLOTS     256
#define MAX_NAMES  64   /* per item */
#define MAX_TOTAL  4096 /* names over all slots, to keep each input fast */
#define MAX_ITEMS  1024 /* items made by one input */
#define NPARENTS   48
#define NLABELS    8
#define INST_LABEL "zz-inst" /* never generated as a name: instantiates wildcards */

struct rd {
	const uint8_t *p;
	size_t n;
};

static unsigned byte(struct rd *r)
{
	if (r->n == 0)
		return 0;
	r->n--;
	return *r->p++;
}

static char slot_name[NSLOTS][8];

struct slot {
	int present;
	struct cert_item *item; /* NULL: the file failed to load */
};

struct state {
	struct slot cur[NSLOTS];  /* being edited */
	struct slot prev[NSLOTS]; /* as in the committed store */
	struct cert_store *st;    /* committed, or NULL before the first commit */
	struct cert_item *items[MAX_ITEMS];
	size_t nitems_made;
	size_t total; /* names over cur */
};

/* One of a small universe of names: wildcards are half of them. */
static void gen_name(unsigned a, unsigned b, char *out, size_t len)
{
	unsigned parent = b % NPARENTS, label = (b / NPARENTS + a) % NLABELS;

	switch (a % 6) {
	case 0:
	case 1:
		snprintf(out, len, "*.p%u.example", parent);
		break;
	case 2:
		snprintf(out, len, "l%u.p%u.example", label, parent);
		break;
	case 3:
		snprintf(out, len, "p%u.example", parent);
		break;
	case 4:
		snprintf(out, len, "*.l%u.p%u.example", label, parent);
		break;
	default:
		snprintf(out, len, "w%u.example", b);
		break;
	}
}

/* An item and the mark commit uses to find the items no slot holds. */
struct fitem {
	struct cert_item it; /* first: a struct cert_item * is a struct fitem * */
	int live;
};

static struct cert_item *new_item(struct state *s, int is_ec, size_t n)
{
	struct fitem *f;

	if (s->nitems_made == MAX_ITEMS)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL || (f->it.names = calloc(n, sizeof(*f->it.names))) == NULL)
		abort();
	f->it.is_ec = is_ec;
	s->items[s->nitems_made++] = &f->it;
	return &f->it;
}

static void add_name(struct cert_item *it, const char *name)
{
	char norm[CERT_NAME_MAX + 1];
	int n = cert_name_norm(name, strlen(name), norm);

	if (n < 0)
		abort(); /* the generator makes only valid names */
	it->names[it->nnames] = strdup(norm);
	if (it->names[it->nnames] == NULL)
		abort();
	it->nnames++;
}

static void item_free(struct cert_item *it)
{
	for (size_t i = 0; i < it->nnames; i++)
		free(it->names[i]);
	free(it->names);
	free(it->file);
	free(it);
}

static size_t slot_names(const struct slot *sl)
{
	return sl->present && sl->item != NULL ? sl->item->nnames : 0;
}

static void put_item(struct state *s, unsigned k, struct cert_item *it)
{
	s->total -= slot_names(&s->cur[k]);
	s->cur[k].present = 1;
	s->cur[k].item = it;
	s->total += slot_names(&s->cur[k]);
	/* Files are "fNNN"; the item's file name is what duplicate warnings
	 * name as the winner. */
	if (it != NULL && it->file == NULL && (it->file = strdup(slot_name[k])) == NULL)
		abort();
}

static struct cert_store *store_new(const struct slot *slots)
{
	struct cert_store *st = calloc(1, sizeof(*st));
	size_t n = 0;

	for (unsigned k = 0; k < NSLOTS; k++)
		n += slots[k].present != 0;
	if (st == NULL || (st->files = calloc(n + 1, sizeof(*st->files))) == NULL)
		abort();
	n = 0;
	pthread_mutex_init(&st->order_lock, NULL);
	for (unsigned k = 0; k < NSLOTS; k++) {
		if (!slots[k].present)
			continue;
		st->files[n].name = slot_name[k];
		st->files[n].item = slots[k].item;
		n++;
	}
	st->nfiles = n;
	return st;
}

static void store_free(struct cert_store *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->nfiles; i++)
		free(st->files[i].dupmsg);
	free(st->files);
	cert_index_free(st);
	pthread_mutex_destroy(&st->order_lock);
	free(st);
}

/* The model: every (name, claimant) pair, sorted by name then file. */
struct claim {
	const char *name;
	unsigned slot;
	const struct cert_item *it;
};

static int claim_cmp(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : (x->slot > y->slot) - (x->slot < y->slot);
}

/* What a lookup of an exact key must return under the model, for the
 * entry "name" (an exact name or "*.parent"). */
static const struct cert_item *model_pick(const struct claim *c, size_t nc, const char *name,
                                          unsigned flags, int *found)
{
	const struct cert_item *ec = NULL, *rsa = NULL;
	size_t lo = 0, hi = nc;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (strcmp(c[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	/* The smallest file name wins each key type. */
	for (; lo < nc && strcmp(c[lo].name, name) == 0; lo++) {
		*found = 1;
		if (c[lo].it->is_ec && ec == NULL)
			ec = c[lo].it;
		if (!c[lo].it->is_ec && rsa == NULL)
			rsa = c[lo].it;
	}
	if (ec != NULL && (rsa == NULL || (flags & CERT_LOOKUP_ECDSA_OK)))
		return ec;
	return rsa;
}

static const struct cert_item *lookup(const struct cert_store *st, const char *name, unsigned flags)
{
	int used_default;

	return cert_store_lookup(st, name, strlen(name), flags, &used_default);
}

/* Checks one name in the store that was patched (got), the full rebuild
 * (ref) and the model. */
static void check_name(const struct cert_store *got, const struct cert_store *ref,
                       const struct claim *c, size_t nc, const char *name)
{
	char wild[CERT_NAME_MAX + 3];
	const char *dot = strchr(name, '.');

	for (unsigned flags = 0; flags <= CERT_LOOKUP_ECDSA_OK; flags++) {
		const struct cert_item *a = lookup(got, name, flags);
		const struct cert_item *m;
		int found;

		if (ref != NULL && lookup(ref, name, flags) != a)
			abort();
		/* An exact claim wins; else the wildcard of the parent. */
		m = model_pick(c, nc, name, flags, &found);
		if (!found && dot != NULL && dot[1] != '\0') {
			snprintf(wild, sizeof(wild), "*%s", dot);
			m = model_pick(c, nc, wild, flags, &found);
		}
		if (a != m)
			abort();
	}
}

static void check_store(const struct cert_store *got, const struct cert_store *ref,
                        const struct slot *slots)
{
	static struct claim c[MAX_TOTAL];
	char buf[CERT_NAME_MAX + 16];
	size_t nc = 0, nitems = 0, ndistinct = 0;

	for (unsigned k = 0; k < NSLOTS; k++) {
		const struct cert_item *it = slots[k].present ? slots[k].item : NULL;

		if (it == NULL)
			continue;
		nitems++;
		for (size_t j = 0; j < it->nnames; j++)
			c[nc++] = (struct claim){it->names[j], k, it};
	}
	qsort(c, nc, sizeof(c[0]), claim_cmp);
	if (got->nitems != nitems)
		abort();
	if (ref != NULL && (got->nnames != ref->nnames || got->nitems != ref->nitems))
		abort();
	/* Every claimed name, wildcards instantiated, their parents and some
	 * names nobody claims. */
	for (size_t i = 0; i < nc; i++) {
		const char *n = c[i].name;

		if (i > 0 && strcmp(n, c[i - 1].name) == 0)
			continue;
		ndistinct++;
		if (n[0] == '*') {
			snprintf(buf, sizeof(buf), INST_LABEL "%s", n + 1);
			check_name(got, ref, c, nc, buf);
			check_name(got, ref, c, nc, n + 2);
			snprintf(buf, sizeof(buf), "a.b%s", n + 1);
			check_name(got, ref, c, nc, buf);
		} else {
			check_name(got, ref, c, nc, n);
			snprintf(buf, sizeof(buf), "miss.%s", n);
			check_name(got, ref, c, nc, buf);
		}
	}
	if (got->nnames != ndistinct)
		abort();
	for (unsigned p = 0; p < NPARENTS + 4; p++) {
		snprintf(buf, sizeof(buf), "nobody.p%u.example", p);
		check_name(got, ref, c, nc, buf);
		snprintf(buf, sizeof(buf), "p%u.example", p);
		check_name(got, ref, c, nc, buf);
	}
	/* The sorted name list (the health gate samples it) must match. */
	if (ref != NULL) {
		for (size_t i = 0; i < got->nnames; i++) {
			const char *a = cert_store_name_at(got, i), *b = cert_store_name_at(ref, i);

			if (a == NULL || b == NULL || strcmp(a, b) != 0)
				abort();
		}
		if (cert_store_name_at(got, got->nnames) != NULL)
			abort();
	}
}

static void commit(struct state *s)
{
	struct cert_store *next = store_new(s->cur), *ref = NULL;
	struct cert_delta d = {0};
	int patched = -1;

	if (s->st != NULL) {
		/* The delta as cert_store.c's delta_find makes it: slots in file
		 * name order, an item that differs is removed and/or added. */
		d.rm = calloc(NSLOTS, sizeof(*d.rm));
		d.add = calloc(NSLOTS, sizeof(*d.add));
		if (d.rm == NULL || d.add == NULL)
			abort();
		for (unsigned k = 0; k < NSLOTS; k++) {
			const struct cert_item *a = s->prev[k].present ? s->prev[k].item : NULL;
			const struct cert_item *b = s->cur[k].present ? s->cur[k].item : NULL;

			if (a == b)
				continue;
			if (a != NULL)
				d.rm[d.nrm++] = a;
			if (b != NULL)
				d.add[d.nadd++] = b;
		}
		patched = cert_index_update(next, s->st, &d);
		if (patched < 0 && (next->exact.ents != NULL || next->wild.ents != NULL))
			abort(); /* "st's index is then untouched" */
	}
	if (patched < 0 && cert_index_build(next) < 0)
		abort();
	if (patched == 0) {
		ref = store_new(s->cur);
		if (cert_index_build(ref) < 0)
			abort();
		/* A patch is only allowed where a build finds no duplicate. */
		if (ref->ndups != 0)
			abort();
	}
	/* A reload frees the previous store and, with it, the items the delta
	 * removed; anything of theirs still in the new index is then a
	 * use-after-free. */
	store_free(s->st);
	for (size_t i = 0; i < s->nitems_made; i++)
		if (s->items[i] != NULL)
			((struct fitem *)s->items[i])->live = 0;
	for (unsigned k = 0; k < NSLOTS; k++)
		if (s->cur[k].present && s->cur[k].item != NULL)
			((struct fitem *)s->cur[k].item)->live = 1;
	for (size_t i = 0; i < s->nitems_made; i++) {
		if (s->items[i] != NULL && !((struct fitem *)s->items[i])->live) {
			item_free(s->items[i]);
			s->items[i] = NULL;
		}
	}
	check_store(next, ref, s->cur);
	store_free(ref);
	free(d.rm);
	free(d.add);
	s->st = next;
	memcpy(s->prev, s->cur, sizeof(s->prev));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct state s;
	struct rd r = {data, size};
	char name[CERT_NAME_MAX + 1];

	if (slot_name[0][0] == '\0')
		for (unsigned k = 0; k < NSLOTS; k++)
			snprintf(slot_name[k], sizeof(slot_name[k]), "f%03u", k);
	memset(&s, 0, sizeof(s));
	while (r.n > 0) {
		unsigned op = byte(&r) % 6, k = byte(&r);

		switch (op) {
		case 0: {
			unsigned flags = byte(&r), n = flags % 8 + 1;
			struct cert_item *it;

			if (s.total + n > MAX_TOTAL || (it = new_item(&s, flags & 0x80, n)) == NULL)
				break;
			for (unsigned j = 0; j < n; j++) {
				unsigned a = byte(&r);

				gen_name(a, byte(&r), name, sizeof(name));
				add_name(it, name);
			}
			put_item(&s, k, it);
			break;
		}
		case 1:
			s.total -= slot_names(&s.cur[k]);
			s.cur[k].present = 0;
			s.cur[k].item = NULL;
			break;
		case 2:
			put_item(&s, k, NULL);
			break;
		case 3:
			commit(&s);
			break;
		case 4: {
			/* Many names from a seed: wildcard-only (*.tN.example),
			 * exact-only, or apex plus wildcard pairs. */
			unsigned shape = byte(&r), n = byte(&r) % MAX_NAMES + 1,
			         seed = byte(&r) << 4;
			struct cert_item *it;

			if (s.total + n > MAX_TOTAL || (it = new_item(&s, shape & 0x80, n)) == NULL)
				break;
			for (unsigned j = 0; j < n; j++) {
				unsigned t = seed + j;

				switch (shape % 3) {
				case 0:
					snprintf(name, sizeof(name), "*.t%u.example", t);
					break;
				case 1:
					snprintf(name, sizeof(name), "h%u.t%u.example", j, seed);
					break;
				default:
					snprintf(name, sizeof(name),
					         j % 2 ? "*.t%u.example" : "t%u.example", t / 2);
					break;
				}
				add_name(it, name);
			}
			put_item(&s, k, it);
			break;
		}
		default: {
			/* Raw bytes as a client's SNI: any outcome, but it must
			 * return (a hang is a libFuzzer timeout). */
			size_t n = k % 64 < r.n ? k % 64 : r.n;
			int used_default;

			if (s.st != NULL)
				(void)cert_store_lookup(s.st, (const char *)r.p, n,
				                        k & 0x80 ? 1 : 0, &used_default);
			r.p += n;
			r.n -= n;
			break;
		}
		}
	}
	commit(&s);
	store_free(s.st);
	for (size_t i = 0; i < s.nitems_made; i++)
		if (s.items[i] != NULL)
			item_free(s.items[i]);
	return 0;
}
