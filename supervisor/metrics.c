/*
 * metrics: Prometheus text for `switchyard metrics` and, when
 * supervisor.metrics_listen is set, a plain HTTP listener that serves it at
 * /metrics (404 elsewhere). The address is loopback unless
 * supervisor.metrics_public says otherwise (common/cfg.c checks it): the
 * counters reveal traffic levels and certificate expiry, which is nobody
 * else's business by default. The families are listed in docs/operations.md.
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
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certsync/cs.h"
#include "common/log.h"
#include "common/version.h"
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
	/* notAfter of each file of the scanned set (malloc'd, nnot_after). */
	time_t *not_after;
	size_t nnot_after;
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

/* Writes a family's HELP and TYPE lines: every family has both, so that
 * `promtool check metrics` finds nothing to say (40-metrics checks it). */
static void fam(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the text format wants (backslash, quote and
 * newline). Names from the configuration are plain already; this keeps a
 * future free-form one from breaking the whole scrape. */
static const char *lval(char *out, size_t cap, const char *s)
{
	size_t o = 0;

	for (; s != NULL && *s != '\0' && o + 3 < cap; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n') {
			out[o++] = '\\';
			out[o++] = *s == '\n' ? 'n' : *s;
		} else {
			out[o++] = *s;
		}
	}
	out[o] = '\0';
	return out;
}

/* The counters each instance reports in `stats`, as counter families. */
static const struct {
	const char *field, *help;
} stat_fields[] = {
    {"accepted", "Connections accepted."},
    {"handshakes_ok", "TLS handshakes completed."},
    {"unknown_sni", "Handshakes whose SNI matched no certificate."},
    {"default_cert", "Handshakes answered with the default certificate."},
    {"backend_connect_fail", "Connections to a backend server that failed."},
    {"no_backend", "Connections closed because every backend server was down."},
    {"bytes_in", "Bytes received from clients."},
    {"bytes_out", "Bytes sent to clients."},
};

static void proxy_counters(struct mbuf *b, struct json_doc *const *replies)
{
	static const char *kinds[] = {"timeout", "alert", "no_cert", "protocol", "other"};

	for (size_t f = 0; f < sizeof(stat_fields) / sizeof(stat_fields[0]); f++) {
		char name[96];

		snprintf(name, sizeof(name), "switchyard_proxy_%s_total", stat_fields[f].field);
		fam(b, name, "counter", stat_fields[f].help);
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			int64_t v;

			if (replies[c] != NULL &&
			    json_get_i64(replies[c], stat_fields[f].field, &v) == 0)
				mb_printf(b, "%s{colour=\"%s\"} %lld\n", name,
				          cfg_colour_name((enum cfg_colour)c), (long long)v);
		}
	}
	fam(b, "switchyard_proxy_handshake_fail_total", "counter",
	    "TLS handshakes that failed, by kind.");
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
}

/* Per-listener counters: which service address the traffic comes in on. */
static void proxy_listeners(struct mbuf *b, struct json_doc *const *replies)
{
	static const struct {
		const char *field, *name, *type, *help;
	} lf[] = {
	    {"accepted", "switchyard_proxy_listener_accepted_total", "counter",
	     "Connections accepted, by listener."},
	    {"handshakes_ok", "switchyard_proxy_listener_handshakes_ok_total", "counter",
	     "TLS handshakes completed, by listener."},
	    {"handshake_fail", "switchyard_proxy_listener_handshake_fail_total", "counter",
	     "TLS handshakes that failed or timed out, by listener."},
	    {"active", "switchyard_proxy_listener_active_connections", "gauge",
	     "Open connections, by listener."},
	};

	for (size_t f = 0; f < sizeof(lf) / sizeof(lf[0]); f++) {
		fam(b, lf[f].name, lf[f].type, lf[f].help);
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			int n = replies[c] != NULL ? json_array_len(replies[c], "listeners") : -1;

			for (int i = 0; i < n; i++) {
				char path[64], lname[CFG_NAME_MAX * 2];
				const char *name;
				int64_t v;

				snprintf(path, sizeof(path), "listeners.%d.name", i);
				name = json_str(replies[c], path);
				snprintf(path, sizeof(path), "listeners.%d.%s", i, lf[f].field);
				if (name != NULL && json_get_i64(replies[c], path, &v) == 0)
					mb_printf(b, "%s{colour=\"%s\",listener=\"%s\"} %lld\n",
					          lf[f].name, cfg_colour_name((enum cfg_colour)c),
					          lval(lname, sizeof(lname), name), (long long)v);
			}
		}
	}
}

