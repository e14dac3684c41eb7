/* SPDX-License-Identifier: MIT */
/* Peer message validation (engine/msg.c aegis__msg_validate and the core's step): the
 * forged messages of issue 12, each refused with nothing changed, and the legitimate
 * paths they resemble (leadership transfer, snapshot transfer) still working. */
#include <string.h>

#include "engine/msg.h"
#include "raft_cluster.h"

#define TERM_TOP UINT64_MAX
#define TERM_HUGE ((aegis_term)1 << 62) /* The ceiling itself. */

/* What a forged message must not touch on @id. */
struct snap {
    struct aegis_hard_state hs;
    enum aegis_role role;
    aegis_node_id leader;
    aegis_index last;
};

static struct snap take(struct cluster *c, aegis_node_id id)
{
    struct aegis_raft *r = cl_r(c, id);

    return (struct snap){aegis__raft_hard_state(r), aegis__raft_role(r), aegis__raft_leader(r),
                         aegis__raft_last_index(r)};
}

static bool same(const struct snap *a, const struct snap *b)
{
    return a->hs.term == b->hs.term && a->hs.vote == b->hs.vote &&
           a->hs.commit == b->hs.commit && a->role == b->role && a->leader == b->leader &&
           a->last == b->last;
}

/* The cluster still elects, replicates and commits after the attack. */
static bool still_works(struct cluster *c, aegis_term term_max)
{
    aegis_node_id leader;

    cl_settle(c);
    cl_tick_all(c, 60);
    leader = cl_leader(c);
    if (leader == AEGIS_NODE_NONE || cl_propose(c, leader, "after", NULL) != 0) {
        return false;
    }
    cl_settle(c);
    cl_tick_all(c, 3);
    for (aegis_node_id id = 1; id <= c->n; id++) {
        if (!cl_applied_has(c, id, "after") || aegis__raft_term(cl_r(c, id)) > term_max) {
            return false;
        }
    }
    return true;
}

static struct aegis_msg vote(aegis_node_id from, aegis_node_id to, aegis_term term, bool pre,
                             bool transfer)
{
    struct aegis_msg v = {.type = AEGIS_MSG_VOTE_REQ, .from = from, .to = to, .term = term};

    v.vote_req.last_log_index = 1000;
    v.vote_req.last_log_term = term;
    v.vote_req.pre_vote = pre;
    v.vote_req.leadership_transfer = transfer;
    return v;
}

TEST(peer, forged_vote_at_term_ceiling_is_refused_and_changes_nothing)
{
    static const aegis_term terms[] = {TERM_TOP, TERM_TOP - 1, (aegis_term)1 << 63, TERM_HUGE};
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    for (size_t t = 0; t < sizeof(terms) / sizeof(terms[0]); t++) {
        for (int flags = 0; flags < 3; flags++) { /* plain, transfer, pre-vote */
            for (aegis_node_id to = 1; to <= 2; to++) {
                struct aegis_msg v = vote(3, to, terms[t], flags == 2, flags == 1);
                struct snap before = take(c, to);
                struct snap after;

                ASSERT_ERR(aegis__raft_step(cl_r(c, to), &v), AEGIS_ECORRUPT);
                after = take(c, to);
                ASSERT_TRUE(same(&before, &after));
                ASSERT_FALSE(aegis__raft_has_ready(cl_r(c, to)) &&
                             aegis__raft_hard_state(cl_r(c, to)).term != before.hs.term);
            }
        }
    }
    ASSERT_TRUE(still_works(c, 10));
    cl_free(c);
    return TEST_PASS;
}

TEST(peer, transfer_flag_without_the_leaders_notice_is_an_ordinary_vote)
{
    struct cluster *c = cl_new(3, NULL);
    aegis_term term;

    ASSERT_TRUE(cl_elect(c, 1));
    term = aegis__raft_term(cl_r(c, 1));
    /* Valid values below the ceiling, one term up and far up: with a leader heard from,
     * a flagged vote with no TimeoutNow notice is ignored like any other. */
    for (int k = 0; k < 2; k++) {
        aegis_term t = k == 0 ? term + 1 : TERM_HUGE - 1;

        for (aegis_node_id to = 1; to <= 2; to++) {
            struct aegis_msg v = vote(3, to, t, false, true);
            struct snap before = take(c, to);
            struct snap after;

            ASSERT_OK(aegis__raft_step(cl_r(c, to), &v));
            after = take(c, to);
            ASSERT_TRUE(same(&before, &after));
        }
    }
    cl_drop_queue(c);
    ASSERT_TRUE(still_works(c, term + 5));
    cl_free(c);
    return TEST_PASS;
}

