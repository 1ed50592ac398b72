/*
 * conn: worker and connection internals shared by worker.c, conn.c and
 * tls.c. Nothing here is used outside proxy/.
 */
#ifndef SY_PX_CONN_H
#define SY_PX_CONN_H

#include <stdint.h>
#include <sys/socket.h>

#include "proxy/px.h"

/* What an epoll event points at: the first member of each target. */
enum px_evkind { PX_EV_LISTEN = 1, PX_EV_CLIENT, PX_EV_SERVER, PX_EV_WAKE };
struct px_ev {
	enum px_evkind kind;
};

/* A bounded byte buffer; data is NULL while empty so that idle connections
 * hold no buffer memory. */
struct px_buf {
	unsigned char *data;
	uint32_t off, len;
};

enum px_cstate { PX_C_HANDSHAKE = 0, PX_C_CONNECTING, PX_C_FORWARD };

/* Connection readiness and progress flags. */
#define PX_F_CRD    0x001u /* client socket may be readable */
#define PX_F_CWR    0x002u /* client socket may be writable */
#define PX_F_SRD    0x004u
#define PX_F_SWR    0x008u
#define PX_F_CEOF   0x010u /* client sent close_notify or EOF */
#define PX_F_SEOF   0x020u /* server sent EOF */
#define PX_F_SSHUT  0x040u /* shutdown(SHUT_WR) sent to the server */
#define PX_F_CSHUT  0x080u /* close_notify sent to the client */
#define PX_F_NOCERT 0x100u /* ClientHello callback found no certificate */
#define PX_F_DEAD   0x200u /* closed; freed after the current event batch */

struct px_conn {
	struct px_ev cev; /* client socket events */
	struct px_ev sev; /* server socket events */
	struct px_worker *w;
	struct px_conn *prev, *next; /* worker's list of live connections */
	int cfd, sfd;
	SSL *ssl;
	enum px_cstate state;
	unsigned flags;
	struct px_buf c2s, s2c;
	struct px_lgroup *grp;
	int srv;      /* server index, -1 before connect (and after giving up) */
	int last_srv; /* the last server tried, -1 if none: for the access log */
	int tries;    /* connect attempts made */
	int heap_idx;
	uint64_t deadline;
	uint64_t t_start, last_c, last_s;
	uint64_t t_accept_us; /* for the handshake-latency histogram */
	uint64_t bytes_in, bytes_out;
	struct sockaddr_storage peer;
	char sni[256];
	uint16_t sni_len; /* the name may hold any byte, NUL included */
	char alpn[33];
};

struct px_worker {
	struct px_proc *p;
	int id;
	int epfd;
	int wakefd;
	struct px_ev wake_ev;
	pthread_t tid;
	uint64_t now; /* ms, refreshed after every epoll_wait */
	/* Listener registration in this worker's epoll set. */
	struct px_ev lev[PX_MAX_LISTEN_FD];
	int lregistered[PX_MAX_LISTEN_FD];
	int npaused;
	int listeners_off; /* stopped for good (stopping) */
	/* Timer min-heap keyed on px_conn.deadline. */
	struct px_conn **heap;
	uint32_t nheap, capheap;
	struct px_conn *conns;
	/* Closed connections, freed after the event batch: a later event of
	 * the same batch may still point at them. */
	struct px_conn *dead;
	_Atomic uint32_t nconns;
	/* Cached certificate store, refreshed when px_proc.cert_epoch moves,
	 * so a handshake costs no lock on the shared slot. */
	struct cert_store *store;
	uint64_t store_epoch;
	/* Free buffers kept for reuse. */
	unsigned char **bufpool;
	uint32_t nbufpool;
	struct px_stats st __attribute__((aligned(64)));
};

void px_timer_set(struct px_worker *w, struct px_conn *c, uint64_t deadline);
void px_timer_del(struct px_worker *w, struct px_conn *c);

unsigned char *px_buf_get(struct px_worker *w);
void px_buf_put(struct px_worker *w, unsigned char *b);

/* conn.c */
void px_conn_accepted(struct px_worker *w, int fd, const struct sockaddr_storage *peer,
                      struct px_lgroup *grp);
void px_conn_event(struct px_conn *c, int server_side, uint32_t events);
void px_conn_timeout(struct px_conn *c);
/* The one teardown path of a connection. */
void px_conn_close(struct px_conn *c, enum px_reason reason);
void px_conn_reap(struct px_worker *w);

/* tls.c: the worker's current store (a borrowed reference). */
struct cert_store *px_worker_store(struct px_worker *w);

#endif
