/* SPDX-License-Identifier: MIT */
/* Log-linear histogram: see hist.h for the bucket layout, the error bound and the
 * one-writer/one-merger concurrency contract.
 *
 * Bucket index of a value v, with S = AEGIS_HIST_SUB_BITS:
 *   m     = position of the top bit of (v | 2^S), so m >= S;
 *   shift = m - S;                     bucket width 2^shift
 *   index = shift * 2^S + (v >> shift) (v >> shift lies in [2^S, 2^(S+1)) once shift > 0)
 * For v < 2^(S+1) this gives index == v (exact buckets). The largest value, 2^64 - 1, has
 * m = 63 and lands in index (63 - S) * 2^S + 2^(S+1) - 1 = AEGIS_HIST_BUCKETS - 1.
 * Inverse: row r = index >> S; for r <= 1 the bucket is the value itself; otherwise
 * shift = r - 1 and lo = (2^S + (index & (2^S - 1))) << shift. */
#include "engine/hist.h"

#include "engine/assert.h"

AEGIS_STATIC_ASSERT(AEGIS_HIST_SUB_BITS >= 1 && AEGIS_HIST_SUB_BITS <= 16);
AEGIS_STATIC_ASSERT(AEGIS_HIST_BUCKETS == (65u - AEGIS_HIST_SUB_BITS) << AEGIS_HIST_SUB_BITS);

/* Single-writer counters: a relaxed load and store, never a locked read-modify-write. The
 * atomics only make the concurrent _merge well defined (and quiet under TSan). */
