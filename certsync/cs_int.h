/*
 * Internal interface between the certsync files. Not for other modules.
 */
#ifndef SY_CS_INT_H
#define SY_CS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "certsync/cs.h"

#define CS_HASH_HEX   65 /* SHA-256 in hex, plus NUL */
#define CS_INDEX_NAME ".certsync-index"

/* One file of the source or of a set. */
struct cs_file {
	char *name;
	int64_t size;
	int64_t mtime_ns;
	char hash[CS_HASH_HEX]; /* "" until known */
};

/* A certificate unit: a combined NAME.pem, or a NAME.crt + NAME.key pair.
 * Its hash covers every file of the unit. */
struct cs_unit {
	char *name;    /* NAME.pem or NAME.crt */
	char *keyfile; /* NAME.key for a pair, else NULL */
	char hash[CS_HASH_HEX];
	int sev; /* enum cert_sev */
	time_t not_after;
	char *names;   /* comma-separated DNS names served, "" if none */
	char *msg;     /* validation message, NULL if clean */
	int rejected;  /* this version failed validation (msg says why) */
	int kept_prev; /* ... and the previous good version stays served */
};

struct cs_units {
	struct cs_unit *v;
	size_t n, cap;
};

/* Runs cmd ("{dir}" replaced by dir) under /bin/sh with a timeout. */
int cs_run_source(const char *cmd, const char *dir, uint32_t timeout_ms, char *err, size_t errlen);

#endif
