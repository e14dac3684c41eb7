/* SPDX-License-Identifier: MIT */
/* The core's fail-safes for membership (engine/raft_membership.c):
 *
 *   the amnesia guard (config.fresh): a node whose storage was empty at start and that was
 *   not started to join refuses any message showing that the cluster already has a log,
 *   and reports AEGIS_EAMNESIA in its ready; a normal first bootstrap is not affected;
 *
 *   the promotion rule: a learner becomes a voter only once it acknowledged entries up to
 *   its catch-up index (the AddLearner entry, above the commit index at the request); a
 *   learner that never does is removed after config.catchup_timeout_ticks, the voter
 *   count unchanged.
 *
 * Each scenario is the one found on main with real processes (issue 11), reduced to the
 * in-test cluster of raft_cluster.h. */
#include "raft_cluster.h"

static struct aegis_raft_config guarded_config(void)
{
    struct aegis_raft_config cfg;

    cl_default_config(&cfg);
    cfg.fresh = true; /* Every node of a new cluster starts empty, without --join. */
    return cfg;
}

/* Crash @id, erase its storage (log, hard state, snapshot) and start it again with the
 * cluster's config: the operator deleted the data directory and kept the flags. */
static void wipe(struct cluster *c, aegis_node_id id)
{
    struct cl_node *nd = &c->nodes[id];

    cl_node_stop(c, id);
    for (size_t i = 0; i < nd->log_count; i++) {
        aegis__entry_unref(&nd->log[i]);
    }
    nd->log_count = 0;
    memset(&nd->hs, 0, sizeof(nd->hs));
    if (nd->has_snap) {
        aegis__buf_unref(nd->snap_data);
        nd->snap_data = NULL;
        nd->has_snap = false;
        aegis__snapshot_mem_close(&nd->mem);
        aegis__snapshot_mem_init(&nd->mem, NULL);
    }
    cl_restart(c, id);
}

/* A lone fresh core (members 1..3), to look at what it does with one message. */
static struct aegis_raft *fresh_solo(struct aegis_rng *rng)
{
    struct aegis_raft_config cfg = guarded_config();
    struct aegis_raft_restore rs = {0};
    struct aegis_raft *r = NULL;

    cfg.id = 3;
    rs.bootstrap.count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        rs.bootstrap.members[i] = (struct aegis_member){i + 1, AEGIS_MEMBER_VOTER};
    }
    aegis__rng_seed(rng, 3);
    if (aegis__raft_create(&r, &cfg, &rs, rng, NULL, NULL) != 0) {
        cl_die("create");
    }
    return r;
}

static uint32_t ready_msgs(struct aegis_raft *r, int *fatal_out)
{
    struct aegis_ready rd;
    uint32_t n;

    *fatal_out = 0;
    if (!aegis__raft_has_ready(r)) {
        return 0;
    }
    aegis__raft_ready(r, &rd);
    n = rd.msgs_count + rd.msgs_after_persist_count;
    *fatal_out = rd.fatal;
    aegis__raft_advance(r, &rd);
    return n;
}

