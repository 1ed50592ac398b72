/*
 * state: the supervisor's state file in state_dir (the live colour, the
 * rollback target and the flip history), written after every change so
 * that a restarted switchyardd, or one that crashed, starts from it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "supervisor/sv.h"

static void state_path(const struct cfg *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/switchyardd.state", cfg->supervisor.state_dir);
}

/*
 * The state file: the live colour, the rollback target and the last
 * SV_FLIPS_KEPT flip records, so that an operator who restarts switchyardd
 * (or a crash) still sees what happened in `switchyard status`. One record
 * per line, oldest first:
 *   flip AT FROM TO REASON RESULT FROM_GEN TO_GEN GATE_MS COMMIT_US LATENCY_US DRAIN_MS
 * FROM is "-" when there was no live instance. REASON and RESULT are single
 * words (rec_flip's callers pass literals).
 */
void sv_state_save(struct sv *sv)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	state_path(sv->cfg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (f == NULL) {
		log_warn("%s", tmp);
		return;
	}
	pthread_mutex_lock(&sv->lock);
	fprintf(f, "live %s\n", cfg_colour_name((enum cfg_colour)sv->live));
	if (sv->prev_live >= 0)
		fprintf(f, "prev %s %llu\n", cfg_colour_name((enum cfg_colour)sv->prev_live),
		        (unsigned long long)sv->prev_gen);
	for (uint64_t i = sv->nflips > SV_FLIPS_KEPT ? sv->nflips - SV_FLIPS_KEPT : 0;
	     i < sv->nflips; i++) {
		const struct sv_flip_rec *r = &sv->flips[i % SV_FLIPS_KEPT];

		fprintf(f, "flip %lld %s %s %s %s %llu %llu %lld %lld %lld %lld\n",
		        (long long)r->at,
		        r->from >= 0 ? cfg_colour_name((enum cfg_colour)r->from) : "-",
		        cfg_colour_name((enum cfg_colour)r->to), r->reason, r->result,
		        (unsigned long long)r->from_gen, (unsigned long long)r->to_gen,
		        (long long)r->gate_ms, (long long)r->commit_us, (long long)r->latency_us,
		        (long long)r->drain_ms);
	}
	pthread_mutex_unlock(&sv->lock);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		log_warn("cannot save %s", path);
}

void sv_state_load_flips(struct sv *sv)
{
	char path[PATH_MAX], line[512], from[16], to[16], reason[32], result[48];
	long long at, gate, commit, lat, drain;
	unsigned long long fg, tg;
	enum cfg_colour fc, tc;
	FILE *f;

	state_path(sv->cfg, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		struct sv_flip_rec *r;

		/* A line that does not parse (an older or damaged file) is
		 * skipped: the history is for reading, nothing depends on it. */
		if (sscanf(line, "flip %lld %15s %15s %31s %47s %llu %llu %lld %lld %lld %lld", &at,
		           from, to, reason, result, &fg, &tg, &gate, &commit, &lat,
		           &drain) != 11 ||
		    cfg_colour_parse(to, &tc) < 0 ||
		    (strcmp(from, "-") != 0 && cfg_colour_parse(from, &fc) < 0))
			continue;
		r = &sv->flips[sv->nflips++ % SV_FLIPS_KEPT];
		memset(r, 0, sizeof(*r));
		r->used = 1;
		r->at = (time_t)at;
		r->from = strcmp(from, "-") == 0 ? -1 : (int)fc;
		r->to = (int)tc;
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
		snprintf(r->result, sizeof(r->result), "%s", result);
		r->from_gen = fg;
		r->to_gen = tg;
		r->gate_ms = gate;
		r->commit_us = commit;
		r->latency_us = lat;
		r->drain_ms = drain;
	}
	fclose(f);
}

int sv_state_load_live(const struct cfg *cfg)
{
	char path[PATH_MAX], word[16];
	enum cfg_colour c;
	FILE *f;
	int live = -1;

	state_path(cfg, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	if (fscanf(f, "live %15s", word) == 1 && cfg_colour_parse(word, &c) == 0)
		live = (int)c;
	fclose(f);
	return live;
}

int sv_state_load_prev(const struct cfg *cfg, int *prev, uint64_t *gen)
{
	char path[PATH_MAX], line[128], word[16];
	unsigned long long g;
	enum cfg_colour c;
	FILE *f;
	int rc = -1;

	state_path(cfg, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "prev %15s %llu", word, &g) == 2 &&
		    cfg_colour_parse(word, &c) == 0) {
			*prev = (int)c;
			*gen = g;
			rc = 0;
		}
	fclose(f);
	return rc;
}
