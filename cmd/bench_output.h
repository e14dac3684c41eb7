/* SPDX-License-Identifier: MIT */
/* aegis-bench's outputs, written from one run's (or sweep's) results: the text report,
 * the one-line --quiet summary, the JSON report (schema 2, documented field by field in
 * docs/benchmarking.md), --csv, --histogram (HdrHistogram's percentile text) and --plot
 * (bench_svg.h).
 *
 * Everything here reads plain data (struct report) that the load generator filled after
 * its workers stopped; nothing here touches sockets or threads, except --breakdown's
 * INFO text, which was fetched before. Header-only because every cmd/ source file becomes
 * its own program. */
#ifndef AEGIS_BENCH_OUTPUT_H
#define AEGIS_BENCH_OUTPUT_H

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "cmd/bench_baseline.h"
#include "cmd/bench_breakdown.h"
#include "cmd/bench_config.h"
#include "cmd/bench_spawn.h"
#include "cmd/bench_svg.h"
#include "engine/hist.h"
#include "pipeline/version.h"

#define KINDS_MAX     32
#define KIND_NAME_MAX 24
#define BENCH_SCHEMA_VERSION 2

/* What the report needs from one phase, summed over the workers. */
struct totals {
    struct aegis_hist *hist;
    uint64_t ops[BENCH_OP_COUNT];
    uint64_t ops_total;
    uint64_t issued;
    uint64_t errors;
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    unsigned kinds_count;
    char kind_names[KINDS_MAX][KIND_NAME_MAX];
    uint64_t kinds[KINDS_MAX];
};

static inline double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static inline void format_targets(const struct bench_config *cfg, char *buf, size_t cap)
{
    size_t len = 0;
    unsigned i;

    buf[0] = '\0';
    for (i = 0; i < cfg->targets_count && len < cap; i++) {
        const char *h = cfg->targets[i].host;
        bool v6 = strchr(h, ':') != NULL;

        len += (size_t)snprintf(buf + len, cap - len, "%s%s%s%s:%s", i ? " " : "",
                                v6 ? "[" : "", h, v6 ? "]" : "", cfg->targets[i].port);
    }
}

static inline void format_ratio(const struct bench_config *cfg, char *buf, size_t cap)
{
    snprintf(buf, cap, "set=%u,get=%u,incr=%u,cas=%u", cfg->weights[BENCH_OP_SET],
             cfg->weights[BENCH_OP_GET], cfg->weights[BENCH_OP_INCR],
             cfg->weights[BENCH_OP_CAS]);
}

/* One second of the measured phase. */
struct bench_second {
    double t_s; /* End of the second, from the start of measuring. */
    uint64_t ops, errors;
    double ops_per_s, p50_us, p99_us;
};

/* One step of --sweep. */
struct bench_sweep_point {
    double rate, sent_per_s, ops_per_s, p50_us, p99_us, p999_us, lag_ms;
    uint64_t errors;
    bool reached, within_slo;
    struct svg_curve curve; /* Its latency spectrum, for --plot. */
};

struct report {
    struct totals t;
    double duration_s;
    double ops_per_s;
    double mb_sent_per_s;
    double mb_received_per_s;
    double sent_per_s;   /* Requests issued per second while measuring. */
    double lag_ms;       /* --rate: how far the schedule was behind when measuring ended. */
    bool rate_reached;   /* --rate: the target rate was sent on time. */
    const struct bench_cluster *cluster; /* --spawn: the cluster; else NULL. */
    const struct bench_baseline *baseline; /* --baseline: this machine's; else NULL. */
    struct bench_targets targets;          /* --baseline: the run against issue 7's. */
    const struct bench_second *series;     /* Every second measured. */
    size_t series_count;
    const struct svg_event *events; /* Leader changes and snapshots seen while measuring. */
    size_t events_count;
    const struct breakdown_node *nodes; /* --breakdown: the nodes and their INFO (NULL if */
    char *const *infos;                 /* the node has no stage histograms). */
    unsigned nodes_count;
    const struct bench_sweep_point *sweep; /* --sweep: every step run; else NULL. */
    size_t sweep_count;
    const double *rep_ops, *rep_p50_us, *rep_p99_us; /* --repeat: each run's figures. */
    unsigned repeats;
    int argc; /* The command line, for the JSON. */
    char **argv;
    time_t start_time;
};

/* The --rate schedule is "reached" when, at the end of measuring, it is at most 5% of the
 * measured time behind (the rate fell short by at most 5%), or 10 ms, or two of a
 * connection's gaps, whichever is longest: a larger lag means requests queued in the
 * client waiting for a free pipeline slot, i.e. the server did not keep up. The slack
 * keeps a client that was itself descheduled for a moment at the end from failing. */
