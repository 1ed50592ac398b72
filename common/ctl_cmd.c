/*
 * ctl_cmd: the parts of the control protocol that need no socket: line
 * framing, the tokenizer and the command-table dispatcher (see ctl.h).
 * Everything here keeps its state in the caller's structs, so any number
 * of threads may parse and dispatch at once.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl.h"

/* What each word of a request is, once checked against the usage spec. */
enum { ROLE_CMD, ROLE_FLAG, ROLE_OPT, ROLE_VALUE, ROLE_ARG };

int ctl_reply_error(struct json_buf *reply, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	jb_reset(reply);
	jb_obj_begin(reply, NULL);
	jb_bool(reply, "ok", 0);
	jb_str(reply, "error", msg);
	jb_obj_end(reply);
	return -1;
}

/* Copies word for an error message, printable ASCII only: the reply must
 * stay valid UTF-8 JSON whatever bytes a client sent. */
static void printable(char *out, size_t outlen, const char *word)
{
	size_t i = 0;

	for (; word[i] != '\0' && i + 1 < outlen; i++)
		out[i] = isprint((unsigned char)word[i]) ? word[i] : '?';
	out[i] = '\0';
}

/* --- framing ------------------------------------------------------------- */

void ctl_frame_init(struct ctl_framer *f)
{
	f->len = 0;
	f->handed = 0;
	f->discarding = 0;
}

/* Drops the line ctl_frame_next() handed out last. */
static void frame_settle(struct ctl_framer *f)
{
	if (f->handed == 0)
		return;
	memmove(f->buf, f->buf + f->handed, f->len - f->handed);
	f->len -= f->handed;
	f->handed = 0;
}

char *ctl_frame_space(struct ctl_framer *f, size_t *room)
{
	frame_settle(f);
	/* ctl_frame_next() empties a full buffer that holds no newline, so
	 * there is room once it has returned CTL_FRAME_NONE. */
	*room = CTL_LINE_MAX - f->len;
	return f->buf + f->len;
}

void ctl_frame_added(struct ctl_framer *f, size_t n)
{
	f->len += n;
}

int ctl_frame_pending(const struct ctl_framer *f)
{
	return f->len > f->handed;
}

enum ctl_frame ctl_frame_next(struct ctl_framer *f, char **line)
{
	for (;;) {
		char *nl;
		size_t end, len;

		frame_settle(f);
		nl = memchr(f->buf, '\n', f->len);
		if (nl == NULL) {
			if (f->len < CTL_LINE_MAX)
				return CTL_FRAME_NONE;
			/* A full buffer without a newline is an over-long line:
			 * answer it once, then drop it up to its newline. */
			f->len = 0;
			if (f->discarding)
				return CTL_FRAME_NONE;
			f->discarding = 1;
			return CTL_FRAME_TOO_LONG;
		}
		end = (size_t)(nl - f->buf);
		f->handed = end + 1;
		if (f->discarding) {
			f->discarding = 0;
			continue;
		}
		len = end > 0 && f->buf[end - 1] == '\r' ? end - 1 : end;
		if (memchr(f->buf, '\0', len) != NULL)
			return CTL_FRAME_NUL;
		/* The line is handed out in place, valid until the next call. */
		f->buf[len] = '\0';
		*line = f->buf;
		return CTL_FRAME_LINE;
	}
}

void ctl_frame_error(enum ctl_frame kind, struct json_buf *reply)
{
	if (kind == CTL_FRAME_TOO_LONG)
		ctl_reply_error(reply, "request line longer than %d bytes", CTL_LINE_MAX - 1);
	else
		ctl_reply_error(reply, "request contains a NUL byte");
}

/* --- the tokenizer and the command table --------------------------------- */

/* One item of a usage spec (see struct ctl_cmd). */
struct spec_item {
	char name[40];  /* "--certs" for flags and options, else the placeholder */
	char value[40]; /* an option's value placeholder, "" for flags */
	int is_opt;     /* starts with "--" */
	int optional;
	int seen;
};

