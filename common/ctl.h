/*
 * ctl: the control socket of every Switchyard process (each proxy instance
 * and the supervisor): one server, one framing, one command-table
 * dispatcher. A request is one line of text; every reply is one JSON object
 * on one line, always with "ok": true or false and, when false,
 * "error": "message". See docs/control.md.
 *
 * The server is one poll thread. Commands flagged CTL_SLOW (a reload that
 * runs for minutes, a flip that waits on the health gate) run on a small
 * pool of worker threads while their connection is parked, so the poll
 * thread keeps answering `status` on other connections. Every limit below
 * applies to every server.
 */
#ifndef SY_CTL_H
#define SY_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include "common/json.h"

/* --- limits (one place; docs/control.md explains them) ------------------- */
#define CTL_LINE_MAX 4096 /* bytes in a request line, its newline included */
#define CTL_ARGS_MAX 8    /* words in a request, the command included */
/* Clients connected at once, and the part of them that only privileged
 * peers (uid 0 or the server's own euid, by SO_PEERCRED) may take. */
#define CTL_MAX_CLIENTS      64
#define CTL_RESERVED_CLIENTS 16
/* A new client must send a complete request line within CTL_REQUEST_MS; a
 * client that got its reply must send the next one within CTL_IDLE_MS; a
 * queued reply must be read within CTL_WRITE_MS. Otherwise the connection
 * is closed. A connection whose slow command runs has no deadline. */
#define CTL_REQUEST_MS 3000
#define CTL_IDLE_MS    10000
#define CTL_WRITE_MS   5000
/* A reply larger than this is not queued: the client is closed instead. */
#define CTL_OUT_MAX (1024 * 1024)
/* Worker threads for CTL_SLOW commands, at most (per server). */
#define CTL_SLOW_THREADS_MAX 8

/* --- the command table --------------------------------------------------- */

/*
 * One parsed request. argv points into buf (the request's own copy), so a
 * request is safe to hand to another thread. Handlers read arguments with
 * ctl_flag(), ctl_opt() and ctl_arg().
 */
struct ctl_cmd;
struct ctl_req {
	const struct ctl_cmd *cmd;
	int argc;
	char *argv[CTL_ARGS_MAX];
	unsigned char role[CTL_ARGS_MAX]; /* private: what each word is */
	int close_after;                  /* set by a handler: close after the reply */
	char buf[CTL_LINE_MAX + 1];
};

/*
 * A handler writes the fields of its reply, "ok" included, into the reply
 * object that the dispatcher has opened, and returns 0; or it calls
 * ctl_reply_error() (which replaces the reply with a complete error object)
 * and returns -1.
 */
typedef int (*ctl_fn)(void *ctx, struct ctl_req *req, struct json_buf *reply);

#define CTL_SLOW 0x1 /* runs on a worker thread, off the poll thread */

/*
 * A command. usage is both the text shown to the client and the argument
 * spec that the dispatcher checks before the handler runs: after the
 * command word, each item is one of
 *   [--flag]           an optional flag
 *   [--opt VALUE]      an optional option with one value
 *   VALUE / [VALUE]    a required / optional positional argument
 * where a VALUE that starts with '/' must be an absolute path and the VALUE
 * "N" a decimal number. Options come in any order, each at most once.
 * A table is an array ended by an entry whose name is NULL.
 */
struct ctl_cmd {
	const char *name;
	const char *usage; /* "reload [--certs /DIR] [--no-flip]" */
	unsigned flags;    /* CTL_SLOW */
	ctl_fn fn;
};

/* Argument accessors for handlers (the request was checked against usage). */
int ctl_flag(const struct ctl_req *req, const char *flag);
const char *ctl_opt(const struct ctl_req *req, const char *opt); /* NULL if absent */
const char *ctl_arg(const struct ctl_req *req, int i); /* i-th positional, NULL if absent */

/*
 * Tokenizes line (no newline, NUL-terminated) into req and checks it
 * against the table: empty lines, control characters, unknown commands
 * and arguments that do not match the usage get an error written into
 * reply and -1. Returns 0 with req->cmd set otherwise. Reentrant: it keeps
 * no state outside req.
 */
int ctl_parse(const struct ctl_cmd *table, const char *line, struct ctl_req *req,
              struct json_buf *reply);
