/*
 * tlsloop: a TLS client load loop for the flip tests and benchmarks.
 *
 *   tlsloop --addr IP --port P --ca CA.pem --names names.txt
 *           [--threads N] [--duration S] [--echo] [--long MS] [--json]
 *
 * Each of N threads opens a connection, sends a random name from names.txt
 * (first word of each line) as SNI, verifies the chain against CA.pem and
 * the certificate against the name, sends one request and checks the
 * response, then starts over, for S seconds (or until SIGINT/SIGTERM).
 * With --echo the request is a line that must come back unchanged (an echo
 * backend); otherwise it is an HTTP/1.1 GET whose response must be a 200.
 *
 * --long MS: each thread keeps ONE connection and sends a request every MS
 * milliseconds over it (HTTP keep-alive or echo) for the whole run; a
 * failure ends that thread. This is the long-lived-connection probe.
 *
 * Failures are counted by kind (connect refused, connect other, handshake,
 * verify, write, read, timeout, bad response), and the summary is printed
 * at the end (one line, or JSON with --json). Exit 0 when nothing failed.
 * The JSON also gives "last_failed_established_us": the wall-clock time
 * (CLOCK_REALTIME, µs) at which the latest of the connections that failed
 * after connect() had succeeded was established, or 0. A failover test
 * compares it with the moment the new rules were seen: no connection
 * established after that moment may fail.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

enum fail_kind {
	F_REFUSED,
	F_CONNECT,
	F_HANDSHAKE,
	F_VERIFY,
	F_WRITE,
	F_READ,
	F_TIMEOUT,
	F_RESPONSE,
	F_NKINDS
};
static const char *kind_names[F_NKINDS] = {"connect_refused", "connect_other", "handshake",
                                           "verify",          "write",         "read",
                                           "timeout",         "bad_response"};

static struct {
	struct sockaddr_storage ss;
	socklen_t sslen;
	SSL_CTX *ctx;
	char **names;
	size_t nnames;
	int echo;
	int long_ms;
	int timeout_ms;
	int verbose;
} g;

static atomic_ullong n_ok, n_req;
static atomic_ullong n_fail[F_NKINDS];
static atomic_int stop_flag;
static atomic_ullong last_failed_established_us;

/* When this thread's current connection was established, or 0 before
 * connect() succeeds: count_fail() reads it to tell a failure of an
 * established connection from a refused one. */
static _Thread_local unsigned long long t_connected_us;

static unsigned long long realtime_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, 1);
}

static void count_fail(enum fail_kind k, const char *name, const char *detail)
{
	static atomic_int printed;

	atomic_fetch_add(&n_fail[k], 1);
	if (k >= F_HANDSHAKE && t_connected_us != 0) {
		unsigned long long seen = atomic_load(&last_failed_established_us);

		while (seen < t_connected_us &&
		       !atomic_compare_exchange_weak(&last_failed_established_us, &seen,
		                                     t_connected_us))
			;
	}
	if (atomic_fetch_add(&printed, 1) < 20)
		fprintf(stderr, "tlsloop: %s: %s (%s)\n", kind_names[k], name, detail);
}

static int io_kind(SSL *ssl, int r, int is_write)
{
	int e = SSL_get_error(ssl, r);

	if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
	    (errno == EAGAIN || errno == EWOULDBLOCK))
		return F_TIMEOUT;
	return is_write ? F_WRITE : F_READ;
}

