/*
 * px: internal interface of switchyard-proxy (one TLS-terminating instance).
 *
 * Layout: main.c starts everything and owns signals; worker.c runs one epoll
 * loop per thread (listeners, timers, maxconn); conn.c is the per-connection
 * state machine with its single teardown px_conn_close(); tls.c owns the one
 * shared SSL_CTX, the ClientHello (SNI) callback and the session ticket keys;
 * backend.c picks servers and tracks their health; pp.c builds PROXY protocol
 * headers; control.c answers the control socket (docs/control.md).
 *
 * Ownership: struct px_proc lives for the whole process and is shared by every
 * thread; fields written after startup are atomics or guarded by the lock
 * named next to them. A struct px_conn belongs to exactly one worker thread.
 */
#ifndef SY_PX_H
#define SY_PX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "certstore/cert.h"
#include "common/cfg.h"
#include "common/ctl.h"

#define PX_MAX_THREADS 64
/* Listening sockets: one per listener and bind address, times the workers
 * with proxy.accept reuseport; sized so that every valid config fits. */
#define PX_MAX_LISTEN_FD (CFG_MAX_LISTENERS * CFG_MAX_BIND * PX_MAX_THREADS)

/* Why a connection ended; one counter each (stats "close" object). */
enum px_reason {
	PX_R_DONE = 0,          /* both sides finished cleanly */
	PX_R_HANDSHAKE_TIMEOUT, /* the client did not finish the TLS handshake in time */
	PX_R_HANDSHAKE_FAIL,    /* TLS handshake error (alert, protocol, no cert) */
	PX_R_NO_BACKEND,        /* every server is down */
	PX_R_CONNECT_FAIL,      /* every try to connect to a server failed */
	PX_R_CONNECT_TIMEOUT,   /* the last connect try timed out */
	PX_R_CLIENT_TIMEOUT,    /* client idle for proxy.client_timeout */
	PX_R_SERVER_TIMEOUT,    /* server idle for proxy.server_timeout */
	PX_R_CLIENT_ERROR,      /* reset or TLS error from the client */
	PX_R_SERVER_ERROR,      /* reset from the server */
	PX_R_HARD_STOP,         /* cut at hard_stop_after while stopping */
	PX_R_RESOURCE,          /* out of memory or file descriptors */
	PX_R__COUNT
};
const char *px_reason_name(enum px_reason r);

/* Handshake failure kinds, as reported by `stats` handshake_fail. */
enum px_hsfail {
	PX_HS_TIMEOUT = 0,
	PX_HS_ALERT,
	PX_HS_NO_CERT,
	PX_HS_PROTOCOL,
	PX_HS_OTHER,
	PX_HS__COUNT
};

/*
 * Upper bounds of the handshake-latency histogram, in microseconds, from
 * accept to the finished TLS handshake (a client's round trips included).
 * `stats` reports them with the counts, so this table is the only copy.
 */
#define PX_HS_LAT_BOUNDS_US                                                                        \
	{                                                                                          \
		1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000    \
	}
#define PX_HS_LAT_NB 11 /* entries above; one more bucket counts the rest */

/*
 * Per-worker counters. Only the owning worker writes them (relaxed atomics,
 * each worker on its own cache lines), the control thread sums them.
 * The l_ arrays are per listener, indexed like px_proc.groups.
 */
struct px_stats {
	_Atomic uint64_t accepted;
	_Atomic uint64_t handshakes_ok;
	_Atomic uint64_t hs_fail[PX_HS__COUNT];
	_Atomic uint64_t default_cert;
	_Atomic uint64_t unknown_sni;
	_Atomic uint64_t backend_connect_fail;
	_Atomic uint64_t no_backend;
	_Atomic uint64_t bytes_in;
	_Atomic uint64_t bytes_out;
	_Atomic uint64_t reasons[PX_R__COUNT];
	_Atomic uint64_t l_accepted[CFG_MAX_LISTENERS];
	_Atomic uint64_t l_hs_ok[CFG_MAX_LISTENERS];
	_Atomic uint64_t l_hs_fail[CFG_MAX_LISTENERS];
	_Atomic uint64_t hs_lat[PX_HS_LAT_NB + 1]; /* per bucket, not cumulative */
	_Atomic uint64_t hs_lat_sum_us;
};
#define PX_INC(field)    atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)
#define PX_ADD(field, n) atomic_fetch_add_explicit(&(field), (n), memory_order_relaxed)
#define PX_LOAD(field)   atomic_load_explicit(&(field), memory_order_relaxed)

