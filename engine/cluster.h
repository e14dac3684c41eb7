/* SPDX-License-Identifier: MIT */
/* Cluster coordination: the seed's cluster.rs (ClusterConfig, ClusterState, Cluster,
 * ClusterStats, MembershipChange).
 *
 * Design. A struct aegis_cluster is this node's view of the group: a fixed table of at
 * most AEGIS_CLUSTER_NODES_MAX members (the local node is always one of them), each with
 * its NodeInfo and its latest NodeHealth, plus who the leader is. It is built in place
 * (_init/_close, no allocation) and is pure: every operation that depends on time takes
 * the caller's @now_ms, in the same unit as the config's intervals (milliseconds by
 * convention; the engine facade passes ticks * tick_ms).
 *
 * Failure detection. Peers report liveness through heartbeat(id, now). check_failures(now)
 * looks at how long each peer has been silent: beyond suspect_timeout_ms a Healthy (or
 * Starting) peer becomes Suspect; beyond failure_timeout_ms it becomes Down and is
 * reported in the returned list. Any later heartbeat makes it Healthy again. The local
 * node never fails in its own view, and Leaving/Left members are not checked (they are on
 * their way out). A peer never heard from is timed from when it was added.
 *
 * Membership is not decided here: Raft decides it (ConfigChange entries). The cluster
 * applies MembershipChanges the runtime tells it about, to track addresses, health and
 * metadata for status output and for the transport.
 *
 * State derivation (aegis__cluster_state), with quorum = config.quorum_size, or a majority
 * of the members not Left when quorum_size is 0, and up = Healthy + Suspect members:
 *   - before the cluster has first formed (up >= quorum with at least nodes_min members):
 *     Initializing while no peer has been heard from, Forming after;
 *   - once formed: NoQuorum when up < quorum; Degraded when some member is Suspect or
 *     Down or the membership is below nodes_min; Healthy otherwise. */
#ifndef AEGIS_CLUSTER_H
#define AEGIS_CLUSTER_H

#include "engine/node.h"

#define AEGIS_CLUSTER_NODES_MAX AEGIS_PEERS_MAX /* <aegis/types.h>, as AEGIS_MEMBERS_MAX */
#define AEGIS_CLUSTER_NAME_MAX  64 /* Including the NUL. */

/* ClusterConfig of the seed. */
struct aegis_cluster_config {
    char name[AEGIS_CLUSTER_NAME_MAX];
    uint32_t nodes_min;          /* Members needed to call the cluster formed. */
    uint32_t nodes_max;          /* add_node refuses beyond this (<= NODES_MAX). */
    uint32_t replication_factor; /* Copies of each entry the deployment wants. */
    uint64_t heartbeat_interval_ms;
    uint64_t suspect_timeout_ms; /* Silence before Suspect; 0 = failure_timeout / 2. */
    uint64_t failure_timeout_ms; /* Silence before Down. */
    uint32_t quorum_size;        /* 0 = majority of the members not Left. */
};

/* ClusterConfig::new(name): nodes_min 1, nodes_max AEGIS_CLUSTER_NODES_MAX, replication
 * factor 3, heartbeat 1000 ms, suspect 0 (= half the failure timeout), failure 5000 ms,
 * quorum 0 (majority). @name is copied (truncated to fit; NULL = "aegis"). */
void aegis__cluster_config_default(struct aegis_cluster_config *c, const char *name);

/* Returns 0 or AEGIS_ECONFIG: nodes_min 0 or above nodes_max, nodes_max above
 * AEGIS_CLUSTER_NODES_MAX, replication factor 0 or above nodes_max, failure timeout 0 or
 * not above the heartbeat interval, suspect timeout not below the failure timeout, quorum
 * above nodes_max, or an empty name. */
int aegis__cluster_config_validate(const struct aegis_cluster_config *c);

/* ClusterState of the seed. */
enum aegis_cluster_state {
    AEGIS_CLUSTER_INITIALIZING = 1,
    AEGIS_CLUSTER_FORMING = 2,
    AEGIS_CLUSTER_HEALTHY = 3,
    AEGIS_CLUSTER_DEGRADED = 4,
    AEGIS_CLUSTER_NO_QUORUM = 5,
};

/* MembershipChange of the seed. */
enum aegis_membership_change_type {
    AEGIS_MEMBERSHIP_ADD = 1,    /* node: the new member (its status is kept). */
    AEGIS_MEMBERSHIP_REMOVE = 2, /* node.id: the member to drop from the table. */
    AEGIS_MEMBERSHIP_UPDATE = 3, /* node: new address, port, role, metadata and status. */
};

struct aegis_membership_change {
    uint8_t type; /* enum aegis_membership_change_type. */
    struct aegis_node_info node;
};

/* ClusterStats of the seed. */
struct aegis_cluster_stats {
    uint32_t total_nodes; /* Members in the table (Left ones are removed). */
    uint32_t starting_nodes;
    uint32_t healthy_nodes;
    uint32_t suspect_nodes;
    uint32_t down_nodes;
    uint32_t leaving_nodes;
    uint32_t quorum;      /* Members that must be up for a quorum. */
    bool has_quorum;      /* Healthy + Suspect >= quorum. */
    aegis_node_id leader; /* AEGIS_NODE_NONE when unknown. */
    uint8_t state;        /* enum aegis_cluster_state. */
    uint64_t version;     /* Count of membership changes applied. */
};

