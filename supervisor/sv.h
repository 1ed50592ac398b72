/*
 * sv: switchyardd, the supervisor of the blue and green proxy instances.
 *
 * One file per role, as in OpenBSD relayd:
 *   switchyardd.c  main(): options, daemonizing, sd_notify, the event loop
 *   instance.c     spawn, adopt, watch and respawn the two proxy processes
 *   backoff.c      the respawn backoff and clocks (pure logic, unit-tested)
 *   certfile.c     leaf fingerprint and expiry of a PEM file on disk
 *   flip.c         the flip sequence, drain, rollback, failover, drift repair
 *   gate.c         the TLS health gate
 *   guard.c        the name-loss guard: what a promotion would stop serving
 *   state.c        the state file: live colour, rollback target, flip history
 *   tickets.c      session ticket key creation and rotation
 *   control.c      the supervisor's control commands (served by common/ctl)
 *   metrics.c      Prometheus text and the optional HTTP listener (/metrics)
 *   cli_ops.c      the client side: `switchyard status|flip|reload|...`
 *
 * Threads: the main thread runs sv_tick() every SV_TICK_MS; the control
 * server's poll thread answers `status` while its worker threads run a
 * long `reload` or `flip` for another connection. Two locks:
 *   sv->lock  protects every field of struct sv and its instances; it is
 *             only ever held for short, non-blocking sections.
 *   sv->op    serializes operations that change which instance is live or
 *             what an instance holds (flip, reload, rollback, failover,
 *             shutdown). It is held across blocking calls, never sv->lock.
 *   sv->commit_mu  the nf commit and the state change that goes with it.
 * Lock order: op, commit_mu, lock.
 */
#ifndef SY_SV_H
#define SY_SV_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/cfg.h"
#include "common/ctl.h"
#include "common/json.h"
#include "netfilter/nf.h"

#define SV_TICK_MS       50
#define SV_FLIPS_KEPT    16
#define SV_CHANGED_MAX   1000
#define SV_BACKOFF_MIN   1000
#define SV_BACKOFF_MAX   60000
#define SV_BACKOFF_RESET 60000
#define SV_PRELOAD_NICE  10

/* --- backoff.c ----------------------------------------------------------- */

/* Respawn backoff: 1 s, doubling up to 60 s; an instance that stayed up for
 * a minute starts again from 1 s. */
struct sv_backoff {
	uint32_t next_ms;
};
void sv_backoff_init(struct sv_backoff *bo);
/* Called when the process died after uptime_ms; returns the delay before
 * the next start. */
uint32_t sv_backoff_next(struct sv_backoff *bo, uint64_t uptime_ms);

/* --- instance states ----------------------------------------------------- */

enum sv_state {
	SV_STARTING = 0, /* forked, control socket not answering yet */
	SV_LOADING,      /* loading certificates (loaded/total) */
	SV_READY,        /* loaded, not live; a flip candidate */
	SV_LIVE,         /* the rules point at it */
	SV_DRAINING,     /* was live; flows still pinned to it */
	SV_STANDBY,      /* drained former live instance, kept loaded for rollback */
	SV_FAILED,       /* dead; respawn scheduled */
};
const char *sv_state_name(enum sv_state s);
/* States that can take traffic right now (a flip target). */
int sv_state_serving(enum sv_state s);

struct sv_inst {
	enum cfg_colour colour;
	enum sv_state state;
	pid_t pid;
	int pidfd;           /* readable when the process exits; -1 if none */
	int is_child;        /* forked by this supervisor (waitpid) or adopted */
	int64_t started_ms;  /* monotonic */
	int64_t last_ok_ms;  /* last answered status */
	int64_t respawn_at;  /* monotonic ms, while SV_FAILED */
	int64_t drain_start; /* monotonic ms, while SV_DRAINING */
	int drain_flip;      /* index in the flip ring to complete */
	struct sv_backoff bo;
	uint32_t restarts;
	uint32_t fails_in_row; /* deaths since it was last ready: a crash loop */
	uint32_t spawns;       /* processes started for this colour */
	int niced;             /* running at SV_PRELOAD_NICE while it loads */
	int reloading;         /* a reload-certs is in flight: status may not answer */
	int stop_wanted;
	/* From the instance's status reply. */
	uint64_t generation;
	uint64_t loaded, total, certs, names, skipped;
	uint64_t active;
	int proxy_draining;
	struct nf_flows flows;
	/* The certificate set it loaded: directory and its id (base name of the
	 * directory's real path, so certsync's versioned sets are told apart). */
	char certs_dir[CFG_STR_MAX];
	char set_id[128];
	/* Names changed by its last reload, for the gate; freed on flip. */
	char **changed;
	size_t nchanged;
	/* mtimes of the binary and config when it was started (reload restarts
	 * the standby when either changed). */
	time_t bin_mtime, cfg_mtime;
	char last_error[256];
};

