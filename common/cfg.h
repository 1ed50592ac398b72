/*
 * cfg: the one YAML configuration file shared by every Switchyard binary
 * (default /etc/switchyard/switchyard.yaml), parsed with libyaml.
 *
 * cfg_load() reports every problem in the file in one run, each as
 * "FILE:LINE:COLUMN: key 'a.b.c': what is wrong". Every key has a default,
 * documented in docs/configuration.md; cfg_defaults() fills them in.
 *
 * struct cfg is a plain value object (no hidden state), so it is public: the
 * proxy, supervisor, netfilter and certsync modules read its fields directly.
 * Strings are fixed arrays so a struct cfg can be copied and freed with free().
 */
#ifndef SY_CFG_H
#define SY_CFG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define CFG_DEFAULT_PATH  "/etc/switchyard/switchyard.yaml"
#define CFG_MAX_LISTENERS 16
#define CFG_MAX_BIND      4 /* bind addresses per instance */
#define CFG_MAX_SERVERS   64
#define CFG_MAX_CPUS      256
#define CFG_MAX_ALPN      8
#define CFG_NAME_MAX      32
#define CFG_STR_MAX       512

enum cfg_colour {
	CFG_BLUE = 0,
	CFG_GREEN = 1,
};
#define CFG_NCOLOURS 2
/* "blue" / "green". */
const char *cfg_colour_name(enum cfg_colour c);
/* Returns 0 and sets *out for "blue" or "green", -1 otherwise. */
int cfg_colour_parse(const char *s, enum cfg_colour *out);

/* An IPv4 or IPv6 address; family AF_INET or AF_INET6. */
struct cfg_addr {
	int family;
	union {
		uint8_t v4[4];
		uint8_t v6[16];
	} a;
	char text[64]; /* as written in the file, normalised */
};

/* listeners[]: one service address the world connects to. */
struct cfg_listener {
	char name[CFG_NAME_MAX]; /* default "listener<N>" */
	struct cfg_addr addr;    /* default 0.0.0.0 */
	uint16_t port;           /* required */
	uint32_t maxconn;        /* per-listener limit, 0 = only the global one */
};

/* instances.blue / instances.green */
struct cfg_instance {
	/* Bind addresses; default "0.0.0.0" and "::": a PREROUTING REDIRECT
	 * rewrites to the interface's primary address (docs/internals.md,
	 * "Which addresses a REDIRECT matches and rewrites"). */
	struct cfg_addr bind[CFG_MAX_BIND];
	int nbind;
	uint16_t ports[CFG_MAX_LISTENERS]; /* one per listener, same order; required */
	char control_socket[CFG_STR_MAX];  /* default STATE_DIR/<colour>.sock */
	char pid_file[CFG_STR_MAX];        /* default STATE_DIR/<colour>.pid */
};

enum cfg_balance { CFG_BALANCE_ROUNDROBIN = 0, CFG_BALANCE_LEASTCONN };
enum cfg_proxy_protocol { CFG_PP_NONE = 0, CFG_PP_V1, CFG_PP_V2 };
enum cfg_expired { CFG_EXPIRED_SERVE = 0, CFG_EXPIRED_SKIP };
enum cfg_log_target { CFG_LOG_STDERR = 0, CFG_LOG_SYSLOG };
/* proxy.accept: one SO_REUSEPORT socket per address and worker (the
 * default), or one listening socket per address shared by every worker
 * (docs/proxy.md). */
enum cfg_accept { CFG_ACCEPT_SHARED = 0, CFG_ACCEPT_REUSEPORT };

struct cfg_server {
	struct cfg_addr addr;
	uint16_t port;
	char name[CFG_NAME_MAX]; /* default "server<N>" */
};

struct cfg_proxy {
	int threads;               /* 0 = number of CPUs (default) */
	int cpu_map[CFG_MAX_CPUS]; /* cpu_map[i] = CPU for thread i, -1 = unpinned */
	int ncpu_map;
	uint32_t maxconn;       /* global, default 20000 */
	int backlog;            /* default 4096 */
	enum cfg_accept accept; /* default shared */
	uint32_t buffer_size;   /* per direction per connection, default 16384 */
	/* Timeouts in milliseconds. */
	uint32_t handshake_timeout_ms; /* default 10000 */
	uint32_t connect_timeout_ms;   /* default 5000 */
	uint32_t client_timeout_ms;    /* idle, default 60000 */
	uint32_t server_timeout_ms;    /* idle, default 60000 */
	uint32_t hard_stop_after_ms;   /* after SIGTERM/drain; 0 = never cut */
	char user[CFG_NAME_MAX];       /* drop privileges to this user; "" = stay */
	char group[CFG_NAME_MAX];
	int access_log;          /* default 0 */
	enum cfg_log_target log; /* default stderr */
	int log_level;           /* enum log_level, default info */
};

struct cfg_tls {
	int min_version;                /* TLS1_2_VERSION (default) or TLS1_3_VERSION */
	char ciphers[CFG_STR_MAX];      /* TLS 1.2 list; default: OpenSSL's ECDHE+AEAD set */
	char ciphersuites[CFG_STR_MAX]; /* TLS 1.3; default OpenSSL's */
	char groups[CFG_STR_MAX];       /* default "X25519:P-256:P-384" */
	char alpn[CFG_MAX_ALPN][32];    /* default {"http/1.1"} */
	int nalpn;
	char ticket_key_file[CFG_STR_MAX]; /* default STATE_DIR/ticket.keys; "" = no tickets */
	int session_cache;                 /* server-side cache, default 0 */
};

