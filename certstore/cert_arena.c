/*
 * cert_arena: the store's memory helpers. First, a bump allocator for many
 * small strings that die together.
 *
 * A delta reload of 10,000 files used to strdup every file name twice (the
 * scan's record and the report's entry) and free both soon after: 40,000
 * malloc/free calls, about a tenth of the reload. Strings in an arena cost a
 * memcpy each and are freed a block at a time. Blocks never move, so a
 * string's address is stable while more are added.
 *
 * Second, the large arrays of a load or reload. A reload at 100,000 files
 * allocates about 65 MB of them (file records, the listing, index tables,
 * the set index's text) and frees most of them, or the previous store's,
 * soon after. A standby that was told cache-trim has given its free heap
 * back to the kernel (malloc_trim), so from malloc each of those pages
 * faulted in again on first touch: about 16,500 faults per reload, and on
 * this VM a fault costs about 12 us, which made each reload 250-400 ms
 * instead of 46 ms. Faulting the pages in with one madvise
 * (MADV_POPULATE_WRITE) saved only a fifth of that: the cost is in mapping
 * fresh pages, not in the faults. So these arrays are mappings of their
 * own, which malloc_trim never touches, and freed ones are kept for the
 * next load while reloads run (cert_hot_keep). Blocks in use and spares
 * together never exceed the most that was in use at once: a spare that
 * would break that when a new block is mapped is unmapped, so the
 * process's peak does not grow and spares follow a set that changes size.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "certstore/cert_int.h"

#define ARENA_BLOCK (64 * 1024 - 64) /* a little under 64 KB: malloc's header */

struct cert_arena_blk {
	struct cert_arena_blk *next;
	size_t used, cap;
	char data[];
};

char *cert_arena_strdup(struct cert_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	struct cert_arena_blk *b = a->head;
	char *p;

	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;

		b = malloc(sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->used = 0;
		b->cap = cap;
		b->next = a->head;
		a->head = b;
	}
	p = b->data + b->used;
	memcpy(p, s, n);
	b->used += n;
	return p;
}

void cert_arena_move(struct cert_arena *to, struct cert_arena *from)
{
	struct cert_arena_blk **tail = &from->head;

	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = to->head;
	to->head = from->head;
	from->head = NULL;
}

void cert_arena_free(struct cert_arena *a)
{
	while (a->head != NULL) {
		struct cert_arena_blk *b = a->head;

		a->head = b->next;
		free(b);
	}
}

char *cert_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Blocks smaller than this come from malloc and go back to it. */
#define HOT_MIN (256 * 1024)
/* Each block starts with its header, this far before the pointer handed
 * out (a cache line, so the caller's array stays aligned). */
#define HOT_HDR 64
/* At most this many spare blocks: a reload frees about ten. */
#define HOT_SPARES 32

/* The sanitizers cannot see inside a private mapping: under them every
 * block comes from malloc, so that they check its bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define HOT_POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOT_POOL 0
#endif
#endif
#ifndef HOT_POOL
#define HOT_POOL 1
#endif

struct hot_hdr {
	size_t len; /* the mapping's length, or 0 for a malloc'd block */
};

/* The spare blocks, and what is mapped: in_use and spare_bytes never add
 * up to more than peak, the most ever in use at once, so keeping spares
 * never raises the process's peak. */
static struct {
	pthread_mutex_t lock;
	void *v[HOT_SPARES];
	size_t n, spare_bytes, in_use, peak;
	int keep; /* freed blocks are kept (cert_hot_keep) */
} hot = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A block of at least n bytes; *fresh is set when its memory is the
 * kernel's zeroed pages. */
