/* SPDX-License-Identifier: MIT */
/* Tests of engine/node: NodeInfo, the status lifecycle, metadata and health. */
#include <aegis/error.h>

#include "engine/node.h"
#include "lib/test.h"

TEST(node, info_init_defaults)
{
    struct aegis_node_info n;

    ASSERT_OK(aegis__node_info_init(&n, 1, "127.0.0.1", 5000));
    ASSERT_EQ_U64(n.id, 1);
    ASSERT_STR_EQ(n.address, "127.0.0.1");
    ASSERT_EQ_U64(n.port, 5000);
    ASSERT_EQ_U64(n.status, AEGIS_NODE_STARTING);
    ASSERT_EQ_U64(n.role, AEGIS_NODE_FOLLOWER);
    ASSERT_EQ_U64(n.metadata.tags_count, 0);
    ASSERT_STR_EQ(n.metadata.datacenter, "");
    ASSERT_EQ_U64(n.metadata.capacity, 0);
    return TEST_PASS;
}

TEST(node, info_init_rejects_bad_input)
{
    struct aegis_node_info n;
    char longaddr[AEGIS_NODE_ADDRESS_MAX + 1];

    memset(longaddr, 'a', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    ASSERT_ERR(aegis__node_info_init(&n, AEGIS_NODE_NONE, "h", 1), AEGIS_EINVAL);
    ASSERT_ERR(aegis__node_info_init(&n, 1, NULL, 1), AEGIS_EINVAL);
    ASSERT_ERR(aegis__node_info_init(&n, 1, longaddr, 1), AEGIS_ETOOBIG);
    /* The longest address that fits (MAX - 1 characters) is accepted. */
    longaddr[AEGIS_NODE_ADDRESS_MAX - 1] = '\0';
    ASSERT_OK(aegis__node_info_init(&n, 1, longaddr, 1));
    ASSERT_EQ_U64(strlen(n.address), AEGIS_NODE_ADDRESS_MAX - 1);
    return TEST_PASS;
}

/* The whole transition matrix, written out independently of the table in node.c. */
TEST(node, status_transition_matrix)
{
    enum { S = AEGIS_NODE_STARTING, H, SU, D, LG, LT };
    static const bool allowed[7][7] = {
        [S] = {[S] = 1, [H] = 1, [SU] = 1, [D] = 1, [LG] = 1},
        [H] = {[H] = 1, [SU] = 1, [D] = 1, [LG] = 1},
        [SU] = {[SU] = 1, [H] = 1, [D] = 1, [LG] = 1},
        [D] = {[D] = 1, [H] = 1, [LG] = 1},
        [LG] = {[LG] = 1, [LT] = 1},
        [LT] = {[LT] = 1},
    };

    for (int from = 0; from <= 7; from++) {
        for (int to = 0; to <= 7; to++) {
            bool want = from >= S && from <= LT && to >= S && to <= LT && allowed[from][to];

            if (aegis__node_status_can_transition((enum aegis_node_status)from,
                                                  (enum aegis_node_status)to) != want) {
                FAIL("transition %d -> %d: expected %d", from, to, want);
            }
        }
    }
    return TEST_PASS;
}

TEST(node, set_status_follows_lifecycle)
{
    struct aegis_node_info n;

    ASSERT_OK(aegis__node_info_init(&n, 7, "h", 1));
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_HEALTHY));
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_SUSPECT));
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_DOWN));
    /* Down cannot become Suspect: only a heartbeat (Healthy) or leaving. */
    ASSERT_ERR(aegis__node_set_status(&n, AEGIS_NODE_SUSPECT), AEGIS_EINVAL);
    ASSERT_EQ_U64(n.status, AEGIS_NODE_DOWN);
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_HEALTHY));
    ASSERT_ERR(aegis__node_set_status(&n, AEGIS_NODE_LEFT), AEGIS_EINVAL);
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_LEAVING));
    ASSERT_ERR(aegis__node_set_status(&n, AEGIS_NODE_HEALTHY), AEGIS_EINVAL);
    ASSERT_OK(aegis__node_set_status(&n, AEGIS_NODE_LEFT));
    /* Left is final. */
    ASSERT_ERR(aegis__node_set_status(&n, AEGIS_NODE_STARTING), AEGIS_EINVAL);
    ASSERT_ERR(aegis__node_set_status(&n, AEGIS_NODE_HEALTHY), AEGIS_EINVAL);
    ASSERT_ERR(aegis__node_set_status(&n, (enum aegis_node_status)99), AEGIS_EINVAL);
    ASSERT_EQ_U64(n.status, AEGIS_NODE_LEFT);
    return TEST_PASS;
}

