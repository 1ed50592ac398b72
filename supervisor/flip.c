/*
 * flip: moving the service ports from one instance to the other, and
 * everything around it: the gate, the one netfilter commit, the drain of the
 * old instance, rollback, failover when the live instance dies, and the
 * repair of rules someone changed by hand. docs/flip.md walks through it.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "certstore/cert.h"
#include "common/ctl.h"
#include "common/log.h"
#include "supervisor/sv.h"

void sv_set_phase(struct sv *sv, const char *name, const char *phase, int inst)
{
	pthread_mutex_lock(&sv->lock);
	if (name == NULL) {
		sv->op_name[0] = sv->op_phase[0] = sv->op_dir[0] = '\0';
		sv->op_flip_after = 0;
	} else {
		if (strcmp(sv->op_name, name) != 0)
			sv->op_start = sv_now_ms();
		snprintf(sv->op_name, sizeof(sv->op_name), "%s", name);
		snprintf(sv->op_phase, sizeof(sv->op_phase), "%s", phase);
		sv->op_inst = inst;
	}
	pthread_mutex_unlock(&sv->lock);
}

/* Records one flip attempt; returns its index. Caller holds sv->lock. */
static uint64_t rec_flip(struct sv *sv, int from, int to, const char *reason, const char *result,
                         int64_t gate_ms, int64_t commit_us, int64_t latency_us)
{
	uint64_t idx = sv->nflips++;
	struct sv_flip_rec *r = &sv->flips[idx % SV_FLIPS_KEPT];

	memset(r, 0, sizeof(*r));
	r->used = 1;
	r->at = time(NULL);
	r->from = from;
	r->to = to;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	snprintf(r->result, sizeof(r->result), "%s", result);
	r->from_gen = from >= 0 ? sv->inst[from].generation : 0;
	r->to_gen = sv->inst[to].generation;
	r->gate_ms = gate_ms;
	r->commit_us = commit_us;
	r->latency_us = latency_us;
	r->drain_ms = -1;
	return idx;
}

static void rec_latency(struct sv *sv, int64_t latency_us)
{
	static const int64_t bounds_us[] = {1000, 2000, 5000, 10000, 25000, 50000, 100000};
	size_t i;

	for (i = 0; i < sizeof(bounds_us) / sizeof(bounds_us[0]); i++)
		if (latency_us <= bounds_us[i])
			break;
	sv->flip_latency_buckets[i]++;
	sv->flip_latency_sum_s += (double)latency_us / 1e6;
}

/* The commit and the state change; caller holds commit_mu. */
static int commit_flip(struct sv *sv, enum cfg_colour from, enum cfg_colour to, const char *reason,
                       int64_t gate_ms, int64_t gate_us, int64_t t_cmd_us, struct sv_flip_out *out)
{
	char err[512];
	int64_t t0 = sv_now_us(), t1;
	uint64_t idx;
	int old_alive;

	if (nf_flip(sv->cfg, to, err, sizeof(err)) < 0) {
		snprintf(out->error, sizeof(out->error), "netfilter commit failed: %s", err);
		pthread_mutex_lock(&sv->lock);
		rec_flip(sv, from, to, reason, "commit-failed", gate_ms, sv_now_us() - t0, -1);
		sv->flips_failed++;
		pthread_mutex_unlock(&sv->lock);
		sv_state_save(sv);
		log_warnx("flip %s -> %s (%s): %s", cfg_colour_name(from), cfg_colour_name(to),
		          reason, out->error);
		return -1;
	}
	t1 = sv_now_us();
	out->commit_us = t1 - t0;
	out->latency_us = t1 - t_cmd_us - gate_us;
	pthread_mutex_lock(&sv->lock);
	old_alive = sv->inst[from].state != SV_FAILED && sv->inst[from].pid > 0;
	sv->prev_live = from;
	sv->prev_gen = sv->inst[from].generation;
	sv->live = to;
	sv->inst[to].state = SV_LIVE;
	if (sv->inst[to].niced) {
		sv_inst_renice(sv->inst[to].pid, 0);
		sv->inst[to].niced = 0;
	}
	out->to_gen = sv->inst[to].generation;
	sv_inst_free_changed(&sv->inst[to]);
	idx = rec_flip(sv, from, to, reason, old_alive ? "draining" : "ok", gate_ms, out->commit_us,
	               out->latency_us);
	if (old_alive) {
		sv->inst[from].state = SV_DRAINING;
		sv->inst[from].drain_start = sv_now_ms();
		sv->inst[from].drain_flip = (int)(idx % SV_FLIPS_KEPT);
	}
	sv->flips_ok++;
	rec_latency(sv, out->latency_us);
	pthread_mutex_unlock(&sv->lock);
	sv_state_save(sv);
	return old_alive;
}

void sv_flip_out_json(const struct sv_flip_out *out, struct json_buf *jb)
{
	if (out->from >= 0)
		jb_str(jb, "from", cfg_colour_name((enum cfg_colour)out->from));
	if (out->to >= 0)
		jb_str(jb, "to", cfg_colour_name((enum cfg_colour)out->to));
	if (out->to_set[0] != '\0')
		jb_str(jb, "set", out->to_set);
	jb_bool(jb, "flipped", out->ok);
	jb_bool(jb, "gate_refused", out->gate_refused);
	jb_bool(jb, "names_refused", out->loss_refused);
	sv_loss_json(&out->loss, jb);
	jb_int(jb, "names_ms", out->names_ms);
	jb_obj_begin(jb, "gate");
	jb_int(jb, "ms", out->gate.ms);
	jb_uint(jb, "checked", out->gate.checked);
	jb_uint(jb, "failed", out->gate.failed);
	jb_uint(jb, "absent", out->gate.absent);
	if (out->gate.error[0] != '\0')
		jb_str(jb, "error", out->gate.error);
	jb_obj_end(jb);
	if (out->ok) {
		jb_int(jb, "commit_us", out->commit_us);
		jb_int(jb, "latency_us", out->latency_us);
	}
}

