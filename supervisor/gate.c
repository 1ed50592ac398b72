/*
 * gate: the health gate run before every flip. It proves, with real TLS
 * handshakes on the standby's own port (never the service address, which
 * still leads to the live instance), that the standby serves exactly the
 * certificates on disk: for every name changed by its last reload (up to
 * supervisor.gate_changed_cap) plus supervisor.gate_sample random names.
 *
 * The expected fingerprint does not come from the instance: the supervisor
 * asks which file serves the name (`cert NAME`), parses that one file
 * itself and hashes its leaf. So an instance that claims one thing and
 * serves another, or still serves a stale copy of a file that changed on
 * disk, is refused. Only the sampled files are parsed, so the cost does not
 * grow with the size of the set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "certstore/cert.h"
#include "common/ctl.h"
#include "common/log.h"
#include "common/privs.h"
#include "supervisor/sv.h"

static void hex(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Parses exactly 64 hex digits into 32 bytes. */
static int unhex(const char *s, unsigned char out[32])
{
	for (int i = 0; i < 32; i++) {
		int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);

		if (lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return s[64] == '\0' ? 0 : -1;
}

/* One handshake with SNI sni to ss; fills the served leaf's SHA-256. */
static int handshake(SSL_CTX *ctx, const struct sockaddr_storage *ss, socklen_t sslen,
                     const char *sni, int timeout_ms, unsigned char sha[32], char *err,
                     size_t errlen)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int fd, rc = -1, one = 1;
	SSL *ssl = NULL;
	X509 *peer = NULL;
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	int len;

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* Blocking I/O with timeouts keeps the gate simple; it runs on the
	 * operation's own thread, never on the main loop. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)ss, sslen) < 0) {
		snprintf(err, errlen, "connect: %s", strerror(errno));
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, (char *)sni) != 1) {
		snprintf(err, errlen, "SSL_new failed");
		goto out;
	}
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_peek_last_error();

		snprintf(err, errlen, "handshake failed: %s",
		         e ? ERR_reason_error_string(e) : strerror(errno));
		goto out;
	}
	peer = SSL_get1_peer_certificate(ssl);
	if (peer == NULL) {
		snprintf(err, errlen, "no certificate served");
		goto out;
	}
	len = i2d_X509(peer, &der);
	if (len <= 0 || EVP_Digest(der, (size_t)len, sha, &mdlen, EVP_sha256(), NULL) != 1) {
		snprintf(err, errlen, "cannot hash the served certificate");
		goto out;
	}
	rc = 0;
	(void)SSL_shutdown(ssl);
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_free(peer);
	SSL_free(ssl);
	close(fd);
	return rc;
}

/* The address of the instance's own port: its first bind address, or
 * loopback when it binds to the wildcard. */
static socklen_t inst_addr(const struct cfg *cfg, enum cfg_colour c, struct sockaddr_storage *ss)
{
	const struct cfg_instance *ci = &cfg->instances[c];
	struct cfg_addr a;

	memset(&a, 0, sizeof(a));
	a.family = AF_INET;
	a.a.v4[0] = 127;
	a.a.v4[3] = 1;
	for (int i = 0; i < ci->nbind; i++) {
		static const uint8_t zero[16];

		if (ci->bind[i].family == AF_INET && memcmp(ci->bind[i].a.v4, zero, 4) != 0) {
			a = ci->bind[i];
			break;
		}
	}
	return cfg_sockaddr(&a, ci->ports[0], ss);
}

struct gate_name {
	char *name;
	int must_serve;
};

