/*
 * cfg: the one YAML configuration file shared by every Switchyard binary
 * (default /etc/switchyard/switchyard.yaml), parsed with libyaml.
 *
 * cfg_load() reports every problem in the file in one run, each as
 * "FILE:LINE:COLUMN: key 'a.b.c': what is wrong". Each key's default, and
 * how a change to it is applied, live in one table (common/cfg_keys.c);
 * cfg_defaults() and cfg_keys_each() read it, and docs/configuration.md is
 * tested against it. The field comments below do not repeat the defaults.
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
	char name[CFG_NAME_MAX];
	struct cfg_addr addr;
	uint16_t port;    /* required */
	uint32_t maxconn; /* per-listener limit, 0 = only the global one */
};

/* instances.blue / instances.green */
struct cfg_instance {
	/* Bind addresses. The default is the two wildcards because a
	 * PREROUTING REDIRECT rewrites to the interface's primary address
	 * (docs/internals.md, "Which addresses a REDIRECT matches and
	 * rewrites"). */
	struct cfg_addr bind[CFG_MAX_BIND];
	int nbind;
	uint16_t ports[CFG_MAX_LISTENERS]; /* one per listener, same order; required */
	char control_socket[CFG_STR_MAX];
	char pid_file[CFG_STR_MAX];
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
	char name[CFG_NAME_MAX];
};

struct cfg_proxy {
	int threads;               /* 0 = number of CPUs */
	int cpu_map[CFG_MAX_CPUS]; /* cpu_map[i] = CPU for thread i, -1 = unpinned */
	int ncpu_map;
	uint32_t maxconn; /* global */
	int backlog;
	enum cfg_accept accept;
	uint32_t buffer_size; /* per direction per connection */
	/* Timeouts in milliseconds. */
	uint32_t handshake_timeout_ms;
	uint32_t connect_timeout_ms;
	uint32_t client_timeout_ms;  /* idle */
	uint32_t server_timeout_ms;  /* idle */
	uint32_t hard_stop_after_ms; /* after SIGTERM/drain; 0 = never cut */
	char user[CFG_NAME_MAX];     /* drop privileges to this user; "" = stay */
	char group[CFG_NAME_MAX];
	int access_log;
	enum cfg_log_target log;
	int log_level; /* enum log_level */
};

struct cfg_tls {
	int min_version;                /* TLS1_2_VERSION or TLS1_3_VERSION */
	char ciphers[CFG_STR_MAX];      /* TLS 1.2 list */
	char ciphersuites[CFG_STR_MAX]; /* TLS 1.3 */
	char groups[CFG_STR_MAX];
	char alpn[CFG_MAX_ALPN][32];
	int nalpn;
	char ticket_key_file[CFG_STR_MAX]; /* "" = no tickets */
	int session_cache;                 /* server-side cache */
};

/* Enough decoded certificates for 10,000 names to serve from memory (about
 * 10 KB each for ECDSA P-256; docs/certificates.md). */
#define CFG_CERTS_CACHE_SIZE_DEFAULT 10000

struct cfg_certs {
	char directory[CFG_STR_MAX];
	char default_cert[CFG_STR_MAX]; /* file name inside directory; "" = none */
	enum cfg_expired expired;
	uint32_t max_file_size; /* bytes */
	int load_threads;       /* 0 = number of CPUs */
	int cache_size;         /* decoded leaves and keys kept, 0 = none */
};

struct cfg_backend {
	enum cfg_balance balance;
	enum cfg_proxy_protocol proxy_protocol;
	int retries;
	struct cfg_server servers[CFG_MAX_SERVERS];
	int nservers;               /* at least 1 required */
	uint32_t fail_threshold;    /* passive: consecutive failures */
	uint32_t down_time_ms;      /* passive: how long down */
	uint32_t check_interval_ms; /* active TCP check, 0 = off */
	uint32_t check_timeout_ms;
};

struct cfg_supervisor {
	char control_socket[CFG_STR_MAX];
	uint32_t control_mode;
	char control_group[CFG_STR_MAX]; /* "": the creator's group */
	char state_dir[CFG_STR_MAX];
	uint32_t drain_timeout_ms;
	uint32_t hard_stop_after_ms;  /* 0 = never cut a draining connection */
	uint32_t gate_sample;         /* random names checked per flip */
	uint32_t gate_changed_cap;    /* changed names checked */
	uint32_t gate_timeout_ms;     /* per handshake */
	enum cfg_colour initial_live; /* first start only */
	char proxy_binary[CFG_STR_MAX];
	char metrics_listen[CFG_STR_MAX]; /* ADDRESS:PORT; "" = off */
	int metrics_public;               /* metrics_listen may be beyond loopback */
	uint32_t ticket_rotate_ms;
	int filter_guard; /* optional filter-table guard rule */
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
	enum cfg_nf_backend backend;
};

struct cfg_certsync {
	char source_dir[CFG_STR_MAX];     /* either this ... */
	char source_command[CFG_STR_MAX]; /* ... or this; "{dir}" is the staging dir */
	uint32_t command_timeout_ms;
	uint32_t keep_versions;
	uint32_t mass_delete_percent;
	uint32_t expiry_warn_days;
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

/* Fills every field with its default from the key table (no listeners, no
 * servers). */
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
/*
 * As cfg_load, but returns the configuration even when the file has errors
 * (*errs lists them as cfg_load does): a bad value keeps its default, and
 * a file that cannot be read gives the defaults. Only for finding where a
 * running switchyardd listens, so that it can be told to re-read a file
 * and report the errors itself; never for running on. NULL only when out
 * of memory.
 */
struct cfg *cfg_load_lenient(const char *path, char **errs, int *nerrs);
void cfg_free(struct cfg *cfg);
/* For command-line tools: cfg_load() that prints every error to stderr and
 * returns NULL on failure. path NULL means CFG_DEFAULT_PATH. */
struct cfg *cfg_load_report(const char *path);

/*
 * How a changed value reaches the service, per key (docs/configuration.md,
 * "Changing the configuration"):
 *   LIVE     switchyardd uses the new value as soon as reload-config has
 *            accepted it (certsync reads it on its next run);
 *   FLIP     the proxies read it when they start, so it reaches traffic
 *            through a standby restart and a flip (`switchyard reload`);
 *   RESTART  only a restart of switchyardd applies it; reload-config
 *            refuses a file that changes it.
 */
enum cfg_apply { CFG_APPLY_LIVE = 0, CFG_APPLY_FLIP, CFG_APPLY_RESTART };
/* "live", "flip", "restart". */
const char *cfg_apply_name(enum cfg_apply a);

/* Called once per key of the schema, in file order: key is the dotted path
 * ("proxy.timeouts.client", "listeners[].port", "instances.blue.ports"),
 * def the default as the documentation writes it (NULL: required). */
typedef void (*cfg_key_cb)(void *arg, const char *key, const char *def, enum cfg_apply apply);
void cfg_keys_each(cfg_key_cb cb, void *arg);

/* One key whose value differs between two configurations. */
struct cfg_change {
	char key[96];
	enum cfg_apply apply;
};
/* Compares a and b key by key; stores at most max changes in out and
 * returns how many keys differ (which may be more than max). */
int cfg_diff(const struct cfg *a, const struct cfg *b, struct cfg_change *out, int max);

/* Fills a sockaddr for addr:port; returns its length. */
socklen_t cfg_sockaddr(const struct cfg_addr *addr, uint16_t port, struct sockaddr_storage *ss);

#endif
