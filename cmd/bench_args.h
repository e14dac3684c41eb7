/* SPDX-License-Identifier: MIT */
/* aegis-bench's command line: the usage text, the options, and parse_args, which fills a
 * struct bench_config and checks every value and every combination of flags before any
 * load is sent (exit status 2 on a usage error, as every Aegis program). The parsing of
 * each value is in cmd/bench_config.h and cmd/bench_workload.h.
 *
 * Header-only because every cmd/ source file becomes its own program. */
#ifndef AEGIS_BENCH_ARGS_H
#define AEGIS_BENCH_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd/bench_config.h"

#define BENCH_REPEAT_MAX 100

static inline void usage(FILE *f)
{
    fprintf(f,
        "usage: aegis-bench [options]\n"
        "A RESP2 load generator for aegisd or any Redis-protocol server.\n\n"
        "Targets (connections are spread over every target, round robin):\n"
        "  --host H            server host (repeatable; default 127.0.0.1)\n"
        "  --port P            server port (repeatable; default 6379); --host and --port\n"
        "                      lists pair up in order, or a single one applies to all\n"
        "  --target H:P        a target (repeatable; [v6addr]:port for IPv6)\n"
        "  --spawn N           start a local N-node aegisd cluster (aegisd next to this\n"
        "                      program) in a temporary directory, run against its leader,\n"
        "                      then stop it and remove the directory\n"
        "  --fsync MODE        with --spawn: durability mode, batch (default) or none\n"
        "  --spawn-all         with --spawn: spread connections over every node\n"
        "  --spawn-arg ARG     with --spawn: pass ARG to every aegisd (repeatable)\n"
        "  --spawn-keep        with --spawn: keep the directory (node logs) afterwards\n\n"
        );
    fprintf(f,
        "Load:\n"
        "  --clients N         connections (default 50)\n"
        "  --pipeline N        requests in flight per connection (default 16)\n"
        "  --threads N         worker threads, each with its own epoll loop (default 1)\n"
        "  --value-size SPEC   value bytes for SET and CAS: B (fixed, default 128),\n"
        "                      MIN-MAX (uniform) or zipf:MIN-MAX (small sizes most often)\n"
        "  --keys N            key space (default 100000)\n"
        "  --distribution D    key choice: uniform (default), zipfian[:THETA] or\n"
        "                      latest[:THETA] (reads favour recent writes); THETA 0.99\n"
        "  --ratio SPEC        command mix, 'S:G[:I[:C]]' (set:get:incr:cas weights, e.g.\n"
        "                      1:0, 1:1) or 'set=70,get=20,incr=10,cas=0' (default 1:0)\n"
        "  --workload W        YCSB-style mix instead of --ratio: A (50%% GET, 50%% SET),\n"
        "                      B (95/5), C (GET only), W (SET only); keys zipfian unless\n"
        "                      --distribution says otherwise\n"
        "  --rate OPS          open loop: send OPS requests/s in total, spread over the\n"
        "                      clients, each latency timed from its intended send time\n"
        "  --poisson           with --rate: exponential gaps (Poisson arrivals)\n"
        "  --latency-from W    with --rate: intended (default) or sent (uncorrected, for\n"
        "                      showing what coordinated omission hides)\n"
        "  --sweep LO:HI[:N]   open loop at N rates from LO to HI ops/s (default N 5), each\n"
        "                      for --duration, up to the first one over --slo-ms\n"
        "  --slo-ms MS         with --sweep: the p99 a rate must stay under\n"
        "  --repeat N          run N times; report medians and the noise (max-min)/median\n"
        "  --duration S        seconds to measure (default 10)\n"
        "  --warmup S          seconds of load before measuring (default 1)\n"
        "  --requests N        measure N requests instead of a duration\n"
        "  --seed N            seed for keys and commands (default 1)\n\n"
        );
    fprintf(f,
        "Output:\n"
        "  --json FILE         write the whole report as JSON (schema 2: version, host,\n"
        "                      settings, totals, per-second series, histogram, ...)\n"
        "  --csv FILE          the per-second series (or the sweep's curve) as CSV\n"
        "  --plot FILE.svg     a self-contained SVG: latency percentile spectrum and the\n"
        "                      per-second throughput and p99 with leader changes and\n"
        "                      snapshots marked\n"
        "  -q, --oneline       print one line per run (or sweep step) instead of the report\n"
        "  --histogram FILE    write the latency distribution (HdrHistogram percentile\n"
        "                      format, milliseconds) for plotting\n"
        "  --baseline          measure this machine's fdatasync, loopback round trip and\n"
        "                      append bandwidth before the run and judge the run against\n"
        "                      the performance targets (default with --spawn)\n"
        "  --no-baseline       do not\n"
        "  --baseline-dir DIR  where to measure fdatasync (default: the --spawn directory,\n"
        "                      else $TMPDIR or /tmp)\n"
        "  --progress          print the once-a-second line even when not on a terminal\n"
        "  --quiet             never print the once-a-second line\n"
        "  --breakdown         after the run, print where the time went on each node, stage\n"
        "                      by stage (aegisd's INFO latency; reset when measuring starts)\n"
        "  --help              this text\n"
        "  --version           print the version and exit\n\n"
        "Compare saved runs: aegis-bench compare [--plot FILE.svg] A.json B.json ...\n\n"
        "Exit status: 0 after a run, 1 on I/O errors or if no connection could be made,\n"
        "2 on bad usage, 3 if --spawn could not start the cluster.\n");
}

