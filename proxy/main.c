/*
 * switchyard-proxy: one TLS-terminating instance (blue or green).
 *
 *   switchyard-proxy -c FILE -i blue|green [-d CERTDIR] [-f]
 *
 * Start-up order matters: the control socket comes first so that `status`
 * answers "loading" while thousands of certificates load; the instance says
 * "ready" only once every certificate is loaded and every listener is bound.
 * The main thread then only waits for signals (signalfd) and the control
 * socket's quit request; all traffic runs on the worker threads.
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/ctl.h"
#include "common/log.h"
#include "common/version.h"
#include "proxy/px.h"

static void usage(void)
{
	fprintf(stderr, "usage: switchyard-proxy -c FILE -i blue|green [-d CERTDIR] [-f]\n"
	                "  -c FILE     configuration file (default " CFG_DEFAULT_PATH ")\n"
	                "  -i COLOUR   which instance of the file this process is\n"
	                "  --version   print the version and exit\n"
	                "  -d CERTDIR  certificate directory (default certificates.directory)\n"
	                "  -f          stay in the foreground (the proxy never daemonises itself;\n"
	                "              accepted for compatibility)\n");
	exit(2);
}

static void write_pid(const char *path)
{
	FILE *f;
	char tmp[CFG_STR_MAX + 8];

	if (path[0] == '\0')
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (f == NULL) {
		log_warn("pid file %s", tmp);
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		log_warn("pid file %s", path);
}

static void drop_privileges(const struct cfg_proxy *pc, const char *sock)
{
	struct passwd *pw;
	gid_t gid;

	if (pc->user[0] == '\0')
		return;
	pw = getpwnam(pc->user);
	if (pw == NULL)
		fatalx("proxy.user: no user '%s'", pc->user);
	gid = pw->pw_gid;
	if (pc->group[0] != '\0') {
		struct group *gr = getgrnam(pc->group);
		if (gr == NULL)
			fatalx("proxy.group: no group '%s'", pc->group);
		gid = gr->gr_gid;
	}
	/* The control socket was made before the drop; the supervisor's
	 * gate talks to it with these credentials too (supervisor/gate.c). */
	if (sock[0] != '\0' && lchown(sock, pw->pw_uid, (gid_t)-1) < 0)
		log_warn("control socket %s: cannot give it to %s", sock, pc->user);
	if (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(pw->pw_uid) < 0)
		fatal("cannot drop privileges to %s", pc->user);
	log_info("running as %s", pc->user);
}

/* Every connection needs two descriptors (client and server): use the whole
 * hard limit rather than the usual soft 1024, as HAProxy does. */
static void raise_nofile(const struct cfg_proxy *pc)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("setrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur != RLIM_INFINITY && (uint64_t)pc->maxconn * 2 + 64 > rl.rlim_cur)
		log_warnx("proxy.maxconn %u needs %llu descriptors, the limit is %llu", pc->maxconn,
		          (unsigned long long)pc->maxconn * 2 + 64,
		          (unsigned long long)rl.rlim_cur);
}

static int nworkers(const struct cfg *cfg)
{
	long n = cfg->proxy.threads > 0 ? cfg->proxy.threads : sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		n = 1;
	if (n > PX_MAX_THREADS) {
		log_warnx("proxy.threads: %ld workers asked for, %d is the most; using %d", n,
		          PX_MAX_THREADS, PX_MAX_THREADS);
		n = PX_MAX_THREADS;
	}
	return (int)n;
}

static uint32_t total_active(struct px_proc *p)
{
	return atomic_load(&p->global.active);
}

/* SWITCHYARD_TEST_LOAD_HOLD=N:PATH holds the initial load after N files for
 * as long as PATH exists (struct cert_opts, hold_file): the tests' way to
 * watch a load in progress, or to kill an instance during one, without
 * depending on how long a directory takes to load. */