/* The handshake-latency histogram. The bucket bounds come with the counts in
 * the reply (the proxy defines them), in microseconds; Prometheus wants
 * seconds and cumulative buckets. */
static void proxy_hs_latency(struct mbuf *b, struct json_doc *const *replies)
{
	static const char name[] = "switchyard_proxy_handshake_duration_seconds";

	fam(b, name, "histogram",
	    "Time from accept to the finished TLS handshake, the client's round trips "
	    "included.");
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		const char *col = cfg_colour_name((enum cfg_colour)c);
		int nb =
		    replies[c] != NULL ? json_array_len(replies[c], "handshake_latency.le_us") : -1;
		int64_t v, sum_us;
		uint64_t cum = 0;
		char path[64];

		if (nb < 0 || json_array_len(replies[c], "handshake_latency.counts") != nb + 1 ||
		    json_get_i64(replies[c], "handshake_latency.sum_us", &sum_us) < 0)
			continue;
		for (int i = 0; i <= nb; i++) {
			int64_t le = 0;

			snprintf(path, sizeof(path), "handshake_latency.counts.%d", i);
			if (json_get_i64(replies[c], path, &v) < 0)
				v = 0;
			cum += (uint64_t)v;
			snprintf(path, sizeof(path), "handshake_latency.le_us.%d", i);
			if (i < nb && json_get_i64(replies[c], path, &le) == 0)
				mb_printf(b, "%s_bucket{colour=\"%s\",le=\"%g\"} %llu\n", name, col,
				          (double)le / 1e6, (unsigned long long)cum);
		}
		mb_printf(b, "%s_bucket{colour=\"%s\",le=\"+Inf\"} %llu\n", name, col,
		          (unsigned long long)cum);
		mb_printf(b, "%s_sum{colour=\"%s\"} %.6f\n", name, col, (double)sum_us / 1e6);
		mb_printf(b, "%s_count{colour=\"%s\"} %llu\n", name, col, (unsigned long long)cum);
	}
}

/* Backend servers up or down, as each instance's health checks see them. */
static void proxy_servers(struct mbuf *b, struct json_doc *const *replies)
{
	fam(b, "switchyard_backend_server_up", "gauge",
	    "1 when an instance considers the backend server usable (active and passive "
	    "checks), 0 when down.");
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		int n = replies[c] != NULL ? json_array_len(replies[c], "servers") : -1;

		for (int i = 0; i < n; i++) {
			char path[64], sname[CFG_NAME_MAX * 2], saddr[200];
			const char *name, *addr;
			int up;

			snprintf(path, sizeof(path), "servers.%d.name", i);
			name = json_str(replies[c], path);
			snprintf(path, sizeof(path), "servers.%d.address", i);
			addr = json_str(replies[c], path);
			snprintf(path, sizeof(path), "servers.%d.up", i);
			if (name != NULL && addr != NULL &&
			    json_get_bool(replies[c], path, &up) == 0)
				mb_printf(
				    b,
				    "switchyard_backend_server_up{colour=\"%s\",server=\"%s\","
				    "address=\"%s\"} %d\n",
				    cfg_colour_name((enum cfg_colour)c),
				    lval(sname, sizeof(sname), name),
				    lval(saddr, sizeof(saddr), addr), up);
		}
	}
}

