/* SPDX-License-Identifier: MIT */
/* aegisd: one Aegis node as a process.
 *
 *   aegisd --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
 *          --client 127.0.0.1:6379 --data-dir /var/lib/aegis/1 [--fsync batch|none]
 *
 * Values are parsed by pipeline/args.c: decimal numbers only (no sign, no spaces, no
 * overflow), HOST:PORT or [IPV6]:PORT, peer ids >= 1 and no id or address twice.
 *
 * The main thread parses flags, creates the node (recovering the data directory), attaches
 * the RESP2 server, starts the node's threads, then waits for SIGTERM or SIGINT with
 * sigwait() and stops gracefully (drain, fsync, close). The signals are blocked before
 * any thread starts, so only the main thread ever receives them. SIGHUP is taken the same
 * way: it reopens the --log-file (logrotate) and does not stop the node. --config FILE
 * reads flags from a file first (pipeline/args.h has its rules); the command line
 * overrides it.
 * After SIGKILL a restart with the same --id, --peers and --data-dir recovers every durable entry.
 *
 * Exit status: 0 after SIGTERM/SIGINT, 1 when the node cannot start (bad data directory,
 * locked by another process, another node's identity, corruption), 2 for bad flags, 3
 * when the storage failed (a log or hard state write or sync): the node stopped acting at
 * once and exits --fail-stop-ms later, for a supervisor to restart it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include <pthread.h>

#include "pipeline/args.h"
#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/node_int.h"
#include "pipeline/server.h"
#include "pipeline/version.h"

struct opts {
    struct aegis_node_config node;
    struct aegis_server_config server;
    char client_host[AEGIS_HOST_MAX];
    int log_level;
    char metrics_host[AEGIS_HOST_MAX]; /* --metrics; empty: no endpoint. */
    uint16_t metrics_port;
    /* Client access and exposure (issue 12): see the "security" flag block. */
    const char *users_file;
    const char *requirepass_file;
    bool insecure;
    const char *log_file; /* --log-file; NULL: stderr. */
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aegisd --id N --peers 1=HOST:PORT,2=... --client HOST:PORT --data-dir DIR\n"
            "              [options]\n"
            "\n"
            "  --id N                     this node's id (one of --peers)\n"
            "  --peers 1=HOST:PORT,...    every voter, this node included, with its peer\n"
            "                             address (peers listen on HOST:PORT)\n"
            "  --client HOST:PORT         the RESP2 client port (default 127.0.0.1:6379)\n"
            "  --data-dir DIR             log, hard state and snapshots; created if missing\n"
            "  --fsync batch|none         durability: batch = group commit with fdatasync\n"
            "                             (default); none = nothing reaches disk\n"
            "  --join                     start outside the group and wait to be added with\n"
            "                             AEGIS.ADD on the leader (new members)\n"
            "  --cluster-id N             peers with another cluster id are refused (1)\n"
            "  --users FILE               client users, roles and password hashes, one\n"
            "                             per line: NAME ROLE SHA256HEX SALT (see\n"
            "                             aegis-cli hash-password; docs/operations.md)\n"
            "  --requirepass-file FILE    the default user's password (admin role), read\n"
            "                             from FILE; or set AEGIS_REQUIREPASS\n"
            "  --insecure                 allow a non-loopback client port without a\n"
            "                             password and a non-loopback peer port without TLS\n"
            "  --client-idle-ms N         close a client idle for N ms; 0 = never (300000)\n"
            "  --client-request-ms N      a command (and AUTH, with users) must arrive\n"
            "                             within N ms of its first byte (10000; 0 = off)\n"
            "  --admin-reserve N          connections of --max-clients kept for admins,\n"
            "                             at most a quarter of them (16)\n"
            "  --log-level LEVEL          debug, info, warn or error (info)\n");
    fprintf(f,
            "  --log-file PATH            append log lines to PATH instead of stderr;\n"
            "                             SIGHUP reopens it (logrotate)\n"
            "  --config FILE              read flags from FILE, one 'name value' per line\n"
            "                             (# comments); the command line overrides it\n"
            "  --tick-ms N                Raft tick length in ms (10)\n"
            "  --election-ticks N         minimum election timeout in ticks; the maximum is\n"
            "                             twice it (30)\n"
            "  --heartbeat-ticks N        heartbeat interval in ticks (5)\n"
            "  --snapshot-threshold N     entries applied between snapshots (100000)\n"
            "  --snapshot-chunk-bytes N   InstallSnapshot chunk size in bytes (1048576)\n"
            "  --segment-mb N             log segment size in MiB (64)\n"
            "  --log-cache-bytes N        Raft log entries kept in memory, in bytes; K, M,\n"
            "                             G suffixes; older ones are read back from the\n"
            "                             segments for lagging followers; 0 = all since\n"
            "                             the last snapshot (64M)\n"
            "  --log-retention-bytes N    log segments kept behind the latest snapshot so\n"
            "                             a follower that was away catches up from the log,\n"
            "                             not a snapshot; 0 = none (2G)\n"
            "  --max-value-bytes N        largest value or key accepted (1048576)\n"
            "  --max-clients N            client connections at once (1024)\n"
            "  --pipeline-max N           replies outstanding per client before it is no\n"
            "                             longer read (1024)\n"
            "  --max-pending N            commands in flight per node (65536)\n"
            "  --fail-stop-ms N           after a storage error (disk full, I/O error) the\n"
            "                             node stops serving at once and exits with status\n"
            "                             3 this long after (2000)\n"
            "  --catchup-timeout-ms N     AEGIS.ADD: a new member that has not caught up\n"
            "                             by then is removed, never made a voter (60000)\n"
            "  --metrics HOST:PORT        serve Prometheus metrics at http://HOST:PORT/metrics\n"
            "                             and the health check at /health\n"
            "  --tls-cert FILE            this node's certificate (PEM); with --tls-key and\n"
            "                             --tls-ca, peer links use mutual TLS: the\n"
            "                             certificate must name the node as the SAN URI\n"
            "                             aegis://node/<id> (docs/security.md)\n"
            "  --tls-key FILE             its private key (PEM)\n"
            "  --tls-ca FILE              the cluster CA (PEM) peers' certificates must\n"
            "                             chain to\n"
            "  --client-tls               the client port speaks TLS too, with the same\n"
            "                             files; client certificates optional\n"
            "  --help                     this text\n");
}

