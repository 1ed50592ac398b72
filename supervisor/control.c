/*
 * control: the supervisor's control commands, served by common/ctl like
 * every Switchyard socket (docs/control.md). `reload` can run for minutes
 * and `flip` waits for the gate while the CLI polls `status` on a second
 * connection, so the operations are CTL_SLOW: they run on the server's
 * worker threads and the poll thread keeps answering. Operations
 * themselves are serialized by sv->op; `status` never takes it.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/log.h"
#include "netfilter/nf.h"
#include "supervisor/sv.h"

/* Workers for the slow commands: operations queue on sv->op anyway, and
 * two more let `metrics` answer while a reload holds it. */
#define SV_CTL_SLOW_THREADS 4

void sv_status_json(struct sv *sv, struct json_buf *jb)
{
	int64_t now = sv_now_ms();

	pthread_mutex_lock(&sv->lock);
	jb_bool(jb, "ok", 1);
	jb_str(jb, "live", cfg_colour_name((enum cfg_colour)sv->live));
	jb_str(jb, "rules", sv->rules_in ? sv->rules_text : "not installed yet");
	{
		enum cfg_nf_backend be;
		char why[512];

		/* Resolved once per process and configured value (cached), so
		 * this costs nothing after the first call. */
		if (nf_backend_resolve(sv->cfg, &be, why, sizeof(why)) == 0)
			jb_str(jb, "netfilter_backend", cfg_nf_backend_name(be));
		else
			jb_null(jb, "netfilter_backend");
		jb_str(jb, "netfilter_backend_why", why);
	}
	jb_int(jb, "pid", (int64_t)getpid());
	if (sv->op_name[0] != '\0') {
		const struct sv_inst *in = &sv->inst[sv->op_inst >= 0 ? sv->op_inst : 0];

		jb_obj_begin(jb, "op");
		jb_str(jb, "name", sv->op_name);
		jb_str(jb, "phase", sv->op_phase);
		if (sv->op_inst >= 0)
			jb_str(jb, "instance", cfg_colour_name((enum cfg_colour)sv->op_inst));
		jb_int(jb, "elapsed_ms", now - sv->op_start);
		if (sv->op_dir[0] != '\0') {
			jb_str(jb, "directory", sv->op_dir);
			jb_bool(jb, "flip_after", sv->op_flip_after);
		}
		jb_uint(jb, "loaded", in->loaded);
		jb_uint(jb, "total", in->total);
		jb_obj_end(jb);
	} else {
		jb_null(jb, "op");
	}
	jb_arr_begin(jb, "instances");
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		const struct sv_inst *in = &sv->inst[c];

		jb_obj_begin(jb, NULL);
		jb_str(jb, "colour", cfg_colour_name((enum cfg_colour)c));
		jb_str(jb, "state", sv_state_name(in->state));
		jb_int(jb, "pid", in->pid);
		jb_bool(jb, "adopted", in->pid > 0 && !in->is_child);
		jb_uint(jb, "generation", in->generation);
		jb_str(jb, "set", in->set_id);
		jb_str(jb, "directory", in->certs_dir);
		jb_uint(jb, "certs", in->certs);
		jb_uint(jb, "names", in->names);
		jb_uint(jb, "loaded", in->loaded);
		jb_uint(jb, "total", in->total);
		jb_uint(jb, "active", in->active);
		jb_obj_begin(jb, "pinned");
		jb_uint(jb, "syn", in->flows.syn);
		jb_uint(jb, "established", in->flows.established);
		jb_uint(jb, "closing", in->flows.closing);
		jb_obj_end(jb);
		jb_uint(jb, "restarts", in->restarts);
		jb_int(jb, "uptime_ms", in->pid > 0 ? now - in->started_ms : 0);
		jb_uint(jb, "changed_pending", in->nchanged);
		if (in->state == SV_DRAINING)
			jb_int(jb, "draining_ms", now - in->drain_start);
		if (in->state == SV_FAILED)
			jb_int(jb, "respawn_in_ms",
			       in->respawn_at > now ? in->respawn_at - now : 0);
		if (in->last_error[0] != '\0')
			jb_str(jb, "last_error", in->last_error);
		jb_obj_end(jb);
	}
	jb_arr_end(jb);
	if (sv->prev_live >= 0) {
		jb_obj_begin(jb, "rollback");
		jb_str(jb, "to", cfg_colour_name((enum cfg_colour)sv->prev_live));
		jb_uint(jb, "generation", sv->prev_gen);
		jb_bool(jb, "possible",
		        sv->prev_live != sv->live &&
		            sv->inst[sv->prev_live].generation == sv->prev_gen &&
		            sv_state_serving(sv->inst[sv->prev_live].state));
		jb_obj_end(jb);
	}
	jb_arr_begin(jb, "flips");
	for (uint64_t i = sv->nflips > SV_FLIPS_KEPT ? sv->nflips - SV_FLIPS_KEPT : 0;
	     i < sv->nflips; i++) {
		const struct sv_flip_rec *r = &sv->flips[i % SV_FLIPS_KEPT];

		jb_obj_begin(jb, NULL);
		jb_int(jb, "at", (int64_t)r->at);
		jb_str(jb, "from", r->from >= 0 ? cfg_colour_name((enum cfg_colour)r->from) : NULL);
		jb_str(jb, "to", cfg_colour_name((enum cfg_colour)r->to));
		jb_str(jb, "reason", r->reason);
		jb_str(jb, "result", r->result);
		jb_uint(jb, "from_generation", r->from_gen);
		jb_uint(jb, "to_generation", r->to_gen);
		jb_int(jb, "gate_ms", r->gate_ms);
		jb_int(jb, "commit_us", r->commit_us);
		jb_int(jb, "latency_us", r->latency_us);
		jb_int(jb, "drain_ms", r->drain_ms);
		jb_obj_end(jb);
	}
	jb_arr_end(jb);
	jb_obj_begin(jb, "names");
	jb_bool(jb, "known", sv->served_known);
	jb_uint(jb, "served_before", sv->served.n);
	jb_uint(jb, "lost", sv->names_lost);
	jb_obj_end(jb);
	jb_obj_begin(jb, "counters");
	jb_uint(jb, "flips_ok", sv->flips_ok);
	jb_uint(jb, "flips_failed", sv->flips_failed);
	jb_uint(jb, "gate_refusals", sv->gate_refusals);
	jb_uint(jb, "failovers", sv->failovers);
	jb_uint(jb, "drift_repairs", sv->drift_repairs);
	jb_uint(jb, "respawns", sv->respawns);
	jb_obj_end(jb);
	jb_obj_begin(jb, "config");
	jb_str(jb, "file", sv->cfgpath);
	jb_uint(jb, "reloads", sv->cfg_reloads);
	jb_obj_end(jb);
	jb_obj_begin(jb, "tickets");
	jb_uint(jb, "rotations", sv->ticket_rotations);
	jb_uint(jb, "failures", sv->ticket_failures);
	if (sv->ticket_error[0] != '\0')
		jb_str(jb, "error", sv->ticket_error);
	jb_obj_end(jb);
	pthread_mutex_unlock(&sv->lock);
}

