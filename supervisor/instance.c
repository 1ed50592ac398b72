/*
 * instance: the two switchyard-proxy processes. Each runs in its own
 * session (setsid), so a supervisor crash, restart or upgrade never sends
 * them a signal: traffic keeps flowing while no supervisor runs, and the
 * next supervisor adopts them through their pid files and control sockets
 * instead of starting duplicates that would fight over the ports.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/log.h"
#include "supervisor/sv.h"

const char *sv_state_name(enum sv_state s)
{
	static const char *names[] = {"starting", "loading", "ready", "live",
	                              "draining", "standby", "failed"};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

int sv_state_serving(enum sv_state s)
{
	return s == SV_READY || s == SV_LIVE || s == SV_DRAINING || s == SV_STANDBY;
}

int sv_inst_request(struct sv *sv, enum cfg_colour c, const char *line, char **reply,
                    int timeout_ms, char *err, size_t errlen)
{
	return ctl_request(sv->cfg->instances[c].control_socket, line, reply, timeout_ms, err,
	                   errlen);
}

void sv_inst_free_changed(struct sv_inst *in)
{
	for (size_t i = 0; i < in->nchanged; i++)
		free(in->changed[i]);
	free(in->changed);
	in->changed = NULL;
	in->nchanged = 0;
}

void sv_inst_set_dir(struct sv_inst *in, const char *dir)
{
	char real[PATH_MAX], *base;

	snprintf(in->certs_dir, sizeof(in->certs_dir), "%s", dir);
	if (realpath(dir, real) == NULL)
		snprintf(real, sizeof(real), "%s", dir);
	base = basename(real);
	snprintf(in->set_id, sizeof(in->set_id), "%s", base);
}

static pid_t read_pid_file(const char *path)
{
	FILE *f = fopen(path, "re");
	long pid = 0;

	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid > 1 ? (pid_t)pid : 0;
}

static void write_pid_file(const char *path, pid_t pid)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.sv", path);
	f = fopen(tmp, "we");
	if (f == NULL) {
		log_warn("%s", tmp);
		return;
	}
	fprintf(f, "%ld\n", (long)pid);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		log_warn("cannot write pid file %s", path);
}

/* Whether pid is a proxy of colour c: a recycled pid must not be adopted. */
static int proc_is_instance(pid_t pid, enum cfg_colour c)
{
	char path[64], buf[4096];
	const char *want = cfg_colour_name(c);
	ssize_t n;
	int fd, prev_i = 0;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; p < buf + n; p += strlen(p) + 1) {
		if (prev_i && strcmp(p, want) == 0)
			return 1;
		prev_i = strcmp(p, "-i") == 0;
	}
	return 0;
}

void sv_inst_renice(pid_t pid, int nice_value)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	/* Nice values are per thread on Linux: every thread of the process
	 * is set, and threads it creates later inherit from their creator. */
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	d = opendir(path);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		long tid = strtol(de->d_name, NULL, 10);

		if (tid > 0)
			(void)setpriority(PRIO_PROCESS, (id_t)tid, nice_value);
	}
	closedir(d);
}

static time_t mtime_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_mtime : 0;
}

/* Applies one status reply from the proxy. Caller holds sv->lock. */
static void apply_status(struct sv *sv, struct sv_inst *in, const struct json_doc *reply)
{
	char state[32] = "";
	int64_t v;

	in->last_ok_ms = sv_now_ms();
	(void)json_get_str(reply, "state", state, sizeof(state));
	if (json_get_i64(reply, "generation", &v) == 0)
		in->generation = (uint64_t)v;
	/* A poll answered just before a reload-certs began describes the
	 * previous load; sv_op_reload owns the figures until it ends. */
	if (!in->reloading && json_get_i64(reply, "loaded", &v) == 0)
		in->loaded = (uint64_t)v;
	if (!in->reloading && json_get_i64(reply, "total", &v) == 0)
		in->total = (uint64_t)v;
	if (json_get_i64(reply, "certs.loaded", &v) == 0)
		in->certs = (uint64_t)v;
	if (json_get_i64(reply, "certs.skipped", &v) == 0)
		in->skipped = (uint64_t)v;
	if (json_get_i64(reply, "certs.names", &v) == 0)
		in->names = (uint64_t)v;
	if (json_get_i64(reply, "active", &v) == 0)
		in->active = (uint64_t)v;
	in->proxy_draining = strcmp(state, "draining") == 0;
	if (in->state != SV_STARTING && in->state != SV_LOADING)
		return;
	if (strcmp(state, "loading") == 0) {
		in->state = SV_LOADING;
	} else if (strcmp(state, "ready") == 0 || strcmp(state, "draining") == 0) {
		in->state = (int)in->colour == sv->live ? SV_LIVE : SV_READY;
		in->fails_in_row = 0;
		if (in->niced) {
			sv_inst_renice(in->pid, 0);
			in->niced = 0;
		}
		log_info("%s is %s: generation %llu, %llu certificates (pid %ld)",
		         cfg_colour_name(in->colour), sv_state_name(in->state),
		         (unsigned long long)in->generation, (unsigned long long)in->certs,
		         (long)in->pid);
	}
}

