/* SPDX-License-Identifier: MIT */
/* Unit tests of the Raft core beyond the paper's scenarios (those are in
 * test_raft_paper.c): the ready/persistence contract, flow control, pre-vote,
 * check-quorum, stickiness, snapshots, ReadIndex, leadership transfer, learners and
 * membership, restart, bug injection and the tracer. */
#include "raft_cluster.h"

/* A lone core with members 1..@n (voters), outside any cluster, to look at its output. */
static struct aegis_raft *solo(aegis_node_id id, uint32_t n, struct aegis_rng *rng,
                               const struct aegis_raft_config *cfg_in)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {0};
    struct aegis_raft *r = NULL;

    if (cfg_in != NULL) {
        cfg = *cfg_in;
    } else {
        cl_default_config(&cfg);
    }
    cfg.id = id;
    rs.bootstrap.count = n;
    for (uint32_t i = 0; i < n; i++) {
        rs.bootstrap.members[i] = (struct aegis_member){i + 1, AEGIS_MEMBER_VOTER};
    }
    aegis__rng_seed(rng, id);
    if (aegis__raft_create(&r, &cfg, &rs, rng, NULL, NULL) != 0) {
        cl_die("solo create");
    }
    return r;
}

static const struct aegis_msg *find_msg(const struct aegis_msg *msgs, uint32_t n, uint8_t type,
                                        aegis_node_id to)
{
    for (uint32_t i = 0; i < n; i++) {
        if (msgs[i].type == type && (to == 0 || msgs[i].to == to)) {
            return &msgs[i];
        }
    }
    return NULL;
}

static uint32_t count_msgs(const struct aegis_msg *msgs, uint32_t n, uint8_t type,
                           aegis_node_id to)
{
    uint32_t k = 0;

    for (uint32_t i = 0; i < n; i++) {
        k += msgs[i].type == type && (to == 0 || msgs[i].to == to) ? 1u : 0u;
    }
    return k;
}

TEST(raft, config_checked)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {.bootstrap = {.count = 1, .members = {{1, 1}}}};
    struct aegis_rng rng;
    struct aegis_raft *r;

    aegis__raft_config_default(&cfg);
    ASSERT_EQ_U64(cfg.election_timeout_min_ticks, 10);
    ASSERT_EQ_U64(cfg.election_timeout_max_ticks, 20);
    ASSERT_EQ_U64(cfg.heartbeat_interval_ticks, 2);
    ASSERT_TRUE(cfg.pre_vote && cfg.check_quorum);
    aegis__rng_seed(&rng, 1);
    ASSERT_ERR(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL), AEGIS_ECONFIG); /* id 0 */
    cfg.id = 1;
    cfg.heartbeat_interval_ticks = 10;
    ASSERT_ERR(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL), AEGIS_ECONFIG);
    cfg.heartbeat_interval_ticks = 2;
    rs.bootstrap.members[0].role = 7;
    ASSERT_ERR(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL), AEGIS_ECONFIG);
    rs.bootstrap.members[0].role = AEGIS_MEMBER_VOTER;
    ASSERT_OK(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL));
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, single_node_commits_only_once_durable)
{
    struct aegis_rng rng;
    struct aegis_raft *r = solo(1, 1, &rng, NULL);
    struct aegis_ready rd;
    aegis_index idx;

    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_LEADER);
    ASSERT_EQ_U64(aegis__raft_term(r), 1);
    ASSERT_EQ_U64(aegis__raft_last_index(r), 1); /* The NoOp. */
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 0);
    ASSERT_TRUE(aegis__raft_has_ready(r));
    aegis__raft_ready(r, &rd);
    ASSERT_TRUE(rd.hs_changed);
    ASSERT_EQ_U64(rd.hs.term, 1);
    ASSERT_EQ_U64(rd.hs.vote, 1);
    ASSERT_EQ_U64(rd.entries_count, 1);
    ASSERT_EQ_U64(rd.entries[0].type, AEGIS_ENTRY_NOOP);
    ASSERT_EQ_U64(rd.committed_count, 0);
    aegis__raft_advance(r, &rd);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 0); /* Not durable yet. */
    aegis__raft_persisted(r, 1, 1);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    aegis__raft_ready(r, &rd);
    ASSERT_EQ_U64(rd.committed_count, 1);
    ASSERT_EQ_U64(rd.committed[0].index, 1);
    aegis__raft_advance(r, &rd);
    ASSERT_OK(aegis__raft_propose(r, AEGIS_ENTRY_COMMAND, NULL, &idx));
    ASSERT_EQ_U64(idx, 2);
    ASSERT_ERR(aegis__raft_propose(r, 99, NULL, &idx), AEGIS_EINVAL);
    aegis__raft_persisted(r, 2, 7); /* Wrong term: ignored. */
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    aegis__raft_persisted(r, 2, 1); /* Not handed out in a ready yet: ignored. */
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    aegis__raft_ready(r, &rd);
    aegis__raft_advance(r, &rd);
    aegis__raft_persisted(r, 2, 1);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 2);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, vote_requests_wait_for_durable_term)
{
    struct aegis_rng rng;
    struct aegis_raft_config cfg;
    struct aegis_raft *r;
    struct aegis_ready rd;

    cl_default_config(&cfg);
    cfg.pre_vote = false;
    r = solo(1, 3, &rng, &cfg);
    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_CANDIDATE);
    aegis__raft_ready(r, &rd);
    ASSERT_TRUE(rd.hs_changed);
    ASSERT_EQ_U64(rd.hs.vote, 1);
    ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_VOTE_REQ, 0), 0);
    ASSERT_EQ_U64(count_msgs(rd.msgs_after_persist, rd.msgs_after_persist_count,
                             AEGIS_MSG_VOTE_REQ, 0), 2);
    aegis__raft_advance(r, &rd);
    aegis__raft_destroy(r);

    /* Pre-votes change no state: they go at once, at term + 1, and the term stays. */
    cfg.pre_vote = true;
    r = solo(1, 3, &rng, &cfg);
    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_PRECANDIDATE);
    ASSERT_EQ_U64(aegis__raft_term(r), 0);
    aegis__raft_ready(r, &rd);
    ASSERT_FALSE(rd.hs_changed);
    ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_VOTE_REQ, 0), 2);
    ASSERT_TRUE(rd.msgs[0].vote_req.pre_vote);
    ASSERT_EQ_U64(rd.msgs[0].term, 1);
    aegis__raft_advance(r, &rd);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

