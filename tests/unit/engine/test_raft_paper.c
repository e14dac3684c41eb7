/* SPDX-License-Identifier: MIT */
/* The Raft paper's scenarios as tests of the core, in the spirit of etcd's
 * raft_paper_test.go. Each test names the section or figure of "In Search of an
 * Understandable Consensus Algorithm (Extended Version)" it checks.
 *
 * Two kinds of setup: a lone core fed messages by hand (mk() restores it with a given log
 * and term, step()/out() talk to it), and the in-test cluster of raft_cluster.h for
 * scenarios that need several cores talking. */
#include "raft_cluster.h"

static struct aegis_rng rngs[CL_NODES_MAX + 1];

/* A core @id among voters 1..@n whose durable log holds entries of @terms (indexes from
 * 1) and whose term is @term; pre-vote off unless @cfg says otherwise. */
static struct aegis_raft *mk_cfg(aegis_node_id id, uint32_t n, const aegis_term *terms,
                                 uint32_t count, aegis_term term,
                                 const struct aegis_raft_config *cfg_in)
{
    struct aegis_entry es[32];
    struct aegis_raft_config cfg;
    struct aegis_raft_restore rs = {.hs = {.term = term}};
    struct aegis_raft *r;

    if (cfg_in != NULL) {
        cfg = *cfg_in;
    } else {
        cl_default_config(&cfg);
        cfg.pre_vote = false;
    }
    cfg.id = id;
    for (uint32_t i = 0; i < count; i++) {
        es[i] = (struct aegis_entry){.index = i + 1, .term = terms[i], .type = 1};
    }
    rs.entries = es;
    rs.entries_count = count;
    rs.bootstrap.count = n;
    for (uint32_t i = 0; i < n; i++) {
        rs.bootstrap.members[i] = (struct aegis_member){i + 1, AEGIS_MEMBER_VOTER};
    }
    aegis__rng_seed(&rngs[id], id * 7 + 1);
    if (aegis__raft_create(&r, &cfg, &rs, &rngs[id], NULL, NULL) != 0) {
        cl_die("mk");
    }
    return r;
}

static struct aegis_raft *mk(aegis_node_id id, uint32_t n, const aegis_term *terms,
                             uint32_t count, aegis_term term)
{
    return mk_cfg(id, n, terms, count, term, NULL);
}

/* Everything the core wants sent, both queues (persistence is instant here): copied
 * into @out (types, targets, scalar fields; entry arrays are not kept). */
static uint32_t out(struct aegis_raft *r, struct aegis_msg *msgs, uint32_t max)
{
    struct aegis_ready rd;
    uint32_t n = 0;

    while (aegis__raft_has_ready(r)) {
        aegis__raft_ready(r, &rd);
        for (uint32_t i = 0; i < rd.msgs_count && n < max; i++) {
            msgs[n] = rd.msgs[i];
            msgs[n].append_req.entries = NULL;
            n++;
        }
        for (uint32_t i = 0; i < rd.msgs_after_persist_count && n < max; i++) {
            msgs[n] = rd.msgs_after_persist[i];
            n++;
        }
        if (rd.entries_count > 0) {
            aegis_index index = rd.entries[rd.entries_count - 1].index;
            aegis_term term = rd.entries[rd.entries_count - 1].term;

            aegis__raft_advance(r, &rd);
            aegis__raft_persisted(r, index, term);
        } else {
            aegis__raft_advance(r, &rd);
        }
    }
    return n;
}

static void drain(struct aegis_raft *r)
{
    struct aegis_msg sink[64];

    (void)out(r, sink, 64);
}

static int step(struct aegis_raft *r, uint8_t type, aegis_node_id from, aegis_term term)
{
    struct aegis_msg m = {.type = type, .from = from, .to = 0, .term = term};

    return aegis__raft_step(r, &m);
}

static void grant(struct aegis_raft *r, aegis_node_id from, bool granted)
{
    struct aegis_msg m = {.type = AEGIS_MSG_VOTE_RESP, .from = from, .term = aegis__raft_term(r)};

    m.vote_resp.granted = granted;
    (void)aegis__raft_step(r, &m);
}

static void ack(struct aegis_raft *r, aegis_node_id from, aegis_index match)
{
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_RESP, .from = from, .term = aegis__raft_term(r)};

    m.append_resp.success = true;
    m.append_resp.match_index = match;
    (void)aegis__raft_step(r, &m);
}

