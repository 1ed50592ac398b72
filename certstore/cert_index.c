/*
 * cert_index: the SNI name index of a store.
 *
 * Two open-addressing hash tables: exact names, and wildcards keyed by their
 * parent domain ("*.example.com" is stored under "example.com"). A lookup of
 * "a.example.com" probes the exact table, then the wildcard table with the
 * part after the first label, so a wildcard covers exactly one label and the
 * cost is independent of the number of certificates.
 */
#include <stdlib.h>
#include <string.h>

#include "certstore/cert_int.h"

int cert_name_norm(const char *name, size_t len, char *out)
{
	size_t label = 0;

	if (name == NULL)
		return -1;
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > CERT_NAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0)
				return -1; /* empty label */
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		           c == '_') {
			if (++label > 63)
				return -1;
		} else if (c == '*' && i == 0 && len > 2 && name[1] == '.') {
			/* Only "*" as the whole first label is a wildcard. */
			label = 1;
		} else {
			return -1;
		}
		out[i] = (char)c;
	}
	if (label == 0)
		return -1;
	out[len] = '\0';
	return (int)len;
}

static uint32_t name_hash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

/*
 * Every probe loop below is bounded by the table's capacity. The tables keep
 * their load factor at or below one half (index_reserve), so a probe ends at
 * an empty slot long before that bound; the bound is what makes the loops
 * finite even if a bug ever let a table fill up, because a full table with
 * an unbounded probe turns every lookup miss (any unknown SNI) into an
 * endless loop on a worker thread.
 */
const struct cert_name_ent *cert_index_find(const struct cert_index *ix, const char *key,
                                            size_t len)
{
	uint32_t h;
	size_t mask, i;

	if (ix->cap == 0)
		return NULL;
	h = name_hash(key, len);
	mask = ix->cap - 1;
	i = h & mask;
	for (size_t step = 0; step < ix->cap; step++, i = (i + 1) & mask) {
		const struct cert_name_ent *e = &ix->ents[i];

		if (e->key == NULL)
			return NULL;
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	}
	return NULL;
}

/* The smallest power-of-two capacity (at least 16) that holds n entries at a
 * load factor of at most one half. */
static size_t index_cap_for(size_t n)
{
	size_t cap = 16;

	while (cap / 2 < n)
		cap *= 2;
	return cap;
}

static int index_init(struct cert_index *ix, size_t n)
{
	ix->cap = index_cap_for(n);
	ix->ents = cert_hot_calloc(ix->cap, sizeof(*ix->ents));
	ix->n = 0;
	return ix->ents == NULL ? -1 : 0;
}

/* Places e into a table known to have room and not to hold its key, and
 * returns the slot it took. */
static struct cert_name_ent *index_place(struct cert_index *ix, const struct cert_name_ent *e)
{
	size_t mask = ix->cap - 1, i = e->hash & mask;

	while (ix->ents[i].key != NULL)
		i = (i + 1) & mask; /* ends: the caller keeps a free slot */
	ix->ents[i] = *e;
	ix->n++;
	return &ix->ents[i];
}

/* Makes room for one more entry: when it would push the load factor past
 * one half, the table is rehashed into one twice the size. */
static int index_reserve(struct cert_index *ix)
{
	struct cert_index big;

	if ((ix->n + 1) * 2 <= ix->cap)
		return 0;
	if (index_init(&big, ix->n + 1) < 0)
		return -1;
	for (size_t i = 0; i < ix->cap; i++)
		if (ix->ents[i].key != NULL)
			index_place(&big, &ix->ents[i]);
	cert_hot_free(ix->ents);
	*ix = big;
	return 0;
}

/* Returns the entry for key, inserting an empty one if needed (growing the
 * table first when that would pass the load factor); NULL only when out of
 * memory. */
static struct cert_name_ent *index_upsert(struct cert_index *ix, const char *key, const char *name)
{
	size_t len = strlen(key);
	struct cert_name_ent *e = (struct cert_name_ent *)cert_index_find(ix, key, len), ne;

	if (e != NULL)
		return e;
	if (index_reserve(ix) < 0)
		return NULL;
	memset(&ne, 0, sizeof(ne));
	ne.key = key;
	ne.name = name;
	ne.hash = name_hash(key, len);
	ne.len = (uint32_t)len;
	return index_place(ix, &ne);
}

void cert_index_free(struct cert_store *st)
{
	cert_hot_free(st->exact.ents);
	cert_hot_free(st->wild.ents);
	free((void *)atomic_load(&st->order));
	st->exact.ents = st->wild.ents = NULL;
	atomic_store(&st->order, NULL);
}

static int cmp_ent(const void *a, const void *b)
{
	const struct cert_name_ent *x = *(const struct cert_name_ent *const *)a;
	const struct cert_name_ent *y = *(const struct cert_name_ent *const *)b;

	return strcmp(x->name, y->name);
}

