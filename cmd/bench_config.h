/* SPDX-License-Identifier: MIT */
/* aegis-bench's settings and the parsing of its option values (targets, ratio, numbers).
 *
 * Kept apart from the event loop so that the parsing rules are readable in one place and
 * testable (tests/unit/net/test_bench_cli.c includes this header). Header-only because
 * every cmd/ source file becomes its own program. */
#ifndef AEGIS_BENCH_CONFIG_H
#define AEGIS_BENCH_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <aegis/aegis.h>

#include "pipeline/args.h"

#define BENCH_TARGETS_MAX   64
#define BENCH_HOST_MAX      256
#define BENCH_SPAWN_MAX     9
#define BENCH_SPAWN_ARGS_MAX 32

enum bench_op { BENCH_OP_SET, BENCH_OP_GET, BENCH_OP_INCR, BENCH_OP_CAS, BENCH_OP_COUNT };

static const char *const bench_op_names[BENCH_OP_COUNT] = {"set", "get", "incr", "cas"};

struct bench_target {
    char host[BENCH_HOST_MAX];
    char port[8];
};

struct bench_config {
    struct bench_target targets[BENCH_TARGETS_MAX];
    unsigned targets_count;
    unsigned clients;
    unsigned pipeline;
    unsigned threads;
    uint64_t value_size;
    uint64_t keys;
    unsigned weights[BENCH_OP_COUNT]; /* Relative frequency of each command. */
    unsigned weights_total;
    double duration_s;
    double warmup_s;
    uint64_t requests; /* 0: run for duration_s instead. */
    uint64_t seed;
    const char *json_path;
    const char *histogram_path;
    unsigned spawn;           /* 0: use the targets; N: start an N-node aegisd cluster. */
    const char *fsync;        /* --fsync passed to spawned nodes. */
    bool spawn_all;           /* Spread over every spawned node, not just the leader. */
    bool spawn_keep;          /* Keep the spawned cluster's directory (logs). */
    const char *spawn_args[BENCH_SPAWN_ARGS_MAX];
    unsigned spawn_args_count;
    int progress;             /* -1: when stdout is a terminal; 0 never; 1 always. */
    bool breakdown;           /* Print the nodes' per-stage latencies after the run. */
    int baseline;             /* -1: with --spawn only; 0 never; 1 always (bench_baseline.h). */
    const char *baseline_dir; /* NULL: the spawned cluster's directory, else $TMPDIR or /tmp. */
};

/* Parse an unsigned decimal in [lo, hi]; false if malformed (a sign, spaces, empty),
 * too large or out of range (pipeline/args.c's rules). */
static inline bool bench_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return s != NULL && aegis__args_u64("", s, lo, hi, out, NULL, 0) == 0;
}

/* Parse seconds: a non-negative decimal ("10", "0.5"), at most one day. Digits and at
 * most one '.' only: no sign, spaces, exponent, hex, "inf" or "nan" (strtod takes them). */
static inline bool bench_parse_seconds(const char *s, double *out)
{
    size_t digits, dots = 0;
    char *end;
    double v;

    if (s == NULL || *s == '\0') {
        return false;
    }
    digits = strspn(s, "0123456789");
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '.') {
            dots++;
        } else if (*p < '0' || *p > '9') {
            return false;
        }
    }
    if (dots > 1 || (digits == 0 && (s[0] != '.' || s[1] == '\0'))) {
        return false;
    }
    v = strtod(s, &end);
    if (*end != '\0' || !(v >= 0.0) || v > 86400.0) {
        return false;
    }
    *out = v;
    return true;
}

/* Parse a --ratio value into @w (one weight per command). Two syntaxes:
 *   "S:G[:I[:C]]"                 weights for set, get, incr, cas in that order ("1:1");
 *   "set=70,get=20,incr=10,cas=0" named weights in any order; unnamed ones are 0.
 * Each weight is 0..1000000; at least one must be positive. */
static inline bool bench_parse_ratio(const char *s, unsigned w[BENCH_OP_COUNT])
{
    char buf[256], *save = NULL, *tok;
    bool named = strchr(s, '=') != NULL;
    unsigned i = 0, total = 0;

    if (strlen(s) >= sizeof(buf) || *s == '\0') {
        return false;
    }
    memcpy(buf, s, strlen(s) + 1);
    memset(w, 0, sizeof(unsigned) * BENCH_OP_COUNT);
    for (tok = strtok_r(buf, named ? "," : ":", &save); tok != NULL;
         tok = strtok_r(NULL, named ? "," : ":", &save)) {
        uint64_t v;
        unsigned op = i;

        if (named) {
            char *eq = strchr(tok, '=');

            if (eq == NULL) {
                return false;
            }
            *eq = '\0';
            for (op = 0; op < BENCH_OP_COUNT; op++) {
                if (strcasecmp(tok, bench_op_names[op]) == 0) {
                    break;
                }
            }
            tok = eq + 1;
        }
        if (op >= BENCH_OP_COUNT || !bench_parse_u64(tok, 0, 1000000, &v)) {
            return false;
        }
        w[op] = (unsigned)v;
        i++;
    }
    for (i = 0; i < BENCH_OP_COUNT; i++) {
        total += w[i];
    }
    return total > 0;
}

/* Parse "host:port" or "[v6addr]:port" into @t (pipeline/args.c's rules). */
static inline bool bench_parse_target(const char *s, struct bench_target *t)
{
    char host[AEGIS_HOST_MAX];
    uint16_t port;

    if (aegis__args_hostport("", s, host, sizeof(host), &port, NULL, 0) != 0) {
        return false;
    }
    snprintf(t->host, sizeof(t->host), "%s", host);
    snprintf(t->port, sizeof(t->port), "%u", (unsigned)port);
    return true;
}

/* Combine the --host and --port lists into targets appended to @c: equal lengths pair up
 * in order; a list of one applies to every entry of the other; a missing list means
 * 127.0.0.1 or 6379. Returns false when the lengths cannot be combined. */
static inline bool bench_pair_hosts_ports(struct bench_config *c, const char *const *hosts,
                                          unsigned hosts_count, const char *const *ports,
                                          unsigned ports_count)
{
    unsigned n = hosts_count > ports_count ? hosts_count : ports_count;
    unsigned i;

    if (n == 0) {
        return true;
    }
    if (hosts_count > 1 && ports_count > 1 && hosts_count != ports_count) {
        return false;
    }
    for (i = 0; i < n; i++) {
        const char *h = hosts_count == 0 ? "127.0.0.1" : hosts[hosts_count == 1 ? 0 : i];
        const char *p = ports_count == 0 ? "6379" : ports[ports_count == 1 ? 0 : i];
        struct bench_target *t;
        uint64_t port;

        if (c->targets_count >= BENCH_TARGETS_MAX || strlen(h) >= BENCH_HOST_MAX ||
            !bench_parse_u64(p, 1, 65535, &port)) {
            return false;
        }
        t = &c->targets[c->targets_count++];
        snprintf(t->host, sizeof(t->host), "%s", h);
        snprintf(t->port, sizeof(t->port), "%u", (unsigned)port);
    }
    return true;
}

#endif /* AEGIS_BENCH_CONFIG_H */