/* Checks one name; returns 0 on pass, 1 when absent (allowed), -1 on failure. */
static int check_name(struct sv *sv, enum cfg_colour c, SSL_CTX *ctx,
                      const struct sockaddr_storage *ss, socklen_t sslen, const char *certs_dir,
                      const struct cert_set_map *map, const struct gate_name *gn, char *err,
                      size_t errlen)
{
	char *reply = NULL, line[CTL_LINE_MAX], file[CFG_STR_MAX], path[2 * CFG_STR_MAX + 2];
	char claimed[80] = "", want_hex[65], got_hex[65], sni[300], e2[256];
	unsigned char want[32], got[32];
	struct json_doc *doc;
	int ok = 0, rc = -1, kept = 0;

	snprintf(line, sizeof(line), "cert %s", gn->name);
	if (sv_inst_request(sv, c, line, &reply, 2000, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: cert query failed: %s", gn->name, e2);
		return -1;
	}
	doc = json_parse(reply, NULL, 0);
	free(reply);
	if (json_get_bool(doc, "ok", &ok) < 0 || !ok) {
		int served = 1;

		/* Only the instance's own "nothing is served" answer means
		 * absent; any other refusal (a control socket full of
		 * clients, a malformed reply) is a failure that names its
		 * cause, never a vacuous pass. */
		(void)json_get_bool(doc, "served", &served);
		if (served) {
			if (json_get_str(doc, "error", e2, sizeof(e2)) < 0)
				snprintf(e2, sizeof(e2), "malformed reply");
			snprintf(err, errlen, "%s: cert query failed: %s", gn->name, e2);
			json_doc_free(doc);
			return -1;
		}
		json_doc_free(doc);
		if (!gn->must_serve)
			return 1; /* a removed name, nothing serves it */
		snprintf(err, errlen, "%s: the instance serves nothing for it", gn->name);
		return -1;
	}
	if (json_get_str(doc, "file", file, sizeof(file)) < 0 || file[0] == '\0' ||
	    strchr(file, '/') != NULL) {
		snprintf(err, errlen, "%s: malformed cert reply", gn->name);
		json_doc_free(doc);
		return -1;
	}
	(void)json_get_str(doc, "sha256", claimed, sizeof(claimed));
	(void)json_get_bool(doc, "kept", &kept);
	json_doc_free(doc);
	if (cert_set_map_path(map, certs_dir, file, path, sizeof(path)) < 0) {
		snprintf(err, errlen, "%s: expected certificate: %s is not in %s's index", gn->name,
		         file, certs_dir);
		return -1;
	}
	/* The instance kept the previous version of a file whose new content
	 * it could not load, and its reload reply said so: the file on disk
	 * is not what it serves on purpose, so the handshake is checked
	 * against the fingerprint it reports instead. */
	if (kept) {
		if (unhex(claimed, want) < 0) {
			snprintf(err, errlen, "%s: malformed cert reply (sha256)", gn->name);
			return -1;
		}
	} else if (sv_gate_file_sha256(path, want, e2, sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: expected certificate: %s", gn->name, e2);
		return -1;
	}
	sv_gate_sni(gn->name, sni, sizeof(sni));
	if (handshake(ctx, ss, sslen, sni, (int)sv->cfg->supervisor.gate_timeout_ms, got, e2,
	              sizeof(e2)) < 0) {
		snprintf(err, errlen, "%s: %s", gn->name, e2);
		return -1;
	}
	hex(want, 32, want_hex);
	hex(got, 32, got_hex);
	if (memcmp(want, got, 32) != 0) {
		snprintf(err, errlen,
		         "%.200s: serves sha256 %.16s... but %.200s %s %.16s... (stale or wrong "
		         "certificate)",
		         gn->name, got_hex, file, kept ? "(kept) is reported as" : "on disk is",
		         want_hex);
		return -1;
	}
	if (claimed[0] != '\0' && strcasecmp(claimed, got_hex) != 0) {
		snprintf(err, errlen,
		         "%s: the instance reports sha256 %.16s... but serves %.16s...", gn->name,
		         claimed, got_hex);
		return -1;
	}
	rc = 0;
	return rc;
}

#define SV_GATE_THREADS 8

struct gate_job {
	struct sv *sv;
	enum cfg_colour c;
	SSL_CTX *ctx;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct gate_name *names;
	size_t n, next;
	const char *certs_dir;
	const struct cert_set_map *map; /* certs_dir's index, NULL for a directory */
	struct sv_gate_result *res;
	pthread_mutex_t mu;
	int drop_user; /* drop to uid/gid; else only drop capabilities */
	uid_t uid;
	gid_t gid;
	const char *hold; /* SWITCHYARD_TEST_GATE_HOLD */
	int abort;        /* a thread could not drop its privileges */
};

/*
 * Every gate thread first drops to the instances' credentials (proxy.user
 * and proxy.group), or, when the instances keep root's uid, to no
 * capability at all: the handshakes parse what an instance sends, so they
 * get no more privileges than the instance. The drop is per thread
 * (privs.h) and the thread exits after the gate, so the supervisor keeps
 * what it needs for netfilter. SWITCHYARD_TEST_GATE_HOLD=PATH holds each
 * thread after its drop while PATH exists: the tests' way to look at a gate
 * thread's credentials.
 */
static int gate_drop(const struct gate_job *job, char *err, size_t errlen)
{
	int r = job->drop_user ? priv_thread_drop(job->uid, job->gid) : priv_thread_drop_caps();

	if (r < 0) {
		snprintf(err, errlen, "cannot drop the gate thread's privileges: %s",
		         strerror(errno));
		return -1;
	}
	if (job->hold != NULL)
		while (access(job->hold, F_OK) == 0)
			usleep(10000);
	return 0;
}

static void *gate_worker(void *arg)
{
	struct gate_job *job = arg;
	char err[600];

	if (gate_drop(job, err, sizeof(err)) < 0) {
		pthread_mutex_lock(&job->mu);
		/* Fails the gate and stops the other threads. */
		job->res->failed++;
		job->abort = 1;
		if (job->res->error[0] == '\0')
			snprintf(job->res->error, sizeof(job->res->error), "%s", err);
		pthread_mutex_unlock(&job->mu);
		return NULL;
	}
	for (;;) {
		size_t i;
		int r;

		pthread_mutex_lock(&job->mu);
		/* A few failures decide it; an unreachable instance must not
		 * cost one timeout per name. */
		if (job->next >= job->n || job->res->failed >= 3 || job->abort) {
			pthread_mutex_unlock(&job->mu);
			return NULL;
		}
		i = job->next++;
		pthread_mutex_unlock(&job->mu);
		if (job->names[i].name == NULL)
			continue;
		r = check_name(job->sv, job->c, job->ctx, &job->ss, job->sslen, job->certs_dir,
		               job->map, &job->names[i], err, sizeof(err));
		pthread_mutex_lock(&job->mu);
		job->res->checked++;
		if (r == 1)
			job->res->absent++;
		if (r < 0) {
			job->res->failed++;
			if (job->res->error[0] == '\0')
				snprintf(job->res->error, sizeof(job->res->error), "%.500s", err);
		}
		pthread_mutex_unlock(&job->mu);
	}
}

int sv_gate_run(struct sv *sv, enum cfg_colour c, char **changed, size_t nchanged,
                struct sv_gate_result *res)
{
	const struct cfg_supervisor *cs = &sv->cfg->supervisor;
	struct gate_name *names = NULL;
	size_t n = 0, cap;
	char certs_dir[CFG_STR_MAX], err[600], line[64], *reply = NULL;
	int64_t t0 = sv_now_ms();
	struct cert_set_map *map = NULL;
	SSL_CTX *ctx = NULL;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&sv->lock);
	snprintf(certs_dir, sizeof(certs_dir), "%s", sv->inst[c].certs_dir);
	pthread_mutex_unlock(&sv->lock);
	if (nchanged > cs->gate_changed_cap)
		nchanged = cs->gate_changed_cap;
	cap = nchanged + cs->gate_sample + 1;
	names = calloc(cap, sizeof(*names));
	if (names == NULL) {
		snprintf(res->error, sizeof(res->error), "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nchanged; i++) {
		names[n].name = strdup(changed[i]);
		names[n++].must_serve = 0;
	}
	if (cs->gate_sample > 0) {
		struct json_doc *doc;
		int len;

		snprintf(line, sizeof(line), "sample %u",
		         cs->gate_sample > 1000 ? 1000 : cs->gate_sample);
		if (sv_inst_request(sv, c, line, &reply, 5000, err, sizeof(err)) < 0) {
			snprintf(res->error, sizeof(res->error), "sample: %.400s", err);
			goto out;
		}
		doc = json_parse(reply, NULL, 0);
		if (json_get_bool(doc, "ok", &len) < 0 || !len) {
			/* A refusal is not an empty store: say what it was
			 * (e.g. the instance's control socket is full). */
			if (json_get_str(doc, "error", err, sizeof(err)) < 0)
				snprintf(err, sizeof(err), "malformed reply");
			snprintf(res->error, sizeof(res->error), "sample: %.400s", err);
			json_doc_free(doc);
			goto out;
		}
		len = json_array_len(doc, "names");
		for (int i = 0; i < len && n < cap; i++) {
			char path[32], name[300];

			snprintf(path, sizeof(path), "names.%d", i);
			if (json_get_str(doc, path, name, sizeof(name)) == 0) {
				names[n].name = strdup(name);
				names[n++].must_serve = 1;
			}
		}
		json_doc_free(doc);
	}
	if (n == 0) {
		/* An empty set would pass vacuously; an instance serving no
		 * certificate at all must not become live. */
		snprintf(res->error, sizeof(res->error),
		         "the instance reports no certificate names to check");
		goto out;
	}
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		snprintf(res->error, sizeof(res->error), "SSL_CTX_new failed");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	{
		struct gate_job job = {.sv = sv,
		                       .c = c,
		                       .ctx = ctx,
		                       .names = names,
		                       .n = n,
		                       .certs_dir = certs_dir,
		                       .res = res};
		pthread_t tids[SV_GATE_THREADS];
		int nt = n < SV_GATE_THREADS ? (int)n : SV_GATE_THREADS, started = 0, ids;

		ids = priv_proxy_ids(sv->cfg->proxy.user, sv->cfg->proxy.group, &job.uid, &job.gid,
		                     err, sizeof(err));
		if (ids < 0) {
			snprintf(res->error, sizeof(res->error), "%.500s", err);
			goto out;
		}
		job.drop_user = ids == 0;
		job.hold = getenv("SWITCHYARD_TEST_GATE_HOLD");
		/* Read here, before the threads drop their privileges, and
		 * once: an index set names 100,000 files. */
		if (cert_set_map_open(certs_dir, &map, err, sizeof(err)) < 0) {
			snprintf(res->error, sizeof(res->error), "%.500s", err);
			goto out;
		}
		job.map = map;
		job.sslen = inst_addr(sv->cfg, c, &job.ss);
		pthread_mutex_init(&job.mu, NULL);
		/* Handshakes run in parallel: on a machine saturated by client
		 * traffic each thread gets its own share of the CPU, so the
		 * gate's wall time stays short. They never run on this thread,
		 * which must keep its privileges. */
		for (int t = 0; t < nt; t++)
			if (pthread_create(&tids[started], NULL, gate_worker, &job) == 0)
				started++;
		if (started == 0)
			snprintf(res->error, sizeof(res->error), "cannot start the gate's threads");
		for (int t = 0; t < started; t++)
			pthread_join(tids[t], NULL);
		pthread_mutex_destroy(&job.mu);
		/* A thread's change of credentials made the whole process
		 * undumpable (the kernel's rule for set-id changes); those
		 * threads are gone, so core dumps may come back. */
		(void)prctl(PR_SET_DUMPABLE, 1);
		if (started == 0)
			goto out;
	}
	res->passed = res->failed == 0;
out:
	res->ms = sv_now_ms() - t0;
	cert_set_map_free(map);
	SSL_CTX_free(ctx);
	free(reply);
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
	return res->passed ? 0 : -1;
}
