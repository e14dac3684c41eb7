/* SPDX-License-Identifier: MIT */
/* The io_uring loop on its own threads, the way the pipeline runs it: other threads hand
 * work over through a mailbox and aegis__uring_loop_wake(), and on_wake drains the mailbox
 * on the net thread. Meant for the tsan preset as well. */
#include <pthread.h>

#include "test_uring_util.h"

/* A tiny single-producer single-consumer mailbox of sequence numbers to send. */
#define MAILBOX_CAP 1024u

struct mailbox {
    uint32_t items[MAILBOX_CAP];
    uint32_t head; /* Written by the consumer (net thread), read by the producer. */
    uint32_t tail; /* Written by the producer (main thread), read by the consumer. */
};

static bool mailbox_push(struct mailbox *m, uint32_t v)
{
    uint32_t tail = __atomic_load_n(&m->tail, __ATOMIC_RELAXED);

    if (tail - __atomic_load_n(&m->head, __ATOMIC_ACQUIRE) == MAILBOX_CAP) {
        return false;
    }
    m->items[tail % MAILBOX_CAP] = v;
    /* Publish the slot before the tail (release); pairs with the acquire in pop. */
    __atomic_store_n(&m->tail, tail + 1, __ATOMIC_RELEASE);
    return true;
}

static bool mailbox_pop(struct mailbox *m, uint32_t *v)
{
    uint32_t head = __atomic_load_n(&m->head, __ATOMIC_RELAXED);

    if (head == __atomic_load_n(&m->tail, __ATOMIC_ACQUIRE)) {
        return false;
    }
    *v = m->items[head % MAILBOX_CAP];
    __atomic_store_n(&m->head, head + 1, __ATOMIC_RELEASE);
    return true;
}

struct tctx {
    struct tnode node;
    struct mailbox box;
    aegis_node_id to;
    uint32_t frame_len;
    uint8_t *payload;     /* Shared, immutable while the test runs. */
    uint64_t wakes;       /* Net thread only. */
    uint64_t popped;      /* Net thread only. */
    uint64_t done;        /* Written by the net thread (release), read by main (acquire). */
    uint64_t frames_in;   /* Same. */
    uint64_t send_errors; /* Same. */
    pthread_t thread;
    int run_rv;
};

static void t_sent(struct aegis_uring_loop *loop, int status, void *data)
{
    struct tctx *t = data;

    (void)loop;
    if (status != 0) {
        __atomic_fetch_add(&t->send_errors, 1, __ATOMIC_RELEASE);
    }
    __atomic_fetch_add(&t->done, 1, __ATOMIC_RELEASE);
}

static void t_on_wake(struct aegis_uring_loop *loop, void *data)
{
    struct tctx *t = data;
    uint32_t seq;

    t->wakes++;
    while (mailbox_pop(&t->box, &seq)) {
        struct iovec iov[2] = {{&seq, 0}, {t->payload, t->frame_len}};
        int rv;

        t->popped++;
        if (t->to == AEGIS_NODE_NONE) {
            continue;
        }
        /* Sequence numbers are not carried; the payload is the same for every frame. */
        iov[0].iov_base = t->payload;
        rv = aegis__uring_loop_send(loop, t->to, iov, 2, t_sent, t);
        if (rv != 0) {
            __atomic_fetch_add(&t->send_errors, 1, __ATOMIC_RELEASE);
            __atomic_fetch_add(&t->done, 1, __ATOMIC_RELEASE);
        }
    }
}

static void t_on_frame(struct aegis_uring_loop *loop, aegis_node_id peer, const uint8_t *frame,
                       size_t len, void *data)
{
    struct tctx *t = data;

    (void)loop;
    (void)peer;
    if (len == t->frame_len && memcmp(frame, t->payload, len) == 0) {
        __atomic_fetch_add(&t->frames_in, 1, __ATOMIC_RELEASE);
    }
}

static void *t_main(void *arg)
{
    struct tctx *t = arg;

    pthread_setname_np(pthread_self(), "aegis-net");
    t->run_rv = aegis__uring_loop_run(t->node.loop);
    return NULL;
}

static int t_start(struct tctx *t, aegis_node_id id, uint8_t *payload, uint32_t len)
{
    struct aegis_uring_callbacks cb;

    memset(t, 0, sizeof(*t));
    tn_config(&t->node, id, 42);
    t->payload = payload;
    t->frame_len = len;
    memset(&cb, 0, sizeof(cb));
    cb.on_wake = t_on_wake;
    cb.on_frame = t_on_frame;
    cb.data = t;
    return tn_start_with(&t->node, &cb);
}

