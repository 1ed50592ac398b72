/*
 * loadgen: TLS load generator for the proxy benchmarks (bench/30-proxy.sh).
 *
 *   loadgen -c HOST:PORT -a CA -n NAMES [-k CONC] [-N TOTAL | -t SECS]
 *           [-r REQ_BYTES] [--bulk BYTES] [--idle N] [--tls13] [--seq]
 *
 * One thread, non-blocking sockets and epoll. Every connection picks a random
 * name from NAMES ("NAME FILE" lines, as gencerts writes), does a full TLS
 * handshake with that SNI (no session reuse), verifies the chain against CA
 * and that the certificate matches the name, sends REQ_BYTES, and reads the
 * same number of bytes back (an echo backend). Each kind of error is counted
 * on its own. Output, one line each: "key value".
 *
 * --seq: names in file order (one pass over NAMES with -N = its line count,
 *        e.g. to warm up every certificate once) instead of at random.
 * --bulk BYTES: one connection sends BYTES and reads them back; prints MB/s.
 * --idle N: opens N connections, completes one request on each, then holds
 *           them open until SIGTERM/SIGINT or -t SECS; prints "idle_ready N"
 *           as soon as all are established.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

enum lg_state { LG_CONNECT, LG_HANDSHAKE, LG_WRITE, LG_READ, LG_IDLE };
enum lg_err { E_CONNECT, E_HANDSHAKE, E_VERIFY, E_IO, E_REPLY, E_TIMEOUT, E__N };
static const char *const err_names[E__N] = {"err_connect", "err_handshake", "err_verify",
                                            "err_io",      "err_reply",     "err_timeout"};

struct lg_conn {
	int fd;
	SSL *ssl;
	enum lg_state st;
	size_t sent, got;
	double t0;
};

static SSL_CTX *ctx;
static struct addrinfo *dst;
static char **names;
static size_t nnames;
static unsigned char *req;
static size_t reqlen = 64;
static int ep;
static long done, errs[E__N], started, total = -1;
static volatile sig_atomic_t stop;
static int seq; /* names in file order instead of at random */

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_sig(int s)
{
	(void)s;
	stop = 1;
}

static void load_names(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t cap = 0;

	if (f == NULL) {
		perror(path);
		exit(2);
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, " \n")] = '\0';
		if (!line[0])
			continue;
		if (nnames == cap) {
			cap = cap ? cap * 2 : 1024;
			names = realloc(names, cap * sizeof(*names));
		}
		names[nnames++] = strdup(line);
	}
	fclose(f);
	if (nnames == 0) {
		fprintf(stderr, "loadgen: no names in %s\n", path);
		exit(2);
	}
}

static void conn_free(struct lg_conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

static int conn_start(void)
{
	struct lg_conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	uint32_t r;

	c->fd = socket(dst->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0) {
		free(c);
		errs[E_CONNECT]++;
		return -1;
	}
	c->t0 = now();
	started++;
	if (connect(c->fd, dst->ai_addr, dst->ai_addrlen) < 0 && errno != EINPROGRESS) {
		errs[E_CONNECT]++;
		close(c->fd);
		free(c);
		return -1;
	}
	RAND_bytes((unsigned char *)&r, sizeof(r));
	if (seq)
		r = (uint32_t)(started - 1);
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, names[r % nnames]);
	SSL_set1_host(c->ssl, names[r % nnames]);
	SSL_set_connect_state(c->ssl);
	c->st = LG_CONNECT;
	ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
	ev.data.ptr = c;
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
	return 0;
}

/* Returns 1 when the connection finished (freed), 2 when it became idle
 * (kept open), 0 to wait. */
static int conn_run(struct lg_conn *c, int idle_mode)
{
	unsigned char buf[65536];

	for (;;) {
		int n, e;
		switch (c->st) {
		case LG_CONNECT:
		case LG_HANDSHAKE:
			c->st = LG_HANDSHAKE;
			n = SSL_do_handshake(c->ssl);
			if (n == 1) {
				if (SSL_get_verify_result(c->ssl) != X509_V_OK) {
					errs[E_VERIFY]++;
					conn_free(c);
					return 1;
				}
				c->st = LG_WRITE;
				continue;
			}
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			errs[SSL_get_verify_result(c->ssl) != X509_V_OK ? E_VERIFY : E_HANDSHAKE]++;
			ERR_clear_error();
			conn_free(c);
			return 1;
		case LG_WRITE:
			n = SSL_write(c->ssl, req + c->sent, (int)(reqlen - c->sent));
			if (n > 0) {
				c->sent += (size_t)n;
				if (c->sent == reqlen)
					c->st = LG_READ;
				continue;
			}
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			errs[E_IO]++;
			ERR_clear_error();
			conn_free(c);
			return 1;
		case LG_READ:
			n = SSL_read(c->ssl, buf, sizeof(buf));
			if (n > 0) {
				if (memcmp(buf, req + c->got, (size_t)n) != 0) {
					errs[E_REPLY]++;
					conn_free(c);
					return 1;
				}
				c->got += (size_t)n;
				if (c->got == reqlen) {
					done++;
					if (idle_mode) {
						c->st = LG_IDLE;
						return 2;
					}
					SSL_shutdown(c->ssl);
					conn_free(c);
					return 1;
				}
				continue;
			}
			e = SSL_get_error(c->ssl, n);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return 0;
			errs[e == SSL_ERROR_ZERO_RETURN ? E_REPLY : E_IO]++;
			ERR_clear_error();
			conn_free(c);
			return 1;
		case LG_IDLE:
			return 0;
		}
	}
}

