/* SPDX-License-Identifier: MIT */
/* Tests of the snapshot file header and hard state slot codecs as hostile-input decoders:
 * the writer leaves every reserved byte zero, and the reader refuses a header whose
 * reserved bytes, unused member slots or members are not what the writer makes, even
 * with a correct CRC (a corrupt file that happens to pass its CRC, or a future format,
 * must not load as something else). Fuzzed by tests/fuzz/fuzz_snapshot_header.c and
 * fuzz_hardstate.c. */
#include <aegis/error.h>

#include "engine/crc32c.h"
#include "lib/test.h"
#include "pipeline/hardstate.h"
#include "pipeline/snapshot_file.h"

static struct aegis_snapshot_meta sample_meta(uint32_t count)
{
    struct aegis_snapshot_meta m;

    memset(&m, 0, sizeof(m));
    m.index = 1234;
    m.term = 7;
    m.conf.count = count;
    for (uint32_t i = 0; i < count; i++) {
        m.conf.members[i].id = 100 + i;
        m.conf.members[i].role = i % 2 == 0 ? AEGIS_MEMBER_VOTER : AEGIS_MEMBER_LEARNER;
    }
    return m;
}

static void put_crc(uint8_t *h)
{
    uint32_t crc = aegis__crc32c(0, h, 316);

    for (int i = 0; i < 4; i++) {
        h[316 + i] = (uint8_t)(crc >> (8 * i));
    }
}

/* Whether byte @off of a header with @count members is reserved (or in an unused slot). */
static bool reserved_byte(size_t off, uint32_t count)
{
    if ((off >= 36 && off < 40) || (off >= 52 && off < 56) || (off >= 312 && off < 316)) {
        return true;
    }
    if (off >= 56 && off < 312) {
        size_t slot = (off - 56) / 16, in = (off - 56) % 16;

        return slot >= count || in >= 9;
    }
    return false;
}

