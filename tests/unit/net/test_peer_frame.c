/* SPDX-License-Identifier: MIT */
/* The hello and frame reassembly as pure functions (net/peer_frame.h): the byte layout,
 * every refusal, reserved flags, and frame lengths around the limit. */
#include <string.h>

#include <aegis/error.h>

#include <aegis/aegis.h>

#include "lib/test.h"
#include "net/peer_frame.h"

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

TEST(peer_frame, hello_layout_and_round_trip)
{
    uint8_t b[AEGIS_HELLO_BYTES];
    struct aegis_hello h;

    aegis__hello_encode(b, 0x1122334455667788ull, 3, UINT64_MAX);
    ASSERT_MEM_EQ(b, "AEGN", 4);
    ASSERT_EQ_U64(b[4] | b[5] << 8, 1);
    ASSERT_EQ_U64(b[6] | b[7] << 8, 0);
    ASSERT_EQ_U64(get64(b + 8), 0x1122334455667788ull);
    ASSERT_EQ_U64(get64(b + 16), 3);
    ASSERT_EQ_U64(get64(b + 24), UINT64_MAX);
    ASSERT_OK(aegis__hello_decode(b, sizeof(b), &h));
    ASSERT_EQ_U64(h.magic, AEGIS_HELLO_MAGIC);
    ASSERT_EQ_U64(h.version, 1);
    ASSERT_EQ_U64(h.flags, 0);
    ASSERT_EQ_U64(h.cluster_id, 0x1122334455667788ull);
    ASSERT_EQ_U64(h.sender, 3);
    ASSERT_EQ_U64(h.receiver, UINT64_MAX);
    return TEST_PASS;
}

TEST(peer_frame, hello_decode_refusals)
{
    uint8_t b[AEGIS_HELLO_BYTES + 8];
    struct aegis_hello h;

    aegis__hello_encode(b, 1, 1, 2);
    for (size_t n = 0; n < AEGIS_HELLO_BYTES; n++) {
        ASSERT_ERR(aegis__hello_decode(b, n, &h), AEGIS_EAGAIN);
    }
    /* Trailing bytes (the first frame) do not matter. */
    ASSERT_OK(aegis__hello_decode(b, sizeof(b), &h));
    b[0] ^= 1;
    ASSERT_ERR(aegis__hello_decode(b, AEGIS_HELLO_BYTES, &h), AEGIS_ECORRUPT);
    b[0] ^= 1;
    b[4] = 2;
    ASSERT_ERR(aegis__hello_decode(b, AEGIS_HELLO_BYTES, &h), AEGIS_EVERSION);
    b[4] = 1;
    /* Every reserved flag bit, alone, is refused. */
    for (int bit = 0; bit < 16; bit++) {
        b[6] = (uint8_t)((1u << bit) & 0xff);
        b[7] = (uint8_t)((1u << bit) >> 8);
        ASSERT_ERR(aegis__hello_decode(b, AEGIS_HELLO_BYTES, &h), AEGIS_ECORRUPT);
    }
    b[6] = b[7] = 0;
    ASSERT_OK(aegis__hello_decode(b, AEGIS_HELLO_BYTES, &h));
    return TEST_PASS;
}

/* A refused hello is described for the log; a version mismatch names both versions (the
 * peer's and ours) and this build's release. */
