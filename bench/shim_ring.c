/* SPDX-License-Identifier: MIT */
/* The ring handoff benchmark's threads; see shim_ring.h. */
#include "bench/shim_ring.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "pipeline/ring.h"

struct bm_item {
    uint64_t seq;
    uint64_t pad[7];
};

AEGIS_RING_DEFINE(bm, bm_item)

#define BM_RING_SLEEP_MS 100

struct bm_ring_pair {
    struct aegis_ring_bm fwd;  /* Producer -> consumer. */
    struct aegis_ring_bm back; /* Consumer -> producer (echoes). */
    struct aegis_waker cw;     /* The consumer's. */
    struct aegis_waker pw;     /* The producer's: echoes arrived, or space in fwd. */
    enum bm_ring_mode mode;
    bool consumer_spin;
    bool producer_spin; /* Producer only. */
    int stop;           /* __atomic. */
    pthread_t thread;
    /* Producer only. */
    uint64_t sent;
    uint64_t echoed;
    uint64_t producer_sleeps;
    uint64_t producer_timeouts;
    uint64_t producer_errors;
    /* Consumer only; read by the producer through __atomic loads. */
    uint64_t received;
    uint64_t consumer_sleeps;
    uint64_t consumer_timeouts;
    uint64_t order_errors;
};

static void relax(uint32_t polls)
{
    if (polls % 64 == 63) {
        sched_yield();
    } else {
        __builtin_ia32_pause();
    }
}

static bool stopping(const struct bm_ring_pair *p)
{
    return __atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) != 0;
}

static void *consume(void *arg)
{
    struct bm_ring_pair *p = arg;
    uint64_t expected = 0;
    uint32_t polls = 0;
    bool drained = false;

    for (;;) {
        struct bm_item it;
        uint64_t got = 0;

        while (aegis__ring_bm_pop_sc(&p->fwd, &it)) {
            if (it.seq != expected) {
                __atomic_store_n(&p->order_errors, p->order_errors + 1, __ATOMIC_RELAXED);
            }
            expected = it.seq + 1;
            got++;
            if (p->mode == BM_RING_PINGPONG) {
                /* One item in flight: the back ring cannot be full. */
                if (!aegis__ring_bm_push_sp(&p->back, &it)) {
                    abort();
                }
            }
        }
        if (got > 0) {
            __atomic_store_n(&p->received, p->received + got, __ATOMIC_RELEASE);
            polls = 0;
            drained = true;
            continue;
        }
        if (drained && p->mode == BM_RING_STREAM) {
            /* The ring went empty: a producer waiting for space (or for the sync) may
             * go on. Once per empty transition, so the busy path pays nothing. */
            aegis__waker_wake(&p->pw);
            drained = false;
        }
        if (stopping(p)) {
            break;
        }
        if (p->consumer_spin && polls < BM_RING_SPIN_POLLS) {
            relax(polls++);
            continue;
        }
        aegis__waker_prepare(&p->cw);
        if (!aegis__ring_bm_empty(&p->fwd) || stopping(p)) {
            aegis__waker_cancel(&p->cw);
            continue;
        }
        __atomic_store_n(&p->consumer_sleeps, p->consumer_sleeps + 1, __ATOMIC_RELAXED);
        if (aegis__waker_wait(&p->cw, BM_RING_SLEEP_MS) == 0 &&
            !aegis__ring_bm_empty(&p->fwd)) {
            /* Slept the whole timeout although an item was there: a lost wake-up. */
            __atomic_store_n(&p->consumer_timeouts, p->consumer_timeouts + 1,
                             __ATOMIC_RELAXED);
        }
        polls = 0;
    }
    return NULL;
}

struct bm_ring_pair *bm_ring_pair_create(enum bm_ring_mode mode, unsigned int slots, bool spin)
{
    struct bm_ring_pair *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        return NULL;
    }
    p->mode = mode;
    p->consumer_spin = spin;
    p->producer_spin = spin;
    if (aegis__waker_init(&p->cw) != 0 || aegis__waker_init(&p->pw) != 0 ||
        aegis__ring_bm_init(&p->fwd, slots, &p->cw, NULL) != 0 ||
        aegis__ring_bm_init(&p->back, slots, &p->pw, NULL) != 0 ||
        pthread_create(&p->thread, NULL, consume, p) != 0) {
        abort(); /* Benchmark setup: nothing sensible to fall back on. */
    }
    return p;
}

void bm_ring_pair_set_producer_spin(struct bm_ring_pair *p, bool spin)
{
    p->producer_spin = spin;
}

void bm_ring_pair_stats(const struct bm_ring_pair *p, struct bm_ring_stats *out)
{
    out->received = __atomic_load_n(&p->received, __ATOMIC_ACQUIRE);
    out->order_errors = __atomic_load_n(&p->order_errors, __ATOMIC_RELAXED) +
                        p->producer_errors;
    out->consumer_sleeps = __atomic_load_n(&p->consumer_sleeps, __ATOMIC_RELAXED);
    out->producer_sleeps = p->producer_sleeps;
    out->producer_timeouts = p->producer_timeouts;
    out->consumer_timeouts = __atomic_load_n(&p->consumer_timeouts, __ATOMIC_RELAXED);
    out->consumer_wakes = __atomic_load_n(&p->cw.wakes, __ATOMIC_RELAXED);
    out->producer_wakes = __atomic_load_n(&p->pw.wakes, __ATOMIC_RELAXED);
}