TEST(snapshot_header, writer_zeroes_reserved_bytes)
{
    uint8_t h[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct aegis_snapshot_meta m = sample_meta(3);

    memset(h, 0xa5, sizeof(h));
    aegis__snapshot_header_encode(&m, 99, 0xdeadbeef, h);
    for (size_t off = 0; off < sizeof(h); off++) {
        if (reserved_byte(off, 3) && h[off] != 0) {
            FAIL("encoder left byte %zu = 0x%02x", off, h[off]);
        }
    }
    ASSERT_TRUE(aegis__snapshot_header_check(h, sizeof(h)) == NULL);
    return TEST_PASS;
}

/* Every reserved byte set to non-zero, with the header CRC made right again, is refused
 * with a message saying what is wrong. */
TEST(snapshot_header, nonzero_reserved_refused)
{
    uint8_t h[AEGIS_SNAPSHOT_HEADER_BYTES], bad[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct aegis_snapshot_meta m = sample_meta(3), got;
    uint64_t data_len;
    uint32_t data_crc, refused = 0;

    aegis__snapshot_header_encode(&m, 99, 0xdeadbeef, h);
    for (size_t off = 0; off < sizeof(h); off++) {
        const char *why;

        if (!reserved_byte(off, 3)) {
            continue;
        }
        memcpy(bad, h, sizeof(h));
        bad[off] = 0x01;
        put_crc(bad);
        if (aegis__snapshot_header_decode(bad, sizeof(bad), &got, &data_len, &data_crc) !=
            AEGIS_ECORRUPT) {
            FAIL("byte %zu non-zero: accepted", off);
        }
        why = aegis__snapshot_header_check(bad, sizeof(bad));
        if (why == NULL || strstr(why, "not zero") == NULL) {
            FAIL("byte %zu non-zero: reason '%s'", off, why ? why : "(none)");
        }
        refused++;
    }
    ASSERT_EQ_U64(refused, 4 + 4 + 4 + 3 * 7 + 13 * 16);
    ASSERT_OK(aegis__snapshot_header_decode(h, sizeof(h), &got, &data_len, &data_crc));
    ASSERT_EQ_U64(got.index, 1234);
    ASSERT_EQ_U64(got.conf.members[2].id, 102);
    ASSERT_EQ_U64(data_len, 99);
    return TEST_PASS;
}

TEST(snapshot_header, invalid_members_refused)
{
    uint8_t h[AEGIS_SNAPSHOT_HEADER_BYTES];
    struct aegis_snapshot_meta m = sample_meta(3), got;
    uint64_t data_len;
    uint32_t data_crc;

    aegis__snapshot_header_encode(&m, 0, 0, h);
    h[56 + 16 * 1] = 100; /* Member 2 gets member 1's id 100. */
    h[56 + 16 * 1 + 1] = 0;
    put_crc(h);
    ASSERT_ERR(aegis__snapshot_header_decode(h, sizeof(h), &got, &data_len, &data_crc),
               AEGIS_ECORRUPT);
    aegis__snapshot_header_encode(&m, 0, 0, h);
    memset(h + 56 + 16 * 2, 0, 8); /* Member 3 gets id 0. */
    put_crc(h);
    ASSERT_ERR(aegis__snapshot_header_decode(h, sizeof(h), &got, &data_len, &data_crc),
               AEGIS_ECORRUPT);
    ASSERT_TRUE(strstr(aegis__snapshot_header_check(h, sizeof(h)), "members") != NULL);
    return TEST_PASS;
}

TEST(hardstate_slot, reserved_refused_and_round_trip)
{
    struct aegis_hard_state hs = {.term = 9, .vote = 3, .commit = 77}, got;
    uint8_t slot[AEGIS_HARDSTATE_SLOT_BYTES], again[AEGIS_HARDSTATE_SLOT_BYTES];
    uint64_t seq = 0;

    memset(slot, 0xa5, sizeof(slot));
    aegis__hardstate_encode_slot(41, &hs, slot);
    for (int i = 40; i < 60; i++) {
        ASSERT_EQ_U64(slot[i], 0);
    }
    ASSERT_OK(aegis__hardstate_decode(slot, sizeof(slot), &seq, &got));
    ASSERT_EQ_U64(seq, 41);
    ASSERT_EQ_U64(got.term, 9);
    ASSERT_EQ_U64(got.vote, 3);
    ASSERT_EQ_U64(got.commit, 77);
    aegis__hardstate_encode_slot(seq, &got, again);
    ASSERT_MEM_EQ(slot, again, sizeof(slot));
    for (int i = 40; i < 60; i++) {
        uint32_t crc;

        memcpy(again, slot, sizeof(slot));
        again[i] = 0x80;
        crc = aegis__crc32c(0, again, 60);
        for (int b = 0; b < 4; b++) {
            again[60 + b] = (uint8_t)(crc >> (8 * b));
        }
        ASSERT_ERR(aegis__hardstate_decode(again, sizeof(again), &seq, &got), AEGIS_ECORRUPT);
    }
    return TEST_PASS;
}

/* A slot of sequence 0 (never written: the first is 1) is refused without touching the
 * outputs (found by fuzz_hardstate: the value was written before the sequence check). */
TEST(hardstate_slot, sequence_zero_refused_outputs_untouched)
{
    struct aegis_hard_state hs = {.term = 5, .vote = 1, .commit = 2}, got = {11, 22, 33};
    uint8_t slot[AEGIS_HARDSTATE_SLOT_BYTES];
    uint64_t seq = 44;

    aegis__hardstate_encode_slot(0, &hs, slot);
    ASSERT_ERR(aegis__hardstate_decode(slot, sizeof(slot), &seq, &got), AEGIS_ECORRUPT);
    ASSERT_EQ_U64(seq, 44);
    ASSERT_EQ_U64(got.term, 11);
    ASSERT_EQ_U64(got.vote, 22);
    ASSERT_EQ_U64(got.commit, 33);
    return TEST_PASS;
}