/* A sorted set of certificate names (owned strings). */
struct sv_names {
	char **v;
	size_t n;
};

/* What a promotion would change: names served now (the reference set),
 * names the target serves, and how many of the former the target lacks. */
struct sv_loss {
	int checked; /* 0: no reference set known, nothing compared */
	size_t before, after, lost;
	char shown[480]; /* a few of the lost names, comma-separated */
};

struct sv_flip_rec {
	int used;
	time_t at;
	int from, to; /* enum cfg_colour */
	char reason[16];
	char result[32];
	uint64_t from_gen, to_gen;
	int64_t gate_ms;    /* -1 when skipped */
	int64_t commit_us;  /* nf_flip() itself */
	int64_t latency_us; /* command to commit, gate excluded */
	int64_t drain_ms;   /* -1 while draining */
};

struct sv {
	struct cfg *cfg;
	char cfgpath[PATH_MAX];
	char proxy_bin[PATH_MAX];
	int foreground;
	pthread_mutex_t lock;
	pthread_mutex_t op;
	/* Serializes the commit section of a flip with failover and drift
	 * repair (held across nf_* calls; taken after op, before lock). */
	pthread_mutex_t commit_mu;
	struct sv_inst inst[CFG_NCOLOURS];
	int live;     /* enum cfg_colour */
	int rules_in; /* nf_install succeeded since start */
	int64_t next_drift_check, next_flow_count, next_ticket_check;
	char rules_text[256];
	/* The operation in progress, for `status` (progress of a reload). */
	char op_name[16];
	char op_phase[32];
	int op_inst;
	int64_t op_start;
	/* A reload's directory and whether it flips when done, so that a
	 * `flip` queued behind it can say what it will promote. */
	char op_dir[CFG_STR_MAX];
	int op_flip_after;
	/* Flips, newest at flips[(nflips - 1) % SV_FLIPS_KEPT]. */
	struct sv_flip_rec flips[SV_FLIPS_KEPT];
	uint64_t nflips;
	/* Rollback target: the colour and generation that were live before the
	 * last successful flip. */
	int prev_live;
	uint64_t prev_gen;
	/* The name-loss guard's reference set (guard.c): the names served
	 * after the last deliberate promotion; written under sv->op (or at
	 * start-up) and sv->lock. names_lost is the deficit a failover left,
	 * which sv_guard_restore() works off. */
	struct sv_names served;
	int served_known;
	size_t names_lost;
	pid_t restore_checked_pid;
	uint64_t restore_checked_gen;
	/* Counters for metrics. */
	uint64_t flips_ok, flips_failed, gate_refusals, failovers, drift_repairs, respawns;
	/* Ticket key rotations, and failures to write the file or to make an
	 * instance re-read it; ticket_error is the last failure, "" once an
	 * update reached both instances. */
	uint64_t ticket_rotations, ticket_failures;
	char ticket_error[400];
	double flip_latency_sum_s;
	uint64_t flip_latency_buckets[8];
	/* reload-config (reconfig.c): how many times a new file was applied,
	 * and the configurations it replaced, kept because other threads
	 * may still read them. */
	uint64_t cfg_reloads;
	struct sv_retired_cfg *retired_cfgs;
	volatile int stop;         /* SIGTERM: exit, leave the instances running */
	volatile sig_atomic_t hup; /* SIGHUP: re-read the configuration */
	volatile int shutdown;     /* `shutdown`: stop the instances too */
	int notified;
	struct ctl_server *ctl;
	struct sv_metrics *metrics;
};