static int cmd_status(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)req;
	sv_status_json(ctx, reply);
	return 0;
}

static int cmd_flip(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)sv_op_flip(ctx,
	                 (ctl_flag(req, "--force") ? SV_FLIP_FORCE : 0) |
	                     (ctl_flag(req, "--allow-name-loss") ? SV_FLIP_ALLOW_LOSS : 0),
	                 reply);
	return 0;
}

static int cmd_rollback(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)sv_op_rollback(ctx, ctl_flag(req, "--allow-name-loss") ? SV_FLIP_ALLOW_LOSS : 0,
	                     reply);
	return 0;
}

static int cmd_reload(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)sv_op_reload(ctx, ctl_opt(req, "--certs"),
	                   (ctl_flag(req, "--no-flip") ? SV_RELOAD_NO_FLIP : 0) |
	                       (ctl_flag(req, "--restart") ? SV_RELOAD_RESTART : 0) |
	                       (ctl_flag(req, "--allow-name-loss") ? SV_RELOAD_ALLOW_LOSS : 0),
	                   reply);
	return 0;
}

static int cmd_reload_config(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)req;
	(void)sv_op_reload_config(ctx, reply);
	return 0;
}

static int cmd_metrics(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	char *text = sv_metrics_text(ctx);

	(void)req;
	jb_bool(reply, "ok", text != NULL);
	jb_str(reply, "text", text != NULL ? text : "");
	free(text);
	return 0;
}

static int cmd_shutdown(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	struct sv *sv = ctx;

	(void)req;
	sv->shutdown = 1;
	jb_bool(reply, "ok", 1);
	return 0;
}

/* The supervisor's commands: the one list of names, arguments and usage
 * texts (docs/operations.md describes them). */
const struct ctl_cmd sv_ctl_cmds[] = {
    {"status", "status", 0, cmd_status},
    {"flip", "flip [--force] [--allow-name-loss]", CTL_SLOW, cmd_flip},
    {"reload", "reload [--certs /DIR] [--no-flip] [--restart] [--allow-name-loss]", CTL_SLOW,
     cmd_reload},
    {"rollback", "rollback [--allow-name-loss]", CTL_SLOW, cmd_rollback},
    {"reload-config", "reload-config", CTL_SLOW, cmd_reload_config},
    {"metrics", "metrics", CTL_SLOW, cmd_metrics},
    {"shutdown", "shutdown", 0, cmd_shutdown},
    {NULL, NULL, 0, NULL},
};

void sv_ctl_handle(struct sv *sv, const char *line, struct json_buf *reply)
{
	int close_after;

	ctl_dispatch_line(sv_ctl_cmds, sv, line, reply, &close_after);
}

struct ctl_server *sv_ctl_start(struct sv *sv, char *err, size_t errlen)
{
	struct ctl_server_cfg sc = {
	    .path = sv->cfg->supervisor.control_socket,
	    .mode = (mode_t)sv->cfg->supervisor.control_mode,
	    .cmds = sv_ctl_cmds,
	    .ctx = sv,
	    .slow_threads = SV_CTL_SLOW_THREADS,
	    /* On SIGTERM switchyardd exits at once and a running reload is
	     * left to the instance (the next switchyardd adopts it), as
	     * before; nothing is freed after sv_ctl_stop. */
	    .detach_slow = 1,
	};

	const char *group = sv->cfg->supervisor.control_group;
	struct ctl_server *ctl;
	struct group *gr = NULL;

	/* Looked up first: a wrong name must not leave a socket behind. */
	if (group[0] != '\0' && (gr = getgrnam(group)) == NULL) {
		snprintf(err, errlen, "supervisor.control_group: no group '%s'", group);
		return NULL;
	}
	ctl = ctl_server_start(&sc, err, errlen);
	/* Operators in the group run `switchyard status` without root; the
	 * socket's mode (control_mode) says what the group may do. */
	if (ctl != NULL && gr != NULL && chown(sc.path, (uid_t)-1, gr->gr_gid) != 0) {
		snprintf(err, errlen, "%s: cannot give it to group %s: %s", sc.path, group,
		         strerror(errno));
		ctl_server_stop(ctl);
		return NULL;
	}
	return ctl;
}

void sv_ctl_stop(struct ctl_server *ctl)
{
	ctl_server_stop(ctl);
}
