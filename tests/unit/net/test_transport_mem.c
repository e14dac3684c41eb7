/* SPDX-License-Identifier: MIT */
/* Tests of net/transport_mem: the in-memory transport behind the Transport interface. */
#include <aegis/error.h>

#include "lib/test.h"
#include "net/transport.h"

struct trio {
    struct aegis_mem_network *net;
    struct aegis_transport *t[4]; /* t[1..3]; t[0] unused. */
};

static int trio_open(struct trio *x, uint32_t queue_max)
{
    int rv;

    memset(x, 0, sizeof(*x));
    rv = aegis__mem_network_create(&x->net, queue_max, NULL);
    for (aegis_node_id id = 1; rv == 0 && id <= 3; id++) {
        rv = aegis__mem_transport_create(&x->t[id], x->net, id);
    }
    return rv;
}

static void trio_close(struct trio *x)
{
    for (int i = 1; i <= 3; i++) {
        aegis__transport_destroy(x->t[i]);
    }
    aegis__mem_network_destroy(x->net);
}

static struct aegis_msg heartbeat(aegis_node_id to, aegis_term term, aegis_index commit)
{
    struct aegis_msg m;

    memset(&m, 0, sizeof(m));
    m.type = AEGIS_MSG_HEARTBEAT;
    m.to = to;
    m.term = term;
    m.heartbeat.commit = commit;
    return m;
}

TEST(transport_mem, send_receive_in_order)
{
    struct trio x;
    struct aegis_msg m;
    struct aegis_msg got;

    ASSERT_OK(trio_open(&x, 8));
    for (aegis_index i = 1; i <= 5; i++) {
        m = heartbeat(2, 1, i);
        m.from = 99; /* The transport stamps the real sender. */
        ASSERT_OK(aegis__transport_send(x.t[1], &m));
    }
    ASSERT_EQ_U64(aegis__transport_pending(x.t[2]), 5);
    ASSERT_EQ_U64(aegis__transport_pending(x.t[3]), 0);
    for (aegis_index i = 1; i <= 5; i++) {
        ASSERT_OK(aegis__transport_receive(x.t[2], &got));
        ASSERT_EQ_U64(got.type, AEGIS_MSG_HEARTBEAT);
        ASSERT_EQ_U64(got.from, 1);
        ASSERT_EQ_U64(got.to, 2);
        ASSERT_EQ_U64(got.heartbeat.commit, i);
        aegis__transport_release(x.t[2], &got);
    }
    ASSERT_ERR(aegis__transport_receive(x.t[2], &got), AEGIS_EAGAIN);
    ASSERT_EQ_U64(aegis__mem_network_sent(x.net), 5);
    trio_close(&x);
    return TEST_PASS;
}

TEST(transport_mem, deep_copy_shares_payloads)
{
    struct trio x;
    struct aegis_entry e[2];
    struct aegis_msg m;
    struct aegis_msg got;

    ASSERT_OK(trio_open(&x, 4));
    memset(e, 0, sizeof(e));
    memset(&m, 0, sizeof(m));
    e[0] = (struct aegis_entry){.index = 1, .term = 1, .type = AEGIS_ENTRY_COMMAND};
    e[1] = (struct aegis_entry){.index = 2, .term = 1, .type = AEGIS_ENTRY_NOOP};
    e[0].buf = aegis__buf_from(NULL, "abc", 3);
    ASSERT_TRUE(e[0].buf != NULL);
    m.type = AEGIS_MSG_APPEND_REQ;
    m.to = 3;
    m.append_req.entries = e;
    m.append_req.entries_count = 2;
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    /* The queue holds its own reference; the sender may drop its message now. */
    ASSERT_EQ_U64(e[0].buf->refs, 2);
    e[0].index = 42; /* The sender's array is not the one queued. */
    ASSERT_OK(aegis__transport_receive(x.t[3], &got));
    ASSERT_TRUE(got.append_req.entries != e);
    ASSERT_EQ_U64(got.append_req.entries_count, 2);
    ASSERT_EQ_U64(got.append_req.entries[0].index, 1);
    ASSERT_TRUE(got.append_req.entries[0].buf == e[0].buf);
    ASSERT_MEM_EQ(got.append_req.entries[0].buf->data, "abc", 3);
    aegis__transport_release(x.t[3], &got);
    ASSERT_EQ_U64(e[0].buf->refs, 1);
    aegis__buf_unref(e[0].buf);
    trio_close(&x);
    return TEST_PASS;
}

