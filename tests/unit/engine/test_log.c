/* SPDX-License-Identifier: MIT */
/* Tests of the in-memory ReplicatedLog (engine/log.h) and the ConfigChange codec
 * (engine/conf.h). Reference counts are checked on every path that takes or drops one;
 * ASan catches leaks and double frees on top. */
#include <aegis/error.h>

#include "engine/conf.h"
#include "engine/log.h"
#include "engine/rng.h"
#include "lib/test.h"

/* Append entries of the given terms at indexes last+1, last+2, ... each with a fresh
 * one-byte payload that the log alone then owns. */
static int append_terms(struct aegis_log *l, const aegis_term *terms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t byte = (uint8_t)i;
        struct aegis_entry e = {.index = aegis__log_last_index(l) + 1, .term = terms[i],
                                .type = AEGIS_ENTRY_COMMAND};
        int rv;

        e.buf = aegis__buf_from(NULL, &byte, 1);
        rv = aegis__log_append(l, &e);
        aegis__buf_unref(e.buf);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

TEST(log, empty)
{
    struct aegis_log l;

    aegis__log_init(&l, NULL);
    ASSERT_EQ_U64(aegis__log_first_index(&l), 1);
    ASSERT_EQ_U64(aegis__log_last_index(&l), 0);
    ASSERT_EQ_U64(aegis__log_last_term(&l), 0);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 0);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 0), 0);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 1), 0);
    ASSERT_TRUE(aegis__log_get(&l, 0) == NULL);
    ASSERT_TRUE(aegis__log_get(&l, 1) == NULL);
    ASSERT_ERR(aegis__log_commit(&l, 1), AEGIS_ERANGE);
    ASSERT_OK(aegis__log_commit(&l, 0));
    ASSERT_OK(aegis__log_truncate(&l, 0));
    ASSERT_OK(aegis__log_compact(&l, 0));
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, append_get_and_refs)
{
    struct aegis_log l;
    struct aegis_buf *b = aegis__buf_from(NULL, "abc", 3);
    struct aegis_entry e = {.index = 1, .term = 1, .type = AEGIS_ENTRY_COMMAND, .buf = b};
    const struct aegis_entry *got;

    aegis__log_init(&l, NULL);
    ASSERT_OK(aegis__log_append(&l, &e));
    ASSERT_EQ_U64(b->refs, 2);
    got = aegis__log_get(&l, 1);
    ASSERT_TRUE(got != NULL);
    ASSERT_TRUE(got->buf == b);
    ASSERT_EQ_U64(got->term, 1);
    /* Out of order index, lower term, term 0: refused, nothing changes. */
    e.index = 3;
    ASSERT_ERR(aegis__log_append(&l, &e), AEGIS_EINVAL);
    e.index = 2;
    e.term = 0;
    ASSERT_ERR(aegis__log_append(&l, &e), AEGIS_EINVAL);
    e.term = 2;
    ASSERT_OK(aegis__log_append(&l, &e));
    e.index = 3;
    e.term = 1;
    ASSERT_ERR(aegis__log_append(&l, &e), AEGIS_EINVAL);
    ASSERT_EQ_U64(b->refs, 3);
    ASSERT_EQ_U64(aegis__log_last_index(&l), 2);
    ASSERT_EQ_U64(aegis__log_last_term(&l), 2);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 1);
    aegis__log_close(&l);
    ASSERT_EQ_U64(b->refs, 1);
    aegis__buf_unref(b);
    return TEST_PASS;
}

