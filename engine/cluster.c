/* SPDX-License-Identifier: MIT */
/* Cluster coordination: membership table, failure detection, leader tracking and the
 * derived state; see cluster.h for the rules.
 *
 * The table is a small dense array (at most AEGIS_CLUSTER_NODES_MAX entries) searched
 * linearly: membership is tiny and changes rarely, so a linear scan beats any index. A
 * removal moves the last member into the hole, so member order is not stable. */
#include "engine/cluster.h"

#include <string.h>

#include <aegis/error.h>

#include "engine/assert.h"

void aegis__cluster_config_default(struct aegis_cluster_config *c, const char *name)
{
    size_t len;

    AEGIS_ASSERT(c != NULL);
    memset(c, 0, sizeof(*c));
    if (name == NULL) {
        name = "aegis";
    }
    len = strnlen(name, sizeof(c->name) - 1);
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->nodes_min = 1;
    c->nodes_max = AEGIS_CLUSTER_NODES_MAX;
    c->replication_factor = 3;
    c->heartbeat_interval_ms = 1000;
    c->suspect_timeout_ms = 0;
    c->failure_timeout_ms = 5000;
    c->quorum_size = 0;
}

int aegis__cluster_config_validate(const struct aegis_cluster_config *c)
{
    AEGIS_ASSERT(c != NULL);
    if (c->name[0] == '\0' || strnlen(c->name, sizeof(c->name)) == sizeof(c->name)) {
        return AEGIS_ECONFIG;
    }
    if (c->nodes_min == 0 || c->nodes_min > c->nodes_max ||
        c->nodes_max > AEGIS_CLUSTER_NODES_MAX) {
        return AEGIS_ECONFIG;
    }
    if (c->replication_factor == 0 || c->replication_factor > c->nodes_max) {
        return AEGIS_ECONFIG;
    }
    if (c->failure_timeout_ms == 0 || c->failure_timeout_ms <= c->heartbeat_interval_ms) {
        return AEGIS_ECONFIG;
    }
    if (c->suspect_timeout_ms >= c->failure_timeout_ms) {
        return AEGIS_ECONFIG;
    }
    if (c->quorum_size > c->nodes_max) {
        return AEGIS_ECONFIG;
    }
    return 0;
}

static uint64_t suspect_timeout(const struct aegis_cluster_config *c)
{
    return c->suspect_timeout_ms != 0 ? c->suspect_timeout_ms : c->failure_timeout_ms / 2;
}

static int find_member(const struct aegis_cluster *c, aegis_node_id id)
{
    AEGIS_ASSERT(c->count <= AEGIS_CLUSTER_NODES_MAX);
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].info.id == id) {
            return (int)i;
        }
    }
    return -1;
}

static uint32_t count_members(const struct aegis_cluster *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++) {
        n += c->members[i].info.status != AEGIS_NODE_LEFT;
    }
    return n;
}

static uint32_t count_up(const struct aegis_cluster *c)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < c->count; i++) {
        n += aegis__node_status_is_live((enum aegis_node_status)c->members[i].info.status);
    }
    return n;
}

uint32_t aegis__cluster_quorum(const struct aegis_cluster *c)
{
    AEGIS_ASSERT(c != NULL);
    if (c->config.quorum_size != 0) {
        return c->config.quorum_size;
    }
    return count_members(c) / 2 + 1;
}

bool aegis__cluster_has_quorum(const struct aegis_cluster *c)
{
    return count_up(c) >= aegis__cluster_quorum(c);
}

/* Called after every change of membership or health: the cluster is formed the first
 * time it has enough members and a quorum of them up, and stays formed after that. */
static void update_formed(struct aegis_cluster *c)
{
    if (!c->formed && count_members(c) >= c->config.nodes_min && aegis__cluster_has_quorum(c)) {
        c->formed = true;
    }
}