/*
 * A connection limit (global or one listener's) with the time spent at it.
 * at_since is the monotonic ms when the limit was first hit, 0 when below.
 */
struct px_limit {
	_Atomic uint32_t active;
	uint32_t max; /* 0 = unlimited */
	_Atomic uint64_t at_since;
	_Atomic uint64_t at_total_ms;
};
/* Reserves one slot; returns 0, or -1 when the limit is reached (and starts
 * the at-limit clock). */
int px_limit_take(struct px_limit *l, uint64_t now_ms);
/* Releases one slot; returns 1 when the limit had been reached (the caller
 * then wakes the workers so that they resume accepting). */
int px_limit_put(struct px_limit *l, uint64_t now_ms);
uint64_t px_limit_ms(struct px_limit *l, uint64_t now_ms);

/* One service listener of the config (its sockets are in px_proc.lsock). */
struct px_lgroup {
	char name[CFG_NAME_MAX];
	int idx; /* index in px_proc.groups and the px_stats l_ arrays */
	uint16_t port;
	int nbound; /* bind addresses with listening sockets */
	struct px_limit limit;
};

struct px_lsock {
	int fd;
	struct px_lgroup *grp;
	int owner; /* worker index (proxy.accept reuseport), or -1: shared by all */
};

struct px_server {
	struct sockaddr_storage ss;
	socklen_t sslen;
	char name[CFG_NAME_MAX];
	char text[96]; /* "addr:port" for logs */
	_Atomic uint32_t active;
	_Atomic uint32_t fails;      /* consecutive passive failures */
	_Atomic uint64_t down_until; /* passive: unusable before this ms */
	_Atomic int check_down;      /* active check says down */
};

/* Session ticket key (docs/control.md). Never logged. */
struct px_tkey {
	unsigned char name[16];
	unsigned char hmac[32];
	unsigned char aes[32];
};
#define PX_MAX_TKEYS 3

/* Names per reply of the `names` control command. */
#define PX_NAMES_PAGE 2000

enum px_state { PX_LOADING = 0, PX_READY, PX_DRAINING, PX_STOPPING };

struct px_worker;

struct px_proc {
	struct cfg *cfg;
	enum cfg_colour colour;
	const char *certdir;
	uint64_t start_ms;

	_Atomic int state;      /* enum px_state */
	_Atomic int stopping;   /* listeners closing, exit when idle */
	_Atomic int exiting;    /* workers must return now */
	_Atomic int quit_req;   /* set by the control `quit` command */
	_Atomic int lstop_acks; /* workers that took the listeners out of epoll */
	uint64_t hard_stop_at;  /* monotonic ms, 0 = none; set by main when stopping */

	/* Load progress for `status`, of the initial load and of each
	 * reload-certs (while `reloading` is set): load_done is the store's
	 * cert_opts.progress counter (files processed, __atomic builtins). */
	_Atomic uint64_t load_total;
	size_t load_done;
	_Atomic int reloading;

	/* Certificates. */
	struct cert_slot *slot;
	_Atomic uint64_t cert_epoch; /* bumped after each publish */
	pthread_mutex_t reload_lock; /* serialises reloads; guards the fields below */
	uint64_t generation;
	size_t c_loaded, c_skipped, c_warned, c_names;
	/* The directory the published store was loaded from (reload-certs
	 * may name another than certdir): `status` reports it, so that a
	 * supervisor that adopts the instance knows which set it serves. */
	char served_dir[CFG_STR_MAX];

