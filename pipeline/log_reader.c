/* SPDX-License-Identifier: MIT */
/* The log reader thread; see log_reader.h for the contract.
 *
 * Loop of aegis-logread: pop a request, read its range (segment.h's reader keeps the open
 * segment and cursor between requests, so the leader's consecutive ranges are read
 * sequentially), push the result, wake the raft thread; with nothing queued, sleep on its
 * own waker. Memory: one result's entry array (at most AEGIS_RAFT_FETCH_ENTRIES_MAX
 * slots) and its payloads (at most AEGIS_RAFT_FETCH_BYTES_MAX plus one entry) per request
 * in flight, and the reader's 1 MiB chunk. */
#include "pipeline/log_reader.h"

#include <pthread.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "pipeline/logging.h"
#include "pipeline/segment.h"

struct aegis_log_read_req {
    struct aegis_log_fetch fetch;
};

struct aegis_log_read_res {
    aegis_index from;
    struct aegis_entry *entries; /* count entries, each with its own reference; heap. */
    uint32_t count;
    int err;
};

AEGIS_RING_DEFINE(log_read_req, aegis_log_read_req)
AEGIS_RING_DEFINE(log_read_res, aegis_log_read_res)

#define READER_SLOTS 8u

struct aegis_log_reader {
    const struct aegis_allocator *alloc;
    struct aegis_ring_log_read_req reqs; /* raft thread -> reader. */
    struct aegis_ring_log_read_res ress; /* reader -> raft thread. */
    struct aegis_waker waker;            /* The reader's. */
    pthread_t thread;
    bool started;
    int stop;
    struct aegis_segment_reader rd;      /* Reader thread only. */
    aegis_index retained_seen;           /* Raft thread only. */
    struct aegis_log_reader_stats stats; /* Written by the reader (relaxed). */
};

static void stat_add(uint64_t *counter, uint64_t v)
{
    __atomic_fetch_add(counter, v, __ATOMIC_RELAXED);
}

/* Read one range into @res. */
static void read_range(struct aegis_log_reader *lr, const struct aegis_log_fetch *f,
                       struct aegis_log_read_res *res)
{
    uint32_t count_max = f->count_max > 0 ? f->count_max : 1;
    uint64_t bytes = 0;
    int rv;

    memset(res, 0, sizeof(*res));
    res->from = f->from;
    res->entries = aegis__calloc(lr->alloc, count_max, sizeof(*res->entries));
    if (res->entries == NULL) {
        res->err = AEGIS_ENOMEM;
        return;
    }
    rv = aegis__segment_reader_read(&lr->rd, f->from, count_max, f->bytes_max, res->entries,
                                    &res->count);
    if (rv != 0) {
        res->err = rv;
        stat_add(&lr->stats.errors, 1);
        if (rv == AEGIS_ECORRUPT) {
            AEGIS_LOG(AEGIS_LOG_ERROR,
                      "log read-back failed: %s at byte offset %llu: %s (reading from index "
                      "%llu for a follower); followers that need these entries get a "
                      "snapshot instead",
                      lr->rd.path, (unsigned long long)lr->rd.bad_offset,
                      lr->rd.why != NULL ? lr->rd.why : "corrupt", (unsigned long long)f->from);
        } else if (rv != AEGIS_ECOMPACTED) {
            AEGIS_LOG(AEGIS_LOG_ERROR, "log read-back from index %llu failed: %s",
                      (unsigned long long)f->from, aegis_strerror(rv));
        }
        return;
    }
    for (uint32_t i = 0; i < res->count; i++) {
        bytes += aegis__entry_len(&res->entries[i]);
    }
    stat_add(&lr->stats.reads, 1);
    stat_add(&lr->stats.entries, res->count);
    stat_add(&lr->stats.bytes, bytes);
}

static void res_release(struct aegis_log_reader *lr, struct aegis_log_read_res *res)
{
    for (uint32_t i = 0; i < res->count; i++) {
        aegis__entry_unref(&res->entries[i]);
    }
    aegis__free(lr->alloc, res->entries);
    res->entries = NULL;
    res->count = 0;
}

static void *reader_thread(void *arg)
{
    struct aegis_log_reader *lr = arg;
    struct aegis_log_read_req req;

    pthread_setname_np(pthread_self(), "aegis-logread");
    for (;;) {
        if (aegis__ring_log_read_req_pop_sc(&lr->reqs, &req)) {
            struct aegis_log_read_res res;

            read_range(lr, &req.fetch, &res);
            /* Bounded: one request in flight, READER_SLOTS - 1 results fit. */
            while (!aegis__ring_log_read_res_push_sp(&lr->ress, &res)) {
                if (__atomic_load_n(&lr->stop, __ATOMIC_ACQUIRE)) {
                    res_release(lr, &res);
                    break;
                }
                aegis__waker_prepare(&lr->waker);
                aegis__waker_wait(&lr->waker, 1);
            }
            continue;
        }
        if (__atomic_load_n(&lr->stop, __ATOMIC_ACQUIRE)) {
            break;
        }
        aegis__waker_prepare(&lr->waker);
        if (!aegis__ring_log_read_req_empty(&lr->reqs) ||
            __atomic_load_n(&lr->stop, __ATOMIC_ACQUIRE)) {
            aegis__waker_cancel(&lr->waker);
            continue;
        }
        aegis__waker_wait(&lr->waker, -1);
    }
    return NULL;
}

