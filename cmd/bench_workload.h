/* SPDX-License-Identifier: MIT */
/* aegis-bench workloads: YCSB-style command mixes, key choice (uniform, zipfian, latest)
 * and value sizes (fixed or from a distribution).
 *
 * Zipfian ranks follow YCSB's ZipfianGenerator (Gray et al., "Quickly generating
 * billion-record synthetic databases", SIGMOD 1994): rank r in [0, n) has probability
 * (r+1)^-theta / zeta(n, theta), drawn with one uniform number in O(1) after zeta(n) is
 * known. zeta is summed exactly up to ZIPF_EXACT_MAX terms and extended beyond by the
 * Euler-Maclaurin integral (relative error below 1e-9 there), so a key space of 10^12
 * costs the same start-up as 10^6. As in YCSB, "zipfian" key choice scrambles the rank
 * with FNV-1a so that the hot keys are spread over the key space rather than all at
 * its start; the rank generator itself is what the tests check.
 *
 * "latest" (YCSB workload D's idea): each connection writes keys in sequence from its own
 * starting point, and reads keys at a zipfian distance behind the last key it wrote, so
 * recent writes are the hot reads.
 *
 * Value sizes: "B" (fixed), "MIN-MAX" (uniform) or "zipf:MIN-MAX" (zipfian over the sizes,
 * MIN the most frequent). Header-only because every cmd/ source file becomes its own
 * program; tests include it. */
#ifndef AEGIS_BENCH_WORKLOAD_H
#define AEGIS_BENCH_WORKLOAD_H

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/assert.h"
#include "engine/rng.h"
#include "pipeline/args.h"

enum bench_op { BENCH_OP_SET, BENCH_OP_GET, BENCH_OP_INCR, BENCH_OP_CAS, BENCH_OP_COUNT };

static const char *const bench_op_names[BENCH_OP_COUNT] = {"set", "get", "incr", "cas"};

/* Parse an unsigned decimal in [lo, hi]; false if malformed (a sign, spaces, empty),
 * too large or out of range (pipeline/args.c's rules). */
static inline bool bench_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    return s != NULL && aegis__args_u64("", s, lo, hi, out, NULL, 0) == 0;
}

#define ZIPF_THETA_DEFAULT 0.99
#define ZIPF_EXACT_MAX     1000000ull
#define BENCH_VALUE_MAX    (64ull << 20)

struct bench_zipf {
    uint64_t n;
    double theta, alpha, zetan, eta, half_pow_theta;
};

/* zeta(n, theta) = sum over i = 1..n of i^-theta. */
static inline double bench_zeta(uint64_t n, double theta)
{
    uint64_t exact = n < ZIPF_EXACT_MAX ? n : ZIPF_EXACT_MAX;
    double sum = 0.0;

    for (uint64_t i = exact; i >= 1; i--) { /* Smallest terms first: less rounding. */
        sum += pow((double)i, -theta);
    }
    if (n > exact) {
        double m = (double)exact, x = (double)n;

        /* sum_{i=m+1..n} f(i) ~ integral_m^n f + (f(n) - f(m)) / 2, f(i) = i^-theta. */
        sum += (pow(x, 1.0 - theta) - pow(m, 1.0 - theta)) / (1.0 - theta) +
               (pow(x, -theta) - pow(m, -theta)) / 2.0;
    }
    return sum;
}

/* Prepare ranks over [0, @n) with exponent @theta in (0, 1). */
static inline void bench_zipf_init(struct bench_zipf *z, uint64_t n, double theta)
{
    AEGIS_ASSERT(n >= 1 && theta > 0.0 && theta < 1.0);
    z->n = n;
    z->theta = theta;
    z->alpha = 1.0 / (1.0 - theta);
    z->zetan = bench_zeta(n, theta);
    z->half_pow_theta = 1.0 + pow(0.5, theta);
    z->eta = n < 2 ? 0.0
                   : (1.0 - pow(2.0 / (double)n, 1.0 - theta)) /
                         (1.0 - bench_zeta(2, theta) / z->zetan);
}

/* A uniform double in [0, 1). */
static inline double bench_rng_unit(struct aegis_rng *rng)
{
    return (double)(aegis__rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* A zipfian rank in [0, n): rank 0 the most frequent. */
static inline uint64_t bench_zipf_next(const struct bench_zipf *z, struct aegis_rng *rng)
{
    double u = bench_rng_unit(rng), uz = u * z->zetan;
    uint64_t r;

    if (uz < 1.0 || z->n < 2) {
        return 0;
    }
    if (uz < z->half_pow_theta) {
        return 1;
    }
    r = (uint64_t)((double)z->n * pow(z->eta * u - z->eta + 1.0, z->alpha));
    return r < z->n ? r : z->n - 1;
}

static inline uint64_t bench_fnv64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        h *= 0x100000001b3ull;
        v >>= 8;
    }
    return h;
}

enum bench_dist { BENCH_DIST_UNIFORM, BENCH_DIST_ZIPFIAN, BENCH_DIST_LATEST };

static const char *const bench_dist_names[] = {"uniform", "zipfian", "latest"};

/* Parse --distribution: "uniform", "zipfian[:THETA]" or "latest[:THETA]", THETA in
 * [0.01, 0.999] (default 0.99). */