int sv_inst_spawn(struct sv *sv, enum cfg_colour c)
{
	struct sv_inst *in = &sv->inst[c];
	const char *colour = cfg_colour_name(c);
	char logpath[PATH_MAX], dir[CFG_STR_MAX];
	int preload;
	pid_t pid;

	snprintf(logpath, sizeof(logpath), "%s/%s.log", sv->cfg->supervisor.state_dir, colour);
	pthread_mutex_lock(&sv->lock);
	preload = (int)c != sv->live && sv->inst[sv->live].pid > 0;
	/* A respawn loads the set its instance held, not
	 * certificates.directory: after `reload --certs OTHER` the two
	 * differ, and a crash must not swap the set behind the operator's
	 * back (the name-loss guard would then refuse every flip to it). */
	snprintf(dir, sizeof(dir), "%s",
	         in->certs_dir[0] != '\0' ? in->certs_dir : sv->cfg->certs.directory);
	pthread_mutex_unlock(&sv->lock);
	pid = fork();
	if (pid < 0) {
		snprintf(in->last_error, sizeof(in->last_error), "fork: %s", strerror(errno));
		log_warn("%s: fork", colour);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		int fd;

		/* Its own session: no signal aimed at the supervisor's process
		 * group or terminal reaches the instance. */
		setsid();
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		/* switchyardd runs at nice -5; the instances must not. A
		 * standby preloads at nice SV_PRELOAD_NICE so that parsing
		 * thousands of certificates never steals CPU from the live
		 * instance's handshakes (HAProxy #1634); it is reset to 0
		 * once loaded. */
		(void)setpriority(PRIO_PROCESS, 0, preload ? SV_PRELOAD_NICE : 0);
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		if (!sv->foreground) {
			fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0640);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execl(sv->proxy_bin, sv->proxy_bin, "-c", sv->cfgpath, "-i", colour, "-d", dir,
		      (char *)NULL);
		fprintf(stderr, "switchyardd: exec %s: %s\n", sv->proxy_bin, strerror(errno));
		_exit(127);
	}
	write_pid_file(sv->cfg->instances[c].pid_file, pid);
	pthread_mutex_lock(&sv->lock);
	in->pid = pid;
	in->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	in->is_child = 1;
	in->spawns++;
	in->niced = preload;
	in->state = SV_STARTING;
	in->started_ms = sv_now_ms();
	in->last_ok_ms = in->started_ms;
	in->stop_wanted = 0;
	in->reloading = 0;
	in->generation = in->loaded = in->total = in->certs = in->active = 0;
	in->bin_mtime = mtime_of(sv->proxy_bin);
	in->cfg_mtime = mtime_of(sv->cfgpath);
	sv_inst_set_dir(in, dir);
	sv_inst_free_changed(in);
	pthread_mutex_unlock(&sv->lock);
	log_info("%s: started %s (pid %ld)", colour, sv->proxy_bin, (long)pid);
	return 0;
}

