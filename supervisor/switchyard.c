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

#include "certsync/cs.h"
#include "certstore/cert.h"
#include "common/cfg.h"
#include "common/json.h"
#include "common/log.h"
#include "common/version.h"
#include "netfilter/nf.h"
#include "supervisor/sv.h"

struct sy_cmd {
	const char *name;
	int (*fn)(const char *cfgpath, int argc, char **argv);
	const char *usage;
};

static int cmd_check_config(const char *cfgpath, int argc, char **argv);
static int cmd_config_keys(const char *cfgpath, int argc, char **argv);

/* Subcommands, in the order `switchyard help` lists them. */
static const struct sy_cmd sy_cmds[] = {
    {"check-config", cmd_check_config,
     "check-config [-c FILE] [--no-certs]   validate the configuration and certificates"},
    {"config-keys", cmd_config_keys,
     "config-keys [--json]   every configuration key, its default and how a change is applied"},
    {"reload-config", sv_cmd_reload_config,
     "reload-config [--json]   re-read the configuration file into switchyardd"},
    {"certs", cert_cmd,
     "certs check [DIR] [--json] | certs lookup [DIR] NAME|-   validate a certificate directory, resolve an SNI name"},
    {"certsync", cs_cmd,
     "certsync [--dry-run] [--json] [--allow-mass-delete] [--no-reload]   sync certificates"},
    {"status", sv_cmd_status, "status [--json]   live colour, instances, pinned flows, last flips"},
    {"reload", sv_cmd_reload,
     "reload [--certs DIR] [--no-flip] [--restart] [--allow-name-loss] [--json]   load the set into the standby, gate, flip"},
    {"flip", sv_cmd_flip,
     "flip [--force] [--allow-name-loss] [--json]   gate the standby, then flip to it"},
    {"rollback", sv_cmd_rollback,
     "rollback [--allow-name-loss] [--json]   flip back to the previous generation"},
    {"metrics", sv_cmd_metrics, "metrics   Prometheus text from switchyardd"},
    {"rules", sv_cmd_rules,
     "rules show [--json] | rules install [blue|green] | rules remove | rules flip blue|green   the nat REDIRECT, straight in the kernel"},
    {"flows", sv_cmd_flows,
     "flows [--json]   conntrack flows pinned to each instance, by TCP state"},
    {"shutdown", sv_cmd_shutdown, "shutdown   stop switchyardd, both instances and the rules"},
};

