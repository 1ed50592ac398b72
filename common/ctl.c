/*
 * ctl: the control server and client (see ctl.h); framing, tokenizer and
 * dispatch are in ctl_cmd.c. The server is one thread with a poll(2) loop
 * over the listening socket, up to CTL_MAX_CLIENTS clients and a wake-up
 * pipe. Each client is served one request at a time: its next line is not
 * looked at before the reply to the previous one is queued. A CTL_SLOW
 * command is handed to the worker pool; its client is "busy" (not read, no
 * deadline, never evicted) until the worker hands the reply back through
 * the done list and the wake-up pipe.
 */
#include "common/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define CTL_BACKLOG      64
#define CTL_ACCEPT_BATCH 64 /* accepts per poll round, so clients get served too */

struct ctl_client {
	struct ctl_server *srv;
	int fd;           /* -1: free slot */
	int priv;         /* peer is uid 0 or the server's euid */
	int busy;         /* a slow command of this client is queued or running */
	int close_after;  /* close once the queued reply is written */
	uint64_t since;   /* srv->seq when accepted or last answered: eviction order */
	int64_t deadline; /* monotonic ms; the connection is closed past it */
	struct ctl_framer *fr;
	char *out;
	size_t outlen, outoff;
};

/* A slow request travelling to a worker and back. */
struct ctl_job {
	struct ctl_job *next;
	int slot;
	struct ctl_req req;
	struct json_buf reply;
};

struct ctl_server {
	int lfd;
	int wake[2];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const struct ctl_cmd *cmds;
	void *ctx;
	pthread_t thread;
	uid_t euid;
	uint64_t seq;
	/* mu guards everything below; the clients are the poll thread's. */
	pthread_mutex_t mu;
	pthread_cond_t cond;    /* a job queued, or stopping */
	pthread_cond_t idle_cv; /* a slow handler finished */
	struct ctl_job *queue, **queue_tail, *done;
	int stopping;
	int running; /* slow handlers running now */
	int detach_slow;
	int refs; /* the poll side plus each worker; the last one frees */
	struct ctl_client clients[CTL_MAX_CLIENTS];
};

static int64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ctl_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "%s: socket path too long (max %zu bytes)", path,
		         sizeof(sun->sun_path) - 1);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return 0;
}

static void ctl_srv_unref(struct ctl_server *srv)
{
	int last;

	pthread_mutex_lock(&srv->mu);
	last = --srv->refs == 0;
	pthread_mutex_unlock(&srv->mu);
	if (!last)
		return;
	while (srv->done != NULL) {
		struct ctl_job *j = srv->done;

		srv->done = j->next;
		jb_free(&j->reply);
		free(j);
	}
	close(srv->wake[0]);
	close(srv->wake[1]);
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cond);
	pthread_cond_destroy(&srv->idle_cv);
	free(srv);
}

static void ctl_client_drop(struct ctl_client *c)
{
	close(c->fd);
	free(c->out);
	free(c->fr);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void ctl_queue(struct ctl_client *c, const char *text)
{
	size_t n = strlen(text);
	char *nb;

	if (c->outlen - c->outoff + n + 1 > CTL_OUT_MAX) {
		c->close_after = 1;
		return;
	}
	nb = realloc(c->out, c->outlen + n + 1);
	if (nb == NULL) {
		c->close_after = 1;
		return;
	}
	c->out = nb;
	memcpy(c->out + c->outlen, text, n);
	c->out[c->outlen + n] = '\n';
	c->outlen += n + 1;
	c->deadline = ctl_now_ms() + CTL_WRITE_MS;
}

/* Writes what is queued; returns -1 if the client was dropped. */
static int ctl_write(struct ctl_client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			ctl_client_drop(c);
			return -1;
		}
		c->outoff += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	if (c->close_after) {
		ctl_client_drop(c);
		return -1;
	}
	c->since = ++c->srv->seq;
	c->deadline = ctl_now_ms() + CTL_IDLE_MS;
	return 0;
}

