/*
 * tls_check: a TLS test client for the proxy's integration tests.
 *
 *   tls_check names -c HOST:PORT -a CA -n NAMES [-m MAX] [-d CERTDIR] [-r] [-x]
 *                   [-N] [-t MS] [-j THREADS]
 *       One handshake per "NAME FILE" line of NAMES (gencerts' names.txt),
 *       each with SNI NAME, verifying the chain against CA and the host name.
 *       Prints "names: N ok, N failed, N with two intermediates, slowest N ms"
 *       and exits 0 only if all succeeded.
 *       -d CERTDIR: the served leaf must be the first certificate of
 *          CERTDIR/FILE (FILE may also be given as -f FILE for every line).
 *       -r: an RSA-only client (its signature_algorithms offer no ECDSA).
 *       -x: every name must be refused with an unrecognized_name alert.
 *       -N: no host name check (the default certificate answers any name).
 *       -t MS: a handshake (or refusal) slower than MS counts as failed.
 *       -j THREADS: spread the lines over THREADS client threads.
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
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

/* Options of the names mode. */
static const char *g_certdir, *g_file;
static int g_rsa_only, g_expect_refused, g_no_host;
static long g_max_ms;

struct names_job {
	char **lines;
	long from, to, step;
	long ok, bad, two_int, slowest_ms;
};

static double mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Whether the leaf the server sent is the first certificate of file. */
static int leaf_is(SSL *ssl, const char *file)
{
	char path[4096];
	X509 *want, *got = SSL_get0_peer_certificate(ssl);
	FILE *f;
	int same;

	snprintf(path, sizeof(path), "%s/%s", g_certdir, file);
	f = fopen(path, "r");
	if (f == NULL) {
		perror(path);
		return 0;
	}
	want = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	same = want != NULL && got != NULL && X509_cmp(want, got) == 0;
	if (!same)
		fprintf(stderr, "served leaf is not the first certificate of %s\n", path);
	X509_free(want);
	return same;
}

/* One line: returns 1 when the outcome is the expected one. */
static int names_one(struct names_job *j, char *line)
{
	char *sp = strchr(line, ' ');
	const char *file;
	int fd, ok = 0;
	long reason;
	double t0 = mono_ms(), ms;
	SSL *ssl;

	line[strcspn(line, "\r\n")] = '\0';
	if (sp != NULL)
		*sp = '\0';
	file = g_file != NULL ? g_file : sp != NULL ? sp + 1 : NULL;
	fd = tcp_connect();
	if (fd < 0) {
		fprintf(stderr, "%s: cannot connect\n", line);
		return 0;
	}
	ssl = SSL_new(g_ctx);
	SSL_set_fd(ssl, fd);
	if (line[0] != '\0')
		SSL_set_tlsext_host_name(ssl, line);
	if (!g_no_host)
		SSL_set1_host(ssl, line);
	if (SSL_connect(ssl) == 1) {
		STACK_OF(X509) *chain = SSL_get0_verified_chain(ssl);

		if (g_expect_refused)
			fprintf(stderr, "%s: served, expected a refusal\n", line);
		else
			ok = g_certdir == NULL || (file != NULL && leaf_is(ssl, file));
		/* leaf, two intermediates, root */
		if (chain != NULL && sk_X509_num(chain) == 4)
			j->two_int++;
		SSL_shutdown(ssl);
	} else {
		reason = ERR_GET_REASON(ERR_peek_last_error());
		if (g_expect_refused) {
			ok = reason == SSL_R_TLSV1_UNRECOGNIZED_NAME;
			if (!ok) {
				fprintf(stderr,
				        "%s: refused, but not with unrecognized_name: ", line);
				ERR_print_errors_fp(stderr);
			}
		} else {
			long v = SSL_get_verify_result(ssl);

			fprintf(stderr, "%s: handshake failed: ", line);
			ERR_print_errors_fp(stderr);
			if (v != X509_V_OK)
				fprintf(stderr, "  verify: %s\n", X509_verify_cert_error_string(v));
		}
		ERR_clear_error();
	}
	SSL_free(ssl);
	close(fd);
	ms = mono_ms() - t0;
	if ((long)ms > j->slowest_ms)
		j->slowest_ms = (long)ms;
	if (g_max_ms > 0 && ms > (double)g_max_ms) {
		fprintf(stderr, "%s: took %.0f ms, over %ld ms\n", line, ms, g_max_ms);
		ok = 0;
	}
	return ok;
}

static void *names_thread(void *arg)
{
	struct names_job *j = arg;

	for (long i = j->from; i < j->to; i += j->step) {
		if (names_one(j, j->lines[i]))
			j->ok++;
		else
			j->bad++;
	}
	return NULL;
}

static int do_names(const char *file, long max, int threads)
{
	FILE *f = fopen(file, "r");
	char line[1024], **lines = NULL;
	long n = 0, ok = 0, bad = 0, two = 0, slowest = 0;
	struct names_job jobs[64];
	pthread_t t[64];

	if (f == NULL) {
		perror(file);
		return 2;
	}
	while (n < max && fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '\n' || line[0] == '#')
			continue;
		lines = realloc(lines, sizeof(*lines) * (size_t)(n + 1));
		if (lines == NULL || (lines[n] = strdup(line)) == NULL)
			return 2;
		n++;
	}
	fclose(f);
	if (threads < 1)
		threads = 1;
	if (threads > 64)
		threads = 64;
	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct names_job){.lines = lines, .from = i, .to = n, .step = threads};
		pthread_create(&t[i], NULL, names_thread, &jobs[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		ok += jobs[i].ok;
		bad += jobs[i].bad;
		two += jobs[i].two_int;
		if (jobs[i].slowest_ms > slowest)
			slowest = jobs[i].slowest_ms;
	}
	for (long i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	printf("names: %ld ok, %ld failed, %ld with two intermediates, slowest %ld ms\n", ok, bad,
	       two, slowest);
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
	int conns = 1, threads = 1, opt;
	char *colon, hostbuf[256];

	if (argc < 2) {
		fprintf(stderr, "usage: tls_check names|echo ...\n");
		return 2;
	}
	mode = argv[1];
	optind = 2;
	while ((opt = getopt(argc, argv, "c:a:n:m:s:b:k:Hd:f:rxNt:j:")) != -1) {
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
		case 'd':
			g_certdir = optarg;
			break;
		case 'f':
			g_file = optarg;
			break;
		case 'r':
			g_rsa_only = 1;
			break;
		case 'x':
			g_expect_refused = 1;
			break;
		case 'N':
			g_no_host = 1;
			break;
		case 't':
			g_max_ms = atol(optarg);
			break;
		case 'j':
			threads = atoi(optarg);
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
	/* No ECDSA scheme offered: the proxy must pick the RSA certificate. */
	if (g_rsa_only && !SSL_CTX_set1_sigalgs_list(
	                      g_ctx, "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:"
	                             "rsa_pss_rsae_sha512:rsa_pkcs1_sha256:rsa_pkcs1_sha384"))
		return 2;
	if (strcmp(mode, "names") == 0 && names)
		return do_names(names, max, threads);
	if (strcmp(mode, "echo") == 0 && g_sni)
		return do_echo(conns);
	return 2;
}
