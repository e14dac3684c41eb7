/* SPDX-License-Identifier: MIT */
/* Tests of engine/cluster: config, membership changes, failure detection, leader tracking,
 * stats and the derived state. */
#include <aegis/error.h>

#include "engine/assert.h"
#include "engine/cluster.h"
#include "lib/test.h"

/* For setup helpers that cannot return a test result: a failure aborts the test run. */
#define MUST(x)                                                                            \
    do {                                                                                   \
        int must_rv_ = (x);                                                                \
        AEGIS_ASSERT(must_rv_ == 0);                                                       \
    } while (0)

static struct aegis_node_info node(aegis_node_id id)
{
    struct aegis_node_info n;

    MUST(aegis__node_info_init(&n, id, "127.0.0.1", (uint16_t)(5000 + id)));
    return n;
}

/* A three-node cluster at time 0: heartbeat 100, suspect after 300, down after 1000. */
static void three(struct aegis_cluster *c)
{
    struct aegis_cluster_config cfg;
    struct aegis_node_info local = node(1);
    struct aegis_node_info n2 = node(2);
    struct aegis_node_info n3 = node(3);

    aegis__cluster_config_default(&cfg, "test");
    cfg.heartbeat_interval_ms = 100;
    cfg.suspect_timeout_ms = 300;
    cfg.failure_timeout_ms = 1000;
    cfg.nodes_min = 3;
    MUST(aegis__cluster_init(c, &local, &cfg, 0));
    MUST(aegis__cluster_add_node(c, &n2, 0));
    MUST(aegis__cluster_add_node(c, &n3, 0));
}

TEST(cluster, config_default_and_validate)
{
    struct aegis_cluster_config c;

    aegis__cluster_config_default(&c, "my-cluster");
    ASSERT_STR_EQ(c.name, "my-cluster");
    ASSERT_EQ_U64(c.replication_factor, 3);
    ASSERT_EQ_U64(c.quorum_size, 0);
    ASSERT_OK(aegis__cluster_config_validate(&c));
    aegis__cluster_config_default(&c, NULL);
    ASSERT_STR_EQ(c.name, "aegis");

    c.nodes_min = 0;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.nodes_max = AEGIS_CLUSTER_NODES_MAX + 1;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.nodes_min = 5;
    c.nodes_max = 4;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.replication_factor = 0;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.failure_timeout_ms = c.heartbeat_interval_ms;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.suspect_timeout_ms = c.failure_timeout_ms;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.quorum_size = AEGIS_CLUSTER_NODES_MAX + 1;
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    aegis__cluster_config_default(&c, "x");
    c.name[0] = '\0';
    ASSERT_ERR(aegis__cluster_config_validate(&c), AEGIS_ECONFIG);
    return TEST_PASS;
}

TEST(cluster, init_marks_local_healthy)
{
    struct aegis_cluster c;
    struct aegis_cluster_config cfg;
    struct aegis_node_info local = node(1);
    struct aegis_cluster_stats st;

    aegis__cluster_config_default(&cfg, "solo");
    ASSERT_OK(aegis__cluster_init(&c, &local, &cfg, 10));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 1)->info.status, AEGIS_NODE_HEALTHY);
    aegis__cluster_stats(&c, &st);
    ASSERT_EQ_U64(st.total_nodes, 1);
    ASSERT_EQ_U64(st.healthy_nodes, 1);
    ASSERT_EQ_U64(st.quorum, 1);
    ASSERT_TRUE(st.has_quorum);
    /* A one-node cluster with nodes_min 1 is formed and healthy at once. */
    ASSERT_EQ_U64(st.state, AEGIS_CLUSTER_HEALTHY);
    aegis__cluster_close(&c);

    local.id = AEGIS_NODE_NONE;
    ASSERT_ERR(aegis__cluster_init(&c, &local, &cfg, 0), AEGIS_EINVAL);
    local = node(1);
    cfg.nodes_min = 0;
    ASSERT_ERR(aegis__cluster_init(&c, &local, &cfg, 0), AEGIS_ECONFIG);
    return TEST_PASS;
}