TEST(raft_guard, fresh_node_refuses_a_vote_to_a_candidate_with_a_log)
{
    struct aegis_rng rng;
    struct aegis_raft *r = fresh_solo(&rng);
    struct aegis_msg m = {.type = AEGIS_MSG_VOTE_REQ, .from = 1, .to = 3, .term = 7};
    int fatal;

    m.vote_req.last_log_index = 12;
    m.vote_req.last_log_term = 6;
    ASSERT_OK(aegis__raft_step(r, &m));
    /* Nothing changed, nothing answered, and the ready says why. */
    ASSERT_EQ_U64(aegis__raft_term(r), 0);
    ASSERT_EQ_U64(aegis__raft_hard_state(r).vote, 0);
    ASSERT_TRUE(aegis__raft_has_ready(r));
    ASSERT_EQ_U64(ready_msgs(r, &fatal), 0);
    ASSERT_ERR(fatal, AEGIS_EAMNESIA);
    ASSERT_ERR(aegis__raft_fatal(r), AEGIS_EAMNESIA);
    /* Reported once; from now on every message is ignored and the node never campaigns. */
    ASSERT_FALSE(aegis__raft_has_ready(r));
    m.vote_req.last_log_index = 0;
    m.vote_req.last_log_term = 0;
    m.term = 8;
    ASSERT_OK(aegis__raft_step(r, &m));
    for (int i = 0; i < 100; i++) {
        aegis__raft_tick(r);
    }
    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_term(r), 0);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
    ASSERT_FALSE(aegis__raft_has_ready(r));
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft_guard, fresh_node_refuses_pre_votes_appends_heartbeats_snapshots_of_a_cluster)
{
    struct aegis_msg ms[5] = {
        {.type = AEGIS_MSG_VOTE_REQ, .from = 1, .to = 3, .term = 4},
        {.type = AEGIS_MSG_APPEND_REQ, .from = 1, .to = 3, .term = 4},
        {.type = AEGIS_MSG_VOTE_REQ, .from = 1, .to = 3, .term = 4},
        {.type = AEGIS_MSG_HEARTBEAT, .from = 1, .to = 3, .term = 4},
        {.type = AEGIS_MSG_SNAPSHOT_REQ, .from = 1, .to = 3, .term = 4},
    };

    ms[0].vote_req.pre_vote = true;
    ms[0].vote_req.last_log_index = 1;
    ms[0].vote_req.last_log_term = 1;
    ms[1].append_req.prev_index = 5; /* Probing an existing log. */
    ms[1].append_req.prev_term = 3;
    ms[2].vote_req.last_log_index = 3; /* A real candidate with a log. */
    ms[2].vote_req.last_log_term = 2;
    ms[3].heartbeat.commit = 9;      /* The leader says we acknowledged up to 9. */
    ms[4].snapshot_req.meta.index = 50;
    ms[4].snapshot_req.meta.term = 3;
    /* A well-formed offer (it passes aegis__msg_validate): one empty, final chunk of a
     * snapshot whose configuration has the leader as a voter. */
    ms[4].snapshot_req.meta.conf.members[0].id = 1;
    ms[4].snapshot_req.meta.conf.members[0].role = AEGIS_MEMBER_VOTER;
    ms[4].snapshot_req.meta.conf.count = 1;
    ms[4].snapshot_req.done = true;
    for (uint32_t i = 0; i < 5; i++) {
        struct aegis_rng rng;
        struct aegis_raft *r = fresh_solo(&rng);
        int fatal;

        ASSERT_OK(aegis__raft_step(r, &ms[i]));
        ASSERT_EQ_U64(ready_msgs(r, &fatal), 0);
        ASSERT_ERR(fatal, AEGIS_EAMNESIA);
        ASSERT_EQ_U64(aegis__raft_term(r), 0);
        ASSERT_EQ_U64(aegis__raft_last_index(r), 0);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(raft_guard, fresh_node_accepts_the_shape_of_a_first_bootstrap)
{
    struct aegis_rng rng;
    struct aegis_raft *r = fresh_solo(&rng);
    struct aegis_msg vote = {.type = AEGIS_MSG_VOTE_REQ, .from = 1, .to = 3, .term = 1};
    struct aegis_msg hb = {.type = AEGIS_MSG_HEARTBEAT, .from = 1, .to = 3, .term = 1};
    struct aegis_msg app = {.type = AEGIS_MSG_APPEND_REQ, .from = 1, .to = 3, .term = 1};
    struct aegis_entry noop = {.index = 1, .term = 1, .type = AEGIS_ENTRY_NOOP};
    int fatal;

    ASSERT_OK(aegis__raft_step(r, &vote)); /* A candidate with an empty log: granted. */
    ASSERT_EQ_U64(aegis__raft_hard_state(r).vote, 1);
    ASSERT_EQ_U64(ready_msgs(r, &fatal), 1);
    ASSERT_OK(fatal);
    ASSERT_OK(aegis__raft_step(r, &hb)); /* The leader's heartbeat carries commit 0. */
    ASSERT_EQ_U64(ready_msgs(r, &fatal), 1);
    app.append_req.entries = &noop;      /* Its NoOp: prev 0, commit 0. */
    app.append_req.entries_count = 1;
    ASSERT_OK(aegis__raft_step(r, &app));
    ASSERT_EQ_U64(aegis__raft_last_index(r), 1);
    ASSERT_EQ_U64(ready_msgs(r, &fatal), 1);
    ASSERT_OK(fatal);
    /* It holds an entry now: the guard is off for good, the cluster goes on normally. */
    app.append_req.prev_index = 1;
    app.append_req.prev_term = 1;
    app.append_req.commit = 1;
    app.append_req.entries_count = 0;
    app.append_req.entries = NULL;
    ASSERT_OK(aegis__raft_step(r, &app));
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    ASSERT_OK(aegis__raft_fatal(r));
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft_guard, guarded_cluster_bootstraps_and_replicates)
{
    struct aegis_raft_config cfg = guarded_config();
    struct cluster *c = cl_new(3, &cfg);

    cl_tick_all(c, 60); /* Nobody is told to campaign: timeouts elect someone. */
    ASSERT_TRUE(cl_leader(c) != 0);
    ASSERT_OK(cl_propose(c, cl_leader(c), "a", NULL));
    cl_tick_all(c, 3);
    for (aegis_node_id id = 1; id <= 3; id++) {
        ASSERT_TRUE(cl_applied_has(c, id, "a"));
        ASSERT_OK(aegis__raft_fatal(cl_r(c, id)));
    }
    /* A plain restart (storage intact) of a guarded node is not amnesia. */
    cl_restart(c, 3);
    cl_tick_all(c, 30);
    ASSERT_OK(aegis__raft_fatal(cl_r(c, 3)));
    ASSERT_TRUE(cl_applied_has(c, 3, "a"));
    cl_free(c);
    return TEST_PASS;
}

TEST(raft_guard, node_started_after_the_first_commit_catches_up)
{
    struct aegis_raft_config cfg = guarded_config();
    struct cluster *c = cl_new(3, &cfg);

    /* Node 3 starts late (a slow host): 1 and 2 elect and commit without it. */
    cl_node_stop(c, 3);
    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "early", NULL));
    cl_tick_all(c, 3);
    ASSERT_TRUE(aegis__raft_commit_index(cl_r(c, 1)) >= 2);
    cl_restart(c, 3); /* Empty storage, fresh: the leader sends from index 1. */
    cl_tick_all(c, 10);
    ASSERT_OK(aegis__raft_fatal(cl_r(c, 3)));
    ASSERT_TRUE(cl_applied_has(c, 3, "early"));
    cl_free(c);
    return TEST_PASS;
}

