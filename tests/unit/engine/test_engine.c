/* SPDX-License-Identifier: MIT */
/* Tests of engine/engine, the ReplicationEngine facade, including the seed's three usage
 * examples written in C (Usage Example, Raft Node Example, Cluster Management Example).
 *
 * Groups of engines talk over the in-memory transport (net/transport.h): a "round" ticks
 * every engine once, sends what each produced, and then delivers until the network is
 * quiet, so a test can run a cluster for N ticks deterministically. */
#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/conf.h"
#include "engine/engine.h"
#include "lib/test.h"
#include "net/transport.h"

#define GROUP_MAX 5

#define MUST(x)                                                                            \
    do {                                                                                   \
        int must_rv_ = (x);                                                                \
        AEGIS_ASSERT(must_rv_ == 0);                                                       \
    } while (0)

struct group {
    uint32_t n;
    struct aegis_mem_network *net;
    struct aegis_engine *e[GROUP_MAX + 1];    /* 1-based: e[id]. */
    struct aegis_transport *t[GROUP_MAX + 1];
    bool auto_apply;                          /* apply_committed after every delivery. */
    struct aegis_replication_config base;     /* Config of every engine but rng_seed. */
    uint32_t elections;                       /* Sum of TickResult.elections_started. */
    uint32_t leader_changes;
};

static struct aegis_node_info info(aegis_node_id id)
{
    struct aegis_node_info n;

    MUST(aegis__node_info_init(&n, id, "127.0.0.1", (uint16_t)(5000 + id - 1)));
    return n;
}

static void config_for(struct aegis_replication_config *c, aegis_node_id id)
{
    aegis__replication_config_default(c);
    c->rng_seed = 1000 + id; /* Distinct election timers per node. */
}

static uint64_t seed_base = 1000;

/* Create engine @id of a group of @n (ids 1..n, all peers of each other), or one that
 * joins the running group (no peers, config.joining). */
static void group_add_engine(struct group *g, aegis_node_id id, bool with_peers)
{
    struct aegis_replication_config cfg = g->base;
    struct aegis_node_info self = info(id);

    cfg.rng_seed = seed_base + id;
    cfg.joining = !with_peers;
    MUST(aegis__engine_create(&g->e[id], &self, &cfg, NULL));
    for (aegis_node_id p = 1; with_peers && p <= g->n; p++) {
        struct aegis_node_info peer = info(p);

        if (p != id) {
            MUST(aegis__engine_add_peer(g->e[id], &peer));
        }
    }
    MUST(aegis__mem_transport_create(&g->t[id], g->net, id));
}

/* Open a group of @n engines configured as @base (NULL: defaults). */
static void group_open_with(struct group *g, uint32_t n,
                            const struct aegis_replication_config *base)
{
    memset(g, 0, sizeof(*g));
    g->n = n;
    g->auto_apply = true;
    if (base != NULL) {
        g->base = *base;
    } else {
        aegis__replication_config_default(&g->base);
    }
    MUST(aegis__mem_network_create(&g->net, 1024, NULL));
    for (aegis_node_id id = 1; id <= n; id++) {
        group_add_engine(g, id, true);
    }
}

static void group_open(struct group *g, uint32_t n)
{
    group_open_with(g, n, NULL);
}

static void group_close(struct group *g)
{
    for (uint32_t id = 1; id <= GROUP_MAX; id++) {
        aegis__transport_destroy(g->t[id]);
        aegis__engine_destroy(g->e[id]);
    }
    aegis__mem_network_destroy(g->net);
}

static void send_result(struct group *g, aegis_node_id id, struct aegis_tick_result *tr)
{
    for (uint32_t i = 0; i < tr->msgs_count; i++) {
        /* A full queue or an unknown peer is message loss; Raft copes. */
        (void)aegis__transport_send(g->t[id], &tr->msgs[i]);
    }
    g->elections += tr->elections_started;
    g->leader_changes += tr->leader_changes;
    aegis__tick_result_release(tr, aegis__engine_allocator(g->e[id]));
}

/* Deliver until no message is in flight (bounded), sending whatever the receivers answer. */
static void group_settle(struct group *g)
{
    for (int pass = 0; pass < 50; pass++) {
        bool any = false;

        for (aegis_node_id id = 1; id <= GROUP_MAX; id++) {
            struct aegis_msg m;
            struct aegis_tick_result tr;

            if (g->e[id] == NULL) {
                continue;
            }
            while (aegis__transport_receive(g->t[id], &m) == 0) {
                any = true;
                (void)aegis__engine_process_message(g->e[id], &m);
                aegis__transport_release(g->t[id], &m);
            }
            if (g->auto_apply) {
                MUST(aegis__engine_apply_committed(g->e[id], NULL, 0, NULL));
            }
            aegis__engine_poll(g->e[id], &tr);
            send_result(g, id, &tr);
        }
        if (!any) {
            return;
        }
    }
}

static void group_rounds(struct group *g, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        for (aegis_node_id id = 1; id <= GROUP_MAX; id++) {
            struct aegis_tick_result tr;

            if (g->e[id] != NULL) {
                aegis__engine_tick(g->e[id], &tr);
                send_result(g, id, &tr);
            }
        }
        group_settle(g);
    }
}

