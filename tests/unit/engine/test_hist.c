/* SPDX-License-Identifier: MIT */
/* Tests of the log-linear histogram (engine/hist.c): the bucket layout, the relative error
 * bound against exact percentiles of random samples, merge, sub, iteration, and a
 * writer/merger pair of threads (the lock-free contract, meaningful under TSan). */
#include <pthread.h>
#include <stdlib.h>

#include "engine/hist.h"
#include "engine/rng.h"
#include "lib/test.h"

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : (x > y ? 1 : 0);
}

/* The nearest-rank percentile of sorted @v: rank max(1, ceil(p/100 * n)). */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
    double want = p / 100.0 * (double)n;
    size_t rank = (size_t)want;

    if ((double)rank < want) {
        rank++;
    }
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return v[rank - 1];
}

TEST(hist, buckets_tile_the_range)
{
    uint32_t i;

    ASSERT_EQ_U64(aegis__hist_bucket_lo(0), 0);
    ASSERT_EQ_U64(aegis__hist_bucket_hi(AEGIS_HIST_BUCKETS - 1), UINT64_MAX);
    for (i = 0; i + 1 < AEGIS_HIST_BUCKETS; i++) {
        uint64_t lo = aegis__hist_bucket_lo(i), hi = aegis__hist_bucket_hi(i);

        ASSERT_TRUE(lo <= hi);
        ASSERT_EQ_U64(hi + 1, aegis__hist_bucket_lo(i + 1));
        ASSERT_EQ_U64(aegis__hist_bucket_of(lo), i);
        ASSERT_EQ_U64(aegis__hist_bucket_of(hi), i);
        /* The width bound behind the error bound: width <= lo / SUB_COUNT. */
        if (hi > lo) {
            ASSERT_TRUE(hi - lo + 1 <= lo / AEGIS_HIST_SUB_COUNT);
        }
    }
    /* Small values are exact. */
    for (i = 0; i < 2 * AEGIS_HIST_SUB_COUNT; i++) {
        ASSERT_EQ_U64(aegis__hist_bucket_of(i), i);
        ASSERT_EQ_U64(aegis__hist_bucket_lo(i), aegis__hist_bucket_hi(i));
    }
    ASSERT_EQ_U64(aegis__hist_bucket_of(UINT64_MAX), AEGIS_HIST_BUCKETS - 1);
    ASSERT_EQ_U64(aegis__hist_bucket_of(UINT64_C(1) << 63),
                  aegis__hist_bucket_of((UINT64_C(1) << 63) + 1));
    return TEST_PASS;
}

TEST(hist, empty_and_basic_stats)
{
    struct aegis_hist *h = aegis__hist_create(NULL);

    ASSERT_TRUE(h != NULL);
    ASSERT_EQ_U64(aegis__hist_count(h), 0);
    ASSERT_EQ_U64(aegis__hist_min(h), 0);
    ASSERT_EQ_U64(aegis__hist_max(h), 0);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 50.0), 0);
    ASSERT_TRUE(aegis__hist_mean(h) == 0.0);

    aegis__hist_record(h, 10);
    aegis__hist_record(h, 30);
    aegis__hist_record_n(h, 20, 2);
    ASSERT_EQ_U64(aegis__hist_count(h), 4);
    ASSERT_EQ_U64(aegis__hist_min(h), 10);
    ASSERT_EQ_U64(aegis__hist_max(h), 30);
    ASSERT_TRUE(aegis__hist_mean(h) == 20.0);
    /* sqrt(((10-20)^2 + 0 + 0 + (30-20)^2) / 4) = sqrt(50). */
    ASSERT_TRUE(aegis__hist_stddev(h) > 7.0710 && aegis__hist_stddev(h) < 7.0711);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 0.0), 10);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 25.0), 10);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 26.0), 20);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 75.0), 20);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 75.1), 30);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 100.0), 30);

    aegis__hist_reset(h);
    ASSERT_EQ_U64(aegis__hist_count(h), 0);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 99.0), 0);
    aegis__hist_record(h, UINT64_MAX);
    ASSERT_EQ_U64(aegis__hist_percentile(h, 50.0), UINT64_MAX);
    ASSERT_EQ_U64(aegis__hist_max(h), UINT64_MAX);
    aegis__hist_destroy(NULL, h);
    return TEST_PASS;
}

/* Draw @n samples from one of three shapes: log-uniform over 1 ns .. ~1000 s (every
 * octave), uniform over [1, 10^7], and a latency-like body with a heavy tail. */
