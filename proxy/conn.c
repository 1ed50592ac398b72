/*
 * conn: one client connection, from accept to px_conn_close().
 *
 * States: HANDSHAKE (TLS accept) -> CONNECTING (to a server, with retries)
 * -> FORWARD (copy both ways). Both sockets are registered once, edge
 * triggered; readiness is kept in flags that are cleared only when a call
 * returns EAGAIN / WANT_READ / WANT_WRITE, so data that OpenSSL or a full
 * buffer left behind is retried without waiting for a new edge.
 *
 * Backpressure: a side is read only while the buffer towards the other side
 * has room, so a connection never holds more than two buffers of
 * proxy.buffer_size whatever the peers do.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>

#include "common/log.h"

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#define PX_IP6T_SO_ORIGINAL_DST 80

static const char *const reason_names[PX_R__COUNT] = {
    "done",         "handshake_timeout", "handshake_fail", "no_backend",
    "connect_fail", "connect_timeout",   "client_timeout", "server_timeout",
    "client_error", "server_error",      "hard_stop",      "resource",
};

const char *px_reason_name(enum px_reason r)
{
	return r < PX_R__COUNT ? reason_names[r] : "?";
}

static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
	}
	/* Brackets keep an IPv6 address apart from its port, as in the
	 * servers' "[addr]:port" texts. */
	snprintf(out, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
}

void px_conn_close(struct px_conn *c, enum px_reason reason)
{
	struct px_worker *w = c->w;
	struct px_proc *p = w->p;
	int wake = 0;

	PX_INC(w->st.reasons[reason]);
	if (p->cfg->proxy.access_log) {
		char cli[80], sni[LOG_ESC_LEN(sizeof(c->sni))];
		int si = c->srv >= 0 ? c->srv : c->last_srv;
		const char *srv = si >= 0 ? p->servers[si].name : "-";
		addr_text(&c->peer, cli, sizeof(cli));
		/* The name is the client's bytes: escaped, so that a newline
		 * or a space in it cannot forge a line or a field. */
		log_escape(sni, sizeof(sni), c->sni, c->sni_len);
		log_info("access client=%s sni=%s listener=%s backend=%s in=%llu out=%llu ms=%llu "
		         "end=%s",
		         cli, c->sni_len ? sni : "-", c->grp->name, srv,
		         (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out,
		         (unsigned long long)(w->now - c->t_start), px_reason_name(reason));
	}
	px_timer_del(w, c);
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->sfd >= 0)
		close(c->sfd);
	if (c->srv >= 0 && c->state != PX_C_HANDSHAKE)
		atomic_fetch_sub(&p->servers[c->srv].active, 1);
	px_buf_put(w, c->c2s.data);
	px_buf_put(w, c->s2c.data);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	atomic_fetch_sub(&w->nconns, 1);
	wake |= px_limit_put(&c->grp->limit, w->now);
	wake |= px_limit_put(&p->global, w->now);
	c->flags |= PX_F_DEAD;
	c->next = w->dead;
	w->dead = c;
	/* Workers that paused their listeners at the limit sleep in
	 * epoll_wait; wake them so that queued connections are served now. */
	if (wake)
		px_workers_wake_all(p);
}

/* ---- handshake ---- */

static void hs_failed(struct px_conn *c)
{
	struct px_worker *w = c->w;
	unsigned long e = ERR_peek_error();
	enum px_hsfail kind = PX_HS_OTHER;

	if (c->flags & PX_F_NOCERT) {
		kind = PX_HS_NO_CERT;
	} else if (e != 0 && ERR_GET_LIB(e) == ERR_LIB_SSL) {
		int r = ERR_GET_REASON(e);
		/* Reasons from SSL_AD_REASON_OFFSET on are alerts the peer sent. */
		kind = r >= SSL_AD_REASON_OFFSET ? PX_HS_ALERT : PX_HS_PROTOCOL;
	}
	ERR_clear_error();
	PX_INC(w->st.hs_fail[kind]);
	PX_INC(w->st.l_hs_fail[c->grp->idx]);
	px_conn_close(c, PX_R_HANDSHAKE_FAIL);
}

static void conn_connect(struct px_conn *c);

/* Counts a finished handshake in its listener and the latency histogram. */
static void hs_done(struct px_conn *c)
{
	static const uint64_t bounds[PX_HS_LAT_NB] = PX_HS_LAT_BOUNDS_US;
	struct px_stats *st = &c->w->st;
	uint64_t us = px_now_us() - c->t_accept_us;
	int b = 0;

	while (b < PX_HS_LAT_NB && us > bounds[b])
		b++;
	PX_INC(st->handshakes_ok);
	PX_INC(st->l_hs_ok[c->grp->idx]);
	PX_INC(st->hs_lat[b]);
	PX_ADD(st->hs_lat_sum_us, us);
}

