/*
 * backend: server selection and health.
 *
 * A server is usable when the active check (if on) last succeeded and no
 * passive mark-down is in force. Passive: fail_threshold consecutive connect
 * failures mark it down for down_time. Active: a small thread of its own
 * makes a non-blocking TCP connect to every server each check_interval, so
 * no worker ever waits on a check.
 */
#include "proxy/px.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int px_backend_init(struct px_proc *p, char *err, size_t errlen)
{
	const struct cfg_backend *b = &p->cfg->backend;

	if (b->nservers <= 0) {
		snprintf(err, errlen, "backend.servers: none configured");
		return -1;
	}
	for (int i = 0; i < b->nservers; i++) {
		struct px_server *s = &p->servers[i];
		s->sslen = cfg_sockaddr(&b->servers[i].addr, b->servers[i].port, &s->ss);
		snprintf(s->name, sizeof(s->name), "%s", b->servers[i].name);
		snprintf(s->text, sizeof(s->text),
		         b->servers[i].addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		         b->servers[i].addr.text, b->servers[i].port);
	}
	p->nservers = b->nservers;
	return 0;
}

static int usable(struct px_server *s, uint64_t now_ms)
{
	return !atomic_load(&s->check_down) && atomic_load(&s->down_until) <= now_ms;
}

int px_backend_pick(struct px_proc *p, int avoid, uint64_t now_ms)
{
	uint32_t start = atomic_fetch_add(&p->rr, 1);
	int n = p->nservers, best = -1, fallback = -1;
	uint32_t best_active = UINT32_MAX;

	for (int k = 0; k < n; k++) {
		int i = (int)((start + (uint32_t)k) % (uint32_t)n);
		struct px_server *s = &p->servers[i];
		if (!usable(s, now_ms))
			continue;
		if (i == avoid) {
			fallback = i;
			continue;
		}
		if (p->cfg->backend.balance == CFG_BALANCE_ROUNDROBIN)
			return i;
		uint32_t a = atomic_load(&s->active);
		if (a < best_active) {
			best_active = a;
			best = i;
		}
	}
	return best >= 0 ? best : fallback;
}

void px_backend_result(struct px_proc *p, int idx, int ok, uint64_t now_ms)
{
	struct px_server *s = &p->servers[idx];
	uint32_t fails;

	if (ok) {
		atomic_store(&s->fails, 0);
		return;
	}
	fails = atomic_fetch_add(&s->fails, 1) + 1;
	if (p->cfg->backend.fail_threshold > 0 && fails >= p->cfg->backend.fail_threshold) {
		atomic_store(&s->fails, 0);
		atomic_store(&s->down_until, now_ms + p->cfg->backend.down_time_ms);
		log_warnx("server %s (%s) down for %u ms after %u consecutive connect failures",
		          s->name, s->text, p->cfg->backend.down_time_ms, fails);
	}
}

static void check_round(struct px_proc *p)
{
	struct pollfd pfd[CFG_MAX_SERVERS];
	int res[CFG_MAX_SERVERS];
	uint64_t deadline = px_now_ms() + p->cfg->backend.check_timeout_ms;

	for (int i = 0; i < p->nservers; i++) {
		struct px_server *s = &p->servers[i];
		res[i] = -1;
		pfd[i].fd = socket(s->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		pfd[i].events = POLLOUT;
		pfd[i].revents = 0;
		if (pfd[i].fd < 0)
			continue;
		if (connect(pfd[i].fd, (struct sockaddr *)&s->ss, s->sslen) == 0) {
			res[i] = 1;
		} else if (errno == EINPROGRESS) {
			res[i] = 0; /* pending */
		}
	}
	for (;;) {
		int pending = 0;
		uint64_t now = px_now_ms();
		for (int i = 0; i < p->nservers; i++) {
			if (res[i] != 0) {
				/* Close a finished check now: poll() reports
				 * POLLERR/POLLHUP even with no events asked, so a
				 * server that reset it would make this loop spin
				 * until the others finish. */
				if (pfd[i].fd >= 0)
					close(pfd[i].fd);
				pfd[i].fd = -1;
				continue;
			}
			pending++;
		}
		if (pending == 0 || now >= deadline)
			break;
		if (poll(pfd, (nfds_t)p->nservers, (int)(deadline - now)) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < p->nservers; i++) {
			int err = 0;
			socklen_t sl = sizeof(err);
			if (res[i] != 0 || pfd[i].revents == 0)
				continue;
			getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &err, &sl);
			res[i] = err == 0 ? 1 : -1;
		}
	}
	for (int i = 0; i < p->nservers; i++) {
		struct px_server *s = &p->servers[i];
		int down = res[i] != 1;
		if (pfd[i].fd >= 0)
			close(pfd[i].fd);
		if (atomic_exchange(&s->check_down, down) != down)
			log_warnx("server %s (%s) is %s (active check)", s->name, s->text,
			          down ? "down" : "up again");
	}
}

static void *health_main(void *arg)
{
	struct px_proc *p = arg;
	struct pollfd stop = {.fd = p->health_pipe[0], .events = POLLIN};

	for (;;) {
		check_round(p);
		if (poll(&stop, 1, (int)p->cfg->backend.check_interval_ms) != 0)
			break;
	}
	return NULL;
}

int px_health_start(struct px_proc *p)
{
	int rc;

	if (p->cfg->backend.check_interval_ms == 0)
		return 0;
	if (pipe2(p->health_pipe, O_CLOEXEC) < 0)
		return -1;
	rc = pthread_create(&p->health_tid, NULL, health_main, p);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	p->health_on = 1;
	return 0;
}

void px_health_stop(struct px_proc *p)
{
	if (!p->health_on)
		return;
	if (write(p->health_pipe[1], "x", 1) < 0)
		log_warn("health stop");
	pthread_join(p->health_tid, NULL);
	close(p->health_pipe[0]);
	close(p->health_pipe[1]);
	p->health_on = 0;
}