static struct aegis_msg append_msg(aegis_node_id from, aegis_term term, aegis_index prev,
                                   aegis_term prev_term, struct aegis_entry *es, uint32_t n,
                                   aegis_index commit)
{
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_REQ, .from = from, .to = 1, .term = term};

    m.append_req.prev_index = prev;
    m.append_req.prev_term = prev_term;
    m.append_req.entries = es;
    m.append_req.entries_count = n;
    m.append_req.commit = commit;
    return m;
}

TEST(raft, follower_acks_only_after_persist)
{
    struct aegis_rng rng;
    struct aegis_raft *r = solo(1, 3, &rng, NULL);
    struct aegis_entry es[2] = {{.index = 1, .term = 1, .type = AEGIS_ENTRY_NOOP},
                                {.index = 2, .term = 1, .type = AEGIS_ENTRY_COMMAND}};
    struct aegis_msg m = append_msg(2, 1, 0, 0, es, 2, 1);
    struct aegis_ready rd;
    const struct aegis_msg *ack;

    ASSERT_OK(aegis__raft_step(r, &m));
    ASSERT_EQ_U64(aegis__raft_leader(r), 2);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    aegis__raft_ready(r, &rd);
    ASSERT_EQ_U64(rd.entries_count, 2);
    ASSERT_EQ_U64(rd.committed_count, 0); /* Committed but not durable here yet. */
    ASSERT_EQ_U64(rd.msgs_count, 0);
    ack = find_msg(rd.msgs_after_persist, rd.msgs_after_persist_count, AEGIS_MSG_APPEND_RESP, 2);
    ASSERT_TRUE(ack != NULL);
    ASSERT_TRUE(ack->append_resp.success);
    ASSERT_EQ_U64(ack->append_resp.match_index, 2);
    aegis__raft_advance(r, &rd);
    aegis__raft_persisted(r, 2, 1);
    aegis__raft_ready(r, &rd);
    ASSERT_EQ_U64(rd.committed_count, 1);
    aegis__raft_advance(r, &rd);
    /* A proposal on a follower is refused and names the leader. */
    ASSERT_ERR(aegis__raft_propose(r, AEGIS_ENTRY_COMMAND, NULL, NULL), AEGIS_ENOTLEADER);
    ASSERT_EQ_U64(aegis__raft_leader(r), 2);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, bug_ack_before_durable_moves_the_ack)
{
    struct aegis_rng rng;
    struct aegis_raft_config cfg;
    struct aegis_raft *r;
    struct aegis_entry es[1] = {{.index = 1, .term = 1, .type = AEGIS_ENTRY_NOOP}};
    struct aegis_msg m = append_msg(2, 1, 0, 0, es, 1, 0);
    struct aegis_ready rd;

    cl_default_config(&cfg);
    cfg.bugs = AEGIS_RAFT_BUG_ACK_BEFORE_DURABLE;
    r = solo(1, 3, &rng, &cfg);
    ASSERT_OK(aegis__raft_step(r, &m));
    aegis__raft_ready(r, &rd);
#ifdef AEGIS_SIM_BUGS
    ASSERT_TRUE(find_msg(rd.msgs, rd.msgs_count, AEGIS_MSG_APPEND_RESP, 2) != NULL);
#else
    ASSERT_TRUE(find_msg(rd.msgs, rd.msgs_count, AEGIS_MSG_APPEND_RESP, 2) == NULL);
#endif
    aegis__raft_advance(r, &rd);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, malformed_input_is_an_error)
{
    struct aegis_rng rng;
    struct aegis_raft *r = solo(1, 3, &rng, NULL);
    struct aegis_entry es[2] = {{.index = 1, .term = 1, .type = AEGIS_ENTRY_NOOP},
                                {.index = 3, .term = 1, .type = AEGIS_ENTRY_COMMAND}};
    struct aegis_msg m = append_msg(2, 1, 0, 0, es, 2, 0);

    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_ECORRUPT); /* Gap in indexes. */
    es[1].index = 2;
    es[1].term = 5; /* Entry term above the message's term. */
    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_ECORRUPT);
    es[1].term = 1;
    es[1].type = 42;
    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_ECORRUPT);
    m.from = 0;
    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_ECORRUPT);
    m.from = 2;
    m.type = 200;
    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_ECORRUPT);
    m.type = AEGIS_MSG_APPEND_REQ;
    es[1].type = AEGIS_ENTRY_COMMAND;
    m.from = 1; /* From ourselves. */
    ASSERT_ERR(aegis__raft_step(r, &m), AEGIS_EINVAL);
    ASSERT_EQ_U64(aegis__raft_last_index(r), 0);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, three_nodes_replicate_and_apply)
{
    struct cluster *c = cl_new(3, NULL);
    aegis_index idx;

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "x=1", &idx));
    ASSERT_ERR(cl_propose(c, 2, "x=2", NULL), AEGIS_ENOTLEADER);
    ASSERT_EQ_U64(aegis__raft_leader(cl_r(c, 2)), 1);
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), idx);
    cl_tick_all(c, 2); /* Heartbeats carry the commit index to followers. */
    for (aegis_node_id id = 1; id <= 3; id++) {
        ASSERT_TRUE(cl_applied_has(c, id, "x=1"));
        ASSERT_EQ_U64(c->nodes[id].applied_index, idx);
    }
    cl_free(c);
    return TEST_PASS;
}