int sv_inst_start_or_adopt(struct sv *sv, enum cfg_colour c)
{
	struct sv_inst *in = &sv->inst[c];
	const char *colour = cfg_colour_name(c);
	pid_t pid = read_pid_file(sv->cfg->instances[c].pid_file);
	char err[256], got[16], *reply = NULL;
	struct json_doc *doc;
	int64_t deadline = sv_now_ms() + 3000, v;

	if (pid > 0 && kill(pid, 0) == 0 && proc_is_instance(pid, c)) {
		/* It may be busy (a reload-certs in flight blocks its control
		 * thread), so give it a few seconds before giving up on it. */
		while (sv_now_ms() < deadline) {
			if (sv_inst_request(sv, c, "status", &reply, 1000, err, sizeof(err)) == 0)
				break;
			usleep(100 * 1000);
		}
		doc = reply != NULL ? json_parse(reply, NULL, 0) : NULL;
		free(reply);
		if (json_get_str(doc, "instance", got, sizeof(got)) == 0 &&
		    strcmp(got, colour) == 0 &&
		    (json_get_i64(doc, "pid", &v) < 0 || (pid_t)v == pid)) {
			pthread_mutex_lock(&sv->lock);
			in->pid = pid;
			in->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
			in->is_child = 0;
			in->state = SV_STARTING;
			in->started_ms = sv_now_ms();
			in->bin_mtime = mtime_of(sv->proxy_bin);
			in->cfg_mtime = mtime_of(sv->cfgpath);
			/* The set it serves, which a reload may have changed
			 * since it started; an older proxy does not say. */
			sv_inst_set_dir(in, json_str(doc, "directory") != NULL
			                        ? json_str(doc, "directory")
			                        : sv->cfg->certs.directory);
			apply_status(sv, in, doc);
			pthread_mutex_unlock(&sv->lock);
			log_info("%s: adopted running instance (pid %ld, %s, generation %llu)",
			         colour, (long)pid, sv_state_name(in->state),
			         (unsigned long long)in->generation);
			json_doc_free(doc);
			return 0;
		}
		json_doc_free(doc);
		/* Alive but not answering as itself: a wedged process would
		 * keep the ports, so it is replaced. */
		log_warnx("%s: pid %ld does not answer on %s; killing it", colour, (long)pid,
		          sv->cfg->instances[c].control_socket);
		kill(pid, SIGKILL);
		usleep(100 * 1000);
	}
	return sv_inst_spawn(sv, c);
}

void sv_inst_stop(struct sv *sv, enum cfg_colour c, int timeout_ms)
{
	struct sv_inst *in = &sv->inst[c];
	char err[256], *reply = NULL;
	int64_t deadline = sv_now_ms() + timeout_ms;
	pid_t pid;

	pthread_mutex_lock(&sv->lock);
	pid = in->pid;
	in->stop_wanted = 1;
	pthread_mutex_unlock(&sv->lock);
	if (pid <= 0)
		return;
	if (sv_inst_request(sv, c, "quit", &reply, 1000, err, sizeof(err)) < 0)
		kill(pid, SIGTERM);
	free(reply);
	for (;;) {
		int gone;

		pthread_mutex_lock(&sv->lock);
		gone = in->pid != pid || in->state == SV_FAILED;
		pthread_mutex_unlock(&sv->lock);
		if (gone)
			return;
		if (sv_now_ms() >= deadline) {
			log_warnx("%s: did not exit within %d ms; killing pid %ld",
			          cfg_colour_name(c), timeout_ms, (long)pid);
			kill(pid, SIGKILL);
			deadline = sv_now_ms() + 5000;
			timeout_ms = 5000;
		}
		usleep(20 * 1000);
	}
}

/*
 * Why an instance that died before it was ready could not start, when the
 * supervisor can tell without its log: one of its ports is taken. The
 * proxy binds after its certificates are loaded, so without this the cause
 * of a crash loop is only in the instance's own log. Fills out with
 * "port P on ADDR is in use by another process" or leaves it empty.
 */
