/*
 * cli_ops: the operator side of the supervisor's control socket, i.e. the
 * `switchyard status|flip|reload|rollback|metrics|shutdown` subcommands.
 * Each sends one request line and prints the one-line JSON reply, for
 * humans or (--json) for scripts. `reload` shows progress by polling
 * `status` on a second connection while the reload request runs.
 * Exit codes are the SV_EXIT_* values, documented in docs/operations.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/ctl.h"
#include "common/json.h"
#include "supervisor/sv.h"

/* Long enough for a reload of 100k certificates on a slow machine. */
#define CLI_LONG_TIMEOUT_MS (3600 * 1000)

static int socket_path(const char *cfgpath, char *out, size_t outlen)
{
	const char *env = getenv("SWITCHYARD_SOCKET");
	struct cfg *cfg;

	if (env != NULL && env[0] != '\0') {
		snprintf(out, outlen, "%s", env);
		return 0;
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return -1;
	snprintf(out, outlen, "%s", cfg->supervisor.control_socket);
	cfg_free(cfg);
	return 0;
}

/* Sends one request; returns an exit code, the reply's text in *reply and
 * the parsed reply in *doc (both the caller's to free). */
static int request(const char *path, const char *line, int timeout_ms, char **reply,
                   struct json_doc **doc)
{
	char err[512];
	struct stat st;

	*reply = NULL;
	*doc = NULL;
	if (stat(path, &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "switchyard: switchyardd is not running (no socket at %s)\n", path);
		return SV_EXIT_NOT_RUN;
	}
	/* Connecting needs write permission on the socket: say so, rather
	 * than report it like a daemon that does not answer. */
	if (access(path, W_OK) < 0 && errno == EACCES) {
		fprintf(stderr,
		        "switchyard: permission denied on %s: run as root or as a member of the "
		        "socket's group\n",
		        path);
		return SV_EXIT_FAILED;
	}
	if (ctl_request(path, line, reply, timeout_ms, err, sizeof(err)) < 0) {
		if (strstr(err, "refused") != NULL || strstr(err, "no such socket") != NULL) {
			fprintf(stderr,
			        "switchyard: switchyardd is not running (nothing answers on %s)\n",
			        path);
			return SV_EXIT_NOT_RUN;
		}
		fprintf(stderr, "switchyard: %s\n", err);
		return SV_EXIT_PROTOCOL;
	}
	*doc = json_parse(*reply, err, sizeof(err));
	if (*doc == NULL) {
		fprintf(stderr, "switchyard: malformed reply from switchyardd (%s): %.200s\n", err,
		        *reply);
		return SV_EXIT_PROTOCOL;
	}
	return SV_EXIT_OK;
}

static int reply_ok(const struct json_doc *reply)
{
	int ok = 0;

	return json_get_bool(reply, "ok", &ok) == 0 && ok;
}

static void print_error(const char *what, const struct json_doc *reply)
{
	const char *err = json_str(reply, "error");

	fprintf(stderr, "switchyard %s: %s\n", what, err != NULL ? err : "unknown error");
}

static int64_t geti(const struct json_doc *doc, const char *path)
{
	int64_t v = 0;

	(void)json_get_i64(doc, path, &v);
	return v;
}

static int getb(const struct json_doc *doc, const char *path)
{
	int v = 0;

	(void)json_get_bool(doc, path, &v);
	return v;
}

static void fmt_us(int64_t us, char *out, size_t outlen)
{
	if (us < 0)
		snprintf(out, outlen, "-");
	else if (us < 10000)
		snprintf(out, outlen, "%.2f ms", (double)us / 1000);
	else
		snprintf(out, outlen, "%lld ms", (long long)(us / 1000));
}

/* Every duration of the status table is in milliseconds, so that a column
 * never mixes units; a 5-minute drain is "300000 ms". */
static void fmt_ms(int64_t ms, char *out, size_t outlen)
{
	if (ms < 0)
		snprintf(out, outlen, "-");
	else
		snprintf(out, outlen, "%lld ms", (long long)ms);
}

static void print_status(const struct json_doc *doc)
{
	char live[16] = "?", rules[300] = "", s[64], opname[32], phase[32];
	char stbuf[CFG_NCOLOURS][48];
	int n, w = 9;

	(void)json_get_str(doc, "live", live, sizeof(live));
	(void)json_get_str(doc, "rules", rules, sizeof(rules));
	printf("live: %s    rules: %s\n", live, rules);
	{
		char be[32] = "none", why[512] = "";

		(void)json_get_str(doc, "netfilter_backend", be, sizeof(be));
		(void)json_get_str(doc, "netfilter_backend_why", why, sizeof(why));
		printf("netfilter: %s (%s)\n", be, why);
	}
	if (json_get_str(doc, "op.name", opname, sizeof(opname)) == 0) {
		(void)json_get_str(doc, "op.phase", phase, sizeof(phase));
		(void)json_get_str(doc, "op.instance", s, sizeof(s));
		printf("in progress: %s (%s on %s, %lld ms)\n", opname, phase, s,
		       (long long)geti(doc, "op.elapsed_ms"));
	}
	n = json_array_len(doc, "instances");
	/* "loading 51200/100000" is wider than any other state: the column
	 * takes the width of the widest one, so the others stay aligned. */
	for (int i = 0; i < n && i < CFG_NCOLOURS; i++) {
		char p[32], state[16] = "";
		const struct json_doc *in;

		snprintf(p, sizeof(p), "instances.%d", i);
		in = json_at(doc, p);
		(void)json_get_str(in, "state", state, sizeof(state));
		snprintf(stbuf[i], sizeof(stbuf[i]), "%s", state);
		if (strcmp(state, "loading") == 0)
			snprintf(stbuf[i], sizeof(stbuf[i]), "loading %lld/%lld",
			         (long long)geti(in, "loaded"), (long long)geti(in, "total"));
		if ((int)strlen(stbuf[i]) > w)
			w = (int)strlen(stbuf[i]);
	}
	printf("\n%-6s %-*s %8s %5s %-20s %8s %7s %7s %8s\n", "", w, "STATE", "PID", "GEN", "SET",
	       "CERTS", "ACTIVE", "PINNED", "RESTARTS");
	for (int i = 0; i < n && i < CFG_NCOLOURS; i++) {
		char p[32], colour[16] = "", set[128] = "", err[300] = "";
		const struct json_doc *in;

		snprintf(p, sizeof(p), "instances.%d", i);
		in = json_at(doc, p);
		(void)json_get_str(in, "colour", colour, sizeof(colour));
		(void)json_get_str(in, "set", set, sizeof(set));
#define F(field) ((long long)geti(in, field))
		printf("%-6s %-*s %8lld %5lld %-20.20s %8lld %7lld %7lld %8lld\n", colour, w,
		       stbuf[i], F("pid"), F("generation"), set, F("certs"), F("active"),
		       F("pinned.syn") + F("pinned.established"), F("restarts"));
#undef F
		if (json_get_str(in, "last_error", err, sizeof(err)) == 0)
			printf("       last error: %s\n", err);
	}
	if (geti(doc, "names.lost") > 0)
		printf("\nnames: %lld of the %lld names served before are not served (failover "
		       "or start); restored when an instance holds them\n",
		       (long long)geti(doc, "names.lost"),
		       (long long)geti(doc, "names.served_before"));
	if (json_get_str(doc, "rollback.to", s, sizeof(s)) == 0) {
		int possible = 0;

		(void)json_get_bool(doc, "rollback.possible", &possible);
		printf("\nrollback: to %s (generation %lld) %s\n", s,
		       (long long)geti(doc, "rollback.generation"),
		       possible ? "possible" : "not possible");
	}
	n = json_array_len(doc, "flips");
	if (n > 0)
		printf("\nlast flips (newest last):\n  %-19s %-14s %-9s %-13s %9s %9s %9s %9s\n",
		       "WHEN (UTC)", "FROM -> TO", "REASON", "RESULT", "GATE", "COMMIT", "LATENCY",
		       "DRAIN");
	for (int i = n > 10 ? n - 10 : 0; i < n; i++) {
		char p[32], from[16] = "-", to[16] = "", reason[16] = "", result[32] = "";
		char when[32], g[32], c[32], l[32], d[32];
		const struct json_doc *fl;
		time_t at;
		struct tm tm;

		snprintf(p, sizeof(p), "flips.%d", i);
		fl = json_at(doc, p);
		(void)json_get_str(fl, "from", from, sizeof(from));
		(void)json_get_str(fl, "to", to, sizeof(to));
		(void)json_get_str(fl, "reason", reason, sizeof(reason));
		(void)json_get_str(fl, "result", result, sizeof(result));
		at = (time_t)geti(fl, "at");
		gmtime_r(&at, &tm);
		strftime(when, sizeof(when), "%F %T", &tm);
		fmt_ms(geti(fl, "gate_ms"), g, sizeof(g));
		fmt_us(geti(fl, "commit_us"), c, sizeof(c));
		fmt_us(geti(fl, "latency_us"), l, sizeof(l));
		fmt_ms(geti(fl, "drain_ms"), d, sizeof(d));
		snprintf(s, sizeof(s), "%s -> %s", from, to);
		printf("  %-19s %-14s %-9s %-13s %9s %9s %9s %9s\n", when, s, reason, result, g, c,
		       l, d);
	}
}

static int get_path(const char *cfgpath, char *path, size_t len)
{
	if (socket_path(cfgpath, path, len) < 0) {
		fprintf(stderr, "switchyard: cannot read the configuration to find the "
		                "supervisor's socket (set SWITCHYARD_SOCKET to override)\n");
		return -1;
	}
	return 0;
}

int sv_cmd_status(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX], *reply;
	struct json_doc *doc;
	int json = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr, "usage: switchyard status [--json]\n");
			return SV_EXIT_USAGE;
		}
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	rc = request(path, "status", 10000, &reply, &doc);
	if (rc == SV_EXIT_OK && !reply_ok(doc)) {
		print_error("status", doc);
		rc = SV_EXIT_FAILED;
	} else if (rc == SV_EXIT_OK && json) {
		printf("%s\n", reply);
	} else if (rc == SV_EXIT_OK) {
		print_status(doc);
	}
	json_doc_free(doc);
	free(reply);
	return rc;
}