#define BENCH_LAG_OK_MS       10.0
#define BENCH_LAG_OK_FRACTION 0.05

static inline double bench_median_of(const double *v, unsigned n)
{
    double tmp[256];

    n = n > 256 ? 256 : n;
    memcpy(tmp, v, n * sizeof(*tmp));
    return bench_median(tmp, n);
}

/* (max - min) / median of @n values: the relative noise of repeated runs. */
static inline double bench_noise_of(const double *v, unsigned n)
{
    double lo = v[0], hi = v[0], med = bench_median_of(v, n);

    for (unsigned i = 1; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    return med > 0 ? (hi - lo) / med : 0.0;
}

static inline void format_workload(const struct bench_config *cfg, char *buf, size_t cap)
{
    char ratio[128], vs[64], wl[16];

    format_ratio(cfg, ratio, sizeof(ratio));
    bench_vsize_format(&cfg->vsize, vs, sizeof(vs));
    snprintf(wl, sizeof(wl), "workload %c", cfg->workload);
    snprintf(buf, cap, "%s, keys %" PRIu64 " %s, value %s B", cfg->workload ? wl : ratio,
             cfg->keys, bench_dist_names[cfg->dist], vs);
}

static inline void format_load(const struct bench_config *cfg, char *buf, size_t cap)
{
    if (cfg->rate > 0) {
        snprintf(buf, cap, "open loop %.0f ops/s%s, %u clients x pipeline %u", cfg->rate,
                 cfg->poisson ? " (Poisson)" : "", cfg->clients, cfg->pipeline);
    } else {
        snprintf(buf, cap, "closed loop, %u clients x pipeline %u", cfg->clients, cfg->pipeline);
    }
}

/* The --baseline lines: this machine's fdatasync, round trip and append bandwidth, then
 * the run against each target of issue 7 (judged only under the target's settings). */
static inline void print_baseline(const struct report *r)
{
    const struct bench_baseline *bl = r->baseline;
    const struct bench_targets *t = &r->targets;

    printf("  baseline    fdatasync %.3f ms (p99 %.3f, 128 B append), loopback RTT %.3f ms "
           "(medians of %u, %u)\n",
           bl->fsync_us / 1e3, bl->fsync_p99_us / 1e3, bl->rtt_us / 1e3, bl->fsync_samples,
           bl->rtt_samples);
    printf("              append+fdatasync 64 KiB %.1f MB/s, 1 MiB %.1f MB/s, in %s\n",
           bl->bw_small_mb_s, bl->bw_large_mb_s, bl->dir);
    printf("  target p50  %.3f ms vs 1.2 x (fdatasync + RTT) = %.3f ms (%.2fx): %s\n",
           t->p50_us.measured / 1e3, t->p50_us.limit / 1e3,
           t->p50_us.measured / t->p50_us.limit, bench_target_verdict(&t->p50_us));
    printf("  target p99  %.3f ms vs 2 ms (%.2fx): %s\n", t->p99_us.measured / 1e3,
           t->p99_us.measured / t->p99_us.limit, bench_target_verdict(&t->p99_us));
    printf("  target MB/s %.1f MB/s of values vs 70%% of %.1f = %.1f MB/s (%.2fx): %s\n",
           t->bw_mb_s.measured, bench_baseline_disk_mb_s(bl), t->bw_mb_s.limit,
           t->bw_mb_s.limit > 0 ? t->bw_mb_s.measured / t->bw_mb_s.limit : 0.0,
           bench_target_verdict(&t->bw_mb_s));
}

/* --rate's line: the target, what was sent, and whether the schedule kept up. */
static inline void print_rate(const struct bench_config *cfg, const struct report *r)
{
    printf("  rate        target %.0f ops/s%s, sent %.0f/s, completed %.0f ops/s, schedule lag "
           "at end %.1f ms: %s\n",
           cfg->rate, cfg->poisson ? " (Poisson)" : "", r->sent_per_s, r->ops_per_s, r->lag_ms,
           r->rate_reached ? "reached" : "NOT REACHED (the server did not keep up; latencies "
                                         "include the queueing)");
    printf("  latency     from the intended send time%s\n",
           cfg->from_sent ? " NOT used (--latency-from sent: coordinated omission uncorrected)"
                          : " (coordinated omission corrected)");
}

static inline void print_report(const struct bench_config *cfg, const struct report *r)
{
    const struct aegis_hist *h = r->t.hist;
    char targets[4096], ratio[128], vs[64], wl[32];
    unsigned k;

    format_targets(cfg, targets, sizeof(targets));
    format_ratio(cfg, ratio, sizeof(ratio));
    bench_vsize_format(&cfg->vsize, vs, sizeof(vs));
    printf("aegis-bench report\n");
    if (r->cluster != NULL) {
        printf("  cluster     %u aegisd nodes, fsync %s, leader %u\n", r->cluster->nodes,
               cfg->fsync, r->cluster->leader);
    }
    printf("  targets     %s\n", targets);
    printf("  clients     %u x pipeline %u on %u thread%s\n", cfg->clients, cfg->pipeline,
           cfg->threads, cfg->threads == 1 ? "" : "s");
    snprintf(wl, sizeof(wl), "YCSB-style %c, ", cfg->workload);
    printf("  workload    %svalue %s B, keys %" PRIu64 " %s, ratio %s, seed %" PRIu64 "\n",
           cfg->workload ? wl : "", vs, cfg->keys, bench_dist_names[cfg->dist], ratio,
           cfg->seed);
    printf("  duration    %.2f s measured after %.1f s warmup\n", r->duration_s, cfg->warmup_s);
    printf("  requests    %" PRIu64 " issued, %" PRIu64 " ok, %" PRIu64 " errors\n",
           r->t.issued, r->t.ops_total, r->t.errors);
    printf("  throughput  %.0f ops/s, %.2f MB/s sent, %.2f MB/s received\n", r->ops_per_s,
           r->mb_sent_per_s, r->mb_received_per_s);
    if (cfg->rate > 0) {
        print_rate(cfg, r);
    }
    printf("  latency ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (mean %.3f)\n",
           ms(aegis__hist_percentile(h, 50.0)), ms(aegis__hist_percentile(h, 90.0)),
           ms(aegis__hist_percentile(h, 99.0)), ms(aegis__hist_percentile(h, 99.9)),
           ms(aegis__hist_max(h)), aegis__hist_mean(h) / 1e6);
    printf("  errors     ");
    if (r->t.errors == 0) {
        printf(" none");
    }
    for (k = 0; k < r->t.kinds_count; k++) {
        printf(" %s %" PRIu64 "%s", r->t.kind_names[k], r->t.kinds[k],
               k + 1 < r->t.kinds_count ? "," : "");
    }
    printf("\n");
    for (k = 0; k < r->events_count; k++) {
        printf("  event       %.1f s: %s\n", r->events[k].t_s, r->events[k].label);
    }
    if (r->repeats > 1) {
        printf("  repeated    %u runs: median %.0f ops/s (noise %.1f%%), p50 %.3f ms (%.1f%%), "
               "p99 %.3f ms (%.1f%%); the lines above are the last run\n",
               r->repeats, bench_median_of(r->rep_ops, r->repeats),
               100 * bench_noise_of(r->rep_ops, r->repeats),
               bench_median_of(r->rep_p50_us, r->repeats) / 1e3,
               100 * bench_noise_of(r->rep_p50_us, r->repeats),
               bench_median_of(r->rep_p99_us, r->repeats) / 1e3,
               100 * bench_noise_of(r->rep_p99_us, r->repeats));
    }
    if (r->baseline != NULL) {
        print_baseline(r);
    }
}

/* The highest rate of a sweep that was reached with p99 within the SLO; 0 if none. */
static inline double sweep_best(const struct report *r)
{
    double best = 0;

    for (size_t i = 0; i < r->sweep_count; i++) {
        const struct bench_sweep_point *p = &r->sweep[i];

        if (p->reached && p->within_slo && p->rate > best) {
            best = p->rate;
        }
    }
    return best;
}

static inline void print_sweep_answer(const struct bench_config *cfg, const struct report *r)
{
    double best = sweep_best(r);

    if (best > 0) {
        printf("  highest rate with p99 under %.3f ms: %.0f ops/s\n", cfg->slo_ms, best);
    } else {
        printf("  no rate tried kept p99 under %.3f ms\n", cfg->slo_ms);
    }
}

/* --sweep's table: one row per rate tried, then the answer. */
static inline void print_sweep(const struct bench_config *cfg, const struct report *r)
{
    printf("sweep (p99 SLO %.3f ms; %.1f s per step after %.1f s warmup)\n", cfg->slo_ms,
           cfg->duration_s, cfg->warmup_s);
    printf("  %10s %10s %10s %9s %9s %9s %7s  %s\n", "target/s", "sent/s", "ops/s", "p50 ms",
           "p99 ms", "p99.9 ms", "errors", "verdict");
    for (size_t i = 0; i < r->sweep_count; i++) {
        const struct bench_sweep_point *p = &r->sweep[i];

        printf("  %10.0f %10.0f %10.0f %9.3f %9.3f %9.3f %7" PRIu64 "  %s\n", p->rate,
               p->sent_per_s, p->ops_per_s, p->p50_us / 1e3, p->p99_us / 1e3, p->p999_us / 1e3,
               p->errors,
               !p->reached ? "rate not reached" : p->within_slo ? "within SLO" : "p99 over SLO");
    }
    print_sweep_answer(cfg, r);
}

/* --quiet: one line, as redis-benchmark -q prints. */
static inline void print_oneline(const struct bench_config *cfg, const struct report *r,
                                 const char *prefix)
{
    const struct aegis_hist *h = r->t.hist;

    printf("%s%.0f ops/s, p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, errors %" PRIu64 "%s\n",
           prefix, r->ops_per_s, ms(aegis__hist_percentile(h, 50.0)),
           ms(aegis__hist_percentile(h, 99.0)), ms(aegis__hist_percentile(h, 99.9)),
           r->t.errors, cfg->rate > 0 && !r->rate_reached ? " (target rate NOT reached)" : "");
}

/* Write @s as a JSON string. Names and hosts are printable ASCII, but escape anyway. */
static inline void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            fprintf(f, "\\%c", ch);
        } else if (ch < 0x20) {
            fprintf(f, "\\u%04x", ch);
        } else {
            fputc(ch, f);
        }
    }
    fputc('"', f);
}