int sv_flip_to(struct sv *sv, enum cfg_colour to, const char *reason, int flags, int64_t t_cmd_us,
               struct sv_flip_out *out)
{
	struct sv_inst *in = &sv->inst[to];
	struct sv_names next = {NULL, 0};
	enum cfg_colour from;
	char **changed = NULL, err[512], *reply = NULL;
	size_t nchanged = 0;
	int64_t gate_ms = -1, gate_us = 0, names_us = 0;
	int r, names_ok;

	memset(out, 0, sizeof(*out));
	out->gate.ms = -1;
	out->to = to;
	pthread_mutex_lock(&sv->lock);
	from = (enum cfg_colour)sv->live;
	out->from = from;
	snprintf(out->to_set, sizeof(out->to_set), "%s", in->set_id);
	if ((int)to == sv->live) {
		snprintf(out->error, sizeof(out->error), "%s is already live", cfg_colour_name(to));
		pthread_mutex_unlock(&sv->lock);
		return -1;
	}
	if (!sv_state_serving(in->state) || in->pid <= 0) {
		if (in->state == SV_LOADING)
			snprintf(out->error, sizeof(out->error),
			         "%s is still loading (%llu/%llu): not flipping",
			         cfg_colour_name(to), (unsigned long long)in->loaded,
			         (unsigned long long)in->total);
		else
			snprintf(out->error, sizeof(out->error), "%s is %s: not flipping%s%s",
			         cfg_colour_name(to), sv_state_name(in->state),
			         in->last_error[0] ? " (last error: " : "",
			         in->last_error[0] ? in->last_error : "");
		if (in->last_error[0])
			strncat(out->error, ")", sizeof(out->error) - strlen(out->error) - 1);
		pthread_mutex_unlock(&sv->lock);
		return -1;
	}
	if (!(flags & (SV_FLIP_FORCE | SV_FLIP_NOGATE)) && in->nchanged > 0) {
		changed = calloc(in->nchanged, sizeof(*changed));
		for (size_t i = 0; changed != NULL && i < in->nchanged; i++)
			if ((changed[nchanged] = strdup(in->changed[i])) != NULL)
				nchanged++;
	}
	pthread_mutex_unlock(&sv->lock);

	/* The name-loss guard runs before the gate: a set that lacks most
	 * names may well serve the rest correctly. */
	sv_set_phase(sv, sv->op_name[0] ? sv->op_name : "flip", "names", to);
	names_us = sv_now_us();
	r = names_ok = sv_guard_check(sv, to, &next, &out->loss, err, sizeof(err));
	/* Like the gate, the comparison is a check before the flip, not part
	 * of the command-to-commit latency. */
	names_us = sv_now_us() - names_us;
	out->names_ms = names_us / 1000;
	if (r < 0 && !(flags & SV_FLIP_ALLOW_LOSS)) {
		/* A target that cannot list its names (a proxy older than
		 * this supervisor) is promoted only when the operator allows
		 * a loss nobody measured. */
		snprintf(out->error, sizeof(out->error),
		         "cannot compare the names %s serves with those served now: %.380s; use "
		         "--allow-name-loss to promote it unchecked",
		         cfg_colour_name(to), err);
		goto refused;
	} else if (r < 0) {
		log_warnx("flip %s -> %s (%s): --allow-name-loss: names not compared: %s",
		          cfg_colour_name(from), cfg_colour_name(to), reason, err);
	}
	if (sv_loss_too_much(sv->cfg, &out->loss)) {
		char text[sizeof(out->error)];

		sv_loss_text(sv->cfg, &out->loss, text, sizeof(text));
		if (!(flags & SV_FLIP_ALLOW_LOSS)) {
			out->loss_refused = 1;
			snprintf(
			    out->error, sizeof(out->error),
			    "refusing to promote %s: %.450s; use --allow-name-loss to promote it "
			    "anyway",
			    cfg_colour_name(to), text);
			pthread_mutex_lock(&sv->lock);
			rec_flip(sv, from, to, reason, "names-refused", -1, -1, -1);
			sv->flips_failed++;
			pthread_mutex_unlock(&sv->lock);
			sv_state_save(sv);
			goto refused;
		}
		log_warnx("flip %s -> %s (%s): --allow-name-loss: %s", cfg_colour_name(from),
		          cfg_colour_name(to), reason, text);
	}

