/* SPDX-License-Identifier: MIT */
/* The per-connection order gate and the read floor (pipeline/conn_order.h), and the
 * forwarded admin request envelope (pipeline/envelope.h). */
#include <string.h>

#include "engine/alloc.h"
#include "lib/test.h"
#include "pipeline/conn_order.h"
#include "pipeline/envelope.h"

TEST(conn_order, reads_pipeline_until_a_write_and_writes_until_a_read)
{
    struct aegis_conn_order o = {0};

    /* Only reads, or only writes: no waiting at all. */
    for (int i = 0; i < 5; i++) {
        ASSERT_TRUE(aegis__order_may_start(&o, AEGIS_ORDER_READ));
        aegis__order_started(&o, AEGIS_ORDER_READ);
    }
    /* A write behind outstanding reads waits; commands outside the store never do. */
    ASSERT_FALSE(aegis__order_may_start(&o, AEGIS_ORDER_WRITE));
    ASSERT_TRUE(aegis__order_may_start(&o, AEGIS_ORDER_NONE));
    for (int i = 0; i < 4; i++) {
        ASSERT_FALSE(aegis__order_done(&o, AEGIS_ORDER_READ));
        ASSERT_FALSE(aegis__order_may_start(&o, AEGIS_ORDER_WRITE));
    }
    ASSERT_TRUE(aegis__order_done(&o, AEGIS_ORDER_READ)); /* The last one frees the way. */
    ASSERT_TRUE(aegis__order_may_start(&o, AEGIS_ORDER_WRITE));
    aegis__order_started(&o, AEGIS_ORDER_WRITE);
    aegis__order_started(&o, AEGIS_ORDER_WRITE);
    ASSERT_FALSE(aegis__order_may_start(&o, AEGIS_ORDER_READ));
    ASSERT_FALSE(aegis__order_done(&o, AEGIS_ORDER_WRITE));
    ASSERT_TRUE(aegis__order_done(&o, AEGIS_ORDER_WRITE));
    ASSERT_TRUE(aegis__order_may_start(&o, AEGIS_ORDER_READ));
    ASSERT_FALSE(aegis__order_done(&o, AEGIS_ORDER_NONE));
    return TEST_PASS;
}

/* A connection's commands, answered in any order: never a read and a write in flight at
 * once, every command eventually admitted, and the commands admitted in the order sent. */
TEST(conn_order, a_random_pipeline_never_mixes_reads_and_writes_in_flight)
{
    uint64_t rng = 0x9e3779b97f4a7c15ull;

    for (int run = 0; run < 200; run++) {
        struct aegis_conn_order o = {0};
        enum aegis_order_class sent[64], flight[64];
        uint32_t next = 0, nflight = 0, count = 1u + (uint32_t)run % 64u;

        for (uint32_t i = 0; i < count; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            sent[i] = (enum aegis_order_class)(rng >> 62) % 3u;
        }
        while (next < count || nflight > 0) {
            bool admit;

            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            admit = next < count && ((rng >> 33) & 1) != 0;
            if (admit && aegis__order_may_start(&o, sent[next])) {
                aegis__order_started(&o, sent[next]);
                flight[nflight++] = sent[next++];
            } else if (nflight > 0) {
                uint32_t k = (uint32_t)(rng >> 40) % nflight; /* Any one is answered. */

                aegis__order_done(&o, flight[k]);
                flight[k] = flight[--nflight];
            } else if (next < count) {
                /* Nothing in flight: the next command must be admitted. */
                ASSERT_TRUE(aegis__order_may_start(&o, sent[next]));
            }
            ASSERT_FALSE(o.reads > 0 && o.writes > 0);
        }
        ASSERT_EQ_U64(o.reads, 0);
        ASSERT_EQ_U64(o.writes, 0);
    }
    return TEST_PASS;
}

TEST(conn_order, read_floor_never_goes_back)
{
    uint64_t floor = 0;

    ASSERT_EQ_U64(aegis__read_floor(&floor, 10), 10);
    ASSERT_EQ_U64(aegis__read_floor(&floor, 7), 10); /* An older round's index: raised. */
    ASSERT_EQ_U64(aegis__read_floor(&floor, 12), 12);
    ASSERT_EQ_U64(aegis__read_floor(&floor, 0), 12);
    ASSERT_EQ_U64(floor, 12);
    return TEST_PASS;
}

