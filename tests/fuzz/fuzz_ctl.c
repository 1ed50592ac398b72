/*
 * fuzz_ctl: the control protocol without a socket: line framing of any
 * byte stream (ctl_feed) and the argument checking of both daemons'
 * command tables (the supervisor's sv_ctl_cmds and the proxy's
 * px_ctl_cmds).
 *
 * The real handlers run operations (a reload, a flip) against a live
 * daemon, so each table is copied with the same names, usage specs and
 * flags and a recording handler instead. The first input byte picks the
 * table; the rest is the client's stream. Checked:
 * - every reply is one JSON object (it parses, has a boolean "ok", and an
 *   "error" string when false), with no newline inside;
 * - a reply never outnumbers the lines the stream holds (plus one for an
 *   over-long tail);
 * - a handler runs only for a line whose first word is its command, and
 *   every argument the accessors give is a word of that line;
 * - flags and options the handler sees are ones its usage names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl.h"
#include "common/json.h"
#include "proxy/px.h"
#include "supervisor/sv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TABLE_MAX 32

static struct ctl_cmd tables[2][TABLE_MAX];
static const struct ctl_cmd *const real[2] = {sv_ctl_cmds, px_ctl_cmds};

static int record(void *ctx, struct ctl_req *req, struct json_buf *reply)
{
	(void)ctx;
	if (req->cmd == NULL || req->argc < 1 || req->argc > CTL_ARGS_MAX ||
	    strcmp(req->argv[0], req->cmd->name) != 0)
		abort();
	for (int i = 0; i < CTL_ARGS_MAX; i++) {
		const char *a = ctl_arg(req, i);

		if (a != NULL && (a[0] == '\0' || strpbrk(a, " \t\n") != NULL))
			abort();
	}
	for (int i = 1; i < req->argc; i++) {
		const char *w = req->argv[i];

		/* A flag or an option the handler can see is named in usage. */
		if (w[0] == '-' && w[1] == '-' && ctl_flag(req, w) &&
		    strstr(req->cmd->usage, w) == NULL)
			abort();
	}
	jb_bool(reply, "ok", 1);
	jb_str(reply, "cmd", req->cmd->name);
	return 0;
}

static void copy_tables(void)
{
	for (int t = 0; t < 2; t++) {
		int i;

		for (i = 0; real[t][i].name != NULL && i < TABLE_MAX - 1; i++) {
			tables[t][i] = real[t][i];
			tables[t][i].fn = record;
		}
		memset(&tables[t][i], 0, sizeof(tables[t][i]));
	}
}

struct seen {
	size_t replies;
};

static void emit(void *arg, const char *reply)
{
	struct seen *s = arg;
	char err[256];
	struct json_doc *doc;
	int ok;

	s->replies++;
	if (strchr(reply, '\n') != NULL)
		abort();
	doc = json_parse(reply, err, sizeof(err));
	if (doc == NULL || json_get_bool(doc, "ok", &ok) < 0)
		abort();
	if (!ok && json_str(doc, "error") == NULL)
		abort();
	json_doc_free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct seen s = {0};
	size_t lines = 0;
	int n;

	if (!ready) {
		copy_tables();
		ready = 1;
	}
	if (size == 0)
		return 0;
	for (size_t i = 1; i < size; i++)
		lines += data[i] == '\n';
	n = ctl_feed(tables[data[0] & 1], NULL, (const char *)data + 1, size - 1, emit, &s);
	if (n < 0 || (size_t)n != s.replies || s.replies > lines + 1)
		abort();
	return 0;
}