/* Monotonic milliseconds. */
int64_t sv_now_ms(void);
int64_t sv_now_us(void);

/* --- instance.c ---------------------------------------------------------- */
/* Adopts a running instance of colour c (pid file + status answering) or
 * starts one. Returns 0; failures are recorded on the instance. */
int sv_inst_start_or_adopt(struct sv *sv, enum cfg_colour c);
/* Forks and execs switchyard-proxy for colour c in its own session. */
int sv_inst_spawn(struct sv *sv, enum cfg_colour c);
/* Notices dead instances (reaping our children) and schedules their
 * respawn; returns non-zero if the live one died. */
int sv_inst_reap(struct sv *sv);
/* Respawns what is due and refreshes both instances' status. */
void sv_inst_poll(struct sv *sv);
/* Sends one control request to an instance. */
int sv_inst_request(struct sv *sv, enum cfg_colour c, const char *line, char **reply,
                    int timeout_ms, char *err, size_t errlen);
/* Stops an instance: `quit`, then SIGKILL after timeout_ms. */
void sv_inst_stop(struct sv *sv, enum cfg_colour c, int timeout_ms);
/* Sets the nice value of every thread of pid. */
void sv_inst_renice(pid_t pid, int nice_value);
/* Sets set_id from certs_dir. */
void sv_inst_set_dir(struct sv_inst *in, const char *dir);
void sv_inst_free_changed(struct sv_inst *in);

/* --- gate.c -------------------------------------------------------------- */
struct sv_gate_result {
	int passed;
	unsigned checked, failed, absent;
	int64_t ms;
	char error[512];
};
/*
 * Handshakes with the instance's own port for each name and compares the
 * served leaf's SHA-256 with the one computed from the file on disk that
 * the instance says serves the name (`cert NAME`). changed names may be
 * absent from the set (removed); sampled names must be served.
 */
int sv_gate_run(struct sv *sv, enum cfg_colour c, char **changed, size_t nchanged,
                struct sv_gate_result *res);
/* SHA-256 of the leaf certificate in a PEM file (the first non-CA
 * certificate, else the first one). */
int sv_gate_file_sha256(const char *path, unsigned char out[32], char *err, size_t errlen);
/* The SNI to send for a store name: a wildcard "*.x" becomes "gate.x". */
void sv_gate_sni(const char *name, char *out, size_t outlen);
/* notAfter of the first certificate in a PEM file, 0 if unreadable. */
time_t sv_file_not_after(const char *path);

/* --- guard.c ------------------------------------------------------------- */
/* Reads every name instance c serves (its `names` pages), sorted. Returns 0,
 * or -1 with err; out is the caller's to free with sv_names_free. */
int sv_names_fetch(struct sv *sv, enum cfg_colour c, struct sv_names *out, char *err,
                   size_t errlen);
void sv_names_free(struct sv_names *ns);
/* Counts the names of ref that next lacks. */
void sv_names_loss(const struct sv_names *ref, const struct sv_names *next, struct sv_loss *out);
/* Whether the loss is more than certsync.mass_delete_percent of ref. */
int sv_loss_too_much(const struct cfg *cfg, const struct sv_loss *l);
/* The refusal's text: counts, the share, and some of the names. */
void sv_loss_text(const struct cfg *cfg, const struct sv_loss *l, char *out, size_t outlen);
/* Writes the "names" object into an open reply object. */
void sv_loss_json(const struct sv_loss *l, struct json_buf *jb);
/* Fetches the names of `to` into next (the caller's) and compares them with
 * the reference set. Caller holds sv->op. Returns 0 or -1 with err. */
int sv_guard_check(struct sv *sv, enum cfg_colour to, struct sv_names *next, struct sv_loss *loss,
                   char *err, size_t errlen);
/* Makes ns (moved: emptied) the reference set and saves it in state_dir. */
void sv_served_set(struct sv *sv, struct sv_names *ns);
/* Reads the reference set saved by a previous switchyardd (at start). */
void sv_served_load(struct sv *sv);
/* After a failover to `to`: counts and logs the names it lacks. */
void sv_guard_after_failover(struct sv *sv, enum cfg_colour to);
/* Main loop: after a lossy failover, flips to the other instance once it
 * holds a set that loses fewer names and no more than the share. */
