/* SPDX-License-Identifier: MIT */
/* Tests of aegis-bench's workload generators, its JSON reader and `compare` (the
 * cmd/bench_*.h headers, included directly, and the program run on fixed files), and the
 * checks of new flags that fail before any load is sent.
 *
 * The zipfian check compares observed rank frequencies with the exact probabilities
 * (rank r has (r+1)^-theta / zeta(n)); the same check applied to uniform draws must fail,
 * which shows it can tell the difference. compare's arithmetic is checked on two JSON
 * files written here with known figures. No server is needed; every test is fast. */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/bench_args.h"
#include "cmd/bench_compare.h"
#include "cmd/bench_config.h"
#include "cmd/bench_workload.h"
#include "lib/test.h"

TEST(bench_workload, parse_distribution_workload_value_size_sweep)
{
    enum bench_dist d;
    double theta, lo, hi;
    unsigned w[BENCH_OP_COUNT], steps;
    char name = 0;
    struct bench_vsize v;

    ASSERT_TRUE(bench_parse_dist("uniform", &d, &theta));
    ASSERT_EQ_I64(d, BENCH_DIST_UNIFORM);
    ASSERT_TRUE(bench_parse_dist("zipfian", &d, &theta));
    ASSERT_EQ_I64(d, BENCH_DIST_ZIPFIAN);
    ASSERT_TRUE(theta == 0.99);
    ASSERT_TRUE(bench_parse_dist("latest:0.5", &d, &theta));
    ASSERT_EQ_I64(d, BENCH_DIST_LATEST);
    ASSERT_TRUE(theta == 0.5);
    for (const char *const *b = (const char *const[]){"", "zipf", "zipfian:", "zipfian:1.5",
                                                      "zipfian:x", "uniform:0.5", "zipfian:0",
                                                      "latest:-1", NULL};
         *b != NULL; b++) {
        ASSERT_FALSE(bench_parse_dist(*b, &d, &theta));
    }
    ASSERT_TRUE(bench_parse_workload("a", &name, w));
    ASSERT_EQ_I64(name, 'A');
    ASSERT_EQ_U64(w[BENCH_OP_SET], 50);
    ASSERT_EQ_U64(w[BENCH_OP_GET], 50);
    ASSERT_TRUE(bench_parse_workload("B", &name, w));
    ASSERT_EQ_U64(w[BENCH_OP_SET], 5);
    ASSERT_EQ_U64(w[BENCH_OP_GET], 95);
    ASSERT_TRUE(bench_parse_workload("c", &name, w));
    ASSERT_EQ_U64(w[BENCH_OP_SET], 0);
    ASSERT_TRUE(bench_parse_workload("write-only", &name, w));
    ASSERT_EQ_I64(name, 'W');
    ASSERT_EQ_U64(w[BENCH_OP_GET], 0);
    ASSERT_FALSE(bench_parse_workload("d", &name, w));
    ASSERT_FALSE(bench_parse_workload("", &name, w));
    ASSERT_TRUE(bench_parse_vsize("128", &v));
    ASSERT_TRUE(v.kind == BENCH_VSIZE_FIXED && v.min == 128 && v.max == 128);
    ASSERT_TRUE(bench_parse_vsize("10-20", &v));
    ASSERT_TRUE(v.kind == BENCH_VSIZE_UNIFORM && v.min == 10 && v.max == 20);
    ASSERT_TRUE(bench_parse_vsize("zipf:1-4096", &v));
    ASSERT_TRUE(v.kind == BENCH_VSIZE_ZIPF && v.max == 4096);
    for (const char *const *b = (const char *const[]){"", "-", "20-10", "5-5", "zipf:5",
                                                      "1-", "-3", "67108865", "1-67108865",
                                                      " 1", "zipf:", NULL};
         *b != NULL; b++) {
        ASSERT_FALSE(bench_parse_vsize(*b, &v));
    }
    ASSERT_TRUE(bench_parse_sweep("100:1000", &lo, &hi, &steps));
    ASSERT_TRUE(lo == 100 && hi == 1000 && steps == 5);
    ASSERT_TRUE(bench_parse_sweep("1:2:100", &lo, &hi, &steps));
    ASSERT_EQ_U64(steps, 100);
    for (const char *const *b = (const char *const[]){"", "100", "100:100", "200:100", "0:5",
                                                      "1:5:1", "1:5:101", "1:5:", ":5", NULL};
         *b != NULL; b++) {
        ASSERT_FALSE(bench_parse_sweep(*b, &lo, &hi, &steps));
    }
    return TEST_PASS;
}