/* Where the value being parsed came from: "" for the command line, "FILE:LINE: " for a
 * --config line; every message about a value starts with it. */
static char where[AEGIS_ARGS_ERR_BYTES + 32];

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "aegisd: %s", where);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

/* The value parsers live in pipeline/args.c (shared with the other programs and fuzzed);
 * these wrappers print its message, which names the flag, the value and the reason. */
static int parse_bytes(const char *flag, const char *s, uint64_t *out)
{
    char err[AEGIS_ARGS_ERR_BYTES];

    if (aegis__args_bytes(flag, s, 0, UINT64_MAX, out, err, sizeof(err)) != 0) {
        say("%s\n", err);
        return -1;
    }
    return 0;
}

static int parse_hostport(const char *flag, const char *s, char *host, size_t host_cap,
                          uint16_t *port)
{
    char err[AEGIS_ARGS_ERR_BYTES];

    if (aegis__args_hostport(flag, s, host, host_cap, port, err, sizeof(err)) != 0) {
        say("%s\n", err);
        return -1;
    }
    return 0;
}

/* --peers replaces any earlier list. */
static int parse_peers(const char *s, struct aegis_node_config *c)
{
    char err[AEGIS_ARGS_ERR_BYTES];
    uint32_t count = 0;

    if (aegis__args_peers("--peers", s, c->peers, AEGIS_PEERS_MAX, &count, err,
                          sizeof(err)) != 0) {
        say("%s\n", err);
        return -1;
    }
    c->peers_count = count;
    return 0;
}

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char err[AEGIS_ARGS_ERR_BYTES];

    if (aegis__args_u64(flag, s, min, max, out, err, sizeof(err)) != 0) {
        say("%s\n", err);
        return -1;
    }
    return 0;
}