/* Appends a duplicate-name warning to the losing file's index message. */
static void dup_warn(struct cert_file *loser, const char *name, const char *winner)
{
	char *n;

	if (loser->dupmsg == NULL)
		n = cert_strdup_printf("name %s is also claimed by %s, which wins (the "
		                       "smallest file name wins)",
		                       name, winner);
	else
		n = cert_strdup_printf("%s; name %s is also claimed by %s", loser->dupmsg, name,
		                       winner);
	if (n != NULL) {
		free(loser->dupmsg);
		loser->dupmsg = n;
	}
}

int cert_index_build(struct cert_store *st)
{
	size_t nexact = 0, nwild = 0;

	/* Each table is sized from the names it will hold. Wildcards are half
	 * or more of all names on a platform of wildcard-only and apex plus
	 * wildcard certificates, so no fixed share of the total fits. */
	for (size_t i = 0; i < st->nfiles; i++) {
		const struct cert_item *it = st->files[i].item;

		free(st->files[i].dupmsg);
		st->files[i].dupmsg = NULL;
		for (size_t j = 0; it != NULL && j < it->nnames; j++) {
			if (it->names[j][0] == '*')
				nwild++;
			else
				nexact++;
		}
	}
	if (index_init(&st->exact, nexact) < 0 || index_init(&st->wild, nwild) < 0)
		return -1;
	/* Files are sorted by name, so the first claimant of a name is the one
	 * with the smallest file name: the documented, deterministic winner. */
	for (size_t i = 0; i < st->nfiles; i++) {
		const struct cert_item *it = st->files[i].item;

		if (it == NULL)
			continue;
		st->nitems++;
		for (size_t j = 0; j < it->nnames; j++) {
			const char *n = it->names[j];
			int wild = n[0] == '*';
			struct cert_name_ent *e;
			const struct cert_item **slot;

			e = index_upsert(wild ? &st->wild : &st->exact, wild ? n + 2 : n, n);
			if (e == NULL)
				return -1;
			slot = it->is_ec ? &e->ec : &e->rsa;
			if (*slot == NULL) {
				*slot = it;
				continue;
			}
			st->ndups++;
			dup_warn(&st->files[i], n, (*slot)->file);
			if (st->files[i].sev < CERT_WARN)
				st->files[i].sev = CERT_WARN;
		}
	}
	st->nnames = st->exact.n + st->wild.n;
	return 0;
}

/* The largest number of replaced items that cert_index_update patches in;
 * beyond it a full build is as cheap. */
#define CERT_INDEX_PATCH_MAX 256

static struct cert_name_ent *index_find_mut(struct cert_index *ix, const char *key)
{
	return (struct cert_name_ent *)cert_index_find(ix, key, strlen(key));
}

/* Deletes e from a linear-probing table by shifting later entries of its
 * cluster back, so that every remaining key stays reachable from its home
 * slot without tombstones. */
static void index_delete(struct cert_index *ix, struct cert_name_ent *e)
{
	size_t mask = ix->cap - 1, i = (size_t)(e - ix->ents), j = i;

	for (size_t step = 1; step < ix->cap; step++) {
		size_t k;

		j = (j + 1) & mask;
		if (ix->ents[j].key == NULL)
			break;
		k = ix->ents[j].hash & mask;
		/* Entry j stays if its home slot k lies cyclically in (i, j]. */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		ix->ents[i] = ix->ents[j];
		i = j;
	}
	memset(&ix->ents[i], 0, sizeof(ix->ents[i]));
	ix->n--;
}

static int index_copy(struct cert_index *dst, const struct cert_index *src)
{
	dst->cap = src->cap;
	dst->n = src->n;
	dst->ents = cert_hot_alloc(src->cap * sizeof(*dst->ents));
	if (dst->ents == NULL)
		return -1;
	memcpy(dst->ents, src->ents, src->cap * sizeof(*dst->ents));
	return 0;
}

/* Removes item a's claims from the index; -1 if the index does not look as
 * a duplicate-free build would have left it. */
static int unclaim(struct cert_store *st, const struct cert_item *a)
{
	for (size_t j = 0; j < a->nnames; j++) {
		const char *n = a->names[j];
		int wild = n[0] == '*';
		struct cert_index *ix = wild ? &st->wild : &st->exact;
		struct cert_name_ent *e = index_find_mut(ix, wild ? n + 2 : n);
		const struct cert_item **slot, *other;

		if (e == NULL)
			return -1;
		slot = a->is_ec ? &e->ec : &e->rsa;
		other = a->is_ec ? e->rsa : e->ec;
		if (*slot != a)
			return -1;
		*slot = NULL;
		if (other == NULL) {
			index_delete(ix, e);
			continue;
		}
		/* The entry's strings may belong to a, which can be freed with
		 * the old store: point them at the remaining claimant's. */
		e->name = NULL;
		for (size_t k = 0; k < other->nnames; k++)
			if (strcmp(other->names[k], n) == 0)
				e->name = other->names[k];
		if (e->name == NULL)
			return -1;
		e->key = wild ? e->name + 2 : e->name;
	}
	return 0;
}