static void handshake(struct px_conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		const unsigned char *alpn;
		unsigned alen;

		hs_done(c);
		SSL_get0_alpn_selected(c->ssl, &alpn, &alen);
		if (alen > 0 && alen < sizeof(c->alpn)) {
			memcpy(c->alpn, alpn, alen);
			c->alpn[alen] = '\0';
		}
		px_timer_del(c->w, c);
		conn_connect(c);
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		c->flags &= ~PX_F_CRD;
		return;
	case SSL_ERROR_WANT_WRITE:
		c->flags &= ~PX_F_CWR;
		return;
	default:
		hs_failed(c);
		return;
	}
}

void px_conn_accepted(struct px_worker *w, int fd, const struct sockaddr_storage *peer,
                      struct px_lgroup *grp)
{
	struct px_proc *p = w->p;
	struct px_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (c != NULL)
		c->ssl = SSL_new(p->ssl_ctx);
	if (c == NULL || c->ssl == NULL) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);
		log_rl(&rl, LOG_LVL_WARN, "out of memory for a new connection");
		if (c != NULL)
			free(c);
		close(fd);
		PX_INC(w->st.reasons[PX_R_RESOURCE]);
		px_limit_put(&grp->limit, w->now);
		px_limit_put(&p->global, w->now);
		return;
	}
	c->cev.kind = PX_EV_CLIENT;
	c->sev.kind = PX_EV_SERVER;
	c->w = w;
	c->cfd = fd;
	c->sfd = -1;
	c->srv = -1;
	c->last_srv = -1;
	c->heap_idx = -1;
	c->grp = grp;
	c->peer = *peer;
	c->t_start = c->last_c = c->last_s = w->now;
	c->t_accept_us = px_now_us();
	c->next = w->conns;
	if (w->conns != NULL)
		w->conns->prev = c;
	w->conns = c;
	atomic_fetch_add(&w->nconns, 1);

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL_set_fd(c->ssl, fd);
	SSL_set_app_data(c->ssl, c);
	SSL_set_accept_state(c->ssl);
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = &c->cev;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		px_conn_close(c, PX_R_RESOURCE);
		return;
	}
	px_timer_set(w, c, w->now + p->cfg->proxy.handshake_timeout_ms);
	/* The ClientHello is usually already queued: try at once and save an
	 * epoll round trip. */
	c->flags |= PX_F_CRD | PX_F_CWR;
	handshake(c);
}

/* ---- connecting to a server ---- */

static void original_dst(struct px_conn *c, struct sockaddr_storage *dst)
{
	socklen_t sl = sizeof(*dst);

	memset(dst, 0, sizeof(*dst));
	/* After a nat REDIRECT the local address is the instance's port; the
	 * backend wants the service address the client dialled, which
	 * conntrack still knows. */
	if (c->peer.ss_family == AF_INET &&
	    getsockopt(c->cfd, SOL_IP, SO_ORIGINAL_DST, dst, &sl) == 0)
		return;
	sl = sizeof(*dst);
	if (c->peer.ss_family == AF_INET6 &&
	    getsockopt(c->cfd, SOL_IPV6, PX_IP6T_SO_ORIGINAL_DST, dst, &sl) == 0)
		return;
	sl = sizeof(*dst);
	getsockname(c->cfd, (struct sockaddr *)dst, &sl);
}

static int prepend_proxy_header(struct px_conn *c)
{
	struct px_proc *p = c->w->p;
	struct sockaddr_storage dst;
	struct px_pp_info in;
	int n;

	if (p->cfg->backend.proxy_protocol == CFG_PP_NONE)
		return 0;
	original_dst(c, &dst);
	in.src = &c->peer;
	in.dst = &dst;
	in.sni = c->sni[0] ? c->sni : NULL;
	in.alpn = c->alpn[0] ? c->alpn : NULL;
	in.tls_version = SSL_get_version(c->ssl);
	if (c->c2s.data == NULL && (c->c2s.data = px_buf_get(c->w)) == NULL)
		return -1;
	n = px_pp_build(p->cfg->backend.proxy_protocol == CFG_PP_V1 ? 1 : 2, &in, c->c2s.data,
	                p->cfg->proxy.buffer_size);
	if (n < 0)
		return -1;
	c->c2s.off = 0;
	c->c2s.len = (uint32_t)n;
	return 0;
}