enum {
    OPT_ID = 1000, OPT_PEERS, OPT_CLIENT, OPT_DATA_DIR, OPT_FSYNC, OPT_JOIN, OPT_CLUSTER,
    OPT_PASS, OPT_LOG, OPT_TICK, OPT_ELECTION, OPT_HEARTBEAT, OPT_SNAP, OPT_SNAP_CHUNK, OPT_SEGMENT,
    OPT_MAXVAL, OPT_MAXCLIENTS, OPT_PIPELINE, OPT_PENDING, OPT_HELP, OPT_VERSION, OPT_METRICS,
    OPT_FAILSTOP,
    /* TLS (one block). */
    OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_CLIENT_TLS,
    OPT_USERS, OPT_PASSFILE, OPT_INSECURE, OPT_IDLE, OPT_REQUEST, OPT_RESERVE,
    OPT_CATCHUP,
    OPT_LOG_CACHE, OPT_LOG_RETENTION, /* Log retention. */
    OPT_CONFIG, OPT_LOGFILE,          /* Operations (issue 18). */
};

#define AEGIS_CONFIG_FILE_MAX (1u << 20) /* --config: the largest file read. */

static const struct option long_opts[] = {
    {"id", required_argument, NULL, OPT_ID},
    {"peers", required_argument, NULL, OPT_PEERS},
    {"client", required_argument, NULL, OPT_CLIENT},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"join", no_argument, NULL, OPT_JOIN},
    {"cluster-id", required_argument, NULL, OPT_CLUSTER},
    {"requirepass", required_argument, NULL, OPT_PASS},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"tick-ms", required_argument, NULL, OPT_TICK},
    {"election-ticks", required_argument, NULL, OPT_ELECTION},
    {"heartbeat-ticks", required_argument, NULL, OPT_HEARTBEAT},
    {"snapshot-threshold", required_argument, NULL, OPT_SNAP},
    {"snapshot-chunk-bytes", required_argument, NULL, OPT_SNAP_CHUNK},
    {"segment-mb", required_argument, NULL, OPT_SEGMENT},
    {"max-value-bytes", required_argument, NULL, OPT_MAXVAL},
    {"max-clients", required_argument, NULL, OPT_MAXCLIENTS},
    {"pipeline-max", required_argument, NULL, OPT_PIPELINE},
    {"max-pending", required_argument, NULL, OPT_PENDING},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"fail-stop-ms", required_argument, NULL, OPT_FAILSTOP},
    /* TLS (one block). */
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"client-tls", no_argument, NULL, OPT_CLIENT_TLS},
    /* Security (issue 12). */
    {"users", required_argument, NULL, OPT_USERS},
    {"requirepass-file", required_argument, NULL, OPT_PASSFILE},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"client-idle-ms", required_argument, NULL, OPT_IDLE},
    {"client-request-ms", required_argument, NULL, OPT_REQUEST},
    {"admin-reserve", required_argument, NULL, OPT_RESERVE},
    {"catchup-timeout-ms", required_argument, NULL, OPT_CATCHUP},
    {"log-cache-bytes", required_argument, NULL, OPT_LOG_CACHE},
    {"log-retention-bytes", required_argument, NULL, OPT_LOG_RETENTION},
    {"config", required_argument, NULL, OPT_CONFIG},
    {"log-file", required_argument, NULL, OPT_LOGFILE},
    {NULL, 0, NULL, 0},
};

