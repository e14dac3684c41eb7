/* SPDX-License-Identifier: MIT */
/* aegis-bench --breakdown: where a write's time went, stage by stage, from the nodes' own
 * histograms (pipeline/metrics.h).
 *
 * Before the measured phase every node gets CONFIG RESETSTAT, which makes its INFO latency
 * count from that moment; after the run each node is asked for INFO all, and the lines
 *   stage_<stage>_usec:count=N,mean=X,p50=X,p90=X,p99=X,p99.9=X,max=X
 * (and the distributions log_sync_usec, log_batch_entries, append_batch_entries,
 * apply_batch_entries, propose_batch_requests) are printed per node: the leader's write
 * path first, then what each follower spent. The leader's sequential stages
 * (received -> proposed -> committed -> applied -> reply) are also shown as shares of its
 * mean request time, which is what a client waits for minus the network to the server.
 *
 * A server without these lines (redis-server, an older aegisd) is reported as such and
 * skipped. Header-only because every cmd/ source file becomes its own program. */
#ifndef AEGIS_BENCH_BREAKDOWN_H
#define AEGIS_BENCH_BREAKDOWN_H

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cmd/bench_resp.h"

#define BREAKDOWN_NODES_MAX 64
#define BREAKDOWN_REPLY_MAX (256 * 1024)

struct breakdown_node {
    char host[256];
    char port[8];
};

struct breakdown_stat {
    bool found;
    double count, mean, p50, p90, p99, p999, max;
};