void bm_ring_pair_destroy(struct bm_ring_pair *p, struct bm_ring_stats *stats_out)
{
    __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);
    /* Forced wake: write the eventfd even if the consumer has not announced yet (it then
     * sees stop on its next check; a spare count only costs one loop). */
    __atomic_store_n(&p->cw.sleeping, 1, __ATOMIC_SEQ_CST);
    aegis__waker_wake(&p->cw);
    pthread_join(p->thread, NULL);
    if (stats_out != NULL) {
        bm_ring_pair_stats(p, stats_out);
    }
    aegis__ring_bm_close(&p->fwd);
    aegis__ring_bm_close(&p->back);
    aegis__waker_close(&p->cw);
    aegis__waker_close(&p->pw);
    free(p);
}

/* Producer: wait (spin, then sleep on pw) until @ready(p) holds. The consumer wakes pw
 * when fwd goes empty (STREAM) or when it pushes an echo (PINGPONG). */
static void producer_wait(struct bm_ring_pair *p, bool (*ready)(struct bm_ring_pair *p))
{
    uint32_t polls = 0;

    while (!ready(p)) {
        if (p->producer_spin && polls < BM_RING_SPIN_POLLS) {
            relax(polls++);
            continue;
        }
        aegis__waker_prepare(&p->pw);
        if (ready(p)) {
            aegis__waker_cancel(&p->pw);
            return;
        }
        p->producer_sleeps++;
        if (aegis__waker_wait(&p->pw, BM_RING_SLEEP_MS) == 0 && !ready(p)) {
            p->producer_timeouts++; /* Slept the whole timeout and still not ready. */
        }
        polls = 0;
    }
}

static bool fwd_has_space(struct bm_ring_pair *p)
{
    return aegis__ring_bm_count(&p->fwd) < aegis__ring_bm_capacity(&p->fwd);
}

static bool all_received(struct bm_ring_pair *p)
{
    return __atomic_load_n(&p->received, __ATOMIC_ACQUIRE) == p->sent;
}

static bool echo_ready(struct bm_ring_pair *p)
{
    return !aegis__ring_bm_empty(&p->back);
}

void bm_ring_stream(struct bm_ring_pair *p, uint64_t n, unsigned int burst)
{
    struct bm_item it = {0};
    unsigned int pending = 0;

    for (uint64_t i = 0; i < n; i++) {
        it.seq = p->sent;
        while (!aegis__ring_bm_push_sp_defer(&p->fwd, &it)) {
            aegis__ring_bm_wake(&p->fwd);
            pending = 0;
            producer_wait(p, fwd_has_space);
        }
        p->sent++;
        if (++pending >= burst) {
            aegis__ring_bm_wake(&p->fwd);
            pending = 0;
        }
    }
    if (pending > 0) {
        aegis__ring_bm_wake(&p->fwd);
    }
}

void bm_ring_stream_sync(struct bm_ring_pair *p)
{
    aegis__ring_bm_wake(&p->fwd);
    producer_wait(p, all_received);
}

void bm_ring_pingpong(struct bm_ring_pair *p, uint64_t n)
{
    struct bm_item it = {0};

    for (uint64_t i = 0; i < n; i++) {
        it.seq = p->sent++;
        if (!aegis__ring_bm_push_sp(&p->fwd, &it)) {
            abort(); /* One item in flight at a time. */
        }
        producer_wait(p, echo_ready);
        if (!aegis__ring_bm_pop_sc(&p->back, &it) || it.seq != p->echoed) {
            p->producer_errors++;
        }
        p->echoed++;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_us(unsigned int us)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};

    nanosleep(&ts, NULL);
}

uint64_t bm_ring_wakeup_once(struct bm_ring_pair *p, unsigned int idle_us)
{
    struct bm_item it = {0};
    uint64_t start, end;

    for (int tries = 0; tries < 1000; tries++) {
        if (__atomic_load_n(&p->cw.sleeping, __ATOMIC_SEQ_CST) != 0) {
            break;
        }
        sleep_us(idle_us);
    }
    sleep_us(idle_us);
    it.seq = p->sent++;
    start = now_ns();
    if (!aegis__ring_bm_push_sp(&p->fwd, &it)) {
        abort(); /* One item in flight at a time. */
    }
    producer_wait(p, echo_ready);
    end = now_ns();
    if (!aegis__ring_bm_pop_sc(&p->back, &it) || it.seq != p->echoed) {
        p->producer_errors++;
    }
    p->echoed++;
    return end - start;
}

uint64_t bm_ring_local(uint64_t n, unsigned int batch, bool defer)
{
    struct aegis_ring_bm r;
    struct aegis_waker w;
    struct bm_item it = {0};
    uint64_t popped = 0, pushed = 0;

    if (aegis__waker_init(&w) != 0 || aegis__ring_bm_init(&r, 1024, &w, NULL) != 0 ||
        batch == 0 || batch >= 1024) {
        abort();
    }
    while (pushed < n) {
        for (unsigned int i = 0; i < batch && pushed < n; i++) {
            it.seq = pushed++;
            bool ok = defer ? aegis__ring_bm_push_sp_defer(&r, &it)
                            : aegis__ring_bm_push_sp(&r, &it);
            if (!ok) {
                abort();
            }
        }
        if (defer) {
            aegis__ring_bm_wake(&r);
        }
        while (aegis__ring_bm_pop_sc(&r, &it)) {
            popped += it.seq == popped ? 1u : 0u;
        }
    }
    aegis__ring_bm_close(&r);
    aegis__waker_close(&w);
    return popped;
}
