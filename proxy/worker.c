/*
 * worker: one epoll loop per thread. With proxy.accept reuseport (the
 * default) each worker polls only the SO_REUSEPORT sockets it owns; with
 * shared every worker has the same listening sockets in its own epoll set
 * with EPOLLEXCLUSIVE (docs/proxy.md compares the two). A worker keeps a timer
 * min-heap for its connections, and pauses accepting while a connection limit
 * is reached so that new connections wait in the kernel's accept queue
 * instead of being accepted and closed.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define PX_ACCEPT_BATCH 32
#define PX_BUFPOOL_MAX  512

uint64_t px_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t px_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int px_limit_take(struct px_limit *l, uint64_t now_ms)
{
	uint32_t old;

	if (l->max == 0) {
		atomic_fetch_add(&l->active, 1);
		return 0;
	}
	old = atomic_fetch_add(&l->active, 1);
	if (old < l->max)
		return 0;
	atomic_fetch_sub(&l->active, 1);
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&l->at_since, &zero, now_ms ? now_ms : 1);
	return -1;
}

int px_limit_put(struct px_limit *l, uint64_t now_ms)
{
	atomic_fetch_sub(&l->active, 1);
	uint64_t since = atomic_load(&l->at_since);
	if (since == 0)
		return 0;
	if (atomic_compare_exchange_strong(&l->at_since, &since, 0) && now_ms > since)
		atomic_fetch_add(&l->at_total_ms, now_ms - since);
	return 1;
}

uint64_t px_limit_ms(struct px_limit *l, uint64_t now_ms)
{
	uint64_t since = atomic_load(&l->at_since);
	uint64_t total = atomic_load(&l->at_total_ms);

	if (since != 0 && now_ms > since)
		total += now_ms - since;
	return total;
}

/* ---- timers: a binary min-heap of connections keyed on deadline ---- */

static void heap_swap(struct px_worker *w, uint32_t a, uint32_t b)
{
	struct px_conn *t = w->heap[a];

	w->heap[a] = w->heap[b];
	w->heap[b] = t;
	w->heap[a]->heap_idx = (int)a;
	w->heap[b]->heap_idx = (int)b;
}

static void heap_up(struct px_worker *w, uint32_t i)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (w->heap[parent]->deadline <= w->heap[i]->deadline)
			break;
		heap_swap(w, i, parent);
		i = parent;
	}
}

static void heap_down(struct px_worker *w, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < w->nheap && w->heap[l]->deadline < w->heap[m]->deadline)
			m = l;
		if (r < w->nheap && w->heap[r]->deadline < w->heap[m]->deadline)
			m = r;
		if (m == i)
			break;
		heap_swap(w, i, m);
		i = m;
	}
}

void px_timer_del(struct px_worker *w, struct px_conn *c)
{
	uint32_t i;

	if (c->heap_idx < 0)
		return;
	i = (uint32_t)c->heap_idx;
	c->heap_idx = -1;
	w->nheap--;
	if (i == w->nheap)
		return;
	w->heap[i] = w->heap[w->nheap];
	w->heap[i]->heap_idx = (int)i;
	heap_down(w, i);
	heap_up(w, i);
}

void px_timer_set(struct px_worker *w, struct px_conn *c, uint64_t deadline)
{
	if (c->heap_idx >= 0) {
		uint64_t old = c->deadline;
		c->deadline = deadline;
		if (deadline < old)
			heap_up(w, (uint32_t)c->heap_idx);
		else
			heap_down(w, (uint32_t)c->heap_idx);
		return;
	}
	if (w->nheap == w->capheap) {
		uint32_t ncap = w->capheap ? w->capheap * 2 : 1024;
		struct px_conn **nh = realloc(w->heap, ncap * sizeof(*nh));
		if (nh == NULL)
			return; /* the connection just has no timer; it still ends on I/O */
		w->heap = nh;
		w->capheap = ncap;
	}
	c->deadline = deadline;
	c->heap_idx = (int)w->nheap;
	w->heap[w->nheap++] = c;
	heap_up(w, (uint32_t)c->heap_idx);
}

static void timers_run(struct px_worker *w)
{
	while (w->nheap > 0 && w->heap[0]->deadline <= w->now) {
		struct px_conn *c = w->heap[0];
		px_timer_del(w, c);
		px_conn_timeout(c);
	}
}

/* ---- buffers ---- */