/* Hands a parsed slow request to the pool; the client waits, parked. */
static void ctl_submit(struct ctl_server *srv, int slot, struct ctl_req *req)
{
	struct ctl_job *j = malloc(sizeof(*j));
	struct ctl_client *c = &srv->clients[slot];

	if (j == NULL) {
		struct json_buf r;

		jb_init(&r);
		ctl_reply_error(&r, "out of memory");
		ctl_queue(c, jb_cstr(&r));
		jb_free(&r);
		return;
	}
	j->next = NULL;
	j->slot = slot;
	memcpy(&j->req, req, sizeof(*req));
	/* argv points into req->buf: re-point it into the job's copy. */
	for (int i = 0; i < j->req.argc; i++)
		j->req.argv[i] = j->req.buf + (req->argv[i] - req->buf);
	jb_init(&j->reply);
	c->busy = 1;
	pthread_mutex_lock(&srv->mu);
	*srv->queue_tail = j;
	srv->queue_tail = &j->next;
	pthread_cond_signal(&srv->cond);
	pthread_mutex_unlock(&srv->mu);
}

/* Answers the client's buffered lines, one at a time, until one is slow,
 * a reply cannot be written at once, or the buffer holds no full line. */
static void ctl_advance(struct ctl_server *srv, int slot)
{
	struct ctl_client *c = &srv->clients[slot];
	struct ctl_req *req = NULL;
	struct json_buf reply;

	jb_init(&reply);
	while (c->fd >= 0 && !c->busy && !c->close_after && c->outlen == c->outoff) {
		char *line;
		enum ctl_frame kind = ctl_frame_next(c->fr, &line);

		if (kind == CTL_FRAME_NONE)
			break;
		jb_reset(&reply);
		if (kind != CTL_FRAME_LINE) {
			ctl_frame_error(kind, &reply);
		} else {
			if (req == NULL && (req = malloc(sizeof(*req))) == NULL) {
				ctl_client_drop(c);
				break;
			}
			if (ctl_parse(srv->cmds, line, req, &reply) == 0) {
				if (req->cmd->flags & CTL_SLOW) {
					ctl_submit(srv, slot, req);
					continue;
				}
				ctl_run(srv->ctx, req, &reply);
				c->close_after = req->close_after;
			}
		}
		ctl_queue(c, jb_cstr(&reply));
		(void)ctl_write(c);
	}
	jb_free(&reply);
	free(req);
}

static void ctl_read(struct ctl_server *srv, int slot)
{
	struct ctl_client *c = &srv->clients[slot];
	size_t room;
	char *space = ctl_frame_space(c->fr, &room);
	ssize_t n = recv(c->fd, space, room, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		ctl_client_drop(c);
		return;
	}
	if (n < 0)
		return;
	ctl_frame_added(c->fr, (size_t)n);
	ctl_advance(srv, slot);
}

/* Takes back the replies of finished slow commands. */
static void ctl_collect(struct ctl_server *srv)
{
	struct ctl_job *j;
	char drain[64];

	while (read(srv->wake[0], drain, sizeof(drain)) > 0)
		;
	pthread_mutex_lock(&srv->mu);
	j = srv->done;
	srv->done = NULL;
	pthread_mutex_unlock(&srv->mu);
	while (j != NULL) {
		struct ctl_job *next = j->next;
		struct ctl_client *c = &srv->clients[j->slot];

		c->busy = 0;
		c->close_after = j->req.close_after;
		ctl_queue(c, jb_cstr(&j->reply));
		if (ctl_write(c) == 0)
			ctl_advance(srv, j->slot);
		jb_free(&j->reply);
		free(j);
		j = next;
	}
}

static int ctl_peer_priv(const struct ctl_server *srv, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	return cr.uid == 0 || cr.uid == srv->euid;
}

