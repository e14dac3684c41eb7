/* SPDX-License-Identifier: MIT */
/* Tests of the bottom layer: errors, buffers, the seeded generator. */
#include <aegis/error.h>

#include "engine/buf.h"
#include "engine/msg.h"
#include "engine/rng.h"
#include "lib/test.h"

TEST(error, strerror_and_names)
{
    ASSERT_STR_EQ(aegis_strerror(AEGIS_ENOSPC), "no space left on device");
    ASSERT_STR_EQ(aegis_err_name(AEGIS_ENOTLEADER), "AEGIS_ENOTLEADER");
    ASSERT_STR_EQ(aegis_strerror(-123456), "unknown error");
    ASSERT_EQ_I64(AEGIS_EIO, -EIO);
    return TEST_PASS;
}

TEST(buf, refcount_lifecycle)
{
    struct aegis_buf *b = aegis__buf_from(NULL, "hello", 5);

    ASSERT_TRUE(b != NULL);
    ASSERT_EQ_U64(b->len, 5);
    ASSERT_MEM_EQ(b->data, "hello", 5);
    aegis__buf_ref(b);
    ASSERT_EQ_U64(b->refs, 2);
    aegis__buf_unref(b);
    ASSERT_EQ_U64(b->refs, 1);
    aegis__buf_unref(b); /* Frees; ASan reports a leak or double free if this is wrong. */
    ASSERT_TRUE(aegis__buf_create(NULL, (size_t)AEGIS_BUF_LEN_MAX + 1) == NULL);
    return TEST_PASS;
}

TEST(msg, clone_shares_payloads)
{
    struct aegis_entry e = {.index = 1, .term = 1, .type = AEGIS_ENTRY_COMMAND};
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_REQ}, c;

    e.buf = aegis__buf_from(NULL, "x", 1);
    m.append_req.entries = &e;
    m.append_req.entries_count = 1;
    ASSERT_OK(aegis__msg_clone(&c, &m, NULL));
    ASSERT_TRUE(c.append_req.entries != m.append_req.entries);
    ASSERT_TRUE(c.append_req.entries[0].buf == e.buf);
    ASSERT_EQ_U64(e.buf->refs, 2);
    aegis__msg_release(&c, NULL);
    ASSERT_EQ_U64(e.buf->refs, 1);
    aegis__buf_unref(e.buf);
    return TEST_PASS;
}

TEST(rng, seeded_replays_and_ranges)
{
    struct aegis_rng a, b;

    aegis__rng_seed(&a, 42);
    aegis__rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) {
        uint64_t x = aegis__rng_range(&a, 10, 20);

        ASSERT_EQ_U64(x, aegis__rng_range(&b, 10, 20));
        ASSERT_TRUE(x >= 10 && x <= 20);
    }
    aegis__rng_seed(&b, 43);
    ASSERT_TRUE(aegis__rng_next(&a) != aegis__rng_next(&b));
    return TEST_PASS;
}

#include "engine/crc32c.h"

TEST(crc32c, check_value_and_hw_matches_sw)
{
    uint8_t buf[1000];
    struct aegis_rng rng;

    ASSERT_EQ_U64(aegis__crc32c(0, "123456789", 9), 0xe3069283u);
    ASSERT_EQ_U64(aegis__crc32c_sw(0, "123456789", 9), 0xe3069283u);
    aegis__rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)aegis__rng_next(&rng);
    }
    for (size_t len = 0; len < sizeof(buf); len += 37) {
        ASSERT_EQ_U64(aegis__crc32c(0, buf, len), aegis__crc32c_sw(0, buf, len));
    }
    /* Incremental equals one shot. */
    ASSERT_EQ_U64(aegis__crc32c(aegis__crc32c(0, buf, 100), buf + 100, 900),
                  aegis__crc32c(0, buf, 1000));
    return TEST_PASS;
}
