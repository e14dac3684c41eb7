/* SPDX-License-Identifier: MIT */
/* The net thread's log rate limiter (net/ratelimit.h), on a clock the test drives. */
#include "lib/test.h"
#include "net/ratelimit.h"

TEST(ratelimit, one_line_per_period_with_the_count_held_back)
{
    struct aegis_ratelimit rl = {0, 0};
    uint64_t suppressed = 99;

    ASSERT_TRUE(aegis__ratelimit_pass(&rl, 5000, &suppressed));
    ASSERT_EQ_U64(suppressed, 0);
    for (uint64_t t = 5000; t < 6000; t += 10) {
        ASSERT_FALSE(aegis__ratelimit_pass(&rl, t, &suppressed));
    }
    ASSERT_TRUE(aegis__ratelimit_pass(&rl, 6000, &suppressed));
    ASSERT_EQ_U64(suppressed, 100);
    /* A quiet spell: the next line passes at once and reports nothing held back. */
    ASSERT_TRUE(aegis__ratelimit_pass(&rl, 60000, &suppressed));
    ASSERT_EQ_U64(suppressed, 0);
    ASSERT_FALSE(aegis__ratelimit_pass(&rl, 60999, &suppressed));
    return TEST_PASS;
}