static void *hot_get(size_t n, int *fresh)
{
	long pgl = sysconf(_SC_PAGESIZE);
	size_t pg = pgl > 0 ? (size_t)pgl : 4096;
	struct hot_hdr *h = NULL;
	void *drop[HOT_SPARES];
	size_t len, best = SIZE_MAX, ndrop = 0, old_peak;

	*fresh = 0;
	if (n > SIZE_MAX - HOT_HDR - pg)
		return NULL;
	if (!HOT_POOL || n + HOT_HDR < HOT_MIN) {
		h = malloc(n + HOT_HDR);
		if (h == NULL)
			return NULL;
		h->len = 0;
		return (char *)h + HOT_HDR;
	}
	len = (n + HOT_HDR + pg - 1) / pg * pg;
	pthread_mutex_lock(&hot.lock);
	/* The smallest spare that fits and wastes at most half of itself. */
	for (size_t i = 0; i < hot.n; i++) {
		size_t l = ((struct hot_hdr *)hot.v[i])->len;

		if (l >= len && l / 2 <= len &&
		    (best == SIZE_MAX || l < ((struct hot_hdr *)hot.v[best])->len))
			best = i;
	}
	old_peak = hot.peak;
	if (best != SIZE_MAX) {
		h = hot.v[best];
		hot.v[best] = hot.v[--hot.n];
		hot.spare_bytes -= h->len;
		len = h->len;
	} else {
		/* A new mapping: spares that would then hold more than the
		 * peak go, or a set that grows would keep spares that no
		 * longer fit and never keep the ones that do. */
		size_t limit = hot.in_use + len > hot.peak ? hot.in_use + len : hot.peak;

		while (hot.n > 0 && hot.in_use + len + hot.spare_bytes > limit) {
			h = hot.v[--hot.n];
			hot.spare_bytes -= h->len;
			drop[ndrop++] = h;
		}
		h = NULL;
	}
	hot.in_use += len;
	if (hot.in_use > hot.peak)
		hot.peak = hot.in_use;
	pthread_mutex_unlock(&hot.lock);
	for (size_t i = 0; i < ndrop; i++)
		munmap(drop[i], ((struct hot_hdr *)drop[i])->len);
	if (h != NULL)
		return (char *)h + HOT_HDR;
	h = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h == MAP_FAILED) {
		pthread_mutex_lock(&hot.lock);
		hot.in_use -= len;
		hot.peak = old_peak > hot.in_use ? old_peak : hot.in_use;
		pthread_mutex_unlock(&hot.lock);
		return NULL;
	}
	h->len = len;
	*fresh = 1;
	return (char *)h + HOT_HDR;
}

void *cert_hot_alloc(size_t n)
{
	int fresh;

	return hot_get(n, &fresh);
}

void *cert_hot_calloc(size_t nmemb, size_t size)
{
	int fresh;
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		return NULL;
	p = hot_get(nmemb * size, &fresh);
	if (p != NULL && !fresh)
		memset(p, 0, nmemb * size);
	return p;
}

void *cert_hot_realloc(void *p, size_t old_n, size_t n)
{
	void *np = cert_hot_alloc(n);

	if (np != NULL && p != NULL) {
		memcpy(np, p, old_n < n ? old_n : n);
		cert_hot_free(p);
	}
	return np;
}

void cert_hot_free(void *p)
{
	struct hot_hdr *h;

	if (p == NULL)
		return;
	h = (struct hot_hdr *)((char *)p - HOT_HDR);
	if (h->len == 0) {
		free(h);
		return;
	}
	pthread_mutex_lock(&hot.lock);
	hot.in_use -= h->len;
	if (hot.keep && hot.n < HOT_SPARES && hot.in_use + hot.spare_bytes + h->len <= hot.peak) {
		hot.v[hot.n++] = h;
		hot.spare_bytes += h->len;
		h = NULL;
	}
	pthread_mutex_unlock(&hot.lock);
	if (h != NULL)
		munmap(h, h->len);
}

void cert_hot_keep(int keep)
{
	void *v[HOT_SPARES];
	size_t n = 0;

	pthread_mutex_lock(&hot.lock);
	hot.keep = keep;
	if (!keep) {
		n = hot.n;
		memcpy(v, hot.v, n * sizeof(*v));
		hot.n = 0;
		hot.spare_bytes = 0;
		hot.peak = hot.in_use;
	}
	pthread_mutex_unlock(&hot.lock);
	for (size_t i = 0; i < n; i++)
		munmap(v[i], ((struct hot_hdr *)v[i])->len);
}

size_t cert_hot_spares(void)
{
	size_t n;

	pthread_mutex_lock(&hot.lock);
	n = hot.n;
	pthread_mutex_unlock(&hot.lock);
	return n;
}