struct aegis_cluster_member {
    struct aegis_node_info info;
    struct aegis_node_health health;
};

/* Cluster of the seed. Fields are read-only for callers (use the functions). */
struct aegis_cluster {
    struct aegis_cluster_config config;
    aegis_node_id local_id;
    aegis_node_id leader;
    bool formed;  /* Reached quorum with nodes_min members at least once. */
    uint64_t version;
    uint32_t count;
    struct aegis_cluster_member members[AEGIS_CLUSTER_NODES_MAX]; /* First count used. */
};

/* Cluster::new: @c becomes a cluster whose only member is @local (copied), marked Healthy
 * and heard at @now_ms (a node is alive in its own view). @config is copied. Returns 0,
 * AEGIS_ECONFIG (invalid config) or AEGIS_EINVAL (@local has id 0 or is Leaving/Left). */
int aegis__cluster_init(struct aegis_cluster *c, const struct aegis_node_info *local,
                        const struct aegis_cluster_config *config, uint64_t now_ms);
void aegis__cluster_close(struct aegis_cluster *c);

/* Apply one MembershipChange at @now_ms. ADD: @ch->node is copied in (a peer not heard
 * from is timed from @now_ms); AEGIS_EEXIST if the id is a member, AEGIS_EFULL at
 * nodes_max, AEGIS_EINVAL for id 0. REMOVE: AEGIS_EUNKNOWNNODE, AEGIS_EINVAL for the local
 * node (it leaves through Leaving/Left instead); a removed leader is forgotten. UPDATE:
 * AEGIS_EUNKNOWNNODE, or AEGIS_EINVAL when the status change is not an allowed transition
 * (nothing changes then). A member updated to Left is removed. Each success bumps
 * the version. */
int aegis__cluster_apply(struct aegis_cluster *c, const struct aegis_membership_change *ch,
                         uint64_t now_ms);

/* Shorthands for aegis__cluster_apply. */
int aegis__cluster_add_node(struct aegis_cluster *c, const struct aegis_node_info *node,
                            uint64_t now_ms);
int aegis__cluster_remove_node(struct aegis_cluster *c, aegis_node_id id);
int aegis__cluster_update_node(struct aegis_cluster *c, const struct aegis_node_info *node);

/* The member @id, or NULL. The pointer is valid until the next membership change. */
const struct aegis_cluster_member *aegis__cluster_member(const struct aegis_cluster *c,
                                                         aegis_node_id id);
bool aegis__cluster_contains(const struct aegis_cluster *c, aegis_node_id id);

/* A heartbeat from @id at @now_ms: the member is heard, and Starting, Suspect or Down
 * becomes Healthy. Returns 0 or AEGIS_EUNKNOWNNODE. */
int aegis__cluster_heartbeat(struct aegis_cluster *c, aegis_node_id id, uint64_t now_ms);

/* Record health-check figures for @id (round trip, lag). AEGIS_EUNKNOWNNODE. */
int aegis__cluster_report_health(struct aegis_cluster *c, aegis_node_id id, uint64_t rtt_us,
                                 uint64_t lag_entries);

/* Move silent peers Healthy/Starting -> Suspect -> Down as of @now_ms (see the top of
 * this file). Writes the ids that became Down in this call to @failed_out (room for
 * @failed_cap; may be NULL when 0) and returns how many became Down (which may exceed
 * @failed_cap: only the first @failed_cap are written). A Down leader is forgotten. */
uint32_t aegis__cluster_check_failures(struct aegis_cluster *c, uint64_t now_ms,
                                       aegis_node_id *failed_out, uint32_t failed_cap);

/* Leader tracking. set_leader(AEGIS_NODE_NONE) forgets the leader. The leader's role
 * becomes Leader and a previous leader's becomes Follower. AEGIS_EUNKNOWNNODE. */
int aegis__cluster_set_leader(struct aegis_cluster *c, aegis_node_id id);
aegis_node_id aegis__cluster_leader(const struct aegis_cluster *c);

/* Set the role of member @id (Raft's view). AEGIS_EUNKNOWNNODE. */
int aegis__cluster_set_role(struct aegis_cluster *c, aegis_node_id id,
                            enum aegis_node_role role);

/* The quorum size in effect (config.quorum_size, or a majority of the members). */
uint32_t aegis__cluster_quorum(const struct aegis_cluster *c);
bool aegis__cluster_has_quorum(const struct aegis_cluster *c);

/* Derive the state (see the top of this file). The formed flag it depends on is updated
 * by every operation that changes membership or health. */
enum aegis_cluster_state aegis__cluster_state(const struct aegis_cluster *c);

/* Fill @out with the current statistics. */
void aegis__cluster_stats(const struct aegis_cluster *c, struct aegis_cluster_stats *out);

const char *aegis__cluster_state_name(enum aegis_cluster_state s);

#endif /* AEGIS_CLUSTER_H */