TEST(peer, forged_timeout_now_is_refused)
{
    struct cluster *c = cl_new(3, NULL);
    struct aegis_msg t = {.type = AEGIS_MSG_TIMEOUT_NOW, .from = 3, .to = 2};
    struct snap before, after;

    ASSERT_TRUE(cl_elect(c, 1));
    t.term = aegis__raft_term(cl_r(c, 2));
    t.timeout_now.target = 2;
    before = take(c, 2);
    /* From a node that is not the leader of the term. */
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &t), AEGIS_EINVAL);
    /* From a higher term: no leader we know sent it. */
    t.from = 1;
    t.term++;
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &t), AEGIS_EINVAL);
    /* No target. */
    t.term--;
    t.timeout_now.target = 0;
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &t), AEGIS_ECORRUPT);
    after = take(c, 2);
    ASSERT_TRUE(same(&before, &after));
    cl_free(c);
    return TEST_PASS;
}

/* Five voters: the target needs a vote beyond the leader's and its own, so the notice
 * to the other voters is what lets the transfer through their stickiness. */
TEST(peer, leadership_transfer_still_works_with_notices)
{
    struct cluster *c = cl_new(5, NULL);
    aegis_term term;

    ASSERT_TRUE(cl_elect(c, 1));
    term = aegis__raft_term(cl_r(c, 1));
    ASSERT_OK(cl_propose(c, 1, "a", NULL));
    cl_settle(c);
    ASSERT_OK(aegis__raft_transfer(cl_r(c, 1), 4));
    cl_settle(c);
    ASSERT_EQ_U64(cl_leader(c), 4);
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 4)), term + 1);
    /* The notice named 4 for that term: 5 cannot use it now. */
    {
        struct aegis_msg v = vote(5, 2, term + 2, false, true);
        struct snap before = take(c, 2);
        struct snap after;

        ASSERT_OK(aegis__raft_step(cl_r(c, 2), &v));
        after = take(c, 2);
        ASSERT_TRUE(same(&before, &after));
    }
    cl_free(c);
    return TEST_PASS;
}

static struct aegis_msg append(aegis_node_id from, aegis_node_id to, aegis_term term,
                               aegis_index prev, aegis_term prev_term, struct aegis_entry *es,
                               uint32_t n, aegis_index commit)
{
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_REQ, .from = from, .to = to, .term = term};

    m.append_req.prev_index = prev;
    m.append_req.prev_term = prev_term;
    m.append_req.entries = es;
    m.append_req.entries_count = n;
    m.append_req.commit = commit;
    return m;
}

TEST(peer, forged_append_near_index_ceiling_is_refused_and_changes_nothing)
{
    static const aegis_index prevs[] = {TERM_TOP - 1, TERM_TOP, (aegis_index)1 << 63,
                                        ((aegis_index)1 << 62) - 1};
    struct cluster *c = cl_new(3, NULL);
    aegis_term term;

    ASSERT_TRUE(cl_elect(c, 1));
    term = aegis__raft_term(cl_r(c, 2));
    for (size_t p = 0; p < sizeof(prevs) / sizeof(prevs[0]); p++) {
        for (aegis_term t = 0; t <= term + 1; t++) { /* Stale, current, next. */
            struct aegis_entry e = {.index = prevs[p] + 1, .term = t == 0 ? 1 : t,
                                    .type = AEGIS_ENTRY_COMMAND};
            struct aegis_msg m = append(1, 2, t, prevs[p], 0, &e, 1, prevs[p] + 1);
            struct snap before = take(c, 2);
            struct snap after;

            ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
            /* Empty (a probe) with a huge commit: the commit is a value, refused too. */
            m = append(1, 2, t, prevs[p], 0, NULL, 0, TERM_TOP);
            ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
            after = take(c, 2);
            ASSERT_TRUE(same(&before, &after));
        }
    }
    ASSERT_TRUE(still_works(c, term + 5));
    cl_free(c);
    return TEST_PASS;
}

