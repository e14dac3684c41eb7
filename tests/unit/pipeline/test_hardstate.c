/* SPDX-License-Identifier: MIT */
/* Tests of the hard state file: round trip, alternating slots, a crash at every step of
 * the creation and write sequences (old or new value, never a mix), corrupt slots. */
#include <aegis/error.h>
#include <fcntl.h>
#include <stdio.h>

#include "lib/test.h"
#include "pipeline/hardstate.h"
#include "util.h"

static bool hs_eq(const struct aegis_hard_state *a, const struct aegis_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

TEST(hardstate, roundtrip_and_slots)
{
    struct aegis_hardstate_file h;
    struct aegis_hard_state hs, got;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_EQ_U64(got.term, 0);
    ASSERT_EQ_U64(got.vote, 0);
    for (uint64_t i = 1; i <= 5; i++) {
        uint32_t slot_before = h.slot;

        hs = (struct aegis_hard_state){.term = i, .vote = i % 3, .commit = i * 10};
        ASSERT_OK(aegis__hardstate_write(&h, &hs));
        ASSERT_EQ_U64(h.slot, 1 - slot_before); /* Never overwrites the current slot. */
    }
    aegis__hardstate_close(&h);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_TRUE(hs_eq(&got, &hs));
    aegis__hardstate_close(&h);
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(hardstate, corrupt_slots)
{
    struct aegis_hardstate_file h;
    struct aegis_hard_state a = {.term = 3, .vote = 2, .commit = 9}, b = {.term = 4}, got;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_OK(aegis__hardstate_write(&h, &a));
    ASSERT_OK(aegis__hardstate_write(&h, &b));
    aegis__hardstate_close(&h);
    snprintf(path, sizeof(path), "%s/hardstate", dir);
    ASSERT_OK(util_read(path, &buf, &len));
    ASSERT_EQ_U64(len, AEGIS_HARDSTATE_FILE_BYTES);
    /* b went to slot 0 (a to slot 1): damage slot 0 and a is back. */
    buf[20] ^= 1;
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_TRUE(hs_eq(&got, &a));
    aegis__hardstate_close(&h);
    /* Both damaged: refuse. */
    buf[512 + 30] ^= 1;
    ASSERT_OK(util_write(path, buf, len));
    ASSERT_ERR(aegis__hardstate_open(&h, dir, NULL, NULL, &got), AEGIS_ECORRUPT);
    free(buf);
    util_rmrf(dir);
    return TEST_PASS;
}

/* A damaged newer slot is a fall back, flagged (the node then withholds its vote) and
 * logged; a healthy file or a new one (slot 1 never written) is not. */
TEST(hardstate, fallback_is_flagged)
{
    struct aegis_hardstate_file h;
    struct aegis_hard_state a = {.term = 5, .vote = 2}, b = {.term = 6, .vote = 3}, got;
    char dir[64], path[4096];
    uint8_t *buf;
    size_t len;

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_FALSE(h.fell_back); /* New file: slot 1 is untouched zeros. */
    ASSERT_OK(aegis__hardstate_write(&h, &a));
    ASSERT_OK(aegis__hardstate_write(&h, &b));
    aegis__hardstate_close(&h);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_FALSE(h.fell_back);
    ASSERT_TRUE(hs_eq(&got, &b));
    aegis__hardstate_close(&h);
    snprintf(path, sizeof(path), "%s/hardstate", dir);
    ASSERT_OK(util_read(path, &buf, &len));
    buf[24] ^= 0x40; /* b's vote, in slot 0. */
    ASSERT_OK(util_write(path, buf, len));
    free(buf);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    ASSERT_TRUE(h.fell_back);
    ASSERT_TRUE(hs_eq(&got, &a));
    aegis__hardstate_close(&h);
    util_rmrf(dir);
    return TEST_PASS;
}

/* Open (creating), write v1..v3, with the machine dying after op @k; after the power cut
 * the value must be the last one written successfully or the one in progress. */
static enum test_result crash_once(uint64_t k, enum aegis_fault_powerloss mode, uint64_t seed,
                                   bool *completed_out)
{
    static const struct aegis_hard_state v[4] = {
        {0, 0, 0}, {.term = 1, .vote = 1, .commit = 0},
        {.term = 2, .vote = 3, .commit = 7}, {.term = 2, .vote = 3, .commit = 11}};
    struct aegis_fileio_fault f;
    struct aegis_hardstate_file h;
    struct aegis_hard_state got;
    int last_ok = -1, in_progress = -1;
    char dir[64];

    ASSERT_TRUE(util_tmpdir(dir) != NULL);
    aegis__fileio_fault_init(&f);
    f.crash_after = k;
    f.dead = k == 0; /* crash_after 0 means off: dead from the start instead. */
    f.tear_bytes = 8; /* Assume no atomic sectors: a slot write can tear inside. */
    if (aegis__hardstate_open(&h, dir, &f.base, NULL, &got) == 0) {
        last_ok = 0;
        for (int i = 1; i <= 3; i++) {
            if (aegis__hardstate_write(&h, &v[i]) != 0) {
                in_progress = i;
                break;
            }
            last_ok = i;
        }
        aegis__hardstate_close(&h);
    } else {
        in_progress = 0;
    }
    *completed_out = last_ok == 3;
    ASSERT_OK(aegis__fileio_fault_powerloss(&f, mode, seed));
    aegis__fileio_fault_close(&f);
    ASSERT_OK(aegis__hardstate_open(&h, dir, NULL, NULL, &got));
    aegis__hardstate_close(&h);
    if (!(last_ok >= 0 && hs_eq(&got, &v[last_ok])) &&
        !(in_progress >= 0 && hs_eq(&got, &v[in_progress]))) {
        FAIL("crash after op %llu: term %llu commit %llu is neither old nor new",
             (unsigned long long)k, (unsigned long long)got.term,
             (unsigned long long)got.commit);
    }
    util_rmrf(dir);
    return TEST_PASS;
}

TEST(hardstate, crash_at_every_step)
{
    bool completed = false;
    uint64_t k;

    /* Stop once the whole sequence fits before the crash point. */
    for (k = 0; !completed && k < 100; k++) {
        for (uint64_t s = 0; s < 16; s++) {
            enum aegis_fault_powerloss mode = s == 0 ? AEGIS_FAULT_DROP : AEGIS_FAULT_TEAR;

            if (crash_once(k, mode, test_seed() + k * 13 + s, &completed) != TEST_PASS) {
                return TEST_FAIL;
            }
        }
    }
    ASSERT_TRUE(completed);
    ASSERT_TRUE(k > 8); /* Creation takes 5 steps and each write 2. */
    return TEST_PASS;
}

TEST(hardstate, decode_rejects_garbage)
{
    uint8_t buf[AEGIS_HARDSTATE_SLOT_BYTES] = {0};
    struct aegis_hard_state hs;
    uint64_t seq;

    ASSERT_ERR(aegis__hardstate_decode(buf, sizeof(buf), &seq, &hs), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__hardstate_decode(buf, 10, &seq, &hs), AEGIS_ECORRUPT);
    return TEST_PASS;
}
