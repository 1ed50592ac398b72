/*
 * listen: the instance's listening sockets. With proxy.accept reuseport (the
 * default) every worker gets its own SO_REUSEPORT socket per listener and
 * bind address, and the kernel spreads new connections over them by a hash
 * of the addresses and ports; with shared there is one socket per listener
 * and address, which every worker polls (see worker.c, docs/proxy.md).
 */
#include "proxy/px.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

/* Closes fd and returns -1 with errno as it was before the close. */
static int lsock_fail(int fd)
{
	int e = errno;

	close(fd);
	errno = e;
	return -1;
}

/* Opens and binds one socket with the options every listening socket has;
 * returns it, or -1 with errno kept. */
static int lsock_bind(const struct sockaddr_storage *ss, socklen_t sl, int reuseport)
{
	int one = 1, fd;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Every socket of a SO_REUSEPORT group must set it before bind(), and
	 * the kernel only groups sockets of the same effective user: all of
	 * them are bound here, before privileges are dropped. */
	if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		return lsock_fail(fd);
	/* "::" must not also take the IPv4 port: 0.0.0.0 is bound by its own
	 * socket. */
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0)
		return lsock_fail(fd);
	return fd;
}

/* Opens, binds and listens one socket; returns it, or -1 with errno kept. */
static int lsock_open(const struct sockaddr_storage *ss, socklen_t sl, int reuseport, int backlog)
{
	int fd = lsock_bind(ss, sl, reuseport);

	if (fd >= 0 && listen(fd, backlog) < 0)
		return lsock_fail(fd);
	return fd;
}

/*
 * SO_REUSEPORT lets any process of the same user that also sets it bind a
 * port that is already listening, and take a share of its connections. A
 * second instance of the same colour started by mistake would do exactly
 * that, silently. So before the group is created, one plain socket (no
 * SO_REUSEPORT) is bound to the address: the kernel refuses it with
 * EADDRINUSE if anything listens there, as it refuses a shared listener.
 * Returns 0, or -1 with errno kept.
 */
static int lsock_probe(const struct sockaddr_storage *ss, socklen_t sl)
{
	int fd = lsock_bind(ss, sl, 0);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

int px_listen_open(struct px_proc *p, int nworkers, char *err, size_t errlen)
{
	const struct cfg *cfg = p->cfg;
	const struct cfg_instance *ins = &cfg->instances[p->colour];
	int reuseport = cfg->proxy.accept == CFG_ACCEPT_REUSEPORT;
	int per_addr = reuseport ? nworkers : 1;

	if (per_addr < 1 || per_addr > PX_MAX_THREADS) {
		snprintf(err, errlen, "%d workers: expected 1..%d", per_addr, PX_MAX_THREADS);
		return -1;
	}
	if (cfg->nlisteners * ins->nbind * per_addr > PX_MAX_LISTEN_FD) {
		snprintf(err, errlen,
		         "%d listening sockets needed (listeners x bind addresses%s), at most %d",
		         cfg->nlisteners * ins->nbind * per_addr, reuseport ? " x threads" : "",
		         PX_MAX_LISTEN_FD);
		return -1;
	}
	p->ngroups = cfg->nlisteners;
	p->global.max = cfg->proxy.maxconn;
	for (int l = 0; l < cfg->nlisteners; l++) {
		struct px_lgroup *g = &p->groups[l];
		snprintf(g->name, sizeof(g->name), "%s", cfg->listeners[l].name);
		g->idx = l;
		g->port = ins->ports[l];
		g->limit.max = cfg->listeners[l].maxconn;
		for (int b = 0; b < ins->nbind; b++) {
			struct sockaddr_storage ss;
			socklen_t sl = cfg_sockaddr(&ins->bind[b], g->port, &ss);
			int k;

			for (k = 0; k < per_addr; k++) {
				int fd = reuseport && k == 0 && lsock_probe(&ss, sl) < 0
				             ? -1
				             : lsock_open(&ss, sl, reuseport, cfg->proxy.backlog);

				if (fd < 0 && k == 0 && ss.ss_family == AF_INET6 &&
				    errno == EAFNOSUPPORT) {
					log_warnx("IPv6 is not available: not binding %s",
					          ins->bind[b].text);
					break;
				}
				if (fd < 0) {
					snprintf(err, errlen, "listener %s: bind %s port %u: %s",
					         g->name, ins->bind[b].text, g->port,
					         strerror(errno));
					return -1;
				}
				p->lsock[p->nlsock].fd = fd;
				p->lsock[p->nlsock].grp = g;
				p->lsock[p->nlsock].owner = reuseport ? k : -1;
				p->nlsock++;
			}
			if (k == per_addr)
				g->nbound++;
		}
	}
	return 0;
}

void px_listen_close(struct px_proc *p)
{
	for (int i = 0; i < p->nlsock; i++)
		if (p->lsock[i].fd >= 0) {
			close(p->lsock[i].fd);
			p->lsock[i].fd = -1;
		}
}