static inline void json_settings(FILE *f, const struct bench_config *cfg)
{
    char vs[64], load[128], wl[256];
    unsigned i;

    fprintf(f, "  \"settings\": {\n    \"targets\": [");
    for (i = 0; i < cfg->targets_count; i++) {
        char t[BENCH_HOST_MAX + 16];

        snprintf(t, sizeof(t), "%s:%s", cfg->targets[i].host, cfg->targets[i].port);
        fprintf(f, "%s", i ? ", " : "");
        json_string(f, t);
    }
    format_load(cfg, load, sizeof(load));
    format_workload(cfg, wl, sizeof(wl));
    fprintf(f, "],\n    \"summary\": ");
    fprintf(f, "\"%s; %s\",\n", load, wl);
    fprintf(f, "    \"clients\": %u,\n    \"pipeline\": %u,\n    \"threads\": %u,\n",
            cfg->clients, cfg->pipeline, cfg->threads);
    bench_vsize_format(&cfg->vsize, vs, sizeof(vs));
    fprintf(f, "    \"value_size\": %" PRIu64 ",\n    \"value_size_dist\": \"%s\",\n",
            cfg->value_size, vs);
    fprintf(f, "    \"keys\": %" PRIu64 ",\n    \"key_distribution\": \"%s\",\n", cfg->keys,
            bench_dist_names[cfg->dist]);
    fprintf(f, "    \"zipf_theta\": %.3f,\n    \"workload\": ", cfg->theta);
    if (cfg->workload) {
        fprintf(f, "\"%c\",\n", cfg->workload);
    } else {
        fprintf(f, "null,\n");
    }
    fprintf(f, "    \"ratio\": {\"set\": %u, \"get\": %u, \"incr\": %u, \"cas\": %u},\n",
            cfg->weights[BENCH_OP_SET], cfg->weights[BENCH_OP_GET],
            cfg->weights[BENCH_OP_INCR], cfg->weights[BENCH_OP_CAS]);
    fprintf(f, "    \"warmup_s\": %.3f,\n    \"duration_s\": %.3f,\n", cfg->warmup_s,
            cfg->duration_s);
    fprintf(f, "    \"requests\": %" PRIu64 ",\n    \"seed\": %" PRIu64 ",\n", cfg->requests,
            cfg->seed);
    fprintf(f, "    \"rate\": %.3f,\n    \"poisson\": %s,\n    \"latency_from\": \"%s\",\n",
            cfg->rate, cfg->poisson ? "true" : "false",
            cfg->rate > 0 && !cfg->from_sent ? "intended" : "sent");
    if (cfg->sweep_steps) {
        fprintf(f, "    \"sweep\": {\"from\": %.0f, \"to\": %.0f, \"steps\": %u},\n",
                cfg->sweep_lo, cfg->sweep_hi, cfg->sweep_steps);
    } else {
        fprintf(f, "    \"sweep\": null,\n");
    }
    fprintf(f, "    \"slo_ms\": %.3f,\n    \"repeat\": %u,\n", cfg->slo_ms, cfg->repeat);
    fprintf(f, "    \"breakdown\": %s,\n    \"baseline\": %s,\n",
            cfg->breakdown ? "true" : "false", cfg->baseline ? "true" : "false");
    fprintf(f, "    \"spawn\": %u,\n    \"fsync\": ", cfg->spawn);
    if (cfg->spawn) {
        json_string(f, cfg->fsync);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, "\n  },\n");
}