enum {
    OPT_HOST = 256, OPT_PORT, OPT_TARGET, OPT_CLIENTS, OPT_PIPELINE, OPT_THREADS,
    OPT_VALUE_SIZE, OPT_KEYS, OPT_RATIO, OPT_DURATION, OPT_WARMUP, OPT_REQUESTS, OPT_SEED,
    OPT_JSON, OPT_HISTOGRAM, OPT_SPAWN, OPT_FSYNC, OPT_SPAWN_ALL, OPT_SPAWN_ARG,
    OPT_SPAWN_KEEP, OPT_PROGRESS, OPT_QUIET, OPT_HELP, OPT_BREAKDOWN, OPT_BASELINE,
    OPT_NO_BASELINE, OPT_BASELINE_DIR, OPT_VERSION, OPT_RATE, OPT_POISSON, OPT_LATENCY_FROM,
    OPT_SWEEP, OPT_SLO_MS, OPT_REPEAT, OPT_WORKLOAD, OPT_DISTRIBUTION, OPT_CSV, OPT_PLOT,
    OPT_ONELINE
};

static const struct option long_options[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"target", required_argument, NULL, OPT_TARGET},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"ratio", required_argument, NULL, OPT_RATIO},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"seed", required_argument, NULL, OPT_SEED},
    {"json", required_argument, NULL, OPT_JSON},
    {"histogram", required_argument, NULL, OPT_HISTOGRAM},
    {"spawn", required_argument, NULL, OPT_SPAWN},
    {"fsync", required_argument, NULL, OPT_FSYNC},
    {"spawn-all", no_argument, NULL, OPT_SPAWN_ALL},
    {"spawn-arg", required_argument, NULL, OPT_SPAWN_ARG},
    {"spawn-keep", no_argument, NULL, OPT_SPAWN_KEEP},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
    {"breakdown", no_argument, NULL, OPT_BREAKDOWN},
    {"baseline", no_argument, NULL, OPT_BASELINE},
    {"no-baseline", no_argument, NULL, OPT_NO_BASELINE},
    {"baseline-dir", required_argument, NULL, OPT_BASELINE_DIR},
    {"version", no_argument, NULL, OPT_VERSION},
    {"rate", required_argument, NULL, OPT_RATE},
    {"poisson", no_argument, NULL, OPT_POISSON},
    {"latency-from", required_argument, NULL, OPT_LATENCY_FROM},
    {"sweep", required_argument, NULL, OPT_SWEEP},
    {"slo-ms", required_argument, NULL, OPT_SLO_MS},
    {"repeat", required_argument, NULL, OPT_REPEAT},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"distribution", required_argument, NULL, OPT_DISTRIBUTION},
    {"csv", required_argument, NULL, OPT_CSV},
    {"plot", required_argument, NULL, OPT_PLOT},
    {"oneline", no_argument, NULL, OPT_ONELINE},
    {NULL, 0, NULL, 0},
};

struct arg_lists {
    const char *hosts[BENCH_TARGETS_MAX];
    const char *ports[BENCH_TARGETS_MAX];
    unsigned hosts_count, ports_count;
    bool ratio_given, dist_given;
};