TEST(node, names_and_liveness)
{
    ASSERT_STR_EQ(aegis__node_status_name(AEGIS_NODE_SUSPECT), "suspect");
    ASSERT_STR_EQ(aegis__node_status_name(AEGIS_NODE_LEFT), "left");
    ASSERT_STR_EQ(aegis__node_status_name((enum aegis_node_status)0), "unknown");
    ASSERT_STR_EQ(aegis__node_role_name(AEGIS_NODE_LEARNER), "learner");
    ASSERT_STR_EQ(aegis__node_role_name(AEGIS_NODE_LEADER), "leader");
    ASSERT_STR_EQ(aegis__node_role_name((enum aegis_node_role)42), "unknown");
    ASSERT_TRUE(aegis__node_status_is_live(AEGIS_NODE_HEALTHY));
    ASSERT_TRUE(aegis__node_status_is_live(AEGIS_NODE_SUSPECT));
    ASSERT_FALSE(aegis__node_status_is_live(AEGIS_NODE_STARTING));
    ASSERT_FALSE(aegis__node_status_is_live(AEGIS_NODE_DOWN));
    ASSERT_FALSE(aegis__node_status_is_live(AEGIS_NODE_LEAVING));
    return TEST_PASS;
}

TEST(node, metadata_location)
{
    struct aegis_node_metadata md;
    char big[AEGIS_NODE_LOCATION_MAX + 4];

    memset(&md, 0, sizeof(md));
    ASSERT_OK(aegis__node_metadata_set_location(&md, "dc1", "r7", "eu-west-1a"));
    ASSERT_STR_EQ(md.datacenter, "dc1");
    ASSERT_STR_EQ(md.rack, "r7");
    ASSERT_STR_EQ(md.zone, "eu-west-1a");
    ASSERT_OK(aegis__node_metadata_set_location(&md, NULL, "r8", NULL));
    ASSERT_STR_EQ(md.datacenter, "dc1");
    ASSERT_STR_EQ(md.rack, "r8");
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* One field too long: nothing changes, not even the fields that fit. */
    ASSERT_ERR(aegis__node_metadata_set_location(&md, "dc2", "r9", big), AEGIS_ETOOBIG);
    ASSERT_STR_EQ(md.datacenter, "dc1");
    ASSERT_STR_EQ(md.rack, "r8");
    return TEST_PASS;
}

TEST(node, metadata_tags)
{
    struct aegis_node_metadata md;
    char key[8];

    memset(&md, 0, sizeof(md));
    ASSERT_TRUE(aegis__node_metadata_tag(&md, "disk") == NULL);
    ASSERT_OK(aegis__node_metadata_set_tag(&md, "disk", "ssd"));
    ASSERT_OK(aegis__node_metadata_set_tag(&md, "tier", "gold"));
    ASSERT_STR_EQ(aegis__node_metadata_tag(&md, "disk"), "ssd");
    ASSERT_OK(aegis__node_metadata_set_tag(&md, "disk", "nvme"));
    ASSERT_EQ_U64(md.tags_count, 2);
    ASSERT_STR_EQ(aegis__node_metadata_tag(&md, "disk"), "nvme");
    ASSERT_ERR(aegis__node_metadata_set_tag(&md, "", "x"), AEGIS_EINVAL);
    ASSERT_ERR(aegis__node_metadata_set_tag(&md, NULL, "x"), AEGIS_EINVAL);
    ASSERT_OK(aegis__node_metadata_remove_tag(&md, "disk"));
    ASSERT_TRUE(aegis__node_metadata_tag(&md, "disk") == NULL);
    ASSERT_STR_EQ(aegis__node_metadata_tag(&md, "tier"), "gold");
    ASSERT_ERR(aegis__node_metadata_remove_tag(&md, "disk"), AEGIS_ENOTFOUND);
    /* Fill up to the bound; one more is refused. */
    for (int i = 1; i < AEGIS_NODE_TAGS_MAX; i++) {
        key[0] = 'k';
        key[1] = (char)('a' + i);
        key[2] = '\0';
        ASSERT_OK(aegis__node_metadata_set_tag(&md, key, "v"));
    }
    ASSERT_EQ_U64(md.tags_count, AEGIS_NODE_TAGS_MAX);
    ASSERT_ERR(aegis__node_metadata_set_tag(&md, "extra", "v"), AEGIS_EFULL);
    /* Replacing an existing one still works when full. */
    ASSERT_OK(aegis__node_metadata_set_tag(&md, "tier", "silver"));
    ASSERT_STR_EQ(aegis__node_metadata_tag(&md, "tier"), "silver");
    return TEST_PASS;
}