int aegis__cluster_init(struct aegis_cluster *c, const struct aegis_node_info *local,
                        const struct aegis_cluster_config *config, uint64_t now_ms)
{
    struct aegis_cluster_member *m;
    int rv;

    AEGIS_ASSERT(c != NULL && local != NULL && config != NULL);
    rv = aegis__cluster_config_validate(config);
    if (rv != 0) {
        return rv;
    }
    if (local->id == AEGIS_NODE_NONE || local->status == AEGIS_NODE_LEAVING ||
        local->status == AEGIS_NODE_LEFT) {
        return AEGIS_EINVAL;
    }
    memset(c, 0, sizeof(*c));
    c->config = *config;
    c->local_id = local->id;
    c->leader = AEGIS_NODE_NONE;
    m = &c->members[c->count++];
    m->info = *local;
    m->info.status = AEGIS_NODE_HEALTHY;
    aegis__node_health_init(&m->health, now_ms);
    aegis__node_health_heard(&m->health, now_ms);
    update_formed(c);
    return 0;
}

void aegis__cluster_close(struct aegis_cluster *c)
{
    AEGIS_ASSERT(c != NULL);
    /* Nothing is allocated; poison the count so a use after close trips an assertion. */
    c->count = UINT32_MAX;
}

static int add_member(struct aegis_cluster *c, const struct aegis_node_info *node,
                      uint64_t now_ms)
{
    struct aegis_cluster_member *m;

    if (node->id == AEGIS_NODE_NONE || node->status == AEGIS_NODE_LEFT ||
        node->status < AEGIS_NODE_STARTING || node->status > AEGIS_NODE_LEFT) {
        return AEGIS_EINVAL;
    }
    if (find_member(c, node->id) >= 0) {
        return AEGIS_EEXIST;
    }
    if (count_members(c) >= c->config.nodes_max || c->count == AEGIS_CLUSTER_NODES_MAX) {
        return AEGIS_EFULL;
    }
    m = &c->members[c->count++];
    memset(m, 0, sizeof(*m));
    m->info = *node;
    aegis__node_health_init(&m->health, now_ms);
    return 0;
}

static void drop_member(struct aegis_cluster *c, int i)
{
    AEGIS_ASSERT(i >= 0 && (uint32_t)i < c->count);
    if (c->members[i].info.id == c->leader) {
        c->leader = AEGIS_NODE_NONE;
    }
    c->count--;
    if ((uint32_t)i != c->count) {
        c->members[i] = c->members[c->count];
    }
    memset(&c->members[c->count], 0, sizeof(c->members[0]));
}

static int update_member(struct aegis_cluster *c, const struct aegis_node_info *node)
{
    struct aegis_cluster_member *m;
    int i = find_member(c, node->id);

    if (i < 0) {
        return AEGIS_EUNKNOWNNODE;
    }
    m = &c->members[i];
    if (!aegis__node_status_can_transition((enum aegis_node_status)m->info.status,
                                           (enum aegis_node_status)node->status)) {
        return AEGIS_EINVAL;
    }
    m->info = *node;
    if (m->info.status == AEGIS_NODE_LEFT && m->info.id != c->local_id) {
        drop_member(c, i);
    } else if (m->info.status == AEGIS_NODE_LEFT && m->info.id == c->leader) {
        c->leader = AEGIS_NODE_NONE;
    }
    return 0;
}

int aegis__cluster_apply(struct aegis_cluster *c, const struct aegis_membership_change *ch,
                         uint64_t now_ms)
{
    int i;
    int rv;

    AEGIS_ASSERT(c != NULL && ch != NULL);
    switch (ch->type) {
    case AEGIS_MEMBERSHIP_ADD:
        rv = add_member(c, &ch->node, now_ms);
        break;
    case AEGIS_MEMBERSHIP_REMOVE:
        i = find_member(c, ch->node.id);
        if (i < 0) {
            rv = AEGIS_EUNKNOWNNODE;
        } else if (ch->node.id == c->local_id) {
            rv = AEGIS_EINVAL;
        } else {
            drop_member(c, i);
            rv = 0;
        }
        break;
    case AEGIS_MEMBERSHIP_UPDATE:
        rv = update_member(c, &ch->node);
        break;
    default:
        rv = AEGIS_EINVAL;
        break;
    }
    if (rv == 0) {
        c->version++;
        update_formed(c);
    }
    return rv;
}

int aegis__cluster_add_node(struct aegis_cluster *c, const struct aegis_node_info *node,
                            uint64_t now_ms)
{
    struct aegis_membership_change ch = {.type = AEGIS_MEMBERSHIP_ADD};

    AEGIS_ASSERT(node != NULL);
    ch.node = *node;
    return aegis__cluster_apply(c, &ch, now_ms);
}

