/* Unit tests for common/ctl.c and ctl_cmd.c: framing, the command table, a
 * real unix socket server and client, its limits and timeouts. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ctl.h"

static char sock_path[108];

/* 0 if text is one well-formed JSON value (valid UTF-8 included). */
static int json_check(const char *text)
{
	struct json_doc *doc = json_parse(text, NULL, 0);

	json_doc_free(doc);
	return doc != NULL ? 0 : -1;
}
static sem_t slow_go;    /* posted by a test to let one slow handler finish */
static sem_t slow_began; /* posted by each slow handler when it starts */

static int cmd_ping(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	(void)req;
	(*(int *)ctx)++;
	jb_bool(r, "ok", 1);
	jb_str(r, "pong", "yes");
	return 0;
}

static int cmd_bye(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	(void)ctx;
	req->close_after = 1;
	jb_bool(r, "ok", 1);
	return 0;
}

static int cmd_slow(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	(void)ctx;
	(void)req;
	sem_post(&slow_began);
	sem_wait(&slow_go);
	jb_bool(r, "ok", 1);
	jb_str(r, "slow", "done");
	return 0;
}

static int cmd_big(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	static char text[60000];

	(void)ctx;
	(void)req;
	memset(text, 'x', sizeof(text) - 1);
	jb_bool(r, "ok", 1);
	jb_str(r, "text", text);
	return 0;
}

static int cmd_args(void *ctx, struct ctl_req *req, struct json_buf *r)
{
	(void)ctx;
	if (strcmp(ctl_arg(req, 0), "fail") == 0)
		return ctl_reply_error(r, "asked to fail");
	jb_bool(r, "ok", 1);
	jb_bool(r, "force", ctl_flag(req, "--force"));
	jb_str(r, "certs", ctl_opt(req, "--certs"));
	jb_str(r, "n", ctl_opt(req, "--n"));
	jb_str(r, "name", ctl_arg(req, 0));
	jb_str(r, "extra", ctl_arg(req, 1));
	return 0;
}

static const struct ctl_cmd cmds[] = {
    {"ping", "ping", 0, cmd_ping},
    {"bye", "bye", 0, cmd_bye},
    {"slow", "slow", CTL_SLOW, cmd_slow},
    {"big", "big", 0, cmd_big},
    {"args", "args [--force] [--certs /DIR] [--n N] NAME [EXTRA]", 0, cmd_args},
    {NULL, NULL, 0, NULL},
};

static int calls;

static struct ctl_server *start(mode_t mode)
{
	struct ctl_server_cfg sc = {
	    .path = sock_path, .mode = mode, .cmds = cmds, .ctx = &calls, .slow_threads = 1};
	char err[256];
	struct ctl_server *srv = ctl_server_start(&sc, err, sizeof(err));

	if (srv == NULL)
		fail_msg("ctl_server_start: %s", err);
	return srv;
}

static int setup(void **state)
{
	snprintf(sock_path, sizeof(sock_path), "/tmp/sy-ctl-test-%d.sock", (int)getpid());
	calls = 0;
	sem_init(&slow_go, 0, 0);
	sem_init(&slow_began, 0, 0);
	*state = start(0600);
	return 0;
}

static int teardown(void **state)
{
	ctl_server_stop(*state);
	return 0;
}

static int raw_connect(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memcpy(sun.sun_path, sock_path, strlen(sock_path));
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* Reads one reply line (or "" at EOF) within timeout_ms. */
static void read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	buf[0] = '\0';
	while (got + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, timeout_ms) <= 0)
			fail_msg("no reply within %d ms", timeout_ms);
		n = read(fd, buf + got, 1);
		if (n <= 0 || buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = '\0';
}

/* Waits up to timeout_ms for the server to close fd; returns 1 if it did. */
static int closed_within(int fd, int timeout_ms)
{
	char b[65536];
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;
		long ms;

		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms > timeout_ms || poll(&p, 1, (int)(timeout_ms - ms)) <= 0)
			return 0;
		n = read(fd, b, sizeof(b));
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return 1;
	}
}