/* The amnesia sequence of issue 11: "x" is committed by nodes 1 and 3 while 2 is cut off;
 * then 1 is down and 3 is wiped and restarted with its old flags. Returns whether node 2
 * became leader without "x" (the acknowledged write lost). */
static bool amnesia_loses_x(uint32_t bugs, int *fatal3_out)
{
    struct aegis_raft_config cfg = guarded_config();
    struct cluster *c;
    bool lost;

    cfg.bugs = bugs;
    c = cl_new(3, &cfg);
    if (!cl_elect(c, 1)) {
        cl_die("elect");
    }
    cl_isolate(c, 2);
    if (cl_propose(c, 1, "x", NULL) != 0) {
        cl_die("propose");
    }
    cl_tick_all(c, 3);
    if (!cl_applied_has(c, 1, "x") || cl_applied_has(c, 2, "x")) {
        cl_die("x not committed by 1 and 3 alone");
    }
    cl_node_stop(c, 1);
    cl_heal(c);
    wipe(c, 3);
    cl_tick_all(c, 200);
    lost = aegis__raft_role(cl_r(c, 2)) == AEGIS_ROLE_LEADER;
    *fatal3_out = aegis__raft_fatal(cl_r(c, 3));
    if (!lost) {
        /* Node 1 comes back: 1 and 2 elect 1 (2 lacks "x"), and "x" reaches 2. */
        cl_restart(c, 1);
        cl_tick_all(c, 200);
        lost = cl_leader(c) != 1 || !cl_applied_has(c, 2, "x");
    }
    cl_free(c);
    return lost;
}