TEST(cluster, add_remove_update)
{
    struct aegis_cluster c;
    struct aegis_node_info n4 = node(4);
    struct aegis_node_info upd;

    three(&c);
    ASSERT_TRUE(aegis__cluster_contains(&c, 2));
    ASSERT_EQ_U64(c.version, 2);
    ASSERT_ERR(aegis__cluster_add_node(&c, &n4, 0), 0);
    ASSERT_ERR(aegis__cluster_add_node(&c, &n4, 0), AEGIS_EEXIST);
    ASSERT_EQ_U64(c.version, 3);
    ASSERT_OK(aegis__cluster_remove_node(&c, 4));
    ASSERT_FALSE(aegis__cluster_contains(&c, 4));
    ASSERT_ERR(aegis__cluster_remove_node(&c, 4), AEGIS_EUNKNOWNNODE);
    ASSERT_ERR(aegis__cluster_remove_node(&c, 1), AEGIS_EINVAL); /* The local node. */
    ASSERT_EQ_U64(c.version, 4);

    /* Update: new address and metadata; the status change must be allowed. */
    upd = aegis__cluster_member(&c, 2)->info;
    ASSERT_OK(aegis__node_info_init(&upd, 2, "10.0.0.2", 6002));
    ASSERT_OK(aegis__node_metadata_set_location(&upd.metadata, "dc2", NULL, NULL));
    ASSERT_OK(aegis__cluster_update_node(&c, &upd));
    ASSERT_STR_EQ(aegis__cluster_member(&c, 2)->info.address, "10.0.0.2");
    ASSERT_STR_EQ(aegis__cluster_member(&c, 2)->info.metadata.datacenter, "dc2");
    upd.status = AEGIS_NODE_LEFT; /* Starting -> Left skips Leaving: refused. */
    ASSERT_ERR(aegis__cluster_update_node(&c, &upd), AEGIS_EINVAL);
    ASSERT_STR_EQ(aegis__cluster_member(&c, 2)->info.address, "10.0.0.2");
    upd.status = AEGIS_NODE_LEAVING;
    ASSERT_OK(aegis__cluster_update_node(&c, &upd));
    upd.status = AEGIS_NODE_LEFT;
    ASSERT_OK(aegis__cluster_update_node(&c, &upd)); /* Left: dropped from the table. */
    ASSERT_FALSE(aegis__cluster_contains(&c, 2));
    upd = node(9);
    ASSERT_ERR(aegis__cluster_update_node(&c, &upd), AEGIS_EUNKNOWNNODE);
    return TEST_PASS;
}

TEST(cluster, membership_change_apply)
{
    struct aegis_cluster c;
    struct aegis_membership_change ch = {.type = AEGIS_MEMBERSHIP_ADD};

    three(&c);
    ch.node = node(5);
    ASSERT_OK(aegis__cluster_apply(&c, &ch, 50));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 5)->health.last_heartbeat_ms, 50);
    ch.type = AEGIS_MEMBERSHIP_REMOVE;
    ASSERT_OK(aegis__cluster_apply(&c, &ch, 60));
    ASSERT_FALSE(aegis__cluster_contains(&c, 5));
    ch.type = 77;
    ASSERT_ERR(aegis__cluster_apply(&c, &ch, 60), AEGIS_EINVAL);
    ch.type = AEGIS_MEMBERSHIP_ADD;
    ch.node.id = AEGIS_NODE_NONE;
    ASSERT_ERR(aegis__cluster_apply(&c, &ch, 60), AEGIS_EINVAL);
    return TEST_PASS;
}

TEST(cluster, nodes_max_enforced)
{
    struct aegis_cluster c;
    struct aegis_cluster_config cfg;
    struct aegis_node_info n;

    aegis__cluster_config_default(&cfg, "small");
    cfg.nodes_max = 3;
    cfg.replication_factor = 3;
    n = node(1);
    ASSERT_OK(aegis__cluster_init(&c, &n, &cfg, 0));
    n = node(2);
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 0));
    n = node(3);
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 0));
    n = node(4);
    ASSERT_ERR(aegis__cluster_add_node(&c, &n, 0), AEGIS_EFULL);
    ASSERT_OK(aegis__cluster_remove_node(&c, 3));
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 0));
    return TEST_PASS;
}

