/*
 * certload: loads a certificate directory the way the proxy does
 * (cert_store_load) and prints wall time, RSS growth and memory per
 * certificate.
 *
 *   certload DIR [--threads N] [--expect-loaded N]
 *            [--delta NEWFILE TARGET]  also time reloads after TARGET (a
 *                                      file name in DIR) is replaced by
 *                                      NEWFILE (rename into place) and after
 *                                      it is restored, DELTA_REPS times
 *                                      (env, default 9): median and worst
 *            [--alternate DIR2]        also time reloads that alternate
 *                                      between DIR2 and DIR (two sets that
 *                                      differ by a few files, e.g. two
 *                                      certsync sets), DELTA_REPS times
 *            [--handshakes N]          time N TLS handshakes served from the
 *                                      store vs from default-context objects
 *            [--materialize]           cert_item_use() every item once and
 *                                      print the RSS after
 *            [--serve-all]             serve one real TLS handshake from
 *                                      every item and print the RSS after
 *                                      ("RSS after every cert served once")
 *            [--cache N]               leaf cache limit (default
 *                                      CERT_LEAF_CACHE_DEFAULT; 0 = none)
 *            [--lookups HITS MISSES]   ns of CPU per cert_store_lookup for
 *                                      the names of HITS (each must be
 *                                      found) and of MISSES (none may be;
 *                                      first word of each line)
 *   certload --exec CMD [ARGS...]      run CMD, print its wall time and max RSS
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "certstore/cert.h"

/* CPU time of this thread: the handshake loop runs on one thread, and CPU
 * time is what other work on a shared machine does not inflate. */
