/*
 * nft.c: the nftables coexistence check.
 *
 * Legacy x_tables nat chains and nftables nat chains register on one hook
 * list. At equal priority the most recently registered one runs first, so a
 * docker or firewalld restart (both write nftables rules through
 * iptables-nft on Debian 12) can change whose REDIRECT wins (docs/internals.md,
 * "Legacy tables beside nftables").
 * Switchyard cannot see nftables rules through libiptc, so it asks the nft
 * command. Talking nf_tables netlink directly would need libnftnl for one
 * warning; running `nft -j list chains` is enough, and is only done from the
 * command line and the supervisor, never on a hot path. When nft is not
 * installed there is nothing to warn about and the check stays silent.
 */
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

#include "common/json.h"
#include "netfilter/nf.h"

#define NFT_OUT_MAX  (4 * 1024 * 1024)
#define NFT_WAIT_MS  3000
#define NFT_MAX_SEEN 1024

/* The first executable "nft" on PATH (or the usual sbin places). */
static int find_nft(char *out, size_t len)
{
	const char *path = getenv("PATH");
	char buf[4096];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s:/usr/sbin:/sbin", path ? path : "");
	for (char *dir = strtok_r(buf, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
		if (dir[0] != '/')
			continue;
		if ((size_t)snprintf(out, len, "%s/nft", dir) >= len)
			continue;
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

/* Runs nft -j list chains; returns its stdout (caller frees) or NULL. */
static char *run_nft(const char *nft)
{
	int pfd[2], status;
	size_t used = 0, cap = 65536;
	char *doc;
	pid_t pid;
	struct timespec start, now;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return NULL;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(pfd[1], 1);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 2);
		}
		execl(nft, "nft", "-j", "list", "chains", (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	doc = malloc(cap);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (doc != NULL) {
		struct pollfd p = {.fd = pfd[0], .events = POLLIN};
		long waited;
		ssize_t r;

		clock_gettime(CLOCK_MONOTONIC, &now);
		waited =
		    (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
		if (waited >= NFT_WAIT_MS || poll(&p, 1, (int)(NFT_WAIT_MS - waited)) <= 0) {
			kill(pid, SIGKILL);
			free(doc);
			doc = NULL;
			break;
		}
		if (used + 1 >= cap) {
			char *n = cap >= NFT_OUT_MAX ? NULL : realloc(doc, cap * 2);

			if (n == NULL) {
				kill(pid, SIGKILL);
				free(doc);
				doc = NULL;
				break;
			}
			doc = n;
			cap *= 2;
		}
		r = read(pfd[0], doc + used, cap - used - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		used += (size_t)r;
	}
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (doc != NULL) {
		doc[used] = '\0';
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			free(doc);
			doc = NULL;
		}
	}
	return doc;
}

void nf_check_nft(char *warn, size_t warnlen)
{
	char nft[512], list[768] = "";
	char *text;
	struct json_doc *doc;
	int n, found = 0;

	if (warn == NULL || warnlen == 0)
		return;
	warn[0] = '\0';
	if (find_nft(nft, sizeof(nft)) < 0)
		return;
	text = run_nft(nft);
	if (text == NULL)
		return;
	doc = json_parse(text, NULL, 0);
	free(text);
	n = json_array_len(doc, "nftables");
	for (int i = 0; i < n && i < NFT_MAX_SEEN; i++) {
		char path[64], type[32], hook[32], family[16], table[64], name[64];
		const struct json_doc *ch;
		int64_t prio = 0;

		snprintf(path, sizeof(path), "nftables.%d.chain", i);
		ch = json_at(doc, path);
		if (json_get_str(ch, "type", type, sizeof(type)) < 0 || strcmp(type, "nat") != 0)
			continue;
		if (json_get_str(ch, "hook", hook, sizeof(hook)) < 0 ||
		    (strcmp(hook, "prerouting") != 0 && strcmp(hook, "output") != 0))
			continue;
		if (json_get_str(ch, "family", family, sizeof(family)) < 0 ||
		    (strcmp(family, "ip") != 0 && strcmp(family, "ip6") != 0 &&
		     strcmp(family, "inet") != 0))
			continue;
		if (json_get_str(ch, "table", table, sizeof(table)) < 0)
			table[0] = '\0';
		if (json_get_str(ch, "name", name, sizeof(name)) < 0)
			name[0] = '\0';
		(void)json_get_i64(ch, "prio", &prio);
		if (found++ < 8) {
			size_t used = strlen(list);

			snprintf(list + used, sizeof(list) - used, "%s%s %s %s (%s, priority %lld)",
			         used ? ", " : "", family, table, name, hook, (long long)prio);
		}
	}
	json_doc_free(doc);
	if (found > 0)
		snprintf(
		    warn, warnlen,
		    "%d nftables nat chain%s share the prerouting/output hooks with Switchyard's "
		    "legacy nat table: %s%s. At equal priority the most recently registered "
		    "chain runs first, so a docker or firewalld restart can change which "
		    "REDIRECT wins; make sure no nftables rule redirects the service ports",
		    found, found == 1 ? "" : "s", list, found > 8 ? ", ..." : "");
}