static inline bool bench_parse_dist(const char *s, enum bench_dist *d, double *theta)
{
    const char *colon = strchr(s, ':');
    size_t len = colon != NULL ? (size_t)(colon - s) : strlen(s);
    char *end;
    double t = ZIPF_THETA_DEFAULT;
    unsigned i;

    for (i = 0; i < 3; i++) {
        if (strlen(bench_dist_names[i]) == len && strncasecmp(s, bench_dist_names[i], len) == 0) {
            break;
        }
    }
    if (i == 3 || (colon != NULL && i == BENCH_DIST_UNIFORM)) {
        return false;
    }
    if (colon != NULL) {
        if (colon[1] < '0' || colon[1] > '9') {
            return false;
        }
        t = strtod(colon + 1, &end);
        if (*end != '\0' || !(t >= 0.01 && t <= 0.999)) {
            return false;
        }
    }
    *d = (enum bench_dist)i;
    *theta = t;
    return true;
}

/* Parse --workload into command weights (set, get, incr, cas): YCSB A (50/50 read/update),
 * B (95/5), C (read-only) and W (write-only). Case-insensitive; "write-only" for W. */
static inline bool bench_parse_workload(const char *s, char *name, unsigned w[BENCH_OP_COUNT])
{
    static const struct {
        const char *name;
        unsigned set, get;
    } mixes[] = {{"a", 50, 50}, {"b", 5, 95}, {"c", 0, 100}, {"w", 100, 0},
                 {"write-only", 100, 0}};

    for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
        if (strcasecmp(s, mixes[i].name) == 0) {
            memset(w, 0, sizeof(unsigned) * BENCH_OP_COUNT);
            w[BENCH_OP_SET] = mixes[i].set;
            w[BENCH_OP_GET] = mixes[i].get;
            *name = (char)(mixes[i].name[0] - 'a' + 'A');
            return true;
        }
    }
    return false;
}

enum bench_vsize_kind { BENCH_VSIZE_FIXED, BENCH_VSIZE_UNIFORM, BENCH_VSIZE_ZIPF };

struct bench_vsize {
    enum bench_vsize_kind kind;
    uint64_t min, max;
    struct bench_zipf zipf; /* BENCH_VSIZE_ZIPF: ranks over max - min + 1 sizes. */
};

/* Parse --value-size: "B", "MIN-MAX" or "zipf:MIN-MAX", every size in [0, 64 MiB],
 * MIN < MAX for a range. */
static inline bool bench_parse_vsize(const char *s, struct bench_vsize *v)
{
    char buf[64];
    const char *body = s;
    char *dash;

    memset(v, 0, sizeof(*v));
    if (strncasecmp(s, "zipf:", 5) == 0) {
        v->kind = BENCH_VSIZE_ZIPF;
        body = s + 5;
    }
    if (strlen(body) >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, body, strlen(body) + 1);
    dash = strchr(buf, '-');
    if (dash == NULL) {
        if (v->kind == BENCH_VSIZE_ZIPF || !bench_parse_u64(buf, 0, BENCH_VALUE_MAX, &v->min)) {
            return false;
        }
        v->max = v->min;
        return true;
    }
    *dash = '\0';
    if (!bench_parse_u64(buf, 0, BENCH_VALUE_MAX, &v->min) ||
        !bench_parse_u64(dash + 1, 0, BENCH_VALUE_MAX, &v->max) || v->min >= v->max) {
        return false;
    }
    if (v->kind == BENCH_VSIZE_FIXED) {
        v->kind = BENCH_VSIZE_UNIFORM;
    }
    return true;
}

/* Prepare a parsed size distribution for drawing (zipf: zeta over the sizes). */
static inline void bench_vsize_prepare(struct bench_vsize *v)
{
    if (v->kind == BENCH_VSIZE_ZIPF) {
        bench_zipf_init(&v->zipf, v->max - v->min + 1, ZIPF_THETA_DEFAULT);
    }
}

static inline uint64_t bench_vsize_next(const struct bench_vsize *v, struct aegis_rng *rng)
{
    switch (v->kind) {
    case BENCH_VSIZE_UNIFORM: return aegis__rng_range(rng, v->min, v->max);
    case BENCH_VSIZE_ZIPF: return v->min + bench_zipf_next(&v->zipf, rng);
    case BENCH_VSIZE_FIXED:
    default: return v->min;
    }
}

/* "128", "64-4096" or "zipf:64-4096", for reports. */
static inline void bench_vsize_format(const struct bench_vsize *v, char *buf, size_t cap)
{
    if (v->kind == BENCH_VSIZE_FIXED) {
        snprintf(buf, cap, "%" PRIu64, v->min);
    } else {
        snprintf(buf, cap, "%s%" PRIu64 "-%" PRIu64, v->kind == BENCH_VSIZE_ZIPF ? "zipf:" : "",
                 v->min, v->max);
    }
}

/* Key choice of one connection. */
struct bench_keys {
    enum bench_dist dist;
    uint64_t keys;
    const struct bench_zipf *zipf; /* Zipfian and latest: ranks over the key space. */
    uint64_t latest;               /* Latest: the key this connection wrote last. */
};

/* The key for the next command; @write advances "latest"'s sequence. */
static inline uint64_t bench_key_next(struct bench_keys *k, struct aegis_rng *rng, bool write)
{
    switch (k->dist) {
    case BENCH_DIST_ZIPFIAN: return bench_fnv64(bench_zipf_next(k->zipf, rng)) % k->keys;
    case BENCH_DIST_LATEST:
        if (write) {
            k->latest = (k->latest + 1) % k->keys;
            return k->latest;
        }
        return (k->latest + k->keys - bench_zipf_next(k->zipf, rng) % k->keys) % k->keys;
    case BENCH_DIST_UNIFORM:
    default: return aegis__rng_range(rng, 0, k->keys - 1);
    }
}

#endif /* AEGIS_BENCH_WORKLOAD_H */
