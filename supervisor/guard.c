/*
 * guard: the name-loss guard. Every path that changes what the service
 * address serves (reload, flip, rollback, failover, start-up) compares the
 * names the target instance would serve with the reference set, the names
 * the service address served after the last deliberate promotion. When
 * more than certsync.mass_delete_percent of them would disappear, the
 * operation is refused unless the operator said --allow-name-loss; the
 * same share guards certsync's promotions, so one setting says how much
 * loss a promotion may cause, whoever asks for it.
 *
 * The reference set is kept in memory and in state_dir/served-names, so
 * that a restarted switchyardd still knows what was served before. A
 * failover may not refuse (some names beat none): it keeps the reference
 * set, records the deficit in names_lost, and sv_guard_restore() flips
 * back as soon as an instance holds a set that loses no more than the
 * share.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ctl.h"
#include "common/log.h"
#include "supervisor/sv.h"

/* Names quoted in a refusal or a log line: enough to recognise the set. */
#define SV_LOSS_SHOWN 5

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void sv_names_free(struct sv_names *ns)
{
	if (ns == NULL)
		return;
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = 0;
}

static int names_push(struct sv_names *ns, size_t *cap, const char *name)
{
	if (ns->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		char **nv = realloc(ns->v, nc * sizeof(*nv));

		if (nv == NULL)
			return -1;
		ns->v = nv;
		*cap = nc;
	}
	if ((ns->v[ns->n] = strdup(name)) == NULL)
		return -1;
	ns->n++;
	return 0;
}

static void names_sort(struct sv_names *ns)
{
	size_t k = 0;

	if (ns->n == 0)
		return;
	qsort(ns->v, ns->n, sizeof(*ns->v), str_cmp);
	/* A name claimed by two files is one name served. */
	for (size_t i = 0; i < ns->n; i++) {
		if (k > 0 && strcmp(ns->v[k - 1], ns->v[i]) == 0)
			free(ns->v[i]);
		else
			ns->v[k++] = ns->v[i];
	}
	ns->n = k;
}

int sv_names_fetch(struct sv *sv, enum cfg_colour c, struct sv_names *out, char *err, size_t errlen)
{
	uint64_t total = 0, gen0 = 0;
	size_t cap = 0;
	char line[64], e2[256];

	memset(out, 0, sizeof(*out));
	for (size_t off = 0;;) {
		struct json_doc *doc;
		char *reply = NULL;
		int64_t v;
		int ok = 0, len;

		snprintf(line, sizeof(line), "names %zu", off);
		if (sv_inst_request(sv, c, line, &reply, 10000, e2, sizeof(e2)) < 0) {
			snprintf(err, errlen, "%s: names: %s", cfg_colour_name(c), e2);
			goto fail;
		}
		doc = json_parse(reply, NULL, 0);
		free(reply);
		if (json_get_bool(doc, "ok", &ok) < 0 || !ok) {
			if (json_get_str(doc, "error", e2, sizeof(e2)) < 0)
				snprintf(e2, sizeof(e2), "malformed reply");
			snprintf(err, errlen, "%s: names: %s", cfg_colour_name(c), e2);
			json_doc_free(doc);
			goto fail;
		}
		if (json_get_i64(doc, "total", &v) < 0) {
			snprintf(err, errlen, "%s: names: malformed reply", cfg_colour_name(c));
			json_doc_free(doc);
			goto fail;
		}
		if (off == 0) {
			total = (uint64_t)v;
			if (json_get_i64(doc, "generation", &v) == 0)
				gen0 = (uint64_t)v;
		} else if ((uint64_t)v != total ||
		           (json_get_i64(doc, "generation", &v) == 0 && (uint64_t)v != gen0)) {
			/* A reload between two pages: the pages describe two
			 * sets. Operations hold sv->op, so only a SIGHUP sent by
			 * hand gets here. */
			snprintf(err, errlen,
			         "%s: its certificates changed while reading its names",
			         cfg_colour_name(c));
			json_doc_free(doc);
			goto fail;
		}
		len = json_array_len(doc, "names");
		for (int i = 0; i < len; i++) {
			char path[32];
			const char *name;

			snprintf(path, sizeof(path), "names.%d", i);
			name = json_str(doc, path);
			if (name != NULL && names_push(out, &cap, name) < 0) {
				snprintf(err, errlen, "out of memory reading names");
				json_doc_free(doc);
				goto fail;
			}
		}
		json_doc_free(doc);
		off += (size_t)(len > 0 ? len : 0);
		if (len <= 0 || off >= total)
			break;
	}
	names_sort(out);
	return 0;
fail:
	sv_names_free(out);
	return -1;
}

void sv_names_loss(const struct sv_names *ref, const struct sv_names *next, struct sv_loss *out)
{
	memset(out, 0, sizeof(*out));
	out->before = ref->n;
	out->after = next->n;
	for (size_t i = 0; i < ref->n; i++) {
		/* An empty target has no array to search (bsearch wants one). */
		if (next->n > 0 &&
		    bsearch(&ref->v[i], next->v, next->n, sizeof(*next->v), str_cmp) != NULL)
			continue;
		if (out->lost < SV_LOSS_SHOWN) {
			size_t len = strlen(out->shown);

			snprintf(out->shown + len, sizeof(out->shown) - len, "%s%.80s",
			         len ? ", " : "", ref->v[i]);
		}
		out->lost++;
	}
	out->checked = 1;
}

