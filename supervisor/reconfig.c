/*
 * reconfig: applying a changed configuration file to a running switchyardd
 * (`switchyard reload-config`, SIGHUP, `systemctl reload`). The file is
 * read and validated in full first; an invalid file, or one that changes a
 * key only a restart can apply, is refused and the daemon keeps running on
 * what it has. Otherwise the new configuration replaces the old one in a
 * single step, and each changed key takes effect as its class says
 * (enum cfg_apply, docs/configuration.md "Changing the configuration").
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "supervisor/sv.h"

/* More changed keys than this are counted, and the first ones named. */
#define SV_RECONFIG_MAX_CHANGES 64

/*
 * Configurations that were replaced. Threads that read sv->cfg without a
 * lock (the gate, metrics, the control threads) may still hold the old
 * pointer, so it is never freed; a reload-config costs one struct cfg,
 * and operators reload a configuration a handful of times a day at most.
 */
struct sv_retired_cfg {
	struct cfg *cfg;
	struct sv_retired_cfg *next;
};

/* Appends the keys of ch[0..n) whose class is apply to out, comma-separated. */
static void list_keys(const struct cfg_change *ch, int n, int apply, char *out, size_t outlen)
{
	size_t len = 0;

	out[0] = '\0';
	for (int i = 0; i < n && len < outlen; i++) {
		if ((int)ch[i].apply != apply)
			continue;
		len +=
		    (size_t)snprintf(out + len, outlen - len, "%s%s", len ? ", " : "", ch[i].key);
	}
}

/* Logs and replies with every error in errs (one per line). */
static void report_invalid(struct sv *sv, const char *errs, int nerrs, struct json_buf *reply)
{
	const char *p = errs != NULL ? errs : "";
	char first[512] = "", msg[1024];

	jb_arr_begin(reply, "errors");
	while (*p != '\0') {
		size_t n = strcspn(p, "\n");

		jb_strn(reply, NULL, p, n);
		log_errx("reload-config: %.*s", (int)n, p);
		if (first[0] == '\0')
			snprintf(first, sizeof(first), "%.*s", (int)n, p);
		p += n;
		if (*p == '\n')
			p++;
	}
	jb_arr_end(reply);
	log_errx("reload-config: %s has %d error%s; still running on the previous configuration",
	         sv->cfgpath, nerrs, nerrs == 1 ? "" : "s");
	snprintf(msg, sizeof(msg),
	         "%s has %d error%s (first: %s); still running on the previous configuration",
	         sv->cfgpath, nerrs, nerrs == 1 ? "" : "s", first);
	jb_str(reply, "error", msg);
}