/* The decoded-certificate cache of each instance (docs/certificates.md). */
static void proxy_cert_cache(struct mbuf *b, struct json_doc *const *replies)
{
	static const struct {
		const char *field, *name, *type, *help;
	} cf[] = {
	    {"hits", "switchyard_proxy_cert_cache_hits_total", "counter",
	     "Handshakes whose certificate was already decoded in the cache."},
	    {"misses", "switchyard_proxy_cert_cache_misses_total", "counter",
	     "Handshakes that had to decode their certificate."},
	    {"evictions", "switchyard_proxy_cert_cache_evictions_total", "counter",
	     "Decoded certificates dropped from the cache to make room."},
	    {"cached", "switchyard_proxy_cert_cache_entries", "gauge",
	     "Decoded certificates held in the cache."},
	    {"limit", "switchyard_proxy_cert_cache_limit", "gauge",
	     "Most decoded certificates the cache holds (certificates.cache_size)."},
	};

	for (size_t f = 0; f < sizeof(cf) / sizeof(cf[0]); f++) {
		fam(b, cf[f].name, cf[f].type, cf[f].help);
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			char path[64];
			int64_t v;

			snprintf(path, sizeof(path), "cert_cache.%s", cf[f].field);
			if (replies[c] != NULL && json_get_i64(replies[c], path, &v) == 0)
				mb_printf(b, "%s{colour=\"%s\"} %lld\n", cf[f].name,
				          cfg_colour_name((enum cfg_colour)c), (long long)v);
		}
	}
}

/* One `stats` request per running instance per scrape feeds every proxy
 * family; an instance that is down or reloading gives no samples. */
static void stats_metrics(struct sv *sv, struct mbuf *b)
{
	struct json_doc *replies[CFG_NCOLOURS] = {NULL, NULL};

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char err[256], *text = NULL;

		if (sv->inst[c].pid > 0 && !sv->inst[c].reloading &&
		    sv_inst_request(sv, (enum cfg_colour)c, "stats", &text, 1000, err,
		                    sizeof(err)) == 0)
			replies[c] = json_parse(text, NULL, 0);
		free(text);
	}
	proxy_counters(b, replies);
	proxy_listeners(b, replies);
	proxy_hs_latency(b, replies);
	proxy_servers(b, replies);
	proxy_cert_cache(b, replies);
	json_doc_free(replies[0]);
	json_doc_free(replies[1]);
}

/* Certificates of the live set by time left. The scan keeps every file's
 * notAfter, so the counts move with the clock between two sets. */
static void expiry_metrics(struct mbuf *b)
{
	static const struct {
		const char *label;
		int days;
	} left[] = {{"expired", 0}, {"7d", 7}, {"14d", 14}, {"30d", 30}};
	time_t now = time(NULL), soonest = 0;
	uint64_t n[sizeof(left) / sizeof(left[0])] = {0};
	int scanned = 0;

	if (g_metrics == NULL)
		return;
	pthread_mutex_lock(&g_metrics->mu);
	scanned = g_metrics->scanned_dir[0] != '\0';
	soonest = g_metrics->soonest;
	for (size_t i = 0; i < g_metrics->nnot_after; i++)
		for (size_t k = 0; k < sizeof(left) / sizeof(left[0]); k++)
			if (g_metrics->not_after[i] <= now + (time_t)left[k].days * 86400)
				n[k]++;
	pthread_mutex_unlock(&g_metrics->mu);
	if (!scanned)
		return;
	fam(b, "switchyard_certificates_expiring", "gauge",
	    "Certificate files of the live set whose notAfter is past (expired) or within "
	    "7, 14 or 30 days; each count includes the shorter ones.");
	for (size_t k = 0; k < sizeof(left) / sizeof(left[0]); k++)
		mb_printf(b, "switchyard_certificates_expiring{within=\"%s\"} %llu\n",
		          left[k].label, (unsigned long long)n[k]);
	if (soonest > 0) {
		fam(b, "switchyard_cert_soonest_expiry_seconds", "gauge",
		    "Soonest notAfter in the live set (Unix time).");
		mb_printf(b, "switchyard_cert_soonest_expiry_seconds %lld\n", (long long)soonest);
	}
}