static void port_conflict(const struct cfg *cfg, enum cfg_colour c, char *out, size_t outlen)
{
	const struct cfg_instance *ci = &cfg->instances[c];

	out[0] = '\0';
	for (int l = 0; l < cfg->nlisteners; l++) {
		for (int b = 0; b < ci->nbind; b++) {
			struct sockaddr_storage ss;
			socklen_t sl = cfg_sockaddr(&ci->bind[b], ci->ports[l], &ss);
			int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, r;

			if (fd < 0)
				continue;
			/* As the proxy binds: TIME_WAIT is no conflict, and a
			 * v6 wildcard does not claim the v4 port. */
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
			r = bind(fd, (struct sockaddr *)&ss, sl);
			close(fd);
			if (r < 0 && errno == EADDRINUSE) {
				snprintf(out, outlen, "port %u on %s is in use by another process",
				         ci->ports[l], ci->bind[b].text);
				return;
			}
		}
	}
}

/* Whether the instance's process is gone (reaps our own children). */
static int inst_dead(struct sv_inst *in, int *status)
{
	*status = 0;
	if (in->pid <= 0)
		return 1;
	if (in->is_child) {
		pid_t r = waitpid(in->pid, status, WNOHANG);

		return r == in->pid || (r < 0 && errno == ECHILD);
	}
	/* An adopted process is not our child; once dead it may stay a zombie
	 * until its new parent reaps it, which kill(pid, 0) cannot tell
	 * apart from alive. Its pidfd can. */
	if (in->pidfd >= 0) {
		struct pollfd p = {.fd = in->pidfd, .events = POLLIN};

		return poll(&p, 1, 0) > 0;
	}
	return kill(in->pid, 0) < 0 && errno == ESRCH;
}

int sv_inst_reap(struct sv *sv)
{
	int64_t now = sv_now_ms();
	int live_died = 0;

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		struct sv_inst *in = &sv->inst[c];
		int status;

		pthread_mutex_lock(&sv->lock);
		if (in->state != SV_FAILED && inst_dead(in, &status)) {
			uint64_t up = (uint64_t)(now - in->started_ms);
			uint32_t delay = sv_backoff_next(&in->bo, up);

			if (in->stop_wanted) {
				delay = 0;
				sv_backoff_init(&in->bo);
				log_info("%s: pid %ld exited as asked", cfg_colour_name(in->colour),
				         (long)in->pid);
			} else {
				char cause[160] = "";

				in->restarts++;
				in->fails_in_row++;
				sv->respawns++;
				if (in->state == SV_STARTING || in->state == SV_LOADING)
					port_conflict(sv->cfg, in->colour, cause, sizeof(cause));
				if (WIFSIGNALED(status))
					snprintf(in->last_error, sizeof(in->last_error),
					         "pid %ld killed by signal %d after %llu ms",
					         (long)in->pid, WTERMSIG(status),
					         (unsigned long long)up);
				else
					snprintf(in->last_error, sizeof(in->last_error),
					         "pid %ld exited with status %d after %llu ms%s%s",
					         (long)in->pid, WEXITSTATUS(status),
					         (unsigned long long)up, cause[0] ? ": " : "",
					         cause);
				log_warnx("%s (%s): %s; respawn in %u ms",
				          cfg_colour_name(in->colour), sv_state_name(in->state),
				          in->last_error, delay);
			}
			if (in->state == SV_LIVE)
				live_died = 1;
			in->state = SV_FAILED;
			in->pid = 0;
			if (in->pidfd >= 0)
				close(in->pidfd);
			in->pidfd = -1;
			in->reloading = 0;
			in->active = 0;
			in->respawn_at = now + delay;
			sv_inst_free_changed(in);
		}
		pthread_mutex_unlock(&sv->lock);
	}
	return live_died;
}

void sv_inst_poll(struct sv *sv)
{
	int64_t now = sv_now_ms();

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		struct sv_inst *in = &sv->inst[c];
		char err[256], *reply = NULL;
		int spawn = 0;

		pthread_mutex_lock(&sv->lock);
		if (in->state == SV_FAILED && now >= in->respawn_at && !sv->shutdown &&
		    !(in->stop_wanted && sv->stop))
			spawn = 1;
		pthread_mutex_unlock(&sv->lock);
		if (spawn) {
			if (sv_inst_spawn(sv, (enum cfg_colour)c) < 0) {
				pthread_mutex_lock(&sv->lock);
				in->respawn_at = now + sv_backoff_next(&in->bo, 0);
				pthread_mutex_unlock(&sv->lock);
			}
			continue;
		}
		if (in->state == SV_FAILED || in->reloading)
			continue;
		if (sv_inst_request(sv, (enum cfg_colour)c, "status", &reply, 500, err,
		                    sizeof(err)) == 0) {
			/* Parsed before taking the lock, which the control
			 * thread and the flip path wait on. */
			struct json_doc *doc = json_parse(reply, NULL, 0);

			pthread_mutex_lock(&sv->lock);
			if (in->pid > 0 && doc != NULL)
				apply_status(sv, in, doc);
			pthread_mutex_unlock(&sv->lock);
			json_doc_free(doc);
		}
		free(reply);
	}
}