static uint32_t appends_seen, appends_max_entries;

static bool watch_appends(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    if (m->type == AEGIS_MSG_APPEND_REQ && m->append_req.entries_count > 0) {
        appends_seen++;
        if (m->append_req.entries_count > appends_max_entries) {
            appends_max_entries = m->append_req.entries_count;
        }
    }
    return false;
}

TEST(raft, pipelining_respects_window_and_message_size)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    struct aegis_ready rd;
    aegis_index match, next;

    cl_default_config(&cfg);
    cfg.inflight_msgs_max = 3;
    cfg.append_bytes_max = 8;
    c = cl_new(2, &cfg);
    ASSERT_TRUE(cl_elect(c, 1));
    cl_tick_all(c, 1);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 2, &match, &next));
    ASSERT_EQ_U64(match, 1);
    /* Ten 4-byte proposals taken between two readies go out together, without waiting
     * for answers: messages of at most append_bytes_max (two entries), three in flight;
     * the rest wait for the window. */
    for (int i = 0; i < 10; i++) {
        ASSERT_OK(cl_propose(c, 1, "abcd", NULL));
    }
    aegis__raft_ready(cl_r(c, 1), &rd);
    ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_APPEND_REQ, 2), 3);
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        ASSERT_EQ_U64(rd.msgs[i].append_req.entries_count, 2);
        ASSERT_EQ_U64(rd.msgs[i].append_req.prev_index, 1 + 2 * i);
        cl_enqueue(c, &rd.msgs[i]);
    }
    aegis__raft_advance(cl_r(c, 1), &rd);
    aegis__raft_persisted(cl_r(c, 1), 11, 1);
    ASSERT_TRUE(aegis__raft_progress(cl_r(c, 1), 2, &match, &next));
    ASSERT_EQ_U64(next, 8); /* Optimistically past what is in flight. */
    ASSERT_EQ_U64(match, 1);
    /* As answers free the window, the backlog goes out two entries (8 bytes) at a time. */
    appends_seen = appends_max_entries = 0;
    c->filter = watch_appends;
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 11);
    ASSERT_EQ_U64(appends_max_entries, 2);
    ASSERT_TRUE(appends_seen <= 5);
    cl_free(c);
    return TEST_PASS;
}

/* Proposals made between two readies leave as one AppendEntries per follower, not one
 * each: the leader broadcasts at the ready. */
TEST(raft, proposals_between_readies_share_one_append)
{
    struct cluster *c = cl_new(3, NULL);
    struct aegis_ready rd;

    ASSERT_TRUE(cl_elect(c, 1));
    cl_settle(c);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(cl_propose(c, 1, "abcd", NULL));
    }
    ASSERT_TRUE(aegis__raft_has_ready(cl_r(c, 1)));
    aegis__raft_ready(cl_r(c, 1), &rd);
    for (aegis_node_id to = 2; to <= 3; to++) {
        ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_APPEND_REQ, to), 1);
    }
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        if (rd.msgs[i].type == AEGIS_MSG_APPEND_REQ) {
            ASSERT_EQ_U64(rd.msgs[i].append_req.entries_count, 5);
        }
        cl_enqueue(c, &rd.msgs[i]);
    }
    aegis__raft_advance(cl_r(c, 1), &rd);
    aegis__raft_persisted(cl_r(c, 1), aegis__raft_last_index(cl_r(c, 1)),
                          aegis__raft_term(cl_r(c, 1)));
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), aegis__raft_last_index(cl_r(c, 1)));
    cl_free(c);
    return TEST_PASS;
}

static bool drop_appends(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    return m->type == AEGIS_MSG_APPEND_REQ;
}