/* Do @draws draws over @n ranks (counts in @count) follow zipf(theta)? Ranks 0 and 1
 * (which the generator draws exactly) within 5% of their probability, ranks 2..9 within
 * 20% (Gray's method approximates them: rank 2 comes out about 17% high), the ten
 * together within 5%, and rank 0 the most frequent. */
static bool looks_zipfian(const uint64_t *count, uint64_t n, uint64_t draws, double theta)
{
    double zeta = bench_zeta(n, theta), top = 0, top_expect = 0;

    for (uint64_t r = 0; r < 10 && r < n; r++) {
        double expect = pow((double)(r + 1), -theta) / zeta * (double)draws;

        if (fabs((double)count[r] - expect) > (r < 2 ? 0.05 : 0.20) * expect) {
            return false;
        }
        top += (double)count[r];
        top_expect += expect;
    }
    if (fabs(top - top_expect) > 0.05 * top_expect) {
        return false;
    }
    for (uint64_t r = 1; r < n; r++) {
        if (count[r] > count[0]) {
            return false;
        }
    }
    return true;
}

TEST(bench_workload, zipfian_ranks_follow_the_distribution_and_uniform_does_not)
{
    enum { N = 1000, DRAWS = 200000 };
    static uint64_t zc[N], uc[N];
    struct bench_zipf z;
    struct aegis_rng rng;
    uint64_t top10 = 0;

    aegis__rng_seed(&rng, test_seed());
    bench_zipf_init(&z, N, 0.99);
    for (int i = 0; i < DRAWS; i++) {
        uint64_t r = bench_zipf_next(&z, &rng);

        ASSERT_TRUE(r < N);
        zc[r]++;
        uc[aegis__rng_range(&rng, 0, N - 1)]++;
    }
    for (int r = 0; r < 10; r++) {
        top10 += zc[r];
    }
    ASSERT_TRUE(looks_zipfian(zc, N, DRAWS, 0.99));
    ASSERT_TRUE(top10 > DRAWS / 3); /* 1% of the keys take over a third of the draws. */
    ASSERT_FALSE(looks_zipfian(uc, N, DRAWS, 0.99)); /* The checker tells them apart. */
    /* A huge key space costs the same set-up (zeta extended by its integral). */
    bench_zipf_init(&z, 1000000000000ull, 0.99);
    ASSERT_TRUE(z.zetan > bench_zeta(1000000, 0.99));
    ASSERT_TRUE(bench_zipf_next(&z, &rng) < 1000000000000ull);
    return TEST_PASS;
}

TEST(bench_workload, latest_reads_stay_near_recent_writes)
{
    struct bench_zipf z;
    struct aegis_rng rng;
    struct bench_keys k = {.dist = BENCH_DIST_LATEST, .keys = 100000, .zipf = &z, .latest = 500};
    int near = 0;

    aegis__rng_seed(&rng, test_seed());
    bench_zipf_init(&z, k.keys, 0.99);
    ASSERT_EQ_U64(bench_key_next(&k, &rng, true), 501);
    ASSERT_EQ_U64(bench_key_next(&k, &rng, true), 502);
    for (int i = 0; i < 10000; i++) {
        uint64_t key = bench_key_next(&k, &rng, false);

        ASSERT_TRUE(key < k.keys);
        near += key <= 502 && key + 1000 >= 502;
    }
    /* Most reads (zeta(1000) / zeta(100000) = 61%) are at most 1000 keys behind the latest
     * write; uniform reads would be 1%. */
    ASSERT_TRUE(near > 5000);
    return TEST_PASS;
}