void sv_guard_restore(struct sv *sv);
/* Start-up, before the first rules: the colour to serve from (the saved
 * live colour, or the other one when that one crashes or would lose more
 * names), or -1 when none can serve yet. names and loss describe the
 * choice, for sv_guard_started() once the rules are in. */
int sv_guard_startup(struct sv *sv, struct sv_names *names, struct sv_loss *loss);
/* Start-up, once the rules are in: learns the reference set, or counts
 * the deficit when the choice lost more than the share. Frees names. */
void sv_guard_started(struct sv *sv, struct sv_names *names, const struct sv_loss *loss);

/* --- flip.c -------------------------------------------------------------- */
#define SV_FLIP_FORCE      0x1 /* skip the gate */
#define SV_FLIP_NOGATE     0x2 /* rollback and failover: no gate by design */
#define SV_FLIP_ROLLBACK   0x4
#define SV_FLIP_ALLOW_LOSS 0x8 /* --allow-name-loss: report the loss, do not refuse */
struct sv_flip_out {
	int ok;
	int gate_refused;
	int loss_refused; /* the name-loss guard refused (see loss) */
	struct sv_loss loss;
	int64_t names_ms; /* reading and comparing the target's names */
	int from, to;
	struct sv_gate_result gate; /* gate.ms is -1 when no gate ran */
	int64_t commit_us, latency_us;
	uint64_t to_gen;
	char to_set[128]; /* the certificate set id of `to` */
	char error[600];
};
/* The whole flip towards `to` (caller holds sv->op). t_cmd_us is when the
 * command arrived. Returns 0 or -1 (out->error says why). */
int sv_flip_to(struct sv *sv, enum cfg_colour to, const char *reason, int flags, int64_t t_cmd_us,
               struct sv_flip_out *out);
/* Writes the fields of out into an open reply object, all but the
 * generation: flip and rollback add the new live generation, reload the one
 * it loaded (the same instance), so that no reply names it twice. */
void sv_flip_out_json(const struct sv_flip_out *out, struct json_buf *jb);
/* flags: SV_FLIP_FORCE and SV_FLIP_ALLOW_LOSS, as the operator asked. */
int sv_op_flip(struct sv *sv, int flags, struct json_buf *reply);
int sv_op_rollback(struct sv *sv, int flags, struct json_buf *reply);
/* Reload options, as the operator asked. */
#define SV_RELOAD_NO_FLIP    0x1
#define SV_RELOAD_RESTART    0x2
#define SV_RELOAD_ALLOW_LOSS 0x4
int sv_op_reload(struct sv *sv, const char *dir, int opts, struct json_buf *reply);
/* --- reconfig.c ---------------------------------------------------------- */
/* reload-config: re-reads and validates sv->cfgpath; refuses an invalid
 * file or a change to a restart-only key (the running configuration
 * stays), otherwise replaces sv->cfg. Takes sv->op. Returns 0 or -1. */
int sv_op_reload_config(struct sv *sv, struct json_buf *reply);
/* Whether the file on disk differs from the running sv->cfg (or does not
 * load); err then says so and how to proceed. A restarted instance reads
 * the file, so a restart must not happen while they differ. */
int sv_cfg_file_differs(struct sv *sv, char *err, size_t errlen);
/* SIGHUP seen by the main loop: the same, on a thread of its own. */
void sv_reconfig_on_hup(struct sv *sv);

/* Main-loop parts: failover, drain watch, drift, tickets. */
void sv_failover(struct sv *sv);
void sv_drain_watch(struct sv *sv);
void sv_drift_check(struct sv *sv);
void sv_tick(struct sv *sv);
/* Sleeps up to timeout_ms, waking at once when an instance exits. */
void sv_wait_event(struct sv *sv, int timeout_ms);
/* Writes the status object (fields of the reply, "ok" included). */
void sv_status_json(struct sv *sv, struct json_buf *jb);
void sv_set_phase(struct sv *sv, const char *name, const char *phase, int inst);
/* state.c: persists the live colour (fallback when the kernel has no
 * rules), the rollback target and the flip history, atomically (write and
 * rename). */
