/*
 * control: the supervisor's control socket. Same line protocol as every
 * Switchyard socket (docs/control.md), but served by one thread per
 * connection instead of common/ctl's single poll thread: `reload` can run
 * for minutes and `flip` waits for the gate, and the CLI shows progress by
 * polling `status` on a second connection meanwhile, which a single server
 * thread blocked in a handler could not answer. Operations themselves are
 * serialized by sv->op; `status` and `metrics` never take it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/log.h"
#include "supervisor/sv.h"

/* Idle connections are closed after this long, so abandoned clients do not
 * pin threads. */
#define SV_CTL_IDLE_MS 300000
#define SV_CTL_THREADS 32

struct sv_ctl {
	struct sv *sv;
	int lfd;
	int wake[2];
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pthread_t thread;
	atomic_int nconn;
};

struct sv_conn {
	struct sv_ctl *ctl;
	int fd;
};

void sv_status_json(struct sv *sv, struct json_buf *jb)
{
	int64_t now = sv_now_ms();

	pthread_mutex_lock(&sv->lock);
	jb_bool(jb, "ok", 1);
	jb_str(jb, "live", cfg_colour_name((enum cfg_colour)sv->live));
	jb_str(jb, "rules", sv->rules_in ? sv->rules_text : "not installed yet");
	jb_int(jb, "pid", (int64_t)getpid());
	if (sv->op_name[0] != '\0') {
		const struct sv_inst *in = &sv->inst[sv->op_inst >= 0 ? sv->op_inst : 0];

		jb_obj_begin(jb, "op");
		jb_str(jb, "name", sv->op_name);
		jb_str(jb, "phase", sv->op_phase);
		if (sv->op_inst >= 0)
			jb_str(jb, "instance", cfg_colour_name((enum cfg_colour)sv->op_inst));
		jb_int(jb, "elapsed_ms", now - sv->op_start);
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
	jb_obj_begin(jb, "counters");
	jb_uint(jb, "flips_ok", sv->flips_ok);
	jb_uint(jb, "flips_failed", sv->flips_failed);
	jb_uint(jb, "gate_refusals", sv->gate_refusals);
	jb_uint(jb, "failovers", sv->failovers);
	jb_uint(jb, "drift_repairs", sv->drift_repairs);
	jb_uint(jb, "respawns", sv->respawns);
	jb_obj_end(jb);
	jb_obj_begin(jb, "tickets");
	jb_uint(jb, "rotations", sv->ticket_rotations);
	jb_uint(jb, "failures", sv->ticket_failures);
	if (sv->ticket_error[0] != '\0')
		jb_str(jb, "error", sv->ticket_error);
	jb_obj_end(jb);
	pthread_mutex_unlock(&sv->lock);
}

/* Splits line into at most max words (in place). */
static int split(char *line, char **argv, int max)
{
	int n = 0;

	for (char *p = strtok(line, " \t"); p != NULL; p = strtok(NULL, " \t")) {
		if (n == max)
			return -1;
		argv[n++] = p;
	}
	return n;
}

void sv_ctl_handle(struct sv *sv, const char *line, struct json_buf *reply)
{
	char buf[CTL_LINE_MAX + 1], *argv[8];
	int argc;

	for (const char *p = line; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			ctl_reply_error(reply, "control characters in the request");
			return;
		}
	}
	snprintf(buf, sizeof(buf), "%s", line);
	argc = split(buf, argv, 8);
	if (argc < 0) {
		ctl_reply_error(reply, "too many arguments");
		return;
	}
	if (argc == 0) {
		ctl_reply_error(reply, "empty request");
		return;
	}
	jb_obj_begin(reply, NULL);
	if (strcmp(argv[0], "status") == 0 && argc == 1) {
		sv_status_json(sv, reply);
	} else if (strcmp(argv[0], "flip") == 0 &&
	           (argc == 1 || (argc == 2 && strcmp(argv[1], "--force") == 0))) {
		sv_op_flip(sv, argc == 2, reply);
	} else if (strcmp(argv[0], "rollback") == 0 && argc == 1) {
		sv_op_rollback(sv, 0, reply);
	} else if (strcmp(argv[0], "reload") == 0) {
		const char *dir = NULL;
		int no_flip = 0, restart = 0;

		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--no-flip") == 0) {
				no_flip = 1;
			} else if (strcmp(argv[i], "--restart") == 0) {
				restart = 1;
			} else if (strcmp(argv[i], "--certs") == 0 && i + 1 < argc &&
			           argv[i + 1][0] == '/') {
				dir = argv[++i];
			} else {
				ctl_reply_error(reply,
				                "usage: reload [--certs /ABSOLUTE/DIR] [--no-flip] "
				                "[--restart]");
				return;
			}
		}
		sv_op_reload(sv, dir, no_flip, restart, reply);
	} else if (strcmp(argv[0], "metrics") == 0 && argc == 1) {
		char *text = sv_metrics_text(sv);

		jb_bool(reply, "ok", text != NULL);
		jb_str(reply, "text", text != NULL ? text : "");
		free(text);
	} else if (strcmp(argv[0], "shutdown") == 0 && argc == 1) {
		sv->shutdown = 1;
		jb_bool(reply, "ok", 1);
	} else {
		char word[40];

		snprintf(word, sizeof(word), "%s", argv[0]);
		ctl_reply_error(
		    reply,
		    "unknown command or arguments '%s' (commands: status, flip "
		    "[--force], reload [--certs DIR] [--no-flip] [--restart], rollback, "
		    "metrics, shutdown)",
		    word);
		return;
	}
	jb_obj_end(reply);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *conn_thread(void *arg)
{
	struct sv_conn *conn = arg;
	struct sv *sv = conn->ctl->sv;
	char *in = malloc(CTL_LINE_MAX + 2);
	size_t len = 0;
	int discarding = 0;
	struct json_buf jb;

	jb_init(&jb);
	while (in != NULL && !sv->stop) {
		struct pollfd p = {.fd = conn->fd, .events = POLLIN};
		ssize_t n;
		char *nl;

		if (poll(&p, 1, SV_CTL_IDLE_MS) <= 0)
			break;
		n = read(conn->fd, in + len, CTL_LINE_MAX + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		while ((nl = memchr(in, '\n', len)) != NULL) {
			size_t ll = (size_t)(nl - in);

			*nl = '\0';
			if (ll > 0 && in[ll - 1] == '\r')
				in[ll - 1] = '\0';
			jb_reset(&jb);
			if (discarding) {
				discarding = 0;
				ctl_reply_error(&jb, "request line longer than %d bytes",
				                CTL_LINE_MAX);
			} else {
				sv_ctl_handle(sv, in, &jb);
			}
			if (write_all(conn->fd, jb_cstr(&jb), strlen(jb_cstr(&jb))) < 0 ||
			    write_all(conn->fd, "\n", 1) < 0)
				goto out;
			memmove(in, nl + 1, len - ll - 1);
			len -= ll + 1;
		}
		if (len > CTL_LINE_MAX) {
			/* Over-long: drop what we have and everything up to the
			 * next newline, then answer once. */
			discarding = 1;
			len = 0;
		}
	}
out:
	jb_free(&jb);
	free(in);
	close(conn->fd);
	atomic_fetch_sub(&conn->ctl->nconn, 1);
	free(conn);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct sv_ctl *ctl = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = ctl->lfd, .events = POLLIN},
		                      {.fd = ctl->wake[0], .events = POLLIN}};
		struct sv_conn *conn;
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(ctl->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (atomic_fetch_add(&ctl->nconn, 1) >= SV_CTL_THREADS) {
			static const char busy[] =
			    "{\"ok\":false,\"error\":\"too many control connections\"}\n";

			(void)write_all(fd, busy, sizeof(busy) - 1);
			close(fd);
			atomic_fetch_sub(&ctl->nconn, 1);
			continue;
		}
		conn = malloc(sizeof(*conn));
		if (conn == NULL) {
			close(fd);
			atomic_fetch_sub(&ctl->nconn, 1);
			continue;
		}
		conn->ctl = ctl;
		conn->fd = fd;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, conn_thread, conn) != 0) {
			close(fd);
			free(conn);
			atomic_fetch_sub(&ctl->nconn, 1);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

struct sv_ctl *sv_ctl_start(struct sv *sv, char *err, size_t errlen)
{
	const char *path = sv->cfg->supervisor.control_socket;
	struct sv_ctl *ctl = calloc(1, sizeof(*ctl));
	struct sockaddr_un sun;
	int fd;

	if (ctl == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ctl->sv = sv;
	ctl->lfd = ctl->wake[0] = ctl->wake[1] = -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: socket path too long", path);
		goto fail;
	}
	memcpy(sun.sun_path, path, strlen(path));
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	/* A socket file nobody answers on is a leftover of a crash; a live
	 * one means another switchyardd runs. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		snprintf(err, errlen, "%s: another switchyardd is already running", path);
		goto fail;
	}
	if (fd >= 0)
		close(fd);
	(void)unlink(path);
	ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl->lfd < 0 || bind(ctl->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(path, sv->cfg->supervisor.control_mode) < 0 || listen(ctl->lfd, 64) < 0 ||
	    pipe2(ctl->wake, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (pthread_create(&ctl->thread, NULL, accept_thread, ctl) != 0) {
		snprintf(err, errlen, "cannot start the control thread");
		goto fail;
	}
	return ctl;
fail:
	if (ctl->lfd >= 0)
		close(ctl->lfd);
	if (ctl->wake[0] >= 0) {
		close(ctl->wake[0]);
		close(ctl->wake[1]);
	}
	free(ctl);
	return NULL;
}

void sv_ctl_stop(struct sv_ctl *ctl)
{
	if (ctl == NULL)
		return;
	if (write(ctl->wake[1], "x", 1) < 0)
		log_warn("control: wake-up");
	pthread_join(ctl->thread, NULL);
	close(ctl->lfd);
	(void)unlink(ctl->path);
	/* Connection threads are detached; they notice sv->stop or their
	 * client closing, and the process exits right after this anyway. */
	close(ctl->wake[0]);
	close(ctl->wake[1]);
	free(ctl);
}