static inline uint64_t load_relaxed(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline void store_relaxed(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

uint32_t aegis__hist_bucket_of(uint64_t value)
{
    uint64_t v = value | AEGIS_HIST_SUB_COUNT;
    uint32_t m = 63u - (uint32_t)__builtin_clzll(v);
    uint32_t shift = m - AEGIS_HIST_SUB_BITS;
    uint64_t index = ((uint64_t)shift << AEGIS_HIST_SUB_BITS) + (value >> shift);

    AEGIS_ASSERT(m >= AEGIS_HIST_SUB_BITS);
    AEGIS_ASSERT(index < AEGIS_HIST_BUCKETS);
    return (uint32_t)index;
}

uint64_t aegis__hist_bucket_lo(uint32_t index)
{
    uint32_t row = index >> AEGIS_HIST_SUB_BITS;
    uint64_t sub = index & (AEGIS_HIST_SUB_COUNT - 1u);

    AEGIS_ASSERT(index < AEGIS_HIST_BUCKETS);
    if (row <= 1) {
        return index;
    }
    return (AEGIS_HIST_SUB_COUNT + sub) << (row - 1u);
}

uint64_t aegis__hist_bucket_hi(uint32_t index)
{
    uint32_t row = index >> AEGIS_HIST_SUB_BITS;

    AEGIS_ASSERT(index < AEGIS_HIST_BUCKETS);
    if (row <= 1) {
        return index;
    }
    /* lo + 2^shift - 1 never wraps: the top bucket ends exactly at 2^64 - 1. */
    return aegis__hist_bucket_lo(index) + ((UINT64_C(1) << (row - 1u)) - 1u);
}

/* The value reported for a bucket: its midpoint, which is within half a bucket width of
 * every value it holds. */
static uint64_t bucket_mid(uint32_t index)
{
    uint64_t lo = aegis__hist_bucket_lo(index);
    uint64_t hi = aegis__hist_bucket_hi(index);

    return lo + (hi - lo + 1u) / 2u;
}

void aegis__hist_init(struct aegis_hist *h)
{
    AEGIS_ASSERT(h != NULL);
    aegis__hist_reset(h);
}

struct aegis_hist *aegis__hist_create(const struct aegis_allocator *a)
{
    struct aegis_hist *h = aegis__malloc(a, sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    aegis__hist_init(h);
    return h;
}

void aegis__hist_destroy(const struct aegis_allocator *a, struct aegis_hist *h)
{
    aegis__free(a, h);
}

void aegis__hist_reset(struct aegis_hist *h)
{
    uint32_t i;

    AEGIS_ASSERT(h != NULL);
    for (i = 0; i < AEGIS_HIST_BUCKETS; i++) {
        store_relaxed(&h->counts[i], 0);
    }
    store_relaxed(&h->count, 0);
    store_relaxed(&h->sum, 0);
    store_relaxed(&h->min, UINT64_MAX);
    store_relaxed(&h->max, 0);
}

void aegis__hist_record_n(struct aegis_hist *h, uint64_t value, uint64_t n)
{
    uint32_t i = aegis__hist_bucket_of(value);

    /* Only the owner writes these fields, so plain (relaxed) loads of its own stores are
     * exact and the increments cannot be lost. */
    store_relaxed(&h->counts[i], h->counts[i] + n);
    store_relaxed(&h->count, h->count + n);
    store_relaxed(&h->sum, h->sum + value * n);
    if (value < h->min) {
        store_relaxed(&h->min, value);
    }
    if (value > h->max) {
        store_relaxed(&h->max, value);
    }
}

void aegis__hist_record(struct aegis_hist *h, uint64_t value)
{
    aegis__hist_record_n(h, value, 1);
}

void aegis__hist_merge(struct aegis_hist *dst, const struct aegis_hist *src)
{
    uint64_t added = 0;
    uint64_t src_min, src_max;
    uint32_t i;

    AEGIS_ASSERT(dst != NULL);
    AEGIS_ASSERT(src != NULL);
    AEGIS_ASSERT(dst != src);
    for (i = 0; i < AEGIS_HIST_BUCKETS; i++) {
        uint64_t c = load_relaxed(&src->counts[i]);

        dst->counts[i] += c;
        added += c;
    }
    /* The count follows the buckets we actually read, so percentiles stay consistent even
     * when the owner recorded meanwhile. */
    dst->count += added;
    dst->sum += load_relaxed(&src->sum);
    if (added == 0) {
        return;
    }
    src_min = load_relaxed(&src->min);
    src_max = load_relaxed(&src->max);
    if (src_min < dst->min) {
        dst->min = src_min;
    }
    if (src_max > dst->max) {
        dst->max = src_max;
    }
}

void aegis__hist_sub(struct aegis_hist *h, const struct aegis_hist *older)
{
    uint32_t i, lowest = AEGIS_HIST_BUCKETS, highest = 0;

    AEGIS_ASSERT(older->count <= h->count);
    for (i = 0; i < AEGIS_HIST_BUCKETS; i++) {
        AEGIS_ASSERT(older->counts[i] <= h->counts[i]);
        h->counts[i] -= older->counts[i];
        if (h->counts[i] != 0) {
            if (lowest == AEGIS_HIST_BUCKETS) {
                lowest = i;
            }
            highest = i;
        }
    }
    h->count -= older->count;
    h->sum -= older->sum;
    if (lowest == AEGIS_HIST_BUCKETS) {
        h->min = UINT64_MAX;
        h->max = 0;
        return;
    }
    h->min = aegis__hist_bucket_lo(lowest);
    h->max = aegis__hist_bucket_hi(highest);
}

uint64_t aegis__hist_count(const struct aegis_hist *h)
{
    return h->count;
}

uint64_t aegis__hist_min(const struct aegis_hist *h)
{
    return h->count == 0 ? 0 : h->min;
}

uint64_t aegis__hist_max(const struct aegis_hist *h)
{
    return h->count == 0 ? 0 : h->max;
}

double aegis__hist_mean(const struct aegis_hist *h)
{
    if (h->count == 0) {
        return 0.0;
    }
    return (double)h->sum / (double)h->count;
}

double aegis__hist_stddev(const struct aegis_hist *h)
{
    double mean, acc = 0.0;
    uint32_t i;

    if (h->count == 0) {
        return 0.0;
    }
    mean = aegis__hist_mean(h);
    for (i = 0; i < AEGIS_HIST_BUCKETS; i++) {
        if (h->counts[i] != 0) {
            double d = (double)bucket_mid(i) - mean;

            acc += d * d * (double)h->counts[i];
        }
    }
    /* A square root without libm (engine/ links nothing): Newton's method, which converges
     * quadratically; 64 rounds is a bound, not the expected count. */
    acc /= (double)h->count;
    if (acc <= 0.0) {
        return 0.0;
    }
    {
        double x = acc > 1.0 ? acc : 1.0;
        int round;

        for (round = 0; round < 64; round++) {
            double next = 0.5 * (x + acc / x);

            if (next >= x) {
                break;
            }
            x = next;
        }
        return x;
    }
}

uint64_t aegis__hist_percentile(const struct aegis_hist *h, double p)
{
    uint64_t rank, seen = 0;
    double want;
    uint32_t i;

    AEGIS_ASSERT(p >= 0.0);
    AEGIS_ASSERT(p <= 100.0);
    if (h->count == 0) {
        return 0;
    }
    /* The extremes are known exactly; no need to report a bucket's midpoint. */
    if (p <= 0.0) {
        return h->min;
    }
    if (p >= 100.0) {
        return h->max;
    }
    /* Nearest rank: ceil(p/100 * count), at least 1. The double has 53 bits: exact for
     * any count below 2^53, which no histogram reaches. */
    want = p / 100.0 * (double)h->count;
    rank = (uint64_t)want;
    if ((double)rank < want) {
        rank++;
    }
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->count) {
        rank = h->count;
    }
    for (i = 0; i < AEGIS_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = bucket_mid(i);

            if (v < h->min) {
                v = h->min;
            }
            if (v > h->max) {
                v = h->max;
            }
            return v;
        }
    }
    AEGIS_UNREACHABLE(); /* count is the sum of the buckets. */
}

void aegis__hist_iter_init(struct aegis_hist_iter *it)
{
    it->index = 0;
    it->cumulative = 0;
}

bool aegis__hist_iter_next(const struct aegis_hist *h, struct aegis_hist_iter *it,
                           struct aegis_hist_bucket *out)
{
    AEGIS_ASSERT(it->index <= AEGIS_HIST_BUCKETS);
    while (it->index < AEGIS_HIST_BUCKETS) {
        uint32_t i = it->index++;

        if (h->counts[i] == 0) {
            continue;
        }
        it->cumulative += h->counts[i];
        out->lo = aegis__hist_bucket_lo(i);
        out->hi = aegis__hist_bucket_hi(i);
        out->count = h->counts[i];
        out->cumulative = it->cumulative;
        return true;
    }
    return false;
}