TEST(log, grows_across_ring_wrap)
{
    struct aegis_log l;
    aegis_term terms[100];

    for (size_t i = 0; i < 100; i++) {
        terms[i] = 1 + i / 10;
    }
    aegis__log_init(&l, NULL);
    /* Fill, compact the head so the ring wraps, then grow while wrapped. */
    ASSERT_OK(append_terms(&l, terms, 12));
    ASSERT_OK(aegis__log_commit(&l, 10));
    ASSERT_OK(aegis__log_compact(&l, 10));
    ASSERT_OK(append_terms(&l, terms + 12, 88));
    ASSERT_EQ_U64(aegis__log_first_index(&l), 11);
    ASSERT_EQ_U64(aegis__log_last_index(&l), 100);
    for (aegis_index i = 11; i <= 100; i++) {
        const struct aegis_entry *e = aegis__log_get(&l, i);

        ASSERT_TRUE(e != NULL);
        ASSERT_EQ_U64(e->index, i);
        ASSERT_EQ_U64(e->term, terms[i - 1]);
        ASSERT_EQ_U64(e->buf->data[0], (uint8_t)(i <= 12 ? i - 1 : i - 13));
    }
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, range_limits_and_refs)
{
    struct aegis_log l;
    aegis_term terms[5] = {1, 1, 2, 2, 3};
    struct aegis_entry out[5];
    uint32_t n;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 5));
    n = aegis__log_range(&l, 2, 10, UINT64_MAX, out);
    ASSERT_EQ_U64(n, 4);
    ASSERT_EQ_U64(out[0].index, 2);
    ASSERT_EQ_U64(out[3].index, 5);
    ASSERT_EQ_U64(out[0].buf->refs, 2);
    for (uint32_t i = 0; i < n; i++) {
        aegis__entry_unref(&out[i]);
    }
    ASSERT_EQ_U64(aegis__log_get(&l, 2)->buf->refs, 1);
    /* Count limit, byte limit (each payload is one byte), at least one entry. */
    n = aegis__log_range(&l, 1, 2, UINT64_MAX, out);
    ASSERT_EQ_U64(n, 2);
    aegis__entry_unref(&out[0]);
    aegis__entry_unref(&out[1]);
    n = aegis__log_range(&l, 1, 10, 3, out);
    ASSERT_EQ_U64(n, 3);
    for (uint32_t i = 0; i < n; i++) {
        aegis__entry_unref(&out[i]);
    }
    n = aegis__log_range(&l, 1, 10, 0, out);
    ASSERT_EQ_U64(n, 1);
    aegis__entry_unref(&out[0]);
    ASSERT_EQ_U64(aegis__log_range(&l, 6, 10, UINT64_MAX, out), 0);
    ASSERT_OK(aegis__log_commit(&l, 2));
    ASSERT_OK(aegis__log_compact(&l, 2));
    ASSERT_EQ_U64(aegis__log_range(&l, 2, 10, UINT64_MAX, out), 0);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, commit_monotonic_and_bounded)
{
    struct aegis_log l;
    aegis_term terms[3] = {1, 1, 1};

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 3));
    ASSERT_OK(aegis__log_commit(&l, 2));
    ASSERT_EQ_U64(l.commit, 2);
    ASSERT_OK(aegis__log_commit(&l, 1));
    ASSERT_EQ_U64(l.commit, 2);
    ASSERT_ERR(aegis__log_commit(&l, 4), AEGIS_ERANGE);
    ASSERT_EQ_U64(l.commit, 2);
    ASSERT_OK(aegis__log_commit(&l, 3));
    ASSERT_EQ_U64(l.commit, 3);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, truncate_suffix_refuses_committed)
{
    struct aegis_log l;
    aegis_term terms[5] = {1, 1, 2, 2, 2};
    struct aegis_buf *held;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 5));
    held = aegis__buf_ref(aegis__log_get(&l, 5)->buf);
    ASSERT_OK(aegis__log_commit(&l, 2));
    ASSERT_ERR(aegis__log_truncate(&l, 1), AEGIS_EPERM);
    ASSERT_EQ_U64(aegis__log_last_index(&l), 5);
    ASSERT_OK(aegis__log_truncate(&l, 3));
    ASSERT_EQ_U64(aegis__log_last_index(&l), 3);
    ASSERT_EQ_U64(held->refs, 1); /* The log dropped its reference. */
    ASSERT_TRUE(aegis__log_get(&l, 4) == NULL);
    ASSERT_OK(aegis__log_truncate(&l, 7)); /* Past the end: nothing. */
    ASSERT_EQ_U64(aegis__log_last_index(&l), 3);
    ASSERT_OK(aegis__log_truncate(&l, 2)); /* At the commit index: allowed. */
    ASSERT_EQ_U64(aegis__log_last_index(&l), 2);
    /* Append after truncation reuses the slots. */
    ASSERT_OK(append_terms(&l, (aegis_term[]){3, 3}, 2));
    ASSERT_EQ_U64(aegis__log_term_at(&l, 3), 3);
    aegis__buf_unref(held);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, compact_keeps_term_at_offset)
{
    struct aegis_log l;
    aegis_term terms[6] = {1, 1, 2, 2, 3, 3};
    struct aegis_buf *held;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 6));
    held = aegis__buf_ref(aegis__log_get(&l, 2)->buf);
    ASSERT_ERR(aegis__log_compact(&l, 3), AEGIS_EPERM); /* Not committed. */
    ASSERT_OK(aegis__log_commit(&l, 4));
    ASSERT_OK(aegis__log_compact(&l, 3));
    ASSERT_EQ_U64(held->refs, 1);
    ASSERT_EQ_U64(aegis__log_first_index(&l), 4);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 2);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 3), 2); /* Kept at the compaction point. */
    ASSERT_EQ_U64(aegis__log_term_at(&l, 2), 0); /* Below it: unknown. */
    ASSERT_TRUE(aegis__log_get(&l, 3) == NULL);
    ASSERT_OK(aegis__log_compact(&l, 2));        /* Already compacted: no-op. */
    ASSERT_ERR(aegis__log_truncate(&l, 2), AEGIS_EPERM);
    /* Compact everything: empty log still answers its last index and term. */
    ASSERT_OK(aegis__log_commit(&l, 6));
    ASSERT_OK(aegis__log_compact(&l, 6));
    ASSERT_EQ_U64(aegis__log_last_index(&l), 6);
    ASSERT_EQ_U64(aegis__log_last_term(&l), 3);
    ASSERT_EQ_U64(aegis__log_first_term(&l), 0);
    ASSERT_OK(append_terms(&l, (aegis_term[]){4}, 1));
    ASSERT_EQ_U64(aegis__log_get(&l, 7)->term, 4);
    aegis__buf_unref(held);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, reset_to_snapshot)
{
    struct aegis_log l;
    aegis_term terms[3] = {1, 1, 1};

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 3));
    aegis__log_reset(&l, 10, 4);
    ASSERT_EQ_U64(aegis__log_last_index(&l), 10);
    ASSERT_EQ_U64(aegis__log_last_term(&l), 4);
    ASSERT_EQ_U64(l.commit, 10);
    ASSERT_EQ_U64(aegis__log_term_at(&l, 3), 0);
    ASSERT_ERR(append_terms(&l, (aegis_term[]){3}, 1), AEGIS_EINVAL); /* Below term 4. */
    ASSERT_OK(append_terms(&l, (aegis_term[]){4}, 1));
    ASSERT_EQ_U64(aegis__log_get(&l, 11)->index, 11);
    aegis__log_close(&l);
    return TEST_PASS;
}