static void print_flip(const char *what, const struct json_doc *reply)
{
	char from[16] = "?", to[16] = "?", c[32], l[32], g[128];
	int flipped = 0;

	(void)json_get_str(reply, "from", from, sizeof(from));
	(void)json_get_str(reply, "to", to, sizeof(to));
	(void)json_get_bool(reply, "flipped", &flipped);
	if (!flipped) {
		printf("%s: not flipped\n", what);
		return;
	}
	if (geti(reply, "names.lost") > 0)
		fprintf(stderr,
		        "%s: warning: %lld of the %lld names served before are no longer "
		        "served (for example %s)\n",
		        what, (long long)geti(reply, "names.lost"),
		        (long long)geti(reply, "names.served"),
		        json_str(reply, "names.lost_examples")
		            ? json_str(reply, "names.lost_examples")
		            : "?");
	fmt_us(geti(reply, "commit_us"), c, sizeof(c));
	fmt_us(geti(reply, "latency_us"), l, sizeof(l));
	if (geti(reply, "gate.ms") < 0)
		snprintf(g, sizeof(g), "gate skipped");
	else if (geti(reply, "gate.absent") > 0)
		/* Removed names pass the gate; the operator still sees how
		 * many names the flip takes offline. */
		snprintf(g, sizeof(g),
		         "gate passed in %lld ms (%lld names, %lld changed names no "
		         "longer served)",
		         (long long)geti(reply, "gate.ms"), (long long)geti(reply, "gate.checked"),
		         (long long)geti(reply, "gate.absent"));
	else
		snprintf(g, sizeof(g), "gate passed in %lld ms (%lld names)",
		         (long long)geti(reply, "gate.ms"), (long long)geti(reply, "gate.checked"));
	printf("%s: %s -> %s (generation %lld, set %s); %s, commit %s, command to commit %s; %s "
	       "is draining\n",
	       what, from, to, (long long)geti(reply, "generation"),
	       json_str(reply, "set") ? json_str(reply, "set") : "?", g, c, l, from);
}

