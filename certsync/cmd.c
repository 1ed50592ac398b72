/*
 * `switchyard certsync`: options, the lock, and the report a run prints
 * (docs/certsync.md); run.c does the work.
 */
#include "certsync/cs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certstore/cert.h"
#include "common/cfg.h"
#include "common/json.h"
#include "common/log.h"
#include "common/privs.h"

static int cs_lock(struct cs_run *r, int *fd)
{
	char path[PATH_MAX];

	cs_path(path, sizeof(path), r->base, "lock");
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0) {
		cs_err(r, "%s: cannot open the lock file: %s", path, strerror(errno));
		return -1;
	}
	/* flock, not a pid file: the kernel releases it when a run dies, so
	 * a crashed run never blocks the next one. */
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0)
		return 1;
	return 0;
}

static int cs_mkdirs(struct cs_run *r)
{
	char p[PATH_MAX], err[PATH_MAX + 128];
	const char *sub[] = {"", "/sets", "/staging"};
	uid_t uid;

	if (mkdir(r->cfg->supervisor.state_dir, 0750) != 0 && errno != EEXIST) {
		cs_err(r, "%s: cannot create the state directory: %s", r->cfg->supervisor.state_dir,
		       strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", r->base, sub[i]);
		if (mkdir(p, 0750) != 0 && errno != EEXIST) {
			cs_err(r, "%s: cannot create: %s", p, strerror(errno));
			return -1;
		}
	}
	/* The instances run as proxy.user and load the sets long after their
	 * drop: their group may search the way down to the sets, and
	 * cs_set_finish opens each new set to it. The staging copy stays
	 * closed. */
	r->share = priv_proxy_ids(r->cfg->proxy.user, r->cfg->proxy.group, &uid, &r->gid, err,
	                          sizeof(err));
	if (r->share < 0) {
		cs_err(r, "%s", err);
		return -1;
	}
	r->share = r->share == 0;
	if (r->share) {
		const char *const dirs[] = {r->cfg->supervisor.state_dir, r->base, p};

		snprintf(p, sizeof(p), "%s/sets", r->base);
		for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
			if (priv_share(dirs[i], r->gid, S_IXGRP, err, sizeof(err)) < 0) {
				cs_err(r, "%s (proxy.user %s must reach the sets)", err,
				       r->cfg->proxy.user);
				return -1;
			}
	}
	return 0;
}

/* Expiring soon: served units whose leaf expires within the warning window. */
static int cs_expiring(const struct cs_run *r, const struct cs_unit *u)
{
	time_t limit = time(NULL) + (time_t)r->cfg->certsync.expiry_warn_days * 86400;

	return u->sev != CERT_SKIP && u->not_after != 0 && u->not_after < limit;
}

static void cs_print(struct cs_run *r, const char *status, int code, double ms)
{
	size_t kept = 0;

	for (size_t i = 0; i < r->next.n; i++)
		kept += r->next.v[i].kept_prev;
	if (r->json) {
		struct json_buf jb;

		jb_init(&jb);
		jb_obj_begin(&jb, NULL);
		jb_str(&jb, "status", status);
		jb_int(&jb, "exit", code);
		if (r->err[0])
			jb_str(&jb, "error", r->err);
		jb_str(&jb, "source", r->source);
		jb_str(&jb, "previous_set", r->cur_id[0] ? r->cur_id : NULL);
		jb_str(&jb, "set", r->promoted ? r->new_id : NULL);
		jb_uint(&jb, "files", r->src.n);
		jb_uint(&jb, "units", r->next.n);
		jb_uint(&jb, "changed", r->changed_units);
		jb_uint(&jb, "validated", r->validated);
		jb_uint(&jb, "cached_verdicts", r->cached);
		jb_uint(&jb, "skipped", r->bad_units);
		jb_uint(&jb, "kept_previous", kept);
		jb_uint(&jb, "names_before", r->old_names);
		jb_uint(&jb, "names_after", r->new_names);
		jb_uint(&jb, "names_gone", r->gone_names);
		jb_arr_begin(&jb, "problems");
		for (size_t i = 0; i < r->next.n; i++) {
			const struct cs_unit *u = &r->next.v[i];

			if (u->msg == NULL)
				continue;
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "file", u->name);
			jb_str(&jb, "severity", u->rejected ? "skipped" : "warning");
			jb_str(&jb, "message", u->msg);
			jb_bool(&jb, "kept_previous", u->kept_prev);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		jb_arr_begin(&jb, "expiring");
		for (size_t i = 0; i < r->next.n; i++) {
			const struct cs_unit *u = &r->next.v[i];

			if (!cs_expiring(r, u))
				continue;
			jb_obj_begin(&jb, NULL);
			jb_str(&jb, "file", u->name);
			jb_str(&jb, "names", u->names);
			jb_int(&jb, "not_after", (int64_t)u->not_after);
			jb_obj_end(&jb);
		}
		jb_arr_end(&jb);
		if (r->promoted)
			jb_double(&jb, "promoted_ms", r->promoted_ms);
		jb_double(&jb, "duration_ms", ms);
		jb_obj_end(&jb);
		printf("%s\n", jb_cstr(&jb));
		jb_free(&jb);
		return;
	}
	for (size_t i = 0; i < r->next.n; i++) {
		const struct cs_unit *u = &r->next.v[i];

		if (u->msg != NULL)
			printf("%s: %s/%s: %s%s\n", u->rejected ? "skipped" : "warning", r->source,
			       u->name, u->msg,
			       u->kept_prev ? " (the previous version stays served)" : "");
		if (cs_expiring(r, u)) {
			char when[32];
			struct tm tm;

			gmtime_r(&u->not_after, &tm);
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
			printf("warning: %s/%s expires %s (%s)\n", r->source, u->name, when,
			       u->names);
		}
	}
	if (r->err[0])
		fprintf(stderr, "certsync: %s\n", r->err);
	printf("certsync: %s: %zu files, %zu changed, %zu validated (%zu cached), %zu skipped, "
	       "names %zu -> %zu (%zu gone)%s%s, %.0f ms\n",
	       status, r->src.n, r->changed_units, r->validated, r->cached, r->bad_units,
	       r->old_names, r->new_names, r->gone_names, r->promoted ? ", set " : "",
	       r->promoted ? r->new_id : "", ms);
}

int cs_cmd(const char *cfgpath, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"dry-run", no_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"allow-mass-delete", no_argument, NULL, 'M'},
	    {"no-reload", no_argument, NULL, 'R'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cs_run r;
	struct timespec t0, t1;
	struct cfg *cfg;
	int ch, lockfd = -1, code;
	const char *status;

	memset(&r, 0, sizeof(r));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			r.dry_run = 1;
			break;
		case 'j':
			r.json = 1;
			break;
		case 'M':
			r.allow_mass_delete = 1;
			break;
		case 'R':
			r.no_reload = 1;
			break;
		default:
			fprintf(stderr, "usage: switchyard certsync [-c FILE] [--dry-run] [--json] "
			                "[--allow-mass-delete] [--no-reload]\n");
			return ch == 'h' ? CS_EXIT_OK : CS_EXIT_USAGE;
		}
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return CS_EXIT_ERROR;
	r.cfg = cfg;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	r.t0 = t0;
	snprintf(r.base, sizeof(r.base), "%s/certsync", cfg->supervisor.state_dir);
	if (cs_mkdirs(&r) < 0) {
		code = CS_EXIT_ERROR;
		status = "error";
		goto done;
	}
	switch (cs_lock(&r, &lockfd)) {
	case 1:
		printf("certsync: another run holds %s/lock; exiting without doing anything\n",
		       r.base);
		code = CS_EXIT_RUNNING;
		goto out;
	case -1:
		code = CS_EXIT_ERROR;
		status = "error";
		goto done;
	default:
		break;
	}
	code = cs_execute(&r);
	if (code == CS_NO_CHANGES) {
		code = CS_EXIT_OK;
		status = "no changes";
	} else {
		static const char *const names[] = {"applied", "error", "partial", "refused"};
		status = code <= CS_EXIT_REFUSED ? names[code] : "error";
		if (r.dry_run && (code == CS_EXIT_OK || code == CS_EXIT_PARTIAL))
			status = "dry run: would apply";
	}
	if (!r.dry_run) {
		if (r.tmpdir[0] != '\0')
			cs_rmtree(r.tmpdir);
		/* A set removed unpromoted leaves blobs no set names. */
		cs_sets_prune(r.base, r.cur_id, r.tmpdir, cfg->certsync.keep_versions,
		              r.placed && !r.promoted);
	} else if (r.tmpdir[0] != '\0') {
		rmdir(r.tmpdir);
	}
done:
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cs_print(&r, status, code,
	         (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
	if (!r.dry_run) {
		struct cs_last_run lr = {.time = (int64_t)time(NULL),
		                         .exit = code,
		                         .names_before = r.old_names,
		                         .names_after = r.new_names,
		                         .names_gone = r.gone_names};
		char werr[PATH_MAX + 200];

		snprintf(lr.status, sizeof(lr.status), "%s", status);
		lr.duration_ms =
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (cs_last_run_write(cfg->supervisor.state_dir, &lr, werr, sizeof(werr)) < 0)
			log_warnx("certsync: cannot record the run: %s", werr);
	}
out:
	if (lockfd >= 0)
		close(lockfd);
	cs_run_free(&r);
	cfg_free(cfg);
	return code;
}