static void make_entries(struct aegis_entry *out, aegis_index from, const aegis_term *terms,
                         uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        out[i] = (struct aegis_entry){.index = from + i, .term = terms[i], .type = 1};
    }
}

TEST(log, match_finds_first_conflict)
{
    struct aegis_log l;
    aegis_term terms[5] = {1, 1, 2, 2, 2};
    struct aegis_entry es[4];
    struct aegis_log_match res;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 5));
    /* All present: nothing new. */
    make_entries(es, 2, (aegis_term[]){1, 2, 2}, 3);
    aegis__log_match(&l, 1, 1, es, 3, &res);
    ASSERT_TRUE(res.ok);
    ASSERT_EQ_U64(res.first_new, 0);
    /* Extends past the end. */
    make_entries(es, 5, (aegis_term[]){2, 2}, 2);
    aegis__log_match(&l, 4, 2, es, 2, &res);
    ASSERT_TRUE(res.ok);
    ASSERT_EQ_U64(res.first_new, 6);
    /* Conflict in the middle. */
    make_entries(es, 3, (aegis_term[]){2, 3, 3}, 3);
    aegis__log_match(&l, 2, 1, es, 3, &res);
    ASSERT_TRUE(res.ok);
    ASSERT_EQ_U64(res.first_new, 4);
    /* Heartbeat-like empty request. */
    aegis__log_match(&l, 0, 0, NULL, 0, &res);
    ASSERT_TRUE(res.ok);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, match_hint_skips_a_term)
{
    struct aegis_log l;
    aegis_term terms[7] = {1, 1, 2, 2, 2, 2, 3};
    struct aegis_log_match res;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 7));
    /* Too short: hint is last + 1, term 0. */
    aegis__log_match(&l, 9, 4, NULL, 0, &res);
    ASSERT_FALSE(res.ok);
    ASSERT_EQ_U64(res.hint_index, 8);
    ASSERT_EQ_U64(res.hint_term, 0);
    /* Term mismatch at 6 (term 2 there): hint is the first index of term 2. */
    aegis__log_match(&l, 6, 4, NULL, 0, &res);
    ASSERT_FALSE(res.ok);
    ASSERT_EQ_U64(res.hint_term, 2);
    ASSERT_EQ_U64(res.hint_index, 3);
    /* The scan never goes below the commit index. */
    ASSERT_OK(aegis__log_commit(&l, 4));
    aegis__log_match(&l, 6, 4, NULL, 0, &res);
    ASSERT_EQ_U64(res.hint_index, 5);
    /* Leader side: last index of a term at or below a bound. */
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 2, 100), 6);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 2, 4), 4);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 1, 100), 2);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 5, 100), 0);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 3, 6), 0);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(log, match_after_compaction)
{
    struct aegis_log l;
    aegis_term terms[6] = {1, 1, 2, 2, 3, 3};
    struct aegis_entry es[4];
    struct aegis_log_match res;

    aegis__log_init(&l, NULL);
    ASSERT_OK(append_terms(&l, terms, 6));
    ASSERT_OK(aegis__log_commit(&l, 4));
    ASSERT_OK(aegis__log_compact(&l, 4));
    /* prev at the compaction point matches through offset_term. */
    aegis__log_match(&l, 4, 2, NULL, 0, &res);
    ASSERT_TRUE(res.ok);
    aegis__log_match(&l, 4, 1, NULL, 0, &res);
    ASSERT_FALSE(res.ok);
    /* prev below it: compacted entries are committed, so they match; entries that
     * overlap the compacted part are skipped. */
    make_entries(es, 3, (aegis_term[]){2, 2, 3, 3}, 4);
    aegis__log_match(&l, 2, 1, es, 4, &res);
    ASSERT_TRUE(res.ok);
    ASSERT_EQ_U64(res.first_new, 0);
    make_entries(es, 4, (aegis_term[]){2, 3, 4, 4}, 4);
    aegis__log_match(&l, 3, 2, es, 4, &res);
    ASSERT_TRUE(res.ok);
    ASSERT_EQ_U64(res.first_new, 6);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 2, 6), 4);
    ASSERT_EQ_U64(aegis__log_last_of_term(&l, 1, 6), 0);
    aegis__log_close(&l);
    return TEST_PASS;
}