	if (!(flags & (SV_FLIP_FORCE | SV_FLIP_NOGATE))) {
		int64_t g0 = sv_now_us();

		sv_set_phase(sv, sv->op_name[0] ? sv->op_name : "flip", "gate", to);
		r = sv_gate_run(sv, to, changed, nchanged, &out->gate);
		for (size_t i = 0; i < nchanged; i++)
			free(changed[i]);
		free(changed);
		gate_us = sv_now_us() - g0 + names_us;
		gate_ms = out->gate.ms;
		if (r < 0) {
			out->gate_refused = 1;
			snprintf(out->error, sizeof(out->error), "health gate refused %s: %s",
			         cfg_colour_name(to), out->gate.error);
			pthread_mutex_lock(&sv->lock);
			rec_flip(sv, from, to, reason, "gate-refused", gate_ms, -1, -1);
			sv->gate_refusals++;
			sv->flips_failed++;
			pthread_mutex_unlock(&sv->lock);
			sv_state_save(sv);
			log_warnx("flip %s -> %s (%s): %s", cfg_colour_name(from),
			          cfg_colour_name(to), reason, out->error);
			sv_names_free(&next);
			return -1;
		}
	} else {
		gate_us = names_us;
		if (flags & SV_FLIP_FORCE)
			log_warnx("flip %s -> %s: gate skipped (--force)", cfg_colour_name(from),
			          cfg_colour_name(to));
	}

	sv_set_phase(sv, sv->op_name[0] ? sv->op_name : "flip", "commit", to);
	pthread_mutex_lock(&sv->commit_mu);
	pthread_mutex_lock(&sv->lock);
	r = sv->live == (int)from && sv_state_serving(in->state) && in->pid > 0;
	pthread_mutex_unlock(&sv->lock);
	if (!r) {
		pthread_mutex_unlock(&sv->commit_mu);
		snprintf(out->error, sizeof(out->error),
		         "the situation changed during the gate (failover or crash): not flipping");
		sv_names_free(&next);
		return -1;
	}
	r = commit_flip(sv, from, to, reason, gate_ms, gate_us, t_cmd_us, out);
	pthread_mutex_unlock(&sv->commit_mu);
	if (r < 0) {
		sv_names_free(&next);
		return -1;
	}
	out->ok = 1;
	if (names_ok == 0) {
		sv_served_set(sv, &next);
	} else {
		/* Promoted unchecked: what it serves is unknown, and the main
		 * loop learns it once the instance can list its names. */
		pthread_mutex_lock(&sv->lock);
		sv->served_known = 0;
		sv->names_lost = 0;
		pthread_mutex_unlock(&sv->lock);
	}
	/* Durations in log lines are in ms everywhere, with two decimals
	 * where sub-millisecond matters; a flip without a gate says so rather
	 * than "gate -1 ms". */
	if (gate_ms >= 0)
		log_info("flip %s -> %s (%s): committed in %.2f ms, command to commit %.2f ms, "
		         "gate %lld ms",
		         cfg_colour_name(from), cfg_colour_name(to), reason,
		         (double)out->commit_us / 1e3, (double)out->latency_us / 1e3,
		         (long long)gate_ms);
	else
		log_info("flip %s -> %s (%s): committed in %.2f ms, command to commit %.2f ms, "
		         "no gate",
		         cfg_colour_name(from), cfg_colour_name(to), reason,
		         (double)out->commit_us / 1e3, (double)out->latency_us / 1e3);
	if (r == 1) {
		/* The old instance keeps listening and accepting: its accept
		 * queue and SYNs pinned by conntrack still lead to it. */
		sv_set_phase(sv, sv->op_name[0] ? sv->op_name : "flip", "drain", from);
		if (sv_inst_request(sv, from, "drain", &reply, 2000, err, sizeof(err)) < 0)
			log_warnx("drain %s: %s", cfg_colour_name(from), err);
		free(reply);
	}
	return 0;
refused:
	for (size_t i = 0; i < nchanged; i++)
		free(changed[i]);
	free(changed);
	sv_names_free(&next);
	log_warnx("flip %s -> %s (%s): %s", cfg_colour_name(from), cfg_colour_name(to), reason,
	          out->error);
	return -1;
}

int sv_op_flip(struct sv *sv, int flags, struct json_buf *reply)
{
	int64_t t_cmd = sv_now_us();
	struct sv_flip_out out;
	int64_t waited;
	int rc;

	pthread_mutex_lock(&sv->op);
	/* Queued behind another operation (a reload): the reply says how
	 * long, and the CLI said what it waited for meanwhile. */
	waited = (sv_now_us() - t_cmd) / 1000;
	sv_set_phase(sv, "flip", "start", !sv->live);
	/* The flip's latency starts when it may run, not in the queue. */
	rc = sv_flip_to(sv, (enum cfg_colour) !sv->live,
	                flags & SV_FLIP_FORCE ? "forced" : "operator",
	                flags & (SV_FLIP_FORCE | SV_FLIP_ALLOW_LOSS), sv_now_us(), &out);
	sv_set_phase(sv, NULL, NULL, -1);
	pthread_mutex_unlock(&sv->op);
	jb_bool(reply, "ok", rc == 0);
	if (rc < 0)
		jb_str(reply, "error", out.error);
	if (out.ok)
		jb_uint(reply, "generation", out.to_gen);
	jb_int(reply, "waited_ms", waited);
	sv_flip_out_json(&out, reply);
	return rc;
}