/* Make @r (a voter of 1..n) the leader of term+1 with the votes of the others. */
static void make_leader(struct aegis_raft *r, uint32_t n)
{
    aegis__raft_campaign(r);
    for (aegis_node_id id = 2; id <= n && aegis__raft_role(r) != AEGIS_ROLE_LEADER; id++) {
        grant(r, id, true);
    }
    drain(r);
}

TEST(paper, s5_1_every_role_takes_a_higher_term_and_steps_down)
{
    for (int role = 0; role < 3; role++) {
        struct aegis_raft *r = mk(1, 3, NULL, 0, 1);

        if (role == 1) {
            aegis__raft_campaign(r);
            ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_CANDIDATE);
        } else if (role == 2) {
            make_leader(r, 3);
            ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_LEADER);
        }
        ASSERT_OK(step(r, AEGIS_MSG_APPEND_REQ, 2, 10));
        ASSERT_EQ_U64(aegis__raft_term(r), 10);
        ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
        ASSERT_EQ_U64(aegis__raft_leader(r), 2);
        ASSERT_EQ_U64(aegis__raft_hard_state(r).vote, 0);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_1_stale_term_requests_are_rejected)
{
    struct aegis_raft *r = mk(1, 3, (aegis_term[]){1, 2}, 2, 3);
    struct aegis_entry e = {.index = 3, .term = 2, .type = 1};
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_REQ, .from = 2, .term = 2};
    struct aegis_msg o[8];
    uint32_t n;

    m.append_req.prev_index = 2;
    m.append_req.prev_term = 2;
    m.append_req.entries = &e;
    m.append_req.entries_count = 1;
    ASSERT_OK(aegis__raft_step(r, &m));
    ASSERT_EQ_U64(aegis__raft_last_index(r), 2); /* Not appended. */
    ASSERT_EQ_U64(aegis__raft_term(r), 3);
    n = out(r, o, 8);
    ASSERT_EQ_U64(n, 1); /* The stale leader learns the newer term. */
    ASSERT_EQ_U64(o[0].type, AEGIS_MSG_APPEND_RESP);
    ASSERT_EQ_U64(o[0].term, 3);
    ASSERT_FALSE(o[0].append_resp.success);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, s5_2_servers_start_as_followers)
{
    struct aegis_raft *r = mk(1, 3, NULL, 0, 0);

    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
    ASSERT_EQ_U64(aegis__raft_term(r), 0);
    ASSERT_EQ_U64(aegis__raft_leader(r), 0);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, s5_2_leader_sends_heartbeats_every_interval)
{
    struct aegis_raft *r = mk(1, 3, NULL, 0, 0);
    struct aegis_msg o[16];
    uint32_t n, beats = 0;

    make_leader(r, 3);
    aegis__raft_tick(r); /* heartbeat_interval_ticks is 1 in these tests. */
    n = out(r, o, 16);
    for (uint32_t i = 0; i < n; i++) {
        if (o[i].type == AEGIS_MSG_HEARTBEAT) {
            beats++;
            ASSERT_EQ_U64(o[i].term, aegis__raft_term(r));
        }
    }
    ASSERT_EQ_U64(beats, 2);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, s5_2_timeout_starts_election_and_s5_4_1_request_carries_last_log)
{
    for (int from_candidate = 0; from_candidate < 2; from_candidate++) {
        struct aegis_raft *r = mk(1, 3, (aegis_term[]){1, 1, 2}, 3, 2);
        struct aegis_msg o[8];
        uint32_t n, reqs = 0;

        if (from_candidate) {
            aegis__raft_campaign(r); /* Term 3; then time out as a candidate. */
            drain(r);
        }
        for (int t = 0; t < 20 && aegis__raft_term(r) == 2u + (unsigned)from_candidate; t++) {
            aegis__raft_tick(r);
        }
        ASSERT_EQ_U64(aegis__raft_term(r), 3 + from_candidate);
        ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_CANDIDATE);
        ASSERT_EQ_U64(aegis__raft_hard_state(r).vote, 1);
        n = out(r, o, 8);
        for (uint32_t i = 0; i < n; i++) {
            ASSERT_EQ_U64(o[i].type, AEGIS_MSG_VOTE_REQ);
            ASSERT_EQ_U64(o[i].term, 3 + from_candidate);
            ASSERT_EQ_U64(o[i].vote_req.last_log_index, 3);
            ASSERT_EQ_U64(o[i].vote_req.last_log_term, 2);
            reqs++;
        }
        ASSERT_EQ_U64(reqs, 2);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_2_election_outcome_in_one_round)
{
    static const struct {
        uint32_t n;
        int votes[5]; /* For nodes 2..n: 1 grant, -1 reject, 0 no answer. */
        enum aegis_role want;
    } cases[] = {
        {1, {0}, AEGIS_ROLE_LEADER},
        {3, {1, 0}, AEGIS_ROLE_LEADER},
        {3, {1, 1}, AEGIS_ROLE_LEADER},
        {5, {1, 1, 0, 0}, AEGIS_ROLE_LEADER},
        {5, {1, 0, 0, 0}, AEGIS_ROLE_CANDIDATE},
        {5, {0, 0, 0, 0}, AEGIS_ROLE_CANDIDATE},
        {3, {-1, -1}, AEGIS_ROLE_FOLLOWER},
        {5, {-1, -1, -1, 0}, AEGIS_ROLE_FOLLOWER},
        {5, {1, -1, -1, 0}, AEGIS_ROLE_CANDIDATE},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, cases[k].n, NULL, 0, 0);

        aegis__raft_campaign(r);
        for (uint32_t i = 0; i + 2 <= cases[k].n; i++) {
            if (cases[k].votes[i] != 0 && aegis__raft_role(r) == AEGIS_ROLE_CANDIDATE) {
                grant(r, i + 2, cases[k].votes[i] > 0);
            }
        }
        ASSERT_EQ_U64(aegis__raft_role(r), cases[k].want);
        ASSERT_EQ_U64(aegis__raft_term(r), 1);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_2_one_vote_per_term_first_come_first_served)
{
    struct aegis_raft *r = mk(1, 3, NULL, 0, 0);
    struct aegis_msg v = {.type = AEGIS_MSG_VOTE_REQ, .from = 2, .term = 1};
    struct aegis_msg o[4];

    ASSERT_OK(aegis__raft_step(r, &v));
    ASSERT_EQ_U64(out(r, o, 4), 1);
    ASSERT_TRUE(o[0].vote_resp.granted);
    v.from = 3;
    ASSERT_OK(aegis__raft_step(r, &v));
    ASSERT_EQ_U64(out(r, o, 4), 1);
    ASSERT_FALSE(o[0].vote_resp.granted);
    v.from = 2; /* The same candidate asking again gets the same answer. */
    ASSERT_OK(aegis__raft_step(r, &v));
    ASSERT_EQ_U64(out(r, o, 4), 1);
    ASSERT_TRUE(o[0].vote_resp.granted);
    ASSERT_EQ_U64(aegis__raft_hard_state(r).vote, 2);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, s5_2_candidate_falls_back_on_append_from_leader)
{
    for (aegis_term t = 1; t <= 2; t++) {
        struct aegis_raft *r = mk(1, 3, NULL, 0, 0);

        aegis__raft_campaign(r);
        ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_CANDIDATE);
        ASSERT_OK(step(r, AEGIS_MSG_APPEND_REQ, 2, t)); /* Same or newer term. */
        ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_FOLLOWER);
        ASSERT_EQ_U64(aegis__raft_leader(r), 2);
        ASSERT_EQ_U64(aegis__raft_term(r), t);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_2_election_timeouts_are_randomized_in_range)
{
    bool seen[32] = {0};
    uint32_t distinct = 0;

    for (uint64_t seed = 0; seed < 200; seed++) {
        struct aegis_raft *r = mk(1, 3, NULL, 0, 0);
        uint32_t ticks = 0;

        aegis__rng_seed(&rngs[1], seed); /* The core draws from this generator. */
        ASSERT_OK(step(r, AEGIS_MSG_HEARTBEAT, 2, 1)); /* Resets the timer. */
        while (aegis__raft_role(r) == AEGIS_ROLE_FOLLOWER && ticks < 100) {
            aegis__raft_tick(r);
            ticks++;
        }
        ASSERT_TRUE(ticks >= 10 && ticks <= 20);
        distinct += seen[ticks] ? 0 : 1;
        seen[ticks] = true;
        aegis__raft_destroy(r);
    }
    ASSERT_TRUE(distinct >= 8); /* Spread over the range, not a fixed value. */
    return TEST_PASS;
}