TEST(raft, lost_stream_recovers_through_probe)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    c->filter = drop_appends;
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(cl_propose(c, 1, "v", NULL));
    }
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 1);
    c->filter = NULL;
    cl_tick_all(c, 3); /* A heartbeat answer while behind: empty append, reject, PROBE. */
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 6);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 2)), 6);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, check_quorum_steps_down_isolated_leader)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    cl_isolate(c, 1);
    cl_tick_all(c, c->cfg.election_timeout_min_ticks * 2 + 1);
    ASSERT_TRUE(aegis__raft_role(cl_r(c, 1)) != AEGIS_ROLE_LEADER);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, pre_vote_keeps_partitioned_node_from_disrupting)
{
    struct cluster *c = cl_new(3, NULL);
    aegis_term term;

    ASSERT_TRUE(cl_elect(c, 1));
    term = aegis__raft_term(cl_r(c, 1));
    cl_isolate(c, 3);
    cl_tick_all(c, 100); /* Node 3 times out again and again, never past pre-vote. */
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 3)), term);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 3)), AEGIS_ROLE_PRECANDIDATE);
    cl_heal(c);
    cl_tick_all(c, 5);
    ASSERT_EQ_U64(cl_leader(c), 1);
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 1)), term);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 3)), AEGIS_ROLE_FOLLOWER);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, stickiness_ignores_votes_while_leader_is_heard)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    struct aegis_msg v = {.type = AEGIS_MSG_VOTE_REQ, .from = 3, .to = 2};

    cl_default_config(&cfg);
    cfg.pre_vote = false;
    c = cl_new(3, &cfg);
    ASSERT_TRUE(cl_elect(c, 1));
    v.term = aegis__raft_term(cl_r(c, 2)) + 1;
    v.vote_req.last_log_index = 100;
    v.vote_req.last_log_term = v.term;
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &v));
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 2)), v.term - 1); /* Ignored entirely. */
    /* The transfer flag alone is a claim: without the leader's notice it changes
     * nothing (test_peer_validation.c covers the notice). */
    v.vote_req.leadership_transfer = true;
    ASSERT_OK(aegis__raft_step(cl_r(c, 2), &v));
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 2)), v.term - 1);
    ASSERT_EQ_U64(aegis__raft_hard_state(cl_r(c, 2)).vote, 1); /* Still its vote for 1. */
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, heartbeat_commit_is_capped_by_match)
{
    struct cluster *c = cl_new(3, NULL);
    struct aegis_ready rd;
    const struct aegis_msg *hb;

    ASSERT_TRUE(cl_elect(c, 1));
    cl_isolate(c, 3);
    ASSERT_OK(cl_propose(c, 1, "a", NULL));
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 2);
    aegis__raft_tick(cl_r(c, 1));
    aegis__raft_ready(cl_r(c, 1), &rd);
    hb = find_msg(rd.msgs, rd.msgs_count, AEGIS_MSG_HEARTBEAT, 2);
    ASSERT_TRUE(hb != NULL);
    ASSERT_EQ_U64(hb->heartbeat.commit, 2);
    hb = find_msg(rd.msgs, rd.msgs_count, AEGIS_MSG_HEARTBEAT, 3);
    ASSERT_TRUE(hb != NULL);
    ASSERT_EQ_U64(hb->heartbeat.commit, 1); /* Node 3 acknowledged only the NoOp. */
    aegis__raft_advance(cl_r(c, 1), &rd);
    cl_free(c);
    return TEST_PASS;
}

/* Take a snapshot on @id at its applied index, with @len bytes of data. */
static int take_snapshot(struct cluster *c, aegis_node_id id, size_t len)
{
    struct cl_node *nd = &c->nodes[id];
    struct aegis_snapshot_meta meta = {.index = nd->applied_index};
    struct aegis_buf *data = aegis__buf_create(NULL, len);
    int rv;

    for (size_t i = 0; i < len; i++) {
        data->data[i] = (uint8_t)(i * 7);
    }
    meta.term = nd->applied[nd->applied_count - 1].term;
    ASSERT_OK(aegis__raft_conf_at(nd->r, meta.index, &meta.conf));
    rv = aegis__raft_snapshot_taken(nd->r, &meta, len);
    if (rv == 0) {
        aegis__snapshot_mem_set(&nd->mem, &meta, data);
    }
    aegis__buf_unref(data);
    return rv;
}

static bool count_snapshot_and_heartbeats(struct cluster *c, const struct aegis_msg *m);
static uint32_t seen_chunks, seen_heartbeats_during;

static bool count_snapshot_and_heartbeats(struct cluster *c, const struct aegis_msg *m)
{
    if (m->type == AEGIS_MSG_SNAPSHOT_REQ) {
        seen_chunks++;
        c->nodes[3].hold = seen_chunks == 1; /* Node 3 is slow to answer the first. */
    } else if (m->type == AEGIS_MSG_HEARTBEAT && m->to == 3 && seen_chunks > 0) {
        seen_heartbeats_during++;
    }
    return false;
}

TEST(raft, snapshot_compacts_and_catches_up_a_follower_in_chunks)
{
    struct aegis_raft_config cfg;
    struct cluster *c;
    char text[16];

    cl_default_config(&cfg);
    cfg.snapshot_threshold = 20;
    cfg.snapshot_trailing = 2;
    cfg.snapshot_chunk_bytes = 100;
    cfg.snapshot_chunks_inflight_max = 1; /* The window: test_snapshot_stream.c. */
    c = cl_new(3, &cfg);
    ASSERT_TRUE(cl_elect(c, 1));
    cl_isolate(c, 3);
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof(text), "v%d", i);
        ASSERT_OK(cl_propose(c, 1, text, NULL));
        cl_settle(c);
    }
    ASSERT_TRUE(c->nodes[1].snapshot_wanted);
    ASSERT_EQ_U64(c->nodes[1].applied_index, 31);
    ASSERT_OK(take_snapshot(c, 1, 1050));
    ASSERT_ERR(take_snapshot(c, 1, 10), AEGIS_ESTALE);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 1)), 31);
    ASSERT_TRUE(aegis__raft_conf_at(cl_r(c, 1), 28, &(struct aegis_conf){0}) ==
                AEGIS_ECOMPACTED);
    /* Node 3 comes back behind the compaction point: InstallSnapshot, 11 chunks, with
     * heartbeats still flowing to it during the transfer. */
    c->filter = count_snapshot_and_heartbeats;
    seen_chunks = seen_heartbeats_during = 0;
    cl_heal(c);
    cl_tick_all(c, 4);
    ASSERT_EQ_U64(seen_chunks, 1); /* One chunk in flight at a time... */
    ASSERT_TRUE(seen_heartbeats_during > 0); /* ...and heartbeats keep flowing. */
    c->nodes[3].hold = false;
    for (int t = 0; t < 40 && c->nodes[3].snapshot_restored == 0; t++) {
        cl_tick_all(c, 1);
    }
    ASSERT_EQ_U64(c->nodes[3].snapshot_restored, 31);
    ASSERT_EQ_U64(seen_chunks, 11);
    ASSERT_EQ_U64(c->nodes[3].snap_data->len, 1050);
    ASSERT_EQ_U64(c->nodes[3].snap_data->data[1049], (uint8_t)(1049 * 7));
    ASSERT_OK(cl_propose(c, 1, "after", NULL));
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 3, "after"));
    /* Node 3 restarts from its snapshot and log. */
    cl_restart(c, 3);
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 3, "after"));
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 3)), 32);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, read_index_on_leader_needs_a_heartbeat_round)
{
    struct cluster *c = cl_new(3, NULL);
    struct aegis_ready rd;

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(aegis__raft_read_index(cl_r(c, 1), 7));
    aegis__raft_ready(cl_r(c, 1), &rd);
    ASSERT_EQ_U64(rd.reads_count, 0); /* Not before the quorum confirms. */
    ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_HEARTBEAT, 0), 2);
    ASSERT_TRUE(find_msg(rd.msgs, rd.msgs_count, AEGIS_MSG_HEARTBEAT, 2)->heartbeat.read_ctx != 0);
    for (uint32_t i = 0; i < rd.msgs_count; i++) {
        cl_enqueue(c, &rd.msgs[i]);
    }
    aegis__raft_advance(cl_r(c, 1), &rd);
    cl_settle(c);
    ASSERT_EQ_U64(c->nodes[1].reads_count, 1);
    ASSERT_EQ_U64(c->nodes[1].reads[0].ctx, 7);
    ASSERT_EQ_U64(c->nodes[1].reads[0].index, 1);
    /* A partitioned leader cannot confirm. */
    cl_isolate(c, 1);
    ASSERT_OK(aegis__raft_read_index(cl_r(c, 1), 8));
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(c->nodes[1].reads_count, 1);
    ASSERT_ERR(aegis__raft_read_index(cl_r(c, 1), 0), AEGIS_EINVAL);
    cl_free(c);
    return TEST_PASS;
}