int sv_op_rollback(struct sv *sv, int flags, struct json_buf *reply)
{
	int64_t t_cmd = sv_now_us();
	struct sv_flip_out out;
	char msg[sizeof(out.error)] = "";
	int prev, rc = -1;

	memset(&out, 0, sizeof(out));
	out.from = out.to = -1;
	out.gate.ms = -1;
	pthread_mutex_lock(&sv->op);
	pthread_mutex_lock(&sv->lock);
	prev = sv->prev_live;
	if (prev < 0 || prev == sv->live)
		snprintf(msg, sizeof(msg), "no previous flip to roll back");
	else if (sv->inst[prev].state == SV_FAILED || sv->inst[prev].pid <= 0 ||
	         sv->inst[prev].generation != sv->prev_gen)
		snprintf(msg, sizeof(msg),
		         "%s no longer holds generation %llu (it is %s with generation %llu): "
		         "rollback impossible, use reload or flip",
		         cfg_colour_name((enum cfg_colour)prev), (unsigned long long)sv->prev_gen,
		         sv_state_name(sv->inst[prev].state),
		         (unsigned long long)sv->inst[prev].generation);
	pthread_mutex_unlock(&sv->lock);
	if (msg[0] == '\0') {
		/* No gate: the previous generation differs from the files now
		 * on disk by design, and it was serving a moment ago. */
		sv_set_phase(sv, "rollback", "commit", prev);
		rc = sv_flip_to(sv, (enum cfg_colour)prev, "rollback",
		                SV_FLIP_NOGATE | (flags & SV_FLIP_ALLOW_LOSS), t_cmd, &out);
		snprintf(msg, sizeof(msg), "%s", out.error);
		sv_set_phase(sv, NULL, NULL, -1);
	}
	pthread_mutex_unlock(&sv->op);
	jb_bool(reply, "ok", rc == 0);
	if (rc < 0)
		jb_str(reply, "error", msg);
	if (out.ok)
		jb_uint(reply, "generation", out.to_gen);
	sv_flip_out_json(&out, reply);
	return rc;
}

/* Waits until instance c serves; false on timeout. With spawns0 >= 0 it
 * must be served by the first process started after spawns0 was read: an
 * instance that crashes during preload must not be flipped to, even if its
 * respawn would load fine. */
static int wait_serving(struct sv *sv, enum cfg_colour c, int64_t timeout_ms, int64_t spawns0)
{
	int64_t deadline = sv_now_ms() + timeout_ms;

	while (sv_now_ms() < deadline && !sv->stop) {
		int ok, died = 0;

		pthread_mutex_lock(&sv->lock);
		ok = sv_state_serving(sv->inst[c].state) && sv->inst[c].pid > 0;
		if (spawns0 >= 0)
			died = sv->inst[c].spawns > (uint32_t)spawns0 + 1 ||
			       (sv->inst[c].spawns == (uint32_t)spawns0 + 1 &&
			        sv->inst[c].state == SV_FAILED && !sv->inst[c].stop_wanted);
		/* A crash loop (the second death in a row, or a port that
		 * another process holds) ends the wait at once with its
		 * cause: the backoff would otherwise hide it for minutes. */
		else
			died = sv->inst[c].state == SV_FAILED &&
			       (sv->inst[c].fails_in_row >= 2 ||
			        strstr(sv->inst[c].last_error, " in use ") != NULL);
		pthread_mutex_unlock(&sv->lock);
		if (died)
			return 0;
		if (ok && (spawns0 < 0 || sv->inst[c].spawns == (uint32_t)spawns0 + 1))
			return 1;
		usleep(20 * 1000);
	}
	return 0;
}

/* Copies a list of files from the instance's reload-certs reply into the
 * reload's reply, and logs each: "kept" are files whose new content failed
 * while their previous version stays served (the names stay, but not with
 * the files on disk), "skipped_files" files that loaded nothing. */
static void files_json(const struct json_doc *r, const char *key, const char *verb,
                       struct json_buf *reply)
{
	int n = r != NULL ? json_array_len(r, key) : 0;

	jb_arr_begin(reply, key);
	for (int i = 0; i < n; i++) {
		char path[64], file[CFG_STR_MAX] = "", why[600] = "", esc[LOG_ESC_LEN(256)];

		snprintf(path, sizeof(path), "%s.%d.file", key, i);
		(void)json_get_str(r, path, file, sizeof(file));
		snprintf(path, sizeof(path), "%s.%d.error", key, i);
		(void)json_get_str(r, path, why, sizeof(why));
		jb_obj_begin(reply, NULL);
		jb_str(reply, "file", file);
		jb_str(reply, "error", why);
		jb_obj_end(reply);
		log_warnx("reload: %s %s: %s", log_escape(esc, sizeof(esc), file, strlen(file)),
		          verb, why);
	}
	jb_arr_end(reply);
}

static int file_changed_since(const char *path, time_t then)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_mtime != then;
}

