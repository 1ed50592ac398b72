/*
 * echo_backend: a small epoll TCP echo server for the proxy's tests and
 * benchmarks. With -p it expects a PROXY protocol header (v1 or v2) at the
 * start of every connection and prints what it parsed, one line each:
 *   PP2 src=ADDR:PORT dst=ADDR:PORT authority=NAME alpn=P ssl_version=V
 *   PP1 <the header line>
 *   PPERR <why>     (connection then closed)
 *
 * With -H BYTES every connection is held once BYTES bytes have been echoed
 * on it: the backend stops reading and writing it, prints "HELD" (one line
 * per connection) and waits for SIGUSR1, which releases every held
 * connection and ends holding for good. Tests use it to keep transfers in
 * flight on purpose, however fast or slow the machine is, instead of
 * hoping that a large transfer is still running when they look.
 *
 *   echo_backend -l ADDR:PORT [-p] [-o FILE] [-H BYTES]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 65536

struct ec {
	int fd;
	int pp; /* header still expected */
	uint32_t off, len;
	long long echoed;
	struct ec *next_held;
	unsigned char buf[BUFSZ];
};

static FILE *out;
static long long hold_at; /* -H: 0 = never hold */
static int released;      /* SIGUSR1 came: hold nothing any more */
static struct ec *held;   /* connections waiting for SIGUSR1 */

static int parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (colon == NULL)
		return -1;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *b = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)atoi(colon + 1));
		*sl = sizeof(*a);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &b->sin6_addr) == 1) {
		b->sin6_family = AF_INET6;
		b->sin6_port = htons((uint16_t)atoi(colon + 1));
		*sl = sizeof(*b);
		return 0;
	}
	return -1;
}

/* Returns header length, 0 if more bytes are needed, -1 if invalid. */
static int pp_parse(const unsigned char *b, uint32_t len)
{
	static const unsigned char sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
	                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
	char line[1024];
	size_t lp = 0;

	if (len >= 1 && b[0] == 'P') {
		for (uint32_t i = 1; i < len && i < 108; i++)
			if (b[i - 1] == '\r' && b[i] == '\n') {
				fprintf(out, "PP1 %.*s\n", (int)(i - 1), (const char *)b);
				fflush(out);
				return (int)i + 1;
			}
		return len >= 108 ? -1 : 0;
	}
	if (len < 16)
		return 0;
	if (memcmp(b, sig, 12) != 0 || b[12] != 0x21)
		return -1;
	uint32_t hl = ((uint32_t)b[14] << 8) | b[15];
	if (len < 16 + hl)
		return 0;
	const unsigned char *p = b + 16, *end = b + 16 + hl;
	char s[INET6_ADDRSTRLEN], d[INET6_ADDRSTRLEN];
	uint16_t sp, dp;
	if (b[13] == 0x11 && hl >= 12) {
		inet_ntop(AF_INET, p, s, sizeof(s));
		inet_ntop(AF_INET, p + 4, d, sizeof(d));
		memcpy(&sp, p + 8, 2);
		memcpy(&dp, p + 10, 2);
		p += 12;
	} else if (b[13] == 0x21 && hl >= 36) {
		inet_ntop(AF_INET6, p, s, sizeof(s));
		inet_ntop(AF_INET6, p + 16, d, sizeof(d));
		memcpy(&sp, p + 32, 2);
		memcpy(&dp, p + 34, 2);
		p += 36;
	} else {
		return -1;
	}
	lp += (size_t)snprintf(line + lp, sizeof(line) - lp, "PP2 src=%s:%u dst=%s:%u", s,
	                       ntohs(sp), d, ntohs(dp));
	while (p + 3 <= end) {
		unsigned t = p[0], l = ((unsigned)p[1] << 8) | p[2];
		const unsigned char *v = p + 3;
		if (v + l > end)
			return -1;
		if (t == 0x01)
			lp +=
			    (size_t)snprintf(line + lp, sizeof(line) - lp, " alpn=%.*s", (int)l, v);
		else if (t == 0x02)
			lp += (size_t)snprintf(line + lp, sizeof(line) - lp, " authority=%.*s",
			                       (int)l, v);
		else if (t == 0x20 && l >= 5) {
			const unsigned char *q = v + 5, *qe = v + l;
			while (q + 3 <= qe) {
				unsigned st = q[0], sl = ((unsigned)q[1] << 8) | q[2];
				if (q + 3 + sl > qe)
					return -1;
				if (st == 0x21)
					lp += (size_t)snprintf(line + lp, sizeof(line) - lp,
					                       " ssl_version=%.*s", (int)sl, q + 3);
				q += 3 + sl;
			}
		}
		if (lp >= sizeof(line))
			lp = sizeof(line) - 1;
		p = v + l;
	}
	fprintf(out, "%s\n", line);
	fflush(out);
	return (int)(16 + hl);
}

