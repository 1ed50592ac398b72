/*
 * switchyard: the operator command. Each subcommand lives with the module it
 * operates on (certs in common/, rules and flows in netfilter/, status and
 * flip in supervisor/, certsync in certsync/); this file only dispatches.
 *
 * A -c FILE (or --config FILE) option is accepted anywhere on the command
 * line and is removed before the subcommand sees its arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cfg.h"
#include "common/log.h"

struct sy_cmd {
	const char *name;
	int (*fn)(const char *cfgpath, int argc, char **argv);
	const char *usage;
};

static int cmd_check_config(const char *cfgpath, int argc, char **argv);

/* Subcommands, in the order `switchyard help` lists them. */
static const struct sy_cmd sy_cmds[] = {
	{"check-config", cmd_check_config, "check-config [-c FILE]   validate the configuration"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: switchyard [-c FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(sy_cmds) / sizeof(sy_cmds[0]); i++)
		fprintf(out, "  %s\n", sy_cmds[i].usage);
	fprintf(out, "\nThe default configuration file is %s.\n", CFG_DEFAULT_PATH);
}

static int cmd_check_config(const char *cfgpath, int argc, char **argv)
{
	struct cfg *cfg;

	(void)argv;
	if (argc != 1) {
		fprintf(stderr, "usage: switchyard check-config [-c FILE]\n");
		return 2;
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return 1;
	printf("%s: configuration ok\n", cfg->path);
	cfg_free(cfg);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cfgpath = NULL;
	int n = 0;

	log_init("switchyard", NULL, 0);
	/* Pull -c FILE out of argv wherever it appears. */
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			cfgpath = argv[++i];
			continue;
		}
		argv[n++] = argv[i];
	}
	argc = n;
	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    strcmp(argv[0], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(sy_cmds) / sizeof(sy_cmds[0]); i++)
		if (strcmp(argv[0], sy_cmds[i].name) == 0)
			return sy_cmds[i].fn(cfgpath, argc, argv);
	fprintf(stderr, "switchyard: unknown command '%s'\n", argv[0]);
	usage(stderr);
	return 2;
}