static void test_request_reply(void **state)
{
	char err[256], *reply;
	struct stat st;

	(void)state;
	assert_int_equal(stat(sock_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_string_equal(reply, "{\"ok\":true,\"pong\":\"yes\"}");
	free(reply);
	assert_int_equal(ctl_request(sock_path, "garbage \x7f", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "\"ok\":false"));
	assert_non_null(strstr(reply, "control character (byte 0x7f at offset 8)"));
	/* The parser also refuses invalid UTF-8: the reply must be clean. */
	assert_int_equal(json_check(reply), 0);
	free(reply);
}

/* Over-long lines and several requests in one write, on one raw connection. */
static void test_overlong_and_pipelined(void **state)
{
	char *big = malloc(3 * CTL_LINE_MAX);
	char buf[8192];
	size_t got = 0;
	int fd, lines = 0;

	(void)state;
	fd = raw_connect();
	memset(big, 'A', 3 * CTL_LINE_MAX - 1);
	big[3 * CTL_LINE_MAX - 1] = '\n';
	assert_int_equal(write(fd, big, 3 * CTL_LINE_MAX), 3 * CTL_LINE_MAX);
	assert_int_equal(write(fd, "ping\nping\nbye\n", 14), 14);
	/* Expect: one error for the long line, two pongs, one ok, then EOF. */
	for (;;) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	for (char *p = buf; (p = strchr(p, '\n')) != NULL; p++)
		lines++;
	assert_int_equal(lines, 4);
	assert_non_null(strstr(buf, "longer than"));
	assert_non_null(strstr(strstr(buf, "pong"), "pong"));
	close(fd);
	free(big);
}

static void test_no_server(void **state)
{
	char err[256], *reply;

	(void)state;
	assert_int_equal(ctl_request("/tmp/sy-no-such.sock", "ping", &reply, 500, err, sizeof(err)),
	                 -1);
	assert_null(reply);
	assert_non_null(strstr(err, "no such socket"));
}

static void test_second_server_refused(void **state)
{
	struct ctl_server_cfg sc = {.path = sock_path, .mode = 0600, .cmds = cmds, .ctx = &calls};
	char err[256];

	(void)state;
	assert_null(ctl_server_start(&sc, err, sizeof(err)));
	assert_non_null(strstr(err, "already listening"));
}

/* --- the command table, without a socket --------------------------------- */

static void expect(const char *line, const char *fragment)
{
	struct json_buf jb;
	int close_after;

	jb_init(&jb);
	ctl_dispatch_line(cmds, &calls, line, &jb, &close_after);
	assert_int_equal(json_check(jb_cstr(&jb)), 0);
	if (strstr(jb_cstr(&jb), fragment) == NULL)
		fail_msg("'%s' -> '%s' lacks '%s'", line, jb_cstr(&jb), fragment);
	jb_free(&jb);
}

static void test_table(void **state)
{
	(void)state;
	expect("args x", "\"force\":false,\"certs\":null,\"n\":null,\"name\":\"x\",\"extra\":null");
	expect(" \targs  --force\t--certs /d --n 12 x y ",
	       "\"force\":true,\"certs\":\"/d\",\"n\":\"12\",\"name\":\"x\",\"extra\":\"y\"");
	expect("args --n 3 x --force", "\"force\":true");
	expect("args fail", "{\"ok\":false,\"error\":\"asked to fail\"}");
	expect("args", "'args': missing argument 'NAME' (usage: args [--force]");
	expect("args x y z", "unexpected argument 'z'");
	expect("args --bogus x", "unknown option '--bogus'");
	expect("args --force --force x", "option '--force' given twice");
	expect("args --certs rel x", "option '--certs' needs an absolute path");
	expect("args x --certs", "option '--certs' needs a value");
	expect("args --n 1x x", "needs a decimal number");
	expect("ping extra", "'ping': unexpected argument 'extra' (usage: ping)");
	expect("", "empty request");
	expect(" \t ", "empty request");
	expect("a b c d e f g h i", "too many words");
	expect("ping\x01", "control character (byte 0x01 at offset 4)");
	/* Unknown commands list every usage, from the table. */
	expect("launch",
	       "unknown command 'launch' (commands: ping, bye, slow, big, args [--force]");
	/* Only printable ASCII is echoed: the reply stays valid UTF-8. */
	expect("\xff\xfe", "unknown command '?"
	                   "?'");
}

struct feed_out {
	int n;
	char replies[8][200];
};

static void emit(void *arg, const char *reply)
{
	struct feed_out *o = arg;

	if (o->n < 8)
		snprintf(o->replies[o->n], sizeof(o->replies[0]), "%s", reply);
	o->n++;
}

static void test_feed(void **state)
{
	static const char in[] = "ping\r\npi\0ng\nargs x\nbye\nping\n";
	struct feed_out o = {0};

	(void)state;
	/* The NUL line is refused; nothing after bye runs. */
	assert_int_equal(ctl_feed(cmds, &calls, in, sizeof(in) - 1, emit, &o), 4);
	assert_non_null(strstr(o.replies[0], "pong"));
	assert_string_equal(o.replies[1],
	                    "{\"ok\":false,\"error\":\"request contains a NUL byte\"}");
	assert_non_null(strstr(o.replies[2], "\"name\":\"x\""));
	assert_string_equal(o.replies[3], "{\"ok\":true}");
	assert_int_equal(calls, 1);
}

/*
 * The tokenizer keeps no state outside the request: threads parsing
 * different lines at once each get their own words back.
 */
struct race {
	const char *line;
	const char *want;
	int bad;
};

static void *race_thread(void *p)
{
	struct race *r = p;
	struct json_buf jb;
	int close_after;

	jb_init(&jb);
	for (int i = 0; i < 20000; i++) {
		jb_reset(&jb);
		ctl_dispatch_line(cmds, &calls, r->line, &jb, &close_after);
		if (strstr(jb_cstr(&jb), r->want) == NULL)
			r->bad++;
	}
	jb_free(&jb);
	return NULL;
}

static void test_concurrent_parse(void **state)
{
	struct race r[4] = {
	    {"args --force alpha", "\"force\":true,\"certs\":null,\"n\":null,\"name\":\"alpha\""},
	    {"args beta gamma", "\"force\":false,\"certs\":null,\"n\":null,\"name\":\"beta\""},
	    {"args --certs /d delta", "\"certs\":\"/d\",\"n\":null,\"name\":\"delta\""},
	    {"nope one two", "unknown command 'nope'"},
	};
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 4; i++)
		if (r[i].bad)
			fail_msg("'%s': %d wrong replies", r[i].line, r[i].bad);
}

/* --- the server's concurrency, limits and timeouts ----------------------- */

/* A slow command runs off the poll thread: other clients are answered
 * while it is held, and its own reply comes when it finishes. */
static void test_slow_command(void **state)
{
	char buf[512], err[256], *reply;
	int fd;

	(void)state;
	fd = raw_connect();
	assert_int_equal(write(fd, "slow\nping\n", 10), 10);
	sem_wait(&slow_began);
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "pong"));
	free(reply);
	sem_post(&slow_go);
	/* Replies in request order on the parked connection. */
	read_line(fd, buf, sizeof(buf), 2000);
	assert_string_equal(buf, "{\"ok\":true,\"slow\":\"done\"}");
	read_line(fd, buf, sizeof(buf), 2000);
	assert_non_null(strstr(buf, "pong"));
	close(fd);
}

