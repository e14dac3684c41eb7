/* SPDX-License-Identifier: MIT */
/* Tests of the rate limiter behind AEGIS_LOG_RATELIMITED (pipeline/logging.c): a burst
 * from one call site writes at most AEGIS_LOG_RATELIMIT_LINES lines per one-second window
 * (a flood of forged peer messages or bad hellos cannot fill the disk with warnings), and
 * the lines it drops are counted and handed to the next line that is written. */
#include "lib/test.h"
#include "pipeline/logging.h"

TEST(logging, ratelimit_bounds_a_burst_and_reports_the_suppressed_count)
{
    struct aegis_log_limit l = {0};
    uint64_t suppressed = 99, allowed = 0, t0 = aegis__now_ns(), seconds;

    for (int i = 0; i < 100000; i++) {
        if (aegis__log_ratelimit(&l, &suppressed)) {
            ASSERT_EQ_U64(suppressed, 0); /* Nothing dropped before these. */
            allowed++;
        }
    }
    /* Bounded by the windows the burst spanned, whatever the machine's speed. */
    seconds = (aegis__now_ns() - t0) / 1000000000u + 1;
    ASSERT_TRUE(allowed >= 1);
    ASSERT_TRUE(allowed <= AEGIS_LOG_RATELIMIT_LINES * (seconds + 1));
    /* The next window: the first line carries the count of lines dropped so far. */
    l.window_ns = 1;
    ASSERT_TRUE(aegis__log_ratelimit(&l, &suppressed));
    ASSERT_EQ_U64(suppressed, 100000 - allowed);
    ASSERT_TRUE(aegis__log_ratelimit(&l, &suppressed));
    ASSERT_EQ_U64(suppressed, 0);
    return TEST_PASS;
}
