/*
 * metrics: Prometheus text for `switchyard metrics` and, when
 * supervisor.metrics_listen is set, a plain HTTP listener bound to loopback
 * only (the counters reveal traffic levels and certificate expiry, which is
 * nobody else's business; scrape through a local agent).
 *
 * The soonest certificate expiry is computed by a low-priority background
 * thread that reads the leaf of every file in the live instance's set once
 * per set, so scraping never parses certificates.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/log.h"
#include "netfilter/nf.h"
#include "supervisor/sv.h"

struct sv_metrics {
	struct sv *sv;
	int lfd;
	int wake[2];
	pthread_t http, expiry;
	int have_http;
	pthread_mutex_t mu;
	char scanned_dir[CFG_STR_MAX];
	char scanned_set[128];
	time_t soonest;
	uint64_t scanned_files;
};

/* The metrics object is created once by main(); sv_metrics_text() may run
 * before (or without) it, so it reads the expiry through this pointer. */
static struct sv_metrics *g_metrics;

struct mbuf {
	char *p;
	size_t len, cap;
	int oom;
};

__attribute__((format(printf, 2, 3))) static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->p != NULL && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 8192;
		while (ncap < b->len + (size_t)n + 1)
			ncap *= 2;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void stats_metrics(struct sv *sv, struct mbuf *b)
{
	static const char *fields[] = {
	    "accepted",   "handshakes_ok", "unknown_sni", "default_cert", "backend_connect_fail",
	    "no_backend", "bytes_in",      "bytes_out"};
	static const char *kinds[] = {"timeout", "alert", "no_cert", "protocol", "other"};
	struct json_doc *replies[CFG_NCOLOURS] = {NULL, NULL};

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char err[256], *text = NULL;

		if (sv->inst[c].pid > 0 && !sv->inst[c].reloading &&
		    sv_inst_request(sv, (enum cfg_colour)c, "stats", &text, 1000, err,
		                    sizeof(err)) == 0)
			replies[c] = json_parse(text, NULL, 0);
		free(text);
	}
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		mb_printf(b, "# TYPE switchyard_proxy_%s_total counter\n", fields[f]);
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			int64_t v;

			if (replies[c] != NULL && json_get_i64(replies[c], fields[f], &v) == 0)
				mb_printf(b, "switchyard_proxy_%s_total{colour=\"%s\"} %lld\n",
				          fields[f], cfg_colour_name((enum cfg_colour)c),
				          (long long)v);
		}
	}
	mb_printf(b, "# TYPE switchyard_proxy_handshake_fail_total counter\n");
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		for (size_t k = 0; replies[c] != NULL && k < sizeof(kinds) / sizeof(kinds[0]);
		     k++) {
			char path[64];
			int64_t v;

			snprintf(path, sizeof(path), "handshake_fail.%s", kinds[k]);
			if (json_get_i64(replies[c], path, &v) == 0)
				mb_printf(b,
				          "switchyard_proxy_handshake_fail_total{colour=\"%s\","
				          "kind=\"%s\"} %lld\n",
				          cfg_colour_name((enum cfg_colour)c), kinds[k],
				          (long long)v);
		}
	}
	json_doc_free(replies[0]);
	json_doc_free(replies[1]);
}