int sv_loss_too_much(const struct cfg *cfg, const struct sv_loss *l)
{
	return l->checked && l->before > 0 &&
	       (uint64_t)l->lost * 100 > (uint64_t)cfg->certsync.mass_delete_percent * l->before;
}

void sv_loss_text(const struct cfg *cfg, const struct sv_loss *l, char *out, size_t outlen)
{
	snprintf(out, outlen,
	         "%zu of %zu names served now (%.1f%%) would no longer be served, more than "
	         "certsync.mass_delete_percent (%u%%); for example %s",
	         l->lost, l->before, l->before ? 100.0 * (double)l->lost / (double)l->before : 0.0,
	         cfg->certsync.mass_delete_percent, l->shown);
}

void sv_loss_json(const struct sv_loss *l, struct json_buf *jb)
{
	jb_obj_begin(jb, "names");
	jb_bool(jb, "checked", l->checked);
	jb_uint(jb, "served", l->before);
	jb_uint(jb, "target", l->after);
	jb_uint(jb, "lost", l->lost);
	if (l->shown[0] != '\0')
		jb_str(jb, "lost_examples", l->shown);
	jb_obj_end(jb);
}

static void served_path(const struct cfg *cfg, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/served-names", cfg->supervisor.state_dir);
}

/* Writes the reference set, atomically (write and rename). */
static void served_save(const struct cfg *cfg, const struct sv_names *ns)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];
	FILE *f;

	served_path(cfg, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (f == NULL) {
		log_warn("%s", tmp);
		return;
	}
	for (size_t i = 0; i < ns->n; i++)
		fprintf(f, "%s\n", ns->v[i]);
	if (fclose(f) != 0 || rename(tmp, path) < 0)
		log_warn("cannot save %s", path);
}

void sv_served_load(struct sv *sv)
{
	char path[PATH_MAX], line[512];
	size_t cap = 0;
	FILE *f;

	served_path(sv->cfg, path, sizeof(path));
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno != ENOENT)
			log_warn("%s", path);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] != '\0' && names_push(&sv->served, &cap, line) < 0)
			break;
	}
	fclose(f);
	names_sort(&sv->served);
	sv->served_known = 1;
	log_info("name-loss guard: %zu names served before this start (%s)", sv->served.n, path);
}

void sv_served_set(struct sv *sv, struct sv_names *ns)
{
	struct sv_names old;

	/* Saved from ns, which is still the caller's: once swapped in, the
	 * set may be replaced by another thread. */
	served_save(sv->cfg, ns);
	pthread_mutex_lock(&sv->lock);
	old = sv->served;
	sv->served = *ns;
	sv->served_known = 1;
	sv->names_lost = 0;
	pthread_mutex_unlock(&sv->lock);
	memset(ns, 0, sizeof(*ns));
	sv_names_free(&old);
}

int sv_guard_check(struct sv *sv, enum cfg_colour to, struct sv_names *next, struct sv_loss *loss,
                   char *err, size_t errlen)
{
	memset(loss, 0, sizeof(*loss));
	if (sv_names_fetch(sv, to, next, err, errlen) < 0)
		return -1;
	/* A failover compares without sv->op, so the reference set is
	 * read under sv->lock: a few milliseconds for 100,000 names. */
	pthread_mutex_lock(&sv->lock);
	if (sv->served_known)
		sv_names_loss(&sv->served, next, loss);
	pthread_mutex_unlock(&sv->lock);
	return 0;
}

void sv_guard_after_failover(struct sv *sv, enum cfg_colour to)
{
	struct sv_names next;
	struct sv_loss loss;
	char err[300];

	if (sv_guard_check(sv, to, &next, &loss, err, sizeof(err)) < 0) {
		log_errx("FAILOVER: cannot compare the names %s serves with the names served "
		         "before: %s",
		         cfg_colour_name(to), err);
		return;
	}
	sv_names_free(&next);
	if (!loss.checked)
		return;
	pthread_mutex_lock(&sv->lock);
	sv->names_lost = loss.lost;
	sv->restore_checked_gen = 0;
	sv->restore_checked_pid = 0;
	pthread_mutex_unlock(&sv->lock);
	if (loss.lost > 0)
		log_errx("FAILOVER: %s serves %zu of the %zu names served before; %zu names are "
		         "lost (for example %s) until an instance holds them again",
		         cfg_colour_name(to), loss.before - loss.lost, loss.before, loss.lost,
		         loss.shown);
}