static void load_hold_hook(struct cert_opts *opts)
{
	const char *env = getenv("SWITCHYARD_TEST_LOAD_HOLD");
	char *end;
	unsigned long n;

	if (env == NULL || *env == '\0')
		return;
	n = strtoul(env, &end, 10);
	if (*end != ':' || end[1] == '\0') {
		log_warnx("SWITCHYARD_TEST_LOAD_HOLD=%s: want N:PATH; ignored", env);
		return;
	}
	opts->hold_after = n;
	opts->hold_file = end + 1;
	log_info("test hook: the load holds after %lu files while %s exists", n, end + 1);
}

static void reload_certs(struct px_proc *p)
{
	struct cert_opts opts;
	struct cert_report *rep = NULL;
	struct cert_store *old, *nw;
	size_t old_names;
	char kerr[512];

	/* Done on the main thread: it has nothing else to do, and workers
	 * keep serving from the old store until the new one is published. */
	cert_opts_from_cfg(&opts, p->cfg);
	old = cert_slot_acquire(p->slot);
	old_names = old ? cert_store_nnames(old) : 0;
	nw = cert_store_reload(old, p->certdir, &opts, &rep);
	cert_store_unref(old);
	if (nw == NULL) {
		log_warnx("SIGHUP: reload failed: %s",
		          rep && cert_report_fatal(rep) ? cert_report_fatal(rep) : "?");
	} else if (px_reload_refused(rep, old_names, kerr, sizeof(kerr))) {
		log_warnx("SIGHUP: reload refused: %s", kerr);
		cert_store_unref(nw);
	} else {
		px_publish(p, nw, rep);
		px_log_kept("SIGHUP", rep);
		log_info("SIGHUP: certificates reloaded (%zu changed)", cert_report_nchanged(rep));
	}
	cert_report_free(rep);
	if (p->tickets_on && px_tickets_load(p, kerr, sizeof(kerr)) < 0)
		log_warnx("SIGHUP: ticket keys not reloaded: %s", kerr);
}

