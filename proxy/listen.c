/*
 * listen: the instance's listening sockets, one per bind address and
 * service listener, shared by every worker (see worker.c).
 */
#include "proxy/px.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

int px_listen_open(struct px_proc *p, char *err, size_t errlen)
{
	const struct cfg *cfg = p->cfg;
	const struct cfg_instance *ins = &cfg->instances[p->colour];

	p->ngroups = cfg->nlisteners;
	p->global.max = cfg->proxy.maxconn;
	for (int l = 0; l < cfg->nlisteners; l++) {
		struct px_lgroup *g = &p->groups[l];
		snprintf(g->name, sizeof(g->name), "%s", cfg->listeners[l].name);
		g->port = ins->ports[l];
		g->limit.max = cfg->listeners[l].maxconn;
		for (int b = 0; b < ins->nbind; b++) {
			struct sockaddr_storage ss;
			socklen_t sl = cfg_sockaddr(&ins->bind[b], g->port, &ss);
			int one = 1, fd;

			if (p->nlsock == PX_MAX_LISTEN_FD) {
				snprintf(err, errlen, "too many listening sockets");
				return -1;
			}
			fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0 && ss.ss_family == AF_INET6 && errno == EAFNOSUPPORT) {
				log_warnx("IPv6 is not available: not binding %s",
				          ins->bind[b].text);
				continue;
			}
			if (fd < 0) {
				snprintf(err, errlen, "socket: %s", strerror(errno));
				return -1;
			}
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			/* "::" must not also take the IPv4 port: 0.0.0.0 is
			 * bound by its own socket. */
			if (ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *)&ss, sl) < 0 ||
			    listen(fd, cfg->proxy.backlog) < 0) {
				int e = errno;
				close(fd);
				snprintf(err, errlen, "listener %s: bind %s port %u: %s", g->name,
				         ins->bind[b].text, g->port, strerror(e));
				return -1;
			}
			p->lsock[p->nlsock].fd = fd;
			p->lsock[p->nlsock].grp = g;
			p->nlsock++;
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
