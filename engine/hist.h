/* SPDX-License-Identifier: MIT */
/* A log-linear histogram of 64-bit values (latencies in nanoseconds, batch sizes, bytes)
 * with a bounded relative error, in the manner of HdrHistogram.
 *
 * Design. The value range [0, 2^64) is cut into "octaves" (powers of two), and each
 * octave into AEGIS_HIST_SUB_COUNT equal sub-buckets. Values below 2 * SUB_COUNT get a
 * bucket of their own (exact). A larger value v with its top bit at position m falls in a
 * bucket of width 2^(m - SUB_BITS), whose lower bound is at least SUB_COUNT times that
 * width; a reported value (the bucket's midpoint, clamped to the recorded min and max) is
 * therefore within AEGIS_HIST_REL_ERROR = 2^-(SUB_BITS + 1) of the true sample, relative
 * to it (1/256 with SUB_BITS 7). Memory is fixed: AEGIS_HIST_BUCKETS 64-bit counters
 * (7424, 58 KiB), inline in the struct, so recording never allocates and the struct can
 * live in caller storage (_init) or on the heap (_create).
 *
 * Concurrency: no locks. Each histogram has ONE writer thread (its owner), which calls
 * _record, _record_n and _reset. Every counter is stored with a relaxed atomic store (a
 * plain mov on x86-64, no lock prefix) so that one other thread may concurrently _merge
 * the histogram into its own private copy: each bucket it reads is a value the writer
 * stored at some point, and per-location coherence makes successive merges monotonic per
 * bucket. The merged copy is consistent in itself (its count is the sum of its buckets);
 * its sum, min and max may lag or lead the buckets by the records in flight. Every other
 * function (percentile, mean, iteration, _sub) reads a histogram that no one is
 * recording into: the owner's own, or a merged copy. The usual shape is one histogram
 * per thread and stage, merged into a fresh copy whenever someone reads the stage.
 *
 * _reset races with a concurrent _merge (the reader may see half a reset); reset only
 * when no reader runs, or keep separate histograms per phase and never reset. */
#ifndef AEGIS_HIST_H
#define AEGIS_HIST_H

#include "engine/alloc.h"

#define AEGIS_HIST_SUB_BITS  7
#define AEGIS_HIST_SUB_COUNT (1u << AEGIS_HIST_SUB_BITS)
/* Octaves 0 and 1 are exact (values below 2 * SUB_COUNT); then one row per top bit. */
#define AEGIS_HIST_BUCKETS   ((65u - AEGIS_HIST_SUB_BITS) * AEGIS_HIST_SUB_COUNT)
/* The bound on |reported - exact| / exact for any percentile (see the design above). */
#define AEGIS_HIST_REL_ERROR (1.0 / (double)(2u * AEGIS_HIST_SUB_COUNT))

struct aegis_hist {
    uint64_t count;     /* Samples recorded (merged copies: the sum of the buckets). */
    uint64_t sum;       /* Sum of the samples, wrapping (2^64 ns is 584 years). */
    uint64_t min;       /* UINT64_MAX while empty. */
    uint64_t max;       /* 0 while empty. */
    uint64_t counts[AEGIS_HIST_BUCKETS];
};

/* One non-empty bucket, as _iter_next reports it. */
struct aegis_hist_bucket {
    uint64_t lo;         /* Smallest value the bucket holds. */
    uint64_t hi;         /* Largest value the bucket holds (inclusive). */
    uint64_t count;      /* Samples in this bucket. */
    uint64_t cumulative; /* Samples in this bucket and every bucket below it. */
};

struct aegis_hist_iter {
    uint32_t index;      /* Next bucket to look at. */
    uint64_t cumulative; /* Samples seen so far. */
};

/* Make @h empty, in caller storage. Nothing to close. */
void aegis__hist_init(struct aegis_hist *h);

/* Allocate an empty histogram from @a (NULL: the default heap); NULL when out of memory.
 * Free it with _destroy and the same allocator. */
struct aegis_hist *aegis__hist_create(const struct aegis_allocator *a);
void aegis__hist_destroy(const struct aegis_allocator *a, struct aegis_hist *h);

/* Record one sample of @value (or @n samples of it). Owner thread only; O(1), no
 * allocation, no locks, no atomic read-modify-write. */
void aegis__hist_record(struct aegis_hist *h, uint64_t value);
void aegis__hist_record_n(struct aegis_hist *h, uint64_t value, uint64_t n);

/* Forget every sample. Owner thread only, and not while another thread merges @h. */
void aegis__hist_reset(struct aegis_hist *h);

/* Add every sample of @src to @dst. @src may be recorded into by its owner meanwhile
 * (relaxed reads); @dst must be private to the caller. */
void aegis__hist_merge(struct aegis_hist *dst, const struct aegis_hist *src);

/* Remove from @h the samples of @older, an earlier merged copy of the same source (so
 * every bucket of @older is <= the same bucket of @h): what was recorded in between.
 * min and max become the bounds of the lowest and highest non-empty buckets. */
void aegis__hist_sub(struct aegis_hist *h, const struct aegis_hist *older);

uint64_t aegis__hist_count(const struct aegis_hist *h);
/* The smallest and largest samples, exact; 0 when empty. */
uint64_t aegis__hist_min(const struct aegis_hist *h);
uint64_t aegis__hist_max(const struct aegis_hist *h);
/* Exact mean (sum / count); 0 when empty. */
double aegis__hist_mean(const struct aegis_hist *h);
/* Standard deviation from the bucket midpoints; 0 when empty. */
double aegis__hist_stddev(const struct aegis_hist *h);

/* The value at percentile @p (0 <= p <= 100), nearest-rank: the sample of rank
 * max(1, ceil(p / 100 * count)) in sorted order, reported as its bucket's midpoint clamped
 * to [min, max], so within AEGIS_HIST_REL_ERROR of the exact sample. p = 0 gives the min,
 * p = 100 the max. 0 when empty. */
uint64_t aegis__hist_percentile(const struct aegis_hist *h, double p);

/* Walk the non-empty buckets in increasing value order: start with @it zeroed (or
 * _iter_init) and call _iter_next until it returns false. */
void aegis__hist_iter_init(struct aegis_hist_iter *it);
bool aegis__hist_iter_next(const struct aegis_hist *h, struct aegis_hist_iter *it,
                           struct aegis_hist_bucket *out);

/* The bucket that holds @value, and a bucket's bounds (exposed for exporters and tests). */
uint32_t aegis__hist_bucket_of(uint64_t value);
uint64_t aegis__hist_bucket_lo(uint32_t index);
uint64_t aegis__hist_bucket_hi(uint32_t index);

#endif /* AEGIS_HIST_H */