TEST(bench_jsonr, flattens_and_rejects_hostile_input)
{
    static const char good[] = "{\"a\": {\"b\": [1, 2.5, {\"c\": \"x\\\"y\\u0041\"}]}, "
                               "\"t\": true, \"n\": null, \"e\": -1e3}";
    static const char *const bad[] = {"", "{", "{\"a\" 1}", "[1,]", "{\"a\":1}}", "\"\\q\"",
                                      "tru", "{\"a\":1,}", "[1 2]", "\"\\u12\"", "-", "\"a\nb\""};
    struct jsonr_doc d;
    char err[128], deep[200];

    ASSERT_EQ_I64(jsonr_parse(good, strlen(good), &d, err, sizeof(err)), 0);
    ASSERT_TRUE(jsonr_num(&d, "a.b[0]", 0) == 1);
    ASSERT_TRUE(jsonr_num(&d, "a.b[1]", 0) == 2.5);
    ASSERT_STR_EQ(jsonr_str(&d, "a.b[2].c", ""), "x\"yA");
    ASSERT_TRUE(jsonr_num(&d, "t", 0) == 1);
    ASSERT_TRUE(jsonr_get(&d, "n")->kind == JSONR_NULL);
    ASSERT_TRUE(jsonr_num(&d, "e", 0) == -1000);
    ASSERT_TRUE(jsonr_num(&d, "missing", 7) == 7);
    jsonr_free(&d);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ_I64(jsonr_parse(bad[i], strlen(bad[i]), &d, err, sizeof(err)), -1);
    }
    memset(deep, '[', sizeof(deep));
    ASSERT_EQ_I64(jsonr_parse(deep, sizeof(deep), &d, err, sizeof(err)), -1);
    ASSERT_TRUE(strstr(err, "deep") != NULL);
    return TEST_PASS;
}

TEST(bench_compare, verdict_needs_the_noise_to_be_cleared)
{
    ASSERT_STR_EQ(compare_verdict(1.20, +1, 0.05, 0.02), "faster");
    ASSERT_STR_EQ(compare_verdict(1.04, +1, 0.05, 0.02), "same");
    ASSERT_STR_EQ(compare_verdict(0.80, +1, 0.05, NAN), "slower");
    ASSERT_STR_EQ(compare_verdict(0.80, -1, 0.05, NAN), "faster"); /* Latency went down. */
    ASSERT_STR_EQ(compare_verdict(0.80, -1, 0.30, 0.01), "same");
    ASSERT_STR_EQ(compare_verdict(2.00, +1, NAN, NAN), "?");
    return TEST_PASS;
}

/* parse_args on @argv (NULL-terminated, without the program name). */
static int parse(struct bench_config *c, const char *const *args)
{
    char *argv[32] = {"aegis-bench"};
    int argc = 1;

    for (; *args != NULL && argc < 31; args++) {
        argv[argc++] = (char *)*args;
    }
    optind = 0; /* glibc: start a fresh scan. */
    opterr = 0;
    return parse_args(argc, argv, c);
}

TEST(bench_flags, parse_args_resolves_the_new_settings)
{
    static struct bench_config c;

    ASSERT_EQ_I64(parse(&c, (const char *const[]){"--workload", "b", "--value-size", "10-20",
                                                  "--rate", "5000", "--poisson", NULL}),
                  0);
    ASSERT_EQ_I64(c.workload, 'B');
    ASSERT_EQ_I64(c.dist, BENCH_DIST_ZIPFIAN); /* YCSB's default with --workload. */
    ASSERT_EQ_U64(c.weights[BENCH_OP_GET], 95);
    ASSERT_EQ_U64(c.weights_total, 100);
    ASSERT_EQ_U64(c.value_size, 20); /* Buffers are sized for the largest value. */
    ASSERT_TRUE(c.vsize.kind == BENCH_VSIZE_UNIFORM && c.vsize.min == 10);
    ASSERT_TRUE(c.rate == 5000 && c.poisson && !c.from_sent);
    ASSERT_EQ_I64(parse(&c, (const char *const[]){"--workload", "a", "--distribution",
                                                  "uniform", NULL}),
                  0);
    ASSERT_EQ_I64(c.dist, BENCH_DIST_UNIFORM); /* An explicit choice wins. */
    ASSERT_EQ_I64(parse(&c, (const char *const[]){"--sweep", "100:900", "--slo-ms", "2.5",
                                                  "-q", NULL}),
                  0);
    ASSERT_TRUE(c.sweep_lo == 100 && c.sweep_hi == 900 && c.sweep_steps == 5);
    ASSERT_TRUE(c.slo_ms == 2.5 && c.oneline && c.progress == 0 && c.rate == 0);
    ASSERT_EQ_I64(parse(&c, (const char *const[]){"--repeat", "3", "--latency-from", "sent",
                                                  NULL}),
                  2); /* --latency-from needs --rate. */
    ASSERT_EQ_I64(parse(&c, (const char *const[]){NULL}), 0);
    ASSERT_TRUE(c.rate == 0 && c.repeat == 1 && c.dist == BENCH_DIST_UNIFORM);
    ASSERT_TRUE(c.vsize.kind == BENCH_VSIZE_FIXED && c.value_size == 128);
    return TEST_PASS;
}