/* Connect to @host:@port with 2 s timeouts; -1 on failure. */
static inline int breakdown_dial(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    int fd;

    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* Send @cmd (RESP-encoded) and read one reply; its payload (NUL-terminated) is returned in
 * a malloc'ed buffer the caller frees, with *type_out its RESP type. NULL on failure. */
static inline char *breakdown_command(const struct breakdown_node *n, const char *cmd,
                                      int *type_out)
{
    char *buf = malloc(BREAKDOWN_REPLY_MAX);
    struct bench_reply r;
    size_t len = 0;
    long parsed = BENCH_RESP_MORE;
    int fd = breakdown_dial(n->host, n->port);

    memset(&r, 0, sizeof(r));
    if (buf == NULL || fd < 0 ||
        send(fd, cmd, strlen(cmd), MSG_NOSIGNAL) != (ssize_t)strlen(cmd)) {
        free(buf);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    /* Bounded: the buffer fills or the reply completes or the timeout hits. */
    while (len + 1 < BREAKDOWN_REPLY_MAX && parsed == BENCH_RESP_MORE) {
        ssize_t got = read(fd, buf + len, BREAKDOWN_REPLY_MAX - 1 - len);

        if (got <= 0) {
            break;
        }
        len += (size_t)got;
        parsed = bench_resp_parse(buf, len, &r);
    }
    close(fd);
    if (parsed <= 0) {
        free(buf);
        return NULL;
    }
    memmove(buf, r.str, r.len);
    buf[r.len] = '\0';
    *type_out = (int)r.type;
    return buf;
}

/* CONFIG RESETSTAT on every node; a node that refuses is noted, not fatal. */
static inline void breakdown_reset(const struct breakdown_node *nodes, unsigned count)
{
    static const char cmd[] = "*2\r\n$6\r\nCONFIG\r\n$9\r\nRESETSTAT\r\n";

    for (unsigned i = 0; i < count; i++) {
        int type = 0;
        char *reply = breakdown_command(&nodes[i], cmd, &type);

        if (reply == NULL || strcmp(reply, "OK") != 0) {
            fprintf(stderr, "aegis-bench: --breakdown: %s:%s did not reset its statistics\n",
                    nodes[i].host, nodes[i].port);
        }
        free(reply);
    }
}

/* The value of "@key:" in INFO text, parsed as a histogram line; found false if absent. */
static inline struct breakdown_stat breakdown_stat(const char *info, const char *key)
{
    struct breakdown_stat s;
    char pat[128];
    const char *p;

    memset(&s, 0, sizeof(s));
    snprintf(pat, sizeof(pat), "\n%s:count=", key);
    p = strstr(info, pat);
    if (p == NULL) {
        return s;
    }
    p += strlen(pat);
    s.found = sscanf(p, "%lf,mean=%lf,p50=%lf,p90=%lf,p99=%lf,p99.9=%lf,max=%lf", &s.count,
                     &s.mean, &s.p50, &s.p90, &s.p99, &s.p999, &s.max) == 7;
    return s;
}

/* A plain "key:value" of INFO; @def when absent. */
static inline const char *breakdown_field(const char *info, const char *key, char *buf,
                                          size_t cap, const char *def)
{
    char pat[128];
    const char *p;
    size_t n = 0;

    snprintf(pat, sizeof(pat), "\n%s:", key);
    p = strstr(info, pat);
    if (p == NULL) {
        return def;
    }
    p += strlen(pat);
    while (p[n] != '\r' && p[n] != '\n' && p[n] != '\0' && n + 1 < cap) {
        buf[n] = p[n];
        n++;
    }
    buf[n] = '\0';
    return buf;
}

static inline void breakdown_row(const char *info, const char *key, const char *label)
{
    struct breakdown_stat s = breakdown_stat(info, key);

    if (!s.found || s.count == 0) {
        return;
    }
    printf("    %-34s %9.0f %9.1f %9.1f %9.1f %9.1f %9.1f\n", label, s.count, s.mean, s.p50,
           s.p90, s.p99, s.max);
}

static inline void breakdown_shares(const char *info)
{
    static const char *const keys[] = {"stage_receive_propose_usec",
                                       "stage_propose_commit_usec", "stage_commit_apply_usec",
                                       "stage_apply_reply_usec"};
    static const char *const names[] = {"received->proposed", "proposed->committed",
                                        "committed->applied", "applied->reply"};
    struct breakdown_stat req = breakdown_stat(info, "stage_request_usec");
    struct breakdown_stat dur = breakdown_stat(info, "stage_propose_durable_usec");
    double sum = 0;

    if (!req.found || req.count == 0 || req.mean <= 0) {
        return;
    }
    printf("    mean request %.1f us =", req.mean);
    for (size_t i = 0; i < 4; i++) {
        struct breakdown_stat s = breakdown_stat(info, keys[i]);

        sum += s.mean;
        printf("%s %s %.0f%%", i == 0 ? "" : " +", names[i], 100.0 * s.mean / req.mean);
    }
    printf(" (+ %.0f%% parsing and queueing outside the stages)\n",
           100.0 * (req.mean - sum) / req.mean);
    if (dur.found && dur.count > 0) {
        struct breakdown_stat com = breakdown_stat(info, "stage_propose_commit_usec");

        printf("    of proposed->committed, %.0f%% is the leader's own write + fdatasync "
               "(in parallel with the followers')\n",
               com.mean > 0 ? 100.0 * dur.mean / com.mean : 0.0);
    }
}

static inline void breakdown_print_node(const struct breakdown_node *n, const char *info)
{
    char role[32], id[32];
    struct breakdown_stat batch = breakdown_stat(info, "log_batch_entries");
    struct breakdown_stat sync = breakdown_stat(info, "log_sync_usec");
    struct breakdown_stat app = breakdown_stat(info, "append_batch_entries");
    struct breakdown_stat apb = breakdown_stat(info, "apply_batch_entries");
    struct breakdown_stat inb = breakdown_stat(info, "propose_batch_requests");

    printf("  node %s (%s, %s:%s)\n", breakdown_field(info, "node_id", id, sizeof(id), "?"),
           breakdown_field(info, "role", role, sizeof(role), "?"), n->host, n->port);
    printf("    %-34s %9s %9s %9s %9s %9s %9s\n", "stage (microseconds)", "count", "mean", "p50",
           "p90", "p99", "max");
    breakdown_row(info, "stage_receive_propose_usec", "received -> proposed");
    breakdown_row(info, "stage_propose_durable_usec", "proposed -> durable (own disk)");
    breakdown_row(info, "stage_propose_commit_usec", "proposed -> committed (quorum)");
    breakdown_row(info, "stage_follower_receive_durable_usec", "append received -> durable");
    breakdown_row(info, "stage_follower_durable_ack_usec", "durable -> acknowledged");
    breakdown_row(info, "stage_commit_apply_usec", "committed -> applied");
    breakdown_row(info, "stage_apply_reply_usec", "applied -> reply queued");
    breakdown_row(info, "stage_request_usec", "request total (parsed -> reply)");
    breakdown_row(info, "log_sync_usec", "group commit (write + fdatasync)");
    breakdown_shares(info);
    if (batch.found && batch.count > 0) {
        printf("    batching: %.0f log batches of %.1f entries (p50 %.0f, max %.0f)", batch.count,
               batch.mean, batch.p50, batch.max);
        if (sync.found && sync.count > 0) {
            printf(", %.0f syncs", sync.count);
        }
        printf("\n");
    }
    printf("             ");
    if (app.found && app.count > 0) {
        printf(" %.1f entries per AppendEntries sent,", app.mean);
    }
    if (inb.found && inb.count > 0) {
        printf(" %.1f requests per inbox drain,", inb.mean);
    }
    printf(" %.1f entries per apply batch\n", apb.found ? apb.mean : 0.0);
}

/* INFO all from every node into @infos (malloc'ed; NULL for a node without stage
 * histograms, which is reported). */
static inline void breakdown_fetch(const struct breakdown_node *nodes, unsigned count,
                                   char **infos)
{
    static const char cmd[] = "*2\r\n$4\r\nINFO\r\n$3\r\nall\r\n";

    for (unsigned i = 0; i < count && i < BREAKDOWN_NODES_MAX; i++) {
        int type = 0;

        infos[i] = breakdown_command(&nodes[i], cmd, &type);
        if (infos[i] == NULL || strstr(infos[i], "\nstage_request_usec:") == NULL) {
            free(infos[i]);
            infos[i] = NULL;
        }
    }
}

/* Print every node's breakdown (from breakdown_fetch); the leader first. */
static inline void breakdown_print(const struct breakdown_node *nodes, char *const *infos,
                                   unsigned count)
{
    printf("breakdown (server side, measured phase, from each node's INFO latency)\n");
    for (unsigned i = 0; i < count && i < BREAKDOWN_NODES_MAX; i++) {
        if (infos[i] == NULL) {
            printf("  %s:%s: no stage histograms (not an aegisd with metrics)\n", nodes[i].host,
                   nodes[i].port);
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned i = 0; i < count && i < BREAKDOWN_NODES_MAX; i++) {
            bool leader = infos[i] != NULL && strstr(infos[i], "\nrole:leader") != NULL;

            if (infos[i] != NULL && leader == (pass == 0)) {
                breakdown_print_node(&nodes[i], infos[i]);
            }
        }
    }
}

/* The breakdown as a JSON array (schema: docs/benchmarking.md): per node its address,
 * role, id and every stage or distribution line of INFO latency. */
static inline void breakdown_json(FILE *f, const struct breakdown_node *nodes,
                                  char *const *infos, unsigned count)
{
    static const char *const keys[] = {
        "stage_receive_propose_usec", "stage_propose_durable_usec",
        "stage_propose_commit_usec", "stage_follower_receive_durable_usec",
        "stage_follower_durable_ack_usec", "stage_commit_apply_usec",
        "stage_apply_reply_usec", "stage_request_usec", "log_sync_usec", "log_batch_entries",
        "append_batch_entries", "apply_batch_entries", "propose_batch_requests"};
    bool first = true;

    fprintf(f, "[");
    for (unsigned i = 0; i < count && i < BREAKDOWN_NODES_MAX; i++) {
        char role_buf[32], id_buf[32];
        const char *role, *id;
        bool first_key = true;

        if (infos[i] == NULL) {
            continue;
        }
        role = breakdown_field(infos[i], "role", role_buf, sizeof(role_buf), "unknown");
        id = breakdown_field(infos[i], "node_id", id_buf, sizeof(id_buf), "0");
        fprintf(f, "%s\n    {\"node\": \"", first ? "" : ",");
        for (const char *h = nodes[i].host; *h != '\0'; h++) { /* A name from the user. */
            if ((unsigned char)*h >= 0x20 && *h != '"' && *h != '\\') {
                fputc(*h, f);
            }
        }
        fprintf(f, ":%s\", \"role\": \"%s\", \"node_id\": %ld, \"stages\": {", nodes[i].port,
                strspn(role, "abcdefghijklmnopqrstuvwxyz_") == strlen(role) ? role : "unknown",
                strtol(id, NULL, 10));
        first = false;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            struct breakdown_stat st = breakdown_stat(infos[i], keys[k]);

            if (!st.found) {
                continue;
            }
            fprintf(f, "%s\n      \"%s\": {\"count\": %.0f, \"mean\": %.3f, \"p50\": %.3f, "
                       "\"p90\": %.3f, \"p99\": %.3f, \"p99_9\": %.3f, \"max\": %.3f}",
                    first_key ? "" : ",", keys[k], st.count, st.mean, st.p50, st.p90, st.p99,
                    st.p999, st.max);
            first_key = false;
        }
        fprintf(f, "}}");
    }
    fprintf(f, "%s]", first ? "" : "\n  ");
}

/* The integer "key:value" of INFO text; -1 when absent. */
static inline long long breakdown_counter(const char *info, const char *key)
{
    char buf[32];
    const char *v = breakdown_field(info, key, buf, sizeof(buf), NULL);

    return v == NULL ? -1 : strtoll(v, NULL, 10);
}

#endif /* AEGIS_BENCH_BREAKDOWN_H */