/* certsync's last run, from the record it leaves in the state directory
 * (certsync/state.c); nothing before the first run. */
static void certsync_metrics(struct sv *sv, struct mbuf *b)
{
	/* certsync's status words, and the label values (no blank) for them. */
	static const struct {
		const char *status, *label;
	} results[] = {{"applied", "applied"},
	               {"no changes", "no_changes"},
	               {"partial", "partial"},
	               {"refused", "refused"},
	               {"error", "error"}};
	struct cs_last_run lr;

	if (cs_last_run_read(sv->cfg->supervisor.state_dir, &lr) < 0)
		return;
	fam(b, "switchyard_certsync_last_run_timestamp_seconds", "gauge",
	    "When certsync's last run ended (Unix time).");
	mb_printf(b, "switchyard_certsync_last_run_timestamp_seconds %lld\n", (long long)lr.time);
	fam(b, "switchyard_certsync_last_run_exit_code", "gauge",
	    "Exit code of certsync's last run: 0 ok, 1 error, 2 partial, 3 refused.");
	mb_printf(b, "switchyard_certsync_last_run_exit_code %d\n", lr.exit);
	fam(b, "switchyard_certsync_last_run_result", "gauge",
	    "1 for the result of certsync's last run.");
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		mb_printf(b, "switchyard_certsync_last_run_result{result=\"%s\"} %d\n",
		          results[i].label, strcmp(lr.status, results[i].status) == 0);
	fam(b, "switchyard_certsync_last_run_names_gone", "gauge",
	    "Names that certsync's last run dropped from the set, or would have dropped when "
	    "its guard refused.");
	mb_printf(b, "switchyard_certsync_last_run_names_gone %llu\n",
	          (unsigned long long)lr.names_gone);
	fam(b, "switchyard_certsync_last_run_names", "gauge",
	    "Names in the set after certsync's last run.");
	mb_printf(b, "switchyard_certsync_last_run_names %llu\n",
	          (unsigned long long)lr.names_after);
}