static bool drop_to_1(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    return m->to == 1 && m->type == AEGIS_MSG_APPEND_RESP;
}

TEST(raft, read_index_waits_for_first_commit_in_term)
{
    struct cluster *c = cl_new(3, NULL);

    c->filter = drop_to_1; /* The NoOp cannot commit. */
    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 0);
    ASSERT_OK(aegis__raft_read_index(cl_r(c, 1), 5));
    cl_settle(c);
    ASSERT_EQ_U64(c->nodes[1].reads_count, 0);
    c->filter = NULL;
    cl_tick_all(c, 6);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 1);
    ASSERT_EQ_U64(c->nodes[1].reads_count, 1);
    ASSERT_EQ_U64(c->nodes[1].reads[0].index, 1);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, read_index_forwarded_by_follower)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "a", NULL));
    cl_settle(c);
    ASSERT_OK(aegis__raft_read_index(cl_r(c, 2), 42));
    cl_settle(c);
    ASSERT_EQ_U64(c->nodes[2].reads_count, 1);
    ASSERT_EQ_U64(c->nodes[2].reads[0].ctx, 42);
    ASSERT_EQ_U64(c->nodes[2].reads[0].index, 2);
    ASSERT_EQ_U64(c->nodes[1].reads_count, 0);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, bug_read_without_index_answers_at_once)
{
    struct aegis_raft_config cfg;
    struct cluster *c;

    cl_default_config(&cfg);
    cfg.bugs = AEGIS_RAFT_BUG_READ_WITHOUT_INDEX;
    c = cl_new(3, &cfg);
    ASSERT_TRUE(cl_elect(c, 1));
    cl_isolate(c, 1);
    ASSERT_OK(aegis__raft_read_index(cl_r(c, 1), 9));
    cl_settle(c);
#ifdef AEGIS_SIM_BUGS
    ASSERT_EQ_U64(c->nodes[1].reads_count, 1);
#else
    ASSERT_EQ_U64(c->nodes[1].reads_count, 0);
#endif
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, leadership_transfer)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_ERR(aegis__raft_transfer(cl_r(c, 2), 3), AEGIS_ENOTLEADER);
    ASSERT_ERR(aegis__raft_transfer(cl_r(c, 1), 9), AEGIS_EUNKNOWNNODE);
    /* Node 3 lags: the transfer waits for it, refusing proposals meanwhile. */
    cl_isolate(c, 3);
    ASSERT_OK(cl_propose(c, 1, "a", NULL));
    cl_settle(c);
    ASSERT_OK(aegis__raft_transfer(cl_r(c, 1), 3));
    ASSERT_ERR(cl_propose(c, 1, "b", NULL), AEGIS_EBUSY);
    cl_heal(c);
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(cl_leader(c), 3);
    ASSERT_EQ_U64(aegis__raft_leader(cl_r(c, 1)), 3);
    ASSERT_OK(cl_propose(c, 3, "c", NULL));
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, leadership_transfer_abandoned_after_election_timeout)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    cl_cut(c, 1, 3);
    ASSERT_OK(cl_propose(c, 1, "a", NULL));
    cl_settle(c);
    ASSERT_OK(aegis__raft_transfer(cl_r(c, 1), 3));
    ASSERT_ERR(cl_propose(c, 1, "b", NULL), AEGIS_EBUSY);
    for (uint32_t t = 0; t < c->cfg.election_timeout_min_ticks; t++) {
        aegis__raft_tick(cl_r(c, 1));
    }
    cl_settle(c);
    ASSERT_EQ_U64(cl_leader(c), 1);
    ASSERT_OK(cl_propose(c, 1, "b", NULL));
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, learner_gets_log_but_never_votes_or_counts)
{
    struct cluster *c = cl_new_mixed(3, 2, NULL, 1);
    aegis_index idx;

    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 3)), AEGIS_ROLE_LEARNER);
    /* A learner never campaigns. */
    for (int t = 0; t < 50; t++) {
        aegis__raft_tick(cl_r(c, 3));
    }
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 3)), AEGIS_ROLE_LEARNER);
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 3)), 0);
    cl_drop_queue(c);
    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "a", &idx));
    cl_tick_all(c, 2);
    ASSERT_TRUE(cl_applied_has(c, 3, "a"));
    /* With voter 2 gone, the learner's copy does not make a quorum. */
    cl_isolate(c, 2);
    ASSERT_OK(cl_propose(c, 1, "b", &idx));
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 3)), idx);
    ASSERT_TRUE(aegis__raft_commit_index(cl_r(c, 1)) < idx);
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, membership_add_promote_remove)
{
    struct cluster *c = cl_new_mixed(4, 3, NULL, 1);
    aegis_index idx;
    struct aegis_conf conf3 = {.count = 3, .members = {{1, 1}, {2, 1}, {3, 1}}};

    /* Every node starts with the 3-voter bootstrap: node 4 knows of no one. */
    c->conf = conf3;
    for (aegis_node_id id = 1; id <= 4; id++) {
        cl_restart(c, id);
    }
    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_ERR(aegis__raft_add_learner(cl_r(c, 2), 4, &idx), AEGIS_ENOTLEADER);
    ASSERT_ERR(aegis__raft_add_learner(cl_r(c, 1), 2, &idx), AEGIS_EEXIST);
    c->filter = drop_to_1;
    ASSERT_OK(aegis__raft_add_learner(cl_r(c, 1), 4, &idx));
    /* Takes effect on append; the next change waits for the commit. */
    ASSERT_EQ_U64(aegis__raft_conf(cl_r(c, 1))->count, 4);
    ASSERT_ERR(aegis__raft_promote(cl_r(c, 1), 4, &idx), AEGIS_EBUSY);
    cl_settle(c);
    c->filter = NULL;
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 4)), AEGIS_ROLE_LEARNER);
    ASSERT_OK(aegis__raft_promote(cl_r(c, 1), 4, &idx));
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 4)), AEGIS_ROLE_FOLLOWER);
    ASSERT_EQ_U64(aegis__conf_voter_count(aegis__raft_conf(cl_r(c, 4))), 4);
    /* Remove the leader itself: it steps down once the removal commits. */
    ASSERT_OK(aegis__raft_remove(cl_r(c, 1), 1, &idx));
    ASSERT_EQ_U64(aegis__raft_role(cl_r(c, 1)), AEGIS_ROLE_LEADER);
    cl_settle(c);
    ASSERT_TRUE(aegis__raft_role(cl_r(c, 1)) != AEGIS_ROLE_LEADER);
    cl_tick_all(c, 60);
    ASSERT_TRUE(cl_leader(c) != 0 && cl_leader(c) != 1);
    ASSERT_EQ_U64(aegis__raft_conf(cl_r(c, cl_leader(c)))->count, 3);
    ASSERT_OK(cl_propose(c, cl_leader(c), "after", NULL));
    cl_tick_all(c, 3);
    ASSERT_TRUE(cl_applied_has(c, 4, "after"));
    cl_free(c);
    return TEST_PASS;
}