int sv_op_reload(struct sv *sv, const char *dir, int opts, struct json_buf *reply)
{
	int no_flip = opts & SV_RELOAD_NO_FLIP, restart = opts & SV_RELOAD_RESTART;
	struct sv_flip_out out;
	enum cfg_colour to;
	struct sv_inst *in;
	char err[600] = "", line[CTL_LINE_MAX], *r = NULL, why[64] = "";
	struct json_doc *doc = NULL;
	char esc[1024];
	int64_t t0 = sv_now_ms(), load_ms = 0, v;
	uint64_t generation = 0, nchanged = 0, loaded = 0, skipped = 0, total;
	int have_skipped = 0;
	int rc = -1, ok = 0;

	memset(&out, 0, sizeof(out));
	out.from = out.to = -1;
	out.gate.ms = -1;
	if (dir == NULL || dir[0] == '\0')
		dir = sv->cfg->certs.directory;
	pthread_mutex_lock(&sv->op);
	to = (enum cfg_colour) !sv->live;
	in = &sv->inst[to];
	sv_set_phase(sv, "reload", "waiting", to);
	pthread_mutex_lock(&sv->lock);
	snprintf(sv->op_dir, sizeof(sv->op_dir), "%s", dir);
	sv->op_flip_after = !no_flip;
	pthread_mutex_unlock(&sv->lock);
	if (!wait_serving(sv, to, 600000, -1)) {
		pthread_mutex_lock(&sv->lock);
		snprintf(err, sizeof(err), "%s (%s) cannot take the reload%s%.300s%s",
		         cfg_colour_name(to), sv_state_name(in->state),
		         in->last_error[0] ? " (last error: " : "", in->last_error,
		         in->last_error[0] ? "); it is respawned with backoff" : "");
		pthread_mutex_unlock(&sv->lock);
		goto done;
	}
	pthread_mutex_lock(&sv->lock);
	if (!restart && file_changed_since(sv->proxy_bin, in->bin_mtime))
		snprintf(why, sizeof(why), "the proxy binary changed");
	else if (!restart && file_changed_since(sv->cfgpath, in->cfg_mtime))
		snprintf(why, sizeof(why), "the configuration changed");
	pthread_mutex_unlock(&sv->lock);
	if (why[0] != '\0') {
		log_info("reload: restarting %s because %s", cfg_colour_name(to), why);
		restart = 1;
	}
	if (restart) {
		int64_t spawns0;

		/* The new process reads the file as it is now: it must be the
		 * configuration the supervisor (gate, guard, rules) runs on. */
		if (sv_cfg_file_differs(sv, err, sizeof(err))) {
			log_warnx("reload: %s", err);
			goto done;
		}
		sv_set_phase(sv, "reload", "restart", to);
		pthread_mutex_lock(&sv->lock);
		spawns0 = in->spawns;
		/* The new process loads the directory asked for (-d): a
		 * respawn starts from the set its instance held. */
		sv_inst_set_dir(in, dir);
		pthread_mutex_unlock(&sv->lock);
		sv_inst_stop(sv, to, 10000);
		sv_set_phase(sv, "reload", "loading", to);
		if (!wait_serving(sv, to, 3600000, spawns0)) {
			pthread_mutex_lock(&sv->lock);
			snprintf(
			    err, sizeof(err),
			    "%s failed while loading after the restart (%.300s): not flipping; "
			    "it is being respawned",
			    cfg_colour_name(to), in->last_error);
			pthread_mutex_unlock(&sv->lock);
			goto done;
		}
	}
	if (!restart && strpbrk(dir, " \t") != NULL) {
		/* A request is words separated by blanks (docs/control.md), so a
		 * directory name with one cannot travel in reload-certs. */
		snprintf(err, sizeof(err),
		         "certificate directory '%.300s' contains a blank, which the control "
		         "protocol cannot carry: rename it",
		         dir);
		goto done;
	}
	if (!restart) {
		sv_set_phase(sv, "reload", "loading", to);
		total = cert_dir_nfiles(dir);
		pthread_mutex_lock(&sv->lock);
		in->reloading = 1;
		/* The instance cannot answer `status` while it loads, so the
		 * figures of its previous load would stand for this one: a
		 * directory with fewer files then showed more loaded than it
		 * holds. */
		in->loaded = 0;
		in->total = total;
		pthread_mutex_unlock(&sv->lock);
		snprintf(line, sizeof(line), "reload-certs %s", dir);
		/* The delta load runs at low priority, like a preload, and
		 * the instance is back at 0 before the gate and the flip. */
		pthread_mutex_lock(&sv->lock);
		if (in->pid > 0)
			sv_inst_renice(in->pid, SV_PRELOAD_NICE);
		pthread_mutex_unlock(&sv->lock);
		v = sv_inst_request(sv, to, line, &r, 3600000, err, sizeof(err));
		pthread_mutex_lock(&sv->lock);
		in->reloading = 0;
		if (in->pid > 0)
			sv_inst_renice(in->pid, 0);
		pthread_mutex_unlock(&sv->lock);
		if (v < 0)
			goto done;
		doc = json_parse(r, NULL, 0);
		if (json_get_bool(doc, "ok", &ok) < 0 || !ok) {
			if (json_get_str(doc, "error", err, sizeof(err)) < 0)
				snprintf(err, sizeof(err), "malformed reply to reload-certs");
			goto done;
		}
		pthread_mutex_lock(&sv->lock);
		sv_inst_free_changed(in);
		if (json_get_i64(doc, "generation", &v) == 0)
			in->generation = (uint64_t)v;
		if (json_get_i64(doc, "nchanged", &v) == 0)
			nchanged = (uint64_t)v;
		if (json_get_i64(doc, "loaded", &v) == 0)
			loaded = (uint64_t)v;
		if (json_get_i64(doc, "skipped", &v) == 0) {
			skipped = (uint64_t)v;
			have_skipped = 1;
		}
		if (json_get_i64(doc, "names", &v) == 0)
			in->names = (uint64_t)v;
		v = json_array_len(doc, "changed");
		if (v > 0)
			in->changed = calloc((size_t)v, sizeof(char *));
		for (int64_t i = 0; in->changed != NULL && i < v; i++) {
			char path[32];
			const char *name;

			snprintf(path, sizeof(path), "changed.%lld", (long long)i);
			name = json_str(doc, path);
			if (name != NULL && (in->changed[in->nchanged] = strdup(name)) != NULL)
				in->nchanged++;
		}
		sv_inst_set_dir(in, dir);
		/* It now holds a new set: it is a fresh candidate, no longer
		 * the rollback target. */
		if (in->state == SV_STANDBY)
			in->state = SV_READY;
		pthread_mutex_unlock(&sv->lock);
	}
	pthread_mutex_lock(&sv->lock);
	generation = in->generation;
	if (loaded == 0)
		loaded = in->certs;
	if (!have_skipped)
		skipped = in->skipped;
	pthread_mutex_unlock(&sv->lock);
	load_ms = sv_now_ms() - t0;
	/* The directory comes from the control client, with any bytes. */
	log_escape(esc, sizeof(esc), dir, strlen(dir));
	log_info("reload: %s loaded %s in %lld ms: generation %llu, %llu changed, %llu files "
	         "skipped",
	         cfg_colour_name(to), esc, (long long)load_ms, (unsigned long long)generation,
	         (unsigned long long)nchanged, (unsigned long long)skipped);
	if (no_flip) {
		struct sv_names next;

		/* Nothing is promoted, but the reply still says what a flip
		 * to this set would stop serving. */
		if (sv_guard_check(sv, to, &next, &out.loss, err, sizeof(err)) < 0) {
			log_warnx("reload: %s", err);
			err[0] = '\0';
		}
		sv_names_free(&next);
		rc = 0;
		goto done;
	}
	rc = sv_flip_to(sv, to, "reload", opts & SV_RELOAD_ALLOW_LOSS ? SV_FLIP_ALLOW_LOSS : 0,
	                sv_now_us(), &out);
	if (rc < 0)
		snprintf(err, sizeof(err), "%s", out.error);
done:
	sv_set_phase(sv, NULL, NULL, -1);
	pthread_mutex_unlock(&sv->op);
	/* The journal keeps what the operator's terminal showed: a refused
	 * or failed reload, and what a promoted set stopped serving. */
	if (rc < 0)
		log_warnx("reload into %s failed: %s", cfg_colour_name(to), err);
	else if (out.loss.checked)
		log_info("reload into %s: %zu names %s, %zu of the %zu served now lost%s%s",
		         cfg_colour_name(to), out.loss.after, no_flip ? "loaded" : "served",
		         out.loss.lost, out.loss.before, out.loss.lost > 0 ? ": " : "",
		         out.loss.lost > 0 ? out.loss.shown : "");
	jb_bool(reply, "ok", rc == 0);
	if (rc < 0)
		jb_str(reply, "error", err);
	jb_str(reply, "instance", cfg_colour_name(to));
	jb_str(reply, "directory", dir);
	jb_uint(reply, "generation", generation);
	jb_uint(reply, "loaded", loaded);
	jb_uint(reply, "nchanged", nchanged);
	jb_uint(reply, "skipped", skipped);
	files_json(doc, "kept", "was not loaded", reply);
	files_json(doc, "skipped_files", "was skipped", reply);
	json_doc_free(doc);
	free(r);
	jb_bool(reply, "restarted", restart);
	jb_int(reply, "load_ms", load_ms);
	jb_int(reply, "total_ms", sv_now_ms() - t0);
	sv_flip_out_json(&out, reply);
	return rc;
}