TEST(conf, change_rules)
{
    struct aegis_conf c = {.count = 1, .members = {{1, AEGIS_MEMBER_VOTER}}}, next;

    ASSERT_EQ_U64(aegis__conf_quorum(&c), 1);
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_REMOVE, 1, &next), AEGIS_ECONFIG);
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_PROMOTE, 2, &next), AEGIS_EUNKNOWNNODE);
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_PROMOTE, 1, &next), AEGIS_EINVAL);
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_ADD_LEARNER, 1, &next), AEGIS_EEXIST);
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_ADD_LEARNER, 0, &next), AEGIS_EINVAL);
    ASSERT_ERR(aegis__conf_change(&c, 9, 2, &next), AEGIS_EINVAL);
    ASSERT_OK(aegis__conf_change(&c, AEGIS_CONF_ADD_LEARNER, 2, &next));
    ASSERT_EQ_U64(next.count, 2);
    ASSERT_FALSE(aegis__conf_is_voter(&next, 2));
    ASSERT_EQ_U64(aegis__conf_quorum(&next), 1);
    c = next;
    ASSERT_OK(aegis__conf_change(&c, AEGIS_CONF_PROMOTE, 2, &next));
    ASSERT_TRUE(aegis__conf_is_voter(&next, 2));
    ASSERT_EQ_U64(aegis__conf_quorum(&next), 2);
    c = next;
    ASSERT_OK(aegis__conf_change(&c, AEGIS_CONF_REMOVE, 1, &next));
    ASSERT_EQ_U64(next.count, 1);
    ASSERT_TRUE(aegis__conf_find(&next, 1) == NULL);
    for (aegis_node_id id = 3; id < 3 + AEGIS_MEMBERS_MAX - 2; id++) {
        ASSERT_OK(aegis__conf_change(&c, AEGIS_CONF_ADD_LEARNER, id, &c));
    }
    ASSERT_ERR(aegis__conf_change(&c, AEGIS_CONF_ADD_LEARNER, 99, &next), AEGIS_EFULL);
    return TEST_PASS;
}

