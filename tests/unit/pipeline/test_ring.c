/* SPDX-License-Identifier: MIT */
/* Tests of the typed SPSC rings and the eventfd wake protocol: order, capacity and
 * backpressure, the wait timeout, and two threads exchanging items with sleeping
 * consumers (a lost wake-up would show up as a wait that times out with work queued). */
#include <aegis/error.h>
#include <pthread.h>

#include "lib/test.h"
#include "pipeline/ring.h"

struct item {
    uint64_t seq;
    uint64_t payload[3];
};

AEGIS_RING_DEFINE(test_item, item)

TEST(ring, order_capacity_full)
{
    struct aegis_ring_test_item r;
    struct item it = {0}, out;

    ASSERT_OK(aegis__ring_test_item_init(&r, 8, NULL, NULL));
    ASSERT_EQ_U64(aegis__ring_test_item_capacity(&r), 7);
    ASSERT_TRUE(aegis__ring_test_item_empty(&r));
    ASSERT_FALSE(aegis__ring_test_item_pop_sc(&r, &out));
    for (uint64_t round = 0; round < 3; round++) {
        for (uint64_t i = 0; i < 7; i++) {
            it.seq = round * 100 + i;
            it.payload[2] = it.seq * 3;
            ASSERT_TRUE(aegis__ring_test_item_push_sp(&r, &it));
        }
        it.seq = 999;
        ASSERT_FALSE(aegis__ring_test_item_push_sp(&r, &it)); /* Full: still ours. */
        ASSERT_EQ_U64(aegis__ring_test_item_count(&r), 7);
        for (uint64_t i = 0; i < 7; i++) {
            ASSERT_TRUE(aegis__ring_test_item_pop_sc(&r, &out));
            ASSERT_EQ_U64(out.seq, round * 100 + i);
            ASSERT_EQ_U64(out.payload[2], out.seq * 3);
        }
        ASSERT_TRUE(aegis__ring_test_item_empty(&r));
    }
    aegis__ring_test_item_close(&r);
    return TEST_PASS;
}

TEST(ring, waker_timeout_and_wake)
{
    struct aegis_waker w;

    ASSERT_OK(aegis__waker_init(&w));
    aegis__waker_prepare(&w);
    ASSERT_EQ_I64(aegis__waker_wait(&w, 10), 0); /* Nobody woke it. */
    aegis__waker_wake(&w);                       /* Not sleeping: no eventfd write. */
    ASSERT_EQ_U64(w.wakes, 0);
    aegis__waker_prepare(&w);
    aegis__waker_wake(&w); /* Announced: written once... */
    aegis__waker_wake(&w); /* ...and only once per announcement. */
    ASSERT_EQ_U64(w.wakes, 1);
    ASSERT_EQ_I64(aegis__waker_wait(&w, 1000), 1);
    aegis__waker_close(&w);
    return TEST_PASS;
}

#define PINGS 20000

struct pingpong {
    struct aegis_waker a_waker, b_waker;
    struct aegis_ring_test_item to_b, to_a;
    int lost; /* Set by the thread if a wait timed out with work queued. */
};

/* Wait for an item on @r with the full protocol; false on a lost wake-up. */
static bool recv_item(struct aegis_ring_test_item *r, struct aegis_waker *w, struct item *out)
{
    for (;;) {
        if (aegis__ring_test_item_pop_sc(r, out)) {
            return true;
        }
        aegis__waker_prepare(w);
        if (!aegis__ring_test_item_empty(r)) {
            aegis__waker_cancel(w);
            continue;
        }
        if (aegis__waker_wait(w, 5000) == 0) {
            return false; /* 5 s without a wake-up while the peer is sending. */
        }
    }
}

static void *thread_b(void *arg)
{
    struct pingpong *p = arg;
    struct item it;

    for (uint64_t i = 0; i < PINGS; i++) {
        if (!recv_item(&p->to_b, &p->b_waker, &it) || it.seq != i) {
            __atomic_store_n(&p->lost, 1, __ATOMIC_RELAXED);
            return NULL;
        }
        it.payload[0] = it.seq + 1;
        while (!aegis__ring_test_item_push_sp(&p->to_a, &it)) {
        }
    }
    return NULL;
}

TEST(ring, pingpong_with_sleeping_consumers)
{
    struct pingpong p;
    pthread_t t;
    struct item it = {0};

    memset(&p, 0, sizeof(p));
    ASSERT_OK(aegis__waker_init(&p.a_waker));
    ASSERT_OK(aegis__waker_init(&p.b_waker));
    ASSERT_OK(aegis__ring_test_item_init(&p.to_b, 16, &p.b_waker, NULL));
    ASSERT_OK(aegis__ring_test_item_init(&p.to_a, 16, &p.a_waker, NULL));
    ASSERT_EQ_I64(pthread_create(&t, NULL, thread_b, &p), 0);
    for (uint64_t i = 0; i < PINGS; i++) {
        it.seq = i;
        ASSERT_TRUE(aegis__ring_test_item_push_sp(&p.to_b, &it));
        if (!recv_item(&p.to_a, &p.a_waker, &it)) {
            FAIL("lost wake-up at round %llu", (unsigned long long)i);
        }
        ASSERT_EQ_U64(it.payload[0], i + 1);
    }
    pthread_join(t, NULL);
    ASSERT_EQ_I64(p.lost, 0);
    aegis__ring_test_item_close(&p.to_a);
    aegis__ring_test_item_close(&p.to_b);
    aegis__waker_close(&p.a_waker);
    aegis__waker_close(&p.b_waker);
    return TEST_PASS;
}

#define STREAM 300000

static void *stream_producer(void *arg)
{
    struct aegis_ring_test_item *r = arg;
    struct item it = {0};

    for (uint64_t i = 0; i < STREAM; i++) {
        it.seq = i;
        /* Full: back off by yielding the core, not spinning on it. */
        while (!aegis__ring_test_item_push_sp_defer(r, &it)) {
            aegis__ring_test_item_wake(r);
            sched_yield();
        }
        if ((i & 63) == 63) {
            aegis__ring_test_item_wake(r);
        }
    }
    aegis__ring_test_item_wake(r);
    return NULL;
}

TEST(ring, stream_in_order_with_batched_wakes)
{
    struct aegis_ring_test_item r;
    struct aegis_waker w;
    struct item it;
    pthread_t t;

    ASSERT_OK(aegis__waker_init(&w));
    ASSERT_OK(aegis__ring_test_item_init(&r, 1024, &w, NULL));
    ASSERT_EQ_I64(pthread_create(&t, NULL, stream_producer, &r), 0);
    for (uint64_t i = 0; i < STREAM; i++) {
        if (!recv_item(&r, &w, &it)) {
            FAIL("lost wake-up at item %llu", (unsigned long long)i);
        }
        ASSERT_EQ_U64(it.seq, i);
    }
    pthread_join(t, NULL);
    /* Wake-ups are per sleep, not per item. */
    ASSERT_TRUE(w.wakes < STREAM);
    aegis__ring_test_item_close(&r);
    aegis__waker_close(&w);
    return TEST_PASS;
}