/* Adds item b's claims; -1 on a duplicate, which needs a full build for
 * the documented winner and warnings. */
static int claim(struct cert_store *st, const struct cert_item *b)
{
	for (size_t j = 0; j < b->nnames; j++) {
		const char *n = b->names[j];
		int wild = n[0] == '*';
		struct cert_index *ix = wild ? &st->wild : &st->exact;
		struct cert_name_ent *e;
		const struct cert_item **slot;

		e = index_upsert(ix, wild ? n + 2 : n, n);
		if (e == NULL)
			return -1;
		slot = b->is_ec ? &e->ec : &e->rsa;
		if (*slot != NULL)
			return -1;
		*slot = b;
	}
	return 0;
}

int cert_index_update(struct cert_store *st, const struct cert_store *old,
                      const struct cert_delta *d)
{
	if (old == NULL || old->ndups > 0 || old->exact.ents == NULL || old->wild.ents == NULL ||
	    d->nrm > CERT_INDEX_PATCH_MAX || d->nadd > CERT_INDEX_PATCH_MAX)
		return -1;
	if (index_copy(&st->exact, &old->exact) < 0 || index_copy(&st->wild, &old->wild) < 0)
		goto fail;
	for (size_t i = 0; i < d->nrm; i++)
		if (unclaim(st, d->rm[i]) < 0)
			goto fail;
	for (size_t i = 0; i < d->nadd; i++)
		if (claim(st, d->add[i]) < 0)
			goto fail;
	st->nitems = old->nitems - d->nrm + d->nadd;
	st->nnames = st->exact.n + st->wild.n;
	return 0;
fail:
	cert_hot_free(st->exact.ents);
	cert_hot_free(st->wild.ents);
	memset(&st->exact, 0, sizeof(st->exact));
	memset(&st->wild, 0, sizeof(st->wild));
	return -1;
}

static const struct cert_item *pick(const struct cert_name_ent *e, unsigned flags)
{
	if (e->ec != NULL && (e->rsa == NULL || (flags & CERT_LOOKUP_ECDSA_OK)))
		return e->ec;
	return e->rsa;
}

const struct cert_item *cert_store_lookup(const struct cert_store *store, const char *name,
                                          size_t len, unsigned flags, int *used_default)
{
	char norm[CERT_NAME_MAX + 1];
	const struct cert_name_ent *e;
	const char *dot;
	int n;

	if (used_default != NULL)
		*used_default = 0;
	if (store == NULL)
		return NULL;
	if (name != NULL && (n = cert_name_norm(name, len, norm)) > 0) {
		e = cert_index_find(&store->exact, norm, (size_t)n);
		if (e != NULL)
			return pick(e, flags);
		dot = memchr(norm, '.', (size_t)n);
		if (dot != NULL && dot[1] != '\0') {
			e = cert_index_find(&store->wild, dot + 1, (size_t)(norm + n - dot - 1));
			if (e != NULL)
				return pick(e, flags);
		}
	}
	if (store->def != NULL && used_default != NULL)
		*used_default = 1;
	return store->def;
}

size_t cert_store_nnames(const struct cert_store *store)
{
	return store->nnames;
}

const char *cert_store_name_at(const struct cert_store *store, size_t i)
{
	struct cert_store *st = (struct cert_store *)store;
	const struct cert_name_ent **o = atomic_load_explicit(&st->order, memory_order_acquire);

	if (i >= store->nnames)
		return NULL;
	if (o == NULL) {
		pthread_mutex_lock(&st->order_lock);
		o = atomic_load_explicit(&st->order, memory_order_acquire);
		if (o == NULL && (o = malloc((st->nnames + 1) * sizeof(*o))) != NULL) {
			size_t k = 0;

			for (size_t j = 0; j < st->exact.cap; j++)
				if (st->exact.ents[j].key != NULL)
					o[k++] = &st->exact.ents[j];
			for (size_t j = 0; j < st->wild.cap; j++)
				if (st->wild.ents[j].key != NULL)
					o[k++] = &st->wild.ents[j];
			qsort(o, k, sizeof(*o), cmp_ent);
			atomic_store_explicit(&st->order, o, memory_order_release);
		}
		pthread_mutex_unlock(&st->order_lock);
		if (o == NULL)
			return NULL;
	}
	return o[i]->name;
}