TEST(paper, s5_2_random_timeouts_resolve_split_votes)
{
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct aegis_raft_config cfg;
        struct cluster *c;
        aegis_node_id lead = 0;

        cl_default_config(&cfg);
        cfg.pre_vote = seed % 2 == 0;
        c = cl_new_mixed(5, 5, &cfg, seed);
        for (int t = 0; t < 200 && (lead = cl_leader(c)) == 0; t++) {
            cl_tick_all(c, 1);
        }
        ASSERT_TRUE(lead != 0);
        for (aegis_node_id id = 1; id <= 5; id++) {
            if (id != lead) {
                ASSERT_TRUE(aegis__raft_role(cl_r(c, id)) != AEGIS_ROLE_LEADER ||
                            aegis__raft_term(cl_r(c, id)) != aegis__raft_term(cl_r(c, lead)));
            }
        }
        cl_free(c);
    }
    return TEST_PASS;
}

TEST(paper, s5_3_leader_replicates_with_prev_index_and_commit)
{
    struct aegis_raft *r = mk(1, 3, NULL, 0, 0);
    struct aegis_buf *b = aegis__buf_from(NULL, "cmd", 3);
    struct aegis_msg o[8];
    aegis_index idx;
    uint32_t n;

    make_leader(r, 3);
    ack(r, 2, 1);
    ack(r, 3, 1);
    drain(r);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 1);
    ASSERT_OK(aegis__raft_propose(r, AEGIS_ENTRY_COMMAND, b, &idx));
    ASSERT_EQ_U64(idx, 2);
    n = out(r, o, 8);
    ASSERT_EQ_U64(n, 2);
    for (uint32_t i = 0; i < n; i++) {
        ASSERT_EQ_U64(o[i].type, AEGIS_MSG_APPEND_REQ);
        ASSERT_EQ_U64(o[i].append_req.prev_index, 1);
        ASSERT_EQ_U64(o[i].append_req.prev_term, 1);
        ASSERT_EQ_U64(o[i].append_req.entries_count, 1);
        ASSERT_EQ_U64(o[i].append_req.commit, 1);
    }
    aegis__buf_unref(b);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, s5_3_leader_commits_once_a_majority_acknowledges)
{
    static const struct {
        uint32_t n;
        int acks[4]; /* Nodes 2..n acknowledging the new entry. */
        bool committed;
    } cases[] = {
        {1, {0}, true},      {3, {0, 0}, false},      {3, {1, 0}, true},
        {3, {1, 1}, true},   {5, {1, 0, 0, 0}, false}, {5, {1, 1, 0, 0}, true},
        {5, {1, 1, 1, 1}, true},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, cases[k].n, NULL, 0, 0);

        make_leader(r, cases[k].n); /* NoOp at index 1, durable here. */
        for (uint32_t i = 0; i + 2 <= cases[k].n; i++) {
            if (cases[k].acks[i]) {
                ack(r, i + 2, 1);
            }
        }
        ASSERT_EQ_U64(aegis__raft_commit_index(r), cases[k].committed ? 1 : 0);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_3_leader_commits_preceding_entries_with_its_own)
{
    static const aegis_term logs[][3] = {{1, 0, 0}, {1, 2, 0}, {1, 1, 2}};
    static const uint32_t lens[] = {1, 2, 3};

    for (size_t k = 0; k < 3; k++) {
        struct aegis_raft *r = mk(1, 3, logs[k], lens[k], 2);
        struct aegis_ready rd;
        aegis_index last;

        make_leader(r, 3);
        last = aegis__raft_last_index(r);
        ASSERT_EQ_U64(last, lens[k] + 1);
        ack(r, 2, last);
        ASSERT_EQ_U64(aegis__raft_commit_index(r), last);
        aegis__raft_ready(r, &rd);
        ASSERT_EQ_U64(rd.committed_count, last); /* Everything before the NoOp too. */
        aegis__raft_advance(r, &rd);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

/* Step an AppendEntries into @r: entries of @terms at prev + 1.. */
static int append(struct aegis_raft *r, aegis_term term, aegis_index prev, aegis_term prev_term,
                  const aegis_term *terms, uint32_t n, aegis_index commit)
{
    struct aegis_entry es[16];
    struct aegis_msg m = {.type = AEGIS_MSG_APPEND_REQ, .from = 2, .term = term};

    for (uint32_t i = 0; i < n; i++) {
        es[i] = (struct aegis_entry){.index = prev + 1 + i, .term = terms[i], .type = 1};
    }
    m.append_req.prev_index = prev;
    m.append_req.prev_term = prev_term;
    m.append_req.entries = es;
    m.append_req.entries_count = n;
    m.append_req.commit = commit;
    return aegis__raft_step(r, &m);
}

TEST(paper, s5_3_follower_commits_up_to_leader_commit)
{
    static const struct {
        aegis_index commit;
        uint32_t n;
        aegis_index want;
    } cases[] = {{1, 1, 1}, {2, 2, 2}, {2, 1, 1}, {5, 2, 2}, {0, 2, 0}};

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, 3, NULL, 0, 1);

        ASSERT_OK(append(r, 1, 0, 0, (aegis_term[]){1, 1}, cases[k].n, cases[k].commit));
        ASSERT_EQ_U64(aegis__raft_commit_index(r), cases[k].want);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_3_follower_rejects_when_prev_does_not_match)
{
    /* Follower log: terms 1, 2 (indexes 1, 2). */
    static const struct {
        aegis_index prev;
        aegis_term prev_term;
        bool ok;
        aegis_index hint_index;
        aegis_term hint_term;
    } cases[] = {
        {0, 0, true, 0, 0},  {1, 1, true, 0, 0},  {2, 2, true, 0, 0},
        {1, 2, false, 1, 1}, {2, 1, false, 2, 2}, {3, 2, false, 3, 0},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, 3, (aegis_term[]){1, 2}, 2, 2);
        struct aegis_msg o[4];

        ASSERT_OK(append(r, 2, cases[k].prev, cases[k].prev_term, NULL, 0, 0));
        ASSERT_EQ_U64(out(r, o, 4), 1);
        ASSERT_EQ_U64(o[0].type, AEGIS_MSG_APPEND_RESP);
        ASSERT_EQ_U64(o[0].append_resp.success, cases[k].ok);
        if (!cases[k].ok) {
            ASSERT_EQ_U64(o[0].append_resp.conflict_index, cases[k].hint_index);
            ASSERT_EQ_U64(o[0].append_resp.conflict_term, cases[k].hint_term);
            ASSERT_EQ_U64(o[0].append_resp.match_index, cases[k].prev);
        }
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

static bool log_is(struct aegis_raft *r, const aegis_term *terms, uint32_t n)
{
    if (aegis__raft_last_index(r) != n) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (aegis__raft_term_at(r, i + 1) != terms[i]) {
            return false;
        }
    }
    return true;
}

TEST(paper, s5_3_follower_deletes_conflicting_entries_and_appends)
{
    /* Follower log: terms 1, 2, 3 (indexes 1..3). */
    static const struct {
        aegis_index prev;
        aegis_term prev_term;
        aegis_term ents[3];
        uint32_t n;
        aegis_term want[4];
        uint32_t want_n;
    } cases[] = {
        {2, 2, {3}, 1, {1, 2, 3}, 3},       {1, 1, {2, 3, 4}, 3, {1, 2, 3, 4}, 4},
        {1, 1, {2, 4}, 2, {1, 2, 4}, 3},    {0, 0, {1, 3, 3}, 3, {1, 3, 3}, 3},
        {3, 3, {0}, 0, {1, 2, 3}, 3},        {0, 0, {2}, 1, {2}, 1},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, 3, (aegis_term[]){1, 2, 3}, 3, 4);
        struct aegis_ready rd;

        drain(r);
        ASSERT_OK(append(r, 4, cases[k].prev, cases[k].prev_term, cases[k].ents, cases[k].n, 0));
        ASSERT_EQ_U64(aegis__raft_last_index(r), cases[k].want_n);
        /* What the core hands out to persist shows the new suffix. */
        aegis__raft_ready(r, &rd);
        for (uint32_t i = 0; i < rd.entries_count; i++) {
            ASSERT_EQ_U64(rd.entries[i].term, cases[k].want[rd.entries[i].index - 1]);
        }
        aegis__raft_advance(r, &rd);
        ASSERT_TRUE(log_is(r, cases[k].want, cases[k].want_n));
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

static uint32_t rejections;

static bool count_rejections(struct cluster *c, const struct aegis_msg *m)
{
    (void)c;
    rejections += m->type == AEGIS_MSG_APPEND_RESP && !m->append_resp.success;
    return false;
}

/* Load @terms as node @id's durable log with hard state @term, and restart it. */
static void set_log(struct cluster *c, aegis_node_id id, const aegis_term *terms, uint32_t n,
                    aegis_term term)
{
    struct cl_node *nd = &c->nodes[id];

    for (size_t i = 0; i < nd->log_count; i++) {
        aegis__entry_unref(&nd->log[i]);
    }
    nd->log_count = 0;
    nd->log_cap = n + 1;
    nd->log = realloc(nd->log, nd->log_cap * sizeof(*nd->log));
    for (uint32_t i = 0; i < n; i++) {
        nd->log[nd->log_count++] = (struct aegis_entry){.index = i + 1, .term = terms[i],
                                                        .type = AEGIS_ENTRY_COMMAND};
    }
    nd->hs = (struct aegis_hard_state){.term = term};
    cl_restart(c, id);
}

TEST(paper, figure_7_leader_brings_every_follower_in_line)
{
    static const aegis_term leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
    static const struct {
        aegis_term terms[12];
        uint32_t n;
    } followers[] = {
        {{1, 1, 1, 4, 4, 5, 5, 6, 6}, 9},                /* (a) missing entries */
        {{1, 1, 1, 4}, 4},                               /* (b) */
        {{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 11},         /* (c) extra entries */
        {{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 12},      /* (d) */
        {{1, 1, 1, 4, 4, 4, 4}, 7},                      /* (e) both */
        {{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 11},         /* (f) */
    };

    for (size_t k = 0; k < sizeof(followers) / sizeof(followers[0]); k++) {
        struct cluster *c = cl_new(3, NULL);
        struct cl_node *f = &c->nodes[2], *l = &c->nodes[1];

        set_log(c, 1, leader, 10, 7);
        set_log(c, 2, followers[k].terms, followers[k].n, 7);
        set_log(c, 3, leader, 10, 7);
        rejections = 0;
        c->filter = count_rejections;
        ASSERT_TRUE(cl_elect(c, 1));
        cl_tick_all(c, 2);
        ASSERT_EQ_U64(f->log_count, 11); /* The leader's ten and its NoOp. */
        for (size_t i = 0; i < 11; i++) {
            ASSERT_EQ_U64(f->log[i].term, l->log[i].term);
        }
        ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 2)), 11);
        /* The conflict hint skips a term per round trip: never more than three rounds
         * here, where one entry per round would take up to seven. */
        ASSERT_TRUE(rejections <= 3);
        cl_free(c);
    }
    return TEST_PASS;
}

TEST(paper, s5_4_1_election_restriction_up_to_date_log)
{
    /* Voter log: terms 1, 2 (last index 2, last term 2). */
    static const struct {
        aegis_index last_index;
        aegis_term last_term;
        bool granted;
    } cases[] = {
        {2, 2, true}, {3, 2, true}, {1, 3, true}, {1, 2, false}, {5, 1, false}, {0, 0, false},
    };

    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct aegis_raft *r = mk(1, 3, (aegis_term[]){1, 2}, 2, 2);
        struct aegis_msg v = {.type = AEGIS_MSG_VOTE_REQ, .from = 2, .term = 3};
        struct aegis_msg o[4];

        v.vote_req.last_log_index = cases[k].last_index;
        v.vote_req.last_log_term = cases[k].last_term;
        ASSERT_OK(aegis__raft_step(r, &v));
        ASSERT_EQ_U64(out(r, o, 4), 1);
        ASSERT_EQ_U64(o[0].vote_resp.granted, cases[k].granted);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_4_1_bug_vote_any_log_skips_the_restriction)
{
    struct aegis_raft_config cfg;
    struct aegis_raft *r;
    struct aegis_msg v = {.type = AEGIS_MSG_VOTE_REQ, .from = 2, .term = 3};
    struct aegis_msg o[4];

    cl_default_config(&cfg);
    cfg.pre_vote = false;
    cfg.bugs = AEGIS_RAFT_BUG_VOTE_ANY_LOG;
    r = mk_cfg(1, 3, (aegis_term[]){1, 2}, 2, 2, &cfg);
    ASSERT_OK(aegis__raft_step(r, &v)); /* Empty candidate log. */
    ASSERT_EQ_U64(out(r, o, 4), 1);
#ifdef AEGIS_SIM_BUGS
    ASSERT_TRUE(o[0].vote_resp.granted);
#else
    ASSERT_FALSE(o[0].vote_resp.granted);
#endif
    aegis__raft_destroy(r);
    return TEST_PASS;
}

TEST(paper, figure_8_leader_commits_only_current_term_by_counting)
{
    for (int bug = 0; bug < 2; bug++) {
        struct aegis_raft_config cfg;
        struct aegis_raft *r;

        cl_default_config(&cfg);
        cfg.pre_vote = false;
        cfg.bugs = bug ? AEGIS_RAFT_BUG_COMMIT_OLD_TERM : 0;
        /* S1 of Figure 8 (c): log 1, 2 from terms 1 and 2, now leader of term 4 (with a
         * NoOp of term 4 at index 3). */
        r = mk_cfg(1, 5, (aegis_term[]){1, 2}, 2, 3, &cfg);
        make_leader(r, 5);
        ASSERT_EQ_U64(aegis__raft_term(r), 4);
        ack(r, 2, 2);
        ack(r, 3, 2); /* Index 2 (term 2) is on a majority: S1, S2, S3. */
#ifdef AEGIS_SIM_BUGS
        ASSERT_EQ_U64(aegis__raft_commit_index(r), bug ? 2 : 0);
#else
        ASSERT_EQ_U64(aegis__raft_commit_index(r), 0);
#endif
        ack(r, 2, 3);
        ack(r, 3, 3); /* Index 3 (term 4) on a majority commits 2 with it. */
        ASSERT_EQ_U64(aegis__raft_commit_index(r), 3);
        aegis__raft_destroy(r);
    }
    return TEST_PASS;
}

TEST(paper, s5_4_3_committed_entries_survive_leader_changes)
{
    struct cluster *c = cl_new(5, NULL);
    aegis_node_id next;

    ASSERT_TRUE(cl_elect(c, 1));
    ASSERT_OK(cl_propose(c, 1, "durable", NULL));
    cl_cut(c, 1, 4);
    cl_cut(c, 1, 5); /* Only 1, 2, 3 hold it: still a majority, so committed. */
    cl_settle(c);
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 2);
    cl_isolate(c, 1);
    /* Whoever wins next must hold the entry (§5.4.1 keeps 4 and 5 from winning). */
    cl_tick_all(c, 60);
    next = cl_leader(c);
    ASSERT_TRUE(next == 2 || next == 3);
    cl_tick_all(c, 3);
    for (aegis_node_id id = 2; id <= 5; id++) {
        ASSERT_TRUE(cl_applied_has(c, id, "durable"));
    }
    cl_free(c);
    return TEST_PASS;
}

TEST(paper, s5_5_crashed_follower_is_retried_until_it_catches_up)
{
    struct cluster *c = cl_new(3, NULL);

    ASSERT_TRUE(cl_elect(c, 1));
    cl_node_stop(c, 3);
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(cl_propose(c, 1, "w", NULL));
        cl_tick_all(c, 1);
    }
    ASSERT_EQ_U64(aegis__raft_commit_index(cl_r(c, 1)), 6);
    cl_drop_queue(c);
    cl_restart(c, 3);
    cl_tick_all(c, 3);
    ASSERT_EQ_U64(aegis__raft_last_index(cl_r(c, 3)), 6);
    ASSERT_EQ_U64(cl_commands(c, 3), 5);
    cl_free(c);
    return TEST_PASS;
}

TEST(paper, s5_5_append_entries_is_idempotent)
{
    struct aegis_raft *r = mk(1, 3, NULL, 0, 1);
    struct aegis_msg o[8];
    uint32_t n;

    ASSERT_OK(append(r, 1, 0, 0, (aegis_term[]){1, 1}, 2, 1));
    drain(r);
    ASSERT_OK(append(r, 1, 0, 0, (aegis_term[]){1, 1}, 2, 1)); /* Delivered twice. */
    ASSERT_OK(append(r, 1, 0, 0, (aegis_term[]){1}, 1, 1));    /* And an older one. */
    ASSERT_EQ_U64(aegis__raft_last_index(r), 2);
    n = out(r, o, 8);
    ASSERT_EQ_U64(n, 2);
    ASSERT_TRUE(o[0].append_resp.success && o[1].append_resp.success);
    ASSERT_EQ_U64(o[0].append_resp.match_index, 2);
    ASSERT_EQ_U64(o[1].append_resp.match_index, 1);
    aegis__raft_destroy(r);
    return TEST_PASS;
}