TEST(peer, leader_traffic_from_another_node_in_our_term_is_refused)
{
    struct cluster *c = cl_new(3, NULL);
    struct aegis_msg m, hb = {.type = AEGIS_MSG_HEARTBEAT, .from = 3, .to = 2};
    struct snap before, after;

    ASSERT_TRUE(cl_elect(c, 1));
    before = take(c, 2);
    m = append(3, 2, before.hs.term, before.last, aegis__raft_term_at(cl_r(c, 2), before.last),
               NULL, 0, before.last);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_EINVAL);
    hb.term = before.hs.term;
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &hb), AEGIS_EINVAL);
    /* Nor does the leader take leader traffic in its own term. */
    hb.to = 1;
    ASSERT_ERR(aegis__raft_step(cl_r(c, 1), &hb), AEGIS_EINVAL);
    after = take(c, 2);
    ASSERT_TRUE(same(&before, &after));
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 1)), AEGIS_ROLE_LEADER);
    cl_free(c);
    return TEST_PASS;
}

/* Refuses any snapshot whose data does not start with "SNAP". */
static int check_snap(void *data, const struct aegis_snapshot_meta *meta,
                      const struct aegis_buf *snap)
{
    (void)meta;
    (*(int *)data)++;
    return snap != NULL && snap->len >= 4 && memcmp(snap->data, "SNAP", 4) == 0
               ? 0
               : AEGIS_ECORRUPT;
}

static struct aegis_msg chunk(aegis_node_id from, aegis_term term, aegis_index index,
                              aegis_term snap_term, uint64_t offset, uint64_t total,
                              struct aegis_buf *data, const struct aegis_conf *conf)
{
    struct aegis_msg m = {.type = AEGIS_MSG_SNAPSHOT_REQ, .from = from, .to = 2, .term = term};

    m.snapshot_req.meta.index = index;
    m.snapshot_req.meta.term = snap_term;
    m.snapshot_req.meta.conf = *conf;
    m.snapshot_req.offset = offset;
    m.snapshot_req.total_bytes = total;
    m.snapshot_req.chunk = data;
    m.snapshot_req.done = offset + (data != NULL ? data->len : 0) == total;
    return m;
}

TEST(peer, snapshot_chunk_not_matching_the_offer_is_dropped_and_node_stays_healthy)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    struct aegis_buf *junk = aegis__buf_from(NULL, "junkjunk", 8);
    struct aegis_buf *half = aegis__buf_from(NULL, "SNAPxxxx", 8);
    struct aegis_buf *other = aegis__buf_from(NULL, "yyyyyyyy", 8);
    int checks = 0;
    struct aegis_msg m;
    struct snap before, after;
    aegis_term term;

    cl_default_config(&cfg);
    c = cl_new(3, &cfg);
    for (aegis_node_id id = 1; id <= 3; id++) {
        c->nodes[id].mem.check = check_snap;
        c->nodes[id].mem.check_data = &checks;
    }
    ASSERT_TRUE(cl_elect(c, 1));
    cl_settle(c);
    term = aegis__raft_term(cl_r(c, 2));
    before = take(c, 2);

    /* 1. A whole "snapshot" from a node that is not the leader of our term. */
    m = chunk(3, term, before.last + 100, term, 0, 8, junk, &c->conf);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_EINVAL);
    /* 2. Metadata above the ceilings, a term above the message's, an empty membership. */
    m = chunk(1, term, TERM_TOP, term, 0, 8, junk, &c->conf);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    m = chunk(1, term, before.last + 100, term + 1, 0, 8, junk, &c->conf);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    {
        struct aegis_conf empty = {0};

        m = chunk(1, term, before.last + 100, term, 0, 8, junk, &empty);
        ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    }
    /* 3. "done" that does not reach the total, a chunk past the total. */
    m = chunk(1, term, before.last + 100, term, 0, 16, junk, &c->conf);
    m.snapshot_req.done = true;
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    m = chunk(1, term, before.last + 100, term, 12, 16, junk, &c->conf);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    /* 4. From the leader's id, whole, but data the runtime would not restore: refused by
     * the check before it replaces anything (it used to be installed, then fatal). */
    m = chunk(1, term, before.last + 100, term, 0, 8, junk, &c->conf);
    ASSERT_ERR(aegis__raft_step(cl_r(c, 2), &m), AEGIS_ECORRUPT);
    ASSERT_EQ_U64(checks, 1);
    /* 5. An offer in progress is not extended by a chunk of another offer. */
    m = chunk(1, term, before.last + 100, term, 0, 16, half, &c->conf);
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &m));
    m = chunk(1, term, before.last + 101, term, 8, 16, other, &c->conf); /* Other index. */
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &m));
    m = chunk(1, term, before.last + 100, term, 8, 24, other, &c->conf); /* Other total. */
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &m));
    m = chunk(1, term, before.last + 100, term, 4, 16, other, &c->conf); /* Not contiguous. */
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &m));
    after = take(c, 2);
    ASSERT_TRUE(same(&before, &after));
    ASSERT_EQ_U64(checks, 1); /* None of them completed an assembly. */
    cl_drop_queue(c);
    cl_settle(c);
    ASSERT_TRUE(still_works(c, term + 5));
    ASSERT_EQ_U64(c->nodes[2].snapshot_restored, 0);
    aegis__buf_unref(junk);
    aegis__buf_unref(half);
    aegis__buf_unref(other);
    cl_free(c);
    return TEST_PASS;
}