static inline void config_defaults(struct bench_config *c)
{
    memset(c, 0, sizeof(*c));
    c->clients = 50;
    c->pipeline = 16;
    c->threads = 1;
    c->value_size = 128;
    c->vsize.min = c->vsize.max = 128;
    c->theta = ZIPF_THETA_DEFAULT;
    c->repeat = 1;
    c->keys = 100000;
    c->weights[BENCH_OP_SET] = 1;
    c->duration_s = 10.0;
    c->warmup_s = 1.0;
    c->seed = 1;
    c->fsync = "batch";
    c->progress = -1;
    c->baseline = -1;
}

static inline bool set_unsigned(const char *arg, uint64_t lo, uint64_t hi, unsigned *out)
{
    uint64_t v;

    if (!bench_parse_u64(arg, lo, hi, &v)) {
        return false;
    }
    *out = (unsigned)v;
    return true;
}

/* Apply one option; false if its value is invalid. */
static inline bool apply_option(struct bench_config *c, struct arg_lists *l, int opt,
                                const char *arg)
{
    switch (opt) {
    case OPT_HOST:
        return l->hosts_count < BENCH_TARGETS_MAX && (l->hosts[l->hosts_count++] = arg);
    case OPT_PORT:
        return l->ports_count < BENCH_TARGETS_MAX && (l->ports[l->ports_count++] = arg);
    case OPT_TARGET:
        return c->targets_count < BENCH_TARGETS_MAX &&
               bench_parse_target(arg, &c->targets[c->targets_count++]);
    case OPT_CLIENTS: return set_unsigned(arg, 1, 100000, &c->clients);
    case OPT_PIPELINE: return set_unsigned(arg, 1, 65536, &c->pipeline);
    case OPT_THREADS: return set_unsigned(arg, 1, 256, &c->threads);
    case OPT_VALUE_SIZE:
        return bench_parse_vsize(arg, &c->vsize) && ((c->value_size = c->vsize.max), true);
    case OPT_KEYS: return bench_parse_u64(arg, 1, 1000000000000ull, &c->keys);
    case OPT_RATIO: return l->ratio_given = true, bench_parse_ratio(arg, c->weights);
    case OPT_DURATION: return bench_parse_seconds(arg, &c->duration_s) && c->duration_s > 0;
    case OPT_WARMUP: return bench_parse_seconds(arg, &c->warmup_s);
    case OPT_REQUESTS: return bench_parse_u64(arg, 1, UINT64_MAX / 2, &c->requests);
    case OPT_SEED: return bench_parse_u64(arg, 0, UINT64_MAX, &c->seed);
    case OPT_JSON: c->json_path = arg; return true;
    case OPT_HISTOGRAM: c->histogram_path = arg; return true;
    case OPT_SPAWN: return set_unsigned(arg, 1, BENCH_SPAWN_MAX, &c->spawn);
    case OPT_FSYNC:
        c->fsync = arg;
        return strcmp(arg, "batch") == 0 || strcmp(arg, "none") == 0;
    case OPT_SPAWN_ALL: c->spawn_all = true; return true;
    case OPT_SPAWN_KEEP: c->spawn_keep = true; return true;
    case OPT_SPAWN_ARG:
        return c->spawn_args_count < BENCH_SPAWN_ARGS_MAX &&
               (c->spawn_args[c->spawn_args_count++] = arg);
    case OPT_PROGRESS: c->progress = 1; return true;
    case OPT_QUIET: c->progress = 0; return true;
    case OPT_BREAKDOWN: c->breakdown = true; return true;
    case OPT_BASELINE: c->baseline = 1; return true;
    case OPT_NO_BASELINE: c->baseline = 0; return true;
    case OPT_BASELINE_DIR: c->baseline_dir = arg; return true;
    case OPT_RATE: {
        uint64_t v;

        return bench_parse_u64(arg, 1, 100000000, &v) && ((c->rate = (double)v), true);
    }
    case OPT_POISSON: c->poisson = true; return true;
    case OPT_LATENCY_FROM:
        c->from_sent = strcmp(arg, "sent") == 0;
        return c->from_sent || strcmp(arg, "intended") == 0;
    case OPT_SWEEP: return bench_parse_sweep(arg, &c->sweep_lo, &c->sweep_hi, &c->sweep_steps);
    case OPT_SLO_MS: return bench_parse_seconds(arg, &c->slo_ms) && c->slo_ms > 0;
    case OPT_REPEAT: return set_unsigned(arg, 1, BENCH_REPEAT_MAX, &c->repeat);
    case OPT_WORKLOAD: return bench_parse_workload(arg, &c->workload, c->weights);
    case OPT_DISTRIBUTION: return l->dist_given = true, bench_parse_dist(arg, &c->dist, &c->theta);
    case OPT_CSV: c->csv_path = arg; return true;
    case OPT_PLOT: c->plot_path = arg; return true;
    case OPT_ONELINE: c->oneline = true; c->progress = 0; return true;
    default: return false;
    }
}