/* The single leader among the engines (0 if none or, wrongly, several in one term). */
static aegis_node_id group_leader(struct group *g)
{
    aegis_node_id leader = AEGIS_NODE_NONE;

    for (aegis_node_id id = 1; id <= GROUP_MAX; id++) {
        if (g->e[id] != NULL && aegis__engine_is_leader(g->e[id])) {
            if (leader != AEGIS_NODE_NONE &&
                aegis__engine_term(g->e[leader]) == aegis__engine_term(g->e[id])) {
                return AEGIS_NODE_NONE;
            }
            if (leader == AEGIS_NODE_NONE ||
                aegis__engine_term(g->e[id]) > aegis__engine_term(g->e[leader])) {
                leader = id;
            }
        }
    }
    return leader;
}

static aegis_node_id group_elect(struct group *g, int rounds_max)
{
    for (int r = 0; r < rounds_max; r++) {
        aegis_node_id l = group_leader(g);

        if (l != AEGIS_NODE_NONE) {
            return l;
        }
        group_rounds(g, 1);
    }
    return group_leader(g);
}

static bool value_is(struct aegis_engine *e, const char *key, const char *want)
{
    struct aegis_buf *v = NULL;
    bool ok;

    if (aegis__engine_get(e, key, strlen(key), &v, NULL) != 0) {
        return want == NULL;
    }
    ok = want != NULL && v->len == strlen(want) && memcmp(v->data, want, v->len) == 0;
    aegis__buf_unref(v);
    return ok;
}

/* Usage Example of the seed:
 *   node = NodeInfo::new("node1", "127.0.0.1", 5000); engine = ReplicationEngine::new(..)
 *   engine.add_peer(NodeInfo::new("node2", "127.0.0.1", 5001))
 *   request = engine.start_election(); ... handle votes from peers ...
 *   if engine.is_leader() { index = engine.set("key1", b"value1"); engine.apply_committed() }
 *   engine.get("key1")  */
TEST(engine, seed_usage_example)
{
    struct group g;
    struct aegis_msg request;
    struct aegis_engine_applied results[8];
    uint32_t count = 0;
    aegis_index index = 0;
    bool found = false;

    group_open(&g, 2); /* node1 with peer node2, and node2 with peer node1. */
    g.auto_apply = false;
    ASSERT_OK(aegis__engine_start_election(g.e[1], &request));
    ASSERT_EQ_U64(request.type, AEGIS_MSG_VOTE_REQ);
    ASSERT_EQ_U64(request.from, 1);
    ASSERT_EQ_U64(request.to, 2);
    ASSERT_TRUE(request.vote_req.pre_vote); /* Pre-vote is on by default. */

    /* Handle votes from peers: deliver node1's requests and node2's answers. */
    for (int pass = 0; pass < 10 && !aegis__engine_is_leader(g.e[1]); pass++) {
        struct aegis_tick_result tr;
        struct aegis_msg m;

        aegis__engine_poll(g.e[1], &tr);
        send_result(&g, 1, &tr);
        while (aegis__transport_receive(g.t[2], &m) == 0) {
            ASSERT_OK(aegis__engine_process_message(g.e[2], &m));
            aegis__transport_release(g.t[2], &m);
        }
        aegis__engine_poll(g.e[2], &tr);
        send_result(&g, 2, &tr);
        while (aegis__transport_receive(g.t[1], &m) == 0) {
            if (m.type == AEGIS_MSG_VOTE_RESP) {
                (void)aegis__engine_handle_vote_response(g.e[1], &m);
            } else {
                ASSERT_OK(aegis__engine_process_message(g.e[1], &m));
            }
            aegis__transport_release(g.t[1], &m);
        }
    }
    ASSERT_TRUE(aegis__engine_is_leader(g.e[1]));
    ASSERT_EQ_U64(aegis__engine_leader(g.e[1]), 1);

    ASSERT_OK(aegis__engine_set(g.e[1], "key1", 4, "value1", 6, &index));
    ASSERT_TRUE(index > 0);
    /* Not committed until node2 has it: nothing to apply yet beyond what committed. */
    group_settle(&g);
    ASSERT_TRUE(aegis__engine_commit_index(g.e[1]) >= index);
    ASSERT_OK(aegis__engine_apply_committed(g.e[1], results, 8, &count));
    ASSERT_TRUE(count >= 1);
    for (uint32_t i = 0; i < count; i++) {
        if (results[i].index == index) {
            found = true;
            ASSERT_OK(results[i].result.status);
            ASSERT_EQ_U64(results[i].result.version, index);
        }
    }
    aegis__engine_applied_release(results, count);
    ASSERT_TRUE(found);
    ASSERT_TRUE(value_is(g.e[1], "key1", "value1"));
    ASSERT_TRUE(value_is(g.e[1], "key2", NULL));
    group_close(&g);
    return TEST_PASS;
}

/* Drive a bare core the way the facade does: hand over every ready, count it durable,
 * queue its messages in @out (cloned) and apply its committed entries to @kv. */