/* Parses cmd->usage after the command word; returns the item count. */
static int spec_parse(const char *usage, struct spec_item *it, int max)
{
	const char *p = usage + strcspn(usage, " ");
	int n = 0;

	while (*p != '\0' && n < max) {
		char tok[80];
		size_t len;
		int opt = 0;

		p += strspn(p, " ");
		if (*p == '\0')
			break;
		if (*p == '[') {
			opt = 1;
			len = strcspn(++p, "]");
		} else {
			len = strcspn(p, " ");
		}
		snprintf(tok, sizeof(tok), "%.*s", (int)len, p);
		p += len;
		if (*p == ']')
			p++;
		memset(&it[n], 0, sizeof(it[n]));
		it[n].optional = opt;
		it[n].is_opt = strncmp(tok, "--", 2) == 0;
		len = strcspn(tok, " ");
		snprintf(it[n].name, sizeof(it[n].name), "%.*s", (int)len, tok);
		if (it[n].is_opt && tok[len] == ' ')
			snprintf(it[n].value, sizeof(it[n].value), "%s", tok + len + 1);
		n++;
	}
	return n;
}

/* Checks word against a value placeholder; returns a reason or NULL. */
static const char *value_bad(const char *placeholder, const char *word)
{
	if (placeholder[0] == '/' && word[0] != '/')
		return " needs an absolute path";
	if (strcmp(placeholder, "N") == 0 &&
	    (word[0] == '\0' || strspn(word, "0123456789") != strlen(word) || strlen(word) > 9))
		return " needs a decimal number";
	return NULL;
}

static int usage_error(const struct ctl_cmd *cmd, struct json_buf *reply, const char *what,
                       const char *word, const char *extra)
{
	char w[48];

	printable(w, sizeof(w), word);
	return ctl_reply_error(reply, "'%s': %s '%s'%s (usage: %s)", cmd->name, what, w, extra,
	                       cmd->usage);
}

/* Checks the words of req against the usage of req->cmd, setting roles. */
static int check_args(struct ctl_req *req, struct json_buf *reply)
{
	const struct ctl_cmd *cmd = req->cmd;
	struct spec_item it[CTL_ARGS_MAX + 4];
	int nit = spec_parse(cmd->usage, it, CTL_ARGS_MAX + 4), pos = 0;

	req->role[0] = ROLE_CMD;
	for (int i = 1; i < req->argc; i++) {
		const char *w = req->argv[i], *why;
		int k;

		if (strncmp(w, "--", 2) == 0) {
			for (k = 0; k < nit && !(it[k].is_opt && strcmp(it[k].name, w) == 0); k++)
				;
			if (k == nit)
				return usage_error(cmd, reply, "unknown option", w, "");
			if (it[k].seen++)
				return usage_error(cmd, reply, "option", w, " given twice");
			if (it[k].value[0] == '\0') {
				req->role[i] = ROLE_FLAG;
				continue;
			}
			if (i + 1 == req->argc)
				return usage_error(cmd, reply, "option", w, " needs a value");
			why = value_bad(it[k].value, req->argv[i + 1]);
			if (why != NULL)
				return usage_error(cmd, reply, "option", w, why);
			req->role[i] = ROLE_OPT;
			req->role[++i] = ROLE_VALUE;
			continue;
		}
		while (pos < nit && it[pos].is_opt)
			pos++;
		if (pos == nit)
			return usage_error(cmd, reply, "unexpected argument", w, "");
		why = value_bad(it[pos].name, w);
		if (why != NULL)
			return usage_error(cmd, reply, "argument", w, why);
		it[pos++].seen = 1;
		req->role[i] = ROLE_ARG;
	}
	for (int k = 0; k < nit; k++)
		if (!it[k].is_opt && !it[k].optional && !it[k].seen)
			return usage_error(cmd, reply, "missing argument", it[k].name, "");
	return 0;
}

static int unknown_command(const struct ctl_cmd *table, const char *word, struct json_buf *reply)
{
	char w[48], list[1024];
	size_t off = 0;

	printable(w, sizeof(w), word);
	list[0] = '\0';
	for (const struct ctl_cmd *c = table; c->name != NULL && off < sizeof(list); c++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "",
		                        c->usage);
	return ctl_reply_error(reply, "unknown command '%s' (commands: %s)", w, list);
}

