/*
 * ctl: the line protocol of every Switchyard control socket (each proxy
 * instance and the supervisor). A request is one line of text; every reply
 * is one JSON object on one line, always with "ok": true or false and, when
 * false, "error": "message". See docs/control.md.
 *
 * The server runs in its own thread with a poll loop, so a slow or hostile
 * client never blocks a worker thread. Over-long lines (more than
 * CTL_LINE_MAX bytes) and unknown commands get an error reply; they never
 * crash or block the server.
 */
#ifndef SY_CTL_H
#define SY_CTL_H

#include <stddef.h>
#include <sys/types.h>

#include "common/json.h"

#define CTL_LINE_MAX    4096
#define CTL_MAX_CLIENTS 64

/*
 * Called once per request line (NUL-terminated, without the newline). The
 * handler writes one JSON object into reply (already jb_init'ed, empty). It
 * runs on the server thread; a handler that takes long delays only other
 * control clients. If the handler sets *close_after, the connection is
 * closed once the reply is written.
 */
typedef void (*ctl_handler)(void *arg, const char *line, struct json_buf *reply, int *close_after);

struct ctl_server;
/* Creates the unix socket at path (a stale socket file is replaced, a live
 * one is an error), chmods it to mode, and starts the server thread.
 * Returns NULL with err filled on failure. */
struct ctl_server *ctl_server_start(const char *path, mode_t mode, ctl_handler handler, void *arg,
                                    char *err, size_t errlen);
/* Stops the thread, closes every client and unlinks the socket. NULL is a
 * no-op. Must not be called from the handler. */
void ctl_server_stop(struct ctl_server *srv);

/* Helpers for handlers. */
void ctl_reply_error(struct json_buf *reply, const char *fmt, ...)
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
