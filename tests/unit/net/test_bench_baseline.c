/* SPDX-License-Identifier: MIT */
/* Tests of aegis-bench --baseline (cmd/bench_baseline.h, included directly): the median,
 * each measurement run for real on a small scale in a fresh directory (and leaving
 * nothing behind), the failure on a directory that does not exist, and the judgement of
 * a run against the targets. Timings are only checked to be positive, never against a
 * bound: they depend on the machine. */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/bench_baseline.h"
#include "lib/test.h"

/* Number of entries in @dir besides "." and "..". */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            n++;
        }
    }
    closedir(d);
    return n;
}

TEST(bench_baseline, median_of_unsorted_samples)
{
    double odd[] = {5.0, 1.0, 3.0, 9.0, 7.0};
    double even[] = {4.0, 1.0, 3.0, 2.0};
    double one[] = {42.0};

    ASSERT_TRUE(bench_median(odd, 5) == 5.0);
    ASSERT_TRUE(odd[0] == 1.0 && odd[4] == 9.0); /* Sorted in place. */
    ASSERT_TRUE(bench_median(even, 4) == 2.5);
    ASSERT_TRUE(bench_median(one, 1) == 42.0);
    ASSERT_TRUE(bench_median(one, 0) == 0.0);
    return TEST_PASS;
}

TEST(bench_baseline, small_measurements_leave_nothing_behind)
{
    char dir[] = "/tmp/aegis-baseline-test.XXXXXX";
    double us = 0.0, p99 = 0.0, mb_s = 0.0;
    unsigned taken = 0;
    uint64_t written = 0;

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_EQ_I64(baseline_fsync(dir, 20, &us, &p99, &taken), 0);
    ASSERT_EQ_U64(taken, 20);
    ASSERT_TRUE(us > 0.0);
    ASSERT_TRUE(p99 >= us);
    ASSERT_EQ_I64(baseline_rtt(50, &us, &taken), 0);
    ASSERT_EQ_U64(taken, 50);
    ASSERT_TRUE(us > 0.0);
    ASSERT_EQ_I64(baseline_bandwidth(dir, 64 * 1024, 1 << 20, &mb_s, &written), 0);
    ASSERT_EQ_U64(written, 1 << 20);
    ASSERT_TRUE(mb_s > 0.0);
    ASSERT_EQ_I64(count_entries(dir), 0);
    ASSERT_EQ_I64(rmdir(dir), 0);
    return TEST_PASS;
}

TEST(bench_baseline, full_measurement_fills_every_field)
{
    char dir[] = "/tmp/aegis-baseline-test.XXXXXX";
    struct bench_baseline bl;

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_EQ_I64(bench_baseline_measure(&bl, dir), 0);
    ASSERT_TRUE(strcmp(bl.dir, dir) == 0);
    ASSERT_TRUE(bl.fsync_samples > 0 && bl.fsync_us > 0.0 && bl.fsync_p99_us >= bl.fsync_us);
    ASSERT_TRUE(bl.rtt_samples > 0 && bl.rtt_us > 0.0);
    ASSERT_TRUE(bl.bw_small_bytes > 0 && bl.bw_small_mb_s > 0.0);
    ASSERT_TRUE(bl.bw_large_bytes > 0 && bl.bw_large_mb_s > 0.0);
    ASSERT_TRUE(bench_baseline_disk_mb_s(&bl) >= bl.bw_small_mb_s);
    ASSERT_TRUE(bench_baseline_disk_mb_s(&bl) >= bl.bw_large_mb_s);
    ASSERT_EQ_I64(count_entries(dir), 0);
    ASSERT_EQ_I64(rmdir(dir), 0);
    return TEST_PASS;
}

TEST(bench_baseline, missing_directory_fails)
{
    struct bench_baseline bl;
    double us = 0.0, p99 = 0.0;
    unsigned taken = 7;

    ASSERT_EQ_I64(baseline_fsync("/nonexistent/aegis-baseline", 5, &us, &p99, &taken), -1);
    ASSERT_EQ_I64(bench_baseline_measure(&bl, "/nonexistent/aegis-baseline"), -1);
    return TEST_PASS;
}

TEST(bench_baseline, targets_judge_only_their_settings)
{
    struct bench_baseline bl = {.fsync_us = 100.0, .rtt_us = 50.0, .bw_small_mb_s = 200.0,
                                .bw_large_mb_s = 400.0};
    struct bench_targets t;

    /* 1 client x pipeline 1: p50 limit 1.2 x 150 = 180 us, p99 limit 2 ms. */
    bench_baseline_targets(&bl, 170.0, 1999.0, 1.0, 1, 1, 128, &t);
    ASSERT_TRUE(t.p50_us.limit > 179.999 && t.p50_us.limit < 180.001);
    ASSERT_TRUE(t.p50_us.applies && t.p50_us.met);
    ASSERT_TRUE(t.p99_us.applies && t.p99_us.met);
    ASSERT_FALSE(t.bw_mb_s.applies); /* 128-byte values. */
    ASSERT_TRUE(strcmp(bench_target_verdict(&t.p50_us), "met") == 0);

    bench_baseline_targets(&bl, 181.0, 2000.0, 1.0, 1, 1, 128, &t);
    ASSERT_FALSE(t.p50_us.met);
    ASSERT_FALSE(t.p99_us.met);
    ASSERT_TRUE(strcmp(bench_target_verdict(&t.p99_us), "NOT met") == 0);

    /* Pipelined: latency targets are shown, not judged. */
    bench_baseline_targets(&bl, 100.0, 100.0, 1.0, 50, 16, 128, &t);
    ASSERT_FALSE(t.p50_us.applies);
    ASSERT_FALSE(t.p99_us.applies);

    /* 64 KiB values: 70% of the better bandwidth (400) = 280 MB/s. */
    bench_baseline_targets(&bl, 100.0, 100.0, 280.5, 50, 16, 64 * 1024, &t);
    ASSERT_TRUE(t.bw_mb_s.applies && t.bw_mb_s.met);
    ASSERT_TRUE(t.bw_mb_s.limit > 279.999 && t.bw_mb_s.limit < 280.001);
    bench_baseline_targets(&bl, 100.0, 100.0, 279.5, 50, 16, 64 * 1024, &t);
    ASSERT_FALSE(t.bw_mb_s.met);
    return TEST_PASS;
}