static double thread_cpu(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* VmRSS of this process in KiB. */
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static double cpu_s(const struct rusage *ru)
{
	return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
	       (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static int run_exec(char **argv)
{
	struct rusage ru;
	double t0 = now();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 1;
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 1;
	printf("exec: %s: exit %d, wall %.3f s, CPU %.3f s, max RSS %.1f MB\n", argv[0],
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1, now() - t0, cpu_s(&ru),
	       (double)ru.ru_maxrss / 1024.0);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

static int spit(const char *path, const char *buf, size_t len)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.certload-tmp", path);
	f = fopen(tmp, "wb");
	if (f == NULL)
		return -1;
	if (fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * The delta-load figure: TARGET is replaced by NEWFILE (written beside it and
 * renamed into place, as certsync and most deploy tools do) and the store
 * reloaded, then TARGET is restored and reloaded again, `reps` times. Each
 * reload starts from the store the previous one produced, as in a proxy that
 * reloads all day. Prints the median and the worst of the reloads that saw
 * one changed file, and checks that each saw exactly one changed name.
 */
static int delta_reps(struct cert_store *st, const char *dir, const struct cert_opts *opts,
                      const char *src, const char *dst)
{
	const char *e = getenv("DELTA_REPS");
	int reps = e != NULL && atoi(e) > 0 ? atoi(e) : 9, bad = 0;
	double *wall = calloc((size_t)reps * 2, sizeof(*wall)), *cpu = wall + reps;
	char path[4200];
	size_t olen = 0, nlen = 0;
	char *orig, *repl;
	struct cert_store *cur = cert_store_ref(st);

	snprintf(path, sizeof(path), "%s/%s", dir, dst);
	orig = slurp(path, &olen);
	repl = slurp(src, &nlen);
	if (wall == NULL || orig == NULL || repl == NULL) {
		fprintf(stderr, "certload: cannot read %s or %s\n", path, src);
		return -1;
	}
	for (int r = 0; r < reps * 2; r++) {
		struct cert_report *rep = NULL;
		struct rusage ru0, ru1;
		struct cert_store *n2;
		double t0, t1;

		if (spit(path, r % 2 == 0 ? repl : orig, r % 2 == 0 ? nlen : olen) < 0) {
			fprintf(stderr, "certload: cannot write %s\n", path);
			return -1;
		}
		getrusage(RUSAGE_SELF, &ru0);
		t0 = now();
		n2 = cert_store_reload(cur, dir, opts, &rep);
		t1 = now();
		getrusage(RUSAGE_SELF, &ru1);
		if (n2 == NULL || cert_report_nchanged(rep) != 1)
			bad++;
		wall[r / 2] += r % 2 == 0 ? (t1 - t0) * 1e3 : 0;
		cpu[r / 2] += r % 2 == 0 ? (cpu_s(&ru1) - cpu_s(&ru0)) * 1e3 : 0;
		cert_report_free(rep);
		if (n2 != NULL) {
			cert_store_unref(cur);
			cur = n2;
		}
	}
	qsort(wall, (size_t)reps, sizeof(*wall), cmp_double);
	qsort(cpu, (size_t)reps, sizeof(*cpu), cmp_double);
	printf("reload, 1 file changed (%d reps): median %.2f ms wall, worst %.2f ms; median %.2f "
	       "ms CPU%s\n",
	       reps, wall[reps / 2], wall[reps - 1], cpu[reps / 2],
	       bad ? "; SOME RELOADS DID NOT SEE EXACTLY ONE CHANGED NAME"
	           : ", 1 name changed each");
	cert_store_unref(cur);
	free(wall);
	free(orig);
	free(repl);
	return bad ? -1 : 0;
}

/*
 * The set-to-set figure: reloads alternate between two directories, as a
 * standby that certsync hands one new set after another. Each reload starts
 * from the store the previous one produced.
 */
static int alternate_reps(struct cert_store *st, const char *dir, const char *dir2,
                          const struct cert_opts *opts)
{
	const char *e = getenv("DELTA_REPS");
	int reps = e != NULL && atoi(e) > 0 ? atoi(e) : 9, bad = 0;
	double *wall = calloc((size_t)reps * 2, sizeof(*wall)), *cpu = wall + reps;
	struct cert_store *cur = cert_store_ref(st);
	size_t changed = 0;

	if (wall == NULL)
		return -1;
	for (int r = 0; r < reps; r++) {
		struct cert_report *rep = NULL;
		struct rusage ru0, ru1;
		struct cert_store *n2;
		double t0, t1;

		getrusage(RUSAGE_SELF, &ru0);
		t0 = now();
		n2 = cert_store_reload(cur, r % 2 == 0 ? dir2 : dir, opts, &rep);
		t1 = now();
		getrusage(RUSAGE_SELF, &ru1);
		if (n2 == NULL) {
			fprintf(stderr, "certload: %s\n", cert_report_fatal(rep));
			bad++;
		} else {
			changed = cert_report_nchanged(rep);
			cert_store_unref(cur);
			cur = n2;
		}
		wall[r] = (t1 - t0) * 1e3;
		cpu[r] = (cpu_s(&ru1) - cpu_s(&ru0)) * 1e3;
		cert_report_free(rep);
	}
	qsort(wall, (size_t)reps, sizeof(*wall), cmp_double);
	qsort(cpu, (size_t)reps, sizeof(*cpu), cmp_double);
	printf("reload, alternating with %s (%d reps): median %.2f ms wall, worst %.2f ms; median "
	       "%.2f ms CPU; %zu names changed in the last\n",
	       dir2, reps, wall[reps / 2], wall[reps - 1], cpu[reps / 2], changed);
	cert_store_unref(cur);
	free(wall);
	return bad ? -1 : 0;
}

/* ---- handshake measurement ---- */

struct hs_set {
	const struct cert_item **items; /* store path */
	X509 **leaf;                    /* default-context path */
	EVP_PKEY **key;
	STACK_OF(X509) * *chain;
	int n, cur, mode;
};

static int hello_cb(SSL *ssl, int *al, void *arg)
{
	struct hs_set *s = arg;
	int i = s->cur;

	(void)al;
	if (s->mode == 0)
		return cert_item_use(s->items[i], ssl) == 0 ? SSL_CLIENT_HELLO_SUCCESS
		                                            : SSL_CLIENT_HELLO_ERROR;
	return SSL_use_cert_and_key(ssl, s->leaf[i], s->key[i], s->chain[i], 1) == 1
	           ? SSL_CLIENT_HELLO_SUCCESS
	           : SSL_CLIENT_HELLO_ERROR;
}

static int one_handshake(SSL_CTX *sctx, SSL_CTX *cctx)
{
	SSL *s = SSL_new(sctx), *c = SSL_new(cctx);
	BIO *b1, *b2;
	int rc = -1, done_s = 0, done_c = 0;

	if (s == NULL || c == NULL || !BIO_new_bio_pair(&b1, 0, &b2, 0))
		goto out;
	SSL_set_bio(s, b1, b1);
	SSL_set_bio(c, b2, b2);
	SSL_set_accept_state(s);
	SSL_set_connect_state(c);
	SSL_set_tlsext_host_name(c, "bench.example");
	for (int i = 0; i < 20 && !(done_s && done_c); i++) {
		int r;

		if (!done_c) {
			r = SSL_do_handshake(c);
			if (r == 1)
				done_c = 1;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ)
				goto out;
		}
		if (!done_s) {
			r = SSL_do_handshake(s);
			if (r == 1)
				done_s = 1;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
				goto out;
		}
	}
	rc = done_s && done_c ? 0 : -1;
out:
	SSL_free(s);
	SSL_free(c);
	return rc;
}

static int handshakes(const char *dir, struct cert_store *st, int n)
{
	struct hs_set s;
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
	size_t nn = cert_store_nnames(st);
	int m = 0;

	memset(&s, 0, sizeof(s));
	if (sctx == NULL || cctx == NULL)
		return -1;
	s.n = nn < 500 ? (int)nn : 500;
	s.items = calloc((size_t)s.n, sizeof(*s.items));
	s.leaf = calloc((size_t)s.n, sizeof(*s.leaf));
	s.key = calloc((size_t)s.n, sizeof(*s.key));
	s.chain = calloc((size_t)s.n, sizeof(*s.chain));
	for (int i = 0; i < s.n; i++) {
		const char *name = cert_store_name_at(st, i * (nn / (size_t)s.n));
		const struct cert_item *it = cert_store_lookup(st, name, strlen(name), 1, NULL);
		char path[4200];
		FILE *f;

		if (it == NULL || name[0] == '*')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, cert_item_file(it));
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		s.leaf[m] = PEM_read_X509(f, NULL, NULL, NULL);
		s.chain[m] = sk_X509_new_null();
		for (X509 *x; (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL;)
			sk_X509_push(s.chain[m], x);
		ERR_clear_error();
		rewind(f);
		s.key[m] = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		if (s.leaf[m] == NULL || s.key[m] == NULL) {
			/* A .crt + .key pair: this comparison reads combined files only. */
			X509_free(s.leaf[m]);
			EVP_PKEY_free(s.key[m]);
			sk_X509_pop_free(s.chain[m], X509_free);
			s.leaf[m] = NULL;
			s.key[m] = NULL;
			s.chain[m] = NULL;
			continue;
		}
		s.items[m++] = it;
	}
	s.n = m;
	if (m == 0)
		return -1;
	SSL_CTX_set_client_hello_cb(sctx, hello_cb, &s);
	SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
	{
		/* cert_item_use() alone, on a cache hit and on a miss (the limit
		 * set to 0 so that every call decodes the leaf and the key).
		 * A miss also costs the key's export to the provider on its
		 * first signature, which only the handshake figures include. */
		struct cert_leaf_cache_stats cs;
		SSL *ssl = SSL_new(sctx);

		cert_leaf_cache_stats(&cs);
		for (int lim = 0; lim < 2 && ssl != NULL; lim++) {
			double t0;

			cert_leaf_cache_set_limit(lim == 0 ? cs.limit : 0);
			for (int i = 0; i < m; i++)
				cert_item_use(s.items[i], ssl); /* warm the cache */
			t0 = thread_cpu();
			for (int i = 0; i < n; i++)
				cert_item_use(s.items[i % m], ssl);
			printf("cert_item_use: %s: %.1f us CPU per call\n",
			       lim == 0 ? "cache hit " : "cache miss",
			       (thread_cpu() - t0) / n * 1e6);
		}
		cert_leaf_cache_set_limit(cs.limit);
		SSL_free(ssl);
	}
	for (int mode = 0; mode < 3; mode++) {
		struct cert_leaf_cache_stats cs;

		cert_leaf_cache_stats(&cs);
		/* Mode 2 serves from the store with the leaf cache off, so that
		 * every handshake pays a miss: the cost of a cache too small. */
		if (mode == 2)
			cert_leaf_cache_set_limit(0);
		for (int pass = 0; pass < 2; pass++) {
			double t0 = thread_cpu();
			int fails = 0;

			s.mode = mode == 2 ? 0 : mode;
			for (int i = 0; i < n; i++) {
				s.cur = i % m;
				if (one_handshake(sctx, cctx) < 0)
					fails++;
			}
			printf("handshakes: %-38s %s: %.1f us CPU per handshake (client+server), "
			       "%d failed, %d certs\n",
			       mode == 0   ? "store items, leaf cache"
			       : mode == 2 ? "store items, no cache (every one a miss)"
			                   : "default-libctx PEM_read objects",
			       pass == 0 ? "first use" : "warm     ", (thread_cpu() - t0) / n * 1e6,
			       fails, m);
			ERR_clear_error();
		}
		if (mode == 2)
			cert_leaf_cache_set_limit(cs.limit);
	}
	for (int i = 0; i < s.n; i++) {
		X509_free(s.leaf[i]);
		EVP_PKEY_free(s.key[i]);
		sk_X509_pop_free(s.chain[i], X509_free);
	}
	free(s.items);
	free(s.leaf);
	free(s.key);
	free(s.chain);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	return 0;
}

/* One real TLS handshake served from every item, as if every certificate
 * had had one client; prints the RSS growth since the load began. */
static void serve_all(struct cert_store *st, long r0)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
	size_t nn = cert_store_nnames(st);
	struct hs_set s;
	struct rusage ru0, ru1;
	struct cert_leaf_cache_stats cs;
	double t0 = now();
	int fails = 0;

	memset(&s, 0, sizeof(s));
	s.items = calloc(nn + 1, sizeof(*s.items));
	if (sctx == NULL || cctx == NULL || s.items == NULL)
		return;
	for (size_t i = 0; i < nn; i++) {
		const char *nm = cert_store_name_at(st, i);
		const struct cert_item *it = cert_store_lookup(st, nm, strlen(nm), 1, NULL);

		if (it != NULL)
			s.items[s.n++] = it;
	}
	SSL_CTX_set_client_hello_cb(sctx, hello_cb, &s);
	SSL_CTX_set_session_cache_mode(sctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(sctx, SSL_OP_NO_TICKET);
	getrusage(RUSAGE_SELF, &ru0);
	for (s.cur = 0; s.cur < s.n; s.cur++)
		if (one_handshake(sctx, cctx) < 0)
			fails++;
	getrusage(RUSAGE_SELF, &ru1);
	cert_leaf_cache_stats(&cs);
	printf("RSS after every cert served once: %d handshakes (%d failed) in %.1f s wall, "
	       "%.1f s CPU; RSS now +%.1f MB, %.2f KB per cert; leaf cache %zu/%zu, %lu misses, "
	       "%lu evictions\n",
	       s.n, fails, now() - t0, cpu_s(&ru1) - cpu_s(&ru0), (double)(rss_kb() - r0) / 1024.0,
	       s.n > 0 ? (double)(rss_kb() - r0) / (double)s.n : 0.0, cs.cached, cs.limit,
	       cs.misses, cs.evictions);
	ERR_clear_error();
	free(s.items);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

/* The first word of every line of path, for --lookups. */
static char **read_names(const char *path, size_t *n)
{
	FILE *f = fopen(path, "r");
	char line[1024], **v = NULL;

	*n = 0;
	if (f == NULL) {
		perror(path);
		return NULL;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char **nv;

		line[strcspn(line, " \t\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		nv = realloc(v, (*n + 1) * sizeof(*v));
		if (nv == NULL)
			break;
		v = nv;
		if ((v[*n] = strdup(line)) == NULL)
			break;
		(*n)++;
	}
	fclose(f);
	return v;
}

/*
 * ns of CPU per cert_store_lookup over the names of path in a fixed random
 * order, the best of nine passes of at least 500,000 lookups each (CPU time, which other work on a
 * shared machine does not inflate). want_hit says whether every name must be
 * found; a name that is not is counted in *wrong.
 */
static double lookup_ns(const struct cert_store *st, const char *path, int want_hit, size_t *n,
                        size_t *wrong)
{
	char **v = read_names(path, n);
	size_t *len, reps;
	double best = 0;

	*wrong = 0;
	if (v == NULL || *n == 0 || (len = malloc(*n * sizeof(*len))) == NULL)
		return -1;
	for (size_t i = 0; i < *n; i++) {
		int def = 0;

		len[i] = strlen(v[i]);
		if ((cert_store_lookup(st, v[i], len[i], CERT_LOOKUP_ECDSA_OK, &def) != NULL) !=
		    want_hit)
			(*wrong)++;
	}
	/* In file order, consecutive names (site1, site2, ...) hash close
	 * together and the lookups ride the cache; a fixed shuffle gives
	 * every set the random order real SNI traffic has. */
	for (size_t i = *n - 1, x = 88172645463325252u; i > 0; i--) {
		size_t j, tl;
		char *t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = x % (i + 1);
		t = v[i];
		v[i] = v[j];
		v[j] = t;
		tl = len[i];
		len[i] = len[j];
		len[j] = tl;
	}
	reps = 500000 / *n + 1;
	for (int pass = 0; pass < 9; pass++) {
		volatile uintptr_t sink = 0;
		double t0 = thread_cpu(), ns;

		for (size_t r = 0; r < reps; r++)
			for (size_t i = 0; i < *n; i++)
				sink += (uintptr_t)cert_store_lookup(st, v[i], len[i],
				                                     CERT_LOOKUP_ECDSA_OK, NULL);
		ns = (thread_cpu() - t0) * 1e9 / (double)(reps * *n);
		if (pass == 0 || ns < best)
			best = ns;
		(void)sink;
	}
	for (size_t i = 0; i < *n; i++)
		free(v[i]);
	free(v);
	free(len);
	return best;
}

/* --lookups HITS MISSES: prints ns per lookup for names that are found and
 * names that are not. Returns -1 if a list did not behave as named. */
static int lookups(const struct cert_store *st, const char *hits, const char *misses)
{
	size_t nh, nm, wh, wm;
	double h = lookup_ns(st, hits, 1, &nh, &wh), m = lookup_ns(st, misses, 0, &nm, &wm);

	printf("lookup: hit %.0f ns (%zu names), miss %.0f ns (%zu names), per cert_store_lookup, "
	       "CPU, best of 9\n",
	       h, nh, m, nm);
	if (h < 0 || m < 0 || wh > 0 || wm > 0) {
		fprintf(stderr, "certload: %zu hits not found, %zu misses found\n", wh, wm);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *delta_src = NULL, *delta_dst = NULL, *hits = NULL, *misses = NULL;
	const char *alt = NULL;
	struct cert_opts opts;
	struct cert_report *rep = NULL;
	struct cert_store *st;
	long r0, r1, expect = -1;
	int nhs = 0, materialize = 0, serve = 0;
	double t0, t1;
	struct rusage ru0, ru1;

	if (argc >= 3 && strcmp(argv[1], "--exec") == 0)
		return run_exec(argv + 2);
	cert_opts_defaults(&opts);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			opts.threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--expect-loaded") == 0 && i + 1 < argc)
			expect = atol(argv[++i]);
		else if (strcmp(argv[i], "--materialize") == 0)
			materialize = 1;
		else if (strcmp(argv[i], "--serve-all") == 0)
			serve = 1;
		else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc)
			cert_leaf_cache_set_limit((size_t)atol(argv[++i]));
		else if (strcmp(argv[i], "--handshakes") == 0 && i + 1 < argc)
			nhs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--lookups") == 0 && i + 2 < argc) {
			hits = argv[++i];
			misses = argv[++i];
		} else if (strcmp(argv[i], "--alternate") == 0 && i + 1 < argc) {
			alt = argv[++i];
		} else if (strcmp(argv[i], "--delta") == 0 && i + 2 < argc) {
			delta_src = argv[++i];
			delta_dst = argv[++i];
		} else if (dir == NULL && argv[i][0] != '-')
			dir = argv[i];
		else {
			fprintf(stderr,
			        "usage: certload DIR [--threads N] [--expect-loaded N] "
			        "[--delta NEWFILE TARGET] [--alternate DIR2] [--handshakes N]\n"
			        "               [--materialize]"
			        "               [--serve-all] [--cache N] [--lookups HITS MISSES]\n"
			        "       certload --exec CMD [ARGS...]\n");
			return 2;
		}
	}
	if (dir == NULL)
		return 2;
	/* Initialise libssl before measuring, as a running proxy has. */
	OPENSSL_init_ssl(0, NULL);
	r0 = rss_kb();
	getrusage(RUSAGE_SELF, &ru0);
	t0 = now();
	st = cert_store_load(dir, &opts, &rep);
	t1 = now();
	getrusage(RUSAGE_SELF, &ru1);
	r1 = rss_kb();
	if (st == NULL) {
		fprintf(stderr, "certload: %s\n", cert_report_fatal(rep));
		return 1;
	}
	printf("load: %s: %zu files, %zu loaded, %zu skipped, %zu names, threads %d: %.3f s "
	       "wall, %.3f s CPU, RSS +%.1f MB, %.2f KB per cert\n",
	       dir, cert_report_nfiles(rep), cert_report_nloaded(rep), cert_report_nskipped(rep),
	       cert_store_nnames(st), opts.threads, t1 - t0, cpu_s(&ru1) - cpu_s(&ru0),
	       (double)(r1 - r0) / 1024.0,
	       cert_report_nloaded(rep) > 0 ? (double)(r1 - r0) / (double)cert_report_nloaded(rep)
	                                    : 0.0);
	if (expect >= 0 && (long)cert_report_nloaded(rep) != expect) {
		fprintf(stderr, "certload: expected %ld loaded\n", expect);
		return 1;
	}
	cert_report_free(rep);

	{
		struct cert_store *n2;

		getrusage(RUSAGE_SELF, &ru0);
		t0 = now();
		n2 = cert_store_reload(st, dir, &opts, &rep);
		t1 = now();
		getrusage(RUSAGE_SELF, &ru1);
		printf("reload, nothing changed: %.2f ms wall, %.2f ms CPU, %zu names changed\n",
		       (t1 - t0) * 1e3, (cpu_s(&ru1) - cpu_s(&ru0)) * 1e3,
		       n2 != NULL ? cert_report_nchanged(rep) : 0);
		cert_report_free(rep);
		cert_store_unref(n2);
	}
	if (delta_src != NULL && delta_reps(st, dir, &opts, delta_src, delta_dst) < 0)
		return 1;
	if (alt != NULL && alternate_reps(st, dir, alt, &opts) < 0)
		return 1;
	if (materialize) {
		/* Every leaf decoded, as after each certificate served a
		 * handshake (the key's one-time provider export is not
		 * included). */
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		SSL *ssl = ctx != NULL ? SSL_new(ctx) : NULL;
		size_t used = 0;

		t0 = now();
		for (size_t i = 0; ssl != NULL && i < cert_store_nnames(st); i++) {
			const char *nm = cert_store_name_at(st, i);
			const struct cert_item *it = cert_store_lookup(st, nm, strlen(nm), 1, NULL);

			if (it != NULL && cert_item_use(it, ssl) == 0)
				used++;
		}
		printf(
		    "every item used once (no handshake): %zu items in %.3f s, RSS now +%.1f MB, %.2f KB per cert\n",
		    used, now() - t0, (double)(rss_kb() - r0) / 1024.0,
		    used > 0 ? (double)(rss_kb() - r0) / (double)used : 0.0);
		SSL_free(ssl);
		SSL_CTX_free(ctx);
	}
	if (hits != NULL && lookups(st, hits, misses) < 0)
		return 1;
	if (serve)
		serve_all(st, r0);
	if (nhs > 0 && handshakes(dir, st, nhs) < 0)
		fprintf(stderr, "certload: handshake measurement failed\n");
	t0 = now();
	cert_store_unref(st);
	printf("free: %.3f s\n", now() - t0);
	return 0;
}
