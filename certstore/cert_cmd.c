/*
 * cert_cmd: `switchyard certs check` and `switchyard certs lookup`.
 *
 *   switchyard certs check [DIR] [--json] [--default FILE] [--expired serve|skip]
 *   switchyard certs lookup [DIR] NAME|- [--rsa] [--default FILE]
 *
 * check prints every file's verdict and a summary, and exits 1 when a file
 * was skipped, when the --default file is not served, or when DIR cannot be
 * read. lookup prints the file that would serve NAME ("FILE", or "FILE
 * (default)"), or "none" and exits 1. With NAME "-" it reads one name per
 * line from stdin and prints "NAME RESULT" lines, so a test can check
 * thousands of names against one load.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certstore/cert.h"
#include "common/cfg.h"

static int usage(void)
{
	fprintf(stderr, "usage: switchyard certs check [DIR] [--json] [--default FILE] "
	                "[--expired serve|skip]\n"
	                "       switchyard certs lookup [DIR] NAME|- [--rsa] [--default FILE]\n");
	return 2;
}

static void print_lookup(const struct cert_store *st, const char *name, unsigned flags, int batch,
                         int *misses)
{
	int def = 0;
	const struct cert_item *it = cert_store_lookup(st, name, strlen(name), flags, &def);

	if (batch)
		printf("%s ", name);
	if (it == NULL) {
		printf("none\n");
		(*misses)++;
	} else {
		printf("%s%s\n", cert_item_file(it), def ? " (default)" : "");
	}
}

int cert_cmd(const char *cfgpath, int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL}, *dir = NULL, *name = NULL, *def = NULL;
	struct cert_report *rep = NULL;
	struct cert_store *st = NULL;
	struct cert_opts opts;
	struct cfg *cfg = NULL;
	int npos = 0, json = 0, check, rc = 1, misses = 0, expired = -1;
	unsigned flags = CERT_LOOKUP_ECDSA_OK;

	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "check") == 0)
		check = 1;
	else if (strcmp(argv[1], "lookup") == 0)
		check = 0;
	else
		return usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 && check) {
			json = 1;
		} else if (strcmp(argv[i], "--rsa") == 0 && !check) {
			flags &= ~(unsigned)CERT_LOOKUP_ECDSA_OK;
		} else if (strcmp(argv[i], "--default") == 0 && i + 1 < argc) {
			def = argv[++i];
		} else if (strcmp(argv[i], "--expired") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "serve") == 0)
				expired = CFG_EXPIRED_SERVE;
			else if (strcmp(argv[i], "skip") == 0)
				expired = CFG_EXPIRED_SKIP;
			else
				return usage();
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			return usage();
		} else if (npos < 2) {
			pos[npos++] = argv[i];
		} else {
			return usage();
		}
	}
	if (check) {
		if (npos > 1)
			return usage();
		dir = pos[0];
	} else {
		if (npos == 0)
			return usage();
		dir = npos == 2 ? pos[0] : NULL;
		name = pos[npos - 1];
	}
	cert_opts_defaults(&opts);
	if (cfgpath != NULL || dir == NULL) {
		cfg = cfg_load_report(cfgpath);
		if (cfg == NULL)
			return 1;
		cert_opts_from_cfg(&opts, cfg);
		if (dir == NULL)
			dir = cfg->certs.directory;
	}
	if (def != NULL)
		opts.default_cert = def;
	if (expired >= 0)
		opts.expired = (enum cfg_expired)expired;

	st = cert_store_load(dir, &opts, &rep);
	if (st == NULL) {
		fprintf(stderr, "switchyard certs: %s\n",
		        rep != NULL && cert_report_fatal(rep) != NULL ? cert_report_fatal(rep)
		                                                      : "out of memory");
		if (check && rep != NULL && json)
			cert_report_print(rep, stdout, 1);
		goto out;
	}
	if (check) {
		int used_default = 0;

		cert_report_print(rep, stdout, json);
		rc = cert_report_nskipped(rep) > 0 ? 1 : 0;
		/* A default certificate that was asked for and is not served
		 * fails the check like a skipped file: the report lists it,
		 * but it is not one of the directory's files. */
		if (opts.default_cert != NULL && opts.default_cert[0] != '\0' &&
		    cert_store_lookup(st, NULL, 0, CERT_LOOKUP_ECDSA_OK, &used_default) == NULL)
			rc = 1;
		goto out;
	}
	if (strcmp(name, "-") == 0) {
		char line[1024];

		while (fgets(line, sizeof(line), stdin) != NULL) {
			line[strcspn(line, " \t\r\n")] = '\0';
			if (line[0] != '\0')
				print_lookup(st, line, flags, 1, &misses);
		}
	} else {
		print_lookup(st, name, flags, 0, &misses);
	}
	rc = misses > 0 ? 1 : 0;
out:
	cert_store_unref(st);
	cert_report_free(rep);
	cfg_free(cfg);
	return rc;
}