char *sv_metrics_text(struct sv *sv)
{
	static const char *le[] = {"0.001", "0.002", "0.005", "0.01",
	                           "0.025", "0.05",  "0.1",   "+Inf"};
	struct mbuf b = {NULL, 0, 0, 0};
	uint64_t cum = 0;
	time_t soonest = 0;

	stats_metrics(sv, &b);
	if (g_metrics != NULL) {
		pthread_mutex_lock(&g_metrics->mu);
		soonest = g_metrics->soonest;
		pthread_mutex_unlock(&g_metrics->mu);
	}
	pthread_mutex_lock(&sv->lock);
	mb_printf(&b, "# HELP switchyard_live Which colour the service ports lead to.\n");
	mb_printf(&b, "# TYPE switchyard_live gauge\n");
	for (int c = 0; c < CFG_NCOLOURS; c++)
		mb_printf(&b, "switchyard_live{colour=\"%s\"} %d\n",
		          cfg_colour_name((enum cfg_colour)c), sv->live == c);
	{
		enum cfg_nf_backend be;
		char why[512];
		int ok = nf_backend_resolve(sv->cfg, &be, why, sizeof(why)) == 0;

		mb_printf(&b, "# HELP switchyard_netfilter_backend The netfilter backend in use "
		              "(netfilter.backend); 0 for every backend when none can run.\n");
		mb_printf(&b, "# TYPE switchyard_netfilter_backend gauge\n");
		for (int k = CFG_NF_NFTABLES; k <= CFG_NF_IPTABLES; k++)
			mb_printf(
			    &b,
			    "switchyard_netfilter_backend{backend=\"%s\",configured=\"%s\"} %d\n",
			    cfg_nf_backend_name((enum cfg_nf_backend)k),
			    cfg_nf_backend_name(sv->cfg->netfilter.backend), ok && (int)be == k);
	}
	mb_printf(&b, "# TYPE switchyard_flips_total counter\n");
	mb_printf(&b, "switchyard_flips_total{result=\"ok\"} %llu\n",
	          (unsigned long long)sv->flips_ok);
	mb_printf(&b, "switchyard_flips_total{result=\"failed\"} %llu\n",
	          (unsigned long long)sv->flips_failed);
	mb_printf(&b, "# TYPE switchyard_gate_refusals_total counter\n");
	mb_printf(&b, "switchyard_gate_refusals_total %llu\n",
	          (unsigned long long)sv->gate_refusals);
	mb_printf(&b, "# TYPE switchyard_failovers_total counter\n");
	mb_printf(&b, "switchyard_failovers_total %llu\n", (unsigned long long)sv->failovers);
	mb_printf(&b, "# TYPE switchyard_drift_repairs_total counter\n");
	mb_printf(&b, "switchyard_drift_repairs_total %llu\n",
	          (unsigned long long)sv->drift_repairs);
	mb_printf(&b, "# TYPE switchyard_ticket_rotations_total counter\n");
	mb_printf(&b, "switchyard_ticket_rotations_total %llu\n",
	          (unsigned long long)sv->ticket_rotations);
	mb_printf(&b, "# HELP switchyard_ticket_failures_total Ticket key file writes and "
	              "instance re-reads that failed.\n");
	mb_printf(&b, "# TYPE switchyard_ticket_failures_total counter\n");
	mb_printf(&b, "switchyard_ticket_failures_total %llu\n",
	          (unsigned long long)sv->ticket_failures);
	mb_printf(&b, "# TYPE switchyard_respawns_total counter\n");
	mb_printf(&b, "switchyard_respawns_total %llu\n", (unsigned long long)sv->respawns);
	mb_printf(&b, "# HELP switchyard_flip_latency_seconds Flip command to netfilter commit, "
	              "gate excluded.\n");
	mb_printf(&b, "# TYPE switchyard_flip_latency_seconds histogram\n");
	for (size_t i = 0; i < 8; i++) {
		cum += sv->flip_latency_buckets[i];
		mb_printf(&b, "switchyard_flip_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
		          (unsigned long long)cum);
	}
	mb_printf(&b, "switchyard_flip_latency_seconds_sum %.6f\n", sv->flip_latency_sum_s);
	mb_printf(&b, "switchyard_flip_latency_seconds_count %llu\n", (unsigned long long)cum);
	if (sv->nflips > 0) {
		const struct sv_flip_rec *r = &sv->flips[(sv->nflips - 1) % SV_FLIPS_KEPT];

		mb_printf(&b, "# TYPE switchyard_last_flip_gate_seconds gauge\n");
		mb_printf(&b, "switchyard_last_flip_gate_seconds %.3f\n",
		          r->gate_ms < 0 ? 0.0 : (double)r->gate_ms / 1e3);
		mb_printf(&b, "# TYPE switchyard_last_flip_drain_seconds gauge\n");
		mb_printf(&b, "switchyard_last_flip_drain_seconds %.3f\n",
		          r->drain_ms < 0 ? 0.0 : (double)r->drain_ms / 1e3);
	}
	mb_printf(&b, "# TYPE switchyard_instance_state gauge\n");
	for (int c = 0; c < CFG_NCOLOURS; c++)
		for (int s = SV_STARTING; s <= SV_FAILED; s++)
			mb_printf(&b, "switchyard_instance_state{colour=\"%s\",state=\"%s\"} %d\n",
			          cfg_colour_name((enum cfg_colour)c),
			          sv_state_name((enum sv_state)s), (int)sv->inst[c].state == s);
#define PER_INST(name, type, field)                                                                \
	do {                                                                                       \
		mb_printf(&b, "# TYPE switchyard_instance_%s %s\n", name, type);                   \
		for (int c = 0; c < CFG_NCOLOURS; c++)                                             \
			mb_printf(&b, "switchyard_instance_%s{colour=\"%s\"} %llu\n", name,        \
			          cfg_colour_name((enum cfg_colour)c),                             \
			          (unsigned long long)sv->inst[c].field);                          \
	} while (0)
	PER_INST("generation", "gauge", generation);
	PER_INST("certificates", "gauge", certs);
	PER_INST("active_connections", "gauge", active);
	PER_INST("pinned_syn_flows", "gauge", flows.syn);
	PER_INST("pinned_established_flows", "gauge", flows.established);
	PER_INST("restarts_total", "counter", restarts);
#undef PER_INST
	pthread_mutex_unlock(&sv->lock);
	if (soonest > 0) {
		mb_printf(&b,
		          "# HELP switchyard_cert_soonest_expiry_seconds Soonest notAfter in the "
		          "live set (Unix time).\n");
		mb_printf(&b, "# TYPE switchyard_cert_soonest_expiry_seconds gauge\n");
		mb_printf(&b, "switchyard_cert_soonest_expiry_seconds %lld\n", (long long)soonest);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static void *expiry_thread(void *arg)
{
	struct sv_metrics *m = arg;
	struct sv *sv = m->sv;

	/* Nice applies per thread on Linux: only this scan yields to the
	 * live work. */
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), 15);
	while (!sv->stop) {
		char dir[CFG_STR_MAX], set[128];
		DIR *d;
		struct dirent *de;
		time_t soonest = 0;
		uint64_t n = 0;

		pthread_mutex_lock(&sv->lock);
		snprintf(dir, sizeof(dir), "%s", sv->inst[sv->live].certs_dir);
		snprintf(set, sizeof(set), "%s", sv->inst[sv->live].set_id);
		pthread_mutex_unlock(&sv->lock);
		if (dir[0] == '\0' ||
		    (strcmp(dir, m->scanned_dir) == 0 && strcmp(set, m->scanned_set) == 0) ||
		    (d = opendir(dir)) == NULL) {
			sleep(5);
			continue;
		}
		while ((de = readdir(d)) != NULL && !sv->stop) {
			char path[2 * CFG_STR_MAX];
			size_t len = strlen(de->d_name);
			time_t t;

			if (de->d_name[0] == '.' || len < 4 ||
			    (strcmp(de->d_name + len - 4, ".pem") != 0 &&
			     strcmp(de->d_name + len - 4, ".crt") != 0))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			t = sv_file_not_after(path);
			n++;
			if (t > 0 && (soonest == 0 || t < soonest))
				soonest = t;
		}
		closedir(d);
		pthread_mutex_lock(&m->mu);
		snprintf(m->scanned_dir, sizeof(m->scanned_dir), "%s", dir);
		snprintf(m->scanned_set, sizeof(m->scanned_set), "%s", set);
		m->soonest = soonest;
		m->scanned_files = n;
		pthread_mutex_unlock(&m->mu);
	}
	return NULL;
}