static uint32_t drive_core(struct aegis_raft *r, struct aegis_kv *kv, struct aegis_msg *out,
                           uint32_t cap, uint32_t *applied)
{
    uint32_t n = 0;
    struct aegis_ready rd;

    while (aegis__raft_has_ready(r)) {
        aegis_index last_index = 0;
        aegis_term last_term = 0;

        aegis__raft_ready(r, &rd);
        for (uint32_t i = 0; i < rd.msgs_count + rd.msgs_after_persist_count; i++) {
            const struct aegis_msg *m = i < rd.msgs_count ? &rd.msgs[i]
                                                          : &rd.msgs_after_persist[i -
                                                                                   rd.msgs_count];

            if (n < cap) {
                MUST(aegis__msg_clone(&out[n++], m, NULL));
            }
        }
        for (uint32_t i = 0; i < rd.committed_count; i++) {
            struct aegis_kv_result res;

            MUST(aegis__kv_apply_entry(kv, &rd.committed[i], &res));
            aegis__kv_result_release(&res);
            (*applied)++;
        }
        if (rd.entries_count > 0) {
            last_index = rd.entries[rd.entries_count - 1].index;
            last_term = rd.entries[rd.entries_count - 1].term;
        }
        aegis__raft_advance(r, &rd);
        if (last_index != 0) {
            aegis__raft_persisted(r, last_index, last_term);
        }
        aegis__raft_applied(r, aegis__kv_applied_index(kv));
    }
    return n;
}

static void release_msgs(struct aegis_msg *m, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        aegis__msg_release(&m[i], NULL);
    }
}

/* Raft Node Example of the seed, on the bare core (RaftNode):
 *   node = RaftNode::new("node1", RaftConfig::default()); add_peer(node2); add_peer(node3)
 *   vote_request = node.start_election()
 *   became_leader = node.handle_vote_response(VoteResponse{term: 1, vote_granted: true,
 *                                                          voter_id: node2})
 *   if node.is_leader() { index = node.propose(Command::set("key", b"value")) }
 *   results = node.apply_committed()
 * The seed's example has no pre-vote, so it is switched off here. */
TEST(engine, seed_raft_node_example)
{
    struct aegis_raft_config cfg;
    struct aegis_raft_restore restore;
    struct aegis_rng rng;
    struct aegis_raft *r;
    struct aegis_kv kv;
    struct aegis_msg out[16];
    struct aegis_msg resp;
    struct aegis_buf *cmd;
    aegis_index index = 0;
    uint32_t n;
    uint32_t applied = 0;

    aegis__raft_config_default(&cfg);
    cfg.id = 1;
    cfg.pre_vote = false;
    memset(&restore, 0, sizeof(restore));
    restore.bootstrap.count = 3; /* node1 with peers node2 and node3. */
    for (uint32_t i = 0; i < 3; i++) {
        restore.bootstrap.members[i] =
            (struct aegis_member){.id = i + 1, .role = AEGIS_MEMBER_VOTER};
    }
    aegis__rng_seed(&rng, 7);
    ASSERT_OK(aegis__raft_create(&r, &cfg, &restore, &rng, NULL, NULL));
    ASSERT_OK(aegis__kv_init(&kv, NULL, 1));

    aegis__raft_campaign(r); /* start_election */
    n = drive_core(r, &kv, out, 16, &applied);
    ASSERT_EQ_U64(n, 2); /* A vote request to each peer. */
    ASSERT_EQ_U64(out[0].type, AEGIS_MSG_VOTE_REQ);
    ASSERT_EQ_U64(out[0].term, 1);
    ASSERT_FALSE(out[0].vote_req.pre_vote);
    release_msgs(out, n);

    memset(&resp, 0, sizeof(resp)); /* VoteResponse { term 1, granted, voter node2 } */
    resp.type = AEGIS_MSG_VOTE_RESP;
    resp.term = 1;
    resp.from = 2;
    resp.to = 1;
    resp.vote_resp.granted = true;
    ASSERT_OK(aegis__raft_step(r, &resp)); /* handle_vote_response */
    ASSERT_EQ_U64(aegis__raft_role(r), AEGIS_ROLE_LEADER); /* became_leader: 2 of 3. */
    n = drive_core(r, &kv, out, 16, &applied);
    release_msgs(out, n);

    ASSERT_OK(aegis__kv_encode_set(NULL, "key", 3, "value", 5, &cmd));
    ASSERT_OK(aegis__raft_propose(r, AEGIS_ENTRY_COMMAND, cmd, &index));
    aegis__buf_unref(cmd);
    ASSERT_EQ_U64(index, 2); /* After the leader's NoOp at index 1. */
    n = drive_core(r, &kv, out, 16, &applied);
    release_msgs(out, n);
    /* Nothing commits until a follower has it. */
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 0);
    memset(&resp, 0, sizeof(resp));
    resp.type = AEGIS_MSG_APPEND_RESP;
    resp.term = 1;
    resp.from = 2;
    resp.to = 1;
    resp.append_resp.success = true;
    resp.append_resp.match_index = 2;
    resp.append_resp.last_index = 2;
    ASSERT_OK(aegis__raft_step(r, &resp));
    n = drive_core(r, &kv, out, 16, &applied); /* apply_committed */
    release_msgs(out, n);
    ASSERT_EQ_U64(aegis__raft_commit_index(r), 2);
    ASSERT_EQ_U64(applied, 2);
    ASSERT_OK(aegis__kv_get(&kv, "key", 3, NULL, NULL));
    aegis__kv_close(&kv);
    aegis__raft_destroy(r);
    return TEST_PASS;
}

