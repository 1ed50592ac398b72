/*
 * nfecho: the tiny TCP server and client the netfilter tests use to see where
 * a REDIRECT sends a connection.
 *
 *   nfecho serve PORT...    listens on 0.0.0.0 and [::] (v6only) on each PORT;
 *                           greets every connection with its own local port
 *                           ("8443\n") and answers each line L with "8443 L".
 *   nfecho client           reads commands on stdin, one reply line each:
 *                             open ADDR PORT  -> "ok ID GREETING" | "err WHY"
 *                             send ID TEXT    -> "ok REPLY" | "err WHY"
 *                             close ID        -> "ok"
 *
 * Every wait is bounded (5 s), so a broken redirect fails a test instead of
 * hanging it. Only for loopback and test namespaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD     1024
#define MAXCONN   256
#define WAIT_MS   5000
#define LINE_MAX_ 512

static int listen_on(int af, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (void *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (void *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sl = sizeof(*sin6);
	}
	fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (af == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (void *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (void *)&ss, &sl) < 0)
		return 0;
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int serve(int nports, char **ports)
{
	struct pollfd pfd[MAXFD];
	int nlisten = 0, n;

	for (int i = 0; i < nports; i++) {
		int p = atoi(ports[i]);

		for (int af = 0; af < 2; af++) {
			int fd = listen_on(af ? AF_INET6 : AF_INET, (uint16_t)p);

			if (fd < 0) {
				fprintf(stderr, "nfecho: listen on port %d: %s\n", p,
				        strerror(errno));
				return 1;
			}
			pfd[nlisten].fd = fd;
			pfd[nlisten++].events = POLLIN;
		}
	}
	n = nlisten;
	for (;;) {
		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		for (int i = 0; i < n; i++) {
			char buf[LINE_MAX_], out[LINE_MAX_ + 16];
			ssize_t r;
			int len;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (i < nlisten) {
				int c = accept4(pfd[i].fd, NULL, NULL, SOCK_CLOEXEC);

				if (c < 0)
					continue;
				if (n >= MAXFD) {
					close(c);
					continue;
				}
				len = snprintf(out, sizeof(out), "%u\n", local_port(c));
				if (write(c, out, (size_t)len) != len) {
					close(c);
					continue;
				}
				pfd[n].fd = c;
				pfd[n].events = POLLIN;
				pfd[n++].revents = 0;
				continue;
			}
			r = read(pfd[i].fd, buf, sizeof(buf) - 1);
			if (r <= 0) {
				close(pfd[i].fd);
				pfd[i--] = pfd[--n];
				continue;
			}
			buf[r] = '\0';
			len = snprintf(out, sizeof(out), "%u %s", local_port(pfd[i].fd), buf);
			if (len > (int)sizeof(out) - 1)
				len = (int)sizeof(out) - 1;
			if (write(pfd[i].fd, out, (size_t)len) != len) {
				close(pfd[i].fd);
				pfd[i--] = pfd[--n];
			}
		}
	}
}

/* Reads one line (without the newline) within WAIT_MS. */
static int read_line(int fd, char *out, size_t len)
{
	size_t used = 0;

	while (used + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&p, 1, WAIT_MS) <= 0)
			return -1;
		r = read(fd, out + used, 1);
		if (r <= 0)
			return -1;
		if (out[used] == '\n')
			break;
		used++;
	}
	out[used] = '\0';
	return 0;
}

static int connect_to(const char *addr, int port)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, af;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		af = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
		af = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
		sl = sizeof(struct sockaddr_in6);
	} else {
		errno = EINVAL;
		return -1;
	}
	ss.ss_family = (sa_family_t)af;
	fd = socket(af, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A blocking connect to a namespace address fails fast (RST) or
	 * succeeds; SO_SNDTIMEO bounds the SYN retries. */
	{
		struct timeval tv = {.tv_sec = WAIT_MS / 1000};

		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (connect(fd, (void *)&ss, sl) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int client(void)
{
	int conns[MAXCONN];
	int nconns = 0;
	char line[LINE_MAX_];

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		char a[128], text[LINE_MAX_], reply[LINE_MAX_];
		int port, id;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "open %127s %d", a, &port) == 2) {
			int fd;

			if (nconns >= MAXCONN) {
				printf("err too many connections\n");
				continue;
			}
			fd = connect_to(a, port);
			if (fd < 0) {
				printf("err connect: %s\n", strerror(errno));
				continue;
			}
			if (read_line(fd, reply, sizeof(reply)) < 0) {
				close(fd);
				printf("err no greeting\n");
				continue;
			}
			conns[nconns] = fd;
			printf("ok %d %s\n", nconns++, reply);
		} else if (sscanf(line, "send %d %511[^\n]", &id, text) == 2) {
			size_t tl = strlen(text);

			if (id < 0 || id >= nconns || conns[id] < 0) {
				printf("err no connection %d\n", id);
				continue;
			}
			text[tl++] = '\n';
			if (write(conns[id], text, tl) != (ssize_t)tl ||
			    read_line(conns[id], reply, sizeof(reply)) < 0) {
				printf("err connection %d broken\n", id);
				continue;
			}
			printf("ok %s\n", reply);
		} else if (sscanf(line, "close %d", &id) == 1) {
			if (id >= 0 && id < nconns && conns[id] >= 0) {
				close(conns[id]);
				conns[id] = -1;
			}
			printf("ok\n");
		} else {
			printf("err unknown command\n");
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 3 && strcmp(argv[1], "serve") == 0)
		return serve(argc - 2, argv + 2);
	if (argc == 2 && strcmp(argv[1], "client") == 0)
		return client();
	fprintf(stderr, "usage: nfecho serve PORT... | nfecho client\n");
	return 2;
}
