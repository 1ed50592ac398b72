/* Unit tests for common/ctl.c: a real unix socket server and client. */
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
#include <unistd.h>

#include <cmocka.h>

#include "common/ctl.h"

static char sock_path[108];

static void echo_handler(void *arg, const char *line, struct json_buf *reply, int *close_after)
{
	int *calls = arg;

	(*calls)++;
	if (strcmp(line, "ping") == 0) {
		jb_obj_begin(reply, NULL);
		jb_bool(reply, "ok", 1);
		jb_str(reply, "pong", "yes");
		jb_obj_end(reply);
		return;
	}
	if (strcmp(line, "bye") == 0) {
		*close_after = 1;
		jb_obj_begin(reply, NULL);
		jb_bool(reply, "ok", 1);
		jb_obj_end(reply);
		return;
	}
	ctl_reply_error(reply, "unknown command '%s'", line);
}

static int setup(void **state)
{
	static int calls;
	struct ctl_server *srv;
	char err[256];

	snprintf(sock_path, sizeof(sock_path), "/tmp/sy-ctl-test-%d.sock", (int)getpid());
	calls = 0;
	srv = ctl_server_start(sock_path, 0600, echo_handler, &calls, err, sizeof(err));
	assert_non_null(srv);
	*state = srv;
	return 0;
}

static int teardown(void **state)
{
	ctl_server_stop(*state);
	return 0;
}

static void test_request_reply(void **state)
{
	char err[256], *reply;
	struct json_doc *doc;
	struct stat st;

	(void)state;
	assert_int_equal(stat(sock_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ctl_request(sock_path, "ping", &reply, 2000, err, sizeof(err)), 0);
	assert_string_equal(reply, "{\"ok\":true,\"pong\":\"yes\"}");
	free(reply);
	assert_int_equal(ctl_request(sock_path, "garbage \x7f", &reply, 2000, err, sizeof(err)), 0);
	assert_non_null(strstr(reply, "\"ok\":false"));
	/* The parser also refuses invalid UTF-8: the reply must be clean. */
	doc = json_parse(reply, NULL, 0);
	assert_non_null(doc);
	json_doc_free(doc);
	free(reply);
}

/* Over-long lines and several requests in one write, on one raw connection. */
static void test_overlong_and_pipelined(void **state)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char *big = malloc(3 * CTL_LINE_MAX);
	char buf[8192];
	size_t got = 0;
	int fd, lines = 0;

	(void)state;
	memcpy(sun.sun_path, sock_path, strlen(sock_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
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
	char err[256];
	int calls = 0;

	(void)state;
	assert_null(ctl_server_start(sock_path, 0600, echo_handler, &calls, err, sizeof(err)));
	assert_non_null(strstr(err, "already listening"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_request_reply, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlong_and_pipelined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_second_server_refused, setup, teardown),
	    cmocka_unit_test(test_no_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