void sv_state_save(struct sv *sv);
int sv_state_load_live(const struct cfg *cfg);
/* Restores the flip history saved by sv_state_save into sv->flips (at
 * start, before any flip). */
void sv_state_load_flips(struct sv *sv);
/* The rollback target saved by the last flip; -1 if none. */
int sv_state_load_prev(const struct cfg *cfg, int *prev, uint64_t *gen);

/* --- tickets.c ----------------------------------------------------------- */
#define SV_TICKET_KEY_LEN 80
#define SV_TICKET_KEYS    3
/* Creates the key file with SV_TICKET_KEYS fresh keys if it is missing or
 * malformed. Returns 1 if written, 0 if kept, -1 on error. */
int sv_tickets_ensure(const char *path, const char *user, const char *group, char *err,
                      size_t errlen);
/* Drops the oldest key and appends a new one; atomic rename. With user set
 * (proxy.user, group proxy.group or the user's), the file is written mode
 * 0640 with the proxy's group, so that the instances can re-read it after
 * their privilege drop. */
int sv_tickets_rotate(const char *path, const char *user, const char *group, char *err,
                      size_t errlen);
/* With user set: lets the proxy's group search state_dir when it holds the
 * key file, then checks that every directory above path lets the proxy
 * through. Returns 0, or -1 with err naming the directory that does not. */
int sv_tickets_prepare(const char *path, const char *state_dir, const char *user, const char *group,
                       char *err, size_t errlen);
/* Number of valid key lines in the file, or -1. */
int sv_tickets_count(const char *path);
/* Ensures and rotates per the configuration, and tells both instances. */
void sv_tickets_tick(struct sv *sv);

/* --- control.c ----------------------------------------------------------- */
/* The supervisor's command table, for tests and fuzzing. Its handlers run
 * real operations (flip, reload) on the sv they are given. */
extern const struct ctl_cmd sv_ctl_cmds[];
struct ctl_server *sv_ctl_start(struct sv *sv, char *err, size_t errlen);
void sv_ctl_stop(struct ctl_server *ctl);
/* Handles one request line on the calling thread (tests). */
void sv_ctl_handle(struct sv *sv, const char *line, struct json_buf *reply);

/* --- metrics.c ----------------------------------------------------------- */
struct sv_metrics;
/* Prometheus text exposition; caller frees. */
char *sv_metrics_text(struct sv *sv);
struct sv_metrics *sv_metrics_start(struct sv *sv, const char *listen, char *err, size_t errlen);
void sv_metrics_stop(struct sv_metrics *m);

/* --- cli_ops.c (the switchyard command) ---------------------------------- */
/* Exit codes, documented in docs/operations.md. */
#define SV_EXIT_OK       0
#define SV_EXIT_FAILED   1 /* the operation was refused or failed */
#define SV_EXIT_USAGE    2
#define SV_EXIT_NOT_RUN  3 /* switchyardd is not running */
#define SV_EXIT_CONFIG   4 /* the configuration cannot be read */
#define SV_EXIT_PROTOCOL 5 /* no reply, timeout, malformed reply */
#define SV_EXIT_GATE     6 /* the health gate refused the flip */
#define SV_EXIT_LOSS     7 /* the name-loss guard refused the promotion */
int sv_cmd_status(const char *cfgpath, int argc, char **argv);
int sv_cmd_flip(const char *cfgpath, int argc, char **argv);
int sv_cmd_reload_config(const char *cfgpath, int argc, char **argv);
int sv_cmd_reload(const char *cfgpath, int argc, char **argv);
int sv_cmd_rollback(const char *cfgpath, int argc, char **argv);
int sv_cmd_metrics(const char *cfgpath, int argc, char **argv);
int sv_cmd_shutdown(const char *cfgpath, int argc, char **argv);
/* `switchyard rules|flows`: the netfilter commands (netfilter/nf_cmd.c),
 * with the configuration checked first (exit SV_EXIT_CONFIG) and `rules
 * flip` refused while switchyardd runs. */
int sv_cmd_rules(const char *cfgpath, int argc, char **argv);
int sv_cmd_flows(const char *cfgpath, int argc, char **argv);

#endif