void sv_failover(struct sv *sv)
{
	struct sv_flip_out out;
	enum cfg_colour from, to;
	int ok;

	memset(&out, 0, sizeof(out));
	pthread_mutex_lock(&sv->commit_mu);
	pthread_mutex_lock(&sv->lock);
	from = (enum cfg_colour)sv->live;
	to = (enum cfg_colour) !sv->live;
	ok = sv->inst[from].state == SV_FAILED && sv_state_serving(sv->inst[to].state) &&
	     sv->inst[to].pid > 0;
	pthread_mutex_unlock(&sv->lock);
	if (!ok) {
		pthread_mutex_unlock(&sv->commit_mu);
		log_errx("FAILOVER IMPOSSIBLE: live instance %s died and %s is %s; the service is "
		         "down until %s is respawned",
		         cfg_colour_name(from), cfg_colour_name(to),
		         sv_state_name(sv->inst[to].state), cfg_colour_name(from));
		return;
	}
	if (commit_flip(sv, from, to, "failover", -1, 0, sv_now_us(), &out) < 0) {
		pthread_mutex_unlock(&sv->commit_mu);
		log_errx("FAILOVER FAILED: live instance %s died, flip to %s failed: %s",
		         cfg_colour_name(from), cfg_colour_name(to), out.error);
		return;
	}
	pthread_mutex_lock(&sv->lock);
	sv->failovers++;
	pthread_mutex_unlock(&sv->lock);
	pthread_mutex_unlock(&sv->commit_mu);
	log_errx("FAILOVER: live instance %s died; flipped to %s (generation %llu) in %.2f ms; "
	         "%s will be respawned",
	         cfg_colour_name(from), cfg_colour_name(to), (unsigned long long)out.to_gen,
	         (double)out.commit_us / 1e3, cfg_colour_name(from));
	/* Counted after the commit: reading the names takes a moment, and
	 * the failover window is what clients see refused. */
	sv_guard_after_failover(sv, to);
}

static void count_flows(struct sv *sv)
{
	struct nf_flows flows[CFG_NCOLOURS];
	char err[256];

	static struct log_ratelimit rl = LOG_RATELIMIT_INIT(60, 1);

	memset(flows, 0, sizeof(flows));
	if (nf_count_flows(sv->cfg, flows, err, sizeof(err)) < 0) {
		log_rl(&rl, LOG_LVL_WARN, "conntrack: %s", err);
		return;
	}
	pthread_mutex_lock(&sv->lock);
	for (int c = 0; c < CFG_NCOLOURS; c++)
		sv->inst[c].flows = flows[c];
	pthread_mutex_unlock(&sv->lock);
}