void sv_guard_restore(struct sv *sv)
{
	struct sv_names next;
	struct sv_loss loss;
	struct sv_flip_out out;
	enum cfg_colour to;
	char err[300];
	int due;

	pthread_mutex_lock(&sv->lock);
	to = (enum cfg_colour) !sv->live;
	due = sv->names_lost > 0 && sv_state_serving(sv->inst[to].state) && sv->inst[to].pid > 0 &&
	      (sv->inst[to].pid != sv->restore_checked_pid ||
	       sv->inst[to].generation != sv->restore_checked_gen);
	pthread_mutex_unlock(&sv->lock);
	/* An operation in progress decides for itself; this runs again on
	 * the next tick. */
	if (!due || pthread_mutex_trylock(&sv->op) != 0)
		return;
	pthread_mutex_lock(&sv->lock);
	sv->restore_checked_pid = sv->inst[to].pid;
	sv->restore_checked_gen = sv->inst[to].generation;
	pthread_mutex_unlock(&sv->lock);
	if (sv_guard_check(sv, to, &next, &loss, err, sizeof(err)) < 0) {
		log_warnx("restore: %s", err);
		goto out;
	}
	if (loss.lost >= sv->names_lost || sv_loss_too_much(sv->cfg, &loss)) {
		log_info("restore: %s holds %zu names and would still lose %zu; waiting for a "
		         "full set",
		         cfg_colour_name(to), loss.after, loss.lost);
		goto out;
	}
	sv_set_phase(sv, "restore", "gate", to);
	if (sv_flip_to(sv, to, "restore", SV_FLIP_ALLOW_LOSS, sv_now_us(), &out) < 0)
		log_errx("restore: flip to %s failed: %s", cfg_colour_name(to), out.error);
	else
		log_info("restore: %s serves the full set again (%zu names); names lost: 0",
		         cfg_colour_name(to), loss.after);
	sv_set_phase(sv, NULL, NULL, -1);
out:
	sv_names_free(&next);
	pthread_mutex_unlock(&sv->op);
}

int sv_guard_startup(struct sv *sv, struct sv_names *names, struct sv_loss *loss)
{
	int pick, other, pick_ok, other_ok, crashed;
	char err[300];

	memset(names, 0, sizeof(*names));
	memset(loss, 0, sizeof(*loss));
	pthread_mutex_lock(&sv->lock);
	pick = sv->live;
	other = !pick;
	pick_ok = sv_state_serving(sv->inst[pick].state) && sv->inst[pick].pid > 0;
	other_ok = sv_state_serving(sv->inst[other].state) && sv->inst[other].pid > 0;
	crashed = sv->inst[pick].state == SV_FAILED || sv->inst[pick].restarts > 0;
	pthread_mutex_unlock(&sv->lock);
	/* The saved live colour is only a preference: when its instance
	 * crashes while the other one is ready, waiting for it would leave
	 * the service address with no rules at all. */
	if (!pick_ok && crashed && other_ok) {
		log_warnx("start: %s (the saved live colour) is crashing and %s is ready; serving "
		          "from %s",
		          cfg_colour_name((enum cfg_colour)pick),
		          cfg_colour_name((enum cfg_colour)other),
		          cfg_colour_name((enum cfg_colour)other));
		pick = other;
		pick_ok = 1;
		other_ok = 0;
	}
	if (!pick_ok)
		return -1;
	if (sv_guard_check(sv, (enum cfg_colour)pick, names, loss, err, sizeof(err)) < 0) {
		/* Serving beats waiting for a comparison: the rules go in and
		 * the reference set is learnt later. */
		log_warnx("start: %s", err);
		return pick;
	}
	if (sv_loss_too_much(sv->cfg, loss) && other_ok) {
		struct sv_names n2;
		struct sv_loss l2;

		if (sv_guard_check(sv, (enum cfg_colour)other, &n2, &l2, err, sizeof(err)) == 0 &&
		    l2.lost < loss->lost) {
			log_warnx("start: %s would lose %zu of the %zu names served before and %s "
			          "%zu; serving from %s",
			          cfg_colour_name((enum cfg_colour)pick), loss->lost, loss->before,
			          cfg_colour_name((enum cfg_colour)other), l2.lost,
			          cfg_colour_name((enum cfg_colour)other));
			sv_names_free(names);
			*names = n2;
			*loss = l2;
			return other;
		}
		sv_names_free(&n2);
	}
	return pick;
}

void sv_guard_started(struct sv *sv, struct sv_names *names, const struct sv_loss *loss)
{
	char text[700];

	if (!sv_loss_too_much(sv->cfg, loss)) {
		/* No names: the comparison failed (or nothing is served), and
		 * an empty reference would disarm the guard; the main loop
		 * learns the set once it can read it. */
		if (names->n > 0)
			sv_served_set(sv, names);
		sv_names_free(names);
		return;
	}
	/* Some names beat none: the rules stay, the deficit is counted and
	 * sv_guard_restore() takes it back when an instance holds more. */
	sv_loss_text(sv->cfg, loss, text, sizeof(text));
	log_errx("start: serving %s although %s; it will be replaced as soon as an instance "
	         "holds the full set",
	         cfg_colour_name((enum cfg_colour)sv->live), text);
	pthread_mutex_lock(&sv->lock);
	sv->names_lost = loss->lost;
	pthread_mutex_unlock(&sv->lock);
	sv_names_free(names);
}