/* Flags that only make sense together; false (with a message) when they do not. */
static inline bool check_combinations(struct bench_config *c, const struct arg_lists *l)
{
    const char *why = NULL;

    if (c->workload && l->ratio_given) {
        why = "--workload and --ratio both choose the command mix";
    } else if (c->sweep_steps && c->rate > 0) {
        why = "--sweep chooses the rates itself: drop --rate";
    } else if (c->sweep_steps && c->slo_ms <= 0) {
        why = "--sweep needs --slo-ms (the p99 each rate must stay under)";
    } else if (!c->sweep_steps && c->slo_ms > 0) {
        why = "--slo-ms applies to --sweep";
    } else if (c->sweep_steps && (c->repeat > 1 || c->requests)) {
        why = "--sweep runs each rate once for --duration: no --repeat or --requests";
    } else if ((c->poisson || c->from_sent) && c->rate <= 0 && !c->sweep_steps) {
        why = "--poisson and --latency-from need --rate (or --sweep)";
    }
    if (why != NULL) {
        fprintf(stderr, "aegis-bench: %s\n", why);
        return false;
    }
    if (c->workload && !l->dist_given) {
        c->dist = BENCH_DIST_ZIPFIAN; /* YCSB's default request distribution. */
    }
    return true;
}

/* Parse the command line into @c. 0 on success, 2 on a usage error, -1 for --help, -2 for
 * --version. */
static inline int parse_args(int argc, char **argv, struct bench_config *c)
{
    struct arg_lists l = {.hosts_count = 0};
    int opt;

    config_defaults(c);
    while ((opt = getopt_long(argc, argv, "q", long_options, NULL)) != -1) {
        if (opt == OPT_HELP || opt == OPT_VERSION) {
            return opt == OPT_HELP ? -1 : -2;
        }
        opt = opt == 'q' ? OPT_ONELINE : opt;
        if (opt == '?' || !apply_option(c, &l, opt, optarg)) {
            if (opt != '?') {
                fprintf(stderr, "aegis-bench: invalid value for --%s: '%s'\n",
                        long_options[opt - OPT_HOST].name, optarg ? optarg : "");
            }
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aegis-bench: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!bench_pair_hosts_ports(c, l.hosts, l.hosts_count, l.ports, l.ports_count)) {
        fprintf(stderr, "aegis-bench: %u --host and %u --port values do not pair up\n",
                l.hosts_count, l.ports_count);
        return 2;
    }
    if (c->targets_count == 0 && c->spawn == 0) {
        bench_pair_hosts_ports(c, NULL, 0, NULL, 0);
        snprintf(c->targets[0].host, sizeof(c->targets[0].host), "127.0.0.1");
        snprintf(c->targets[0].port, sizeof(c->targets[0].port), "6379");
        c->targets_count = 1;
    }
    if (c->spawn != 0 && c->targets_count != 0) {
        fprintf(stderr, "aegis-bench: --spawn chooses its own targets\n");
        return 2;
    }
    if (!check_combinations(c, &l)) {
        return 2;
    }
    if (c->threads > c->clients) {
        c->threads = c->clients;
    }
    for (opt = 0; opt < BENCH_OP_COUNT; opt++) {
        c->weights_total += c->weights[opt];
    }
    if (c->progress < 0) {
        c->progress = isatty(STDOUT_FILENO);
    }
    if (c->baseline < 0) {
        c->baseline = c->spawn != 0;
    }
    return 0;
}

#endif /* AEGIS_BENCH_ARGS_H */