TEST(raft, conf_reverts_when_its_entry_is_truncated)
{
    struct aegis_rng rng;
    struct aegis_raft *r = solo(1, 3, &rng, NULL);
    struct aegis_conf_change cc = {.op = AEGIS_CONF_ADD_LEARNER, .id = 4};
    struct aegis_entry es[2] = {{.index = 1, .term = 1, .type = AEGIS_ENTRY_NOOP},
                                {.index = 2, .term = 1, .type = AEGIS_ENTRY_CONFIG_CHANGE}};
    struct aegis_entry other[1] = {{.index = 2, .term = 2, .type = AEGIS_ENTRY_NOOP}};
    struct aegis_msg m = append_msg(2, 1, 0, 0, es, 2, 0);

    ASSERT_OK(aegis__conf_change(aegis__raft_conf(r), AEGIS_CONF_ADD_LEARNER, 4, &cc.conf));
    es[1].buf = aegis__conf_encode_buf(&cc, NULL);
    ASSERT_OK(aegis__raft_step(r, &m));
    ASSERT_EQ_U64(aegis__raft_conf(r)->count, 4);
    m = append_msg(3, 2, 1, 1, other, 1, 0);
    ASSERT_OK(aegis__raft_step(r, &m));
    ASSERT_EQ_U64(aegis__raft_last_index(r), 2);
    ASSERT_EQ_U64(aegis__raft_conf(r)->count, 3);
    aegis__buf_unref(es[1].buf);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(raft, restart_keeps_durable_state)
{
    struct cluster *c = cl_new(3, NULL);
    aegis_term term;

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "kept", NULL));
    cl_tick_all(c, 2);
    term = aegis__raft_term(cl_r(c, 2));
    cl_restart(c, 2);
    ASSERT_EQ_U64(aegis__raft_term(cl_r(c, 2)), term);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 2)), 2);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 2)), 2);
    cl_settle(c);
    ASSERT_TRUE(cl_applied_has(c, 2, "kept")); /* Re-applied from the log. */
    cl_free(c);
    return TEST_PASS;
}

struct trace_log {
    uint32_t elections, leaders, commits, step_downs;
};

static void on_trace(void *data, aegis_node_id node, const char *what, uint64_t a, uint64_t b)
{
    struct trace_log *t = data;

    (void)node;
    (void)a;
    (void)b;
    t->elections += strcmp(what, "election_start") == 0;
    t->leaders += strcmp(what, "became_leader") == 0;
    t->commits += strcmp(what, "commit") == 0;
    t->step_downs += strcmp(what, "step_down") == 0;
}