/*
 * Closes the flip records whose drain no instance is watching any more, so
 * that the history reaches a final state: the old instance died or was
 * restarted while it drained ("drain-cut"), became live again through
 * another flip ("flipped-back"), or the record is one a previous
 * switchyardd left open ("drain-ended"). Only sv_drain_watch closes the
 * record of a drain in progress. Returns 1 if a record changed. Caller
 * holds sv->lock.
 */
static int close_orphan_drains(struct sv *sv)
{
	int changed = 0;

	for (uint64_t i = sv->nflips > SV_FLIPS_KEPT ? sv->nflips - SV_FLIPS_KEPT : 0;
	     i < sv->nflips; i++) {
		struct sv_flip_rec *r = &sv->flips[i % SV_FLIPS_KEPT];
		const struct sv_inst *in;
		const char *result;

		if (!r->used || strcmp(r->result, "draining") != 0)
			continue;
		in = r->from >= 0 && r->from < CFG_NCOLOURS ? &sv->inst[r->from] : NULL;
		if (in != NULL && in->state == SV_DRAINING &&
		    in->drain_flip == (int)(i % SV_FLIPS_KEPT))
			continue;
		if (in != NULL && in->state == SV_LIVE)
			result = "flipped-back";
		else if (in == NULL || in->state == SV_DRAINING || sv_state_serving(in->state))
			result = "drain-ended";
		else
			result = "drain-cut";
		snprintf(r->result, sizeof(r->result), "%s", result);
		changed = 1;
	}
	return changed;
}

void sv_drain_watch(struct sv *sv)
{
	const struct cfg_supervisor *cs = &sv->cfg->supervisor;
	int64_t now = sv_now_ms();
	int draining = 0, save = 0, trim[CFG_NCOLOURS] = {0};

	pthread_mutex_lock(&sv->lock);
	for (int c = 0; c < CFG_NCOLOURS; c++)
		draining |= sv->inst[c].state == SV_DRAINING;
	save = close_orphan_drains(sv);
	pthread_mutex_unlock(&sv->lock);
	if (now >= sv->next_flow_count) {
		count_flows(sv);
		/* A conntrack dump costs 50-150 ms per 100k entries
		 * (docs/internals.md, "Dumping flows"): often while something
		 * drains, rarely otherwise. */
		sv->next_flow_count = now + (draining ? 250 : 2000);
	} else if (!draining) {
		if (save)
			sv_state_save(sv);
		return;
	}
	pthread_mutex_lock(&sv->lock);
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		struct sv_inst *in = &sv->inst[c];
		struct sv_flip_rec *rec;
		int64_t elapsed = now - in->drain_start;
		uint64_t pinned = in->flows.syn + in->flows.established;
		const char *result = NULL;

		if (in->state != SV_DRAINING)
			continue;
		rec = &sv->flips[in->drain_flip];
		/* Both the kernel's view (pinned SYN/ESTABLISHED flows, which
		 * include connections still in the accept queue) and the
		 * instance's own active count must be zero, seen after the
		 * drain started. */
		if (pinned == 0 && in->active == 0 && in->last_ok_ms > in->drain_start + 250)
			result = "drained";
		else if (cs->hard_stop_after_ms > 0 && elapsed >= (int64_t)cs->hard_stop_after_ms)
			result = "hard-stopped";
		else if (cs->hard_stop_after_ms == 0 && elapsed >= (int64_t)cs->drain_timeout_ms)
			result = "drain-timeout";
		if (result == NULL)
			continue;
		if (rec->used && rec->from == c && rec->drain_ms < 0) {
			rec->drain_ms = elapsed;
			snprintf(rec->result, sizeof(rec->result), "%s", result);
			save = 1;
		}
		in->state = SV_STANDBY;
		trim[c] = strcmp(result, "hard-stopped") != 0;
		log_info("%s: %s after %lld ms (%llu pinned flows, %llu active); now standby",
		         cfg_colour_name(in->colour), result, (long long)elapsed,
		         (unsigned long long)pinned, (unsigned long long)in->active);
		if (strcmp(result, "hard-stopped") == 0 && in->pid > 0) {
			/* supervisor.hard_stop_after: the remaining connections
			 * are cut by restarting the instance, which reloads. */
			log_warnx("%s: hard_stop_after passed: cutting %llu connections",
			          cfg_colour_name(in->colour), (unsigned long long)in->active);
			in->stop_wanted = 1;
			kill(in->pid, SIGKILL);
		}
	}
	pthread_mutex_unlock(&sv->lock);
	if (save)
		sv_state_save(sv); /* the drain time and result, for the history */
	/* A standby keeps its certificate store (the rollback target) but not
	 * the decoded certificates it served while live: up to
	 * certs.cache_size of them, about 100 MB for 10,000 ECDSA
	 * certificates, which would otherwise double the pair's memory. A
	 * rollback rebuilds them on demand, about 0.2 ms per first handshake
	 * with each certificate. */
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char err[256], *reply = NULL;

		if (!trim[c])
			continue;
		if (sv_inst_request(sv, (enum cfg_colour)c, "cache-trim", &reply, 2000, err,
		                    sizeof(err)) < 0)
			log_warnx("%s: cache-trim: %s", cfg_colour_name((enum cfg_colour)c), err);
		free(reply);
	}
}