/* Cluster Management Example of the seed:
 *   config = ClusterConfig::new("my-cluster").with_replication_factor(3)
 *                .with_heartbeat_interval(1s); cluster = Cluster::new(node1, config)
 *   cluster.add_node(node2); cluster.add_node(node3)
 *   stats = cluster.stats()  -> healthy nodes, has quorum
 *   cluster.heartbeat(node2); failed = cluster.check_failures()  */
TEST(engine, seed_cluster_management_example)
{
    struct aegis_cluster_config config;
    struct aegis_cluster cluster;
    struct aegis_node_info local = info(1);
    struct aegis_node_info n2 = info(2);
    struct aegis_node_info n3 = info(3);
    struct aegis_cluster_stats stats;
    aegis_node_id failed[4];
    uint32_t failed_count;

    aegis__cluster_config_default(&config, "my-cluster");
    config.replication_factor = 3;
    config.heartbeat_interval_ms = 1000;
    ASSERT_OK(aegis__cluster_init(&cluster, &local, &config, 0));
    ASSERT_OK(aegis__cluster_add_node(&cluster, &n2, 0));
    ASSERT_OK(aegis__cluster_add_node(&cluster, &n3, 0));

    aegis__cluster_stats(&cluster, &stats);
    ASSERT_EQ_U64(stats.total_nodes, 3);
    ASSERT_EQ_U64(stats.healthy_nodes, 1); /* Only the local node has been heard. */
    ASSERT_FALSE(stats.has_quorum);

    ASSERT_OK(aegis__cluster_heartbeat(&cluster, 2, 1000));
    aegis__cluster_stats(&cluster, &stats);
    ASSERT_EQ_U64(stats.healthy_nodes, 2);
    ASSERT_TRUE(stats.has_quorum);

    /* node3 never answers: once the failure timeout (5 s) has passed it is reported. */
    ASSERT_OK(aegis__cluster_heartbeat(&cluster, 2, 5500));
    failed_count = aegis__cluster_check_failures(&cluster, 6000, failed, 4);
    ASSERT_EQ_U64(failed_count, 1);
    ASSERT_EQ_U64(failed[0], 3);
    aegis__cluster_stats(&cluster, &stats);
    ASSERT_EQ_U64(stats.down_nodes, 1);
    ASSERT_TRUE(stats.has_quorum);
    ASSERT_EQ_U64(stats.state, AEGIS_CLUSTER_DEGRADED);
    aegis__cluster_close(&cluster);
    return TEST_PASS;
}