/* A client that never sends a complete request is closed after
 * CTL_REQUEST_MS; one that got its reply, after CTL_IDLE_MS. */
static void test_idle_timeouts(void **state)
{
	char buf[512];
	int silent, partial, talked;

	(void)state;
	silent = raw_connect();
	partial = raw_connect();
	talked = raw_connect();
	assert_int_equal(write(partial, "pi", 2), 2);
	assert_int_equal(write(talked, "ping\n", 5), 5);
	read_line(talked, buf, sizeof(buf), 2000);
	assert_non_null(strstr(buf, "pong"));
	assert_true(closed_within(silent, CTL_REQUEST_MS + 1000));
	assert_true(closed_within(partial, 1000));
	/* talked still has CTL_IDLE_MS from its reply. */
	assert_false(closed_within(talked, 200));
	assert_int_equal(write(talked, "ping\n", 5), 5);
	read_line(talked, buf, sizeof(buf), 2000);
	assert_non_null(strstr(buf, "pong"));
	assert_true(closed_within(talked, CTL_IDLE_MS + 1000));
	close(silent);
	close(partial);
	close(talked);
}

/* A client that asks for replies and never reads them is closed after
 * CTL_WRITE_MS instead of holding its slot. */
static void test_write_timeout(void **state)
{
	int fd, sent = 0;

	(void)state;
	fd = raw_connect();
	/* Each reply is 60 kB: a few fill the socket buffer. */
	for (int i = 0; i < 64; i++) {
		if (send(fd, "big\n", 4, MSG_DONTWAIT) != 4)
			break;
		sent++;
	}
	assert_true(sent > 8);
	/* Not reading at all until the deadline passed: reading would let
	 * the replies through. */
	usleep((CTL_WRITE_MS + 1000) * 1000);
	assert_true(closed_within(fd, 2000));
	close(fd);
}