static void no_backend(struct px_conn *c)
{
	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);

	PX_INC(c->w->st.no_backend);
	log_rl(&rl, LOG_LVL_WARN, "no backend server is up: closing client connections");
	/* Close cleanly: the client gets a close_notify, not a reset. */
	SSL_shutdown(c->ssl);
	px_conn_close(c, PX_R_NO_BACKEND);
}

static void connect_failed(struct px_conn *c, enum px_reason why)
{
	struct px_worker *w = c->w;
	struct px_proc *p = w->p;
	int failed = c->srv;

	PX_INC(w->st.backend_connect_fail);
	px_backend_result(p, failed, 0, w->now);
	close(c->sfd);
	c->sfd = -1;
	atomic_fetch_sub(&p->servers[failed].active, 1);
	if (c->tries > p->cfg->backend.retries) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);
		log_rl(&rl, LOG_LVL_WARN, "server %s: connect failed, no tries left",
		       p->servers[failed].text);
		c->srv = -1;
		SSL_shutdown(c->ssl);
		px_conn_close(c, why);
		return;
	}
	c->srv = px_backend_pick(p, failed, w->now);
	if (c->srv < 0) {
		no_backend(c);
		return;
	}
	conn_connect(c);
}

static void connected(struct px_conn *c)
{
	struct px_worker *w = c->w;

	px_backend_result(w->p, c->srv, 1, w->now);
	c->state = PX_C_FORWARD;
	c->last_c = c->last_s = w->now;
	px_timer_set(w, c, w->now + w->p->cfg->proxy.client_timeout_ms);
	px_conn_event(c, 1, 0);
}

/* Starts a connect to c->srv (picking one first if unset). */
static void conn_connect(struct px_conn *c)
{
	struct px_worker *w = c->w;
	struct px_proc *p = w->p;
	struct px_server *s;
	struct epoll_event ev;
	int one = 1;

	if (c->state == PX_C_HANDSHAKE) {
		c->state = PX_C_CONNECTING;
		c->srv = px_backend_pick(p, -1, w->now);
		if (c->srv < 0) {
			no_backend(c);
			return;
		}
		if (prepend_proxy_header(c) < 0) {
			c->srv = -1; /* not counted in the server's active yet */
			px_conn_close(c, PX_R_RESOURCE);
			return;
		}
	}
	s = &p->servers[c->srv];
	atomic_fetch_add(&s->active, 1);
	c->last_srv = c->srv;
	c->tries++;
	c->sfd = socket(s->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->sfd < 0) {
		atomic_fetch_sub(&s->active, 1);
		c->srv = -1;
		px_conn_close(c, PX_R_RESOURCE);
		return;
	}
	setsockopt(c->sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->flags &= ~(PX_F_SRD | PX_F_SWR);
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = &c->sev;
	if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->sfd, &ev) < 0) {
		connect_failed(c, PX_R_CONNECT_FAIL);
		return;
	}
	if (connect(c->sfd, (struct sockaddr *)&s->ss, s->sslen) == 0) {
		c->flags |= PX_F_SWR;
		connected(c);
		return;
	}
	if (errno != EINPROGRESS) {
		connect_failed(c, PX_R_CONNECT_FAIL);
		return;
	}
	px_timer_set(w, c, w->now + p->cfg->proxy.connect_timeout_ms);
}

/* ---- forwarding ---- */

static uint32_t buf_room(const struct px_conn *c, const struct px_buf *b)
{
	return c->w->p->cfg->proxy.buffer_size - b->off - b->len;
}

/* Makes sure b has a buffer and room at its tail if it has any room. */
static int buf_ready(struct px_conn *c, struct px_buf *b)
{
	if (b->data == NULL) {
		b->data = px_buf_get(c->w);
		b->off = b->len = 0;
		return b->data != NULL ? 0 : -1;
	}
	if (b->off > 0 && buf_room(c, b) == 0 && b->len < c->w->p->cfg->proxy.buffer_size) {
		memmove(b->data, b->data + b->off, b->len);
		b->off = 0;
	}
	return 0;
}

static void buf_consumed(struct px_conn *c, struct px_buf *b, uint32_t n)
{
	b->off += n;
	b->len -= n;
	if (b->len == 0) {
		/* Return the memory at once: idle connections then hold none. */
		px_buf_put(c->w, b->data);
		b->data = NULL;
		b->off = 0;
	}
}