/* Runs a parsed request's handler and completes the reply object. */
void ctl_run(void *ctx, struct ctl_req *req, struct json_buf *reply);
/*
 * Parse and run one line, synchronously (slow commands included), on the
 * calling thread: the whole dispatch without a socket. reply must be
 * jb_init'ed and empty; *close_after is set when the command asks for the
 * connection to close.
 */
void ctl_dispatch_line(const struct ctl_cmd *table, void *ctx, const char *line,
                       struct json_buf *reply, int *close_after);

/* --- framing ------------------------------------------------------------- */

/*
 * Line framing of a byte stream, shared by the server and ctl_feed(). Feed
 * bytes into the space ctl_frame_space() gives, then call ctl_frame_next()
 * until it returns CTL_FRAME_NONE.
 */
struct ctl_framer {
	char buf[CTL_LINE_MAX + 1];
	size_t len;
	size_t handed;  /* the line handed out last, dropped on the next call */
	int discarding; /* inside an over-long line: drop bytes up to '\n' */
};
enum ctl_frame {
	CTL_FRAME_NONE = 0, /* no complete line yet */
	CTL_FRAME_LINE,     /* *line is a request (NUL-terminated, no newline) */
	CTL_FRAME_TOO_LONG, /* an over-long line started: answer it once */
	CTL_FRAME_NUL,      /* a line with a NUL byte: answer with an error */
};
void ctl_frame_init(struct ctl_framer *f);
/* Free space at the end of the buffer; *room is its size (never 0). */
char *ctl_frame_space(struct ctl_framer *f, size_t *room);
void ctl_frame_added(struct ctl_framer *f, size_t n);
/* Non-zero while bytes wait that ctl_frame_next() has not looked at. */
int ctl_frame_pending(const struct ctl_framer *f);
/* *line points into f and stays valid until the next call on f. */
enum ctl_frame ctl_frame_next(struct ctl_framer *f, char **line);
/* The error reply for CTL_FRAME_TOO_LONG and CTL_FRAME_NUL. */
void ctl_frame_error(enum ctl_frame kind, struct json_buf *reply);

/*
 * The protocol without a socket, for tests and fuzz targets: frames n
 * bytes of a client's stream into lines and dispatches each one through
 * table on the calling thread (slow handlers run inline), passing each
 * reply (one JSON object, no newline) to emit when emit is not NULL. Stops
 * after a command that closes the connection. Returns the number of
 * replies.
 */
int ctl_feed(const struct ctl_cmd *table, void *ctx, const char *data, size_t n,
             void (*emit)(void *arg, const char *reply), void *arg);

/* --- the server ---------------------------------------------------------- */

struct ctl_server_cfg {
	const char *path; /* unix socket; a stale file is replaced, a live one is an error */
	mode_t mode;
	const struct ctl_cmd *cmds;
	void *ctx;        /* handed to every handler */
	int slow_threads; /* workers for CTL_SLOW commands, 1..CTL_SLOW_THREADS_MAX;
	                     1 serializes them */
	int detach_slow;  /* ctl_server_stop() does not wait for a running slow
	                     handler: only for a process that exits right after */
};
struct ctl_server;
/* Creates the socket, chmods it and starts the threads. Returns NULL with
 * err filled on failure. */
struct ctl_server *ctl_server_start(const struct ctl_server_cfg *cfg, char *err, size_t errlen);
/* Stops the poll thread, closes every client and unlinks the socket. Slow
 * requests not started yet are dropped; one still running is waited for
 * (unless detach_slow), its reply dropped. NULL is a no-op. Must not be
 * called from a handler. */
void ctl_server_stop(struct ctl_server *srv);

/* Replaces reply with {"ok":false,"error":...}; returns -1 for handlers. */
int ctl_reply_error(struct json_buf *reply, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Client: connects to path, sends line (a newline is appended), and reads one
 * reply line within timeout_ms. On success returns 0 and *reply is a
 * malloc'd NUL-terminated string without the newline (caller frees). On
 * failure returns -1 and err says why ("no such socket: is switchyardd
 * running?", "timed out after N ms", ...).
 */
int ctl_request(const char *path, const char *line, char **reply, int timeout_ms, char *err,
                size_t errlen);

#endif
