/*
 * switchyardd: the supervisor. Reads the configuration, makes sure the
 * SWITCHYARD rules exist and point where the kernel says traffic goes,
 * starts or adopts the blue and green instances, and then runs the event
 * loop (sv_tick) while the control socket serves the `switchyard` command.
 *
 *   switchyardd [-c FILE] [-f] [-d]
 *
 * -f stays in the foreground and logs to stderr; otherwise it daemonizes and
 * logs to syslog. -d logs at debug level. Under systemd (Type=notify) it
 * sends READY=1 once the live instance serves and the rules are in.
 *
 * SIGHUP re-reads the configuration file, like `switchyard reload-config`.
 * SIGTERM/SIGINT stop the supervisor only: the instances run in their own
 * sessions and keep serving, so restarting or upgrading switchyardd never
 * touches traffic. `switchyard shutdown` stops everything.
 */
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cfg.h"
#include "common/log.h"
#include "common/version.h"
#include "netfilter/nf.h"
#include "supervisor/sv.h"

static struct sv g_sv;

static void on_signal(int sig)
{
	(void)sig;
	g_sv.stop = 1;
}

static void on_hup(int sig)
{
	(void)sig;
	g_sv.hup = 1;
}

/* sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or
 * an abstract name when it starts with '@'). */