TEST(engine, three_nodes_elect_and_replicate_by_ticking)
{
    struct group g;
    aegis_node_id leader;
    aegis_node_id follower;
    aegis_index index = 0;
    struct aegis_kv_bytes expected = {.data = (const uint8_t *)"1", .len = 1};

    group_open(&g, 3);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    ASSERT_TRUE(g.elections >= 1);
    ASSERT_TRUE(g.leader_changes >= 3); /* Every node learned of the leader. */
    follower = leader % 3 + 1;
    ASSERT_EQ_U64(aegis__engine_leader(g.e[follower]), leader);

    ASSERT_OK(aegis__engine_set(g.e[leader], "a", 1, "1", 1, &index));
    ASSERT_OK(aegis__engine_set(g.e[leader], "b", 1, "x", 1, &index));
    ASSERT_OK(aegis__engine_increment(g.e[leader], "n", 1, 41, &index));
    ASSERT_OK(aegis__engine_increment(g.e[leader], "n", 1, 1, &index));
    ASSERT_OK(aegis__engine_compare_and_swap(g.e[leader], "a", 1, &expected, "2", 1, &index));
    ASSERT_OK(aegis__engine_compare_and_swap(g.e[leader], "b", 1, NULL, "y", 1, &index));
    ASSERT_OK(aegis__engine_delete(g.e[leader], "c", 1, &index));
    group_rounds(&g, 3);
    for (aegis_node_id id = 1; id <= 3; id++) {
        ASSERT_EQ_U64(aegis__engine_applied_index(g.e[id]), index);
        ASSERT_TRUE(value_is(g.e[id], "a", "2"));
        ASSERT_TRUE(value_is(g.e[id], "b", "x")); /* CAS expecting absence failed. */
        ASSERT_TRUE(value_is(g.e[id], "n", "42"));
        ASSERT_TRUE(aegis__kv_equal(aegis__engine_kv(g.e[id]), aegis__engine_kv(g.e[leader])));
    }
    ASSERT_OK(aegis__engine_delete(g.e[leader], "a", 1, &index));
    /* Followers learn the new commit index with the next heartbeat (every 2 ticks). */
    group_rounds(&g, 3);
    ASSERT_TRUE(value_is(g.e[follower], "a", NULL));
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, follower_refuses_proposals)
{
    struct group g;
    aegis_node_id leader;
    aegis_node_id follower;
    aegis_index index = 99;

    group_open(&g, 3);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    follower = leader % 3 + 1;
    ASSERT_FALSE(aegis__engine_is_leader(g.e[follower]));
    ASSERT_ERR(aegis__engine_set(g.e[follower], "k", 1, "v", 1, &index), AEGIS_ENOTLEADER);
    ASSERT_EQ_U64(index, 99);
    ASSERT_EQ_U64(aegis__engine_leader(g.e[follower]), leader); /* Where to forward. */
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, results_carry_command_outcomes)
{
    struct group g;
    aegis_node_id leader;
    aegis_index i_set = 0;
    aegis_index i_incr = 0;
    aegis_index i_cas = 0;
    struct aegis_engine_applied res[16];
    uint32_t count = 0;
    struct aegis_kv_bytes wrong = {.data = (const uint8_t *)"zz", .len = 2};

    group_open(&g, 3);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    g.auto_apply = false;
    ASSERT_OK(aegis__engine_apply_committed(g.e[leader], NULL, 0, NULL)); /* The NoOp. */
    ASSERT_OK(aegis__engine_set(g.e[leader], "s", 1, "abc", 3, &i_set));
    ASSERT_OK(aegis__engine_increment(g.e[leader], "s", 1, 1, &i_incr));
    ASSERT_OK(aegis__engine_compare_and_swap(g.e[leader], "s", 1, &wrong, "q", 1, &i_cas));
    group_settle(&g);
    ASSERT_EQ_U64(aegis__engine_pending_apply(g.e[leader]), 3);
    /* Bounded: two now, one later. */
    ASSERT_OK(aegis__engine_apply_committed(g.e[leader], res, 2, &count));
    ASSERT_EQ_U64(count, 2);
    ASSERT_EQ_U64(res[0].index, i_set);
    ASSERT_OK(res[0].result.status);
    ASSERT_EQ_U64(res[1].index, i_incr);
    ASSERT_ERR(res[1].result.status, AEGIS_ETYPE); /* "abc" is not an integer. */
    aegis__engine_applied_release(res, count);
    ASSERT_OK(aegis__engine_apply_committed(g.e[leader], res, 16, &count));
    ASSERT_EQ_U64(count, 1);
    ASSERT_EQ_U64(res[0].index, i_cas);
    ASSERT_ERR(res[0].result.status, AEGIS_ECASMISMATCH);
    ASSERT_FALSE(res[0].result.swapped);
    aegis__engine_applied_release(res, count);
    ASSERT_EQ_U64(aegis__engine_pending_apply(g.e[leader]), 0);
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, leader_isolated_new_leader_and_failure_report)
{
    struct group g;
    aegis_node_id old;
    aegis_node_id leader = AEGIS_NODE_NONE;
    aegis_index index = 0;
    bool reported = false;

    group_open(&g, 3);
    old = group_elect(&g, 100);
    ASSERT_TRUE(old != AEGIS_NODE_NONE);
    ASSERT_OK(aegis__mem_network_isolate(g.net, old, true));
    g.elections = 0;
    /* Up to 80 ticks (8 s of cluster time at 100 ms): beyond the 5 s failure timeout. */
    for (int r = 0; r < 80; r++) {
        for (aegis_node_id id = 1; id <= 3; id++) {
            struct aegis_tick_result tr;

            aegis__engine_tick(g.e[id], &tr);
            for (uint32_t k = 0; k < tr.failed_count; k++) {
                reported |= id != old && tr.failed[k] == old;
            }
            send_result(&g, id, &tr);
        }
        group_settle(&g);
    }
    for (aegis_node_id id = 1; id <= 3; id++) {
        if (id != old && aegis__engine_is_leader(g.e[id])) {
            leader = id;
        }
    }
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    ASSERT_TRUE(aegis__engine_term(g.e[leader]) > aegis__engine_term(g.e[old]) ||
                !aegis__engine_is_leader(g.e[old]));
    ASSERT_TRUE(g.elections >= 1);
    ASSERT_TRUE(reported);
    ASSERT_EQ_U64(aegis__cluster_member(aegis__engine_cluster(g.e[leader]), old)->info.status,
                  AEGIS_NODE_DOWN);
    /* The majority side still commits. */
    ASSERT_OK(aegis__engine_set(g.e[leader], "k", 1, "v", 1, &index));
    group_rounds(&g, 2);
    ASSERT_TRUE(value_is(g.e[leader], "k", "v"));
    ASSERT_TRUE(value_is(g.e[old], "k", NULL));
    /* Heal: the old leader catches up and its view of the new leader is Healthy. */
    ASSERT_OK(aegis__mem_network_isolate(g.net, old, false));
    group_rounds(&g, 30);
    ASSERT_TRUE(value_is(g.e[old], "k", "v"));
    ASSERT_EQ_U64(aegis__engine_leader(g.e[old]), leader);
    ASSERT_EQ_U64(aegis__cluster_member(aegis__engine_cluster(g.e[leader]), old)->info.status,
                  AEGIS_NODE_HEALTHY);
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, peer_added_after_start_joins_and_is_promoted)
{
    struct group g;
    aegis_node_id leader;
    aegis_index index = 0;
    struct aegis_node_info n4 = info(4);
    const struct aegis_conf *conf;
    bool voter = false;

    group_open(&g, 3);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    ASSERT_OK(aegis__engine_set(g.e[leader], "k", 1, "v", 1, &index));
    group_rounds(&g, 2);
    /* Node 4 joins empty, knowing no peers: it learns everything from the leader. Left
     * alone it never campaigns (a bootstrap of itself alone would make it a leader of a
     * group of one). */
    group_add_engine(&g, 4, false);
    for (int i = 0; i < 50; i++) {
        struct aegis_tick_result tr;

        aegis__engine_tick(g.e[4], &tr);
        ASSERT_EQ_U64(tr.elections_started, 0);
        ASSERT_EQ_U64(tr.msgs_count, 0);
        aegis__tick_result_release(&tr, NULL);
    }
    ASSERT_FALSE(aegis__engine_is_leader(g.e[4]));
    ASSERT_ERR(aegis__engine_add_peer(g.e[leader % 3 + 1], &n4), AEGIS_ENOTLEADER);
    ASSERT_OK(aegis__engine_add_peer(g.e[leader], &n4));
    ASSERT_ERR(aegis__engine_add_peer(g.e[leader], &n4), AEGIS_EEXIST);
    group_rounds(&g, 20);
    ASSERT_TRUE(value_is(g.e[4], "k", "v"));
    conf = aegis__raft_conf(aegis__engine_raft(g.e[leader]));
    for (uint32_t i = 0; i < conf->count; i++) {
        voter |= conf->members[i].id == 4 && conf->members[i].role == AEGIS_MEMBER_VOTER;
    }
    ASSERT_EQ_U64(conf->count, 4);
    ASSERT_TRUE(voter);
    /* Followers' cluster views picked the new member up from the ConfigChange, and the
     * new node's view knows the group and its leader. */
    ASSERT_TRUE(aegis__cluster_contains(aegis__engine_cluster(g.e[leader % 3 + 1]), 4));
    ASSERT_EQ_U64(aegis__cluster_member(aegis__engine_cluster(g.e[4]), leader)->info.role,
                  AEGIS_NODE_LEADER);
    ASSERT_EQ_U64(aegis__cluster_leader(aegis__engine_cluster(g.e[4])), leader);
    ASSERT_EQ_U64(aegis__engine_cluster(g.e[4])->count, 4);
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, silent_peer_is_never_promoted_and_is_removed_after_the_timeout)
{
    struct group g;
    struct aegis_replication_config base;
    struct aegis_node_info n5 = info(5);
    aegis_node_id leader;
    aegis_index index = 0;

    aegis__replication_config_default(&base);
    base.raft.catchup_timeout_ticks = 40;
    group_open_with(&g, 3, &base);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    ASSERT_OK(aegis__engine_set(g.e[leader], "k", 1, "v", 1, &index));
    /* Node 5 never runs (a mistyped address): it must never count as a voter. */
    ASSERT_OK(aegis__engine_add_peer(g.e[leader], &n5));
    for (int r = 0; r < 30; r++) {
        group_rounds(&g, 1);
        ASSERT_EQ_U64(aegis__conf_voter_count(aegis__raft_conf(aegis__engine_raft(g.e[leader]))),
                      3);
    }
    group_rounds(&g, 30);
    ASSERT_EQ_U64(aegis__raft_conf(aegis__engine_raft(g.e[leader]))->count, 3);
    ASSERT_FALSE(aegis__cluster_contains(aegis__engine_cluster(g.e[leader]), 5));
    ASSERT_OK(aegis__engine_set(g.e[leader], "k2", 2, "v", 1, &index));
    group_rounds(&g, 3);
    ASSERT_TRUE(value_is(g.e[leader % 3 + 1], "k2", "v"));
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, single_node_leads_alone)
{
    struct aegis_engine *e;
    struct aegis_replication_config cfg;
    struct aegis_node_info self = info(1);
    struct aegis_msg req;
    struct aegis_tick_result tr;
    aegis_index index = 0;

    config_for(&cfg, 1);
    ASSERT_OK(aegis__engine_create(&e, &self, &cfg, NULL));
    ASSERT_FALSE(aegis__engine_is_leader(e));
    ASSERT_EQ_U64(aegis__engine_leader(e), AEGIS_NODE_NONE);
    ASSERT_OK(aegis__engine_start_election(e, &req));
    ASSERT_TRUE(aegis__engine_is_leader(e));
    ASSERT_EQ_U64(req.type, 0); /* Nobody to ask. */
    ASSERT_OK(aegis__engine_set(e, "solo", 4, "yes", 3, &index));
    aegis__engine_tick(e, &tr);
    ASSERT_EQ_U64(tr.msgs_count, 0);
    ASSERT_EQ_U64(tr.leader, 1);
    ASSERT_TRUE(tr.commit_index >= index);
    aegis__tick_result_release(&tr, NULL);
    ASSERT_OK(aegis__engine_apply_committed(e, NULL, 0, NULL));
    ASSERT_TRUE(value_is(e, "solo", "yes"));
    ASSERT_EQ_U64(aegis__cluster_leader(aegis__engine_cluster(e)), 1);
    aegis__engine_destroy(e);
    return TEST_PASS;
}