/* The histogram's non-empty buckets as [highest value in us, count] pairs. */
static inline void json_buckets(FILE *f, const struct aegis_hist *h)
{
    struct aegis_hist_iter it;
    struct aegis_hist_bucket bk;
    bool first = true;

    aegis__hist_iter_init(&it);
    fprintf(f, "[");
    while (aegis__hist_iter_next(h, &it, &bk)) {
        fprintf(f, "%s[%.3f, %" PRIu64 "]", first ? "" : ", ", (double)bk.hi / 1e3, bk.count);
        first = false;
    }
    fprintf(f, "]");
}

static inline void json_results(FILE *f, const struct bench_config *cfg, const struct report *r)
{
    const struct aegis_hist *h = r->t.hist;
    unsigned k;

    fprintf(f, "  \"results\": {\n    \"duration_s\": %.6f,\n", r->duration_s);
    fprintf(f, "    \"ops\": %" PRIu64 ",\n    \"issued\": %" PRIu64 ",\n", r->t.ops_total,
            r->t.issued);
    fprintf(f, "    \"errors\": %" PRIu64 ",\n", r->t.errors);
    fprintf(f, "    \"ops_per_sec\": %.1f,\n    \"mb_per_sec_sent\": %.3f,\n", r->ops_per_s,
            r->mb_sent_per_s);
    fprintf(f, "    \"mb_per_sec_received\": %.3f,\n", r->mb_received_per_s);
    if (cfg->rate > 0) {
        fprintf(f, "    \"rate\": {\"target\": %.1f, \"sent_per_sec\": %.1f, \"lag_ms\": %.3f, "
                   "\"reached\": %s},\n",
                cfg->rate, r->sent_per_s, r->lag_ms, r->rate_reached ? "true" : "false");
    } else {
        fprintf(f, "    \"rate\": null,\n");
    }
    fprintf(f, "    \"ops_by_command\": {");
    for (k = 0; k < BENCH_OP_COUNT; k++) {
        fprintf(f, "%s\"%s\": %" PRIu64, k ? ", " : "", bench_op_names[k], r->t.ops[k]);
    }
    fprintf(f, "},\n    \"errors_by_kind\": {");
    for (k = 0; k < r->t.kinds_count; k++) {
        fprintf(f, "%s", k ? ", " : "");
        json_string(f, r->t.kind_names[k]);
        fprintf(f, ": %" PRIu64, r->t.kinds[k]);
    }
    fprintf(f, "},\n    \"latency_us\": {\"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, ",
            (double)aegis__hist_min(h) / 1e3, (double)aegis__hist_percentile(h, 50.0) / 1e3,
            (double)aegis__hist_percentile(h, 90.0) / 1e3);
    fprintf(f, "\"p99\": %.3f, \"p99_9\": %.3f, \"p99_99\": %.3f, \"max\": %.3f, ",
            (double)aegis__hist_percentile(h, 99.0) / 1e3,
            (double)aegis__hist_percentile(h, 99.9) / 1e3,
            (double)aegis__hist_percentile(h, 99.99) / 1e3, (double)aegis__hist_max(h) / 1e3);
    fprintf(f, "\"mean\": %.3f, \"stddev\": %.3f},\n", aegis__hist_mean(h) / 1e3,
            aegis__hist_stddev(h) / 1e3);
    fprintf(f, "    \"histogram\": {\"sub_bucket_bits\": %u, \"relative_error\": %.6f, "
               "\"count\": %" PRIu64 ", \"buckets\": ",
            AEGIS_HIST_SUB_BITS, AEGIS_HIST_REL_ERROR, h->count);
    json_buckets(f, h);
    fprintf(f, "}\n  },\n");
}