TEST(conf, encode_decode_round_trip)
{
    struct aegis_conf_change cc = {.op = AEGIS_CONF_PROMOTE, .id = 0x0102030405060708ull};
    struct aegis_conf_change got;
    uint8_t buf[AEGIS_CONF_ENCODED_MAX];
    size_t n;

    cc.conf.count = 2;
    cc.conf.members[0] = (struct aegis_member){1, AEGIS_MEMBER_VOTER};
    cc.conf.members[1] = (struct aegis_member){0x0102030405060708ull, AEGIS_MEMBER_VOTER};
    n = aegis__conf_encode(&cc, buf);
    ASSERT_EQ_U64(n, 14 + 18);
    /* Byte layout as conf.h specifies. */
    ASSERT_EQ_U64(buf[0], 1);
    ASSERT_EQ_U64(buf[1], AEGIS_CONF_PROMOTE);
    ASSERT_EQ_U64(buf[2], 0x08);
    ASSERT_EQ_U64(buf[9], 0x01);
    ASSERT_EQ_U64(buf[10], 2);
    ASSERT_EQ_U64(buf[14], 1);
    ASSERT_EQ_U64(buf[22], AEGIS_MEMBER_VOTER);
    ASSERT_OK(aegis__conf_decode(buf, n, &got));
    ASSERT_EQ_U64(got.op, cc.op);
    ASSERT_EQ_U64(got.id, cc.id);
    ASSERT_TRUE(aegis__conf_equal(&got.conf, &cc.conf));
    return TEST_PASS;
}

TEST(conf, decode_rejects_hostile_input)
{
    struct aegis_conf_change cc = {.op = AEGIS_CONF_ADD_LEARNER, .id = 3}, got;
    uint8_t buf[AEGIS_CONF_ENCODED_MAX + 8], copy[AEGIS_CONF_ENCODED_MAX + 8];
    struct aegis_rng rng;
    size_t n;

    cc.conf.count = 3;
    cc.conf.members[0] = (struct aegis_member){1, AEGIS_MEMBER_VOTER};
    cc.conf.members[1] = (struct aegis_member){2, AEGIS_MEMBER_VOTER};
    cc.conf.members[2] = (struct aegis_member){3, AEGIS_MEMBER_LEARNER};
    n = aegis__conf_encode(&cc, buf);
    /* Every truncation fails (and never reads past the given length under ASan). */
    for (size_t len = 0; len < n; len++) {
        ASSERT_ERR(aegis__conf_decode(buf, len, &got), AEGIS_ECORRUPT);
    }
    ASSERT_ERR(aegis__conf_decode(buf, n + 1, &got), AEGIS_ECORRUPT);
    ASSERT_ERR(aegis__conf_decode(NULL, 0, &got), AEGIS_ECORRUPT);
    memcpy(copy, buf, n);
    copy[0] = 2; /* Version. */
    ASSERT_ERR(aegis__conf_decode(copy, n, &got), AEGIS_ECORRUPT);
    memcpy(copy, buf, n);
    copy[1] = 4; /* Op. */
    ASSERT_ERR(aegis__conf_decode(copy, n, &got), AEGIS_ECORRUPT);
    memcpy(copy, buf, n);
    copy[22] = 3; /* Role. */
    ASSERT_ERR(aegis__conf_decode(copy, n, &got), AEGIS_ECORRUPT);
    memcpy(copy, buf, n);
    copy[23] = 1; /* Member 2's id becomes 1: a duplicate. */
    ASSERT_ERR(aegis__conf_decode(copy, n, &got), AEGIS_ECORRUPT);
    memcpy(copy, buf, n);
    copy[13] = 0x80; /* Huge member count. */
    ASSERT_ERR(aegis__conf_decode(copy, n, &got), AEGIS_ECORRUPT);
    /* Random bit flips: an error or a valid change, never a crash. */
    aegis__rng_seed(&rng, test_seed());
    for (int i = 0; i < 2000; i++) {
        memcpy(copy, buf, n);
        copy[aegis__rng_range(&rng, 0, n - 1)] ^= (uint8_t)(1u << aegis__rng_range(&rng, 0, 7));
        if (aegis__conf_decode(copy, n, &got) == 0) {
            ASSERT_TRUE(aegis__conf_valid(&got.conf));
        }
    }
    return TEST_PASS;
}