TEST(transport_mem, broadcast_reaches_every_peer_but_self)
{
    struct trio x;
    struct aegis_msg m = heartbeat(0, 3, 7);
    struct aegis_msg got;

    ASSERT_OK(trio_open(&x, 4));
    ASSERT_OK(aegis__transport_broadcast(x.t[2], &m));
    ASSERT_EQ_U64(aegis__transport_pending(x.t[2]), 0);
    for (int i = 1; i <= 3; i += 2) {
        ASSERT_EQ_U64(aegis__transport_pending(x.t[i]), 1);
        ASSERT_OK(aegis__transport_receive(x.t[i], &got));
        ASSERT_EQ_U64(got.to, (aegis_node_id)i);
        ASSERT_EQ_U64(got.from, 2);
        ASSERT_EQ_U64(got.term, 3);
        aegis__transport_release(x.t[i], &got);
    }
    trio_close(&x);
    return TEST_PASS;
}

TEST(transport_mem, bounded_queue_backpressure)
{
    struct trio x;
    struct aegis_msg m = heartbeat(2, 1, 0);
    struct aegis_msg got;

    ASSERT_OK(trio_open(&x, 2));
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_OK(aegis__transport_send(x.t[3], &m));
    ASSERT_ERR(aegis__transport_send(x.t[1], &m), AEGIS_EFULL);
    ASSERT_EQ_U64(aegis__transport_pending(x.t[2]), 2);
    /* Broadcast tries everyone and reports the first error. */
    m.to = 0;
    ASSERT_ERR(aegis__transport_broadcast(x.t[1], &m), AEGIS_EFULL);
    ASSERT_EQ_U64(aegis__transport_pending(x.t[3]), 1);
    ASSERT_OK(aegis__transport_receive(x.t[2], &got));
    aegis__transport_release(x.t[2], &got);
    m.to = 2;
    ASSERT_OK(aegis__transport_send(x.t[1], &m)); /* Room again; the ring wraps. */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(aegis__transport_receive(x.t[2], &got));
        aegis__transport_release(x.t[2], &got);
    }
    ASSERT_ERR(aegis__transport_receive(x.t[2], &got), AEGIS_EAGAIN);
    trio_close(&x);
    return TEST_PASS;
}

TEST(transport_mem, broken_links_drop)
{
    struct trio x;
    struct aegis_msg m = heartbeat(2, 1, 0);

    ASSERT_OK(trio_open(&x, 4));
    ASSERT_OK(aegis__mem_network_set_link(x.net, 1, 2, false));
    ASSERT_OK(aegis__mem_network_set_link(x.net, 1, 2, false)); /* Idempotent. */
    ASSERT_OK(aegis__transport_send(x.t[1], &m)); /* Lost, not an error. */
    ASSERT_EQ_U64(aegis__transport_pending(x.t[2]), 0);
    ASSERT_EQ_U64(aegis__mem_network_dropped(x.net), 1);
    /* One-way: 2 -> 1 still works. */
    m.to = 1;
    ASSERT_OK(aegis__transport_send(x.t[2], &m));
    ASSERT_EQ_U64(aegis__transport_pending(x.t[1]), 1);
    ASSERT_OK(aegis__mem_network_set_link(x.net, 1, 2, true));
    m.to = 2;
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_EQ_U64(aegis__transport_pending(x.t[2]), 1);

    /* Isolating node 3 cuts both directions. */
    ASSERT_OK(aegis__mem_network_isolate(x.net, 3, true));
    m.to = 3;
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    m.to = 1;
    ASSERT_OK(aegis__transport_send(x.t[3], &m));
    ASSERT_EQ_U64(aegis__transport_pending(x.t[3]), 0);
    ASSERT_EQ_U64(aegis__transport_pending(x.t[1]), 1);
    ASSERT_EQ_U64(aegis__mem_network_dropped(x.net), 3);
    ASSERT_OK(aegis__mem_network_isolate(x.net, 3, false));
    m.to = 3;
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_EQ_U64(aegis__transport_pending(x.t[3]), 1);
    trio_close(&x); /* Destroy releases what is still queued (ASan checks). */
    return TEST_PASS;
}