/* One step of client -> server; returns 1 on progress, 0 none, -1 closed. */
static int step_c2s(struct px_conn *c)
{
	struct px_worker *w = c->w;
	int progress = 0;

	if (!(c->flags & (PX_F_CEOF)) && (c->flags & PX_F_CRD) &&
	    (c->c2s.data == NULL || buf_room(c, &c->c2s) > 0 || c->c2s.off > 0)) {
		int n;
		if (buf_ready(c, &c->c2s) < 0) {
			px_conn_close(c, PX_R_RESOURCE);
			return -1;
		}
		/* SSL_read hands over one record at a time: keep reading
		 * until the buffer is full or OpenSSL wants more bytes, so that
		 * one send() to the server carries as much as possible. */
		while (buf_room(c, &c->c2s) > 0 && (c->flags & PX_F_CRD) &&
		       !(c->flags & PX_F_CEOF)) {
			n = SSL_read(c->ssl, c->c2s.data + c->c2s.off + c->c2s.len,
			             (int)buf_room(c, &c->c2s));
			if (n > 0) {
				c->c2s.len += (uint32_t)n;
				c->bytes_in += (uint64_t)n;
				PX_ADD(w->st.bytes_in, (uint64_t)n);
				c->last_c = w->now;
				progress = 1;
				continue;
			} else {
				switch (SSL_get_error(c->ssl, n)) {
				case SSL_ERROR_WANT_READ:
					c->flags &= ~PX_F_CRD;
					break;
				case SSL_ERROR_WANT_WRITE:
					c->flags &= ~PX_F_CWR;
					break;
				case SSL_ERROR_ZERO_RETURN:
					c->flags |= PX_F_CEOF;
					progress = 1;
					break;
				default:
					ERR_clear_error();
					/* A reset after everything was delivered
					 * both ways is still a clean end. */
					if ((c->flags & PX_F_SEOF) && (c->flags & PX_F_CSHUT) &&
					    c->s2c.len == 0) {
						c->flags |= PX_F_CEOF;
						progress = 1;
						break;
					}
					px_conn_close(c, PX_R_CLIENT_ERROR);
					return -1;
				}
				break;
			}
		}
		if (c->c2s.len == 0 && c->c2s.data != NULL) {
			px_buf_put(w, c->c2s.data);
			c->c2s.data = NULL;
			c->c2s.off = 0;
		}
	}
	if (c->c2s.len > 0 && (c->flags & PX_F_SWR)) {
		ssize_t n = send(c->sfd, c->c2s.data + c->c2s.off, c->c2s.len, MSG_NOSIGNAL);
		if (n > 0) {
			buf_consumed(c, &c->c2s, (uint32_t)n);
			c->last_s = w->now;
			progress = 1;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->flags &= ~PX_F_SWR;
		} else if (n < 0 && errno != EINTR) {
			px_conn_close(c, PX_R_SERVER_ERROR);
			return -1;
		}
	}
	if ((c->flags & PX_F_CEOF) && c->c2s.len == 0 && !(c->flags & PX_F_SSHUT)) {
		shutdown(c->sfd, SHUT_WR);
		c->flags |= PX_F_SSHUT;
		progress = 1;
	}
	return progress;
}

static int step_s2c(struct px_conn *c)
{
	struct px_worker *w = c->w;
	int progress = 0;

	if (!(c->flags & PX_F_SEOF) && (c->flags & PX_F_SRD)) {
		if (buf_ready(c, &c->s2c) < 0) {
			px_conn_close(c, PX_R_RESOURCE);
			return -1;
		}
		if (buf_room(c, &c->s2c) > 0) {
			ssize_t n = recv(c->sfd, c->s2c.data + c->s2c.off + c->s2c.len,
			                 buf_room(c, &c->s2c), 0);
			if (n > 0) {
				c->s2c.len += (uint32_t)n;
				c->last_s = w->now;
				progress = 1;
			} else if (n == 0) {
				c->flags |= PX_F_SEOF;
				progress = 1;
			} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->flags &= ~PX_F_SRD;
			} else if (errno != EINTR) {
				px_conn_close(c, PX_R_SERVER_ERROR);
				return -1;
			}
			if (c->s2c.len == 0 && c->s2c.data != NULL) {
				px_buf_put(w, c->s2c.data);
				c->s2c.data = NULL;
				c->s2c.off = 0;
			}
		}
	}
	/* With SSL_MODE_ENABLE_PARTIAL_WRITE each SSL_write sends one record
	 * (at most 16 KB): loop until the buffer is empty or the socket is
	 * full, so that a full buffer goes out in one pass. */
	while (c->s2c.len > 0 && (c->flags & PX_F_CWR)) {
		int n = SSL_write(c->ssl, c->s2c.data + c->s2c.off, (int)c->s2c.len);
		if (n > 0) {
			buf_consumed(c, &c->s2c, (uint32_t)n);
			c->bytes_out += (uint64_t)n;
			PX_ADD(w->st.bytes_out, (uint64_t)n);
			c->last_c = w->now;
			progress = 1;
			continue;
		}
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			c->flags &= ~PX_F_CWR;
			break;
		case SSL_ERROR_WANT_READ:
			c->flags &= ~PX_F_CRD;
			break;
		default:
			ERR_clear_error();
			px_conn_close(c, PX_R_CLIENT_ERROR);
			return -1;
		}
		break;
	}
	if ((c->flags & PX_F_SEOF) && c->s2c.len == 0 && !(c->flags & PX_F_CSHUT) &&
	    (c->flags & PX_F_CWR)) {
		/* The server finished: send close_notify, then keep reading
		 * the client until it closes too (half-close). */
		int r = SSL_shutdown(c->ssl);
		if (r >= 0) {
			c->flags |= PX_F_CSHUT;
			progress = 1;
		} else if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_WRITE) {
			c->flags &= ~PX_F_CWR;
		} else {
			ERR_clear_error();
			c->flags |= PX_F_CSHUT;
			progress = 1;
		}
	}
	return progress;
}