static bool bench_path(char *out, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n <= 0) {
        return false;
    }
    self[n] = '\0';
    snprintf(out, cap, "%s/../aegis-bench", dirname(self));
    return access(out, X_OK) == 0;
}

/* Run aegis-bench with @argv (argv[0] filled in), stdout and stderr to @out; exit status. */
static int run_bench(char **argv, const char *out)
{
    static char bench[PATH_MAX];
    int status;
    pid_t pid;

    if (!bench_path(bench, sizeof(bench))) {
        return -1;
    }
    argv[0] = bench;
    pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    alarm(60);
    waitpid(pid, &status, 0);
    alarm(0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        return false;
    }
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return true;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    fputs(text, f);
    fclose(f);
}

/* Two saved runs with known figures: B has twice A's throughput and half its latencies;
 * both were repeated with 5% and 10% noise on ops/s and 50% on p50. */
static const char json_a[] =
    "{\"tool\": \"aegis-bench\", \"schema_version\": 2, \"tool_version\": \"0.2.0\",\n"
    " \"git_commit\": \"aaaaaaa\", \"start_time\": \"2026-01-01T00:00:00Z\",\n"
    " \"host\": {\"name\": \"a\"}, \"settings\": {\"summary\": \"closed loop\"},\n"
    " \"results\": {\"ops_per_sec\": 1000.0, \"errors\": 0, \"latency_us\": {\"p50\": 100.0,\n"
    "  \"p90\": 200.0, \"p99\": 400.0, \"p99_9\": 800.0, \"max\": 1000.0},\n"
    "  \"histogram\": {\"buckets\": [[100.0, 50], [200.0, 40], [1000.0, 10]]}},\n"
    " \"repeat\": {\"runs\": 3, \"median\": {\"ops_per_sec\": 1000.0, \"p50_us\": 100.0,\n"
    "  \"p99_us\": 400.0}, \"noise\": {\"ops_per_sec\": 0.05, \"p50_us\": 0.5,\n"
    "  \"p99_us\": 0.01}}}\n";
static const char json_b[] =
    "{\"tool\": \"aegis-bench\", \"schema_version\": 2, \"tool_version\": \"0.2.0\",\n"
    " \"git_commit\": \"bbbbbbb\", \"start_time\": \"2026-01-02T00:00:00Z\",\n"
    " \"host\": {\"name\": \"b\"}, \"settings\": {\"summary\": \"closed loop\"},\n"
    " \"results\": {\"ops_per_sec\": 1900.0, \"errors\": 3, \"latency_us\": {\"p50\": 50.0,\n"
    "  \"p90\": 100.0, \"p99\": 200.0, \"p99_9\": 400.0, \"max\": 500.0},\n"
    "  \"histogram\": {\"buckets\": [[50.0, 50], [100.0, 40], [500.0, 10]]}},\n"
    " \"repeat\": {\"runs\": 3, \"median\": {\"ops_per_sec\": 2000.0, \"p50_us\": 60.0,\n"
    "  \"p99_us\": 200.0}, \"noise\": {\"ops_per_sec\": 0.10, \"p50_us\": 0.5,\n"
    "  \"p99_us\": 0.02}}}\n";

/* The row of @figure in compare's output, or NULL. */
static const char *row(const char *text, const char *figure)
{
    char pat[64];

    snprintf(pat, sizeof(pat), "\n%s ", figure);
    return strstr(text, pat);
}

