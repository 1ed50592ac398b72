/*
 * cert_cache: a process-wide, bounded CLOCK cache of decoded serving
 * material: each entry is one item's leaf X509 and private key.
 *
 * An item keeps its leaf as DER and its private key in a compact at-rest
 * form (about 600 + 100 bytes for ECDSA). Decoded, the leaf costs about
 * 5 KB and the key about 2 KB (a provider-native key built from the raw
 * scalar, cert_key.c), and the leaf's decode alone costs ~190 us, most of it
 * OpenSSL 3.0 building a public-key decoder. Keeping both for every item
 * would make memory grow with the number of certificates that have ever
 * served, so this cache holds at most `limit` entries (certs.cache_size)
 * across all stores of the process (items are shared between a store and
 * its reloads, so one global bound is the one that matches memory), and
 * evicts with CLOCK: a hit only sets a flag, so the hit path writes no
 * shared list.
 *
 * Concurrency. cert_item_use() runs on every worker thread, so:
 *
 * - The hit path takes one of CERT_CACHE_STRIPES mutexes, chosen by the
 *   item's address, long enough to read item->leaf and item->key and take
 *   a reference to each (X509_up_ref, EVP_PKEY_up_ref). Those references
 *   are what make eviction safe: an evictor clears the pointers under the
 *   same stripe lock and drops only the cache's references, so a handshake
 *   that got the pointers still holds its own until SSL_use_cert_and_key()
 *   has taken OpenSSL's. A bare atomic pointer would have the classic race:
 *   load the pointer, the evictor frees, up_ref of freed memory.
 * - Misses decode outside every lock (about 0.2 ms), then take the global
 *   cache lock to insert and evict. A miss costs a decode anyway, so one
 *   short global critical section per miss is not a bottleneck.
 * - Lock order is cache lock, then one stripe lock; no path holds two
 *   stripes.
 * - An item that is freed while cached removes itself under the cache lock,
 *   so the ring never points to freed memory.
 */
#include <stdlib.h>
#include <string.h>

#include "certstore/cert_int.h"

#define CERT_CACHE_STRIPES 64

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t stripes[CERT_CACHE_STRIPES];
static pthread_once_t stripes_once = PTHREAD_ONCE_INIT;
/* The ring of cached items, guarded by cache_lock. */
static struct cert_item **ring;
static size_t ring_cap, ring_n, hand;
static size_t limit = CERT_LEAF_CACHE_DEFAULT;
static atomic_ulong n_hits, n_misses, n_evictions;

static void stripes_init(void)
{
	for (int i = 0; i < CERT_CACHE_STRIPES; i++)
		pthread_mutex_init(&stripes[i], NULL);
}

static pthread_mutex_t *stripe_of(const struct cert_item *item)
{
	uintptr_t p = (uintptr_t)item;

	/* pthread_once is one load and a predictable branch once done. */
	pthread_once(&stripes_once, stripes_init);

	/* Items are heap objects of ~150 bytes: the low bits carry no
	 * information, the next ones spread well enough. */
	return &stripes[(p >> 7 ^ p >> 13) % CERT_CACHE_STRIPES];
}

/* Removes ring slot i (cache_lock held); returns the leaf, and the key in
 * *key, to free after the lock is released. */
static X509 *ring_remove(size_t i, EVP_PKEY **key)
{
	struct cert_item *it = ring[i];
	pthread_mutex_t *m = stripe_of(it);
	X509 *x;

	pthread_mutex_lock(m);
	x = it->leaf;
	it->leaf = NULL;
	*key = it->key;
	it->key = NULL;
	pthread_mutex_unlock(m);
	/* Release: an item freed later (cert_item_cache_drop) sees the
	 * cleared pointers without taking the lock. */
	atomic_store_explicit(&it->cache_pos, 0, memory_order_release);
	ring[i] = ring[--ring_n];
	if (i < ring_n)
		atomic_store_explicit(&ring[i]->cache_pos, (long)i + 1, memory_order_relaxed);
	if (hand >= ring_n)
		hand = 0;
	return x;
}

/* Advances the CLOCK hand to a victim (cache_lock held, ring_n > 0): the
 * first entry not used since the hand last passed it. */
static size_t clock_victim(void)
{
	for (;;) {
		struct cert_item *it = ring[hand];

		if (!atomic_exchange_explicit(&it->cache_ref, 0, memory_order_relaxed))
			return hand;
		hand = (hand + 1) % ring_n;
	}
}

struct victim {
	X509 *leaf;
	EVP_PKEY *key;
};

/* Frees what eviction detached; outside every lock, because a free can take
 * a while and handshakes wait on these locks. */
static void free_all(struct victim *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		X509_free(v[i].leaf);
		EVP_PKEY_free(v[i].key);
	}
}

/* Evicts down to n entries (n < limit empties part of the cache without
 * changing the limit); returns how many were evicted. */