static int parse_number_opt(int opt, const char *arg, struct opts *o)
{
    uint64_t v;
    int rv = 0;

    switch (opt) {
    case OPT_ID:
        rv = parse_u64("--id", arg, 1, UINT64_MAX, &o->node.id);
        break;
    case OPT_CLUSTER:
        rv = parse_u64("--cluster-id", arg, 1, UINT64_MAX, &o->node.cluster_id);
        break;
    case OPT_TICK:
        rv = parse_u64("--tick-ms", arg, 1, 1000, &v);
        o->node.tick_ms = (uint32_t)v;
        break;
    case OPT_ELECTION:
        rv = parse_u64("--election-ticks", arg, 2, 100000, &v);
        o->node.election_ticks = (uint32_t)v;
        break;
    case OPT_HEARTBEAT:
        rv = parse_u64("--heartbeat-ticks", arg, 1, 100000, &v);
        o->node.heartbeat_ticks = (uint32_t)v;
        break;
    case OPT_SNAP:
        rv = parse_u64("--snapshot-threshold", arg, 16, UINT64_MAX, &o->node.snapshot_threshold);
        break;
    case OPT_SNAP_CHUNK:
        rv = parse_u64("--snapshot-chunk-bytes", arg, 512, 64u << 20, &v);
        o->node.snapshot_chunk_bytes = (uint32_t)v;
        break;
    case OPT_LOG_CACHE:
        rv = parse_bytes("--log-cache-bytes", arg, &o->node.log_cache_bytes);
        break;
    case OPT_LOG_RETENTION:
        rv = parse_bytes("--log-retention-bytes", arg, &o->node.log_retention_bytes);
        break;
    case OPT_SEGMENT:
        rv = parse_u64("--segment-mb", arg, 1, 4096, &v);
        o->node.segment_bytes = v << 20;
        break;
    case OPT_MAXVAL:
        rv = parse_u64("--max-value-bytes", arg, 16, 64u << 20, &o->server.value_bytes_max);
        break;
    case OPT_IDLE:
        rv = parse_u64("--client-idle-ms", arg, 0, 86400000u, &v);
        o->server.idle_ms = (uint32_t)v;
        break;
    case OPT_REQUEST:
        rv = parse_u64("--client-request-ms", arg, 0, 86400000u, &v);
        o->server.request_ms = (uint32_t)v;
        break;
    case OPT_RESERVE:
        rv = parse_u64("--admin-reserve", arg, 0, 16384, &v);
        o->server.admin_reserve = (uint32_t)v;
        break;
    case OPT_MAXCLIENTS:
        rv = parse_u64("--max-clients", arg, 1, 65536, &v);
        o->server.clients_max = (uint32_t)v;
        break;
    case OPT_PIPELINE:
        rv = parse_u64("--pipeline-max", arg, 1, 65536, &v);
        o->server.pipeline_max = (uint32_t)v;
        break;
    case OPT_PENDING:
        rv = parse_u64("--max-pending", arg, 16, 1u << 22, &v);
        o->node.max_pending = (uint32_t)v;
        break;
    case OPT_FAILSTOP:
        rv = parse_u64("--fail-stop-ms", arg, 0, 600000, &v);
        o->node.fail_stop_ms = (uint32_t)v;
        break;
    case OPT_CATCHUP:
        rv = parse_u64("--catchup-timeout-ms", arg, 0, 86400000, &v);
        o->node.catchup_timeout_ms = (uint32_t)v;
        break;
    default:
        rv = -1;
    }
    return rv;
}

/* The TLS flags, in one place. Returns 1 when @opt is one of them. */
static int parse_tls_opt(int opt, const char *arg, struct opts *o)
{
    switch (opt) {
    case OPT_TLS_CERT:
        o->node.tls_cert = arg;
        return 1;
    case OPT_TLS_KEY:
        o->node.tls_key = arg;
        return 1;
    case OPT_TLS_CA:
        o->node.tls_ca = arg;
        return 1;
    case OPT_CLIENT_TLS:
        o->node.client_tls = true;
        return 1;
    default:
        return 0;
    }
}

/* All three TLS files or none; --client-tls needs them. */
static int check_tls_opts(const struct opts *o)
{
    int set = (o->node.tls_cert != NULL) + (o->node.tls_key != NULL) + (o->node.tls_ca != NULL);

    if (set != 0 && set != 3) {
        say("--tls-cert, --tls-key and --tls-ca go together\n");
        return -1;
    }
    if (o->node.client_tls && set == 0) {
        say("--client-tls needs --tls-cert, --tls-key and --tls-ca\n");
        return -1;
    }
    return 0;
}

/* Apply one flag @opt with its value @arg (NULL for none). Returns 0 or -1 (message
 * printed). --help and --version exit here. */