static void pump(struct px_conn *c)
{
	for (int i = 0; i < 64; i++) {
		int a, b;

		a = step_c2s(c);
		if (a < 0)
			return;
		b = step_s2c(c);
		if (b < 0)
			return;
		if ((c->flags & (PX_F_CEOF | PX_F_SEOF | PX_F_SSHUT | PX_F_CSHUT)) ==
		        (PX_F_CEOF | PX_F_SEOF | PX_F_SSHUT | PX_F_CSHUT) &&
		    c->c2s.len == 0 && c->s2c.len == 0) {
			px_conn_close(c, PX_R_DONE);
			return;
		}
		if (!a && !b)
			return;
	}
	/* Still busy after many rounds: yield to other connections and come
	 * back on the next loop turn through a zero timer. */
	px_timer_set(c->w, c, c->w->now);
}

void px_conn_reap(struct px_worker *w)
{
	while (w->dead != NULL) {
		struct px_conn *c = w->dead;
		w->dead = c->next;
		free(c);
	}
}

void px_conn_event(struct px_conn *c, int server_side, uint32_t events)
{
	if (c->flags & PX_F_DEAD)
		return;
	if (server_side) {
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			c->flags |= PX_F_SRD;
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			c->flags |= PX_F_SWR;
	} else {
		if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			c->flags |= PX_F_CRD;
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			c->flags |= PX_F_CWR;
	}
	switch (c->state) {
	case PX_C_HANDSHAKE:
		if (!server_side)
			handshake(c);
		return;
	case PX_C_CONNECTING:
		if (server_side && (c->flags & (PX_F_SWR | PX_F_SRD))) {
			int err = 0;
			socklen_t sl = sizeof(err);
			if (getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0 || err != 0) {
				connect_failed(c, PX_R_CONNECT_FAIL);
				return;
			}
			connected(c);
		}
		return;
	case PX_C_FORWARD:
		pump(c);
		return;
	}
}

void px_conn_timeout(struct px_conn *c)
{
	struct px_worker *w = c->w;
	const struct cfg_proxy *pc = &w->p->cfg->proxy;

	switch (c->state) {
	case PX_C_HANDSHAKE:
		PX_INC(w->st.hs_fail[PX_HS_TIMEOUT]);
		PX_INC(w->st.l_hs_fail[c->grp->idx]);
		px_conn_close(c, PX_R_HANDSHAKE_TIMEOUT);
		return;
	case PX_C_CONNECTING:
		connect_failed(c, PX_R_CONNECT_TIMEOUT);
		return;
	case PX_C_FORWARD: {
		/* Activity only stamps last_c/last_s; the timer is moved
		 * lazily here, so busy connections touch the heap rarely. */
		uint64_t dc = c->last_c + pc->client_timeout_ms;
		uint64_t ds = c->last_s + pc->server_timeout_ms;
		if (dc <= w->now) {
			px_conn_close(c, PX_R_CLIENT_TIMEOUT);
			return;
		}
		if (ds <= w->now) {
			px_conn_close(c, PX_R_SERVER_TIMEOUT);
			return;
		}
		px_timer_set(w, c, dc < ds ? dc : ds);
		/* A zero timer set by pump() asks for another round. */
		pump(c);
		return;
	}
	}
}