TEST(peer, term_never_reaches_the_ceiling)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    struct aegis_msg v = vote(3, 2, TERM_HUGE - 1, false, false);

    cl_default_config(&cfg);
    cfg.pre_vote = false; /* An isolated node then campaigns for real, term after term. */
    c = cl_new(3, &cfg);

    /* No leader yet: an ordinary vote at the last usable term is taken (valid values). */
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &v));
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 2)), TERM_HUGE - 1);
    /* It can never campaign past it: no term TERM_HUGE is ever taken. */
    cl_isolate(c, 2);
    for (int i = 0; i < 100; i++) {
        aegis__raft_tick(cl_r(c, 2));
        cl_settle(c);
    }
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 2)), TERM_HUGE - 1);
    ASSERT_TRUE(aegis__raft_role(cl_r(c, 2)) != AEGIS_ROLE_LEADER);
    cl_free(c);
    return TEST_PASS;
}

TEST(peer, restore_refuses_a_stored_term_at_the_ceiling)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {0};
    struct aegis_rng rng;
    struct aegis_raft *r = NULL;

    cl_default_config(&cfg);
    cfg.id = 1;
    rs.bootstrap.count = 1;
    rs.bootstrap.members[0] = (struct aegis_member){1, AEGIS_MEMBER_VOTER};
    rs.hs.term = TERM_TOP; /* What the forged vote left on every disk. */
    aegis__rng_seed(&rng, 1);
    ASSERT_ERR(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL), AEGIS_ECORRUPT);
    rs.hs.term = TERM_HUGE - 1;
    ASSERT_OK(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL));
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(peer, validate_boundaries)
{
    struct aegis_entry es[2] = {{.index = 6, .term = 2, .type = AEGIS_ENTRY_COMMAND},
                                {.index = 7, .term = 3, .type = AEGIS_ENTRY_NOOP}};
    struct aegis_msg m = append(1, 2, 3, 5, 2, es, 2, 4);

    ASSERT_OK(aegis__msg_validate(&m));
    m.term = 2; /* An entry's term above the message's. */
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m.term = 3;
    m.append_req.prev_term = 4; /* prev_term above the message's term. */
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m.append_req.prev_term = 2;
    m.append_req.prev_index = AEGIS_INDEX_MAX - 2; /* Last new index AEGIS_INDEX_MAX. */
    es[0].index = AEGIS_INDEX_MAX - 1;
    es[1].index = AEGIS_INDEX_MAX;
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m.append_req.prev_index = AEGIS_INDEX_MAX - 3;
    es[0].index = AEGIS_INDEX_MAX - 2;
    es[1].index = AEGIS_INDEX_MAX - 1;
    ASSERT_OK(aegis__msg_validate(&m));
    m.term = AEGIS_TERM_MAX - 1;
    ASSERT_OK(aegis__msg_validate(&m));
    m.term = AEGIS_TERM_MAX;
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m = vote(2, 1, 5, true, true); /* A pre-vote never carries the transfer flag. */
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m = vote(2, 1, 5, false, false);
    m.vote_req.last_log_term = 6;
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m = (struct aegis_msg){.type = AEGIS_MSG_APPEND_RESP, .from = 2, .term = 1};
    m.append_resp.last_index = AEGIS_INDEX_MAX;
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT);
    m = (struct aegis_msg){.type = AEGIS_MSG_HEARTBEAT, .from = 2, .term = 0};
    ASSERT_ERR(aegis__msg_validate(&m), AEGIS_ECORRUPT); /* No leader has term 0. */
    return TEST_PASS;
}
