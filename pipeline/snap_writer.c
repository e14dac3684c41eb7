/* SPDX-License-Identifier: MIT */
/* The snapshot writer thread; see snap_writer.h for the design.
 *
 * The producer and the writer share a small queue of items under one mutex (a chunk is
 * 256 KiB or more, so the lock is taken a few thousand times per GiB, never per entry):
 * BEGIN, DATA (a pool buffer), END. The queue holds the pool's buffers plus BEGIN and END,
 * so a push never finds it full. Free buffers sit on a stack under the same mutex. */
#include "pipeline/snap_writer.h"

#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"
#include "pipeline/logging.h"
#include "pipeline/snapshot_file.h"

enum snap_item_kind {
    SNAP_ITEM_BEGIN = 1,
    SNAP_ITEM_DATA,
    SNAP_ITEM_END,
};

struct snap_item {
    uint8_t kind;
    int status;    /* END. */
    uint8_t *buf;  /* DATA. */
    size_t len;
};

struct aegis_snap_writer {
    struct aegis_snap_writer_config c;
    char dir[AEGIS_SNAPSHOT_PATH_MAX];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* Guarded by lock. */
    struct snap_item *queue;  /* Circular, qcap slots. */
    uint32_t qhead, qcount, qcap;
    uint8_t **free_bufs;      /* Stack of free pool buffers. */
    uint32_t free_count;
    bool stop;
    bool done;                /* The job ended: result is set. */
    struct aegis_snap_result result;
    int err;                  /* First write error of the job (also read by the producer). */
    /* Producer. */
    bool active;              /* Begun and not yet polled. */
    bool ended;               /* END pushed. */
    /* Writer thread. */
    struct io_uring ring;     /* Its own, for the chunks and the fdatasync. */
    bool ring_ok;             /* False: io_uring unavailable, plain pwritev instead. */
    struct aegis_snapshot_out out;
    bool open;
    struct aegis_snapshot_meta meta;
    uint64_t begin_ns;
    uint64_t size_hint;       /* The producer's expected stream length, or 0. */
};

static void stat_set(uint64_t *field, uint64_t v)
{
    if (field != NULL) {
        __atomic_store_n(field, v, __ATOMIC_RELAXED);
    }
}

static void wake_producer(struct aegis_snap_writer *w)
{
    if (w->c.wake != NULL) {
        w->c.wake(w->c.wake_data);
    }
}

