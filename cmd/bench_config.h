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

#include "cmd/bench_workload.h"
#include "pipeline/args.h"

#define BENCH_TARGETS_MAX   64
#define BENCH_HOST_MAX      256
#define BENCH_SPAWN_MAX     9
#define BENCH_SPAWN_ARGS_MAX 32

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
    uint64_t value_size;     /* The largest value size of the distribution below. */
    struct bench_vsize vsize; /* --value-size: fixed, uniform or zipfian sizes. */
    uint64_t keys;
    enum bench_dist dist;     /* --distribution: key choice. */
    double theta;             /* Zipfian exponent of zipfian and latest. */
    char workload;            /* --workload: 'A', 'B', 'C', 'W', or 0 (--ratio). */
    unsigned weights[BENCH_OP_COUNT]; /* Relative frequency of each command. */
    unsigned weights_total;
    double duration_s;
    double warmup_s;
    uint64_t requests; /* 0: run for duration_s instead. */
    uint64_t seed;
    double rate;        /* --rate: open loop at this many ops/s; 0: closed loop. */
    bool poisson;       /* --poisson: exponential gaps between sends, not fixed ones. */
    bool from_sent;     /* --latency-from sent: time from the actual send (uncorrected). */
    double sweep_lo, sweep_hi; /* --sweep LO:HI[:STEPS]: rates to try; 0: no sweep. */
    unsigned sweep_steps;
    double slo_ms;      /* --slo-ms: the p99 a sweep's rate must stay under. */
    unsigned repeat;    /* --repeat N: run N times, report medians and the noise. */
    const char *json_path;
    const char *histogram_path;
    const char *csv_path;
    const char *plot_path;
    unsigned spawn;           /* 0: use the targets; N: start an N-node aegisd cluster. */
    const char *fsync;        /* --fsync passed to spawned nodes. */
    bool spawn_all;           /* Spread over every spawned node, not just the leader. */
    bool spawn_keep;          /* Keep the spawned cluster's directory (logs). */
    const char *spawn_args[BENCH_SPAWN_ARGS_MAX];
    unsigned spawn_args_count;
    int progress;             /* -1: when stdout is a terminal; 0 never; 1 always. */
    bool oneline;             /* --quiet: one line per run (or sweep step), no report. */
    bool breakdown;           /* Print the nodes' per-stage latencies after the run. */
    int baseline;             /* -1: with --spawn only; 0 never; 1 always (bench_baseline.h). */
    const char *baseline_dir; /* NULL: the spawned cluster's directory, else $TMPDIR or /tmp. */
};

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

/* Parse --sweep "LO:HI[:STEPS]": rates LO < HI in ops/s, STEPS in [2, 100] (default 5). */
static inline bool bench_parse_sweep(const char *s, double *lo, double *hi, unsigned *steps)
{
    uint64_t l, h, n = 5;
    char buf[96], *c1, *c2;

    if (strlen(s) >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, strlen(s) + 1);
    c1 = strchr(buf, ':');
    if (c1 == NULL) {
        return false;
    }
    *c1++ = '\0';
    c2 = strchr(c1, ':');
    if (c2 != NULL) {
        *c2++ = '\0';
        if (!bench_parse_u64(c2, 2, 100, &n)) {
            return false;
        }
    }
    if (!bench_parse_u64(buf, 1, 100000000, &l) || !bench_parse_u64(c1, 1, 100000000, &h) ||
        l >= h) {
        return false;
    }
    *lo = (double)l;
    *hi = (double)h;
    *steps = (unsigned)n;
    return true;
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