/* The exit code of a refused or failed operation. */
static int failed_code(const struct json_doc *reply)
{
	if (getb(reply, "names_refused"))
		return SV_EXIT_LOSS;
	return getb(reply, "gate_refused") ? SV_EXIT_GATE : SV_EXIT_FAILED;
}

static int op_result(const char *what, const char *text, const struct json_doc *reply, int json)
{
	if (json)
		printf("%s\n", text);
	if (!reply_ok(reply)) {
		if (!json)
			print_error(what, reply);
		return failed_code(reply);
	}
	if (!json)
		print_flip(what, reply);
	return SV_EXIT_OK;
}

struct reload_job {
	const char *path;
	char line[CTL_LINE_MAX];
	char *reply;
	struct json_doc *doc;
	int rc;
	volatile int done;
};

static void *reload_thread(void *arg)
{
	struct reload_job *job = arg;

	job->rc = request(job->path, job->line, CLI_LONG_TIMEOUT_MS, &job->reply, &job->doc);
	job->done = 1;
	return NULL;
}

/* Says once what a flip queued behind another operation waits for, and
 * what it will promote then: a flip sent during a reload used to wait
 * silently and then flip to whatever the reload left in the standby. */
static void flip_waiting(const struct json_doc *st, int *said)
{
	char op[32] = "", phase[32] = "", inst[16] = "", live[16] = "", dir[CFG_STR_MAX] = "";
	char p[64], set[128] = "";

	if (*said || json_get_str(st, "op.name", op, sizeof(op)) < 0 || strcmp(op, "flip") == 0)
		return;
	*said = 1;
	(void)json_get_str(st, "op.phase", phase, sizeof(phase));
	(void)json_get_str(st, "op.instance", inst, sizeof(inst));
	(void)json_get_str(st, "op.directory", dir, sizeof(dir));
	(void)json_get_str(st, "live", live, sizeof(live));
	if (strcmp(op, "reload") != 0) {
		fprintf(stderr, "flip: waiting for the %s in progress (%s on %s)\n", op, phase,
		        inst);
		return;
	}
	if (!getb(st, "op.flip_after")) {
		fprintf(
		    stderr,
		    "flip: waiting for the reload in progress (%s, %s %s, --no-flip); this flip "
		    "will then promote %s with that set\n",
		    inst, phase, dir, inst);
		return;
	}
	for (int i = 0; i < json_array_len(st, "instances"); i++) {
		char c[16] = "";

		snprintf(p, sizeof(p), "instances.%d.colour", i);
		(void)json_get_str(st, p, c, sizeof(c));
		snprintf(p, sizeof(p), "instances.%d.set", i);
		if (strcmp(c, live) == 0)
			(void)json_get_str(st, p, set, sizeof(set));
	}
	fprintf(stderr,
	        "flip: waiting for the reload in progress (%s, %s %s), which flips to %s itself; "
	        "this flip will then promote %s (set %s) back\n",
	        inst, phase, dir, inst, live, set);
}