TEST(cluster, heartbeat_and_failure_detection)
{
    struct aegis_cluster c;
    aegis_node_id failed[4];

    three(&c);
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 50));
    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 50));
    ASSERT_ERR(aegis__cluster_heartbeat(&c, 9, 50), AEGIS_EUNKNOWNNODE);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_HEALTHY);

    /* Within the suspect timeout nothing moves. */
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 350, failed, 4), 0);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_HEALTHY);
    /* Node 3 keeps talking; node 2 goes quiet. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 340));
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 351, failed, 4), 0);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_SUSPECT);
    ASSERT_FALSE(aegis__cluster_member(&c, 2)->health.healthy);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 3)->info.status, AEGIS_NODE_HEALTHY);
    /* The local node never fails in its own view. */
    ASSERT_EQ_U64(aegis__cluster_member(&c, 1)->info.status, AEGIS_NODE_HEALTHY);

    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 1000));
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 1051, failed, 4), 1);
    ASSERT_EQ_U64(failed[0], 2);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_DOWN);
    /* Down is reported once, not on every check. */
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 1100, failed, 4), 0);

    /* A heartbeat brings it back. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 1200));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_HEALTHY);
    ASSERT_TRUE(aegis__cluster_member(&c, 2)->health.healthy);
    ASSERT_STR_EQ(aegis__cluster_member(&c, 2)->health.error, "");
    return TEST_PASS;
}

TEST(cluster, silent_new_node_fails_from_join_time)
{
    struct aegis_cluster c;
    aegis_node_id failed[4];

    three(&c);
    /* Never heard: Starting -> Suspect -> Down, timed from when it was added (0). */
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 301, failed, 4), 0);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_SUSPECT);
    /* A long gap between checks goes straight to Down; the count can exceed the room. */
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 5000, failed, 1), 2);
    ASSERT_TRUE(failed[0] == 2 || failed[0] == 3);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 3)->info.status, AEGIS_NODE_DOWN);
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 6000, NULL, 0), 0);
    return TEST_PASS;
}

TEST(cluster, leaving_nodes_are_not_failed)
{
    struct aegis_cluster c;
    struct aegis_node_info upd;

    three(&c);
    upd = aegis__cluster_member(&c, 2)->info;
    upd.status = AEGIS_NODE_LEAVING;
    ASSERT_OK(aegis__cluster_update_node(&c, &upd));
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 10000, NULL, 0), 1); /* Only node 3. */
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_LEAVING);
    /* A heartbeat does not bring a leaving node back to Healthy. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 10001));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.status, AEGIS_NODE_LEAVING);
    return TEST_PASS;
}

TEST(cluster, leader_tracking)
{
    struct aegis_cluster c;
    aegis_node_id failed[4];

    three(&c);
    ASSERT_EQ_U64(aegis__cluster_leader(&c), AEGIS_NODE_NONE);
    ASSERT_ERR(aegis__cluster_set_leader(&c, 9), AEGIS_EUNKNOWNNODE);
    ASSERT_OK(aegis__cluster_set_leader(&c, 2));
    ASSERT_EQ_U64(aegis__cluster_leader(&c), 2);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.role, AEGIS_NODE_LEADER);
    ASSERT_OK(aegis__cluster_set_leader(&c, 3));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.role, AEGIS_NODE_FOLLOWER);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 3)->info.role, AEGIS_NODE_LEADER);
    ASSERT_OK(aegis__cluster_set_role(&c, 2, AEGIS_NODE_LEARNER));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->info.role, AEGIS_NODE_LEARNER);
    ASSERT_ERR(aegis__cluster_set_role(&c, 8, AEGIS_NODE_LEARNER), AEGIS_EUNKNOWNNODE);

    /* A leader that goes Down is forgotten. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 900));
    ASSERT_EQ_U64(aegis__cluster_check_failures(&c, 1001, failed, 4), 1);
    ASSERT_EQ_U64(failed[0], 3);
    ASSERT_EQ_U64(aegis__cluster_leader(&c), AEGIS_NODE_NONE);

    /* A removed leader is forgotten. */
    ASSERT_OK(aegis__cluster_set_leader(&c, 2));
    ASSERT_OK(aegis__cluster_remove_node(&c, 2));
    ASSERT_EQ_U64(aegis__cluster_leader(&c), AEGIS_NODE_NONE);
    ASSERT_OK(aegis__cluster_set_leader(&c, 1));
    ASSERT_OK(aegis__cluster_set_leader(&c, AEGIS_NODE_NONE));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 1)->info.role, AEGIS_NODE_FOLLOWER);
    return TEST_PASS;
}