char *sv_metrics_text(struct sv *sv)
{
	static const char *le[] = {"0.001", "0.002", "0.005", "0.01",
	                           "0.025", "0.05",  "0.1",   "+Inf"};
	struct mbuf b = {NULL, 0, 0, 0};
	char ver[64];
	uint64_t cum = 0;

	fam(&b, "switchyard_build_info", "gauge",
	    "Always 1; the labels say which Switchyard and OpenSSL run.");
	mb_printf(&b, "switchyard_build_info{version=\"%s\",openssl=\"%s\"} 1\n",
	          lval(ver, sizeof(ver), sy_version()), OpenSSL_version(OPENSSL_VERSION_STRING));
	stats_metrics(sv, &b);
	expiry_metrics(&b);
	certsync_metrics(sv, &b);
	pthread_mutex_lock(&sv->lock);
	fam(&b, "switchyard_live", "gauge", "Which colour the service ports lead to.");
	for (int c = 0; c < CFG_NCOLOURS; c++)
		mb_printf(&b, "switchyard_live{colour=\"%s\"} %d\n",
		          cfg_colour_name((enum cfg_colour)c), sv->live == c);
	{
		enum cfg_nf_backend be;
		char why[512];
		int ok = nf_backend_resolve(sv->cfg, &be, why, sizeof(why)) == 0;

		fam(&b, "switchyard_netfilter_backend", "gauge",
		    "The netfilter backend in use (netfilter.backend); 0 for every backend when "
		    "none can run.");
		for (int k = CFG_NF_NFTABLES; k <= CFG_NF_IPTABLES; k++)
			mb_printf(
			    &b,
			    "switchyard_netfilter_backend{backend=\"%s\",configured=\"%s\"} %d\n",
			    cfg_nf_backend_name((enum cfg_nf_backend)k),
			    cfg_nf_backend_name(sv->cfg->netfilter.backend), ok && (int)be == k);
	}
	fam(&b, "switchyard_flips_total", "counter", "Flips, by result.");
	mb_printf(&b, "switchyard_flips_total{result=\"ok\"} %llu\n",
	          (unsigned long long)sv->flips_ok);
	mb_printf(&b, "switchyard_flips_total{result=\"failed\"} %llu\n",
	          (unsigned long long)sv->flips_failed);
	fam(&b, "switchyard_gate_refusals_total", "counter", "Flips the health gate refused.");
	mb_printf(&b, "switchyard_gate_refusals_total %llu\n",
	          (unsigned long long)sv->gate_refusals);
	fam(&b, "switchyard_failovers_total", "counter",
	    "Flips made because the live instance died.");
	mb_printf(&b, "switchyard_failovers_total %llu\n", (unsigned long long)sv->failovers);
	fam(&b, "switchyard_names_lost", "gauge",
	    "Names served before the last failover (or start) that the service address does not "
	    "serve now.");
	mb_printf(&b, "switchyard_names_lost %zu\n", sv->names_lost);
	fam(&b, "switchyard_drift_repairs_total", "counter",
	    "Times the supervisor put back netfilter rules that someone else changed.");
	mb_printf(&b, "switchyard_drift_repairs_total %llu\n",
	          (unsigned long long)sv->drift_repairs);
	fam(&b, "switchyard_ticket_rotations_total", "counter", "Session ticket key rotations.");
	mb_printf(&b, "switchyard_ticket_rotations_total %llu\n",
	          (unsigned long long)sv->ticket_rotations);
	fam(&b, "switchyard_ticket_failures_total", "counter",
	    "Ticket key file writes and instance re-reads that failed.");
	mb_printf(&b, "switchyard_ticket_failures_total %llu\n",
	          (unsigned long long)sv->ticket_failures);
	fam(&b, "switchyard_respawns_total", "counter", "Instances started again after they died.");
	mb_printf(&b, "switchyard_respawns_total %llu\n", (unsigned long long)sv->respawns);
	fam(&b, "switchyard_flip_latency_seconds", "histogram",
	    "Flip command to netfilter commit, gate excluded.");
	for (size_t i = 0; i < 8; i++) {
		cum += sv->flip_latency_buckets[i];
		mb_printf(&b, "switchyard_flip_latency_seconds_bucket{le=\"%s\"} %llu\n", le[i],
		          (unsigned long long)cum);
	}
	mb_printf(&b, "switchyard_flip_latency_seconds_sum %.6f\n", sv->flip_latency_sum_s);
	mb_printf(&b, "switchyard_flip_latency_seconds_count %llu\n", (unsigned long long)cum);
	if (sv->nflips > 0) {
		const struct sv_flip_rec *r = &sv->flips[(sv->nflips - 1) % SV_FLIPS_KEPT];

		fam(&b, "switchyard_last_flip_gate_seconds", "gauge",
		    "Health gate time of the last flip.");
		mb_printf(&b, "switchyard_last_flip_gate_seconds %.3f\n",
		          r->gate_ms < 0 ? 0.0 : (double)r->gate_ms / 1e3);
		fam(&b, "switchyard_last_flip_drain_seconds", "gauge",
		    "Drain time of the instance the last flip left.");
		mb_printf(&b, "switchyard_last_flip_drain_seconds %.3f\n",
		          r->drain_ms < 0 ? 0.0 : (double)r->drain_ms / 1e3);
	}
	fam(&b, "switchyard_instance_state", "gauge", "1 for the state each instance is in.");
	for (int c = 0; c < CFG_NCOLOURS; c++)
		for (int s = SV_STARTING; s <= SV_FAILED; s++)
			mb_printf(&b, "switchyard_instance_state{colour=\"%s\",state=\"%s\"} %d\n",
			          cfg_colour_name((enum cfg_colour)c),
			          sv_state_name((enum sv_state)s), (int)sv->inst[c].state == s);
#define PER_INST(name, type, field, help)                                                          \
	do {                                                                                       \
		fam(&b, "switchyard_instance_" name, type, help);                                  \
		for (int c = 0; c < CFG_NCOLOURS; c++)                                             \
			mb_printf(&b, "switchyard_instance_%s{colour=\"%s\"} %llu\n", name,        \
			          cfg_colour_name((enum cfg_colour)c),                             \
			          (unsigned long long)sv->inst[c].field);                          \
	} while (0)
	PER_INST("generation", "gauge", generation, "Generation of the set each instance serves.");
	PER_INST("certificates", "gauge", certs, "Certificates each instance loaded.");
	PER_INST("active_connections", "gauge", active, "Open connections of each instance.");
	PER_INST("pinned_syn_flows", "gauge", flows.syn,
	         "Conntrack flows in SYN state pinned to each instance's ports.");
	PER_INST("pinned_established_flows", "gauge", flows.established,
	         "Established conntrack flows pinned to each instance's ports.");
	PER_INST("restarts_total", "counter", restarts, "Times each instance was started again.");
#undef PER_INST
	pthread_mutex_unlock(&sv->lock);
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
		time_t soonest = 0, *na = NULL;
		size_t n = 0, cap = 0;

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
			if (t <= 0)
				continue;
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				time_t *nn = realloc(na, ncap * sizeof(*na));

				if (nn == NULL)
					break; /* counts from the files read so far */
				na = nn;
				cap = ncap;
			}
			na[n++] = t;
			if (soonest == 0 || t < soonest)
				soonest = t;
		}
		closedir(d);
		pthread_mutex_lock(&m->mu);
		snprintf(m->scanned_dir, sizeof(m->scanned_dir), "%s", dir);
		snprintf(m->scanned_set, sizeof(m->scanned_set), "%s", set);
		m->soonest = soonest;
		free(m->not_after);
		m->not_after = na;
		m->nnot_after = n;
		pthread_mutex_unlock(&m->mu);
	}
	return NULL;
}