int sv_cmd_flip(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX];
	struct reload_job job;
	int force = 0, allow = 0, json = 0, said = 0, rc;
	pthread_t t;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0) {
			force = 1;
		} else if (strcmp(argv[i], "--allow-name-loss") == 0) {
			allow = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr,
			        "usage: switchyard flip [--force] [--allow-name-loss] [--json]\n");
			return SV_EXIT_USAGE;
		}
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	memset(&job, 0, sizeof(job));
	job.path = path;
	snprintf(job.line, sizeof(job.line), "flip%s%s", force ? " --force" : "",
	         allow ? " --allow-name-loss" : "");
	if (pthread_create(&t, NULL, reload_thread, &job) != 0) {
		fprintf(stderr, "switchyard flip: cannot start a thread\n");
		return SV_EXIT_FAILED;
	}
	while (!job.done) {
		char *st = NULL, err[256];
		struct json_doc *sd;

		usleep(100 * 1000);
		if (json || said || job.done)
			continue;
		if (ctl_request(path, "status", &st, 2000, err, sizeof(err)) == 0 &&
		    (sd = json_parse(st, NULL, 0)) != NULL) {
			flip_waiting(sd, &said);
			json_doc_free(sd);
		}
		free(st);
	}
	pthread_join(t, NULL);
	rc = job.rc;
	if (rc == SV_EXIT_OK)
		rc = op_result("flip", job.reply, job.doc, json);
	json_doc_free(job.doc);
	free(job.reply);
	return rc;
}