static void *http_thread(void *arg)
{
	struct sv_metrics *m = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = m->lfd, .events = POLLIN},
		                      {.fd = m->wake[0], .events = POLLIN}};
		char req[4096], head[256], *text;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* One request per connection; anything is answered with the
		 * metrics, a slow client gets two seconds. */
		struct pollfd pc = {.fd = fd, .events = POLLIN};
		if (poll(&pc, 1, 2000) > 0 && read(fd, req, sizeof(req)) > 0) {
			text = sv_metrics_text(m->sv);
			if (text != NULL) {
				int hl = snprintf(head, sizeof(head),
				                  "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
				                  "version=0.0.4\r\nContent-Length: %zu\r\n"
				                  "Connection: close\r\n\r\n",
				                  strlen(text));
				if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl)
					(void)!send(fd, text, strlen(text), MSG_NOSIGNAL);
				free(text);
			}
		}
		close(fd);
	}
	return NULL;
}

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, char *err,
                        size_t errlen)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	long port;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host)) {
		snprintf(err, errlen, "metrics_listen '%s': expected HOST:PORT", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535) {
		snprintf(err, errlen, "metrics_listen '%s': bad port", s);
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if ((ntohl(sin->sin_addr.s_addr) >> 24) != 127)
			goto notlocal;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		if (!IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			goto notlocal;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
notlocal:
	snprintf(err, errlen, "metrics_listen '%s': only a loopback address is allowed", s);
	return -1;
}

struct sv_metrics *sv_metrics_start(struct sv *sv, const char *listen_on, char *err, size_t errlen)
{
	struct sv_metrics *m = calloc(1, sizeof(*m));
	struct sockaddr_storage ss;
	socklen_t sslen;
	int one = 1;

	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->sv = sv;
	m->lfd = m->wake[0] = m->wake[1] = -1;
	pthread_mutex_init(&m->mu, NULL);
	if (listen_on != NULL && listen_on[0] != '\0') {
		if (parse_listen(listen_on, &ss, &sslen, err, errlen) < 0)
			goto fail;
		m->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (m->lfd < 0 ||
		    setsockopt(m->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
		    bind(m->lfd, (struct sockaddr *)&ss, sslen) < 0 || listen(m->lfd, 16) < 0 ||
		    pipe2(m->wake, O_CLOEXEC) < 0) {
			snprintf(err, errlen, "metrics_listen %s: %s", listen_on, strerror(errno));
			goto fail;
		}
		if (pthread_create(&m->http, NULL, http_thread, m) != 0) {
			snprintf(err, errlen, "cannot start the metrics thread");
			goto fail;
		}
		m->have_http = 1;
	}
	g_metrics = m;
	if (pthread_create(&m->expiry, NULL, expiry_thread, m) != 0)
		log_warnx("metrics: cannot start the expiry scan thread");
	else
		pthread_detach(m->expiry);
	return m;
fail:
	if (m->lfd >= 0)
		close(m->lfd);
	if (m->wake[0] >= 0) {
		close(m->wake[0]);
		close(m->wake[1]);
	}
	free(m);
	return NULL;
}

void sv_metrics_stop(struct sv_metrics *m)
{
	if (m == NULL)
		return;
	if (m->have_http) {
		if (write(m->wake[1], "x", 1) < 0)
			log_warn("metrics: wake-up");
		pthread_join(m->http, NULL);
		close(m->lfd);
		close(m->wake[0]);
		close(m->wake[1]);
	}
	/* The expiry thread is detached and checks sv->stop; m stays
	 * allocated until exit because it may still be reading it. */
}