unsigned char *px_buf_get(struct px_worker *w)
{
	if (w->nbufpool > 0)
		return w->bufpool[--w->nbufpool];
	return malloc(w->p->cfg->proxy.buffer_size);
}

void px_buf_put(struct px_worker *w, unsigned char *b)
{
	if (b == NULL)
		return;
	if (w->nbufpool < PX_BUFPOOL_MAX) {
		w->bufpool[w->nbufpool++] = b;
		return;
	}
	free(b);
}

/* ---- listeners ---- */

/* Whether this worker polls listening socket i: a shared socket is polled by
 * every worker, a SO_REUSEPORT one only by the worker that owns it. */
static int lsock_mine(const struct px_worker *w, int i)
{
	int owner = w->p->lsock[i].owner;

	return owner < 0 || owner == w->id;
}

static void listener_reg(struct px_worker *w, int i, int on)
{
	/* A shared socket is in every worker's epoll set: EPOLLEXCLUSIVE wakes
	 * one of them per connection rather than all. An owned socket is in
	 * this set only. */
	uint32_t excl = w->p->lsock[i].owner < 0 ? EPOLLEXCLUSIVE : 0;
	struct epoll_event ev = {.events = EPOLLIN | excl, .data.ptr = &w->lev[i]};

	if (w->lregistered[i] == on || (on && !lsock_mine(w, i)))
		return;
	if (on) {
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->p->lsock[i].fd, &ev) == 0)
			w->lregistered[i] = 1;
	} else {
		epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->p->lsock[i].fd, NULL);
		w->lregistered[i] = 0;
	}
}

/* Re-registers paused listeners whose limits allow accepting again. */
static void listeners_resume(struct px_worker *w)
{
	struct px_proc *p = w->p;
	int still = 0;

	if (w->npaused == 0 || w->listeners_off)
		return;
	for (int i = 0; i < p->nlsock; i++) {
		struct px_lgroup *g = p->lsock[i].grp;
		if (w->lregistered[i] || !lsock_mine(w, i))
			continue;
		if ((p->global.max && atomic_load(&p->global.active) >= p->global.max) ||
		    (g->limit.max && atomic_load(&g->limit.active) >= g->limit.max)) {
			still++;
			continue;
		}
		listener_reg(w, i, 1);
	}
	w->npaused = still;
}

/* Takes this worker's registered sockets of grp (NULL: of every listener)
 * out of its epoll set until listeners_resume() finds room again. */
static void listeners_pause(struct px_worker *w, const struct px_lgroup *grp)
{
	for (int i = 0; i < w->p->nlsock; i++)
		if (w->lregistered[i] && (grp == NULL || w->p->lsock[i].grp == grp)) {
			listener_reg(w, i, 0);
			w->npaused++;
		}
}

/* Only sockets of this worker are ever registered (listener_reg), so this
 * takes all of them out; main closes them once every worker has acked. */
static void listeners_stop(struct px_worker *w)
{
	for (int i = 0; i < w->p->nlsock; i++)
		listener_reg(w, i, 0);
	w->listeners_off = 1;
	w->npaused = 0;
	atomic_fetch_add(&w->p->lstop_acks, 1);
}

static void do_accept(struct px_worker *w, int li)
{
	struct px_proc *p = w->p;
	struct px_lsock *ls = &p->lsock[li];

	for (int n = 0; n < PX_ACCEPT_BATCH; n++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		/* Reserve the slots before accepting: at the limit the
		 * connection must stay in the kernel queue, not be accepted and
		 * closed. */
		if (px_limit_take(&p->global, w->now) < 0) {
			listeners_pause(w, NULL);
			return;
		}
		if (px_limit_take(&ls->grp->limit, w->now) < 0) {
			px_limit_put(&p->global, w->now);
			listeners_pause(w, ls->grp);
			return;
		}
		fd = accept4(ls->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			int e = errno;
			px_limit_put(&ls->grp->limit, w->now);
			px_limit_put(&p->global, w->now);
			if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
				static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);
				errno = e;
				log_rl(&rl, LOG_LVL_WARN, "accept: %s", strerror(e));
			}
			return;
		}
		PX_INC(w->st.accepted);
		PX_INC(w->st.l_accepted[ls->grp->idx]);
		px_conn_accepted(w, fd, &ss, ls->grp);
	}
}

/* ---- the loop ---- */

static void store_refresh(struct px_worker *w)
{
	uint64_t epoch = atomic_load(&w->p->cert_epoch);

	if (w->store != NULL && epoch == w->store_epoch)
		return;
	cert_store_unref(w->store);
	w->store = cert_slot_acquire(w->p->slot);
	w->store_epoch = epoch;
}