int aegis__cluster_remove_node(struct aegis_cluster *c, aegis_node_id id)
{
    struct aegis_membership_change ch = {.type = AEGIS_MEMBERSHIP_REMOVE};

    ch.node.id = id;
    return aegis__cluster_apply(c, &ch, 0);
}

int aegis__cluster_update_node(struct aegis_cluster *c, const struct aegis_node_info *node)
{
    struct aegis_membership_change ch = {.type = AEGIS_MEMBERSHIP_UPDATE};

    AEGIS_ASSERT(node != NULL);
    ch.node = *node;
    return aegis__cluster_apply(c, &ch, 0);
}

const struct aegis_cluster_member *aegis__cluster_member(const struct aegis_cluster *c,
                                                         aegis_node_id id)
{
    int i;

    AEGIS_ASSERT(c != NULL);
    i = find_member(c, id);
    return i < 0 ? NULL : &c->members[i];
}

bool aegis__cluster_contains(const struct aegis_cluster *c, aegis_node_id id)
{
    return aegis__cluster_member(c, id) != NULL;
}

int aegis__cluster_heartbeat(struct aegis_cluster *c, aegis_node_id id, uint64_t now_ms)
{
    struct aegis_cluster_member *m;
    int i;
    int rv;

    AEGIS_ASSERT(c != NULL);
    i = find_member(c, id);
    if (i < 0) {
        return AEGIS_EUNKNOWNNODE;
    }
    m = &c->members[i];
    aegis__node_health_heard(&m->health, now_ms);
    switch (m->info.status) {
    case AEGIS_NODE_STARTING:
    case AEGIS_NODE_SUSPECT:
    case AEGIS_NODE_DOWN:
        rv = aegis__node_set_status(&m->info, AEGIS_NODE_HEALTHY);
        AEGIS_ASSERT(rv == 0);
        break;
    default:
        /* Healthy stays; Leaving and Left are on their way out and stay so. */
        break;
    }
    update_formed(c);
    return 0;
}

int aegis__cluster_report_health(struct aegis_cluster *c, aegis_node_id id, uint64_t rtt_us,
                                 uint64_t lag_entries)
{
    int i;

    AEGIS_ASSERT(c != NULL);
    i = find_member(c, id);
    if (i < 0) {
        return AEGIS_EUNKNOWNNODE;
    }
    c->members[i].health.rtt_us = rtt_us;
    c->members[i].health.lag_entries = lag_entries;
    return 0;
}

/* Decide the status member @m should have after @silence of silence, given its status.
 * Returns the status unchanged when the member is not subject to failure detection. */
static enum aegis_node_status status_after_silence(const struct aegis_cluster *c,
                                                   enum aegis_node_status s, uint64_t silence)
{
    if (s != AEGIS_NODE_STARTING && s != AEGIS_NODE_HEALTHY && s != AEGIS_NODE_SUSPECT) {
        return s;
    }
    if (silence > c->config.failure_timeout_ms) {
        return AEGIS_NODE_DOWN;
    }
    if (silence > suspect_timeout(&c->config)) {
        return AEGIS_NODE_SUSPECT;
    }
    return s;
}

uint32_t aegis__cluster_check_failures(struct aegis_cluster *c, uint64_t now_ms,
                                       aegis_node_id *failed_out, uint32_t failed_cap)
{
    uint32_t failed = 0;

    AEGIS_ASSERT(c != NULL);
    AEGIS_ASSERT(failed_out != NULL || failed_cap == 0);
    for (uint32_t i = 0; i < c->count; i++) {
        struct aegis_cluster_member *m = &c->members[i];
        enum aegis_node_status from = (enum aegis_node_status)m->info.status;
        enum aegis_node_status to;
        int rv;

        if (m->info.id == c->local_id) {
            continue;
        }
        to = status_after_silence(c, from, aegis__node_health_silence_ms(&m->health, now_ms));
        if (to == from) {
            continue;
        }
        rv = aegis__node_set_status(&m->info, to);
        AEGIS_ASSERT(rv == 0);
        if (to == AEGIS_NODE_SUSPECT) {
            aegis__node_health_failed(&m->health, "heartbeat late");
            continue;
        }
        aegis__node_health_failed(&m->health, "no heartbeat within the failure timeout");
        if (m->info.id == c->leader) {
            c->leader = AEGIS_NODE_NONE;
        }
        if (failed < failed_cap) {
            failed_out[failed] = m->info.id;
        }
        failed++;
    }
    update_formed(c);
    return failed;
}

