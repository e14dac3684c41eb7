/* SPDX-License-Identifier: MIT */
/* `aegis-bench compare [--plot FILE.svg] A.json B.json ...`: one table of the main figures
 * of saved runs (aegis-bench --json, schema 2) with the ratio of each against the first
 * file, and a verdict that calls a change faster or slower only when it clears the noise.
 *
 * Values: a run made with --repeat N is represented by its medians ("repeat.median"), and
 * its noise by the relative range of the N values, (max - min) / median ("repeat.noise").
 * The noise of a comparison is the larger of the two runs' noise; the verdict is "faster"
 * or "slower" when the ratio differs from 1 by more than that, "same" when it does not,
 * and "?" when neither run was repeated (no noise estimate: the ratio alone is shown).
 * For latencies a ratio below 1 is faster; for ops/s a ratio above 1.
 *
 * --plot draws every file's latency spectrum on one picture (bench_svg.h), from the
 * histogram buckets the JSON carries. Header-only because every cmd/ source file becomes
 * its own program; tests run the command on fixed files. */
#ifndef AEGIS_BENCH_COMPARE_H
#define AEGIS_BENCH_COMPARE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/bench_jsonr.h"
#include "cmd/bench_svg.h"

#define COMPARE_FILES_MAX 16

struct compare_figure {
    const char *name;
    const char *path;  /* In "results". */
    const char *rname; /* In "repeat.median" / "repeat.noise"; NULL: not repeated. */
    int direction;     /* +1: higher is faster; -1: lower is faster; 0: no verdict. */
};

static const struct compare_figure compare_figures[] = {
    {"ops/s", "results.ops_per_sec", "ops_per_sec", +1},
    {"p50 us", "results.latency_us.p50", "p50_us", -1},
    {"p90 us", "results.latency_us.p90", NULL, -1},
    {"p99 us", "results.latency_us.p99", "p99_us", -1},
    {"p99.9 us", "results.latency_us.p99_9", NULL, -1},
    {"max us", "results.latency_us.max", NULL, -1},
    {"errors", "results.errors", NULL, 0},
};
#define COMPARE_FIGURES (sizeof(compare_figures) / sizeof(compare_figures[0]))

/* A figure's value in @d: the median of repeats when present; NAN when absent. */
static inline double compare_value(const struct jsonr_doc *d, const struct compare_figure *fg)
{
    char path[128];

    if (fg->rname != NULL) {
        snprintf(path, sizeof(path), "repeat.median.%s", fg->rname);
        if (jsonr_get(d, path) != NULL) {
            return jsonr_num(d, path, NAN);
        }
    }
    return jsonr_num(d, fg->path, NAN);
}

/* The relative noise of a figure in @d, or NAN when the run was not repeated. */
static inline double compare_noise(const struct jsonr_doc *d, const struct compare_figure *fg)
{
    char path[128];

    if (fg->rname == NULL) {
        return NAN;
    }
    snprintf(path, sizeof(path), "repeat.noise.%s", fg->rname);
    return jsonr_num(d, path, NAN);
}

/* "faster", "slower", "same" or "?" for @ratio (of a figure of @direction) given the
 * relative noises of both runs (NAN: unknown). */
static inline const char *compare_verdict(double ratio, int direction, double noise_a,
                                          double noise_b)
{
    double noise;

    if (direction == 0 || isnan(ratio)) {
        return "";
    }
    if (isnan(noise_a) && isnan(noise_b)) {
        return "?";
    }
    noise = isnan(noise_a) ? noise_b : isnan(noise_b) ? noise_a : fmax(noise_a, noise_b);
    if (fabs(ratio - 1.0) <= noise) {
        return "same";
    }
    return (ratio > 1.0) == (direction > 0) ? "faster" : "slower";
}

/* The latency spectrum of a saved run, from "results.histogram.buckets" ([hi_us, count]). */
static inline void compare_curve(const struct jsonr_doc *d, const char *name,
                                 struct svg_curve *c)
{
    size_t n = 0, cap = 0;
    double *hi = NULL;
    uint64_t *count = NULL;

    c->name = name;
    c->n = 0;
    for (size_t i = 0; i < d->count; i++) {
        const struct jsonr_leaf *l = &d->leaves[i];
        const char *p = l->path;
        size_t idx;
        int field;

        if (strncmp(p, "results.histogram.buckets[", 26) != 0 ||
            sscanf(p + 26, "%zu][%d]", &idx, &field) != 2 || l->kind != JSONR_NUMBER) {
            continue;
        }
        if (idx >= n) {
            if (idx != n) {
                continue; /* Out of order: not a file this program wrote. */
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                hi = realloc(hi, cap * sizeof(*hi));
                count = realloc(count, cap * sizeof(*count));
                if (hi == NULL || count == NULL) {
                    fprintf(stderr, "aegis-bench: out of memory\n");
                    exit(1);
                }
            }
            hi[n] = 0;
            count[n++] = 0;
        }
        if (field == 0) {
            hi[idx] = l->num / 1e3;
        } else if (field == 1 && l->num >= 0) {
            count[idx] = (uint64_t)l->num;
        }
    }
    svg_curve_from_buckets(c, hi, count, n, jsonr_num(d, "results.latency_us.max", INFINITY) / 1e3);
    free(hi);
    free(count);
}