int sv_op_reload_config(struct sv *sv, struct json_buf *reply)
{
	struct cfg_change ch[SV_RECONFIG_MAX_CHANGES];
	struct sv_retired_cfg *old;
	char *errs = NULL, keys[1024], msg[1536];
	struct cfg *next;
	int nerrs = 0, n, shown, flip = 0, rc = -1;

	pthread_mutex_lock(&sv->op);
	sv_set_phase(sv, "reload-config", "reading", -1);
	next = cfg_load(sv->cfgpath, &errs, &nerrs);
	if (next == NULL) {
		jb_bool(reply, "ok", 0);
		report_invalid(sv, errs, nerrs, reply);
		goto done;
	}
	n = cfg_diff(sv->cfg, next, ch, SV_RECONFIG_MAX_CHANGES);
	shown = n < SV_RECONFIG_MAX_CHANGES ? n : SV_RECONFIG_MAX_CHANGES;
	list_keys(ch, shown, CFG_APPLY_RESTART, keys, sizeof(keys));
	if (keys[0] != '\0') {
		log_errx(
		    "reload-config: refused: %s changes %s, which only a restart of switchyardd "
		    "applies; still running on the previous configuration",
		    sv->cfgpath, keys);
		snprintf(msg, sizeof(msg),
		         "refused: %s changes %s, which only a restart of switchyardd applies "
		         "(docs/configuration.md); still running on the previous configuration",
		         sv->cfgpath, keys);
		jb_bool(reply, "ok", 0);
		jb_str(reply, "error", msg);
		jb_arr_begin(reply, "restart_keys");
		for (int i = 0; i < shown; i++)
			if (ch[i].apply == CFG_APPLY_RESTART)
				jb_str(reply, NULL, ch[i].key);
		jb_arr_end(reply);
		cfg_free(next);
		goto done;
	}
	old = malloc(sizeof(*old));
	if (old == NULL) {
		jb_bool(reply, "ok", 0);
		jb_str(reply, "error",
		       "out of memory; still running on the previous configuration");
		cfg_free(next);
		goto done;
	}
	pthread_mutex_lock(&sv->lock);
	old->cfg = sv->cfg;
	old->next = sv->retired_cfgs;
	sv->retired_cfgs = old;
	__atomic_store_n(&sv->cfg, next, __ATOMIC_RELEASE);
	sv->cfg_reloads++;
	pthread_mutex_unlock(&sv->lock);
	for (int i = 0; i < shown; i++)
		flip |= ch[i].apply == CFG_APPLY_FLIP;
	jb_bool(reply, "ok", 1);
	jb_str(reply, "file", sv->cfgpath);
	jb_uint(reply, "reloads", sv->cfg_reloads);
	jb_arr_begin(reply, "changed");
	for (int i = 0; i < shown; i++) {
		jb_obj_begin(reply, NULL);
		jb_str(reply, "key", ch[i].key);
		jb_str(reply, "apply", cfg_apply_name(ch[i].apply));
		jb_obj_end(reply);
	}
	jb_arr_end(reply);
	jb_bool(reply, "flip_needed", flip);
	if (n == 0) {
		log_info("reload-config: %s: nothing changed", sv->cfgpath);
	} else {
		list_keys(ch, shown, CFG_APPLY_LIVE, keys, sizeof(keys));
		if (keys[0] != '\0')
			log_info("reload-config: applied now: %s", keys);
		list_keys(ch, shown, CFG_APPLY_FLIP, keys, sizeof(keys));
		if (keys[0] != '\0')
			log_info("reload-config: reaches traffic with the next `switchyard reload` "
			         "(standby restart and flip): %s",
			         keys);
	}
	rc = 0;
done:
	sv_set_phase(sv, NULL, NULL, -1);
	pthread_mutex_unlock(&sv->op);
	free(errs);
	return rc;
}

int sv_cfg_file_differs(struct sv *sv, char *err, size_t errlen)
{
	struct cfg_change ch[4];
	char *errs = NULL, keys[400];
	struct cfg *file;
	int nerrs = 0, n;

	file = cfg_load(sv->cfgpath, &errs, &nerrs);
	if (file == NULL) {
		snprintf(
		    err, errlen,
		    "%s has %d error%s (first: %.*s): a restarted instance would not start; fix "
		    "the file (switchyard check-config)",
		    sv->cfgpath, nerrs, nerrs == 1 ? "" : "s",
		    errs != NULL ? (int)strcspn(errs, "\n") : 0, errs != NULL ? errs : "");
		free(errs);
		return 1;
	}
	n = cfg_diff(sv->cfg, file, ch, 4);
	cfg_free(file);
	if (n == 0)
		return 0;
	keys[0] = '\0';
	for (int i = 0; i < n && i < 4; i++)
		snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s", i ? ", " : "",
		         ch[i].key);
	snprintf(err, errlen,
	         "%s changed since switchyardd read it (%s%s): run `switchyard reload-config` "
	         "first, so that the supervisor and the restarted instance use the same "
	         "configuration",
	         sv->cfgpath, keys, n > 4 ? ", ..." : "");
	return 1;
}

/* SIGHUP: the same as reload-config, off the main loop (which must keep
 * watching the instances while a reload holds sv->op for minutes). */
static void *hup_thread(void *arg)
{
	struct sv *sv = arg;
	struct json_buf jb;

	jb_init(&jb);
	(void)sv_op_reload_config(sv, &jb);
	jb_free(&jb);
	return NULL;
}

void sv_reconfig_on_hup(struct sv *sv)
{
	pthread_attr_t attr;
	pthread_t t;

	log_info("SIGHUP: re-reading %s", sv->cfgpath);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, hup_thread, sv) != 0)
		log_warnx("SIGHUP: cannot start a thread; run `switchyard reload-config`");
	pthread_attr_destroy(&attr);
}