static void sd_notify_msg(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	size_t len;
	int fd;

	if (path == NULL || path[0] == '\0')
		return;
	len = strlen(path);
	if (len >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn("sd_notify to %s", path);
	close(fd);
}

static void find_proxy_binary(struct sv *sv)
{
	char self[PATH_MAX];
	ssize_t n;

	if (sv->cfg->supervisor.proxy_binary[0] != '\0') {
		snprintf(sv->proxy_bin, sizeof(sv->proxy_bin), "%s",
		         sv->cfg->supervisor.proxy_binary);
		return;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		fatal("readlink /proc/self/exe");
	self[n] = '\0';
	snprintf(sv->proxy_bin, sizeof(sv->proxy_bin), "%s/switchyard-proxy", dirname(self));
}

static void mkdir_p(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", dir);
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		(void)mkdir(buf, mode);
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		fatal("mkdir %s", buf);
}

static void daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		fatal("setsid");
	pid = fork();
	if (pid < 0)
		fatal("fork");
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		fatal("chdir /");
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: switchyardd [-c FILE] [-f] [-d] | --version\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sv *sv = &g_sv;
	const char *cfgpath = CFG_DEFAULT_PATH;
	struct nf_state st;
	struct sigaction sa;
	char err[1024], lockpath[PATH_MAX], warn[512];
	int ch, debug = 0, lockfd, kernel_live;

	if (sy_version_asked(argc, argv)) {
		printf("switchyardd %s\n", sy_version());
		return 0;
	}
	while ((ch = getopt(argc, argv, "c:fdh")) != -1) {
		switch (ch) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'f':
			sv->foreground = 1;
			break;
		case 'd':
			debug = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("switchyardd", NULL, 0);
	if (debug)
		log_set_level(LOG_LVL_DEBUG);
	/* The instances get the configuration's absolute path: they run with
	 * another working directory. */
	if (realpath(cfgpath, sv->cfgpath) == NULL)
		fatal("%s", cfgpath);
	sv->cfg = cfg_load_report(sv->cfgpath);
	if (sv->cfg == NULL)
		fatalx("%s: invalid configuration", sv->cfgpath);
	if (sv->cfg->nlisteners == 0)
		fatalx("%s: no listeners configured", sv->cfgpath);
	find_proxy_binary(sv);
	if (access(sv->proxy_bin, X_OK) < 0)
		fatal("proxy binary %s", sv->proxy_bin);
	mkdir_p(sv->cfg->supervisor.state_dir, 0750);
	{
		char sockdir[PATH_MAX];

		snprintf(sockdir, sizeof(sockdir), "%s", sv->cfg->supervisor.control_socket);
		mkdir_p(dirname(sockdir), 0755);
	}
	pthread_mutex_init(&sv->lock, NULL);
	pthread_mutex_init(&sv->op, NULL);
	pthread_mutex_init(&sv->commit_mu, NULL);
	sv->prev_live = -1;
	sv->op_inst = -1;
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		sv->inst[c].colour = (enum cfg_colour)c;
		sv->inst[c].state = SV_FAILED;
		sv->inst[c].pidfd = -1;
		sv_backoff_init(&sv->inst[c].bo);
	}
	/* Before anything is started: sv_ctl_start would find it only after
	 * both instances run. */
	if (sv->cfg->supervisor.control_group[0] != '\0' &&
	    getgrnam(sv->cfg->supervisor.control_group) == NULL)
		fatalx("supervisor.control_group: no group '%s'",
		       sv->cfg->supervisor.control_group);
	if (!sv->foreground) {
		daemonize();
		log_init("switchyardd", NULL, 1);
	}
	/* One supervisor per state dir: two would fight over the rules. */
	snprintf(lockpath, sizeof(lockpath), "%s/switchyardd.lock", sv->cfg->supervisor.state_dir);
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0)
		fatal("%s", lockpath);
	if (flock(lockfd, LOCK_EX | LOCK_NB) < 0)
		fatalx("%s: another switchyardd holds this state dir", lockpath);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* SIGHUP re-reads the configuration (reload-config); before it is
	 * handled here, its default action would end the supervisor. */
	sa.sa_handler = on_hup;
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* The supervisor's work is small but latency-sensitive (failover
	 * within a second, gate handshakes, drain polling) and must not
	 * starve behind client traffic on a saturated machine. Every thread
	 * created from here on inherits this; the instances are reset to 0. */
	if (setpriority(PRIO_PROCESS, 0, -5) < 0)
		log_debug("cannot raise priority (no CAP_SYS_NICE); continuing at nice 0");

	/* The kernel is the source of truth for which colour is live; the
	 * state file covers rules lost while no supervisor ran, and the
	 * configuration only a first start. */
	memset(&st, 0, sizeof(st));
	if (nf_read(sv->cfg, &st, err, sizeof(err)) < 0)
		fatalx("cannot read the netfilter tables: %s", err);
	kernel_live = st.live;
	if (kernel_live >= 0) {
		sv->live = kernel_live;
		log_info("live colour from the kernel: %s",
		         cfg_colour_name((enum cfg_colour)sv->live));
	} else if ((sv->live = sv_state_load_live(sv->cfg)) >= 0) {
		log_info(
		    "no complete rules in the kernel; live colour from %s/switchyardd.state: %s",
		    sv->cfg->supervisor.state_dir, cfg_colour_name((enum cfg_colour)sv->live));
	} else {
		sv->live = (int)sv->cfg->supervisor.initial_live;
		log_info("first start: live colour %s (supervisor.initial_live)",
		         cfg_colour_name((enum cfg_colour)sv->live));
	}
	{
		char be[640];

		nf_backend_describe(sv->cfg, be, sizeof(be));
		log_info("netfilter backend: %s", be);
	}
	nf_check_nft(warn, sizeof(warn));
	if (warn[0] != '\0')
		log_warnx("%s", warn);
	if (kernel_live >= 0) {
		/* Rules exist: make them exactly ours right away (drift). */
		if (nf_install(sv->cfg, (enum cfg_colour)sv->live, err, sizeof(err)) < 0)
			fatalx("cannot install the rules: %s", err);
		sv->rules_in = 1;
		snprintf(sv->rules_text, sizeof(sv->rules_text), "ok");
	}
	if (sv->cfg->tls.ticket_key_file[0] != '\0' &&
	    sv_tickets_prepare(sv->cfg->tls.ticket_key_file, sv->cfg->supervisor.state_dir,
	                       sv->cfg->proxy.user, sv->cfg->proxy.group, sv->ticket_error,
	                       sizeof(sv->ticket_error)) < 0) {
		log_errx("ticket keys: %s", sv->ticket_error);
		sv->ticket_failures++;
	}
	sv_tickets_tick(sv);
	sv_state_load_flips(sv);
	sv_served_load(sv);

	/*
	 * Everything that can still fail for good (the control socket, the
	 * metrics port) is set up before any instance starts: a supervisor
	 * that exits after starting them would leave two proxies running with
	 * no rules pointing at either. A command that arrives meanwhile waits
	 * on sv->op, which start-up holds until the instances are known.
	 */
	pthread_mutex_lock(&sv->op);
	sv->ctl = sv_ctl_start(sv, err, sizeof(err));
	if (sv->ctl == NULL)
		fatalx("control socket: %s", err);
	sv->metrics = sv_metrics_start(sv, sv->cfg->supervisor.metrics_listen, err, sizeof(err));
	if (sv->metrics == NULL)
		fatalx("metrics: %s", err);
	for (int c = 0; c < CFG_NCOLOURS; c++)
		sv_inst_start_or_adopt(sv, (enum cfg_colour)c);
	/* An adopted instance that still has flows pinned after a flip that a
	 * crashed supervisor could not finish is draining; the main loop
	 * decides when it is done. */
	pthread_mutex_lock(&sv->lock);
	sv->next_flow_count = 0;
	for (int c = 0; c < CFG_NCOLOURS; c++) {
		struct sv_inst *in = &sv->inst[c];

		if (c != sv->live && !in->is_child && sv_state_serving(in->state)) {
			in->state = SV_DRAINING;
			in->drain_start = sv_now_ms();
			/* The restored flip away from it whose drain was never
			 * recorded, so that the drain's end lands in it;
			 * otherwise slot 0, which sv_drain_watch only writes
			 * if it matches (from and drain_ms). */
			in->drain_flip = 0;
			for (uint64_t i = sv->nflips; i-- > 0 && i + SV_FLIPS_KEPT >= sv->nflips;) {
				const struct sv_flip_rec *r = &sv->flips[i % SV_FLIPS_KEPT];

				if (r->from == c && strcmp(r->result, "draining") == 0) {
					in->drain_flip = (int)(i % SV_FLIPS_KEPT);
					break;
				}
			}
		}
	}

	/* The rollback target survives a supervisor restart: it is still
	 * valid if that instance was adopted with the same generation. */
	{
		int prev;
		uint64_t gen;

		if (sv_state_load_prev(sv->cfg, &prev, &gen) == 0 && prev != sv->live) {
			sv->prev_live = prev;
			sv->prev_gen = gen;
		}
	}
	pthread_mutex_unlock(&sv->lock);
	pthread_mutex_unlock(&sv->op);
	log_info("running: live %s, control socket %s, proxy %s",
	         cfg_colour_name((enum cfg_colour)sv->live), sv->cfg->supervisor.control_socket,
	         sv->proxy_bin);

	while (!sv->stop && !sv->shutdown) {
		if (sv->hup) {
			sv->hup = 0;
			sv_reconfig_on_hup(sv);
		}
		sv_tick(sv);
		if (!sv->notified && sv->rules_in && sv->inst[sv->live].state == SV_LIVE) {
			sd_notify_msg("READY=1\nSTATUS=serving");
			sv->notified = 1;
		}
		sv_wait_event(sv, SV_TICK_MS);
	}
	sd_notify_msg("STOPPING=1");
	if (sv->shutdown) {
		log_info("shutdown: stopping both instances and removing the rules");
		pthread_mutex_lock(&sv->op);
		if (nf_remove(sv->cfg, err, sizeof(err)) < 0)
			log_warnx("removing the rules: %s", err);
		sv->stop = 1;
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			char *reply = NULL;

			if (sv->inst[c].pid > 0 &&
			    sv_inst_request(sv, (enum cfg_colour)c, "quit", &reply, 1000, err,
			                    sizeof(err)) < 0)
				kill(sv->inst[c].pid, SIGTERM);
			free(reply);
		}
		for (int i = 0; i < 200; i++) {
			int alive = 0, dummy;

			for (int c = 0; c < CFG_NCOLOURS; c++) {
				struct sv_inst *in = &sv->inst[c];

				if (in->pid <= 0)
					continue;
				if (in->is_child ? waitpid(in->pid, &dummy, WNOHANG) == in->pid
				                 : kill(in->pid, 0) < 0)
					in->pid = 0;
				else
					alive = 1;
			}
			if (!alive)
				break;
			usleep(50 * 1000);
		}
		for (int c = 0; c < CFG_NCOLOURS; c++) {
			if (sv->inst[c].pid > 0) {
				log_warnx("%s did not exit; killing pid %ld",
				          cfg_colour_name((enum cfg_colour)c),
				          (long)sv->inst[c].pid);
				kill(sv->inst[c].pid, SIGKILL);
			}
			(void)unlink(sv->cfg->instances[c].pid_file);
		}
		pthread_mutex_unlock(&sv->op);
	} else {
		log_info("stopping; the instances keep running and will be adopted");
	}
	sv->stop = 1;
	sv_metrics_stop(sv->metrics);
	sv_ctl_stop(sv->ctl);
	log_info("exit");
	return 0;
}