/* Enough decoded certificates for 10,000 names to serve from memory (about
 * 10 KB each for ECDSA P-256; docs/certificates.md). */
#define CFG_CERTS_CACHE_SIZE_DEFAULT 10000

struct cfg_certs {
	char directory[CFG_STR_MAX];    /* default /etc/switchyard/certs */
	char default_cert[CFG_STR_MAX]; /* file name inside directory; "" = none */
	enum cfg_expired expired;       /* default serve (with a warning) */
	uint32_t max_file_size;         /* bytes, default 1 MiB */
	int load_threads;               /* 0 = number of CPUs */
	int cache_size;                 /* decoded leaves and keys kept, 0 = none */
};

struct cfg_backend {
	enum cfg_balance balance;
	enum cfg_proxy_protocol proxy_protocol;
	int retries; /* default 2 */
	struct cfg_server servers[CFG_MAX_SERVERS];
	int nservers;               /* at least 1 required */
	uint32_t fail_threshold;    /* passive: consecutive failures, default 3 */
	uint32_t down_time_ms;      /* passive: how long down, default 10000 */
	uint32_t check_interval_ms; /* active TCP check, 0 = off; default 2000 */
	uint32_t check_timeout_ms;  /* default 1000 */
};

struct cfg_supervisor {
	char control_socket[CFG_STR_MAX]; /* default /run/switchyard/switchyardd.sock */
	uint32_t control_mode;            /* default 0660 */
	char control_group[CFG_STR_MAX];  /* default "": the creator's group */
	char state_dir[CFG_STR_MAX];      /* default /var/lib/switchyard */
	uint32_t drain_timeout_ms;        /* default 300000 */
	uint32_t hard_stop_after_ms;      /* 0 = never cut a draining connection */
	uint32_t gate_sample;             /* random names checked per flip, default 20 */
	uint32_t gate_changed_cap;        /* changed names checked, default 200 */
	uint32_t gate_timeout_ms;         /* per handshake, default 2000 */
	enum cfg_colour initial_live;     /* first start only, default blue */
	char proxy_binary[CFG_STR_MAX];   /* default: switchyard-proxy next to switchyardd */
	char metrics_listen[CFG_STR_MAX]; /* "127.0.0.1:9100"; "" = off (default) */
	int metrics_public;               /* metrics_listen may be beyond loopback, default 0 */
	uint32_t ticket_rotate_ms;        /* default 3600000 */
	int filter_guard;                 /* optional filter-table guard rule, default 0 */
};

/* netfilter.backend: which kernel interface moves the traffic. */
enum cfg_nf_backend {
	CFG_NF_AUTO = 0, /* decided at run time from what the kernel offers */
	CFG_NF_NFTABLES, /* nf_tables netlink (libnftnl), table inet switchyard */
	CFG_NF_IPTABLES, /* legacy x_tables (libiptc), chain SWITCHYARD */
};
/* "auto", "nftables", "iptables". */
const char *cfg_nf_backend_name(enum cfg_nf_backend b);

struct cfg_netfilter {
	enum cfg_nf_backend backend; /* default auto */
};

struct cfg_certsync {
	char source_dir[CFG_STR_MAX];     /* either this ... */
	char source_command[CFG_STR_MAX]; /* ... or this; "{dir}" is the staging dir */
	uint32_t command_timeout_ms;      /* default 300000 */
	uint32_t keep_versions;           /* default 5 */
	uint32_t mass_delete_percent;     /* default 10 */
	uint32_t expiry_warn_days;        /* default 14 */
};

struct cfg {
	char path[CFG_STR_MAX]; /* the file this was loaded from */
	struct cfg_listener listeners[CFG_MAX_LISTENERS];
	int nlisteners;
	struct cfg_instance instances[CFG_NCOLOURS]; /* indexed by enum cfg_colour */
	struct cfg_proxy proxy;
	struct cfg_tls tls;
	struct cfg_certs certs;
	struct cfg_backend backend;
	struct cfg_supervisor supervisor;
	struct cfg_netfilter netfilter;
	struct cfg_certsync certsync;
};

/* Fills every field with its documented default (no listeners, no servers). */
void cfg_defaults(struct cfg *cfg);

/*
 * Loads and validates path. On success returns a new cfg (caller frees with
 * cfg_free) and *errs is NULL. On failure returns NULL and *errs holds every
 * error, one per line, each "FILE:LINE:COL: key 'x.y': message"; the caller
 * frees *errs with free(). nerrs, if not NULL, receives the count.
 */
struct cfg *cfg_load(const char *path, char **errs, int *nerrs);
/* As cfg_load, from an in-memory buffer; name is used in messages. */
struct cfg *cfg_load_buf(const char *name, const char *buf, size_t len, char **errs, int *nerrs);
void cfg_free(struct cfg *cfg);
/* For command-line tools: cfg_load() that prints every error to stderr and
 * returns NULL on failure. path NULL means CFG_DEFAULT_PATH. */
struct cfg *cfg_load_report(const char *path);

/* Fills a sockaddr for addr:port; returns its length. */
socklen_t cfg_sockaddr(const struct cfg_addr *addr, uint16_t port, struct sockaddr_storage *ss);

#endif
