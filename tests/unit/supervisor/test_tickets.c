/* Unit tests for supervisor/tickets.c: the ticket key file (docs/control.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/sv.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/sv-tickets.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ticket.keys", dir);
	return 0;
}

static int teardown(void **state)
{
	char tmp[160];

	(void)state;
	unlink(path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	unlink(tmp);
	rmdir(dir);
	return 0;
}

static void read_lines(char lines[3][200])
{
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	memset(lines, 0, 3 * 200);
	for (int i = 0; i < 3; i++) {
		assert_non_null(fgets(lines[i], 200, f));
		lines[i][strcspn(lines[i], "\n")] = '\0';
		assert_int_equal(strlen(lines[i]), 108); /* base64 of 80 bytes */
	}
	fclose(f);
}

static void test_create_then_keep(void **state)
{
	char err[256], a[3][200], b[3][200];
	struct stat st;

	(void)state;
	assert_int_equal(sv_tickets_ensure(path, NULL, NULL, err, sizeof(err)), 1);
	assert_int_equal(sv_tickets_count(path), 3);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	read_lines(a);
	assert_string_not_equal(a[0], a[1]);
	/* A valid file is kept as is. */
	assert_int_equal(sv_tickets_ensure(path, NULL, NULL, err, sizeof(err)), 0);
	read_lines(b);
	assert_memory_equal(a, b, sizeof(a));
}

static void test_rotate_drops_oldest(void **state)
{
	char err[256], a[3][200], b[3][200];

	(void)state;
	assert_true(sv_tickets_ensure(path, NULL, NULL, err, sizeof(err)) >= 0);
	read_lines(a);
	assert_int_equal(sv_tickets_rotate(path, NULL, NULL, err, sizeof(err)), 0);
	read_lines(b);
	assert_string_equal(b[0], a[1]);
	assert_string_equal(b[1], a[2]);
	assert_string_not_equal(b[2], a[2]);
	assert_int_equal(sv_tickets_count(path), 3);
}

static void test_malformed_is_replaced(void **state)
{
	char err[256];
	FILE *f;

	(void)state;
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("not base64 at all\n", f);
	fclose(f);
	assert_int_equal(sv_tickets_count(path), 0);
	assert_int_equal(sv_tickets_ensure(path, NULL, NULL, err, sizeof(err)), 1);
	assert_int_equal(sv_tickets_count(path), 3);
}

static void test_unwritable_dir_names_the_file(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(
	    sv_tickets_ensure("/nonexistent-dir/ticket.keys", NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent-dir/ticket.keys"));
}

/* With proxy.user, the key file is the proxy group's to read (0640) and the
 * state directory lets that group search it (0710): the instances re-read
 * rotated keys after their privilege drop. A directory elsewhere that the
 * proxy cannot search is named. Needs root (chown) and Debian's nobody and
 * nogroup. */
static void test_proxy_user_can_reach_the_file(void **state)
{
	char err[512], sub[160], subpath[200];
	struct group *gr = getgrnam("nogroup");
	struct stat st;

	(void)state;
	if (geteuid() != 0 || getpwnam("nobody") == NULL || gr == NULL)
		skip();
	assert_int_equal(chmod(dir, 0700), 0);
	if (sv_tickets_prepare(path, dir, "nobody", "nogroup", err, sizeof(err)) < 0)
		fail_msg("%s", err);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_gid, gr->gr_gid);
	assert_int_equal(st.st_mode & 0777, 0710);
	assert_int_equal(sv_tickets_ensure(path, "nobody", "nogroup", err, sizeof(err)), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_gid, gr->gr_gid);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(sv_tickets_rotate(path, "nobody", "nogroup", err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(st.st_gid, gr->gr_gid);

	/* Not the state directory: left alone, and named. */
	snprintf(sub, sizeof(sub), "%s/private", dir);
	snprintf(subpath, sizeof(subpath), "%s/ticket.keys", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(sv_tickets_prepare(subpath, dir, "nobody", "nogroup", err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, sub));
	assert_non_null(strstr(err, "does not let proxy.user nobody reach"));
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(
	    sv_tickets_prepare(subpath, dir, "no-such-user-here", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no user 'no-such-user-here'"));
	rmdir(sub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_then_keep, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotate_drops_oldest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_is_replaced, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unwritable_dir_names_the_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_proxy_user_can_reach_the_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
