/*
 * control: the instance's control commands (docs/control.md), served by
 * common/ctl's server thread, so a control client never blocks a worker.
 * The command table at the end is the one list of commands, arguments and
 * usage texts.
 */
#include "proxy/conn.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/ctl.h"
#include "common/log.h"

static const char *const state_names[] = {"loading", "ready", "draining", "draining"};
static const char *const hs_names[PX_HS__COUNT] = {"timeout", "alert", "no_cert", "protocol",
                                                   "other"};

void px_publish(struct px_proc *p, struct cert_store *store, const struct cert_report *rep)
{
	pthread_mutex_lock(&p->reload_lock);
	p->generation = cert_store_generation(store);
	p->c_loaded = cert_report_nloaded(rep);
	p->c_skipped = cert_report_nskipped(rep);
	p->c_warned = cert_report_nwarned(rep);
	p->c_names = cert_store_nnames(store);
	pthread_mutex_unlock(&p->reload_lock);
	cert_slot_publish(p->slot, store);
	/* Workers compare this epoch before each handshake and re-acquire
	 * the store only when it moved. */
	atomic_fetch_add(&p->cert_epoch, 1);
}

int px_reload_refused(const struct cert_report *rep, size_t old_names, char *err, size_t errlen)
{
	size_t skipped = cert_report_nskipped(rep) + cert_report_nkept(rep);
	const char *file = NULL, *msg = NULL;
	enum cert_sev sev;

	/* The store skips a file it cannot read and drops its names, which is
	 * right for one bad file but not when none loads: then the cause is
	 * almost always the directory as a whole (after the privilege drop the
	 * files are no longer readable, or a half-finished copy), and
	 * publishing would stop serving every name at once. */
	if (old_names == 0 || skipped == 0 || cert_report_nloaded(rep) > cert_report_nkept(rep))
		return 0;
	for (size_t i = 0; i < cert_report_nentries(rep) && msg == NULL; i++)
		file = cert_report_entry(rep, i, &sev, &msg);
	snprintf(err, errlen,
	         "none of the %zu files loaded (%s: %s); keeping the current certificates", skipped,
	         file ? file : "?", msg ? msg : "?");
	return 1;
}

void px_log_kept(const char *what, const struct cert_report *rep)
{
	for (size_t i = 0; i < cert_report_nkept(rep); i++) {
		const char *why = NULL, *file = cert_report_kept(rep, i, &why);
		char esc[LOG_ESC_LEN(256)];

		log_warnx("%s: %s: %s", what, log_escape(esc, sizeof(esc), file, strlen(file)),
		          why);
	}
}

/* The files that loaded nothing, with why (at most PX_FILES_LISTED): the
 * reply names them so that the supervisor logs them and the operator's
 * terminal shows them, beside the count. */
#define PX_FILES_LISTED 1000
static void skipped_json(struct json_buf *r, const struct cert_report *rep)
{
	size_t listed = 0;

	jb_arr_begin(r, "skipped_files");
	for (size_t i = 0; i < cert_report_nentries(rep) && listed < PX_FILES_LISTED; i++) {
		const char *msg = NULL, *file;
		enum cert_sev sev;

		file = cert_report_entry(rep, i, &sev, &msg);
		if (sev != CERT_SKIP)
			continue;
		jb_obj_begin(r, NULL);
		jb_str(r, "file", file);
		jb_str(r, "error", msg != NULL ? msg : "not loaded");
		jb_obj_end(r);
		listed++;
	}
	jb_arr_end(r);
}

static uint32_t active_conns(struct px_proc *p)
{
	return atomic_load(&p->global.active);
}

/* The decoded-certificate cache: a miss rate that stays high means
 * certs.cache_size is smaller than the set of names being served. */
static void status_cert_cache(struct json_buf *r)
{
	struct cert_leaf_cache_stats cs;

	cert_leaf_cache_stats(&cs);
	jb_obj_begin(r, "cert_cache");
	jb_uint(r, "limit", cs.limit);
	jb_uint(r, "cached", cs.cached);
	jb_uint(r, "hits", cs.hits);
	jb_uint(r, "misses", cs.misses);
	jb_uint(r, "evictions", cs.evictions);
	jb_obj_end(r);
}

/* Server state, so an operator (and the tests) can see what the passive and
 * active health checks decided. */