static int handle_opt(int opt, const char *arg, struct opts *o)
{
    switch (opt) {
    case OPT_PEERS:
        if (parse_peers(arg, &o->node) != 0) {
            return -1;
        }
        break;
    case OPT_CLIENT:
        if (parse_hostport("--client", arg, o->client_host, sizeof(o->client_host),
                           &o->server.port) != 0) {
            return -1;
        }
        break;
    case OPT_METRICS:
        if (parse_hostport("--metrics", arg, o->metrics_host, sizeof(o->metrics_host),
                           &o->metrics_port) != 0) {
            return -1;
        }
        break;
    case OPT_DATA_DIR:
        o->node.data_dir = arg;
        break;
    case OPT_FSYNC:
        if (strcmp(arg, "batch") == 0) {
            o->node.fsync = AEGIS_FSYNC_BATCH;
        } else if (strcmp(arg, "none") == 0) {
            o->node.fsync = AEGIS_FSYNC_NONE;
        } else {
            say("--fsync: expected batch or none, got '%s'\n", arg);
            return -1;
        }
        break;
    case OPT_JOIN:
        o->node.join = true;
        break;
    case OPT_PASS:
        say("--requirepass was removed: a password in the arguments is "
                        "visible to every local user (/proc/PID/cmdline); put it in a file "
                        "readable by aegisd only and pass --requirepass-file FILE, or set "
                        "AEGIS_REQUIREPASS\n");
        return -1;
    case OPT_USERS:
        o->users_file = arg;
        break;
    case OPT_PASSFILE:
        o->requirepass_file = arg;
        break;
    case OPT_INSECURE:
        o->insecure = true;
        break;
    case OPT_LOG:
        o->log_level = aegis__log_level_parse(arg);
        if (o->log_level < 0) {
            say("--log-level: expected debug, info, warn or error\n");
            return -1;
        }
        break;
    case OPT_HELP:
    case 'h':
        usage(stdout);
        exit(0);
    case OPT_VERSION:
        aegis__version_print("aegisd");
        exit(0);
    case OPT_CONFIG:
        break; /* Read before the other flags (load_config). */
    case OPT_LOGFILE:
        o->log_file = arg;
        break;
    case '?':
        usage(stderr);
        return -1;
    default:
        if (parse_tls_opt(opt, arg, o)) {
            break;
        }
        if (parse_number_opt(opt, arg, o) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Read the --config file @path and apply its flags, each message naming FILE:LINE. The
 * text stays allocated for the process's life: values (paths) point into it. */
static int load_config(const char *path, struct opts *o)
{
    static struct aegis_args_conf_entry e[AEGIS_ARGS_CONF_MAX];
    char err[AEGIS_ARGS_ERR_BYTES + 64];
    uint32_t count = 0;
    FILE *f = fopen(path, "re");
    char *text = malloc(AEGIS_CONFIG_FILE_MAX + 1);
    size_t len;

    if (f == NULL || text == NULL) {
        say("--config: cannot open %s: %s\n", path, strerror(f == NULL ? errno : ENOMEM));
        free(text);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    len = fread(text, 1, AEGIS_CONFIG_FILE_MAX + 1, f);
    fclose(f);
    if (len > AEGIS_CONFIG_FILE_MAX) {
        say("--config: %s is larger than %u bytes\n", path, AEGIS_CONFIG_FILE_MAX);
        free(text);
        return -1;
    }
    if (aegis__args_config(path, text, len, long_opts, e, AEGIS_ARGS_CONF_MAX, &count, err,
                           sizeof(err)) != 0) {
        say("--config: %s\n", err);
        free(text);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        snprintf(where, sizeof(where), "%s:%u: ", path, e[i].line);
        if (handle_opt(e[i].opt->val, e[i].value, o) != 0) {
            return -1;
        }
    }
    where[0] = '\0';
    return 0;
}

/* The --config FILE of the command line, if any (getopt_long, so "--config=FILE" and
 * abbreviations count too); NULL, or "" when given twice (refused). */
static const char *find_config(int argc, char **argv)
{
    const char *path = NULL;
    int opt, seen = 0;

    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (opt == OPT_CONFIG) {
            path = optarg;
            seen++;
        }
    }
    opterr = 1;
    optind = 0; /* glibc: start over, fully reinitialised. */
    return seen > 1 ? "" : path;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *config;
    int opt;

    aegis_node_config_init(&o->node);
    o->server = (struct aegis_server_config){.value_bytes_max = 1u << 20,
                                             .clients_max = 1024, .pipeline_max = 1024,
                                             .idle_ms = 300000, .request_ms = 10000,
                                             .admin_reserve = 16};
    snprintf(o->client_host, sizeof(o->client_host), "127.0.0.1");
    o->server.port = 6379;
    o->log_level = AEGIS_LOG_INFO;
    /* The file first, then the command line: a flag given in both takes the command
     * line's value (each flag's handler overwrites; --peers replaces the list). */
    config = find_config(argc, argv);
    if (config != NULL && config[0] == '\0') {
        say("--config: given more than once\n");
        return -1;
    }
    if (config != NULL && load_config(config, o) != 0) {
        return -1;
    }
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (handle_opt(opt, optarg, o) != 0) {
            return -1;
        }
    }
    if (optind < argc) {
        say("unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->node.id == 0 || o->node.peers_count == 0 || o->node.data_dir == NULL) {
        say("--id, --peers and --data-dir are required (see --help)\n");
        return -1;
    }
    if (check_tls_opts(o) != 0) {
        return -1;
    }
    o->server.host = o->client_host;
    /* Room for a SET of a key and a value of the largest size, or an MSET of two: the
     * value limit is then the only one a client meets (the read buffer takes a command of
     * value_bytes_max + 64 KiB). */
    o->node.max_command_bytes = (uint32_t)(o->server.value_bytes_max * 2 + 4096);
    return 0;
}

/* ---- Security (issue 12): client users and passwords, refusing exposed ports. ---- */

/* True when every address @host resolves to is a loopback one (127/8, ::1). */
static bool host_is_loopback(const char *host)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    bool loopback = true;

    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return false;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)ai->ai_addr;

            loopback = loopback && (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        } else if (ai->ai_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ai->ai_addr;

            loopback = loopback && IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
        } else {
            loopback = false;
        }
    }
    freeaddrinfo(res);
    return loopback;
}