	/* TLS. */
	SSL_CTX *ssl_ctx;
	EVP_CIPHER *tk_cipher; /* pre-fetched once so handshakes do no fetch */
	pthread_rwlock_t tk_lock;
	struct px_tkey tkeys[PX_MAX_TKEYS];
	int ntkeys;
	int tickets_on;
	unsigned char alpn_wire[CFG_MAX_ALPN * 33];
	size_t alpn_len;

	/* Listeners. */
	struct px_lgroup groups[CFG_MAX_LISTENERS];
	int ngroups;
	struct px_lsock lsock[PX_MAX_LISTEN_FD];
	int nlsock;
	struct px_limit global;

	/* Backend. */
	struct px_server servers[CFG_MAX_SERVERS];
	int nservers;
	_Atomic uint32_t rr;
	pthread_t health_tid;
	int health_on;
	int health_pipe[2];

	/* Workers. */
	struct px_worker *workers[PX_MAX_THREADS];
	int nworkers;
};

/* monotonic milliseconds */
uint64_t px_now_ms(void);
/* monotonic microseconds */
uint64_t px_now_us(void);

/* worker.c */
struct px_worker *px_worker_new(struct px_proc *p, int id);
int px_worker_start(struct px_worker *w);
void px_worker_join(struct px_worker *w);
void px_worker_free(struct px_worker *w);
/* Wakes a worker's epoll loop (from any thread). */
void px_worker_wake(struct px_worker *w);
void px_workers_wake_all(struct px_proc *p);
const struct px_stats *px_worker_stats(const struct px_worker *w);
uint32_t px_worker_nconns(const struct px_worker *w);

/* listen.c */
/* Opens every listening socket: one per listener and bind address, and with
 * proxy.accept reuseport that many for each of the nworkers workers (owner
 * 0..nworkers-1). Returns 0, or -1 with err filled. */
int px_listen_open(struct px_proc *p, int nworkers, char *err, size_t errlen);
void px_listen_close(struct px_proc *p);

/* tls.c */
int px_tls_init(struct px_proc *p, char *err, size_t errlen);
void px_tls_free(struct px_proc *p);
/* Loads tls.ticket_key_file; returns the key count or -1 (err filled). */
int px_tickets_load(struct px_proc *p, char *err, size_t errlen);

/* backend.c */
int px_backend_init(struct px_proc *p, char *err, size_t errlen);
/* Returns a usable server index, avoiding `avoid` when another is usable, or
 * -1 when every server is down. */
int px_backend_pick(struct px_proc *p, int avoid, uint64_t now_ms);
void px_backend_result(struct px_proc *p, int idx, int ok, uint64_t now_ms);
int px_health_start(struct px_proc *p);
void px_health_stop(struct px_proc *p);

/* pp.c: builds a PROXY protocol header (version 1 or 2) into out. Returns
 * its length, or -1 if cap is too small or a version 2 header would pass
 * the 65,535 bytes its length field can express. */
struct px_pp_info {
	const struct sockaddr_storage *src, *dst;
	const char *sni;         /* may be NULL */
	const char *alpn;        /* may be NULL */
	const char *tls_version; /* may be NULL */
};
int px_pp_build(int version, const struct px_pp_info *in, unsigned char *out, size_t cap);

/* control.c */
/* The instance's command table (proxy/control.c), for tests and fuzzing. */
extern const struct ctl_cmd px_ctl_cmds[];
struct ctl_server *px_control_start(struct px_proc *p, char *err, size_t errlen);
/* Publishes a loaded store and records its report's figures. */
void px_publish(struct px_proc *p, struct cert_store *store, const struct cert_report *rep);
/* Returns 1 when a reload must not be published because every file of the
 * directory failed to load while the current store serves names (err then
 * says why); 0 when it may be published. Files whose previous version was
 * kept (cert_report_kept) count as failed here. */
int px_reload_refused(const struct cert_report *rep, size_t old_names, char *err, size_t errlen);
/* Logs a warning for each file whose previous version a reload kept. */
void px_log_kept(const char *what, const struct cert_report *rep);

#endif