int aegis__cluster_set_role(struct aegis_cluster *c, aegis_node_id id,
                            enum aegis_node_role role)
{
    int i;

    AEGIS_ASSERT(c != NULL);
    AEGIS_ASSERT(role >= AEGIS_NODE_FOLLOWER && role <= AEGIS_NODE_LEARNER);
    i = find_member(c, id);
    if (i < 0) {
        return AEGIS_EUNKNOWNNODE;
    }
    c->members[i].info.role = (uint8_t)role;
    return 0;
}

int aegis__cluster_set_leader(struct aegis_cluster *c, aegis_node_id id)
{
    int prev;
    int next = -1;

    AEGIS_ASSERT(c != NULL);
    if (id != AEGIS_NODE_NONE) {
        next = find_member(c, id);
        if (next < 0) {
            return AEGIS_EUNKNOWNNODE;
        }
    }
    prev = find_member(c, c->leader);
    if (prev >= 0 && c->members[prev].info.role == AEGIS_NODE_LEADER) {
        c->members[prev].info.role = AEGIS_NODE_FOLLOWER;
    }
    if (next >= 0) {
        c->members[next].info.role = AEGIS_NODE_LEADER;
    }
    c->leader = id;
    return 0;
}

aegis_node_id aegis__cluster_leader(const struct aegis_cluster *c)
{
    AEGIS_ASSERT(c != NULL);
    return c->leader;
}

static bool any_heard_peer(const struct aegis_cluster *c)
{
    for (uint32_t i = 0; i < c->count; i++) {
        if (c->members[i].info.id != c->local_id && c->members[i].health.heard) {
            return true;
        }
    }
    return false;
}

enum aegis_cluster_state aegis__cluster_state(const struct aegis_cluster *c)
{
    AEGIS_ASSERT(c != NULL);
    if (!c->formed) {
        return any_heard_peer(c) ? AEGIS_CLUSTER_FORMING : AEGIS_CLUSTER_INITIALIZING;
    }
    if (!aegis__cluster_has_quorum(c)) {
        return AEGIS_CLUSTER_NO_QUORUM;
    }
    if (count_members(c) < c->config.nodes_min) {
        return AEGIS_CLUSTER_DEGRADED;
    }
    for (uint32_t i = 0; i < c->count; i++) {
        uint8_t s = c->members[i].info.status;

        if (s == AEGIS_NODE_STARTING || s == AEGIS_NODE_SUSPECT || s == AEGIS_NODE_DOWN) {
            return AEGIS_CLUSTER_DEGRADED;
        }
    }
    return AEGIS_CLUSTER_HEALTHY;
}

void aegis__cluster_stats(const struct aegis_cluster *c, struct aegis_cluster_stats *out)
{
    AEGIS_ASSERT(c != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < c->count; i++) {
        switch (c->members[i].info.status) {
        case AEGIS_NODE_STARTING:
            out->starting_nodes++;
            break;
        case AEGIS_NODE_HEALTHY:
            out->healthy_nodes++;
            break;
        case AEGIS_NODE_SUSPECT:
            out->suspect_nodes++;
            break;
        case AEGIS_NODE_DOWN:
            out->down_nodes++;
            break;
        case AEGIS_NODE_LEAVING:
            out->leaving_nodes++;
            break;
        default:
            break;
        }
    }
    out->total_nodes = count_members(c);
    out->quorum = aegis__cluster_quorum(c);
    out->has_quorum = aegis__cluster_has_quorum(c);
    out->leader = c->leader;
    out->state = (uint8_t)aegis__cluster_state(c);
    out->version = c->version;
}

const char *aegis__cluster_state_name(enum aegis_cluster_state s)
{
    switch (s) {
    case AEGIS_CLUSTER_INITIALIZING:
        return "initializing";
    case AEGIS_CLUSTER_FORMING:
        return "forming";
    case AEGIS_CLUSTER_HEALTHY:
        return "healthy";
    case AEGIS_CLUSTER_DEGRADED:
        return "degraded";
    case AEGIS_CLUSTER_NO_QUORUM:
        return "no quorum";
    }
    return "unknown";
}