TEST(cluster, state_derivation)
{
    struct aegis_cluster c;
    struct aegis_cluster_stats st;

    three(&c);
    /* Only the local node is up and no peer has been heard. */
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_INITIALIZING);
    ASSERT_FALSE(aegis__cluster_has_quorum(&c));
    ASSERT_EQ_U64(aegis__cluster_quorum(&c), 2);
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 10));
    /* Two of three up: quorum, formed; node 3 still Starting, so Degraded. */
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_DEGRADED);
    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 10));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_HEALTHY);
    aegis__cluster_stats(&c, &st);
    ASSERT_EQ_U64(st.total_nodes, 3);
    ASSERT_EQ_U64(st.healthy_nodes, 3);
    ASSERT_TRUE(st.has_quorum);

    /* Node 3 stays quiet: Suspect still counts as up, so Degraded. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 400));
    aegis__cluster_check_failures(&c, 400, NULL, 0);
    aegis__cluster_stats(&c, &st);
    ASSERT_EQ_U64(st.suspect_nodes, 1);
    ASSERT_EQ_U64(st.state, AEGIS_CLUSTER_DEGRADED);
    ASSERT_TRUE(st.has_quorum);
    /* Both peers go Down: no quorum. */
    aegis__cluster_check_failures(&c, 2000, NULL, 0);
    aegis__cluster_stats(&c, &st);
    ASSERT_EQ_U64(st.down_nodes, 2);
    ASSERT_EQ_U64(st.healthy_nodes, 1);
    ASSERT_FALSE(st.has_quorum);
    ASSERT_EQ_U64(st.state, AEGIS_CLUSTER_NO_QUORUM);
    /* One comes back. */
    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 2100));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_DEGRADED);
    ASSERT_STR_EQ(aegis__cluster_state_name(AEGIS_CLUSTER_NO_QUORUM), "no quorum");
    return TEST_PASS;
}

TEST(cluster, forming_until_enough_members)
{
    struct aegis_cluster c;
    struct aegis_cluster_config cfg;
    struct aegis_node_info n = node(1);

    aegis__cluster_config_default(&cfg, "f");
    cfg.nodes_min = 3;
    ASSERT_OK(aegis__cluster_init(&c, &n, &cfg, 0));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_INITIALIZING);
    n = node(2);
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 0));
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 1));
    /* Two members up of two, but nodes_min is 3: still forming. */
    ASSERT_TRUE(aegis__cluster_has_quorum(&c));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_FORMING);
    n = node(3);
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 1));
    ASSERT_OK(aegis__cluster_heartbeat(&c, 3, 2));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_HEALTHY);
    /* Shrinking below nodes_min after forming is Degraded, not Forming. */
    ASSERT_OK(aegis__cluster_remove_node(&c, 3));
    ASSERT_EQ_U64(aegis__cluster_state(&c), AEGIS_CLUSTER_DEGRADED);
    return TEST_PASS;
}

TEST(cluster, fixed_quorum_size)
{
    struct aegis_cluster c;
    struct aegis_cluster_config cfg;
    struct aegis_node_info n = node(1);

    aegis__cluster_config_default(&cfg, "q");
    cfg.quorum_size = 2;
    ASSERT_OK(aegis__cluster_init(&c, &n, &cfg, 0));
    ASSERT_EQ_U64(aegis__cluster_quorum(&c), 2);
    ASSERT_FALSE(aegis__cluster_has_quorum(&c));
    n = node(2);
    ASSERT_OK(aegis__cluster_add_node(&c, &n, 0));
    ASSERT_OK(aegis__cluster_heartbeat(&c, 2, 0));
    ASSERT_TRUE(aegis__cluster_has_quorum(&c));
    return TEST_PASS;
}

TEST(cluster, report_health)
{
    struct aegis_cluster c;

    three(&c);
    ASSERT_OK(aegis__cluster_report_health(&c, 2, 250, 17));
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->health.rtt_us, 250);
    ASSERT_EQ_U64(aegis__cluster_member(&c, 2)->health.lag_entries, 17);
    ASSERT_ERR(aegis__cluster_report_health(&c, 12, 1, 1), AEGIS_EUNKNOWNNODE);
    return TEST_PASS;
}
