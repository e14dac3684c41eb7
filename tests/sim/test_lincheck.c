/* SPDX-License-Identifier: MIT */
/* Tests of the linearizability checker on hand-made histories, linearizable and not, and
 * on generated ones: histories cut from a real sequential execution (always linearizable)
 * and the same histories with one read corrupted (never linearizable). A checker that
 * accepted everything, or rejected everything, fails here. */
#include <stdlib.h>

#include "engine/rng.h"
#include "lib/test.h"
#include "lincheck.h"

#define NEVER LIN_NEVER
#define ABSENT SIM_KV_ABSENT

static struct lin_op op_set(uint32_t key, int64_t v, uint64_t call, uint64_t ret)
{
    return (struct lin_op){.key = key, .kind = SIM_KV_SET, .arg1 = v, .call = call,
                           .ret = ret, .result_known = ret != NEVER};
}

static struct lin_op op_get(uint32_t key, int64_t out, uint64_t call, uint64_t ret)
{
    return (struct lin_op){.key = key, .kind = SIM_KV_GET, .out = out, .call = call,
                           .ret = ret, .result_known = true};
}

static struct lin_op op_cas(uint32_t key, int64_t expect, int64_t v, int64_t ok,
                            uint64_t call, uint64_t ret)
{
    return (struct lin_op){.key = key, .kind = SIM_KV_CAS, .arg1 = expect, .arg2 = v,
                           .out = ok, .call = call, .ret = ret,
                           .result_known = ret != NEVER};
}

static struct lin_op op_incr(uint32_t key, int64_t delta, int64_t out, uint64_t call,
                             uint64_t ret)
{
    return (struct lin_op){.key = key, .kind = SIM_KV_INCR, .arg1 = delta, .out = out,
                           .call = call, .ret = ret, .result_known = ret != NEVER};
}

static enum lin_verdict check(struct lin_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ops[i].id = i + 1;
    }
    return lin_check(ops, n, 1000000, NULL);
}

TEST(lincheck, empty_and_sequential)
{
    struct lin_op h[] = {
        op_get(0, ABSENT, 1, 2), op_set(0, 5, 3, 4), op_get(0, 5, 5, 6),
        op_incr(0, 2, 7, 7, 8),  op_get(0, 7, 9, 10),
    };

    ASSERT_EQ_U64(lin_check(h, 0, 1000, NULL), LIN_OK);
    ASSERT_EQ_U64(check(h, 5), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, stale_read_after_completed_write)
{
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 4), op_get(0, 1, 5, 6)};
    struct lin_report rep;

    ASSERT_EQ_U64(lin_check(h, 3, 1000, &rep), LIN_VIOLATION);
    ASSERT_EQ_U64(rep.verdict, LIN_VIOLATION);
    ASSERT_EQ_U64(rep.key, 0);
    ASSERT_EQ_U64(rep.key_ops, 3);
    return TEST_PASS;
}

TEST(lincheck, read_of_absent_after_write)
{
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_get(0, ABSENT, 3, 4)};

    ASSERT_EQ_U64(check(h, 2), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, concurrent_write_either_value)
{
    struct lin_op a[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 10), op_get(0, 1, 4, 5)};
    struct lin_op b[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 10), op_get(0, 2, 4, 5)};

    ASSERT_EQ_U64(check(a, 3), LIN_OK);
    ASSERT_EQ_U64(check(b, 3), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, reads_cannot_go_back_in_time)
{
    /* Set 2 is concurrent with both reads, but once a read has seen 2, a later read
     * (invoked after the first returned) cannot see 1 again. */
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 20), op_get(0, 2, 4, 5),
                         op_get(0, 1, 6, 7)};
    struct lin_op ok[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 20), op_get(0, 1, 4, 5),
                          op_get(0, 2, 6, 7)};

    ASSERT_EQ_U64(check(h, 4), LIN_VIOLATION);
    ASSERT_EQ_U64(check(ok, 4), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, overlapping_reads_may_disagree)
{
    /* Two reads both concurrent with the write and with each other. */
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 2, 3, 20), op_get(0, 2, 4, 8),
                         op_get(0, 1, 5, 9)};

    ASSERT_EQ_U64(check(h, 4), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, indeterminate_write_may_take_effect)
{
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 9, 3, NEVER), op_get(0, 9, 50, 51),
                         op_get(0, 9, 60, 61)};

    ASSERT_EQ_U64(check(h, 4), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, indeterminate_write_may_never_happen)
{
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 9, 3, NEVER), op_get(0, 1, 50, 51),
                         op_get(0, 1, 60, 61)};

    ASSERT_EQ_U64(check(h, 4), LIN_OK);
    return TEST_PASS;
}