static inline int compare_plot(const char *path, struct jsonr_doc *docs, char **names,
                               size_t n)
{
    static struct svg_curve curves[COMPARE_FILES_MAX];
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        compare_curve(&docs[i], names[i], &curves[i]);
    }
    svg_begin(f, 900, 460, "aegis-bench compare");
    svg_spectrum(f, 70, 40, 760, 360, curves, n);
    svg_end(f);
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static inline void compare_print(struct jsonr_doc *docs, char **names, size_t n)
{
    printf("aegis-bench compare: ratios against %s", names[0]);
    printf(" (verdicts need --repeat noise; '?' = no noise estimate)\n");
    for (size_t i = 0; i < n; i++) {
        printf("  %-20s aegis-bench %s (commit %s), %s, %s, %s\n", names[i],
               jsonr_str(&docs[i], "tool_version", "?"), jsonr_str(&docs[i], "git_commit", "?"),
               jsonr_str(&docs[i], "start_time", "?"), jsonr_str(&docs[i], "host.name", "?"),
               jsonr_str(&docs[i], "settings.summary", "?"));
    }
    printf("%-10s", "figure");
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(names[i], '/');

        printf(" %14.14s%s", slash != NULL ? slash + 1 : names[i],
               i == 0 ? "" : "   ratio  noise verdict");
    }
    printf("\n");
    for (size_t k = 0; k < COMPARE_FIGURES; k++) {
        const struct compare_figure *fg = &compare_figures[k];
        double base = compare_value(&docs[0], fg), na = compare_noise(&docs[0], fg);

        printf("%-10s %14.1f", fg->name, base);
        for (size_t i = 1; i < n; i++) {
            double v = compare_value(&docs[i], fg), nb = compare_noise(&docs[i], fg);
            double ratio = base > 0 && !isnan(v) ? v / base : NAN;
            double noise = isnan(na) ? nb : isnan(nb) ? na : fmax(na, nb);
            char rbuf[16], nbuf[16];

            snprintf(rbuf, sizeof(rbuf), isnan(ratio) ? "-" : "%.2fx", ratio);
            snprintf(nbuf, sizeof(nbuf), isnan(noise) ? "-" : "%.0f%%", noise * 100.0);
            printf(" %14.1f %7s %6s %-7s", v, rbuf, nbuf,
                   compare_verdict(ratio, fg->direction, na, nb));
        }
        printf("\n");
    }
}

/* The compare command; @argv[0] is "compare". Returns the exit status. */
static inline int bench_compare_main(int argc, char **argv)
{
    static struct jsonr_doc docs[COMPARE_FILES_MAX];
    char *names[COMPARE_FILES_MAX];
    const char *plot = NULL;
    size_t n = 0;
    int status = 0, i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plot") == 0 && i + 1 < argc) {
            plot = argv[++i];
        } else if (argv[i][0] == '-' || n == COMPARE_FILES_MAX) {
            fprintf(stderr, "usage: aegis-bench compare [--plot FILE.svg] A.json B.json ... "
                            "(at most %d files)\n", COMPARE_FILES_MAX);
            return 2;
        } else {
            names[n++] = argv[i];
        }
    }
    if (n < 2) {
        fprintf(stderr, "usage: aegis-bench compare [--plot FILE.svg] A.json B.json ...\n");
        return 2;
    }
    for (size_t k = 0; k < n; k++) {
        char err[128];

        if (jsonr_load(names[k], &docs[k], err, sizeof(err)) != 0) {
            fprintf(stderr, "aegis-bench: %s: %s\n", names[k], err);
            for (size_t j = 0; j < k; j++) {
                jsonr_free(&docs[j]);
            }
            return 1;
        }
        if (jsonr_num(&docs[k], "schema_version", 0) < 2) {
            fprintf(stderr, "aegis-bench: %s: not an aegis-bench JSON report of schema 2 or "
                            "later\n", names[k]);
            status = 1;
        }
    }
    if (status == 0) {
        compare_print(docs, names, n);
        if (plot != NULL && compare_plot(plot, docs, names, n) != 0) {
            status = 1;
        }
    }
    for (size_t k = 0; k < n; k++) {
        jsonr_free(&docs[k]);
    }
    return status;
}

#endif /* AEGIS_BENCH_COMPARE_H */
