/*
 * xtlock.c: the xtables lock, the flock that iptables-legacy takes around
 * every change of a legacy table. iptc.c holds it for each write
 * transaction (docs/netfilter.md, "Locking"); nothing else here takes it.
 * The lock file belongs to the mount namespace, the tables to the network
 * namespace, so tests point $XTABLES_LOCKFILE at a private file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "netfilter/nf.h"
#include "netfilter/nf_int.h"

#define NF_LOCK_DEFAULT "/run/xtables.lock"

static unsigned nf_lock_wait_ms = 5000;

void nf_set_lock_wait(unsigned ms)
{
	nf_lock_wait_ms = ms;
}

/* The pid holding a lock on the file open at fd, from /proc/locks, or 0. */
static long lock_holder(int fd)
{
	struct stat st;
	char line[256];
	long pid = 0;
	FILE *fp;

	if (fstat(fd, &st) < 0 || (fp = fopen("/proc/locks", "re")) == NULL)
		return 0;
	while (pid == 0 && fgets(line, sizeof(line), fp) != NULL) {
		unsigned maj, min;
		unsigned long ino;
		long p;
		char type[16];

		/* "1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"; waiters
		 * are listed as "1: -> FLOCK ..." and are skipped. */
		if (sscanf(line, "%*d: %15s %*s %*s %ld %x:%x:%lu", type, &p, &maj, &min, &ino) !=
		    5)
			continue;
		if (strcmp(type, "FLOCK") == 0 && ino == (unsigned long)st.st_ino &&
		    maj == major(st.st_dev) && min == minor(st.st_dev))
			pid = p;
	}
	fclose(fp);
	return pid;
}

static void pid_comm(long pid, char *out, size_t len)
{
	char path[64];
	FILE *fp;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	fp = fopen(path, "re");
	if (fp == NULL)
		return;
	if (fgets(out, (int)len, fp) != NULL)
		out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Takes the lock iptables takes: flock on $XTABLES_LOCKFILE, else
 * /run/xtables.lock. The lock file belongs to the mount namespace, not the
 * network namespace (docs/internals.md, "Namespaces"). iptables-legacy without -w waits for it
 * without bound, so we keep it only for one transaction; and we never wait
 * without bound ourselves: short non-blocking retries up to nf_lock_wait_ms.
 */
int nf_xtlock_take(int *fdp, char *err, size_t errlen)
{
	const char *path = getenv("XTABLES_LOCKFILE");
	uint64_t deadline;
	unsigned sleep_us = 50;
	int fd;

	if (path == NULL || path[0] == '\0')
		path = NF_LOCK_DEFAULT;
	fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	/*
	 * Under systemd's ProtectSystem=strict, /run is read-only, and
	 * ReadWritePaths=-/run/xtables.lock opens a hole only when the file
	 * existed as the unit started. flock needs no write access, so an
	 * existing file is locked through a read-only descriptor. When there
	 * is no file at all, no iptables-legacy run has taken the lock since
	 * /run was mounted (each one creates it), so the transaction goes on
	 * unlocked, and says so once.
	 */
	if (fd < 0 && errno == EROFS) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT) {
			static atomic_int warned;

			if (atomic_exchange(&warned, 1) == 0)
				log_warnx("xtables lock: %s does not exist and cannot be created "
				          "(read-only file system); committing without it until "
				          "it exists (docs/netfilter.md, \"Locking\")",
				          path);
			*fdp = -1;
			return 0;
		}
	}
	if (fd < 0) {
		int e = errno;

		nf_seterr(err, errlen, "cannot open the xtables lock %s: %s%s", path, strerror(e),
		          e == EACCES || e == EPERM ? " (not root?)" : "");
		errno = e;
		return -1;
	}
	deadline = now_us() + (uint64_t)nf_lock_wait_ms * 1000u;
	for (;;) {
		struct timespec ts;

		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = errno;

			nf_seterr(err, errlen, "cannot lock %s: %s", path, strerror(e));
			close(fd);
			errno = e;
			return -1;
		}
		if (now_us() >= deadline) {
			long pid = lock_holder(fd);
			char comm[64];

			pid_comm(pid, comm, sizeof(comm));
			if (pid > 0)
				nf_seterr(
				    err, errlen,
				    "the xtables lock %s is held by pid %ld (%s) for more than %u "
				    "ms",
				    path, pid, comm[0] ? comm : "?", nf_lock_wait_ms);
			else
				nf_seterr(
				    err, errlen,
				    "the xtables lock %s is held by another process for more than "
				    "%u ms",
				    path, nf_lock_wait_ms);
			close(fd);
			errno = EWOULDBLOCK;
			return -1;
		}
		ts.tv_sec = 0;
		ts.tv_nsec = (long)sleep_us * 1000;
		nanosleep(&ts, NULL);
		if (sleep_us < 20000)
			sleep_us *= 2;
	}
	*fdp = fd;
	return 0;
}

void nf_xtlock_release(int fd)
{
	/* Closing the only descriptor of the open file drops the flock; -1
	 * is the unlocked transaction of a read-only /run (nf_xtlock_take). */
	if (fd >= 0)
		close(fd);
}
