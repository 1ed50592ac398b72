/*
 * What the configuration unit tests share: a minimal valid file and loaders
 * that check the error list exactly. Included by test_cfg*.c only.
 */
#ifndef SY_TEST_CFG_HELPERS_H
#define SY_TEST_CFG_HELPERS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"

/* The smallest valid file; tests append sections to it from line 8 on. */
#define BASE                                                                                       \
	"listeners:\n"                                                                             \
	"  - port: 443\n"                                                                          \
	"instances:\n"                                                                             \
	"  blue: {ports: [8443]}\n"                                                                \
	"  green: {ports: [9443]}\n"                                                               \
	"backend:\n"                                                                               \
	"  servers: [\"127.0.0.1:8080\"]\n"

static inline struct cfg *load(const char *yaml, char **errs, int *nerrs)
{
	return cfg_load_buf("t.yaml", yaml, strlen(yaml), errs, nerrs);
}

static inline struct cfg *load_ok(const char *yaml)
{
	char *errs = NULL;
	int n = -1;
	struct cfg *cfg = load(yaml, &errs, &n);

	if (cfg == NULL)
		fprintf(stderr, "unexpected errors:\n%s", errs);
	assert_non_null(cfg);
	assert_null(errs);
	assert_int_equal(n, 0);
	return cfg;
}

/* Loads yaml, expects it to fail with exactly the text want. */
static inline void expect_errs(const char *yaml, const char *want)
{
	char *errs = NULL;
	int n = -1, lines = 0;
	struct cfg *cfg = load(yaml, &errs, &n);

	assert_null(cfg);
	assert_non_null(errs);
	if (strcmp(errs, want) != 0)
		fprintf(stderr, "got:\n%swant:\n%s", errs, want);
	assert_string_equal(errs, want);
	for (const char *p = errs; *p != '\0'; p++)
		lines += *p == '\n';
	assert_int_equal(n, lines);
	free(errs);
}

#endif
