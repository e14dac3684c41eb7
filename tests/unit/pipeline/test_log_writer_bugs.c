/* SPDX-License-Identifier: MIT */
/* The power-loss checker of log_writer_util.h must be able to fail: each deliberately
 * broken log writer (log_writer.h, AEGIS_LOG_BUG_*) is run through the same crash points
 * as log_writer.power_loss_never_loses_reported, and the checker must report a violation
 * for at least one of them. The variants exist only in aegis_bugs, the test-only library
 * this test links with AEGIS_SIM_BUGS (tests/CMakeLists.txt); without it the test skips. */
#include "log_writer_util.h"

#ifdef AEGIS_SIM_BUGS
/* Crash points 1.., DROP and TEAR, until the checker objects; true when it did. */
static enum test_result caught(uint32_t bug, enum aegis_log_sync sync, bool *caught_out)
{
    struct pl_params p = {.sync = sync, .bugs = bug};
    uint64_t ops = 0;
    char why[256];

    *caught_out = false;
    /* k = 0 first: no crash, then the power cut once the writer has stopped. */
    ASSERT_EQ_I64(pl_run(&p, why, sizeof(why), &ops), TEST_PASS);
    while (why[0] == '\0' && p.k <= ops) {
        p.k++;
        for (int m = 0; m < 2 && why[0] == '\0'; m++) {
            p.mode = m == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;
            p.seed = test_seed() + p.k * 2 + (uint64_t)m;
            ASSERT_EQ_I64(pl_run(&p, why, sizeof(why), NULL), TEST_PASS);
        }
    }
    if (why[0] != '\0') {
        fprintf(stderr, "  bug 0x%x caught at crash point %llu (0: none) of %llu ops: %s\n",
                bug, (unsigned long long)p.k, (unsigned long long)ops, why);
        *caught_out = true;
    }
    return TEST_PASS;
}

#define CAUGHT(bug, sync)                                                                  \
    do {                                                                                   \
        bool hit_;                                                                         \
        ASSERT_EQ_I64(caught((bug), (sync), &hit_), TEST_PASS);                             \
        ASSERT_TRUE(hit_);                                                                 \
    } while (0)
#endif

TEST(log_writer_bugs, no_log_fdatasync_caught)
{
#ifdef AEGIS_SIM_BUGS
    CAUGHT(AEGIS_LOG_BUG_NO_LOG_SYNC, AEGIS_LOG_SYNC_FDATASYNC);
    return TEST_PASS;
#else
    SKIP("built without AEGIS_SIM_BUGS");
#endif
}

TEST(log_writer_bugs, no_hard_state_fdatasync_caught)
{
#ifdef AEGIS_SIM_BUGS
    CAUGHT(AEGIS_LOG_BUG_NO_HS_SYNC, AEGIS_LOG_SYNC_FDATASYNC);
    return TEST_PASS;
#else
    SKIP("built without AEGIS_SIM_BUGS");
#endif
}

TEST(log_writer_bugs, unlinked_log_fdatasync_caught)
{
#ifdef AEGIS_SIM_BUGS
    CAUGHT(AEGIS_LOG_BUG_UNLINKED_LOG_SYNC, AEGIS_LOG_SYNC_FDATASYNC);
    return TEST_PASS;
#else
    SKIP("built without AEGIS_SIM_BUGS");
#endif
}

TEST(log_writer_bugs, unlinked_hard_state_fdatasync_caught)
{
#ifdef AEGIS_SIM_BUGS
    CAUGHT(AEGIS_LOG_BUG_UNLINKED_HS_SYNC, AEGIS_LOG_SYNC_FDATASYNC);
    return TEST_PASS;
#else
    SKIP("built without AEGIS_SIM_BUGS");
#endif
}

TEST(log_writer_bugs, report_before_sync_caught)
{
#ifdef AEGIS_SIM_BUGS
    CAUGHT(AEGIS_LOG_BUG_REPORT_BEFORE_SYNC, AEGIS_LOG_SYNC_FDATASYNC);
    CAUGHT(AEGIS_LOG_BUG_REPORT_BEFORE_SYNC, AEGIS_LOG_SYNC_DSYNC);
    return TEST_PASS;
#else
    SKIP("built without AEGIS_SIM_BUGS");
#endif
}