static uint64_t load(uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void wait_for(uint64_t *p, uint64_t want, int timeout_ms)
{
    uint64_t deadline = aegis__uring_loop_now_ms() + (uint64_t)timeout_ms;

    while (load(p) < want && aegis__uring_loop_now_ms() < deadline) {
        usleep(1000);
    }
}

TEST(uring_threads, wake_from_another_thread)
{
    enum { N = 20000 };
    static struct tctx t;
    uint8_t payload[1] = {0};
    uint32_t pushed = 0;

    SKIP_WITHOUT_URING();
    ASSERT_OK(t_start(&t, 1, payload, 1));
    ASSERT_EQ_I64(pthread_create(&t.thread, NULL, t_main, &t), 0);
    /* Every push is followed by a wake; many coalesce. The last on_wake must see all. */
    while (pushed < N) {
        if (mailbox_push(&t.box, pushed)) {
            pushed++;
            aegis__uring_loop_wake(t.node.loop);
        } else {
            aegis__uring_loop_wake(t.node.loop);
            usleep(100);
        }
    }
    {
        uint64_t deadline = aegis__uring_loop_now_ms() + 3000;
        while (__atomic_load_n(&t.box.head, __ATOMIC_ACQUIRE) != N &&
               aegis__uring_loop_now_ms() < deadline) {
            usleep(1000);
        }
    }
    ASSERT_EQ_U64(__atomic_load_n(&t.box.head, __ATOMIC_ACQUIRE), N);
    aegis__uring_loop_stop(t.node.loop);
    ASSERT_EQ_I64(pthread_join(t.thread, NULL), 0);
    ASSERT_OK(t.run_rv);
    ASSERT_EQ_U64(t.popped, N);
    ASSERT_TRUE(t.wakes >= 1);
    /* Coalescing: fewer on_wake calls than wake calls is expected, never more than N+1. */
    ASSERT_TRUE(t.wakes <= N + 1);
    tn_stop(&t.node);
    return TEST_PASS;
}

TEST(uring_threads, two_loops_on_threads_exchange_frames)
{
    enum { N = 3000, LEN = 3000 };
    static struct tctx a, b;
    static uint8_t payload[LEN];
    struct tnode *nodes[2];
    uint32_t pushed = 0;

    SKIP_WITHOUT_URING();
    for (int i = 0; i < LEN; i++) {
        payload[i] = (uint8_t)(i * 13);
    }
    ASSERT_OK(t_start(&a, 1, payload, LEN));
    ASSERT_OK(t_start(&b, 2, payload, LEN));
    nodes[0] = &a.node;
    nodes[1] = &b.node;
    /* Set up before the threads own the loops. */
    ASSERT_OK(tn_mesh(nodes, 2));
    a.to = 2;
    ASSERT_EQ_I64(pthread_create(&a.thread, NULL, t_main, &a), 0);
    ASSERT_EQ_I64(pthread_create(&b.thread, NULL, t_main, &b), 0);
    /* Wait for the link by watching frames: push one and retry until it lands. */
    while (pushed < N) {
        if (load(&a.done) + 512 < pushed || !mailbox_push(&a.box, pushed)) {
            aegis__uring_loop_wake(a.node.loop);
            usleep(200);
            continue;
        }
        pushed++;
        aegis__uring_loop_wake(a.node.loop);
    }
    wait_for(&a.done, N, 5000);
    ASSERT_EQ_U64(load(&a.done), N);
    /* Sends made before the link was up are refused (ENOTCONN) or queued; the rest land. */
    wait_for(&b.frames_in, N - load(&a.send_errors), 5000);
    ASSERT_EQ_U64(load(&b.frames_in) + load(&a.send_errors), N);
    ASSERT_TRUE(load(&b.frames_in) > N / 2);
    aegis__uring_loop_stop(a.node.loop);
    aegis__uring_loop_stop(b.node.loop);
    ASSERT_EQ_I64(pthread_join(a.thread, NULL), 0);
    ASSERT_EQ_I64(pthread_join(b.thread, NULL), 0);
    ASSERT_OK(a.run_rv);
    ASSERT_OK(b.run_rv);
    tn_stop(&a.node);
    tn_stop(&b.node);
    return TEST_PASS;
}