int sv_cmd_rollback(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX], *reply;
	struct json_doc *doc;
	int json = 0, allow = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--allow-name-loss") == 0) {
			allow = 1;
		} else {
			fprintf(stderr,
			        "usage: switchyard rollback [--allow-name-loss] [--json]\n");
			return SV_EXIT_USAGE;
		}
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	rc = request(path, allow ? "rollback --allow-name-loss" : "rollback", CLI_LONG_TIMEOUT_MS,
	             &reply, &doc);
	if (rc == SV_EXIT_OK)
		rc = op_result("rollback", reply, doc, json);
	json_doc_free(doc);
	free(reply);
	return rc;
}

/* One progress update from a status reply: a bar on a TTY, a plain line
 * whenever the phase changes otherwise. */
static void progress(const struct json_doc *st, int tty, char *last, size_t lastlen)
{
	char phase[32] = "", inst[16] = "", now[64];
	int64_t loaded = geti(st, "op.loaded"), total = geti(st, "op.total");

	if (json_get_str(st, "op.phase", phase, sizeof(phase)) < 0)
		return;
	(void)json_get_str(st, "op.instance", inst, sizeof(inst));
	snprintf(now, sizeof(now), "%s %s", inst, phase);
	if (tty) {
		char bar[31];
		int fill = 0;

		/* The figures come from another process (and, on a delta
		 * reload, from a load that may have just started): clamp
		 * them rather than trust them with the bar's bounds. */
		if (strcmp(phase, "loading") == 0 && total > 0 && loaded > 0)
			fill = loaded >= total ? 30 : (int)(30 * loaded / total);
		else if (strcmp(phase, "loading") != 0 && strcmp(phase, "waiting") != 0 &&
		         strcmp(phase, "restart") != 0)
			fill = 30;
		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(30 - fill));
		bar[30] = '\0';
		fprintf(stderr, "\r[%s] %-8s %-8s %lld ms   ", bar, inst, phase,
		        (long long)geti(st, "op.elapsed_ms"));
		fflush(stderr);
	} else if (strcmp(now, last) != 0) {
		fprintf(stderr, "reload: %s: %s\n", inst, phase);
	}
	snprintf(last, lastlen, "%s", now);
}

/* Files whose new content the instance could not load (it serves their
 * previous version), and files that loaded nothing: neither may pass
 * unnoticed. */
static void print_files(const struct json_doc *reply, const char *key, const char *verb)
{
	int n = json_array_len(reply, key);

	for (int i = 0; i < n; i++) {
		char p[64], file[CFG_STR_MAX] = "?", why[600] = "?";

		snprintf(p, sizeof(p), "%s.%d.file", key, i);
		(void)json_get_str(reply, p, file, sizeof(file));
		snprintf(p, sizeof(p), "%s.%d.error", key, i);
		(void)json_get_str(reply, p, why, sizeof(why));
		fprintf(stderr, "reload: warning: %s %s: %s\n", file, verb, why);
	}
}

