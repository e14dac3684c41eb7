/* aegisd: one Aegis node as a process.
 *
 *   aegisd --id 1 --peers 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 \
 *          --client 127.0.0.1:6379 --data-dir /var/lib/aegis/1 [--fsync batch|none]
 *
 * The main thread parses flags, creates the node (recovering the data directory), attaches
 * the RESP2 server, starts the node's threads, then waits for SIGTERM or SIGINT with
 * sigwait() and stops gracefully (drain, fsync, close). The signals are blocked before
 * any thread starts, so only the main thread ever receives them. After SIGKILL a restart
 * with the same --id, --peers and --data-dir recovers every durable entry. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <aegis/aegis.h>

#include "pipeline/logging.h"
#include "pipeline/metrics.h"
#include "pipeline/server.h"

struct opts {
    struct aegis_node_config node;
    struct aegis_server_config server;
    char client_host[AEGIS_HOST_MAX];
    int log_level;
    char metrics_host[AEGIS_HOST_MAX]; /* --metrics; empty: no endpoint. */
    uint16_t metrics_port;
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
            "  --requirepass PASSWORD     clients must AUTH first\n"
            "  --log-level LEVEL          debug, info, warn or error (info)\n"
            "  --tick-ms N                Raft tick length in ms (10)\n"
            "  --election-ticks N         minimum election timeout in ticks; the maximum is\n"
            "                             twice it (30)\n"
            "  --heartbeat-ticks N        heartbeat interval in ticks (5)\n"
            "  --snapshot-threshold N     entries applied between snapshots (100000)\n"
            "  --segment-mb N             log segment size in MiB (64)\n"
            "  --max-value-bytes N        largest value or key accepted (1048576)\n"
            "  --max-clients N            client connections at once (1024)\n"
            "  --pipeline-max N           replies outstanding per client before it is no\n"
            "                             longer read (1024)\n"
            "  --max-pending N            commands in flight per node (65536)\n"
            "  --catchup-timeout-ms N     AEGIS.ADD: a new member that has not caught up\n"
            "                             by then is removed, never made a voter (60000)\n"
            "  --metrics HOST:PORT        serve Prometheus metrics at http://HOST:PORT/metrics\n"
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