static int bulk(long bytes)
{
	struct lg_conn *c = calloc(1, sizeof(*c));
	unsigned char *chunk = malloc(65536);
	long sent = 0, got = 0;
	double t0;

	RAND_bytes(chunk, 65536);
	c->fd = socket(dst->ai_family, SOCK_STREAM, 0);
	if (connect(c->fd, dst->ai_addr, dst->ai_addrlen) < 0) {
		perror("connect");
		return 1;
	}
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	SSL_set_tlsext_host_name(c->ssl, names[0]);
	SSL_set1_host(c->ssl, names[0]);
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
	t0 = now();
	while (got < bytes) {
		unsigned char buf[65536];
		int progress = 0, n;
		if (sent < bytes) {
			n = SSL_write(c->ssl, chunk,
			              (int)(bytes - sent < 65536 ? bytes - sent : 65536));
			if (n > 0) {
				sent += n;
				progress = 1;
			}
		}
		n = SSL_read(c->ssl, buf, sizeof(buf));
		if (n > 0) {
			got += n;
			progress = 1;
		} else if (SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ &&
		           SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_WRITE) {
			fprintf(stderr, "bulk: read error after %ld\n", got);
			return 1;
		}
		if (!progress) {
			fd_set r, w;
			FD_ZERO(&r);
			FD_ZERO(&w);
			FD_SET(c->fd, &r);
			if (sent < bytes)
				FD_SET(c->fd, &w);
			select(c->fd + 1, &r, &w, NULL, NULL);
		}
	}
	double dt = now() - t0;
	printf("bulk_bytes %ld\nbulk_seconds %.3f\nbulk_MBps %.1f\n", bytes, dt, bytes / dt / 1e6);
	conn_free(c);
	free(chunk);
	return 0;
}

int main(int argc, char **argv)
{
	const char *hostport = NULL, *ca = NULL, *namesf = NULL;
	long conc = 50, bulkbytes = 0, idle = 0;
	double secs = 0;
	int tls13 = 0;
	char host[256], *port;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
	struct epoll_event evs[512];

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-c") && v)
			hostport = argv[++i];
		else if (!strcmp(a, "-a") && v)
			ca = argv[++i];
		else if (!strcmp(a, "-n") && v)
			namesf = argv[++i];
		else if (!strcmp(a, "-k") && v)
			conc = atol(argv[++i]);
		else if (!strcmp(a, "-N") && v)
			total = atol(argv[++i]);
		else if (!strcmp(a, "-t") && v)
			secs = atof(argv[++i]);
		else if (!strcmp(a, "-r") && v)
			reqlen = (size_t)atol(argv[++i]);
		else if (!strcmp(a, "--bulk") && v)
			bulkbytes = atol(argv[++i]);
		else if (!strcmp(a, "--idle") && v)
			idle = atol(argv[++i]);
		else if (!strcmp(a, "--tls13"))
			tls13 = 1;
		else if (!strcmp(a, "--seq"))
			seq = 1;
		else {
			fprintf(stderr,
			        "usage: loadgen -c HOST:PORT -a CA -n NAMES [-k CONC] [-N TOTAL "
			        "| -t SECS] [-r BYTES] [--bulk BYTES] [--idle N] [--tls13]\n");
			return 2;
		}
	}
	if (!hostport || !ca || !namesf)
		return 2;
	snprintf(host, sizeof(host), "%s", hostport);
	port = strrchr(host, ':');
	if (port == NULL)
		return 2;
	*port++ = '\0';
	if (getaddrinfo(host, port, &hints, &dst) != 0) {
		fprintf(stderr, "loadgen: cannot resolve %s\n", hostport);
		return 2;
	}
	load_names(namesf);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	ctx = SSL_CTX_new(TLS_client_method());
	if (tls13)
		SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		fprintf(stderr, "loadgen: cannot load %s\n", ca);
		return 2;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	req = malloc(reqlen);
	RAND_bytes(req, (int)reqlen);
	if (bulkbytes > 0)
		return bulk(bulkbytes);

	ep = epoll_create1(0);
	/* Idle mode ramps up with at most CONC connections in progress, like
	 * clients arriving over time; established ones stay open and no longer
	 * count against CONC. */
	if (idle > 0)
		total = idle;
	if (total < 0 && secs <= 0)
		total = 1000;
	double t0 = now(), tend = secs > 0 ? t0 + secs : 0;
	long active = 0;
	int announced = 0;
	while (!stop) {
		while (active < conc && (total < 0 || started < total) &&
		       (tend == 0 || now() < tend)) {
			if (conn_start() == 0)
				active++;
		}
		if (idle > 0 && done + errs[E_CONNECT] + errs[E_HANDSHAKE] + errs[E_VERIFY] +
		                        errs[E_IO] + errs[E_REPLY] >=
		                    idle) {
			if (!announced) {
				printf("idle_ready %ld\n", done);
				fflush(stdout);
				announced = 1;
			}
			if (tend && now() >= tend)
				break;
		} else if (active == 0 &&
		           ((total >= 0 && started >= total) || (tend && now() >= tend)))
			break;
		int n = epoll_wait(ep, evs, 512, 100);
		for (int i = 0; i < n; i++)
			if (conn_run(evs[i].data.ptr, idle > 0) != 0)
				active--;
	}
	double dt = now() - t0;
	long nerr = 0;
	printf("connections %ld\nseconds %.3f\nrate %.1f\n", done, dt, done / dt);
	for (int i = 0; i < E__N; i++) {
		printf("%s %ld\n", err_names[i], errs[i]);
		nerr += errs[i];
	}
	return nerr ? 1 : 0;
}
