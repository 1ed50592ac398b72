/*
 * log: levelled logging shared by every Switchyard program.
 *
 * Every line carries the process and instance name, e.g. "proxy[blue]: ...",
 * so that interleaved output from the supervisor and both instances stays
 * readable. Output goes to stderr (default) or syslog.
 *
 * On stderr a line is "TIME PROC[INST]: LEVEL: MESSAGE", TIME being RFC 3339
 * in UTC with milliseconds (2026-12-03T06:19:46.123Z). When stderr is the
 * journal (systemd sets JOURNAL_STREAM to its device:inode), the line starts
 * with the sd-daemon priority "<3>" (error), "<4>", "<6>" or "<7>" instead of
 * a time, which journald stamps itself: `journalctl -p err` then shows the
 * errors alone. docs/operations.md describes the format.
 *
 * Conventions (from OpenBSD): log_warn() and log_err() append strerror(errno);
 * the *x variants do not. Library code never exits; fatal() is for main() only.
 * Never pass key material to any of these functions.
 */
#ifndef SY_LOG_H
#define SY_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level {
	LOG_LVL_ERR = 0,
	LOG_LVL_WARN,
	LOG_LVL_INFO,
	LOG_LVL_DEBUG,
};

/*
 * Sets the line prefix. proc is e.g. "proxy", instance e.g. "blue" or NULL.
 * Both strings are copied. use_syslog selects syslog(3) instead of stderr.
 */
void log_init(const char *proc, const char *instance, int use_syslog);
/* Returns 1 when stderr lines carry journald priorities (see above). */
int log_to_journal(void);
void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);
/* Parses "err", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *s);

void log_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vmsg(enum log_level lvl, int with_errno, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Escapes bytes a peer controls (an SNI name, a path in a request) for a log
 * line: printable ASCII stays, backslash and double quote become \\ and \",
 * every other byte (space, control characters, newlines, NUL, bytes >= 0x7f)
 * becomes \xHH. So neither a line nor a key=value field can be split or
 * forged, and the original bytes can be recovered. out (outlen > 0) is always
 * NUL-terminated; input that does not fit is cut at a whole escape and ends
 * with "...".
 * LOG_ESC_LEN(n) is the size that always fits n input bytes. Returns out.
 */
#define LOG_ESC_LEN(n) (4 * (n) + 1)
const char *log_escape(char *out, size_t outlen, const void *in, size_t inlen);

/* Logs at error level, appends strerror(errno) and exits 1. main() only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Rate limit for messages that can repeat per connection. One static
 * struct log_ratelimit per call site; at most `burst` lines per `interval_s`
 * seconds pass, and the next line that passes reports how many were dropped.
 * Thread-safe (the state is updated with atomics; a rare race lets one extra
 * line through, which is harmless).
 */
struct log_ratelimit {
	uint32_t interval_s;
	uint32_t burst;
	/* private */
	uint64_t window_start;
	uint32_t count;
	uint32_t dropped;
};
#define LOG_RATELIMIT_INIT(interval, n)                                                            \
	{                                                                                          \
		(interval), (n), 0, 0, 0                                                           \
	}

void log_rl(struct log_ratelimit *rl, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