/* Every reload says how many files it skipped and how many of the names
 * served now the loaded set lacks, whether it flipped or not. */
static void print_reload_counts(const struct json_doc *reply)
{
	char inst[16] = "?";

	if (geti(reply, "generation") == 0)
		return; /* nothing was loaded */
	(void)json_get_str(reply, "instance", inst, sizeof(inst));
	fprintf(stderr, "reload: %s: %lld files skipped", inst, (long long)geti(reply, "skipped"));
	if (json_array_len(reply, "kept") > 0)
		fprintf(stderr, ", %d kept at their previous version",
		        json_array_len(reply, "kept"));
	if (getb(reply, "names.checked"))
		fprintf(stderr, "; %lld of the %lld names served now are not in the loaded set%s%s",
		        (long long)geti(reply, "names.lost"),
		        (long long)geti(reply, "names.served"),
		        geti(reply, "names.lost") > 0 ? ", for example " : "",
		        geti(reply, "names.lost") > 0 && json_str(reply, "names.lost_examples")
		            ? json_str(reply, "names.lost_examples")
		            : "");
	fprintf(stderr, "\n");
}

int sv_cmd_reload(const char *cfgpath, int argc, char **argv)
{
	struct reload_job job;
	char path[CFG_STR_MAX], last[64] = "";
	const char *dir = NULL;
	int no_flip = 0, restart = 0, allow = 0, json = 0, quiet = 0, tty = isatty(2), rc;
	size_t off;
	pthread_t t;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-flip") == 0) {
			no_flip = 1;
		} else if (strcmp(argv[i], "--restart") == 0) {
			restart = 1;
		} else if (strcmp(argv[i], "--allow-name-loss") == 0) {
			allow = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--quiet") == 0 || strcmp(argv[i], "-q") == 0) {
			quiet = 1;
		} else if (strcmp(argv[i], "--certs") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "usage: switchyard reload [--certs DIR] [--no-flip] "
			                "[--restart] [--allow-name-loss] [--json] [--quiet]\n");
			return SV_EXIT_USAGE;
		}
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	memset(&job, 0, sizeof(job));
	job.path = path;
	off = (size_t)snprintf(job.line, sizeof(job.line), "reload");
	if (dir != NULL) {
		char real[PATH_MAX];

		/* The supervisor runs elsewhere: send an absolute path. */
		if (realpath(dir, real) == NULL) {
			fprintf(stderr, "switchyard reload: %s: %s\n", dir, strerror(errno));
			return SV_EXIT_USAGE;
		}
		off +=
		    (size_t)snprintf(job.line + off, sizeof(job.line) - off, " --certs %s", real);
	}
	if (no_flip)
		off += (size_t)snprintf(job.line + off, sizeof(job.line) - off, " --no-flip");
	if (restart)
		off += (size_t)snprintf(job.line + off, sizeof(job.line) - off, " --restart");
	if (allow)
		(void)snprintf(job.line + off, sizeof(job.line) - off, " --allow-name-loss");
	if (pthread_create(&t, NULL, reload_thread, &job) != 0) {
		fprintf(stderr, "switchyard reload: cannot start a thread\n");
		return SV_EXIT_FAILED;
	}
	while (!job.done) {
		char *st = NULL, err[256];
		struct json_doc *sd;

		usleep(100 * 1000);
		if (quiet || job.done)
			continue;
		if (ctl_request(path, "status", &st, 2000, err, sizeof(err)) == 0 &&
		    (sd = json_parse(st, NULL, 0)) != NULL) {
			progress(sd, tty, last, sizeof(last));
			json_doc_free(sd);
		}
		free(st);
	}
	pthread_join(t, NULL);
	if (tty && last[0] != '\0' && !quiet)
		fprintf(stderr, "\n");
	if (job.rc != SV_EXIT_OK) {
		json_doc_free(job.doc);
		free(job.reply);
		return job.rc;
	}
	if (json) {
		printf("%s\n", job.reply);
	} else {
		print_reload_counts(job.doc);
		print_files(job.doc, "kept", "was not loaded");
		print_files(job.doc, "skipped_files", "was skipped");
	}
	if (!json && reply_ok(job.doc)) {
		char inst[16] = "", d[CFG_STR_MAX] = "";

		(void)json_get_str(job.doc, "instance", inst, sizeof(inst));
		(void)json_get_str(job.doc, "directory", d, sizeof(d));
		printf("reload: %s loaded %s: generation %lld, %lld certificates, %lld changed, "
		       "%lld ms%s\n",
		       inst, d, (long long)geti(job.doc, "generation"),
		       (long long)geti(job.doc, "loaded"), (long long)geti(job.doc, "nchanged"),
		       (long long)geti(job.doc, "load_ms"),
		       getb(job.doc, "restarted") ? " (restarted)" : "");
		if (!no_flip)
			print_flip("flip", job.doc);
	}
	rc = SV_EXIT_OK;
	if (!reply_ok(job.doc)) {
		if (!json)
			print_error("reload", job.doc);
		rc = failed_code(job.doc);
	}
	json_doc_free(job.doc);
	free(job.reply);
	return rc;
}