/* Connects and handshakes; returns the SSL or NULL after counting. */
static SSL *open_conn(const char *name, int *fdp)
{
	struct timeval tv = {.tv_sec = g.timeout_ms / 1000,
	                     .tv_usec = (g.timeout_ms % 1000) * 1000};
	int fd = socket(g.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	SSL *ssl;

	if (fd < 0) {
		count_fail(F_CONNECT, name, strerror(errno));
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	t_connected_us = 0;
	if (connect(fd, (struct sockaddr *)&g.ss, g.sslen) < 0) {
		count_fail(errno == ECONNREFUSED                        ? F_REFUSED
		           : errno == EINPROGRESS || errno == ETIMEDOUT ? F_TIMEOUT
		                                                        : F_CONNECT,
		           name, strerror(errno));
		close(fd);
		return NULL;
	}
	t_connected_us = realtime_us();
	ssl = SSL_new(g.ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, name);
	SSL_set1_host(ssl, name);
	if (SSL_connect(ssl) != 1) {
		long vr = SSL_get_verify_result(ssl);
		char detail[256];

		if (vr != X509_V_OK) {
			snprintf(detail, sizeof(detail), "%s", X509_verify_cert_error_string(vr));
			count_fail(F_VERIFY, name, detail);
		} else {
			unsigned long e = ERR_peek_last_error();

			snprintf(detail, sizeof(detail), "%s",
			         e ? ERR_reason_error_string(e) : strerror(errno));
			count_fail(errno == EAGAIN ? F_TIMEOUT : F_HANDSHAKE, name, detail);
		}
		ERR_clear_error();
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return ssl;
}

static void close_conn(SSL *ssl, int fd)
{
	SSL_free(ssl);
	close(fd);
}

/* One request/response on ssl; keep_alive for HTTP in --long mode.
 * Returns 0 or -1 after counting. */
static int exchange(SSL *ssl, const char *name, int keep_alive, unsigned long seq)
{
	char req[512], buf[16384];
	size_t len = 0;
	int n;

	if (g.echo)
		n = snprintf(req, sizeof(req), "PING %s %lu\n", name, seq);
	else
		n = snprintf(req, sizeof(req),
		             "GET /?seq=%lu HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsloop\r\n%s\r\n",
		             seq, name, keep_alive ? "" : "Connection: close\r\n");
	if (SSL_write(ssl, req, n) != n) {
		count_fail(io_kind(ssl, -1, 1), name, "write");
		ERR_clear_error();
		return -1;
	}
	for (;;) {
		int r = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));

		if (r <= 0) {
			if (!g.echo && !keep_alive && len > 0)
				break; /* Connection: close ends the response */
			count_fail(r == 0 ? F_READ : (enum fail_kind)io_kind(ssl, r, 0), name,
			           len ? "truncated response" : "no response");
			ERR_clear_error();
			return -1;
		}
		len += (size_t)r;
		buf[len] = '\0';
		if (g.echo) {
			if (len >= (size_t)n)
				break;
			continue;
		}
		char *hend = strstr(buf, "\r\n\r\n");
		if (hend != NULL && keep_alive) {
			char *cl = strcasestr(buf, "\r\nContent-Length:");
			size_t body = cl != NULL && cl < hend ? strtoul(cl + 17, NULL, 10) : 0;

			if (len >= (size_t)(hend + 4 - buf) + body)
				break;
		}
		if (len >= sizeof(buf) - 1) {
			if (keep_alive) {
				count_fail(F_RESPONSE, name, "response too large");
				return -1;
			}
			len = 0; /* Connection: close: just drain */
		}
	}
	if (g.echo ? memcmp(buf, req, (size_t)n) != 0
	           : (strncmp(buf, "HTTP/1.1 200", 12) != 0 &&
	              strncmp(buf, "HTTP/1.0 200", 12) != 0 && len != 0)) {
		char detail[64];

		snprintf(detail, sizeof(detail), "%.40s", buf);
		for (char *p = detail; *p; p++)
			if (*p == '\r' || *p == '\n')
				*p = ' ';
		count_fail(F_RESPONSE, name, detail);
		return -1;
	}
	atomic_fetch_add(&n_req, 1);
	return 0;
}

static void *worker(void *arg)
{
	unsigned int seed = (unsigned int)(uintptr_t)arg ^ (unsigned int)time(NULL);
	unsigned long seq = 0;

	while (!atomic_load(&stop_flag)) {
		const char *name = g.names[(size_t)rand_r(&seed) % g.nnames];
		int fd = -1;
		SSL *ssl = open_conn(name, &fd);

		if (ssl == NULL) {
			if (g.long_ms > 0)
				return NULL;
			continue;
		}
		if (g.long_ms > 0) {
			/* One connection for the whole run. */
			while (!atomic_load(&stop_flag)) {
				if (exchange(ssl, name, 1, seq++) < 0) {
					close_conn(ssl, fd);
					return NULL;
				}
				usleep((useconds_t)g.long_ms * 1000);
			}
			atomic_fetch_add(&n_ok, 1);
			close_conn(ssl, fd);
			return NULL;
		}
		if (exchange(ssl, name, 0, seq++) == 0)
			atomic_fetch_add(&n_ok, 1);
		close_conn(ssl, fd);
	}
	return NULL;
}

static int load_names(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[1024];
	size_t cap = 0;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *w = strtok(line, " \t\r\n");

		if (w == NULL || w[0] == '#')
			continue;
		if (g.nnames == cap) {
			cap = cap ? cap * 2 : 1024;
			g.names = realloc(g.names, cap * sizeof(*g.names));
			if (g.names == NULL)
				return -1;
		}
		g.names[g.nnames++] = strdup(w);
	}
	fclose(f);
	return g.nnames > 0 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr, "usage: tlsloop --addr IP --port P --ca CA.pem --names FILE [--threads N] "
	                "[--duration S] [--echo] [--long MS] [--timeout MS] [--json]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"addr", required_argument, NULL, 'a'},
	                                     {"port", required_argument, NULL, 'p'},
	                                     {"ca", required_argument, NULL, 'C'},
	                                     {"names", required_argument, NULL, 'n'},
	                                     {"threads", required_argument, NULL, 't'},
	                                     {"duration", required_argument, NULL, 'd'},
	                                     {"echo", no_argument, NULL, 'e'},
	                                     {"long", required_argument, NULL, 'l'},
	                                     {"timeout", required_argument, NULL, 'T'},
	                                     {"json", no_argument, NULL, 'j'},
	                                     {NULL, 0, NULL, 0}};
	const char *addr = NULL, *ca = NULL, *names = NULL;
	int port = 0, threads = 8, json = 0, ch;
	double duration = 10;
	unsigned long long fails = 0;
	struct timespec t0, t1;
	pthread_t *tids;
	struct sigaction sa;

	g.timeout_ms = 10000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'p':
			port = atoi(optarg);
			break;
		case 'C':
			ca = optarg;
			break;
		case 'n':
			names = optarg;
			break;
		case 't':
			threads = atoi(optarg);
			break;
		case 'd':
			duration = atof(optarg);
			break;
		case 'e':
			g.echo = 1;
			break;
		case 'l':
			g.long_ms = atoi(optarg);
			break;
		case 'T':
			g.timeout_ms = atoi(optarg);
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage();
		}
	}
	if (addr == NULL || ca == NULL || names == NULL || port <= 0 || threads <= 0)
		usage();
	memset(&g.ss, 0, sizeof(g.ss));
	if (inet_pton(AF_INET, addr, &((struct sockaddr_in *)&g.ss)->sin_addr) == 1) {
		((struct sockaddr_in *)&g.ss)->sin_family = AF_INET;
		((struct sockaddr_in *)&g.ss)->sin_port = htons((uint16_t)port);
		g.sslen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, addr, &((struct sockaddr_in6 *)&g.ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&g.ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&g.ss)->sin6_port = htons((uint16_t)port);
		g.sslen = sizeof(struct sockaddr_in6);
	} else {
		fprintf(stderr, "tlsloop: bad address %s\n", addr);
		return 2;
	}
	if (load_names(names) < 0) {
		fprintf(stderr, "tlsloop: no names in %s\n", names);
		return 2;
	}
	g.ctx = SSL_CTX_new(TLS_client_method());
	if (g.ctx == NULL || SSL_CTX_load_verify_locations(g.ctx, ca, NULL) != 1) {
		fprintf(stderr, "tlsloop: cannot load CA %s\n", ca);
		return 2;
	}
	SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);
	/* Full handshakes every time: resumption would hide certificate
	 * problems and is not what the flip tests measure. */
	SSL_CTX_set_session_cache_mode(g.ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(g.ctx, SSL_OP_NO_TICKET);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	tids = calloc((size_t)threads, sizeof(*tids));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < threads; i++)
		pthread_create(&tids[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (atomic_load(&stop_flag) ||
		    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 >=
		        duration)
			break;
		usleep(50 * 1000);
	}
	atomic_store(&stop_flag, 1);
	for (int i = 0; i < threads; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (int k = 0; k < F_NKINDS; k++)
		fails += atomic_load(&n_fail[k]);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (json) {
		printf(
		    "{\"ok\":%llu,\"requests\":%llu,\"failed\":%llu,\"seconds\":%.2f,\"rate\":%.1f",
		    (unsigned long long)atomic_load(&n_ok), (unsigned long long)atomic_load(&n_req),
		    fails, secs, (double)atomic_load(&n_req) / secs);
		for (int k = 0; k < F_NKINDS; k++)
			printf(",\"%s\":%llu", kind_names[k],
			       (unsigned long long)atomic_load(&n_fail[k]));
		printf(",\"last_failed_established_us\":%llu}\n",
		       atomic_load(&last_failed_established_us));
	} else {
		printf(
		    "tlsloop: %llu connections ok, %llu requests, %llu failed in %.1f s (%.0f/s)",
		    (unsigned long long)atomic_load(&n_ok), (unsigned long long)atomic_load(&n_req),
		    fails, secs, (double)atomic_load(&n_req) / secs);
		for (int k = 0; k < F_NKINDS; k++)
			printf(" %s=%llu", kind_names[k],
			       (unsigned long long)atomic_load(&n_fail[k]));
		printf("\n");
	}
	SSL_CTX_free(g.ctx);
	return fails == 0 ? 0 : 1;
}