TEST(env_admin, round_trips)
{
    struct aegis_peer_addr addr = {.id = 4, .port = 7004}, got;
    struct aegis_buf *b;
    aegis_node_id target;
    uint8_t op;

    strcpy(addr.host, "10.0.0.4");
    b = aegis__env_admin(NULL, AEGIS_ENV_ADMIN_ADD, 4, &addr);
    ASSERT_TRUE(b != NULL);
    ASSERT_EQ_U64(b->data[0], AEGIS_ENV_ADMIN);
    ASSERT_OK(aegis__env_admin_decode(b->data + 1, b->len - 1, &op, &target, &got));
    ASSERT_EQ_U64(op, AEGIS_ENV_ADMIN_ADD);
    ASSERT_EQ_U64(target, 4);
    ASSERT_EQ_U64(got.id, 4);
    ASSERT_EQ_U64(got.port, 7004);
    ASSERT_STR_EQ(got.host, "10.0.0.4");
    aegis__buf_unref(b);
    for (uint8_t o = AEGIS_ENV_ADMIN_REMOVE; o <= AEGIS_ENV_ADMIN_TRANSFER; o++) {
        b = aegis__env_admin(NULL, o, 77, NULL);
        ASSERT_TRUE(b != NULL);
        ASSERT_EQ_U64(b->len, 10);
        ASSERT_OK(aegis__env_admin_decode(b->data + 1, b->len - 1, &op, &target, &got));
        ASSERT_EQ_U64(op, o);
        ASSERT_EQ_U64(target, 77);
        aegis__buf_unref(b);
    }
    /* Refused at encoding: no target, an unknown op, an add without a matching address. */
    ASSERT_TRUE(aegis__env_admin(NULL, AEGIS_ENV_ADMIN_REMOVE, 0, NULL) == NULL);
    ASSERT_TRUE(aegis__env_admin(NULL, 9, 3, NULL) == NULL);
    ASSERT_TRUE(aegis__env_admin(NULL, AEGIS_ENV_ADMIN_ADD, 4, NULL) == NULL);
    ASSERT_TRUE(aegis__env_admin(NULL, AEGIS_ENV_ADMIN_ADD, 5, &addr) == NULL);
    return TEST_PASS;
}

TEST(env_admin, hostile_input_is_refused)
{
    struct aegis_peer_addr addr = {.id = 4, .port = 7004}, got;
    uint8_t bytes[64], bad[64];
    struct aegis_buf *b;
    aegis_node_id target;
    size_t len;
    uint8_t op;

    strcpy(addr.host, "h");
    b = aegis__env_admin(NULL, AEGIS_ENV_ADMIN_ADD, 4, &addr);
    ASSERT_TRUE(b != NULL);
    len = b->len - 1;
    memcpy(bytes, b->data + 1, len);
    aegis__buf_unref(b);
    /* Every truncation, and one byte too many. */
    for (size_t l = 0; l < len; l++) {
        ASSERT_ERR(aegis__env_admin_decode(bytes, l, &op, &target, &got), AEGIS_ECORRUPT);
    }
    memcpy(bad, bytes, len);
    bad[len] = 0;
    ASSERT_ERR(aegis__env_admin_decode(bad, len + 1, &op, &target, &got), AEGIS_ECORRUPT);
    /* Unknown ops, a zero target, an address for another node, a zero port. */
    memcpy(bad, bytes, len);
    bad[0] = 0;
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    bad[0] = 4;
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    memcpy(bad, bytes, len);
    memset(bad + 1, 0, 8);
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    memcpy(bad, bytes, len);
    bad[1] = 5;
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    memcpy(bad, bytes, len);
    bad[9 + 8] = 0;
    bad[9 + 9] = 0;
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    /* A remove or transfer carries nothing after the target. */
    memcpy(bad, bytes, len);
    bad[0] = AEGIS_ENV_ADMIN_REMOVE;
    ASSERT_ERR(aegis__env_admin_decode(bad, len, &op, &target, &got), AEGIS_ECORRUPT);
    ASSERT_OK(aegis__env_admin_decode(bad, 9, &op, &target, &got));
    return TEST_PASS;
}