static void usage(FILE *out)
{
	fprintf(out, "usage: switchyard [-c FILE] COMMAND [ARGS] | --version\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(sy_cmds) / sizeof(sy_cmds[0]); i++)
		fprintf(out, "  %s\n", sy_cmds[i].usage);
	fprintf(out, "\nThe default configuration file is %s.\n", CFG_DEFAULT_PATH);
}

/*
 * Validates the certificate directory the way the proxy will load it, and
 * prints only what needs attention (skipped and warned files) plus a
 * summary: with 100k certificates a line per good file would bury them.
 * Returns 0 when every file loaded and the default certificate (if any) is
 * among them.
 */
static int check_certs(const struct cfg *cfg)
{
	const char *dir = cfg->certs.directory;
	struct cert_report *rep = NULL;
	struct cert_store *store;
	struct cert_opts opts;
	int rc = 0, used_default = 0;

	cert_opts_from_cfg(&opts, cfg);
	store = cert_store_load(dir, &opts, &rep);
	if (store == NULL) {
		fprintf(stderr, "%s: key 'certificates.directory': %s\n", cfg->path,
		        rep != NULL && cert_report_fatal(rep) != NULL ? cert_report_fatal(rep)
		                                                      : "cannot be loaded");
		cert_report_free(rep);
		return 1;
	}
	for (size_t i = 0; i < cert_report_nentries(rep); i++) {
		enum cert_sev sev = CERT_OK;
		const char *msg = NULL;
		const char *file = cert_report_entry(rep, i, &sev, &msg);

		if (sev == CERT_OK)
			continue;
		fprintf(stderr, "%s/%s: %s: %s\n", dir, file != NULL ? file : "?",
		        sev == CERT_SKIP ? "skipped" : "warning", msg != NULL ? msg : "");
	}
	if (cert_report_nskipped(rep) > 0)
		rc = 1;
	/* Ask the store rather than the report: it knows whether the default
	 * file ended up servable. A lookup without SNI answers with it. */
	if (cfg->certs.default_cert[0] != '\0' &&
	    cert_store_lookup(store, NULL, 0, CERT_LOOKUP_ECDSA_OK, &used_default) == NULL) {
		fprintf(stderr, "%s: key 'certificates.default': '%s' was not loaded from %s\n",
		        cfg->path, cfg->certs.default_cert, dir);
		rc = 1;
	}
	printf("%s: %zu files, %zu loaded, %zu skipped, %zu with warnings, %zu names\n", dir,
	       cert_report_nfiles(rep), cert_report_nloaded(rep), cert_report_nskipped(rep),
	       cert_report_nwarned(rep), cert_store_nnames(store));
	cert_store_unref(store);
	cert_report_free(rep);
	return rc;
}

static int cmd_check_config(const char *cfgpath, int argc, char **argv)
{
	struct cfg *cfg;
	int certs = 1, rc = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-certs") == 0) {
			certs = 0;
		} else {
			fprintf(stderr, "usage: switchyard check-config [-c FILE] [--no-certs]\n");
			return 2;
		}
	}
	cfg = cfg_load_report(cfgpath);
	if (cfg == NULL)
		return 1;
	if (certs)
		rc = check_certs(cfg);
	if (rc == 0)
		printf("%s: configuration ok\n", cfg->path);
	else
		fprintf(stderr, "%s: configuration has errors\n", cfg->path);
	cfg_free(cfg);
	return rc;
}

static void print_key(void *arg, const char *key, const char *def, enum cfg_apply apply)
{
	struct json_buf *jb = arg;

	if (jb == NULL) {
		printf("%s\t%s\t%s\n", key, def != NULL ? def : "required", cfg_apply_name(apply));
		return;
	}
	jb_obj_begin(jb, NULL);
	jb_str(jb, "key", key);
	if (def != NULL)
		jb_str(jb, "default", def);
	else
		jb_null(jb, "default");
	jb_str(jb, "apply", cfg_apply_name(apply));
	jb_obj_end(jb);
}

/* The key table itself: docs/configuration.md is tested against it. */
static int cmd_config_keys(const char *cfgpath, int argc, char **argv)
{
	struct json_buf jb;

	(void)cfgpath;
	if (argc == 1) {
		cfg_keys_each(print_key, NULL);
		return 0;
	}
	if (argc != 2 || strcmp(argv[1], "--json") != 0) {
		fprintf(stderr, "usage: switchyard config-keys [--json]\n");
		return 2;
	}
	jb_init(&jb);
	jb_obj_begin(&jb, NULL);
	jb_arr_begin(&jb, "keys");
	cfg_keys_each(print_key, &jb);
	jb_arr_end(&jb);
	jb_obj_end(&jb);
	printf("%s\n", jb_cstr(&jb));
	jb_free(&jb);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cfgpath = NULL;
	int n = 0;

	if (sy_version_asked(argc, argv)) {
		/* `switchyard certsync --version` names the subcommand: the
		 * first word that is neither an option nor -c's file. */
		const char *sub = NULL;

		for (int i = 1; i < argc && sub == NULL; i++) {
			if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0)
				i++;
			else if (argv[i][0] != '-')
				sub = argv[i];
		}
		if (sub != NULL)
			printf("switchyard %s %s\n", sub, sy_version());
		else
			printf("switchyard %s\n", sy_version());
		return 0;
	}
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