TEST(engine, add_peer_validation_and_config)
{
    struct aegis_engine *e;
    struct aegis_replication_config cfg;
    struct aegis_node_info self = info(1);
    struct aegis_node_info p = info(2);

    config_for(&cfg, 1);
    cfg.tick_ms = 0;
    ASSERT_ERR(aegis__engine_create(&e, &self, &cfg, NULL), AEGIS_ECONFIG);
    config_for(&cfg, 1);
    cfg.cluster.nodes_min = 0;
    ASSERT_ERR(aegis__engine_create(&e, &self, &cfg, NULL), AEGIS_ECONFIG);
    config_for(&cfg, 1);
    ASSERT_OK(aegis__engine_create(&e, &self, &cfg, NULL));
    ASSERT_ERR(aegis__engine_add_peer(e, &self), AEGIS_EINVAL);
    ASSERT_OK(aegis__engine_add_peer(e, &p));
    ASSERT_ERR(aegis__engine_add_peer(e, &p), AEGIS_EEXIST);
    ASSERT_EQ_U64(aegis__cluster_member(aegis__engine_cluster(e), 2)->info.port, 5001);
    ASSERT_OK(aegis__engine_remove_peer(e, 2));
    ASSERT_ERR(aegis__engine_remove_peer(e, 2), AEGIS_EUNKNOWNNODE);
    ASSERT_TRUE(aegis__engine_raft(e) == NULL); /* Nothing has driven it yet. */
    aegis__engine_destroy(e);
    return TEST_PASS;
}