static void status_servers(struct px_proc *p, struct json_buf *r, uint64_t now)
{
	jb_arr_begin(r, "servers");
	for (int i = 0; i < p->nservers; i++) {
		struct px_server *s = &p->servers[i];
		int check_down = atomic_load(&s->check_down);
		int passive_down = atomic_load(&s->down_until) > now;
		jb_obj_begin(r, NULL);
		jb_str(r, "name", s->name);
		jb_str(r, "address", s->text);
		jb_bool(r, "up", !check_down && !passive_down);
		jb_bool(r, "check_down", check_down);
		jb_bool(r, "passive_down", passive_down);
		jb_uint(r, "active", atomic_load(&s->active));
		jb_obj_end(r);
	}
	jb_arr_end(r);
}

static int cmd_status(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	int st = atomic_load(&p->state);
	uint64_t now = px_now_ms();

	jb_bool(r, "ok", 1);
	jb_str(r, "instance", cfg_colour_name(p->colour));
	jb_int(r, "pid", getpid());
	jb_str(r, "state", state_names[st]);
	pthread_mutex_lock(&p->reload_lock);
	jb_uint(r, "loaded",
	        st == PX_LOADING || atomic_load(&p->reloading)
	            ? __atomic_load_n(&p->load_done, __ATOMIC_RELAXED)
	            : p->c_loaded + p->c_skipped);
	jb_uint(r, "total", atomic_load(&p->load_total));
	jb_uint(r, "generation", p->generation);
	if (p->served_dir[0] != '\0')
		jb_str(r, "directory", p->served_dir);
	jb_obj_begin(r, "certs");
	jb_uint(r, "loaded", p->c_loaded);
	jb_uint(r, "skipped", p->c_skipped);
	jb_uint(r, "warned", p->c_warned);
	jb_uint(r, "names", p->c_names);
	jb_obj_end(r);
	status_cert_cache(r);
	pthread_mutex_unlock(&p->reload_lock);
	jb_uint(r, "active", active_conns(p));
	jb_arr_begin(r, "listeners");
	for (int i = 0; i < p->cfg->nlisteners; i++) {
		jb_obj_begin(r, NULL);
		jb_str(r, "name", p->cfg->listeners[i].name);
		jb_uint(r, "port", p->cfg->instances[p->colour].ports[i]);
		jb_bool(r, "bound",
		        i < p->ngroups && p->groups[i].nbound > 0 && !atomic_load(&p->stopping));
		if (i < p->ngroups) {
			jb_uint(r, "active", atomic_load(&p->groups[i].limit.active));
			jb_uint(r, "maxconn", p->groups[i].limit.max);
			jb_uint(r, "maxconn_ms", px_limit_ms(&p->groups[i].limit, now));
		}
		jb_obj_end(r);
	}
	jb_arr_end(r);
	status_servers(p, r, now);
	jb_uint(r, "uptime_ms", now - p->start_ms);
	(void)req;
	return 0;
}