int ctl_parse(const struct ctl_cmd *table, const char *line, struct ctl_req *req,
              struct json_buf *reply)
{
	size_t len = strlen(line);
	char *p;

	memset(req->role, 0, sizeof(req->role));
	req->cmd = NULL;
	req->argc = 0;
	req->close_after = 0;
	if (len >= CTL_LINE_MAX)
		return ctl_reply_error(reply, "request line longer than %d bytes",
		                       CTL_LINE_MAX - 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return ctl_reply_error(reply,
			                       "request contains a control character (byte 0x%02x "
			                       "at offset %zu)",
			                       ch, i);
	}
	memcpy(req->buf, line, len + 1);
	/* strtok_r-style splitting, by hand: the state is the local p, so
	 * concurrent requests never share it (strtok(3) keeps it in a hidden
	 * static, which once let one client's words leak into another's). */
	p = req->buf;
	for (;;) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		if (req->argc == CTL_ARGS_MAX)
			return ctl_reply_error(reply, "too many words in the request (at most %d)",
			                       CTL_ARGS_MAX);
		req->argv[req->argc++] = p;
		p += strcspn(p, " \t");
		if (*p != '\0')
			*p++ = '\0';
	}
	if (req->argc == 0)
		return ctl_reply_error(reply, "empty request");
	for (const struct ctl_cmd *c = table; c->name != NULL; c++)
		if (strcmp(c->name, req->argv[0]) == 0)
			req->cmd = c;
	if (req->cmd == NULL)
		return unknown_command(table, req->argv[0], reply);
	return check_args(req, reply);
}

int ctl_flag(const struct ctl_req *req, const char *flag)
{
	for (int i = 1; i < req->argc; i++)
		if (req->role[i] == ROLE_FLAG && strcmp(req->argv[i], flag) == 0)
			return 1;
	return 0;
}

const char *ctl_opt(const struct ctl_req *req, const char *opt)
{
	for (int i = 1; i + 1 < req->argc; i++)
		if (req->role[i] == ROLE_OPT && strcmp(req->argv[i], opt) == 0)
			return req->argv[i + 1];
	return NULL;
}

const char *ctl_arg(const struct ctl_req *req, int n)
{
	for (int i = 1; i < req->argc; i++)
		if (req->role[i] == ROLE_ARG && n-- == 0)
			return req->argv[i];
	return NULL;
}

void ctl_run(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	jb_reset(reply);
	jb_obj_begin(reply, NULL);
	if (req->cmd->fn(ctx, req, reply) == 0)
		jb_obj_end(reply);
}

void ctl_dispatch_line(const struct ctl_cmd *table, void *ctx, const char *line,
                       struct json_buf *reply, int *close_after)
{
	struct ctl_req *req = malloc(sizeof(*req));

	*close_after = 0;
	if (req == NULL) {
		ctl_reply_error(reply, "out of memory");
		return;
	}
	if (ctl_parse(table, line, req, reply) == 0) {
		ctl_run(ctx, req, reply);
		*close_after = req->close_after;
	}
	free(req);
}

int ctl_feed(const struct ctl_cmd *table, void *ctx, const char *data, size_t n,
             void (*emit)(void *arg, const char *reply), void *arg)
{
	struct ctl_framer *f = malloc(sizeof(*f));
	struct json_buf reply;
	int replies = 0, closed = 0;

	if (f == NULL)
		return 0;
	ctl_frame_init(f);
	jb_init(&reply);
	while (!closed && (n > 0 || ctl_frame_pending(f))) {
		size_t room, take;
		char *space = ctl_frame_space(f, &room), *line;
		enum ctl_frame kind;

		take = n < room ? n : room;
		memcpy(space, data, take);
		ctl_frame_added(f, take);
		data += take;
		n -= take;
		while (!closed && (kind = ctl_frame_next(f, &line)) != CTL_FRAME_NONE) {
			jb_reset(&reply);
			if (kind == CTL_FRAME_LINE)
				ctl_dispatch_line(table, ctx, line, &reply, &closed);
			else
				ctl_frame_error(kind, &reply);
			if (emit != NULL)
				emit(arg, jb_cstr(&reply));
			replies++;
		}
		if (take == 0)
			break;
	}
	jb_free(&reply);
	free(f);
	return replies;
}