/*
 * Finds a slot for a new client. Unprivileged peers share
 * CTL_MAX_CLIENTS - CTL_RESERVED_CLIENTS slots; privileged ones may take
 * any. When there is none, the client that has waited longest without a
 * request in progress (not busy, no reply pending) is closed to make room:
 * an unprivileged newcomer may only push out an unprivileged client, a
 * privileged one prefers an unprivileged victim. Returns -1 if every slot
 * it may take is busy.
 */
static int ctl_slot(struct ctl_server *srv, int priv)
{
	int nunpriv = 0, free_slot = -1, victim = -1;

	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct ctl_client *c = &srv->clients[i];

		if (c->fd < 0) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		nunpriv += !c->priv;
		if (c->busy || c->outlen > c->outoff || (!priv && c->priv))
			continue;
		if (victim < 0 || (srv->clients[victim].priv && !c->priv) ||
		    (srv->clients[victim].priv == c->priv && c->since < srv->clients[victim].since))
			victim = i;
	}
	if (free_slot >= 0 && (priv || nunpriv < CTL_MAX_CLIENTS - CTL_RESERVED_CLIENTS))
		return free_slot;
	if (victim >= 0)
		ctl_client_drop(&srv->clients[victim]);
	return victim;
}

static void ctl_refuse(struct ctl_server *srv, int fd)
{
	struct json_buf r;
	char msg[200];

	jb_init(&r);
	snprintf(msg, sizeof(msg),
	         "control socket %s: too many control clients, every slot busy with a request",
	         srv->path);
	ctl_reply_error(&r, "%s", msg);
	(void)!send(fd, jb_cstr(&r), strlen(jb_cstr(&r)), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)!send(fd, "\n", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	jb_free(&r);
	close(fd);
}

static void ctl_accept(struct ctl_server *srv)
{
	for (int k = 0; k < CTL_ACCEPT_BATCH; k++) {
		int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), priv, slot;
		struct ctl_client *c;

		if (fd < 0)
			return;
		priv = ctl_peer_priv(srv, fd);
		slot = ctl_slot(srv, priv);
		if (slot < 0) {
			ctl_refuse(srv, fd);
			continue;
		}
		c = &srv->clients[slot];
		c->fr = malloc(sizeof(*c->fr));
		if (c->fr == NULL) {
			close(fd);
			continue;
		}
		ctl_frame_init(c->fr);
		c->fd = fd;
		c->priv = priv;
		c->srv = srv;
		c->since = ++srv->seq;
		c->deadline = ctl_now_ms() + CTL_REQUEST_MS;
	}
}

static void *ctl_thread(void *arg)
{
	struct ctl_server *srv = arg;
	struct pollfd pfd[CTL_MAX_CLIENTS + 2];
	int idx[CTL_MAX_CLIENTS + 2];

	for (;;) {
		int64_t now = ctl_now_ms(), next = -1;
		int n = 0, stopping;

		pthread_mutex_lock(&srv->mu);
		stopping = srv->stopping;
		pthread_mutex_unlock(&srv->mu);
		if (stopping)
			return NULL;
		pfd[n].fd = srv->wake[0];
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		pfd[n].fd = srv->lfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_client *c = &srv->clients[i];

			if (c->fd < 0 || c->busy)
				continue;
			if (now >= c->deadline) {
				/* Idle, or not reading its reply: the slot goes
				 * back to clients that talk. */
				ctl_client_drop(c);
				continue;
			}
			if (next < 0 || c->deadline < next)
				next = c->deadline;
			pfd[n].fd = c->fd;
			/* Stop reading while a reply is pending, so one client
			 * cannot queue unbounded replies by never reading. */
			pfd[n].events = c->outlen > c->outoff ? POLLOUT : POLLIN;
			idx[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, next < 0 ? -1 : (int)(next - now + 1)) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("control socket %s: poll", srv->path);
			return NULL;
		}
		if (pfd[0].revents != 0)
			ctl_collect(srv);
		for (int k = 2; k < n; k++) {
			struct ctl_client *c = &srv->clients[idx[k]];

			if (pfd[k].revents == 0 || c->fd < 0 || c->busy)
				continue;
			if (pfd[k].revents & POLLOUT) {
				if (ctl_write(c) == 0)
					ctl_advance(srv, idx[k]);
			} else if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				ctl_read(srv, idx[k]);
			}
		}
		if (pfd[1].revents & POLLIN)
			ctl_accept(srv);
	}
}