static int cmd_stats(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	static const uint64_t bounds[PX_HS_LAT_NB] = PX_HS_LAT_BOUNDS_US;
	struct px_stats sum;
	uint64_t v;

	memset(&sum, 0, sizeof(sum));
#define SUM(f) atomic_fetch_add_explicit(&sum.f, PX_LOAD(st->f), memory_order_relaxed)
	for (int i = 0; i < p->nworkers; i++) {
		struct px_stats *st = (struct px_stats *)px_worker_stats(p->workers[i]);
		SUM(accepted);
		SUM(handshakes_ok);
		for (int k = 0; k < PX_HS__COUNT; k++)
			SUM(hs_fail[k]);
		SUM(default_cert);
		SUM(unknown_sni);
		SUM(backend_connect_fail);
		SUM(no_backend);
		SUM(bytes_in);
		SUM(bytes_out);
		for (int k = 0; k < PX_R__COUNT; k++)
			SUM(reasons[k]);
		for (int k = 0; k < CFG_MAX_LISTENERS; k++) {
			SUM(l_accepted[k]);
			SUM(l_hs_ok[k]);
			SUM(l_hs_fail[k]);
		}
		for (int k = 0; k <= PX_HS_LAT_NB; k++)
			SUM(hs_lat[k]);
		SUM(hs_lat_sum_us);
	}
#undef SUM
	jb_bool(r, "ok", 1);
	jb_uint(r, "accepted", PX_LOAD(sum.accepted));
	jb_uint(r, "handshakes_ok", PX_LOAD(sum.handshakes_ok));
	jb_obj_begin(r, "handshake_fail");
	for (int k = 0; k < PX_HS__COUNT; k++)
		jb_uint(r, hs_names[k], PX_LOAD(sum.hs_fail[k]));
	jb_obj_end(r);
	jb_uint(r, "default_cert", PX_LOAD(sum.default_cert));
	jb_uint(r, "unknown_sni", PX_LOAD(sum.unknown_sni));
	jb_uint(r, "backend_connect_fail", PX_LOAD(sum.backend_connect_fail));
	jb_uint(r, "no_backend", PX_LOAD(sum.no_backend));
	jb_uint(r, "bytes_in", PX_LOAD(sum.bytes_in));
	jb_uint(r, "bytes_out", PX_LOAD(sum.bytes_out));
	v = px_limit_ms(&p->global, px_now_ms());
	jb_uint(r, "maxconn_ms", v);
	jb_uint(r, "active", active_conns(p));
	/* Not in docs/control.md's list, extra: teardown reasons. */
	jb_obj_begin(r, "close");
	for (int k = 0; k < PX_R__COUNT; k++)
		jb_uint(r, px_reason_name((enum px_reason)k), PX_LOAD(sum.reasons[k]));
	jb_obj_end(r);
	/* For the supervisor's metrics: per-listener counters, the
	 * handshake-latency histogram with its bounds, the servers' health and
	 * the certificate cache, so one request per scrape gets them all. */
	jb_arr_begin(r, "listeners");
	for (int i = 0; i < p->ngroups; i++) {
		jb_obj_begin(r, NULL);
		jb_str(r, "name", p->groups[i].name);
		jb_uint(r, "accepted", PX_LOAD(sum.l_accepted[i]));
		jb_uint(r, "handshakes_ok", PX_LOAD(sum.l_hs_ok[i]));
		jb_uint(r, "handshake_fail", PX_LOAD(sum.l_hs_fail[i]));
		jb_uint(r, "active", atomic_load(&p->groups[i].limit.active));
		jb_obj_end(r);
	}
	jb_arr_end(r);
	jb_obj_begin(r, "handshake_latency");
	jb_arr_begin(r, "le_us");
	for (int k = 0; k < PX_HS_LAT_NB; k++)
		jb_uint(r, NULL, bounds[k]);
	jb_arr_end(r);
	jb_arr_begin(r, "counts");
	for (int k = 0; k <= PX_HS_LAT_NB; k++)
		jb_uint(r, NULL, PX_LOAD(sum.hs_lat[k]));
	jb_arr_end(r);
	jb_uint(r, "sum_us", PX_LOAD(sum.hs_lat_sum_us));
	jb_obj_end(r);
	status_servers(p, r, px_now_ms());
	status_cert_cache(r);
	(void)req;
	return 0;
}