TEST(node, metadata_tag_bounds)
{
    struct aegis_node_metadata md;
    char k[AEGIS_NODE_TAG_KEY_MAX + 1];
    char v[AEGIS_NODE_TAG_VALUE_MAX + 1];

    memset(&md, 0, sizeof(md));
    memset(k, 'k', sizeof(k) - 1);
    k[sizeof(k) - 1] = '\0';
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    ASSERT_ERR(aegis__node_metadata_set_tag(&md, k, "v"), AEGIS_ETOOBIG);
    ASSERT_ERR(aegis__node_metadata_set_tag(&md, "k", v), AEGIS_ETOOBIG);
    ASSERT_EQ_U64(md.tags_count, 0);
    k[AEGIS_NODE_TAG_KEY_MAX - 1] = '\0';
    v[AEGIS_NODE_TAG_VALUE_MAX - 1] = '\0';
    ASSERT_OK(aegis__node_metadata_set_tag(&md, k, v));
    ASSERT_STR_EQ(aegis__node_metadata_tag(&md, k), v);
    return TEST_PASS;
}

TEST(node, health_lifecycle)
{
    struct aegis_node_health h;
    char longerr[300];

    aegis__node_health_init(&h, 100);
    ASSERT_FALSE(h.healthy);
    ASSERT_FALSE(h.heard);
    ASSERT_EQ_U64(aegis__node_health_silence_ms(&h, 350), 250);
    ASSERT_EQ_U64(aegis__node_health_silence_ms(&h, 50), 0);
    aegis__node_health_heard(&h, 400);
    ASSERT_TRUE(h.healthy);
    ASSERT_TRUE(h.heard);
    ASSERT_EQ_U64(h.last_heartbeat_ms, 400);
    /* A heartbeat stamped earlier does not rewind the clock. */
    aegis__node_health_heard(&h, 300);
    ASSERT_EQ_U64(h.last_heartbeat_ms, 400);
    aegis__node_health_failed(&h, "connection refused");
    ASSERT_FALSE(h.healthy);
    ASSERT_STR_EQ(h.error, "connection refused");
    ASSERT_EQ_U64(h.last_heartbeat_ms, 400);
    memset(longerr, 'e', sizeof(longerr) - 1);
    longerr[sizeof(longerr) - 1] = '\0';
    aegis__node_health_failed(&h, longerr);
    ASSERT_EQ_U64(strlen(h.error), AEGIS_NODE_ERROR_MAX - 1);
    aegis__node_health_heard(&h, 500);
    ASSERT_STR_EQ(h.error, "");
    return TEST_PASS;
}

TEST(node, info_is_a_value_type)
{
    struct aegis_node_info a;
    struct aegis_node_info b;

    ASSERT_OK(aegis__node_info_init(&a, 3, "10.0.0.3", 7000));
    ASSERT_OK(aegis__node_metadata_set_tag(&a.metadata, "k", "v"));
    b = a;
    ASSERT_OK(aegis__node_metadata_set_tag(&a.metadata, "k", "w"));
    ASSERT_STR_EQ(aegis__node_metadata_tag(&b.metadata, "k"), "v");
    ASSERT_STR_EQ(aegis__node_metadata_tag(&a.metadata, "k"), "w");
    return TEST_PASS;
}