static inline void json_series(FILE *f, const struct report *r)
{
    fprintf(f, "  \"series\": [");
    for (size_t i = 0; i < r->series_count; i++) {
        const struct bench_second *s = &r->series[i];

        fprintf(f, "%s\n    {\"t_s\": %.3f, \"ops\": %" PRIu64 ", \"ops_per_sec\": %.1f, "
                   "\"errors\": %" PRIu64 ", \"p50_us\": %.3f, \"p99_us\": %.3f}",
                i ? "," : "", s->t_s, s->ops, s->ops_per_s, s->errors, s->p50_us, s->p99_us);
    }
    fprintf(f, "%s],\n  \"events\": [", r->series_count ? "\n  " : "");
    for (size_t i = 0; i < r->events_count; i++) {
        fprintf(f, "%s{\"t_s\": %.3f, \"label\": ", i ? ", " : "", r->events[i].t_s);
        json_string(f, r->events[i].label);
        fprintf(f, "}");
    }
    fprintf(f, "],\n");
}

static inline void json_sweep(FILE *f, const struct bench_config *cfg, const struct report *r)
{
    fprintf(f, "  \"sweep\": {\"slo_ms\": %.3f, \"points\": [", cfg->slo_ms);
    for (size_t i = 0; i < r->sweep_count; i++) {
        const struct bench_sweep_point *p = &r->sweep[i];

        fprintf(f, "%s\n    {\"rate\": %.1f, \"sent_per_sec\": %.1f, \"ops_per_sec\": %.1f, "
                   "\"p50_us\": %.3f, \"p99_us\": %.3f, \"p99_9_us\": %.3f, \"errors\": %" PRIu64
                   ", \"lag_ms\": %.3f, \"reached\": %s, \"within_slo\": %s}",
                i ? "," : "", p->rate, p->sent_per_s, p->ops_per_s, p->p50_us, p->p99_us,
                p->p999_us, p->errors, p->lag_ms, p->reached ? "true" : "false",
                p->within_slo ? "true" : "false");
    }
    fprintf(f, "\n  ], \"max_rate_within_slo\": %.1f},\n", sweep_best(r));
}

