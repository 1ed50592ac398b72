/*
 * ctl: see ctl.h. The server is one thread with a poll(2) loop over the
 * listening socket, up to CTL_MAX_CLIENTS clients and a wake-up pipe used by
 * ctl_server_stop(). Clients are served strictly one line at a time.
 */
#include "common/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

/* A reply that a slow client has not read yet is bounded; past this the
 * client is dropped rather than letting it pin server memory. */
#define CTL_OUT_MAX (1024 * 1024)

struct ctl_client {
	int fd;
	char in[CTL_LINE_MAX + 1];
	size_t inlen;
	int discarding; /* inside an over-long line: drop bytes up to '\n' */
	char *out;
	size_t outlen, outoff;
	int close_after;
};

struct ctl_server {
	int lfd;
	int wake[2];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	ctl_handler handler;
	void *arg;
	pthread_t thread;
	struct ctl_client clients[CTL_MAX_CLIENTS];
};

void ctl_reply_error(struct json_buf *reply, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jb_reset(reply);
	jb_obj_begin(reply, NULL);
	jb_bool(reply, "ok", 0);
	jb_str(reply, "error", msg);
	jb_obj_end(reply);
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

static void ctl_client_drop(struct ctl_client *c)
{
	close(c->fd);
	free(c->out);
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
}

static void ctl_dispatch(struct ctl_server *srv, struct ctl_client *c, const char *line)
{
	struct json_buf reply;
	int close_after = 0;

	jb_init(&reply);
	srv->handler(srv->arg, line, &reply, &close_after);
	if (reply.len == 0 && !reply.oom)
		ctl_reply_error(&reply, "internal error: command produced no reply");
	ctl_queue(c, jb_cstr(&reply));
	jb_free(&reply);
	if (close_after)
		c->close_after = 1;
}

/* Splits the client's input into lines and answers each one. */
static void ctl_consume(struct ctl_server *srv, struct ctl_client *c)
{
	size_t start = 0;

	for (size_t i = 0; i < c->inlen; i++) {
		if (c->in[i] != '\n')
			continue;
		if (c->discarding) {
			c->discarding = 0;
		} else {
			size_t end = i;

			if (end > start && c->in[end - 1] == '\r')
				end--;
			c->in[end] = '\0';
			if (memchr(c->in + start, '\0', end - start) != NULL) {
				struct json_buf r;

				jb_init(&r);
				ctl_reply_error(&r, "request contains a NUL byte");
				ctl_queue(c, jb_cstr(&r));
				jb_free(&r);
			} else {
				ctl_dispatch(srv, c, c->in + start);
			}
		}
		start = i + 1;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen >= CTL_LINE_MAX) {
		/* An over-long line: answer once, then ignore the rest of it. */
		if (!c->discarding) {
			struct json_buf r;

			jb_init(&r);
			ctl_reply_error(&r, "request line longer than %d bytes", CTL_LINE_MAX);
			ctl_queue(c, jb_cstr(&r));
			jb_free(&r);
		}
		c->discarding = 1;
		c->inlen = 0;
	}
}

static void ctl_read(struct ctl_server *srv, struct ctl_client *c)
{
	ssize_t n = read(c->fd, c->in + c->inlen, CTL_LINE_MAX - c->inlen);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		ctl_client_drop(c);
		return;
	}
	if (n < 0)
		return;
	c->inlen += (size_t)n;
	ctl_consume(srv, c);
}

static void ctl_write(struct ctl_client *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			ctl_client_drop(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->outlen = c->outoff = 0;
	if (c->close_after)
		ctl_client_drop(c);
}

static void ctl_accept(struct ctl_server *srv)
{
	int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (srv->clients[i].fd < 0) {
			srv->clients[i].fd = fd;
			return;
		}
	}
	/* Full: tell the client rather than leaving it hanging. */
	static const char busy[] = "{\"ok\":false,\"error\":\"too many control clients\"}\n";
	(void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void *ctl_thread(void *arg)
{
	struct ctl_server *srv = arg;
	struct pollfd pfd[CTL_MAX_CLIENTS + 2];
	int idx[CTL_MAX_CLIENTS + 2];

	for (;;) {
		int n = 0;

		pfd[n].fd = srv->wake[0];
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		pfd[n].fd = srv->lfd;
		pfd[n].events = POLLIN;
		idx[n++] = -1;
		for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
			struct ctl_client *c = &srv->clients[i];

			if (c->fd < 0)
				continue;
			pfd[n].fd = c->fd;
			/* Stop reading while a reply is pending, so one client
			 * cannot queue unbounded replies by never reading. */
			pfd[n].events = c->outlen > c->outoff ? POLLOUT : POLLIN;
			idx[n++] = i;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("control socket %s: poll", srv->path);
			return NULL;
		}
		if (pfd[0].revents != 0)
			return NULL;
		for (int k = 2; k < n; k++) {
			struct ctl_client *c = &srv->clients[idx[k]];

			if (pfd[k].revents == 0 || c->fd < 0)
				continue;
			if (pfd[k].revents & POLLOUT)
				ctl_write(c);
			else if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				ctl_read(srv, c);
			if (c->fd >= 0 && c->outlen > c->outoff)
				ctl_write(c);
		}
		if (pfd[1].revents & POLLIN)
			ctl_accept(srv);
	}
}

struct ctl_server *ctl_server_start(const char *path, mode_t mode, ctl_handler handler, void *arg,
                                    char *err, size_t errlen)
{
	struct ctl_server *srv = NULL;
	struct sockaddr_un sun;
	int probe = -1;

	if (ctl_addr(path, &sun, err, errlen) < 0)
		return NULL;
	/* A socket file left by a crashed process is replaced, but one that
	 * still answers belongs to a live process and must not be stolen. */
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(probe);
		snprintf(err, errlen, "%s: another process is already listening on this socket",
		         path);
		return NULL;
	}
	if (probe >= 0)
		close(probe);
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	srv->lfd = -1;
	srv->wake[0] = srv->wake[1] = -1;
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		srv->clients[i].fd = -1;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	srv->handler = handler;
	srv->arg = arg;
	(void)unlink(path);
	srv->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, mode) < 0 || listen(srv->lfd, 64) < 0) {
		snprintf(err, errlen, "%s: cannot create control socket: %s", path,
		         strerror(errno));
		goto fail;
	}
	if (pipe2(srv->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: pipe: %s", path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&srv->thread, NULL, ctl_thread, srv) != 0) {
		snprintf(err, errlen, "%s: cannot start control thread", path);
		goto fail;
	}
	return srv;
fail:
	if (srv->lfd >= 0) {
		close(srv->lfd);
		(void)unlink(path);
	}
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	free(srv);
	return NULL;
}

void ctl_server_stop(struct ctl_server *srv)
{
	if (srv == NULL)
		return;
	(void)!write(srv->wake[1], "x", 1);
	pthread_join(srv->thread, NULL);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++)
		if (srv->clients[i].fd >= 0)
			ctl_client_drop(&srv->clients[i]);
	close(srv->lfd);
	(void)unlink(srv->path);
	close(srv->wake[0]);
	close(srv->wake[1]);
	free(srv);
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