/* Whether a switchyardd answers on the configuration's control socket;
 * fills its live colour. */
static int supervisor_running(const struct cfg *cfg, char *live, size_t livelen)
{
	char *reply = NULL, err[256];
	struct json_doc *doc;
	int up;

	if (ctl_request(cfg->supervisor.control_socket, "status", &reply, 2000, err, sizeof(err)) <
	    0)
		return 0;
	doc = json_parse(reply, NULL, 0);
	up = reply_ok(doc);
	if (json_get_str(doc, "live", live, livelen) < 0)
		snprintf(live, livelen, "?");
	json_doc_free(doc);
	free(reply);
	return up;
}

int sv_cmd_rules(const char *cfgpath, int argc, char **argv)
{
	struct cfg *cfg = cfg_load_report(cfgpath);
	char live[16];
	int running;

	/* The configuration first, so that every command that needs it
	 * exits with the same code when it cannot be read. */
	if (cfg == NULL)
		return SV_EXIT_CONFIG;
	running = argc >= 2 && strcmp(argv[1], "flip") == 0 &&
	          supervisor_running(cfg, live, sizeof(live));
	cfg_free(cfg);
	if (running) {
		/* switchyardd would undo it as drift within a second, and a
		 * hand flip skips the gate and the name-loss guard. */
		fprintf(stderr,
		        "switchyard rules flip: switchyardd is running (live %s) and would undo a "
		        "flip made here as drift; use `switchyard flip` instead\n",
		        live);
		return SV_EXIT_FAILED;
	}
	return nf_cmd_rules(cfgpath, argc, argv);
}

int sv_cmd_flows(const char *cfgpath, int argc, char **argv)
{
	struct cfg *cfg = cfg_load_report(cfgpath);

	if (cfg == NULL)
		return SV_EXIT_CONFIG;
	cfg_free(cfg);
	return nf_cmd_flows(cfgpath, argc, argv);
}

int sv_cmd_metrics(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX], *reply;
	struct json_doc *doc;
	const char *text;
	int rc;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: switchyard metrics\n");
		return SV_EXIT_USAGE;
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	rc = request(path, "metrics", 10000, &reply, &doc);
	text = json_str(doc, "text");
	if (rc == SV_EXIT_OK && (!reply_ok(doc) || text == NULL)) {
		print_error("metrics", doc);
		rc = SV_EXIT_FAILED;
	} else if (rc == SV_EXIT_OK) {
		fputs(text, stdout);
	}
	json_doc_free(doc);
	free(reply);
	return rc;
}