/* Refuse to expose a port without protection unless --insecure: the client port off
 * loopback without users, the peer port off loopback without TLS. */
static int check_exposure(const struct opts *o)
{
    const char *peer_host = NULL;

    for (uint32_t i = 0; i < o->node.peers_count; i++) {
        if (o->node.peers[i].id == o->node.id) {
            peer_host = o->node.peers[i].host;
        }
    }
    if (o->insecure) {
        return 0;
    }
    if (o->server.users.count == 0 && !host_is_loopback(o->client_host)) {
        fprintf(stderr, "aegisd: refusing to serve clients on %s without a password: add "
                        "--users FILE or --requirepass-file FILE (or set AEGIS_REQUIREPASS), "
                        "or --insecure to accept an open client port\n", o->client_host);
        return -1;
    }
    if (peer_host != NULL && o->node.tls_cert == NULL && !host_is_loopback(peer_host)) {
        fprintf(stderr, "aegisd: refusing to listen for peers on %s without TLS: add "
                        "--tls-cert FILE --tls-key FILE --tls-ca FILE, or --insecure to "
                        "accept plaintext peers\n", peer_host);
        return -1;
    }
    return 0;
}

/* Read at most @cap bytes of @path into @buf; the length, or -1 (message printed). */
static ssize_t read_small_file(const char *flag, const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t len = 0;

    if (fd < 0) {
        fprintf(stderr, "aegisd: %s: cannot open %s: %s\n", flag, path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) == 0 && (st.st_mode & 0077) != 0) {
        fprintf(stderr, "aegisd: warning: %s: %s is readable by other users (chmod 600 it)\n",
                flag, path);
    }
    /* Bounded by @cap: every round adds bytes or ends. */
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            fprintf(stderr, "aegisd: %s: cannot read %s: %s\n", flag, path, strerror(errno));
            close(fd);
            return -1;
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    return (ssize_t)len;
}

/* The default user's password from --requirepass-file or AEGIS_REQUIREPASS, checked
 * (never cut) and added as user "default" with the admin role. */