static void draw_samples(struct aegis_rng *rng, int shape, uint64_t *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (shape == 0) {
            uint64_t bits = aegis__rng_range(rng, 0, 40);
            uint64_t base = UINT64_C(1) << bits;

            v[i] = base + aegis__rng_range(rng, 0, base - 1);
        } else if (shape == 1) {
            v[i] = aegis__rng_range(rng, 1, 10000000);
        } else {
            v[i] = 200000 + aegis__rng_range(rng, 0, 50000);
            if (aegis__rng_chance(rng, 10000)) {
                v[i] *= aegis__rng_range(rng, 2, 500);
            }
        }
    }
}

TEST(hist, relative_error_bound_against_exact_percentiles)
{
    static const double ps[] = {0.0,  0.1,  1.0,  10.0, 25.0,  33.3,   50.0,
                                66.6, 75.0, 90.0, 99.0, 99.9,  99.99, 100.0};
    enum { N = 200000 };
    uint64_t *v = calloc(N, sizeof(*v));
    struct aegis_hist *h = aegis__hist_create(NULL);
    struct aegis_rng rng;
    double worst = 0.0;
    int shape;
    size_t i, k;

    ASSERT_TRUE(v != NULL);
    ASSERT_TRUE(h != NULL);
    aegis__rng_seed(&rng, test_seed());
    for (shape = 0; shape < 3; shape++) {
        aegis__hist_reset(h);
        draw_samples(&rng, shape, v, N);
        for (i = 0; i < N; i++) {
            aegis__hist_record(h, v[i]);
        }
        qsort(v, N, sizeof(*v), compare_u64);
        ASSERT_EQ_U64(aegis__hist_min(h), v[0]);
        ASSERT_EQ_U64(aegis__hist_max(h), v[N - 1]);
        for (k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
            uint64_t exact = exact_percentile(v, N, ps[k]);
            uint64_t got = aegis__hist_percentile(h, ps[k]);
            uint64_t diff = got > exact ? got - exact : exact - got;

            /* |got - exact| <= exact * 2^-(SUB_BITS+1), in integers (see hist.h). */
            if (diff > exact / (2 * AEGIS_HIST_SUB_COUNT)) {
                FAIL("shape %d p%.2f: got %" PRIu64 ", exact %" PRIu64, shape, ps[k], got,
                     exact);
            }
            if (exact > 0 && (double)diff / (double)exact > worst) {
                worst = (double)diff / (double)exact;
            }
        }
    }
    ASSERT_TRUE(worst <= AEGIS_HIST_REL_ERROR);
    /* The bound is not vacuous: some percentile was not exact. */
    ASSERT_TRUE(worst > 0.0);
    aegis__hist_destroy(NULL, h);
    free(v);
    return TEST_PASS;
}

TEST(hist, merge_equals_recording_everything_in_one)
{
    struct aegis_hist *a = aegis__hist_create(NULL), *b = aegis__hist_create(NULL);
    struct aegis_hist *all = aegis__hist_create(NULL), *m = aegis__hist_create(NULL);
    struct aegis_rng rng;
    int i;

    ASSERT_TRUE(a && b && all && m);
    aegis__rng_seed(&rng, test_seed() + 1);
    for (i = 0; i < 50000; i++) {
        uint64_t x = aegis__rng_range(&rng, 1, UINT64_C(1) << 36);

        aegis__hist_record(i % 3 == 0 ? a : b, x);
        aegis__hist_record(all, x);
    }
    aegis__hist_merge(m, a);
    aegis__hist_merge(m, b);
    ASSERT_EQ_U64(aegis__hist_count(m), aegis__hist_count(all));
    ASSERT_EQ_U64(aegis__hist_min(m), aegis__hist_min(all));
    ASSERT_EQ_U64(aegis__hist_max(m), aegis__hist_max(all));
    ASSERT_EQ_U64(m->sum, all->sum);
    ASSERT_MEM_EQ(m->counts, all->counts, sizeof(m->counts));
    ASSERT_EQ_U64(aegis__hist_percentile(m, 99.0), aegis__hist_percentile(all, 99.0));

    /* Merging an empty histogram changes nothing, min and max included. */
    aegis__hist_reset(a);
    aegis__hist_merge(m, a);
    ASSERT_EQ_U64(aegis__hist_min(m), aegis__hist_min(all));
    ASSERT_EQ_U64(aegis__hist_max(m), aegis__hist_max(all));
    aegis__hist_destroy(NULL, a);
    aegis__hist_destroy(NULL, b);
    aegis__hist_destroy(NULL, all);
    aegis__hist_destroy(NULL, m);
    return TEST_PASS;
}