TEST(bench_compare, ratios_and_verdicts_on_fixed_files)
{
    static char text[16384], svg[65536];
    char dir[] = "/tmp/aegis-bench-compare-XXXXXX", a[96], b[96], out[96], plot[96];
    char *argv[] = {NULL, "compare", "--plot", plot, a, b, NULL};
    const char *r;

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(a, sizeof(a), "%s/a.json", dir);
    snprintf(b, sizeof(b), "%s/b.json", dir);
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    snprintf(plot, sizeof(plot), "%s/cmp.svg", dir);
    write_file(a, json_a);
    write_file(b, json_b);
    if (!bench_path(text, sizeof(text))) {
        SKIP("aegis-bench not built");
    }
    ASSERT_EQ_I64(run_bench(argv, out), 0);
    ASSERT_TRUE(slurp(out, text, sizeof(text)));
    /* ops/s: medians 1000 -> 2000 = 2.00x, noise max(5%, 10%) = 10%: faster. */
    ASSERT_TRUE((r = row(text, "ops/s")) != NULL);
    ASSERT_TRUE(strstr(r, "2000.0   2.00x    10% faster") != NULL);
    /* p50: 100 -> 60 = 0.60x, but 50% noise: same. */
    ASSERT_TRUE((r = row(text, "p50 us")) != NULL);
    ASSERT_TRUE(strstr(r, "0.60x    50% same") != NULL);
    /* p99: 400 -> 200 = 0.50x, noise 2%: faster (lower latency). */
    ASSERT_TRUE((r = row(text, "p99 us")) != NULL);
    ASSERT_TRUE(strstr(r, "0.50x     2% faster") != NULL);
    /* p90 was not repeated: the ratio without a verdict. */
    ASSERT_TRUE((r = row(text, "p90 us")) != NULL);
    ASSERT_TRUE(strstr(r, "0.50x      - ?") != NULL);
    ASSERT_TRUE(slurp(plot, svg, sizeof(svg)));
    ASSERT_TRUE(strstr(svg, "<svg") != NULL && strstr(svg, "</svg>") != NULL);
    ASSERT_EQ_I64(strstr(strstr(svg, "<polyline") + 1, "<polyline") != NULL, 1);
    /* A file that is not a report, and too few files. */
    write_file(b, "{\"schema_version\": 1}");
    ASSERT_EQ_I64(run_bench(argv, out), 1);
    write_file(b, "{\"schema_version\": ");
    ASSERT_EQ_I64(run_bench(argv, out), 1);
    argv[4] = NULL;
    ASSERT_EQ_I64(run_bench(argv, out), 2);
    remove(a), remove(b), remove(out), remove(plot), rmdir(dir);
    return TEST_PASS;
}

TEST(bench_flags, bad_values_and_combinations_fail_before_the_run)
{
    static const char *const cases[][6] = {
        {"--rate", "0"}, {"--rate", "x"}, {"--poisson"}, {"--latency-from", "sent"},
        {"--rate", "10", "--latency-from", "when"}, {"--sweep", "10:5", "--slo-ms", "1"},
        {"--sweep", "10:50"}, {"--slo-ms", "1"},
        {"--sweep", "10:50", "--slo-ms", "1", "--rate", "9"},
        {"--sweep", "10:50", "--slo-ms", "1", "--repeat", "2"}, {"--repeat", "0"},
        {"--repeat", "101"}, {"--workload", "z"}, {"--workload", "a", "--ratio", "1:1"},
        {"--distribution", "pareto"}, {"--value-size", "9-3"}, {"--slo-ms", "0", "--sweep", "1:2"},
        {"--json", "/nonexistent-dir/x.json"}, {"--plot", "/nonexistent-dir/x.svg"},
        {"--csv", "/"}, {"--histogram", "/nonexistent-dir/h"}};
    char dir[] = "/tmp/aegis-bench-flags-XXXXXX", out[96], text[4096];

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(out, sizeof(out), "%s/out.txt", dir);
    if (!bench_path(text, sizeof(text))) {
        SKIP("aegis-bench not built");
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* Port 1 on loopback: nothing listens; a run that started would exit 1, not 2. */
        char *argv[16] = {NULL, "--port", "1", "--duration", "0.1", "--warmup", "0"};
        int n = 7;

        for (int k = 0; k < 6 && cases[i][k] != NULL; k++) {
            argv[n++] = (char *)cases[i][k];
        }
        if (run_bench(argv, out) != 2) {
            FAIL("case %zu (%s %s) did not fail as a usage error", i, cases[i][0],
                 cases[i][1] ? cases[i][1] : "");
        }
    }
    ASSERT_TRUE(slurp(out, text, sizeof(text)));
    ASSERT_TRUE(strstr(text, "cannot write --histogram") != NULL);
    remove(out), rmdir(dir);
    return TEST_PASS;
}