void sv_drift_check(struct sv *sv)
{
	struct nf_state st;
	char err[512];
	int64_t now = sv_now_ms();
	int live;

	if (!sv->rules_in || now < sv->next_drift_check)
		return;
	sv->next_drift_check = now + 1000;
	/* Under commit_mu so that a flip in progress is not mistaken for
	 * drift and undone. */
	pthread_mutex_lock(&sv->commit_mu);
	pthread_mutex_lock(&sv->lock);
	live = sv->live;
	pthread_mutex_unlock(&sv->lock);
	memset(&st, 0, sizeof(st));
	if (nf_read(sv->cfg, &st, err, sizeof(err)) < 0) {
		log_warnx("drift check: %s", err);
		pthread_mutex_unlock(&sv->commit_mu);
		return;
	}
	if (!st.drift && st.live == live) {
		snprintf(sv->rules_text, sizeof(sv->rules_text), "ok");
		pthread_mutex_unlock(&sv->commit_mu);
		return;
	}
	log_warnx("DRIFT: the kernel's rules differ from what switchyardd committed (live %s): %s",
	          cfg_colour_name((enum cfg_colour)live),
	          st.drift_text[0] ? st.drift_text : "REDIRECT points elsewhere");
	if (nf_install(sv->cfg, (enum cfg_colour)live, err, sizeof(err)) < 0) {
		snprintf(sv->rules_text, sizeof(sv->rules_text), "drift, repair failed: %.200s",
		         err);
		log_warnx("drift repair failed: %s", err);
	} else {
		pthread_mutex_lock(&sv->lock);
		sv->drift_repairs++;
		pthread_mutex_unlock(&sv->lock);
		snprintf(sv->rules_text, sizeof(sv->rules_text), "ok (repaired drift)");
		log_info("drift repaired: every listener points at %s again",
		         cfg_colour_name((enum cfg_colour)live));
	}
	pthread_mutex_unlock(&sv->commit_mu);
}

void sv_tick(struct sv *sv)
{
	static int64_t next_learn; /* the main thread's own */

	/* Deaths first and failover right after, before anything that talks
	 * to an instance and could take a while under load. */
	if (sv_inst_reap(sv))
		sv_failover(sv);
	sv_inst_poll(sv);
	if (sv_inst_reap(sv))
		sv_failover(sv);
	if (!sv->rules_in) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10, 1);
		struct sv_names names;
		struct sv_loss loss;
		char err[512];
		/* First start: the rules go in once an instance serves, so
		 * clients are never redirected to a port nobody listens on. */
		int pick = sv_guard_startup(sv, &names, &loss);

		if (pick >= 0 && nf_install(sv->cfg, (enum cfg_colour)pick, err, sizeof(err)) < 0) {
			log_rl(&rl, LOG_LVL_ERR, "cannot install the rules: %s", err);
			sv_names_free(&names);
		} else if (pick >= 0) {
			pthread_mutex_lock(&sv->lock);
			sv->live = pick;
			sv->inst[pick].state = SV_LIVE;
			if (sv->inst[pick].niced) {
				sv_inst_renice(sv->inst[pick].pid, 0);
				sv->inst[pick].niced = 0;
			}
			sv->rules_in = 1;
			snprintf(sv->rules_text, sizeof(sv->rules_text), "ok");
			pthread_mutex_unlock(&sv->lock);
			log_info("rules installed: service ports -> %s",
			         cfg_colour_name((enum cfg_colour)pick));
			sv_state_save(sv);
			sv_guard_started(sv, &names, &loss);
		}
	} else if (!sv->served_known && sv->inst[sv->live].state == SV_LIVE &&
	           sv_now_ms() >= next_learn && pthread_mutex_trylock(&sv->op) == 0) {
		static struct log_ratelimit rl = LOG_RATELIMIT_INIT(600, 1);
		struct sv_names names;
		char err[300];

		/* Rules found in the kernel and no saved reference set (the
		 * first start of this version), or a set promoted unchecked:
		 * what the live instance serves now is the reference. A live
		 * instance that cannot list its names (older than this
		 * supervisor) is asked again every 10 s. */
		next_learn = sv_now_ms() + 10000;
		if (sv_names_fetch(sv, (enum cfg_colour)sv->live, &names, err, sizeof(err)) == 0)
			sv_served_set(sv, &names);
		else
			log_rl(&rl, LOG_LVL_WARN, "name-loss guard: no reference set yet: %s", err);
		pthread_mutex_unlock(&sv->op);
	}
	sv_guard_restore(sv);
	sv_drain_watch(sv);
	sv_drift_check(sv);
	sv_tickets_tick(sv);
}

void sv_wait_event(struct sv *sv, int timeout_ms)
{
	struct pollfd p[CFG_NCOLOURS];
	nfds_t n = 0;

	/* pidfds make a crash of the live instance visible at once, not at
	 * the next tick: the failover window is what clients see refused. */
	pthread_mutex_lock(&sv->lock);
	for (int c = 0; c < CFG_NCOLOURS; c++)
		if (sv->inst[c].pidfd >= 0)
			p[n++] = (struct pollfd){.fd = sv->inst[c].pidfd, .events = POLLIN};
	pthread_mutex_unlock(&sv->lock);
	if (poll(p, n, timeout_ms) > 0 && sv_inst_reap(sv))
		sv_failover(sv);
}