TEST(hist, sub_gives_the_interval)
{
    struct aegis_hist *live = aegis__hist_create(NULL), *before = aegis__hist_create(NULL);
    struct aegis_hist *now = aegis__hist_create(NULL), *later = aegis__hist_create(NULL);
    int i;

    ASSERT_TRUE(live && before && now && later);
    for (i = 0; i < 1000; i++) {
        aegis__hist_record(live, 1000);
    }
    aegis__hist_merge(before, live);
    for (i = 0; i < 100; i++) {
        aegis__hist_record(live, 5000000 + (uint64_t)i);
        aegis__hist_record(later, 5000000 + (uint64_t)i);
    }
    aegis__hist_merge(now, live);
    aegis__hist_sub(now, before);
    ASSERT_EQ_U64(aegis__hist_count(now), 100);
    ASSERT_MEM_EQ(now->counts, later->counts, sizeof(now->counts));
    ASSERT_EQ_U64(now->sum, later->sum);
    /* min and max fall back to bucket bounds, which hold the true ones. */
    ASSERT_TRUE(aegis__hist_min(now) <= 5000000);
    ASSERT_TRUE(aegis__hist_max(now) >= 5000099);
    ASSERT_TRUE(aegis__hist_percentile(now, 50.0) > 4900000);

    aegis__hist_sub(later, now); /* Equal histograms: nothing in between. */
    ASSERT_EQ_U64(aegis__hist_count(later), 0);
    ASSERT_EQ_U64(aegis__hist_max(later), 0);
    ASSERT_EQ_U64(aegis__hist_percentile(later, 50.0), 0);
    aegis__hist_destroy(NULL, live);
    aegis__hist_destroy(NULL, before);
    aegis__hist_destroy(NULL, now);
    aegis__hist_destroy(NULL, later);
    return TEST_PASS;
}

TEST(hist, iteration_walks_nonempty_buckets_in_order)
{
    struct aegis_hist h;
    struct aegis_hist_iter it;
    struct aegis_hist_bucket b;
    uint64_t last_hi = 0, buckets = 0;
    bool first = true;

    aegis__hist_init(&h);
    aegis__hist_record_n(&h, 3, 2);
    aegis__hist_record(&h, 1000000);
    aegis__hist_record(&h, 1000001);
    aegis__hist_record(&h, 77);
    aegis__hist_iter_init(&it);
    while (aegis__hist_iter_next(&h, &it, &b)) {
        ASSERT_TRUE(b.count > 0);
        ASSERT_TRUE(first || b.lo > last_hi);
        first = false;
        last_hi = b.hi;
        buckets++;
    }
    ASSERT_EQ_U64(buckets, 3); /* 3, 77, and one bucket for 1000000 and 1000001. */
    ASSERT_EQ_U64(b.cumulative, 5);
    ASSERT_TRUE(b.lo <= 1000000 && b.hi >= 1000001);
    ASSERT_EQ_U64(b.count, 2);
    ASSERT_FALSE(aegis__hist_iter_next(&h, &it, &b));
    return TEST_PASS;
}

struct writer_arg {
    struct aegis_hist *h;
    uint64_t n;
};

static void *writer_main(void *data)
{
    struct writer_arg *w = data;
    uint64_t i;

    for (i = 0; i < w->n; i++) {
        aegis__hist_record(w->h, (i % 5000) + 1);
    }
    return NULL;
}

/* One writer records while this thread merges: every merged snapshot is internally
 * consistent and never shrinks, and the final merge sees everything. */
TEST(hist, concurrent_merge_while_recording)
{
    struct aegis_hist *live = aegis__hist_create(NULL), *snap = aegis__hist_create(NULL);
    struct writer_arg w = {.h = live, .n = 300000};
    uint64_t last = 0, total = 0;
    pthread_t t;
    int rounds;

    ASSERT_TRUE(live && snap);
    ASSERT_EQ_I64(pthread_create(&t, NULL, writer_main, &w), 0);
    for (rounds = 0; rounds < 20; rounds++) {
        struct aegis_hist_iter it;
        struct aegis_hist_bucket b;

        aegis__hist_reset(snap);
        aegis__hist_merge(snap, live);
        ASSERT_TRUE(aegis__hist_count(snap) >= last);
        last = aegis__hist_count(snap);
        total = 0;
        aegis__hist_iter_init(&it);
        while (aegis__hist_iter_next(snap, &it, &b)) {
            total = b.cumulative;
        }
        ASSERT_EQ_U64(total, aegis__hist_count(snap));
    }
    ASSERT_EQ_I64(pthread_join(t, NULL), 0);
    aegis__hist_reset(snap);
    aegis__hist_merge(snap, live);
    ASSERT_EQ_U64(aegis__hist_count(snap), w.n);
    ASSERT_EQ_U64(aegis__hist_max(snap), 5000);
    aegis__hist_destroy(NULL, live);
    aegis__hist_destroy(NULL, snap);
    return TEST_PASS;
}
