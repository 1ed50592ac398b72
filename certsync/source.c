/*
 * Running a source command (e.g. `rclone sync remote:certs {dir}`) with a
 * timeout, keeping the tail of its stderr for the report.
 */
#include "certsync/cs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Replaces every "{dir}" in cmd with dir. */
static int cs_expand(const char *cmd, const char *dir, char *out, size_t outlen)
{
	size_t o = 0, dlen = strlen(dir);

	for (const char *p = cmd; *p != '\0';) {
		if (strncmp(p, "{dir}", 5) == 0) {
			if (o + dlen >= outlen)
				return -1;
			memcpy(out + o, dir, dlen);
			o += dlen;
			p += 5;
		} else {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return 0;
}

int cs_run_source(const char *cmd, const char *dir, uint32_t timeout_ms, char *err, size_t errlen)
{
	char full[8192], tail[1024] = "";
	size_t taillen = 0;
	struct timespec start, now;
	int pfd[2], status = 0, timed_out = 0;
	pid_t pid;

	if (cs_expand(cmd, dir, full, sizeof(full)) < 0) {
		snprintf(err, errlen, "certsync.source.command: command too long");
		return -1;
	}
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		/* Its own process group, so a timeout kills the whole pipeline
		 * the shell may have started, not just the shell. */
		setpgid(0, 0);
		dup2(pfd[1], STDERR_FILENO);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
		}
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		long elapsed;
		char buf[512];
		ssize_t n;

		clock_gettime(CLOCK_MONOTONIC, &now);
		elapsed =
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (elapsed >= (long)timeout_ms) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			break;
		}
		if (poll(&p, 1, (int)((long)timeout_ms - elapsed)) <= 0)
			continue;
		n = read(pfd[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		/* Keep only the last part of stderr: that is where tools put the
		 * reason they failed. */
		for (ssize_t i = 0; i < n; i++) {
			if (taillen + 1 >= sizeof(tail)) {
				memmove(tail, tail + sizeof(tail) / 2, taillen - sizeof(tail) / 2);
				taillen -= sizeof(tail) / 2;
			}
			tail[taillen++] = buf[i];
		}
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	tail[taillen] = '\0';
	while (taillen > 0 && (tail[taillen - 1] == '\n' || tail[taillen - 1] == ' '))
		tail[--taillen] = '\0';
	if (timed_out) {
		snprintf(err, errlen, "source command timed out after %u ms and was killed: %s",
		         timeout_ms, full);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status))
		snprintf(err, errlen, "source command exited with status %d: %s%s%s",
		         WEXITSTATUS(status), full, taillen ? ": stderr: " : "", tail);
	else
		snprintf(err, errlen, "source command killed by signal %d: %s", WTERMSIG(status),
		         full);
	return -1;
}