struct cert_store *px_worker_store(struct px_worker *w)
{
	store_refresh(w);
	return w->store;
}

static void close_all(struct px_worker *w)
{
	while (w->conns != NULL)
		px_conn_close(w->conns, PX_R_HARD_STOP);
	px_conn_reap(w);
}

static void *worker_main(void *arg)
{
	struct px_worker *w = arg;
	struct px_proc *p = w->p;
	struct epoll_event evs[128];

	if (p->cfg->proxy.ncpu_map > w->id && p->cfg->proxy.cpu_map[w->id] >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(p->cfg->proxy.cpu_map[w->id], &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
			log_warnx("worker %d: cannot pin to CPU %d", w->id,
			          p->cfg->proxy.cpu_map[w->id]);
	}
	w->now = px_now_ms();
	for (int i = 0; i < p->nlsock; i++)
		listener_reg(w, i, 1);

	while (!atomic_load(&p->exiting)) {
		int timeout = 1000, n;

		if (w->nheap > 0) {
			uint64_t d = w->heap[0]->deadline;
			timeout = d <= w->now ? 0 : (int)(d - w->now < 1000 ? d - w->now : 1000);
		}
		n = epoll_wait(w->epfd, evs, 128, timeout);
		w->now = px_now_ms();
		if (atomic_load(&p->stopping) && !w->listeners_off)
			listeners_stop(w);
		for (int i = 0; i < n; i++) {
			struct px_ev *ev = evs[i].data.ptr;
			switch (ev->kind) {
			case PX_EV_LISTEN:
				if (!w->listeners_off)
					do_accept(w, (int)(ev - w->lev));
				break;
			case PX_EV_CLIENT:
				px_conn_event(
				    (struct px_conn *)((char *)ev - offsetof(struct px_conn, cev)),
				    0, evs[i].events);
				break;
			case PX_EV_SERVER:
				px_conn_event(
				    (struct px_conn *)((char *)ev - offsetof(struct px_conn, sev)),
				    1, evs[i].events);
				break;
			case PX_EV_WAKE: {
				uint64_t v;
				if (read(w->wakefd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warn("worker %d: eventfd", w->id);
				break;
			}
			}
		}
		timers_run(w);
		px_conn_reap(w);
		listeners_resume(w);
		if (n == 0)
			store_refresh(w);
	}
	close_all(w);
	return NULL;
}

struct px_worker *px_worker_new(struct px_proc *p, int id)
{
	struct px_worker *w = calloc(1, sizeof(*w));
	struct epoll_event ev;

	if (w == NULL)
		return NULL;
	w->p = p;
	w->id = id;
	w->wake_ev.kind = PX_EV_WAKE;
	for (int i = 0; i < PX_MAX_LISTEN_FD; i++)
		w->lev[i].kind = PX_EV_LISTEN;
	w->bufpool = calloc(PX_BUFPOOL_MAX, sizeof(*w->bufpool));
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->bufpool == NULL || w->epfd < 0 || w->wakefd < 0) {
		px_worker_free(w);
		return NULL;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &w->wake_ev;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wakefd, &ev) < 0) {
		px_worker_free(w);
		return NULL;
	}
	return w;
}

int px_worker_start(struct px_worker *w)
{
	int rc = pthread_create(&w->tid, NULL, worker_main, w);

	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}

void px_worker_join(struct px_worker *w)
{
	pthread_join(w->tid, NULL);
}

void px_worker_free(struct px_worker *w)
{
	if (w == NULL)
		return;
	close_all(w);
	cert_store_unref(w->store);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->wakefd >= 0)
		close(w->wakefd);
	for (uint32_t i = 0; i < w->nbufpool; i++)
		free(w->bufpool[i]);
	free(w->bufpool);
	free(w->heap);
	free(w);
}

void px_worker_wake(struct px_worker *w)
{
	uint64_t one = 1;

	if (write(w->wakefd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("eventfd write");
}

void px_workers_wake_all(struct px_proc *p)
{
	for (int i = 0; i < p->nworkers; i++)
		px_worker_wake(p->workers[i]);
}

const struct px_stats *px_worker_stats(const struct px_worker *w)
{
	return &w->st;
}

uint32_t px_worker_nconns(const struct px_worker *w)
{
	return atomic_load(&((struct px_worker *)w)->nconns);
}
