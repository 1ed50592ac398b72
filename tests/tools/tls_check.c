/*
 * tls_check: a TLS test client for the proxy's integration tests.
 *
 *   tls_check names -c HOST:PORT -a CA -n NAMES [-m MAX]
 *       One handshake per "NAME FILE" line of NAMES (gencerts' names.txt),
 *       each with SNI NAME, verifying the chain against CA and the host name.
 *       Prints "names: N ok, N failed" and exits 0 only if all succeeded.
 *   tls_check echo -c HOST:PORT -a CA -s SNI -b BYTES -k CONNS [-H]
 *       CONNS concurrent connections each send BYTES random bytes through
 *       the proxy to an echo backend and check (SHA-256) that the same bytes
 *       come back. -H half-closes (close_notify) after sending and then
 *       expects every byte and a clean close from the proxy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

static const char *g_host, *g_port, *g_ca, *g_sni;
static long g_bytes = 1 << 20;
static int g_half;
static SSL_CTX *g_ctx;

static int tcp_connect(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
	int fd;

	if (getaddrinfo(g_host, g_port, &hints, &res) != 0)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static SSL *tls_open(const char *name, int *fdp)
{
	int fd = tcp_connect();
	SSL *ssl;

	if (fd < 0)
		return NULL;
	ssl = SSL_new(g_ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, name);
	SSL_set1_host(ssl, name);
	if (SSL_connect(ssl) != 1) {
		fprintf(stderr, "%s: handshake failed: ", name);
		ERR_print_errors_fp(stderr);
		long v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			fprintf(stderr, "  verify: %s\n", X509_verify_cert_error_string(v));
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	*fdp = fd;
	return ssl;
}

static int do_names(const char *file, long max)
{
	FILE *f = fopen(file, "r");
	char line[1024];
	long ok = 0, bad = 0;

	if (f == NULL) {
		perror(file);
		return 2;
	}
	while (fgets(line, sizeof(line), f) && ok + bad < max) {
		char *sp = strchr(line, ' ');
		int fd;
		if (sp == NULL)
			continue;
		*sp = '\0';
		SSL *ssl = tls_open(line, &fd);
		if (ssl == NULL) {
			bad++;
			continue;
		}
		SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
		ok++;
	}
	fclose(f);
	printf("names: %ld ok, %ld failed\n", ok, bad);
	return bad == 0 && ok > 0 ? 0 : 1;
}

static void *echo_one(void *arg)
{
	long *result = arg;
	unsigned char *data = malloc((size_t)g_bytes), buf[16384];
	unsigned char h1[32], h2[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	long sent = 0, got = 0;
	int fd, shut = 0, eof = 0;
	SSL *ssl;

	*result = -1;
	RAND_bytes(data, (int)g_bytes);
	EVP_Digest(data, (size_t)g_bytes, h1, NULL, EVP_sha256(), NULL);
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	ssl = tls_open(g_sni, &fd);
	if (ssl == NULL)
		goto out;
	/* Non-blocking from here so that sending and receiving interleave:
	 * the proxy's buffers are bounded, so a client that only writes would
	 * stall once they fill (that is the backpressure under test). */
	BIO_socket_nbio(fd, 1);
	while (!eof) {
		int progress = 0;
		if (sent < g_bytes) {
			int n = SSL_write(ssl, data + sent,
			                  (int)(g_bytes - sent > 16384 ? 16384 : g_bytes - sent));
			if (n > 0) {
				sent += n;
				progress = 1;
			} else if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_WRITE &&
			           SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ) {
				fprintf(stderr, "write error\n");
				goto out;
			}
		} else if (g_half && !shut) {
			int r = SSL_shutdown(ssl);
			if (r >= 0)
				shut = 1;
			progress = 1;
		}
		int n = SSL_read(ssl, buf, sizeof(buf));
		if (n > 0) {
			EVP_DigestUpdate(md, buf, (size_t)n);
			got += n;
			progress = 1;
			if (!g_half && got == g_bytes)
				break;
		} else {
			int e = SSL_get_error(ssl, n);
			if (e == SSL_ERROR_ZERO_RETURN) {
				eof = 1;
			} else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
				fprintf(stderr, "read error after %ld bytes (err %d)\n", got, e);
				ERR_print_errors_fp(stderr);
				goto out;
			}
		}
		if (!progress && !eof) {
			struct pollfd p = {.fd = fd,
			                   .events = POLLIN | (sent < g_bytes ? POLLOUT : 0)};
			if (poll(&p, 1, 20000) == 0) {
				fprintf(stderr, "stalled: sent %ld got %ld\n", sent, got);
				goto out;
			}
		}
	}
	EVP_DigestFinal_ex(md, h2, NULL);
	if (got != g_bytes || memcmp(h1, h2, 32) != 0) {
		fprintf(stderr, "mismatch: sent %ld got %ld\n", sent, got);
		goto out;
	}
	*result = got;
out:
	if (ssl) {
		if (!g_half)
			SSL_shutdown(ssl);
		SSL_free(ssl);
		close(fd);
	}
	EVP_MD_CTX_free(md);
	free(data);
	return NULL;
}

static int do_echo(int conns)
{
	pthread_t t[256];
	long res[256];
	int bad = 0;

	if (conns > 256)
		conns = 256;
	for (int i = 0; i < conns; i++)
		pthread_create(&t[i], NULL, echo_one, &res[i]);
	for (int i = 0; i < conns; i++) {
		pthread_join(t[i], NULL);
		if (res[i] != g_bytes)
			bad++;
	}
	printf("echo: %d ok, %d failed (%ld bytes each%s)\n", conns - bad, bad, g_bytes,
	       g_half ? ", half-close" : "");
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	const char *mode, *names = NULL;
	long max = 1L << 30;
	int conns = 1, opt;
	char *colon, hostbuf[256];

	if (argc < 2) {
		fprintf(stderr, "usage: tls_check names|echo ...\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "c:a:n:m:s:b:k:H")) != -1) {
		switch (opt) {
		case 'c':
			snprintf(hostbuf, sizeof(hostbuf), "%s", optarg);
			colon = strrchr(hostbuf, ':');
			if (colon == NULL)
				return 2;
			*colon = '\0';
			g_host = hostbuf;
			g_port = colon + 1;
			break;
		case 'a':
			g_ca = optarg;
			break;
		case 'n':
			names = optarg;
			break;
		case 'm':
			max = atol(optarg);
			break;
		case 's':
			g_sni = optarg;
			break;
		case 'b':
			g_bytes = atol(optarg);
			break;
		case 'k':
			conns = atoi(optarg);
			break;
		case 'H':
			g_half = 1;
			break;
		default:
			return 2;
		}
	}
	if (g_host == NULL || g_ca == NULL)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	g_ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_load_verify_locations(g_ctx, g_ca, NULL);
	SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
	if (strcmp(mode, "names") == 0 && names)
		return do_names(names, max);
	if (strcmp(mode, "echo") == 0 && g_sni)
		return do_echo(conns);
	return 2;
}