TEST(peer_frame, hello_refusal_names_both_versions)
{
    uint8_t b[AEGIS_HELLO_BYTES];
    struct aegis_hello h;
    char why[160], want[160];

    aegis__hello_encode(b, 1, 1, 2);
    b[4] = 7;
    ASSERT_ERR(aegis__hello_decode(b, sizeof(b), &h), AEGIS_EVERSION);
    aegis__hello_describe(AEGIS_EVERSION, &h, why, sizeof(why));
    snprintf(want, sizeof(want),
             "hello protocol version 7 from the peer, this node speaks %u (aegis %s)",
             AEGIS_HELLO_VERSION, aegis_version());
    ASSERT_STR_EQ(why, want);
    b[4] = 1;
    b[0] = 'X';
    ASSERT_ERR(aegis__hello_decode(b, sizeof(b), &h), AEGIS_ECORRUPT);
    aegis__hello_describe(AEGIS_ECORRUPT, &h, why, sizeof(why));
    ASSERT_TRUE(strstr(why, "not an Aegis peer hello (magic 0x4e474558") == why);
    aegis__hello_describe(AEGIS_ECLUSTER, &h, why, 8); /* Cut, still terminated. */
    ASSERT_TRUE(strlen(why) == 7);
    return TEST_PASS;
}

TEST(peer_frame, hello_check)
{
    struct aegis_hello h = {.magic = AEGIS_HELLO_MAGIC, .version = 1, .cluster_id = 7,
                            .sender = 2, .receiver = 5};
    struct aegis_hello_expect any = {.cluster_id = 7, .self_id = 5};
    struct aegis_hello_expect exact = {.cluster_id = 7, .self_id = 5, .sender_id = 2};
    struct aegis_hello_expect other = {.cluster_id = 7, .self_id = 5, .sender_id = 3};

    ASSERT_OK(aegis__hello_check(&h, &any));
    ASSERT_OK(aegis__hello_check(&h, &exact));
    /* A certificate (or a dial) naming node 3 and a hello saying node 2: refused. */
    ASSERT_ERR(aegis__hello_check(&h, &other), AEGIS_EUNKNOWNNODE);
    h.cluster_id = 8;
    ASSERT_ERR(aegis__hello_check(&h, &any), AEGIS_ECLUSTER);
    h.cluster_id = 7;
    h.receiver = 6;
    ASSERT_ERR(aegis__hello_check(&h, &any), AEGIS_EUNKNOWNNODE);
    h.receiver = 5;
    h.sender = 0;
    ASSERT_ERR(aegis__hello_check(&h, &any), AEGIS_EUNKNOWNNODE);
    h.sender = 5; /* Ourselves. */
    ASSERT_ERR(aegis__hello_check(&h, &any), AEGIS_EUNKNOWNNODE);
    return TEST_PASS;
}

TEST(peer_frame, frame_next_boundaries)
{
    uint8_t b[16] = {0};
    uint32_t len = 99;
    size_t need = 0;

    for (size_t n = 0; n < AEGIS_FRAME_HDR; n++) {
        ASSERT_EQ_I64(aegis__frame_next(b, n, 10, &len, &need), 0);
        ASSERT_EQ_U64(need, AEGIS_FRAME_HDR);
    }
    /* Empty body: a whole frame in 4 bytes. */
    ASSERT_EQ_I64(aegis__frame_next(b, 4, 10, &len, &need), 1);
    ASSERT_EQ_U64(len, 0);
    /* Body of exactly the limit: accepted, needs 14 bytes. */
    b[0] = 10;
    ASSERT_EQ_I64(aegis__frame_next(b, 13, 10, &len, &need), 0);
    ASSERT_EQ_U64(need, 14);
    ASSERT_EQ_I64(aegis__frame_next(b, 14, 10, &len, &need), 1);
    ASSERT_EQ_U64(len, 10);
    /* One above the limit: refused at once, before the body arrives. */
    b[0] = 11;
    ASSERT_ERR(aegis__frame_next(b, 4, 10, &len, &need), AEGIS_ETOOBIG);
    ASSERT_EQ_U64(len, 11);
    /* The largest length on the wire against the largest limit. */
    memset(b, 0xff, 4);
    ASSERT_ERR(aegis__frame_next(b, 4, UINT32_MAX - 1, &len, &need), AEGIS_ETOOBIG);
    ASSERT_EQ_I64(aegis__frame_next(b, 16, UINT32_MAX, &len, &need), 0);
    ASSERT_EQ_U64(need, (size_t)UINT32_MAX + 4);
    return TEST_PASS;
}