static void http_send(int fd, const char *status, const char *extra, const char *body,
                      int head_only)
{
	char head[512];
	size_t blen = strlen(body);
	int hl = snprintf(head, sizeof(head),
	                  "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4; "
	                  "charset=utf-8\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
	                  status, blen, extra);

	if (hl > 0 && hl < (int)sizeof(head) && send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl &&
	    !head_only)
		(void)!send(fd, body, blen, MSG_NOSIGNAL);
}

/* Answers one request: GET or HEAD of /metrics (a query string is ignored)
 * gets the text; another path 404, another method 405. */
static void http_answer(struct sv_metrics *m, int fd, const char *req)
{
	size_t mlen = strcspn(req, " \r\n"), plen;
	const char *path = req + mlen;
	int head = mlen == 4 && memcmp(req, "HEAD", 4) == 0;
	char *text;

	if (*path == ' ')
		path++;
	plen = strcspn(path, " ?\r\n");
	if (!head && !(mlen == 3 && memcmp(req, "GET", 3) == 0)) {
		http_send(fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
		          "only GET and HEAD are served\n", 0);
		return;
	}
	if (plen != 8 || memcmp(path, "/metrics", 8) != 0) {
		http_send(fd, "404 Not Found", "", "not found; the metrics are at /metrics\n",
		          head);
		return;
	}
	text = sv_metrics_text(m->sv);
	if (text == NULL) {
		http_send(fd, "500 Internal Server Error", "", "out of memory\n", head);
		return;
	}
	http_send(fd, "200 OK", "", text, head);
	free(text);
}

static void *http_thread(void *arg)
{
	struct sv_metrics *m = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = m->lfd, .events = POLLIN},
		                      {.fd = m->wake[0], .events = POLLIN}};
		char req[4096];
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		fd = accept4(m->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		/* One request per connection, a slow client gets two seconds. */
		struct pollfd pc = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pc, 1, 2000) > 0 && (n = read(fd, req, sizeof(req) - 1)) > 0) {
			req[n] = '\0';
			http_answer(m, fd, req);
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
	/* Whether the address may be beyond loopback was checked with the
	 * configuration (supervisor.metrics_public). */
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return 0;
	}
	snprintf(err, errlen, "metrics_listen '%s': not an IPv4 or IPv6 address", s);
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