static int parse_hostport(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    char *end;
    unsigned long p;

    if (colon == NULL || colon == s || (size_t)(colon - s) >= host_cap) {
        return -1;
    }
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p == 0 || p > 65535) {
        return -1;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int parse_peers(const char *s, struct aegis_node_config *c)
{
    char *copy = strdup(s), *save = NULL, *tok;
    int rv = 0;

    for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        struct aegis_peer_addr *p = &c->peers[c->peers_count];
        char *eq = strchr(tok, '=');
        char *end;

        if (c->peers_count == AEGIS_PEERS_MAX || eq == NULL) {
            rv = -1;
            break;
        }
        *eq = '\0';
        p->id = strtoull(tok, &end, 10);
        if (*end != '\0' || p->id == 0 ||
            parse_hostport(eq + 1, p->host, sizeof(p->host), &p->port) != 0) {
            rv = -1;
            break;
        }
        c->peers_count++;
    }
    free(copy);
    return rv;
}

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "aegisd: %s: expected an integer in [%llu, %llu], got '%s'\n", flag,
                (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

enum {
    OPT_ID = 1000, OPT_PEERS, OPT_CLIENT, OPT_DATA_DIR, OPT_FSYNC, OPT_JOIN, OPT_CLUSTER,
    OPT_PASS, OPT_LOG, OPT_TICK, OPT_ELECTION, OPT_HEARTBEAT, OPT_SNAP, OPT_SEGMENT,
    OPT_MAXVAL, OPT_MAXCLIENTS, OPT_PIPELINE, OPT_PENDING, OPT_HELP, OPT_METRICS,
    /* TLS (one block). */
    OPT_TLS_CERT, OPT_TLS_KEY, OPT_TLS_CA, OPT_CLIENT_TLS,
    OPT_CATCHUP,
};

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
    {"segment-mb", required_argument, NULL, OPT_SEGMENT},
    {"max-value-bytes", required_argument, NULL, OPT_MAXVAL},
    {"max-clients", required_argument, NULL, OPT_MAXCLIENTS},
    {"pipeline-max", required_argument, NULL, OPT_PIPELINE},
    {"max-pending", required_argument, NULL, OPT_PENDING},
    {"help", no_argument, NULL, OPT_HELP},
    {"metrics", required_argument, NULL, OPT_METRICS},
    /* TLS (one block). */
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"client-tls", no_argument, NULL, OPT_CLIENT_TLS},
    {"catchup-timeout-ms", required_argument, NULL, OPT_CATCHUP},
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
    case OPT_SEGMENT:
        rv = parse_u64("--segment-mb", arg, 1, 4096, &v);
        o->node.segment_bytes = v << 20;
        break;
    case OPT_MAXVAL:
        rv = parse_u64("--max-value-bytes", arg, 16, 64u << 20, &o->server.value_bytes_max);
        o->node.max_command_bytes = (uint32_t)(o->server.value_bytes_max * 2 + 4096);
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
    case OPT_CATCHUP:
        rv = parse_u64("--catchup-timeout-ms", arg, 1, 86400000, &v);
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
        fprintf(stderr, "aegisd: --tls-cert, --tls-key and --tls-ca go together\n");
        return -1;
    }
    if (o->node.client_tls && set == 0) {
        fprintf(stderr, "aegisd: --client-tls needs --tls-cert, --tls-key and --tls-ca\n");
        return -1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    int opt;

    aegis_node_config_init(&o->node);
    o->server = (struct aegis_server_config){.value_bytes_max = 1u << 20,
                                             .clients_max = 1024, .pipeline_max = 1024};
    snprintf(o->client_host, sizeof(o->client_host), "127.0.0.1");
    o->server.port = 6379;
    o->log_level = AEGIS_LOG_INFO;
    while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (opt) {
        case OPT_PEERS:
            if (parse_peers(optarg, &o->node) != 0) {
                fprintf(stderr, "aegisd: --peers: expected ID=HOST:PORT,... got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_CLIENT:
            if (parse_hostport(optarg, o->client_host, sizeof(o->client_host),
                               &o->server.port) != 0) {
                fprintf(stderr, "aegisd: --client: expected HOST:PORT, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_METRICS:
            if (parse_hostport(optarg, o->metrics_host, sizeof(o->metrics_host),
                               &o->metrics_port) != 0) {
                fprintf(stderr, "aegisd: --metrics: expected HOST:PORT, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_DATA_DIR:
            o->node.data_dir = optarg;
            break;
        case OPT_FSYNC:
            if (strcmp(optarg, "batch") == 0) {
                o->node.fsync = AEGIS_FSYNC_BATCH;
            } else if (strcmp(optarg, "none") == 0) {
                o->node.fsync = AEGIS_FSYNC_NONE;
            } else {
                fprintf(stderr, "aegisd: --fsync: expected batch or none, got '%s'\n", optarg);
                return -1;
            }
            break;
        case OPT_JOIN:
            o->node.join = true;
            break;
        case OPT_PASS:
            o->server.password = optarg;
            break;
        case OPT_LOG:
            o->log_level = aegis__log_level_parse(optarg);
            if (o->log_level < 0) {
                fprintf(stderr, "aegisd: --log-level: expected debug, info, warn or error\n");
                return -1;
            }
            break;
        case OPT_HELP:
        case 'h':
            usage(stdout);
            exit(0);
        case '?':
            usage(stderr);
            return -1;
        default:
            if (parse_tls_opt(opt, optarg, o)) {
                break;
            }
            if (parse_number_opt(opt, optarg, o) != 0) {
                return -1;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aegisd: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->node.id == 0 || o->node.peers_count == 0 || o->node.data_dir == NULL) {
        fprintf(stderr, "aegisd: --id, --peers and --data-dir are required (see --help)\n");
        return -1;
    }
    if (check_tls_opts(o) != 0) {
        return -1;
    }
    o->server.host = o->client_host;
    return 0;
}

/* The node stopped on a fatal condition (e.g. the amnesia guard): wake the main thread's
 * sigwait so that it stops the node and exits non-zero. */
static void on_fatal(void *data, int err)
{
    (void)data;
    (void)err;
    kill(getpid(), SIGTERM);
}

int main(int argc, char **argv)
{
    struct opts o;
    struct aegis_node *node = NULL;
    struct aegis_server *server = NULL;
    struct aegis_metrics_http *metrics = NULL;
    sigset_t set;
    int sig = 0, rv;

    memset(&o, 0, sizeof(o));
    if (parse_args(argc, argv, &o) != 0) {
        return 2;
    }
    aegis__log_setup(o.log_level, o.node.id);
    o.node.on_fatal = on_fatal;
    /* Block the shutdown signals in every thread (the node's threads inherit this mask);
     * the main thread takes them with sigwait(). A peer that hangs up must not kill us. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
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
            AEGIS_LOG(AEGIS_LOG_INFO, "serving Prometheus metrics on http://%s:%u/metrics",
                      o.metrics_host, aegis__metrics_http_port(metrics));
        }
    }
    if (rv != 0) {
        AEGIS_LOG(AEGIS_LOG_ERROR, "cannot start node %llu: %s", (unsigned long long)o.node.id,
                  aegis_strerror(rv));
        aegis_node_destroy(node);
        aegis__server_destroy(server);
        return 1;
    }
    AEGIS_LOG(AEGIS_LOG_INFO, "serving RESP2 clients on %s:%u", o.client_host,
              aegis__node_client_port(node));
    sigwait(&set, &sig);
    AEGIS_LOG(AEGIS_LOG_INFO, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* A fatal condition of the node (aegis_node_stop returns it) makes the exit 1. */
    aegis__metrics_http_stop(metrics);
    rv = aegis_node_stop(node);
    aegis_node_destroy(node);
    aegis__server_destroy(server);
    return rv == 0 ? 0 : 1;
}