int aegis__log_reader_create(struct aegis_log_reader **out, const char *dir,
                             struct aegis_waker *raft_waker, const struct aegis_allocator *a)
{
    struct aegis_log_reader *lr = aegis__calloc(a, 1, sizeof(*lr));
    int rv;

    if (lr == NULL) {
        return AEGIS_ENOMEM;
    }
    lr->alloc = aegis__alloc_or_default(a);
    lr->waker.fd = -1;
    aegis__segment_reader_init(&lr->rd, dir, lr->alloc);
    rv = aegis__waker_init(&lr->waker);
    if (rv == 0) {
        rv = aegis__ring_log_read_req_init(&lr->reqs, READER_SLOTS, &lr->waker, lr->alloc);
    }
    if (rv == 0) {
        rv = aegis__ring_log_read_res_init(&lr->ress, READER_SLOTS, raft_waker, lr->alloc);
    }
    if (rv != 0) {
        aegis__log_reader_close(lr);
        return rv;
    }
    *out = lr;
    return 0;
}

int aegis__log_reader_start(struct aegis_log_reader *lr)
{
    int rv = pthread_create(&lr->thread, NULL, reader_thread, lr);

    if (rv != 0) {
        return -rv;
    }
    lr->started = true;
    return 0;
}

void aegis__log_reader_stop(struct aegis_log_reader *lr)
{
    if (lr == NULL || !lr->started) {
        return;
    }
    __atomic_store_n(&lr->stop, 1, __ATOMIC_RELEASE);
    aegis__waker_wake(&lr->waker);
    pthread_join(lr->thread, NULL);
    lr->started = false;
}

void aegis__log_reader_close(struct aegis_log_reader *lr)
{
    struct aegis_log_read_res res;

    if (lr == NULL) {
        return;
    }
    aegis__log_reader_stop(lr);
    if (lr->ress.slots != NULL) {
        while (aegis__ring_log_read_res_pop_sc(&lr->ress, &res)) {
            res_release(lr, &res);
        }
    }
    if (lr->reqs.slots != NULL) {
        aegis__ring_log_read_req_close(&lr->reqs);
    }
    if (lr->ress.slots != NULL) {
        aegis__ring_log_read_res_close(&lr->ress);
    }
    if (lr->waker.fd >= 0) {
        aegis__waker_close(&lr->waker);
    }
    aegis__segment_reader_close(&lr->rd);
    aegis__free(lr->alloc, lr);
}

void aegis__log_reader_submit(struct aegis_log_reader *lr, const struct aegis_log_fetch *f)
{
    struct aegis_log_read_req req = {.fetch = *f};

    /* The core has one fetch in flight until it is answered, and this thread pops a
     * request before reading it: the ring holds at most one. */
    AEGIS_ASSERT(f->from != 0);
    AEGIS_ASSERT(aegis__ring_log_read_req_push_sp(&lr->reqs, &req));
}

void aegis__log_reader_pump(struct aegis_log_reader *lr, struct aegis_raft *r,
                            aegis_index retained_first)
{
    struct aegis_log_read_res res;
    struct aegis_raft_log_stats st;

    if (lr == NULL) {
        return;
    }
    if (retained_first > lr->retained_seen) {
        lr->retained_seen = retained_first;
        aegis__raft_compact(r, retained_first - 1);
    }
    while (aegis__ring_log_read_res_pop_sc(&lr->ress, &res)) {
        (void)aegis__raft_fetched(r, res.from, res.entries, res.count, res.err);
        res_release(lr, &res);
    }
    aegis__raft_log_stats(r, &st);
    __atomic_store_n(&lr->stats.cache_bytes, st.cache_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&lr->stats.cache_entries, st.cache_entries, __ATOMIC_RELAXED);
    __atomic_store_n(&lr->stats.sent_from_cache, st.sent_from_cache, __ATOMIC_RELAXED);
    __atomic_store_n(&lr->stats.sent_from_disk, st.sent_from_disk, __ATOMIC_RELAXED);
}

bool aegis__log_reader_idle(struct aegis_log_reader *lr)
{
    return lr == NULL || aegis__ring_log_read_res_empty(&lr->ress);
}

void aegis__log_reader_stats(struct aegis_log_reader *lr, struct aegis_log_reader_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (lr == NULL) {
        return;
    }
    out->reads = __atomic_load_n(&lr->stats.reads, __ATOMIC_RELAXED);
    out->entries = __atomic_load_n(&lr->stats.entries, __ATOMIC_RELAXED);
    out->bytes = __atomic_load_n(&lr->stats.bytes, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&lr->stats.errors, __ATOMIC_RELAXED);
    out->cache_bytes = __atomic_load_n(&lr->stats.cache_bytes, __ATOMIC_RELAXED);
    out->cache_entries = __atomic_load_n(&lr->stats.cache_entries, __ATOMIC_RELAXED);
    out->sent_from_cache = __atomic_load_n(&lr->stats.sent_from_cache, __ATOMIC_RELAXED);
    out->sent_from_disk = __atomic_load_n(&lr->stats.sent_from_disk, __ATOMIC_RELAXED);
}