TEST(lincheck, indeterminate_write_takes_effect_once)
{
    /* Seen, then unseen, then seen again: a single write cannot do that. */
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(0, 9, 3, NEVER), op_get(0, 9, 50, 51),
                         op_get(0, 1, 60, 61), op_get(0, 9, 70, 71)};

    ASSERT_EQ_U64(check(h, 5), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, indeterminate_write_not_before_its_call)
{
    struct lin_op h[] = {op_get(0, 9, 1, 2), op_set(0, 9, 3, NEVER)};

    ASSERT_EQ_U64(check(h, 2), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, completed_with_unknown_result)
{
    /* An increment known to have finished by time 4 but whose output was lost. */
    struct lin_op h[] = {op_incr(0, 5, 0, 1, 4), op_get(0, 5, 5, 6)};
    struct lin_op bad[] = {op_incr(0, 5, 0, 1, 4), op_get(0, ABSENT, 5, 6)};

    h[0].result_known = false;
    bad[0].result_known = false;
    ASSERT_EQ_U64(check(h, 2), LIN_OK);
    ASSERT_EQ_U64(check(bad, 2), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, cas_semantics)
{
    /* Two concurrent CAS from the same expected value cannot both succeed. */
    struct lin_op both[] = {op_set(0, 1, 1, 2), op_cas(0, 1, 2, 1, 3, 6),
                            op_cas(0, 1, 3, 1, 4, 7)};
    struct lin_op one[] = {op_set(0, 1, 1, 2), op_cas(0, 1, 2, 1, 3, 6),
                           op_cas(0, 1, 3, 0, 4, 7), op_get(0, 2, 8, 9)};
    struct lin_op absent[] = {op_cas(0, ABSENT, 4, 1, 1, 2), op_get(0, 4, 3, 4)};
    struct lin_op mismatch[] = {op_set(0, 1, 1, 2), op_cas(0, 1, 2, 0, 3, 4)};

    ASSERT_EQ_U64(check(both, 3), LIN_VIOLATION);
    ASSERT_EQ_U64(check(one, 4), LIN_OK);
    ASSERT_EQ_U64(check(absent, 2), LIN_OK);
    ASSERT_EQ_U64(check(mismatch, 2), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, increments)
{
    struct lin_op dup[] = {op_incr(0, 1, 1, 1, 5), op_incr(0, 1, 1, 2, 6)};
    struct lin_op ok[] = {op_incr(0, 1, 2, 1, 5), op_incr(0, 1, 1, 2, 6),
                          op_get(0, 2, 7, 8)};
    struct lin_op lost[] = {op_incr(0, 1, 1, 1, 2), op_incr(0, 1, 2, 3, 4),
                            op_get(0, 1, 5, 6)};

    ASSERT_EQ_U64(check(dup, 2), LIN_VIOLATION);
    ASSERT_EQ_U64(check(ok, 3), LIN_OK);
    ASSERT_EQ_U64(check(lost, 3), LIN_VIOLATION);
    return TEST_PASS;
}

TEST(lincheck, keys_are_independent)
{
    struct lin_op h[] = {op_set(0, 1, 1, 2), op_set(1, 2, 3, 4), op_get(0, 1, 5, 6),
                         op_get(1, 2, 7, 8)};
    struct lin_op bad[] = {op_set(0, 1, 1, 2), op_set(1, 2, 3, 4), op_get(0, 2, 5, 6)};
    struct lin_report rep;

    ASSERT_EQ_U64(check(h, 4), LIN_OK);
    ASSERT_EQ_U64(lin_check(bad, 3, 1000, &rep), LIN_VIOLATION);
    ASSERT_EQ_U64(rep.key, 0);
    return TEST_PASS;
}

TEST(lincheck, budget_gives_unknown)
{
    /* Many concurrent increments with unknown outputs and a read that cannot be
     * explained: the search must explore many orders, more than a tiny budget allows. */
    struct lin_op h[20];
    struct lin_report rep;

    for (int i = 0; i < 19; i++) {
        h[i] = op_incr(0, 1 + i, 0, 1, NEVER);
        h[i].id = (uint64_t)i + 1;
    }
    h[19] = op_get(0, 100000, 2, 3);
    h[19].id = 20;
    ASSERT_EQ_U64(lin_check(h, 20, 50, &rep), LIN_UNKNOWN);
    ASSERT_EQ_U64(rep.key, 0);
    return TEST_PASS;
}

/* A sequential execution of random operations on @keys keys; each operation gets a
 * window [call, ret] around its linearization point, overlapping its neighbours. */
static size_t random_history(struct aegis_rng *rng, struct lin_op *h, size_t n,
                             uint32_t keys)
{
    int64_t state[4] = {ABSENT, ABSENT, ABSENT, ABSENT};

    for (size_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)aegis__rng_range(rng, 0, keys - 1);
        uint64_t point = 10 * (uint64_t)i + 100;
        struct lin_op *o = &h[i];
        int64_t next;

        switch (aegis__rng_range(rng, 0, 3)) {
        case 0:
            *o = op_set(key, (int64_t)aegis__rng_range(rng, 0, 5), 0, 0);
            break;
        case 1:
            *o = op_cas(key, (int64_t)aegis__rng_range(rng, 0, 5) - 1,
                        (int64_t)aegis__rng_range(rng, 0, 5), 0, 0, 0);
            break;
        case 2:
            *o = op_incr(key, (int64_t)aegis__rng_range(rng, 1, 3), 0, 0, 0);
            break;
        default:
            *o = op_get(key, 0, 0, 0);
            break;
        }
        o->result_known = true;
        o->out = o->kind == SIM_KV_CAS ? (state[key] == o->arg1) : 0;
        lin_model_step(o, state[key], &next);
        if (o->kind == SIM_KV_INCR) {
            o->out = next;
        } else if (o->kind == SIM_KV_GET) {
            o->out = state[key];
        }
        state[key] = next;
        o->call = point - aegis__rng_range(rng, 0, 25);
        o->ret = point + aegis__rng_range(rng, 0, 25);
        if (o->kind != SIM_KV_GET && aegis__rng_chance(rng, 100000)) {
            o->ret = NEVER; /* The client lost track; it did happen. */
            o->result_known = false;
        }
        o->id = i + 1;
    }
    return n;
}

TEST(lincheck, generated_histories)
{
    struct aegis_rng rng;
    struct lin_op h[200];
    int violations_found = 0, tried = 0;

    aegis__rng_seed(&rng, test_seed());
    for (int round = 0; round < 200; round++) {
        size_t n = random_history(&rng, h, (size_t)aegis__rng_range(&rng, 5, 200),
                                  (uint32_t)aegis__rng_range(&rng, 1, 3));
        struct lin_report rep;

        if (lin_check(h, n, 10000000, &rep) != LIN_OK) {
            FAIL("round %d: a sequential execution was judged %d (key %u, op %" PRIu64 ")",
                 round, rep.verdict, rep.key, rep.stuck_id);
        }
        /* Corrupt one read to a value nobody ever wrote. */
        for (size_t i = 0; i < n; i++) {
            if (h[i].kind == SIM_KV_GET) {
                h[i].out = 1000000 + (int64_t)i;
                tried++;
                violations_found += lin_check(h, n, 10000000, NULL) == LIN_VIOLATION;
                break;
            }
        }
    }
    ASSERT_TRUE(tried > 100);
    ASSERT_EQ_U64(violations_found, tried);
    return TEST_PASS;
}