static void ec_close(int ep, struct ec *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* Echo ping-pong: read while the buffer is empty, write until it is. */
static void ec_io(int ep, struct ec *c)
{
	for (;;) {
		if (c->len > 0) {
			ssize_t n = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN) {
					struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
					return;
				}
				ec_close(ep, c);
				return;
			}
			c->off += (uint32_t)n;
			c->len -= (uint32_t)n;
			c->echoed += n;
			continue;
		}
		c->off = 0;
		if (hold_at > 0 && !released && c->echoed >= hold_at) {
			/* Everything read so far is echoed; read no more until
			 * released. The fd leaves the epoll set: with only its
			 * events cleared, a hang-up would still be reported, over
			 * and over (EPOLLHUP cannot be masked). */
			epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			c->next_held = held;
			held = c;
			fprintf(out, "HELD\n");
			fflush(out);
			return;
		}
		if (c->pp) {
			/* Keep header bytes at the start until complete. */
		}
		ssize_t n = recv(c->fd, c->buf + c->off + c->len, BUFSZ - c->len, 0);
		if (n == 0) {
			/* EOF: everything was echoed; FIN back (half-close). */
			ec_close(ep, c);
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
				return;
			}
			ec_close(ep, c);
			return;
		}
		c->len += (uint32_t)n;
		if (c->pp) {
			int h = pp_parse(c->buf, c->len);
			if (h < 0) {
				fprintf(out, "PPERR bad header\n");
				fflush(out);
				ec_close(ep, c);
				return;
			}
			if (h == 0) {
				/* Need more: read again appending (len keeps). */
				ssize_t m = recv(c->fd, c->buf + c->len, BUFSZ - c->len, 0);
				if (m > 0) {
					c->len += (uint32_t)m;
					h = pp_parse(c->buf, c->len);
				}
				if (h <= 0) {
					if (h < 0 || m == 0 || (m < 0 && errno != EAGAIN)) {
						ec_close(ep, c);
						return;
					}
					/* Still partial: keep bytes, wait. */
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
					c->off = 0;
					/* Mark pending bytes by leaving len; send
					 * nothing until parsed: move to a side
					 * buffer is overkill for a test tool. */
					c->pp = 2;
					return;
				}
			}
			c->pp = 0;
			c->off = (uint32_t)h;
			c->len -= (uint32_t)h;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const char *laddr = NULL;
	int opt, pp = 0, one = 1, lfd, ep;
	struct epoll_event ev, evs[256];
	static int lmark, smark;
	sigset_t usr1;
	int sfd;

	out = stdout;
	while ((opt = getopt(argc, argv, "l:po:H:")) != -1) {
		switch (opt) {
		case 'l':
			laddr = optarg;
			break;
		case 'p':
			pp = 1;
			break;
		case 'o':
			out = fopen(optarg, "a");
			if (out == NULL) {
				perror(optarg);
				return 1;
			}
			break;
		case 'H':
			hold_at = atoll(optarg);
			break;
		default:
			fprintf(stderr,
			        "usage: echo_backend -l ADDR:PORT [-p] [-o FILE] [-H BYTES]\n");
			return 2;
		}
	}
	if (laddr == NULL || parse_addr(laddr, &ss, &sl) < 0) {
		fprintf(stderr, "echo_backend: -l ADDR:PORT required\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* SIGUSR1 is blocked before the port is bound: a test sends it only
	 * after it has seen HELD lines, so it can never arrive unhandled. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	sfd = signalfd(-1, &usr1, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sfd < 0) {
		perror("echo_backend: signalfd");
		return 1;
	}
	lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 4096) < 0) {
		perror("echo_backend: bind");
		return 1;
	}
	ep = epoll_create1(0);
	ev.events = EPOLLIN;
	ev.data.ptr = &lmark;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &smark;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == &lmark) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
					struct ec *c = calloc(1, sizeof(*c));
					if (c == NULL) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->pp = pp;
					ev.events = EPOLLIN;
					ev.data.ptr = c;
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
				}
				continue;
			}
			if (evs[i].data.ptr == &smark) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si))
					released = 1;
				while (held != NULL) {
					struct ec *h = held;
					struct epoll_event hev = {.events = EPOLLIN, .data.ptr = h};
					held = h->next_held;
					epoll_ctl(ep, EPOLL_CTL_ADD, h->fd, &hev);
					ec_io(ep, h);
				}
				continue;
			}
			struct ec *c = evs[i].data.ptr;
			if (c->pp == 2) {
				/* Partial PROXY header pending: append and retry. */
				ssize_t m = recv(c->fd, c->buf + c->len, BUFSZ - c->len, 0);
				if (m <= 0) {
					if (m < 0 && errno == EAGAIN)
						continue;
					ec_close(ep, c);
					continue;
				}
				c->len += (uint32_t)m;
				int h = pp_parse(c->buf, c->len);
				if (h < 0) {
					ec_close(ep, c);
					continue;
				}
				if (h == 0)
					continue;
				c->pp = 0;
				c->off = (uint32_t)h;
				c->len -= (uint32_t)h;
			}
			ec_io(ep, c);
		}
	}
}