static int cmd_reload_certs(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	const char *arg = ctl_arg(req, 0);
	struct cert_opts opts;
	struct cert_report *rep = NULL;
	struct cert_store *old, *nw;
	const char *dir = arg && *arg ? arg : p->certdir;
	uint64_t t0 = px_now_ms(), old_total = atomic_load(&p->load_total);
	size_t old_names;
	/* dir is the control client's: escaped in log lines. */
	char kerr[512], edir[1024];

	if (atomic_load(&p->state) == PX_LOADING)
		return ctl_reply_error(r, "still loading certificates");
	cert_opts_from_cfg(&opts, p->cfg);
	/* `loaded` and `total` describe the load in progress: a directory
	 * with fewer files than the last one must not report more files
	 * loaded than it holds. */
	__atomic_store_n(&p->load_done, 0, __ATOMIC_RELAXED);
	atomic_store(&p->load_total, cert_dir_nfiles(dir));
	atomic_store(&p->reloading, 1);
	opts.progress = &p->load_done;
	old = cert_slot_acquire(p->slot);
	old_names = old ? cert_store_nnames(old) : 0;
	nw = cert_store_reload(old, dir, &opts, &rep);
	cert_store_unref(old);
	atomic_store(&p->reloading, 0);
	if (nw == NULL) {
		ctl_reply_error(r, "%s",
		                rep && cert_report_fatal(rep) ? cert_report_fatal(rep)
		                                              : "cannot load certificates");
		atomic_store(&p->load_total, old_total);
		cert_report_free(rep);
		return -1;
	}
	if (px_reload_refused(rep, old_names, kerr, sizeof(kerr))) {
		log_warnx("reload-certs %s: %s", log_escape(edir, sizeof(edir), dir, strlen(dir)),
		          kerr);
		ctl_reply_error(r, "%s", kerr);
		atomic_store(&p->load_total, old_total);
		cert_store_unref(nw);
		cert_report_free(rep);
		return -1;
	}
	px_publish(p, nw, rep);
	px_log_kept("reload-certs", rep);
	if (p->tickets_on && px_tickets_load(p, kerr, sizeof(kerr)) < 0)
		log_warnx("reload-certs: ticket keys not reloaded: %s", kerr);
	jb_bool(r, "ok", 1);
	pthread_mutex_lock(&p->reload_lock);
	snprintf(p->served_dir, sizeof(p->served_dir), "%s", dir);
	jb_uint(r, "generation", p->generation);
	jb_uint(r, "names", p->c_names);
	jb_uint(r, "loaded", p->c_loaded);
	jb_uint(r, "skipped", p->c_skipped);
	jb_uint(r, "warned", p->c_warned);
	pthread_mutex_unlock(&p->reload_lock);
	size_t nch = cert_report_nchanged(rep);
	jb_uint(r, "nchanged", nch);
	/* Files whose new content failed to load: their previous version
	 * is still served, which the operator must hear about. */
	jb_uint(r, "nkept", cert_report_nkept(rep));
	jb_arr_begin(r, "kept");
	for (size_t i = 0; i < cert_report_nkept(rep) && i < PX_FILES_LISTED; i++) {
		const char *why = NULL;

		jb_obj_begin(r, NULL);
		jb_str(r, "file", cert_report_kept(rep, i, &why));
		jb_str(r, "error", why);
		jb_obj_end(r);
	}
	jb_arr_end(r);
	skipped_json(r, rep);
	jb_arr_begin(r, "changed");
	for (size_t i = 0; i < nch && i < PX_FILES_LISTED; i++)
		jb_str(r, NULL, cert_report_changed(rep, i));
	jb_arr_end(r);
	jb_uint(r, "duration_ms", px_now_ms() - t0);
	log_info("reload-certs %s: generation %llu, %zu changed, in %llu ms",
	         log_escape(edir, sizeof(edir), dir, strlen(dir)),
	         (unsigned long long)p->generation, nch, (unsigned long long)(px_now_ms() - t0));
	cert_report_free(rep);
	return 0;
}

static int cmd_cert(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	const char *name = ctl_arg(req, 0);
	struct cert_store *st = cert_slot_acquire(p->slot);
	const struct cert_item *it;
	int def = 0;
	char hex[65];

	it = st ? cert_store_lookup(st, name, strlen(name), CERT_LOOKUP_ECDSA_OK, &def) : NULL;
	if (it == NULL) {
		char msg[400];

		cert_store_unref(st);
		/* "served": false tells the health gate that the name is absent,
		 * as opposed to a request that failed. */
		snprintf(msg, sizeof(msg), "no certificate would be served for '%.300s'", name);
		jb_bool(r, "ok", 0);
		jb_str(r, "error", msg);
		jb_bool(r, "served", 0);
		return 0;
	}
	const unsigned char *h = cert_item_sha256(it);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	jb_bool(r, "ok", 1);
	jb_str(r, "name", name);
	jb_str(r, "file", cert_item_file(it));
	jb_str(r, "sha256", hex);
	jb_bool(r, "default", def);
	/* The file on disk is not what is served: the health gate must not
	 * compare the two. */
	jb_bool(r, "kept", cert_store_file_kept(st, cert_item_file(it)));
	cert_store_unref(st);
	return 0;
}

static int cmd_sample(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	struct cert_store *st;
	/* The usage check let only digits through. */
	long n = strtol(ctl_arg(req, 0), NULL, 10);

	if (n > 1000)
		n = 1000;
	st = cert_slot_acquire(p->slot);
	size_t nn = st ? cert_store_nnames(st) : 0, pick[1000], k = 0;

	/* Distinct names (Floyd's sampling): a health gate that checks the
	 * same name twice checks one fewer. With n >= nn every name is
	 * listed once. */
	for (size_t j = nn > (size_t)n ? nn - (size_t)n : 0; j < nn; j++) {
		uint64_t x = 0;
		size_t t;
		int taken = 0;

		RAND_bytes((unsigned char *)&x, sizeof(x));
		t = (size_t)(x % (j + 1));
		for (size_t i = 0; i < k && !taken; i++)
			taken = pick[i] == t;
		pick[k++] = taken ? j : t;
	}
	jb_bool(r, "ok", 1);
	jb_arr_begin(r, "names");
	for (size_t i = 0; i < k; i++)
		jb_str(r, NULL, cert_store_name_at(st, pick[i]));
	jb_arr_end(r);
	cert_store_unref(st);
	return 0;
}