TEST(engine, bounded_outbox_drops_and_recovers)
{
    struct group g;
    struct aegis_replication_config cfg;

    /* Rebuild node 1 with room for a single queued message. */
    group_open(&g, 3);
    aegis__engine_destroy(g.e[1]);
    config_for(&cfg, 1);
    cfg.outbox_msgs_max = 1;
    {
        struct aegis_node_info self = info(1);
        struct aegis_node_info p2 = info(2);
        struct aegis_node_info p3 = info(3);

        ASSERT_OK(aegis__engine_create(&g.e[1], &self, &cfg, NULL));
        ASSERT_OK(aegis__engine_add_peer(g.e[1], &p2));
        ASSERT_OK(aegis__engine_add_peer(g.e[1], &p3));
    }
    ASSERT_OK(aegis__engine_start_election(g.e[1], NULL));
    ASSERT_TRUE(aegis__engine_msgs_dropped(g.e[1]) >= 1); /* Two requests, one slot. */
    /* Raft retransmits: the group still elects a leader and commits. */
    ASSERT_TRUE(group_elect(&g, 200) != AEGIS_NODE_NONE);
    group_close(&g);
    return TEST_PASS;
}

TEST(engine, lagging_follower_catches_up_through_a_snapshot)
{
    struct group g;
    struct aegis_replication_config cfg;
    aegis_node_id leader;
    aegis_node_id lag;
    aegis_index index = 0;
    char key[16];

    aegis__replication_config_default(&cfg);
    cfg.raft.snapshot_threshold = 8;
    cfg.raft.snapshot_trailing = 2;
    cfg.raft.snapshot_chunk_bytes = 64; /* Several chunks. */
    group_open_with(&g, 3, &cfg);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    lag = leader % 3 + 1;
    ASSERT_OK(aegis__mem_network_isolate(g.net, lag, true));
    for (int i = 0; i < 40; i++) {
        int len = 0;

        key[len++] = 'k';
        key[len++] = (char)('a' + i % 26);
        key[len++] = (char)('0' + i / 26);
        ASSERT_OK(aegis__engine_set(g.e[leader], key, (size_t)len, "some-value-bytes", 16,
                                    &index));
        if (i % 4 == 3) {
            group_rounds(&g, 1);
        }
    }
    group_rounds(&g, 3);
    ASSERT_TRUE(aegis__engine_snapshots_taken(g.e[leader]) >= 1);
    ASSERT_EQ_U64(aegis__engine_applied_index(g.e[leader]), index);
    ASSERT_TRUE(aegis__engine_applied_index(g.e[lag]) < index);
    ASSERT_OK(aegis__mem_network_isolate(g.net, lag, false));
    group_rounds(&g, 40);
    ASSERT_TRUE(aegis__engine_snapshots_installed(g.e[lag]) >= 1);
    ASSERT_EQ_U64(aegis__engine_applied_index(g.e[lag]), index);
    ASSERT_TRUE(aegis__kv_equal(aegis__engine_kv(g.e[lag]), aegis__engine_kv(g.e[leader])));
    /* And it keeps replicating normally afterwards. */
    ASSERT_OK(aegis__engine_set(g.e[leader], "after", 5, "snap", 4, &index));
    group_rounds(&g, 3);
    ASSERT_TRUE(value_is(g.e[lag], "after", "snap"));
    group_close(&g);
    return TEST_PASS;
}

/* Many seeds: random isolation of one node at a time while a leader takes writes. After
 * healing there is one leader, and every engine has applied all it knows committed and
 * holds the same state machine (same keys, values, versions, applied index). */