/*
 * More idle clients than slots, all from this (privileged) uid: each new
 * client pushes out the one idle longest, so a real request always gets
 * through.
 */
static void test_flood_evicts_idle(void **state)
{
	int fds[CTL_MAX_CLIENTS * 3], open_left = 0;
	char err[256], *reply;

	(void)state;
	for (int i = 0; i < CTL_MAX_CLIENTS * 3; i++)
		fds[i] = raw_connect();
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "pong"));
	free(reply);
	/* The oldest were closed, the newest kept (minus the one ping took). */
	for (int i = 0; i < CTL_MAX_CLIENTS * 3; i++) {
		int gone = closed_within(fds[i], 0);

		if (i < CTL_MAX_CLIENTS * 2 + 1)
			assert_true(gone);
		open_left += !gone;
		close(fds[i]);
	}
	assert_int_equal(open_left, CTL_MAX_CLIENTS - 1);
}

/*
 * Unprivileged peers (here uid 65534, forked, needs root) share
 * CTL_MAX_CLIENTS - CTL_RESERVED_CLIENTS slots. When all of those are busy
 * with requests, the next unprivileged client is refused with an error
 * naming the socket, and a privileged client still gets a reserved slot.
 */
static void test_reserved_for_privileged(void **state)
{
	struct ctl_server *srv = *state;
	const int unpriv = CTL_MAX_CLIENTS - CTL_RESERVED_CLIENTS;
	int sv[2], status;
	char buf[512], err[256], *reply;
	pid_t pid;

	if (geteuid() != 0)
		skip();
	ctl_server_stop(srv);
	*state = srv = start(0666);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fds[CTL_MAX_CLIENTS];
		char line[512];

		close(sv[0]);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		/* Fill every unprivileged slot with a parked slow request. */
		for (int i = 0; i < unpriv; i++) {
			fds[i] = raw_connect();
			if (write(fds[i], "slow\n", 5) != 5)
				_exit(3);
		}
		if (write(sv[1], "f", 1) != 1)
			_exit(4);
		/* Wait until the parent saw the first slow handler start. */
		if (read(sv[1], line, 1) != 1)
			_exit(5);
		fds[unpriv] = raw_connect();
		read_line(fds[unpriv], line, sizeof(line), 2000);
		if (write(sv[1], line, strlen(line)) < 0)
			_exit(6);
		_exit(0);
	}
	close(sv[1]);
	assert_int_equal(read(sv[0], buf, 1), 1);
	sem_wait(&slow_began);
	/* The child's requests are all accepted once this ping is answered:
	 * the server accepts in order. */
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "pong"));
	free(reply);
	assert_int_equal(write(sv[0], "g", 1), 1);
	memset(buf, 0, sizeof(buf));
	read_line(sv[0], buf, sizeof(buf), 5000);
	snprintf(err, sizeof(err), "control socket %s: too many control clients", sock_path);
	if (strstr(buf, err) == NULL)
		fail_msg("the extra unprivileged client got '%s'", buf);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Root still gets in, and is not pushed out by anyone. */
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "pong"));
	free(reply);
	for (int i = 0; i < unpriv; i++)
		sem_post(&slow_go);
	close(sv[0]);
}

static atomic_int stop_returned;

static void *stop_thread(void *arg)
{
	ctl_server_stop(arg);
	atomic_store(&stop_returned, 1);
	return NULL;
}

/* ctl_server_stop() waits for a slow handler that is running, so the
 * caller may free what the handler uses (the proxy frees its store). */
static void test_stop_waits_for_slow(void **state)
{
	pthread_t t;
	int fd;

	fd = raw_connect();
	assert_int_equal(write(fd, "slow\n", 5), 5);
	sem_wait(&slow_began);
	atomic_store(&stop_returned, 0);
	assert_int_equal(pthread_create(&t, NULL, stop_thread, *state), 0);
	*state = NULL;
	/* Held on purpose: the handler cannot finish before the post. */
	usleep(200000);
	assert_false(atomic_load(&stop_returned));
	sem_post(&slow_go);
	pthread_join(t, NULL);
	assert_true(atomic_load(&stop_returned));
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_request_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlong_and_pipelined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_server_refused, setup, teardown),
	    cmocka_unit_test(test_no_server),
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_feed),
	    cmocka_unit_test(test_concurrent_parse),
	    cmocka_unit_test_setup_teardown(test_slow_command, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeouts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_flood_evicts_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reserved_for_privileged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_waits_for_slow, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
