/* SPDX-License-Identifier: MIT */
/* The public KV command encoders produce what the state machine decodes. */
#include <aegis/aegis.h>

#include "engine/kv.h"
#include "lib/test.h"

TEST(kv_api, encoders_round_trip_through_the_decoder)
{
    uint8_t buf[256];
    struct aegis_kv_cmd cmd;
    int64_t n;

    n = aegis_cmd_set(buf, sizeof(buf), "k", 1, "value", 5);
    ASSERT_TRUE(n > 0);
    ASSERT_OK(aegis__kv_cmd_decode(buf, (size_t)n, &cmd));
    ASSERT_EQ_U64(cmd.type, AEGIS_KV_SET);
    ASSERT_MEM_EQ(cmd.value.data, "value", 5);
    n = aegis_cmd_incr(buf, sizeof(buf), "k", 1, -3);
    ASSERT_OK(aegis__kv_cmd_decode(buf, (size_t)n, &cmd));
    ASSERT_EQ_I64(cmd.delta, -3);
    n = aegis_cmd_cas(buf, sizeof(buf), "k", 1, NULL, 0, "v", 1);
    ASSERT_OK(aegis__kv_cmd_decode(buf, (size_t)n, &cmd));
    ASSERT_FALSE(cmd.expected_present);
    n = aegis_cmd_del(buf, sizeof(buf), "k", 1);
    ASSERT_OK(aegis__kv_cmd_decode(buf, (size_t)n, &cmd));
    ASSERT_EQ_U64(cmd.count, 1);
    n = aegis_cmd_get(buf, sizeof(buf), "k", 1);
    ASSERT_OK(aegis__kv_cmd_decode(buf, (size_t)n, &cmd));
    ASSERT_EQ_U64(cmd.type, AEGIS_KV_GET);
    /* Too small a buffer is refused, not overrun. */
    ASSERT_ERR(aegis_cmd_set(buf, 4, "k", 1, "value", 5), AEGIS_ETOOBIG);
    return TEST_PASS;
}