TEST(engine, random_partitions_converge)
{
    uint64_t seeds = 20;

    for (uint64_t s = 0; s < seeds; s++) {
        struct group g;
        struct aegis_rng rng;
        aegis_index index = 0;
        uint32_t acked = 0;

        seed_base = test_seed() * 100 + s * 10;
        aegis__rng_seed(&rng, seed_base);
        group_open(&g, 3);
        for (int step = 0; step < 120; step++) {
            aegis_node_id leader = group_leader(&g);
            char key[4] = {'k', (char)('a' + step % 26), 0, 0};

            if (aegis__rng_chance(&rng, 50000)) {
                for (aegis_node_id id = 1; id <= 3; id++) {
                    MUST(aegis__mem_network_isolate(g.net, id, false));
                }
                MUST(aegis__mem_network_isolate(g.net, aegis__rng_range(&rng, 1, 3), true));
            }
            if (leader != AEGIS_NODE_NONE &&
                aegis__engine_set(g.e[leader], key, 2, "v", 1, &index) == 0) {
                acked++;
            }
            group_rounds(&g, 1);
        }
        for (aegis_node_id id = 1; id <= 3; id++) {
            MUST(aegis__mem_network_isolate(g.net, id, false));
        }
        group_rounds(&g, 60);
        if (group_leader(&g) == AEGIS_NODE_NONE || acked == 0) {
            FAIL("seed %" PRIu64 ": no leader after healing or no write accepted", seed_base);
        }
        for (aegis_node_id id = 2; id <= 3; id++) {
            if (!aegis__kv_equal(aegis__engine_kv(g.e[1]), aegis__engine_kv(g.e[id])) ||
                aegis__engine_applied_index(g.e[id]) != aegis__engine_commit_index(g.e[id])) {
                FAIL("seed %" PRIu64 ": node %" PRIu64 " diverges", seed_base, id);
            }
        }
        group_close(&g);
    }
    seed_base = 1000;
    return TEST_PASS;
}

TEST(engine, leader_removes_a_peer)
{
    struct group g;
    aegis_node_id leader;
    aegis_node_id gone;
    aegis_node_id stays;
    aegis_index index = 0;

    group_open(&g, 3);
    leader = group_elect(&g, 100);
    ASSERT_TRUE(leader != AEGIS_NODE_NONE);
    gone = leader % 3 + 1;
    stays = gone % 3 + 1;
    ASSERT_ERR(aegis__engine_remove_peer(g.e[stays], gone), AEGIS_ENOTLEADER);
    ASSERT_ERR(aegis__engine_remove_peer(g.e[leader], leader), AEGIS_EINVAL);
    ASSERT_OK(aegis__engine_remove_peer(g.e[leader], gone));
    ASSERT_FALSE(aegis__cluster_contains(aegis__engine_cluster(g.e[leader]), gone));
    group_rounds(&g, 3);
    ASSERT_EQ_U64(aegis__raft_conf(aegis__engine_raft(g.e[leader]))->count, 2);
    /* The follower that stays drops it from its view when the change applies. */
    ASSERT_FALSE(aegis__cluster_contains(aegis__engine_cluster(g.e[stays]), gone));
    /* The two-member group keeps committing without the removed node. */
    ASSERT_OK(aegis__mem_network_isolate(g.net, gone, true));
    ASSERT_OK(aegis__engine_set(g.e[leader], "k", 1, "v", 1, &index));
    group_rounds(&g, 3);
    ASSERT_TRUE(value_is(g.e[stays], "k", "v"));
    group_close(&g);
    return TEST_PASS;
}

/* An allocator that fails every allocation after the first @budget (a countdown heap). */
struct budget_heap {
    long budget;
};

static void *budget_malloc(void *data, size_t size)
{
    struct budget_heap *h = data;

    if (h->budget-- <= 0) {
        return NULL;
    }
    return aegis__alloc_default()->malloc(NULL, size);
}

static void *budget_realloc(void *data, void *ptr, size_t size)
{
    struct budget_heap *h = data;

    if (h->budget-- <= 0) {
        return NULL;
    }
    return aegis__alloc_default()->realloc(NULL, ptr, size);
}

static void budget_free(void *data, void *ptr)
{
    (void)data;
    aegis__alloc_default()->free(NULL, ptr);
}

/* Every allocation of create, add_peer and start_election fails in turn: each failure is
 * reported as AEGIS_ENOMEM and leaks nothing (AddressSanitizer's leak check), and with
 * enough memory the engine runs. */
TEST(engine, out_of_memory_at_every_allocation)
{
    struct budget_heap heap;
    struct aegis_allocator a = {.malloc = budget_malloc, .realloc = budget_realloc,
                                .free = budget_free, .data = &heap};
    bool done = false;

    for (long budget = 0; budget < 10000 && !done; budget++) {
        struct aegis_engine *e = NULL;
        struct aegis_replication_config cfg;
        struct aegis_node_info self = info(1);
        struct aegis_node_info peer = info(2);
        int rv;

        heap.budget = budget;
        config_for(&cfg, 1);
        rv = aegis__engine_create(&e, &self, &cfg, &a);
        if (rv != 0) {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
            continue;
        }
        rv = aegis__engine_add_peer(e, &peer);
        if (rv == 0) {
            rv = aegis__engine_start_election(e, NULL);
        }
        if (rv != 0) {
            ASSERT_ERR(rv, AEGIS_ENOMEM);
            ASSERT_TRUE(aegis__engine_raft(e) == NULL);
        } else {
            done = true;
            ASSERT_TRUE(aegis__engine_raft(e) != NULL);
        }
        aegis__engine_destroy(e);
    }
    ASSERT_TRUE(done);
    return TEST_PASS;
}