TEST(raft, tracer_sees_elections_and_commits)
{
    struct trace_log t = {0};
    struct aegis_raft_tracer tracer = {.event = on_trace, .data = &t};
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {.bootstrap = {.count = 1, .members = {{1, 1}}}};
    struct aegis_rng rng;
    struct aegis_raft *r;
    struct aegis_msg m = {.type = AEGIS_MSG_HEARTBEAT, .from = 2, .to = 1, .term = 9};

    cl_default_config(&cfg);
    cfg.id = 1;
    aegis__rng_seed(&rng, 3);
    ASSERT_OK(aegis__raft_create(&r, &cfg, &rs, &rng, &tracer, NULL));
    aegis__raft_campaign(r);
    aegis__raft_persisted(r, 1, 1); /* Not handed out yet: no commit. */
    ASSERT_EQ_U64(t.commits, 0);
    struct aegis_ready rd;
    aegis__raft_ready(r, &rd);
    aegis__raft_advance(r, &rd);
    aegis__raft_persisted(r, 1, 1);
    ASSERT_OK(aegis__raft_step(r, &m));
    ASSERT_EQ_U64(t.elections, 2); /* Pre-vote and real. */
    ASSERT_EQ_U64(t.leaders, 1);
    ASSERT_EQ_U64(t.commits, 1);
    ASSERT_EQ_U64(t.step_downs, 1);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

/* A small randomized run (the full simulation lives in tests/sim): message loss,
 * partitions, stalled disks and crashes that lose what was not durable, with Election
 * Safety and State Machine Safety checked after every step and liveness at the end. */
static struct aegis_rng chaos_rng;
static uint32_t chaos_drop_per_million;

static bool chaos_drop(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    (void)m;
    return aegis__rng_chance(&chaos_rng, chaos_drop_per_million);
}

#define CHAOS_TERMS_MAX 4096
#define CHAOS_INDEX_MAX 4096

struct chaos_history {
    aegis_node_id leader_of[CHAOS_TERMS_MAX];
    aegis_term term_at[CHAOS_INDEX_MAX];
    uint64_t hash_at[CHAOS_INDEX_MAX];
};

static uint64_t entry_hash(const struct aegis_entry *e)
{
    uint64_t h = 1469598103934665603ull ^ e->type;

    for (uint32_t i = 0; i < aegis__entry_len(e); i++) {
        h = (h ^ aegis__entry_data(e)[i]) * 1099511628211ull;
    }
    return h;
}

static bool chaos_check(struct cluster *c, struct chaos_history *h)
{
    for (aegis_node_id id = 1; id <= c->n; id++) {
        struct cl_node *nd = &c->nodes[id];

        if (nd->r != NULL && aegis__raft_role(nd->r) == AEGIS_ROLE_LEADER) {
            aegis_term t = aegis__raft_term(nd->r);

            if (t >= CHAOS_TERMS_MAX) {
                continue;
            }
            if (h->leader_of[t] != 0 && h->leader_of[t] != id) {
                fprintf(stderr, "two leaders in term %" PRIu64 "\n", t);
                return false;
            }
            h->leader_of[t] = id;
        }
        for (size_t i = 0; i < nd->applied_count; i++) {
            const struct aegis_entry *e = &nd->applied[i];

            if (e->index >= CHAOS_INDEX_MAX) {
                continue;
            }
            if (h->term_at[e->index] == 0) {
                h->term_at[e->index] = e->term;
                h->hash_at[e->index] = entry_hash(e);
            } else if (h->term_at[e->index] != e->term || h->hash_at[e->index] != entry_hash(e)) {
                fprintf(stderr, "node %" PRIu64 " applied a different entry at %" PRIu64 "\n",
                        id, e->index);
                return false;
            }
        }
    }
    return true;
}

static void chaos_step(struct cluster *c, uint32_t *proposals)
{
    uint64_t x = aegis__rng_range(&chaos_rng, 0, 99);
    aegis_node_id a = (aegis_node_id)aegis__rng_range(&chaos_rng, 1, c->n);
    aegis_node_id b = (aegis_node_id)aegis__rng_range(&chaos_rng, 1, c->n);
    char text[32];

    if (x < 60) {
        cl_tick_all(c, 1);
    } else if (x < 80) {
        snprintf(text, sizeof(text), "p%u", (*proposals)++);
        (void)cl_propose(c, a, text, NULL);
        cl_settle(c);
    } else if (x < 85 && a != b) {
        cl_cut(c, a, b);
    } else if (x < 90) {
        cl_heal(c);
    } else if (x < 94) {
        c->nodes[a].hold = !c->nodes[a].hold; /* A stalled disk, or its recovery. */
    } else if (x < 97) {
        cl_restart(c, a); /* Whatever a held node had not written is lost. */
        c->nodes[a].hold = false;
    } else {
        (void)aegis__raft_read_index(cl_r(c, a), x);
    }
}

static bool chaos_all_applied(const struct cluster *c)
{
    for (aegis_node_id id = 1; id <= c->n; id++) {
        if (!cl_applied_has(c, id, "final")) {
            return false;
        }
    }
    return true;
}

TEST(raft, randomized_safety_and_liveness)
{
    static struct chaos_history h;

    for (uint64_t seed = test_seed(); seed < test_seed() + 40; seed++) {
        struct aegis_raft_config cfg;
        struct cluster *c;
        uint32_t proposals = 0;
        aegis_node_id lead = 0;

        memset(&h, 0, sizeof(h));
        aegis__rng_seed(&chaos_rng, seed);
        cl_default_config(&cfg);
        cfg.pre_vote = seed % 3 != 0;
        cfg.check_quorum = seed % 4 != 0;
        cfg.inflight_msgs_max = 4;
        cfg.append_bytes_max = 16;
        cfg.snapshot_threshold = 0;
        c = cl_new_mixed(seed % 2 == 0 ? 5 : 3, seed % 2 == 0 ? 5 : 3, &cfg, seed);
        chaos_drop_per_million = 100000;
        c->filter = chaos_drop;
        for (int s = 0; s < 400; s++) {
            chaos_step(c, &proposals);
            if (!chaos_check(c, &h)) {
                FAIL("safety violated, seed %" PRIu64 " step %d", seed, s);
            }
        }
        cl_heal(c);
        c->filter = NULL;
        for (aegis_node_id id = 1; id <= c->n; id++) {
            c->nodes[id].hold = false;
        }
        /* Liveness: a leader emerges and a new command reaches every node. A leader found
         * right after healing may be a stale one about to be deposed: retry. */
        for (int attempt = 0; attempt < 10 && !chaos_all_applied(c); attempt++) {
            for (int t = 0; t < 300 && (lead = cl_leader(c)) == 0; t++) {
                cl_tick_all(c, 1);
            }
            if (lead == 0) {
                FAIL("no leader after healing, seed %" PRIu64, seed);
            }
            (void)cl_propose(c, lead, "final", NULL);
            cl_tick_all(c, 30);
        }
        if (!chaos_all_applied(c)) {
            FAIL("not every node applied the last command, seed %" PRIu64, seed);
        }
        ASSERT_TRUE(chaos_check(c, &h));
        cl_free(c);
    }
    return TEST_PASS;
}

/* The runtime lost the newer copy of its hard state (pipeline/hardstate.c fell back to the
 * older slot): the core neither grants a vote nor campaigns (its self-vote is a vote) until
 * it accepts a leader of its term or a newer one; a stale leader does not count. */
TEST(raft, withheld_votes_until_a_current_leader_is_heard)
{
    struct aegis_rng rng;
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {.hs = {.term = 3, .vote = 0}};
    struct aegis_raft *r = NULL;
    struct aegis_ready rd;
    struct aegis_msg vote = {.type = AEGIS_MSG_VOTE_REQ, .from = 2, .to = 1, .term = 4};
    struct aegis_msg stale = {.type = AEGIS_MSG_HEARTBEAT, .from = 3, .to = 1, .term = 2};
    struct aegis_msg hb = {.type = AEGIS_MSG_HEARTBEAT, .from = 3, .to = 1, .term = 4};
    const struct aegis_msg *resp;

    cl_default_config(&cfg);
    cfg.id = 1;
    rs.bootstrap.count = 3;
    for (uint32_t i = 0; i < 3; i++) {
        rs.bootstrap.members[i] = (struct aegis_member){i + 1, AEGIS_MEMBER_VOTER};
    }
    aegis__rng_seed(&rng, 1);
    ASSERT_OK(aegis__raft_create(&r, &cfg, &rs, &rng, NULL, NULL));
    aegis__raft_withhold_votes(r);
    ASSERT_TRUE(aegis__raft_votes_withheld(r));
    /* A real vote request of a newer term: the term is adopted, the vote refused. */
    ASSERT_OK(aegis__raft_step(r, &vote));
    ASSERT_EQ_U64(aegis__raft_term(r), 4);
    aegis__raft_ready(r, &rd);
    resp = find_msg(rd.msgs_after_persist, rd.msgs_after_persist_count, AEGIS_MSG_VOTE_RESP, 2);
    ASSERT_TRUE(resp != NULL);
    ASSERT_FALSE(resp->vote_resp.granted);
    ASSERT_EQ_U64(rd.hs.vote, 0);
    aegis__raft_advance(r, &rd);
    /* Many election timeouts and an explicit campaign: no vote request, no new term. */
    for (int i = 0; i < 10 * (int)cfg.election_timeout_max_ticks; i++) {
        aegis__raft_tick(r);
    }
    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
    ASSERT_EQ_U64(aegis__raft_term(r), 4);
    aegis__raft_ready(r, &rd);
    ASSERT_EQ_U64(count_msgs(rd.msgs, rd.msgs_count, AEGIS_MSG_VOTE_REQ, 0), 0);
    ASSERT_EQ_U64(count_msgs(rd.msgs_after_persist, rd.msgs_after_persist_count,
                             AEGIS_MSG_VOTE_REQ, 0), 0);
    aegis__raft_advance(r, &rd);
    /* A leader of an older term changes nothing. */
    ASSERT_OK(aegis__raft_step(r, &stale));
    ASSERT_TRUE(aegis__raft_votes_withheld(r));
    /* The leader of the current term: votes are back, and so are campaigns. */
    ASSERT_OK(aegis__raft_step(r, &hb));
    ASSERT_FALSE(aegis__raft_votes_withheld(r));
    ASSERT_EQ_U64(aegis__raft_leader(r), 3);
    for (int i = 0; i < 10 * (int)cfg.election_timeout_max_ticks; i++) {
        aegis__raft_tick(r);
    }
    ASSERT_TRUE(aegis__raft_role(r) == AEGIS_ROLE_PRECANDIDATE ||
                aegis__raft_role(r) == AEGIS_ROLE_CANDIDATE);
    aegis__raft_destroy(r);
    /* The only voter could only have voted for itself: it may campaign. */
    r = solo(1, 1, &rng, NULL);
    aegis__raft_withhold_votes(r);
    aegis__raft_campaign(r);
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_LEADER);
    aegis__raft_destroy(r);
    return TEST_PASS;
}