TEST(raft_guard, wiped_follower_cannot_elect_a_node_missing_committed_entries)
{
    int fatal3 = 0;

    ASSERT_FALSE(amnesia_loses_x(0, &fatal3));
    ASSERT_ERR(fatal3, AEGIS_EAMNESIA);
#ifdef AEGIS_SIM_BUGS
    /* Without the guard (main before this change) the same sequence loses "x". */
    ASSERT_TRUE(amnesia_loses_x(AEGIS_RAFT_BUG_NO_AMNESIA_GUARD, &fatal3));
    ASSERT_OK(fatal3);
#endif
    return TEST_PASS;
}

TEST(raft_guard, wiped_node_removed_and_added_back_with_join_catches_up)
{
    struct aegis_raft_config cfg = guarded_config();
    struct cluster *c = cl_new(3, &cfg);
    struct aegis_conf conf2 = {.count = 2, .members = {{1, 1}, {2, 1}}};
    aegis_index idx = 0;
    int rv;

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "y", NULL));
    cl_tick_all(c, 3);
    /* The operator's procedure: AEGIS.REMOVE 3, wipe, start with --join (not fresh, and
     * not a member of anything), AEGIS.ADD 3. */
    ASSERT_OK(aegis__raft_remove(cl_r(c, 1), 3, &idx));
    cl_tick_all(c, 3);
    c->cfg.fresh = false;
    c->conf = conf2;
    wipe(c, 3);
    ASSERT_OK(aegis__raft_add_learner(cl_r(c, 1), 3, &idx));
    for (int i = 0; i < 50 && (rv = aegis__raft_promote(cl_r(c, 1), 3, &idx)) != 0; i++) {
        ASSERT_TRUE(rv == AEGIS_EAGAIN || rv == AEGIS_EBUSY);
        cl_tick_all(c, 1);
    }
    cl_tick_all(c, 3);
    ASSERT_OK(aegis__raft_fatal(cl_r(c, 3)));
    ASSERT_TRUE(cl_applied_has(c, 3, "y"));
    ASSERT_EQ_U64(aegis__conf_voter_count(aegis__raft_conf(cl_r(c, 3))), 3);
    cl_free(c);
    return TEST_PASS;
}

/* Nodes 1..3 voters, node 4 known to nobody yet (it will be added). */
static struct cluster *group_of_three_and_a_newcomer(uint32_t catchup_timeout)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    struct aegis_conf conf3 = {.count = 3, .members = {{1, 1}, {2, 1}, {3, 1}}};

    cl_default_config(&cfg);
    cfg.catchup_timeout_ticks = catchup_timeout;
    cfg.append_bytes_max = 1; /* One entry per AppendEntries. */
    c = cl_new_mixed(4, 3, &cfg, 1);
    c->conf = conf3;
    for (aegis_node_id id = 1; id <= 4; id++) {
        cl_restart(c, id);
    }
    if (!cl_elect(c, 1)) {
        cl_die("elect");
    }
    return c;
}