/* A failed ticket key update is loud: the instances keep encrypting with
 * old keys (or disagree), so resumption silently degrades to full
 * handshakes. It is logged as an error, counted, and shown in status until
 * an update reaches both instances. */
static void ticket_failure(struct sv *sv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void ticket_failure(struct sv *sv, const char *fmt, ...)
{
	char msg[sizeof(sv->ticket_error)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_errx("ticket keys: %s", msg);
	pthread_mutex_lock(&sv->lock);
	sv->ticket_failures++;
	snprintf(sv->ticket_error, sizeof(sv->ticket_error), "%s", msg);
	pthread_mutex_unlock(&sv->lock);
}

static void tell_instances(struct sv *sv)
{
	int failed = 0;

	for (int c = 0; c < CFG_NCOLOURS; c++) {
		char err[256] = "", *reply = NULL;
		struct json_doc *doc = NULL;
		int ok = 0;

		if (sv->inst[c].pid <= 0 || sv->inst[c].state == SV_FAILED)
			continue;
		if (sv_inst_request(sv, (enum cfg_colour)c, "reload-tickets", &reply, 2000, err,
		                    sizeof(err)) == 0 &&
		    ((doc = json_parse(reply, NULL, 0)) == NULL ||
		     json_get_bool(doc, "ok", &ok) < 0 || !ok) &&
		    json_get_str(doc, "error", err, sizeof(err)) < 0)
			snprintf(err, sizeof(err), "malformed reply to reload-tickets");
		json_doc_free(doc);
		if (err[0] != '\0') {
			ticket_failure(sv, "%s did not take the new keys: %s",
			               cfg_colour_name((enum cfg_colour)c), err);
			failed = 1;
		}
		free(reply);
	}
	if (!failed) {
		pthread_mutex_lock(&sv->lock);
		sv->ticket_error[0] = '\0';
		pthread_mutex_unlock(&sv->lock);
	}
}

void sv_tickets_tick(struct sv *sv)
{
	const char *path = sv->cfg->tls.ticket_key_file;
	char err[512];
	struct stat st;
	int64_t now = sv_now_ms();
	int rc;

	if (path[0] == '\0' || now < sv->next_ticket_check)
		return;
	sv->next_ticket_check = now + 1000;
	rc = sv_tickets_ensure(path, sv->cfg->proxy.user, sv->cfg->proxy.group, err, sizeof(err));
	if (rc < 0) {
		ticket_failure(sv, "%s", err);
		return;
	}
	if (rc == 1) {
		log_info("ticket keys: created %s with %d keys", path, SV_TICKET_KEYS);
		tell_instances(sv);
		return;
	}
	/* The file's mtime is the last rotation, so a supervisor restart does
	 * not rotate early or late. */
	if (sv->cfg->supervisor.ticket_rotate_ms == 0 || stat(path, &st) < 0)
		return;
	if ((int64_t)(time(NULL) - st.st_mtime) * 1000 <
	    (int64_t)sv->cfg->supervisor.ticket_rotate_ms)
		return;
	if (sv_tickets_rotate(path, sv->cfg->proxy.user, sv->cfg->proxy.group, err, sizeof(err)) <
	    0) {
		ticket_failure(sv, "rotation failed: %s", err);
		return;
	}
	log_info("ticket keys: rotated %s", path);
	tell_instances(sv);
	/* Counted once the instances were told, so that a reader who sees
	 * the count move also sees their outcome in ticket_error. */
	pthread_mutex_lock(&sv->lock);
	sv->ticket_rotations++;
	pthread_mutex_unlock(&sv->lock);
}