int sv_cmd_shutdown(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX], *reply;
	struct json_doc *doc;
	struct stat st;
	int rc;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: switchyard shutdown\n");
		return SV_EXIT_USAGE;
	}
	if (get_path(cfgpath, path, sizeof(path)) < 0)
		return SV_EXIT_CONFIG;
	rc = request(path, "shutdown", 10000, &reply, &doc);
	if (rc != SV_EXIT_OK) {
		free(reply);
		return rc;
	}
	rc = reply_ok(doc) ? SV_EXIT_OK : SV_EXIT_FAILED;
	if (rc != SV_EXIT_OK)
		print_error("shutdown", doc);
	json_doc_free(doc);
	free(reply);
	/* Wait for the socket to go: the supervisor removes it last, so
	 * only its absence says that everything has stopped. */
	for (int i = 0; rc == SV_EXIT_OK && i < 300 && stat(path, &st) == 0; i++)
		usleep(100 * 1000);
	if (rc != SV_EXIT_OK)
		return rc;
	if (stat(path, &st) == 0) {
		fprintf(stderr,
		        "switchyard: switchyardd accepted the shutdown, but %s is still there "
		        "after 30 s: it has not finished stopping (see its log)\n",
		        path);
		return SV_EXIT_PROTOCOL;
	}
	printf("switchyard: stopped switchyardd, both instances and the rules\n");
	return rc;
}

/*
 * reload-config: switchyardd re-reads its file. The socket is found from
 * the file as it is now, read leniently, because the point may be to have
 * the daemon report that file's errors (it keeps running on the old one).
 */
int sv_cmd_reload_config(const char *cfgpath, int argc, char **argv)
{
	char path[CFG_STR_MAX], *reply;
	const char *env = getenv("SWITCHYARD_SOCKET");
	struct json_doc *doc;
	struct cfg *cfg;
	int json = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else {
			fprintf(stderr, "usage: switchyard reload-config [--json]\n");
			return SV_EXIT_USAGE;
		}
	}
	if (env != NULL && env[0] != '\0') {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		cfg = cfg_load_lenient(cfgpath != NULL ? cfgpath : CFG_DEFAULT_PATH, NULL, NULL);
		if (cfg == NULL)
			return SV_EXIT_CONFIG;
		snprintf(path, sizeof(path), "%s", cfg->supervisor.control_socket);
		cfg_free(cfg);
	}
	rc = request(path, "reload-config", CLI_LONG_TIMEOUT_MS, &reply, &doc);
	if (rc != SV_EXIT_OK) {
		free(reply);
		return rc;
	}
	if (json)
		printf("%s\n", reply);
	if (!reply_ok(doc)) {
		if (!json) {
			for (int i = 0; i < json_array_len(doc, "errors"); i++) {
				char p[32];

				snprintf(p, sizeof(p), "errors.%d", i);
				fprintf(stderr, "%s\n", json_str(doc, p) ? json_str(doc, p) : "");
			}
			print_error("reload-config", doc);
		}
		rc = SV_EXIT_FAILED;
	} else if (!json) {
		int n = json_array_len(doc, "changed");

		if (n <= 0)
			printf("switchyard reload-config: nothing changed\n");
		for (int i = 0; i < n; i++) {
			char pk[32], pa[32];

			snprintf(pk, sizeof(pk), "changed.%d.key", i);
			snprintf(pa, sizeof(pa), "changed.%d.apply", i);
			printf("changed %s (%s)\n", json_str(doc, pk) ? json_str(doc, pk) : "?",
			       json_str(doc, pa) ? json_str(doc, pa) : "?");
		}
		if (getb(doc, "flip_needed"))
			printf(
			    "switchyard reload-config: the keys marked 'flip' reach traffic with the "
			    "next `switchyard reload` (it restarts the standby with them, then "
			    "flips)\n");
	}
	json_doc_free(doc);
	free(reply);
	return rc;
}