TEST(raft_guard, silent_learner_is_never_promoted_below_its_catchup_index)
{
    struct cluster *c = group_of_three_and_a_newcomer(0);
    aegis_index add = 0, idx = 0, match = 0, next = 0;

    /* The finding: commit index below 64 and a learner that never answers. */
    cl_node_stop(c, 4);
    ASSERT_TRUE(aegis__raft_commit_index(cl_r(c, 1)) < 64);
    ASSERT_OK(aegis__raft_add_learner(cl_r(c, 1), 4, &add));
    ASSERT_TRUE(add > aegis__raft_commit_index(cl_r(c, 1)));
    ASSERT_ERR(aegis__raft_promote(cl_r(c, 1), 4, &idx), AEGIS_EBUSY); /* Uncommitted. */
    cl_tick_all(c, 3);
    for (int i = 0; i < 20; i++) {
        ASSERT_ERR(aegis__raft_promote(cl_r(c, 1), 4, &idx), AEGIS_EAGAIN);
        cl_tick_all(c, 10);
    }
    ASSERT_EQ_U64(aegis__conf_voter_count(aegis__raft_conf(cl_r(c, 1))), 3);
    /* It comes up and catches up: promoted, and it votes from then on. */
    cl_restart(c, 4);
    cl_tick_all(c, 5);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 4, &match, &next));
    ASSERT_TRUE(match >= add);
    ASSERT_OK(aegis__raft_promote(cl_r(c, 1), 4, &idx));
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(aegis__conf_voter_count(aegis__raft_conf(cl_r(c, 1))), 4);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 4)), AEGIS_ROLE_FOLLOWER);
    cl_free(c);
    return TEST_PASS;
}

/* Drop the entries after index 2 on their way to node 4 (one entry per AppendEntries):
 * a learner that answered a little, then stalled. */
static bool stall_4(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    return m->to == 4 && m->type == AEGIS_MSG_APPEND_REQ && m->append_req.entries_count > 0 &&
           m->append_req.prev_index >= 2;
}

TEST(raft_guard, learner_behind_its_catchup_index_is_not_promoted)
{
    struct cluster *c = group_of_three_and_a_newcomer(0);
    aegis_index add = 0, idx = 0, match = 0, next = 0;

    /* Give the log a few entries, then add 4 while it only ever receives the first two. */
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(cl_propose(c, 1, "e", NULL));
    }
    cl_tick_all(c, 2);
    c->filter = stall_4;
    ASSERT_OK(aegis__raft_add_learner(cl_r(c, 1), 4, &add));
    cl_tick_all(c, 30);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 4, &match, &next));
    ASSERT_TRUE(match > 0 && match < add);
    ASSERT_ERR(aegis__raft_promote(cl_r(c, 1), 4, &idx), AEGIS_EAGAIN);
    c->filter = NULL;
    cl_tick_all(c, 5);
    ASSERT_OK(aegis__raft_promote(cl_r(c, 1), 4, &idx));
    cl_free(c);
    return TEST_PASS;
}

TEST(raft_guard, learner_that_never_catches_up_is_removed_after_the_timeout)
{
    struct cluster *c = group_of_three_and_a_newcomer(40);
    aegis_index add = 0, idx = 0;
    uint32_t ticks = 0;
    int rv;

    cl_node_stop(c, 4); /* A mistyped address: nobody answers. */
    ASSERT_OK(aegis__raft_add_learner(cl_r(c, 1), 4, &add));
    cl_tick_all(c, 1);
    ticks++;
    while ((rv = aegis__raft_promote(cl_r(c, 1), 4, &idx)) == AEGIS_EAGAIN && ticks < 100) {
        cl_tick_all(c, 1);
        ticks++;
    }
    ASSERT_ERR(rv, AEGIS_ECATCHUP);
    ASSERT_TRUE(ticks >= 40 && ticks <= 42);
    ASSERT_TRUE(idx > add); /* The removal it proposed. */
    cl_tick_all(c, 3);
    for (aegis_node_id id = 1; id <= 3; id++) {
        const struct aegis_conf *conf = aegis__raft_conf(cl_r(c, id));

        ASSERT_EQ_U64(conf->count, 3);
        ASSERT_EQ_U64(aegis__conf_voter_count(conf), 3);
    }
    ASSERT_ERR(aegis__raft_promote(cl_r(c, 1), 4, &idx), AEGIS_EUNKNOWNNODE);
    ASSERT_OK(cl_propose(c, 1, "still", NULL)); /* The group still commits. */
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 3, "still"));
    cl_free(c);
    return TEST_PASS;
}