static int load_requirepass(struct opts *o)
{
    static const char flag[] = "--requirepass-file";
    char buf[AEGIS_PASSWORD_MAX + 3], salt_hex[33];
    const char *env = getenv("AEGIS_REQUIREPASS");
    uint8_t salt[16];
    ssize_t len;
    int rv;

    if (o->requirepass_file == NULL && env == NULL) {
        return 0;
    }
    if (o->requirepass_file != NULL && env != NULL) {
        fprintf(stderr, "aegisd: both --requirepass-file and AEGIS_REQUIREPASS are set: "
                        "use one\n");
        return -1;
    }
    if (env != NULL) {
        len = (ssize_t)strnlen(env, sizeof(buf));
        memcpy(buf, env, (size_t)len);
    } else {
        len = read_small_file(flag, o->requirepass_file, buf, sizeof(buf));
        if (len < 0) {
            return -1;
        }
        /* One final newline (echo pw > file) is not part of the password. */
        if (len > 0 && buf[len - 1] == '\n') {
            len--;
            if (len > 0 && buf[len - 1] == '\r') {
                len--;
            }
        }
    }
    if (len == 0 || (size_t)len > AEGIS_PASSWORD_MAX || memchr(buf, '\0', (size_t)len) ||
        memchr(buf, '\n', (size_t)len)) {
        fprintf(stderr, "aegisd: %s: the password must be 1 to %u bytes on one line%s\n",
                env != NULL ? "AEGIS_REQUIREPASS" : flag, AEGIS_PASSWORD_MAX,
                (size_t)len > AEGIS_PASSWORD_MAX ? " (it is longer: refused, not cut)" : "");
        explicit_bzero(buf, sizeof(buf));
        return -1;
    }
    if (getrandom(salt, sizeof(salt), 0) != (ssize_t)sizeof(salt)) {
        fprintf(stderr, "aegisd: getrandom failed: %s\n", strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof(salt); i++) {
        snprintf(salt_hex + 2 * i, 3, "%02x", salt[i]);
    }
    rv = aegis__users_add(&o->server.users, "default", AEGIS_ACCESS_ADMIN, buf, (size_t)len,
                          salt_hex, 32);
    explicit_bzero(buf, sizeof(buf));
    if (rv != 0) {
        fprintf(stderr, "aegisd: %s: %s\n", flag,
                rv == AEGIS_EINVAL ? "user 'default' is also defined in the --users file"
                                   : aegis_strerror(rv));
        return -1;
    }
    return 0;
}

static int load_users(struct opts *o)
{
    char err[160] = "";
    char *buf;
    ssize_t len;
    int rv;

    if (o->users_file == NULL) {
        return 0;
    }
    buf = malloc(AEGIS_USERS_FILE_MAX + 1);
    if (buf == NULL) {
        return -1;
    }
    len = read_small_file("--users", o->users_file, buf, AEGIS_USERS_FILE_MAX + 1);
    rv = len < 0 ? -1 : aegis__users_parse(&o->server.users, buf, (size_t)len, err, sizeof(err));
    explicit_bzero(buf, AEGIS_USERS_FILE_MAX + 1);
    free(buf);
    if (rv != 0 && len >= 0) {
        fprintf(stderr, "aegisd: --users %s: %s\n", o->users_file, err);
    } else if (rv == 0 && o->server.users.count == 0) {
        fprintf(stderr, "aegisd: --users %s: no users in the file\n", o->users_file);
        rv = -1;
    }
    return rv == 0 ? 0 : -1;
}

static int setup_security(struct opts *o)
{
    if (load_users(o) != 0 || load_requirepass(o) != 0 || check_exposure(o) != 0) {
        aegis__users_free(&o->server.users);
        return -1;
    }
    unsetenv("AEGIS_REQUIREPASS"); /* Not inherited by anything we might start. */
    return 0;
}

#define EXIT_STORAGE 3

static pthread_t main_thread;
static int fatal_err; /* Atomic: set by on_fatal before it wakes main; 0 until then. */

/* The node stopped on a fatal condition (the amnesia guard, or fail_stop_ms after a
 * storage error): wake the main thread's sigwait so that it stops the node and exits
 * non-zero (EXIT_STORAGE for storage). Runs on the node's raft thread. */
static void on_fatal(void *data, int err)
{
    (void)data;
    __atomic_store_n(&fatal_err, err, __ATOMIC_RELEASE);
    pthread_kill(main_thread, SIGTERM);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct aegis_node *node = NULL;
    struct aegis_server *server = NULL;
    struct aegis_metrics_http *metrics = NULL;
    char addr[AEGIS_ARGS_HOSTPORT_BYTES];
    sigset_t set;
    bool storage;
    int sig = 0, fatal, rv;

    memset(&o, 0, sizeof(o));
    main_thread = pthread_self();
    if (parse_args(argc, argv, &o) != 0 || setup_security(&o) != 0) {
        return 2;
    }
    aegis__log_setup(o.log_level, o.node.id);
    if (o.log_file != NULL && (rv = aegis__log_open_file(o.log_file)) != 0) {
        fprintf(stderr, "aegisd: --log-file: cannot open %s: %s\n", o.log_file,
                strerror(-rv));
        return 2;
    }
    o.node.on_fatal = on_fatal;
    /* Block the shutdown signals in every thread (the node's threads inherit this mask);
     * the main thread takes them with sigwait(). A peer that hangs up must not kill us. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rv = aegis_node_create(&node, &o.node);
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot create node %llu: %s", (unsigned long long)o.node.id,
                  aegis_strerror(rv));
        return 1;
    }
    rv = aegis__server_create(&server, node, &o.server);
    if (rv == 0) {
        rv = aegis_node_start(node);
    }
    if (rv == 0 && o.metrics_host[0] != '\0') {
        rv = aegis__metrics_http_start(&metrics, node, o.metrics_host, o.metrics_port);
        if (rv == 0) {
            aegis__args_format_hostport(o.metrics_host, aegis__metrics_http_port(metrics), addr,
                                        sizeof(addr));
            AEGIS_LOG_EVENT(AEGIS_LOG_INFO, "listening", "what=metrics url=http://%s/metrics",
                            addr);
        }
    }
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot start node %llu: %s", (unsigned long long)o.node.id,
                  aegis_strerror(rv));
        aegis_node_destroy(node);
        aegis__server_destroy(server);
        return 1;
    }
    aegis__args_format_hostport(o.client_host, aegis__node_client_port(node), addr, sizeof(addr));
    AEGIS_LOG_EVENT(AEGIS_LOG_INFO, "listening", "what=clients addr=%s", addr);
    /* SIGHUP is the conventional "reopen your files" (logrotate): the --log-file is
     * reopened at its path and the node keeps serving. */
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP &&
           __atomic_load_n(&fatal_err, __ATOMIC_ACQUIRE) == 0) {
        rv = aegis__log_reopen();
        if (rv != 0) {
            AEGIS_LOG_EVENT(AEGIS_LOG_ERROR, "log_reopen_failed", "path=%s err=\"%s\"",
                            o.log_file, strerror(-rv));
        } else {
            AEGIS_LOG_EVENT(AEGIS_LOG_INFO, "sighup", "log_file=%s",
                            o.log_file != NULL ? o.log_file : "-");
        }
    }
    /* Stopped for the storage: on_fatal was given the storage error itself. */
    fatal = __atomic_load_n(&fatal_err, __ATOMIC_ACQUIRE);
    storage = fatal != 0 && fatal == aegis__node_storage_error(node);
    if (storage) {
        AEGIS_LOG_EVENT(AEGIS_LOG_ERROR, "exiting", "reason=storage err=\"%s\" status=%d",
                        aegis_strerror(aegis__node_storage_error(node)), EXIT_STORAGE);
    } else {
        AEGIS_LOG_EVENT(AEGIS_LOG_INFO, "stopping", "signal=%s",
                        sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    /* A fatal condition of the node (aegis_node_stop returns it) makes the exit 1. */
    aegis__metrics_http_stop(metrics);
    rv = aegis_node_stop(node);
    aegis_node_destroy(node);
    aegis__server_destroy(server);
    if (storage) {
        return EXIT_STORAGE;
    }
    return rv == 0 ? 0 : 1;
}