static inline void json_repeat(FILE *f, const struct report *r)
{
    const double *v[3] = {r->rep_ops, r->rep_p50_us, r->rep_p99_us};
    static const char *const names[3] = {"ops_per_sec", "p50_us", "p99_us"};

    fprintf(f, "  \"repeat\": {\"runs\": %u", r->repeats);
    for (int k = 0; k < 3; k++) {
        fprintf(f, ", \"%s\": [", names[k]);
        for (unsigned i = 0; i < r->repeats; i++) {
            fprintf(f, "%s%.3f", i ? ", " : "", v[k][i]);
        }
        fprintf(f, "]");
    }
    fprintf(f, ",\n    \"median\": {");
    for (int k = 0; k < 3; k++) {
        fprintf(f, "%s\"%s\": %.3f", k ? ", " : "", names[k], bench_median_of(v[k], r->repeats));
    }
    fprintf(f, "},\n    \"noise\": {");
    for (int k = 0; k < 3; k++) {
        fprintf(f, "%s\"%s\": %.4f", k ? ", " : "", names[k], bench_noise_of(v[k], r->repeats));
    }
    fprintf(f, "}},\n");
}

/* Where and when: tool, version, commit, start time, host, cores, kernel, command line. */
static inline void json_context(FILE *f, const struct report *r)
{
    struct utsname u;
    struct tm tm;
    char when[64], host[256] = "unknown";

    gmtime_r(&r->start_time, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (uname(&u) != 0) {
        memset(&u, 0, sizeof(u));
    }
    gethostname(host, sizeof(host) - 1);
    fprintf(f, "{\n  \"tool\": \"aegis-bench\",\n  \"schema_version\": %d,\n",
            BENCH_SCHEMA_VERSION);
    fprintf(f, "  \"tool_version\": ");
    json_string(f, aegis_version());
    fprintf(f, ",\n  \"git_commit\": ");
    json_string(f, aegis__version_commit());
    fprintf(f, ",\n  \"start_time\": \"%s\",\n  \"start_unix\": %lld,\n", when,
            (long long)r->start_time);
    fprintf(f, "  \"host\": {\"name\": ");
    json_string(f, host);
    fprintf(f, ", \"cores\": %ld, \"kernel\": ", sysconf(_SC_NPROCESSORS_ONLN));
    json_string(f, u.release);
    fprintf(f, ", \"os\": ");
    json_string(f, u.sysname);
    fprintf(f, ", \"machine\": ");
    json_string(f, u.machine);
    fprintf(f, "},\n  \"command_line\": [");
    for (int i = 0; i < r->argc; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_string(f, r->argv[i]);
    }
    fprintf(f, "],\n");
}

static inline void json_target(FILE *f, const char *name, const struct bench_target_check *c,
                               bool last)
{
    fprintf(f, "      \"%s\": {\"limit\": %.3f, \"measured\": %.3f, \"applies\": %s, "
            "\"met\": %s}%s\n",
            name, c->limit, c->measured, c->applies ? "true" : "false",
            c->met ? "true" : "false", last ? "" : ",");
}

/* --baseline: "baseline" (this machine) and "targets" (the run against issue 7's). */
static inline void json_baseline(FILE *f, const struct report *r)
{
    const struct bench_baseline *bl = r->baseline;

    fprintf(f, "  \"baseline\": {\n    \"dir\": ");
    json_string(f, bl->dir);
    fprintf(f, ",\n    \"fdatasync_us\": %.3f,\n    \"fdatasync_p99_us\": %.3f,\n",
            bl->fsync_us, bl->fsync_p99_us);
    fprintf(f, "    \"fdatasync_samples\": %u,\n", bl->fsync_samples);
    fprintf(f, "    \"loopback_rtt_us\": %.3f,\n    \"loopback_rtt_samples\": %u,\n",
            bl->rtt_us, bl->rtt_samples);
    fprintf(f, "    \"append_64k_mb_per_sec\": %.3f,\n    \"append_1m_mb_per_sec\": %.3f,\n",
            bl->bw_small_mb_s, bl->bw_large_mb_s);
    fprintf(f, "    \"disk_mb_per_sec\": %.3f,\n    \"targets\": {\n",
            bench_baseline_disk_mb_s(bl));
    json_target(f, "p50_us_vs_1.2x_fdatasync_plus_rtt", &r->targets.p50_us, false);
    json_target(f, "p99_us_vs_2ms", &r->targets.p99_us, false);
    json_target(f, "value_mb_per_sec_vs_70pct_disk", &r->targets.bw_mb_s, true);
    fprintf(f, "    }\n  },\n");
}

static inline int write_json(const struct bench_config *cfg, const struct report *r,
                             const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    json_context(f, r);
    json_settings(f, cfg);
    if (r->cluster != NULL) {
        fprintf(f, "  \"cluster\": {\"nodes\": %u, \"leader\": %u},\n", r->cluster->nodes,
                r->cluster->leader);
    } else {
        fprintf(f, "  \"cluster\": null,\n");
    }
    if (r->baseline != NULL) {
        json_baseline(f, r);
    } else {
        fprintf(f, "  \"baseline\": null,\n");
    }
    json_results(f, cfg, r);
    json_series(f, r);
    if (r->sweep != NULL) {
        json_sweep(f, cfg, r);
    } else {
        fprintf(f, "  \"sweep\": null,\n");
    }
    if (r->repeats > 1) {
        json_repeat(f, r);
    } else {
        fprintf(f, "  \"repeat\": null,\n");
    }
    fprintf(f, "  \"breakdown\": ");
    if (r->nodes != NULL) {
        breakdown_json(f, r->nodes, r->infos, r->nodes_count);
    } else {
        fprintf(f, "null");
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* --csv: the sweep's curve (one row per rate) or, without a sweep, the per-second series. */
static inline int write_csv(const struct report *r, const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (r->sweep != NULL) {
        fprintf(f, "rate,sent_per_sec,ops_per_sec,p50_ms,p99_ms,p99_9_ms,errors,reached,"
                   "within_slo\n");
        for (size_t i = 0; i < r->sweep_count; i++) {
            const struct bench_sweep_point *p = &r->sweep[i];

            fprintf(f, "%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%" PRIu64 ",%d,%d\n", p->rate,
                    p->sent_per_s, p->ops_per_s, p->p50_us / 1e3, p->p99_us / 1e3,
                    p->p999_us / 1e3, p->errors, p->reached, p->within_slo);
        }
    } else {
        fprintf(f, "t_s,ops,ops_per_sec,errors,p50_ms,p99_ms\n");
        for (size_t i = 0; i < r->series_count; i++) {
            const struct bench_second *s = &r->series[i];

            fprintf(f, "%.3f,%" PRIu64 ",%.1f,%" PRIu64 ",%.3f,%.3f\n", s->t_s, s->ops,
                    s->ops_per_s, s->errors, s->p50_us / 1e3, s->p99_us / 1e3);
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The spectrum of a histogram (its buckets in ms) for bench_svg.h. */
static inline void hist_curve(const struct aegis_hist *h, const char *name, struct svg_curve *c)
{
    static double hi[AEGIS_HIST_BUCKETS];
    static uint64_t count[AEGIS_HIST_BUCKETS];
    struct aegis_hist_iter it;
    struct aegis_hist_bucket bk;
    size_t n = 0;

    aegis__hist_iter_init(&it);
    while (n < AEGIS_HIST_BUCKETS && aegis__hist_iter_next(h, &it, &bk)) {
        hi[n] = ms(bk.hi);
        count[n++] = bk.count;
    }
    c->name = name;
    svg_curve_from_buckets(c, hi, count, n, ms(aegis__hist_max(h)));
}

/* --plot: the spectrum (every sweep step's, or the run's) and the run over time. */
static inline int write_plot(const struct bench_config *cfg, const struct report *r,
                             const char *path)
{
    static struct svg_curve one;
    static char names[100][48];
    static struct svg_curve curves[100];
    double *t = calloc(r->series_count + 1, sizeof(double));
    double *ops = calloc(r->series_count + 1, sizeof(double));
    double *p99 = calloc(r->series_count + 1, sizeof(double));
    struct svg_timeline tl = {.t_s = t, .ops = ops, .p99_ms = p99, .n = r->series_count,
                              .events = r->events, .events_count = r->events_count};
    char title[256], load[128];
    FILE *f = fopen(path, "w");
    size_t n = 0;

    if (f == NULL || t == NULL || ops == NULL || p99 == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, f == NULL ? strerror(errno) : "no memory");
        free(t), free(ops), free(p99);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    for (size_t i = 0; i < r->series_count; i++) {
        t[i] = r->series[i].t_s;
        ops[i] = r->series[i].ops_per_s;
        p99[i] = r->series[i].p99_us / 1e3;
    }
    for (size_t i = 0; r->sweep != NULL && i < r->sweep_count && i < 100; i++) {
        curves[n] = r->sweep[i].curve;
        snprintf(names[n], sizeof(names[n]), "%.0f ops/s", r->sweep[i].rate);
        curves[n].name = names[n];
        n++;
    }
    if (n == 0) {
        hist_curve(r->t.hist, "this run", &one);
    }
    format_load(cfg, load, sizeof(load));
    snprintf(title, sizeof(title), "aegis-bench %s (%s): %s", aegis_version(),
             aegis__version_commit(), load);
    svg_begin(f, 900, 820, title);
    svg_label(f, 450, 18, "middle", title);
    svg_spectrum(f, 70, 50, 760, 330, n ? curves : &one, n ? n : 1);
    svg_timeline(f, 70, 450, 760, 320, &tl);
    svg_end(f);
    free(t), free(ops), free(p99);
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* The value reported at a percentile line: the highest value of the bucket where the
 * cumulative count reaches the line's rank (HdrHistogram's "highest equivalent value"),
 * capped at the recorded max. */
static inline void hgrm_line(FILE *f, const struct aegis_hist *h, double level,
                             uint64_t *seen_out)
{
    uint64_t rank = (uint64_t)ceil(level / 100.0 * (double)h->count), seen = 0;
    struct aegis_hist_iter it;
    struct aegis_hist_bucket bk = {0};

    rank = rank < 1 ? 1 : (rank > h->count ? h->count : rank);
    aegis__hist_iter_init(&it);
    while (aegis__hist_iter_next(h, &it, &bk)) {
        seen = bk.cumulative;
        if (seen >= rank) {
            break;
        }
    }
    if (level < 100.0) {
        fprintf(f, "%12.3f %2.12f %10" PRIu64 " %14.2f\n",
                ms(bk.hi < h->max ? bk.hi : h->max), level / 100.0, seen,
                1.0 / (1.0 - level / 100.0));
    } else {
        fprintf(f, "%12.3f %2.12f %10" PRIu64 "\n", ms(h->max), 1.0, seen);
    }
    *seen_out = seen;
}

/* HdrHistogram's percentile-distribution text (as its outputPercentileDistribution and
 * wrk2 write it, values in milliseconds, 5 ticks per half distance), which HdrHistogram's
 * plotFiles.html and hdr-plot read. */
static inline int write_histogram(const struct aegis_hist *h, const char *path)
{
    FILE *f = fopen(path, "w");
    double level = 0.0;
    uint64_t seen = 0;
    int lines;

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    /* Bounded: the step halves every time the remaining distance to 100% halves, and the
     * walk ends once the rank reaches the last sample (or after 2000 lines). */
    for (lines = 0; h->count > 0 && lines < 2000; lines++) {
        double ticks = 5.0 * pow(2.0, floor(log2(100.0 / (100.0 - level))) + 1.0);

        hgrm_line(f, h, level, &seen);
        if (seen >= h->count) {
            break;
        }
        level += 100.0 / ticks;
    }
    if (h->count > 0) {
        hgrm_line(f, h, 100.0, &seen);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", aegis__hist_mean(h) / 1e6,
            aegis__hist_stddev(h) / 1e6);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12" PRIu64 "]\n", ms(aegis__hist_max(h)),
            h->count);
    fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n",
            AEGIS_HIST_BUCKETS / AEGIS_HIST_SUB_COUNT, AEGIS_HIST_SUB_COUNT);
    if (fclose(f) != 0) {
        fprintf(stderr, "aegis-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Can @path be written? Checked before the run so that a typo does not cost a whole run:
 * an existing file must be writable; a new one is created and removed again. */
static inline bool bench_output_ok(const char *path, const char *flag)
{
    bool existed = access(path, F_OK) == 0;
    FILE *f = fopen(path, "a");

    if (f == NULL) {
        fprintf(stderr, "aegis-bench: cannot write %s %s: %s\n", flag, path, strerror(errno));
        return false;
    }
    fclose(f);
    if (!existed) {
        remove(path);
    }
    return true;
}

#endif /* AEGIS_BENCH_OUTPUT_H */