TEST(transport_mem, endpoints_and_unknown_nodes)
{
    struct trio x;
    struct aegis_transport *dup;
    struct aegis_msg m = heartbeat(9, 1, 0);

    ASSERT_OK(trio_open(&x, 4));
    ASSERT_ERR(aegis__mem_transport_create(&dup, x.net, 2), AEGIS_EEXIST);
    ASSERT_ERR(aegis__mem_transport_create(&dup, x.net, AEGIS_NODE_NONE), AEGIS_EINVAL);
    ASSERT_ERR(aegis__transport_send(x.t[1], &m), AEGIS_EUNKNOWNNODE);
    /* A destroyed endpoint is unknown; its id can be reused. */
    aegis__transport_destroy(x.t[3]);
    x.t[3] = NULL;
    m.to = 3;
    ASSERT_ERR(aegis__transport_send(x.t[1], &m), AEGIS_EUNKNOWNNODE);
    ASSERT_OK(aegis__mem_transport_create(&x.t[3], x.net, 3));
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_EQ_U64(x.t[3]->id, 3);
    trio_close(&x);
    return TEST_PASS;
}

TEST(transport_mem, snapshot_chunk_and_client_payloads_are_referenced)
{
    struct trio x;
    struct aegis_msg m;
    struct aegis_msg got;
    struct aegis_buf *chunk = aegis__buf_from(NULL, "snapshot-bytes", 14);

    ASSERT_TRUE(chunk != NULL);
    ASSERT_OK(trio_open(&x, 4));
    memset(&m, 0, sizeof(m));
    m.type = AEGIS_MSG_SNAPSHOT_REQ;
    m.to = 2;
    m.snapshot_req.meta.index = 10;
    m.snapshot_req.chunk = chunk;
    m.snapshot_req.done = true;
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_OK(aegis__transport_send(x.t[1], &m));
    ASSERT_EQ_U64(chunk->refs, 3);
    ASSERT_OK(aegis__transport_receive(x.t[2], &got));
    ASSERT_TRUE(got.snapshot_req.chunk == chunk);
    ASSERT_EQ_U64(got.snapshot_req.meta.index, 10);
    aegis__transport_release(x.t[2], &got);
    trio_close(&x); /* Drops the second queued copy. */
    ASSERT_EQ_U64(chunk->refs, 1);
    aegis__buf_unref(chunk);
    return TEST_PASS;
}

struct budget_heap {
    long budget;
};

static void *budget_malloc(void *data, size_t size)
{
    struct budget_heap *h = data;

    return h->budget-- <= 0 ? NULL : aegis__alloc_default()->malloc(NULL, size);
}

static void *budget_realloc(void *data, void *ptr, size_t size)
{
    struct budget_heap *h = data;

    return h->budget-- <= 0 ? NULL : aegis__alloc_default()->realloc(NULL, ptr, size);
}

static void budget_free(void *data, void *ptr)
{
    (void)data;
    aegis__alloc_default()->free(NULL, ptr);
}

/* Each allocation of network, endpoints, link table and message copies fails in turn:
 * AEGIS_ENOMEM, nothing queued, nothing leaked. */
TEST(transport_mem, out_of_memory_at_every_allocation)
{
    struct budget_heap heap;
    struct aegis_allocator a = {.malloc = budget_malloc, .realloc = budget_realloc,
                                .free = budget_free, .data = &heap};
    struct aegis_entry e = {.index = 1, .term = 1, .type = AEGIS_ENTRY_COMMAND};
    bool done = false;

    for (long budget = 0; budget < 100 && !done; budget++) {
        struct aegis_mem_network *net = NULL;
        struct aegis_transport *t1 = NULL;
        struct aegis_transport *t2 = NULL;
        struct aegis_msg m;
        struct aegis_msg got;
        int rv;

        heap.budget = budget;
        memset(&m, 0, sizeof(m));
        m.type = AEGIS_MSG_APPEND_REQ;
        m.to = 2;
        m.append_req.entries = &e;
        m.append_req.entries_count = 1;
        rv = aegis__mem_network_create(&net, 4, &a);
        if (rv == 0) {
            rv = aegis__mem_transport_create(&t1, net, 1);
        }
        if (rv == 0) {
            rv = aegis__mem_transport_create(&t2, net, 2);
        }
        if (rv == 0) {
            rv = aegis__mem_network_set_link(net, 2, 1, false);
        }
        if (rv == 0) {
            rv = aegis__transport_send(t1, &m);
            if (rv != 0) {
                ASSERT_EQ_U64(aegis__transport_pending(t2), 0);
            }
        }
        if (rv == 0) {
            done = true;
            ASSERT_OK(aegis__transport_receive(t2, &got));
            ASSERT_EQ_U64(got.append_req.entries[0].index, 1);
            aegis__transport_release(t2, &got);
        } else {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
        }
        aegis__transport_destroy(t1);
        aegis__transport_destroy(t2);
        aegis__mem_network_destroy(net);
    }
    ASSERT_TRUE(done);
    return TEST_PASS;
}