static size_t evict_to(size_t n, int set_limit)
{
	struct victim *v = NULL, one;
	size_t nv = 0, evicted;

	pthread_mutex_lock(&cache_lock);
	if (set_limit)
		limit = n;
	evicted = ring_n > n ? ring_n - n : 0;
	if (ring_n > n)
		v = malloc((ring_n - n) * sizeof(*v));
	while (ring_n > n) {
		one.leaf = ring_remove(clock_victim(), &one.key);
		if (v != NULL)
			v[nv++] = one;
		else
			free_all(&one, 1); /* out of memory: free under the lock */
		atomic_fetch_add_explicit(&n_evictions, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&cache_lock);
	free_all(v, nv);
	free(v);
	return evicted;
}

void cert_leaf_cache_set_limit(size_t n)
{
	evict_to(n, 1);
}

size_t cert_leaf_cache_trim(void)
{
	return evict_to(0, 0);
}

void cert_leaf_cache_stats(struct cert_leaf_cache_stats *s)
{
	pthread_mutex_lock(&cache_lock);
	s->limit = limit;
	s->cached = ring_n;
	pthread_mutex_unlock(&cache_lock);
	s->hits = atomic_load_explicit(&n_hits, memory_order_relaxed);
	s->misses = atomic_load_explicit(&n_misses, memory_order_relaxed);
	s->evictions = atomic_load_explicit(&n_evictions, memory_order_relaxed);
}

/* Inserts x and k as item's leaf and key (cache_lock held, item not
 * cached). Fills *v with what was evicted to make room. */
static void cache_insert(struct cert_item *item, X509 *x, EVP_PKEY *k, struct victim *v)
{
	pthread_mutex_t *m = stripe_of(item);

	if (ring_n >= limit) {
		v->leaf = ring_remove(clock_victim(), &v->key);
		atomic_fetch_add_explicit(&n_evictions, 1, memory_order_relaxed);
	}
	if (ring_n == ring_cap) {
		size_t nc = ring_cap ? ring_cap * 2 : 256;
		struct cert_item **nr = realloc(ring, nc * sizeof(*nr));

		if (nr == NULL)
			return; /* not cached: the caller's references are all */
		ring = nr;
		ring_cap = nc;
	}
	/* The cache owns one reference of each; the caller keeps its own. */
	X509_up_ref(x);
	EVP_PKEY_up_ref(k);
	pthread_mutex_lock(m);
	item->leaf = x;
	item->key = k;
	pthread_mutex_unlock(m);
	atomic_store_explicit(&item->cache_ref, 0, memory_order_relaxed);
	ring[ring_n++] = item;
	atomic_store_explicit(&item->cache_pos, (long)ring_n, memory_order_relaxed);
}

int cert_item_material_get(const struct cert_item *item, X509 **leafp, EVP_PKEY **keyp)
{
	/* The item is immutable except for its cache fields; this is the one
	 * place that writes through a const item. */
	struct cert_item *it = (struct cert_item *)item;
	pthread_mutex_t *m = stripe_of(it);
	const unsigned char *q = it->leaf_der;
	struct victim v = {NULL, NULL};
	X509 *x;
	EVP_PKEY *k;

	pthread_mutex_lock(m);
	x = it->leaf;
	k = it->key;
	if (x != NULL) {
		X509_up_ref(x);
		EVP_PKEY_up_ref(k);
	}
	pthread_mutex_unlock(m);
	if (x != NULL) {
		/* Reading first keeps a hot item's cache line shared between
		 * cores instead of written by every handshake. */
		if (!atomic_load_explicit(&it->cache_ref, memory_order_relaxed))
			atomic_store_explicit(&it->cache_ref, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&n_hits, 1, memory_order_relaxed);
		*leafp = x;
		*keyp = k;
		return 0;
	}
	atomic_fetch_add_explicit(&n_misses, 1, memory_order_relaxed);
	x = X509_new_ex(cert_serve_ctx(), NULL);
	if (x == NULL || d2i_X509(&x, &q, (long)it->leaf_der_len) == NULL) {
		X509_free(x);
		return -1;
	}
	k = cert_item_key_decode(it);
	if (k == NULL) {
		X509_free(x);
		return -1;
	}
	pthread_mutex_lock(&cache_lock);
	if (limit > 0) {
		/* Another thread may have inserted the same item meanwhile;
		 * inserts hold cache_lock, so this check is final. */
		pthread_mutex_lock(m);
		if (it->leaf != NULL) {
			v.leaf = x;
			v.key = k;
			x = it->leaf;
			k = it->key;
			X509_up_ref(x);
			EVP_PKEY_up_ref(k);
		}
		pthread_mutex_unlock(m);
		if (v.leaf == NULL)
			cache_insert(it, x, k, &v);
	}
	pthread_mutex_unlock(&cache_lock);
	free_all(&v, 1);
	*leafp = x;
	*keyp = k;
	return 0;
}

void cert_item_cache_drop(struct cert_item *item)
{
	struct victim v = {NULL, NULL};
	long pos;

	/* The item has no references left, so nothing can insert it again;
	 * only an evictor can still touch it, and evictors hold cache_lock. A
	 * position of 0 is therefore final, and most items freed with a store
	 * skip the lock. */
	if (atomic_load_explicit(&item->cache_pos, memory_order_acquire) == 0)
		return;
	pthread_mutex_lock(&cache_lock);
	pos = atomic_load_explicit(&item->cache_pos, memory_order_relaxed);
	if (pos > 0)
		v.leaf = ring_remove((size_t)pos - 1, &v.key);
	pthread_mutex_unlock(&cache_lock);
	free_all(&v, 1);
}