static void *ctl_worker(void *arg)
{
	struct ctl_server *srv = arg;

	pthread_mutex_lock(&srv->mu);
	for (;;) {
		struct ctl_job *j;

		while (!srv->stopping && srv->queue == NULL)
			pthread_cond_wait(&srv->cond, &srv->mu);
		if (srv->stopping)
			break;
		j = srv->queue;
		srv->queue = j->next;
		if (srv->queue == NULL)
			srv->queue_tail = &srv->queue;
		srv->running++;
		pthread_mutex_unlock(&srv->mu);
		ctl_run(srv->ctx, &j->req, &j->reply);
		pthread_mutex_lock(&srv->mu);
		srv->running--;
		pthread_cond_broadcast(&srv->idle_cv);
		j->next = srv->done;
		srv->done = j;
		(void)!write(srv->wake[1], "j", 1);
	}
	pthread_mutex_unlock(&srv->mu);
	ctl_srv_unref(srv);
	return NULL;
}

struct ctl_server *ctl_server_start(const struct ctl_server_cfg *cfg, char *err, size_t errlen)
{
	struct ctl_server *srv = NULL;
	struct sockaddr_un sun;
	int probe = -1, nslow = cfg->slow_threads;

	if (ctl_addr(cfg->path, &sun, err, errlen) < 0)
		return NULL;
	if (nslow < 1)
		nslow = 1;
	if (nslow > CTL_SLOW_THREADS_MAX)
		nslow = CTL_SLOW_THREADS_MAX;
	/* A socket file left by a crashed process is replaced, but one that
	 * still answers belongs to a live process and must not be stolen. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		snprintf(err, errlen, "%s: another process is already listening on this socket",
		         cfg->path);
		return NULL;
	}
	if (probe >= 0)
		close(probe);
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "%s: out of memory", cfg->path);
		return NULL;
	}
	srv->lfd = -1;
	srv->wake[0] = srv->wake[1] = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
	snprintf(srv->path, sizeof(srv->path), "%s", cfg->path);
	srv->cmds = cfg->cmds;
	srv->ctx = cfg->ctx;
	srv->euid = geteuid();
	srv->queue_tail = &srv->queue;
	srv->detach_slow = cfg->detach_slow;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_cond_init(&srv->cond, NULL);
	pthread_cond_init(&srv->idle_cv, NULL);
	(void)unlink(cfg->path);
	srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(cfg->path, cfg->mode) < 0 || listen(srv->lfd, CTL_BACKLOG) < 0) {
		snprintf(err, errlen, "%s: cannot create control socket: %s", cfg->path,
		         strerror(errno));
		goto fail;
	}
	/* Non-blocking both ends: workers never block on a full pipe (one
	 * byte pending is enough to wake the poll thread). */
	if (pipe2(srv->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "%s: pipe: %s", cfg->path, strerror(errno));
		goto fail;
	}
	srv->refs = 1;
	for (int i = 0; i < nslow; i++) {
		pthread_attr_t attr;
		pthread_t t;
		int rc;

		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_mutex_lock(&srv->mu);
		rc = pthread_create(&t, &attr, ctl_worker, srv);
		srv->refs += rc == 0;
		pthread_mutex_unlock(&srv->mu);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			snprintf(err, errlen, "%s: cannot start a control worker thread",
			         cfg->path);
			goto fail_threads;
		}
	}
	if (pthread_create(&srv->thread, NULL, ctl_thread, srv) != 0) {
		snprintf(err, errlen, "%s: cannot start control thread", cfg->path);
		goto fail_threads;
	}
	return srv;