/* One page of the store's names, for the supervisor's name-loss guard,
 * which compares the whole set a candidate would serve with the set served
 * now. Pages keep each reply small; "total" and "generation" let the
 * caller notice a reload between two pages. */
static int cmd_names(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	/* The usage check let only digits through. */
	unsigned long long off = strtoull(ctl_arg(req, 0), NULL, 10);
	struct cert_store *st = cert_slot_acquire(p->slot);
	size_t nn = st ? cert_store_nnames(st) : 0;

	jb_bool(r, "ok", 1);
	pthread_mutex_lock(&p->reload_lock);
	jb_uint(r, "generation", p->generation);
	pthread_mutex_unlock(&p->reload_lock);
	jb_uint(r, "total", nn);
	jb_uint(r, "offset", off);
	jb_arr_begin(r, "names");
	for (size_t i = off; i < nn && i < off + PX_NAMES_PAGE; i++)
		jb_str(r, NULL, cert_store_name_at(st, i));
	jb_arr_end(r);
	cert_store_unref(st);
	return 0;
}

static int cmd_reload_tickets(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	char kerr[256];
	int k = px_tickets_load(ctx, kerr, sizeof(kerr));

	(void)req;
	if (k < 0)
		return ctl_reply_error(r, "%s", kerr);
	jb_bool(r, "ok", 1);
	jb_int(r, "keys", k);
	return 0;
}

static int cmd_cache_trim(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	/* A standby gives its decoded certificates back: they are rebuilt on
	 * demand (about 0.2 ms each) if it becomes live again. malloc_trim
	 * returns the freed pages to the kernel; without it glibc keeps them
	 * in the workers' arenas. */
	size_t evicted = cert_leaf_cache_trim();

	(void)ctx;
	(void)req;
	malloc_trim(0);
	jb_bool(r, "ok", 1);
	jb_uint(r, "evicted", evicted);
	return 0;
}

static int cmd_drain(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;
	int ready = PX_READY;

	(void)req;
	/* Draining changes nothing in the data path: listeners stay open and
	 * accepting (closing them would reset what the accept queue still
	 * holds). */
	atomic_compare_exchange_strong(&p->state, &ready, PX_DRAINING);
	jb_bool(r, "ok", 1);
	jb_str(r, "state", state_names[atomic_load(&p->state)]);
	jb_uint(r, "active", active_conns(p));
	return 0;
}

static int cmd_quit(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	struct px_proc *p = ctx;

	atomic_store(&p->quit_req, 1);
	jb_bool(r, "ok", 1);
	req->close_after = 1;
	return 0;
}

/*
 * The instance's commands (docs/control.md). The reloads are slow: they
 * run on the control server's single worker thread, which also keeps them
 * from overlapping, while `status` and `stats` stay answerable.
 */
const struct ctl_cmd px_ctl_cmds[] = {
    {"status", "status", 0, cmd_status},
    {"stats", "stats", 0, cmd_stats},
    {"reload-certs", "reload-certs [DIR]", CTL_SLOW, cmd_reload_certs},
    {"reload-tickets", "reload-tickets", CTL_SLOW, cmd_reload_tickets},
    {"cert", "cert NAME", 0, cmd_cert},
    {"sample", "sample N", 0, cmd_sample},
    {"names", "names N", 0, cmd_names},
    {"cache-trim", "cache-trim", 0, cmd_cache_trim},
    {"drain", "drain", 0, cmd_drain},
    {"quit", "quit", 0, cmd_quit},
    {NULL, NULL, 0, NULL},
};

struct ctl_server *px_control_start(struct px_proc *p, char *err, size_t errlen)
{
	const struct cfg *cfg = p->cfg;
	struct ctl_server_cfg sc = {
	    .path = cfg->instances[p->colour].control_socket,
	    .mode = (mode_t)cfg->supervisor.control_mode,
	    .cmds = px_ctl_cmds,
	    .ctx = p,
	    .slow_threads = 1,
	};

	return ctl_server_start(&sc, err, errlen);
}