static void queue_push(struct aegis_snap_writer *w, const struct snap_item *it)
{
    pthread_mutex_lock(&w->lock);
    AEGIS_ASSERT(w->qcount < w->qcap);
    w->queue[(w->qhead + w->qcount) % w->qcap] = *it;
    w->qcount++;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void do_begin(struct aegis_snap_writer *w)
{
    int rv;

    rv = aegis__snapshot_out_open(&w->out, w->dir, w->c.io, &w->meta);
    w->open = rv == 0;
    w->out.ring = w->ring_ok ? &w->ring : NULL;
    if (rv != 0) {
        __atomic_store_n(&w->err, rv, __ATOMIC_RELAXED);
    }
}

static void do_data(struct aegis_snap_writer *w, uint8_t *buf, size_t len)
{
    if (len > 0 && __atomic_load_n(&w->err, __ATOMIC_RELAXED) == 0) {
        int rv = aegis__snapshot_out_append(&w->out, buf, len);

        if (rv != 0) {
            __atomic_store_n(&w->err, rv, __ATOMIC_RELAXED);
        } else {
            if (w->c.stats != NULL) {
                __atomic_fetch_add(&w->c.stats->written_bytes, len, __ATOMIC_RELAXED);
            }
        }
    }
    pthread_mutex_lock(&w->lock);
    w->free_bufs[w->free_count++] = buf;
    pthread_mutex_unlock(&w->lock);
    wake_producer(w);
}

static void do_end(struct aegis_snap_writer *w, int status)
{
    struct aegis_snap_result res;
    int err = __atomic_load_n(&w->err, __ATOMIC_RELAXED);

    memset(&res, 0, sizeof(res));
    res.status = status != 0 ? status : err;
    res.meta = w->meta;
    res.stream_bytes = w->open ? w->out.total : 0;
    if (res.status == 0) {
        res.status = aegis__snapshot_out_finish(&w->out, &res.file_bytes);
    } else if (w->open) {
        aegis__snapshot_out_abort(&w->out);
    }
    w->open = false;
    res.duration_ns = aegis__now_ns() - w->begin_ns;
    if (res.status == 0 && w->size_hint > 0 && res.stream_bytes != w->size_hint) {
        /* The file is right (every chunk is checksummed); the machine's size is not. */
        AEGIS_LOG(AEGIS_LOG_WARN, "snapshot %llu: %llu bytes written, the state machine "
                  "said %llu", (unsigned long long)res.meta.index,
                  (unsigned long long)res.stream_bytes, (unsigned long long)w->size_hint);
    }
    if (res.status == 0) {
        if (w->c.stats != NULL) {
            stat_set(&w->c.stats->last_index, res.meta.index);
            stat_set(&w->c.stats->last_bytes, res.file_bytes);
            stat_set(&w->c.stats->last_ns, res.duration_ns);
        }
    } else {
        if (w->c.stats != NULL) {
            __atomic_fetch_add(&w->c.stats->failed, 1, __ATOMIC_RELAXED);
        }
    }
    if (w->c.stats != NULL) {
        stat_set(&w->c.stats->in_progress, 0);
    }
    pthread_mutex_lock(&w->lock);
    w->result = res;
    w->done = true;
    pthread_cond_broadcast(&w->cond); /* destroy() may wait for it. */
    pthread_mutex_unlock(&w->lock);
    wake_producer(w);
}

static void *writer_main(void *arg)
{
    struct aegis_snap_writer *w = arg;

    pthread_setname_np(pthread_self(), "aegis-snap");
    /* One SQE in flight at a time (the file layer follows one submission at a time). */
    w->ring_ok = io_uring_queue_init(4, &w->ring, 0) == 0;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        struct snap_item it;

        while (w->qcount == 0 && !w->stop) {
            pthread_cond_wait(&w->cond, &w->lock);
        }
        if (w->qcount == 0) {
            break; /* Stopping, and everything queued was done. */
        }
        it = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % w->qcap;
        w->qcount--;
        pthread_mutex_unlock(&w->lock);
        switch (it.kind) {
        case SNAP_ITEM_BEGIN:
            do_begin(w);
            break;
        case SNAP_ITEM_DATA:
            do_data(w, it.buf, it.len);
            break;
        case SNAP_ITEM_END:
            do_end(w, it.status);
            break;
        default:
            AEGIS_UNREACHABLE();
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    if (w->ring_ok) {
        io_uring_queue_exit(&w->ring);
    }
    return NULL;
}

static void free_all(struct aegis_snap_writer *w)
{
    for (uint32_t i = 0; i < w->free_count; i++) {
        aegis__free(w->c.alloc, w->free_bufs[i]);
    }
    aegis__free(w->c.alloc, w->free_bufs);
    aegis__free(w->c.alloc, w->queue);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    aegis__free(w->c.alloc, w);
}

int aegis__snap_writer_create(struct aegis_snap_writer **out,
                              const struct aegis_snap_writer_config *c)
{
    struct aegis_snap_writer *w;
    int rv;

    AEGIS_ASSERT(c->chunk_bytes > 0 && c->chunk_bytes <= AEGIS_SNAPSHOT_CHUNK_BYTES_MAX);
    AEGIS_ASSERT(c->chunks_in_flight > 0);
    w = aegis__calloc(c->alloc, 1, sizeof(*w));
    if (w == NULL) {
        return AEGIS_ENOMEM;
    }
    w->c = *c;
    snprintf(w->dir, sizeof(w->dir), "%s", c->dir);
    w->c.dir = w->dir;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->qcap = c->chunks_in_flight + 2;
    w->queue = aegis__calloc(c->alloc, w->qcap, sizeof(*w->queue));
    w->free_bufs = aegis__calloc(c->alloc, c->chunks_in_flight, sizeof(*w->free_bufs));
    rv = w->queue == NULL || w->free_bufs == NULL ? AEGIS_ENOMEM : 0;
    for (uint32_t i = 0; rv == 0 && i < c->chunks_in_flight; i++) {
        w->free_bufs[i] = aegis__malloc(c->alloc, c->chunk_bytes);
        rv = w->free_bufs[i] == NULL ? AEGIS_ENOMEM : 0;
        w->free_count += rv == 0 ? 1 : 0;
    }
    if (rv == 0) {
        rv = -pthread_create(&w->thread, NULL, writer_main, w);
    }
    if (rv != 0) {
        free_all(w);
        return rv;
    }
    *out = w;
    return 0;
}

void aegis__snap_writer_destroy(struct aegis_snap_writer *w)
{
    if (w == NULL) {
        return;
    }
    if (w->active) {
        struct aegis_snap_result res;

        aegis__snap_writer_end(w, AEGIS_ESHUTDOWN); /* Idempotent after an end. */
        pthread_mutex_lock(&w->lock);
        while (!w->done) {
            pthread_cond_wait(&w->cond, &w->lock);
        }
        pthread_mutex_unlock(&w->lock);
        (void)aegis__snap_writer_poll(w, &res); /* Nothing in it to free. */
    }
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    free_all(w);
}

int aegis__snap_writer_begin(struct aegis_snap_writer *w, const struct aegis_snapshot_meta *meta,
                             uint64_t size_hint)
{
    if (w->active) {
        return AEGIS_EBUSY;
    }
    /* The writer is idle (no job): these fields are handed over by the queue's lock. */
    w->active = true;
    w->ended = false;
    w->meta = *meta;
    w->size_hint = size_hint;
    w->begin_ns = aegis__now_ns();
    __atomic_store_n(&w->err, 0, __ATOMIC_RELAXED);
    if (w->c.stats != NULL) {
        stat_set(&w->c.stats->written_bytes, 0);
        stat_set(&w->c.stats->in_progress, 1);
    }
    queue_push(w, &(struct snap_item){.kind = SNAP_ITEM_BEGIN});
    return 0;
}

size_t aegis__snap_writer_chunk_bytes(const struct aegis_snap_writer *w)
{
    return w->c.chunk_bytes;
}

uint8_t *aegis__snap_writer_buf(struct aegis_snap_writer *w)
{
    uint8_t *b = NULL;

    AEGIS_ASSERT(w->active && !w->ended);
    pthread_mutex_lock(&w->lock);
    if (w->free_count > 0) {
        b = w->free_bufs[--w->free_count];
    }
    pthread_mutex_unlock(&w->lock);
    return b;
}

void aegis__snap_writer_push(struct aegis_snap_writer *w, uint8_t *buf, size_t len)
{
    AEGIS_ASSERT(w->active && !w->ended && len <= w->c.chunk_bytes);
    queue_push(w, &(struct snap_item){.kind = SNAP_ITEM_DATA, .buf = buf, .len = len});
}

void aegis__snap_writer_end(struct aegis_snap_writer *w, int status)
{
    AEGIS_ASSERT(w->active);
    if (w->ended) {
        return;
    }
    w->ended = true;
    queue_push(w, &(struct snap_item){.kind = SNAP_ITEM_END, .status = status});
}

int aegis__snap_writer_error(struct aegis_snap_writer *w)
{
    return __atomic_load_n(&w->err, __ATOMIC_RELAXED);
}

bool aegis__snap_writer_ready(struct aegis_snap_writer *w, bool want_buf)
{
    bool ready;

    pthread_mutex_lock(&w->lock);
    ready = w->done || (want_buf && w->free_count > 0);
    pthread_mutex_unlock(&w->lock);
    return ready;
}

bool aegis__snap_writer_poll(struct aegis_snap_writer *w, struct aegis_snap_result *out)
{
    bool done;

    if (!w->active) {
        return false;
    }
    pthread_mutex_lock(&w->lock);
    done = w->done;
    if (done) {
        *out = w->result;
        memset(&w->result, 0, sizeof(w->result));
        w->done = false;
    }
    pthread_mutex_unlock(&w->lock);
    if (done) {
        w->active = false;
    }
    return done;
}