fail_threads:
	close(srv->lfd);
	(void)unlink(cfg->path);
	pthread_mutex_lock(&srv->mu);
	srv->stopping = 1;
	pthread_cond_broadcast(&srv->cond);
	pthread_mutex_unlock(&srv->mu);
	ctl_srv_unref(srv);
	return NULL;
fail:
	if (srv->lfd >= 0) {
		close(srv->lfd);
		(void)unlink(cfg->path);
	}
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	pthread_mutex_destroy(&srv->mu);
	pthread_cond_destroy(&srv->cond);
	pthread_cond_destroy(&srv->idle_cv);
	free(srv);
	return NULL;
}

void ctl_server_stop(struct ctl_server *srv)
{
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->mu);
	srv->stopping = 1;
	pthread_cond_broadcast(&srv->cond);
	(void)!write(srv->wake[1], "x", 1);
	pthread_mutex_unlock(&srv->mu);
	pthread_join(srv->thread, NULL);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (srv->clients[i].fd >= 0)
			ctl_client_drop(&srv->clients[i]);
	close(srv->lfd);
	(void)unlink(srv->path);
	/* Queued jobs never start. A running one finishes on its worker:
	 * by default we wait for it, so the caller may free ctx next; with
	 * detach_slow the worker drops the last reference itself. */
	pthread_mutex_lock(&srv->mu);
	while (srv->queue != NULL) {
		struct ctl_job *j = srv->queue;

		srv->queue = j->next;
		jb_free(&j->reply);
		free(j);
	}
	while (!srv->detach_slow && srv->running > 0)
		pthread_cond_wait(&srv->idle_cv, &srv->mu);
	pthread_mutex_unlock(&srv->mu);
	ctl_srv_unref(srv);
}

static long ctl_ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

int ctl_request(const char *path, const char *line, char **reply, int timeout_ms, char *err,
                size_t errlen)
{
	struct sockaddr_un sun;
	struct timespec deadline;
	char *buf = NULL, *nl;
	size_t len = 0, cap = 0, sent = 0, linelen = strlen(line);
	int fd = -1, rc = -1;
	char *msg = NULL;

	*reply = NULL;
	if (ctl_addr(path, &sun, err, errlen) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == ENOENT)
			snprintf(err, errlen, "%s: no such socket (is the process running?)", path);
		else if (errno == ECONNREFUSED)
			snprintf(err, errlen,
			         "%s: connection refused (stale socket: is the process running?)",
			         path);
		else
			snprintf(err, errlen, "%s: cannot connect: %s", path, strerror(errno));
		goto out;
	}
	msg = malloc(linelen + 2);
	if (msg == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(msg, line, linelen);
	msg[linelen] = '\n';
	msg[linelen + 1] = '\0';
	while (sent < linelen + 1) {
		ssize_t n = send(fd, msg + sent, linelen + 1 - sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: send: %s", path, strerror(errno));
			goto out;
		}
		sent += (size_t)n;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long left = ctl_ms_left(&deadline);
		ssize_t n;

		if (left <= 0) {
			snprintf(err, errlen, "%s: no reply within %d ms", path, timeout_ms);
			goto out;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap ? cap * 2 : 8192);

			if (nb == NULL) {
				snprintf(err, errlen, "out of memory");
				goto out;
			}
			buf = nb;
			cap = cap ? cap * 2 : 8192;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s: connection closed before a reply", path);
			goto out;
		}
		len += (size_t)n;
		buf[len] = '\0';
		nl = memchr(buf, '\n', len);
		if (nl != NULL) {
			*nl = '\0';
			*reply = buf;
			buf = NULL;
			rc = 0;
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	free(msg);
	free(buf);
	return rc;
}
