/*
 * log: see log.h.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

static char log_prefix[64] = "switchyard";
static int log_syslog;
static int log_journal;
static enum log_level log_level = LOG_LVL_INFO;

static const char *const log_names[] = {"error", "warning", "info", "debug"};

/*
 * systemd connects stderr to the journal and says so in JOURNAL_STREAM
 * ("DEVICE:INODE" of that socket). The variable is inherited by children
 * whose stderr may be elsewhere (a redirect in a script), so it counts only
 * when fd 2 is that very socket.
 */
static int journal_is_stderr(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int log_to_journal(void)
{
	return log_journal;
}

void log_init(const char *proc, const char *instance, int use_syslog)
{
	if (instance != NULL && instance[0] != '\0')
		snprintf(log_prefix, sizeof(log_prefix), "%s[%s]", proc, instance);
	else
		snprintf(log_prefix, sizeof(log_prefix), "%s", proc);
	log_syslog = use_syslog;
	log_journal = journal_is_stderr();
	if (log_syslog)
		openlog(log_prefix, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level lvl)
{
	log_level = lvl;
}

enum log_level log_get_level(void)
{
	return log_level;
}

int log_level_parse(const char *s)
{
	for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
		if (strcmp(s, log_names[i]) == 0)
			return (int)i;
	if (strcmp(s, "err") == 0)
		return LOG_LVL_ERR;
	if (strcmp(s, "warn") == 0)
		return LOG_LVL_WARN;
	return -1;
}

void log_vmsg(enum log_level lvl, int with_errno, const char *fmt, va_list ap)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char msg[1024];
	int saved = errno;

	if (lvl > log_level)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		size_t len = strlen(msg);
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	}
	/* One fprintf per line keeps lines from different threads whole. */
	if (log_syslog) {
		syslog(prio[lvl], "%s", msg);
	} else if (log_journal) {
		fprintf(stderr, "<%d>%s: %s: %s\n", prio[lvl], log_prefix, log_names[lvl], msg);
	} else {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		fprintf(stderr, "%s.%03ldZ %s: %s: %s\n", when, ts.tv_nsec / 1000000, log_prefix,
		        log_names[lvl], msg);
	}
	errno = saved;
}

#define LOG_FN(name, lvl, with_errno)                                                              \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vmsg(lvl, with_errno, fmt, ap);                                                \
		va_end(ap);                                                                        \
	}

LOG_FN(log_err, LOG_LVL_ERR, 1)
LOG_FN(log_errx, LOG_LVL_ERR, 0)
LOG_FN(log_warn, LOG_LVL_WARN, 1)
LOG_FN(log_warnx, LOG_LVL_WARN, 0)
LOG_FN(log_info, LOG_LVL_INFO, 0)
LOG_FN(log_debug, LOG_LVL_DEBUG, 0)

static void log_line(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_line(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, 0, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void log_rl(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
{
	struct timespec ts;
	uint64_t now, start;
	uint32_t dropped;
	va_list ap;

	if (lvl > log_level)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (uint64_t)ts.tv_sec;
	start = __atomic_load_n(&rl->window_start, __ATOMIC_RELAXED);
	if (now - start >= rl->interval_s) {
		__atomic_store_n(&rl->window_start, now, __ATOMIC_RELAXED);
		__atomic_store_n(&rl->count, 0, __ATOMIC_RELAXED);
	}
	if (__atomic_add_fetch(&rl->count, 1, __ATOMIC_RELAXED) > rl->burst) {
		__atomic_add_fetch(&rl->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	dropped = __atomic_exchange_n(&rl->dropped, 0, __ATOMIC_RELAXED);
	if (dropped > 0)
		log_line(lvl, "(%u similar messages suppressed)", dropped);
	va_start(ap, fmt);
	log_vmsg(lvl, 0, fmt, ap);
	va_end(ap);
}

const char *log_escape(char *out, size_t outlen, const void *in, size_t inlen)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *p = in;
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (size_t i = 0; i < inlen; i++) {
		char e[4];
		size_t n = 0;

		if (p[i] == '\\' || p[i] == '"') {
			e[n++] = '\\';
			e[n++] = (char)p[i];
		} else if (p[i] > 0x20 && p[i] < 0x7f) {
			e[n++] = (char)p[i];
		} else {
			e[n++] = '\\';
			e[n++] = 'x';
			e[n++] = hexd[p[i] >> 4];
			e[n++] = hexd[p[i] & 15];
		}
		/* Room for this escape, and for "..." if more input follows. */
		if (o + n + (i + 1 < inlen ? 3 : 0) >= outlen) {
			if (outlen > 3 && o + 3 < outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, e, n);
		o += n;
	}
	out[o] = '\0';
	return out;
}