int main(int argc, char **argv)
{
	static struct px_proc proc;
	struct px_proc *p = &proc;
	const char *cfgpath = NULL, *colour = NULL, *certdir = NULL;
	struct cert_report *rep = NULL;
	struct cert_store *store;
	struct cert_opts opts;
	struct ctl_server *ctl;
	char err[512];
	sigset_t sigs;
	int opt, sfd, nw, listeners_closed = 0;

	if (sy_version_asked(argc, argv)) {
		printf("switchyard-proxy %s\n", sy_version());
		return 0;
	}
	while ((opt = getopt(argc, argv, "c:i:d:fh")) != -1) {
		switch (opt) {
		case 'c':
			cfgpath = optarg;
			break;
		case 'i':
			colour = optarg;
			break;
		case 'd':
			certdir = optarg;
			break;
		case 'f':
			break;
		default:
			usage();
		}
	}
	if (colour == NULL || optind != argc)
		usage();
	if (cfg_colour_parse(colour, &p->colour) < 0)
		usage();
	log_init("proxy", colour, 0);
	p->cfg = cfg_load_report(cfgpath);
	if (p->cfg == NULL)
		return 1;
	log_init("proxy", colour, p->cfg->proxy.log == CFG_LOG_SYSLOG);
	log_set_level((enum log_level)p->cfg->proxy.log_level);
	p->certdir = certdir ? certdir : p->cfg->certs.directory;
	raise_nofile(&p->cfg->proxy);
	p->start_ms = px_now_ms();
	pthread_mutex_init(&p->reload_lock, NULL);
	atomic_store(&p->state, PX_LOADING);

	/* Every thread inherits this mask; the signals are read from the
	 * signalfd below, so no work ever runs in a signal handler. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fatal("signalfd");

	write_pid(p->cfg->instances[p->colour].pid_file);
	p->slot = cert_slot_new();
	if (p->slot == NULL)
		fatalx("out of memory");
	ctl = px_control_start(p, err, sizeof(err));
	if (ctl == NULL)
		fatalx("control socket: %s", err);

	if (px_tls_init(p, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (px_backend_init(p, err, sizeof(err)) < 0)
		fatalx("%s", err);

	atomic_store(&p->load_total, cert_dir_nfiles(p->certdir));
	cert_leaf_cache_set_limit((size_t)p->cfg->certs.cache_size);
	cert_opts_from_cfg(&opts, p->cfg);
	opts.progress = &p->load_done;
	load_hold_hook(&opts);
	uint64_t t0 = px_now_ms();
	store = cert_store_load(p->certdir, &opts, &rep);
	if (store == NULL)
		fatalx("certificates: %s",
		       rep && cert_report_fatal(rep) ? cert_report_fatal(rep) : p->certdir);
	px_publish(p, store, rep);
	pthread_mutex_lock(&p->reload_lock);
	snprintf(p->served_dir, sizeof(p->served_dir), "%s", p->certdir);
	pthread_mutex_unlock(&p->reload_lock);
	log_info("certificates: %zu loaded, %zu skipped, %zu warned from %s in %llu ms",
	         cert_report_nloaded(rep), cert_report_nskipped(rep), cert_report_nwarned(rep),
	         p->certdir, (unsigned long long)(px_now_ms() - t0));
	cert_report_free(rep);

	/* The count is taken once, since with proxy.accept reuseport each
	 * worker owns listening sockets; p->nworkers is set only once every
	 * worker exists, because the control thread and the workers
	 * themselves (px_workers_wake_all) walk that many. */
	nw = nworkers(p->cfg);
	if (px_listen_open(p, nw, err, sizeof(err)) < 0)
		fatalx("%s", err);
	drop_privileges(&p->cfg->proxy, p->cfg->instances[p->colour].control_socket);

	for (int i = 0; i < nw; i++)
		if ((p->workers[i] = px_worker_new(p, i)) == NULL)
			fatal("worker %d", i);
	p->nworkers = nw;
	for (int i = 0; i < nw; i++)
		if (px_worker_start(p->workers[i]) < 0)
			fatal("worker %d", i);
	if (px_health_start(p) < 0)
		log_warn("active health checks not started");
	atomic_store(&p->state, PX_READY);
	log_info("ready: %d listening sockets (accept: %s), %d workers", p->nlsock,
	         p->cfg->proxy.accept == CFG_ACCEPT_REUSEPORT ? "reuseport" : "shared",
	         p->nworkers);

	for (;;) {
		struct pollfd pfd = {.fd = sfd, .events = POLLIN};
		struct signalfd_siginfo si;
		int stop = 0;

		poll(&pfd, 1, 100);
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo == SIGHUP)
				reload_certs(p);
			else
				stop = 1;
		}
		if (atomic_load(&p->quit_req))
			stop = 1;
		if (stop && !atomic_load(&p->stopping)) {
			uint64_t hs = p->cfg->proxy.hard_stop_after_ms;
			log_info("stopping: %u connections to finish", total_active(p));
			atomic_store(&p->state, PX_STOPPING);
			p->hard_stop_at = hs ? px_now_ms() + hs : 0;
			atomic_store(&p->stopping, 1);
			px_workers_wake_all(p);
		}
		if (atomic_load(&p->stopping)) {
			/* Close the listening sockets only once no worker
			 * polls them any more; from then on the kernel refuses
			 * new connections instead of queueing them for no one. */
			if (!listeners_closed && atomic_load(&p->lstop_acks) == p->nworkers) {
				px_listen_close(p);
				listeners_closed = 1;
			}
			if (total_active(p) == 0)
				break;
			if (p->hard_stop_at && px_now_ms() >= p->hard_stop_at) {
				log_warnx("hard_stop_after: cutting %u connections",
				          total_active(p));
				break;
			}
		}
	}
	atomic_store(&p->exiting, 1);
	px_workers_wake_all(p);
	for (int i = 0; i < p->nworkers; i++)
		px_worker_join(p->workers[i]);
	px_health_stop(p);
	ctl_server_stop(ctl);
	for (int i = 0; i < p->nworkers; i++)
		px_worker_free(p->workers[i]);
	px_listen_close(p);
	cert_slot_free(p->slot);
	px_tls_free(p);
	if (p->cfg->instances[p->colour].pid_file[0])
		unlink(p->cfg->instances[p->colour].pid_file);
	log_info("stopped");
	cfg_free(p->cfg);
	close(sfd);
	return 0;
}
